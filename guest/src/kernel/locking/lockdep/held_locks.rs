//! The held-lock stacks (Linux's `current->held_locks[]` and `lockdep_depth`), kept per task
//! as Linux does: an interrupt's locks go on the stack of the task it interrupted, tagged with
//! the interrupt context (`hlock->irq_context`). Also the graph lock and the per-CPU
//! recursion guard every entry into lockdep takes (`graph_lock`, `lockdep_recursion`).
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use lockvmm_abi::NR_CPUS;
use lockvmm_abi::eflags::X86_EFLAGS_IF;

use super::classes::{CLASSHASH_SIZE, LockClass, MAX_LOCKDEP_KEYS, Trace};
use super::graph::{Dep, MAX_LOCKDEP_ENTRIES};
use crate::arch::x86::percpu::smp_processor_id;
use crate::kernel::sched::task::{MAX_TASKS, TaskStruct, task_pool};

/// Locks one task can hold at once (Linux: `MAX_LOCK_DEPTH`, 48).
pub const MAX_LOCK_DEPTH: usize = 24;

/// `struct held_lock`.
#[derive(Clone, Copy)]
pub struct HeldLock {
    /// The lock (`hlock->instance`).
    pub instance: u64,
    pub acquire_ip: u64,
    /// Index into the class table.
    pub class: u8,
    /// A shared (read) acquisition.
    pub read: bool,
    /// A recursive read (Linux's `read == 2`): with queued rwlocks only in interrupt context
    /// (`read_lock_is_recursive`), where a reader never waits behind a waiting writer.
    pub recursive: bool,
    pub trylock: bool,
    /// `LOCK_CHAIN_HARDIRQ_CONTEXT` (2) | `LOCK_CHAIN_SOFTIRQ_CONTEXT` (1).
    pub irq_context: u8,
    /// Interrupts were off when it was taken.
    pub hardirqs_off: bool,
}

impl HeldLock {
    const EMPTY: HeldLock = HeldLock {
        instance: 0,
        acquire_ip: 0,
        class: 0,
        read: false,
        recursive: false,
        trylock: false,
        irq_context: 0,
        hardirqs_off: false,
    };
}

/// One task's `held_locks[]` and `lockdep_depth`.
#[derive(Clone, Copy)]
pub struct TaskLocks {
    pub depth: usize,
    pub held: [HeldLock; MAX_LOCK_DEPTH],
}

/// Everything the graph lock protects.
pub struct Lockdep {
    pub nr_classes: usize,
    pub classes: [LockClass; MAX_LOCKDEP_KEYS],
    /// Class index + 1 per hash slot (0: empty).
    pub classhash: [u8; CLASSHASH_SIZE],
    pub nr_deps: usize,
    pub deps: [Dep; MAX_LOCKDEP_ENTRIES],
    pub tasks: [TaskLocks; MAX_TASKS],
}

static mut LOCKDEP: Lockdep = Lockdep {
    nr_classes: 0,
    classes: [LockClass::EMPTY; MAX_LOCKDEP_KEYS],
    classhash: [0; CLASSHASH_SIZE],
    nr_deps: 0,
    deps: [Dep::EMPTY; MAX_LOCKDEP_ENTRIES],
    tasks: [TaskLocks {
        depth: 0,
        held: [HeldLock::EMPTY; MAX_LOCK_DEPTH],
    }; MAX_TASKS],
};

/// `lockdep_lock`: an arch spinlock, so taking it never recurses into lockdep.
static GRAPH_LOCK: AtomicBool = AtomicBool::new(false);
/// Per-CPU `lockdep_recursion`: set while this CPU is inside lockdep (printing included), so
/// the locks printk takes are not validated.
static RECURSION: [AtomicU32; NR_CPUS] = [const { AtomicU32::new(0) }; NR_CPUS];

/// Inside lockdep: interrupts off, this CPU's recursion count raised, the graph lock held.
pub struct Guard {
    flags: u64,
    cpu: usize,
    /// The frame traces and reports start from (the hook dispatcher's).
    pub fp: u64,
}

impl Guard {
    /// `lockdep_enabled()` then `raw_local_irq_save` + `lockdep_recursion_inc` +
    /// `graph_lock`; `None` when lockdep must not run here (off, recursing, or in NMI:
    /// `nmi_enter` calls `lockdep_off`).
    pub fn enter(fp: u64) -> Option<Guard> {
        if !super::super::lockdep::DEBUG_LOCKS.load(Ordering::Relaxed)
            || crate::arch::x86::preempt::in_nmi()
        {
            return None;
        }
        let flags = crate::arch::x86::irqflags::native_save_fl();
        // SAFETY: raw `cli` (no trace hook: lockdep must not call itself); restored on drop.
        unsafe { core::arch::asm!("cli", options(nomem, nostack)) };
        let cpu = smp_processor_id() as usize;
        if RECURSION[cpu].load(Ordering::Relaxed) != 0 {
            restore(flags);
            return None;
        }
        RECURSION[cpu].store(1, Ordering::Relaxed);
        while GRAPH_LOCK
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        Some(Guard { flags, cpu, fp })
    }

    /// The state the graph lock protects.
    pub fn state(&mut self) -> &mut Lockdep {
        // SAFETY: the graph lock is held for as long as this guard lives, and `&mut self`
        // hands out one reference at a time.
        unsafe { &mut *core::ptr::addr_of_mut!(LOCKDEP) }
    }

    /// Whether interrupts were enabled where lockdep was entered from.
    pub fn hardirqs_enabled(&self) -> bool {
        self.flags & X86_EFLAGS_IF != 0
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        GRAPH_LOCK.store(false, Ordering::Release);
        RECURSION[self.cpu].store(0, Ordering::Relaxed);
        restore(self.flags);
    }
}

fn restore(flags: u64) {
    if flags & X86_EFLAGS_IF != 0 {
        // SAFETY: re-enables interrupts that were enabled when lockdep was entered.
        unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
    }
}

/// The index of task `t` in the pool (its held-lock stack).
pub fn task_index(t: *const TaskStruct) -> Option<usize> {
    let base = core::ptr::addr_of!(task_pool) as u64;
    let off = (t as u64).checked_sub(base)?;
    let i = (off / core::mem::size_of::<TaskStruct>() as u64) as usize;
    (i < MAX_TASKS).then_some(i)
}

impl TaskLocks {
    /// Removes entry `i`, keeping the order of the rest.
    pub fn remove(&mut self, i: usize) -> HeldLock {
        let h = self.held[i];
        self.held.copy_within(i + 1..self.depth, i);
        self.depth -= 1;
        h
    }
}

/// The irq context of the current code (`task_irq_context`).
pub fn irq_context() -> u8 {
    use crate::arch::x86::preempt::{in_irq, in_serving_softirq};
    (if in_irq() { 2 } else { 0 }) | u8::from(in_serving_softirq())
}

/// Softirqs are enabled (`curr->softirqs_enabled`): no softirq or bh-disable count.
pub fn softirqs_enabled() -> bool {
    crate::arch::x86::preempt::preempt_count() & 0xff00 == 0
}

/// The frame of the function that called the current one: the hook dispatcher's frame when
/// called from one of lockdep's `#[inline(never)]` entry points, so traces start at the lock
/// primitive (as Linux's `save_trace` skips lockdep's own frames).
#[inline(always)]
pub fn caller_frame() -> u64 {
    let fp: u64;
    // SAFETY: reads the saved frame pointer of the current frame, which is always mapped.
    unsafe {
        core::arch::asm!("mov {}, [rbp]", out(reg) fp, options(nostack, readonly, preserves_flags))
    };
    fp
}

/// A trace of the stack by frame pointers, from frame `fp` (its return address first).
pub fn save_trace(fp: u64) -> Trace {
    let mut t = [0u64; super::classes::TRACE_LEN];
    walk(fp, |i, ret| {
        t[i] = ret;
        i + 1 < t.len()
    });
    t
}

/// Calls `f(n, return address)` for each frame from `fp` while it returns true.
pub fn walk(mut fp: u64, mut f: impl FnMut(usize, u64) -> bool) {
    for n in 0..32 {
        if fp == 0 || !fp.is_multiple_of(8) || !crate::arch::x86::kernel::traps::on_a_stack(fp) {
            break;
        }
        // SAFETY: `fp..fp+16` lies on a kernel stack (checked above).
        let (next, ret) = unsafe { (*(fp as *const u64), *((fp + 8) as *const u64)) };
        if ret == 0 {
            break;
        }
        if !f(n, ret) {
            break;
        }
        // Frames grow up within a stack; a lower one is only the way from an IRQ stack back
        // to the task stack it interrupted (as `show_stack` walks).
        if next <= fp && next.abs_diff(fp) < 16384 {
            break;
        }
        fp = next;
    }
}
