//! `lockvmm bench boot`: boot time and memory, measured over whole processes.
//!
//! Each sample spawns `lockvmm run <scenario> --vcpus N --json` and times it from spawn to exit;
//! the child reports (in its JSON) when all CPUs came online and when it exited, counted from
//! its own main(), and its peak resident memory. Time to all-online from process start is the
//! parent's spawn→exit time minus the child's online→exit tail.
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

mod qemu;
mod tick;

pub use qemu::{QemuBenchArgs, qemu};
pub use tick::{AllBenchArgs, TickBenchArgs, all, tick};

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Wall time from process start to all CPUs online and to exit, and resident memory.
    Boot(BootBenchArgs),
    /// Wall time of each scenario end to end, and virtual seconds per wall second.
    Scenarios(ScenarioBenchArgs),
    /// Host time per timer tick of a busy CPU.
    Tick(TickBenchArgs),
    /// Everything: boot for 1/8/64/128/255 vCPUs, the tick, every scenario and example.
    All(AllBenchArgs),
    /// lockvmm's 64-vCPU boot against QEMU microvm's first serial byte, pair by pair.
    Qemu(QemuBenchArgs),
}

/// Runs one `lockvmm bench` command.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Scenarios(args) => scenarios(&args),
        BenchCommand::Boot(args) => boot(&args),
        BenchCommand::Tick(args) => tick(&args),
        BenchCommand::All(args) => all(&args),
        BenchCommand::Qemu(args) => qemu(&args),
    }
}

#[derive(clap::Args, Debug)]
pub struct BootBenchArgs {
    /// Runs per vCPU count.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// vCPU counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64,128,255")]
    pub vcpus: Vec<usize>,
    /// The scenario to boot.
    #[arg(long, default_value = "scenarios/boot.toml")]
    pub scenario: PathBuf,
}

/// One measured boot.
#[derive(Debug, Clone, Copy)]
struct Sample {
    online_ms: f64,
    exit_ms: f64,
    rss_mib: f64,
    /// From the run's profile (the same in every run of a count).
    exits: f64,
    hypercalls: f64,
}

pub fn boot(args: &BootBenchArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the lockvmm executable")?;
    let out = std::env::temp_dir().join(format!("lockvmm-bench-{}", std::process::id()));
    println!(
        "lockvmm bench boot: {} runs each, scenario {}",
        args.runs,
        args.scenario.display()
    );
    println!(
        "| vCPUs | all CPUs online (ms, median [min–max]) | clean exit (ms, median [min–max]) | VMM max RSS (MiB, median) | VM exits | exits per AP | hypercalls per AP | guest instructions | per AP |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    // The 1-vCPU run's counts: what the boot CPU alone costs, to tell what each AP adds.
    let mut bsp: Option<(f64, f64)> = None;
    let mut bsp_insns: Option<u64> = None;
    for &n in &args.vcpus {
        let mut samples = Vec::with_capacity(args.runs);
        for _ in 0..args.runs {
            samples.push(sample(&exe, args, n, &out)?);
        }
        let col = |f: fn(&Sample) -> f64| {
            let mut v: Vec<f64> = samples.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            (v[v.len() / 2], v[0], v[v.len() - 1])
        };
        let (on, on_lo, on_hi) = col(|s| s.online_ms);
        let (ex, ex_lo, ex_hi) = col(|s| s.exit_ms);
        let (rss, _, _) = col(|s| s.rss_mib);
        let (exits, _, _) = col(|s| s.exits);
        let (hcs, _, _) = col(|s| s.hypercalls);
        if n == 1 {
            bsp = Some((exits, hcs));
        }
        let per_ap = match bsp {
            Some((e1, h1)) if n > 1 => format!(
                "{:.1} | {:.1}",
                (exits - e1) / (n - 1) as f64,
                (hcs - h1) / (n - 1) as f64
            ),
            _ => "— | —".into(),
        };
        // Counted in a run of its own: the counter slows the emulator (see insn_count.rs).
        let scenario = args.scenario.to_string_lossy();
        let insns = counted_run(&exe, &[&scenario, "--vcpus", &n.to_string()], &out);
        if n == 1 {
            bsp_insns = insns;
        }
        let insns_col = match (insns, bsp_insns) {
            (Some(i), Some(i1)) if n > 1 => {
                format!("{i} | {:.0}", (i - i1.min(i)) as f64 / (n - 1) as f64)
            }
            (Some(i), _) => format!("{i} | —"),
            (None, _) => "— | —".into(),
        };
        println!(
            "| {n} | {on:.1} [{on_lo:.1}–{on_hi:.1}] | {ex:.1} [{ex_lo:.1}–{ex_hi:.1}] | {rss:.1} | {exits:.0} | {per_ap} | {insns_col} |"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
    Ok(())
}

/// The guest instructions of one `lockvmm run ARGS --count-instructions` (`None` when the host
/// cannot count them: no PMU for perf and no tracefs).
fn counted_run(exe: &std::path::Path, args: &[&str], out: &std::path::Path) -> Option<u64> {
    let child = Command::new(exe)
        .arg("run")
        .args(args)
        .args(["--count-instructions", "--json", "--out"])
        .arg(out)
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&child.stdout).ok()?;
    v.pointer("/profile/guest_instructions")?.as_u64()
}

fn sample(
    exe: &std::path::Path,
    args: &BootBenchArgs,
    vcpus: usize,
    out: &std::path::Path,
) -> anyhow::Result<Sample> {
    let t = Instant::now();
    let child = Command::new(exe)
        .arg("run")
        .arg(&args.scenario)
        .args(["--vcpus", &vcpus.to_string(), "--json", "--out"])
        .arg(out)
        .output()
        .context("cannot start lockvmm")?;
    let wall_ms = t.elapsed().as_secs_f64() * 1e3;
    if !child.status.success() {
        bail!(
            "boot with {vcpus} vCPUs failed: {}",
            String::from_utf8_lossy(&child.stderr).trim()
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&child.stdout).context("child printed no JSON")?;
    let num = |p: &str| v.pointer(p).and_then(serde_json::Value::as_f64);
    let (Some(online), Some(exit), Some(rss)) = (
        num("/timings/all_online_ms"),
        num("/timings/exit_ms"),
        num("/max_rss_kib"),
    ) else {
        bail!("child JSON lacks timings");
    };
    let sum = |p: &str| {
        v.pointer(p)
            .and_then(serde_json::Value::as_object)
            .map_or(0.0, |m| {
                m.values().filter_map(serde_json::Value::as_f64).sum()
            })
    };
    Ok(Sample {
        online_ms: wall_ms - (exit - online),
        exit_ms: wall_ms,
        rss_mib: rss / 1024.0,
        exits: num("/profile/vm_exits").unwrap_or(0.0),
        hypercalls: sum("/profile/hypercalls"),
    })
}

#[derive(clap::Args, Debug)]
pub struct ScenarioBenchArgs {
    /// Runs per scenario.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// The directory of scenarios.
    #[arg(long, default_value = "scenarios")]
    pub dir: PathBuf,
}

/// `lockvmm bench scenarios`: wall time of each scenario end to end (process start to exit,
/// vmcore and report included) and how many virtual seconds it covers per wall second.
pub fn scenarios(args: &ScenarioBenchArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the lockvmm executable")?;
    let out = std::env::temp_dir().join(format!("lockvmm-bench-{}", std::process::id()));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.dir)
        .with_context(|| format!("cannot list {}", args.dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    println!("lockvmm bench scenarios: {} runs each", args.runs);
    println!(
        "| scenario | vCPUs | outcome | virtual s | wall ms (median [min–max]) | virtual/wall |"
    );
    println!("|---|---:|---|---:|---:|---:|");
    for f in files {
        let mut walls = Vec::new();
        let mut last: Option<serde_json::Value> = None;
        for _ in 0..args.runs {
            let t = Instant::now();
            let child = Command::new(&exe)
                .arg("run")
                .arg(&f)
                .args(["--json", "--out"])
                .arg(&out)
                .output()?;
            walls.push(t.elapsed().as_secs_f64() * 1e3);
            last = serde_json::from_slice(&child.stdout).ok();
        }
        let Some(v) = last else {
            bail!("{}: no JSON", f.display())
        };
        walls.sort_by(f64::total_cmp);
        let med = walls[walls.len() / 2];
        let vsec = v["vtime_ns"].as_f64().unwrap_or(0.0) / 1e9;
        let outcome = v["outcome"]["outcome"].as_str().unwrap_or("?");
        let ratio = if vsec > 0.0 {
            format!("{:.0}x", vsec / (med / 1e3))
        } else {
            "—".into()
        };
        println!(
            "| {} | {} | {outcome} | {vsec:.2} | {med:.0} [{:.0}–{:.0}] | {ratio} |",
            f.file_stem().unwrap_or_default().to_string_lossy(),
            v["vcpus"],
            walls[0],
            walls[walls.len() - 1],
        );
    }
    let _ = std::fs::remove_dir_all(&out);
    Ok(())
}
