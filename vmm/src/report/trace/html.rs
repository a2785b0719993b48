//! `report.html`: one self-contained page (no script, no network): the crash-style report,
//! the SVG timeline of the CPUs involved, and the wait-for graph.
use super::escape_xml;

/// What the page shows.
pub struct HtmlInput<'a> {
    /// The scenario's name and description.
    pub title: &'a str,
    pub description: &'a str,
    /// `report.txt`'s text (or the outcome's text when there is no report).
    pub report: &'a str,
    /// `render_timeline`'s `<svg>` (empty without a trace).
    pub timeline: &'a str,
    /// `render_waitfor_svg`'s `<svg>`.
    pub waitfor: &'a str,
    /// One line on the cycle ("CPU 1 → lock_b → CPU 2 → lock_a → CPU 1"), empty if none.
    pub cycle: &'a str,
}

const STYLE: &str = "body{font-family:sans-serif;margin:20px;color:#212529}\
h1{font-size:20px}h2{font-size:16px;margin-top:28px}\
pre{background:#f8f9fa;border:1px solid #dee2e6;padding:10px;font-size:12px;overflow:auto;max-height:480px}\
.legend span{display:inline-block;margin-right:14px;font-size:12px}\
.legend i{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}\
.cycle{color:#d00000;font-weight:bold}";

pub fn render_html(i: &HtmlInput<'_>) -> String {
    let legend = [
        ("#457b9d", "lock held"),
        ("#e76f51", "spinning on a lock"),
        ("rgba(230,57,70,0.25)", "IRQs off"),
        ("#b388eb", "preemption off"),
        ("#7b2cbf", "hardirq handler"),
        ("#2a9d8f", "softirq"),
        ("#9d0208", "NMI"),
        ("#d00000", "watchdog check that found the lockup"),
        ("#f4a261", "hook / host action → the interrupt it caused"),
    ]
    .iter()
    .map(|(c, l)| format!(r##"<span><i style="background:{c}"></i>{l}</span>"##))
    .collect::<String>();
    let timeline = if i.timeline.is_empty() {
        "<p>This run kept no trace (add a <code>[trace]</code> section to the scenario).</p>"
            .to_string()
    } else {
        format!(
            r##"<div class="legend">{legend}</div>{}<p style="font-size:12px">Dashed lines break the axis where nothing happened for a while (the label says how long). Hover a bar for where it began.</p>"##,
            i.timeline
        )
    };
    let cycle = if i.cycle.is_empty() {
        String::new()
    } else {
        format!(
            r##"<p class="cycle">Deadlock cycle: {}</p>"##,
            escape_xml(i.cycle)
        )
    };
    format!(
        r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>lockvmm: {title}</title><style>{STYLE}</style></head>
<body>
<h1>lockvmm: {title}</h1>
<p>{description}</p>
<h2>Timeline before the lockup</h2>
{timeline}
<h2>Wait-for graph</h2>
{cycle}{waitfor}
<h2>Report</h2>
<pre id="report">{report}</pre>
<p style="font-size:12px">Also in this directory: trace.txt (trace-cmd report), trace.json (open in ui.perfetto.dev), waitfor.dot (Graphviz).</p>
</body></html>
"##,
        title = escape_xml(i.title),
        description = escape_xml(i.description),
        waitfor = i.waitfor,
        report = escape_xml(i.report),
    )
}
