//! `lockvmm explore`'s command line: the flags, the run directory, the printed summary and the
//! exit status (1 when any schedule failed, as a test).
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::results::{ExploreResult, merge};
use super::{Budget, ExploreOptions, explore, write_and_replay};
use crate::lab::{RunDir, RunOptions};
use crate::output::write_atomic;
use crate::process::{signals, stdout};
use crate::state::ExitStatus;
use crate::state::text::escape_line;

#[derive(clap::Args, Debug)]
pub struct ExploreArgs {
    /// The scenario whose workload to explore (TOML).
    #[arg(required_unless_present = "merge")]
    pub scenario: Option<PathBuf>,
    /// Forced events per schedule, at most (default: the scenario's `[explore] depth`, else 1).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4))]
    pub depth: Option<u64>,
    /// Stop after this many schedules (`500`) or this much wall time (`90s`, `10m`).
    #[arg(long, default_value = "500", value_parser = parse_budget)]
    pub budget: BudgetArg,
    /// Run only slice K of N (0-based) of the space: the recording's choices i with i mod N = K
    /// and everything below them.
    #[arg(long, value_parser = parse_shard, default_value = "0/1")]
    pub shard: (usize, usize),
    /// Directory for explore.json and the found-N.toml files (default:
    /// lockvmm-runs/<scenario name>-explore).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print explore.json on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Combine these shard directories' explore.json into --out instead of exploring.
    #[arg(long, num_args = 1.., conflicts_with = "scenario")]
    pub merge: Vec<PathBuf>,
    /// Boot a fresh machine for every schedule instead of restoring a snapshot taken once
    /// (slower; the reference restored runs are checked against).
    #[arg(long)]
    pub reboot: bool,
    /// Boot this guest kernel ELF instead of the built-in one.
    #[arg(long)]
    pub kernel: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy)]
pub struct BudgetArg(pub Budget);

fn parse_budget(s: &str) -> Result<BudgetArg, String> {
    let wall = |n: &str, unit: u64| {
        n.parse::<u64>()
            .ok()
            .filter(|&n| n > 0)
            .map(|n| BudgetArg(Budget::Wall(Duration::from_secs(n * unit))))
    };
    let parsed = if let Some(n) = s.strip_suffix('s') {
        wall(n, 1)
    } else if let Some(n) = s.strip_suffix('m') {
        wall(n, 60)
    } else {
        s.parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .map(|n| BudgetArg(Budget::Schedules(n)))
    };
    parsed.ok_or_else(|| format!("`{s}`: a number of schedules (500) or a wall time (90s, 10m)"))
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (k, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}`: K/N, as 0/4"))?;
    match (k.parse::<usize>(), n.parse::<usize>()) {
        (Ok(k), Ok(n)) if n >= 1 && k < n => Ok((k, n)),
        _ => Err(format!("`{s}`: K/N with 0 ≤ K < N, as 0/4")),
    }
}

/// Removes what an earlier explore left in `out`: its explore.json and found files.
fn clear_found(out: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(out)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let found = name
            .strip_prefix("found-")
            .map(|r| r.strip_suffix(".toml").unwrap_or(r))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if name == "explore.json" || found {
            if e.path().is_dir() {
                std::fs::remove_dir_all(e.path())?;
            } else {
                std::fs::remove_file(e.path())?;
            }
        }
    }
    Ok(())
}

/// `lockvmm explore`.
pub fn command(args: &ExploreArgs) -> ExitStatus {
    if let Err(e) = signals::install() {
        eprintln!("lockvmm: cannot install the SIGINT/SIGTERM handler: {e}");
        return ExitStatus::Environment;
    }
    let name = match &args.scenario {
        Some(s) => s
            .file_stem()
            .map_or_else(|| "explore".into(), |s| s.to_string_lossy().into_owned()),
        None => "merged".into(),
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("lockvmm-runs").join(format!("{name}-explore")));
    let mut run = RunOptions::new(args.scenario.clone().unwrap_or_default());
    run.kernel = args.kernel.clone();
    // Bad input is refused before the directory is touched.
    if args.merge.is_empty()
        && let Err(e) = crate::lab::prepare(&run)
    {
        eprintln!("lockvmm: {e}");
        return e.exit_status();
    }
    let dir = match RunDir::claim(&out) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("lockvmm: {e}");
            return ExitStatus::Environment;
        }
    };
    if let Err(e) = clear_found(dir.path()) {
        eprintln!("lockvmm: cannot clear {}: {e}", out.display());
        return ExitStatus::Environment;
    }
    let result = if args.merge.is_empty() {
        let opts = ExploreOptions {
            run: run.clone(),
            depth: args.depth.map(|d| d as usize),
            budget: args.budget.0,
            shard: args.shard,
            out: out.clone(),
            progress: true,
            reboot: args.reboot,
        };
        explore(&opts).and_then(|mut r| write_and_replay(&mut r, &out, &run).map(|()| r))
    } else {
        read_and_merge(&args.merge).and_then(|mut r| {
            // The merged failures' files, from the text the shards recorded.
            for f in &r.failures {
                write_atomic(&out.join(&f.file), f.toml.as_bytes()).map_err(|e| {
                    super::ExploreError::Write {
                        path: out.join(&f.file),
                        why: e.to_string(),
                    }
                })?;
            }
            r.mode = format!("{} (merged)", r.mode);
            Ok(r)
        })
    };
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            dir.abandon();
            eprintln!("lockvmm: {e}");
            return match e {
                super::ExploreError::Lab(l) => l.exit_status(),
                super::ExploreError::Merge { .. } => ExitStatus::BadInput,
                _ => ExitStatus::Environment,
            };
        }
    };
    let json = serde_json::to_string_pretty(&result).unwrap_or_default();
    if let Err(e) = write_atomic(&out.join("explore.json"), json.as_bytes()) {
        eprintln!(
            "lockvmm: cannot write {}: {e}",
            out.join("explore.json").display()
        );
        return ExitStatus::Environment;
    }
    if args.json {
        stdout::print(&format!("{json}\n"));
    } else {
        print_summary(&result, &out);
    }
    if result.failed() > 0 {
        ExitStatus::GuestFailed
    } else {
        ExitStatus::Success
    }
}

fn read_and_merge(dirs: &[PathBuf]) -> Result<ExploreResult, super::ExploreError> {
    let mut parts = Vec::new();
    for d in dirs {
        let path = d.join("explore.json");
        let bad = |why: String| super::ExploreError::Merge {
            path: path.clone(),
            why,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        let r: ExploreResult = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        parts.push(r);
    }
    merge(parts).map_err(|why| super::ExploreError::Merge {
        path: dirs[0].clone(),
        why,
    })
}

/// The summary: outcome classes with their counts, each distinct failure with its shortest
/// schedule and file, then the last line.
fn print_summary(r: &ExploreResult, out: &Path) {
    line(&format!(
        "lockvmm: explore {}: {} schedules in {:.1} s ({:.2} schedules/s, {})",
        escape_line(&r.scenario),
        r.schedules.len(),
        r.wall_s,
        r.schedules_per_s,
        if r.restores > 0 {
            format!(
                "{} restored from a snapshot, {} pages copied back",
                r.restores, r.restored_pages
            )
        } else {
            "a fresh machine each".into()
        }
    ));
    for (class, n) in &r.classes {
        line(&format!("lockvmm:   {n:>5}  {class}"));
    }
    for f in &r.failures {
        let replay = match f.replayed {
            Some(true) => "replays",
            Some(false) => "DOES NOT REPLAY",
            None => "not replayed",
        };
        line(&format!(
            "lockvmm: failure {}: {} ({} schedules); shortest: {}",
            f.n,
            escape_line(&f.description),
            f.schedules,
            f.forced
                .iter()
                .map(|x| x.label())
                .collect::<Vec<_>>()
                .join("; ")
        ));
        line(&format!(
            "lockvmm:   {} ({replay}; report and vmcore in {})",
            out.join(&f.file).display(),
            out.join(format!("found-{}", f.n)).display()
        ));
    }
    line(&r.last_line());
}

/// One line on stdout (quietly dropped once a reader closed it).
fn line(s: &str) {
    stdout::print(&format!("{s}\n"));
}
