//! Locks from the snapshot: which CPU spins on which lock in which context (the guest's
//! `qspinlock_spinning_on` table), and who holds it (the lab's lock word names its owner).
use super::Analysis;
use lockvmm_abi::knob::KernelVersion;
use lockvmm_abi::locking::{
    KERNEL_VERSION_SYMBOL, LockContext, SPINNING_ON_SYMBOL, TICKET_HELD_MAX, TICKET_HELD_SYMBOL,
    lock_owner, spinning_on_slot,
};

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
                let holder = self.spin_owner(lock).or_else(|| self.first_reader(lock));
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
                let holder = self.spin_owner(lock)?;
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

    /// The Linux generation the snapshot's kernel replayed (`lockvmm_kernel_version`), 6.6
    /// when it does not say.
    pub fn kernel_version(&self) -> KernelVersion {
        self.syms
            .addr_of(KERNEL_VERSION_SYMBOL)
            .and_then(|a| self.mem.u32(a).ok())
            .and_then(KernelVersion::from_raw)
            .unwrap_or(KernelVersion::V6_6)
    }

    /// Whether spinlock words are tickets (3.10, 2.6) rather than queued spinlocks.
    pub fn ticket_spinlocks(&self) -> bool {
        matches!(
            self.kernel_version(),
            KernelVersion::V3_10 | KernelVersion::V2_6
        )
    }

    /// The CPU holding the spinlock at `lock`: the queued lock's word names it; a ticket lock
    /// is found in the guest's `arch_spin_held` table (a held ticket lock has head != tail).
    pub fn spin_owner(&self, lock: u64) -> Option<usize> {
        let word = self.mem.u32(lock).ok()?;
        if !self.ticket_spinlocks() {
            return lock_owner(word);
        }
        let (head, tail) = lockvmm_abi::locking::ticket_head_tail(word);
        if head == tail {
            return None;
        }
        let base = self.syms.addr_of(TICKET_HELD_SYMBOL)?;
        (0..self.nr_cpus()).find(|&cpu| {
            (0..TICKET_HELD_MAX).any(|i| {
                let at = base + ((cpu * TICKET_HELD_MAX + i) * 8) as u64;
                self.mem.u64(at).ok() == Some(lock)
            })
        })
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
