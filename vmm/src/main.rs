//! The `lockvmm` command line. Errors become one line on stderr and an exit status
//! ([`ExitStatus`]): 0 success, 1 the guest failed (fault, panic, lockup, stuck), 2 bad input
//! (scenario file, flags), 3 the environment or the host (no /dev/kvm, no permission, KVM
//! refused).
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use lockvmm::RunOptions;
use lockvmm::bench;
use lockvmm::lab::progress::Progress;
use lockvmm::lab::{self, Completed, RunDir, about, suite};
use lockvmm::machine::RunLimits;
use lockvmm::process::{signals, stdout};
use lockvmm::state::ExitStatus;
use lockvmm::state::text::escape_line;

#[derive(Parser)]
#[command(
    name = "lockvmm",
    version = env!("CARGO_PKG_VERSION"),
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
    /// Inspect a saved vmcore like crash: `bt -a`, `regs 1`, `struct rq -o`, … (interactive
    /// without a command).
    Inspect {
        /// The vmcore a run left (lockvmm-runs/<scenario>/vmcore).
        vmcore: PathBuf,
        /// The guest kernel ELF (default: vmlinux beside the vmcore).
        #[arg(long)]
        kernel: Option<PathBuf>,
        /// A command to run instead of the prompt.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Measure lockvmm (see `lockvmm bench boot --help`).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Run scenarios as a test suite, each in its own process: PASS/FAIL/SKIP lines, JUnit, TAP.
    /// Exit 0 when all pass, 1 when one fails, 77 when skipped for want of /dev/kvm.
    Test(suite::TestArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff; `lockvmm man | man -l -`).
    Man,
    /// Run a scenario's workload under many schedules; find those that fail.
    Explore(lockvmm::explore::cli::ExploreArgs),
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
    /// Also freeze the machine for a report and vmcore at this virtual time (seconds), whether
    /// or not anything is detected.
    #[arg(long, value_name = "SECONDS")]
    snapshot_at: Option<f64>,
    /// Run the scenario N times and check that every run gives the same report.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    repeat: u16,
    /// VM exits the guest may make without virtual time advancing (1 ms) before the run stops
    /// as a runaway (an I/O loop, a console flood, a hypercall storm).
    #[arg(long, default_value_t = RunLimits::default().max_exits_without_progress, value_parser = clap::value_parser!(u64).range(1..))]
    runaway_exits: u64,
    /// Bytes of guest console kept (terminal, console log, vmcore); the rest is dropped and
    /// counted.
    #[arg(long, default_value_t = RunLimits::default().console_bytes)]
    console_limit: u64,
    /// Count the guest's instructions into result.json's profile (host perf: the PMU's
    /// guest-mode instructions, or KVM's emulated-instruction tracepoint; costs host CPU).
    #[arg(long)]
    count_instructions: bool,
}

/// Parses the command line. The long `--version` (the embedded guest's banner, build ID and
/// a digest of its image: about 7 ms of scanning 2.5 MB) is built only when it is asked for,
/// not at the start of every run.
fn parse_cli() -> Cli {
    let asks_version = std::env::args_os()
        .skip(1)
        .any(|a| a == "--version" || a == "-V");
    let mut cmd = Cli::command();
    if asks_version {
        cmd = cmd.version(about::version());
    }
    Cli::from_arg_matches(&cmd.get_matches()).unwrap_or_else(|e| e.exit())
}

/// A run could not write all of its files.
static OUTPUT_FAILED: AtomicBool = AtomicBool::new(false);

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = parse_cli();
    // A reader that stops reading ends the output quietly; a full disk is one line and status 3.
    let code = stdout::guard(|| command(cli, started))
        .unwrap_or_else(|| ExitStatus::from_code(stdout::status_hint()));
    // A run whose files (or console log) could not all be written failed for the environment,
    // whatever its guest did.
    let code = if OUTPUT_FAILED.load(Ordering::Acquire) {
        ExitStatus::Environment
    } else {
        code
    };
    let code = match signals::received() {
        Some(sig) => {
            stdout::eprint_line(&format!(
                "lockvmm: interrupted by {}: the run was stopped; what was complete is written",
                signals::name(sig)
            ));
            ExitStatus::from_signal(sig)
        }
        None => code,
    };
    let code = match stdout::finish() {
        Some(e) => {
            stdout::eprint_line(&format!("lockvmm: cannot write to standard output: {e}"));
            ExitStatus::Environment
        }
        None => code,
    };
    code.into()
}

fn command(cli: Cli, started: Instant) -> ExitStatus {
    match cli.command {
        Command::Run(args) => run(args, started),
        Command::Explore(args) => lockvmm::explore::cli::command(&args),
        Command::List { dir } => list(&dir),
        Command::Inspect {
            vmcore,
            kernel,
            command,
        } => match lockvmm::inspect::Inspector::open(&vmcore, kernel.as_deref()) {
            Ok(insp) => {
                for w in &insp.warnings {
                    stdout::eprint_line(&format!("lockvmm: warning: {w}"));
                }
                lockvmm::inspect::run(&insp, &command)
            }
            Err(e) => {
                eprintln!("lockvmm: {e}");
                ExitStatus::BadInput
            }
        },
        Command::Bench(cmd) => match bench::run(cmd) {
            Ok(()) => ExitStatus::Success,
            Err(e) => {
                eprintln!("lockvmm: {e:#}");
                ExitStatus::Environment
            }
        },
        Command::Test(args) => {
            if let Err(e) = signals::install() {
                eprintln!("lockvmm: cannot install the SIGINT/SIGTERM handler: {e}");
                return ExitStatus::Environment;
            }
            match std::env::current_exe() {
                Ok(exe) => suite::run(&args, &exe),
                Err(e) => {
                    eprintln!("lockvmm: cannot find the lockvmm executable: {e}");
                    ExitStatus::Environment
                }
            }
        }
        Command::Completions { shell } => {
            stdout::write(&about::completions(Cli::command(), shell));
            ExitStatus::Success
        }
        Command::Man => match about::man(Cli::command()) {
            Ok(page) => {
                stdout::write(&page);
                ExitStatus::Success
            }
            Err(e) => {
                eprintln!("lockvmm: {e}");
                ExitStatus::Environment
            }
        },
    }
}

fn run(args: RunArgs, started: Instant) -> ExitStatus {
    if args.scenario.is_dir() {
        let d = args.scenario.display();
        eprintln!("lockvmm: {d} is a directory: `lockvmm test {d}` runs every scenario in it");
        return ExitStatus::BadInput;
    }
    let quiet = args.quiet || args.json || args.repeat > 1;
    let name = args
        .scenario
        .file_stem()
        .map_or_else(|| "run".into(), |s| s.to_string_lossy().into_owned());
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("lockvmm-runs").join(&name));
    let mut opts = RunOptions::new(&args.scenario);
    opts.vcpus = args.vcpus;
    opts.echo_console = !quiet;
    opts.kernel = args.kernel.clone();
    opts.stall_timeout = Duration::from_secs(args.stall_timeout.max(1));
    if let Some(t) = args.snapshot_at {
        if !(t.is_finite() && t >= 0.0) {
            eprintln!("lockvmm: --snapshot-at {t}: a time in virtual seconds, 0 or more");
            return ExitStatus::BadInput;
        }
        opts.snapshot_at = Some((t * 1e9) as u64);
    }
    opts.count_instructions = args.count_instructions;
    opts.limits = RunLimits {
        max_exits_without_progress: args.runaway_exits,
        console_bytes: args.console_limit,
    };
    if let Err(e) = signals::install() {
        eprintln!("lockvmm: cannot install the SIGINT/SIGTERM handler: {e}");
        return ExitStatus::Environment;
    }
    // On a terminal, a long run shows where it is (never in a pipe, with --json or -q).
    let _progress = Progress::start(
        !(args.quiet || args.json) && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );
    if args.repeat > 1 {
        return lab::repeat::repeat(usize::from(args.repeat), args.json, &out, |dir| {
            run_once(&args, &mut opts.clone(), dir, started)
        });
    }
    match run_once(&args, &mut opts, &out, started) {
        Ok(done) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&done.summary).unwrap_or_default()
                );
            } else {
                print_outcome(&done, args.quiet);
            }
            done.exit_status()
        }
        Err(code) => code,
    }
}

/// One run into `out`; `Err` carries the exit status after a one-line error.
fn run_once(
    args: &RunArgs,
    opts: &mut RunOptions,
    out: &Path,
    started: Instant,
) -> Result<Completed, ExitStatus> {
    let console_log = args.log.clone().unwrap_or_else(|| out.join("console.log"));
    opts.console_log = Some(console_log.clone());
    // Bad input and a missing KVM are refused before the run directory is touched.
    let prepared = lab::prepare(opts).map_err(|e| {
        eprintln!("lockvmm: {e}");
        e.exit_status()
    })?;
    // The run owns `out`: locked against a concurrent run, cleared of an earlier run's files.
    let dir = RunDir::claim(out).map_err(|e| {
        eprintln!("lockvmm: {e}");
        ExitStatus::Environment
    })?;
    let (scenario, result) = match prepared.run() {
        Ok(r) => r,
        Err(e) => {
            dir.abandon();
            eprintln!("lockvmm: {e}");
            return Err(e.exit_status());
        }
    };
    let vcpus = opts.vcpus.unwrap_or_else(|| scenario.vcpus());
    let mut done = lab::complete(&scenario, &result, vcpus, out, &console_log, started);
    if let Some(e) = &result.console_log_error {
        done.warnings.push(format!(
            "cannot write the console log {}: {e}",
            console_log.display()
        ));
    }
    for w in &done.warnings {
        eprintln!("lockvmm: {w}");
    }
    // The files are written: if printing the outcome fails now, exit as the run ended (or as
    // an environment failure when a file could not be written).
    let status = if done.warnings.is_empty() {
        done.exit_status()
    } else {
        OUTPUT_FAILED.store(true, Ordering::Release);
        ExitStatus::Environment
    };
    stdout::set_status_hint(status.code());
    Ok(done)
}

/// What `lockvmm run` prints at the end: with `quiet`, only the outcome line and the failed
/// expectations; otherwise the CPUs, the report, every expectation, the files, and the outcome.
fn print_outcome(done: &Completed, quiet: bool) {
    let s = &done.summary;
    let outcome = format!(
        "lockvmm: {}",
        lockvmm::report::one_line(&s.outcome, &s.lockups)
    );
    if quiet {
        println!("{outcome}");
        for v in done.failed_expectations() {
            print_verdict(v);
        }
        return;
    }
    println!(
        "lockvmm: {}/{} CPUs came online",
        s.cpus_online.len(),
        s.vcpus
    );
    for (cpu, why) in &s.bad_hypercalls {
        println!("lockvmm: refused a hypercall from CPU {cpu}: {why}");
    }
    match &done.report {
        Some(c) => print!("\n{}", c.render()),
        None => {
            print!("lockvmm: {}", s.outcome.render());
            // Without a report (no snapshot), the splats are listed here.
            for l in lockvmm::report::splat_lines(&s.splats) {
                println!("lockvmm: lockdep: {l}");
            }
        }
    }
    if !s.expectations.is_empty() {
        println!();
        s.expectations.iter().for_each(print_verdict);
    }
    if let Some(v) = &s.vmcore {
        println!(
            "lockvmm: vmcore: {v} (gdb {} {v}, or lockvmm inspect {v})",
            Path::new(v).with_file_name("vmlinux").display()
        );
    }
    println!("lockvmm: console log: {}", s.console_log);
    println!("{outcome}");
}

fn print_verdict(v: &lockvmm::scenario::expect::Verdict) {
    let mark = if v.ok { "ok  " } else { "FAIL" };
    println!(
        "lockvmm: expect {mark} {:<12} expected {:<32} observed {}",
        v.what, v.expected, v.observed
    );
}

fn list(dir: &std::path::Path) -> ExitStatus {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect(),
        Err(e) => {
            eprintln!("lockvmm: cannot list {}: {e}", dir.display());
            return ExitStatus::BadInput;
        }
    };
    entries.sort();
    let width = entries
        .iter()
        .map(|p| p.display().to_string().len())
        .max()
        .unwrap_or(0);
    let mut status = ExitStatus::Success;
    for path in entries {
        match lockvmm::LoadedScenario::load(&path) {
            Ok(s) => println!(
                "{:<width$}  {}",
                path.display().to_string(),
                escape_line(&s.scenario.description)
            ),
            Err(e) => {
                eprintln!("lockvmm: {e}");
                status = ExitStatus::BadInput;
            }
        }
    }
    status
}
