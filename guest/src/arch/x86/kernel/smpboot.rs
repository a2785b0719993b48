//! Bringing secondary CPUs up (Linux's `arch/x86/kernel/smpboot.c`).
use core::sync::atomic::Ordering;

use crate::arch::x86::lockvmm;
use crate::arch::x86::percpu::per_cpu;
use crate::init::main::boot_info;

/// Starts every secondary CPU, one after the other, as Linux's `smp_init`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn smp_init() {
    let nr = boot_info().nr_cpus;
    printk!("smp: Bringing up secondary CPUs ...");
    for cpu in 1..nr {
        native_cpu_up(cpu);
    }
    printk!("smp: Brought up 1 node, {} CPUs", nr);
}

/// Asks the host to start `cpu` and waits until it reports itself online (the start's
/// hypercall is also the first wait).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn native_cpu_up(cpu: u32) {
    let online = &per_cpu(cpu).online;
    if lockvmm::start_cpu(cpu, online) != lockvmm_abi::HC_OK {
        panic!("smpboot: the host refused to start CPU {}", cpu);
    }
    while online.load(Ordering::Acquire) == 0 {
        lockvmm::wait_on(online, 0);
    }
}

/// Marks this CPU online: console line, host notification, and the flag its starter waits on.
pub fn set_cpu_online(cpu: u32) {
    printk!("smpboot: CPU {} online", cpu);
    let online = &per_cpu(cpu).online;
    online.store(1, Ordering::Release);
    // The host learns it and wakes the starter waiting on `online` in one exit.
    lockvmm::cpu_online(cpu, online);
}

/// Entry of a secondary CPU (from `secondary_startup_64`).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn start_secondary(cpu: u64) -> ! {
    crate::init::main::cpu_bringup(cpu as u32);
    set_cpu_online(cpu as u32);
    crate::kernel::sched::idle::cpu_startup_entry()
}
