//! Bringing secondary CPUs up (Linux's `arch/x86/kernel/smpboot.c`) and the idle loop
//! (`kernel/sched/idle.c`).
use core::arch::asm;
use core::sync::atomic::{AtomicU32, Ordering};

use lockvmm_abi::{HYPERCALL_PORT, Hypercall};

use crate::arch::x86::irqflags::local_irq_disable;
use crate::arch::x86::kernel::apic::apic::setup_local_APIC;
use crate::arch::x86::kernel::cpu::common::cpu_init;
use crate::arch::x86::lockvmm;
use crate::arch::x86::percpu::{per_cpu, this_cpu};
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

/// Asks the host to start `cpu` and waits until it reports itself online.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn native_cpu_up(cpu: u32) {
    if lockvmm::start_cpu(cpu) != lockvmm_abi::HC_OK {
        panic!("smpboot: the host refused to start CPU {}", cpu);
    }
    let online = &per_cpu(cpu).online;
    while online.load(Ordering::Acquire) == 0 {
        lockvmm::wait_on(online, 0);
    }
}

/// Marks this CPU online: console line, host notification, and the flag its starter waits on.
pub fn set_cpu_online(cpu: u32) {
    printk!("smpboot: CPU {} online", cpu);
    lockvmm::cpu_online(cpu);
    let online = &per_cpu(cpu).online;
    online.store(1, Ordering::Release);
    lockvmm::kick(online);
}

/// Entry of a secondary CPU (from `secondary_startup_64`).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn start_secondary(cpu: u64) -> ! {
    cpu_init(cpu as u32);
    setup_local_APIC();
    set_cpu_online(cpu as u32);
    cpu_startup_entry()
}

/// The idle loop every CPU ends in.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn cpu_startup_entry() -> ! {
    loop {
        do_idle();
    }
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn do_idle() {
    local_irq_disable();
    let pending = &this_cpu().pending_task;
    match pending.load(Ordering::Acquire) {
        0 => default_idle(pending),
        task => {
            crate::arch::x86::irqflags::local_irq_enable();
            crate::lab::run_task(task - 1);
            pending.store(0, Ordering::Release);
            lockvmm::kick(pending);
        }
    }
}

/// Linux's `safe_halt` (`sti; hlt`) with the host's wait in place of `hlt`: interrupts are
/// enabled in the shadow of `sti`, so a wake-up interrupt is taken right after the wait returns.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn default_idle(work: &AtomicU32) {
    // SAFETY: the hypercall only exits to the host (see `lockvmm::hypercall`); enabling
    // interrupts here is what idle is for.
    unsafe {
        asm!(
            "sti",
            "out dx, eax",
            inlateout("rax") Hypercall::Wait as u64 => _,
            in("dx") HYPERCALL_PORT,
            in("rdi") work.as_ptr() as u64,
            in("rsi") 0u64,
            in("rcx") 0u64,
            in("r8") 0u64,
            options(nostack)
        );
    }
}
