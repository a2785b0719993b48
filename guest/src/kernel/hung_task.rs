//! The hung-task detector (Linux's `kernel/hung_task.c`, as in 4.4): `khungtaskd` wakes every
//! `hung_task_timeout_secs` and reports every task that has stayed in TASK_UNINTERRUPTIBLE
//! without a context switch since its previous look: Linux's third lockup detector, for tasks
//! asleep on a mutex, a semaphore or I/O that never comes.
use core::fmt::Write as _;
use core::sync::atomic::{AtomicU32, Ordering};

use lockvmm_abi::hypercall::{Hypercall, LockupKind};

use crate::arch::x86::lockvmm;
use crate::kernel::sched::core::wake_up_process;
use crate::kernel::sched::task::{MAX_TASKS, PF_IDLE, TASK_UNINTERRUPTIBLE, TaskStruct, task};
use crate::kernel::watchdog::MsgBuf;

/// `sysctl_hung_task_warnings`: reports left (Linux's default, 10).
#[unsafe(no_mangle)]
pub static sysctl_hung_task_warnings: AtomicU32 = AtomicU32::new(10);

fn timeout_secs() -> u64 {
    u64::from(crate::init::main::boot_info().hung_task_timeout_secs)
}

/// Starts `khungtaskd` on CPU 0 (unless `hung_task_timeout_secs = 0`).
pub fn hung_task_init() {
    if timeout_secs() == 0 {
        return;
    }
    match crate::kernel::kthread::kthread_create_on_cpu(hungtask_watchdog, 0, 0, b"khungtaskd", 40)
    {
        Some(t) => {
            wake_up_process(t);
        }
        None => printk!("hung_task: cannot create khungtaskd"),
    }
}

/// `khungtaskd`'s loop (Linux's `watchdog` in hung_task.c).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn hungtask_watchdog(_arg: u64) {
    let timeout = timeout_secs();
    loop {
        crate::kernel::time::timer::msleep(timeout * 1000);
        keep_frame!(check_hung_uninterruptible_tasks(timeout));
    }
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn check_hung_uninterruptible_tasks(timeout: u64) {
    for i in 0..MAX_TASKS {
        // SAFETY: pool tasks; the fields read are atomics or set once at creation.
        let t = unsafe { &*task(i) };
        if t.pid == 0
            || t.flags & PF_IDLE != 0
            || t.state.load(Ordering::Relaxed) != TASK_UNINTERRUPTIBLE
        {
            continue;
        }
        keep_frame!(check_hung_task(t, timeout));
    }
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn check_hung_task(t: &TaskStruct, timeout: u64) {
    let switch_count = t.nvcsw.load(Ordering::Relaxed);
    if switch_count != t.last_switch_count.load(Ordering::Relaxed) {
        t.last_switch_count.store(switch_count, Ordering::Relaxed);
        return;
    }
    if sysctl_hung_task_warnings
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_err()
    {
        return;
    }
    let mut msg = MsgBuf::new();
    let _ = write!(
        msg,
        "INFO: task {}:{} blocked for more than {} seconds.",
        t.comm(),
        t.pid,
        timeout
    );
    lockvmm::hypercall(
        Hypercall::Watchdog as u32,
        LockupKind::HungTask as u64,
        t as *const TaskStruct as u64,
        msg.buf.as_ptr() as u64,
        msg.len as u64,
    );
    printk!("{}", msg.as_str());
    printk!("      Not tainted 6.6.0-lockvmm #1");
    printk!("\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.");
    sched_show_task(t);
    if crate::init::main::boot_info().hung_task_panic != 0 {
        crate::kernel::panic::panic_fmt(format_args!("hung_task: blocked tasks"));
    }
}

/// `sched_show_task`: the task's line and its stack from where it switched out.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn sched_show_task(t: &TaskStruct) {
    printk!(
        "task:{:<15} state:D stack:0     pid:{:<5} ppid:2      flags:0x{:08x}",
        t.comm(),
        t.pid,
        t.flags
    );
    // `__switch_to_asm` left the task's frame pointer 40 bytes above its saved stack pointer.
    let sp = t.thread_sp;
    if sp != 0 {
        // SAFETY: a switched-out pool task's saved stack pointer points into its own stack,
        // where `__switch_to_asm` pushed six registers (RBP the sixth).
        let rbp = unsafe { *((sp + 40) as *const u64) };
        crate::arch::x86::kernel::traps::show_stack(rbp);
    }
}
