//! `lockvmm test`: a suite runner for CI, after kvm-unit-tests' `run_tests.sh`. Every scenario
//! runs as its own `lockvmm run … --json` child in its own process group (a guest that wedges
//! one run cannot take the others with it, and a wall-clock timeout kills the whole group),
//! `-j N` at once. One `PASS`/`FAIL`/`SKIP name (why)` line each as they finish, then a
//! summary; `--tap` prints TAP 13 instead and `--junit FILE` writes JUnit XML (`report`).
mod child;
mod report;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::output::write_atomic;
use crate::state::ExitStatus;

pub use child::{Verdict, run_child};

#[derive(clap::Args, Debug, Clone)]
pub struct TestArgs {
    /// Scenario files and directories of them (default: scenarios/ and examples/).
    pub paths: Vec<PathBuf>,
    /// Scenarios run at once (default: the host's CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: Option<u16>,
    /// Wall-clock seconds a scenario may take before its process group is killed (a FAIL).
    #[arg(long, value_name = "SECONDS", default_value_t = 600.0)]
    pub timeout: f64,
    /// Also write the results as JUnit XML to FILE (written whole or not at all).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Print TAP version 13 on stdout instead of PASS/FAIL lines.
    #[arg(long)]
    pub tap: bool,
    /// Without a usable KVM device, SKIP every scenario and exit 77 instead of failing.
    #[arg(long)]
    pub skip_without_kvm: bool,
    /// Directory for the scenarios' run directories (one per scenario).
    #[arg(long, default_value = "lockvmm-runs/test")]
    pub out: PathBuf,
}

/// How one scenario of the suite ended.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    pub path: PathBuf,
    pub verdict: Verdict,
    /// Why, in a few words (`hard lockup on CPU 56 at 10.4s`, `timeout after 5 s`).
    pub why: String,
    /// The expectations that failed, one line each (`outcome: expected … observed …`).
    pub details: Vec<String>,
    /// The child's stderr (its one-line errors).
    pub stderr: String,
    pub wall: Duration,
    pub run_dir: PathBuf,
}

/// The scenario files `paths` name: files as given, directories' `*.toml` sorted by name.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let defaults = [PathBuf::from("scenarios"), PathBuf::from("examples")];
    let paths = if paths.is_empty() {
        &defaults[..]
    } else {
        paths
    };
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("cannot list {}: {e}", p.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|f| f.is_file() && f.extension().is_some_and(|e| e == "toml"))
                .collect();
            files.sort();
            out.extend(files);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(format!(
                "{}: no such scenario file or directory",
                p.display()
            ));
        }
    }
    if out.is_empty() {
        return Err("no scenario files (*.toml) in the paths given".into());
    }
    Ok(out)
}

/// The KVM device the children would open (`LOCKVMM_KVM_DEVICE` overrides it, as for `run`),
/// and why it cannot be used, if it cannot.
pub fn kvm_unusable() -> Option<String> {
    let dev =
        std::env::var_os("LOCKVMM_KVM_DEVICE").unwrap_or_else(|| crate::lab::KVM_DEVICE.into());
    let shown = Path::new(&dev).display().to_string();
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&dev)
    {
        Ok(_) => None,
        Err(e) => Some(format!("{shown}: {e}")),
    }
}

/// Runs the suite; prints its lines and returns the exit status: 0 when every scenario passed,
/// 1 when one failed, 77 when the KVM device is missing and `--skip-without-kvm` says to skip.
pub fn run(args: &TestArgs, exe: &Path) -> ExitStatus {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        eprintln!(
            "lockvmm: --timeout {}: a number of seconds above 0",
            args.timeout
        );
        return ExitStatus::BadInput;
    }
    let files = match collect(&args.paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("lockvmm: {e}");
            return ExitStatus::BadInput;
        }
    };
    let names = unique_names(&files);
    let started = Instant::now();
    let results = match kvm_unusable() {
        Some(why) if args.skip_without_kvm => {
            let why = format!("no usable KVM device: {why}");
            files
                .iter()
                .zip(&names)
                .map(|(f, n)| CaseResult {
                    name: n.clone(),
                    path: f.clone(),
                    verdict: Verdict::Skip,
                    why: why.clone(),
                    details: Vec::new(),
                    stderr: String::new(),
                    wall: Duration::ZERO,
                    run_dir: args.out.join(n),
                })
                .inspect(|r| {
                    if !args.tap {
                        println!("{}", report::line(r));
                    }
                })
                .collect()
        }
        _ => run_all(args, exe, &files, &names),
    };
    let wall = started.elapsed();
    if args.tap {
        print!("{}", report::tap(&results));
    }
    println!("{}", report::summary(&results, wall));
    if let Some(path) = &args.junit {
        let xml = report::junit(&results, wall);
        if let Err(e) = write_atomic(path, xml.as_bytes()) {
            eprintln!("lockvmm: cannot write {}: {e}", path.display());
            return ExitStatus::Environment;
        }
    }
    let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
    if count(Verdict::Fail) > 0 {
        ExitStatus::GuestFailed
    } else if count(Verdict::Skip) > 0 {
        ExitStatus::Skipped
    } else {
        ExitStatus::Success
    }
}

/// Every scenario, `-j` at a time; each line is printed as its scenario finishes, and the
/// results come back in the order of `files`.
fn run_all(args: &TestArgs, exe: &Path, files: &[PathBuf], names: &[String]) -> Vec<CaseResult> {
    let jobs = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    let timeout = Duration::from_secs_f64(args.timeout);
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, CaseResult)>();
    let mut results: Vec<Option<CaseResult>> = vec![None; files.len()];
    std::thread::scope(|s| {
        for _ in 0..jobs.min(files.len()) {
            let tx = tx.clone();
            let next = &next;
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = files.get(i) else { break };
                    // A stop signal ends the suite: no new scenario starts.
                    if crate::process::signals::received().is_some() {
                        break;
                    }
                    let dir = args.out.join(&names[i]);
                    let r = run_child(exe, file, &names[i], &dir, timeout);
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (i, r) in rx {
            if !args.tap {
                println!("{}", report::line(&r));
            }
            results[i] = Some(r);
        }
    });
    results
        .into_iter()
        .zip(files.iter().zip(names))
        .map(|(r, (f, n))| {
            r.unwrap_or_else(|| CaseResult {
                name: n.clone(),
                path: f.clone(),
                verdict: Verdict::Fail,
                why: "not run: the suite was interrupted".into(),
                details: Vec::new(),
                stderr: String::new(),
                wall: Duration::ZERO,
                run_dir: args.out.join(n),
            })
        })
        .collect()
}

/// Each scenario's name: its file stem, with the parent directory's name before it when two
/// files share a stem (`examples-boot`), so each has its own run directory.
fn unique_names(files: &[PathBuf]) -> Vec<String> {
    let stem = |f: &PathBuf| {
        f.file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    };
    let stems: Vec<String> = files.iter().map(stem).collect();
    let mut names = stems.clone();
    for i in 0..names.len() {
        if stems.iter().filter(|n| **n == stems[i]).count() > 1 {
            let parent = files[i]
                .parent()
                .and_then(Path::file_name)
                .map_or_else(|| "scenario".into(), |p| p.to_string_lossy().into_owned());
            names[i] = format!("{parent}-{}", stem(&files[i]));
        }
    }
    // Still equal (the same file twice, or one name in two equally named directories): number.
    for i in 0..names.len() {
        let before = names[..i].iter().filter(|n| **n == names[i]).count();
        if before > 0 {
            names[i] = format!("{}-{}", names[i], before + 1);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_apart() {
        let f = |s: &str| PathBuf::from(s);
        let n = unique_names(&[f("a/x.toml"), f("b/x.toml"), f("a/y.toml"), f("a/y.toml")]);
        assert_eq!(n, ["a-x", "b-x", "a-y", "a-y-2"]);
    }
}
