//! Intel PMU programming and overflow handling (Linux's `arch/x86/events/intel/core.c`).
use core::sync::atomic::Ordering;

use lockvmm_abi::PtRegs;
use lockvmm_abi::msr::*;

use crate::arch::x86::events::core::this_cpuc;
use crate::arch::x86::kernel::apic::apic::{APIC_LVTPC, apic_write};
use crate::arch::x86::msr::{rdmsr, wrmsr};
use crate::kernel::events::core::{PerfEvent, perf_event_overflow};

const APIC_DM_NMI: u32 = 0x400;
const ARCH_PERFMON_EVENTSEL_OS: u64 = 1 << 17;
const ARCH_PERFMON_EVENTSEL_USR: u64 = 1 << 16;
/// UNHALTED_CORE_CYCLES.
const EVENT_CPU_CYCLES: u64 = 0x3c;
const PMC_MASK: u64 = (1 << PMC_BITS) - 1;

/// Loads counter 0 with -period, so it overflows after `period` cycles.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn x86_perf_event_set_period(event: &PerfEvent) {
    // SAFETY: PMC0 is emulated by the host.
    unsafe { wrmsr(IA32_PMC0, event.sample_period.wrapping_neg() & PMC_MASK) };
}

/// Programs counter 0 for `event` (cycles, interrupt on overflow) and routes its overflow
/// interrupt as an NMI through LVTPC.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn intel_pmu_enable_event(event: &mut PerfEvent) {
    this_cpuc()
        .event0
        .store(event as *mut PerfEvent as u64, Ordering::Release);
    // SAFETY: the PMU MSRs are emulated by the host (see vmm/src/pmu.rs).
    unsafe {
        wrmsr(IA32_PERF_GLOBAL_CTRL, 0);
        x86_perf_event_set_period(event);
        wrmsr(
            IA32_PERFEVTSEL0,
            EVTSEL_EN
                | EVTSEL_INT
                | ARCH_PERFMON_EVENTSEL_OS
                | ARCH_PERFMON_EVENTSEL_USR
                | EVENT_CPU_CYCLES,
        );
    }
    apic_write(APIC_LVTPC, APIC_DM_NMI);
    // SAFETY: as above.
    unsafe { wrmsr(IA32_PERF_GLOBAL_CTRL, 1) };
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn intel_pmu_disable_event(_event: &mut PerfEvent) {
    // SAFETY: as above.
    unsafe {
        wrmsr(IA32_PERF_GLOBAL_CTRL, 0);
        wrmsr(IA32_PERFEVTSEL0, 0);
    }
    this_cpuc().event0.store(0, Ordering::Release);
}

/// The PMU's NMI: acknowledge overflows, reload, and hand each overflow to perf.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn intel_pmu_handle_irq(regs: &mut PtRegs) -> u32 {
    // SAFETY: as above.
    let status = unsafe { rdmsr(IA32_PERF_GLOBAL_STATUS) };
    if status == 0 {
        return 0;
    }
    // SAFETY: as above.
    unsafe { wrmsr(IA32_PERF_GLOBAL_OVF_CTRL, status) };
    let ev = this_cpuc().event0.load(Ordering::Acquire);
    if status & 1 != 0 && ev != 0 {
        // SAFETY: `event0` points at a live event of the static pool.
        let event = unsafe { &mut *(ev as *mut PerfEvent) };
        x86_perf_event_set_period(event);
        perf_event_overflow(event, regs);
    }
    // The overflow masked LVTPC; unmask it for the next one.
    apic_write(APIC_LVTPC, APIC_DM_NMI);
    1
}
