//! `raw_spinlock_t` and its API (Linux's `kernel/locking/spinlock.c`): the `_raw_spin_*`
//! functions with their irq and preempt semantics.
use crate::arch::x86::irqflags::{
    local_irq_disable, local_irq_enable, local_irq_restore, local_irq_save,
};
use crate::arch::x86::preempt::{preempt_disable, preempt_enable};
use crate::kernel::locking::lockdep::{
    LockClassKind::Spin, lock_acquire, lock_acquired, lock_release,
};
use crate::kernel::locking::qspinlock::QSpinlock;

/// `raw_spinlock_t`: 4 bytes, the queued spinlock word.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct raw_spinlock_t {
    pub raw_lock: QSpinlock,
}

/// The Rust-style name of `raw_spinlock_t`.
pub type RawSpinlock = raw_spinlock_t;

impl Default for RawSpinlock {
    fn default() -> Self {
        Self::new()
    }
}

impl RawSpinlock {
    pub const fn new() -> Self {
        RawSpinlock {
            raw_lock: QSpinlock::new(),
        }
    }

    /// The lock's address: its identity for lockdep and the trace.
    #[inline(always)]
    pub fn addr(&self) -> u64 {
        self as *const Self as u64
    }

    pub fn owner(&self) -> Option<usize> {
        self.raw_lock.owner()
    }

    pub fn lock(&self) {
        _raw_spin_lock(self)
    }

    pub fn unlock(&self) {
        _raw_spin_unlock(self)
    }

    pub fn lock_irq(&self) {
        _raw_spin_lock_irq(self)
    }

    pub fn unlock_irq(&self) {
        _raw_spin_unlock_irq(self)
    }

    pub fn lock_irqsave(&self) -> u64 {
        _raw_spin_lock_irqsave(self)
    }

    pub fn unlock_irqrestore(&self, flags: u64) {
        _raw_spin_unlock_irqrestore(self, flags)
    }

    /// `spin_trylock`: takes the lock only if it is free; preemption stays disabled on success.
    pub fn trylock(&self) -> bool {
        _raw_spin_trylock(self)
    }
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn _raw_spin_trylock(lock: &RawSpinlock) -> bool {
    preempt_disable();
    if lock.raw_lock.trylock() {
        // As Linux's `__raw_spin_trylock`: only a successful trylock is an acquisition.
        lock_acquire(lock.addr(), Spin, true);
        lock_acquired(lock.addr(), Spin);
        return true;
    }
    preempt_enable();
    false
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn _raw_spin_lock(lock: &RawSpinlock) {
    preempt_disable();
    lock_acquire(lock.addr(), Spin, false);
    keep_frame!(lock.raw_lock.lock());
    lock_acquired(lock.addr(), Spin);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn _raw_spin_lock_irq(lock: &RawSpinlock) {
    local_irq_disable();
    preempt_disable();
    lock_acquire(lock.addr(), Spin, false);
    keep_frame!(lock.raw_lock.lock());
    lock_acquired(lock.addr(), Spin);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn _raw_spin_lock_irqsave(lock: &RawSpinlock) -> u64 {
    let flags = local_irq_save();
    preempt_disable();
    lock_acquire(lock.addr(), Spin, false);
    keep_frame!(lock.raw_lock.lock());
    lock_acquired(lock.addr(), Spin);
    flags
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn _raw_spin_unlock(lock: &RawSpinlock) {
    lock_release(lock.addr(), Spin);
    lock.raw_lock.unlock();
    preempt_enable();
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn _raw_spin_unlock_irq(lock: &RawSpinlock) {
    lock_release(lock.addr(), Spin);
    lock.raw_lock.unlock();
    local_irq_enable();
    preempt_enable();
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn _raw_spin_unlock_irqrestore(lock: &RawSpinlock, flags: u64) {
    lock_release(lock.addr(), Spin);
    lock.raw_lock.unlock();
    local_irq_restore(flags);
    preempt_enable();
}
