//! `lockvmm run --repeat N`: the same scenario N times, each into `repeat-NN/` of the run
//! directory; every run's fingerprint must equal the first's. Prints one line, or with
//! `--json` a document: each run's fingerprint and outcome, and the first run's summary.
use std::path::Path;

use serde::Serialize;

use super::Completed;
use super::fingerprint::{Fingerprint, repeat_dir};
use super::rundir::RunDir;
use crate::output::summary::{RunSummary, SCHEMA_VERSION};
use crate::process::signals;
use crate::state::ExitStatus;

/// One run of `--repeat`, in `--json`.
#[derive(Debug, Serialize)]
pub struct RepeatRun {
    pub run: usize,
    pub fingerprint: String,
    /// `[expect] outcome`'s vocabulary (`hard_lockup`).
    pub class: String,
    /// The run's closing line (`hard_lockup on CPU 56 at 10.000 s: …`).
    pub outcome: String,
    pub expectations_met: bool,
    pub run_dir: String,
}

/// `lockvmm run --repeat N --json`.
#[derive(Debug, Serialize)]
pub struct RepeatSummary {
    pub schema_version: u32,
    pub scenario: String,
    pub repeat: usize,
    /// Every run so far gave the first run's fingerprint.
    pub deterministic: bool,
    /// The first run's fingerprint.
    pub fingerprint: Option<String>,
    /// The first run that differed, and in what (`outcome: … vs …`).
    pub first_difference: Option<(usize, String)>,
    /// Runs that met the scenario's expectations.
    pub expectations_met: usize,
    pub runs: Vec<RepeatRun>,
    /// The first run's result (as `result.json`).
    pub first: Option<RunSummary>,
}

/// Runs `once` into `repeat-01` … `repeat-NN` of `out` (claimed for the whole repeat).
/// `Err` from `once` is a run that could not be made (its one-line error is printed).
pub fn repeat(
    n: usize,
    json: bool,
    out: &Path,
    mut once: impl FnMut(&Path) -> Result<Completed, ExitStatus>,
) -> ExitStatus {
    let _dir = match RunDir::claim(out) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("lockvmm: {e}");
            return ExitStatus::Environment;
        }
    };
    let mut first: Option<Fingerprint> = None;
    let mut doc = RepeatSummary {
        schema_version: SCHEMA_VERSION,
        scenario: String::new(),
        repeat: n,
        deterministic: true,
        fingerprint: None,
        first_difference: None,
        expectations_met: 0,
        runs: Vec::new(),
        first: None,
    };
    let mut status = ExitStatus::Success;
    for i in 1..=n {
        if signals::received().is_some() {
            return ExitStatus::GuestFailed;
        }
        let dir = repeat_dir(out, i);
        let done = match once(&dir) {
            Ok(d) => d,
            Err(code) => return code,
        };
        let ok = done.exit_status() == ExitStatus::Success;
        doc.expectations_met += usize::from(ok);
        let s = &done.summary;
        let fp = Fingerprint::of(s);
        doc.runs.push(RepeatRun {
            run: i,
            fingerprint: fp.digest(),
            class: s.class.name().into(),
            outcome: crate::report::one_line(&s.outcome, &s.lockups),
            expectations_met: ok,
            run_dir: dir.display().to_string(),
        });
        match &first {
            None => {
                doc.scenario = s.scenario.clone();
                doc.fingerprint = Some(fp.digest());
                doc.first = Some(done.summary.clone());
                first = Some(fp);
            }
            Some(f) if *f == fp => {}
            Some(f) => {
                let diff = f.first_difference(&fp).unwrap_or_default();
                doc.deterministic = false;
                doc.first_difference = Some((i, diff.clone()));
                if !json {
                    println!(
                        "lockvmm: NOT deterministic: run {i} of {n} differs from run 1 in {diff}"
                    );
                }
                status = ExitStatus::GuestFailed;
                break;
            }
        }
    }
    if doc.deterministic && doc.expectations_met < n {
        status = ExitStatus::GuestFailed;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else if doc.deterministic {
        println!(
            "lockvmm: deterministic: {n}/{n} runs gave the same report (fingerprint {}); {}/{n} met the scenario's expectations",
            doc.fingerprint.unwrap_or_default(),
            doc.expectations_met
        );
    }
    status
}
