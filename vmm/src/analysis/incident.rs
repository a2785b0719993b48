//! What the diagnosis speaks of: the incident that stopped the machine, and the shape of the
//! deadlock a chain of waits ends in.
use crate::state::{FaultReport, LockupKind};

/// The shape of a deadlock, as `[expect] deadlock` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlockKind {
    /// CPUs wait on each other in a cycle (ABBA and longer).
    Cycle,
    /// A hardirq on the CPU that holds the lock tries to take it.
    SelfInterrupt,
    /// A softirq on the CPU that holds the lock tries to take it.
    SelfSoftirq,
    /// An NMI on the CPU that holds the lock tries to take it.
    SelfNmi,
    /// A page fault on the CPU that holds the lock leads to taking it again.
    SelfPageFault,
    /// The CPU takes a lock it already holds, in the same context.
    Recursion,
    /// The end of the chain holds the lock and runs on (busy, in user mode, …).
    HolderRunning,
}

impl DeadlockKind {
    /// The name `[expect] deadlock` and `result.json` use.
    pub fn name(self) -> &'static str {
        match self {
            DeadlockKind::Cycle => "cycle",
            DeadlockKind::SelfInterrupt => "self_interrupt",
            DeadlockKind::SelfSoftirq => "self_softirq",
            DeadlockKind::SelfNmi => "self_nmi",
            DeadlockKind::SelfPageFault => "self_page_fault",
            DeadlockKind::Recursion => "recursion",
            DeadlockKind::HolderRunning => "holder_running",
        }
    }
}

/// What stopped the machine, as the diagnosis speaks of it.
#[derive(Debug, Clone, Copy)]
pub enum Incident<'a> {
    /// A lockup detector fired on the CPU.
    Lockup(LockupKind),
    /// The CPU faulted (an oops, a triple fault, an emulation failure, a stall, …).
    Fault(&'a FaultReport),
    /// The kernel panicked with no detector report before it.
    Panic(&'a str),
    /// Every CPU waits and nothing can wake any of them.
    AllWaiting,
    /// Nothing detected anything: a snapshot at the end of the run, or one asked for.
    Undetected,
    /// The hung-task detector reported this task (`task_struct` address).
    HungTask(u64),
}
