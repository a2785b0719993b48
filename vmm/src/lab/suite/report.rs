//! What `lockvmm test` prints and writes: a `PASS`/`FAIL`/`SKIP name (why)` line per scenario
//! and a `SUMMARY:` line (kvm-unit-tests' `run_tests.sh` prints the same three words), TAP
//! version 13 (testanything.org/tap-version-13-specification), and JUnit XML through
//! `quick-junit` (the schema GitHub's, GitLab's and Jenkins's reporters read).
use std::fmt::Write as _;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{CaseResult, Verdict};
use crate::state::text::escape_line;

fn word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Skip => "SKIP",
    }
}

/// `PASS lbr_gfp (hard_lockup on CPU 56 at 10.000 s; 4.2 s)`: the outcome in short (the
/// guest's own message is in the run directory), and the wall time.
pub fn line(r: &CaseResult) -> String {
    let why = match r.verdict {
        Verdict::Pass => r.why.split(": ").next().unwrap_or_default(),
        _ => &r.why,
    };
    let time = match r.verdict {
        Verdict::Skip => String::new(),
        _ => format!("; {:.1} s", r.wall.as_secs_f64()),
    };
    format!(
        "{} {} ({}{time})",
        word(r.verdict),
        escape_line(&r.name),
        escape_line(why)
    )
}

/// `SUMMARY: 19 tests, 1 failed, 0 skipped (72.4 s)`.
pub fn summary(results: &[CaseResult], wall: Duration) -> String {
    let n = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
    format!(
        "SUMMARY: {} tests, {} passed, {} failed, {} skipped ({:.1} s)",
        results.len(),
        n(Verdict::Pass),
        n(Verdict::Fail),
        n(Verdict::Skip),
        wall.as_secs_f64()
    )
}

/// TAP version 13, in the order the scenarios were given, a YAML block under each failure.
pub fn tap(results: &[CaseResult]) -> String {
    let mut s = format!("TAP version 13\n1..{}\n", results.len());
    for (i, r) in results.iter().enumerate() {
        // `#` starts a TAP directive: keep it out of the description.
        let name = escape_line(&r.name).replace('#', "_");
        let why = escape_line(&r.why);
        let _ = match r.verdict {
            Verdict::Pass => writeln!(s, "ok {} - {name}", i + 1),
            Verdict::Skip => writeln!(s, "ok {} - {name} # SKIP {why}", i + 1),
            Verdict::Fail => writeln!(s, "not ok {} - {name}", i + 1),
        };
        if r.verdict == Verdict::Fail {
            // JSON strings are YAML flow scalars: no quoting rules to get wrong.
            let q = |t: &str| serde_json::to_string(t).unwrap_or_default();
            let _ = writeln!(s, "  ---\n  message: {}", q(&why));
            let _ = writeln!(s, "  file: {}", q(&r.path.display().to_string()));
            let _ = writeln!(s, "  run_dir: {}", q(&r.run_dir.display().to_string()));
            let _ = writeln!(s, "  duration_ms: {}", r.wall.as_millis());
            if !r.details.is_empty() {
                let _ = writeln!(s, "  failed_expectations:");
                for d in &r.details {
                    let _ = writeln!(s, "    - {}", q(&escape_line(d)));
                }
            }
            let _ = writeln!(s, "  ...");
        }
    }
    s
}

/// JUnit XML: one `<testsuite name="lockvmm">`, a `<testcase>` per scenario (classname: its
/// directory), `<failure>` with the reason and the failed expectations, `<skipped>`, and the
/// child's stderr.
pub fn junit(results: &[CaseResult], wall: Duration) -> String {
    let mut suite = TestSuite::new("lockvmm");
    for r in results {
        let status = match r.verdict {
            Verdict::Pass => TestCaseStatus::success(),
            Verdict::Fail => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(escape_line(&r.why));
                st.set_type(if r.why.starts_with("timeout") {
                    "timeout"
                } else if r.details.is_empty() {
                    "run failed"
                } else {
                    "expectation failed"
                });
                if !r.details.is_empty() {
                    st.set_description(r.details.join("\n"));
                }
                st
            }
            Verdict::Skip => {
                let mut st = TestCaseStatus::skipped();
                st.set_message(escape_line(&r.why));
                st
            }
        };
        let mut case = TestCase::new(r.name.as_str(), status);
        let class = r
            .path
            .parent()
            .map(|p| p.display().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| ".".into());
        case.set_classname(class).set_time(r.wall);
        case.set_system_out(format!(
            "scenario: {}\nrun directory: {}\n",
            r.path.display(),
            r.run_dir.display()
        ));
        if !r.stderr.is_empty() {
            case.set_system_err(r.stderr.as_str());
        }
        suite.add_test_case(case);
    }
    suite.set_time(wall);
    let mut report = Report::new("lockvmm test");
    report.set_time(wall).add_test_suite(suite);
    report.to_string().unwrap_or_default()
}
