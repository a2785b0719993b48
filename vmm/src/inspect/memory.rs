//! Memory and types: `sym`, `rd`, `p`, `struct`.
use std::fmt::Write as _;

use super::{Inspector, parse_addr};
use crate::analysis::Analysis;

/// The most words one `rd` reads.
const MAX_RD_WORDS: u64 = 4096;
/// The largest struct `struct NAME ADDR` reads (sizes come from the kernel's DWARF).
const MAX_STRUCT_BYTES: u64 = 1 << 20;

impl Inspector {
    pub(super) fn sym(&self, args: &[&str]) -> Result<String, String> {
        let [what] = args else {
            return Err("usage: sym ADDR | sym NAME".into());
        };
        if let Some(s) = self.syms.get(what) {
            return Ok(format!(
                "{:016x} ({}) {}\n",
                s.addr,
                if s.is_text { 'T' } else { 'D' },
                s.name
            ));
        }
        let addr =
            parse_addr(what).ok_or_else(|| format!("sym: invalid address or symbol: {what}"))?;
        let a = self.analysis();
        match self.syms.lookup(addr) {
            Some(l) => {
                let kind = if self.syms.get(&l.name).is_some_and(|s| s.is_text) {
                    'T'
                } else {
                    'D'
                };
                let c = self
                    .dwarf
                    .describe(&self.syms, addr)
                    .filter(|d| *d != l.to_string());
                let extra = c.map_or_else(String::new, |d| format!(" = &{d}"));
                Ok(format!("{addr:016x} ({kind}) {l}{extra}\n"))
            }
            None => match a.stack_of(addr) {
                Some(stack) => Ok(format!("{addr:016x} is on the {stack}\n")),
                None => Err(format!("sym: {addr:016x}: no symbol")),
            },
        }
    }

    pub(super) fn rd(&self, args: &[&str]) -> Result<String, String> {
        let (addr, count) = match args {
            [a] => (*a, 1),
            [a, n] => (
                *a,
                n.parse::<u64>()
                    .map_err(|_| format!("rd: invalid count: {n}"))?,
            ),
            _ => return Err("usage: rd ADDR [COUNT]".into()),
        };
        let start = parse_addr(addr)
            .or_else(|| self.syms.addr_of(addr))
            .ok_or_else(|| format!("rd: invalid address or symbol: {addr}"))?;
        let a = self.analysis();
        let mut s = String::new();
        for i in 0..count.min(MAX_RD_WORDS) {
            let at = start.wrapping_add(i.wrapping_mul(8));
            let v = a.mem.u64(at).map_err(|_| {
                format!("rd: invalid kernel virtual address: {at:x}  type: \"64-bit KVADDR\"")
            })?;
            if i % 2 == 0 {
                if i > 0 {
                    s.push('\n');
                }
                let _ = write!(s, "{at:016x}:  {v:016x}");
            } else {
                let _ = write!(s, " {v:016x}");
            }
        }
        s.push('\n');
        if count > MAX_RD_WORDS {
            let _ = writeln!(
                s,
                "rd: showing the first {MAX_RD_WORDS} of {count} words (rd reads at most {MAX_RD_WORDS})"
            );
        }
        Ok(s)
    }

    /// Reads an integer of `size` bytes at `at`.
    fn value(&self, a: &Analysis<'_>, at: u64, size: u64) -> Option<u64> {
        let b = a.mem.read(at, size.min(8) as usize).ok()?;
        let mut v = [0u8; 8];
        v[..b.len()].copy_from_slice(&b);
        Some(u64::from_le_bytes(v))
    }

    /// A struct's members and their values at `at`.
    fn struct_values(&self, a: &Analysis<'_>, name: &str, at: u64) -> Option<String> {
        let (fields, _) = self.dwarf.struct_layout(name)?;
        let mut s = format!("struct {name} {{\n");
        for f in fields {
            let v = match f.size {
                1 | 2 | 4 | 8 => self
                    .value(a, at + f.offset, f.size)
                    .map_or_else(|| "?".into(), |v| format!("{v:#x}")),
                _ => format!("{{...}} ({} bytes)", f.size),
            };
            let _ = writeln!(s, "  {} {} = {v},", f.type_name, f.name);
        }
        s.push_str("}\n");
        Some(s)
    }

    pub(super) fn print(&self, args: &[&str]) -> Result<String, String> {
        let [expr] = args else {
            return Err("usage: p SYMBOL | p SYMBOL[INDEX]".into());
        };
        let (name, index) = match expr.split_once('[') {
            Some((n, rest)) => {
                let i = rest
                    .trim_end_matches(']')
                    .parse::<u64>()
                    .map_err(|_| format!("p: invalid index in {expr}"))?;
                (n, Some(i))
            }
            None => (*expr, None),
        };
        let base = self
            .syms
            .addr_of(name)
            .ok_or_else(|| format!("p: no symbol: {name}"))?;
        let a = self.analysis();
        let array = self.dwarf.array_of(name);
        match (index, array) {
            (None, Some((esz, count))) => {
                // As crash prints a per-CPU variable: the address of each CPU's element.
                let shown = count.min(self.snap.cpus.len() as u64);
                let mut s = format!(
                    "{name} = {{ {} {} elements, {} bytes each }}\n",
                    self.dwarf.var_type_name(name).unwrap_or_default(),
                    count,
                    esz
                );
                for i in 0..shown {
                    let _ = writeln!(
                        s,
                        "  [{i}]: {:016x}",
                        base.wrapping_add(i.wrapping_mul(esz))
                    );
                }
                Ok(s)
            }
            (Some(i), Some((esz, count))) => {
                if i >= count {
                    return Err(format!("p: index {i} out of range (0..{count})"));
                }
                let at = base.wrapping_add(i.wrapping_mul(esz));
                let (ty, _) = self.dwarf.var_elem(name).unwrap_or_default();
                let body = self
                    .struct_values(&a, &ty, at)
                    .or_else(|| self.value(&a, at, esz).map(|v| format!("{v:#x}\n")))
                    .unwrap_or_else(|| "?\n".into());
                Ok(format!("{name}[{i}] @ {at:016x} ({ty}) = {body}"))
            }
            (None, None) => {
                let (ty, size) = self.dwarf.var_elem(name).unwrap_or_default();
                let body = self
                    .struct_values(&a, &ty, base)
                    .or_else(|| {
                        self.value(&a, base, size.max(1))
                            .map(|v| format!("{v:#x}\n"))
                    })
                    .unwrap_or_else(|| "?\n".into());
                Ok(format!("{name} @ {base:016x} ({ty}) = {body}"))
            }
            (Some(_), None) => Err(format!("p: {name} is not an array")),
        }
    }

    pub(super) fn struct_cmd(&self, args: &[&str]) -> Result<String, String> {
        let name = args.first().ok_or("usage: struct NAME [-o] [ADDR]")?;
        let offsets = args.contains(&"-o");
        let addr = args
            .iter()
            .skip(1)
            .find(|a| **a != "-o")
            .map(|a| parse_addr(a).ok_or_else(|| format!("struct: invalid address: {a}")))
            .transpose()?;
        let (fields, size) = self
            .dwarf
            .struct_layout(name)
            .ok_or_else(|| format!("struct: invalid data structure reference: {name}"))?;
        if let Some(at) = addr {
            let a = self.analysis();
            if size > MAX_STRUCT_BYTES {
                return Err(format!(
                    "struct: {name} is {size} bytes; struct reads at most {MAX_STRUCT_BYTES}"
                ));
            }
            a.mem.read(at, size.max(1) as usize).map_err(|_| {
                format!(
                    "struct: invalid kernel virtual address: {at:x}  type: \"gdb_readmem_callback\""
                )
            })?;
            return self
                .struct_values(&a, name, at)
                .ok_or_else(|| format!("struct: cannot read {name}"));
        }
        let mut s = format!("struct {name} {{\n");
        for f in fields {
            if offsets {
                let _ = writeln!(s, "  [{}] {} {};", f.offset, f.type_name, f.name);
            } else {
                let _ = writeln!(s, "    {} {};", f.type_name, f.name);
            }
        }
        let _ = writeln!(s, "}}\nSIZE: {size}");
        Ok(s)
    }
}
