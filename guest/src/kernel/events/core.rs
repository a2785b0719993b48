//! perf events core (Linux's `kernel/events/core.c`): kernel counters (the NMI watchdog's),
//! task-bound LBR events, and the scheduler hook that adds a task's events when it runs.
use core::sync::atomic::{AtomicU32, Ordering};

use lockvmm_abi::{NR_CPUS, PtRegs};

use crate::arch::x86::events::core::{X86_PMU_PRESENT, x86_pmu_add};
use crate::arch::x86::events::intel::core::intel_pmu_enable_event;
use crate::arch::x86::events::intel::lbr::{reserve_lbr_buffers, uses_upstream_allocation};
use crate::kernel::sched::task::TaskStruct;

pub type OverflowHandler = fn(&mut PerfEvent, &PtRegs);

/// `struct perf_event` (what the lab needs of it).
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct perf_event {
    /// The CPU a CPU-bound event counts on (-1 for task-bound).
    pub cpu: i32,
    pub sample_period: u64,
    /// Non-zero for an LBR (branch stack) event.
    pub branch_sample_type: u64,
    pub overflow_handler: Option<OverflowHandler>,
    /// Overflows delivered.
    pub count: u64,
}

/// The Rust-style name of `perf_event`.
pub type PerfEvent = perf_event;

impl PerfEvent {
    const fn empty() -> Self {
        PerfEvent {
            cpu: -1,
            sample_period: 0,
            branch_sample_type: 0,
            overflow_handler: None,
            count: 0,
        }
    }
}

const MAX_EVENTS: usize = NR_CPUS + 64;
#[unsafe(no_mangle)]
pub static mut perf_events: [PerfEvent; MAX_EVENTS] = [const { PerfEvent::empty() }; MAX_EVENTS];
static NEXT_EVENT: AtomicU32 = AtomicU32::new(0);

fn perf_event_alloc() -> Option<&'static mut PerfEvent> {
    let i = NEXT_EVENT.fetch_add(1, Ordering::Relaxed) as usize;
    // SAFETY: each slot is handed out once.
    (i < MAX_EVENTS).then(|| unsafe { &mut (*core::ptr::addr_of_mut!(perf_events))[i] })
}

/// A cycles counter on this CPU that calls `handler` every `period` cycles (from NMI).
#[inline(never)]
#[unsafe(no_mangle)]
pub fn perf_event_create_kernel_counter(
    cpu: i32,
    period: u64,
    handler: OverflowHandler,
) -> Option<&'static mut PerfEvent> {
    if !X86_PMU_PRESENT.load(Ordering::Acquire) {
        return None;
    }
    let event = perf_event_alloc()?;
    event.cpu = cpu;
    event.sample_period = period;
    event.overflow_handler = Some(handler);
    intel_pmu_enable_event(event);
    Some(event)
}

/// `perf_event_open` of an LBR event bound to `task` (as `perf record -b` does).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn perf_event_open_lbr(task: &mut TaskStruct) -> bool {
    let Some(event) = perf_event_alloc() else {
        return false;
    };
    event.branch_sample_type = 1; // PERF_SAMPLE_BRANCH_USER
    if uses_upstream_allocation() {
        reserve_lbr_buffers();
    }
    task.perf_event
        .store(event as *mut PerfEvent as u64, Ordering::Release);
    true
}

/// From `finish_task_switch`: schedule in the events of the task that now runs.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn perf_event_task_sched_in(_prev: *mut TaskStruct, task: &mut TaskStruct) {
    let ev = task.perf_event.load(Ordering::Acquire);
    if ev != 0 {
        keep_frame!(__perf_event_task_sched_in(task));
    }
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn __perf_event_task_sched_in(task: &mut TaskStruct) {
    // SAFETY: `perf_event` holds a pool event once set.
    let event = unsafe { &mut *(task.perf_event.load(Ordering::Acquire) as *mut PerfEvent) };
    keep_frame!(x86_pmu_add(event));
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn perf_event_overflow(event: &mut PerfEvent, regs: &PtRegs) {
    keep_frame!(__perf_event_overflow(event, regs));
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn __perf_event_overflow(event: &mut PerfEvent, regs: &PtRegs) {
    event.count += 1;
    if let Some(handler) = event.overflow_handler {
        // Not a tail call: Linux's `__perf_event_overflow` frame stays in the backtrace.
        keep_frame!(handler(event, regs));
    }
}
