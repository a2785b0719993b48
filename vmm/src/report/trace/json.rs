//! `trace.json`: the Chrome trace-event format (the "JSON Array/Object Format" of Google's
//! Trace Event Format document), which ui.perfetto.dev and chrome://tracing open.
//!
//! Each CPU is a process (pid = CPU + 1, named "CPU n"), with one thread (track) per kind of
//! section, because a track's slices must nest: "locks" (holds and spins, in as many lanes as
//! hand-over-hand holds need), "irqs off", "preempt off", "handlers" (hardirq, softirq, NMI),
//! and "events" (the instants: watchdog checks, hooks, printk, context switches). Times are
//! the timeline's display times in µs (see `trace::spans`); every event's args carry the true
//! virtual time in ns.
use serde_json::{Value, json};

use crate::trace::{Span, SpanKind, Timeline, Trace, lanes};

/// Thread ids within a CPU's process.
const TID_IRQS_OFF: usize = 1;
const TID_PREEMPT: usize = 2;
const TID_HANDLERS: usize = 3;
const TID_EVENTS: usize = 4;
/// Lock lanes start here.
const TID_LOCKS: usize = 10;

fn pid(cpu: usize) -> usize {
    cpu + 1
}

pub fn render_json(trace: &Trace, tl: &Timeline) -> String {
    let mut ev: Vec<Value> = Vec::new();
    for c in &trace.cpus {
        let p = pid(c.cpu);
        ev.push(
            json!({"name": "process_name", "ph": "M", "pid": p, "tid": 0,
            "args": {"name": format!("CPU {}", c.cpu)}}),
        );
        ev.push(
            json!({"name": "process_sort_index", "ph": "M", "pid": p, "tid": 0,
            "args": {"sort_index": c.cpu}}),
        );
        for (tid, name) in [
            (TID_IRQS_OFF, "irqs off"),
            (TID_PREEMPT, "preempt off"),
            (TID_HANDLERS, "handlers"),
            (TID_EVENTS, "events"),
        ] {
            ev.push(thread_name(p, tid, name));
        }
        let spans: Vec<&Span> = tl.spans.iter().filter(|s| s.cpu == c.cpu).collect();
        let locks: Vec<&Span> = spans
            .iter()
            .copied()
            .filter(|s| matches!(s.kind, SpanKind::LockHold | SpanKind::Spin))
            .collect();
        let lane = lanes(&locks, |s| tl.end_of(s));
        for n in 0..lane.iter().max().map_or(0, |m| m + 1) {
            ev.push(thread_name(p, TID_LOCKS + n, &format!("locks {n}")));
        }
        for (s, l) in locks.iter().zip(&lane) {
            ev.push(slice(tl, s, p, TID_LOCKS + l));
        }
        let handlers: Vec<&Span> = spans
            .iter()
            .copied()
            .filter(|s| {
                matches!(
                    s.kind,
                    SpanKind::Hardirq | SpanKind::Softirq | SpanKind::Nmi
                )
            })
            .collect();
        for s in &handlers {
            ev.push(slice(tl, s, p, TID_HANDLERS));
        }
        for s in spans.iter().filter(|s| s.kind == SpanKind::IrqsOff) {
            ev.push(slice(tl, s, p, TID_IRQS_OFF));
        }
        for s in spans.iter().filter(|s| s.kind == SpanKind::PreemptOff) {
            ev.push(slice(tl, s, p, TID_PREEMPT));
        }
    }
    for i in &tl.instants {
        let mut e = json!({"name": i.name, "cat": i.event.name(), "ph": "i", "s": "t",
            "ts": i.at_us, "pid": pid(i.cpu), "tid": TID_EVENTS,
            "args": {"vtime_ns": i.ts_ns}});
        if i.alarm {
            e["cname"] = json!("terrible");
        }
        ev.push(e);
    }
    for f in &tl.flows {
        // A flow binds to the slices around its ends: a short slice marks the hook, and the
        // handler's slice starts where the flow ends ("bp": "e": the enclosing slice).
        ev.push(
            json!({"name": f.name, "cat": "host_action", "ph": "X", "ts": f.from_us,
            "dur": 1.0, "pid": pid(f.from_cpu), "tid": TID_EVENTS, "args": {}}),
        );
        ev.push(
            json!({"name": "host action", "cat": "host_action", "ph": "s", "id": f.id,
            "ts": f.from_us, "pid": pid(f.from_cpu), "tid": TID_EVENTS}),
        );
        ev.push(
            json!({"name": "host action", "cat": "host_action", "ph": "f", "bp": "e",
            "id": f.id, "ts": f.to_us, "pid": pid(f.to_cpu), "tid": TID_HANDLERS}),
        );
    }
    let doc = json!({
        "traceEvents": ev,
        "displayTimeUnit": "ns",
        "otherData": {
            "generator": "lockvmm",
            "end_vtime_ns": trace.end_ns,
            "time": "display µs: the virtual time, spread 1 µs per event within one instant",
        },
    });
    serde_json::to_string(&doc).unwrap_or_default()
}

fn thread_name(pid: usize, tid: usize, name: &str) -> Value {
    json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}})
}

fn slice(tl: &Timeline, s: &Span, pid: usize, tid: usize) -> Value {
    let end = tl.end_of(s);
    let name = match s.kind {
        SpanKind::LockHold => format!("hold {}", s.name),
        SpanKind::Spin => format!("spin on {}", s.name),
        SpanKind::IrqsOff | SpanKind::PreemptOff => s.kind.label().to_string(),
        _ => s.name.clone(),
    };
    json!({
        "name": name,
        "cat": s.kind.label(),
        "ph": "X",
        "ts": s.start_us,
        "dur": (end - s.start_us).max(0.0),
        "pid": pid,
        "tid": tid,
        "args": {
            "vtime_ns": s.start_ns,
            "from": s.ip_name,
            "open_at_snapshot": s.end_us.is_none(),
            "began_before_trace": s.clipped,
        },
    })
}
