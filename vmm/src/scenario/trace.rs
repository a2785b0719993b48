//! The scenario's `[trace]` section: the guest's per-CPU trace ring buffer (ftrace's events),
//! which classes of events it records, its size, and `ftrace_dump_on_oops`. A scenario
//! without the section runs without tracing (the guest's hook sites cost one compare and
//! branch each).
use lockvmm_abi::knob::instrument;
use lockvmm_abi::trace::{TRACE_DEFAULT_KIB, TRACE_MAX_KIB, class};
use serde::Deserialize;
use toml::Spanned;

use super::LoadedScenario;
use super::errors::{ScenarioError, nearest};
use super::schema::DEFAULT_MEMORY_MIB;

/// `[trace]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSpec {
    /// Event classes (`lockvmm_abi::trace::class::NAMES`); absent: all of them.
    pub events: Option<Vec<Spanned<String>>>,
    /// Each CPU's buffer in KiB.
    pub buffer_kib: Option<Spanned<i64>>,
    /// Dump the buffers to the console on a panic or oops (Linux's `ftrace_dump_on_oops`).
    #[serde(default)]
    pub ftrace_dump_on_oops: bool,
}

/// What the machine's knobs get from `[trace]`.
pub struct TraceKnobs {
    pub instrument: u32,
    pub buf_kib: u32,
    pub events: u32,
    pub dump_on_oops: bool,
}

impl LoadedScenario {
    /// The knobs `[trace]` sets (all zero without the section).
    pub fn trace_knobs(&self) -> TraceKnobs {
        let Some(t) = &self.scenario.trace else {
            return TraceKnobs {
                instrument: 0,
                buf_kib: 0,
                events: 0,
                dump_on_oops: false,
            };
        };
        let events = match &t.events {
            None => class::ALL,
            Some(list) => list
                .iter()
                .filter_map(|n| class_bit(n.get_ref()))
                .fold(0, |a, b| a | b),
        };
        TraceKnobs {
            instrument: instrument::TRACE,
            buf_kib: t
                .buffer_kib
                .as_ref()
                .map_or(TRACE_DEFAULT_KIB, |k| *k.get_ref() as u32),
            events,
            dump_on_oops: t.ftrace_dump_on_oops,
        }
    }

    /// `[trace]`: known event classes, a buffer size the machine's memory can hold.
    pub(super) fn validate_trace(&self, vcpus: i64) -> Result<(), ScenarioError> {
        let Some(t) = &self.scenario.trace else {
            return Ok(());
        };
        for e in t.events.iter().flatten() {
            if class_bit(e.get_ref()).is_none() {
                let names: Vec<&str> = class::NAMES.iter().map(|(n, _)| *n).collect();
                let hint = nearest(e.get_ref(), &names)
                    .map(|n| format!(" (did you mean `{n}`?)"))
                    .unwrap_or_default();
                return Err(self.error_at(
                    e.span(),
                    format!(
                        "trace.events: unknown event class `{}`{hint}; known: {}",
                        e.get_ref(),
                        names.join(", ")
                    ),
                ));
            }
        }
        if let Some(k) = &t.buffer_kib {
            let v = *k.get_ref();
            if !(4..=i64::from(TRACE_MAX_KIB)).contains(&v) {
                return Err(self.error_at(
                    k.span(),
                    format!("trace.buffer_kib = {v}: must be between 4 and {TRACE_MAX_KIB}"),
                ));
            }
            // The guest rounds each buffer up to a power-of-two number of pages; all of them
            // together may take at most a quarter of the machine's memory.
            let per_cpu = (v as u64).div_ceil(4).next_power_of_two() * 4;
            let mem_kib = self
                .scenario
                .machine
                .get_ref()
                .memory_mib
                .as_ref()
                .map_or(DEFAULT_MEMORY_MIB, |m| *m.get_ref() as u64)
                * 1024;
            if per_cpu * vcpus.max(1) as u64 > mem_kib / 4 {
                return Err(self.error_at(
                    k.span(),
                    format!(
                        "trace.buffer_kib = {v}: {vcpus} CPUs × {per_cpu} KiB is more than a \
                         quarter of the machine's {} MiB",
                        mem_kib / 1024
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn class_bit(name: &str) -> Option<u32> {
    class::NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bit)| *bit)
}
