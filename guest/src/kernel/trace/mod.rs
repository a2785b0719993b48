//! Tracing (Linux's `kernel/trace`): the irq-flag and preemption hooks, and the per-CPU ring
//! buffer of trace events with its dump on oops.
pub mod events;
pub mod ring_buffer;
pub mod trace_dump;
pub mod trace_preemptirq;

/// `trace_init` (in `start_kernel`, after the page allocator is up): allocate the buffers.
pub fn trace_init(info: &lockvmm_abi::BootInfo) {
    if info.instrument & lockvmm_abi::knob::instrument::TRACE != 0
        && !ring_buffer::ring_buffer_alloc(info)
    {
        printk!("tracing: failed to allocate ring buffers, tracing is off");
    }
}
