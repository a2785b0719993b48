//! The guest's trace (its per-CPU ring buffers, `lockvmm_abi::trace`) read from a snapshot or
//! a vmcore, and what the renderers draw from it: each CPU's events in order, the sections
//! they open and close (lock holds, spins, IRQs-off and preempt-off sections, handlers), the
//! flows from a host action to the handler it caused, and the wait-for graph of the lockup.
//!
//! A layer above `analysis` (it names locks, functions and tasks through it) and below
//! `report` (which renders it).
mod read;
mod spans;
mod waitfor;

pub use read::read_trace;
pub use spans::{Flow, Instant, Span, SpanKind, Timeline, lanes, vector_name};
pub use waitfor::{WaitFor, WaitNode};

use lockvmm_abi::trace::TraceEvent;

/// One record, with the names the host resolved for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub cpu: usize,
    pub ts_ns: u64,
    /// The machine-wide order of records.
    pub seq: u64,
    /// `None` for an id the contract does not define (a hostile or newer guest).
    pub event: Option<TraceEvent>,
    pub raw_event: u16,
    pub ip: u64,
    pub arg: u64,
    pub pid: u32,
    pub flags: u8,
    pub preempt: u8,
    /// `ip` as `function+off/size` (empty for events without one).
    pub ip_name: String,
    /// `current`'s name (`<idle>` for pid 0, `<...>` when no task has that pid).
    pub comm: String,
    /// What `arg` means, resolved: the lock's name, the timer function, the printk text, …
    pub detail: String,
}

/// Every CPU's trace.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// By CPU number; CPUs without a buffer are left out.
    pub cpus: Vec<CpuTrace>,
    /// The snapshot's virtual time (the end of the trace).
    pub end_ns: u64,
}

/// One CPU's buffer.
#[derive(Debug, Clone, Default)]
pub struct CpuTrace {
    pub cpu: usize,
    /// Records written since boot (more than `events.len()` when the ring wrapped).
    pub written: u64,
    /// The surviving records, oldest first.
    pub events: Vec<Event>,
}

impl CpuTrace {
    /// Records the ring overwrote.
    pub fn lost(&self) -> u64 {
        self.written.saturating_sub(self.events.len() as u64)
    }
}

impl Trace {
    /// Every event of the CPUs `cpus` chooses at or after `from_ns`, in the machine's order.
    pub fn merged(&self, cpus: impl Fn(usize) -> bool, from_ns: u64) -> Vec<&Event> {
        let mut all: Vec<&Event> = self
            .cpus
            .iter()
            .filter(|c| cpus(c.cpu))
            .flat_map(|c| c.events.iter())
            .filter(|e| e.ts_ns >= from_ns)
            .collect();
        all.sort_by_key(|e| (e.seq, e.cpu));
        all
    }

    /// The trace of `cpu`.
    pub fn cpu(&self, cpu: usize) -> Option<&CpuTrace> {
        self.cpus.iter().find(|c| c.cpu == cpu)
    }
}
