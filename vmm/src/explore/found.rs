//! `found-N.toml`: a failing schedule as an ordinary scenario. The explored scenario's text,
//! without its `[expect]`, plus the forced events as `[[action]]`s and the failure's facts as
//! `[expect]`, so `lockvmm run` replays it and checks it.
use super::results::Signature;
use super::space::{Event, Forced};

/// Whether a line opens a table (`[x]`, `[[x]]`), and which.
fn header(line: &str) -> Option<&str> {
    let t = line.trim();
    let inner = t.strip_prefix("[[").or_else(|| t.strip_prefix('['))?;
    let end = inner.find(']')?;
    Some(inner[..end].trim())
}

/// The scenario's text without its `[expect]` (and `[[expect.hooks]]`) tables.
fn without_expect(source: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in source.lines() {
        if let Some(h) = header(line) {
            skipping = h == "expect" || h.starts_with("expect.");
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A TOML basic string (escaped as TOML requires).
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The `[[action]]`s that force one event.
fn action(f: &Forced, names: &[String]) -> String {
    let at = |deliver: &str| {
        format!(
            "[[action]]\nat_hook = {}\ncpu = {}\nnth = {}\ndeliver = {deliver}\n",
            quoted(&f.hook),
            f.cpu,
            f.nth
        )
    };
    match &f.event {
        Event::TimerTick => at("\"timer_tick\""),
        Event::Nmi => at("\"nmi\""),
        Event::Irq { handler, name } => {
            let name = names.get(*handler).unwrap_or(name);
            format!("{}handler = {}\n", at("\"irq\""), quoted(name))
        }
        // `until_ns` came from `space::as_written`: this prints the same time back.
        Event::Delay { until_ns } => format!(
            "{}\n[[action]]\nat_time = {:.9}\ncpu = {}\ndeliver = \"resume\"\n",
            at("\"pause\""),
            *until_ns as f64 / 1e9,
            f.cpu
        ),
    }
}

/// The text of `found-N.toml`. `explore_table` says whether the source has an `[explore]`
/// table (the found file keeps the hooks the search armed).
pub fn scenario_text(
    source: &str,
    n: usize,
    sig: &Signature,
    schedule: &[Forced],
    handler_names: &[String],
) -> String {
    let mut out = without_expect(source);
    if !source.lines().any(|l| header(l) == Some("trace")) {
        // A failure carries the record of what led to it: the replay leaves trace.txt,
        // trace.json, report.html and waitfor.dot (tracing changes no run's outcome).
        out.push_str("\n# The replay records every trace event class.\n[trace]\n");
    }
    if !source.lines().any(|l| header(l) == Some("explore")) {
        out.push_str("\n# The space explored (it arms the irq_enable_locked hook, as the search did).\n[explore]\n");
    }
    out.push_str(&format!(
        "\n# Found by lockvmm explore (failure {n}: {}): the shortest schedule, {} forced event(s).\n",
        sig.describe(),
        schedule.len()
    ));
    for f in schedule {
        out.push_str(&format!("# {}\n", f.label()));
        out.push_str(&action(f, handler_names));
        out.push('\n');
    }
    out.push_str("# What the failing schedule showed.\n[expect]\n");
    out.push_str(&format!("outcome = {}\n", quoted(sig.class.name())));
    if let Some(c) = sig.cpu {
        out.push_str(&format!("cpu = {c}\n"));
    }
    if !sig.lockup_cpus.is_empty() {
        out.push_str(&format!("lockup_cpus = {:?}\n", sig.lockup_cpus));
    }
    if let Some(l) = &sig.lock {
        out.push_str(&format!("lock = {}\n", quoted(l)));
    }
    if let Some(h) = sig.holder {
        out.push_str(&format!("holder = {h}\n"));
    }
    if let Some(d) = &sig.deadlock {
        out.push_str(&format!("deadlock = {}\n", quoted(d)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expect_tables_are_dropped_and_the_rest_kept() {
        let src = "description = \"x\"\n[machine]\nvcpus = 2\n[expect]\noutcome = \"shutdown\"\n[[expect.hooks]]\nhook = \"mark\"\n[[task]]\ncpu = 1\n";
        let out = without_expect(src);
        assert!(out.contains("[machine]") && out.contains("[[task]]\ncpu = 1"));
        assert!(!out.contains("outcome") && !out.contains("expect"));
    }

    #[test]
    fn a_delays_end_reads_back_as_the_time_the_search_ran() {
        for ns in [20_000_000, 10_000_001, 1_234_567_891, 0] {
            let t = super::super::space::as_written(ns);
            let text = format!("{:.9}", t as f64 / 1e9);
            assert_eq!((text.parse::<f64>().unwrap() * 1e9) as u64, t, "{ns}");
        }
    }
}
