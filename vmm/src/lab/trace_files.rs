//! The trace's files in a run directory (for a run that kept a trace and left a snapshot):
//! `trace.txt`, `trace.json`, `report.html` and `waitfor.dot`, each written whole or not at
//! all.
use std::path::Path;

use crate::analysis::Analysis;
use crate::machine::RunResult;
use crate::output::write_atomic;
use crate::report::trace::{
    HtmlInput, TxtFilter, involved_cpus, render_dot, render_html, render_json, render_timeline,
    render_txt, render_waitfor_svg,
};
use crate::report::{CrashReport, report_cpu};
use crate::scenario::LoadedScenario;
use crate::trace::{Timeline, WaitFor, read_trace};

/// The files' names.
pub const TRACE_FILES: [&str; 4] = ["trace.txt", "trace.json", "report.html", "waitfor.dot"];

/// Writes the four files; returns the problems (the run is still reported without them).
pub fn write_trace_files(
    out: &Path,
    scenario: &LoadedScenario,
    r: &RunResult,
    report: Option<&CrashReport>,
) -> Vec<String> {
    let Some(snap) = &r.snapshot else {
        return Vec::new();
    };
    let a = Analysis::new(snap, &r.kernel.symbols, r.kernel.debug_info());
    let Some(trace) = read_trace(&a) else {
        return Vec::new();
    };
    let tl = Timeline::build(&trace);
    let wf = WaitFor::build(&a.lock_waits());
    let mut extra: Vec<usize> = r.lockups.iter().map(|e| e.cpu).collect();
    extra.extend(report_cpu(&r.outcome, &r.lockups));
    let cpus = involved_cpus(&wf, &extra);
    // The cycle, told from a CPU.
    let from = wf
        .cycle
        .iter()
        .position(|&i| matches!(wf.nodes[i], crate::trace::WaitNode::Cpu(_)))
        .unwrap_or(0);
    let n = wf.cycle.len();
    let cycle = (0..n + usize::from(n > 0))
        .map(|k| wf.cycle[(from + k) % n])
        .map(|i| wf.nodes[i].label())
        .collect::<Vec<_>>()
        .join(" → ");
    let report_text = report.map_or_else(
        || crate::report::one_line(&r.outcome, &r.lockups),
        CrashReport::render,
    );
    let html = render_html(&HtmlInput {
        title: &scenario.name(),
        description: &scenario.scenario.description,
        report: &report_text,
        timeline: &render_timeline(&trace, &tl, &cpus),
        waitfor: &render_waitfor_svg(&wf),
        cycle: &cycle,
    });
    let files = [
        render_txt(&trace, &TxtFilter::default()),
        render_json(&trace, &tl),
        html,
        render_dot(&wf),
    ];
    let mut warnings = Vec::new();
    for (name, text) in TRACE_FILES.iter().zip(files) {
        if let Err(e) = write_atomic(&out.join(name), text.as_bytes()) {
            warnings.push(format!("cannot write {}: {e}", out.join(name).display()));
        }
    }
    warnings
}
