//! `runq` and `timer`: each CPU's runqueue, timer wheel and hrtimers.
//!
//! crash's `runq` (task.c, dump_CFS_runqueues) prints per CPU:
//!
//! ```text
//! CPU 0 RUNQUEUE: ffff88003fc16cc0
//!   CURRENT: PID: 0      TASK: ffffffff81a8d020  COMMAND: "swapper"
//!   RT PRIO_ARRAY: ffff88003fc16e50
//!      [no tasks queued]
//!   CFS RB_ROOT: ffff88003fc16d68
//!      [120] PID: 1234   TASK: ffff880037a5c040  COMMAND: "bash"
//! ```
//!
//! The guest's `struct rq` keeps FIFOs (`rt_head`, `cfs_head`) instead of a priority array and
//! an rbtree, so those two lines name the list heads, and one more line gives the `struct rq`
//! counters. crash's `timer` (kernel.c, dump_timer_data_timer_bases) prints `JIFFIES`, then per
//! CPU `TIMER_BASES[cpu][BASE_STD]: addr` and `EXPIRES TTE TIMER_LIST FUNCTION` rows; `timer -r`
//! prints `CPU: n  HRTIMER_CPU_BASE: addr`, `CURRENT` and `EXPIRES TTE HRTIMER FUNCTION` rows.
use std::fmt::Write as _;

use super::Inspector;
use crate::analysis::{Analysis, Queue, TaskEntry, Timer};
use crate::state::TaskInfo;

fn task_line(t: &TaskInfo) -> String {
    format!(
        "PID: {:<5}  TASK: {:x}  COMMAND: \"{}\"",
        t.pid, t.addr, t.comm
    )
}

fn queued(s: &mut String, label: &str, q: &Queue) {
    let _ = writeln!(s, "  {label}: {:x}", q.head);
    if q.tasks.is_empty() {
        let _ = writeln!(s, "     [no tasks queued]");
    }
    for t in &q.tasks {
        let _ = writeln!(s, "     [{:3}] {}", TaskEntry::prio(t), task_line(&t.info));
    }
    if let Some(n) = &q.note {
        let _ = writeln!(s, "     ({n})");
    }
}

impl Inspector {
    /// The CPUs of `-c LIST`, else all.
    fn cpus_option(&self, args: &[&str], usage: &str) -> Result<Vec<usize>, String> {
        match args {
            [] => Ok((0..self.snap.cpus.len()).collect()),
            ["-c" | "-C", c] => self.cpu_list(c),
            _ => Err(usage.into()),
        }
    }

    pub(super) fn runq(&self, args: &[&str]) -> Result<String, String> {
        let cpus = self.cpus_option(args, "usage: runq [-c CPU[S]]")?;
        let a = self.analysis();
        let mut s = String::new();
        for c in cpus {
            if !s.is_empty() {
                s.push('\n');
            }
            let Some(rq) = a.runqueue(c) else {
                let _ = writeln!(s, "CPU {c} RUNQUEUE: (not in the DWARF or memory)");
                continue;
            };
            let _ = writeln!(s, "CPU {c} RUNQUEUE: {:x}", rq.addr);
            match &rq.curr_task {
                Some(t) => {
                    let _ = writeln!(s, "  CURRENT: {}", task_line(t));
                }
                None => {
                    let _ = writeln!(s, "  CURRENT: {:x}", rq.curr);
                }
            }
            let _ = writeln!(
                s,
                "  NR_RUNNING: {}  NR_SWITCHES: {}  CLOCK: {}",
                rq.nr_running, rq.nr_switches, rq.clock
            );
            queued(&mut s, "RT QUEUE", &rq.rt);
            queued(&mut s, "CFS QUEUE", &rq.cfs);
        }
        Ok(s)
    }

    pub(super) fn timer(&self, args: &[&str]) -> Result<String, String> {
        const USAGE: &str = "usage: timer [-r] [-c CPU[S]]";
        let (hr, rest) = match args.split_first() {
            Some((&"-r", rest)) => (true, rest),
            _ => (false, args),
        };
        let cpus = self.cpus_option(rest, USAGE)?;
        let a = self.analysis();
        if hr {
            return Ok(hrtimers(&a, &cpus));
        }
        let jiffies = a.jiffies();
        let flen = jiffies.to_string().len().max("EXPIRES".len());
        let mut s = format!("{:<flen$}\n{jiffies:>flen$}\n", "JIFFIES");
        for c in cpus {
            let Some(base) = a.timer_base(c) else {
                continue;
            };
            let _ = writeln!(s, "\nTIMER_BASES[{c}][BASE_STD]: {:x}", base.addr);
            let lock_at = a
                .dwarf
                .member_offset("timer_base", "lock")
                .map(|o| base.addr.wrapping_add(o));
            if let Some(owner) = lock_at.and_then(|l| a.spin_owner(l)) {
                let _ = writeln!(s, "  (base->lock is held by CPU {owner})");
            }
            if base.running_timer != 0 {
                let _ = writeln!(s, "  (running_timer: {:x})", base.running_timer);
            }
            let tte = |t: &Timer| t.expires as i128 - jiffies as i128;
            let tlen = base
                .timers
                .iter()
                .map(|t| tte(t).to_string().len() + 1)
                .max()
                .unwrap_or(0)
                .max("TTE".len());
            let _ = writeln!(
                s,
                "  {:<flen$}  {:<tlen$}  TIMER_LIST        FUNCTION",
                "EXPIRES", "TTE"
            );
            for t in &base.timers {
                let _ = writeln!(
                    s,
                    "  {:>flen$}  {:>tlen$}  {:016x}  {:016x}  <{}>",
                    t.expires,
                    tte(t),
                    t.addr,
                    t.function,
                    a.syms.describe(t.function)
                );
            }
            if base.timers.is_empty() && base.note.is_none() {
                s.push_str("  (none)\n");
            }
            if let Some(n) = &base.note {
                let _ = writeln!(s, "  (stopped: {n})");
            }
        }
        Ok(s)
    }
}

fn hrtimers(a: &Analysis<'_>, cpus: &[usize]) -> String {
    let now = a.snap.vtime_ns;
    let mut s = String::new();
    for &c in cpus {
        let Some(base) = a.hrtimer_base(c) else {
            continue;
        };
        if !s.is_empty() {
            s.push('\n');
        }
        let width = base
            .timers
            .iter()
            .map(|t| t.expires.to_string().len())
            .chain([now.to_string().len(), "EXPIRES".len()])
            .max()
            .unwrap_or(7);
        let _ = writeln!(s, "CPU: {c}  HRTIMER_CPU_BASE: {:x}", base.addr);
        let _ = writeln!(s, "  {:>width$}\n  {now:>width$}", "CURRENT");
        let _ = writeln!(
            s,
            "  {:>width$}  {:>width$}  HRTIMER           FUNCTION",
            "EXPIRES", "TTE"
        );
        for t in &base.timers {
            let _ = writeln!(
                s,
                "  {:>width$}  {:>width$}  {:016x}  {:016x}  <{}>",
                t.expires,
                t.expires as i128 - now as i128,
                t.addr,
                t.function,
                a.syms.describe(t.function)
            );
        }
        if base.timers.is_empty() && base.note.is_none() {
            s.push_str("  (none)\n");
        }
        if let Some(n) = &base.note {
            let _ = writeln!(s, "  (stopped: {n})");
        }
    }
    s
}
