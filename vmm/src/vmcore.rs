//! vmcore files: an ELF core of the snapshot, like QEMU's `dump-guest-memory`, that gdb opens
//! with the guest kernel (`gdb vmlinux vmcore`: one thread per vCPU) and `lockvmm inspect` reads
//! back.
//!
//! Layout: one PT_NOTE with an `NT_PRSTATUS` per vCPU (in CPU order, LWP = CPU + 1) and a
//! `LOCKVMM` note holding the snapshot's metadata as JSON; then PT_LOAD segments giving guest
//! memory at the kernel's *virtual* addresses (both linear maps point at the same bytes in the
//! file, and module pages are found through the page tables). Memory chunks that are all zero
//! are left out, as makedumpfile does.
//!
//! A CPU that was inside the NMI handler that reported it gets, in its `NT_PRSTATUS`, the
//! registers the NMI interrupted (what crash calls the exception RIP), so that gdb's `bt` starts
//! where the CPU was stuck; `lockvmm inspect`'s `bt` shows the NMI frames as well.
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::Path;

use lockvmm_abi::{KERNEL_MAP_SIZE, MODULES_VADDR, PAGE_OFFSET, START_KERNEL_MAP};
use serde::{Deserialize, Serialize};

use crate::memory::FrozenMemory;
use crate::output::AtomicFile;
use crate::report::Regs;
use crate::snapshot::{Snapshot, VcpuState};

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const NT_PRSTATUS: u32 = 1;
/// Type of the `LOCKVMM` note.
const NT_LOCKVMM: u32 = 0x4c4b_564d;
const CHUNK: u64 = 64 << 10;
const EHDR_SIZE: u64 = 64;
const PHDR_SIZE: u64 = 56;
const PRSTATUS_SIZE: usize = 336;
const PR_REG_OFFSET: usize = 112;
const PR_PID_OFFSET: usize = 32;

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

fn note(out: &mut Vec<u8>, name: &str, ty: u32, desc: &[u8]) {
    let name_bytes = [name.as_bytes(), &[0]].concat();
    out.extend_from_slice(&(name_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&name_bytes);
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend_from_slice(desc);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// `struct elf_prstatus` for x86_64 with `user_regs_struct` filled from `r`.
fn prstatus(cpu: usize, r: &Regs, fs_base: u64, gs_base: u64) -> Vec<u8> {
    let mut d = vec![0u8; PRSTATUS_SIZE];
    d[PR_PID_OFFSET..PR_PID_OFFSET + 4].copy_from_slice(&(cpu as u32 + 1).to_le_bytes());
    let regs = [
        r.r15,
        r.r14,
        r.r13,
        r.r12,
        r.rbp,
        r.rbx,
        r.r11,
        r.r10,
        r.r9,
        r.r8,
        r.rax,
        r.rcx,
        r.rdx,
        r.rsi,
        r.rdi,
        u64::MAX, // orig_rax
        r.rip,
        r.cs,
        r.rflags,
        r.rsp,
        r.ss,
        fs_base,
        gs_base,
        0,
        0,
        0,
        0,
    ];
    for (i, v) in regs.iter().enumerate() {
        d[PR_REG_OFFSET + i * 8..PR_REG_OFFSET + i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    d
}

struct Load {
    vaddr: u64,
    paddr: u64,
    len: u64,
}

/// The segments: every non-zero chunk through both linear maps, and module pages.
fn loads(snap: &Snapshot) -> (Vec<(u64, u64)>, Vec<Load>) {
    let mem = &snap.memory;
    let chunks: Vec<(u64, u64)> = (0..mem.len() as u64)
        .step_by(CHUNK as usize)
        .map(|at| (at, CHUNK.min(mem.len() as u64 - at)))
        .filter(|&(at, len)| {
            mem[at as usize..(at + len) as usize]
                .iter()
                .any(|&b| b != 0)
        })
        .collect();
    let mut loads = Vec::new();
    for &(pa, len) in &chunks {
        if pa + len <= KERNEL_MAP_SIZE {
            loads.push(Load {
                vaddr: START_KERNEL_MAP + pa,
                paddr: pa,
                len,
            });
        }
        loads.push(Load {
            vaddr: PAGE_OFFSET + pa,
            paddr: pa,
            len,
        });
    }
    // Module memory: 4 KiB pages mapped by the guest itself.
    let cr3 = snap
        .cpus
        .iter()
        .find(|c| c.captured)
        .map_or(crate::memory::BOOT_CR3, |c| c.sregs.cr3);
    let fm = FrozenMemory { phys: mem, cr3 };
    let mut va = MODULES_VADDR;
    let mut misses = 0;
    while misses < 512 && va < MODULES_VADDR + (64 << 20) {
        match fm.translate(va) {
            Some(pa) if chunks.iter().any(|&(c, l)| (c..c + l).contains(&pa)) => {
                loads.push(Load {
                    vaddr: va,
                    paddr: pa,
                    len: 4096,
                });
                misses = 0;
            }
            _ => misses += 1,
        }
        va += 4096;
    }
    (chunks, loads)
}

/// Writes the snapshot as an ELF core at `path` (atomically). `thread_regs` overrides the
/// registers gdb gets for some CPUs (see the module documentation).
pub fn write(
    path: &Path,
    snap: &Snapshot,
    meta: &CoreMeta,
    thread_regs: &HashMap<usize, Regs>,
) -> Result<(), CoreError> {
    let err = |source| CoreError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut notes = Vec::new();
    for c in &snap.cpus {
        let regs = thread_regs.get(&c.cpu).copied().unwrap_or(c.regs);
        note(
            &mut notes,
            "CORE",
            NT_PRSTATUS,
            &prstatus(c.cpu, &regs, c.sregs.fs_base, c.sregs.gs_base),
        );
    }
    let json = serde_json::to_vec(meta).map_err(|e| err(io::Error::other(e)))?;
    note(&mut notes, "LOCKVMM", NT_LOCKVMM, &json);

    let (chunks, loads) = loads(snap);
    let phnum = 1 + loads.len() as u64;
    let notes_at = EHDR_SIZE + phnum * PHDR_SIZE;
    let data_at = (notes_at + notes.len() as u64).next_multiple_of(4096);
    // File offset of each chunk's bytes.
    let mut offsets = Vec::with_capacity(chunks.len());
    let mut at = data_at;
    for &(pa, len) in &chunks {
        offsets.push((pa, len, at));
        at += len;
    }
    let file_off = |pa: u64| {
        offsets
            .iter()
            .find(|&&(c, l, _)| (c..c + l).contains(&pa))
            .map(|&(c, _, o)| o + (pa - c))
    };

    let mut f = AtomicFile::create(path).map_err(err)?;
    let mut ehdr = Vec::with_capacity(64);
    ehdr.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    ehdr.extend_from_slice(&4u16.to_le_bytes()); // ET_CORE
    ehdr.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    ehdr.extend_from_slice(&1u32.to_le_bytes());
    ehdr.extend_from_slice(&0u64.to_le_bytes()); // e_entry
    ehdr.extend_from_slice(&EHDR_SIZE.to_le_bytes()); // e_phoff
    ehdr.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    ehdr.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    ehdr.extend_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
    ehdr.extend_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    ehdr.extend_from_slice(&(phnum as u16).to_le_bytes());
    ehdr.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
    f.write_all(&ehdr).map_err(err)?;
    let phdr = |ty: u32, flags: u32, off: u64, vaddr: u64, paddr: u64, len: u64, align: u64| {
        let mut p = Vec::with_capacity(56);
        p.extend_from_slice(&ty.to_le_bytes());
        p.extend_from_slice(&flags.to_le_bytes());
        for v in [off, vaddr, paddr, len, len, align] {
            p.extend_from_slice(&v.to_le_bytes());
        }
        p
    };
    f.write_all(&phdr(PT_NOTE, 0, notes_at, 0, 0, notes.len() as u64, 4))
        .map_err(err)?;
    for l in &loads {
        let off = file_off(l.paddr).unwrap_or(0);
        f.write_all(&phdr(PT_LOAD, 7, off, l.vaddr, l.paddr, l.len, 1))
            .map_err(err)?;
    }
    f.write_all(&notes).map_err(err)?;
    f.write_all(&vec![
        0u8;
        (data_at - notes_at - notes.len() as u64) as usize
    ])
    .map_err(err)?;
    for &(pa, len) in &chunks {
        f.write_all(&snap.memory[pa as usize..(pa + len) as usize])
            .map_err(err)?;
    }
    f.commit().map_err(err)
}

/// Writes the vmcore of a run, giving CPUs caught inside an NMI their interrupted context.
pub fn write_for_run(path: &Path, r: &crate::RunResult) -> Result<bool, CoreError> {
    let Some(snap) = &r.snapshot else {
        return Ok(false);
    };
    let dwarf = crate::dwarf::DebugInfo::from_elf(&r.kernel.elf).unwrap_or_default();
    let a = crate::analysis::Analysis::new(snap, &r.kernel.symbols, &dwarf);
    let mut nmi = HashMap::new();
    for c in &snap.cpus {
        let bt = a.backtrace(c.cpu);
        if let Some((_, regs)) = bt
            .exceptions()
            .into_iter()
            .find(|(e, _)| *e == "end_repeat_nmi" || *e == "nmi")
        {
            nmi.insert(c.cpu, *regs);
        }
    }
    let meta = CoreMeta {
        format: "lockvmm-vmcore-1".into(),
        reason: snap.reason.clone(),
        vtime_ns: snap.vtime_ns,
        kernel: r.kernel.path.display().to_string(),
        cpus: snap.cpus.clone(),
        mem_bytes: snap.memory.len() as u64,
        console: r.console.clone(),
        freeze_us: snap.freeze_us,
        memory_copy_us: snap.memory_copy_us,
        report_cpu: crate::crashreport::report_cpu(&r.outcome),
        lock_names: snap.lock_names.clone(),
    };
    write(path, snap, &meta, &nmi).map(|()| true)
}

/// A vmcore read back: its metadata and physical memory.
pub struct LoadedCore {
    pub meta: CoreMeta,
    pub memory: Vec<u8>,
}

/// Reads a vmcore written by `write`.
pub fn read(path: &Path) -> Result<LoadedCore, CoreError> {
    let p = path.display().to_string();
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|source| CoreError::Read {
            path: p.clone(),
            source,
        })?;
    let bad = |why: &str| CoreError::Format {
        path: p.clone(),
        why: why.into(),
    };
    if bytes.len() < 64
        || &bytes[..4] != b"\x7fELF"
        || u16::from_le_bytes([bytes[16], bytes[17]]) != 4
    {
        return Err(bad("not an ELF core file"));
    }
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let phoff = u64_at(32).ok_or_else(|| bad("truncated header"))? as usize;
    let phnum = u16::from_le_bytes([bytes[56], bytes[57]]) as usize;
    let mut meta = None;
    let mut segments = Vec::new();
    for i in 0..phnum {
        let at = phoff + i * PHDR_SIZE as usize;
        let (Some(ty), Some(off), Some(paddr), Some(len)) =
            (u32_at(at), u64_at(at + 8), u64_at(at + 24), u64_at(at + 32))
        else {
            return Err(bad("truncated program headers"));
        };
        match ty {
            PT_NOTE => {
                meta = Some(
                    find_meta(&bytes, off as usize, len as usize)
                        .ok_or_else(|| bad("no LOCKVMM note"))?,
                )
            }
            PT_LOAD if paddr < u64::MAX => segments.push((off, paddr, len)),
            _ => {}
        }
    }
    let meta: CoreMeta = meta.ok_or_else(|| bad("no notes"))?;
    let mut memory = vec![0u8; meta.mem_bytes as usize];
    for (off, paddr, len) in segments {
        let (off, pa, len) = (off as usize, paddr as usize, len as usize);
        if let (Some(src), Some(dst)) = (bytes.get(off..off + len), memory.get_mut(pa..pa + len)) {
            dst.copy_from_slice(src);
        }
    }
    Ok(LoadedCore { meta, memory })
}

fn find_meta(bytes: &[u8], mut at: usize, len: usize) -> Option<CoreMeta> {
    let end = at + len;
    while at + 12 <= end {
        let namesz = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize;
        let descsz = u32::from_le_bytes(bytes.get(at + 4..at + 8)?.try_into().ok()?) as usize;
        let ty = u32::from_le_bytes(bytes.get(at + 8..at + 12)?.try_into().ok()?);
        let name_at = at + 12;
        let desc_at = name_at + namesz.next_multiple_of(4);
        if ty == NT_LOCKVMM && bytes.get(name_at..name_at + namesz)? == b"LOCKVMM\0" {
            return serde_json::from_slice(bytes.get(desc_at..desc_at + descsz)?).ok();
        }
        at = desc_at + descsz.next_multiple_of(4);
    }
    None
}

impl LoadedCore {
    /// The snapshot again, for analysis.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            reason: self.meta.reason.clone(),
            vtime_ns: self.meta.vtime_ns,
            cpus: self.meta.cpus.clone(),
            memory: std::sync::Arc::new(self.memory.clone()),
            lock_names: self.meta.lock_names.clone(),
            freeze_us: self.meta.freeze_us,
            memory_copy_us: self.meta.memory_copy_us,
        }
    }
}
