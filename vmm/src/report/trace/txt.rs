//! `trace.txt`: the trace as `trace-cmd report` prints it (trace-cmd's `trace-output.c` and
//! the kernel's `trace_output.c`): `comm-pid [cpu] flags secs.usecs: event: fields`, with
//! each event's fields as its `TP_printk` format in Linux's `include/trace/events/` prints
//! them.
use crate::state::vtime::Secs;
use std::fmt::Write;

use lockvmm_abi::trace::{TraceEvent, flags};

use crate::trace::{Event, Trace, vector_name};

/// Which events to print (`inspect`'s `trace` filters).
#[derive(Debug, Clone, Default)]
pub struct TxtFilter {
    /// Only these CPUs (empty: all).
    pub cpus: Vec<usize>,
    /// Only events at or after this virtual time.
    pub from_ns: u64,
    /// Only events at or before this virtual time.
    pub to_ns: Option<u64>,
    /// At most this many (the last ones).
    pub last: Option<usize>,
}

/// The whole report (every CPU, oldest first).
pub fn render_txt(trace: &Trace, f: &TxtFilter) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "cpus={}", trace.cpus.len());
    for c in &trace.cpus {
        if c.lost() > 0 && (f.cpus.is_empty() || f.cpus.contains(&c.cpu)) {
            let _ = writeln!(s, "CPU:{} [LOST {} EVENTS]", c.cpu, c.lost());
        }
    }
    let mut events: Vec<&Event> = trace
        .merged(|c| f.cpus.is_empty() || f.cpus.contains(&c), f.from_ns)
        .into_iter()
        .filter(|e| f.to_ns.is_none_or(|t| e.ts_ns <= t))
        .collect();
    if let Some(n) = f.last {
        events = events.split_off(events.len().saturating_sub(n));
    }
    for e in events {
        let _ = writeln!(s, "{}", line(e));
    }
    s
}

/// ftrace's latency columns: irqs-off, need-resched, hardirq/softirq/NMI, preempt depth.
fn lat(e: &Event) -> String {
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
    let depth = match e.preempt & 0xf {
        0 => '.',
        d => char::from_digit(u32::from(d), 16).unwrap_or('f'),
    };
    format!("{irqs}{resched}{ctx}{depth}")
}

fn line(e: &Event) -> String {
    let name = e.event.map_or("unknown", |ev| ev.name());
    format!(
        "{:>16}-{:<7} [{:03}] {} {:>12}: {:<20} {}",
        e.comm,
        e.pid,
        e.cpu,
        lat(e),
        Secs(e.ts_ns),
        format!("{name}:"),
        event_fields(e)
    )
}

/// An event's fields, as its `TP_printk` prints them.
pub fn event_fields(e: &Event) -> String {
    let Some(ev) = e.event else {
        return format!("type={} ip={:#x} arg={:#x}", e.raw_event, e.ip, e.arg);
    };
    match ev {
        // include/trace/events/preemptirq.h: "caller=%pS parent=%pS"
        TraceEvent::IrqDisable
        | TraceEvent::IrqEnable
        | TraceEvent::PreemptDisable
        | TraceEvent::PreemptEnable => format!("caller={}", e.ip_name),
        // include/trace/events/lock.h: contention_begin "%p (flags=%s)"; lockdep's "%p %s".
        TraceEvent::LockContended | TraceEvent::LockAcquired | TraceEvent::LockReleased => {
            format!("{:#x} {} caller={}", e.arg, e.detail, e.ip_name)
        }
        // include/trace/events/irq.h
        TraceEvent::IrqEntry => format!("irq={} name={}", e.arg, vector_name(e.arg)),
        TraceEvent::IrqExit => format!("irq={} ret=handled", e.arg),
        TraceEvent::SoftirqEntry | TraceEvent::SoftirqExit => format!("vec={}", e.arg),
        TraceEvent::NmiEntry | TraceEvent::NmiExit => "nmi".to_string(),
        // include/trace/events/sched.h (prio and state are not recorded)
        TraceEvent::SchedSwitch => e.detail.clone(),
        // include/trace/events/timer.h
        TraceEvent::HrtimerExpire => format!("hrtimer={:#x} function={}", e.arg, e.ip_name),
        TraceEvent::TimerExpire => format!("timer={:#x} function={}", e.arg, e.ip_name),
        TraceEvent::WatchdogTouch => format!("caller={}", e.ip_name),
        TraceEvent::WatchdogCheck => format!(
            "{} lockup={}",
            if e.arg >> 32 == 2 { "hard" } else { "soft" },
            e.arg & 1
        ),
        TraceEvent::Hook => format!("hook={} arg={:#x}", e.detail, e.arg & 0xffff_ffff),
        TraceEvent::HostAction => format!("actions={}", e.arg),
        // include/trace/events/printk.h: "%s"
        TraceEvent::Printk => e.detail.clone(),
    }
}
