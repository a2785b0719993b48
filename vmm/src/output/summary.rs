//! `result.json`: what a run leaves for machines — a stable, documented schema (see the
//! README's "result.json" section). Every field is also in the text report.
use serde::{Deserialize, Serialize};

use crate::machine::Dropped;
use crate::machine::profile::RunProfile;
use crate::report::CrashReport;
use crate::scenario::expect::Verdict;
use crate::state::{HookEvent, LockupEvent, Outcome, OutcomeClass};

/// Bumped when a field changes meaning or disappears (adding fields keeps the version).
/// Version 2 spells addresses and registers as `"0x…"` strings (`state::hex`); version 1 wrote
/// them as JSON numbers, which jq and JavaScript round.
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub schema_version: u32,
    /// The scenario's file stem and description.
    pub scenario: String,
    pub description: String,
    /// The guest kernel ELF.
    pub kernel: String,
    pub vcpus: usize,
    /// CPUs in the order they came online.
    pub cpus_online: Vec<usize>,
    /// How the run ended (`shutdown`, `fault`, `panic`, `lockup`, `all_waiting`, `time_limit`,
    /// `host_error`), with its details.
    pub outcome: Outcome,
    /// How the run ended, in the vocabulary `[expect] outcome` uses (`hard_lockup`,
    /// `no_lockup`, `all_waiting`, …).
    pub class: OutcomeClass,
    /// Every lockup the kernel's detectors reported, in order.
    pub lockups: Vec<LockupEvent>,
    /// Hook points passed, with RIP and RFLAGS.
    pub hooks: Vec<HookEvent>,
    /// What the guest's lockdep and `might_sleep` reported (kind, class, CPU, task, time).
    #[serde(default)]
    pub splats: Vec<crate::state::Splat>,
    /// NMIs the emulated PMU delivered, per CPU.
    pub pmu_nmis: Vec<u64>,
    /// Hypercalls the host refused: (CPU, why).
    pub bad_hypercalls: Vec<(usize, String)>,
    /// How many hooks, lockups and refused hypercalls the bounded lists above did not keep, and
    /// console bytes past the console limit.
    #[serde(default)]
    pub dropped: Dropped,
    /// Virtual time at the end, nanoseconds.
    pub vtime_ns: u64,
    /// The crash-style report (when the run left a snapshot).
    pub report: Option<CrashReport>,
    /// Files of the run.
    pub console_log: String,
    pub vmcore: Option<String>,
    /// Wall-clock milestones from the start of the process, milliseconds.
    pub timings: Timings,
    pub max_rss_kib: i64,
    /// Scenario expectations and whether they held (empty when the scenario has none).
    #[serde(default)]
    pub expectations: Vec<Verdict>,
    /// Where the run's time went: VM exits by reason, hypercalls by kind, host phases.
    #[serde(default)]
    pub profile: RunProfile,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Timings {
    pub vcpus_created_ms: f64,
    pub all_online_ms: Option<f64>,
    pub finished_ms: f64,
    pub exit_ms: f64,
}
