//! The trace events outside the shared lock and irq-flag hooks (Linux's `include/trace/events/`
//! `irq.h`, `sched.h`, `timer.h`, `printk.h`, and the lab's own): each call site costs one
//! compare and branch while tracing is off (the `TRACE_EVENTS` static key).
use lockvmm_abi::trace::{TraceEvent, WatchdogCheck};

use super::ring_buffer::trace_record;
use crate::kernel::jump_label::{StaticKey, ret_ip};

/// On when the trace ring buffer is (set once at boot by `instrument_init`).
pub static TRACE_EVENTS: StaticKey = StaticKey::new();

/// Records `event` if tracing is on (the out-of-line half keeps call sites small).
#[inline(always)]
pub fn trace_event(event: TraceEvent, ip: u64, arg: u64) {
    if TRACE_EVENTS.unlikely() {
        trace_record(event, ip, arg);
    }
}

/// `irq_handler_entry`.
#[inline(always)]
pub fn trace_irq_handler_entry(vector: u8) {
    trace_event(TraceEvent::IrqEntry, 0, u64::from(vector));
}

/// `irq_handler_exit`.
#[inline(always)]
pub fn trace_irq_handler_exit(vector: u8) {
    trace_event(TraceEvent::IrqExit, 0, u64::from(vector));
}

/// `softirq_entry`.
#[inline(always)]
pub fn trace_softirq_entry(nr: u32) {
    trace_event(TraceEvent::SoftirqEntry, 0, u64::from(nr));
}

/// `softirq_exit`.
#[inline(always)]
pub fn trace_softirq_exit(nr: u32) {
    trace_event(TraceEvent::SoftirqExit, 0, u64::from(nr));
}

/// `sched_switch` (prev and next pids).
#[inline(always)]
pub fn trace_sched_switch(prev_pid: u32, next_pid: u32) {
    trace_event(
        TraceEvent::SchedSwitch,
        0,
        u64::from(next_pid) << 32 | u64::from(prev_pid),
    );
}

/// `hrtimer_expire_entry` / `timer_expire_entry`: `function` is about to run for `timer`.
#[inline(always)]
pub fn trace_timer_expire(event: TraceEvent, function: u64, timer: u64) {
    trace_event(event, function, timer);
}

/// A watchdog touch (from `touch_softlockup_watchdog` / `touch_nmi_watchdog`): `ip` is
/// who touched it.
#[inline(always)]
pub fn trace_watchdog_touch() {
    trace_event(TraceEvent::WatchdogTouch, ret_ip(), 0);
}

/// A watchdog check and its verdict.
#[inline(always)]
pub fn trace_watchdog_check(which: WatchdogCheck, lockup: bool) {
    trace_event(
        TraceEvent::WatchdogCheck,
        0,
        u64::from(which.raw()) << 32 | u64::from(lockup),
    );
}
