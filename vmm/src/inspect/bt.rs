//! `bt` and `foreach bt`: stacks of CPUs and of tasks.
//!
//! crash's layout (help.c, x86_64.c): a frame is ` #N [sp] function at pc`; `bt -f` dumps, before
//! each frame, the stack words between the previous frame and this one, two to a line:
//!
//! ```text
//!     ffff88003a205e40: ffff88003a205f58 0000000000000000
//! ```
//!
//! (`x86_64_display_full_frame`); `-F` shows the words that are kernel symbols by name. `bt -a`
//! leaves out idle CPUs, as crash's `bt -a -n idle`; `bt -a --idle` shows them too.
use std::fmt::Write as _;

use super::Inspector;
use crate::analysis::Analysis;
use crate::report::{render_bt, render_items};
use crate::state::{BtItem, CpuBacktrace};
use crate::unwind::stack_of;

/// Stack words `bt -f` shows for one frame at most (a frame larger than this is a wild one).
const MAX_FRAME_WORDS: u64 = 512;

/// How to render a backtrace.
#[derive(Clone, Copy, Default)]
struct Style {
    lines: bool,
    full: bool,
    symbolic: bool,
}

impl Inspector {
    fn style(&self, args: &mut Vec<&str>) -> Result<Style, String> {
        let mut style = Style::default();
        args.retain(|a| match *a {
            "-l" => {
                style.lines = true;
                false
            }
            "-f" => {
                style.full = true;
                false
            }
            "-F" => {
                style.full = true;
                style.symbolic = true;
                false
            }
            _ => true,
        });
        if style.lines && self.lines.is_none() {
            return Err(format!(
                "bt: -l: no line tables (the kernel {} is not a file on disk; pass --kernel)",
                self.kernel.display()
            ));
        }
        Ok(style)
    }

    pub(super) fn bt(&self, args: &[&str]) -> Result<String, String> {
        let a = self.analysis();
        let mut args: Vec<&str> = args.to_vec();
        let style = self.style(&mut args)?;
        let with_idle = args.contains(&"--idle");
        args.retain(|a| *a != "--idle");
        // `-n idle`: crash's filter, which `bt -a` applies anyway.
        if let Some(i) = args.windows(2).position(|w| w == ["-n", "idle"]) {
            args.drain(i..i + 2);
        }
        let (cpus, all) = match args.as_slice() {
            [] => (vec![self.core.meta.report_cpu.unwrap_or(0)], false),
            ["-a"] => ((0..self.snap.cpus.len()).collect(), true),
            ["-p"] => (vec![self.core.meta.report_cpu.unwrap_or(0)], false),
            ["-c", c] => (self.cpu_list(c)?, false),
            [c] if !c.starts_with('-') => (vec![self.cpu_arg(c)?], false),
            _ => {
                return Err(
                    "usage: bt [-l] [-f|-F] [-a [--idle] [-n idle] | -c CPU[S] | -p | CPU]".into(),
                );
            }
        };
        let waits = a.lock_waits();
        let mut s = String::new();
        let mut idle = Vec::new();
        for c in cpus {
            let bt = a.backtrace(c);
            if all && !with_idle && a.is_idle(&bt, &waits) {
                idle.push(c);
                continue;
            }
            if !s.is_empty() {
                s.push('\n');
            }
            self.render(&mut s, &a, bt, style);
        }
        if !idle.is_empty() {
            let _ = writeln!(
                s,
                "\n(idle: CPU{} {}; `bt -a --idle` shows them too)",
                if idle.len() > 1 { "s" } else { "" },
                ranges(&idle)
            );
        }
        Ok(s)
    }

    fn render(&self, s: &mut String, a: &Analysis<'_>, mut bt: CpuBacktrace, style: Style) {
        if let (true, Some(lines)) = (style.lines, &self.lines) {
            lines.annotate(&mut bt.items);
        }
        if !style.full {
            render_bt(s, &bt);
            return;
        }
        let header = CpuBacktrace {
            items: Vec::new(),
            ..bt.clone()
        };
        render_bt(s, &header);
        let mut prev: Option<u64> = None;
        for item in &bt.items {
            match item {
                BtItem::Frame { sp, .. } => {
                    if let Some(p) = prev {
                        frame_words(s, a, p.wrapping_add(8), *sp, style.symbolic);
                    }
                    prev = Some(*sp);
                }
                // A saved context starts a new chain of frames on the stack it interrupted.
                _ => prev = None,
            }
            render_items(s, std::slice::from_ref(item));
        }
    }

    /// `foreach [RU|IN|UN|PID|COMM] bt [-l] [-f|-F]`: every task's stack.
    pub(super) fn foreach(&self, args: &[&str]) -> Result<String, String> {
        const USAGE: &str = "usage: foreach [RU|IN|UN|PID|COMM] bt [-l] [-f|-F]";
        let at = args.iter().position(|a| *a == "bt").ok_or(USAGE)?;
        let (filter, rest) = (&args[..at], &args[at + 1..]);
        if filter.len() > 1 {
            return Err(USAGE.into());
        }
        let mut rest: Vec<&str> = rest.to_vec();
        let style = self.style(&mut rest)?;
        if !rest.is_empty() {
            return Err(USAGE.into());
        }
        let a = self.analysis();
        let mut s = String::new();
        for t in a.tasks() {
            let keep = match filter.first() {
                None => true,
                Some(&f @ ("RU" | "IN" | "UN")) => t.state.is_some_and(|st| st.name() == f),
                Some(f) => f
                    .parse::<u32>()
                    .map_or(*f == t.info.comm, |p| p == t.info.pid),
            };
            if !keep {
                continue;
            }
            if !s.is_empty() {
                s.push('\n');
            }
            self.render(&mut s, &a, a.backtrace_of_task(t.info.addr), style);
        }
        if s.is_empty() {
            return Err(format!("foreach: no task matches {}", filter.join(" ")));
        }
        Ok(s)
    }
}

/// The stack words from `from` to `to` (inclusive), two to a line, as crash's `bt -f`.
fn frame_words(s: &mut String, a: &Analysis<'_>, from: u64, to: u64, symbolic: bool) {
    if to < from
        || (to - from) / 8 >= MAX_FRAME_WORDS
        || stack_of(a.syms, from) != stack_of(a.syms, to)
    {
        return;
    }
    let words = (to - from) / 8 + 1;
    for i in 0..words {
        let at = from + i * 8;
        if i % 2 == 0 {
            let _ = write!(s, "{}    {at:x}: ", if i > 0 { "\n" } else { "" });
        }
        match a.mem.u64(at) {
            Ok(v) => {
                let named = symbolic
                    .then(|| a.syms.lookup(v))
                    .flatten()
                    .map(|l| l.to_string());
                match named {
                    Some(n) => {
                        let _ = write!(s, "{n:<16} ");
                    }
                    None => {
                        let _ = write!(s, "{v:016x} ");
                    }
                }
            }
            Err(_) => s.push_str("???????????????? "),
        }
    }
    s.push('\n');
}

/// `0-50,52-55,57`.
pub(super) fn ranges(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    out.join(",")
}
