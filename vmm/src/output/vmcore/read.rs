//! Reading a vmcore back for `lockvmm inspect`. The file is untrusted: every size and offset in
//! it is checked against the file's own length and the machine's limits before anything is
//! allocated or read, a malformed note says so, and a truncated file is read as far as it goes
//! with a warning that `inspect` prints.
use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::memory::MAX_MEM_MIB;
use crate::state::Snapshot;
use crate::state::text::{escape_controls, escape_line};

/// A vmcore read back: its metadata and physical memory.
pub struct LoadedCore {
    pub meta: CoreMeta,
    pub memory: Arc<Vec<u8>>,
    /// What the reader could read past but `inspect` must say (a truncated file).
    pub warnings: Vec<String>,
}

/// The largest note segment lockvmm writes is a few MiB (the console is capped at 8 MiB).
const MAX_NOTES: u64 = 64 << 20;

/// Reads a vmcore written by `write`.
pub fn read(path: &Path) -> Result<LoadedCore, CoreError> {
    let p = path.display().to_string();
    let mut f = std::fs::File::open(path).map_err(|source| CoreError::Read {
        path: p.clone(),
        source,
    })?;
    read_from(&mut f, &p)
}

/// Reads a vmcore from any seekable source; `name` is what errors call it.
pub fn read_from<R: Read + Seek>(r: &mut R, name: &str) -> Result<LoadedCore, CoreError> {
    let bad = |why: String| CoreError::Format {
        path: name.to_string(),
        why,
    };
    let io = |source| CoreError::Read {
        path: name.to_string(),
        source,
    };
    let file_len = r.seek(SeekFrom::End(0)).map_err(io)?;
    let mut read_at = |off: u64, len: u64| -> Result<Vec<u8>, CoreError> {
        let mut buf = vec![0u8; len as usize];
        r.seek(SeekFrom::Start(off)).map_err(io)?;
        r.read_exact(&mut buf).map_err(io)?;
        Ok(buf)
    };
    if file_len < EHDR_SIZE {
        return Err(bad(format!("not an ELF core file ({file_len} bytes)")));
    }
    let ehdr = read_at(0, EHDR_SIZE)?;
    let u16_at = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
    let u32_at =
        |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or([0; 4]));
    let u64_at =
        |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
    if &ehdr[..4] != b"\x7fELF" || ehdr[4] != 2 || ehdr[5] != 1 || u16_at(&ehdr, 16) != 4 {
        return Err(bad("not an ELF64 little-endian core file".into()));
    }
    if u16_at(&ehdr, 54) as u64 != PHDR_SIZE {
        return Err(bad(format!(
            "e_phentsize is {}, not {PHDR_SIZE}",
            u16_at(&ehdr, 54)
        )));
    }
    let phoff = u64_at(&ehdr, 32);
    let phnum = u64::from(u16_at(&ehdr, 56));
    let ph_end = phoff
        .checked_add(phnum * PHDR_SIZE)
        .filter(|&e| e <= file_len)
        .ok_or_else(|| {
            bad(format!(
                "truncated or corrupt: its {phnum} program headers at offset {phoff} end past the end of the file ({file_len} bytes)"
            ))
        })?;
    let phdrs = read_at(phoff, ph_end - phoff)?;
    let mut notes = None;
    let mut segments = Vec::new();
    for i in 0..phnum as usize {
        let ph = &phdrs[i * PHDR_SIZE as usize..(i + 1) * PHDR_SIZE as usize];
        let (ty, off, paddr, len) = (u32_at(ph, 0), u64_at(ph, 8), u64_at(ph, 24), u64_at(ph, 32));
        match ty {
            PT_NOTE if notes.is_none() => notes = Some((off, len)),
            PT_LOAD => segments.push((i, off, paddr, len)),
            _ => {}
        }
    }
    let (noff, nlen) = notes.ok_or_else(|| bad("it has no PT_NOTE segment".into()))?;
    if nlen > MAX_NOTES {
        return Err(bad(format!(
            "its notes claim {nlen} bytes (at most {MAX_NOTES})"
        )));
    }
    if noff.checked_add(nlen).is_none_or(|e| e > file_len) {
        return Err(bad(format!(
            "truncated: its notes ({nlen} bytes at offset {noff}) end past the end of the file ({file_len} bytes)"
        )));
    }
    let note_bytes = read_at(noff, nlen)?;
    let desc = find_lockvmm_note(&note_bytes).map_err(bad)?;
    let meta: CoreMeta = serde_json::from_slice(desc)
        .map_err(|e| bad(format!("its LOCKVMM note is malformed: {e}")))?;
    let meta = checked_meta(meta).map_err(|why| bad(format!("its LOCKVMM note {why}")))?;

    let mut memory = vec![0u8; meta.mem_bytes as usize];
    let mut loaded = HashSet::new();
    let (mut missing_segments, mut missing_bytes) = (0u64, 0u64);
    for (i, off, paddr, len) in segments {
        let end = paddr
            .checked_add(len)
            .filter(|&e| e <= meta.mem_bytes)
            .ok_or_else(|| {
                bad(format!(
                    "memory segment {i} (physical {paddr:#x}, {len} bytes) lies outside the {} bytes of memory its note claims",
                    meta.mem_bytes
                ))
            })?;
        if !loaded.insert((off, paddr, len)) {
            continue;
        }
        let present = file_len.saturating_sub(off).min(len);
        if present < len {
            missing_segments += 1;
            missing_bytes += len - present;
        }
        if present > 0 {
            let dst = &mut memory[paddr as usize..(end - (len - present)) as usize];
            r.seek(SeekFrom::Start(off)).map_err(io)?;
            r.read_exact(dst).map_err(io)?;
        }
    }
    let mut warnings = Vec::new();
    if missing_segments > 0 {
        warnings.push(format!(
            "{name} is truncated ({file_len} bytes): {missing_segments} memory segments ({missing_bytes} bytes) lie past its end and read as zeros, so backtraces, tasks and the log may be incomplete"
        ));
    }
    Ok(LoadedCore {
        meta,
        memory: Arc::new(memory),
        warnings,
    })
}

/// The `LOCKVMM` note's descriptor among the notes, or why there is none.
fn find_lockvmm_note(bytes: &[u8]) -> Result<&[u8], String> {
    let mut at = 0usize;
    while at + 12 <= bytes.len() {
        let word =
            |i: usize| u32::from_le_bytes(bytes[at + i..at + i + 4].try_into().unwrap_or([0; 4]));
        let (namesz, descsz, ty) = (word(0) as usize, word(4) as usize, word(8));
        let name_at = at + 12;
        let desc_at = name_at.checked_add(namesz.next_multiple_of(4));
        let desc = desc_at.and_then(|d| bytes.get(d..d.checked_add(descsz)?));
        let (Some(desc_at), Some(desc)) = (desc_at, desc) else {
            return Err(format!(
                "its notes are malformed: the note at offset {at} claims {namesz}+{descsz} bytes past the end of the notes"
            ));
        };
        if ty == NT_LOCKVMM && bytes.get(name_at..name_at + namesz) == Some(b"LOCKVMM\0") {
            return Ok(desc);
        }
        at = desc_at.saturating_add(descsz.next_multiple_of(4));
    }
    Err("it has no LOCKVMM note".into())
}

/// The note's values checked against what a lockvmm machine can be, and its text escaped (a
/// vmcore may have been crafted).
fn checked_meta(mut m: CoreMeta) -> Result<CoreMeta, String> {
    let max_mem = MAX_MEM_MIB << 20;
    if m.mem_bytes > max_mem {
        return Err(format!(
            "claims {} bytes of guest memory; a lockvmm machine has at most {max_mem}",
            m.mem_bytes
        ));
    }
    if m.cpus.is_empty() || m.cpus.len() > lockvmm_abi::NR_CPUS {
        return Err(format!(
            "lists {} CPUs (1 to {})",
            m.cpus.len(),
            lockvmm_abi::NR_CPUS
        ));
    }
    if let Some(c) = m.cpus.iter().enumerate().find(|(i, c)| c.cpu != *i) {
        return Err(format!("lists CPU {} in place {}", c.1.cpu, c.0));
    }
    if let Some(c) = m.report_cpu.filter(|&c| c >= m.cpus.len()) {
        return Err(format!(
            "names CPU {c} as the report's, but it has {} CPUs",
            m.cpus.len()
        ));
    }
    m.reason = escape_line(&m.reason);
    m.kernel = escape_line(&m.kernel);
    m.format = escape_line(&m.format);
    m.console = escape_controls(&m.console);
    for l in &mut m.lock_names {
        *l = escape_line(l);
    }
    for (_, l) in &mut m.lock_aliases {
        *l = escape_line(l);
    }
    for c in &mut m.cpus {
        c.sched = escape_line(&c.sched);
        c.mp_state = escape_line(&c.mp_state);
    }
    Ok(m)
}

impl LoadedCore {
    /// The snapshot again, for analysis (sharing the memory).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            reason: self.meta.reason.clone(),
            vtime_ns: self.meta.vtime_ns,
            cpus: self.meta.cpus.clone(),
            memory: self.memory.clone(),
            lock_names: self.meta.lock_names.clone(),
            lock_aliases: self.meta.lock_aliases.clone(),
            freeze_us: self.meta.freeze_us,
            memory_copy_us: self.meta.memory_copy_us,
        }
    }
}
