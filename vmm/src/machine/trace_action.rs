//! The host's records in the guest's trace: a hook point (`Hook`), and the actions the host
//! performed for it (`HostAction`). The host appends them to that CPU's ring buffer while the
//! CPU is stopped in the hook's hypercall, so they precede any interrupt the action injects
//! (the guest could only write them after the hypercall returns, which is after the injected
//! handler ran, or never if it does not return), and the guest's hook sites stay exactly as
//! they are without tracing. Guest memory is untrusted: a buffer that does not look right is
//! left alone.
use lockvmm_abi::eflags::X86_EFLAGS_IF;
use lockvmm_abi::trace::{
    TRACE_BUFFERS_SYMBOL, TRACE_CLASSES_SYMBOL, TRACE_ENTRY_SIZE, TRACE_HEADER_SIZE, TRACE_MAGIC,
    TRACE_MAX_KIB, TRACE_SEQ_SYMBOL, TraceBufHeader, TraceEntry, TraceEvent, class, flags,
};
use vm_memory::ByteValued;

use super::Machine;
use super::hypercall::Call;

/// Appends `Hook(id, arg)` and, if the host acted, `HostAction(acted)` to the calling CPU's
/// trace buffer, if the guest keeps one and records hooks.
pub fn record_hook(m: &Machine, c: &Call<'_>, id: u64, arg: u64, acted: u64) {
    let syms = &m.kernel.symbols;
    let on = syms
        .addr_of(TRACE_CLASSES_SYMBOL)
        .and_then(|at| m.memory.read_virt_u32(c.cr3(), at).ok())
        .is_some_and(|classes| classes & class::HOOK != 0);
    if !on {
        return;
    }
    let irqs_off = if c.regs.rflags & X86_EFLAGS_IF == 0 {
        flags::IRQS_OFF
    } else {
        0
    };
    let hook = (id << 32) | (arg & 0xffff_ffff);
    let _ = record(m, c, TraceEvent::Hook, c.regs.rip, hook, irqs_off);
    if acted > 0 {
        let _ = record(m, c, TraceEvent::HostAction, 0, acted, irqs_off);
    }
}

fn record(
    m: &Machine,
    c: &Call<'_>,
    event: TraceEvent,
    ip: u64,
    arg: u64,
    irqs_off: u8,
) -> Option<()> {
    let (cr3, cpu) = (c.cr3(), c.cpu);
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
    // The task and context are those of the guest's last record on this CPU (the host does
    // not read task structures); the interrupt flag is the vCPU's own.
    let prev: TraceEntry = match hdr.written.checked_sub(1) {
        Some(n) => mem.read_virt_obj(cr3, slot_at(n)?).ok()?,
        None => TraceEntry::default(),
    };
    let seq = mem.read_virt_u64(cr3, seq_at).ok()?;
    let entry = TraceEntry {
        ts_ns: m.now_ns(),
        seq,
        ip,
        arg,
        pid: prev.pid,
        event: event.raw(),
        flags: (prev.flags & !flags::IRQS_OFF) | irqs_off,
        preempt: prev.preempt,
    };
    mem.write_virt(cr3, slot_at(hdr.written)?, entry.as_slice())
        .ok()?;
    let written_at = buf.checked_add(std::mem::offset_of!(TraceBufHeader, written) as u64)?;
    mem.write_virt(cr3, written_at, &(hdr.written + 1).to_le_bytes())
        .ok()?;
    mem.write_virt(cr3, seq_at, &(seq + 1).to_le_bytes()).ok()
}
