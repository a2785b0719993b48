//! Kernel threads (Linux's `kernel/kthread.c` and the kthread half of `fork`).
use core::sync::atomic::Ordering;

use crate::arch::x86::entry::entry_64::ret_from_fork;
use crate::arch::x86::kernel::head_64::THREAD_SIZE;
use crate::kernel::sched::core::{schedule, set_current_state, wake_up_process};
use crate::kernel::sched::task::*;

/// What a kthread runs.
pub type ThreadFn = extern "C" fn(arg: u64);

/// Creates a kthread pinned to `cpu`, not yet running (`kthread_create_on_cpu`).
pub fn kthread_create_on_cpu(
    threadfn: ThreadFn,
    arg: u64,
    cpu: u32,
    name: &[u8],
    pid: u32,
) -> Option<&'static mut TaskStruct> {
    let p = kthread_create_on_cpu_unnamed(threadfn, arg, cpu, pid)?;
    p.set_comm(name);
    Some(p)
}

/// `kthread_create_on_cpu` with a `"name/%u"` format: the thread is named `prefix` + `cpu`.
#[inline(always)]
pub fn kthread_create_on_cpu_fmt<const P: usize>(
    threadfn: ThreadFn,
    arg: u64,
    cpu: u32,
    prefix: &[u8; P],
    pid: u32,
) -> Option<&'static mut TaskStruct> {
    let p = kthread_create_on_cpu_unnamed(threadfn, arg, cpu, pid)?;
    p.set_comm_cpu(prefix, cpu);
    Some(p)
}

/// The task of `kthread_create_on_cpu`, its name left to the caller.
#[inline(always)]
fn kthread_create_on_cpu_unnamed(
    threadfn: ThreadFn,
    arg: u64,
    cpu: u32,
    pid: u32,
) -> Option<&'static mut TaskStruct> {
    let t = alloc_task()?;
    // SAFETY: a freshly allocated pool task, not yet visible to anyone else.
    let p = unsafe { &mut *t };
    p.pid = pid;
    p.cpu = cpu;
    p.cpus_mask = [0; 4];
    p.cpus_mask[cpu as usize / 64] = 1 << (cpu % 64);
    p.flags = PF_KTHREAD;
    p.state.store(TASK_UNINTERRUPTIBLE, Ordering::Relaxed);
    copy_thread(p, threadfn, arg);
    Some(p)
}

/// Builds the first frame `__switch_to_asm` pops for a new task: six callee-saved registers
/// (rbx = the thread function via `kthread`, r12 = its argument, rbp = 0 ends unwinding),
/// then `ret_from_fork` as the return address.
fn copy_thread(p: &mut TaskStruct, threadfn: ThreadFn, arg: u64) {
    let top = p.stack + THREAD_SIZE as u64;
    // ret_from_fork then starts with RSP 16-byte aligned, as a call site expects.
    let frame: [u64; 9] = [
        0,                                 // r15
        0,                                 // r14
        0,                                 // r13
        arg,                               // r12
        kthread_entry(threadfn),           // rbx
        0,                                 // rbp
        ret_from_fork as *const () as u64, // return address of __switch_to
        0,                                 // (the end of the stack)
        0,
    ];
    let sp = top - 8 * frame.len() as u64;
    // SAFETY: the frame lies inside the task's own, unused stack.
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), sp as *mut u64, frame.len()) };
    p.thread_sp = sp;
    // SAFETY: `threadfn` is stored where `kthread` finds it: the pool slot's own table.
    unsafe { KTHREAD_FNS[slot_of(p)] = threadfn as *const () as u64 };
}

static mut KTHREAD_FNS: [u64; MAX_TASKS] = [0; MAX_TASKS];

fn slot_of(p: &TaskStruct) -> usize {
    (p as *const TaskStruct as usize - task(0) as usize) / core::mem::size_of::<TaskStruct>()
}

fn kthread_entry(_f: ThreadFn) -> u64 {
    kthread as *const () as u64
}

/// Every kthread starts here (Linux's `kthread`): run the thread function, then exit.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn kthread(arg: u64) -> ! {
    let me = crate::kernel::sched::core::current();
    // SAFETY: written by `copy_thread` before the task could run.
    let f = unsafe { KTHREAD_FNS[slot_of(me)] };
    // SAFETY: the address of a `ThreadFn` stored by `copy_thread`.
    let threadfn: ThreadFn = unsafe { core::mem::transmute::<u64, ThreadFn>(f) };
    threadfn(arg);
    do_exit()
}

/// The task is done: it never runs again.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn do_exit() -> ! {
    loop {
        set_current_state(TASK_DEAD);
        schedule();
    }
}

/// `kthread_run`: create and wake.
pub fn kthread_run(
    threadfn: ThreadFn,
    arg: u64,
    cpu: u32,
    name: &[u8],
    pid: u32,
) -> Option<&'static mut TaskStruct> {
    let p = kthread_create_on_cpu(threadfn, arg, cpu, name, pid)?;
    wake_up_process(p);
    Some(p)
}
