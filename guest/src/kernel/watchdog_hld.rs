//! The hard-lockup detector (Linux's `kernel/watchdog_hld.c`): a perf cycles counter per CPU
//! overflows every `watchdog_thresh` seconds into an NMI; if the CPU's hrtimer has not run since
//! the last one, interrupts are stuck off: a hard lockup.
//!
//! Messages by version: 6.6 `watchdog: Watchdog detected hard LOCKUP on cpu N` (`kernel/
//! watchdog.c` `watchdog_hardlockup_check`, `pr_fmt` "watchdog: "), 4.4 `NMI watchdog: …`
//! (`kernel/watchdog.c` `watchdog_overflow_callback`), 3.10 the same words without a prefix
//! inside its `WARN(1, …)` block (`------------[ cut here ]------------`, `WARNING: at …`,
//! `kernel/panic.c` `warn_slowpath_common`), 2.6.32 `BUG: NMI
//! Watchdog detected LOCKUP on CPU%d, ip %08lx, registers:` (`arch/x86/kernel/dumpstack.c`
//! `die_nmi`). 2.6.32's period is a fixed 60 s (seed 003), not `watchdog_thresh`.
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

use lockvmm_abi::hypercall::LockupKind;
use lockvmm_abi::knob::KernelVersion;
use lockvmm_abi::{CPU_KHZ, NR_CPUS, PtRegs};

use crate::arch::x86::kernel::traps::show_regs;
use crate::arch::x86::percpu::smp_processor_id;
use crate::kernel::events::core::{PerfEvent, perf_event_create_kernel_counter};
use crate::kernel::watchdog::{
    MsgBuf, hrtimer_interrupts, print_modules, report_to_host, watchdog_thresh,
};

#[allow(clippy::declare_interior_mutable_const)]
const Z: AtomicU64 = AtomicU64::new(0);
#[unsafe(no_mangle)]
pub static hrtimer_interrupts_saved: [AtomicU64; NR_CPUS] = [Z; NR_CPUS];
#[unsafe(no_mangle)]
pub static hard_watchdog_warn: [AtomicU64; NR_CPUS] = [Z; NR_CPUS];
#[unsafe(no_mangle)]
pub static watchdog_ev: [AtomicU64; NR_CPUS] = [Z; NR_CPUS];
/// `hardlockup_allcpu_dumped`: the all-CPU backtrace of a hard lockup was taken.
#[unsafe(no_mangle)]
pub static hardlockup_allcpu_dumped: AtomicU64 = AtomicU64::new(0);

/// `watchdog_nmi_touch`: the next NMI check is skipped (`touch_nmi_watchdog`).
#[unsafe(no_mangle)]
pub static watchdog_nmi_touch: [AtomicU64; NR_CPUS] = [Z; NR_CPUS];

/// `touch_nmi_watchdog()`: this CPU is known to be busy on purpose; skip the next hard-lockup
/// check, and touch the soft-lockup detector too.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn touch_nmi_watchdog() {
    watchdog_nmi_touch[smp_processor_id() as usize].store(1, Ordering::Relaxed);
    crate::kernel::watchdog::touch_softlockup_watchdog();
}

/// `hw_nmi_get_sample_period`: cycles in `watchdog_thresh` seconds (2.6.32: 60 s).
fn hw_nmi_get_sample_period() -> u64 {
    let secs = match crate::init::version::linux_version() {
        KernelVersion::V2_6 => 60,
        _ => watchdog_thresh(),
    };
    CPU_KHZ * 1000 * secs
}

/// `is_hardlockup`: the hrtimer has not run since the last NMI.
fn is_hardlockup() -> bool {
    let c = smp_processor_id() as usize;
    let hrint = hrtimer_interrupts[c].load(Ordering::Relaxed);
    if hrtimer_interrupts_saved[c].load(Ordering::Relaxed) == hrint {
        return true;
    }
    hrtimer_interrupts_saved[c].store(hrint, Ordering::Relaxed);
    false
}

/// Runs in NMI context on every counter overflow.
#[inline(never)]
#[unsafe(no_mangle)]
pub fn watchdog_overflow_callback(_event: &mut PerfEvent, regs: &PtRegs) {
    let c = smp_processor_id() as usize;
    if watchdog_nmi_touch[c].swap(0, Ordering::Relaxed) != 0 {
        return;
    }
    let lockup = is_hardlockup();
    crate::kernel::trace::events::trace_watchdog_check(
        lockvmm_abi::trace::WatchdogCheck::Hard,
        lockup,
    );
    if !lockup {
        hard_watchdog_warn[c].store(0, Ordering::Relaxed);
        return;
    }
    if hard_watchdog_warn[c].load(Ordering::Relaxed) != 0 {
        return;
    }
    let v = crate::init::version::linux_version();
    let mut msg = MsgBuf::new();
    let _ = if v == KernelVersion::V2_6 {
        write!(
            msg,
            "BUG: NMI Watchdog detected LOCKUP on CPU{}, ip {:08x}, registers:",
            c, regs.rip
        )
    } else {
        write!(msg, "Watchdog detected hard LOCKUP on cpu {}", c)
    };
    report_to_host(LockupKind::Hard, regs, &msg);
    let panics = crate::init::main::boot_info().hardlockup_panic != 0;
    match v {
        KernelVersion::V6_6 => pr_emerg!("watchdog: {}", msg.as_str()),
        KernelVersion::V4_4 => pr_emerg!("NMI watchdog: {}", msg.as_str()),
        // 3.10 `kernel/watchdog.c`: `WARN(1, "Watchdog detected hard LOCKUP on cpu %d",
        // this_cpu)` when not panicking: the `cut here` block with its own stack dump.
        KernelVersion::V3_10 if !panics => crate::kernel::panic::warn_slowpath_fmt(
            file!(),
            line!(),
            format_args!("{}", msg.as_str()),
        ),
        // With `hardlockup_panic`, upstream 3.10 calls `panic("Watchdog detected hard LOCKUP
        // on cpu %d")` at once; seed 002's RHEL 7 kernel (3.10.0-514) prints the message,
        // the modules and the registers and calls `nmi_panic(regs, "Hard LOCKUP")` (its
        // vmcore has the `nmi_panic` frame): the lab replays the seed's kernel.
        KernelVersion::V3_10 | KernelVersion::V2_6 => pr_emerg!("{}", msg.as_str()),
    }
    match v {
        // 2.6.32's `die_nmi`: `show_registers(regs)`, which lists the modules itself.
        KernelVersion::V2_6 => crate::arch::x86::kernel::process_64::show_regs_2_6(regs, true),
        KernelVersion::V3_10 if !panics => {}
        _ => {
            print_modules();
            show_regs(regs);
        }
    }
    // "Perform all-CPU dump only once to avoid multiple hardlockups generating interleaving
    // traces" (4.4's watchdog_overflow_callback, 6.6's watchdog_hardlockup_check).
    if crate::init::main::boot_info().hardlockup_all_cpu_backtrace != 0
        && hardlockup_allcpu_dumped.swap(1, Ordering::Relaxed) == 0
    {
        crate::arch::x86::kernel::nmi::trigger_allbutself_cpu_backtrace();
    }
    if crate::init::main::boot_info().hardlockup_panic != 0 {
        nmi_panic(regs, "Hard LOCKUP");
    }
    hard_watchdog_warn[c].store(1, Ordering::Relaxed);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub fn nmi_panic(regs: &PtRegs, msg: &str) {
    crate::kernel::panic::panic_regs(Some(regs), format_args!("{}", msg));
}

/// Creates this CPU's NMI watchdog counter (unless `nmi_watchdog=0`).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn hardlockup_detector_perf_enable() {
    if crate::init::main::boot_info().nmi_watchdog == 0 || watchdog_thresh() == 0 {
        return;
    }
    let c = smp_processor_id();
    if let Some(ev) = perf_event_create_kernel_counter(
        c as i32,
        hw_nmi_get_sample_period(),
        watchdog_overflow_callback,
    ) {
        watchdog_ev[c as usize].store(ev as *mut PerfEvent as u64, Ordering::Relaxed);
    }
}
