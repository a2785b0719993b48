//! The idle loop (Linux's `kernel/sched/idle.c`). An idle CPU polls its `need_resched` flag
//! the way mwait idle does: it waits on the flag's address with interrupts enabled, so a wakeup
//! from another CPU is a kick on the flag and needs no IPI.
use core::arch::asm;
use core::sync::atomic::{AtomicU32, Ordering};

use lockvmm_abi::{HYPERCALL_PORT, Hypercall};

use super::core::{__schedule, need_resched};
use crate::arch::x86::irqflags::{local_irq_disable, local_irq_enable};
use crate::arch::x86::percpu::this_cpu;
use crate::kernel::time::tick_sched::{tick_nohz_idle_enter, tick_nohz_idle_exit};

/// Every CPU ends its bring-up here. 3.10's `cpu_idle_loop` is inlined into it (seed 002's
/// `arch_cpu_idle` ← `cpu_startup_entry`); later kernels call `do_idle`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn cpu_startup_entry() -> ! {
    if old_idle_path() {
        loop {
            idle_loop_body();
        }
    }
    loop {
        do_idle();
    }
}

/// Whether this boot replays 3.10's (or 2.6's) idle path (`kernel/cpu/idle.c` of 3.10).
fn old_idle_path() -> bool {
    use lockvmm_abi::knob::KernelVersion::{V2_6, V3_10};
    matches!(crate::init::version::linux_version(), V3_10 | V2_6)
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn do_idle() {
    idle_loop_body();
}

/// One pass of the idle loop: wait until something is runnable, then schedule it.
#[inline(always)]
fn idle_loop_body() {
    tick_nohz_idle_enter();
    while !need_resched() {
        local_irq_disable();
        if need_resched() {
            local_irq_enable();
            break;
        }
        arch_cpu_idle();
    }
    tick_nohz_idle_exit();
    schedule_idle();
}

/// 3.10's `arch_cpu_idle` (`arch/x86/kernel/process.c`) asks cpuidle first
/// (`cpuidle_idle_call`); later kernels reach the default idle routine.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn arch_cpu_idle() {
    if old_idle_path() {
        keep_frame!(cpuidle_idle_call());
        return;
    }
    default_idle(&this_cpu().need_resched);
}

/// `cpuidle_idle_call` (3.10's `drivers/cpuidle/cpuidle.c`): enter the chosen state.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn cpuidle_idle_call() {
    keep_frame!(cpuidle_enter_state(&this_cpu().need_resched));
}

/// `cpuidle_enter_state`: the state's enter routine (an mwait/halt state) runs inline here,
/// so the timer interrupt that ends the idle period is taken at `cpuidle_enter_state+NN` with
/// interrupts on, as in seed 002.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn cpuidle_enter_state(flag: &AtomicU32) {
    safe_halt_wait(flag);
}

/// Linux's `safe_halt` (`sti; hlt`) with the host's wait in place of `hlt`: interrupts come on
/// in the shadow of `sti`, so a wake-up interrupt is taken right after the wait returns.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn default_idle(flag: &AtomicU32) {
    safe_halt_wait(flag);
}

#[inline(always)]
fn safe_halt_wait(flag: &AtomicU32) {
    // SAFETY: the hypercall only exits to the host (see `lockvmm::hypercall`); enabling
    // interrupts here is what idle is for.
    unsafe {
        asm!(
            "sti",
            "out dx, eax",
            inlateout("rax") Hypercall::Wait as u64 => _,
            in("dx") HYPERCALL_PORT,
            in("rdi") flag.as_ptr() as u64,
            in("rsi") 0u64,
            in("rcx") 0u64,
            in("r8") 0u64,
            options(nostack)
        );
    }
    let _ = flag.load(Ordering::Relaxed);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn schedule_idle() {
    // The idle task already runs with preemption disabled (one PREEMPT_OFFSET), which is the
    // count every switch happens at.
    __schedule(false);
}
