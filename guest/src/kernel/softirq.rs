//! Interrupt context accounting and softirqs (Linux's `kernel/softirq.c`).
use core::sync::atomic::Ordering;

use crate::arch::x86::irqflags::{
    local_irq_disable, local_irq_enable, local_irq_restore, local_irq_save,
};
use crate::arch::x86::percpu::this_cpu;
use crate::arch::x86::preempt::{
    HARDIRQ_OFFSET, SOFTIRQ_DISABLE_OFFSET, SOFTIRQ_OFFSET, in_interrupt, preempt_count_add,
    preempt_count_sub,
};

pub const HI_SOFTIRQ: u32 = 0;
pub const TIMER_SOFTIRQ: u32 = 1;
/// The scenario's softirq handlers run as tasklets.
pub const TASKLET_SOFTIRQ: u32 = 6;
const MAX_SOFTIRQ_RESTART: u32 = 10;

pub fn raise_softirq(nr: u32) {
    this_cpu()
        .softirq_pending
        .fetch_or(1 << nr, Ordering::Relaxed);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn irq_enter() {
    preempt_count_add(HARDIRQ_OFFSET);
    // The entry code's `trace_hardirqs_off` (Linux's `irqentry_enter` → `lockdep_hardirqs_off`):
    // the CPU cleared IF; lockdep's context comes from the hardirq count just raised.
    crate::kernel::trace::trace_preemptirq::trace_hardirqs_off();
}

/// Leaving hardirq context: run pending softirqs unless still nested in an interrupt.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn irq_exit() {
    preempt_count_sub(HARDIRQ_OFFSET);
    if !in_interrupt() && this_cpu().softirq_pending.load(Ordering::Relaxed) != 0 {
        keep_frame!(do_softirq());
    }
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn do_softirq() {
    keep_frame!(call_softirq());
}

/// Linux switches to the IRQ stack here; lockvmm's interrupts already run on it.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn call_softirq() {
    keep_frame!(__do_softirq());
}

/// Runs the pending softirqs with interrupts enabled (as Linux does).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn __do_softirq() {
    preempt_count_add(SOFTIRQ_OFFSET);
    for _ in 0..MAX_SOFTIRQ_RESTART {
        let pending = this_cpu().softirq_pending.swap(0, Ordering::Relaxed);
        if pending == 0 {
            break;
        }
        local_irq_enable();
        if pending & (1 << HI_SOFTIRQ) != 0 {
            crate::lab::lab_softirq_action();
        }
        if pending & (1 << TIMER_SOFTIRQ) != 0 {
            crate::kernel::time::timer::run_timer_softirq();
        }
        if pending & (1 << TASKLET_SOFTIRQ) != 0 {
            crate::lab::handlers::tasklet_action();
        }
        local_irq_disable();
    }
    preempt_count_sub(SOFTIRQ_OFFSET);
}

/// `local_bh_disable()`: no softirq runs on this CPU until the matching enable.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn local_bh_disable() {
    preempt_count_add(SOFTIRQ_DISABLE_OFFSET);
    crate::kernel::locking::lockdep::lockdep_softirqs_changed(false);
}

/// `local_bh_enable()`: runs the softirqs raised meanwhile, unless still in an interrupt.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn local_bh_enable() {
    preempt_count_sub(SOFTIRQ_DISABLE_OFFSET);
    crate::kernel::locking::lockdep::lockdep_softirqs_changed(true);
    if !in_interrupt() && this_cpu().softirq_pending.load(Ordering::Relaxed) != 0 {
        let flags = local_irq_save();
        keep_frame!(do_softirq());
        local_irq_restore(flags);
    }
}
