//! One scenario of `lockvmm test`: `lockvmm run FILE --json --out DIR` as a child in its own
//! process group, watched against the wall clock, and its verdict read from its exit status and
//! the JSON it printed (the same `RunSummary` as `result.json`).
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::CaseResult;
use crate::output::summary::RunSummary;
use crate::process::signals;
use crate::state::ExitStatus;

/// What a scenario's run comes to in the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The scenario's expectations held (without any: a clean power-off), as `run` exits 0.
    Pass,
    /// An expectation failed, the guest failed, or the run could not be made or timed out.
    Fail,
    /// Not run: no usable KVM device and `--skip-without-kvm`.
    Skip,
}

/// At most this much of a child's stdout (its JSON) and stderr is kept.
const MAX_OUTPUT: u64 = 256 << 20;
/// How often the wall clock is checked.
const POLL: Duration = Duration::from_millis(20);
/// After SIGTERM (the suite was interrupted), how long a child has to write its files.
const GRACE: Duration = Duration::from_secs(10);

/// Runs one scenario and decides its verdict.
pub fn run_child(exe: &Path, file: &Path, name: &str, dir: &Path, timeout: Duration) -> CaseResult {
    let started = Instant::now();
    let mut result = CaseResult {
        name: name.into(),
        path: file.into(),
        verdict: Verdict::Fail,
        why: String::new(),
        details: Vec::new(),
        stderr: String::new(),
        wall: Duration::ZERO,
        run_dir: dir.into(),
    };
    let spawned = Command::new(exe)
        .arg("run")
        .arg(file)
        .arg("--json")
        .arg("--out")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group: the timeout kills everything the run started, and a terminal's ^C
        // reaches only the suite, which stops the children itself.
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            result.why = format!("cannot start {}: {e}", exe.display());
            return result;
        }
    };
    let pgid = child.id();
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(r) = r {
                let _ = r.take(MAX_OUTPUT).read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let mut timed_out = false;
    let mut stopping: Option<Instant> = None;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) => {}
            Err(_) => break None,
        }
        if !timed_out && started.elapsed() > timeout {
            timed_out = true;
            let _ = signals::kill_group(pgid, libc::SIGKILL);
        }
        match (signals::received(), stopping) {
            (Some(_), None) => {
                stopping = Some(Instant::now());
                let _ = signals::kill_group(pgid, libc::SIGTERM);
            }
            (Some(_), Some(t)) if t.elapsed() > GRACE => {
                let _ = signals::kill_group(pgid, libc::SIGKILL);
            }
            _ => {}
        }
        std::thread::sleep(POLL);
    };
    // The group may outlive its leader (nothing in `run` forks, but a timeout must leave
    // nothing behind either way).
    if timed_out {
        let _ = signals::kill_group(pgid, libc::SIGKILL);
    }
    result.wall = started.elapsed();
    let stdout = out.join().unwrap_or_default();
    result.stderr = String::from_utf8_lossy(&err.join().unwrap_or_default())
        .trim_end()
        .to_string();
    let summary: Option<RunSummary> = serde_json::from_slice(&stdout).ok();
    if let Some(s) = &summary {
        result.details = s
            .expectations
            .iter()
            .filter(|v| !v.ok)
            .map(|v| {
                format!(
                    "{}: expected {}, observed {}",
                    v.what, v.expected, v.observed
                )
            })
            .collect();
    }
    let last_error = || {
        result.stderr.lines().last().map_or_else(String::new, |l| {
            l.trim_start_matches("lockvmm: ").to_string()
        })
    };
    let outcome = summary
        .as_ref()
        .map(|s| crate::report::one_line(&s.outcome, &s.lockups));
    let (verdict, why) = match status {
        _ if timed_out => (
            Verdict::Fail,
            format!("timeout: killed after {:.0} s", timeout.as_secs_f64()),
        ),
        None => (Verdict::Fail, "lost the child process".into()),
        Some(s) => match (s.code(), s.signal()) {
            (Some(0), _) => (Verdict::Pass, outcome.unwrap_or_default()),
            (Some(1), _) if !result.details.is_empty() => {
                let n = result.details.len();
                let of = summary.as_ref().map_or(n, |s| s.expectations.len());
                (
                    Verdict::Fail,
                    format!("{n} of {of} expectations failed: {}", result.details[0]),
                )
            }
            (Some(1), _) => (Verdict::Fail, outcome.unwrap_or_else(last_error)),
            (Some(c), _) => {
                let kind = match ExitStatus::from_code(c as u8) {
                    ExitStatus::BadInput => "bad input",
                    ExitStatus::Environment => "environment",
                    _ => "exit",
                };
                (Verdict::Fail, format!("{kind} ({c}): {}", last_error()))
            }
            (None, Some(sig)) => (Verdict::Fail, format!("killed by {}", signals::name(sig))),
            (None, None) => (Verdict::Fail, "ended without a status".into()),
        },
    };
    result.verdict = verdict;
    result.why = why;
    result
}
