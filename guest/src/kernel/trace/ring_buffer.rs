//! The per-CPU trace ring buffers (Linux's `kernel/trace/ring_buffer.c`, reduced to
//! fixed-size records in overwrite mode). The record layout is the host's contract
//! (`lockvmm_abi::trace`): the host finds each CPU's buffer through `trace_buffers` and reads
//! it from the snapshot or the vmcore.
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use lockvmm_abi::trace::{
    TRACE_ENTRY_SIZE, TRACE_HEADER_SIZE, TRACE_MAGIC, TraceBufHeader, TraceEntry, TraceEvent, flags,
};
use lockvmm_abi::{BootInfo, NR_CPUS};

use crate::arch::x86::irqflags::irqs_disabled;
use crate::arch::x86::percpu::{smp_processor_id, this_cpu};
use crate::mm::page_alloc::{PAGE_SIZE, alloc_pages_top};

#[allow(clippy::declare_interior_mutable_const)]
const NONE: AtomicU64 = AtomicU64::new(0);
/// Each CPU's buffer (a `TraceBufHeader` and its records), 0 for none. The host reads it
/// by this name (`lockvmm_abi::trace::TRACE_BUFFERS_SYMBOL`).
#[unsafe(no_mangle)]
pub static trace_buffers: [AtomicU64; NR_CPUS] = [NONE; NR_CPUS];
/// The machine-wide order of records (one vCPU runs at a time, so it is total). The host
/// takes numbers from it too (`lockvmm_abi::trace::TRACE_SEQ_SYMBOL`).
#[unsafe(no_mangle)]
pub static trace_seq: AtomicU64 = AtomicU64::new(0);
/// The event classes recorded (`lockvmm_abi::trace::class` bits); 0 until the buffers exist,
/// so hook sites that fire earlier in boot (before the per-CPU areas) record nothing. The host
/// reads it (`lockvmm_abi::trace::TRACE_CLASSES_SYMBOL`) before it records a hook.
#[unsafe(no_mangle)]
pub static trace_classes: AtomicU32 = AtomicU32::new(0);

/// Allocates every CPU's buffer (`ring_buffer_alloc` at `tracer_alloc_buffers` time) off the
/// top of memory, so the rest of the kernel's allocations land where they would without a
/// trace. Returns false if memory ran out (tracing stays off).
pub fn ring_buffer_alloc(info: &BootInfo) -> bool {
    let pages = u64::from(info.trace_buf_kib.max(4))
        .div_ceil(4)
        .next_power_of_two();
    let order = pages.trailing_zeros();
    let bytes = pages * PAGE_SIZE;
    let nr_entries = ((bytes - TRACE_HEADER_SIZE as u64) / TRACE_ENTRY_SIZE as u64) as u32;
    for (cpu, slot) in trace_buffers.iter().enumerate().take(info.nr_cpus as usize) {
        let buf = alloc_pages_top(order);
        if buf == 0 {
            return false;
        }
        // SAFETY: a fresh block of `bytes` bytes, owned by the trace for good.
        unsafe {
            (buf as *mut TraceBufHeader).write(TraceBufHeader {
                magic: TRACE_MAGIC,
                written: 0,
                nr_entries,
                cpu: cpu as u32,
            })
        };
        slot.store(buf, Ordering::Relaxed);
    }
    trace_classes.store(info.trace_events, Ordering::Relaxed);
    true
}

/// `current`'s pid without trusting early boot: 0 before the CPU has a task.
fn current_pid() -> u32 {
    let t = this_cpu().current_task.load(Ordering::Relaxed);
    if t == 0 {
        return 0;
    }
    // SAFETY: `current_task` points at a live pool task once set.
    unsafe { (*(t as *const crate::kernel::sched::task::TaskStruct)).pid }
}

/// Writes one record to this CPU's buffer (`trace_buffer_lock_reserve` + commit). Safe
/// against interrupts and NMIs on the same CPU: the slot is reserved by one atomic add, so
/// a nested writer takes the next one.
#[inline(never)]
pub fn trace_record(event: TraceEvent, ip: u64, arg: u64) {
    if trace_classes.load(Ordering::Relaxed) & event.class() == 0 {
        return;
    }
    let buf = trace_buffers[smp_processor_id() as usize].load(Ordering::Relaxed);
    if buf == 0 {
        return;
    }
    let pc = this_cpu().preempt_count.load(Ordering::Relaxed);
    let mut f = 0;
    if irqs_disabled() {
        f |= flags::IRQS_OFF;
    }
    if pc & (0xf << 16) != 0 {
        f |= flags::HARDIRQ;
    }
    if pc & (0xff << 8) != 0 {
        f |= flags::SOFTIRQ;
    }
    if pc & (0xf << 20) != 0 {
        f |= flags::NMI;
    }
    if this_cpu().need_resched.load(Ordering::Relaxed) != 0 {
        f |= flags::NEED_RESCHED;
    }
    let entry = TraceEntry {
        ts_ns: crate::init::main::local_clock(),
        seq: trace_seq.fetch_add(1, Ordering::Relaxed),
        ip,
        arg,
        pid: current_pid(),
        event: event.raw(),
        flags: f,
        preempt: pc as u8,
    };
    // SAFETY: `buf` is this CPU's buffer (a header and `nr_entries` records); the header's
    // counter is only advanced by this CPU, atomically with respect to its own interrupts.
    unsafe {
        let hdr = buf as *mut TraceBufHeader;
        let written = &*(core::ptr::addr_of!((*hdr).written) as *const AtomicU64);
        let n = written.fetch_add(1, Ordering::Relaxed);
        let slot = n % u64::from((*hdr).nr_entries.max(1));
        let at = buf + TRACE_HEADER_SIZE as u64 + slot * TRACE_ENTRY_SIZE as u64;
        (at as *mut TraceEntry).write(entry);
    }
}
