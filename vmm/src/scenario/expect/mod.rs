//! Scenario expectations (`[expect]`): facts a run must show, checked against what the host
//! captured — the lockup events, the snapshot and the report built from it — never against
//! the guest's own words.
use serde::{Deserialize, Serialize};
use toml::Spanned;

mod detections;
mod splats;

pub use splats::SplatExpect;

use crate::analysis::DeadlockKind;
use crate::machine::RunResult;
use crate::report::CrashReport;
use crate::state::locks::innermost;
use crate::state::{Outcome, OutcomeClass, Regs};

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Irqs {
    Enabled,
    Disabled,
}

/// `[expect]` in a scenario file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    pub outcome: Option<Spanned<OutcomeClass>>,
    /// The CPU the first detector fired on (or that faulted or panicked).
    pub cpu: Option<Spanned<i64>>,
    /// Every CPU a lockup was reported on.
    pub lockup_cpus: Option<Spanned<Vec<i64>>>,
    /// The panic message.
    pub panic: Option<Spanned<String>>,
    /// The function of the stuck context's RIP (the context the NMI or timer interrupted).
    pub rip: Option<Spanned<String>>,
    /// RFLAGS.IF of that context.
    pub irqs: Option<Spanned<Irqs>>,
    /// The lock `cpu` spins on, as a C expression (`runqueues[56].__lock`).
    pub lock: Option<Spanned<String>>,
    /// The CPU holding that lock.
    pub holder: Option<Spanned<i64>>,
    /// The task running on `cpu`.
    pub comm: Option<Spanned<String>>,
    /// Whether the stuck context ran in `user` or `kernel` mode (CS's privilege level).
    pub mode: Option<Spanned<Mode>>,
    /// Hook points the run must have passed (or, with `count = 0`, must not have): proof that
    /// a fixed scenario still went down the path that used to fail.
    #[serde(default)]
    pub hooks: Vec<Spanned<HookExpect>>,
    /// The first detection happened at or after this many virtual seconds…
    pub detected_after: Option<Spanned<f64>>,
    /// … and at or before this many.
    pub detected_before: Option<Spanned<f64>>,
    /// Text the first detection's message contains (`stuck for 22s`).
    pub message: Option<Spanned<String>>,
    /// How many detections the run had.
    pub reports: Option<Spanned<i64>>,
    /// CPUs on which no detector may fire.
    pub quiet_cpus: Option<Spanned<Vec<i64>>>,
    /// The context `cpu` spins in: `task`, `softirq`, `hardirq` or `nmi`.
    pub context: Option<Spanned<String>>,
    /// The deadlock the report's chain ends in: `cycle`, `self_interrupt`, `self_softirq`,
    /// `self_nmi`, `self_page_fault`, `recursion`, `holder_running`.
    pub deadlock: Option<Spanned<DeadlockKind>>,
    /// The comms of the tasks the hung-task detector reported, in any order.
    pub hung_tasks: Option<Spanned<Vec<String>>>,
    /// Lockdep and `might_sleep` reports the run must have made (or, with `count = 0`, not).
    #[serde(default)]
    pub splats: Vec<Spanned<SplatExpect>>,
}

/// A hook point the run must have reached, where and how.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookExpect {
    /// The hook's name (`allocate_slab`, `lbr_add`, `module_load`, …).
    pub hook: Spanned<String>,
    /// Only on this CPU.
    pub cpu: Option<Spanned<i64>>,
    /// Only with interrupts so (RFLAGS.IF at the hook).
    pub irqs: Option<Irqs>,
    /// Exactly this many times (default: at least once).
    pub count: Option<Spanned<i64>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    User,
    Kernel,
}

/// One expectation and what was observed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Verdict {
    pub what: String,
    pub expected: String,
    pub observed: String,
    pub ok: bool,
}

fn verdict(what: &str, expected: String, observed: String) -> Verdict {
    let ok = expected == observed;
    Verdict {
        what: what.into(),
        expected,
        observed,
        ok,
    }
}

fn none() -> String {
    "(none)".into()
}

/// The context the report is about: the registers the detector saw, the fault's or the panic's.
fn stuck_context(r: &RunResult) -> Option<(usize, Regs, Option<String>)> {
    if let Some(e) = r.lockups.first() {
        return Some((e.cpu, e.report.regs, e.report.rip_function.clone()));
    }
    match &r.outcome {
        Outcome::Panic { report, .. } | Outcome::Fault(report) => {
            Some((report.cpu, report.regs, report.rip_function.clone()))
        }
        _ => None,
    }
}

/// Checks every expectation of `spec` against a finished run.
pub fn check(spec: &ExpectSpec, r: &RunResult, report: Option<&CrashReport>) -> Vec<Verdict> {
    let mut out = Vec::new();
    detections::check_hooks(spec, r, &mut out);
    splats::check_splats(spec, r, &mut out);
    detections::check_detections(spec, r, report, &mut out);
    let stuck = stuck_context(r);
    // The CPU the run is about: where a detector fired or it faulted; else the report's (a
    // snapshot at the end of a run nobody detected).
    let cpu = stuck.as_ref().map(|s| s.0).or(report.map(|rep| rep.cpu));
    if let Some(o) = &spec.outcome {
        let observed = OutcomeClass::of(&r.outcome, &r.lockups);
        let want = *o.get_ref();
        let matches = want == observed
            || (want == OutcomeClass::Panic && matches!(r.outcome, Outcome::Panic { .. }))
            || (want == OutcomeClass::NoLockup && observed == OutcomeClass::Shutdown);
        out.push(Verdict {
            what: "outcome".into(),
            expected: want.to_string(),
            observed: format!(
                "{observed}{}",
                if observed != OutcomeClass::Panic && matches!(r.outcome, Outcome::Panic { .. }) {
                    " (then panic)"
                } else {
                    ""
                }
            ),
            ok: matches,
        });
    }
    if let Some(c) = &spec.cpu {
        out.push(verdict(
            "cpu",
            c.get_ref().to_string(),
            cpu.map_or_else(none, |c| c.to_string()),
        ));
    }
    if let Some(cs) = &spec.lockup_cpus {
        let mut want = cs.get_ref().clone();
        want.sort_unstable();
        let mut seen: Vec<i64> = r.lockups.iter().map(|e| e.cpu as i64).collect();
        seen.sort_unstable();
        seen.dedup();
        out.push(verdict(
            "lockup_cpus",
            format!("{want:?}"),
            format!("{seen:?}"),
        ));
    }
    if let Some(p) = &spec.panic {
        let observed = match &r.outcome {
            Outcome::Panic { message, .. } => message.clone(),
            _ => none(),
        };
        out.push(verdict("panic", p.get_ref().clone(), observed));
    }
    if let Some(f) = &spec.rip {
        out.push(verdict(
            "rip",
            f.get_ref().clone(),
            stuck
                .as_ref()
                .and_then(|s| s.2.clone())
                .unwrap_or_else(none),
        ));
    }
    if let Some(i) = &spec.irqs {
        let observed = stuck.as_ref().map_or_else(none, |s| {
            if s.1.irqs_enabled() {
                "enabled".to_string()
            } else {
                "disabled".to_string()
            }
        });
        out.push(verdict(
            "irqs",
            format!("{:?}", i.get_ref()).to_lowercase(),
            observed,
        ));
    }
    let wait = report.and_then(|rep| innermost(&rep.locks, cpu?));
    if let Some(l) = &spec.lock {
        out.push(verdict(
            "lock",
            l.get_ref().clone(),
            wait.map_or_else(none, |w| w.lock_name.clone()),
        ));
    }
    if let Some(h) = &spec.holder {
        out.push(verdict(
            "holder",
            h.get_ref().to_string(),
            wait.and_then(|w| w.holder)
                .map_or_else(none, |h| h.to_string()),
        ));
    }
    if let Some(m) = &spec.mode {
        let observed = stuck.as_ref().map_or_else(none, |s| {
            if s.1.user_mode() {
                "user".into()
            } else {
                "kernel".into()
            }
        });
        out.push(verdict(
            "mode",
            format!("{:?}", m.get_ref()).to_lowercase(),
            observed,
        ));
    }
    if let Some(c) = &spec.comm {
        let observed = report.and_then(|rep| {
            rep.backtraces
                .first()?
                .task
                .as_ref()
                .map(|t| t.comm.clone())
        });
        out.push(verdict(
            "comm",
            c.get_ref().clone(),
            observed.unwrap_or_else(none),
        ));
    }
    out
}
