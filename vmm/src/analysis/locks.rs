//! Locks from the snapshot: which CPU spins on which lock in which context (the guest's
//! `qspinlock_spinning_on` table), and who holds it (the lab's lock word names its owner).
use super::Analysis;
use lockvmm_abi::locking::{LockContext, SPINNING_ON_SYMBOL, lock_owner, spinning_on_slot};

use crate::image::dwarf::parse_path;
use crate::state::{HeldLock, LockWait};

impl Analysis<'_> {
    /// The locks CPUs are spinning on (`qspinlock_spinning_on`), with their holders.
    pub fn lock_waits(&self) -> Vec<LockWait> {
        let mut out = Vec::new();
        let Some(base) = self.syms.addr_of(SPINNING_ON_SYMBOL) else {
            return out;
        };
        for cpu in 0..self.nr_cpus() {
            for ctx in LockContext::ALL {
                let Ok(lock) = self.mem.u64(base + spinning_on_slot(cpu, ctx) as u64 * 8) else {
                    continue;
                };
                if lock == 0 {
                    continue;
                }
                let holder = self
                    .mem
                    .u32(lock)
                    .ok()
                    .and_then(lock_owner)
                    .or_else(|| self.first_reader(lock));
                out.push(LockWait {
                    cpu,
                    context: ctx.into(),
                    lock,
                    lock_name: self.name_of(lock),
                    holder,
                });
            }
        }
        out
    }

    /// Every kernel spinlock whose word names an owner in the snapshot (the lab's locked byte
    /// holds the owner's CPU + 1), in address order.
    pub fn held_locks(&self) -> Vec<HeldLock> {
        let mut out: Vec<HeldLock> = self
            .dwarf
            .spinlocks()
            .into_iter()
            .filter_map(|(var, off, _)| {
                let lock = self.syms.addr_of(&var)?.checked_add(off)?;
                let holder = lock_owner(self.mem.u32(lock).ok()?)?;
                (holder < self.snap.cpus.len()).then(|| HeldLock {
                    lock,
                    lock_name: self.name_of(lock),
                    holder,
                })
            })
            .collect();
        out.sort_by_key(|h| h.lock);
        out.dedup_by_key(|h| h.lock);
        out
    }

    /// For a queued rwlock held for reading: the first CPU that holds a read lock on it (the
    /// lab's `qrwlock::readers`). Whether the word is an rwlock's comes from the DWARF type at
    /// that address.
    fn first_reader(&self, lock: u64) -> Option<usize> {
        // `describe` names the innermost member (`….cnts`); an rwlock starts here if one of the
        // path's prefixes is a `qrwlock` at this very address.
        let (var, path) = parse_path(&self.dwarf.describe(self.syms, lock)?).ok()?;
        let base = self.syms.addr_of(&var)?;
        let is_rwlock = (0..=path.len()).rev().any(|n| {
            self.dwarf
                .var_place(&var, &path[..n])
                .is_ok_and(|p| p.type_name == "qrwlock" && base.checked_add(p.offset) == Some(lock))
        });
        if !is_rwlock {
            return None;
        }
        let off = self.dwarf.member_offset("qrwlock", "readers")?;
        let counts = self
            .mem
            .read(lock.checked_add(off)?, self.snap.cpus.len())
            .ok()?;
        counts.iter().position(|&n| n != 0)
    }
}
