//! `p` and `struct`: globals, struct layouts and their values, with member access as crash has
//! it (`p runqueues[56].__lock`, `struct rq.__lock ADDR`, `struct rq.nr_running -o`). Paths
//! resolve through the DWARF (`image::dwarf::query`); a lock word prints with its owner.
use std::fmt::Write as _;

use super::{Inspector, parse_addr};
use crate::analysis::Analysis;
use crate::image::DebugInfo;
use crate::image::dwarf::{Field, Place, Step, parse_path};

/// Elements of a nested array `p` lists at most.
const MAX_ELEMS: u64 = 256;

/// Reads an integer of `size` (1 to 8) bytes.
fn value(a: &Analysis<'_>, at: u64, size: u64) -> Option<u64> {
    let b = a.mem.read(at, size.clamp(1, 8) as usize).ok()?;
    let mut v = [0u8; 8];
    v[..b.len()].copy_from_slice(&b);
    Some(u64::from_le_bytes(v))
}

/// A lock word with its owner: the queued lock's locked byte is the owner CPU + 1; a ticket
/// lock (3.10) is found in the guest's `arch_spin_held` (`Analysis::spin_owner`).
fn lock_text(a: &Analysis<'_>, at: u64, word: u64) -> String {
    match a.spin_owner(at) {
        Some(cpu) => format!("{word:#010x} (locked by CPU {cpu})"),
        None => format!("{word:#010x} (unlocked)"),
    }
}

/// One member's value: an integer in hex, a lock word with its owner, or its size.
fn field_value(a: &Analysis<'_>, at: u64, f: &Field) -> String {
    let v = || value(a, at.wrapping_add(f.offset), f.size);
    if DebugInfo::is_lock_type(&f.type_name) {
        let lock = at.wrapping_add(f.offset);
        return v().map_or_else(|| "?".into(), |w| lock_text(a, lock, w));
    }
    match f.size {
        1 | 2 | 4 | 8 => v().map_or_else(|| "?".into(), |v| format!("{v:#x}")),
        _ => format!("{{...}} ({} bytes)", f.size),
    }
}

/// `struct NAME {` members and values `}` at `at`.
fn struct_body(a: &Analysis<'_>, name: &str, fields: &[Field], at: u64) -> String {
    let mut s = format!("struct {name} {{\n");
    for f in fields {
        let _ = writeln!(
            s,
            "  {} {} = {},",
            f.type_name,
            f.name,
            field_value(a, at, f)
        );
    }
    s.push_str("}\n");
    s
}

/// The value of whatever `place` is, at `at`.
fn place_value(a: &Analysis<'_>, p: &Place, at: u64) -> String {
    if let Some(fields) = &p.fields {
        return struct_body(a, &p.type_name, fields, at);
    }
    if p.is_lock {
        return value(a, at, 4).map_or_else(|| "?".into(), |w| lock_text(a, at, w)) + "\n";
    }
    if let Some((esz, count)) = p.array {
        let mut s = format!("{{ {count} elements, {esz} bytes each }}\n");
        for i in 0..count.min(MAX_ELEMS) {
            let _ = writeln!(s, "  [{i}]: {:016x}", at.wrapping_add(i.wrapping_mul(esz)));
        }
        return s;
    }
    match p.size {
        1 | 2 | 4 | 8 => {
            value(a, at, p.size).map_or_else(|| "?".into(), |v| format!("{v:#x}")) + "\n"
        }
        n => format!("{{...}} ({n} bytes)\n"),
    }
}

impl Inspector {
    pub(super) fn print(&self, args: &[&str]) -> Result<String, String> {
        let [expr] = args else {
            return Err("usage: p SYMBOL | p SYMBOL[INDEX] | p SYMBOL[INDEX].MEMBER...".into());
        };
        let (name, steps) = parse_path(expr).map_err(|e| format!("p: {e}"))?;
        let base = self
            .syms
            .addr_of(&name)
            .ok_or_else(|| format!("p: no symbol: {name}"))?;
        let a = self.analysis();
        let place = self
            .dwarf
            .var_place(&name, &steps)
            .map_err(|e| format!("p: {e}"))?;
        let at = base.wrapping_add(place.offset);
        if steps.is_empty() && place.array.is_some() {
            // As crash prints a per-CPU variable: the address of each CPU's element.
            let (esz, count) = place.array.unwrap_or_default();
            let mut s = format!(
                "{name} = {{ {} {count} elements, {esz} bytes each }}\n",
                place.type_name
            );
            for i in 0..count.min(self.snap.cpus.len() as u64) {
                let _ = writeln!(
                    s,
                    "  [{i}]: {:016x}",
                    base.wrapping_add(i.wrapping_mul(esz))
                );
            }
            return Ok(s);
        }
        a.mem
            .read(at, place.size.clamp(1, 8) as usize)
            .map_err(|_| format!("p: cannot access memory at address {at:#x}"))?;
        Ok(format!(
            "{} @ {at:016x} ({}) = {}",
            expr.trim_start_matches('&'),
            place.type_name,
            place_value(&a, &place, at)
        ))
    }

    pub(super) fn struct_cmd(&self, args: &[&str]) -> Result<String, String> {
        const USAGE: &str = "usage: struct NAME[.MEMBER...] [-o] [ADDR|SYMBOL|EXPR]";
        let spec = args.first().ok_or(USAGE)?;
        let offsets = args.contains(&"-o");
        let addr = match args
            .iter()
            .skip(1)
            .filter(|a| **a != "-o")
            .collect::<Vec<_>>()[..]
        {
            [] => None,
            [a] => Some(
                self.data_addr(a)
                    .or_else(|_| parse_addr(a).ok_or_else(|| format!("invalid address: {a}")))
                    .map_err(|e| format!("struct: {e}"))?,
            ),
            _ => return Err(USAGE.into()),
        };
        let (name, steps) = parse_path(spec).map_err(|e| format!("struct: {e}"))?;
        let (all_fields, size) = self
            .dwarf
            .struct_layout(&name)
            .ok_or_else(|| format!("struct: invalid data structure reference: {name}"))?;
        let place = self
            .dwarf
            .struct_place(&name, &steps)
            .map_err(|e| format!("struct: {e}"))?;
        let member = match steps.last() {
            Some(Step::Member(m)) => Some(m.clone()),
            Some(Step::Index(_)) => {
                return Err("struct: a member, not an index, ends NAME.MEMBER".into());
            }
            None => None,
        };
        let a = self.analysis();
        if let Some(at) = addr {
            a.mem.read(at, size.max(1) as usize).map_err(|_| {
                format!(
                    "struct: invalid kernel virtual address: {at:x}  type: \"gdb_readmem_callback\""
                )
            })?;
            return Ok(match &member {
                // crash: `struct rq.nr_running ADDR` prints `  nr_running = 1`.
                Some(m) => format!(
                    "  {m} = {}",
                    place_value(&a, &place, at.wrapping_add(place.offset))
                ),
                None => struct_body(&a, &name, &all_fields, at),
            });
        }
        let fields: Vec<Field> = match &member {
            Some(m) => vec![Field {
                offset: place.offset,
                size: place.size,
                type_name: place.type_name.clone(),
                name: m.clone(),
            }],
            None => all_fields,
        };
        let mut s = format!("struct {name} {{\n");
        for f in fields {
            if offsets {
                let _ = writeln!(s, "  [{}] {} {};", f.offset, f.type_name, f.name);
            } else {
                let _ = writeln!(s, "    {} {};", f.type_name, f.name);
            }
        }
        s.push('}');
        if member.is_none() {
            let _ = write!(s, "\nSIZE: {size}");
        }
        s.push('\n');
        Ok(s)
    }
}
