//! The scenario's locks: the lab's own (`lab_locks[i]`) or kernel locks a scenario aliases
//! (`runqueues[3].__lock`), taken and released through the kernel's real spinlock API in every
//! mode (`spin_lock`, `_irq`, `_irqsave`, `_bh`), and `spin_trylock`.
use core::sync::atomic::{AtomicU64, Ordering};

use lockvmm_abi::hook::Hook;
use lockvmm_abi::program::{LockMode, MAX_LOCKS};

use super::program;
use crate::arch::x86::lockvmm;
use crate::kernel::locking::spinlock::RawSpinlock;
use crate::kernel::softirq::{local_bh_disable, local_bh_enable};

/// The scenario's own locks (`[[lock]]` without `kernel`), by index; the host names them.
#[unsafe(no_mangle)]
pub static lab_locks: [RawSpinlock; MAX_LOCKS] = [const { RawSpinlock::new() }; MAX_LOCKS];
/// Flags saved by `spin_lock_irqsave` of each lock.
static LOCK_FLAGS: [AtomicU64; MAX_LOCKS] = [const { AtomicU64::new(0) }; MAX_LOCKS];

/// Scenario lock `idx`: the kernel lock it aliases, or the lab's own.
fn lock_of(idx: u64) -> Option<&'static RawSpinlock> {
    let i = idx as usize;
    if i >= MAX_LOCKS {
        return None;
    }
    let addr = program()
        .and_then(|p| p.locks.get(i).map(|l| l.addr))
        .unwrap_or(0);
    if addr == 0 {
        return Some(&lab_locks[i]);
    }
    // SAFETY: the host resolved `addr` from the kernel's DWARF to a `raw_spinlock_t` in the
    // kernel image (a static), which lives as long as the kernel.
    Some(unsafe { &*(addr as *const RawSpinlock) })
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_lock(idx: u64, mode: LockMode) {
    let Some(lock) = lock_of(idx) else {
        return;
    };
    match mode {
        LockMode::Irq => keep_frame!(lock.lock_irq()),
        LockMode::Irqsave => {
            let flags = keep_frame!(lock.lock_irqsave());
            LOCK_FLAGS[idx as usize].store(flags, Ordering::Relaxed);
        }
        LockMode::Bh => {
            local_bh_disable();
            keep_frame!(lock.lock());
        }
        LockMode::Plain => keep_frame!(lock.lock()),
    }
    lockvmm::hook(Hook::LockAcquired, idx);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_unlock(idx: u64, mode: LockMode) {
    let Some(lock) = lock_of(idx) else {
        return;
    };
    lockvmm::hook(Hook::LockReleased, idx);
    match mode {
        LockMode::Irq => lock.unlock_irq(),
        LockMode::Irqsave => {
            lock.unlock_irqrestore(LOCK_FLAGS[idx as usize].load(Ordering::Relaxed))
        }
        LockMode::Bh => {
            lock.unlock();
            local_bh_enable();
        }
        LockMode::Plain => lock.unlock(),
    }
}

/// `spin_trylock` (with the mode's interrupt or bottom-half handling undone on failure).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_trylock(idx: u64, mode: LockMode) -> bool {
    let Some(lock) = lock_of(idx) else {
        return false;
    };
    let flags = crate::arch::x86::irqflags::local_irq_save();
    match mode {
        LockMode::Irq | LockMode::Irqsave => {}
        LockMode::Bh => local_bh_disable(),
        LockMode::Plain => crate::arch::x86::irqflags::local_irq_restore(flags),
    }
    let got = lock.trylock();
    if got {
        LOCK_FLAGS[idx as usize].store(flags, Ordering::Relaxed);
        if mode == LockMode::Bh {
            crate::arch::x86::irqflags::local_irq_restore(flags);
        }
        lockvmm::hook(Hook::LockAcquired, idx);
    } else {
        match mode {
            LockMode::Irq | LockMode::Irqsave => {
                crate::arch::x86::irqflags::local_irq_restore(flags)
            }
            LockMode::Bh => {
                crate::arch::x86::irqflags::local_irq_restore(flags);
                local_bh_enable();
            }
            LockMode::Plain => {}
        }
        printk!("lab: spin_trylock of lock {} failed", idx);
    }
    got
}
