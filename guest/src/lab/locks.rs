//! The scenario's locks: spinlocks (the lab's own `lab_locks[i]`, or kernel locks a scenario
//! aliases, like `runqueues[3].__lock`) taken through the kernel's real spinlock API in every
//! mode (`spin_lock`, `_irq`, `_irqsave`, `_bh`) and `spin_trylock`; mutexes and semaphores
//! that sleep; and queued rwlocks.
use core::sync::atomic::{AtomicU64, Ordering};

use lockvmm_abi::hook::Hook;
use lockvmm_abi::program::{LockKind, LockMode, MAX_LOCKS};

use super::program;
use crate::arch::x86::irqflags::{
    local_irq_disable, local_irq_enable, local_irq_restore, local_irq_save,
};
use crate::arch::x86::lockvmm;
use crate::arch::x86::preempt::{preempt_disable, preempt_enable};
use crate::kernel::locking::mutex::{Mutex, mutex_lock, mutex_unlock};
use crate::kernel::locking::qrwlock::{
    qrwlock, queued_read_lock, queued_read_unlock, queued_write_lock, queued_write_unlock,
};
use crate::kernel::locking::semaphore::{Semaphore, down, up};
use crate::kernel::locking::spinlock::RawSpinlock;
use crate::kernel::softirq::{local_bh_disable, local_bh_enable};

/// The scenario's own locks (`[[lock]]` without `kernel`), by index; the host names them.
#[unsafe(no_mangle)]
pub static lab_locks: [RawSpinlock; MAX_LOCKS] = [const { RawSpinlock::new() }; MAX_LOCKS];
/// Flags saved by `spin_lock_irqsave` of each lock.
static LOCK_FLAGS: [AtomicU64; MAX_LOCKS] = [const { AtomicU64::new(0) }; MAX_LOCKS];

/// The scenario's mutexes, semaphores and rwlocks, by lock index.
#[unsafe(no_mangle)]
pub static lab_mutexes: [Mutex; MAX_LOCKS] = [const { Mutex::new() }; MAX_LOCKS];
#[unsafe(no_mangle)]
pub static lab_semaphores: [Semaphore; MAX_LOCKS] = [const { Semaphore::new() }; MAX_LOCKS];
#[unsafe(no_mangle)]
pub static lab_rwlocks: [qrwlock; MAX_LOCKS] = [const { qrwlock::new() }; MAX_LOCKS];

/// The scenario's name for lock `idx` (lockdep's class name for it).
pub fn scenario_lock_name(
    idx: usize,
) -> Option<&'static [u8; lockvmm_abi::program::LOCK_NAME_LEN]> {
    program()
        .and_then(|p| p.locks.get(idx))
        .map(|l| &l.name)
        .filter(|n| n[0] != 0)
}

/// What scenario lock `idx` is.
fn kind_of(idx: u64) -> LockKind {
    program()
        .and_then(|p| p.locks.get(idx as usize))
        .and_then(|l| LockKind::from_raw(l.kind))
        .unwrap_or(LockKind::Spinlock)
}

/// Gives every semaphore its initial count (at program start).
pub fn init() {
    let Some(p) = program() else { return };
    for (i, l) in p.locks.iter().enumerate().take(MAX_LOCKS) {
        if LockKind::from_raw(l.kind) == Some(LockKind::Semaphore) {
            lab_semaphores[i].count.store(l.count, Ordering::Relaxed);
        }
    }
}

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
    match kind_of(idx) {
        LockKind::Mutex => {
            keep_frame!(mutex_lock(&lab_mutexes[idx as usize]));
            lockvmm::hook(Hook::LockAcquired, idx);
            return;
        }
        LockKind::Semaphore => {
            keep_frame!(down(&lab_semaphores[idx as usize]));
            lockvmm::hook(Hook::LockAcquired, idx);
            return;
        }
        // The host refuses lock/unlock on an rwlock; read_lock/write_lock take it.
        LockKind::Rwlock => return,
        LockKind::Spinlock => {}
    }
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
    match kind_of(idx) {
        LockKind::Mutex => {
            lockvmm::hook(Hook::LockReleased, idx);
            mutex_unlock(&lab_mutexes[idx as usize]);
            return;
        }
        LockKind::Semaphore => {
            lockvmm::hook(Hook::LockReleased, idx);
            up(&lab_semaphores[idx as usize]);
            return;
        }
        LockKind::Rwlock => return,
        LockKind::Spinlock => {}
    }
    let Some(lock) = lock_of(idx) else {
        return;
    };
    if !debug_spin_unlock(lock) {
        // Unlike Linux, which goes on to release it, the lab skips releasing a lock it does not
        // hold, so the preemption count stays true and the rest of the run stays meaningful.
        return;
    }
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

/// Flags saved by `read_lock_irqsave`/`write_lock_irqsave` of each rwlock.
static RW_FLAGS: [AtomicU64; MAX_LOCKS] = [const { AtomicU64::new(0) }; MAX_LOCKS];

/// `read_lock*` / `write_lock*` of rwlock `idx` in `mode`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_rw_lock(idx: u64, write: bool, mode: LockMode) {
    let Some(rw) = lab_rwlocks.get(idx as usize) else {
        return;
    };
    match mode {
        LockMode::Irq => local_irq_disable(),
        LockMode::Irqsave => RW_FLAGS[idx as usize].store(local_irq_save(), Ordering::Relaxed),
        LockMode::Bh => local_bh_disable(),
        LockMode::Plain => {}
    }
    preempt_disable();
    if write {
        keep_frame!(queued_write_lock(rw));
    } else {
        keep_frame!(queued_read_lock(rw));
    }
    lockvmm::hook(Hook::LockAcquired, idx);
}

/// `read_unlock*` / `write_unlock*` of rwlock `idx`, the way `mode` took it.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_rw_unlock(idx: u64, write: bool, mode: LockMode) {
    let Some(rw) = lab_rwlocks.get(idx as usize) else {
        return;
    };
    lockvmm::hook(Hook::LockReleased, idx);
    if write {
        queued_write_unlock(rw);
    } else {
        queued_read_unlock(rw);
    }
    match mode {
        LockMode::Irq => local_irq_enable(),
        LockMode::Irqsave => local_irq_restore(RW_FLAGS[idx as usize].load(Ordering::Relaxed)),
        LockMode::Bh => local_bh_enable(),
        LockMode::Plain => {}
    }
    preempt_enable();
}

/// `CONFIG_DEBUG_SPINLOCK`'s check on unlock (`debug_spin_unlock`): releasing a lock that is
/// not held, or held by another CPU, is a bug Linux prints as `BUG: spinlock … on CPU#N`.
/// Returns whether this CPU holds the lock.
fn debug_spin_unlock(lock: &RawSpinlock) -> bool {
    let cpu = crate::arch::x86::percpu::smp_processor_id() as usize;
    match lock.owner() {
        Some(owner) if owner == cpu => true,
        owner => {
            let msg = if owner.is_none() {
                "already unlocked"
            } else {
                "wrong CPU"
            };
            spin_bug(lock, msg, owner);
            false
        }
    }
}

#[cold]
#[inline(never)]
pub fn spin_bug(lock: &RawSpinlock, msg: &str, owner: Option<usize>) {
    let cur = crate::kernel::sched::core::current();
    printk!(
        "BUG: spinlock {} on CPU#{}, {}/{}",
        msg,
        crate::arch::x86::percpu::smp_processor_id(),
        cur.comm(),
        cur.pid
    );
    printk!(
        " lock: {:#x}, .owner_cpu: {}",
        lock as *const RawSpinlock as u64,
        owner.map_or(-1, |c| c as i64)
    );
}
