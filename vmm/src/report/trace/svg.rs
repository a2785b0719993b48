//! The SVG timeline of `report.html`: the CPUs involved in the lockup over their last events
//! before the snapshot. Per CPU: IRQs-off shading behind everything, lock holds and spins in
//! lanes, interrupt handlers (the fatal one outlined), preempt-off as a thin bar, watchdog
//! checks and hooks as marks, and an arrow from each host action to the handler it caused.
//!
//! The axis is broken: the virtual clock jumps (a CPU spinning for ten seconds records
//! nothing), so each quiet stretch longer than [`GAP_CAP_US`] is drawn that wide, with a
//! break mark naming how long it really was. Everything else is to scale.
use std::fmt::Write;

use super::escape_xml;
use crate::trace::{Span, SpanKind, Timeline, Trace, WaitFor};

/// Widest a quiet stretch is drawn, in display µs.
const GAP_CAP_US: f64 = 40.0;
/// How many of each CPU's last events the window covers.
const LAST_EVENTS: usize = 150;
const WIDTH: f64 = 1360.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 20.0;
const LANE_H: f64 = 14.0;

/// The CPUs the picture shows: those of the wait-for graph, then `extra` (the lockup CPUs),
/// in order, without repeats; at most 8.
pub fn involved_cpus(wf: &WaitFor, extra: &[usize]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    for c in extra.iter().copied().chain(wf.cpus()) {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out.sort_unstable();
    out.truncate(8);
    out
}

/// The broken axis: display time → x.
struct Axis {
    /// (display time, x) breakpoints, increasing.
    points: Vec<(f64, f64)>,
    /// (x, real length in µs) of each break.
    breaks: Vec<(f64, f64)>,
}

impl Axis {
    fn new(mut times: Vec<f64>, x0: f64, x1: f64) -> Axis {
        times.sort_by(f64::total_cmp);
        times.dedup();
        let mut cum = vec![0.0];
        let mut gaps = Vec::new();
        for w in times.windows(2) {
            let d = w[1] - w[0];
            if d > GAP_CAP_US {
                gaps.push((cum.len() - 1, d));
            }
            cum.push(cum.last().copied().unwrap_or(0.0) + d.min(GAP_CAP_US));
        }
        let total = cum.last().copied().unwrap_or(0.0).max(1.0);
        let x = |c: f64| x0 + (x1 - x0) * c / total;
        let points: Vec<(f64, f64)> = times.iter().zip(&cum).map(|(t, c)| (*t, x(*c))).collect();
        let breaks = gaps
            .into_iter()
            .map(|(i, d)| ((points[i].1 + points[i + 1].1) / 2.0, d))
            .collect();
        Axis { points, breaks }
    }

    fn x(&self, t: f64) -> f64 {
        let p = &self.points;
        let Some(first) = p.first() else { return LEFT };
        if t <= first.0 {
            return first.1;
        }
        match p.iter().position(|&(pt, _)| pt >= t) {
            None => p[p.len() - 1].1,
            Some(i) => {
                let (t0, x0) = p[i - 1];
                let (t1, x1) = p[i];
                x0 + (x1 - x0) * (t - t0) / (t1 - t0).max(f64::MIN_POSITIVE)
            }
        }
    }
}

fn human(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{us:.0} µs")
    }
}

/// The timeline of `cpus` as one `<svg>` element.
pub fn render_timeline(trace: &Trace, tl: &Timeline, cpus: &[usize]) -> String {
    // The window: from the oldest of each involved CPU's last events to the snapshot.
    let start = cpus
        .iter()
        .filter_map(|&c| trace.cpu(c))
        .filter_map(|c| {
            c.events
                .iter()
                .nth_back(LAST_EVENTS.min(c.events.len()).saturating_sub(1))
        })
        .filter_map(|e| tl.at.get(&e.seq).copied())
        .fold(tl.end_us, f64::min);
    let in_window = |s: &Span| cpus.contains(&s.cpu) && tl.end_of(s) >= start;
    let spans: Vec<&Span> = tl.spans.iter().filter(|s| in_window(s)).collect();
    let mut times = vec![start, tl.end_us];
    for s in &spans {
        times.push(s.start_us.max(start));
        times.push(tl.end_of(s));
    }
    let instants: Vec<_> = tl
        .instants
        .iter()
        .filter(|i| cpus.contains(&i.cpu) && i.at_us >= start)
        .collect();
    times.extend(instants.iter().map(|i| i.at_us));
    let axis = Axis::new(times, LEFT, WIDTH - RIGHT);

    // Rows: each CPU gets its lock lanes, a handler lane and the preempt bar.
    let mut body = String::new();
    let mut y = 40.0;
    let mut row_of = Vec::new();
    for &cpu in cpus {
        let mine: Vec<&Span> = spans.iter().copied().filter(|s| s.cpu == cpu).collect();
        let locks: Vec<&Span> = mine
            .iter()
            .copied()
            .filter(|s| matches!(s.kind, SpanKind::LockHold | SpanKind::Spin))
            .collect();
        let lane = disjoint_lanes(&locks, |s| tl.end_of(s));
        let nlanes = lane.iter().max().map_or(1, |m| m + 1).min(6);
        let handler_y = y + 18.0 + nlanes as f64 * (LANE_H + 2.0);
        let h = handler_y - y + LANE_H + 16.0;
        row_of.push((cpu, y, handler_y));
        let _ = write!(
            body,
            r##"<g class="cpu-row" data-cpu="{cpu}"><rect class="row-bg" x="{LEFT}" y="{y}" width="{}" height="{h}" fill="{}"/>"##,
            WIDTH - RIGHT - LEFT,
            if row_of.len() % 2 == 0 {
                "#f7f7f7"
            } else {
                "#ffffff"
            }
        );
        let _ = write!(
            body,
            r##"<text x="8" y="{}" font-size="13" font-weight="bold">CPU {cpu}</text>"##,
            y + h / 2.0 + 4.0
        );
        for s in mine.iter().filter(|s| s.kind == SpanKind::IrqsOff) {
            let (x0, x1) = (axis.x(s.start_us.max(start)), axis.x(tl.end_of(s)));
            let _ = write!(
                body,
                r##"<rect class="irqsoff" x="{x0:.1}" y="{y}" width="{:.1}" height="{h}" fill="#e63946" fill-opacity="0.13"><title>IRQs off from {}</title></rect>"##,
                (x1 - x0).max(1.0),
                escape_xml(&s.ip_name)
            );
        }
        for (s, l) in locks.iter().zip(&lane) {
            let ly = y + 14.0 + (*l).min(5) as f64 * (LANE_H + 2.0);
            let (class, fill, label) = match s.kind {
                SpanKind::Spin => ("spin", "url(#spin)", format!("spin on {}", s.name)),
                _ => ("hold", "#457b9d", s.name.clone()),
            };
            bar(&mut body, &axis, tl, s, start, ly, class, fill, &label);
        }
        for s in mine.iter().filter(|s| {
            matches!(
                s.kind,
                SpanKind::Hardirq | SpanKind::Softirq | SpanKind::Nmi
            )
        }) {
            let fatal = s.end_us.is_none() && s.kind == SpanKind::Hardirq;
            let (class, fill) = match (s.kind, fatal) {
                (SpanKind::Nmi, _) => ("handler nmi", "#9d0208"),
                (SpanKind::Softirq, _) => ("handler softirq", "#2a9d8f"),
                (_, true) => ("handler hardirq fatal", "#7b2cbf"),
                _ => ("handler hardirq", "#7b2cbf"),
            };
            let label = if fatal {
                format!("fatal interrupt: {}", s.name)
            } else {
                s.name.clone()
            };
            bar(
                &mut body, &axis, tl, s, start, handler_y, class, fill, &label,
            );
        }
        for s in mine.iter().filter(|s| s.kind == SpanKind::PreemptOff) {
            let (x0, x1) = (axis.x(s.start_us.max(start)), axis.x(tl.end_of(s)));
            let _ = write!(
                body,
                r##"<rect class="preemptoff" x="{x0:.1}" y="{:.1}" width="{:.1}" height="4" fill="#b388eb"/>"##,
                y + h - 6.0,
                (x1 - x0).max(1.0)
            );
        }
        body.push_str("</g>");
        y += h + 8.0;
    }
    // Marks: watchdog checks (red when they found the lockup), hooks.
    for i in &instants {
        let Some(&(_, ry, _)) = row_of.iter().find(|r| r.0 == i.cpu) else {
            continue;
        };
        let x = axis.x(i.at_us);
        let (class, fill) = match i.event {
            lockvmm_abi::trace::TraceEvent::WatchdogCheck if i.alarm => {
                ("watchdog alarm", "#d00000")
            }
            lockvmm_abi::trace::TraceEvent::WatchdogCheck => ("watchdog", "#6c757d"),
            lockvmm_abi::trace::TraceEvent::Hook => ("hook", "#f4a261"),
            _ => continue,
        };
        let _ = write!(
            body,
            r##"<path class="{class}" d="M{x:.1},{:.1} l-5,-9 h10 z" fill="{fill}"><title>{}</title></path>"##,
            ry + 10.0,
            escape_xml(&i.name)
        );
    }
    for f in &tl.flows {
        let (Some(a), Some(b)) = (
            row_of.iter().find(|r| r.0 == f.from_cpu),
            row_of.iter().find(|r| r.0 == f.to_cpu),
        ) else {
            continue;
        };
        if f.from_us < start {
            continue;
        }
        let (x0, y0, x1, y1) = (axis.x(f.from_us), a.1 + 10.0, axis.x(f.to_us), b.2);
        let _ = write!(
            body,
            r##"<path class="flow" d="M{x0:.1},{y0:.1} C{x0:.1},{:.1} {x1:.1},{:.1} {x1:.1},{y1:.1}" stroke="#f4a261" stroke-width="2" fill="none" marker-end="url(#arrow)"><title>{}</title></path>"##,
            y1 - 10.0,
            y0 + 10.0,
            escape_xml(&f.name)
        );
    }
    for &(x, us) in &axis.breaks {
        let _ = write!(
            body,
            r##"<g class="axis-break"><line x1="{x:.1}" y1="30" x2="{x:.1}" y2="{y:.1}" stroke="#adb5bd" stroke-dasharray="3,3"/><text x="{x:.1}" y="26" font-size="10" text-anchor="middle" fill="#6c757d">≈{}</text></g>"##,
            human(us)
        );
    }
    let _ = write!(
        body,
        r##"<line class="snapshot" x1="{0:.1}" y1="20" x2="{0:.1}" y2="{y:.1}" stroke="#000" stroke-width="2"/><text x="{1:.1}" y="14" font-size="11" text-anchor="end">snapshot {2:.6} s</text>"##,
        axis.x(tl.end_us),
        axis.x(tl.end_us),
        trace.end_ns as f64 / 1e9
    );
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" id="timeline" width="{WIDTH}" height="{:.0}" viewBox="0 0 {WIDTH} {:.0}" font-family="sans-serif"><defs><pattern id="spin" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#e76f51"/><line x1="0" y1="0" x2="0" y2="6" stroke="#9d0208" stroke-width="3"/></pattern><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#f4a261"/></marker></defs>{body}</svg>"##,
        y + 10.0,
        y + 10.0
    )
}

/// One section as a bar with its label (clipped to the bar) and a tooltip.
#[allow(clippy::too_many_arguments)]
fn bar(
    out: &mut String,
    axis: &Axis,
    tl: &Timeline,
    s: &Span,
    start: f64,
    y: f64,
    class: &str,
    fill: &str,
    label: &str,
) {
    let (x0, x1) = (axis.x(s.start_us.max(start)), axis.x(tl.end_of(s)));
    let w = (x1 - x0).max(2.0);
    let open = if s.end_us.is_none() {
        " (still at the snapshot)"
    } else {
        ""
    };
    let _ = write!(
        out,
        r##"<g class="span {class}"><rect x="{x0:.1}" y="{y:.1}" width="{w:.1}" height="{LANE_H}" fill="{fill}" rx="2"><title>{} from {} at {:.6} s{open}</title></rect>"##,
        escape_xml(label),
        escape_xml(&s.ip_name),
        s.start_ns as f64 / 1e9
    );
    // A label only where it fits (about 6.5 px a character).
    let fit = ((w - 6.0) / 6.5) as usize;
    if fit >= 4 {
        let text: String = label.chars().take(fit).collect();
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#fff">{}</text>"##,
            x0 + 3.0,
            y + 11.0,
            escape_xml(&text)
        );
    }
    out.push_str("</g>");
}

/// Lanes in which sections never overlap (a spin shows below the lock its CPU holds), first
/// fit in start order.
fn disjoint_lanes(spans: &[&Span], end: impl Fn(&Span) -> f64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by(|&a, &b| spans[a].start_us.total_cmp(&spans[b].start_us));
    let mut lane_end: Vec<f64> = Vec::new();
    let mut out = vec![0; spans.len()];
    for i in order {
        let (s, e) = (spans[i].start_us, end(spans[i]));
        let lane = match lane_end.iter().position(|&le| le <= s) {
            Some(l) => l,
            None => {
                lane_end.push(f64::MIN);
                lane_end.len() - 1
            }
        };
        lane_end[lane] = e;
        out[i] = lane;
    }
    out
}
