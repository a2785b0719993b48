//! How a run ended, as data: the fault, panic or lockup that stopped it, with the state of the
//! CPU concerned, and the events on the way (lockup reports, hook points).
use serde::{Deserialize, Serialize};

use super::{BtItem, Regs};

/// Which lockup detector fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockupKind {
    /// The soft-lockup detector (the watchdog's hrtimer saw its thread starve).
    Soft,
    /// The hard-lockup detector (the PMU NMI saw the hrtimer starve).
    Hard,
    /// The hung-task detector (`khungtaskd` saw a task asleep in TASK_UNINTERRUPTIBLE).
    #[serde(rename = "hung_task")]
    HungTask,
}

impl LockupKind {
    /// "soft" or "hard", as Linux's messages say.
    pub fn name(self) -> &'static str {
        match self {
            LockupKind::Soft => "soft",
            LockupKind::Hard => "hard",
            LockupKind::HungTask => "hung_task",
        }
    }
}

impl From<lockvmm_abi::hypercall::LockupKind> for LockupKind {
    fn from(k: lockvmm_abi::hypercall::LockupKind) -> Self {
        match k {
            lockvmm_abi::hypercall::LockupKind::Soft => LockupKind::Soft,
            lockvmm_abi::hypercall::LockupKind::Hard => LockupKind::Hard,
            lockvmm_abi::hypercall::LockupKind::HungTask => LockupKind::HungTask,
        }
    }
}

impl std::fmt::Display for LockupKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// How a run ended, in the one vocabulary of `result.json`'s `class`, `[expect] outcome` and
/// the closing `lockvmm:` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeClass {
    /// The soft-lockup detector fired (whatever happened after: a panic is allowed).
    SoftLockup,
    /// The hard-lockup detector fired.
    HardLockup,
    /// The hung-task detector reported a task (and no lockup detector fired).
    HungTask,
    /// The kernel panicked with no lockup reported first.
    Panic,
    /// A kernel oops (an exception the kernel could not handle).
    Oops,
    /// The machine faulted below the kernel: a triple fault, an instruction KVM could not run,
    /// memory with nothing behind it, a vCPU that never yielded, a reset.
    Fault,
    /// Every CPU waits and nothing can wake any of them: stuck, whether or not a detector saw it.
    AllWaiting,
    /// The run reached its time limit (or powered off with a failure status) with no lockup,
    /// panic or fault.
    NoLockup,
    /// The guest powered off cleanly.
    Shutdown,
    /// lockvmm itself failed.
    HostError,
}

impl OutcomeClass {
    /// How a run with this outcome and these detector reports ended.
    pub fn of(outcome: &Outcome, lockups: &[LockupEvent]) -> Self {
        if lockups.iter().any(|e| e.kind == LockupKind::Hard) {
            return OutcomeClass::HardLockup;
        }
        if lockups.iter().any(|e| e.kind == LockupKind::Soft) {
            return OutcomeClass::SoftLockup;
        }
        if !lockups.is_empty() {
            return OutcomeClass::HungTask;
        }
        match outcome {
            Outcome::Panic { .. } => OutcomeClass::Panic,
            Outcome::Fault(r) if matches!(r.fault, FaultKind::Oops { .. }) => OutcomeClass::Oops,
            Outcome::Fault(_) => OutcomeClass::Fault,
            Outcome::AllWaiting { .. } => OutcomeClass::AllWaiting,
            Outcome::Shutdown { status: 0 } => OutcomeClass::Shutdown,
            Outcome::Shutdown { .. } | Outcome::TimeLimit { .. } | Outcome::Lockup { .. } => {
                OutcomeClass::NoLockup
            }
            // Stopped from outside (a signal): the run has no verdict of its own.
            Outcome::HostError { .. } | Outcome::Interrupted { .. } => OutcomeClass::HostError,
        }
    }

    /// The name scenario files and `result.json` use (`hard_lockup`).
    pub fn name(self) -> &'static str {
        match self {
            OutcomeClass::SoftLockup => "soft_lockup",
            OutcomeClass::HardLockup => "hard_lockup",
            OutcomeClass::HungTask => "hung_task",
            OutcomeClass::Panic => "panic",
            OutcomeClass::Oops => "oops",
            OutcomeClass::Fault => "fault",
            OutcomeClass::AllWaiting => "all_waiting",
            OutcomeClass::NoLockup => "no_lockup",
            OutcomeClass::Shutdown => "shutdown",
            OutcomeClass::HostError => "host_error",
        }
    }
}

impl std::fmt::Display for OutcomeClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// How a fault stopped the machine.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum FaultKind {
    /// The kernel hit an exception it cannot handle and reported it (an oops).
    Oops {
        vector: u64,
        name: String,
        error_code: u64,
    },
    /// KVM_EXIT_SHUTDOWN: an exception while delivering a double fault.
    TripleFault,
    /// KVM_EXIT_INTERNAL_ERROR (suberror 1 is an instruction KVM cannot emulate, e.g. SSE).
    InternalError {
        suberror: u32,
        /// The bytes at RIP (up to 15), when the emulator could not run an instruction there.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        insn: Vec<u8>,
    },
    /// The vCPU was reset (an INIT, e.g. through the local APIC's ICR): it is back in real
    /// mode at the reset vector, where this lab's kernel cannot run.
    Reset {
        #[serde(with = "crate::state::hex")]
        rip: u64,
    },
    /// KVM_EXIT_FAIL_ENTRY.
    FailEntry { reason: u64 },
    /// The guest touched physical memory with nothing behind it.
    UnbackedMemory {
        #[serde(with = "crate::state::hex")]
        gpa: u64,
        write: bool,
    },
    /// A vCPU ran guest code for this long without ever yielding (a wait loop that never waits).
    Stall { wall_ms: u64 },
    /// The guest made this many VM exits (port I/O, MMIO, MSRs, hypercalls) without virtual time
    /// advancing: a loop that exits without end but never waits (an I/O loop, a console flood,
    /// a hypercall storm).
    Runaway { exits: u64 },
    /// The kernel's soft or hard lockup detector fired on this CPU.
    Lockup { kind: LockupKind },
    /// The kernel called panic().
    Panic,
}

/// The state of the CPU that stopped the machine, decoded.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FaultReport {
    pub cpu: usize,
    pub fault: FaultKind,
    pub regs: Regs,
    #[serde(with = "crate::state::hex")]
    pub cr2: u64,
    #[serde(with = "crate::state::hex")]
    pub cr3: u64,
    /// `function+offset` of RIP, if it lies in a kernel symbol.
    pub rip_symbol: Option<String>,
    /// The function RIP is in (without offset).
    pub rip_function: Option<String>,
    /// The walk of its stack (frames, saved interrupt/exception contexts, notes).
    pub backtrace: Vec<BtItem>,
}

/// A lockup detector's report, with the state of the CPU it fired on: the registers of the
/// context the NMI or timer interrupt interrupted.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct LockupEvent {
    pub vtime_ns: u64,
    pub cpu: usize,
    /// For a hung task: the blocked task's `task_struct`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::state::hex::option"
    )]
    pub task: Option<u64>,
    pub kind: LockupKind,
    /// The kernel's message (`BUG: soft lockup - CPU#3 stuck for 23s! [hog:6885]`).
    pub message: String,
    pub report: FaultReport,
}

/// A hook point the guest passed.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct HookEvent {
    pub vtime_ns: u64,
    pub cpu: usize,
    pub hook: String,
    #[serde(with = "crate::state::hex")]
    pub arg: u64,
    #[serde(with = "crate::state::hex")]
    pub rip: u64,
    pub rip_symbol: String,
    #[serde(with = "crate::state::hex")]
    pub rflags: u64,
}

/// How a run ended.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The guest powered off with this status.
    Shutdown {
        status: u32,
    },
    Fault(FaultReport),
    Panic {
        message: String,
        report: FaultReport,
    },
    /// Every vCPU waits and nothing can wake them.
    AllWaiting {
        waiting: Vec<WaitingCpu>,
    },
    /// The kernel's lockup detectors fired (the run stops once they have reported).
    Lockup {
        events: Vec<LockupEvent>,
    },
    /// The virtual clock reached the run's limit with nothing else happening.
    TimeLimit {
        vtime_ns: u64,
    },
    /// lockvmm itself failed (a KVM call, a thread).
    HostError {
        message: String,
    },
    /// A signal (SIGINT, SIGTERM) stopped the run before it ended.
    Interrupted {
        signal: String,
    },
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct WaitingCpu {
    pub cpu: usize,
    #[serde(with = "crate::state::hex::option")]
    pub addr: Option<u64>,
    pub addr_symbol: Option<String>,
    pub rip_symbol: String,
    pub irq_enabled: bool,
}

impl FaultReport {
    /// One line: what stopped the machine, on which CPU.
    pub fn headline(&self) -> String {
        match &self.fault {
            FaultKind::Oops {
                name,
                error_code,
                vector,
            } => {
                let mut s = format!(
                    "kernel oops on CPU {}: {} (vector {}, error code {:#x}",
                    self.cpu, name, vector, error_code
                );
                if *vector == 14 {
                    s.push_str(&format!(": {}", describe_pf_error(*error_code)));
                }
                s.push(')');
                s
            }
            FaultKind::TripleFault => {
                format!("triple fault on CPU {} (KVM_EXIT_SHUTDOWN)", self.cpu)
            }
            FaultKind::InternalError { suberror, insn } => format!(
                "KVM internal error on CPU {} (suberror {suberror}{})",
                self.cpu,
                match (*suberror, is_simd(insn)) {
                    (1, true) => format!(
                        ": instruction emulation failed on an SSE/AVX instruction ({}); they cannot run in ring 0 on this KVM",
                        hex(insn)
                    ),
                    (1, false) if !insn.is_empty() => format!(
                        ": instruction emulation failed (bytes at RIP: {})",
                        hex(insn)
                    ),
                    (1, false) => ": instruction emulation failed".to_string(),
                    _ => String::new(),
                }
            ),
            FaultKind::Reset { rip } => format!(
                "CPU {} was reset (INIT): it is in real mode at {rip:#x}, the reset vector",
                self.cpu
            ),
            FaultKind::FailEntry { reason } => format!(
                "KVM could not enter CPU {} (hardware reason {:#x})",
                self.cpu, reason
            ),
            FaultKind::UnbackedMemory { gpa, write } => format!(
                "CPU {} {} guest physical {:#x}, where there is no RAM or device",
                self.cpu,
                if *write { "wrote" } else { "read" },
                gpa
            ),
            FaultKind::Lockup { kind } => format!("{kind} lockup detected on CPU {}", self.cpu),
            FaultKind::Panic => format!("panic on CPU {}", self.cpu),
            FaultKind::Runaway { exits } => format!(
                "CPU {} made {} VM exits (port I/O, MMIO, hypercalls) without virtual time advancing: a runaway loop that never waits, stopped",
                self.cpu, exits
            ),
            FaultKind::Stall { wall_ms } => format!(
                "CPU {} ran guest code for {} ms of wall time without yielding (a loop that never waits?)",
                self.cpu, wall_ms
            ),
        }
    }
}

/// The bits of a page-fault error code, as Linux prints them.
pub fn describe_pf_error(code: u64) -> String {
    let mut parts = vec![
        if code & 1 != 0 {
            "protection violation"
        } else {
            "not-present page"
        },
        if code & 2 != 0 { "write" } else { "read" },
        if code & 4 != 0 {
            "user mode"
        } else {
            "kernel mode"
        },
    ];
    if code & 16 != 0 {
        parts.push("instruction fetch");
    }
    parts.join(", ")
}

/// Whether an instruction's bytes are an SSE/AVX one: a VEX/EVEX prefix, or `0f` with an
/// SSE opcode after the optional operand-size/REP and REX prefixes.
fn is_simd(insn: &[u8]) -> bool {
    let mut i = 0;
    while i < insn.len() && matches!(insn[i], 0x66 | 0xf2 | 0xf3) {
        i += 1;
    }
    if i < insn.len() && insn[i] & 0xf0 == 0x40 {
        i += 1;
    }
    match insn.get(i) {
        Some(0xc4 | 0xc5 | 0x62) => true,
        Some(0x0f) => matches!(
            insn.get(i + 1),
            Some(0x10..=0x17 | 0x28..=0x2f | 0x50..=0x7f | 0xc2..=0xc6 | 0xd0..=0xff)
        ),
        _ => false,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_simd_bytes_are_called_simd() {
        assert!(is_simd(&[0x0f, 0x57, 0xc0])); // xorps %xmm0,%xmm0
        assert!(is_simd(&[0xf2, 0x0f, 0x10, 0x05])); // movsd
        assert!(is_simd(&[0xc5, 0xf8, 0x77])); // vzeroupper
        assert!(!is_simd(&[0x0f, 0x0b])); // ud2
        assert!(!is_simd(&[0xea, 0x5b, 0xe0, 0x00, 0xf0])); // the reset vector's far jump
        assert!(!is_simd(&[]));
    }

    #[test]
    fn a_reset_is_not_called_an_sse_failure() {
        let r = FaultReport {
            cpu: 1,
            fault: FaultKind::Reset { rip: 0xfff0 },
            regs: Regs::default(),
            cr2: 0,
            cr3: 0,
            rip_symbol: None,
            rip_function: None,
            backtrace: Vec::new(),
        };
        assert!(r.headline().contains("reset (INIT)"), "{}", r.headline());
        assert!(!r.headline().contains("SSE"));
    }
}
