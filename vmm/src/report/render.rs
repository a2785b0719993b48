//! The report as text, in crash's layouts: the header, `bt`, the register block.
use crate::state::vtime::Secs;
use std::fmt::Write as _;

use super::CrashReport;
use crate::state::regs::describe_if;
use crate::state::{BtItem, CpuBacktrace, Regs};

impl CrashReport {
    /// The whole report as `lockvmm run` prints it and `report.txt` holds it.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let secs = self.uptime_ns / 1_000_000_000;
        let _ = writeln!(s, "      KERNEL: {}", self.kernel);
        if let Some(d) = &self.dumpfile {
            let _ = writeln!(s, "    DUMPFILE: {d}");
        }
        let h = &self.header;
        let _ = writeln!(s, "        CPUS: {}", self.cpus);
        // The rest of crash's header (`display_sys_stats`), from the vmcore.
        let _ = writeln!(
            s,
            "        DATE: {}  (virtual clock: the guest has no RTC)",
            h.date
        );
        let _ = writeln!(
            s,
            "      UPTIME: {} (virtual, {:.6} s)",
            super::header::uptime(secs),
            self.uptime_ns as f64 / 1e9
        );
        let _ = writeln!(s, "LOAD AVERAGE: n/a (the lab's kernel keeps no avenrun)");
        let _ = writeln!(s, "       TASKS: {}", h.tasks);
        for (k, v) in [
            ("    NODENAME", &h.nodename),
            ("     RELEASE", &h.release),
            ("     VERSION", &h.version),
        ] {
            if !v.is_empty() {
                let _ = writeln!(s, "{k}: {v}");
            }
        }
        if !h.machine.is_empty() {
            let _ = writeln!(
                s,
                "     MACHINE: {}  ({} Mhz)",
                h.machine,
                lockvmm_abi::CPU_KHZ / 1000
            );
        }
        let _ = writeln!(
            s,
            "      MEMORY: {}",
            super::header::memory_text(h.memory_bytes)
        );
        if let Some(p) = h.panic.as_ref().or(self.panic.as_ref()) {
            let _ = writeln!(s, "       PANIC: \"{p}\"");
        }
        if let Some(t) = self.backtraces.first().and_then(|b| b.task.as_ref()) {
            let of = h
                .task_index
                .map_or(String::new(), |i| format!("  ({i} of {})", h.tasks));
            let _ = writeln!(
                s,
                "         PID: {}\n     COMMAND: \"{}\"\n        TASK: {:016x}{of}",
                t.pid, t.comm, t.addr
            );
        }
        let _ = writeln!(s, "         CPU: {}", self.cpu);
        if !h.state.is_empty() {
            let _ = writeln!(s, "       STATE: {}", h.state);
        }
        let _ = writeln!(s, "    SNAPSHOT: {}", self.reason);
        let _ = writeln!(
            s,
            "      FREEZE: {} us for all {} vCPUs (slowest vCPU {} us), then {} us to copy guest memory",
            self.freeze_us, self.cpus, self.freeze_us_max_cpu, self.memory_copy_us
        );
        if !self.dmesg_tail.is_empty() {
            let _ = writeln!(s, "\ncrash> log | tail");
            for l in &self.dmesg_tail {
                let _ = writeln!(s, "{l}");
            }
        }
        for (i, bt) in self.backtraces.iter().enumerate() {
            let _ = writeln!(
                s,
                "\ncrash> bt{}",
                if i == 0 {
                    String::new()
                } else {
                    format!(" -c {}", bt.cpu)
                }
            );
            render_bt(&mut s, bt);
        }
        for bt in &self.hung_tasks {
            let _ = writeln!(s, "\ncrash> bt {}", bt.task.as_ref().map_or(0, |t| t.pid));
            render_bt(&mut s, bt);
        }
        if !self.locks.is_empty() {
            let _ = writeln!(
                s,
                "\nSpinning CPUs ({}):",
                if self.ticket_spinlocks {
                    "ticket spinlocks"
                } else {
                    "qspinlock slow path"
                }
            );
            for w in &self.locks {
                let holder = match w.holder {
                    Some(h) if h == w.cpu => format!("held by CPU {h} itself"),
                    Some(h) => format!("held by CPU {h}"),
                    None => "free".into(),
                };
                let _ = writeln!(
                    s,
                    "  CPU {:>3} ({:>7}) spins on &{} [{:016x}], {}",
                    w.cpu, w.context, w.lock_name, w.lock, holder
                );
            }
        }
        if !self.held.is_empty() {
            let _ = writeln!(
                s,
                "\nHeld locks ({}):",
                if self.ticket_spinlocks {
                    "the kernel's table of held ticket locks names the owner"
                } else {
                    "the lock word names its owner"
                }
            );
            for h in &self.held {
                let _ = writeln!(
                    s,
                    "  CPU {:>3} holds &{} [{:016x}]",
                    h.holder, h.lock_name, h.lock
                );
            }
        }
        if self.detections.len() > 1 {
            let _ = writeln!(
                s,
                "\nLockups detected ({}; the snapshot is of the first):",
                self.detections.len()
            );
            for d in &self.detections {
                let _ = writeln!(
                    s,
                    "  [{:>12}] CPU {:>3} {} lockup: {}",
                    Secs(d.vtime_ns),
                    d.cpu,
                    d.kind,
                    d.message
                );
            }
        }
        if !self.pointers.is_empty() {
            let _ = writeln!(
                s,
                "\nRegisters of CPU {}'s stuck context that point at kernel objects:",
                self.cpu
            );
            for (r, v, n) in &self.pointers {
                let _ = writeln!(s, "  {r:>3} {v:016x} = {n}");
            }
        }
        if !self.splats.is_empty() {
            let _ = writeln!(
                s,
                "\nLockdep and might_sleep reports ({}):",
                self.splats.len()
            );
            for l in crate::report::splat_lines(&self.splats) {
                let _ = writeln!(s, "  {l}");
            }
        }
        let _ = writeln!(s, "\nDiagnosis:\n{}", wrap(&self.diagnosis, 100, "  "));
        s
    }
}

/// The register block of a saved or captured context, in crash's layout.
pub fn render_regs(s: &mut String, r: &Regs) {
    let _ = writeln!(
        s,
        "    RIP: {:016x}  RSP: {:016x}  RFLAGS: {:08x} ({})",
        r.rip,
        r.rsp,
        r.rflags,
        describe_if(r.rflags)
    );
    let rows = [
        [("RAX", r.rax), ("RBX", r.rbx), ("RCX", r.rcx)],
        [("RDX", r.rdx), ("RSI", r.rsi), ("RDI", r.rdi)],
        [("RBP", r.rbp), (" R8", r.r8), (" R9", r.r9)],
        [("R10", r.r10), ("R11", r.r11), ("R12", r.r12)],
        [("R13", r.r13), ("R14", r.r14), ("R15", r.r15)],
    ];
    for row in rows {
        let cells: Vec<String> = row.iter().map(|(n, v)| format!("{n}: {v:016x}")).collect();
        let _ = writeln!(s, "    {}", cells.join("  "));
    }
    let _ = writeln!(s, "    CS: {:04x}  SS: {:04x}", r.cs, r.ss);
}

/// One CPU's `bt`, in crash's layout.
pub fn render_bt(s: &mut String, bt: &CpuBacktrace) {
    match &bt.task {
        Some(t) => {
            let _ = writeln!(
                s,
                "PID: {:<8} TASK: {:016x}  CPU: {:<3} COMMAND: \"{}\"",
                t.pid, t.addr, bt.cpu, t.comm
            );
        }
        None => {
            let _ = writeln!(s, "CPU: {}", bt.cpu);
        }
    }
    render_items(s, &bt.items);
}

/// The lines of a backtrace: frames, saved contexts, stack ends, notes.
pub fn render_items(s: &mut String, items: &[BtItem]) {
    for item in items {
        match item {
            BtItem::Frame {
                n,
                sp,
                pc,
                function,
                source,
                ..
            } => {
                let _ = writeln!(
                    s,
                    "{:>3} [{sp:016x}] {function} at {pc:016x}",
                    format!("#{n}")
                );
                if let Some(src) = source {
                    let _ = writeln!(s, "    {src}");
                }
            }
            BtItem::Exception {
                entry,
                regs,
                rip_symbol,
            } => {
                let _ = writeln!(s, "    [exception RIP: {rip_symbol}]  (saved by {entry})");
                render_regs(s, regs);
            }
            BtItem::StackEnd { stack } => {
                let _ = writeln!(s, "--- <{stack}> ---");
            }
            BtItem::Note { text } => {
                let _ = writeln!(s, "    (backtrace ends: {text})");
            }
        }
    }
}

fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::from(indent);
    for word in text.split_whitespace() {
        if line.len() + word.len() + 1 > width && line.len() > indent.len() {
            out.push_str(line.trim_end());
            out.push('\n');
            line = String::from(indent);
        }
        line.push_str(word);
        line.push(' ');
    }
    out.push_str(line.trim_end());
    out
}
