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

    pub fn load(&self, memory: &GuestMemory) -> Result<(), LoadError> {
        let mut image = Cursor::new(self.elf.as_slice());
        let result = Elf::load(memory.mem(), None, &mut image, None)
            .map_err(|e| LoadError::Elf(e.to_string()))?;
        // linux-loader checks the file-backed part; `_end` also covers .bss (the CPU stacks).
        let end = self
            .symbols
            .addr_of("_end")
            .map_or(result.kernel_end, |e| e - lockvmm_abi::START_KERNEL_MAP);
        if end > memory.size() {
            return Err(LoadError::TooBig {
                end,
                mem: memory.size(),
            });
        }
        Ok(())
    }
}
