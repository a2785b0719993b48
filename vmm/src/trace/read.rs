//! Reads the buffers out of guest memory through `trace_buffers` (the contract's symbol).
//! Guest memory is untrusted: a buffer whose header is wrong is skipped, sizes are bounded
//! by the contract's largest buffer, and nothing here can panic.
use std::collections::HashMap;

use lockvmm_abi::trace::{
    TRACE_BUFFERS_SYMBOL, TRACE_ENTRY_SIZE, TRACE_HEADER_SIZE, TRACE_MAGIC, TRACE_MAX_KIB,
    TraceBufHeader, TraceEntry, TraceEvent,
};
use vm_memory::ByteValued;

use super::{CpuTrace, Event, Trace};
use crate::analysis::Analysis;

/// The most records a buffer of the largest size holds.
const MAX_ENTRIES: u64 = TRACE_MAX_KIB as u64 * 1024 / TRACE_ENTRY_SIZE as u64;
/// The most records read from all buffers together: a hostile guest could point every CPU's
/// buffer at the same large region.
const MAX_TOTAL: usize = 1 << 20;

/// The trace in the snapshot `a` reads, or `None` when the guest kept none (tracing off).
pub fn read_trace(a: &Analysis<'_>) -> Option<Trace> {
    let base = a.syms.addr_of(TRACE_BUFFERS_SYMBOL)?;
    let comms: HashMap<u32, String> = a
        .tasks()
        .into_iter()
        .map(|t| (t.info.pid, t.info.comm))
        .collect();
    let dmesg = Printk::new(a);
    let mut cpus: Vec<CpuTrace> = Vec::new();
    for cpu in 0..a.snap.cpus.len() {
        let budget = MAX_TOTAL.saturating_sub(cpus.iter().map(|c| c.events.len()).sum());
        if budget == 0 {
            break;
        }
        let Ok(buf) = a.mem.u64(base.wrapping_add(cpu as u64 * 8)) else {
            continue;
        };
        if buf == 0 {
            continue;
        }
        if let Some(t) = read_cpu(a, cpu, buf, budget, &comms, &dmesg) {
            cpus.push(t);
        }
    }
    (!cpus.is_empty()).then_some(Trace {
        cpus,
        end_ns: a.snap.vtime_ns,
    })
}

fn read_cpu(
    a: &Analysis<'_>,
    cpu: usize,
    buf: u64,
    budget: usize,
    comms: &HashMap<u32, String>,
    dmesg: &Printk,
) -> Option<CpuTrace> {
    let raw = a.mem.read(buf, TRACE_HEADER_SIZE).ok()?;
    let hdr: TraceBufHeader = decode(&raw)?;
    if hdr.magic != TRACE_MAGIC || hdr.cpu as usize != cpu {
        return None;
    }
    let nr = u64::from(hdr.nr_entries);
    if nr == 0 || nr > MAX_ENTRIES {
        return None;
    }
    let count = hdr.written.min(nr).min(budget as u64);
    let first = hdr.written - count;
    let base = buf.wrapping_add(TRACE_HEADER_SIZE as u64);
    // One read of the whole ring (at most the contract's largest buffer, inside the snapshot).
    let ring = a.mem.read(base, (nr as usize) * TRACE_ENTRY_SIZE).ok()?;
    let mut events = Vec::with_capacity(count as usize);
    for n in first..hdr.written {
        let at = ((n % nr) as usize) * TRACE_ENTRY_SIZE;
        let Some(e) = ring
            .get(at..at + TRACE_ENTRY_SIZE)
            .and_then(decode::<TraceEntry>)
        else {
            continue;
        };
        events.push(resolve(a, cpu, &e, comms, dmesg));
    }
    Some(CpuTrace {
        cpu,
        written: hdr.written,
        events,
    })
}

fn resolve(
    a: &Analysis<'_>,
    cpu: usize,
    e: &TraceEntry,
    comms: &HashMap<u32, String>,
    dmesg: &Printk,
) -> Event {
    let event = TraceEvent::from_raw(e.event);
    let comm = match (e.pid, comms.get(&e.pid)) {
        (0, _) => "<idle>".to_string(),
        (_, Some(c)) => c.clone(),
        (_, None) => "<...>".to_string(),
    };
    let ip_name = if e.ip == 0 {
        String::new()
    } else {
        a.syms.describe(e.ip)
    };
    let detail = match event {
        Some(TraceEvent::LockContended | TraceEvent::LockAcquired | TraceEvent::LockReleased) => {
            a.name_of(e.arg)
        }
        Some(TraceEvent::SchedSwitch) => {
            let (prev, next) = (e.arg as u32, (e.arg >> 32) as u32);
            let name = |p: u32| match (p, comms.get(&p)) {
                (0, _) => "swapper".to_string(),
                (_, Some(c)) => c.clone(),
                _ => "<...>".to_string(),
            };
            format!(
                "prev_comm={} prev_pid={prev} ==> next_comm={} next_pid={next}",
                name(prev),
                name(next)
            )
        }
        Some(TraceEvent::Hook) => lockvmm_abi::hook::Hook::from_raw(e.arg >> 32)
            .map_or_else(|| format!("hook {}", e.arg >> 32), |h| h.name().to_string()),
        Some(TraceEvent::Printk) => dmesg.text(e.arg),
        _ => String::new(),
    };
    Event {
        cpu,
        ts_ns: e.ts_ns,
        seq: e.seq,
        event,
        raw_event: e.event,
        ip: e.ip,
        arg: e.arg,
        pid: e.pid,
        flags: e.flags,
        preempt: e.preempt,
        ip_name,
        comm,
        detail,
    }
}

/// A contract struct from bytes (copied: the bytes need not be aligned).
fn decode<T: ByteValued + Default>(bytes: &[u8]) -> Option<T> {
    let mut v = T::default();
    v.as_mut_slice()
        .copy_from_slice(bytes.get(..std::mem::size_of::<T>())?);
    Some(v)
}

/// printk records by sequence number (the ones `__log_buf` still holds).
struct Printk {
    first: u64,
    lines: Vec<String>,
}

impl Printk {
    fn new(a: &Analysis<'_>) -> Self {
        let lines = a.dmesg();
        let next = a
            .syms
            .addr_of("log_next_seq")
            .and_then(|s| a.mem.u64(s).ok())
            .unwrap_or(0);
        Printk {
            first: next.saturating_sub(lines.len() as u64),
            lines,
        }
    }

    fn text(&self, seq: u64) -> String {
        seq.checked_sub(self.first)
            .and_then(|i| self.lines.get(i as usize))
            // Without the "[   1.000000] " stamp: the trace has its own.
            .map(|l| {
                l.split_once("] ")
                    .map_or(l.as_str(), |(_, t)| t)
                    .to_string()
            })
            .unwrap_or_default()
    }
}
