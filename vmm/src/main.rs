//! The `lockvmm` command line. Errors become one line on stderr and an exit status:
//! 0 success, 1 the guest failed (fault, panic, lockup, stuck), 2 bad input (scenario file,
//! flags), 3 the environment or the host (no /dev/kvm, no permission, KVM refused).
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use lockvmm::{RunOptions, bench, output, report::Outcome};

#[derive(Parser)]
#[command(
    name = "lockvmm",
    version,
    about = "A KVM lab that replays Linux lockups on a tiny Rust guest kernel"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Boot the guest and run a scenario.
    Run(RunArgs),
    /// List the scenarios in a directory with their descriptions.
    List {
        #[arg(default_value = "scenarios")]
        dir: PathBuf,
    },
    /// Measure lockvmm (see `lockvmm bench boot --help`).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The scenario file (TOML).
    scenario: PathBuf,
    /// Override the scenario's number of vCPUs.
    #[arg(long)]
    vcpus: Option<usize>,
    /// Write the guest console to this file (default: <out>/console.log).
    #[arg(long)]
    log: Option<PathBuf>,
    /// Directory for the run's files (default: lockvmm-runs/<scenario name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Do not echo the guest console; print only the outcome.
    #[arg(long, short)]
    quiet: bool,
    /// Print the outcome as JSON on stdout (implies --quiet).
    #[arg(long)]
    json: bool,
    /// Boot this guest kernel ELF instead of the built-in one.
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Seconds a vCPU may run guest code without yielding before the run stops as stalled.
    #[arg(long, default_value_t = 30)]
    stall_timeout: u64,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Wall time from process start to all CPUs online and to exit, and resident memory.
    Boot(bench::BootBenchArgs),
}

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(args) => run(args, started),
        Command::List { dir } => list(&dir),
        Command::Bench(BenchCommand::Boot(args)) => match bench::boot(&args) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("lockvmm: {e:#}");
                3
            }
        },
    };
    ExitCode::from(code as u8)
}

fn run(args: RunArgs, started: Instant) -> i32 {
    let quiet = args.quiet || args.json;
    let name = args
        .scenario
        .file_stem()
        .map_or_else(|| "run".into(), |s| s.to_string_lossy().into_owned());
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("lockvmm-runs").join(&name));
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!(
            "lockvmm: cannot create the run directory {}: {e}",
            out.display()
        );
        return 3;
    }
    let console_log = args.log.clone().unwrap_or_else(|| out.join("console.log"));
    let mut opts = RunOptions::new(&args.scenario);
    opts.vcpus = args.vcpus;
    opts.console_log = Some(console_log.clone());
    opts.echo_console = !quiet;
    opts.kernel = args.kernel.clone();
    opts.stall_timeout = Duration::from_secs(args.stall_timeout.max(1));

    let (scenario, result) = match lockvmm::run_scenario(&opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lockvmm: {e}");
            return e.exit_code();
        }
    };
    // Timings in the JSON count from the start of this process's main().
    let offset_ms = (result.timings.t0 - started).as_secs_f64() * 1e3;
    let syms = &result.kernel.symbols;
    let vmcore = out.join("vmcore");
    let dumpfile = match lockvmm::vmcore::write_for_run(&vmcore, &result) {
        Ok(true) => {
            // gdb vmlinux vmcore, from the run directory.
            let _ = output::write_atomic(&out.join("vmlinux"), &result.kernel.elf);
            Some(vmcore.display().to_string())
        }
        Ok(false) => None,
        Err(e) => {
            eprintln!("lockvmm: {e}");
            None
        }
    };
    let crash = lockvmm::crashreport::for_run(&result, dumpfile);
    if let Some(c) = &crash {
        if let Err(e) = output::write_atomic(&out.join("report.txt"), c.render().as_bytes()) {
            eprintln!(
                "lockvmm: cannot write {}: {e}",
                out.join("report.txt").display()
            );
        }
    }
    let summary = serde_json::json!({
        "scenario": scenario.name(),
        "description": scenario.scenario.description,
        "kernel": result.kernel.path,
        "vcpus": result.online.len().max(opts.vcpus.unwrap_or_else(|| scenario.vcpus())),
        "cpus_online": result.online,
        "outcome": result.outcome,
        "bad_hypercalls": result.bad_hypercalls.iter().map(|(cpu, why)| serde_json::json!({"cpu": cpu, "why": why})).collect::<Vec<_>>(),
        "timings": {
            "vcpus_created_ms": offset_ms + result.timings.vcpus_created_ms,
            "all_online_ms": result.timings.all_online_ms.map(|t| offset_ms + t),
            "finished_ms": offset_ms + result.timings.finished_ms,
            "exit_ms": started.elapsed().as_secs_f64() * 1e3,
        },
        "max_rss_kib": max_rss_kib(),
        "report": crash,
        "console_log": console_log,
    });
    let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
    if let Err(e) = output::write_atomic(&out.join("result.json"), text.as_bytes()) {
        eprintln!(
            "lockvmm: cannot write {}: {e}",
            out.join("result.json").display()
        );
    }
    if args.json {
        println!("{text}");
    } else {
        let expected = opts.vcpus.unwrap_or_else(|| scenario.vcpus());
        println!(
            "lockvmm: {}/{} CPUs came online",
            result.online.len(),
            expected
        );
        for (cpu, why) in &result.bad_hypercalls {
            println!("lockvmm: refused a hypercall from CPU {cpu}: {why}");
        }
        match &crash {
            Some(c) => print!("\n{}", c.render()),
            None => print!("lockvmm: {}", result.outcome.render(syms)),
        }
        println!("lockvmm: console log: {}", console_log.display());
    }
    if matches!(result.outcome, Outcome::Shutdown { status: 0 })
        && result.online.len() < expected_cpus(&opts, &scenario)
    {
        return 1;
    }
    result.outcome.exit_code()
}

fn expected_cpus(opts: &RunOptions, s: &lockvmm::LoadedScenario) -> usize {
    opts.vcpus.unwrap_or_else(|| s.vcpus())
}

/// Peak resident memory of this process.
fn max_rss_kib() -> i64 {
    // SAFETY: getrusage writes into the zeroed struct we pass; RUSAGE_SELF is always valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
        usage.ru_maxrss
    } else {
        -1
    }
}

fn list(dir: &std::path::Path) -> i32 {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect(),
        Err(e) => {
            eprintln!("lockvmm: cannot list {}: {e}", dir.display());
            return 2;
        }
    };
    entries.sort();
    let mut status = 0;
    for path in entries {
        match lockvmm::LoadedScenario::load(&path) {
            Ok(s) => println!("{:<28} {}", path.display(), s.scenario.description),
            Err(e) => {
                eprintln!("lockvmm: {e}");
                status = 2;
            }
        }
    }
    status
}
