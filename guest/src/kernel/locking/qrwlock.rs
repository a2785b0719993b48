//! The queued rwlock (Linux's `kernel/locking/qrwlock.c`): readers count in the upper bits of
//! `cnts`, a writer holds the low byte (the lab's convention: its CPU + 1, as for spinlocks),
//! and waiters queue on `wait_lock`, so a waiting writer holds off new readers in process
//! context. Readers in interrupt context only wait for a writer that holds the lock (Linux's
//! rule, so an interrupt handler's `read_lock` cannot deadlock against a queued writer); a
//! process-context reader that re-takes a read lock behind a waiting writer does deadlock.
use core::sync::atomic::{AtomicU8, AtomicU32, Ordering};

use lockvmm_abi::NR_CPUS;

use lockvmm_abi::locking::Q_LOCKED_MASK;

use super::qspinlock::{QSpinlock, locked_val, qspinlock_spinning_on};
use crate::arch::x86::lockvmm;
use crate::arch::x86::percpu::smp_processor_id;
use crate::arch::x86::preempt::{in_interrupt, lock_context};
use crate::kernel::locking::lockdep::{
    LockClassKind::{ReadLock, WriteLock},
    lock_acquire, lock_acquired, lock_contended, lock_release,
};

/// A writer is waiting for the readers to leave.
const QW_WAITING: u32 = 0x100;
/// The writer byte and the waiting bit.
const QW_WMASK: u32 = 0x1ff;
/// One reader.
const QR_BIAS: u32 = 0x200;

/// `struct qrwlock`, with one lab addition: how many read locks each CPU holds, so a report can
/// name the readers (as the locked byte names a writer).
#[repr(C)]
pub struct qrwlock {
    pub cnts: AtomicU32,
    pub wait_lock: QSpinlock,
    pub readers: [AtomicU8; NR_CPUS],
}

/// `rwlock_t`.
#[allow(non_camel_case_types)]
pub type rwlock_t = qrwlock;

impl qrwlock {
    /// The lock's address: its identity for lockdep and the trace.
    #[inline(always)]
    pub fn addr(&self) -> u64 {
        self as *const Self as u64
    }

    pub const fn new() -> Self {
        qrwlock {
            cnts: AtomicU32::new(0),
            wait_lock: QSpinlock::new(),
            readers: [const { AtomicU8::new(0) }; NR_CPUS],
        }
    }
}

impl Default for qrwlock {
    fn default() -> Self {
        Self::new()
    }
}

/// Waits until `cond` holds for `cnts`, recorded as spinning on the lock for the host.
fn wait_cnts(lock: &qrwlock, cond: impl Fn(u32) -> bool) {
    let slot = &qspinlock_spinning_on[smp_processor_id() as usize][lock_context() as usize];
    slot.store(lock as *const qrwlock as u64, Ordering::Relaxed);
    loop {
        let v = lock.cnts.load(Ordering::Acquire);
        if cond(v) {
            break;
        }
        lockvmm::wait_on(&lock.cnts, v);
    }
    slot.store(0, Ordering::Relaxed);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn queued_read_lock(lock: &qrwlock) {
    lock_acquire(lock.addr(), ReadLock, false);
    let cnts = lock.cnts.fetch_add(QR_BIAS, Ordering::Acquire);
    if cnts & QW_WMASK != 0 {
        lock_contended(lock.addr(), ReadLock);
        keep_frame!(queued_read_lock_slowpath(lock));
    }
    lock.readers[smp_processor_id() as usize].fetch_add(1, Ordering::Relaxed);
    lock_acquired(lock.addr(), ReadLock);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn queued_read_lock_slowpath(lock: &qrwlock) {
    if in_interrupt() {
        // Readers in interrupt context only wait for a writer that holds the lock.
        wait_cnts(lock, |v| v & Q_LOCKED_MASK == 0);
        return;
    }
    lock.cnts.fetch_sub(QR_BIAS, Ordering::Relaxed);
    lock.wait_lock.lock();
    lock.cnts.fetch_add(QR_BIAS, Ordering::Acquire);
    wait_cnts(lock, |v| v & Q_LOCKED_MASK == 0);
    lock.wait_lock.unlock();
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn queued_read_unlock(lock: &qrwlock) {
    lock_release(lock.addr(), ReadLock);
    let _ = lock.readers[smp_processor_id() as usize].fetch_update(
        Ordering::Relaxed,
        Ordering::Relaxed,
        |n| n.checked_sub(1),
    );
    lock.cnts.fetch_sub(QR_BIAS, Ordering::Release);
    lockvmm::kick(&lock.cnts);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn queued_write_lock(lock: &qrwlock) {
    lock_acquire(lock.addr(), WriteLock, false);
    if lock
        .cnts
        .compare_exchange(0, locked_val(), Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        lock_contended(lock.addr(), WriteLock);
        keep_frame!(queued_write_lock_slowpath(lock));
    }
    lock_acquired(lock.addr(), WriteLock);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn queued_write_lock_slowpath(lock: &qrwlock) {
    lock.wait_lock.lock();
    if lock
        .cnts
        .compare_exchange(0, locked_val(), Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        lock.cnts.fetch_or(QW_WAITING, Ordering::Relaxed);
        loop {
            wait_cnts(lock, |v| v == QW_WAITING);
            if lock
                .cnts
                .compare_exchange(
                    QW_WAITING,
                    locked_val(),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                break;
            }
        }
    }
    lock.wait_lock.unlock();
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn queued_write_unlock(lock: &qrwlock) {
    lock_release(lock.addr(), WriteLock);
    lock.cnts.fetch_and(!Q_LOCKED_MASK, Ordering::Release);
    lockvmm::kick(&lock.cnts);
}
