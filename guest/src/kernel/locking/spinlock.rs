//! `raw_spinlock_t` and its API (Linux's `kernel/locking/spinlock.c`): the `_raw_spin_*`
//! functions with their irq and preempt semantics.
//!
//! Each function has two paths. With a hook on the lock path (lock events for lockdep and the
//! lab's held-lock count, preempt or irq-flag tracing, 3.10's ticket locks) it runs them all,
//! as a debug kernel's `_raw_spin_lock` does. With none on (`SPIN_HOOKS` off: most scenarios,
//! and every timer tick of a busy CPU takes three of these locks) it is the bare queued lock
//! and the preempt count, as a production kernel compiles it: one key test instead of four.
use crate::arch::x86::irqflags::{
    local_irq_disable, local_irq_enable, local_irq_restore, local_irq_save, native_save_fl,
    raw_local_irq_disable, raw_local_irq_enable, raw_local_irq_restore,
};
use crate::arch::x86::preempt::{
    preempt_disable, preempt_disable_notrace, preempt_enable, preempt_enable_notrace,
};
use crate::kernel::jump_label::StaticKey;
use crate::kernel::locking::lockdep::{
    LOCK_EVENTS, LockClassKind::Spin, lock_acquire, lock_acquired, lock_release,
};
use crate::kernel::locking::qspinlock::QSpinlock;
use crate::kernel::locking::ticket_spinlock::TICKET_SPINLOCKS;
use crate::kernel::trace::trace_preemptirq::{IRQFLAG_EVENTS, PREEMPT_EVENTS};

/// On when any of the keys the lock path tests is: the functions below then take their full
/// path. Set once, by `spin_hooks_init`, after every one of those keys is; code that enabled
/// one of them later (none does) would have to enable this one too, before any lock it tracks
/// is taken.
pub static SPIN_HOOKS: StaticKey = StaticKey::new();

/// Sets `SPIN_HOOKS` from the keys it stands for (`start_kernel`, after `instrument_init` and
/// `spinlock_init`, before any other CPU runs and with no lock held).
pub fn spin_hooks_init() {
    if LOCK_EVENTS.unlikely()
        || PREEMPT_EVENTS.unlikely()
        || IRQFLAG_EVENTS.unlikely()
        || TICKET_SPINLOCKS.unlikely()
    {
        SPIN_HOOKS.enable();
    }
}

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
    if !SPIN_HOOKS.unlikely() {
        preempt_disable_notrace();
        keep_frame!(lock.raw_lock.lock_nohooks());
        return;
    }
    preempt_disable();
    lock_acquire(lock.addr(), Spin, false);
    keep_frame!(lock.raw_lock.lock());
    lock_acquired(lock.addr(), Spin);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn _raw_spin_lock_irq(lock: &RawSpinlock) {
    if !SPIN_HOOKS.unlikely() {
        raw_local_irq_disable();
        preempt_disable_notrace();
        keep_frame!(lock.raw_lock.lock_nohooks());
        return;
    }
    local_irq_disable();
    preempt_disable();
    lock_acquire(lock.addr(), Spin, false);
    keep_frame!(lock.raw_lock.lock());
    lock_acquired(lock.addr(), Spin);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn _raw_spin_lock_irqsave(lock: &RawSpinlock) -> u64 {
    if !SPIN_HOOKS.unlikely() {
        let flags = native_save_fl();
        raw_local_irq_disable();
        preempt_disable_notrace();
        keep_frame!(lock.raw_lock.lock_nohooks());
        return flags;
    }
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
    if !SPIN_HOOKS.unlikely() {
        lock.raw_lock.unlock_nohooks();
        preempt_enable_notrace();
        return;
    }
    lock_release(lock.addr(), Spin);
    lock.raw_lock.unlock();
    preempt_enable();
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn _raw_spin_unlock_irq(lock: &RawSpinlock) {
    if !SPIN_HOOKS.unlikely() {
        lock.raw_lock.unlock_nohooks();
        raw_local_irq_enable();
        preempt_enable_notrace();
        return;
    }
    lock_release(lock.addr(), Spin);
    lock.raw_lock.unlock();
    local_irq_enable();
    preempt_enable();
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn _raw_spin_unlock_irqrestore(lock: &RawSpinlock, flags: u64) {
    if !SPIN_HOOKS.unlikely() {
        lock.raw_lock.unlock_nohooks();
        raw_local_irq_restore(flags);
        preempt_enable_notrace();
        return;
    }
    lock_release(lock.addr(), Spin);
    lock.raw_lock.unlock();
    local_irq_restore(flags);
    preempt_enable();
}
