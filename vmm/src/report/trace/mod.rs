//! Rendering a run's trace: `trace.txt` (as `trace-cmd report` prints), `trace.json` (the
//! Chrome trace-event format Perfetto's UI opens), the SVG timeline and wait-for graph of
//! `report.html`, and `waitfor.dot` (Graphviz).
mod dot;
mod html;
mod json;
mod svg;
mod txt;
mod waitfor_svg;

pub use dot::render_dot;
pub use html::{HtmlInput, render_html};
pub use json::render_json;
pub use svg::{involved_cpus, render_timeline};
pub use txt::{TxtFilter, event_fields, render_txt};
pub use waitfor_svg::render_waitfor_svg;

/// Escapes text for HTML and SVG (element content and attribute values).
pub fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
