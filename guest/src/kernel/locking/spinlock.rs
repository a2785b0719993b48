//! A raw spinlock whose word records its owner (`cpu + 1`), so the host can tell who holds it.
//! Waiters yield the host CPU through the wait hypercall instead of burning it; a waiter sets
//! `CONTENDED` so that the unlocker knows to kick.
use core::sync::atomic::{AtomicU32, Ordering};

use crate::arch::x86::irqflags::{local_irq_restore, local_irq_save};
use crate::arch::x86::lockvmm;
use crate::arch::x86::percpu::smp_processor_id;

const CONTENDED: u32 = 1 << 31;

#[repr(C)]
pub struct RawSpinLock {
    val: AtomicU32,
}

impl Default for RawSpinLock {
    fn default() -> Self {
        Self::new()
    }
}

impl RawSpinLock {
    pub const fn new() -> Self {
        RawSpinLock {
            val: AtomicU32::new(0),
        }
    }

    pub fn lock(&self) {
        let me = smp_processor_id() + 1;
        loop {
            match self
                .val
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(cur) => {
                    let marked = cur | CONTENDED;
                    if cur == marked
                        || self
                            .val
                            .compare_exchange(cur, marked, Ordering::Relaxed, Ordering::Relaxed)
                            .is_ok()
                    {
                        lockvmm::wait_on(&self.val, marked);
                    }
                }
            }
        }
    }

    pub fn unlock(&self) {
        if self.val.swap(0, Ordering::Release) & CONTENDED != 0 {
            lockvmm::kick(&self.val);
        }
    }

    pub fn lock_irqsave(&self) -> u64 {
        let flags = local_irq_save();
        self.lock();
        flags
    }

    pub fn unlock_irqrestore(&self, flags: u64) {
        self.unlock();
        local_irq_restore(flags);
    }
}
