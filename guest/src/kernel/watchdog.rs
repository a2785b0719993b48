//! The soft-lockup detector (Linux's `kernel/watchdog.c`).
//!
//! Each CPU has an hrtimer firing every `2 * watchdog_thresh / 5` seconds and a SCHED_FIFO 99
//! thread `watchdog/N`. The timer counts itself in `hrtimer_interrupts` (the hard-lockup
//! detector's evidence that interrupts still run), wakes the thread, and checks the timestamp
//! the thread leaves each time it runs. If the thread has not run for `2 * watchdog_thresh`
//! seconds, something keeps the CPU in the kernel without scheduling: a soft lockup.
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

use lockvmm_abi::hypercall::LockupKind;
use lockvmm_abi::{Hypercall, NR_CPUS, PtRegs};

use crate::arch::x86::kernel::irq::get_irq_regs;
use crate::arch::x86::kernel::traps::show_regs;
use crate::arch::x86::lockvmm;
use crate::arch::x86::percpu::smp_processor_id;
use crate::kernel::kthread::kthread_run;
use crate::kernel::sched::core::{current, schedule, set_current_state, wake_up_process};
use crate::kernel::sched::task::{SCHED_FIFO, TASK_INTERRUPTIBLE, TaskStruct, fmt_u32};
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
#[unsafe(no_mangle)]
pub static softlockup_watchdog: [AtomicU64; NR_CPUS] = [Z; NR_CPUS];
#[unsafe(no_mangle)]
pub static mut watchdog_hrtimer: [Hrtimer; NR_CPUS] =
    [const { Hrtimer::new(watchdog_timer_fn) }; NR_CPUS];

pub fn watchdog_thresh() -> u64 {
    u64::from(crate::init::main::boot_info().watchdog_thresh)
}

/// `get_softlockup_thresh()`.
fn get_softlockup_thresh() -> u64 {
    watchdog_thresh() * 2
}

/// `sample_period`: the hrtimer period (4 s with the default threshold).
fn sample_period() -> u64 {
    get_softlockup_thresh() * (NSEC_PER_SEC / 5)
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
    watchdog_touch_ts[cpu()].store(get_timestamp(), Ordering::Relaxed);
}

/// `watchdog_interrupt_count`.
/// `touch_softlockup_watchdog()`: the next check restarts the count (Linux 4.x sets the
/// timestamp to 0, which the hrtimer then resets).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn touch_softlockup_watchdog() {
    crate::kernel::trace::events::trace_watchdog_touch();
    watchdog_touch_ts[cpu()].store(0, Ordering::Relaxed);
}

fn watchdog_interrupt_count() {
    hrtimer_interrupts[cpu()].fetch_add(1, Ordering::Relaxed);
}

/// Seconds the CPU has been stuck, if beyond the threshold.
fn is_softlockup(touch_ts: u64) -> Option<u64> {
    let now = get_timestamp();
    (now > touch_ts + get_softlockup_thresh()).then(|| now - touch_ts)
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

/// `print_modules()`.
pub fn print_modules() {
    let mut line = MsgBuf::new();
    let _ = write!(line, "Modules linked in:");
    crate::kernel::module::for_each_module(|name| {
        let _ = write!(line, " {}", name);
    });
    printk!("{}", line.as_str());
}

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

    if touch_ts == 0 {
        __touch_watchdog();
        return HrtimerRestart::Restart;
    }
    let verdict = is_softlockup(touch_ts);
    crate::kernel::trace::events::trace_watchdog_check(
        lockvmm_abi::trace::WatchdogCheck::Soft,
        verdict.is_some(),
    );
    let Some(duration) = verdict else {
        soft_watchdog_warn[c].store(0, Ordering::Relaxed);
        return HrtimerRestart::Restart;
    };
    if soft_watchdog_warn[c].load(Ordering::Relaxed) != 0 {
        return HrtimerRestart::Restart;
    }
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
    printk!("watchdog: {}", msg.as_str());
    print_modules();
    if let Some(regs) = regs {
        show_regs(regs);
    }
    let info = crate::init::main::boot_info();
    if info.softlockup_all_cpu_backtrace != 0 {
        crate::arch::x86::kernel::nmi::trigger_allbutself_cpu_backtrace();
    }
    if info.softlockup_panic != 0 {
        crate::kernel::panic::panic_regs(regs, format_args!("softlockup: hung tasks"));
    }
    soft_watchdog_warn[c].store(1, Ordering::Relaxed);
    HrtimerRestart::Restart
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
    let nr = crate::init::main::boot_info().nr_cpus;
    for c in 0..nr {
        let mut name = *b"watchdog/      ";
        let n = fmt_u32(c, &mut name[9..]);
        let Some(t) = crate::kernel::kthread::kthread_create_on_cpu(
            watchdog,
            u64::from(c),
            c,
            &name[..9 + n],
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
