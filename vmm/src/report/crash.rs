//! The crash-style report of a frozen machine, as data: crash's header facts, `bt` of the CPU
//! that fired and of every CPU that is not idle (as `bt -a`), the locks CPUs spin on and their
//! holders, registers that point at kernel objects, the kernel log, and a diagnosis. The same
//! facts go into `result.json`; `render` turns them into text.
use serde::{Deserialize, Serialize};

use crate::analysis::{Analysis, DeadlockKind, Findings, Incident};
use crate::state::{
    CpuBacktrace, HeldLock, LockWait, LockupEvent, LockupKind, Outcome, Regs, Splat,
};

/// A lockup detector's report, in short (every one of the run, first to last).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Detection {
    pub cpu: usize,
    pub kind: LockupKind,
    pub vtime_ns: u64,
    pub message: String,
}

/// What a report is built from besides the analysis.
pub struct ReportInput<'a> {
    /// The CPU the report is about.
    pub cpu: usize,
    /// What stopped the machine on that CPU.
    pub incident: Incident<'a>,
    /// Every CPU's backtrace, in CPU order (computed once per run).
    pub backtraces: &'a [CpuBacktrace],
    /// The panic message, if the kernel panicked.
    pub panic: Option<String>,
    /// Every lockup detection of the run.
    pub detections: Vec<Detection>,
    /// The tasks the hung-task detector reported (`task_struct` addresses).
    pub hung: Vec<u64>,
    pub kernel: String,
    pub dumpfile: Option<String>,
    /// The kernel log at the end of the run.
    pub dmesg: Vec<String>,
    /// What the guest's lockdep and `might_sleep` reported.
    pub splats: &'a [Splat],
}

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
    /// Locks whose word names an owner, with that owner.
    #[serde(default)]
    pub held: Vec<HeldLock>,
    /// The kernel's spinlocks were ticket locks (3.10 and 2.6): CPUs spin in
    /// `_raw_spin_lock*` itself, and the guest's table of held locks names the owner (a ticket
    /// word holds no CPU), where 4.4 and 6.6's queued spinlocks spin in the slow path and
    /// their word names the owner.
    #[serde(default)]
    pub ticket_spinlocks: bool,
    /// Every lockup detection of the run, first to last (the snapshot is of the first).
    #[serde(default)]
    pub detections: Vec<Detection>,
    /// `bt` of each task the hung-task detector reported (from where it went to sleep).
    #[serde(default)]
    pub hung_tasks: Vec<CpuBacktrace>,
    /// Registers of the context that spins (else the one the detector interrupted) that point
    /// at kernel objects: (register, value, name).
    #[serde(with = "crate::state::hex::labelled")]
    pub pointers: Vec<(String, u64, String)>,
    pub diagnosis: String,
    /// What the guest's lockdep and `might_sleep` reported during the run.
    #[serde(default)]
    pub splats: Vec<Splat>,
    /// The shape of the deadlock the report CPU's chain ends in, if it ends in one.
    #[serde(default)]
    pub deadlock: Option<DeadlockKind>,
    /// The kernel log from the snapshot on (`dmesg`), from the end of the run.
    pub dmesg_tail: Vec<String>,
    /// crash's header facts read from the vmcore (utsname, tasks, memory, the log's PANIC).
    #[serde(default)]
    pub header: super::header::Header,
    /// How long the freeze took, in total and per CPU (microseconds).
    pub freeze_us: u64,
    pub freeze_us_max_cpu: u64,
    pub memory_copy_us: u64,
}

impl CrashReport {
    /// Builds the report from a snapshot's analysis.
    pub fn build(a: &Analysis<'_>, input: ReportInput<'_>) -> Self {
        let ReportInput {
            cpu,
            incident,
            backtraces: all,
            panic,
            detections,
            hung,
            kernel,
            dumpfile,
            dmesg,
            splats,
        } = input;
        let locks = a.lock_waits();
        let held = a.held_locks();
        let mut backtraces: Vec<CpuBacktrace> =
            all.iter().filter(|b| b.cpu == cpu).cloned().collect();
        backtraces.extend(
            all.iter()
                .filter(|b| {
                    b.cpu != cpu
                        && (!a.is_idle(b, &locks) || held.iter().any(|h| h.holder == b.cpu))
                })
                .cloned(),
        );
        let stuck: Option<Regs> = backtraces.first().and_then(|b| a.stuck_regs(b));
        let pointers = stuck.map(|r| a.pointer_registers(&r)).unwrap_or_default();
        let findings = Findings {
            waits: &locks,
            held: &held,
            backtraces: &backtraces,
        };
        let mut diagnosis = a.diagnose(cpu, incident, &findings);
        if let Some(found) = crate::analysis::lockdep_findings(a.syms, splats) {
            diagnosis = format!("{diagnosis} {found}");
        }
        let hung_tasks = hung.iter().map(|&t| a.backtrace_of_task(t)).collect();
        let deadlock = a.deadlock_kind(cpu, &findings);
        let header = super::header::Header::build(a, cpu, &dmesg, panic.is_some());
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
            held,
            ticket_spinlocks: a.ticket_spinlocks(),
            detections,
            hung_tasks,
            pointers,
            diagnosis,
            splats: splats.to_vec(),
            deadlock,
            dmesg_tail,
            header,
            freeze_us: a.snap.freeze_us,
            freeze_us_max_cpu: a.snap.cpus.iter().map(|c| c.freeze_us).max().unwrap_or(0),
            memory_copy_us: a.snap.memory_copy_us,
        }
    }
}

/// The CPU a run's report is about: where the first lockup was detected, else where the run
/// ended (the fault, the panic, the first CPU of a stuck machine).
pub fn report_cpu(outcome: &Outcome, lockups: &[LockupEvent]) -> Option<usize> {
    if let Some(first) = lockups.first() {
        return Some(first.cpu);
    }
    match outcome {
        Outcome::Lockup { events } => events.first().map(|e| e.cpu),
        Outcome::Panic { report, .. } => Some(report.cpu),
        Outcome::Fault(r) => Some(r.cpu),
        Outcome::AllWaiting { waiting } => waiting.first().map(|w| w.cpu),
        _ => None,
    }
}
