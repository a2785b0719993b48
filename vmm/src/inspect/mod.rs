//! `lockvmm inspect <vmcore>`: an offline, crash-like inspector of a saved snapshot.
//!
//! Commands (as crash's, `help CMD` for each): `bt`, `foreach bt`, `dis`, `runq`, `irq`,
//! `timer`, `regs`, `sym`, `rd`, `p`, `struct`, `log`, `ps`, `trace`, `help`; any command's output can go
//! through `| grep`, `| head`, `| tail`. One-shot (`lockvmm inspect vmcore bt -a`), from a pipe
//! (one command a line), or at an interactive `crash>` prompt with history.
use std::path::{Path, PathBuf};

mod bt;
mod cpu;
mod disasm;
mod help;
mod memory;
mod pipe;
mod prompt;
mod rd;
mod sched;
mod tasks;
mod trace;
mod types;

pub use help::command_names;

pub use prompt::run;

use crate::analysis::Analysis;
use crate::image::loader::{EMBEDDED_GUEST, EMBEDDED_GUEST_PATH};
use crate::image::{DebugInfo, SourceLines, Symbols};
use crate::output::vmcore::{self, CoreError, LoadedCore};
use crate::state::Snapshot;

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
    lines: Option<SourceLines>,
    /// What the user must know before trusting the answers (a truncated vmcore, a kernel that
    /// is not the one the vmcore was taken with): `lockvmm inspect` prints them first.
    pub warnings: Vec<String>,
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
    Ok((PathBuf::from(EMBEDDED_GUEST_PATH), EMBEDDED_GUEST.to_vec()))
}

pub(crate) fn parse_addr(s: &str) -> Option<u64> {
    let s = s.trim().trim_start_matches('&');
    let hex = s.strip_prefix("0x").unwrap_or(s);
    u64::from_str_radix(hex, 16).ok()
}

impl Inspector {
    pub fn open(vmcore: &Path, kernel: Option<&Path>) -> Result<Self, InspectError> {
        let core = vmcore::read(vmcore)?;
        let (kernel, elf) = find_kernel(vmcore, &core.meta.kernel, kernel)?;
        let syms = Symbols::from_elf(&elf)
            .map_err(|_| InspectError::Symbols(kernel.display().to_string()))?;
        let dwarf = DebugInfo::from_elf(&elf).unwrap_or_default();
        let lines = SourceLines::from_elf(&elf);
        let mut insp = Inspector::with_kernel(core, kernel, syms, dwarf, lines);
        insp.warnings.extend(kernel_mismatch(&insp, &elf));
        Ok(insp)
    }

    /// An inspector over a vmcore already read and a kernel already parsed.
    pub fn with_kernel(
        core: LoadedCore,
        kernel: PathBuf,
        syms: Symbols,
        dwarf: DebugInfo,
        lines: Option<SourceLines>,
    ) -> Self {
        let snap = core.snapshot();
        Inspector {
            warnings: core.warnings.clone(),
            core,
            snap,
            syms,
            dwarf,
            kernel,
            lines,
        }
    }

    pub(crate) fn analysis(&self) -> Analysis<'_> {
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

    /// Runs one command line (a command, then any `| grep`/`| head`/`| tail`); `Err` carries
    /// crash-style error text.
    pub fn exec(&self, line: &str) -> Result<String, String> {
        let (cmd, filters) = pipe::split(line)?;
        let out = self.command(cmd)?;
        pipe::apply(out, &filters)
    }

    fn command(&self, line: &str) -> Result<String, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&cmd, args)) = words.split_first() else {
            return Ok(String::new());
        };
        match cmd {
            "bt" => self.bt(args),
            "foreach" => self.foreach(args),
            "dis" => self.dis(args),
            "runq" => self.runq(args),
            "irq" => self.irq(args),
            "timer" => self.timer(args),
            "regs" => self.regs(args),
            "sym" => self.sym(args),
            "rd" => self.rd(args),
            "p" | "print" => self.print(args),
            "struct" => self.struct_cmd(args),
            "log" | "dmesg" => Ok(self.analysis().dmesg().join("\n") + "\n"),
            "ps" => Ok(self.ps()),
            "trace" => self.trace(args),
            "help" | "h" | "?" => help::help(args),
            other => Err(format!("{other}: command not found (try `help`)")),
        }
    }

    /// CPUs as crash's `-c` takes them: `3`, `1,8,9`, `1-23`, `1,8,9-14`, `all`.
    pub(crate) fn cpu_list(&self, s: &str) -> Result<Vec<usize>, String> {
        let n = self.snap.cpus.len();
        if matches!(s, "all" | "a") {
            return Ok((0..n).collect());
        }
        let mut out = Vec::new();
        for part in s.split(',') {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let (lo, hi) = (self.cpu_arg(lo)?, self.cpu_arg(hi)?);
            if lo > hi {
                return Err(format!("invalid CPU range: {part}"));
            }
            out.extend(lo..=hi);
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    pub(crate) fn cpu_arg(&self, s: &str) -> Result<usize, String> {
        match s.parse::<usize>() {
            Ok(c) if c < self.snap.cpus.len() => Ok(c),
            _ => Err(format!(
                "invalid CPU: {s} (the machine has CPUs 0 to {})",
                self.snap.cpus.len().saturating_sub(1)
            )),
        }
    }
}

/// Why the kernel may not be the one the vmcore was taken with, if it may not.
fn kernel_mismatch(insp: &Inspector, elf: &[u8]) -> Option<String> {
    let k = insp.kernel.display();
    if let Some(recorded) = &insp.core.meta.kernel_digest {
        let actual = crate::image::loader::digest(elf);
        if *recorded != actual {
            return Some(format!(
                "the kernel {k} is not the one this vmcore was taken with ({}; digest {actual}, recorded {recorded}): symbols, types and backtraces may be wrong",
                insp.core.meta.kernel
            ));
        }
        return None;
    }
    // An older vmcore without a digest: at least the kernel must be a lockvmm guest whose
    // symbols cover the captured CPUs' instruction pointers.
    let strays = insp
        .snap
        .cpus
        .iter()
        .filter(|c| c.captured && c.regs.rip >= lockvmm_abi::START_KERNEL_MAP)
        .filter(|c| insp.syms.lookup(c.regs.rip).is_none())
        .count();
    if insp.syms.addr_of("startup_64").is_none() || strays > 0 {
        return Some(format!(
            "the kernel {k} does not match this vmcore (it lacks lockvmm's symbols, or {strays} CPUs' RIPs fall outside them): symbols, types and backtraces may be wrong"
        ));
    }
    None
}
