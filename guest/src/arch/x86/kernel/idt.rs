//! The interrupt descriptor table (Linux's `arch/x86/kernel/idt.c`).
use core::arch::asm;

use super::cpu::common::{__KERNEL_CS, IST_DB, IST_DF, IST_MCE, IST_NMI};
use lockvmm_abi::vector::{LOCAL_TIMER_VECTOR, RESCHEDULE_VECTOR};

use crate::arch::x86::entry::entry_64 as e;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct GateDesc {
    offset_low: u16,
    segment: u16,
    ist: u8,
    type_attr: u8,
    offset_middle: u16,
    offset_high: u32,
    reserved: u32,
}

const GATE_INTERRUPT: u8 = 0x8e;
const EMPTY: GateDesc = GateDesc {
    offset_low: 0,
    segment: 0,
    ist: 0,
    type_attr: 0,
    offset_middle: 0,
    offset_high: 0,
    reserved: 0,
};

/// The IDT all CPUs share (Linux's `idt_table`).
#[unsafe(no_mangle)]
pub static mut idt_table: [GateDesc; 256] = [EMPTY; 256];

#[repr(C, packed)]
struct DescPtr {
    limit: u16,
    base: u64,
}

fn set_gate(vector: usize, handler: unsafe extern "C" fn(), ist: u8) {
    let addr = handler as *const () as u64;
    set_gate_addr(vector, addr, ist);
}

fn set_gate_addr(vector: usize, addr: u64, ist: u8) {
    let gate = GateDesc {
        offset_low: addr as u16,
        segment: __KERNEL_CS,
        ist,
        type_attr: GATE_INTERRUPT,
        offset_middle: (addr >> 16) as u16,
        offset_high: (addr >> 32) as u32,
        reserved: 0,
    };
    // SAFETY: only the boot CPU writes the table, in `idt_setup`, before any CPU loads it.
    unsafe { (*core::ptr::addr_of_mut!(idt_table))[vector] = gate };
}

/// Fills the IDT. Runs once, on the boot CPU.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn idt_setup_traps() {
    let traps: [(usize, unsafe extern "C" fn(), u8); 20] = [
        (0, e::divide_error, 0),
        (1, e::debug, IST_DB),
        (2, e::nmi, IST_NMI),
        (3, e::int3, 0),
        (4, e::overflow, 0),
        (5, e::bounds, 0),
        (6, e::invalid_op, 0),
        (7, e::device_not_available, 0),
        (8, e::double_fault, IST_DF),
        (9, e::coprocessor_segment_overrun, 0),
        (10, e::invalid_TSS, 0),
        (11, e::segment_not_present, 0),
        (12, e::stack_segment, 0),
        (13, e::general_protection, 0),
        (14, e::page_fault, 0),
        (15, e::spurious_interrupt_bug, 0),
        (16, e::coprocessor_error, 0),
        (17, e::alignment_check, 0),
        (18, e::machine_check, IST_MCE),
        (19, e::simd_coprocessor_error, 0),
    ];
    for v in 20..32 {
        set_gate(v, e::reserved_exception, 0);
    }
    for (vector, handler, ist) in traps {
        set_gate(vector, handler, ist);
    }
    set_irq_gates(e::irq_entries_start as *const () as u64);
    set_gate(usize::from(LOCAL_TIMER_VECTOR), e::apic_timer_interrupt, 0);
    set_gate(usize::from(RESCHEDULE_VECTOR), e::reschedule_interrupt, 0);
}

/// Vectors 32–255 to their `irq_entries_start` stubs (Linux's `idt_setup_apic_and_irq_gates`).
/// The stubs are `IRQ_STUB_SIZE` apart, so while they stay in one 64 KiB page only the
/// gate's low offset changes: one add and two stores a vector instead of splitting each
/// address anew (224 vectors, every instruction emulated here).
fn set_irq_gates(base: u64) {
    let span = 224 * e::IRQ_STUB_SIZE;
    if (base & 0xffff) + span > 0x1_0000 {
        for v in 32..256 {
            set_gate_addr(v, base + (v as u64 - 32) * e::IRQ_STUB_SIZE, 0);
        }
        return;
    }
    set_gate_addr(32, base, 0);
    // SAFETY: as `set_gate_addr`: only the boot CPU writes the table, before any CPU loads it.
    let table = unsafe { &mut *core::ptr::addr_of_mut!(idt_table) };
    let mut gate = table[32];
    for slot in &mut table[33..] {
        gate.offset_low += e::IRQ_STUB_SIZE as u16;
        *slot = gate;
    }
}

/// Loads the shared IDT on this CPU.
pub fn load_idt() {
    let ptr = DescPtr {
        limit: (core::mem::size_of::<[GateDesc; 256]>() - 1) as u16,
        base: core::ptr::addr_of!(idt_table) as u64,
    };
    // SAFETY: the table is fully initialised by `idt_setup_traps` before any CPU loads it.
    unsafe { asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack, preserves_flags)) };
}

/// Loads an empty IDT, so the next exception escalates to a triple fault (a lab op).
pub fn load_empty_idt() {
    let ptr = DescPtr { limit: 0, base: 0 };
    // SAFETY: deliberately breaks exception delivery on this CPU; only the triple-fault lab op
    // calls this, and it never returns to normal execution.
    unsafe { asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack, preserves_flags)) };
}
