//! `start_kernel` (Linux's `init/main.c`) and the boot information the host hands over.
use core::sync::atomic::{AtomicU64, Ordering};

use lockvmm_abi::{BOOT_INFO_PADDR, BOOT_MAGIC, BootInfo, PAGE_OFFSET};

use crate::arch::x86::kernel::apic::apic::setup_local_APIC;
use crate::arch::x86::kernel::cpu::common::cpu_init;
use crate::arch::x86::kernel::idt::idt_setup_traps;
use crate::arch::x86::kernel::smpboot::{cpu_startup_entry, set_cpu_online, smp_init};
use crate::arch::x86::lockvmm;

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

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn start_kernel() -> ! {
    idt_setup_traps();
    cpu_init(0);
    let info = boot_info();
    if info.magic != BOOT_MAGIC {
        // Nothing can be printed sensibly without the host's data: tell it and stop.
        lockvmm::shutdown(0xbad);
    }
    printk!(
        "Linux version 6.6.0-lockvmm (lockvmm guest {}) #1 SMP PREEMPT",
        env!("CARGO_PKG_VERSION")
    );
    printk!(
        "Memory: {}K available, {} CPUs",
        info.mem_bytes >> 10,
        info.nr_cpus
    );
    setup_local_APIC();
    set_cpu_online(0);
    smp_init();
    crate::lab::run_program();
    crate::kernel::reboot::kernel_power_off();
}

/// CPU 0 joins the idle loop only when a scenario keeps the machine running (later issues).
#[allow(dead_code)]
fn rest_init() -> ! {
    cpu_startup_entry()
}
