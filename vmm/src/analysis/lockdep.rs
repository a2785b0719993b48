//! What the guest's lockdep and `might_sleep` found, as a paragraph of the diagnosis: the lock
//! class, where it was taken in interrupt context and where interrupts were enabled with it
//! held (from the guest's records, with the kernel's symbols).
use crate::image::symbols::Symbols;
use crate::state::Splat;
use crate::state::vtime::Secs;

/// The top frames of a trace, by name (`scheduler_tick+0x34 <- update_process_times+0x64`).
fn frames(syms: &Symbols, trace: &[u64]) -> String {
    trace
        .iter()
        .map(|&a| {
            // Return addresses: name the call, not the instruction after it.
            syms.lookup(a.wrapping_sub(1)).map_or_else(
                || format!("{a:#x}"),
                |l| format!("{}+{:#x}", l.name, l.offset + 1),
            )
        })
        .collect::<Vec<_>>()
        .join(" <- ")
}

/// One sentence per splat (at most a few), or `None` when the guest reported nothing.
pub fn lockdep_findings(syms: &Symbols, splats: &[Splat]) -> Option<String> {
    if splats.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for s in splats.iter().take(4) {
        let at = format!(
            "at {} s on CPU {} ({}/{})",
            Secs(s.vtime_ns),
            s.cpu,
            s.comm,
            s.pid
        );
        let text = match (s.kind.as_str(), &s.usage) {
            ("sleep_in_atomic", _) => format!(
                "might_sleep reported a sleeping function called from invalid context {at} \
                 (preempt_count {:x}, irqs {}) from {}.",
                s.preempt_count.unwrap_or(0),
                if s.irqs_disabled == Some(true) {
                    "disabled"
                } else {
                    "enabled"
                },
                s.ip_symbol
            ),
            ("inconsistent_lock_state", Some((prev, new))) => format!(
                "Lockdep reported an inconsistent lock state on {} {at}: {{{prev}}} -> {{{new}}}. \
                 {{{prev}}} was first seen at {}; {{{new}}} at {}. A lock taken in interrupt \
                 context must never be held with that interrupt enabled: if the interrupt \
                 arrives there, it spins on a lock its own CPU holds.",
                s.class,
                frames(syms, &s.prev_trace),
                frames(syms, &s.new_trace)
            ),
            ("irq_safe_to_unsafe", Some((prev, new))) => format!(
                "Lockdep reported a {prev}-safe -> {new}-unsafe lock order {at}: {} (taken in \
                 interrupt context at {}) would come to depend on {} (held with interrupts \
                 enabled at {}).",
                s.class,
                frames(syms, &s.prev_trace),
                s.other_class.as_deref().unwrap_or("?"),
                frames(syms, &s.new_trace)
            ),
            _ => format!(
                "Lockdep reported {} on {}{} {at}, from {}.",
                s.title(),
                s.class,
                s.other_class
                    .as_ref()
                    .map(|o| format!(" (with {o} held)"))
                    .unwrap_or_default(),
                s.ip_symbol
            ),
        };
        out.push(text);
    }
    Some(out.join(" "))
}
