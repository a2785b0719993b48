//! Last Branch Records (Linux's `arch/x86/events/intel/lbr.c`): the allocation the first seed
//! is about. `intel_pmu_lbr_add` runs from `finish_task_switch` → `perf_event_task_sched_in`,
//! with the runqueue lock held and interrupts off. Allocating there with GFP_KERNEL lets
//! `allocate_slab` turn interrupts on under that lock.
use core::sync::atomic::Ordering;

use lockvmm_abi::hook::Hook;
use lockvmm_abi::knob::LbrGfpMode;

use crate::arch::x86::events::core::{cpu_hw_events, this_cpuc};
use crate::arch::x86::lockvmm;
use crate::kernel::events::core::PerfEvent;
use crate::mm::gfp::{GFP_ATOMIC, GFP_KERNEL};
use crate::mm::slub::{KmemCache, kmem_cache_alloc, kmem_cache_create};

/// Size of the LBR xsave area.
const LBR_XSAVE_SIZE: u32 = 808;

/// `x86_get_pmu()->task_ctx_cache`.
#[unsafe(no_mangle)]
pub static mut task_ctx_cache: *mut KmemCache = core::ptr::null_mut();

fn cache() -> &'static mut KmemCache {
    // SAFETY: set once by `intel_pmu_lbr_init` before any event exists.
    unsafe { &mut *task_ctx_cache }
}

pub fn intel_pmu_lbr_init() {
    // SAFETY: boot CPU, before any LBR user.
    unsafe { task_ctx_cache = kmem_cache_create(b"x86_task_ctx", LBR_XSAVE_SIZE) };
}

/// The scenario's `lbr_gfp_mode` knob.
fn mode() -> LbrGfpMode {
    let raw = crate::init::main::boot_info().lbr_gfp_mode;
    match LbrGfpMode::from_raw(raw) {
        Some(mode) => mode,
        None => unknown_mode(raw),
    }
}

/// Out of line, so that the paths reading the knob keep their code and frames small.
#[cold]
#[inline(never)]
fn unknown_mode(raw: u32) -> ! {
    panic!("lbr: unknown lbr_gfp_mode {} in the boot info", raw)
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn intel_pmu_lbr_add(_event: &mut PerfEvent) {
    lockvmm::hook(Hook::LbrAdd, u64::from(mode().raw()));
    let cpuc = this_cpuc();
    cpuc.lbr_users.fetch_add(1, Ordering::Relaxed);
    if cpuc.lbr_xsave.load(Ordering::Relaxed) != 0 {
        return;
    }
    let gfp = match mode() {
        LbrGfpMode::Upstream => return,
        LbrGfpMode::GfpAtomic => GFP_ATOMIC,
        LbrGfpMode::GfpKernel => GFP_KERNEL,
    };
    let buf = keep_frame!(kmem_cache_alloc(cache(), gfp));
    cpuc.lbr_xsave.store(buf, Ordering::Relaxed);
}

/// The upstream fix: allocate every CPU's buffer at event creation, in process context
/// (Linux's `reserve_lbr_buffers`).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn reserve_lbr_buffers() {
    let nr = crate::init::main::boot_info().nr_cpus as usize;
    for cpuc in cpu_hw_events.iter().take(nr) {
        if cpuc.lbr_xsave.load(Ordering::Relaxed) == 0 {
            cpuc.lbr_xsave
                .store(kmem_cache_alloc(cache(), GFP_KERNEL), Ordering::Relaxed);
        }
    }
}

pub fn uses_upstream_allocation() -> bool {
    match mode() {
        LbrGfpMode::Upstream => true,
        LbrGfpMode::GfpKernel | LbrGfpMode::GfpAtomic => false,
    }
}
