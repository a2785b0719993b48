//! Locks from the snapshot: which CPU spins on which lock in which context (the guest's
//! `qspinlock_spinning_on` table), and who holds it (the lab's lock word names its owner).
use super::Analysis;
use crate::state::{Context, LockWait};

impl Analysis<'_> {
    /// The locks CPUs are spinning on (`qspinlock_spinning_on`), with their holders.
    pub fn lock_waits(&self) -> Vec<LockWait> {
        let mut out = Vec::new();
        let Some(base) = self.syms.addr_of("qspinlock_spinning_on") else {
            return out;
        };
        for cpu in 0..self.nr_cpus() {
            for (ctx, context) in Context::ALL.into_iter().enumerate() {
                let Ok(lock) = self.mem.u64(base + (cpu * 4 + ctx) as u64 * 8) else {
                    continue;
                };
                if lock == 0 {
                    continue;
                }
                let holder = self
                    .mem
                    .u32(lock)
                    .ok()
                    .and_then(|w| (w & 0xff).checked_sub(1))
                    .map(|c| c as usize);
                out.push(LockWait {
                    cpu,
                    context,
                    lock,
                    lock_name: self.name_of(lock),
                    holder,
                });
            }
        }
        out
    }
}
