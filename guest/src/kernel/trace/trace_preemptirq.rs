//! The interrupt-flag and preemption hooks, as Linux's `kernel/trace/trace_preemptirq.c`:
//! `local_irq_enable()` calls `trace_hardirqs_on()` before `sti`, `local_irq_disable()` calls
//! `trace_hardirqs_off()` after `cli`, and `preempt_disable`/`preempt_enable` call
//! `trace_preempt_off`/`trace_preempt_on`. In Linux these feed both lockdep
//! (`lockdep_hardirqs_on/off`) and the `irq_disable`/`irq_enable`/`preempt_*` trace events;
//! here they also feed the lab's `irq_enable_locked` hook. Each is guarded by a static key,
//! so with no consumer on a site costs one load and one branch.
use core::sync::atomic::Ordering;

use crate::arch::x86::irqflags::IRQ_ENABLE_HOOK;
use crate::kernel::jump_label::{StaticKey, this_ip};
use crate::kernel::locking::lockdep::PROVE_LOCKING;

/// On when any consumer of interrupt-flag events is (set once at boot).
pub static IRQFLAG_EVENTS: StaticKey = StaticKey::new();
/// On when any consumer of preemption events is (set once at boot).
pub static PREEMPT_EVENTS: StaticKey = StaticKey::new();

/// `trace_hardirqs_on`: interrupts are about to be enabled (called with them still off).
#[inline(always)]
pub fn trace_hardirqs_on() {
    if IRQFLAG_EVENTS.unlikely() {
        hardirqs_on(this_ip());
    }
}

/// `trace_hardirqs_off`: interrupts have just been disabled.
#[inline(always)]
pub fn trace_hardirqs_off() {
    if IRQFLAG_EVENTS.unlikely() {
        hardirqs_off(this_ip());
    }
}

/// `trace_preempt_off`: called after every `preempt_disable`; consumers see only the first
/// (the count went from 0 to 1), as Linux's `preempt_latency_start`.
#[inline(always)]
pub fn trace_preempt_off() {
    if PREEMPT_EVENTS.unlikely() {
        preempt_off(this_ip());
    }
}

/// `trace_preempt_on`: called before every `preempt_enable`; consumers see only the last
/// (the count is about to go from 1 to 0), as Linux's `preempt_latency_stop`.
#[inline(always)]
pub fn trace_preempt_on() {
    if PREEMPT_EVENTS.unlikely() {
        preempt_on(this_ip());
    }
}

#[cold]
#[inline(never)]
fn hardirqs_on(ip: u64) {
    if PROVE_LOCKING.load(Ordering::Relaxed) {
        crate::kernel::locking::lockdep::hardirqs_on(ip);
    }
    if IRQ_ENABLE_HOOK.load(Ordering::Relaxed) {
        crate::arch::x86::irqflags::irq_enable_locked_hook();
    }
}

#[cold]
#[inline(never)]
fn hardirqs_off(ip: u64) {
    if PROVE_LOCKING.load(Ordering::Relaxed) {
        crate::kernel::locking::lockdep::hardirqs_off(ip);
    }
}

#[cold]
#[inline(never)]
fn preempt_off(_ip: u64) {}

#[cold]
#[inline(never)]
fn preempt_on(_ip: u64) {}
