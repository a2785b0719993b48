//! The soft-lockup detector (Linux's `kernel/watchdog.c`).
//!
//! Each CPU has an hrtimer firing every `2 * watchdog_thresh / 5` seconds and a SCHED_FIFO 99
//! thread `watchdog/N`. The timer counts itself in `hrtimer_interrupts` (the hard-lockup
//! detector's evidence that interrupts still run), wakes the thread, and checks the timestamp
//! the thread leaves each time it runs. If the thread has not run for `2 * watchdog_thresh`
//! seconds, something keeps the CPU in the kernel without scheduling: a soft lockup.
//!
//! The rules and messages follow the version this boot replays (`linux_version()`):
//! - 6.6 (`kernel/watchdog.c`): `watchdog: BUG: soft lockup …` at KERN_EMERG; a report when
//!   `now > watchdog_report_ts + thresh`, re-reported every threshold while the CPU stays stuck
//!   (`update_report_ts`); `touch_softlockup_watchdog` sets the report timestamp to
//!   `SOFTLOCKUP_DELAY_REPORT`.
//! - 4.4 (`kernel/watchdog.c`, `pr_fmt` "NMI watchdog: "): the `touch_ts == 0` rule, one report
//!   per stuck task (`soft_watchdog_warn`, re-armed when another task is found stuck:
//!   `softlockup_task_ptr_saved`), then `add_taint(TAINT_SOFTLOCKUP)`.
//! - 3.10 (`kernel/watchdog.c`, no `pr_fmt`): as 4.4, one report per stuck episode, no taint.
//! - 2.6.32 (`kernel/softlockup.c`): `softlockup_thresh` is `watchdog_thresh` itself (60 s by
//!   default, seed 003), checked on every tick (here every second), KERN_ERR, one report per
//!   episode.
//!
//! `watchdog_thresh = 0` turns both detectors off, as Linux's `proc_watchdog_thresh` does.
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

use lockvmm_abi::hypercall::LockupKind;
use lockvmm_abi::{Hypercall, NR_CPUS, PtRegs};

use lockvmm_abi::knob::KernelVersion;

use crate::arch::x86::kernel::irq::get_irq_regs;
use crate::arch::x86::kernel::traps::show_regs;
use crate::arch::x86::lockvmm;
use crate::arch::x86::percpu::smp_processor_id;
use crate::init::version::linux_version;
use crate::kernel::kthread::kthread_run;
use crate::kernel::sched::core::{current, schedule, set_current_state, wake_up_process};
use crate::kernel::sched::task::{SCHED_FIFO, TASK_INTERRUPTIBLE, TaskStruct};
use crate::kernel::time::hrtimer::{Hrtimer, HrtimerRestart, hrtimer_start};
use crate::kernel::time::{NSEC_PER_SEC, ktime_get};

#[allow(clippy::declare_interior_mutable_const)]
const Z: AtomicU64 = AtomicU64::new(0);
/// Per-CPU state, under Linux's names.
#[unsafe(no_mangle)]
pub static watchdog_touch_ts: [AtomicU64; NR_CPUS] = [Z; NR_CPUS];
#[unsafe(no_mangle)]
pub static hrtimer_interrupts: [AtomicU64; NR_CPUS] = [Z; NR_CPUS];
#[unsafe(no_mangle)]
pub static soft_watchdog_warn: [AtomicU64; NR_CPUS] = [Z; NR_CPUS];
/// 6.6's `watchdog_report_ts`: the start of the current reporting period.
#[unsafe(no_mangle)]
pub static watchdog_report_ts: [AtomicU64; NR_CPUS] = [Z; NR_CPUS];
/// 4.4's `softlockup_task_ptr_saved`: the task the last report was about.
#[unsafe(no_mangle)]
pub static softlockup_task_ptr_saved: [AtomicU64; NR_CPUS] = [Z; NR_CPUS];
/// `soft_lockup_nmi_warn`: one CPU at a time dumps every CPU's backtrace.
#[unsafe(no_mangle)]
pub static soft_lockup_nmi_warn: AtomicU64 = AtomicU64::new(0);
/// 6.6's `SOFTLOCKUP_DELAY_REPORT`: the watchdog was touched, restart the period.
const SOFTLOCKUP_DELAY_REPORT: u64 = u64::MAX;
#[unsafe(no_mangle)]
pub static softlockup_watchdog: [AtomicU64; NR_CPUS] = [Z; NR_CPUS];
#[unsafe(no_mangle)]
pub static mut watchdog_hrtimer: [Hrtimer; NR_CPUS] =
    [const { Hrtimer::new(watchdog_timer_fn) }; NR_CPUS];

pub fn watchdog_thresh() -> u64 {
    u64::from(crate::init::main::boot_info().watchdog_thresh)
}

/// `get_softlockup_thresh()`: twice `watchdog_thresh` since 2.6.36; 2.6.32's
/// `softlockup_thresh` was the knob itself.
fn get_softlockup_thresh() -> u64 {
    match linux_version() {
        KernelVersion::V2_6 => watchdog_thresh(),
        _ => watchdog_thresh() * 2,
    }
}

/// `sample_period`: the hrtimer period (4 s with the default threshold). 2.6.32 checked on
/// every tick (`softlockup_tick`); a second is as fine as its timestamps.
fn sample_period() -> u64 {
    match linux_version() {
        KernelVersion::V2_6 => NSEC_PER_SEC,
        _ => get_softlockup_thresh() * (NSEC_PER_SEC / 5),
    }
}

/// Whether the detectors run (`watchdog_thresh = 0` disables them).
pub fn watchdog_enabled() -> bool {
    watchdog_thresh() != 0
}

/// Linux's `get_timestamp`: `running_clock() >> 30`, roughly seconds (1 unit = 1.07 s).
fn get_timestamp() -> u64 {
    ktime_get() >> 30
}

fn cpu() -> usize {
    smp_processor_id() as usize
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn __touch_watchdog() {
    let now = get_timestamp();
    watchdog_touch_ts[cpu()].store(now, Ordering::Relaxed);
    // 6.6's `update_touch_ts` starts a new reporting period too.
    watchdog_report_ts[cpu()].store(now, Ordering::Relaxed);
}

/// 6.6's `update_report_ts`.
fn update_report_ts() {
    watchdog_report_ts[cpu()].store(get_timestamp(), Ordering::Relaxed);
}

/// `watchdog_interrupt_count`.
/// `touch_softlockup_watchdog()`: the next check restarts the count (before 5.14 the
/// timestamp becomes 0, which the hrtimer then resets; 6.6 marks the report timestamp
/// `SOFTLOCKUP_DELAY_REPORT`).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn touch_softlockup_watchdog() {
    crate::kernel::trace::events::trace_watchdog_touch();
    if linux_version() == KernelVersion::V6_6 {
        watchdog_report_ts[cpu()].store(SOFTLOCKUP_DELAY_REPORT, Ordering::Relaxed);
    } else {
        watchdog_touch_ts[cpu()].store(0, Ordering::Relaxed);
    }
}

fn watchdog_interrupt_count() {
    hrtimer_interrupts[cpu()].fetch_add(1, Ordering::Relaxed);
}

/// Seconds the CPU has been stuck, if the period that started at `period_ts` (the touch
/// before 5.14, the last report on 6.6) is past the threshold.
fn is_softlockup(touch_ts: u64, period_ts: u64, now: u64) -> Option<u64> {
    (now > period_ts + get_softlockup_thresh()).then(|| now.saturating_sub(touch_ts))
}

/// A formatted message for the host and the console.
pub struct MsgBuf {
    pub buf: [u8; 160],
    pub len: usize,
}

impl Write for MsgBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

impl MsgBuf {
    pub fn new() -> Self {
        MsgBuf {
            buf: [0; 160],
            len: 0,
        }
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

impl Default for MsgBuf {
    fn default() -> Self {
        Self::new()
    }
}

/// Tells the host a detector fired on this CPU, before anything is printed (see
/// `lockvmm_abi::Hypercall::Watchdog`).
pub fn report_to_host(kind: LockupKind, regs: &PtRegs, msg: &MsgBuf) {
    lockvmm::hypercall(
        Hypercall::Watchdog as u32,
        kind as u64,
        regs as *const PtRegs as u64,
        msg.buf.as_ptr() as u64,
        msg.len as u64,
    );
}

pub use crate::kernel::module::print_modules;

/// The soft-lockup check, every `sample_period` (Linux's `watchdog_timer_fn`).
#[inline(never)]
#[unsafe(no_mangle)]
pub fn watchdog_timer_fn(hrtimer: &mut Hrtimer) -> HrtimerRestart {
    let c = cpu();
    let touch_ts = watchdog_touch_ts[c].load(Ordering::Relaxed);
    watchdog_interrupt_count();
    let task = softlockup_watchdog[c].load(Ordering::Relaxed);
    if task != 0 {
        // SAFETY: the per-CPU watchdog thread, a pool task.
        wake_up_process(unsafe { &mut *(task as *mut TaskStruct) });
    }
    hrtimer.forward_now(sample_period());
    let now = get_timestamp();
    let v = linux_version();
    let duration = if v == KernelVersion::V6_6 {
        let period_ts = watchdog_report_ts[c].load(Ordering::Relaxed);
        if period_ts == SOFTLOCKUP_DELAY_REPORT {
            update_report_ts();
            return HrtimerRestart::Restart;
        }
        is_softlockup(touch_ts, period_ts, now)
    } else {
        if touch_ts == 0 {
            __touch_watchdog();
            return HrtimerRestart::Restart;
        }
        is_softlockup(touch_ts, touch_ts, now)
    };
    crate::kernel::trace::events::trace_watchdog_check(
        lockvmm_abi::trace::WatchdogCheck::Soft,
        duration.is_some(),
    );
    let Some(duration) = duration else {
        soft_watchdog_warn[c].store(0, Ordering::Relaxed);
        return HrtimerRestart::Restart;
    };
    let cur = current();
    // "Prevent multiple soft-lockup reports if one cpu is already engaged in dumping cpu back
    // traces" (4.4, 6.6): the CPU that dumps reports for all.
    let all = crate::init::main::boot_info().softlockup_all_cpu_backtrace != 0;
    if all
        && (v == KernelVersion::V6_6 || soft_watchdog_warn[c].load(Ordering::Relaxed) == 0)
        && soft_lockup_nmi_warn.swap(1, Ordering::Acquire) != 0
    {
        if v != KernelVersion::V6_6 {
            soft_watchdog_warn[c].store(1, Ordering::Relaxed);
        }
        return HrtimerRestart::Restart;
    }
    if v == KernelVersion::V6_6 {
        // Start the period for the next warning.
        update_report_ts();
    } else if soft_watchdog_warn[c].load(Ordering::Relaxed) != 0 {
        // Only warn once; 4.4 re-arms when another task is the one stuck.
        let saved = softlockup_task_ptr_saved[c].load(Ordering::Relaxed);
        if v == KernelVersion::V4_4 && saved != cur as *const TaskStruct as u64 {
            soft_watchdog_warn[c].store(0, Ordering::Relaxed);
            __touch_watchdog();
        }
        return HrtimerRestart::Restart;
    }
    softlockup_report(c, duration);
    HrtimerRestart::Restart
}

/// The soft-lockup report (`watchdog_timer_fn`'s, 2.6.32's `softlockup_tick`'s), then the
/// all-CPU backtrace, the taint and the panic as the knobs and the version say.
#[inline(never)]
fn softlockup_report(c: usize, duration: u64) {
    let v = linux_version();
    let cur = current();
    let mut msg = MsgBuf::new();
    let _ = write!(
        msg,
        "BUG: soft lockup - CPU#{} stuck for {}s! [{}:{}]",
        c,
        duration,
        cur.comm(),
        cur.pid
    );
    let regs = get_irq_regs();
    if let Some(regs) = regs {
        report_to_host(LockupKind::Soft, regs, &msg);
    }
    match v {
        KernelVersion::V6_6 => pr_emerg!("watchdog: {}", msg.as_str()),
        KernelVersion::V4_4 => pr_emerg!("NMI watchdog: {}", msg.as_str()),
        KernelVersion::V3_10 => pr_emerg!("{}", msg.as_str()),
        KernelVersion::V2_6 => crate::kernel::printk::printk(
            crate::kernel::printk::LOGLEVEL_ERR,
            format_args!("{}", msg.as_str()),
        ),
    }
    softlockup_task_ptr_saved[c].store(cur as *const TaskStruct as u64, Ordering::Relaxed);
    print_modules();
    if let Some(regs) = regs {
        show_regs(regs);
    }
    let info = crate::init::main::boot_info();
    if info.softlockup_all_cpu_backtrace != 0 {
        crate::arch::x86::kernel::nmi::trigger_allbutself_cpu_backtrace();
        soft_lockup_nmi_warn.store(0, Ordering::Release);
    }
    if matches!(v, KernelVersion::V6_6 | KernelVersion::V4_4) {
        crate::kernel::taint::add_taint(crate::kernel::taint::TAINT_SOFTLOCKUP);
    }
    if info.softlockup_panic != 0 {
        crate::kernel::panic::panic_regs(regs, format_args!("softlockup: hung tasks"));
    }
    soft_watchdog_warn[c].store(1, Ordering::Relaxed);
}

/// Starts both detectors on this CPU (from its watchdog thread).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn watchdog_enable(c: u64) {
    // SAFETY: each CPU arms only its own hrtimer.
    let timer = unsafe { &mut (*core::ptr::addr_of_mut!(watchdog_hrtimer))[c as usize] };
    hrtimer_start(timer, ktime_get() + sample_period());
    __touch_watchdog();
    crate::kernel::watchdog_hld::hardlockup_detector_perf_enable();
}

/// `watchdog/N`: touches the timestamp each time the hrtimer wakes it.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn watchdog(c: u64) {
    watchdog_enable(c);
    loop {
        __touch_watchdog();
        set_current_state(TASK_INTERRUPTIBLE);
        schedule();
    }
}

/// Creates `watchdog/N` on every online CPU (Linux's `lockup_detector_init`).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lockup_detector_init() {
    if !watchdog_enabled() {
        // `watchdog_thresh = 0`: neither detector runs (Linux leaves the threads parked).
        return;
    }
    let nr = crate::init::main::boot_info().nr_cpus;
    for c in 0..nr {
        let Some(t) = crate::kernel::kthread::kthread_create_on_cpu_fmt(
            watchdog,
            u64::from(c),
            c,
            b"watchdog/",
            12 + c * 6,
        ) else {
            printk!("watchdog: cannot create watchdog/{}", c);
            continue;
        };
        t.policy = SCHED_FIFO;
        t.rt_priority = 99;
        softlockup_watchdog[c as usize].store(t as *mut TaskStruct as u64, Ordering::Relaxed);
        wake_up_process(t);
    }
    let _ = kthread_run;
}
