//! `[explore]`: the schedule space `lockvmm explore` searches in a scenario, narrowed (which
//! CPUs, which hooks, which events, when), and checked like the rest of the file.
use serde::Deserialize;
use toml::Spanned;

use super::{LoadedScenario, ScenarioError};
use lockvmm_abi::hook::Hook;

/// The most forced events one schedule may have (`depth`, `--depth`).
pub const MAX_DEPTH: i64 = 4;

/// What explore may force at a choice point.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The CPU's next timer interrupt, now.
    TimerTick,
    /// An NMI.
    Nmi,
    /// Each `hardirq` handler's vector (an IPI or a device interrupt).
    Irq,
    /// Stop the CPU for `delay_ms` of virtual time: the other CPUs go first (an ordering).
    Delay,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [Self::TimerTick, Self::Nmi, Self::Irq, Self::Delay];

    pub fn name(self) -> &'static str {
        match self {
            Self::TimerTick => "timer_tick",
            Self::Nmi => "nmi",
            Self::Irq => "irq",
            Self::Delay => "delay",
        }
    }
}

/// `[explore]` in a scenario file. Every field narrows; absent, the space is every CPU, every
/// hook, every event kind, the whole run.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ExploreSpec {
    /// Choice points only on these CPUs.
    pub cpus: Option<Spanned<Vec<i64>>>,
    /// Only occurrences of these hooks (`irq_enable_locked`: a CPU enables interrupts while it
    /// holds spinlocks; `allocate_slab`, `lock_acquired`, …). `lock_contended` (a CPU about to
    /// wait for a held spinlock: who goes first) is reported only when named here.
    pub hooks: Option<Spanned<Vec<String>>>,
    /// The events forced (default: all).
    pub events: Option<Vec<EventKind>>,
    /// How long a `delay` stops its CPU, in virtual milliseconds (default 10).
    pub delay_ms: Option<Spanned<f64>>,
    /// Only choice points at or after this many virtual seconds…
    pub from_s: Option<Spanned<f64>>,
    /// … and before this many.
    pub until_s: Option<Spanned<f64>>,
    /// Forced events per schedule when `--depth` is not given (default 1).
    pub depth: Option<Spanned<i64>>,
}

impl LoadedScenario {
    /// Whether the scenario's explore space includes the `irq_enable_locked` windows (which
    /// the guest reports only when armed).
    pub fn explores_irq_enable(&self) -> bool {
        self.scenario.explore.as_ref().is_some_and(|e| {
            e.get_ref().hooks.as_ref().is_none_or(|h| {
                h.get_ref()
                    .iter()
                    .any(|n| n == Hook::IrqEnableLocked.name())
            })
        })
    }

    /// Whether an action acts at `hook`, or the `[explore]` space names it.
    pub fn uses_hook(&self, hook: Hook) -> bool {
        let named = |h: &String| h == hook.name();
        self.scenario.action.iter().any(|a| {
            a.get_ref()
                .at_hook
                .as_ref()
                .is_some_and(|h| named(h.get_ref()))
        }) || self.scenario.explore.as_ref().is_some_and(|e| {
            e.get_ref()
                .hooks
                .as_ref()
                .is_some_and(|h| h.get_ref().iter().any(named))
        })
    }

    /// `[explore]`: CPUs that exist, hooks that exist, sane times and depth.
    pub(super) fn validate_explore(&self, vcpus: i64) -> Result<(), ScenarioError> {
        let Some(e) = &self.scenario.explore else {
            return Ok(());
        };
        let e = e.get_ref();
        if let Some(cpus) = &e.cpus
            && let Some(bad) = cpus.get_ref().iter().find(|c| !(0..vcpus).contains(*c))
        {
            return Err(self.error_at(
                cpus.span(),
                format!(
                    "explore.cpus: CPU {bad} does not exist (0 to {})",
                    vcpus - 1
                ),
            ));
        }
        if let Some(hooks) = &e.hooks
            && let Some(bad) = hooks
                .get_ref()
                .iter()
                .find(|h| Hook::from_name(h).is_none())
        {
            let known: Vec<&str> = Hook::ALL.iter().map(|h| h.name()).collect();
            return Err(self.error_at(
                hooks.span(),
                format!("explore.hooks: unknown hook `{bad}` ({})", known.join(", ")),
            ));
        }
        for (name, v, max) in [
            ("delay_ms", &e.delay_ms, 60_000.0),
            ("from_s", &e.from_s, 86_400.0),
            ("until_s", &e.until_s, 86_400.0),
        ] {
            if let Some(v) = v
                && !(*v.get_ref() >= 0.0 && *v.get_ref() <= max)
            {
                return Err(self.error_at(
                    v.span(),
                    format!("explore.{name} must be between 0 and {max}"),
                ));
            }
        }
        if let Some(d) = &e.depth
            && !(1..=MAX_DEPTH).contains(d.get_ref())
        {
            return Err(self.error_at(d.span(), format!("explore.depth must be 1 to {MAX_DEPTH}")));
        }
        Ok(())
    }
}
