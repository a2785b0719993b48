//! The per-CPU clockevent device: a one-shot deadline in the host's clockevent page
//! (`lockvmm_abi::CLOCKEVENT_PADDR`). The host fires `LOCAL_TIMER_VECTOR` when the virtual clock
//! reaches it — the role the LAPIC timer in TSC-deadline mode plays on real hardware.
use core::sync::atomic::{AtomicU64, Ordering};

use lockvmm_abi::{CLOCKEVENT_PADDR, NO_EVENT, PAGE_OFFSET};

use crate::arch::x86::percpu::smp_processor_id;

fn slot(cpu: u32) -> &'static AtomicU64 {
    // SAFETY: the host reserves the clockevent page inside guest RAM; entry `cpu` is aligned.
    unsafe { &*((PAGE_OFFSET + CLOCKEVENT_PADDR + cpu as u64 * 8) as *const AtomicU64) }
}

/// Linux's `lapic_next_deadline`: arm this CPU's one-shot event at `expires` (virtual ns).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn clockevents_program_event(expires: u64) {
    slot(smp_processor_id()).store(expires, Ordering::Release);
}

/// Disarm this CPU's event.
pub fn clockevents_shutdown() {
    slot(smp_processor_id()).store(NO_EVENT, Ordering::Release);
}
