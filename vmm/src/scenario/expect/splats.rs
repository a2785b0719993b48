//! `[[expect.splats]]`: lockdep and `might_sleep` reports the run must (or, with `count = 0`,
//! must not) have made, matched against the guest's records (`RunResult::splats`).
use serde::Deserialize;
use toml::Spanned;

use super::{ExpectSpec, Verdict};
use crate::machine::RunResult;
use crate::state::Splat;

/// One expected report.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplatExpect {
    /// `inconsistent_lock_state`, `circular_dependency`, `recursive_locking`,
    /// `irq_safe_to_unsafe`, `bad_unlock_balance`, `irq_lock_inversion`, `sleep_in_atomic`;
    /// none: any kind.
    pub kind: Option<Spanned<String>>,
    /// The lock class (`&rq->__lock`, a scenario lock's name).
    pub class: Option<Spanned<String>>,
    /// The report's other class (the held lock of a circular dependency, …).
    pub other: Option<Spanned<String>>,
    /// `IN-HARDIRQ-W -> HARDIRQ-ON-W`.
    pub usage: Option<Spanned<String>>,
    pub cpu: Option<Spanned<i64>>,
    pub comm: Option<Spanned<String>>,
    /// Exactly this many (default: at least one).
    pub count: Option<Spanned<i64>>,
}

impl SplatExpect {
    fn matches(&self, s: &Splat) -> bool {
        let eq = |want: &Option<Spanned<String>>, have: &str| {
            want.as_ref().is_none_or(|w| w.get_ref() == have)
        };
        let usage = s
            .usage
            .as_ref()
            .map(|(p, n)| format!("{p} -> {n}"))
            .unwrap_or_default();
        eq(&self.kind, &s.kind)
            && eq(&self.class, &s.class)
            && eq(&self.other, s.other_class.as_deref().unwrap_or(""))
            && eq(&self.usage, &usage)
            && eq(&self.comm, &s.comm)
            && self
                .cpu
                .as_ref()
                .is_none_or(|c| *c.get_ref() == s.cpu as i64)
    }

    fn describe(&self) -> String {
        let mut d = self
            .kind
            .as_ref()
            .map_or_else(|| "any splat".to_string(), |k| k.get_ref().clone());
        for (label, v) in [
            ("on", &self.class),
            ("with", &self.other),
            ("usage", &self.usage),
            ("by", &self.comm),
        ] {
            if let Some(v) = v {
                d.push_str(&format!(" {label} {}", v.get_ref()));
            }
        }
        if let Some(c) = &self.cpu {
            d.push_str(&format!(" on CPU {}", c.get_ref()));
        }
        d
    }
}

/// One verdict per `[[expect.splats]]` entry.
pub(super) fn check_splats(spec: &ExpectSpec, r: &RunResult, out: &mut Vec<Verdict>) {
    for e in &spec.splats {
        let e = e.get_ref();
        let n = r.splats.iter().filter(|s| e.matches(s)).count();
        let what = e.describe();
        let (expected, ok) = match &e.count {
            Some(c) => (
                format!("{what}: {} times", c.get_ref()),
                n as i64 == *c.get_ref(),
            ),
            None => (format!("{what}: at least once"), n >= 1),
        };
        out.push(Verdict {
            what: "splat".into(),
            expected,
            observed: format!("{n} times"),
            ok,
        });
    }
}
