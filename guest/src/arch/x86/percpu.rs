//! Per-CPU data, reached through the GS base as in Linux (`this_cpu_read`).
use core::arch::asm;
use core::sync::atomic::AtomicU32;

use lockvmm_abi::NR_CPUS;

/// What each CPU keeps for itself. `GS_BASE` points at its own entry.
#[repr(C)]
pub struct PerCpu {
    /// Linux's `this_cpu_off`: the entry's own address.
    pub this: u64,
    /// `smp_processor_id()`.
    pub cpu: u32,
    /// Non-zero once `start_secondary` (or `start_kernel`) finished bring-up.
    pub online: AtomicU32,
    /// 1 + index of a lab task this CPU must run, or 0; the idle loop waits on it.
    pub pending_task: AtomicU32,
}

impl PerCpu {
    const fn new() -> Self {
        PerCpu {
            this: 0,
            cpu: 0,
            online: AtomicU32::new(0),
            pending_task: AtomicU32::new(0),
        }
    }
}

#[allow(clippy::declare_interior_mutable_const)]
const PER_CPU_INIT: PerCpu = PerCpu::new();
/// Every CPU's per-CPU area.
#[unsafe(no_mangle)]
pub static mut per_cpu_area: [PerCpu; NR_CPUS] = [PER_CPU_INIT; NR_CPUS];

/// The per-CPU area of `cpu`.
pub fn per_cpu(cpu: u32) -> &'static PerCpu {
    // SAFETY: the array is only mutated by `setup_per_cpu` on the owning CPU before it is
    // shared; afterwards every field that changes is atomic.
    unsafe { &(*core::ptr::addr_of!(per_cpu_area))[cpu as usize] }
}

/// Points GS at `cpu`'s area. Runs once per CPU, before anything reads `smp_processor_id()`.
pub fn setup_per_cpu(cpu: u32) {
    // SAFETY: only this CPU touches its own entry before GS points at it.
    unsafe {
        let area = &mut (*core::ptr::addr_of_mut!(per_cpu_area))[cpu as usize];
        area.this = area as *mut PerCpu as u64;
        area.cpu = cpu;
        crate::arch::x86::msr::wrmsr(crate::arch::x86::msr::MSR_GS_BASE, area.this);
    }
}

/// `smp_processor_id()`.
#[inline(always)]
pub fn smp_processor_id() -> u32 {
    let cpu: u32;
    // SAFETY: GS points at this CPU's `PerCpu` (set up first thing at boot); `cpu` is at offset 8.
    unsafe { asm!("mov {:e}, gs:[8]", out(reg) cpu, options(nostack, readonly, preserves_flags)) };
    cpu
}

/// This CPU's area.
#[inline(always)]
pub fn this_cpu() -> &'static PerCpu {
    per_cpu(smp_processor_id())
}
