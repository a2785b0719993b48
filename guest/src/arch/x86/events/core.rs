//! The generic x86 PMU layer (Linux's `arch/x86/events/core.c`): per-CPU `cpu_hw_events`,
//! PMU detection through CPUID leaf 0xA, `x86_pmu_add`, and the NMI handler.
use core::arch::x86_64::__cpuid;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use lockvmm_abi::{NR_CPUS, PtRegs};

use super::intel::core::intel_pmu_handle_irq;
use super::intel::lbr::intel_pmu_lbr_add;
use crate::arch::x86::percpu::smp_processor_id;
use crate::kernel::events::core::PerfEvent;

/// `struct cpu_hw_events` (the parts the lab uses).
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct cpu_hw_events {
    /// The event on general-purpose counter 0 (`*mut PerfEvent`).
    pub event0: AtomicU64,
    pub lbr_users: AtomicU32,
    /// `lbr_xsave`: the LBR save area (`kmem_cache_alloc`'d).
    pub lbr_xsave: AtomicU64,
}

/// The Rust-style name of `cpu_hw_events`.
pub type CpuHwEvents = cpu_hw_events;

#[allow(clippy::declare_interior_mutable_const)]
const HW_INIT: CpuHwEvents = CpuHwEvents {
    event0: AtomicU64::new(0),
    lbr_users: AtomicU32::new(0),
    lbr_xsave: AtomicU64::new(0),
};
#[unsafe(no_mangle)]
pub static cpu_hw_events: [CpuHwEvents; NR_CPUS] = [HW_INIT; NR_CPUS];

pub fn this_cpuc() -> &'static CpuHwEvents {
    &cpu_hw_events[smp_processor_id() as usize]
}

/// Whether an architectural PMU was found (`x86_pmu.version != 0`).
pub static X86_PMU_PRESENT: AtomicBool = AtomicBool::new(false);

/// `init_hw_perf_events`: architectural perfmon from CPUID 0xA.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn init_hw_perf_events() {
    let leaf = __cpuid(0xa);
    let version = leaf.eax & 0xff;
    let counters = (leaf.eax >> 8) & 0xff;
    if version == 0 || counters == 0 {
        printk!("Performance Events: no PMU driver, software events only.");
        return;
    }
    X86_PMU_PRESENT.store(true, Ordering::Release);
    printk!(
        "Performance Events: lockvmm emulated PMU, arch perfmon v{}, {} counter(s), {}-bit",
        version,
        counters,
        (leaf.eax >> 16) & 0xff
    );
}

/// `pmu->add` for an event being scheduled in on this CPU.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn x86_pmu_add(event: &mut PerfEvent) {
    if event.branch_sample_type != 0 {
        keep_frame!(intel_pmu_lbr_add(event));
    }
}

/// NMI_LOCAL handler of the PMU.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn perf_event_nmi_handler(regs: &mut PtRegs) -> u32 {
    if !X86_PMU_PRESENT.load(Ordering::Acquire) {
        return 0;
    }
    keep_frame!(intel_pmu_handle_irq(regs))
}
