//! Places inside the kernel's globals and structs, for crash's member access: `p
//! runqueues[56].__lock` and `struct rq.__lock ADDR`. A path of array indices and struct
//! members is resolved through the DWARF types to an offset and the type found there. The
//! DWARF is untrusted: paths and type chains are bounded and every step can fail with a message.
use super::{DebugInfo, Field, LOCK_TYPES, Type, is_leaf};

/// Steps a path may have.
const MAX_STEPS: usize = 32;
/// Typedef and const links followed to reach a type.
const MAX_LINKS: usize = 16;

/// One step of a path: `[56]` or `.__lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Index(u64),
    Member(String),
}

/// Where a path leads, relative to the start of the variable or struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub offset: u64,
    pub size: u64,
    /// As crash prints it (`raw_spinlock_t`, `unsigned int`, `rq`, `task_struct *`).
    pub type_name: String,
    /// The members, when the place is a struct a kernel engineer looks into (not an atomic, a
    /// cell or a lock).
    pub fields: Option<Vec<Field>>,
    /// A qspinlock word: printed with the CPU that holds it.
    pub is_lock: bool,
    /// For an array: its element size and count.
    pub array: Option<(u64, u64)>,
}

/// Splits `runqueues[56].__lock` into the root name and its steps; `&` in front is allowed.
pub fn parse_path(expr: &str) -> Result<(String, Vec<Step>), String> {
    let expr = expr.trim().trim_start_matches('&');
    let root_end = expr.find(['[', '.']).unwrap_or(expr.len());
    let root = &expr[..root_end];
    if root.is_empty() || !root.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("invalid expression: {expr}"));
    }
    let mut steps = Vec::new();
    let mut rest = &expr[root_end..];
    while !rest.is_empty() {
        if steps.len() >= MAX_STEPS {
            return Err(format!("expression too long: {expr}"));
        }
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(|| format!("missing ] in {expr}"))?;
            let idx = r[..end].trim();
            let value = match idx.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => idx.parse::<u64>(),
            }
            .map_err(|_| format!("invalid index {idx} in {expr}"))?;
            steps.push(Step::Index(value));
            rest = &r[end + 1..];
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['[', '.']).unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid member in {expr}"));
            }
            steps.push(Step::Member(name.to_string()));
            rest = &r[end..];
        } else {
            return Err(format!("invalid expression: {expr}"));
        }
    }
    Ok((root.to_string(), steps))
}

impl DebugInfo {
    /// Follows typedefs and consts to the type they name.
    fn underlying(&self, mut ty: Option<usize>) -> Option<usize> {
        for _ in 0..MAX_LINKS {
            match ty.and_then(|t| self.types.get(&t)) {
                Some(Type::Named { name, target }) if !LOCK_TYPES.contains(&name.as_str()) => {
                    ty = *target
                }
                _ => return ty,
            }
        }
        ty
    }

    /// The place `path` leads to inside global variable `var`.
    pub fn var_place(&self, var: &str, path: &[Step]) -> Result<Place, String> {
        let ty = *self
            .vars
            .get(var)
            .ok_or_else(|| format!("no symbol: {var}"))?;
        self.place(Some(ty), var, path)
    }

    /// The place `path` leads to inside a `struct name` (`struct rq.__lock`).
    pub fn struct_place(&self, name: &str, path: &[Step]) -> Result<Place, String> {
        let ty = *self
            .structs
            .get(name)
            .ok_or_else(|| format!("invalid data structure reference: {name}"))?;
        self.place(Some(ty), name, path)
    }

    fn place(&self, ty: Option<usize>, root: &str, path: &[Step]) -> Result<Place, String> {
        let mut ty = self.underlying(ty);
        let mut offset: u64 = 0;
        let mut expr = root.to_string();
        for step in path.iter().take(MAX_STEPS) {
            match (step, ty.and_then(|t| self.types.get(&t))) {
                (Step::Index(i), Some(Type::Array { elem, count })) => {
                    if *i >= *count {
                        return Err(format!("{expr}[{i}]: index out of range (0..{count})"));
                    }
                    offset = offset
                        .checked_add(i.checked_mul(self.size_of(*elem)).ok_or("overflow")?)
                        .ok_or("overflow")?;
                    ty = self.underlying(*elem);
                    expr.push_str(&format!("[{i}]"));
                }
                (Step::Member(m), Some(Type::Struct { members, .. })) => {
                    let member = members
                        .iter()
                        .find(|x| x.name == *m)
                        .ok_or_else(|| format!("{expr} has no member {m}"))?;
                    offset = offset.checked_add(member.offset).ok_or("overflow")?;
                    ty = self.underlying(member.ty);
                    expr.push('.');
                    expr.push_str(m);
                }
                (Step::Index(_), _) => return Err(format!("{expr} is not an array")),
                (Step::Member(m), _) => {
                    return Err(format!("{expr} is not a struct (no member {m})"));
                }
            }
        }
        let found = ty.and_then(|t| self.types.get(&t));
        let (fields, is_lock, array) = match found {
            Some(Type::Struct { name, members, .. }) => (
                (!is_leaf(name)).then(|| self.fields(members)),
                LOCK_TYPES.contains(&name.as_str()),
                None,
            ),
            Some(Type::Named { name, .. }) => (None, LOCK_TYPES.contains(&name.as_str()), None),
            Some(Type::Array { elem, count }) => (None, false, Some((self.size_of(*elem), *count))),
            _ => (None, false, None),
        };
        Ok(Place {
            offset,
            size: self.size_of(ty),
            type_name: self.type_name(ty),
            fields,
            is_lock,
            array,
        })
    }

    /// Whether a type name (as `Field::type_name` spells it) is a lock word's.
    pub fn is_lock_type(type_name: &str) -> bool {
        LOCK_TYPES.contains(&type_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::loader::EMBEDDED_GUEST;

    #[test]
    fn paths_parse_into_steps() {
        assert_eq!(
            parse_path("&runqueues[56].__lock").unwrap(),
            (
                "runqueues".to_string(),
                vec![Step::Index(56), Step::Member("__lock".into())]
            )
        );
        assert_eq!(parse_path("rq").unwrap(), ("rq".to_string(), vec![]));
        assert_eq!(parse_path("x[0x10]").unwrap().1, vec![Step::Index(16)]);
        for bad in ["", "a[", "a[x]", "a.", "a..b", "a b", "[1]"] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn member_places_follow_the_dwarf_layout() {
        let d = DebugInfo::from_elf(EMBEDDED_GUEST).unwrap();
        let (esz, _) = d.array_of("runqueues").unwrap();
        let nr = d.member_offset("rq", "nr_running").unwrap();
        let p = d
            .var_place(
                "runqueues",
                &parse_path("runqueues[56].nr_running").unwrap().1,
            )
            .unwrap();
        assert_eq!((p.offset, p.size), (56 * esz + nr, 4));
        assert_eq!(p.type_name, "unsigned int");
        let lock = d
            .var_place("runqueues", &parse_path("runqueues[3].__lock").unwrap().1)
            .unwrap();
        assert!(lock.is_lock && lock.fields.is_none(), "{lock:?}");
        assert_eq!(lock.offset, 3 * esz);
        let rq = d.struct_place("rq", &[]).unwrap();
        assert!(rq.fields.unwrap().iter().any(|f| f.name == "curr"));
        assert!(d.var_place("runqueues", &[Step::Index(255)]).is_err());
        assert!(
            d.var_place("runqueues", &[Step::Member("x".into())])
                .is_err()
        );
        assert!(
            d.struct_place("rq", &[Step::Member("nope".into())])
                .is_err()
        );
        assert!(d.var_place("no_such_var", &[]).is_err());
    }
}
