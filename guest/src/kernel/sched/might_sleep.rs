//! `might_sleep()` and its checker (`CONFIG_DEBUG_ATOMIC_SLEEP`, Linux's `__might_sleep` /
//! `__might_resched` in `kernel/sched/core.c`): code that may sleep says so, and a kernel with
//! the option checks it is not called in atomic context (a spinlock held, preemption or
//! interrupts disabled) and prints `BUG: sleeping function called from invalid context`.
use core::panic::Location;
use core::sync::atomic::{AtomicU64, Ordering};

use lockvmm_abi::hook::Hook;
use lockvmm_abi::lockdep::{SplatKind, SplatRecord};

use crate::arch::x86::irqflags::irqs_disabled;
use crate::arch::x86::preempt::preempt_count;
use crate::kernel::jump_label::{StaticKey, ret_ip};
use crate::kernel::printk::{LOGLEVEL_ERR, printk};
use crate::kernel::sched::core::current;

/// On with `CONFIG_DEBUG_ATOMIC_SLEEP` (set once at boot).
pub static DEBUG_ATOMIC_SLEEP: StaticKey = StaticKey::new();

/// `might_sleep()`: the caller may sleep. Costs one load and branch with the option off; the
/// report names the caller's file and line (Linux: `__FILE__`, `__LINE__`).
#[track_caller]
#[inline(always)]
pub fn might_sleep() {
    if DEBUG_ATOMIC_SLEEP.unlikely() {
        __might_sleep(Location::caller());
    }
}

/// `might_sleep_if(cond)`.
#[track_caller]
#[inline(always)]
pub fn might_sleep_if(cond: bool) {
    if DEBUG_ATOMIC_SLEEP.unlikely() && cond {
        __might_sleep(Location::caller());
    }
}

/// `__might_sleep(file, line)`.
#[cold]
#[inline(never)]
#[unsafe(no_mangle)]
pub fn __might_sleep(at: &'static Location<'static>) {
    let ip = ret_ip();
    keep_frame!(__might_resched(at, 0, ip));
}

/// Jiffy-like stamp (virtual ns) of the last report: `__might_resched` prints at most one a
/// second (`prev_jiffy + HZ`).
static PREV_REPORT: AtomicU64 = AtomicU64::new(0);

/// The record the host reads for the latest report.
static mut RECORD: SplatRecord = crate::kernel::locking::lockdep::empty_record();

/// `__might_resched(file, line, offsets)`.
#[cold]
#[inline(never)]
#[unsafe(no_mangle)]
pub fn __might_resched(at: &'static Location<'static>, offsets: u32, ip: u64) {
    let count = preempt_count();
    let irqs_off = irqs_disabled();
    let cur = current();
    if count == offsets && !irqs_off && !cur.is_idle() {
        return;
    }
    let now = crate::init::main::local_clock().max(1);
    let prev = PREV_REPORT.load(Ordering::Relaxed);
    if prev != 0 && now < prev + 1_000_000_000 {
        return;
    }
    if PREV_REPORT
        .compare_exchange(prev, now, Ordering::Relaxed, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    // Linux prints paths relative to the tree; these are relative to the guest crate.
    let file = at.file().strip_prefix("src/").unwrap_or(at.file());
    let err = |args: core::fmt::Arguments| printk(LOGLEVEL_ERR, args);
    err(format_args!(
        "BUG: sleeping function called from invalid context at {}:{}",
        file,
        at.line()
    ));
    err(format_args!(
        "in_atomic(): {}, irqs_disabled(): {}, non_block: {}, pid: {}, name: {}",
        u32::from(count != 0),
        u32::from(irqs_off),
        0,
        cur.pid,
        cur.comm()
    ));
    err(format_args!(
        "preempt_count: {:x}, expected: {:x}",
        count, offsets
    ));
    crate::kernel::locking::lockdep::print_held_locks_of_current();
    let fp: u64;
    // SAFETY: reads this function's own frame pointer.
    unsafe { core::arch::asm!("mov {}, rbp", out(reg) fp, options(nomem, nostack)) };
    crate::kernel::locking::lockdep::dump_stack(fp);
    // SAFETY: reports are serialised by the `PREV_REPORT` exchange above (one a second).
    let r = unsafe { &mut *core::ptr::addr_of_mut!(RECORD) };
    crate::kernel::locking::lockdep::stamp(r, SplatKind::SleepInAtomic, ip);
    r.preempt_count = count;
    r.irqs_disabled = u32::from(irqs_off);
    crate::arch::x86::lockvmm::hook(Hook::LockdepSplat, r as *const SplatRecord as u64);
}
