//! Boot-time switch-on of the debug instrumentation the host asked for
//! ([`BootInfo::instrument`](lockvmm_abi::BootInfo) and the lab's `irq_enable_locked` hook):
//! each consumer's own flag first, then the static keys of the hook sites it listens to.
//! Runs on the boot CPU before the others start, as Linux's `lockdep_init` and
//! `trace_init` run early in `start_kernel`.
use core::sync::atomic::Ordering;

use lockvmm_abi::BootInfo;

use crate::arch::x86::irqflags::IRQ_ENABLE_HOOK;
use crate::kernel::locking::lockdep::{LOCK_CONTENDED_HOOK, LOCK_EVENTS};
use crate::kernel::trace::trace_preemptirq::IRQFLAG_EVENTS;

pub fn instrument_init(info: &BootInfo) {
    use lockvmm_abi::knob::instrument::{DEBUG_ATOMIC_SLEEP, LOCKDEP};
    if info.instrument & LOCKDEP != 0 {
        // `lockdep_init`: lockdep validates every lock event and interrupt-flag change.
        crate::kernel::locking::lockdep::PROVE_LOCKING.store(true, Ordering::Relaxed);
        crate::kernel::locking::lockdep::DEBUG_LOCKS.store(true, Ordering::Relaxed);
        LOCK_EVENTS.enable();
        IRQFLAG_EVENTS.enable();
    }
    if info.instrument & DEBUG_ATOMIC_SLEEP != 0 {
        crate::kernel::sched::might_sleep::DEBUG_ATOMIC_SLEEP.enable();
    }
    if info.irq_enable_hook != 0 {
        // The lab counts held spinlocks (lock events) and checks each interrupt enable.
        IRQ_ENABLE_HOOK.store(true, Ordering::Relaxed);
        LOCK_EVENTS.enable();
        IRQFLAG_EVENTS.enable();
    }
    if info.instrument & lockvmm_abi::knob::instrument::LOCK_CONTENDED_HOOK != 0 {
        // The host chooses, at each contended spinlock, whether this CPU waits its turn.
        LOCK_CONTENDED_HOOK.store(true, Ordering::Relaxed);
        LOCK_EVENTS.enable();
    }
}
