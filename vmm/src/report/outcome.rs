//! How a run ended, as the text `lockvmm run` prints when there is no crash report: the fault
//! with its registers and backtrace, the panic, the CPUs all waiting, the time limit.
use std::fmt::Write as _;

use super::render::{render_items, render_regs};
use crate::state::regs::describe_if;
use crate::state::{FaultReport, LockupEvent, Outcome, OutcomeClass};

impl FaultReport {
    /// crash-style text: exception RIP, decoded registers, CR2/CR3, backtrace.
    pub fn render(&self) -> String {
        let r = &self.regs;
        let mut s = String::new();
        let _ = writeln!(s, "{}", self.headline());
        let _ = writeln!(
            s,
            "    [exception RIP: {}]",
            self.rip_symbol.as_deref().unwrap_or("unknown")
        );
        render_regs(&mut s, r);
        let _ = writeln!(s, "    CR2: {:016x}  CR3: {:016x}", self.cr2, self.cr3);
        let _ = writeln!(s, "  backtrace:");
        render_items(&mut s, &self.backtrace);
        s
    }
}

impl Outcome {
    /// The text `lockvmm run` prints at the end.
    pub fn render(&self) -> String {
        match self {
            Outcome::Shutdown { status } => format!("guest powered off with status {status}\n"),
            Outcome::Fault(r) => r.render(),
            Outcome::Panic { message, report } => {
                format!(
                    "Kernel panic on CPU {}: {}\n{}",
                    report.cpu,
                    message,
                    report.render()
                )
            }
            Outcome::AllWaiting { waiting } => {
                let mut s =
                    String::from("every CPU is waiting and nothing can wake any of them:\n");
                for w in waiting {
                    let what = match (&w.addr, &w.addr_symbol) {
                        (Some(_), Some(sym)) => format!("waits on &{sym}"),
                        (Some(a), None) => format!("waits on {a:#x}"),
                        (None, _) => "waits for an interrupt".to_string(),
                    };
                    let _ = writeln!(
                        s,
                        "  CPU {:>3}: {} in {} ({})",
                        w.cpu,
                        what,
                        w.rip_symbol,
                        describe_if(if w.irq_enabled { 1 << 9 } else { 0 })
                    );
                }
                s
            }
            Outcome::Lockup { events } => {
                let mut s = String::new();
                for e in events {
                    let _ = writeln!(
                        s,
                        "{} lockup at {:.3}s: {}",
                        e.kind,
                        e.vtime_ns as f64 / 1e9,
                        e.message
                    );
                    s.push_str(&e.report.render());
                }
                s
            }
            Outcome::TimeLimit { vtime_ns } => {
                format!(
                    "no lockup and no exit within {:.3} virtual seconds\n",
                    *vtime_ns as f64 / 1e9
                )
            }
            Outcome::HostError { message } => format!("lockvmm error: {message}\n"),
            Outcome::Interrupted { signal } => {
                format!("interrupted by {signal}: the run was stopped before it ended\n")
            }
        }
    }
}

/// The closing line of a run, in the outcome vocabulary: `hard_lockup on CPU 51 at 10.000 s:
/// NMI watchdog: Watchdog detected hard LOCKUP on cpu 51 (then panic: Hard LOCKUP)`.
pub fn one_line(outcome: &Outcome, lockups: &[LockupEvent]) -> String {
    let class = OutcomeClass::of(outcome, lockups);
    let secs = |ns: u64| ns as f64 / 1e9;
    let mut line = match (lockups.first(), outcome) {
        (Some(e), _) => {
            let more = if lockups.len() > 1 {
                format!(" ({} detections in all)", lockups.len())
            } else {
                String::new()
            };
            format!(
                "{class} on CPU {} at {:.3} s: {}{more}",
                e.cpu,
                secs(e.vtime_ns),
                e.message
            )
        }
        (None, Outcome::Fault(r)) => format!("{class}: {}", r.headline()),
        (None, Outcome::Panic { message, report }) => {
            format!("{class} on CPU {}: {message}", report.cpu)
        }
        (None, Outcome::AllWaiting { waiting }) => format!(
            "{class}: every CPU is waiting ({} of them) and nothing can wake any of them",
            waiting.len()
        ),
        (None, Outcome::Shutdown { status }) => {
            format!("{class}: the guest powered off with status {status}")
        }
        (None, Outcome::TimeLimit { vtime_ns }) => format!(
            "{class}: no detector fired within {:.3} virtual seconds",
            secs(*vtime_ns)
        ),
        (None, Outcome::Lockup { .. }) => class.to_string(),
        (None, Outcome::HostError { message }) => format!("{class}: {message}"),
        (None, Outcome::Interrupted { signal }) => {
            format!("{class}: interrupted by {signal} before the run ended")
        }
    };
    if !lockups.is_empty() {
        match outcome {
            Outcome::Panic { message, .. } => line.push_str(&format!(" (then panic: {message})")),
            Outcome::TimeLimit { vtime_ns } => line.push_str(&format!(
                " (the run went on to its time limit, {:.3} s)",
                secs(*vtime_ns)
            )),
            Outcome::Shutdown { status } => {
                line.push_str(&format!(" (then the guest powered off, status {status})"))
            }
            _ => {}
        }
    }
    line
}
