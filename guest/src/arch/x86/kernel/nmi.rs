//! NMIs (Linux's `arch/x86/kernel/nmi.c`): every NMI handler is asked in turn; the PMU's
//! (`perf_event_nmi_handler`) serves the hard-lockup detector, the backtrace handler serves
//! `trigger_all_cpu_backtrace`.
use crate::kernel::trace::events::trace_event;
use core::sync::atomic::{AtomicU64, Ordering};
use lockvmm_abi::trace::TraceEvent;

use lockvmm_abi::PtRegs;

use crate::arch::x86::percpu::smp_processor_id;
use crate::arch::x86::preempt::{HARDIRQ_OFFSET, NMI_OFFSET, preempt_count_add, preempt_count_sub};

/// CPUs asked to print a backtrace (bit per CPU, first 256).
#[allow(clippy::declare_interior_mutable_const)]
const MASK_INIT: AtomicU64 = AtomicU64::new(0);
#[unsafe(no_mangle)]
pub static backtrace_mask: [AtomicU64; 4] = [MASK_INIT; 4];

/// Entry from the `nmi` stub.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn do_nmi(regs: &mut PtRegs, _vector: u64) {
    preempt_count_add(NMI_OFFSET + HARDIRQ_OFFSET);
    trace_event(TraceEvent::NmiEntry, 0, 2);
    default_do_nmi(regs);
    trace_event(TraceEvent::NmiExit, 0, 2);
    preempt_count_sub(NMI_OFFSET + HARDIRQ_OFFSET);
}

/// Static in Linux and inlined into `do_nmi` (seed 002's `nmi_handle` ← `do_nmi`).
#[inline(always)]
fn default_do_nmi(regs: &mut PtRegs) {
    if nmi_handle(regs) == 0 {
        unknown_nmi_error(regs);
    }
}

/// Runs the NMI_LOCAL handlers; returns how many claimed the NMI.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn nmi_handle(regs: &mut PtRegs) -> u32 {
    let mut handled = 0;
    // A crash shutdown registers `crash_nmi_callback` with NMI_FLAG_FIRST.
    if super::reboot::CRASH_NMI_REGISTERED.load(Ordering::Acquire) {
        handled += keep_frame!(super::reboot::crash_nmi_callback(0, regs));
    }
    handled += keep_frame!(crate::arch::x86::events::core::perf_event_nmi_handler(regs));
    handled += nmi_cpu_backtrace_handler(regs);
    if handled == 0 {
        // An NMI from no source the kernel knows: the scenario's NMI handlers claim it.
        handled += keep_frame!(crate::lab::handlers::lab_nmi_handler(regs));
    }
    handled
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn nmi_cpu_backtrace_handler(regs: &mut PtRegs) -> u32 {
    let cpu = smp_processor_id();
    let (word, bit) = ((cpu / 64) as usize, 1u64 << (cpu % 64));
    if backtrace_mask[word].load(Ordering::Acquire) & bit == 0 {
        return 0;
    }
    printk!("NMI backtrace for cpu {}", cpu);
    crate::arch::x86::kernel::traps::show_regs(regs);
    backtrace_mask[word].fetch_and(!bit, Ordering::Release);
    1
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn unknown_nmi_error(_regs: &mut PtRegs) {
    printk!(
        "Uhhuh. NMI received for unknown reason on CPU {}.",
        smp_processor_id()
    );
}

/// Asks every other online CPU for a backtrace through an NMI IPI
/// (`trigger_allbutself_cpu_backtrace`).
pub fn trigger_allbutself_cpu_backtrace() {
    let me = smp_processor_id();
    let nr = crate::init::main::boot_info().nr_cpus;
    for cpu in (0..nr).filter(|&c| c != me && crate::arch::x86::percpu::cpu_online(c)) {
        backtrace_mask[(cpu / 64) as usize].fetch_or(1 << (cpu % 64), Ordering::Release);
        crate::arch::x86::lockvmm::send_ipi(cpu, lockvmm_abi::IPI_NMI);
    }
}
