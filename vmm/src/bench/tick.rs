//! `lockvmm bench tick`: what one timer tick of a busy CPU costs the host, and `lockvmm bench`
//! (`all`): every measurement in one run.
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

use super::qemu::{QemuBenchArgs, qemu, qemu_installed};
use super::{BootBenchArgs, ScenarioBenchArgs, boot, scenarios};

#[derive(clap::Args, Debug)]
pub struct TickBenchArgs {
    /// Runs.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// A scenario in which every CPU is busy (runs a hog) until the end.
    #[arg(long, default_value = "scenarios/hog_all_cpus.toml")]
    pub scenario: PathBuf,
}

/// Wall time of the run phase (every CPU online → the machine stopped, from the run's profile)
/// divided by the ticks it delivered: the timer interrupts the clock delivered (the profile's
/// `timer_interrupts`; an idle CPU does not tick, so CPUs × HZ × virtual seconds would count
/// `hog_all_cpus`'s first 8.5 idle seconds too). Busy CPUs tick; the detectors' own work rides
/// on those ticks, so this is the cost of a tick as scenarios see it. Guest instructions per
/// tick come from one more run with `--count-instructions`: all of its instructions (the
/// boot's and the reports' included, a few percent) divided by the same ticks.
pub fn tick(args: &TickBenchArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the lockvmm executable")?;
    let out = std::env::temp_dir().join(format!("lockvmm-bench-tick-{}", std::process::id()));
    let mut per_tick = Vec::with_capacity(args.runs);
    let mut exits_per_tick = 0.0;
    let mut ticks = 1.0;
    for _ in 0..args.runs {
        let child = Command::new(&exe)
            .arg("run")
            .arg(&args.scenario)
            .args(["--json", "--out"])
            .arg(&out)
            .output()
            .context("cannot start lockvmm")?;
        let v: serde_json::Value =
            serde_json::from_slice(&child.stdout).context("child printed no JSON")?;
        let num = |p: &str| v.pointer(p).and_then(serde_json::Value::as_f64);
        let (Some(run_ms), Some(delivered), Some(exits)) = (
            num("/profile/host_ms/run"),
            num("/profile/timer_interrupts"),
            num("/profile/vm_exits"),
        ) else {
            bail!(
                "{}: the run's JSON lacks a profile",
                args.scenario.display()
            );
        };
        if delivered < 1.0 {
            bail!(
                "{}: no CPU ticked (no busy CPU, or no virtual time passed)",
                args.scenario.display()
            );
        }
        ticks = delivered;
        per_tick.push(run_ms * 1e3 / ticks);
        exits_per_tick = exits / ticks;
    }
    per_tick.sort_by(f64::total_cmp);
    println!(
        "lockvmm bench tick: {} runs of {}",
        args.runs,
        args.scenario.display()
    );
    // One more run, counted (the counter slows the emulator, so the timed runs are not).
    let insns = super::counted_run(&exe, &[&args.scenario.to_string_lossy()], &out)
        .map_or_else(|| "—".into(), |n| format!("{:.0}", n as f64 / ticks));
    println!(
        "| host µs per tick per busy CPU (median [min–max]) | VM exits per tick | guest instructions per tick |"
    );
    println!("|---:|---:|---:|");
    println!(
        "| {:.0} [{:.0}–{:.0}] | {exits_per_tick:.2} | {insns} |",
        per_tick[per_tick.len() / 2],
        per_tick[0],
        per_tick[per_tick.len() - 1]
    );
    let _ = std::fs::remove_dir_all(&out);
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct AllBenchArgs {
    /// Runs of each measurement.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

/// Boot for 1/8/64/128/255 vCPUs, the tick, the QEMU comparison (when QEMU is installed) and
/// every scenario, in one run.
pub fn all(args: &AllBenchArgs) -> anyhow::Result<()> {
    boot(&BootBenchArgs {
        runs: args.runs,
        vcpus: vec![1, 8, 64, 128, 255],
        scenario: "scenarios/boot.toml".into(),
    })?;
    println!();
    tick(&TickBenchArgs {
        runs: args.runs,
        scenario: "scenarios/hog_all_cpus.toml".into(),
    })?;
    let q = QemuBenchArgs {
        pairs: args.runs,
        vcpus: 64,
        qemu: "qemu-system-x86_64".into(),
    };
    println!();
    if qemu_installed(&q.qemu) {
        qemu(&q)?;
    } else {
        println!(
            "lockvmm bench qemu: skipped ({} is not installed)",
            q.qemu.display()
        );
    }
    for dir in ["scenarios", "examples"] {
        println!();
        scenarios(&ScenarioBenchArgs {
            runs: args.runs,
            dir: dir.into(),
        })?;
    }
    Ok(())
}
