//! The scheduler core (Linux's `kernel/sched/core.c`).
//!
//! Each CPU has a `struct rq` in `runqueues[]`, protected by `rq->__lock` (its first member, as
//! in Linux). Runnable tasks other than `curr` wait in a FIFO per class (RT above fair); the
//! idle task runs when both are empty. Switching is `__schedule` → `context_switch` →
//! `switch_to` → `finish_task_switch`, which calls `perf_event_task_sched_in` with the rq lock
//! still held and interrupts off, exactly the window the LBR seed is about.
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use lockvmm_abi::{NR_CPUS, vector::RESCHEDULE_VECTOR};

use super::rq_lock::{rq_lock_irqsave, rq_unlock_irq, rq_unlock_irqrestore};
use super::task::*;
use crate::arch::x86::entry::entry_64::__switch_to_asm;
use crate::arch::x86::irqflags::{local_irq_disable, local_irq_enable};
use crate::arch::x86::lockvmm;
use crate::arch::x86::percpu::{per_cpu, smp_processor_id, this_cpu};
use crate::arch::x86::preempt::{
    PREEMPT_OFFSET, preempt_count_add, preempt_count_sub, preempt_enable,
};
use crate::kernel::locking::spinlock::{_raw_spin_lock, _raw_spin_unlock, RawSpinlock};

/// `struct rq`. `__lock` first and `nr_running` at offset 4, as `crash> struct rq -o` shows.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct rq {
    pub __lock: RawSpinlock,
    pub nr_running: AtomicU32,
    /// Seed 000's kernel (TencentOS) has its BT (offline) class's count here: `struct rq -o`
    /// shows `[8] bt_nr_running`. The lab has no BT class; it stays 0. It takes the padding
    /// before `nr_switches`, so no later offset moves.
    pub bt_nr_running: AtomicU32,
    pub cpu: u32,
    pub nr_switches: AtomicU64,
    pub curr: AtomicU64,
    pub idle: AtomicU64,
    /// Heads and tails of the RT and fair FIFOs (`*mut TaskStruct`).
    rt_head: AtomicU64,
    rt_tail: AtomicU64,
    cfs_head: AtomicU64,
    cfs_tail: AtomicU64,
    /// `rq->clock`, in virtual nanoseconds.
    pub clock: AtomicU64,
}

/// The Rust-style name of `rq`.
pub type Rq = rq;

#[allow(clippy::declare_interior_mutable_const)]
const RQ_INIT: Rq = Rq {
    __lock: RawSpinlock::new(),
    nr_running: AtomicU32::new(0),
    bt_nr_running: AtomicU32::new(0),
    cpu: 0,
    nr_switches: AtomicU64::new(0),
    curr: AtomicU64::new(0),
    idle: AtomicU64::new(0),
    rt_head: AtomicU64::new(0),
    rt_tail: AtomicU64::new(0),
    cfs_head: AtomicU64::new(0),
    cfs_tail: AtomicU64::new(0),
    clock: AtomicU64::new(0),
};

/// Linux's per-CPU `runqueues`.
#[unsafe(no_mangle)]
pub static mut runqueues: [Rq; NR_CPUS] = [RQ_INIT; NR_CPUS];

/// Round-robin slice of a fair task, in ticks.
const RR_TICKS: u32 = 3;

pub fn cpu_rq(cpu: u32) -> &'static Rq {
    // SAFETY: `cpu` < NR_CPUS; the only non-atomic field (`cpu`) is written once at init.
    unsafe { &(*core::ptr::addr_of!(runqueues))[cpu as usize] }
}

pub fn this_rq() -> &'static Rq {
    // SAFETY: as in `cpu_rq`; `this_cpu_ptr_mut` stays inside the array.
    unsafe { &*crate::arch::x86::percpu::this_cpu_ptr_mut(core::ptr::addr_of_mut!(runqueues)) }
}

/// `current`.
#[inline(always)]
pub fn current() -> &'static mut TaskStruct {
    // SAFETY: `current_task` always points at a live task of the pool (set at bring-up and by
    // every switch).
    unsafe { &mut *(this_cpu().current_task.load(Ordering::Relaxed) as *mut TaskStruct) }
}

fn task_ref(p: u64) -> &'static mut TaskStruct {
    // SAFETY: runqueue links and `curr` only ever hold addresses of pool tasks.
    unsafe { &mut *(p as *mut TaskStruct) }
}

/// Sets up this CPU's runqueue with its idle task as `curr` (Linux's `sched_init` + `init_idle`).
pub fn sched_init_cpu(cpu: u32) {
    let idle = init_idle(cpu);
    // SAFETY: each CPU initialises only its own runqueue, before anyone else uses it.
    unsafe {
        (*core::ptr::addr_of_mut!(runqueues))[cpu as usize].cpu = cpu;
    }
    let rq = cpu_rq(cpu);
    rq.idle.store(idle as u64, Ordering::Relaxed);
    rq.curr.store(idle as u64, Ordering::Relaxed);
    per_cpu(cpu)
        .current_task
        .store(idle as u64, Ordering::Relaxed);
}

// --- rq locking, with Linux's names (they show up in backtraces; the irq-disabling
// wrappers are `rq_lock.rs`, from Linux's `kernel/sched/sched.h`) ---

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn raw_spin_rq_lock_nested(rq: &Rq, _subclass: u32) {
    keep_frame!(_raw_spin_lock(&rq.__lock));
}

pub fn raw_spin_rq_lock(rq: &Rq) {
    keep_frame!(raw_spin_rq_lock_nested(rq, 0));
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn raw_spin_rq_unlock(rq: &Rq) {
    _raw_spin_unlock(&rq.__lock);
}

// --- runqueue lists (callers hold the rq lock) ---

fn queue_of<'a>(rq: &'a Rq, p: &TaskStruct) -> (&'a AtomicU64, &'a AtomicU64) {
    if p.policy == SCHED_FIFO {
        (&rq.rt_head, &rq.rt_tail)
    } else {
        (&rq.cfs_head, &rq.cfs_tail)
    }
}

fn enqueue_task(rq: &Rq, p: &mut TaskStruct, at_head: bool) {
    if p.on_rq.swap(1, Ordering::Relaxed) == 1 {
        return;
    }
    let (head, tail) = queue_of(rq, p);
    let me = p as *mut TaskStruct as u64;
    if head.load(Ordering::Relaxed) == 0 {
        p.run_next.store(0, Ordering::Relaxed);
        head.store(me, Ordering::Relaxed);
        tail.store(me, Ordering::Relaxed);
    } else if at_head {
        p.run_next
            .store(head.load(Ordering::Relaxed), Ordering::Relaxed);
        head.store(me, Ordering::Relaxed);
    } else {
        p.run_next.store(0, Ordering::Relaxed);
        task_ref(tail.load(Ordering::Relaxed))
            .run_next
            .store(me, Ordering::Relaxed);
        tail.store(me, Ordering::Relaxed);
    }
    rq.nr_running.fetch_add(1, Ordering::Relaxed);
}

/// Takes the best task of a queue (highest RT priority first; FIFO among equals).
fn dequeue_best(rq: &Rq, head: &AtomicU64, tail: &AtomicU64) -> Option<&'static mut TaskStruct> {
    let mut best = 0u64;
    let mut best_prev = 0u64;
    let (mut prev, mut cur) = (0u64, head.load(Ordering::Relaxed));
    while cur != 0 {
        let t = task_ref(cur);
        if best == 0 || t.prio_rank() > task_ref(best).prio_rank() {
            best = cur;
            best_prev = prev;
        }
        prev = cur;
        cur = t.run_next.load(Ordering::Relaxed);
    }
    if best == 0 {
        return None;
    }
    let t = task_ref(best);
    let next = t.run_next.load(Ordering::Relaxed);
    if best_prev == 0 {
        head.store(next, Ordering::Relaxed);
    } else {
        task_ref(best_prev).run_next.store(next, Ordering::Relaxed);
    }
    if tail.load(Ordering::Relaxed) == best {
        tail.store(best_prev, Ordering::Relaxed);
    }
    t.on_rq.store(0, Ordering::Relaxed);
    rq.nr_running.fetch_sub(1, Ordering::Relaxed);
    Some(t)
}

fn pick_next_task(rq: &Rq, prev: &mut TaskStruct) -> &'static mut TaskStruct {
    if prev.state.load(Ordering::Relaxed) == TASK_RUNNING && !prev.is_idle() {
        // A preempted RT task keeps its place at the head; a fair one goes to the back.
        enqueue_task(rq, prev, prev.policy == SCHED_FIFO);
    }
    dequeue_best(rq, &rq.rt_head, &rq.rt_tail)
        .or_else(|| dequeue_best(rq, &rq.cfs_head, &rq.cfs_tail))
        .unwrap_or_else(|| task_ref(rq.idle.load(Ordering::Relaxed)))
}

// --- switching ---

/// `need_resched()` for this CPU.
pub fn need_resched() -> bool {
    this_cpu().need_resched.load(Ordering::Relaxed) != 0
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn __schedule(preempt: bool) {
    let rq = this_rq();
    let prev = current();
    schedule_debug(prev);
    local_irq_disable();
    raw_spin_rq_lock(rq);
    this_cpu().need_resched.store(0, Ordering::Relaxed);
    if !preempt && prev.state.load(Ordering::Relaxed) != TASK_RUNNING {
        prev.on_rq.store(0, Ordering::Relaxed);
    }
    let next = pick_next_task(rq, prev);
    next.ticks = 0;
    if core::ptr::eq(next, prev) {
        rq_unlock_irq(rq);
        return;
    }
    rq.curr
        .store(next as *mut TaskStruct as u64, Ordering::Relaxed);
    rq.nr_switches.fetch_add(1, Ordering::Relaxed);
    prev.nvcsw.fetch_add(1, Ordering::Relaxed);
    crate::kernel::trace::events::trace_sched_switch(prev.pid, next.pid);
    keep_frame!(context_switch(rq, prev, next));
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn context_switch(_rq: &Rq, prev: &mut TaskStruct, next: &mut TaskStruct) {
    // SAFETY: both are pool tasks; `next` has a valid saved stack (it switched out through
    // here, or `copy_thread` built its first frame).
    let prev = unsafe { __switch_to_asm(prev, next) };
    // Now on `next`'s stack; `prev` is the task we switched away from.
    keep_frame!(finish_task_switch(prev));
}

/// The C half of `switch_to`: `current` becomes `next`, and an interrupt from user mode will
/// land on `next`'s kernel stack. Returns `prev` to the new stack.
///
/// # Safety
/// Only `__switch_to_asm` calls this, with two live pool tasks, on `next`'s stack.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __switch_to(
    prev: *mut TaskStruct,
    next: *mut TaskStruct,
) -> *mut TaskStruct {
    this_cpu()
        .current_task
        .store(next as u64, Ordering::Relaxed);
    // SAFETY: `next` is a live pool task.
    let top = unsafe { (*next).stack } + crate::arch::x86::kernel::head_64::THREAD_SIZE as u64;
    crate::arch::x86::kernel::cpu::common::load_sp0(smp_processor_id(), top);
    this_cpu()
        .cpu_current_top_of_stack
        .store(top, Ordering::Relaxed);
    prev
}

/// Runs on the new task right after the switch, with the rq lock held and interrupts off.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn finish_task_switch(prev: *mut TaskStruct) {
    let rq = this_rq();
    crate::kernel::locking::lockdep::lockdep_sched_handoff(prev, &rq.__lock as *const _ as u64);
    crate::kernel::events::core::perf_event_task_sched_in(prev, current());
    finish_lock_switch(rq);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn finish_lock_switch(rq: &Rq) {
    rq_unlock_irq(rq);
}

/// First thing a new task runs (from `ret_from_fork`).
#[unsafe(no_mangle)]
pub extern "C" fn schedule_tail(prev: *mut TaskStruct) {
    finish_task_switch(prev);
    preempt_enable();
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn schedule() {
    preempt_count_add(PREEMPT_OFFSET);
    __schedule(false);
    preempt_count_sub(PREEMPT_OFFSET);
}

/// `might_sleep()` (its checker is `CONFIG_DEBUG_ATOMIC_SLEEP`'s, in `might_sleep.rs`).
pub use super::might_sleep::might_sleep;

/// `schedule_debug`: sleeping while atomic (a spinlock held, preemption off) is a bug Linux
/// prints without any debug option: `BUG: scheduling while atomic: comm/pid/0x%08x`.
#[inline(always)]
fn schedule_debug(prev: &TaskStruct) {
    let count = crate::arch::x86::preempt::preempt_count();
    if count != PREEMPT_OFFSET && prev.flags & crate::kernel::sched::task::PF_IDLE == 0 {
        __schedule_bug(prev, count);
    }
}

#[cold]
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn __schedule_bug(prev: &TaskStruct, count: u32) {
    printk!(
        "BUG: scheduling while atomic: {}/{}/0x{:08x}",
        prev.comm(),
        prev.pid,
        count
    );
}

/// `_cond_resched()`: a voluntary preemption point in a long kernel loop.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn _cond_resched() {
    if crate::arch::x86::preempt::preempt_count() == 0 && need_resched() {
        preempt_schedule();
    }
}

/// Preemption from `preempt_enable`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn preempt_schedule() {
    while need_resched() {
        preempt_count_add(PREEMPT_OFFSET);
        __schedule(true);
        preempt_count_sub(PREEMPT_OFFSET);
    }
}

/// Preemption on return from an interrupt (interrupts are off on entry and exit).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn preempt_schedule_irq() {
    while need_resched() {
        preempt_count_add(PREEMPT_OFFSET);
        local_irq_enable();
        __schedule(true);
        local_irq_disable();
        preempt_count_sub(PREEMPT_OFFSET);
    }
}

// --- waking ---

/// Asks `rq`'s CPU to reschedule: set its flag, then wake it — a polling idle CPU just needs a
/// kick on the flag it waits on, a busy one needs the reschedule IPI.
pub fn resched_curr(rq: &Rq) {
    let cpu = rq.cpu;
    let flag = &per_cpu(cpu).need_resched;
    if flag.swap(1, Ordering::Relaxed) != 0 || cpu == smp_processor_id() {
        return;
    }
    if task_ref(rq.curr.load(Ordering::Relaxed)).is_idle() {
        lockvmm::kick(flag);
    } else {
        lockvmm::send_ipi(cpu, u64::from(RESCHEDULE_VECTOR));
    }
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn try_to_wake_up(p: &mut TaskStruct) -> bool {
    let rq = cpu_rq(p.cpu);
    let flags = rq_lock_irqsave(rq);
    if p.state.load(Ordering::Relaxed) == TASK_RUNNING {
        rq_unlock_irqrestore(rq, flags);
        return false;
    }
    p.state.store(TASK_RUNNING, Ordering::Relaxed);
    if !core::ptr::eq(p, task_ref(rq.curr.load(Ordering::Relaxed))) {
        enqueue_task(rq, p, false);
        if p.prio_rank() > task_ref(rq.curr.load(Ordering::Relaxed)).prio_rank() {
            resched_curr(rq);
        }
    }
    rq_unlock_irqrestore(rq, flags);
    true
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn wake_up_process(p: &mut TaskStruct) -> bool {
    keep_frame!(try_to_wake_up(p))
}

/// `set_current_state`.
pub fn set_current_state(state: u32) {
    current().state.store(state, Ordering::Relaxed);
}

// --- the tick ---

/// Called from the tick with interrupts off: accounts the running task and asks for a switch
/// when a fair task's slice is over (Linux's `scheduler_tick`, which takes the rq lock).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn scheduler_tick() {
    let rq = this_rq();
    raw_spin_rq_lock(rq);
    rq.clock
        .store(crate::init::main::local_clock(), Ordering::Relaxed);
    let curr = task_ref(rq.curr.load(Ordering::Relaxed));
    if !curr.is_idle() && curr.policy == SCHED_NORMAL {
        curr.ticks += 1;
        if curr.ticks >= RR_TICKS && rq.cfs_head.load(Ordering::Relaxed) != 0 {
            resched_curr(rq);
        }
    }
    raw_spin_rq_unlock(rq);
}

/// The reschedule IPI: `need_resched` is already set; the interrupt exit path switches.
#[unsafe(no_mangle)]
pub extern "C" fn scheduler_ipi() {}
