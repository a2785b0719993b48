//! One line per lockdep or `might_sleep` report, for the crash report and the terminal.
use crate::state::Splat;
use crate::state::vtime::Secs;

/// `[    0.010000] CPU 56 perf/4127: inconsistent lock state on &rq->__lock
/// ({IN-HARDIRQ-W} -> {HARDIRQ-ON-W}), at raw_spin_rq_lock_nested+0x9/0xb`.
pub fn splat_lines(splats: &[Splat]) -> Vec<String> {
    splats
        .iter()
        .map(|s| {
            let mut l = format!(
                "[{:>12}] CPU {} {}/{}: {}",
                Secs(s.vtime_ns),
                s.cpu,
                s.comm,
                s.pid,
                s.title()
            );
            if !s.class.is_empty() {
                l.push_str(&format!(" on {}", s.class));
            }
            if let Some(o) = s.other_class.as_ref().filter(|o| **o != s.class) {
                l.push_str(&format!(" and {o}"));
            }
            if let Some((p, n)) = &s.usage {
                l.push_str(&format!(" ({{{p}}} -> {{{n}}})"));
            }
            l.push_str(&format!(", at {}", s.ip_symbol));
            l
        })
        .collect()
}
