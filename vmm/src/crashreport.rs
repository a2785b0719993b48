//! The report `lockvmm run` prints when a run ends in a lockup, panic or fault: crash's header,
//! `bt` of the CPU that fired and of every CPU that is not idle (as `bt -a`), the locks CPUs
//! spin on and their holders, registers that point at kernel objects, the kernel log, and a
//! diagnosis. The same facts as JSON (`CrashReport`) go into `result.json`.
use std::fmt::Write as _;

use serde::Serialize;

use crate::analysis::{Analysis, BtItem, CpuBacktrace, LockWait};
use crate::report::{Outcome, Regs, describe_if};

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CrashReport {
    /// The guest kernel ELF.
    pub kernel: String,
    /// The vmcore written for this run.
    pub dumpfile: Option<String>,
    pub cpus: usize,
    /// Virtual time of the snapshot.
    pub uptime_ns: u64,
    /// Why the snapshot was taken.
    pub reason: String,
    /// The panic message, if the kernel panicked.
    pub panic: Option<String>,
    /// The CPU the report is about (the watchdog fired there, or it faulted or panicked).
    pub cpu: usize,
    /// `bt` of that CPU, then every other CPU that is not idle.
    pub backtraces: Vec<CpuBacktrace>,
    pub locks: Vec<LockWait>,
    /// Registers of the stuck context that point at kernel objects: (register, value, name).
    pub pointers: Vec<(String, u64, String)>,
    pub diagnosis: String,
    /// The kernel log from the snapshot on (`dmesg`), from the end of the run.
    pub dmesg_tail: Vec<String>,
    /// How long the freeze took, in total and per CPU (microseconds).
    pub freeze_us: u64,
    pub freeze_us_max_cpu: u64,
    pub memory_copy_us: u64,
}

impl CrashReport {
    /// Builds the report for `cpu` from a snapshot, the run's outcome and the kernel log at
    /// the end of the run.
    pub fn build(
        a: &Analysis<'_>,
        cpu: usize,
        outcome: &Outcome,
        kernel: String,
        dumpfile: Option<String>,
        dmesg: Vec<String>,
    ) -> Self {
        let mut backtraces = vec![a.backtrace(cpu)];
        for c in (0..a.snap.cpus.len()).filter(|&c| c != cpu) {
            let bt = a.backtrace(c);
            if !a.is_idle(c, &bt) {
                backtraces.push(bt);
            }
        }
        let locks = a.lock_waits();
        let stuck: Option<Regs> = backtraces[0].exceptions().last().map(|(_, r)| **r).or(a
            .snap
            .cpus
            .get(cpu)
            .map(|c| c.regs));
        let pointers = stuck.map(|r| a.pointer_registers(&r)).unwrap_or_default();
        let (kind, panic) = match outcome {
            Outcome::Lockup { events } => (
                events
                    .first()
                    .map_or("soft", |e| e.kind.as_str())
                    .to_string(),
                None,
            ),
            Outcome::Panic { message, .. } => (
                if message.contains("Hard") {
                    "hard"
                } else {
                    "soft"
                }
                .to_string(),
                Some(message.clone()),
            ),
            _ => ("hard".to_string(), None),
        };
        let diagnosis = a.diagnose(cpu, &kind, &locks, &backtraces);
        let from = a.snap.vtime_ns / 1_000_000_000;
        let dmesg_tail = dmesg
            .into_iter()
            .filter(|l| {
                l.trim_start_matches('[')
                    .split('.')
                    .next()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .is_some_and(|s| s >= from)
            })
            .collect();
        CrashReport {
            kernel,
            dumpfile,
            cpus: a.snap.cpus.len(),
            uptime_ns: a.snap.vtime_ns,
            reason: a.snap.reason.clone(),
            panic,
            cpu,
            backtraces,
            locks,
            pointers,
            diagnosis,
            dmesg_tail,
            freeze_us: a.snap.freeze_us,
            freeze_us_max_cpu: a.snap.cpus.iter().map(|c| c.freeze_us).max().unwrap_or(0),
            memory_copy_us: a.snap.memory_copy_us,
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let secs = self.uptime_ns / 1_000_000_000;
        let _ = writeln!(s, "      KERNEL: {}", self.kernel);
        if let Some(d) = &self.dumpfile {
            let _ = writeln!(s, "    DUMPFILE: {d}");
        }
        let _ = writeln!(s, "        CPUS: {}", self.cpus);
        let _ = writeln!(
            s,
            "      UPTIME: {:02}:{:02}:{:02} (virtual, {:.6} s)",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            self.uptime_ns as f64 / 1e9
        );
        if let Some(p) = &self.panic {
            let _ = writeln!(s, "       PANIC: \"{p}\"");
        }
        let _ = writeln!(s, "    SNAPSHOT: {}", self.reason);
        if let Some(t) = self.backtraces.first().and_then(|b| b.task.as_ref()) {
            let _ = writeln!(
                s,
                "         PID: {}\n     COMMAND: \"{}\"\n        TASK: {:016x}",
                t.pid, t.comm, t.addr
            );
        }
        let _ = writeln!(s, "         CPU: {}", self.cpu);
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
        if !self.locks.is_empty() {
            let _ = writeln!(s, "\nSpinning CPUs (qspinlock slow path):");
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
        if !self.pointers.is_empty() {
            let _ = writeln!(
                s,
                "\nRegisters of CPU {} that point at kernel objects:",
                self.cpu
            );
            for (r, v, n) in &self.pointers {
                let _ = writeln!(s, "  {r:>3} {v:016x} = {n}");
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

/// The CPU a run's report is about.
pub fn report_cpu(outcome: &Outcome) -> Option<usize> {
    match outcome {
        Outcome::Lockup { events } => events.first().map(|e| e.cpu),
        Outcome::Panic { report, .. } => Some(report.cpu),
        Outcome::Fault(r) => Some(r.cpu),
        Outcome::AllWaiting { waiting } => waiting.first().map(|w| w.cpu),
        _ => None,
    }
}

/// The crash-style report of a finished run, if it left a snapshot.
pub fn for_run(r: &crate::RunResult, dumpfile: Option<String>) -> Option<CrashReport> {
    let snap = r.snapshot.as_ref()?;
    let cpu = report_cpu(&r.outcome)?;
    let dwarf = crate::dwarf::DebugInfo::from_elf(&r.kernel.elf).unwrap_or_default();
    let a = Analysis::new(snap, &r.kernel.symbols, &dwarf);
    let lines = crate::srcline::SourceLines::open(&r.kernel.path);
    let cr3 = a.mem.cr3;
    let dmesg = crate::analysis::dmesg_from(
        |va, len| r.memory.read_virt(cr3, va, len).ok(),
        &r.kernel.symbols,
        &dwarf,
    );
    let mut report = CrashReport::build(
        &a,
        cpu,
        &r.outcome,
        r.kernel.path.display().to_string(),
        dumpfile,
        dmesg,
    );
    if let Some(lines) = &lines {
        for bt in &mut report.backtraces {
            lines.annotate(&mut bt.items);
        }
    }
    Some(report)
}
