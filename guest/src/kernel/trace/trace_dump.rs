//! `ftrace_dump_on_oops` (Linux's `kernel/trace/trace.c`, `ftrace_dump` from the panic
//! notifier): prints the trace to the console in ftrace's latency format, between
//! "Dumping ftrace buffer:" and a line of dashes.
//!
//! As `ftrace_dump_on_oops=orig_cpu` (DUMP_ORIG), only the CPU that panicked is dumped, and at
//! most its last [`DUMP_MAX`] records: each line costs thousands of emulated instructions.
//! The lines go to the serial console directly rather than through `__log_buf`, so the
//! panic's own messages stay in the log the report reads.
use core::fmt::{self, Write};
use core::sync::atomic::Ordering;

use lockvmm_abi::trace::{
    TRACE_ENTRY_SIZE, TRACE_HEADER_SIZE, TraceBufHeader, TraceEntry, TraceEvent, flags,
};

use super::ring_buffer::{trace_buffers, trace_classes};
use crate::arch::x86::kernel::dumpstack::Line;
use crate::arch::x86::percpu::smp_processor_id;
use crate::drivers::tty::serial::serial8250::serial8250_console_write;

/// The most records one dump prints.
pub const DUMP_MAX: u64 = 200;

fn emit(args: fmt::Arguments) {
    let mut l = Line::new();
    let _ = l.write_fmt(args);
    let _ = l.write_str("\n");
    serial8250_console_write(l.as_str().as_bytes());
}

/// The panic notifier's dump, if the scenario asked for it and there is a trace.
pub fn ftrace_dump_on_oops() {
    if crate::init::main::boot_info().ftrace_dump_on_oops == 0
        || trace_classes.load(Ordering::Relaxed) == 0
    {
        return;
    }
    let cpu = smp_processor_id();
    let buf = trace_buffers[cpu as usize].load(Ordering::Relaxed);
    if buf == 0 {
        return;
    }
    // Stop recording, as `ftrace_dump` does (`tracing_off`), so the dump reads a still buffer.
    trace_classes.store(0, Ordering::Relaxed);
    emit(format_args!("Dumping ftrace buffer:"));
    emit(format_args!("---------------------------------"));
    // SAFETY: this CPU's buffer, allocated at boot; nothing writes it any more.
    let hdr = unsafe { (buf as *const TraceBufHeader).read() };
    let nr = u64::from(hdr.nr_entries.max(1));
    let first = hdr.written.saturating_sub(nr.min(DUMP_MAX));
    if hdr.written > nr {
        emit(format_args!(
            "CPU:{} [LOST {} EVENTS]",
            cpu,
            hdr.written - nr
        ));
    }
    for n in first..hdr.written {
        let at = buf + TRACE_HEADER_SIZE as u64 + (n % nr) * TRACE_ENTRY_SIZE as u64;
        // SAFETY: a slot inside the buffer, written before `written` was.
        let e = unsafe { (at as *const TraceEntry).read() };
        print_entry(cpu, &e);
    }
    emit(format_args!("---------------------------------"));
}

/// One line as ftrace's latency format (`trace_print_lat_context`): task-pid, CPU, the
/// irqs-off / need-resched / context / preempt-depth columns, the time, the event. The guest
/// has no kallsyms: the address is printed as `[<…>]`, which the host's console names.
fn print_entry(cpu: u32, e: &TraceEntry) {
    let f = e.flags;
    let irqs = if f & flags::IRQS_OFF != 0 { 'd' } else { '.' };
    let resched = if f & flags::NEED_RESCHED != 0 {
        'N'
    } else {
        '.'
    };
    let ctx = match (
        f & flags::NMI != 0,
        f & flags::HARDIRQ != 0,
        f & flags::SOFTIRQ != 0,
    ) {
        (true, _, _) => 'Z',
        (_, true, true) => 'H',
        (_, true, false) => 'h',
        (_, false, true) => 's',
        _ => '.',
    };
    let depth = e.preempt & 0xf;
    let name = TraceEvent::from_raw(e.event).map_or("unknown", |ev| ev.name());
    let us = e.ts_ns / 1000;
    if e.pid == 0 {
        emit(format_args!(
            "  <idle>-0       {cpu:3}{irqs}{resched}{ctx}{depth:x} {us}us : {name}: [<{:016x}>] {} arg={:#x}",
            e.ip,
            crate::kernel::kallsyms::SymB(e.ip),
            e.arg
        ));
    } else {
        emit(format_args!(
            "   <...>-{:<7} {cpu:3}{irqs}{resched}{ctx}{depth:x} {us}us : {name}: [<{:016x}>] {} arg={:#x}",
            e.pid,
            e.ip,
            crate::kernel::kallsyms::SymB(e.ip),
            e.arg
        ));
    }
}
