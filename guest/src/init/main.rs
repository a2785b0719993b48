//! `start_kernel` (Linux's `init/main.c`) and the boot information the host hands over.
use core::sync::atomic::{AtomicU64, Ordering};

use lockvmm_abi::{BOOT_INFO_PADDR, BOOT_MAGIC, BootInfo, PAGE_OFFSET};

use crate::arch::x86::kernel::apic::apic::setup_local_APIC;
use crate::arch::x86::kernel::cpu::common::cpu_init;
use crate::arch::x86::kernel::idt::idt_setup_traps;
use crate::arch::x86::kernel::smpboot::{set_cpu_online, smp_init};
use crate::arch::x86::lockvmm;
use crate::arch::x86::preempt::{PREEMPT_OFFSET, preempt_count_add};

/// The host's boot information page, through the direct map.
pub fn boot_info() -> &'static BootInfo {
    // SAFETY: the host writes a `BootInfo` at this physical address before the first guest
    // instruction, and the direct map covers it; only `vtime_ns` changes later (see below).
    unsafe { &*((PAGE_OFFSET + BOOT_INFO_PADDR) as *const BootInfo) }
}

/// The lab's virtual clock in nanoseconds (Linux's `local_clock`). The host only advances it
/// while every vCPU is stopped, so this is a plain read.
pub fn local_clock() -> u64 {
    let p = core::ptr::addr_of!(boot_info().vtime_ns) as *const AtomicU64;
    // SAFETY: `vtime_ns` is an aligned u64 inside the boot-info page.
    unsafe { (*p).load(Ordering::Relaxed) }
}

/// Entry of the boot CPU (from `startup_64`).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn x86_64_start_kernel(_cpu: u64) -> ! {
    start_kernel()
}

/// Per-CPU set-up shared by the boot CPU and the others: descriptor tables, the idle task,
/// the runqueue, the timer base, the local APIC. The CPU then runs as its idle task, which
/// keeps preemption disabled (Linux's `init_idle_preempt_count`).
pub fn cpu_bringup(cpu: u32) {
    cpu_init(cpu);
    preempt_count_add(PREEMPT_OFFSET);
    crate::kernel::sched::core::sched_init_cpu(cpu);
    crate::kernel::time::timer::init_timers_cpu(cpu);
    setup_local_APIC();
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn start_kernel() -> ! {
    idt_setup_traps();
    let info = boot_info();
    if info.magic != BOOT_MAGIC {
        // Nothing can be printed sensibly without the host's data: tell it and stop.
        lockvmm::shutdown(0xbad);
    }
    crate::kernel::instrument::instrument_init(info);
    crate::kernel::sysctl::sysctl_init(info);
    crate::kernel::utsname::uts_init(crate::init::version::linux_version());
    crate::kernel::locking::ticket_spinlock::spinlock_init(crate::init::version::linux_version());
    crate::kernel::locking::spinlock::spin_hooks_init();
    cpu_bringup(0);
    crate::init::version::print_linux_banner();
    crate::mm::page_alloc::mem_init(info.mem_bytes);
    printk!(
        "Memory: {}K available, {} CPUs, HZ={}",
        crate::mm::page_alloc::nr_free_pages() * 4,
        info.nr_cpus,
        crate::kernel::time::HZ
    );
    crate::kernel::trace::trace_init(info);
    crate::arch::x86::events::intel::lbr::intel_pmu_lbr_init();
    crate::arch::x86::events::core::init_hw_perf_events();
    if info.console_fbcon != 0 {
        crate::drivers::tty::vt::VT_CONSOLE.store(true, Ordering::Relaxed);
        printk!("Console: switching to colour frame buffer device 128x48");
    }
    set_cpu_online(0);
    smp_init();
    crate::kernel::watchdog::lockup_detector_init();
    crate::kernel::hung_task::hung_task_init();
    if crate::lab::run_program() {
        crate::kernel::reboot::kernel_power_off();
    }
    crate::kernel::sched::idle::cpu_startup_entry()
}
