//! The diagnosis: what the stuck CPU waits for, who holds that, and why the holder cannot let
//! go, following the chain of waits.
use super::Analysis;
use crate::state::locks::innermost;
use crate::state::regs::describe_if;
use crate::state::{CpuBacktrace, LockWait, LockupKind};

impl Analysis<'_> {
    /// The explanation of a lockup on `cpu`: what it waits for, who holds that, and why that
    /// holder cannot let go — following the chain of waits.
    pub fn diagnose(
        &self,
        cpu: usize,
        kind: Option<LockupKind>,
        waits: &[LockWait],
        bts: &[CpuBacktrace],
    ) -> String {
        let who = |c: usize| match self.task_on(c) {
            Some(t) => format!("CPU {c} ({}, PID {})", t.comm, t.pid),
            None => format!("CPU {c}"),
        };
        let bt_of = |c: usize| bts.iter().find(|b| b.cpu == c);
        // The context the watchdog interrupted on the stuck CPU.
        let stuck_regs = bt_of(cpu).and_then(|b| b.exceptions().last().map(|(_, r)| *r));
        let mut text = String::new();
        let innermost = |c: usize| innermost(waits, c);
        // A fault or panic with no detector report reads as a hard lockup's "nothing else is
        // needed" (the wording the report has always had for them).
        let kind = kind.unwrap_or(LockupKind::Hard);
        let Some(w) = innermost(cpu) else {
            let at = stuck_regs.map_or_else(String::new, |r| {
                format!(
                    " It was at {} with {}.",
                    self.syms.describe(r.rip),
                    describe_if(r.rflags)
                )
            });
            return format!(
                "{} is not waiting for any lock: it has kept the CPU in the kernel without letting \
                 {} run.{at} Nothing else is needed for a {kind} lockup: a loop that never schedules \
                 (with preemption or interrupts disabled), or a task the watchdog thread cannot preempt.",
                who(cpu),
                if kind == LockupKind::Hard {
                    "interrupts"
                } else {
                    "the watchdog thread"
                },
            );
        };
        let irqs = stuck_regs.map_or("", |r| {
            if r.irqs_enabled() {
                "interrupts enabled"
            } else {
                "interrupts disabled"
            }
        });
        text.push_str(&format!(
            "{} spins in native_queued_spin_lock_slowpath ({} context{}{}) on {}",
            who(cpu),
            w.context,
            if irqs.is_empty() { "" } else { ", " },
            irqs,
            w.lock_name
        ));
        let mut seen = vec![cpu];
        let mut cur = w.clone();
        loop {
            let Some(h) = cur.holder else {
                text.push_str(
                    ", which nobody holds any more: the waiter should get it at its next look.",
                );
                break;
            };
            if h == cur.cpu {
                text.push_str(&format!(
                    ", which {} itself holds",
                    if h == cpu { "that CPU" } else { "it" }
                ));
                let why = bt_of(h).and_then(|b| {
                    let exc = b.exceptions();
                    exc.iter()
                        .rev()
                        .find(|(e, r)| r.irqs_enabled() || *e == "page_fault")
                        .map(|(e, r)| (e.to_string(), *r))
                });
                match why {
                    Some((entry, r)) if entry == "page_fault" => text.push_str(&format!(
                        ": it took the lock, then faulted at {} (CR2 {:#x}), and the fault path tried to take it again \
                         on the same CPU. The CPU can never release it.",
                        self.syms.describe(r.rip),
                        self.snap.cpus.get(h).map_or(0, |c| c.sregs.cr2)
                    )),
                    Some((entry, r)) => text.push_str(&format!(
                        ": it took the lock, then ran {} with interrupts enabled (RFLAGS.IF=1) while holding it; an \
                         interrupt ({entry}) on the same CPU tried to take the lock again. The CPU can never release it.",
                        self.syms.describe(r.rip)
                    )),
                    None => text.push_str(" and is trying to take again: a self-deadlock."),
                }
                break;
            }
            text.push_str(&format!(", held by {}", who(h)));
            if seen.contains(&h) {
                text.push_str(", which closes a cycle of CPUs waiting on each other: a deadlock.");
                break;
            }
            seen.push(h);
            match innermost(h) {
                Some(next) => {
                    text.push_str(&format!(
                        ". {} cannot release it: it is itself spinning ({} context) on {}",
                        who(h),
                        next.context,
                        next.lock_name
                    ));
                    cur = next.clone();
                }
                None => {
                    let at = self
                        .snap
                        .cpus
                        .get(h)
                        .map(|c| (self.syms.describe(c.regs.rip), describe_if(c.regs.rflags)));
                    match at {
                        Some((rip, ifl)) => text.push_str(&format!(
                            ". {} is running at {rip} ({ifl}) and has not released it.",
                            who(h)
                        )),
                        None => text.push('.'),
                    }
                    break;
                }
            }
        }
        text
    }
}
