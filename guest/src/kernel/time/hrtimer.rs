//! High-resolution timers (Linux's `kernel/time/hrtimer.c`): a per-CPU list sorted by expiry;
//! the earliest one programs the clockevent device.
use core::sync::atomic::Ordering;

use lockvmm_abi::NR_CPUS;

use super::clockevents::{clockevents_program_event, clockevents_shutdown};
use super::ktime_get;
use crate::arch::x86::percpu::this_cpu_ptr_mut;
use crate::kernel::locking::spinlock::RawSpinlock;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum HrtimerRestart {
    NoRestart,
    Restart,
}

pub type HrtimerFn = fn(&mut Hrtimer) -> HrtimerRestart;

#[repr(C)]
#[allow(non_camel_case_types)]
pub struct hrtimer {
    pub expires: u64,
    pub function: Option<HrtimerFn>,
    enqueued: bool,
    next: *mut Hrtimer,
}

/// The Rust-style name of `hrtimer`.
pub type Hrtimer = hrtimer;

impl Hrtimer {
    pub const fn new(function: HrtimerFn) -> Self {
        Hrtimer {
            expires: 0,
            function: Some(function),
            enqueued: false,
            next: core::ptr::null_mut(),
        }
    }

    pub fn is_queued(&self) -> bool {
        self.enqueued
    }

    /// `hrtimer_forward_now`: moves the expiry forward by whole intervals past now.
    pub fn forward_now(&mut self, interval: u64) {
        let now = ktime_get();
        if self.expires > now {
            return;
        }
        let late = now - self.expires;
        // A periodic timer is almost always less than one interval late: one step, no
        // division (the same result as the general case's `n = 1`).
        if late < interval {
            self.expires += interval;
            return;
        }
        let n = late / interval + 1;
        self.expires += n * interval;
    }
}

/// `struct hrtimer_cpu_base`.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct hrtimer_cpu_base {
    pub lock: RawSpinlock,
    head: *mut Hrtimer,
}

/// The Rust-style name of `hrtimer_cpu_base`.
pub type HrtimerCpuBase = hrtimer_cpu_base;

#[unsafe(no_mangle)]
pub static mut hrtimer_bases: [HrtimerCpuBase; NR_CPUS] = [const {
    HrtimerCpuBase {
        lock: RawSpinlock::new(),
        head: core::ptr::null_mut(),
    }
}; NR_CPUS];

fn this_base() -> &'static mut HrtimerCpuBase {
    // SAFETY: a CPU only touches its own base, under its lock or with interrupts off.
    unsafe { &mut *this_cpu_ptr_mut(core::ptr::addr_of_mut!(hrtimer_bases)) }
}

fn remove(base: &mut HrtimerCpuBase, t: *mut Hrtimer) {
    let mut link: *mut *mut Hrtimer = &mut base.head;
    // SAFETY: the list holds only live, enqueued timers of this CPU.
    unsafe {
        while !(*link).is_null() {
            if *link == t {
                *link = (*t).next;
                (*t).enqueued = false;
                return;
            }
            link = &mut (**link).next;
        }
    }
}

fn enqueue(base: &mut HrtimerCpuBase, t: *mut Hrtimer) {
    let mut link: *mut *mut Hrtimer = &mut base.head;
    // SAFETY: as in `remove`; `t` is not on the list.
    unsafe {
        while !(*link).is_null() && (**link).expires <= (*t).expires {
            link = &mut (**link).next;
        }
        (*t).next = *link;
        (*t).enqueued = true;
        *link = t;
    }
}

fn reprogram(base: &HrtimerCpuBase) {
    if base.head.is_null() {
        clockevents_shutdown();
    } else {
        // SAFETY: the head is a live enqueued timer.
        clockevents_program_event(unsafe { (*base.head).expires });
    }
}

/// Arms `timer` (absolute expiry) on this CPU.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn hrtimer_start(timer: &mut Hrtimer, expires: u64) {
    let base = this_base();
    let flags = base.lock.lock_irqsave();
    if timer.enqueued {
        remove(base, timer);
    }
    timer.expires = expires;
    enqueue(base, timer);
    reprogram(base);
    base.lock.unlock_irqrestore(flags);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn hrtimer_cancel(timer: &mut Hrtimer) {
    // Linux's `hrtimer_try_to_cancel` checks lockless first: a timer that is not enqueued
    // (and, here, no callback runs while the caller runs) needs no base lock. The idle
    // entry's cancel of a stopped tick is this case.
    if !timer.enqueued {
        return;
    }
    let base = this_base();
    let flags = base.lock.lock_irqsave();
    if timer.enqueued {
        remove(base, timer);
        reprogram(base);
    }
    base.lock.unlock_irqrestore(flags);
}

/// The clockevent interrupt: run every expired timer (Linux's `hrtimer_interrupt`).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn hrtimer_interrupt() {
    let base = this_base();
    base.lock.lock();
    __hrtimer_run_queues(base, ktime_get());
    reprogram(base);
    base.lock.unlock();
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn __hrtimer_run_queues(base: &mut HrtimerCpuBase, now: u64) {
    // SAFETY: the head is a live enqueued timer while non-null.
    while !base.head.is_null() && unsafe { (*base.head).expires } <= now {
        let t = base.head;
        remove(base, t);
        // SAFETY: `t` was just taken off the list; its owner keeps it alive while armed.
        __run_hrtimer(base, unsafe { &mut *t });
    }
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn __run_hrtimer(base: &mut HrtimerCpuBase, timer: &mut Hrtimer) {
    let Some(f) = timer.function else { return };
    // The callback runs without the base lock, as in Linux.
    base.lock.unlock();
    crate::kernel::trace::events::trace_timer_expire(
        lockvmm_abi::trace::TraceEvent::HrtimerExpire,
        f as usize as u64,
        timer as *mut Hrtimer as u64,
    );
    let restart = f(timer);
    base.lock.lock();
    if restart == HrtimerRestart::Restart && !timer.enqueued {
        enqueue(base, timer);
    }
    let _ = Ordering::Relaxed;
}
