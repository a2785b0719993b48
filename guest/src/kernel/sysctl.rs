//! The `kernel.*` sysctls' variables under Linux's names (6.6's `kernel/watchdog.c`:
//! `watchdog_thresh`, `softlockup_panic`, `hardlockup_panic`, `nmi_watchdog_user_enabled`,
//! `sysctl_softlockup_all_cpu_backtrace`, `sysctl_hardlockup_all_cpu_backtrace`;
//! `kernel/hung_task.c`: `sysctl_hung_task_timeout_secs`, `sysctl_hung_task_panic`).
//!
//! Linux keeps each in its subsystem's file; they are together here because the lab sets them
//! all at once, from the boot info, before any CPU but the boot one runs. Their point is the
//! vmcore: `p watchdog_thresh` in `lockvmm inspect` (or crash, gdb, drgn) answers with the
//! value the kernel ran with, read from guest memory as on a real dump. The detectors read the
//! same values from the boot info, which never changes after boot.
#![allow(non_upper_case_globals)]
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::Relaxed};

use lockvmm_abi::BootInfo;

/// Seconds: the hard-lockup threshold; the soft one is twice it (0: both detectors off).
#[unsafe(no_mangle)]
pub static watchdog_thresh: AtomicI32 = AtomicI32::new(10);
/// Panic on a soft lockup.
#[unsafe(no_mangle)]
pub static softlockup_panic: AtomicU32 = AtomicU32::new(0);
/// Panic on a hard lockup.
#[unsafe(no_mangle)]
pub static hardlockup_panic: AtomicU32 = AtomicU32::new(0);
/// The NMI (hard-lockup) watchdog is on (`nmi_watchdog=`).
#[unsafe(no_mangle)]
pub static nmi_watchdog_user_enabled: AtomicI32 = AtomicI32::new(1);
/// A soft lockup makes every CPU print its backtrace.
#[unsafe(no_mangle)]
pub static sysctl_softlockup_all_cpu_backtrace: AtomicI32 = AtomicI32::new(0);
/// A hard lockup makes every CPU print its backtrace.
#[unsafe(no_mangle)]
pub static sysctl_hardlockup_all_cpu_backtrace: AtomicI32 = AtomicI32::new(0);
/// Seconds before `khungtaskd` reports a task (0: off).
#[unsafe(no_mangle)]
pub static sysctl_hung_task_timeout_secs: AtomicU64 = AtomicU64::new(120);
/// Panic when a hung task is reported.
#[unsafe(no_mangle)]
pub static sysctl_hung_task_panic: AtomicU32 = AtomicU32::new(0);

/// Sets every variable from the host's boot info (`start_kernel`, before the APs start).
pub fn sysctl_init(info: &BootInfo) {
    watchdog_thresh.store(info.watchdog_thresh as i32, Relaxed);
    softlockup_panic.store(info.softlockup_panic, Relaxed);
    hardlockup_panic.store(info.hardlockup_panic, Relaxed);
    nmi_watchdog_user_enabled.store(info.nmi_watchdog as i32, Relaxed);
    sysctl_softlockup_all_cpu_backtrace.store(info.softlockup_all_cpu_backtrace as i32, Relaxed);
    sysctl_hardlockup_all_cpu_backtrace.store(info.hardlockup_all_cpu_backtrace as i32, Relaxed);
    sysctl_hung_task_timeout_secs.store(u64::from(info.hung_task_timeout_secs), Relaxed);
    sysctl_hung_task_panic.store(info.hung_task_panic, Relaxed);
}
