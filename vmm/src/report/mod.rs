//! Rendering: the crash-style report of a frozen machine (built from the analysis) and the text
//! of every other way a run can end.
mod crash;
pub mod header;
mod outcome;
mod render;
mod splats;
pub mod trace;

pub use crash::{CrashReport, Detection, ReportInput, report_cpu};
pub use outcome::one_line;
pub use render::{render_bt, render_items, render_regs};
pub use splats::splat_lines;
