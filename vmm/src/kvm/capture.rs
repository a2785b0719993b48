//! Reading a vCPU's whole state from KVM (on its own thread, as KVM's vCPU ioctls require) into
//! the plain [`VcpuState`] a snapshot keeps.
use kvm_bindings::{kvm_lapic_state, kvm_mp_state, kvm_regs};
use kvm_ioctls::VcpuFd;

use crate::state::{Events, Lapic, Regs, Sregs, VcpuState};

/// KVM's general registers with the CS and SS selectors from the special registers.
pub fn regs_from_kvm(r: &kvm_regs, cs: u64, ss: u64) -> Regs {
    Regs {
        rip: r.rip,
        rsp: r.rsp,
        rflags: r.rflags,
        rax: r.rax,
        rbx: r.rbx,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        rbp: r.rbp,
        r8: r.r8,
        r9: r.r9,
        r10: r.r10,
        r11: r.r11,
        r12: r.r12,
        r13: r.r13,
        r14: r.r14,
        r15: r.r15,
        cs,
        ss,
    }
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
        regs: regs_from_kvm(&r, u64::from(s.cs.selector), u64::from(s.ss.selector)),
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
