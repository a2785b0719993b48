//! `struct mutex` (Linux's `kernel/locking/mutex.c`): a sleeping lock. A contended
//! `mutex_lock` puts the task in TASK_UNINTERRUPTIBLE on the mutex's wait list and schedules;
//! `mutex_unlock` hands it to the first waiter and wakes it. A task blocked here forever is what
//! the hung-task detector reports.
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::x86::preempt::{preempt_disable, preempt_enable_no_resched};
use crate::kernel::locking::lockdep::{
    LockClassKind, lock_acquire, lock_acquired, lock_contended, lock_release,
};
use crate::kernel::locking::spinlock::RawSpinlock;
use crate::kernel::sched::core::{current, schedule, set_current_state, wake_up_process};
use crate::kernel::sched::task::{TASK_RUNNING, TASK_UNINTERRUPTIBLE, TaskStruct};

/// Waiters a mutex or semaphore queues (the lab never has more tasks on one lock).
pub const MAX_WAITERS: usize = 16;

/// A FIFO of sleeping tasks, under its lock's `wait_lock`.
#[repr(C)]
pub struct WaitList {
    tasks: [AtomicU64; MAX_WAITERS],
}

impl WaitList {
    pub const fn new() -> Self {
        WaitList {
            tasks: [const { AtomicU64::new(0) }; MAX_WAITERS],
        }
    }

    /// Queues `t` if it is not queued yet; false if the list is full.
    pub fn add(&self, t: u64) -> bool {
        if self.tasks.iter().any(|s| s.load(Ordering::Relaxed) == t) {
            return true;
        }
        self.tasks.iter().any(|s| {
            s.compare_exchange(0, t, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        })
    }

    /// Dequeues `t`.
    pub fn remove(&self, t: u64) {
        for s in &self.tasks {
            let _ = s.compare_exchange(t, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// The first queued task, if any.
    pub fn first(&self) -> Option<u64> {
        self.tasks
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .find(|&t| t != 0)
    }
}

impl Default for WaitList {
    fn default() -> Self {
        Self::new()
    }
}

/// `struct mutex`: `owner` is the holding task (0: free), as Linux's.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct mutex {
    pub owner: AtomicU64,
    pub wait_lock: RawSpinlock,
    pub wait_list: WaitList,
}

/// The Rust-style name of `struct mutex`.
pub type Mutex = mutex;

impl Mutex {
    pub const fn new() -> Self {
        mutex {
            owner: AtomicU64::new(0),
            wait_lock: RawSpinlock::new(),
            wait_list: WaitList::new(),
        }
    }
}

impl Default for Mutex {
    fn default() -> Self {
        Self::new()
    }
}

fn current_addr() -> u64 {
    current() as *mut TaskStruct as u64
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn mutex_lock(lock: &Mutex) {
    crate::kernel::sched::core::might_sleep();
    let addr = lock as *const Mutex as u64;
    lock_acquire(addr, LockClassKind::Mutex, false);
    let me = current_addr();
    if lock
        .owner
        .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        lock_contended(addr, LockClassKind::Mutex);
        keep_frame!(__mutex_lock_slowpath(lock));
    }
    lock_acquired(addr, LockClassKind::Mutex);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn __mutex_lock_slowpath(lock: &Mutex) {
    preempt_disable();
    let me = current_addr();
    let task = current();
    task.blocked_on
        .store(lock as *const Mutex as u64, Ordering::Relaxed);
    loop {
        lock.wait_lock.lock();
        if lock
            .owner
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            lock.wait_list.remove(me);
            lock.wait_lock.unlock();
            break;
        }
        lock.wait_list.add(me);
        set_current_state(TASK_UNINTERRUPTIBLE);
        lock.wait_lock.unlock();
        keep_frame!(schedule_preempt_disabled());
    }
    task.blocked_on.store(0, Ordering::Relaxed);
    set_current_state(TASK_RUNNING);
    preempt_enable_no_resched();
}

/// `schedule_preempt_disabled`: sleeps (the caller's state says how).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn schedule_preempt_disabled() {
    preempt_enable_no_resched();
    keep_frame!(schedule());
    preempt_disable();
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn mutex_unlock(lock: &Mutex) {
    lock_release(lock as *const Mutex as u64, LockClassKind::Mutex);
    lock.wait_lock.lock();
    lock.owner.store(0, Ordering::Release);
    let next = lock.wait_list.first();
    lock.wait_lock.unlock();
    if let Some(t) = next {
        // SAFETY: queued waiters are pool tasks sleeping in `__mutex_lock_slowpath`.
        wake_up_process(unsafe { &mut *(t as *mut TaskStruct) });
    }
}
