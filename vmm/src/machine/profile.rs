//! The run's profile: VM exits by reason and hypercalls by kind, counted as they happen, so a
//! slowdown shows in `result.json` without a profiler (the host phases' times are added by
//! `lab::finish`).
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use lockvmm_abi::Hypercall;

use super::insn_count::GuestInstructions;
use serde::{Deserialize, Serialize};

/// Why the guest left `KVM_RUN`.
#[derive(Debug, Clone, Copy)]
pub enum ExitReason {
    /// A byte to or from the UART's ports.
    Serial,
    Hypercall,
    /// Port I/O to nothing.
    OtherIo,
    Mmio,
    MsrRead,
    MsrWrite,
    Halt,
    /// A kick or a signal interrupted `KVM_RUN`.
    Interrupted,
    /// Anything that ends the run (a failed entry, a triple fault, an error).
    Failure,
}

impl ExitReason {
    const ALL: [ExitReason; 9] = [
        ExitReason::Serial,
        ExitReason::Hypercall,
        ExitReason::OtherIo,
        ExitReason::Mmio,
        ExitReason::MsrRead,
        ExitReason::MsrWrite,
        ExitReason::Halt,
        ExitReason::Interrupted,
        ExitReason::Failure,
    ];

    fn name(self) -> &'static str {
        match self {
            ExitReason::Serial => "serial_io",
            ExitReason::Hypercall => "hypercall",
            ExitReason::OtherIo => "other_io",
            ExitReason::Mmio => "mmio",
            ExitReason::MsrRead => "rdmsr",
            ExitReason::MsrWrite => "wrmsr",
            ExitReason::Halt => "hlt",
            ExitReason::Interrupted => "interrupted",
            ExitReason::Failure => "failure",
        }
    }
}

/// Counters the vCPU threads bump (relaxed: each is read once, after every thread ended).
#[derive(Default)]
pub struct ExitCounters {
    exits: [AtomicU64; ExitReason::ALL.len()],
    /// By hypercall number; the last slot counts unknown numbers.
    hypercalls: [AtomicU64; Hypercall::ALL.len() + 1],
    /// Timer interrupts the clock delivered.
    timer_interrupts: AtomicU64,
}

impl ExitCounters {
    /// The clock delivered a timer interrupt (`LOCAL_TIMER_VECTOR`) to a CPU.
    pub fn timer_interrupt(&self) {
        self.timer_interrupts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn exit(&self, reason: ExitReason) {
        self.exits[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn hypercall(&self, nr: u32) {
        let slot = Hypercall::ALL
            .iter()
            .position(|h| *h as u32 == nr)
            .unwrap_or(Hypercall::ALL.len());
        self.hypercalls[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts, without the zero ones.
    pub fn profile(&self) -> RunProfile {
        let exits: BTreeMap<String, u64> = ExitReason::ALL
            .iter()
            .map(|r| {
                (
                    r.name().to_string(),
                    self.exits[*r as usize].load(Ordering::Relaxed),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        let hypercalls = self
            .hypercalls
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let name = Hypercall::ALL
                    .get(i)
                    .map_or_else(|| "unknown".to_string(), |h| format!("{h:?}"));
                (name, n.load(Ordering::Relaxed))
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        RunProfile {
            vm_exits: exits.values().sum(),
            exits,
            hypercalls,
            timer_interrupts: self.timer_interrupts.load(Ordering::Relaxed),
            guest_instructions: None,
            guest_instructions_counted_by: None,
            host_ms: BTreeMap::new(),
        }
    }
}

/// `result.json`'s `profile`: where a run's time went.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunProfile {
    /// Every VM exit of the run.
    pub vm_exits: u64,
    /// VM exits by reason (`serial_io`, `hypercall`, `rdmsr`, `wrmsr`, `interrupted`, …).
    pub exits: BTreeMap<String, u64>,
    /// Hypercalls by kind (`Wait`, `Hook`, `ConsoleWrite`, …).
    pub hypercalls: BTreeMap<String, u64>,
    /// Timer interrupts the virtual clock delivered, all CPUs: the ticks the guest handled
    /// (a CPU that already had one pending takes the two as one). What a tick costs is the
    /// run's time over these, not over CPUs × HZ × virtual seconds: an idle CPU does not tick.
    #[serde(default)]
    pub timer_interrupts: u64,
    /// The guest's instructions, counted by the host's perf with `--count-instructions`
    /// (`null` otherwise, or when no counter could be opened).
    pub guest_instructions: Option<u64>,
    /// What counted them: `instructions:G` (the PMU, in guest mode) or `kvm:kvm_emulate_insn`
    /// (every instruction KVM emulated: all of ring 0 on a KVM that emulates it); or why none
    /// could be opened. Absent without `--count-instructions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_instructions_counted_by: Option<String>,
    /// Wall time of each host phase, milliseconds: `prepare` (scenario, kernel, KVM checks),
    /// `create` (VM and vCPUs), `boot` (to every CPU online), `run` (to the end), `freeze` and
    /// `memory_copy` (the snapshot), `analysis`, `vmcore`, `files` (report, result).
    pub host_ms: BTreeMap<String, f64>,
}

impl RunProfile {
    /// Records what `insn_count::counted` measured (nothing when counting was not asked for).
    pub fn set_guest_instructions(&mut self, insns: Option<GuestInstructions>) {
        if let Some(g) = insns {
            self.guest_instructions = g.count;
            self.guest_instructions_counted_by = Some(g.counted_by);
        }
    }
}
