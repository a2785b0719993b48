//! The crash-style report of a frozen machine, as data: crash's header facts, `bt` of the CPU
//! that fired and of every CPU that is not idle (as `bt -a`), the locks CPUs spin on and their
//! holders, registers that point at kernel objects, the kernel log, and a diagnosis. The same
//! facts go into `result.json`; `render` turns them into text.
use serde::{Deserialize, Serialize};

use crate::analysis::Analysis;
use crate::state::{CpuBacktrace, LockWait, LockupKind, Outcome, Regs};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrashReport {
    /// The guest kernel ELF.
    pub kernel: String,
    /// The vmcore written for this run.
    pub dumpfile: Option<String>,
    pub cpus: usize,
    /// Virtual time of the snapshot.
    pub uptime_ns: u64,
    /// Why the snapshot was taken.
    pub reason: String,
    /// The panic message, if the kernel panicked.
    pub panic: Option<String>,
    /// The CPU the report is about (the watchdog fired there, or it faulted or panicked).
    pub cpu: usize,
    /// `bt` of that CPU, then every other CPU that is not idle.
    pub backtraces: Vec<CpuBacktrace>,
    pub locks: Vec<LockWait>,
    /// Registers of the stuck context that point at kernel objects: (register, value, name).
    pub pointers: Vec<(String, u64, String)>,
    pub diagnosis: String,
    /// The kernel log from the snapshot on (`dmesg`), from the end of the run.
    pub dmesg_tail: Vec<String>,
    /// How long the freeze took, in total and per CPU (microseconds).
    pub freeze_us: u64,
    pub freeze_us_max_cpu: u64,
    pub memory_copy_us: u64,
}

impl CrashReport {
    /// Builds the report for `cpu` from a snapshot's analysis, every CPU's backtrace (computed
    /// once per run, in CPU order), the lockup kind that fired (if a detector did), the panic
    /// message, and the kernel log at the end of the run.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        a: &Analysis<'_>,
        cpu: usize,
        all: &[CpuBacktrace],
        kind: Option<LockupKind>,
        panic: Option<String>,
        kernel: String,
        dumpfile: Option<String>,
        dmesg: Vec<String>,
    ) -> Self {
        let locks = a.lock_waits();
        let mut backtraces: Vec<CpuBacktrace> =
            all.iter().filter(|b| b.cpu == cpu).cloned().collect();
        backtraces.extend(
            all.iter()
                .filter(|b| b.cpu != cpu && !a.is_idle(b, &locks))
                .cloned(),
        );
        let stuck: Option<Regs> = backtraces
            .first()
            .and_then(|b| b.exceptions().last().map(|(_, r)| **r))
            .or(a.snap.cpus.get(cpu).map(|c| c.regs));
        let pointers = stuck.map(|r| a.pointer_registers(&r)).unwrap_or_default();
        let diagnosis = a.diagnose(cpu, kind, &locks, &backtraces);
        let from = a.snap.vtime_ns / 1_000_000_000;
        let dmesg_tail = dmesg
            .into_iter()
            .filter(|l| {
                l.trim_start_matches('[')
                    .split('.')
                    .next()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .is_some_and(|s| s >= from)
            })
            .collect();
        CrashReport {
            kernel,
            dumpfile,
            cpus: a.snap.cpus.len(),
            uptime_ns: a.snap.vtime_ns,
            reason: a.snap.reason.clone(),
            panic,
            cpu,
            backtraces,
            locks,
            pointers,
            diagnosis,
            dmesg_tail,
            freeze_us: a.snap.freeze_us,
            freeze_us_max_cpu: a.snap.cpus.iter().map(|c| c.freeze_us).max().unwrap_or(0),
            memory_copy_us: a.snap.memory_copy_us,
        }
    }
}

/// The CPU a run's report is about.
pub fn report_cpu(outcome: &Outcome) -> Option<usize> {
    match outcome {
        Outcome::Lockup { events } => events.first().map(|e| e.cpu),
        Outcome::Panic { report, .. } => Some(report.cpu),
        Outcome::Fault(r) => Some(r.cpu),
        Outcome::AllWaiting { waiting } => waiting.first().map(|w| w.cpu),
        _ => None,
    }
}
