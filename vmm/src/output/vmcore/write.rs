//! Writing a snapshot as an ELF core: the notes, the PT_LOADs at kernel virtual addresses, and
//! guest memory, through an atomic file.
use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;

use lockvmm_abi::{KERNEL_MAP_SIZE, MODULES_VADDR, PAGE_OFFSET, START_KERNEL_MAP};

use super::*;
use crate::memory::FrozenMemory;
use crate::output::atomic::AtomicFile;
use crate::state::{CpuBacktrace, Regs, Snapshot};

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
    // Only the pages the capture wrote are read (`nonzero_chunks`): scanning all of a 256 MiB
    // machine byte by byte cost 114 ms a vmcore (a second in a debug build).
    let chunks: Vec<(u64, u64)> = crate::memory::nonzero_chunks(mem, CHUNK as usize)
        .into_iter()
        .enumerate()
        .filter(|&(_, nonzero)| nonzero)
        .map(|(i, _)| {
            let at = i as u64 * CHUNK;
            (at, CHUNK.min(mem.len() as u64 - at))
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
/// registers gdb gets for some CPUs (see the module documentation); `vmcoreinfo` is the text of
/// the `VMCOREINFO` note (`vmcoreinfo::vmcoreinfo`).
pub fn write(
    path: &Path,
    snap: &Snapshot,
    meta: &CoreMeta,
    thread_regs: &HashMap<usize, Regs>,
    vmcoreinfo: &str,
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
    note(
        &mut notes,
        super::vmcoreinfo::VMCOREINFO_NAME,
        super::vmcoreinfo::NT_VMCOREINFO,
        vmcoreinfo.as_bytes(),
    );
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

/// The registers gdb gets for each CPU caught inside an NMI: the context the NMI interrupted
/// (see the module documentation), from the run's backtraces.
pub fn thread_regs(backtraces: &[CpuBacktrace]) -> HashMap<usize, Regs> {
    backtraces
        .iter()
        .filter_map(|bt| {
            bt.exceptions()
                .into_iter()
                .find(|(e, _)| *e == "end_repeat_nmi" || *e == "nmi")
                .map(|(_, regs)| (bt.cpu, *regs))
        })
        .collect()
}
