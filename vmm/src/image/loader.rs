//! Loading the guest kernel ELF into guest memory (linux-loader) and what the host needs to
//! know about it.
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use linux_loader::loader::{KernelLoader, elf::Elf};

use super::{DebugInfo, Symbols};
use crate::memory::GuestMemory;

/// The guest kernel built with this `lockvmm` (by `vmm/build.rs`).
pub static EMBEDDED_GUEST: &[u8] = include_bytes!(env!("LOCKVMM_GUEST_ELF"));
/// Where the build left it.
pub const EMBEDDED_GUEST_PATH: &str = env!("LOCKVMM_GUEST_ELF");

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the guest kernel {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the guest kernel is not a loadable ELF: {0}")]
    Elf(String),
    #[error("the guest kernel {path} {why}")]
    Unsupported { path: PathBuf, why: String },
    #[error("the guest kernel has no symbol `{0}`")]
    MissingSymbol(&'static str),
    #[error(
        "the guest kernel ends at {end:#x}, beyond guest RAM ({mem} bytes): raise machine.memory_mib"
    )]
    TooBig { end: u64, mem: u64 },
}

/// A guest kernel image and its symbols.
#[derive(Clone)]
pub struct KernelImage {
    pub elf: Arc<Vec<u8>>,
    /// Where the image came from (shown in reports as crash's `KERNEL:`).
    pub path: PathBuf,
    pub symbols: Arc<Symbols>,
    /// `startup_64` (boot CPU) and `secondary_startup_64` (the others).
    pub entry_bsp: u64,
    pub entry_ap: u64,
    /// The DWARF types and variables, parsed on first use and then shared by every clone, so
    /// a run parses them once whoever asks (report, vmcore, expectations).
    debug: Arc<OnceLock<DebugInfo>>,
}

impl KernelImage {
    /// The kernel embedded in this binary, or the one at `path`.
    pub fn open(path: Option<&Path>) -> Result<Self, LoadError> {
        let (elf, path) = match path {
            Some(p) => (
                std::fs::read(p).map_err(|source| LoadError::Read {
                    path: p.into(),
                    source,
                })?,
                p.to_path_buf(),
            ),
            None => (EMBEDDED_GUEST.to_vec(), PathBuf::from(EMBEDDED_GUEST_PATH)),
        };
        Self::from_elf(elf, path)
    }

    /// The kernel whose ELF bytes are `elf` (read from `path`), checked as `open` checks it.
    pub fn from_elf(elf: Vec<u8>, path: PathBuf) -> Result<Self, LoadError> {
        check_header(&elf).map_err(|why| LoadError::Unsupported {
            path: path.clone(),
            why,
        })?;
        let symbols = Symbols::from_elf(&elf).map_err(|e| LoadError::Elf(e.to_string()))?;
        let entry =
            |name: &'static str| symbols.addr_of(name).ok_or(LoadError::MissingSymbol(name));
        Ok(KernelImage {
            entry_bsp: entry("startup_64")?,
            entry_ap: entry("secondary_startup_64")?,
            elf: Arc::new(elf),
            path,
            symbols: Arc::new(symbols),
            debug: Arc::default(),
        })
    }

    /// Copies the loadable segments into guest memory (at their physical addresses).
    /// The kernel's DWARF (empty when it has none or it cannot be read).
    pub fn debug_info(&self) -> &DebugInfo {
        self.debug
            .get_or_init(|| DebugInfo::from_elf(&self.elf).unwrap_or_default())
    }

    /// A digest of the ELF (see [`digest`]).
    pub fn digest(&self) -> String {
        digest(&self.elf)
    }

    pub fn load(&self, memory: &GuestMemory) -> Result<(), LoadError> {
        check_segments(&self.elf, memory.size()).map_err(|why| LoadError::Unsupported {
            path: self.path.clone(),
            why,
        })?;
        let mut image = Cursor::new(self.elf.as_slice());
        let result = Elf::load(memory.mem(), None, &mut image, None)
            .map_err(|e| LoadError::Elf(e.to_string()))?;
        // linux-loader checks the file-backed part; `_end` also covers .bss (the CPU stacks).
        let end = self
            .symbols
            .addr_of("_end")
            .and_then(|e| e.checked_sub(lockvmm_abi::START_KERNEL_MAP))
            .map_or(result.kernel_end, |e| e.max(result.kernel_end));
        if end > memory.size() {
            return Err(LoadError::TooBig {
                end,
                mem: memory.size(),
            });
        }
        Ok(())
    }
}

/// A 64-bit FNV-1a digest of an ELF, in hex: enough to tell two kernels apart (the vmcore records
/// it, `inspect` compares), not a security measure.
pub fn digest(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |x| u16::from_le_bytes([x[0], x[1]]))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|x| x.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// What lockvmm boots: an ELF64 little-endian x86-64 executable (`ET_EXEC`), like vmlinux.
fn check_header(elf: &[u8]) -> Result<(), String> {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" {
        return Err("is not an ELF file".into());
    }
    let want = "lockvmm boots an x86-64 ELF64 executable (EM_X86_64, ET_EXEC), like vmlinux";
    if elf[4] != 2 {
        return Err(format!("is a 32-bit ELF: {want}"));
    }
    if elf[5] != 1 {
        return Err(format!("is a big-endian ELF: {want}"));
    }
    let machine = u16_at(elf, 18);
    if machine != 62 {
        let arch = match machine {
            3 => "i386 (EM_386)".to_string(),
            40 => "ARM (EM_ARM)".into(),
            183 => "aarch64 (EM_AARCH64)".into(),
            243 => "RISC-V (EM_RISCV)".into(),
            m => format!("e_machine {m}"),
        };
        return Err(format!("is built for {arch}: {want}"));
    }
    match u16_at(elf, 16) {
        2 => Ok(()),
        1 => Err(format!(
            "is a relocatable object (ET_REL), not linked: {want}"
        )),
        3 => Err(format!(
            "is a position-independent executable or shared object (ET_DYN): {want}"
        )),
        4 => Err(format!("is a core file (ET_CORE): {want}")),
        t => Err(format!("has ELF type {t}: {want}")),
    }
}

/// Every loadable segment lies inside the file and inside guest RAM.
fn check_segments(elf: &[u8], mem: u64) -> Result<(), String> {
    let (phoff, phnum) = (u64_at(elf, 32), u64::from(u16_at(elf, 56)));
    for i in 0..phnum {
        let Some(ph) = phoff
            .checked_add(i * 56)
            .and_then(|at| elf.get(at as usize..at as usize + 56))
        else {
            return Err(format!("has program header {i} past the end of the file"));
        };
        if u32::from(u16_at(ph, 0)) | (u32::from(u16_at(ph, 2)) << 16) != 1 {
            continue;
        }
        let (off, paddr, filesz, memsz) = (
            u64_at(ph, 8),
            u64_at(ph, 24),
            u64_at(ph, 32),
            u64_at(ph, 40),
        );
        if off.checked_add(filesz).is_none_or(|e| e > elf.len() as u64) {
            return Err(format!(
                "has segment {i} whose {filesz} bytes at file offset {off:#x} lie past the end of the file ({} bytes)",
                elf.len()
            ));
        }
        let end = paddr.checked_add(memsz.max(filesz));
        if end.is_none_or(|e| e > mem) {
            let hint = if end.is_some_and(|e| e <= crate::memory::MAX_MEM_MIB << 20) {
                ": raise machine.memory_mib"
            } else {
                ""
            };
            return Err(format!(
                "has segment {i} at physical {paddr:#x}..{:#x}, outside guest RAM ({} MiB){hint}",
                paddr.saturating_add(memsz.max(filesz)),
                mem >> 20
            ));
        }
    }
    Ok(())
}
