//! vmcore files: an ELF core of the snapshot, like QEMU's `dump-guest-memory`, that gdb opens
//! with the guest kernel (`gdb vmlinux vmcore`: one thread per vCPU) and `lockvmm inspect` reads
//! back.
//!
//! Layout: one PT_NOTE with an `NT_PRSTATUS` per vCPU (in CPU order, LWP = CPU + 1), a
//! `VMCOREINFO` note (as Linux's kdump; see `vmcoreinfo`) and a `LOCKVMM` note holding the
//! snapshot's metadata as JSON; then PT_LOAD segments giving guest
//! memory at the kernel's *virtual* addresses (both linear maps point at the same bytes in the
//! file, and module pages are found through the page tables). Memory chunks that are all zero
//! are left out, as makedumpfile does.
//!
//! A CPU that was inside the NMI handler that reported it gets, in its `NT_PRSTATUS`, the
//! registers the NMI interrupted (what crash calls the exception RIP), so that gdb's `bt` starts
//! where the CPU was stuck; `lockvmm inspect`'s `bt` shows the NMI frames as well.
mod read;
mod vmcoreinfo;
mod write;

use std::io;

use serde::{Deserialize, Serialize};

use crate::state::VcpuState;

pub use read::{LoadedCore, read, read_from};
pub use vmcoreinfo::{build_id_hex, vmcoreinfo};
pub use write::{thread_regs, write};

pub(super) const PT_LOAD: u32 = 1;
pub(super) const PT_NOTE: u32 = 4;
pub(super) const NT_PRSTATUS: u32 = 1;
/// Type of the `LOCKVMM` note.
pub(super) const NT_LOCKVMM: u32 = 0x4c4b_564d;
pub(super) const CHUNK: u64 = 64 << 10;
pub(super) const EHDR_SIZE: u64 = 64;
pub(super) const PHDR_SIZE: u64 = 56;
pub(super) const PRSTATUS_SIZE: usize = 336;
pub(super) const PR_REG_OFFSET: usize = 112;
pub(super) const PR_PID_OFFSET: usize = 32;

/// What the `LOCKVMM` note holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CoreMeta {
    pub format: String,
    pub reason: String,
    pub vtime_ns: u64,
    /// The guest kernel the snapshot was taken with.
    pub kernel: String,
    pub cpus: Vec<VcpuState>,
    /// Bytes of guest RAM from physical 0.
    pub mem_bytes: u64,
    /// The guest console up to the end of the run.
    pub console: String,
    pub freeze_us: u64,
    pub memory_copy_us: u64,
    /// The CPU the run's report is about (where the watchdog fired, or the fault or panic).
    pub report_cpu: Option<usize>,
    /// Names of the scenario's locks.
    #[serde(default)]
    pub lock_names: Vec<String>,
    /// Kernel locks the scenario gave names to: (address, name).
    #[serde(default, with = "crate::state::hex::named")]
    pub lock_aliases: Vec<(u64, String)>,
    /// A digest of the kernel ELF (`image::digest`), to tell a mismatched `--kernel`; absent in
    /// vmcores of older lockvmm versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_digest: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("{path} is not a lockvmm vmcore: {why}")]
    Format { path: String, why: String },
}
