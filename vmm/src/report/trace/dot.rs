//! `waitfor.dot`: the wait-for graph for Graphviz (`dot -Tsvg waitfor.dot`), CPUs as boxes,
//! locks as ellipses, the cycle in red.
use std::fmt::Write;

use crate::trace::{WaitFor, WaitNode};

/// A DOT string literal.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn render_dot(g: &WaitFor) -> String {
    let mut s =
        String::from("digraph waitfor {\n  rankdir=LR;\n  node [fontname=\"sans-serif\"];\n");
    for (i, n) in g.nodes.iter().enumerate() {
        let shape = match n {
            WaitNode::Cpu(_) => "box",
            WaitNode::Lock { .. } => "ellipse",
        };
        let color = if g.cycle.contains(&i) {
            ", color=red, penwidth=2"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "  {} [shape={shape}, label={}{color}];",
            n.id(),
            quote(&n.label())
        );
    }
    for &(a, b, ref label) in &g.edges {
        let color = if g.edge_on_cycle(a, b) {
            ", color=red, penwidth=2"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "  {} -> {} [label={}{color}];",
            g.nodes[a].id(),
            g.nodes[b].id(),
            quote(label)
        );
    }
    s.push_str("}\n");
    s
}
