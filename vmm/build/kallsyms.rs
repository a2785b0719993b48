//! Fills the guest's `.kallsyms` section (Linux's `scripts/kallsyms`): the text symbols of the
//! linked guest, sorted by address, in the layout of `lockvmm_abi::kallsyms`. The section has
//! a fixed size, so writing it moves no address and one link is enough (Linux links up to
//! three times because its table's size shifts what follows it).
use std::path::Path;

use lockvmm_abi::kallsyms::{ENTRY_SIZE, HEADER_SIZE, MAGIC, NAME_MAX, TABLE_SIZE};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

/// Reads `elf`, writes a copy with the table filled in to `out` (whole or not at all).
pub fn fill(elf: &Path, out: &Path) -> Result<(), String> {
    let mut bytes = std::fs::read(elf).map_err(|e| format!("{}: {e}", elf.display()))?;
    let table = {
        let file = object::File::parse(&*bytes).map_err(|e| e.to_string())?;
        let section = file
            .section_by_name(".kallsyms")
            .ok_or("the guest has no .kallsyms section (guest/linker.ld)")?;
        let (offset, size) = section
            .file_range()
            .ok_or(".kallsyms has no bytes in the file")?;
        if size as usize != TABLE_SIZE {
            return Err(format!(
                ".kallsyms is {size} bytes, lockvmm_abi::kallsyms::TABLE_SIZE says {TABLE_SIZE}"
            ));
        }
        // The prelinked module's text must sit where the guest's loader maps it.
        if let Some(m) = file.section_by_name(".module.hog") {
            let want = lockvmm_abi::layout::PRELINKED_MODULES_VADDR;
            if m.address() != want {
                return Err(format!(
                    ".module.hog is linked at {:#x}, PRELINKED_MODULES_VADDR is {want:#x} \
                     (guest/linker.ld)",
                    m.address()
                ));
            }
        }
        (offset as usize, encode(&text_symbols(&file))?)
    };
    let (offset, table) = table;
    bytes[offset..offset + table.len()].copy_from_slice(&table);
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, &bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, out).map_err(|e| format!("{}: {e}", out.display()))
}

/// (address, size, name) of every named function, as the host's `image::symbols` names them
/// (demangled without the hash), one per address (the largest wins).
fn text_symbols(file: &object::File) -> Vec<(u64, u32, String)> {
    let mut syms: Vec<(u64, u32, String)> = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
        .filter_map(|s| {
            let raw = s.name().ok()?;
            if raw.is_empty() || raw.starts_with(".L") {
                return None;
            }
            let mut name = format!("{:#}", rustc_demangle::demangle(raw));
            name.retain(|c| !c.is_control());
            while name.len() > NAME_MAX {
                name.pop();
            }
            Some((s.address(), s.size().min(u64::from(u32::MAX)) as u32, name))
        })
        .collect();
    syms.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
    syms.dedup_by_key(|s| s.0);
    syms
}

fn encode(syms: &[(u64, u32, String)]) -> Result<Vec<u8>, String> {
    let names_off = HEADER_SIZE + syms.len() * ENTRY_SIZE;
    let mut entries = Vec::with_capacity(syms.len() * ENTRY_SIZE);
    let mut names = Vec::new();
    for (addr, size, name) in syms {
        entries.extend_from_slice(&addr.to_le_bytes());
        entries.extend_from_slice(&size.to_le_bytes());
        entries.extend_from_slice(&(names.len() as u32).to_le_bytes());
        names.push(name.len() as u8);
        names.extend_from_slice(name.as_bytes());
    }
    let len = names_off + names.len();
    if len > TABLE_SIZE {
        return Err(format!(
            "{} symbols need {len} bytes; .kallsyms holds {TABLE_SIZE} (raise TABLE_SIZE)",
            syms.len()
        ));
    }
    let mut table = Vec::with_capacity(len);
    for word in [MAGIC, syms.len() as u32, names_off as u32, len as u32] {
        table.extend_from_slice(&word.to_le_bytes());
    }
    table.extend_from_slice(&entries);
    table.extend_from_slice(&names);
    Ok(table)
}
