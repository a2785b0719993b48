//! The runqueue lock's wrappers that also disable interrupts (Linux's `kernel/sched/sched.h`:
//! `rq_lock_irq`, `rq_unlock_irq`, `rq_lock_irqsave`, `rq_unlock_irqrestore`).
use super::core::{Rq, raw_spin_rq_lock, raw_spin_rq_unlock};
use crate::arch::x86::irqflags::{local_irq_disable, local_irq_enable};

/// `rq_lock_irq`.
pub fn rq_lock_irq(rq: &Rq) {
    local_irq_disable();
    raw_spin_rq_lock(rq);
}

pub fn rq_unlock_irq(rq: &Rq) {
    raw_spin_rq_unlock(rq);
    local_irq_enable();
}

/// `rq_lock_irqsave`.
pub fn rq_lock_irqsave(rq: &Rq) -> u64 {
    let flags = crate::arch::x86::irqflags::local_irq_save();
    raw_spin_rq_lock(rq);
    flags
}

pub fn rq_unlock_irqrestore(rq: &Rq, flags: u64) {
    raw_spin_rq_unlock(rq);
    crate::arch::x86::irqflags::local_irq_restore(flags);
}
