//! The guest kernel's symbol table (from its ELF, through the `object` crate): turns addresses
//! into `function+0xoff` and names into addresses.
use object::{Object, ObjectSymbol, SymbolKind};

use crate::state::text::escape_line;

#[derive(Debug, Clone)]
pub struct Symbol {
    pub name: String,
    pub addr: u64,
    pub size: u64,
    pub is_text: bool,
}

/// A resolved address: the symbol it falls in and the offset into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub name: String,
    pub offset: u64,
    pub size: u64,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.offset == 0 {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{}+{}", self.name, self.offset)
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Symbols {
    /// Sorted by address.
    syms: Vec<Symbol>,
}

impl Symbols {
    /// Reads the symbol table of an ELF image. Rust names are demangled without their hash.
    pub fn from_elf(elf: &[u8]) -> Result<Self, object::Error> {
        let file = object::File::parse(elf)?;
        let mut syms: Vec<Symbol> = file
            .symbols()
            .filter(|s| matches!(s.kind(), SymbolKind::Text | SymbolKind::Data) && s.address() != 0)
            .filter_map(|s| {
                let raw = s.name().ok()?;
                if raw.is_empty() || raw.starts_with(".L") {
                    return None;
                }
                Some(Symbol {
                    name: escape_line(&format!("{:#}", rustc_demangle::demangle(raw))),
                    addr: s.address(),
                    size: s.size(),
                    is_text: s.kind() == SymbolKind::Text,
                })
            })
            .collect();
        syms.sort_by_key(|s| (s.addr, std::cmp::Reverse(s.size)));
        syms.dedup_by_key(|s| s.addr);
        Ok(Symbols { syms })
    }

    /// The symbol containing `addr`. A symbol without a size (an assembly label) covers up to
    /// the next symbol.
    pub fn lookup(&self, addr: u64) -> Option<Location> {
        let idx = self
            .syms
            .partition_point(|s| s.addr <= addr)
            .checked_sub(1)?;
        let s = &self.syms[idx];
        let end = if s.size > 0 {
            s.addr + s.size
        } else {
            self.syms.get(idx + 1).map_or(s.addr + 1, |n| n.addr)
        };
        (addr < end).then(|| Location {
            name: s.name.clone(),
            offset: addr - s.addr,
            size: s.size,
        })
    }

    /// `function+off`, or the bare hex address when no symbol covers it.
    pub fn describe(&self, addr: u64) -> String {
        self.lookup(addr)
            .map_or_else(|| format!("{addr:#x}"), |l| l.to_string())
    }

    /// The address of a symbol by exact name.
    pub fn addr_of(&self, name: &str) -> Option<u64> {
        self.syms.iter().find(|s| s.name == name).map(|s| s.addr)
    }

    /// The whole symbol by exact name.
    pub fn get(&self, name: &str) -> Option<&Symbol> {
        self.syms.iter().find(|s| s.name == name)
    }
}
