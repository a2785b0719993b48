//! The periodic tick and NO_HZ idle (Linux's `kernel/time/tick-sched.c`). A busy CPU ticks at
//! HZ; an idle CPU stops its tick and sleeps until its next timer (wheel or hrtimer), so 64 idle
//! CPUs cost nothing while the clock runs.
use lockvmm_abi::NR_CPUS;

use super::hrtimer::{Hrtimer, HrtimerRestart, hrtimer_cancel, hrtimer_start};
use super::timer::{next_timer_interrupt, run_local_timers};
use super::{TICK_NSEC, ktime_get};
use crate::arch::x86::percpu::this_cpu_ptr_mut;
use crate::kernel::sched::core::scheduler_tick;

#[repr(C)]
#[allow(non_camel_case_types)]
pub struct tick_sched {
    pub sched_timer: Hrtimer,
    pub tick_stopped: bool,
}

/// The Rust-style name of `tick_sched`.
pub type TickSched = tick_sched;

#[unsafe(no_mangle)]
pub static mut tick_cpu_sched: [TickSched; NR_CPUS] = [const {
    TickSched {
        sched_timer: Hrtimer::new(tick_sched_timer),
        tick_stopped: true,
    }
}; NR_CPUS];

fn this_ts() -> &'static mut TickSched {
    // SAFETY: each CPU only touches its own entry, with interrupts off or from its own timer.
    unsafe { &mut *this_cpu_ptr_mut(core::ptr::addr_of_mut!(tick_cpu_sched)) }
}

/// The next tick boundary after `now` (ticks are aligned across CPUs, as Linux's).
fn next_tick(now: u64) -> u64 {
    (now / TICK_NSEC + 1) * TICK_NSEC
}

#[inline(never)]
#[unsafe(no_mangle)]
pub fn tick_sched_timer(timer: &mut Hrtimer) -> HrtimerRestart {
    tick_sched_handle();
    if this_ts().tick_stopped {
        return HrtimerRestart::NoRestart;
    }
    timer.forward_now(TICK_NSEC);
    HrtimerRestart::Restart
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn tick_sched_handle() {
    keep_frame!(update_process_times());
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn update_process_times() {
    run_local_timers();
    keep_frame!(scheduler_tick());
}

/// Starts the periodic tick on this CPU (at bring-up and when it leaves idle).
pub fn tick_nohz_restart() {
    let ts = this_ts();
    ts.tick_stopped = false;
    let at = next_tick(ktime_get());
    hrtimer_start(&mut ts.sched_timer, at);
}

/// Entering idle: stop the tick; sleep until the next timer-wheel expiry, if any.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn tick_nohz_idle_enter() {
    let ts = this_ts();
    ts.tick_stopped = true;
    match next_timer_interrupt() {
        Some(expires) => hrtimer_start(&mut ts.sched_timer, expires.max(next_tick(ktime_get()))),
        None => hrtimer_cancel(&mut ts.sched_timer),
    }
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn tick_nohz_idle_exit() {
    tick_nohz_restart();
}
