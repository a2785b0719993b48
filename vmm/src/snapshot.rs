//! Snapshots: every vCPU's state and all of guest memory, captured together the moment a lockup
//! detector fires, the guest panics or faults, or a scenario asks.
//!
//! The run token means only one vCPU is ever inside `KVM_RUN`; the snapshot is taken from that
//! vCPU's thread while every other vCPU is parked, so registers and memory are one consistent
//! instant. KVM's vCPU ioctls belong to each vCPU's own thread, so parked threads are woken to
//! record their own state (`sched::Grant::Capture`), and the requester waits for all of them,
//! with a bound.
use kvm_bindings::{kvm_lapic_state, kvm_mp_state};
use kvm_ioctls::VcpuFd;
use serde::{Deserialize, Serialize};

use crate::report::Regs;

/// Special registers, as a report wants them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sregs {
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub apic_base: u64,
    pub cs: u16,
    pub ss: u16,
    pub ds: u16,
    pub es: u16,
    pub fs: u16,
    pub gs: u16,
    pub tr: u16,
    pub fs_base: u64,
    pub gs_base: u64,
    pub gdt_base: u64,
    pub gdt_limit: u16,
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
    pub debugregs: [u64; 6],
    pub events: Events,
    pub lapic: Lapic,
    pub mp_state: String,
    /// What the run token knew of it: offline, ready, running, or what it waits on.
    pub sched: String,
    /// Microseconds between the snapshot request and this vCPU's capture.
    pub freeze_us: u64,
}

fn reg32(page: &kvm_lapic_state, off: usize) -> u32 {
    let b = |i: usize| page.regs[off + i] as u8;
    u32::from_le_bytes([b(0), b(1), b(2), b(3)])
}

/// The vectors set in a 256-bit APIC bitmap (8 registers, 16 bytes apart).
fn vectors(page: &kvm_lapic_state, base: usize) -> Vec<u8> {
    (0..8u32)
        .flat_map(|i| {
            let word = reg32(page, base + i as usize * 0x10);
            (0..32u32)
                .filter(move |b| word & (1 << b) != 0)
                .map(move |b| (i * 32 + b) as u8)
        })
        .collect()
}

fn decode_lapic(page: &kvm_lapic_state) -> Lapic {
    Lapic {
        id: reg32(page, 0x20) >> 24,
        tpr: reg32(page, 0x80),
        ppr: reg32(page, 0xa0),
        irr: vectors(page, 0x200),
        isr: vectors(page, 0x100),
        spiv: reg32(page, 0xf0),
        lvt_timer: reg32(page, 0x320),
        lvt_pmc: reg32(page, 0x340),
        lvt_lint0: reg32(page, 0x350),
        lvt_lint1: reg32(page, 0x360),
        lvt_error: reg32(page, 0x370),
    }
}

fn mp_state_name(s: kvm_mp_state) -> String {
    match s.mp_state {
        0 => "RUNNABLE",
        1 => "UNINITIALIZED",
        2 => "INIT_RECEIVED",
        3 => "HALTED",
        4 => "SIPI_RECEIVED",
        _ => "OTHER",
    }
    .to_string()
}

/// Reads everything KVM knows about this vCPU (on its own thread).
pub fn capture(vcpu: &VcpuFd, cpu: usize) -> Result<VcpuState, kvm_ioctls::Error> {
    let r = vcpu.get_regs()?;
    let s = vcpu.get_sregs()?;
    let d = vcpu.get_debug_regs()?;
    let e = vcpu.get_vcpu_events()?;
    let lapic = vcpu.get_lapic()?;
    let mp = vcpu.get_mp_state()?;
    Ok(VcpuState {
        cpu,
        captured: true,
        regs: Regs::from_kvm(&r, u64::from(s.cs.selector), u64::from(s.ss.selector)),
        sregs: Sregs {
            cr0: s.cr0,
            cr2: s.cr2,
            cr3: s.cr3,
            cr4: s.cr4,
            efer: s.efer,
            apic_base: s.apic_base,
            cs: s.cs.selector,
            ss: s.ss.selector,
            ds: s.ds.selector,
            es: s.es.selector,
            fs: s.fs.selector,
            gs: s.gs.selector,
            tr: s.tr.selector,
            fs_base: s.fs.base,
            gs_base: s.gs.base,
            gdt_base: s.gdt.base,
            gdt_limit: s.gdt.limit,
            idt_base: s.idt.base,
            idt_limit: s.idt.limit,
        },
        debugregs: [d.db[0], d.db[1], d.db[2], d.db[3], d.dr6, d.dr7],
        events: Events {
            nmi_pending: e.nmi.pending != 0,
            nmi_injected: e.nmi.injected != 0,
            nmi_masked: e.nmi.masked != 0,
            irq_injected: e.interrupt.injected != 0,
            irq_vector: e.interrupt.nr,
            exception_injected: e.exception.injected != 0,
            exception_vector: e.exception.nr,
            interrupt_shadow: e.interrupt.shadow,
        },
        lapic: decode_lapic(&lapic),
        mp_state: mp_state_name(mp),
        sched: String::new(),
        freeze_us: 0,
    })
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
    /// Wall time the freeze took (request to the last vCPU's capture), microseconds.
    pub freeze_us: u64,
    /// Wall time the copy of guest memory took after that, microseconds.
    pub memory_copy_us: u64,
}
