//! Finishing a run: the vmcore, the crash-style report, the expectations, `result.json`; and
//! `--repeat`, which runs a scenario several times and checks the reports are the same.
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::crashreport::CrashReport;
use crate::expect::Verdict;
use crate::output::write_atomic;
use crate::report::Outcome;
use crate::summary::{RunSummary, SCHEMA_VERSION, Timings};
use crate::{LoadedScenario, RunResult};

/// What a finished run produced.
pub struct Completed {
    pub summary: RunSummary,
    pub report: Option<CrashReport>,
    /// Problems writing the run's files (the run itself is still reported).
    pub warnings: Vec<String>,
}

impl Completed {
    /// 0 when the scenario's expectations hold (or, without expectations, on a clean power-off
    /// with every CPU online); 1 otherwise; 3 for a host error.
    pub fn exit_code(&self) -> i32 {
        let s = &self.summary;
        if matches!(s.outcome, Outcome::HostError { .. }) {
            return 3;
        }
        if !s.expectations.is_empty() {
            return if s.expectations.iter().all(|v| v.ok) {
                0
            } else {
                1
            };
        }
        match s.outcome {
            Outcome::Shutdown { status: 0 } if s.cpus_online.len() == s.vcpus => 0,
            _ => 1,
        }
    }

    pub fn failed_expectations(&self) -> Vec<&Verdict> {
        self.summary.expectations.iter().filter(|v| !v.ok).collect()
    }
}

/// Peak resident memory of this process.
pub fn max_rss_kib() -> i64 {
    // SAFETY: getrusage only writes into the struct we pass; RUSAGE_SELF is always valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
        usage.ru_maxrss
    } else {
        -1
    }
}

/// Writes the run's files into `out` and builds its summary. `started` is when the process
/// started (timings count from there).
pub fn complete(
    scenario: &LoadedScenario,
    r: &RunResult,
    vcpus: usize,
    out: &Path,
    console_log: &Path,
    started: Instant,
) -> Completed {
    let mut warnings = Vec::new();
    let vmcore_path = out.join("vmcore");
    let vmcore = match crate::vmcore::write_for_run(&vmcore_path, r) {
        Ok(true) => {
            if let Err(e) = write_atomic(&out.join("vmlinux"), &r.kernel.elf) {
                warnings.push(format!(
                    "cannot write {}: {e}",
                    out.join("vmlinux").display()
                ));
            }
            Some(vmcore_path.display().to_string())
        }
        Ok(false) => None,
        Err(e) => {
            warnings.push(e.to_string());
            None
        }
    };
    let report = crate::crashreport::for_run(r, vmcore.clone());
    if let Some(Err(e)) = report
        .as_ref()
        .map(|c| write_atomic(&out.join("report.txt"), c.render().as_bytes()))
    {
        warnings.push(format!(
            "cannot write {}: {e}",
            out.join("report.txt").display()
        ));
    }
    let expectations = crate::expect::check(&scenario.scenario.expect, r, report.as_ref());
    let offset_ms = (r.timings.t0 - started).as_secs_f64() * 1e3;
    let summary = RunSummary {
        schema_version: SCHEMA_VERSION,
        scenario: scenario.name(),
        description: scenario.scenario.description.clone(),
        kernel: r.kernel.path.display().to_string(),
        vcpus,
        cpus_online: r.online.clone(),
        outcome: r.outcome.clone(),
        lockups: r.lockups.clone(),
        hooks: r.hooks.clone(),
        pmu_nmis: r.pmu_nmis.clone(),
        bad_hypercalls: r.bad_hypercalls.clone(),
        vtime_ns: r.vtime_ns,
        report: report.clone(),
        console_log: console_log.display().to_string(),
        vmcore,
        timings: Timings {
            vcpus_created_ms: offset_ms + r.timings.vcpus_created_ms,
            all_online_ms: r.timings.all_online_ms.map(|t| offset_ms + t),
            finished_ms: offset_ms + r.timings.finished_ms,
            exit_ms: started.elapsed().as_secs_f64() * 1e3,
        },
        max_rss_kib: max_rss_kib(),
        expectations,
    };
    match serde_json::to_string_pretty(&summary) {
        Ok(text) => {
            if let Err(e) = write_atomic(&out.join("result.json"), text.as_bytes()) {
                warnings.push(format!(
                    "cannot write {}: {e}",
                    out.join("result.json").display()
                ));
            }
        }
        Err(e) => warnings.push(format!("cannot encode result.json: {e}")),
    }
    Completed {
        summary,
        report,
        warnings,
    }
}

/// The parts of a run that must not change from one run to the next: no wall-clock times, no
/// file paths, no host-side measurements.
#[derive(Debug, Serialize, PartialEq)]
pub struct Fingerprint {
    outcome: serde_json::Value,
    lockups: Vec<(usize, String, String, u64, Option<String>)>,
    hooks: Vec<(usize, String, u64, String)>,
    vtime_ns: u64,
    backtraces: Vec<(usize, Option<String>, Vec<String>)>,
    locks: Vec<(usize, String, String, Option<usize>)>,
    diagnosis: Option<String>,
    expectations: Vec<Verdict>,
}

impl Fingerprint {
    pub fn of(s: &RunSummary) -> Self {
        let mut outcome = serde_json::to_value(&s.outcome).unwrap_or_default();
        strip_volatile(&mut outcome);
        Fingerprint {
            outcome,
            lockups: s
                .lockups
                .iter()
                .map(|e| {
                    (
                        e.cpu,
                        e.kind.clone(),
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
                .map(|w| (w.cpu, w.context.clone(), w.lock_name.clone(), w.holder))
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
