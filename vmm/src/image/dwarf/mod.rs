//! The guest kernel's types and variables from its DWARF (gimli): struct layouts for
//! `struct NAME -o`, and addresses named as C expressions (`runqueues[56].__lock`).
//!
//! Type names print the way `crash` prints C: the guest's Rust integer and atomic types map to
//! `unsigned int`, `unsigned long`, …; the kernel's structs carry Linux's names (`rq`,
//! `raw_spinlock_t`, `task_struct`).
use std::collections::HashMap;

use crate::image::Symbols;

mod locks;

/// The types whose instances are one spinlock word (their owner is in the locked byte, see
/// `lockvmm_abi::locking`).
const LOCK_TYPES: [&str; 2] = ["raw_spinlock_t", "qspinlock"];
mod names;
mod parse;
mod query;

pub use names::qualified_globals;
pub use query::{Place, Step, parse_path};

#[derive(Debug, Clone)]
enum Type {
    Base {
        name: String,
        size: u64,
    },
    Struct {
        name: String,
        size: u64,
        members: Vec<Member>,
    },
    Pointer {
        target: Option<usize>,
    },
    Array {
        elem: Option<usize>,
        count: u64,
    },
    Named {
        name: String,
        target: Option<usize>,
    },
}

#[derive(Debug, Clone)]
struct Member {
    name: String,
    offset: u64,
    ty: Option<usize>,
}

/// One member of a struct layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub offset: u64,
    pub size: u64,
    pub type_name: String,
    pub name: String,
}

#[derive(Debug, Default, Clone)]
pub struct DebugInfo {
    types: HashMap<usize, Type>,
    /// Struct name → type (the first definition with members wins).
    structs: HashMap<String, usize>,
    /// Variable name → type.
    vars: HashMap<String, usize>,
}

/// Rust types shown as the C types a kernel engineer expects.
fn c_name(rust: &str) -> Option<&'static str> {
    Some(match rust {
        "u8" => "unsigned char",
        "u16" => "unsigned short",
        "u32" | "AtomicU32" => "unsigned int",
        "u64" | "usize" | "AtomicU64" | "AtomicUsize" => "unsigned long",
        "i8" => "signed char",
        "i16" => "short",
        "i32" | "AtomicI32" => "int",
        "i64" | "isize" | "AtomicI64" => "long",
        "bool" | "AtomicBool" => "bool",
        _ => return None,
    })
}

/// Types whose insides are not interesting to a kernel engineer: integers, atomics, and the
/// lock types (`&lab_locks[1]` is the lock, not its first member).
fn is_leaf(name: &str) -> bool {
    c_name(name).is_some()
        || name.starts_with("UnsafeCell")
        || name.starts_with("Option")
        || matches!(name, "raw_spinlock_t" | "qspinlock" | "mcs_spinlock")
}

/// How deep a type may nest (typedef of array of struct …) before the host stops following it:
/// a real kernel type is a few levels deep, and a hostile DWARF may make a cycle.
const MAX_TYPE_DEPTH: u32 = 32;

impl DebugInfo {
    fn size_of(&self, ty: Option<usize>) -> u64 {
        self.size_at(ty, 0)
    }

    fn size_at(&self, ty: Option<usize>, depth: u32) -> u64 {
        if depth > MAX_TYPE_DEPTH {
            return 0;
        }
        match ty.and_then(|t| self.types.get(&t)) {
            Some(Type::Base { size, .. } | Type::Struct { size, .. }) => *size,
            Some(Type::Pointer { .. }) => 8,
            Some(Type::Array { elem, count }) => {
                self.size_at(*elem, depth + 1).saturating_mul(*count)
            }
            Some(Type::Named { target, .. }) => self.size_at(*target, depth + 1),
            None => 0,
        }
    }

    /// The C-style name of a type (`raw_spinlock_t`, `unsigned int`, `struct task_struct *`).
    fn type_name(&self, ty: Option<usize>) -> String {
        self.name_at(ty, 0)
    }

    fn name_at(&self, ty: Option<usize>, depth: u32) -> String {
        if depth > MAX_TYPE_DEPTH {
            return "(type nests too deep)".into();
        }
        match ty.and_then(|t| self.types.get(&t)) {
            Some(Type::Base { name, .. }) => c_name(name).map_or(name.clone(), str::to_string),
            Some(Type::Struct { name, .. }) => c_name(name).map_or(name.clone(), str::to_string),
            Some(Type::Pointer { target }) => format!("{} *", self.name_at(*target, depth + 1)),
            Some(Type::Array { elem, count }) => {
                format!("{} [{count}]", self.name_at(*elem, depth + 1))
            }
            Some(Type::Named { name, .. }) => name.clone(),
            None => "void".into(),
        }
    }

    /// `ty` with its typedefs (and const, enum wrappers) peeled off, at most `MAX_TYPE_DEPTH`
    /// of them: a typedef that names itself ends here.
    fn strip_named(&self, mut ty: Option<usize>) -> Option<usize> {
        for _ in 0..MAX_TYPE_DEPTH {
            match ty.and_then(|t| self.types.get(&t)) {
                Some(Type::Named { target, .. }) => ty = *target,
                _ => return ty,
            }
        }
        None
    }

    /// `struct NAME -o`: the members with their offsets, and the struct's size.
    pub fn struct_layout(&self, name: &str) -> Option<(Vec<Field>, u64)> {
        let ty = *self.structs.get(name)?;
        let Some(Type::Struct { members, size, .. }) = self.types.get(&ty) else {
            return None;
        };
        Some((self.fields(members), *size))
    }

    /// A struct's members as `struct -o` lists them.
    fn fields(&self, members: &[Member]) -> Vec<Field> {
        members
            .iter()
            .map(|m| Field {
                offset: m.offset,
                size: self.size_of(m.ty),
                type_name: self.type_name(m.ty),
                name: m.name.clone(),
            })
            .collect()
    }

    /// Names of every struct with members (for completion and errors).
    pub fn struct_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.structs.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// The type of a global variable, as a C name.
    pub fn var_type_name(&self, var: &str) -> Option<String> {
        self.vars.get(var).map(|&t| self.type_name(Some(t)))
    }

    /// Element size and count of a global array variable.
    pub fn array_of(&self, var: &str) -> Option<(u64, u64)> {
        let ty = self.strip_named(self.vars.get(var).copied());
        match ty.and_then(|t| self.types.get(&t)) {
            Some(Type::Array { elem, count }) => Some((self.size_of(*elem), *count)),
            _ => None,
        }
    }

    /// The type name and size of a global variable's elements (arrays) or of itself.
    pub fn var_elem(&self, var: &str) -> Option<(String, u64)> {
        let ty = self.strip_named(self.vars.get(var).copied());
        match ty.and_then(|t| self.types.get(&t)) {
            Some(Type::Array { elem, .. }) => Some((self.type_name(*elem), self.size_of(*elem))),
            Some(_) => Some((self.type_name(ty), self.size_of(ty))),
            None => None,
        }
    }

    /// Offset of `member` in struct `name`.
    pub fn member_offset(&self, name: &str, member: &str) -> Option<u64> {
        let (fields, _) = self.struct_layout(name)?;
        fields.iter().find(|f| f.name == member).map(|f| f.offset)
    }

    /// Names `addr` as a C expression rooted at a global (`runqueues[56].__lock`): array
    /// indices and struct members are followed until the address is the start of a member.
    pub fn describe(&self, syms: &Symbols, addr: u64) -> Option<String> {
        let loc = syms.lookup(addr)?;
        let ty = *self.vars.get(&loc.name)?;
        let mut out = loc.name.clone();
        self.descend(Some(ty), loc.offset, &mut out, 0);
        Some(out)
    }

    fn descend(&self, ty: Option<usize>, off: u64, out: &mut String, depth: u32) {
        if depth > MAX_TYPE_DEPTH / 2 {
            return;
        }
        match ty.and_then(|t| self.types.get(&t)) {
            Some(Type::Array { elem, count }) => {
                let esz = self.size_of(*elem).max(1);
                let idx = off / esz;
                if idx < (*count).max(1) {
                    out.push_str(&format!("[{idx}]"));
                    self.descend(*elem, off % esz, out, depth + 1);
                } else {
                    out.push_str(&format!("+{off}"));
                }
            }
            Some(Type::Struct { name, members, .. }) if !is_leaf(name) => {
                let m = members.iter().rev().find(|m| {
                    m.offset <= off && off < m.offset.saturating_add(self.size_of(m.ty).max(1))
                });
                match m {
                    Some(m) => {
                        out.push('.');
                        out.push_str(&m.name);
                        if off > m.offset {
                            self.descend(m.ty, off - m.offset, out, depth + 1);
                        }
                    }
                    None if off > 0 => out.push_str(&format!("+{off}")),
                    None => {}
                }
            }
            Some(Type::Named { target, .. }) => self.descend(*target, off, out, depth + 1),
            _ if off > 0 => out.push_str(&format!("+{off}")),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::loader::EMBEDDED_GUEST;

    fn guest() -> (DebugInfo, Symbols) {
        (
            DebugInfo::from_elf(EMBEDDED_GUEST).unwrap(),
            Symbols::from_elf(EMBEDDED_GUEST).unwrap(),
        )
    }

    /// Hostile DWARF: an array of itself, a typedef of itself, a struct whose every member is
    /// itself. Every query ends, with a size of 0 or a truncated name, never a stack overflow
    /// or a loop.
    #[test]
    fn type_cycles_end_every_walk() {
        let mut d = DebugInfo::default();
        d.types.insert(
            1,
            Type::Array {
                elem: Some(1),
                count: 4,
            },
        );
        d.types.insert(
            2,
            Type::Named {
                name: "loop_t".into(),
                target: Some(2),
            },
        );
        let members = (0..64)
            .map(|i| Member {
                name: format!("m{i}"),
                offset: i,
                ty: Some(3),
            })
            .collect();
        d.types.insert(
            3,
            Type::Struct {
                name: "s".into(),
                size: 64,
                members,
            },
        );
        d.types.insert(4, Type::Pointer { target: Some(4) });
        for (v, t) in [("array", 1), ("named", 2), ("tree", 3), ("ptr", 4)] {
            d.vars.insert(v.into(), t);
            let _ = (d.array_of(v), d.var_elem(v), d.var_type_name(v));
        }
        d.structs.insert("s".into(), 3);
        assert_eq!(d.size_of(Some(1)), 0);
        assert!(d.type_name(Some(4)).starts_with("(type nests too deep) *"));
        assert_eq!(d.array_of("named"), None);
        assert!(d.struct_layout("s").is_some());
        assert!(d.spinlocks().is_empty());
        let syms = Symbols::default();
        assert_eq!(d.describe(&syms, 0), None);
        let mut out = String::new();
        d.descend(Some(3), 63, &mut out, 0);
        d.descend(Some(1), 1 << 40, &mut out, 0);
    }

    #[test]
    fn struct_rq_starts_with_its_raw_spinlock() {
        let (d, _) = guest();
        let (fields, size) = d.struct_layout("rq").expect("struct rq");
        assert_eq!(
            fields[0],
            Field {
                offset: 0,
                size: 4,
                type_name: "raw_spinlock_t".into(),
                name: "__lock".into()
            }
        );
        assert_eq!(
            (
                fields[1].offset,
                fields[1].type_name.as_str(),
                fields[1].name.as_str()
            ),
            (4, "unsigned int", "nr_running")
        );
        assert!(size >= 8);
    }

    #[test]
    fn per_cpu_addresses_read_as_c_expressions() {
        let (d, s) = guest();
        let (esz, count) = d.array_of("runqueues").unwrap();
        assert_eq!(count, lockvmm_abi::NR_CPUS as u64);
        let base = s.addr_of("runqueues").unwrap();
        assert_eq!(
            d.describe(&s, base + 56 * esz).as_deref(),
            Some("runqueues[56].__lock")
        );
        let nr = d.member_offset("rq", "nr_running").unwrap();
        assert_eq!(
            d.describe(&s, base + 3 * esz + nr).as_deref(),
            Some("runqueues[3].nr_running")
        );
    }
}
