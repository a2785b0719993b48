//! The sections a trace's events open and close, per CPU: lock holds and spins, IRQs-off and
//! preempt-off sections, interrupt handlers; the instants (watchdog checks and touches, hooks,
//! printk, context switches); and the flows from a host action to the handler it caused.
//!
//! The virtual clock only moves while every vCPU waits, so many events share one timestamp.
//! For drawing, each event gets a display time: its virtual time, but at least 1 µs after the
//! machine's previous event (the events' true order is the machine-wide sequence), so a
//! section that opened and closed within one instant still has a width. The true virtual time
//! stays in every event.
use std::collections::HashMap;

use lockvmm_abi::trace::{TraceEvent, flags};

use super::{Event, Trace};

/// What a section is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanKind {
    /// Between `lock_acquired` and `lock_release`.
    LockHold,
    /// Between `contention_begin` and `lock_acquired`.
    Spin,
    /// Interrupts disabled.
    IrqsOff,
    /// Preemption disabled (count above 0).
    PreemptOff,
    Hardirq,
    Softirq,
    Nmi,
}

impl SpanKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::LockHold => "lock held",
            Self::Spin => "spin",
            Self::IrqsOff => "irqs off",
            Self::PreemptOff => "preempt off",
            Self::Hardirq => "hardirq",
            Self::Softirq => "softirq",
            Self::Nmi => "nmi",
        }
    }
}

/// One section on one CPU, in display time (µs).
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub cpu: usize,
    pub kind: SpanKind,
    /// The lock, vector or softirq's name.
    pub name: String,
    /// The lock's address for lock sections.
    pub lock: Option<u64>,
    pub start_us: f64,
    /// `None`: still open when the machine stopped (it ends at the trace's end).
    pub end_us: Option<f64>,
    /// The open section began before the oldest surviving record (the ring overwrote it).
    pub clipped: bool,
    /// Where it began (`function+off`).
    pub ip_name: String,
    /// Virtual time it began at, in ns.
    pub start_ns: u64,
}

/// A point event.
#[derive(Debug, Clone, PartialEq)]
pub struct Instant {
    pub cpu: usize,
    pub at_us: f64,
    pub ts_ns: u64,
    pub event: TraceEvent,
    pub name: String,
    /// The watchdog check found a lockup.
    pub alarm: bool,
}

/// From a host action to the handler entry it caused.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub id: u64,
    pub from_cpu: usize,
    pub from_us: f64,
    pub to_cpu: usize,
    pub to_us: f64,
    pub name: String,
}

/// The whole picture.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub spans: Vec<Span>,
    pub instants: Vec<Instant>,
    pub flows: Vec<Flow>,
    /// Display time of the end (the snapshot), µs.
    pub end_us: f64,
    /// Display time of each event, by sequence number.
    pub at: HashMap<u64, f64>,
}

/// A vector's name as `/proc/interrupts` and `irq_handler_entry` show it.
pub fn vector_name(v: u64) -> String {
    use lockvmm_abi::vector::{LOCAL_TIMER_VECTOR, RESCHEDULE_VECTOR};
    match v {
        2 => "NMI".into(),
        x if x == u64::from(LOCAL_TIMER_VECTOR) => "timer (LOC)".into(),
        x if x == u64::from(RESCHEDULE_VECTOR) => "reschedule (RES)".into(),
        x => format!("vector {x:#x}"),
    }
}

impl Timeline {
    pub fn build(trace: &Trace) -> Timeline {
        let all = trace.merged(|_| true, 0);
        let mut at = HashMap::with_capacity(all.len());
        let mut last = f64::MIN;
        for e in &all {
            let t = (e.ts_ns as f64 / 1000.0).max(last + 1.0);
            at.insert(e.seq, t);
            last = t;
        }
        let end_us = (trace.end_ns as f64 / 1000.0).max(last + 1.0);
        let mut tl = Timeline {
            end_us,
            ..Timeline::default()
        };
        for c in &trace.cpus {
            tl.cpu_sections(&c.events, &at);
        }
        tl.flows = flows(&all, &at);
        tl.at = at;
        tl
    }

    fn cpu_sections(&mut self, events: &[Event], at: &HashMap<u64, f64>) {
        let Some(first) = events.first() else { return };
        let t0 = at[&first.seq];
        // Open sections: lock holds and spins by lock, handlers as a stack, one irqs-off and
        // one preempt-off section.
        let mut holds: HashMap<u64, Vec<Span>> = HashMap::new();
        let mut spins: HashMap<u64, Span> = HashMap::new();
        let mut handlers: Vec<Span> = Vec::new();
        let mut irqs_off: Option<Span> = None;
        let mut preempt_off: Option<Span> = None;
        let open = |e: &Event, kind: SpanKind, name: String, lock: Option<u64>| Span {
            cpu: e.cpu,
            kind,
            name,
            lock,
            start_us: at[&e.seq],
            end_us: None,
            clipped: false,
            ip_name: e.ip_name.clone(),
            start_ns: e.ts_ns,
        };
        let clipped = |e: &Event, kind: SpanKind, name: String, lock: Option<u64>| Span {
            start_us: t0,
            clipped: true,
            start_ns: first.ts_ns,
            ip_name: String::new(),
            ..open(e, kind, name, lock)
        };
        for e in events {
            let t = at[&e.seq];
            let Some(ev) = e.event else { continue };
            // IRQs-off from the flags: an interrupt gate turns them off without an event.
            let off = e.flags & flags::IRQS_OFF != 0;
            match (&mut irqs_off, off) {
                (None, true) => irqs_off = Some(open(e, SpanKind::IrqsOff, String::new(), None)),
                (Some(_), false) => self.close(irqs_off.take(), t),
                _ => {}
            }
            match ev {
                TraceEvent::IrqEnable => self.close(irqs_off.take(), t),
                TraceEvent::PreemptDisable => {
                    preempt_off
                        .get_or_insert_with(|| open(e, SpanKind::PreemptOff, String::new(), None));
                }
                TraceEvent::PreemptEnable => self.close(preempt_off.take(), t),
                TraceEvent::LockContended => {
                    spins.insert(
                        e.arg,
                        open(e, SpanKind::Spin, e.detail.clone(), Some(e.arg)),
                    );
                }
                TraceEvent::LockAcquired => {
                    self.close(spins.remove(&e.arg), t);
                    holds.entry(e.arg).or_default().push(open(
                        e,
                        SpanKind::LockHold,
                        e.detail.clone(),
                        Some(e.arg),
                    ));
                }
                TraceEvent::LockReleased => {
                    let s = holds.get_mut(&e.arg).and_then(Vec::pop).unwrap_or_else(|| {
                        clipped(e, SpanKind::LockHold, e.detail.clone(), Some(e.arg))
                    });
                    self.close(Some(s), t);
                }
                TraceEvent::IrqEntry => {
                    handlers.push(open(e, SpanKind::Hardirq, vector_name(e.arg), None))
                }
                TraceEvent::NmiEntry => handlers.push(open(e, SpanKind::Nmi, "NMI".into(), None)),
                TraceEvent::SoftirqEntry => {
                    handlers.push(open(e, SpanKind::Softirq, softirq_name(e.arg), None))
                }
                TraceEvent::IrqExit | TraceEvent::NmiExit | TraceEvent::SoftirqExit => {
                    let kind = match ev {
                        TraceEvent::IrqExit => SpanKind::Hardirq,
                        TraceEvent::NmiExit => SpanKind::Nmi,
                        _ => SpanKind::Softirq,
                    };
                    if handlers.last().is_some_and(|h| h.kind == kind) {
                        self.close(handlers.pop(), t);
                    }
                }
                TraceEvent::WatchdogCheck
                | TraceEvent::WatchdogTouch
                | TraceEvent::Hook
                | TraceEvent::HostAction
                | TraceEvent::SchedSwitch
                | TraceEvent::Printk
                | TraceEvent::HrtimerExpire
                | TraceEvent::TimerExpire => self.instants.push(instant(e, ev, t)),
                TraceEvent::IrqDisable => {}
            }
        }
        // Whatever is still open ran into the snapshot.
        self.spans.extend(holds.into_values().flatten());
        self.spans.extend(spins.into_values());
        self.spans.extend(handlers);
        self.spans.extend(irqs_off);
        self.spans.extend(preempt_off);
        self.spans.sort_by(|a, b| {
            (a.cpu, a.start_us)
                .partial_cmp(&(b.cpu, b.start_us))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    }

    fn close(&mut self, span: Option<Span>, at_us: f64) {
        if let Some(mut s) = span {
            s.end_us = Some(at_us.max(s.start_us));
            self.spans.push(s);
        }
    }

    /// The display end of a span (the trace's end while open).
    pub fn end_of(&self, s: &Span) -> f64 {
        s.end_us.unwrap_or(self.end_us)
    }
}

fn softirq_name(nr: u64) -> String {
    // Linux's softirq_to_name (kernel/softirq.c).
    const NAMES: [&str; 10] = [
        "HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER",
        "RCU",
    ];
    NAMES
        .get(nr as usize)
        .map_or_else(|| format!("softirq {nr}"), |n| (*n).to_string())
}

fn instant(e: &Event, ev: TraceEvent, t: f64) -> Instant {
    let (name, alarm) = match ev {
        TraceEvent::WatchdogCheck => {
            let lockup = e.arg & 1 != 0;
            let which = if e.arg >> 32 == 2 { "hard" } else { "soft" };
            (
                format!(
                    "watchdog {which} check{}",
                    if lockup { ": LOCKUP" } else { "" }
                ),
                lockup,
            )
        }
        TraceEvent::WatchdogTouch => (format!("watchdog touch from {}", e.ip_name), false),
        TraceEvent::Hook => (format!("hook {}", e.detail), false),
        TraceEvent::HostAction => (format!("host action ({} performed)", e.arg), false),
        TraceEvent::SchedSwitch => (format!("sched_switch {}", e.detail), false),
        TraceEvent::Printk => (format!("printk: {}", e.detail), false),
        _ => (format!("{} {}", ev.name(), e.ip_name), false),
    };
    Instant {
        cpu: e.cpu,
        at_us: t,
        ts_ns: e.ts_ns,
        event: ev,
        name,
        alarm,
    }
}

/// The most flows drawn.
const MAX_FLOWS: usize = 256;

/// Each host action (the host recorded it while the CPU was stopped in the hook's
/// hypercall) flows to the next handler entry (hardirq or NMI): on its own CPU if one
/// follows, else on any CPU. It is named after the hook it answered.
fn flows(all: &[&Event], at: &HashMap<u64, f64>) -> Vec<Flow> {
    let entry = |e: &&&Event| matches!(e.event, Some(TraceEvent::IrqEntry | TraceEvent::NmiEntry));
    let mut last_hook: HashMap<usize, String> = HashMap::new();
    let mut out = Vec::new();
    for (i, a) in all.iter().enumerate() {
        match a.event {
            Some(TraceEvent::Hook) => {
                last_hook.insert(a.cpu, a.detail.clone());
            }
            // A guest can forge host actions: a bounded number of flows, each searched once.
            Some(TraceEvent::HostAction) if out.len() < MAX_FLOWS => {
                let later = &all[i + 1..];
                let target = later
                    .iter()
                    .filter(entry)
                    .find(|e| e.cpu == a.cpu)
                    .or_else(|| later.iter().find(entry));
                if let Some(t) = target {
                    let hook = last_hook.get(&a.cpu).map_or("a hook", String::as_str);
                    out.push(Flow {
                        id: out.len() as u64 + 1,
                        from_cpu: a.cpu,
                        from_us: at[&a.seq],
                        to_cpu: t.cpu,
                        to_us: at[&t.seq],
                        name: format!("host action at {hook}"),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// Lanes for sections that may overlap without nesting (hand-over-hand lock holds): within
/// one lane, any two sections are disjoint or one contains the other, as a trace viewer's
/// slice track requires. Returns each section's lane, in the order given; `end` gives a
/// section's end.
pub fn lanes(spans: &[&Span], end: impl Fn(&Span) -> f64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by(|&a, &b| {
        (spans[a].start_us, -end(spans[a]))
            .partial_cmp(&(spans[b].start_us, -end(spans[b])))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    // Each lane's stack of open sections' ends.
    let mut stacks: Vec<Vec<f64>> = Vec::new();
    let mut out = vec![0; spans.len()];
    for i in order {
        let (s, e) = (spans[i].start_us, end(spans[i]));
        let lane = stacks.iter_mut().position(|st| {
            while st.last().is_some_and(|&top| top <= s) {
                st.pop();
            }
            st.last().is_none_or(|&top| e <= top)
        });
        let lane = lane.unwrap_or_else(|| {
            stacks.push(Vec::new());
            stacks.len() - 1
        });
        stacks[lane].push(e);
        out[i] = lane;
    }
    out
}
