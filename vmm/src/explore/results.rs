//! What explore found, as data: every schedule's outcome, the distinct failures, the counts per
//! outcome class (`explore.json`), and the merge of shards' results.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::space::{Forced, Space};
use crate::machine::RunResult;
use crate::report::CrashReport;
use crate::state::OutcomeClass;
use crate::state::locks::innermost;

/// `explore.json`'s schema version.
pub const SCHEMA_VERSION: u32 = 1;

/// What tells one failure from another: the lockup kind, the CPUs, the lock, its holder and
/// the shape of the wait chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub class: OutcomeClass,
    /// The CPU the report is about (the first detection, the fault, the panic).
    pub cpu: Option<usize>,
    /// Every CPU a detector fired on, sorted.
    pub lockup_cpus: Vec<usize>,
    /// The lock `cpu` spins on, and who holds it.
    pub lock: Option<String>,
    pub holder: Option<usize>,
    /// The deadlock the chain ends in (`cycle`, `self_interrupt`, …).
    pub deadlock: Option<String>,
}

impl Signature {
    pub fn of(class: OutcomeClass, r: &RunResult, report: Option<&CrashReport>) -> Signature {
        let mut lockup_cpus: Vec<usize> = r.lockups.iter().map(|e| e.cpu).collect();
        lockup_cpus.sort_unstable();
        lockup_cpus.dedup();
        let wait = report.and_then(|c| innermost(&c.locks, c.cpu));
        Signature {
            class,
            cpu: report.map(|c| c.cpu),
            lockup_cpus,
            lock: wait.map(|w| w.lock_name.clone()),
            holder: wait.and_then(|w| w.holder),
            deadlock: report
                .and_then(|c| c.deadlock)
                .and_then(|d| serde_json::to_value(d).ok())
                .and_then(|v| v.as_str().map(String::from)),
        }
    }

    pub fn describe(&self) -> String {
        let mut s = self.class.name().to_string();
        if let Some(c) = self.cpu {
            s += &format!(" on CPU {c}");
        }
        if let Some(l) = &self.lock {
            s += &format!(", spinning on &{l}");
        }
        if let Some(h) = self.holder {
            s += &format!(" held by CPU {h}");
        }
        if let Some(d) = &self.deadlock {
            s += &format!(" ({d})");
        }
        s
    }
}

/// One schedule and what it led to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduleResult {
    /// Its place in the search tree: the index of each forced event among its parent's
    /// choices (empty: the recording, no forced event). The same in every shard.
    pub id: Vec<usize>,
    pub forced: Vec<Forced>,
    pub class: OutcomeClass,
    pub failed: bool,
    /// Whether the run reached every occurrence its schedule names.
    pub reached: bool,
    pub signature: Option<Signature>,
    /// Choice points its run offered for one more forced event.
    pub children: usize,
    pub vtime_ns: u64,
    pub wall_ms: f64,
}

/// A distinct failure and the shortest schedule that reaches it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    /// `found-N.toml`'s N.
    pub n: usize,
    pub signature: Signature,
    pub description: String,
    /// How many schedules reached it.
    pub schedules: usize,
    /// The shortest (first found) schedule's id and events.
    pub shortest: Vec<usize>,
    pub forced: Vec<Forced>,
    /// The scenario file that replays it, its text, and whether replaying it showed the same
    /// failure.
    pub file: String,
    pub toml: String,
    pub replayed: Option<bool>,
}

/// `explore.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExploreResult {
    pub schema_version: u32,
    pub scenario: String,
    pub space: Space,
    /// `[K, N]` for `--shard K/N`.
    pub shard: (usize, usize),
    /// How each schedule starts: `restore` (from a snapshot taken once, where the recording
    /// run was handed the run token for its first hook) or `reboot` (a fresh machine each).
    pub mode: String,
    /// Schedules run from the snapshot, pages copied back for them in all, and the wall time
    /// of the boot to the snapshot (`restore` mode).
    #[serde(default)]
    pub restores: u64,
    #[serde(default)]
    pub restored_pages: u64,
    #[serde(default)]
    pub snapshot_ms: f64,
    /// Wall time spent restoring the snapshot, all schedules together.
    #[serde(default)]
    pub restore_ms: f64,
    pub schedules: Vec<ScheduleResult>,
    /// Schedules per outcome class.
    pub classes: BTreeMap<String, usize>,
    pub failures: Vec<Failure>,
    /// Whether every schedule of the space (of this shard) ran, within the budget.
    pub complete: bool,
    pub wall_s: f64,
    pub schedules_per_s: f64,
}

impl ExploreResult {
    pub fn failed(&self) -> usize {
        self.schedules.iter().filter(|s| s.failed).count()
    }

    /// Recomputes the counts and the distinct failures from the schedules (in id order, so
    /// the shortest schedule of each failure is the first one found).
    pub fn tally(&mut self) {
        self.schedules
            .sort_by(|a, b| (a.id.len(), &a.id).cmp(&(b.id.len(), &b.id)));
        self.schedules.dedup_by(|a, b| a.forced == b.forced);
        self.classes.clear();
        for s in &self.schedules {
            *self.classes.entry(s.class.name().into()).or_default() += 1;
        }
        let old = std::mem::take(&mut self.failures);
        for s in self.schedules.iter().filter(|s| s.failed) {
            let Some(sig) = &s.signature else { continue };
            if let Some(f) = self.failures.iter_mut().find(|f| &f.signature == sig) {
                f.schedules += 1;
                continue;
            }
            let n = self.failures.len() + 1;
            let before = old.iter().find(|f| f.forced == s.forced);
            self.failures.push(Failure {
                n,
                signature: sig.clone(),
                description: sig.describe(),
                schedules: 1,
                shortest: s.id.clone(),
                forced: s.forced.clone(),
                file: format!("found-{n}.toml"),
                toml: before.map(|f| f.toml.clone()).unwrap_or_default(),
                replayed: before.and_then(|f| f.replayed),
            });
        }
    }

    /// The last line: the verdict, how many schedules, the space covered.
    pub fn last_line(&self) -> String {
        let failed = self.failed();
        let verdict = if failed == 0 {
            "no failing schedule".to_string()
        } else {
            format!(
                "{failed} failing schedule(s), {} distinct failure(s)",
                self.failures.len()
            )
        };
        let events: Vec<&str> = self.space.events.iter().map(|e| e.name()).collect();
        let shard = if self.shard.1 > 1 {
            format!(", shard {}/{}", self.shard.0, self.shard.1)
        } else {
            String::new()
        };
        format!(
            "lockvmm: explore: {verdict}: {} schedules ({}), depth ≤ {}, events {}, {} CPUs, {} hooks{shard}{}",
            self.schedules.len(),
            self.classes
                .iter()
                .map(|(c, n)| format!("{n} {c}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.space.depth,
            events.join("/"),
            if self.space.cpus.is_empty() {
                "all".into()
            } else {
                format!("{:?}", self.space.cpus)
            },
            if self.space.hooks.is_empty() {
                "all".into()
            } else {
                self.space.hooks.join("/")
            },
            if self.complete {
                ", space complete"
            } else {
                ", budget reached (space incomplete)"
            },
        )
    }
}

/// Combines shards' results of the same scenario and space into one.
pub fn merge(parts: Vec<ExploreResult>) -> Result<ExploreResult, String> {
    let mut it = parts.into_iter();
    let mut all = it.next().ok_or("nothing to merge")?;
    for p in it {
        if p.scenario != all.scenario || p.shard.1 != all.shard.1 {
            return Err(format!(
                "cannot merge {} (shard {}/{}) with {} (shard {}/{})",
                p.scenario, p.shard.0, p.shard.1, all.scenario, all.shard.0, all.shard.1
            ));
        }
        all.complete &= p.complete;
        all.wall_s = all.wall_s.max(p.wall_s);
        all.restores += p.restores;
        all.restored_pages += p.restored_pages;
        all.restore_ms += p.restore_ms;
        all.schedules.extend(p.schedules);
        all.failures.extend(p.failures);
    }
    all.shard = (0, 1);
    all.tally();
    all.schedules_per_s = if all.wall_s > 0.0 {
        all.schedules.len() as f64 / all.wall_s
    } else {
        0.0
    };
    Ok(all)
}
