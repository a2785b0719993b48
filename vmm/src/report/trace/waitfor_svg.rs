//! The wait-for graph as inline SVG: nodes on a circle (CPUs as boxes, locks as ellipses),
//! arrows "waits" and "held by", the cycle in red.
use std::fmt::Write;

use super::escape_xml;
use crate::trace::{WaitFor, WaitNode};

pub fn render_waitfor_svg(g: &WaitFor) -> String {
    let (w, h) = (700.0_f64, 420.0_f64);
    let (cx, cy, r) = (w / 2.0, h / 2.0, 150.0_f64);
    let n = g.nodes.len().max(1) as f64;
    let pos: Vec<(f64, f64)> = (0..g.nodes.len())
        .map(|i| {
            let a = std::f64::consts::PI * (2.0 * i as f64 / n - 0.5);
            if g.nodes.len() == 1 {
                (cx, cy)
            } else {
                (cx + r * 1.5 * a.cos(), cy + r * a.sin())
            }
        })
        .collect();
    let mut body = String::new();
    for &(a, b, ref label) in &g.edges {
        let on = g.edge_on_cycle(a, b);
        let (color, width, class) = if on {
            ("#d00000", 3, "edge cycle")
        } else {
            ("#495057", 1, "edge")
        };
        let (x0, y0) = pos[a];
        let (x1, y1) = pos[b];
        // Stop short of the target node so the arrowhead shows.
        let (dx, dy) = (x1 - x0, y1 - y0);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (ex, ey) = (x1 - dx / len * 48.0, y1 - dy / len * 24.0);
        let (sx, sy) = (x0 + dx / len * 48.0, y0 + dy / len * 24.0);
        // Curve the edge a little, so a pair of opposite edges does not overlap.
        let (mx, my) = (
            (sx + ex) / 2.0 - dy / len * 30.0,
            (sy + ey) / 2.0 + dx / len * 30.0,
        );
        let marker = if on {
            "url(#wf-arrow-red)"
        } else {
            "url(#wf-arrow)"
        };
        let _ = write!(
            body,
            r##"<g class="{class}"><path d="M{sx:.1},{sy:.1} Q{mx:.1},{my:.1} {ex:.1},{ey:.1}" stroke="{color}" stroke-width="{width}" fill="none" marker-end="{marker}"/><text x="{mx:.1}" y="{my:.1}" font-size="11" text-anchor="middle" fill="{color}">{}</text></g>"##,
            escape_xml(label)
        );
    }
    for (i, node) in g.nodes.iter().enumerate() {
        let (x, y) = pos[i];
        let on = g.cycle.contains(&i);
        let stroke = if on { "#d00000" } else { "#495057" };
        let sw = if on { 3 } else { 1 };
        let label = escape_xml(&node.label());
        let shape = match node {
            WaitNode::Cpu(_) => format!(
                r##"<rect x="{:.1}" y="{:.1}" width="96" height="36" rx="4" fill="#e9ecef" stroke="{stroke}" stroke-width="{sw}"/>"##,
                x - 48.0,
                y - 18.0
            ),
            WaitNode::Lock { .. } => format!(
                r##"<ellipse cx="{x:.1}" cy="{y:.1}" rx="{:.1}" ry="20" fill="#fff3bf" stroke="{stroke}" stroke-width="{sw}"/>"##,
                (label.len() as f64 * 3.6).clamp(48.0, 130.0)
            ),
        };
        let class = match (node, on) {
            (WaitNode::Cpu(_), true) => "node cpu cycle",
            (WaitNode::Cpu(_), false) => "node cpu",
            (WaitNode::Lock { .. }, true) => "node lock cycle",
            (WaitNode::Lock { .. }, false) => "node lock",
        };
        let _ = write!(
            body,
            r##"<g class="{class}">{shape}<text x="{x:.1}" y="{:.1}" font-size="12" text-anchor="middle">{label}</text></g>"##,
            y + 4.0
        );
    }
    if g.nodes.is_empty() {
        body.push_str(r##"<text x="20" y="40" font-size="13">No CPU was waiting on a lock at the snapshot.</text>"##);
    }
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" id="waitfor" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif"><defs><marker id="wf-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#495057"/></marker><marker id="wf-arrow-red" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#d00000"/></marker></defs>{body}</svg>"##
    )
}
