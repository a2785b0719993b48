//! Reading a vmcore back for `lockvmm inspect`.
use std::io::Read;
use std::path::Path;

use super::*;
use crate::state::Snapshot;

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
            lock_aliases: self.meta.lock_aliases.clone(),
            freeze_us: self.meta.freeze_us,
            memory_copy_us: self.meta.memory_copy_us,
        }
    }
}
