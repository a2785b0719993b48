//! The timer wheel (Linux's `kernel/time/timer.c`), reduced to one list per CPU sorted by
//! expiry but with Linux's locking and list layout: each `timer_base` has a raw spinlock,
//! timers hang on `hlist_node`s, and `run_timer_softirq` detaches and runs expired timers with
//! the base lock held (dropped only around each callback). A timer whose memory was freed is
//! therefore touched under `base->lock` — seed 002's crash.
use lockvmm_abi::NR_CPUS;

use super::{TICK_NSEC, jiffies};
use crate::arch::x86::percpu::smp_processor_id;
use crate::kernel::locking::spinlock::{
    _raw_spin_lock_irqsave, _raw_spin_unlock_irqrestore, RawSpinlock,
};
use crate::kernel::softirq::{TIMER_SOFTIRQ, raise_softirq};

/// `struct hlist_node`.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct hlist_node {
    pub next: *mut HlistNode,
    pub pprev: *mut *mut HlistNode,
}

/// The Rust-style name of `hlist_node`.
pub type HlistNode = hlist_node;

pub type TimerFn = extern "C" fn(&mut TimerList);

/// `struct timer_list`: `entry` first, so a node pointer is the timer's address.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct timer_list {
    pub entry: HlistNode,
    /// In jiffies.
    pub expires: u64,
    pub function: Option<TimerFn>,
    /// The CPU whose base the timer belongs to (`TIMER_CPUMASK` bits of `flags`).
    pub flags: u32,
}

/// The Rust-style name of `timer_list`.
pub type TimerList = timer_list;

impl TimerList {
    pub const fn new() -> Self {
        TimerList {
            entry: HlistNode {
                next: core::ptr::null_mut(),
                pprev: core::ptr::null_mut(),
            },
            expires: 0,
            function: None,
            flags: 0,
        }
    }

    pub fn pending(&self) -> bool {
        !self.entry.pprev.is_null()
    }
}

impl Default for TimerList {
    fn default() -> Self {
        Self::new()
    }
}

/// `struct timer_base`.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct timer_base {
    pub lock: RawSpinlock,
    pub running_timer: *mut TimerList,
    pub cpu: u32,
    /// `hlist_head`: the first node.
    pub first: *mut HlistNode,
    /// Jiffy of the earliest pending timer (`u64::MAX`: none), cached as Linux's
    /// `base->next_expiry` so the tick and NO_HZ never read timer memory.
    pub next_expiry: u64,
}

/// The Rust-style name of `timer_base`.
pub type TimerBase = timer_base;

#[unsafe(no_mangle)]
pub static mut timer_bases: [TimerBase; NR_CPUS] = [const {
    TimerBase {
        lock: RawSpinlock::new(),
        running_timer: core::ptr::null_mut(),
        cpu: 0,
        first: core::ptr::null_mut(),
        next_expiry: u64::MAX,
    }
}; NR_CPUS];

fn base_of(cpu: u32) -> &'static mut TimerBase {
    // SAFETY: bases are only modified under their own lock.
    unsafe { &mut (*core::ptr::addr_of_mut!(timer_bases))[cpu as usize] }
}

/// `timer_setup`: the timer belongs to this CPU's base.
pub fn timer_setup(timer: &mut TimerList, function: TimerFn) {
    timer.entry.next = core::ptr::null_mut();
    timer.entry.pprev = core::ptr::null_mut();
    timer.function = Some(function);
    timer.flags = smp_processor_id();
}

/// Locks the base the timer is on (Linux's `lock_timer_base`).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lock_timer_base(timer: &TimerList, flags: &mut u64) -> &'static mut TimerBase {
    let base = base_of(timer.flags);
    *flags = _raw_spin_lock_irqsave(&base.lock);
    base
}

/// `__hlist_del` + poisoning, as Linux's `detach_timer`.
#[inline(always)]
fn detach_timer(timer: &mut TimerList) {
    let entry = &mut timer.entry;
    let next = entry.next;
    let pprev = entry.pprev;
    // SAFETY: `pprev` points at the previous node's `next` (or the base's `first`), and `next`
    // at a node on the same list — unless that memory was freed, which is the bug to show.
    unsafe {
        *pprev = next;
        if !next.is_null() {
            // `next->pprev = pprev`, with the registers 3.10's `__list_del` (`next->prev =
            // prev`) has in run_timer_softirq: `mov %rsi,0x8(%rcx)`, the store seed 002
            // faults on when `next` is a timer in freed memory.
            core::arch::asm!(
                "mov qword ptr [rcx + 8], rsi",
                in("rcx") next,
                in("rsi") pprev,
                options(nostack, preserves_flags)
            );
        }
    }
    entry.pprev = core::ptr::null_mut();
    entry.next = 0xdead_0000_0000_0122 as *mut HlistNode; // LIST_POISON2
}

/// Recomputes `next_expiry` from the list head (under the base lock).
fn recalc_next_expiry(base: &mut TimerBase) {
    let first = base.first;
    base.next_expiry = if first.is_null() {
        u64::MAX
    } else {
        // SAFETY: the head of the list is a pending timer (or freed memory: the bug to show).
        unsafe { (*(first as *mut TimerList)).expires }
    };
}

fn enqueue_timer(base: &mut TimerBase, timer: &mut TimerList) {
    base.next_expiry = base.next_expiry.min(timer.expires);
    let node = &mut timer.entry as *mut HlistNode;
    let mut link: *mut *mut HlistNode = &mut base.first;
    // SAFETY: the list holds live pending timers of this base (or a freed one: the bug).
    unsafe {
        while !(*link).is_null() && (*((*link) as *mut TimerList)).expires <= timer.expires {
            link = &mut (**link).next;
        }
        (*node).next = *link;
        if !(*link).is_null() {
            (**link).pprev = &mut (*node).next;
        }
        (*node).pprev = link;
        *link = node;
    }
}

/// Takes a pending timer off its base (under the base lock); returns whether it was pending.
fn detach_if_pending(base: &mut TimerBase, timer: &mut TimerList) -> bool {
    let pending = timer.pending();
    if pending {
        detach_timer(timer);
        recalc_next_expiry(base);
    }
    pending
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn mod_timer(timer: &mut TimerList, expires: u64) -> bool {
    let mut flags = 0;
    let base = lock_timer_base(timer, &mut flags);
    let was_pending = detach_if_pending(base, timer);
    timer.expires = expires;
    enqueue_timer(base, timer);
    let cpu = base.cpu;
    _raw_spin_unlock_irqrestore(&base.lock, flags);
    // A remote CPU with its tick stopped must look at its timers again.
    if cpu != smp_processor_id() {
        crate::kernel::sched::core::resched_curr(crate::kernel::sched::core::cpu_rq(cpu));
    }
    was_pending
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn add_timer(timer: &mut TimerList) {
    let expires = timer.expires;
    keep_frame!(mod_timer(timer, expires));
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn del_timer(timer: &mut TimerList) -> bool {
    let mut flags = 0;
    let base = lock_timer_base(timer, &mut flags);
    let was_pending = detach_if_pending(base, timer);
    _raw_spin_unlock_irqrestore(&base.lock, flags);
    was_pending
}

/// `del_timer_sync` (Linux's `timer_delete_sync` with `try_to_del_timer_sync`): deletes the
/// timer and waits until its callback is not running on any CPU, so that a callback that
/// re-arms it cannot do so after the delete. It must not be called from the timer's own
/// callback or with the base's CPU unable to run its softirq (as Linux's).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn del_timer_sync(timer: &mut TimerList) -> bool {
    loop {
        let mut flags = 0;
        let base = lock_timer_base(timer, &mut flags);
        if !core::ptr::eq(base.running_timer, timer) {
            let was_pending = detach_if_pending(base, timer);
            _raw_spin_unlock_irqrestore(&base.lock, flags);
            return was_pending;
        }
        _raw_spin_unlock_irqrestore(&base.lock, flags);
        // The callback runs on the base's CPU: look again a tick later (Linux spins with
        // cpu_relax; here the host runs that CPU meanwhile).
        let now = crate::init::main::local_clock();
        crate::arch::x86::lockvmm::wait_until(now + TICK_NSEC);
    }
}

/// From the tick: raise TIMER_SOFTIRQ if a timer of this CPU has expired.
pub fn run_local_timers() {
    // SAFETY: read of this CPU's own base (as `base_of`); `this_cpu_ptr_mut` stays inside it.
    let base = unsafe {
        &*crate::arch::x86::percpu::this_cpu_ptr_mut(core::ptr::addr_of_mut!(timer_bases))
    };
    if base.next_expiry <= jiffies() {
        raise_softirq(TIMER_SOFTIRQ);
    }
}

/// When this CPU's first timer expires, in virtual ns (for NO_HZ idle).
pub fn next_timer_interrupt() -> Option<u64> {
    let next = base_of(smp_processor_id()).next_expiry;
    (next != u64::MAX).then(|| next * TICK_NSEC)
}

/// TIMER_SOFTIRQ: run this CPU's expired timers (Linux's `run_timer_softirq` with
/// `__run_timers` and `expire_timers` inlined, as in the seed's kernel).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn run_timer_softirq() {
    let base = base_of(smp_processor_id());
    base.lock.lock_irq();
    let now = jiffies();
    loop {
        let first = base.first;
        if first.is_null() {
            break;
        }
        let timer = first as *mut TimerList;
        // SAFETY: the list's head timer; if its memory was freed, this faults under the lock.
        let timer = unsafe { &mut *timer };
        if timer.expires > now {
            break;
        }
        detach_timer(timer);
        base.running_timer = timer;
        let f = timer.function;
        base.lock.unlock_irq();
        if let Some(f) = f {
            call_timer_fn(timer, f);
        }
        base.lock.lock_irq();
    }
    base.running_timer = core::ptr::null_mut();
    recalc_next_expiry(base);
    base.lock.unlock_irq();
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn call_timer_fn(timer: &mut TimerList, f: TimerFn) {
    crate::kernel::trace::events::trace_timer_expire(
        lockvmm_abi::trace::TraceEvent::TimerExpire,
        f as usize as u64,
        timer as *mut TimerList as u64,
    );
    f(timer);
}

/// Every CPU's base knows its CPU.
pub fn init_timers_cpu(cpu: u32) {
    base_of(cpu).cpu = cpu;
}

/// A sleeping task's timer (Linux's `struct process_timer`).
#[repr(C)]
struct ProcessTimer {
    timer: TimerList,
    task: u64,
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn process_timeout(t: &mut TimerList) {
    // SAFETY: `t` is the first field of a live `ProcessTimer` on the sleeper's stack.
    let pt = unsafe { &*(t as *mut TimerList as *const ProcessTimer) };
    // SAFETY: `task` is the sleeping pool task.
    crate::kernel::sched::core::wake_up_process(unsafe {
        &mut *(pt.task as *mut crate::kernel::sched::task::TaskStruct)
    });
}

/// Sleeps for `timeout` jiffies (the caller set the task state).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn schedule_timeout(timeout: u64) {
    let me = crate::kernel::sched::core::current();
    let mut pt = ProcessTimer {
        timer: TimerList::new(),
        task: me as *mut _ as u64,
    };
    timer_setup(&mut pt.timer, process_timeout);
    pt.timer.expires = jiffies() + timeout.max(1);
    add_timer(&mut pt.timer);
    crate::kernel::sched::core::schedule();
    del_timer_sync(&mut pt.timer);
}

/// `msleep`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn msleep(ms: u64) {
    crate::kernel::sched::might_sleep::might_sleep();
    crate::kernel::sched::core::set_current_state(crate::kernel::sched::task::TASK_UNINTERRUPTIBLE);
    keep_frame!(schedule_timeout(ms.div_ceil(1000 / super::HZ)));
}

/// Sleeps until the virtual clock reaches `ns` (a scenario task's start time).
pub fn msleep_until(ns: u64) {
    let now = crate::init::main::local_clock();
    if ns > now {
        msleep((ns - now).div_ceil(1_000_000));
    }
}
