//! C expressions rooted at a global (`runqueues[3].__lock`), resolved to an address and a type
//! through the DWARF: how a scenario names a kernel lock, and how `p` reads a member.
use super::{DebugInfo, Type};
use crate::image::Symbols;

/// Nesting of `[i]` and `.member` an expression may have.
const MAX_STEPS: usize = 16;

impl DebugInfo {
    /// The address and C type name of `expr` (`var`, `var[i]`, `var[i].member.member[j]`).
    pub fn address_of(&self, syms: &Symbols, expr: &str) -> Option<(u64, String)> {
        let expr = expr.trim();
        let end = expr.find(['[', '.']).unwrap_or(expr.len());
        let var = &expr[..end];
        let mut addr = syms.addr_of(var)?;
        let mut ty = self.vars.get(var).copied();
        let mut rest = &expr[end..];
        for _ in 0..MAX_STEPS {
            ty = self.strip_names(ty);
            if rest.is_empty() {
                return Some((addr, self.type_name(ty)));
            }
            if let Some(r) = rest.strip_prefix('[') {
                let close = r.find(']')?;
                let idx: u64 = r[..close].trim().parse().ok()?;
                let Some(Type::Array { elem, count }) = ty.and_then(|t| self.types.get(&t)) else {
                    return None;
                };
                if idx >= *count {
                    return None;
                }
                addr = addr.checked_add(idx.checked_mul(self.size_of(*elem))?)?;
                ty = *elem;
                rest = &r[close + 1..];
            } else if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['[', '.']).unwrap_or(r.len());
                let name = &r[..end];
                let Some(Type::Struct { members, .. }) = ty.and_then(|t| self.types.get(&t)) else {
                    return None;
                };
                let m = members.iter().find(|m| m.name == name)?;
                addr = addr.checked_add(m.offset)?;
                ty = m.ty;
                rest = &r[end..];
            } else {
                return None;
            }
        }
        None
    }

    /// Follows typedef-like `Named` types to what they name (bounded: DWARF is untrusted).
    fn strip_names(&self, mut ty: Option<usize>) -> Option<usize> {
        for _ in 0..MAX_STEPS {
            match ty.and_then(|t| self.types.get(&t)) {
                Some(Type::Named { name, target }) if !super::is_leaf(name) => ty = *target,
                _ => break,
            }
        }
        ty
    }
}
