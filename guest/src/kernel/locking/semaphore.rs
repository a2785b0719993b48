//! `struct semaphore` (Linux's `kernel/locking/semaphore.c`): `down` takes one of `count`
//! units or sleeps uninterruptibly in `__down`; `up` gives one back and wakes a sleeper.
use core::sync::atomic::{AtomicU32, Ordering};

use super::mutex::WaitList;
use crate::kernel::locking::spinlock::RawSpinlock;
use crate::kernel::sched::core::{current, schedule, set_current_state, wake_up_process};
use crate::kernel::sched::task::{TASK_RUNNING, TASK_UNINTERRUPTIBLE, TaskStruct};

#[repr(C)]
pub struct semaphore {
    pub lock: RawSpinlock,
    pub count: AtomicU32,
    pub wait_list: WaitList,
}

/// The Rust-style name of `struct semaphore`.
pub type Semaphore = semaphore;

impl Semaphore {
    pub const fn new() -> Self {
        semaphore {
            lock: RawSpinlock::new(),
            count: AtomicU32::new(0),
            wait_list: WaitList::new(),
        }
    }
}

impl Default for Semaphore {
    fn default() -> Self {
        Self::new()
    }
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn down(sem: &Semaphore) {
    crate::kernel::sched::core::might_sleep();
    let flags = sem.lock.lock_irqsave();
    if sem.count.load(Ordering::Relaxed) > 0 {
        sem.count.fetch_sub(1, Ordering::Relaxed);
        sem.lock.unlock_irqrestore(flags);
        return;
    }
    sem.lock.unlock_irqrestore(flags);
    keep_frame!(__down(sem));
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn __down(sem: &Semaphore) {
    let task = current();
    let me = task as *mut TaskStruct as u64;
    task.blocked_on
        .store(sem as *const Semaphore as u64, Ordering::Relaxed);
    loop {
        let flags = sem.lock.lock_irqsave();
        if sem.count.load(Ordering::Relaxed) > 0 {
            sem.count.fetch_sub(1, Ordering::Relaxed);
            sem.wait_list.remove(me);
            sem.lock.unlock_irqrestore(flags);
            break;
        }
        sem.wait_list.add(me);
        set_current_state(TASK_UNINTERRUPTIBLE);
        sem.lock.unlock_irqrestore(flags);
        keep_frame!(schedule());
    }
    task.blocked_on.store(0, Ordering::Relaxed);
    set_current_state(TASK_RUNNING);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn up(sem: &Semaphore) {
    let flags = sem.lock.lock_irqsave();
    sem.count.fetch_add(1, Ordering::Relaxed);
    let next = sem.wait_list.first();
    sem.lock.unlock_irqrestore(flags);
    if let Some(t) = next {
        // SAFETY: queued waiters are pool tasks sleeping in `__down`.
        wake_up_process(unsafe { &mut *(t as *mut TaskStruct) });
    }
}
