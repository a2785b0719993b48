//! The lab: runs the tasks of the scenario the host loaded (see `lockvmm_abi::ProgramHeader`).
//!
//! Each task becomes a kernel thread pinned to its CPU, with the scenario's comm and pid, that
//! performs its ops in order through the kernel's real paths.
pub mod handlers;
pub mod hog;
pub mod locks;
mod ops;
mod selftest;
pub mod user;

pub use ops::run_ops;

use core::mem::size_of;
use core::sync::atomic::{AtomicU32, Ordering};

use lockvmm_abi::hook::Hook;
use lockvmm_abi::program::{Gfp, Policy};
use lockvmm_abi::{
    HandlerDesc, LockDesc, OpDesc, PAGE_OFFSET, PROGRAM_POWER_OFF_WHEN_DONE, ProgramHeader,
    TaskDesc,
};

use crate::arch::x86::lockvmm;
use crate::init::main::{boot_info, local_clock};
use crate::kernel::kthread::kthread_create_on_cpu;
use crate::kernel::locking::spinlock::RawSpinlock;
use crate::kernel::sched::core::wake_up_process;
use crate::kernel::sched::task::SCHED_FIFO;
use crate::mm::gfp::{GFP_ATOMIC, GFP_KERNEL, GfpT};

/// Number of tasks that have run to completion.
#[unsafe(no_mangle)]
pub static lab_tasks_done: AtomicU32 = AtomicU32::new(0);
/// The lock `hog_thread` takes with `spin_lock_irqsave` (the seed's `DEFINE_SPINLOCK(lock)`).
#[unsafe(no_mangle)]
pub static hog_lock: RawSpinlock = RawSpinlock::new();

struct Program {
    header: &'static ProgramHeader,
    tasks: &'static [TaskDesc],
    handlers: &'static [HandlerDesc],
    locks: &'static [LockDesc],
    ops: &'static [OpDesc],
}

fn program() -> Option<Program> {
    let info = boot_info();
    if info.program_len < size_of::<ProgramHeader>() as u64 {
        return None;
    }
    let base = PAGE_OFFSET + info.program_paddr;
    // SAFETY: the host placed the program (header, tasks, handlers, locks, ops) inside guest
    // RAM in the direct map and sized `program_len` to match; the layout is `#[repr(C)]`.
    unsafe {
        let header = &*(base as *const ProgramHeader);
        let tasks_at = base + size_of::<ProgramHeader>() as u64;
        let handlers_at = tasks_at + (header.nr_tasks as usize * size_of::<TaskDesc>()) as u64;
        let locks_at =
            handlers_at + (header.nr_handlers as usize * size_of::<HandlerDesc>()) as u64;
        let ops_at = locks_at + (header.nr_locks as usize * size_of::<LockDesc>()) as u64;
        Some(Program {
            header,
            tasks: core::slice::from_raw_parts(
                tasks_at as *const TaskDesc,
                header.nr_tasks as usize,
            ),
            handlers: core::slice::from_raw_parts(
                handlers_at as *const HandlerDesc,
                header.nr_handlers as usize,
            ),
            locks: core::slice::from_raw_parts(
                locks_at as *const LockDesc,
                header.nr_locks as usize,
            ),
            ops: core::slice::from_raw_parts(ops_at as *const OpDesc, header.nr_ops as usize),
        })
    }
}

/// Starts every task on its CPU. Returns whether the machine should power off now (nothing
/// to run, and the scenario does not ask to keep running).
pub fn run_program() -> bool {
    let Some(prog) = program() else { return true };
    handlers::init();
    locks::init();
    if prog.tasks.is_empty() {
        return prog.header.flags & PROGRAM_POWER_OFF_WHEN_DONE != 0;
    }
    for (i, t) in prog.tasks.iter().enumerate() {
        let Some(policy) = Policy::from_raw(t.policy) else {
            bad_policy(i, t.policy);
            continue;
        };
        let comm_len = t.comm.iter().position(|&b| b == 0).unwrap_or(t.comm.len());
        let Some(p) = kthread_create_on_cpu(lab_task, i as u64, t.cpu, &t.comm[..comm_len], t.pid)
        else {
            printk!("lab: cannot create task {}", i);
            continue;
        };
        match policy {
            Policy::Fifo => {
                p.policy = SCHED_FIFO;
                p.rt_priority = t.rt_priority.clamp(1, 99);
            }
            Policy::Normal => {}
        }
        wake_up_process(p);
    }
    false
}

/// Reports a task whose policy is not one the contract defines; the task is not started.
#[cold]
#[inline(never)]
fn bad_policy(task: usize, raw: u32) {
    printk!("lab: task {}: unknown policy {}", task, raw);
}

/// Body of every lab task.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_task(idx: u64) {
    let Some(prog) = program() else { return };
    let Some(task) = prog.tasks.get(idx as usize) else {
        return;
    };
    lockvmm::hook(Hook::TaskStart, u64::from(task.pid));
    let cur = crate::kernel::sched::core::current();
    printk!(
        "lab: {}:{} running on CPU {}",
        cur.comm(),
        task.pid,
        task.cpu
    );
    if task.start_ns != 0 {
        crate::kernel::time::timer::msleep_until(task.start_ns);
    }
    let first = task.first_op as usize;
    run_ops(
        prog.ops
            .get(first..first + task.nr_ops as usize)
            .unwrap_or(&[]),
    );
    let count = crate::arch::x86::preempt::preempt_count();
    if count != 0 {
        // As Linux's do_exit: a task that ends with a spinlock held or preemption off.
        printk!(
            "note: {}[{}] exited with preempt_count {}",
            cur.comm(),
            task.pid,
            count
        );
        // do_exit then sets the count back to PREEMPT_ENABLED.
        crate::arch::x86::preempt::preempt_count_sub(count);
    }
    let done = lab_tasks_done.fetch_add(1, Ordering::AcqRel) + 1;
    if done == prog.header.nr_tasks && prog.header.flags & PROGRAM_POWER_OFF_WHEN_DONE != 0 {
        crate::kernel::reboot::kernel_power_off();
    }
}

/// `cpu_relax()`: `pause`, and let the host run someone else until an event for this CPU.
#[inline(always)]
pub fn cpu_relax() {
    // SAFETY: `pause` is a hint with no architectural effect.
    unsafe { core::arch::asm!("pause", options(nomem, nostack, preserves_flags)) };
    lockvmm::wait_for_event();
}

/// Busy for `ms` virtual milliseconds, as the CPU is (interrupts and preemption unchanged).
/// Each spin yields the host CPU until an event or the end time, so time passes even with
/// interrupts off.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_busy(ms: u64) {
    let end = local_clock().saturating_add(ms.saturating_mul(1_000_000));
    while local_clock() < end {
        // SAFETY: `pause` is a hint with no architectural effect.
        unsafe { core::arch::asm!("pause", options(nomem, nostack, preserves_flags)) };
        lockvmm::wait_until(if end == u64::MAX { 0 } else { end });
    }
}

/// HI_SOFTIRQ raised by the lab: counted and logged.
#[unsafe(no_mangle)]
pub static lab_softirqs: AtomicU32 = AtomicU32::new(0);

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_softirq_action() {
    let n = lab_softirqs.fetch_add(1, Ordering::Relaxed) + 1;
    printk!("lab: HI_SOFTIRQ ran ({} so far)", n);
}

/// A fresh cache per call, so each allocation takes the slow path into `allocate_slab`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_kmalloc_irqs_off(gfp: Gfp) {
    let cache = crate::mm::slub::kmem_cache_create(b"lab_cache", 256);
    let gfp = gfp_flags(gfp);
    crate::arch::x86::irqflags::local_irq_disable();
    // SAFETY: `kmem_cache_create` returns a pool cache.
    crate::mm::slub::kmem_cache_alloc(unsafe { &mut *cache }, gfp);
    crate::arch::x86::irqflags::local_irq_enable();
}

/// The GFP flags of an op's [`Gfp`].
pub(crate) fn gfp_flags(gfp: Gfp) -> GfpT {
    match gfp {
        Gfp::Kernel => GFP_KERNEL,
        Gfp::Atomic => GFP_ATOMIC,
    }
}
