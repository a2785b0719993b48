//! Seed 001's `hog.ko`: a kernel thread that prints `Hogging a CPU now` and loops, with
//! preemption off (the soft-lockup build: Ubuntu's 4.4 has no kernel preemption, so the seed's
//! bare `while (1);` never yields; here `preempt_disable` says the same) or holding a spinlock
//! taken with `spin_lock_irqsave` (the hard-lockup build). Its text lives in the module's own
//! section, loaded into module space by `kernel::module::load_hog` (so its RIP line reads
//! `hog_thread+0x…/0x1000 [hog]`, as the seed's).
//!
//! The lab's task stands for `insmod` and the `kthread_run(hog_thread, NULL, "hog")` of the
//! module's init: it loads the module, hands its name, pid, CPU and policy to the module's
//! kthread, and exits, so the Call Trace is the seed's (`hog_thread` ← `kthread` ←
//! `ret_from_fork`).
use lockvmm_abi::program::HogMode;

use super::{cpu_relax, hog_lock};
use crate::arch::x86::preempt::preempt_disable;
use crate::kernel::kthread::{do_exit, kthread_create_on_cpu};
use crate::kernel::sched::core::{current, wake_up_process};

/// The module's thread function (`hog_thread(void *data)`); `data` is the [`HogMode`].
#[inline(never)]
#[unsafe(no_mangle)]
#[unsafe(link_section = ".module.hog.text")]
pub extern "C" fn hog_thread(data: u64) {
    printk!("Hogging a CPU now");
    if data == HogMode::SpinLockIrqsave as u64 {
        let _flags = hog_lock.lock_irqsave();
    } else {
        preempt_disable();
    }
    loop {
        cpu_relax();
    }
}

/// `insmod hog.ko`: load the module, start its thread in this task's place, exit.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn insmod_hog(mode: HogMode) -> ! {
    if !crate::kernel::module::load_hog() {
        printk!("lab: insmod hog: the module cannot be loaded");
        do_exit();
    }
    let cur = current();
    let comm = cur.comm;
    let len = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    let (cpu, pid, policy, prio) = (cur.cpu, cur.pid, cur.policy, cur.rt_priority);
    match kthread_create_on_cpu(hog_thread, mode as u64, cpu, &comm[..len], pid) {
        Some(p) => {
            p.policy = policy;
            p.rt_priority = prio;
            wake_up_process(p);
        }
        None => printk!("lab: insmod hog: cannot create the thread"),
    }
    do_exit()
}
