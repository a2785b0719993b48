//! The dependency graph (Linux's `lock_list` entries on each class's `locks_after` and
//! `locks_before` lists) and the breadth-first search over it (`__bfs`) that finds cycles
//! (`check_noncircular`) and irq-usage conflicts (`check_irq_usage`,
//! `check_usage_forwards/backwards`).
use super::classes::{MAX_LOCKDEP_KEYS, NONE, Trace};
use super::held_locks::Lockdep;

/// Dependencies lockdep can keep (Linux: `MAX_LOCKDEP_ENTRIES`, 32768).
pub const MAX_LOCKDEP_ENTRIES: usize = 256;

/// One dependency `from -> to` ("`to` was taken while `from` was held"), on `from`'s
/// forward list and `to`'s backward list, with the stack where it was first seen.
#[derive(Clone, Copy)]
pub struct Dep {
    pub from: u8,
    pub to: u8,
    pub next_after: u16,
    pub next_before: u16,
    pub trace: Trace,
}

impl Dep {
    pub const EMPTY: Dep = Dep {
        from: 0,
        to: 0,
        next_after: NONE,
        next_before: NONE,
        trace: [0; super::classes::TRACE_LEN],
    };
}

/// The result of a search: the class found and, for every class reached, the dependency it
/// was reached by (`lock_list::parent`), so the path back to the root can be printed.
pub struct Path {
    pub found: u8,
    pub via: [u16; MAX_LOCKDEP_KEYS],
}

impl Path {
    /// The dependencies from the root to the found class, root side first.
    pub fn deps(&self, g: &Lockdep, forwards: bool, out: &mut [u16]) -> usize {
        let mut n = 0;
        let mut c = self.found;
        while self.via[c as usize] != NONE && n < out.len() {
            let d = self.via[c as usize];
            out[n] = d;
            n += 1;
            let dep = &g.deps[d as usize];
            c = if forwards { dep.from } else { dep.to };
        }
        out[..n].reverse();
        n
    }
}

impl Lockdep {
    /// Whether `from -> to` is already recorded.
    pub fn dep_exists(&self, from: u8, to: u8) -> bool {
        let mut d = self.classes[from as usize].after;
        while d != NONE {
            let dep = &self.deps[d as usize];
            if dep.to == to {
                return true;
            }
            d = dep.next_after;
        }
        false
    }

    /// Records `from -> to`; false when the table is full.
    pub fn add_dep(&mut self, from: u8, to: u8, trace: Trace) -> bool {
        if self.nr_deps >= MAX_LOCKDEP_ENTRIES {
            return false;
        }
        let i = self.nr_deps as u16;
        self.deps[self.nr_deps] = Dep {
            from,
            to,
            next_after: self.classes[from as usize].after,
            next_before: self.classes[to as usize].before,
            trace,
        };
        self.classes[from as usize].after = i;
        self.classes[to as usize].before = i;
        self.nr_deps += 1;
        true
    }

    /// `__bfs`: breadth-first from `root` along forward (`locks_after`) or backward
    /// (`locks_before`) dependencies, to the first class `matches` accepts (not the root).
    pub fn bfs(&self, root: u8, forwards: bool, matches: impl Fn(u8) -> bool) -> Option<Path> {
        let mut via = [NONE; MAX_LOCKDEP_KEYS];
        let mut seen = [false; MAX_LOCKDEP_KEYS];
        let mut queue = [0u8; MAX_LOCKDEP_KEYS];
        let (mut head, mut tail) = (0, 1);
        queue[0] = root;
        seen[root as usize] = true;
        while head < tail {
            let c = queue[head];
            head += 1;
            let class = &self.classes[c as usize];
            let mut d = if forwards { class.after } else { class.before };
            while d != NONE {
                let dep = &self.deps[d as usize];
                let (next, link) = if forwards {
                    (dep.to, dep.next_after)
                } else {
                    (dep.from, dep.next_before)
                };
                if !seen[next as usize] {
                    seen[next as usize] = true;
                    via[next as usize] = d;
                    if matches(next) {
                        return Some(Path { found: next, via });
                    }
                    queue[tail] = next;
                    tail += 1;
                }
                d = link;
            }
        }
        None
    }
}
