//! The schedule space: choice points (a hook's N-th occurrence on a CPU, seen in a run), the
//! events that can be forced there, and a schedule as the host actions that force them.
use serde::{Deserialize, Serialize};

use lockvmm_abi::hook::Hook;

use crate::machine::{Deliver, HookAction, When};
use crate::scenario::explore::{EventKind, MAX_DEPTH};
use crate::scenario::{HandlerContext, LoadedScenario};
use crate::state::HookEvent;

/// The default `delay`: long enough for another CPU's next step (a sleep's end, a tick).
pub const DEFAULT_DELAY_NS: u64 = 10_000_000;

/// What is forced at a choice point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    TimerTick,
    Nmi,
    /// The vector of this `hardirq` handler (index, name).
    Irq {
        handler: usize,
        name: String,
    },
    /// Stop the CPU until this virtual time (ns): everyone else goes first.
    Delay {
        until_ns: u64,
    },
}

impl Event {
    pub fn label(&self) -> String {
        match self {
            Event::TimerTick => "timer_tick".into(),
            Event::Nmi => "nmi".into(),
            Event::Irq { name, .. } => format!("irq {name}"),
            Event::Delay { until_ns } => format!("delay to {:.6} s", *until_ns as f64 / 1e9),
        }
    }
}

/// One forced event: at the `nth` time `cpu` reaches `hook`, do `event` to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forced {
    pub hook: String,
    pub cpu: usize,
    pub nth: u64,
    /// When that occurrence happened (in the run that found it), virtual ns.
    pub vtime_ns: u64,
    #[serde(flatten)]
    pub event: Event,
}

impl Forced {
    pub fn label(&self) -> String {
        format!(
            "{} at {} #{} on CPU {} ({:.6} s)",
            self.event.label(),
            self.hook,
            self.nth,
            self.cpu,
            self.vtime_ns as f64 / 1e9
        )
    }

    /// The host actions that force it.
    pub fn actions(&self) -> Vec<HookAction> {
        let hook = Hook::from_name(&self.hook).unwrap_or(Hook::Mark);
        let at = |deliver| HookAction {
            when: When::Hook(hook),
            cpu: Some(self.cpu),
            target: Some(self.cpu),
            deliver,
            once: true,
            arg: None,
            nth: Some(self.nth),
        };
        match &self.event {
            Event::TimerTick => vec![at(Deliver::TimerTick)],
            Event::Nmi => vec![at(Deliver::Nmi)],
            Event::Irq { handler, .. } => vec![at(Deliver::Irq(lockvmm_abi::vector::lab_vector(
                *handler as u32,
            )))],
            Event::Delay { until_ns } => vec![
                at(Deliver::Pause),
                HookAction {
                    when: When::Time(*until_ns),
                    cpu: Some(self.cpu),
                    target: Some(self.cpu),
                    deliver: Deliver::Resume,
                    once: true,
                    arg: None,
                    nth: None,
                },
            ],
        }
    }
}

/// What the search covers: the scenario's `[explore]`, with `--depth` over its `depth`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Space {
    /// Choice points only on these CPUs (empty: every CPU).
    pub cpus: Vec<usize>,
    /// Only these hooks (empty: every hook).
    pub hooks: Vec<String>,
    pub events: Vec<EventKind>,
    /// The `hardirq` handlers an `irq` event may deliver (index, name).
    pub handlers: Vec<(usize, String)>,
    pub delay_ns: u64,
    pub from_ns: u64,
    pub until_ns: u64,
    /// Forced events per schedule, at most.
    pub depth: usize,
}

impl Space {
    pub fn of(s: &LoadedScenario, depth: Option<usize>) -> Space {
        let e = s.scenario.explore.as_ref().map(|e| e.get_ref());
        let secs = |v: Option<&toml::Spanned<f64>>| v.map(|v| (*v.get_ref() * 1e9) as u64);
        Space {
            cpus: e
                .and_then(|e| e.cpus.as_ref())
                .map(|c| c.get_ref().iter().map(|&c| c as usize).collect())
                .unwrap_or_default(),
            hooks: e
                .and_then(|e| e.hooks.as_ref())
                .map(|h| h.get_ref().clone())
                .unwrap_or_default(),
            events: e
                .and_then(|e| e.events.clone())
                .unwrap_or_else(|| EventKind::ALL.to_vec()),
            handlers: s
                .scenario
                .handler
                .iter()
                .enumerate()
                .filter(|(_, h)| h.get_ref().context == HandlerContext::Hardirq)
                .map(|(i, h)| (i, h.get_ref().name.get_ref().clone()))
                .collect(),
            delay_ns: e
                .and_then(|e| e.delay_ms.as_ref())
                .map_or(DEFAULT_DELAY_NS, |d| (*d.get_ref() * 1e6) as u64),
            from_ns: secs(e.and_then(|e| e.from_s.as_ref())).unwrap_or(0),
            until_ns: secs(e.and_then(|e| e.until_s.as_ref())).unwrap_or(u64::MAX),
            depth: depth
                .or_else(|| {
                    e.and_then(|e| e.depth.as_ref())
                        .map(|d| *d.get_ref() as usize)
                })
                .unwrap_or(1)
                .clamp(1, MAX_DEPTH as usize),
        }
    }

    /// Whether the guest must report `irq_enable_locked` for this space.
    pub fn wants_irq_enable_hook(&self) -> bool {
        self.hooks.is_empty() || self.hooks.iter().any(|h| h == Hook::IrqEnableLocked.name())
    }

    fn selects(&self, h: &HookEvent) -> bool {
        (self.cpus.is_empty() || self.cpus.contains(&h.cpu))
            && (self.hooks.is_empty() || self.hooks.contains(&h.hook))
            && (self.from_ns..self.until_ns).contains(&h.vtime_ns)
    }

    /// The events that can be forced at one occurrence, in a fixed order.
    fn events_at(&self, vtime_ns: u64) -> Vec<Event> {
        let mut out = Vec::new();
        for k in &self.events {
            match k {
                EventKind::TimerTick => out.push(Event::TimerTick),
                EventKind::Nmi => out.push(Event::Nmi),
                EventKind::Irq => out.extend(self.handlers.iter().map(|(i, n)| Event::Irq {
                    handler: *i,
                    name: n.clone(),
                })),
                EventKind::Delay => out.push(Event::Delay {
                    until_ns: as_written(vtime_ns.saturating_add(self.delay_ns)),
                }),
            }
        }
        out
    }

    /// The schedules one forced event longer than `parent`, from the hooks its run passed:
    /// every selected occurrence after the parent's last forced event, times every event. The
    /// windows where a CPU enables interrupts holding a spinlock come first (where an interrupt
    /// is most likely to hurt), then the other hooks, each in the order the run reached them.
    pub fn children(&self, parent: &[Forced], hooks: &[HookEvent]) -> Vec<Vec<Forced>> {
        if parent.len() >= self.depth {
            return Vec::new();
        }
        let mut seen: std::collections::HashMap<(usize, &str), u64> = Default::default();
        let mut after_last = parent.is_empty();
        let mut out = Vec::new();
        for h in hooks {
            let n = seen.entry((h.cpu, h.hook.as_str())).or_insert(0);
            *n += 1;
            if !after_last {
                // The parent's last event fires at this occurrence: choices start after it.
                after_last = parent
                    .last()
                    .is_some_and(|l| l.cpu == h.cpu && l.hook == h.hook && l.nth == *n);
                continue;
            }
            // A CPU a delay stopped cannot be acted on until it runs again; the others can.
            if !self.selects(h) || Hook::from_name(&h.hook).is_none() {
                continue;
            }
            for event in self.events_at(h.vtime_ns) {
                let mut s = parent.to_vec();
                s.push(Forced {
                    hook: h.hook.clone(),
                    cpu: h.cpu,
                    nth: *n,
                    vtime_ns: h.vtime_ns,
                    event,
                });
                out.push(s);
            }
        }
        let irq_window = Hook::IrqEnableLocked.name();
        out.sort_by_key(|s| s.last().is_none_or(|f| f.hook != irq_window));
        out
    }
}

/// A virtual time as `found-N.toml` writes it (`at_time`, seconds with 9 decimals) and the
/// scenario loader reads it back: the search runs the very time the replay will.
pub fn as_written(ns: u64) -> u64 {
    let text = format!("{:.9}", ns as f64 / 1e9);
    (text.parse::<f64>().unwrap_or(0.0) * 1e9) as u64
}

/// The host actions of a whole schedule.
pub fn actions(schedule: &[Forced]) -> Vec<HookAction> {
    schedule.iter().flat_map(Forced::actions).collect()
}

/// Whether the run reached every forced event of its schedule (the occurrence it names).
pub fn reached(schedule: &[Forced], hooks: &[HookEvent]) -> bool {
    schedule.iter().all(|f| {
        hooks
            .iter()
            .filter(|h| h.cpu == f.cpu && h.hook == f.hook)
            .count() as u64
            >= f.nth
    })
}
