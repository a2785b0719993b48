//! Where the kernel's spinlocks are: every `raw_spinlock_t` inside a global variable (arrays of
//! per-CPU structures included), found through the types, so the report can say which CPU
//! holds which lock without a list of lock names.
use super::{DebugInfo, LOCK_TYPES, Type};

/// Nesting the walk follows (a kernel struct is a few levels deep; DWARF may be hostile).
const MAX_DEPTH: u32 = 12;
/// Locks the walk reports at most (255 CPUs × a few per-CPU locks, with room).
const MAX_LOCKS: usize = 16384;
/// Type nodes the whole walk visits at most: a struct whose members are itself would otherwise
/// branch at every level (members^depth).
const MAX_STEPS: usize = 1 << 20;

impl DebugInfo {
    /// Every spinlock in the kernel's global variables: (offset from the variable, C
    /// expression suffix like `[56].__lock`), per variable name.
    pub fn spinlocks(&self) -> Vec<(String, u64, String)> {
        let mut out = Vec::new();
        let mut vars: Vec<(&String, &usize)> = self.vars.iter().collect();
        vars.sort();
        let mut steps = 0;
        for (name, &ty) in vars {
            let mut found = Vec::new();
            self.locks_in(Some(ty), 0, String::new(), 0, &mut steps, &mut found);
            for (off, path) in found {
                if out.len() >= MAX_LOCKS {
                    return out;
                }
                out.push((name.clone(), off, path));
            }
        }
        out
    }

    fn locks_in(
        &self,
        ty: Option<usize>,
        off: u64,
        path: String,
        depth: u32,
        steps: &mut usize,
        out: &mut Vec<(u64, String)>,
    ) {
        *steps += 1;
        if depth > MAX_DEPTH || out.len() >= MAX_LOCKS || *steps > MAX_STEPS {
            return;
        }
        match ty.and_then(|t| self.types.get(&t)) {
            Some(Type::Struct { name, members, .. }) => {
                if LOCK_TYPES.contains(&name.as_str()) {
                    out.push((off, path));
                    return;
                }
                for m in members {
                    self.locks_in(
                        m.ty,
                        off.saturating_add(m.offset),
                        format!("{path}.{}", m.name),
                        depth + 1,
                        steps,
                        out,
                    );
                }
            }
            Some(Type::Array { elem, count }) => {
                // Only arrays whose elements hold a lock are worth walking element by element.
                let mut probe = Vec::new();
                self.locks_in(*elem, 0, String::new(), depth + 1, steps, &mut probe);
                if probe.is_empty() {
                    return;
                }
                let size = self.size_of(*elem);
                for i in 0..*count {
                    for (o, p) in &probe {
                        if out.len() >= MAX_LOCKS {
                            return;
                        }
                        out.push((
                            off.saturating_add(i.saturating_mul(size))
                                .saturating_add(*o),
                            format!("{path}[{i}]{p}"),
                        ));
                    }
                }
            }
            Some(Type::Named { name, target }) => {
                if LOCK_TYPES.contains(&name.as_str()) {
                    out.push((off, path));
                } else {
                    self.locks_in(*target, off, path, depth + 1, steps, out);
                }
            }
            _ => {}
        }
    }
}
