//! The host's own record in the guest's trace: when a hook makes the host act, it appends a
//! `HostAction` record to that CPU's ring buffer while the CPU is stopped in the hypercall, so
//! the record precedes the interrupt the action injects (the guest could only write it after
//! the hypercall returns, which is after the injected handler ran, or never if it does not
//! return). Guest memory is untrusted: a buffer that does not look right is left alone.
use lockvmm_abi::trace::{
    TRACE_BUFFERS_SYMBOL, TRACE_ENTRY_SIZE, TRACE_HEADER_SIZE, TRACE_MAGIC, TRACE_MAX_KIB,
    TRACE_SEQ_SYMBOL, TraceBufHeader, TraceEntry, TraceEvent,
};
use vm_memory::ByteValued;

use super::Machine;

/// Appends `HostAction(acted)` to `cpu`'s trace buffer, if the guest keeps one.
pub fn record_host_action(m: &Machine, cr3: u64, cpu: usize, acted: u64) {
    let _ = try_record(m, cr3, cpu, acted);
}

fn try_record(m: &Machine, cr3: u64, cpu: usize, acted: u64) -> Option<()> {
    let syms = &m.kernel.symbols;
    let (base, seq_at) = (
        syms.addr_of(TRACE_BUFFERS_SYMBOL)?,
        syms.addr_of(TRACE_SEQ_SYMBOL)?,
    );
    let mem = &m.memory;
    let buf = mem
        .read_virt_u64(cr3, base.checked_add(cpu as u64 * 8)?)
        .ok()?;
    if buf == 0 {
        return None;
    }
    let hdr: TraceBufHeader = mem.read_virt_obj(cr3, buf).ok()?;
    let nr = u64::from(hdr.nr_entries);
    let max = u64::from(TRACE_MAX_KIB) * 1024 / TRACE_ENTRY_SIZE as u64;
    if hdr.magic != TRACE_MAGIC || hdr.cpu as usize != cpu || nr == 0 || nr > max {
        return None;
    }
    let slot_at =
        |n: u64| buf.checked_add(TRACE_HEADER_SIZE as u64 + (n % nr) * TRACE_ENTRY_SIZE as u64);
    // The task and context are the hook's (the record the guest wrote just before).
    let prev: TraceEntry = match hdr.written.checked_sub(1) {
        Some(n) => mem.read_virt_obj(cr3, slot_at(n)?).ok()?,
        None => TraceEntry::default(),
    };
    let seq = mem.read_virt_u64(cr3, seq_at).ok()?;
    let entry = TraceEntry {
        ts_ns: m.now_ns(),
        seq,
        ip: 0,
        arg: acted,
        pid: prev.pid,
        event: TraceEvent::HostAction.raw(),
        flags: prev.flags,
        preempt: prev.preempt,
    };
    mem.write_virt(cr3, slot_at(hdr.written)?, entry.as_slice())
        .ok()?;
    let written_at = buf.checked_add(std::mem::offset_of!(TraceBufHeader, written) as u64)?;
    mem.write_virt(cr3, written_at, &(hdr.written + 1).to_le_bytes())
        .ok()?;
    mem.write_virt(cr3, seq_at, &(seq + 1).to_le_bytes()).ok()
}
