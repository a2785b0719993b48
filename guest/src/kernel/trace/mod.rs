//! Tracing (Linux's `kernel/trace`).
pub mod trace_preemptirq;
