//! Snapshots as data: every vCPU's state and all of guest memory, captured together the moment a
//! lockup detector fires, the guest panics or faults, or a scenario asks (the capture itself is in
//! `machine::capture` and `kvm::capture`).
use serde::{Deserialize, Serialize};

use super::Regs;

/// Special registers, as a report wants them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sregs {
    #[serde(with = "crate::state::hex")]
    pub cr0: u64,
    #[serde(with = "crate::state::hex")]
    pub cr2: u64,
    #[serde(with = "crate::state::hex")]
    pub cr3: u64,
    #[serde(with = "crate::state::hex")]
    pub cr4: u64,
    #[serde(with = "crate::state::hex")]
    pub efer: u64,
    #[serde(with = "crate::state::hex")]
    pub apic_base: u64,
    pub cs: u16,
    pub ss: u16,
    pub ds: u16,
    pub es: u16,
    pub fs: u16,
    pub gs: u16,
    pub tr: u16,
    #[serde(with = "crate::state::hex")]
    pub fs_base: u64,
    #[serde(with = "crate::state::hex")]
    pub gs_base: u64,
    #[serde(with = "crate::state::hex")]
    pub gdt_base: u64,
    pub gdt_limit: u16,
    #[serde(with = "crate::state::hex")]
    pub idt_base: u64,
    pub idt_limit: u16,
}

/// Pending and injected events (`KVM_GET_VCPU_EVENTS`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Events {
    pub nmi_pending: bool,
    pub nmi_injected: bool,
    pub nmi_masked: bool,
    pub irq_injected: bool,
    pub irq_vector: u8,
    pub exception_injected: bool,
    pub exception_vector: u8,
    pub interrupt_shadow: u8,
}

/// The local APIC, decoded from its register page (`KVM_GET_LAPIC`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lapic {
    pub id: u32,
    pub tpr: u32,
    pub ppr: u32,
    /// Vectors requested (IRR) and in service (ISR).
    pub irr: Vec<u8>,
    pub isr: Vec<u8>,
    pub spiv: u32,
    pub lvt_timer: u32,
    pub lvt_pmc: u32,
    pub lvt_lint0: u32,
    pub lvt_lint1: u32,
    pub lvt_error: u32,
}

/// One vCPU at the snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VcpuState {
    pub cpu: usize,
    /// False if the vCPU did not answer in time (its other fields are empty).
    pub captured: bool,
    pub regs: Regs,
    pub sregs: Sregs,
    /// DR0–DR3, DR6, DR7.
    #[serde(with = "crate::state::hex::seq")]
    pub debugregs: [u64; 6],
    pub events: Events,
    pub lapic: Lapic,
    pub mp_state: String,
    /// What the run token knew of it: offline, ready, running, or what it waits on.
    pub sched: String,
    /// Microseconds between the snapshot request and this vCPU's capture.
    pub freeze_us: u64,
}

/// The machine at one instant.
#[derive(Clone)]
pub struct Snapshot {
    /// Why it was taken (`hard lockup on CPU 51`, `panic`, …).
    pub reason: String,
    pub vtime_ns: u64,
    pub cpus: Vec<VcpuState>,
    /// All of guest RAM, from physical 0.
    pub memory: std::sync::Arc<Vec<u8>>,
    /// Names of the scenario's locks (`lab_locks[i]`).
    pub lock_names: Vec<String>,
    /// Kernel locks the scenario gave names to: (address, name).
    pub lock_aliases: Vec<(u64, String)>,
    /// Wall time the freeze took (request to the last vCPU's capture), microseconds.
    pub freeze_us: u64,
    /// Wall time the copy of guest memory took after that, microseconds.
    pub memory_copy_us: u64,
}
