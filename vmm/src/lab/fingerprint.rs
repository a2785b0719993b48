//! `--repeat`'s determinism check: the parts of a run that must not change from one run to the
//! next, and a digest of them.
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::output::summary::RunSummary;
use crate::scenario::expect::Verdict;
use crate::state::hex;
use crate::state::{Context, LockupKind};

/// The parts of a run that must not change from one run to the next: no wall-clock times, no
/// file paths, no host-side measurements.
#[derive(Debug, Serialize, PartialEq)]
pub struct Fingerprint {
    outcome: serde_json::Value,
    lockups: Vec<(usize, LockupKind, String, u64, Option<String>)>,
    hooks: Vec<(usize, String, u64, String)>,
    vtime_ns: u64,
    backtraces: Vec<(usize, Option<String>, Vec<String>)>,
    locks: Vec<(usize, Context, String, Option<usize>)>,
    diagnosis: Option<String>,
    expectations: Vec<Verdict>,
}

impl Fingerprint {
    pub fn of(s: &RunSummary) -> Self {
        // Addresses as numbers, as schema version 1 wrote them: a digest stays the one earlier
        // versions printed for the same run.
        let mut outcome = hex::as_numbers(|| serde_json::to_value(&s.outcome)).unwrap_or_default();
        strip_volatile(&mut outcome);
        Fingerprint {
            outcome,
            lockups: s
                .lockups
                .iter()
                .map(|e| {
                    (
                        e.cpu,
                        e.kind,
                        e.message.clone(),
                        e.vtime_ns,
                        e.report.rip_symbol.clone(),
                    )
                })
                .collect(),
            hooks: s
                .hooks
                .iter()
                .map(|h| (h.cpu, h.hook.clone(), h.vtime_ns, h.rip_symbol.clone()))
                .collect(),
            vtime_ns: s.vtime_ns,
            backtraces: s
                .report
                .iter()
                .flat_map(|r| &r.backtraces)
                .map(|b| {
                    (
                        b.cpu,
                        b.task.as_ref().map(|t| t.comm.clone()),
                        b.functions().iter().map(|f| f.to_string()).collect(),
                    )
                })
                .collect(),
            locks: s
                .report
                .iter()
                .flat_map(|r| &r.locks)
                .map(|w| (w.cpu, w.context, w.lock_name.clone(), w.holder))
                .collect(),
            diagnosis: s.report.as_ref().map(|r| r.diagnosis.clone()),
            expectations: s.expectations.clone(),
        }
    }

    /// A short digest, to print.
    pub fn digest(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    /// The first field in which two fingerprints differ.
    pub fn first_difference(&self, other: &Fingerprint) -> Option<String> {
        let a = serde_json::to_value(self).ok()?;
        let b = serde_json::to_value(other).ok()?;
        let (serde_json::Value::Object(a), serde_json::Value::Object(b)) = (a, b) else {
            return None;
        };
        a.iter()
            .find(|(k, v)| b.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k}: {v} vs {}", b.get(k).cloned().unwrap_or_default()))
    }
}

/// Removes wall-clock measurements from an outcome's JSON.
fn strip_volatile(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|k, _| !matches!(k.as_str(), "wall_ms" | "freeze_us"));
            m.values_mut().for_each(strip_volatile);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_volatile),
        _ => {}
    }
}

/// The run directory of repetition `i` of `--repeat`.
pub fn repeat_dir(out: &Path, i: usize) -> PathBuf {
    out.join(format!("repeat-{i:02}"))
}
