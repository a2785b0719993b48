//! The diagnosis: which context spins on the stuck CPU (task, softirq, hardirq, NMI), how it got
//! there (an interrupt, a page fault, an NMI, a system call), with which RFLAGS.IF, on which
//! lock, held by whom, and why the holder cannot let go, following the chain of waits. Every
//! fact is read from the snapshot: the contexts on each stack, the spinning-on table, the lock
//! words.
use super::Analysis;
use super::contexts::{Entry, is_irq_entry, is_nmi_entry};
pub use super::incident::{DeadlockKind, Incident};
use crate::state::locks::innermost;
use crate::state::regs::describe_if;
use crate::state::{Context, CpuBacktrace, HeldLock, LockWait, LockupKind, Regs};

/// Everything the diagnosis reads.
pub struct Findings<'a> {
    pub waits: &'a [LockWait],
    pub held: &'a [HeldLock],
    pub backtraces: &'a [CpuBacktrace],
}

/// How a chain of waits ends.
enum ChainEnd {
    /// The last lock has no holder any more.
    Free,
    /// The last lock is held by the CPU that waits on it.
    SelfHeld(usize),
    /// The last holder is a CPU already in the chain.
    Cycle,
    /// The last holder waits on nothing.
    Running,
}

impl Analysis<'_> {
    /// The explanation of what happened on `cpu`.
    pub fn diagnose(&self, cpu: usize, incident: Incident<'_>, f: &Findings<'_>) -> String {
        if let Incident::HungTask(task) = incident {
            return self.hung_task(task);
        }
        let bt = f.backtraces.iter().find(|b| b.cpu == cpu);
        let Some(w) = innermost(f.waits, cpu) else {
            return self.not_waiting(cpu, incident, bt, f.held);
        };
        let spinning = bt.and_then(|b| self.spinning_context(b));
        let regs = spinning.as_ref().map(|(c, _)| c.regs);
        let function = spinning
            .as_ref()
            .and_then(|(c, _)| c.spin_function())
            .unwrap_or(super::contexts::SPIN_FUNCTION);
        let mut text = format!(
            "{} spins in {function} ({} context{}) on {}",
            self.who(cpu),
            w.context,
            regs.map_or(String::new(), |r| format!(", {}", irqs(&r))),
            w.lock_name
        );
        if let Some(way_in) = spinning.as_ref().and_then(|(_, e)| e.as_ref()) {
            text.push_str(&format!(", {}", self.entered(way_in)));
        }
        text.push('.');
        self.follow_chain(cpu, f, &mut text);
        text
    }

    /// `CPU 51 (crond, PID 1000877)`.
    fn who(&self, cpu: usize) -> String {
        match self.task_on(cpu) {
            Some(t) => format!("CPU {cpu} ({}, PID {})", t.comm, t.pid),
            None => format!("CPU {cpu}"),
        }
    }

    /// How a context was entered from the one below it.
    fn entered(&self, e: &Entry) -> String {
        let at = self.syms.describe(e.below.rip);
        if e.below.user_mode() {
            format!("entered from user space through {}", e.stub)
        } else if e.stub == "page_fault" {
            format!("entered through a page fault at {at}")
        } else if is_nmi_entry(&e.stub) {
            format!("entered through an NMI that arrived at {at}")
        } else if is_irq_entry(&e.stub) {
            format!(
                "entered through an interrupt ({}) that arrived at {at}",
                e.stub
            )
        } else {
            format!("entered through {} at {at}", e.stub)
        }
    }

    /// The waits from `cpu`'s on, one per CPU down the chain of holders, and how it ends.
    /// The one walk both the text and the deadlock kind come from.
    fn chain(&self, cpu: usize, f: &Findings<'_>) -> Option<(Vec<LockWait>, ChainEnd)> {
        let mut waits = vec![innermost(f.waits, cpu)?.clone()];
        let mut seen = vec![cpu];
        loop {
            let cur = waits.last()?;
            let end = match cur.holder {
                None => ChainEnd::Free,
                Some(h) if h == cur.cpu => ChainEnd::SelfHeld(h),
                Some(h) if seen.contains(&h) => ChainEnd::Cycle,
                Some(h) => {
                    seen.push(h);
                    match innermost(f.waits, h) {
                        Some(next) => {
                            waits.push(next.clone());
                            continue;
                        }
                        None => ChainEnd::Running,
                    }
                }
            };
            return Some((waits, end));
        }
    }

    /// Appends the chain of holders from `cpu`'s wait on: who holds each lock and why they
    /// cannot let go.
    fn follow_chain(&self, cpu: usize, f: &Findings<'_>, text: &mut String) {
        let Some((waits, end)) = self.chain(cpu, f) else {
            return;
        };
        for (i, w) in waits.iter().enumerate() {
            let last = i + 1 == waits.len();
            match (w.holder, last, &end) {
                (None, _, _) => text.push_str(&format!(
                    " Nobody holds {} any more: the waiter should get it at its next look.",
                    w.lock_name
                )),
                (Some(h), true, ChainEnd::SelfHeld(_)) => {
                    text.push_str(&format!(
                        " {} holds {} itself",
                        if h == cpu { "That CPU" } else { "It" },
                        w.lock_name
                    ));
                    text.push_str(&self.self_deadlock(h, f));
                }
                (Some(h), _, _) => {
                    text.push_str(&format!(" {} is held by {}.", w.lock_name, self.who(h)));
                    match (last, &end) {
                        (true, ChainEnd::Cycle) => text.push_str(
                            " That closes a cycle of CPUs waiting on each other: a deadlock.",
                        ),
                        (true, _) => text.push_str(&self.running_holder(h)),
                        (false, _) => {
                            let next = &waits[i + 1];
                            text.push_str(&format!(
                                " {} cannot release it: it is itself spinning ({} context) on {}.",
                                self.who(h),
                                next.context,
                                next.lock_name
                            ));
                        }
                    }
                }
            }
        }
    }

    /// How a CPU that spins on a lock it holds itself got there.
    pub fn self_deadlock_kind(
        &self,
        cpu: usize,
        f: &Findings<'_>,
    ) -> (DeadlockKind, Option<Entry>) {
        let entry = f
            .backtraces
            .iter()
            .find(|b| b.cpu == cpu)
            .and_then(|b| self.spinning_context(b))
            .and_then(|(_, e)| e);
        let context = innermost(f.waits, cpu).map(|w| w.context);
        let kind = match &entry {
            Some(e) if e.stub == "page_fault" => DeadlockKind::SelfPageFault,
            Some(e) if is_nmi_entry(&e.stub) => DeadlockKind::SelfNmi,
            Some(e) if is_irq_entry(&e.stub) && !e.below.user_mode() => {
                if context == Some(Context::Softirq) {
                    DeadlockKind::SelfSoftirq
                } else {
                    DeadlockKind::SelfInterrupt
                }
            }
            _ => DeadlockKind::Recursion,
        };
        (kind, entry)
    }

    /// Why a CPU that spins on a lock it holds itself never gets it: the way into the spinning
    /// context from the context that holds the lock.
    fn self_deadlock(&self, cpu: usize, f: &Findings<'_>) -> String {
        let never = "The CPU can never release it.";
        let (kind, entry) = self.self_deadlock_kind(cpu, f);
        let at = |e: &Option<Entry>| {
            e.as_ref()
                .map_or_else(String::new, |e| self.syms.describe(e.below.rip))
        };
        let stub = entry.as_ref().map_or("", |e| e.stub.as_str());
        match kind {
            DeadlockKind::SelfPageFault => format!(
                ": the context below holds it and faulted at {} (CR2 {:#x}), and the fault path tries \
                 to take the same lock again on the same CPU. {never}",
                at(&entry),
                self.snap.cpus.get(cpu).map_or(0, |c| c.sregs.cr2)
            ),
            DeadlockKind::SelfNmi => format!(
                ": it holds the lock in {}, and an NMI on the same CPU tries to take it. NMIs cannot \
                 be masked, so disabling interrupts does not protect a lock an NMI handler takes. {never}",
                at(&entry)
            ),
            DeadlockKind::SelfSoftirq => format!(
                ": it took the lock, then ran {} with bottom halves enabled while holding it; the \
                 softirq run on the exit of an interrupt ({stub}) tries to take the lock again on the \
                 same CPU (spin_lock_bh in the task would have kept it out). {never}",
                at(&entry)
            ),
            DeadlockKind::SelfInterrupt => format!(
                ": it took the lock, then ran {} with interrupts enabled (RFLAGS.IF=1) while holding \
                 it, and an interrupt ({stub}) on the same CPU tries to take the lock again. {never}",
                at(&entry)
            ),
            _ => format!(
                " and tries to take it again in the same context: a recursive (AA) deadlock. {never}"
            ),
        }
    }

    /// The kind of deadlock the chain from `cpu` ends in, if it ends in one.
    pub fn deadlock_kind(&self, cpu: usize, f: &Findings<'_>) -> Option<DeadlockKind> {
        match self.chain(cpu, f)?.1 {
            ChainEnd::Free => None,
            ChainEnd::SelfHeld(h) => Some(self.self_deadlock_kind(h, f).0),
            ChainEnd::Cycle => Some(DeadlockKind::Cycle),
            ChainEnd::Running => Some(DeadlockKind::HolderRunning),
        }
    }

    /// A holder that waits on nothing: what it is doing instead of releasing the lock.
    fn running_holder(&self, cpu: usize) -> String {
        let Some(r) = self
            .snap
            .cpus
            .get(cpu)
            .filter(|c| c.captured)
            .map(|c| c.regs)
        else {
            return String::new();
        };
        if r.user_mode() {
            format!(
                " {} is running in user mode (RIP {:#x}, CS {:04x}) and has not released it: it \
                 returned to user space holding a kernel spinlock, and nothing in user space will \
                 release it.",
                self.who(cpu),
                r.rip,
                r.cs
            )
        } else {
            format!(
                " {} is running at {} ({}) and has not released it.",
                self.who(cpu),
                self.syms.describe(r.rip),
                describe_if(r.rflags)
            )
        }
    }

    /// A CPU that spins on no lock: what kept it, by incident.
    fn not_waiting(
        &self,
        cpu: usize,
        incident: Incident<'_>,
        bt: Option<&CpuBacktrace>,
        held: &[HeldLock],
    ) -> String {
        let who = self.who(cpu);
        let regs = bt.and_then(|b| self.stuck_regs(b));
        let at = regs.map_or_else(String::new, |r| self.at(&r));
        let mine: Vec<&str> = held
            .iter()
            .filter(|h| h.holder == cpu)
            .map(|h| h.lock_name.as_str())
            .collect();
        let holding = if mine.is_empty() {
            String::new()
        } else {
            format!(" It holds {}.", mine.join(", "))
        };
        match incident {
            Incident::Lockup(kind) => {
                let user = regs.is_some_and(|r| r.user_mode());
                let why = match (kind, user) {
                    (LockupKind::HungTask, _) => {
                        "The hung-task detector runs here; see the task it names."
                    }
                    (LockupKind::Hard, _) => {
                        "With interrupts disabled the timer interrupt never runs, so the watchdog's \
                         hrtimer count stands still: that alone is a hard lockup."
                    }
                    (LockupKind::Soft, true) => {
                        "A task in user mode that never blocks, at a real-time priority the \
                         watchdog thread cannot preempt, keeps the watchdog from running: a soft \
                         lockup with no kernel bug."
                    }
                    (LockupKind::Soft, false) => {
                        "A kernel loop that never schedules (with preemption disabled, or in a \
                         task the watchdog thread cannot preempt) keeps the watchdog thread from \
                         running: that alone is a soft lockup."
                    }
                };
                format!(
                    "{who} is not waiting for any lock: it kept the CPU {} without letting {} run.{at}{holding} {why}",
                    if user {
                        "in user mode"
                    } else {
                        "in the kernel"
                    },
                    if kind == LockupKind::Hard {
                        "interrupts"
                    } else {
                        "the watchdog thread"
                    },
                )
            }
            Incident::Fault(r) => format!("{who}: {}.{at}{holding}", r.headline()),
            Incident::Panic(message) => {
                format!(
                    "{who} called panic(\"{message}\") with no lockup reported before it.{at}{holding}"
                )
            }
            Incident::AllWaiting => format!(
                "Every CPU is waiting and nothing can wake any of them; {who} waits on no lock.{at}{holding}"
            ),
            Incident::Undetected => {
                format!("No detector fired. At the snapshot {who} waits on no lock.{at}{holding}")
            }
            Incident::HungTask(task) => self.hung_task(task),
        }
    }

    /// ` It was at native_safe_halt+1 with IF=1: interrupts enabled.` (or the user RIP).
    fn at(&self, r: &Regs) -> String {
        if r.user_mode() {
            format!(" It was in user mode at {:#x} (CS {:04x}).", r.rip, r.cs)
        } else {
            format!(
                " It was at {} with {}.",
                self.syms.describe(r.rip),
                describe_if(r.rflags)
            )
        }
    }
}

/// `interrupts enabled` / `interrupts disabled`.
fn irqs(r: &Regs) -> &'static str {
    if r.irqs_enabled() {
        "interrupts enabled"
    } else {
        "interrupts disabled"
    }
}
