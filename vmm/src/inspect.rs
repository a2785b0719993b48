//! `lockvmm inspect <vmcore>`: an offline, crash-like inspector of a saved snapshot.
//!
//! Commands (as crash's): `bt [-l] [-a | CPU | -c CPU]`, `regs CPU`, `sym ADDR|NAME`,
//! `rd ADDR [COUNT]`, `p SYMBOL[index]`, `struct NAME [-o] [ADDR]`, `log`, `ps`, `help`.
//! One-shot (`lockvmm inspect vmcore bt -a`), from a pipe (one command a line), or at an
//! interactive `crash>` prompt with history.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::analysis::Analysis;
use crate::crashreport::render_bt;
use crate::dwarf::DebugInfo;
use crate::snapshot::Snapshot;
use crate::symbols::Symbols;
use crate::vmcore::{CoreError, LoadedCore};

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("cannot read the guest kernel {path}: {source}")]
    Kernel {
        path: String,
        source: std::io::Error,
    },
    #[error("the guest kernel {0} has no usable symbol table")]
    Symbols(String),
}

pub struct Inspector {
    pub core: LoadedCore,
    pub snap: Snapshot,
    pub syms: Symbols,
    pub dwarf: DebugInfo,
    pub kernel: PathBuf,
    /// Line tables for `bt -l`, when the kernel is a file on disk.
    lines: Option<crate::srcline::SourceLines>,
}

/// The guest kernel for a vmcore: `--kernel`, else `vmlinux` beside the vmcore, else the
/// path recorded in it, else the kernel built into this lockvmm.
fn find_kernel(
    vmcore: &Path,
    recorded: &str,
    explicit: Option<&Path>,
) -> Result<(PathBuf, Vec<u8>), InspectError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| InspectError::Kernel {
            path: p.display().to_string(),
            source,
        })
    };
    if let Some(p) = explicit {
        return Ok((p.to_path_buf(), read(p)?));
    }
    let beside = vmcore.with_file_name("vmlinux");
    for p in [beside.as_path(), Path::new(recorded)] {
        if p.is_file() {
            return Ok((p.to_path_buf(), read(p)?));
        }
    }
    Ok((
        PathBuf::from(crate::loader::EMBEDDED_GUEST_PATH),
        crate::loader::EMBEDDED_GUEST.to_vec(),
    ))
}

fn parse_addr(s: &str) -> Option<u64> {
    let s = s.trim().trim_start_matches('&');
    let hex = s.strip_prefix("0x").unwrap_or(s);
    u64::from_str_radix(hex, 16).ok()
}

impl Inspector {
    pub fn open(vmcore: &Path, kernel: Option<&Path>) -> Result<Self, InspectError> {
        let core = crate::vmcore::read(vmcore)?;
        let (kernel, elf) = find_kernel(vmcore, &core.meta.kernel, kernel)?;
        let syms = Symbols::from_elf(&elf)
            .map_err(|_| InspectError::Symbols(kernel.display().to_string()))?;
        let dwarf = DebugInfo::from_elf(&elf).unwrap_or_default();
        let snap = core.snapshot();
        let lines = crate::srcline::SourceLines::open(&kernel);
        Ok(Inspector {
            core,
            snap,
            syms,
            dwarf,
            kernel,
            lines,
        })
    }

    fn analysis(&self) -> Analysis<'_> {
        Analysis::new(&self.snap, &self.syms, &self.dwarf)
    }

    /// The header crash prints on start.
    pub fn banner(&self) -> String {
        let cpus = self.snap.cpus.len();
        let secs = self.snap.vtime_ns / 1_000_000_000;
        format!(
            "      KERNEL: {}\n        CPUS: {cpus}\n      UPTIME: {:02}:{:02}:{:02} (virtual)\n    SNAPSHOT: {}\n",
            self.kernel.display(),
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            self.snap.reason
        )
    }

    /// Runs one command; `Err` carries crash-style error text.
    pub fn exec(&self, line: &str) -> Result<String, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&cmd, args)) = words.split_first() else {
            return Ok(String::new());
        };
        match cmd {
            "bt" => self.bt(args),
            "regs" => self.regs(args),
            "sym" => self.sym(args),
            "rd" => self.rd(args),
            "p" | "print" => self.print(args),
            "struct" => self.struct_cmd(args),
            "log" | "dmesg" => Ok(self.analysis().dmesg().join("\n") + "\n"),
            "ps" => Ok(self.ps()),
            "help" | "h" | "?" => Ok(HELP.to_string()),
            other => Err(format!("{other}: command not found (try `help`)")),
        }
    }

    fn cpu_arg(&self, s: &str) -> Result<usize, String> {
        match s.parse::<usize>() {
            Ok(c) if c < self.snap.cpus.len() => Ok(c),
            _ => Err(format!(
                "invalid CPU: {s} (the machine has CPUs 0 to {})",
                self.snap.cpus.len() - 1
            )),
        }
    }

    fn bt(&self, args: &[&str]) -> Result<String, String> {
        let a = self.analysis();
        // `-l` (source lines) goes with any of the other forms, as in crash.
        let with_lines = args.contains(&"-l");
        let args: Vec<&str> = args.iter().copied().filter(|a| *a != "-l").collect();
        let cpus: Vec<usize> = match args.as_slice() {
            [] => vec![self.core.meta.report_cpu.unwrap_or(0)],
            ["-a"] => (0..self.snap.cpus.len()).collect(),
            ["-c", c] | [c] => vec![self.cpu_arg(c)?],
            _ => return Err("usage: bt [-l] [-a | CPU | -c CPU]".into()),
        };
        let lines = match (with_lines, &self.lines) {
            (false, _) => None,
            (true, Some(lines)) => Some(lines),
            (true, None) => {
                return Err(format!(
                    "bt: -l: no line tables (the kernel {} is not a file on disk; pass --kernel)",
                    self.kernel.display()
                ));
            }
        };
        let mut s = String::new();
        for (i, c) in cpus.iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            let mut bt = a.backtrace(*c);
            if let Some(lines) = lines {
                lines.annotate(&mut bt.items);
            }
            render_bt(&mut s, &bt);
        }
        Ok(s)
    }

    fn regs(&self, args: &[&str]) -> Result<String, String> {
        let [c] = args else {
            return Err("usage: regs CPU".into());
        };
        let st = &self.snap.cpus[self.cpu_arg(c)?];
        if !st.captured {
            return Err(format!("CPU {c}: state not captured"));
        }
        let (r, sr) = (&st.regs, &st.sregs);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "CPU {}  ({})  MP state {}  freeze {} us",
            st.cpu, st.sched, st.mp_state, st.freeze_us
        );
        let _ = writeln!(s, "    RIP is in {}", self.syms.describe(r.rip));
        crate::crashreport::render_regs(&mut s, r);
        let _ = writeln!(
            s,
            "    CS: {:04x}  SS: {:04x}  DS: {:04x}  ES: {:04x}  FS: {:04x}  GS: {:04x}  TR: {:04x}",
            sr.cs, sr.ss, sr.ds, sr.es, sr.fs, sr.gs, sr.tr
        );
        let _ = writeln!(
            s,
            "    CR0: {:016x}  CR2: {:016x}  CR3: {:016x}  CR4: {:016x}",
            sr.cr0, sr.cr2, sr.cr3, sr.cr4
        );
        let _ = writeln!(
            s,
            "    EFER: {:016x}  APIC_BASE: {:016x}  GS_BASE: {:016x} ({})",
            sr.efer,
            sr.apic_base,
            sr.gs_base,
            self.syms.describe(sr.gs_base)
        );
        let _ = writeln!(
            s,
            "    GDT: {:016x}/{:x}  IDT: {:016x}/{:x}",
            sr.gdt_base, sr.gdt_limit, sr.idt_base, sr.idt_limit
        );
        let d = &st.debugregs;
        let _ = writeln!(
            s,
            "    DR0-3: {:x} {:x} {:x} {:x}  DR6: {:x}  DR7: {:x}",
            d[0], d[1], d[2], d[3], d[4], d[5]
        );
        let e = &st.events;
        let _ = writeln!(
            s,
            "    events: NMI pending={} injected={} masked={}  IRQ injected={} vector={:#x}  exception injected={} vector={}  shadow={}",
            e.nmi_pending,
            e.nmi_injected,
            e.nmi_masked,
            e.irq_injected,
            e.irq_vector,
            e.exception_injected,
            e.exception_vector,
            e.interrupt_shadow
        );
        let l = &st.lapic;
        let _ = writeln!(
            s,
            "    LAPIC: ID {} TPR {:#x} PPR {:#x} SPIV {:#x} IRR {:x?} ISR {:x?}",
            l.id, l.tpr, l.ppr, l.spiv, l.irr, l.isr
        );
        let _ = writeln!(
            s,
            "    LVT: timer {:#x}  PMC {:#x}  LINT0 {:#x}  LINT1 {:#x}  error {:#x}",
            l.lvt_timer, l.lvt_pmc, l.lvt_lint0, l.lvt_lint1, l.lvt_error
        );
        Ok(s)
    }

    fn sym(&self, args: &[&str]) -> Result<String, String> {
        let [what] = args else {
            return Err("usage: sym ADDR | sym NAME".into());
        };
        if let Some(s) = self.syms.get(what) {
            return Ok(format!(
                "{:016x} ({}) {}\n",
                s.addr,
                if s.is_text { 'T' } else { 'D' },
                s.name
            ));
        }
        let addr =
            parse_addr(what).ok_or_else(|| format!("sym: invalid address or symbol: {what}"))?;
        let a = self.analysis();
        match self.syms.lookup(addr) {
            Some(l) => {
                let kind = if self.syms.get(&l.name).is_some_and(|s| s.is_text) {
                    'T'
                } else {
                    'D'
                };
                let c = self
                    .dwarf
                    .describe(&self.syms, addr)
                    .filter(|d| *d != l.to_string());
                let extra = c.map_or_else(String::new, |d| format!(" = &{d}"));
                Ok(format!("{addr:016x} ({kind}) {l}{extra}\n"))
            }
            None => match a.stack_of(addr) {
                Some(stack) => Ok(format!("{addr:016x} is on the {stack}\n")),
                None => Err(format!("sym: {addr:016x}: no symbol")),
            },
        }
    }

    fn rd(&self, args: &[&str]) -> Result<String, String> {
        let (addr, count) = match args {
            [a] => (*a, 1),
            [a, n] => (
                *a,
                n.parse::<u64>()
                    .map_err(|_| format!("rd: invalid count: {n}"))?,
            ),
            _ => return Err("usage: rd ADDR [COUNT]".into()),
        };
        let start = parse_addr(addr)
            .or_else(|| self.syms.addr_of(addr))
            .ok_or_else(|| format!("rd: invalid address or symbol: {addr}"))?;
        let a = self.analysis();
        let mut s = String::new();
        for i in 0..count.min(4096) {
            let at = start.wrapping_add(i * 8);
            let v = a.mem.u64(at).map_err(|_| {
                format!("rd: invalid kernel virtual address: {at:x}  type: \"64-bit KVADDR\"")
            })?;
            if i % 2 == 0 {
                if i > 0 {
                    s.push('\n');
                }
                let _ = write!(s, "{at:016x}:  {v:016x}");
            } else {
                let _ = write!(s, " {v:016x}");
            }
        }
        s.push('\n');
        Ok(s)
    }

    /// Reads an integer of `size` bytes at `at`.
    fn value(&self, a: &Analysis<'_>, at: u64, size: u64) -> Option<u64> {
        let b = a.mem.read(at, size.min(8) as usize).ok()?;
        let mut v = [0u8; 8];
        v[..b.len()].copy_from_slice(&b);
        Some(u64::from_le_bytes(v))
    }

    /// A struct's members and their values at `at`.
    fn struct_values(&self, a: &Analysis<'_>, name: &str, at: u64) -> Option<String> {
        let (fields, _) = self.dwarf.struct_layout(name)?;
        let mut s = format!("struct {name} {{\n");
        for f in fields {
            let v = match f.size {
                1 | 2 | 4 | 8 => self
                    .value(a, at + f.offset, f.size)
                    .map_or_else(|| "?".into(), |v| format!("{v:#x}")),
                _ => format!("{{...}} ({} bytes)", f.size),
            };
            let _ = writeln!(s, "  {} {} = {v},", f.type_name, f.name);
        }
        s.push_str("}\n");
        Some(s)
    }

    fn print(&self, args: &[&str]) -> Result<String, String> {
        let [expr] = args else {
            return Err("usage: p SYMBOL | p SYMBOL[INDEX]".into());
        };
        let (name, index) = match expr.split_once('[') {
            Some((n, rest)) => {
                let i = rest
                    .trim_end_matches(']')
                    .parse::<u64>()
                    .map_err(|_| format!("p: invalid index in {expr}"))?;
                (n, Some(i))
            }
            None => (*expr, None),
        };
        let base = self
            .syms
            .addr_of(name)
            .ok_or_else(|| format!("p: no symbol: {name}"))?;
        let a = self.analysis();
        let array = self.dwarf.array_of(name);
        match (index, array) {
            (None, Some((esz, count))) => {
                // As crash prints a per-CPU variable: the address of each CPU's element.
                let shown = count.min(self.snap.cpus.len() as u64);
                let mut s = format!(
                    "{name} = {{ {} {} elements, {} bytes each }}\n",
                    self.dwarf.var_type_name(name).unwrap_or_default(),
                    count,
                    esz
                );
                for i in 0..shown {
                    let _ = writeln!(s, "  [{i}]: {:016x}", base + i * esz);
                }
                Ok(s)
            }
            (Some(i), Some((esz, count))) => {
                if i >= count {
                    return Err(format!("p: index {i} out of range (0..{count})"));
                }
                let at = base + i * esz;
                let (ty, _) = self.dwarf.var_elem(name).unwrap_or_default();
                let body = self
                    .struct_values(&a, &ty, at)
                    .or_else(|| self.value(&a, at, esz).map(|v| format!("{v:#x}\n")))
                    .unwrap_or_else(|| "?\n".into());
                Ok(format!("{name}[{i}] @ {at:016x} ({ty}) = {body}"))
            }
            (None, None) => {
                let (ty, size) = self.dwarf.var_elem(name).unwrap_or_default();
                let body = self
                    .struct_values(&a, &ty, base)
                    .or_else(|| {
                        self.value(&a, base, size.max(1))
                            .map(|v| format!("{v:#x}\n"))
                    })
                    .unwrap_or_else(|| "?\n".into());
                Ok(format!("{name} @ {base:016x} ({ty}) = {body}"))
            }
            (Some(_), None) => Err(format!("p: {name} is not an array")),
        }
    }

    fn struct_cmd(&self, args: &[&str]) -> Result<String, String> {
        let name = args.first().ok_or("usage: struct NAME [-o] [ADDR]")?;
        let offsets = args.contains(&"-o");
        let addr = args
            .iter()
            .skip(1)
            .find(|a| **a != "-o")
            .map(|a| parse_addr(a).ok_or_else(|| format!("struct: invalid address: {a}")))
            .transpose()?;
        let (fields, size) = self
            .dwarf
            .struct_layout(name)
            .ok_or_else(|| format!("struct: invalid data structure reference: {name}"))?;
        if let Some(at) = addr {
            let a = self.analysis();
            a.mem.read(at, size.max(1) as usize).map_err(|_| {
                format!(
                    "struct: invalid kernel virtual address: {at:x}  type: \"gdb_readmem_callback\""
                )
            })?;
            return self
                .struct_values(&a, name, at)
                .ok_or_else(|| format!("struct: cannot read {name}"));
        }
        let mut s = format!("struct {name} {{\n");
        for f in fields {
            if offsets {
                let _ = writeln!(s, "  [{}] {} {};", f.offset, f.type_name, f.name);
            } else {
                let _ = writeln!(s, "    {} {};", f.type_name, f.name);
            }
        }
        let _ = writeln!(s, "}}\nSIZE: {size}");
        Ok(s)
    }

    /// Every task of the pool (crash's `ps`).
    fn ps(&self) -> String {
        let a = self.analysis();
        let mut s = String::from("   PID    CPU  TASK              ST  COMM\n");
        let (Some(base), Some((size, count))) = (
            self.syms.addr_of("task_pool"),
            self.dwarf.array_of("task_pool"),
        ) else {
            return s;
        };
        let state_off = self
            .dwarf
            .member_offset("task_struct", "state")
            .unwrap_or(8);
        let cpu_off = self.dwarf.member_offset("task_struct", "cpu");
        let running: Vec<u64> = (0..self.snap.cpus.len())
            .filter_map(|c| a.task_on(c).map(|t| t.addr))
            .collect();
        for i in 0..count {
            let at = base + i * size;
            let Some(t) = a.task_at(at) else { continue };
            let state = a.mem.u32(at + state_off).unwrap_or(64);
            if state == 64 || (t.pid == 0 && i as usize >= self.snap.cpus.len()) {
                continue;
            }
            let cpu = cpu_off.and_then(|o| a.mem.u32(at + o).ok()).unwrap_or(0);
            let st = if running.contains(&at) {
                "RU"
            } else if state == 0 {
                "RQ"
            } else if state == 1 {
                "IN"
            } else {
                "UN"
            };
            let mark = if running.contains(&at) { '>' } else { ' ' };
            let _ = writeln!(
                s,
                "{mark}{:>6} {:>5}  {at:016x}  {st}  {}",
                t.pid, cpu, t.comm
            );
        }
        s
    }
}

const HELP: &str = "\
bt [-l] [-a | CPU | -c CPU]
                         backtrace of the report's CPU, of every CPU, or of one;
                         -l adds each frame's source line
regs CPU                 every register KVM had for the CPU, with events and LAPIC state
sym ADDR | sym NAME      the symbol (and C expression) an address is in, or a symbol's address
rd ADDR [COUNT]          read 64-bit words of kernel memory
p SYMBOL[INDEX]          a global (per-CPU arrays: one element, or every CPU's address)
struct NAME [-o] [ADDR]  a struct's layout (with offsets), or its members' values at ADDR
log                      the kernel log buffer (dmesg)
ps                       tasks
help                     this text
quit                     leave (interactive)
";

/// Runs the inspector: one command, commands from a pipe, or an interactive prompt.
pub fn run(insp: &Inspector, command: &[String]) -> i32 {
    use std::io::IsTerminal;
    if !command.is_empty() {
        return match insp.exec(&command.join(" ")) {
            Ok(out) => {
                print!("{out}");
                0
            }
            Err(e) => {
                eprintln!("{e}");
                1
            }
        };
    }
    if !std::io::stdin().is_terminal() {
        let mut status = 0;
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if matches!(line.trim(), "q" | "quit" | "exit") {
                break;
            }
            match insp.exec(&line) {
                Ok(out) => print!("{out}"),
                Err(e) => {
                    eprintln!("{e}");
                    status = 1;
                }
            }
        }
        return status;
    }
    print!("{}", insp.banner());
    let Ok(mut rl) = rustyline::DefaultEditor::new() else {
        return 3;
    };
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".lockvmm_history"));
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    while let Ok(line) = rl.readline("crash> ") {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = rl.add_history_entry(line);
        if matches!(line, "q" | "quit" | "exit") {
            break;
        }
        match insp.exec(line) {
            Ok(out) => print!("{out}"),
            Err(e) => println!("{e}"),
        }
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    0
}
