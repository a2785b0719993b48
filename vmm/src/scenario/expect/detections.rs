//! Expectations about the run's detections (when, what, how many, where not), the context
//! and shape of the deadlock, and the hook points it passed.
use super::{ExpectSpec, Irqs, Verdict, verdict};
use crate::machine::RunResult;
use crate::report::CrashReport;
use crate::state::locks::innermost;

/// `[[expect.hooks]]`: how many of the run's hook events match, against the wanted count.
pub(super) fn check_hooks(spec: &ExpectSpec, r: &RunResult, out: &mut Vec<Verdict>) {
    for h in &spec.hooks {
        let h = h.get_ref();
        let name = h.hook.get_ref();
        let n = r
            .hooks
            .iter()
            .filter(|e| {
                e.hook == *name
                    && h.cpu.as_ref().is_none_or(|c| e.cpu as i64 == *c.get_ref())
                    && h.irqs.is_none_or(|i| {
                        (e.rflags & lockvmm_abi::eflags::X86_EFLAGS_IF != 0) == (i == Irqs::Enabled)
                    })
            })
            .count();
        let mut what = name.clone();
        if let Some(c) = &h.cpu {
            what.push_str(&format!(" on CPU {}", c.get_ref()));
        }
        if let Some(i) = h.irqs {
            what.push_str(&format!(" with irqs {}", format!("{i:?}").to_lowercase()));
        }
        let (expected, ok) = match &h.count {
            Some(c) => (
                format!("{what}: {} times", c.get_ref()),
                n as i64 == *c.get_ref(),
            ),
            None => (format!("{what}: at least once"), n >= 1),
        };
        out.push(Verdict {
            what: "hook".into(),
            expected,
            observed: format!("{n} times"),
            ok,
        });
    }
}

/// `detected_after`/`before`, `message`, `reports`, `quiet_cpus`, `context`, `deadlock`.
pub(super) fn check_detections(
    spec: &ExpectSpec,
    r: &RunResult,
    report: Option<&CrashReport>,
    out: &mut Vec<Verdict>,
) {
    let first = r.lockups.first();
    let at = first.map(|e| e.vtime_ns as f64 / 1e9);
    if let Some(t) = &spec.detected_after {
        out.push(Verdict {
            what: "detected_after".into(),
            expected: format!(">= {:.3} s", t.get_ref()),
            observed: at.map_or_else(|| "(none)".into(), |a| format!("{a:.3} s")),
            ok: at.is_some_and(|a| a >= *t.get_ref()),
        });
    }
    if let Some(t) = &spec.detected_before {
        out.push(Verdict {
            what: "detected_before".into(),
            expected: format!("<= {:.3} s", t.get_ref()),
            observed: at.map_or_else(|| "(none)".into(), |a| format!("{a:.3} s")),
            ok: at.is_some_and(|a| a <= *t.get_ref()),
        });
    }
    if let Some(m) = &spec.message {
        let observed = first.map_or_else(|| "(none)".into(), |e| e.message.clone());
        out.push(Verdict {
            what: "message".into(),
            expected: format!("contains `{}`", m.get_ref()),
            ok: first.is_some_and(|e| e.message.contains(m.get_ref().as_str())),
            observed,
        });
    }
    if let Some(n) = &spec.reports {
        out.push(verdict(
            "reports",
            n.get_ref().to_string(),
            r.lockups.len().to_string(),
        ));
    }
    if let Some(q) = &spec.quiet_cpus {
        let loud: Vec<i64> = q
            .get_ref()
            .iter()
            .copied()
            .filter(|c| r.lockups.iter().any(|e| e.cpu as i64 == *c))
            .collect();
        out.push(Verdict {
            what: "quiet_cpus".into(),
            expected: format!("no detection on {:?}", q.get_ref()),
            ok: loud.is_empty(),
            observed: if loud.is_empty() {
                "none".into()
            } else {
                format!("detections on {loud:?}")
            },
        });
    }
    if let Some(c) = &spec.context {
        let observed = report.and_then(|rep| {
            innermost(&rep.locks, rep.cpu).map(|w| w.context.name().to_lowercase())
        });
        out.push(verdict(
            "context",
            c.get_ref().to_lowercase(),
            observed.unwrap_or_else(|| "(none)".into()),
        ));
    }
    if let Some(h) = &spec.hung_tasks {
        let mut want = h.get_ref().clone();
        want.sort();
        let mut seen: Vec<String> = report
            .map(|rep| {
                rep.hung_tasks
                    .iter()
                    .filter_map(|b| b.task.as_ref().map(|t| t.comm.clone()))
                    .collect()
            })
            .unwrap_or_default();
        seen.sort();
        seen.dedup();
        out.push(verdict(
            "hung_tasks",
            format!("{want:?}"),
            format!("{seen:?}"),
        ));
    }
    if let Some(d) = &spec.deadlock {
        let observed = report.and_then(|rep| rep.deadlock);
        out.push(Verdict {
            what: "deadlock".into(),
            expected: d.get_ref().name().into(),
            observed: observed.map_or_else(|| "(none)".into(), |k| k.name().into()),
            ok: observed == Some(*d.get_ref()),
        });
    }
}
