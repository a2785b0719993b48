//! Interrupt handlers (Linux's `arch/x86/kernel/apic/apic.c`, `irq.c`, `smp.c`) and the
//! preemption check on the way out (`retint_kernel`).
use core::sync::atomic::{AtomicU64, Ordering};

use lockvmm_abi::eflags::X86_EFLAGS_IF;
use lockvmm_abi::{NR_CPUS, PtRegs};

use crate::arch::x86::kernel::apic::apic::ack_APIC_irq;
use crate::arch::x86::percpu::{smp_processor_id, this_cpu_ptr};
use crate::arch::x86::preempt::preempt_count;
use crate::kernel::sched::core::{need_resched, preempt_schedule_irq, scheduler_ipi};
use crate::kernel::softirq::{irq_enter, irq_exit};
use crate::kernel::trace::events::{trace_irq_handler_entry, trace_irq_handler_exit};
use lockvmm_abi::vector::{LOCAL_TIMER_VECTOR, RESCHEDULE_VECTOR};

/// Per-CPU `irq_regs`: the registers of the context the current interrupt interrupted.
#[allow(clippy::declare_interior_mutable_const)]
const REGS_INIT: AtomicU64 = AtomicU64::new(0);
#[unsafe(no_mangle)]
pub static irq_regs: [AtomicU64; NR_CPUS] = [REGS_INIT; NR_CPUS];

/// Records `regs` as the interrupted context; returns the previous one.
pub fn set_irq_regs(regs: &PtRegs) -> u64 {
    this_cpu_ptr(&irq_regs).swap(regs as *const PtRegs as u64, Ordering::Relaxed)
}

pub fn restore_irq_regs(old: u64) {
    this_cpu_ptr(&irq_regs).store(old, Ordering::Relaxed);
}

/// `get_irq_regs()`.
pub fn get_irq_regs() -> Option<&'static PtRegs> {
    let p = this_cpu_ptr(&irq_regs).load(Ordering::Relaxed);
    // SAFETY: set by the interrupt entry to its own pt_regs, valid while that interrupt runs.
    (p != 0).then(|| unsafe { &*(p as *const PtRegs) })
}

/// LOCAL_TIMER_VECTOR: the clockevent fired.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn smp_apic_timer_interrupt(regs: &mut PtRegs) {
    let old = set_irq_regs(regs);
    ack_APIC_irq();
    irq_enter();
    trace_irq_handler_entry(LOCAL_TIMER_VECTOR);
    local_apic_timer_interrupt();
    trace_irq_handler_exit(LOCAL_TIMER_VECTOR);
    irq_exit();
    restore_irq_regs(old);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn local_apic_timer_interrupt() {
    keep_frame!(crate::kernel::time::hrtimer::hrtimer_interrupt());
    crate::lab::handlers::tick();
    crate::kernel::module::timer_mod_tick();
}

/// RESCHEDULE_VECTOR.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn smp_reschedule_interrupt(regs: &mut PtRegs) {
    let old = set_irq_regs(regs);
    ack_APIC_irq();
    irq_enter();
    trace_irq_handler_entry(RESCHEDULE_VECTOR);
    scheduler_ipi();
    trace_irq_handler_exit(RESCHEDULE_VECTOR);
    irq_exit();
    restore_irq_regs(old);
}

/// Any other vector: the scenario's device handlers and `smp_call_function_single`'s IPI
/// run here in hardirq context, as Linux's `do_IRQ` → `handle_irq` does.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn do_IRQ(regs: &mut PtRegs) {
    let vector = (!regs.orig_rax & 0xff) as u8;
    let old = set_irq_regs(regs);
    ack_APIC_irq();
    irq_enter();
    trace_irq_handler_entry(vector);
    keep_frame!(handle_irq(vector));
    trace_irq_handler_exit(vector);
    irq_exit();
    restore_irq_regs(old);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn handle_irq(vector: u8) {
    use lockvmm_abi::vector::{CALL_FUNCTION_SINGLE_VECTOR, SPURIOUS_APIC_VECTOR, lab_handler};
    if vector == CALL_FUNCTION_SINGLE_VECTOR {
        keep_frame!(crate::lab::handlers::generic_smp_call_function_single_interrupt());
    } else if let Some(h) = lab_handler(vector) {
        keep_frame!(crate::lab::handlers::lab_irq_handler(h));
    } else if vector != SPURIOUS_APIC_VECTOR {
        printk!(
            "do_IRQ: {}.{} No irq handler for vector",
            smp_processor_id(),
            vector
        );
    }
}

/// Return from an interrupt to kernel code: preempt if asked and allowed.
#[unsafe(no_mangle)]
pub extern "C" fn retint_kernel(regs: &mut PtRegs) {
    if preempt_count() == 0 && need_resched() && regs.rflags & X86_EFLAGS_IF != 0 {
        preempt_schedule_irq();
    }
}
