//! Time (Linux's `kernel/time`): the clockevent device (the host's virtual clock), hrtimers,
//! the periodic tick with NO_HZ idle, and the timer wheel.
pub mod clockevents;
pub mod hrtimer;
pub mod tick_sched;
pub mod timer;

/// The tick rate (CONFIG_HZ_100).
pub const HZ: u64 = lockvmm_abi::HZ;
pub const NSEC_PER_SEC: u64 = 1_000_000_000;
/// Nanoseconds per tick.
pub const TICK_NSEC: u64 = NSEC_PER_SEC / HZ;

/// `jiffies`, derived from the virtual clock (so every CPU agrees without a timekeeper).
pub fn jiffies() -> u64 {
    crate::init::main::local_clock() / TICK_NSEC
}

/// `ktime_get()`.
pub fn ktime_get() -> u64 {
    crate::init::main::local_clock()
}
