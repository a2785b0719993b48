//! Lock classes, keyed as Linux keys them (`kernel/locking/lockdep.c`, `look_up_lock_class` /
//! `register_lock_class`): a static lock is its own class (its address is the key); a lock
//! initialised at one site for many objects is one class for all of them, named after that
//! site — every `runqueues[N].__lock` is `&rq->__lock` (`raw_spin_lock_init(&rq->__lock)` in
//! `sched_init`), every timer base's lock `&base->lock`. The scenario's own locks
//! (`lab_locks[i]`, `lab_mutexes[i]`, `lab_rwlocks[i]`) are each their own class, named as
//! the scenario names them (the host passes the names in the program's `LockDesc`).
use core::fmt::{self, Write};

use lockvmm_abi::NR_CPUS;
use lockvmm_abi::lockdep::CLASS_NAME_LEN;
use lockvmm_abi::program::MAX_LOCKS;

use crate::kernel::locking::lockdep::LockClassKind;
use crate::kernel::locking::mutex::Mutex;
use crate::kernel::locking::qrwlock::qrwlock;
use crate::kernel::locking::semaphore::Semaphore;
use crate::kernel::locking::spinlock::RawSpinlock;

/// Classes lockdep can know (Linux: `MAX_LOCKDEP_KEYS`, 8191).
pub const MAX_LOCKDEP_KEYS: usize = 64;
/// Return addresses kept per stack trace (Linux keeps whole traces in `stack_trace[]`).
pub const TRACE_LEN: usize = 8;
/// A stack trace: return addresses from a frame-pointer walk, 0-terminated.
pub type Trace = [u64; TRACE_LEN];
/// `LOCK_USAGE_STATES` plus `LOCK_USED`.
pub const USAGE_BITS: usize = 9;
/// No dependency (end of a list).
pub const NONE: u16 = u16::MAX;

/// How a class is named.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ClassName {
    /// The name of the init site or static (`&rq->__lock`, `logbuf_lock`).
    Static(&'static str),
    /// Scenario lock `i`: the name the scenario gives it.
    Lab(u8),
    /// A lock lockdep has no name for: its address (Linux would print its symbol).
    Addr(u64),
}

impl fmt::Display for ClassName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ClassName::Static(s) => f.write_str(s),
            ClassName::Lab(i) => match crate::lab::locks::scenario_lock_name(i as usize) {
                Some(n) => f.write_str(lockvmm_abi::lockdep::c_name(n)),
                None => write!(f, "lab_locks[{i}]"),
            },
            ClassName::Addr(a) => write!(f, "{a:#x}"),
        }
    }
}

impl ClassName {
    /// The name as the host's [`SplatRecord`](lockvmm_abi::lockdep::SplatRecord) holds it.
    pub fn to_bytes(self) -> [u8; CLASS_NAME_LEN] {
        struct Buf([u8; CLASS_NAME_LEN], usize);
        impl Write for Buf {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                for &b in s.as_bytes() {
                    if self.1 + 1 < CLASS_NAME_LEN {
                        self.0[self.1] = b;
                        self.1 += 1;
                    }
                }
                Ok(())
            }
        }
        let mut b = Buf([0; CLASS_NAME_LEN], 0);
        let _ = write!(b, "{self}");
        b.0
    }
}

/// `struct lock_class`, the parts this lockdep uses.
#[derive(Clone, Copy)]
pub struct LockClass {
    pub key: u64,
    pub name: ClassName,
    /// `wait_type_inner` (`LD_WAIT_SPIN` = 2 for raw spinlocks and rwlocks, `LD_WAIT_SLEEP`
    /// = 3 for mutexes, without `CONFIG_PROVE_RAW_LOCK_NESTING`).
    pub wait_type: u8,
    /// `usage_mask`: bit `n` = `enum lock_usage_bit` `n`.
    pub usage_mask: u32,
    /// `usage_traces[]`: where each usage bit was first set.
    pub usage_traces: [Trace; USAGE_BITS],
    /// Heads of the `locks_after` (forward) and `locks_before` (backward) dependency lists.
    pub after: u16,
    pub before: u16,
}

impl LockClass {
    pub const EMPTY: LockClass = LockClass {
        key: 0,
        name: ClassName::Static(""),
        wait_type: 0,
        usage_mask: 0,
        usage_traces: [[0; TRACE_LEN]; USAGE_BITS],
        after: NONE,
        before: NONE,
    };
}

/// Index `i` and offset into an array of `count` `T`s at `base`, if `addr` is inside it.
fn in_array<T>(addr: u64, base: *const T, count: usize) -> Option<(usize, u64)> {
    let size = core::mem::size_of::<T>() as u64;
    let off = addr.checked_sub(base as u64)?;
    (off < size * count as u64).then(|| ((off / size) as usize, off % size))
}

/// The class key and name of the lock at `addr`, or `None` for a lock lockdep does not
/// track (the queued rwlock's internal `wait_lock`, an `arch_spinlock_t` in Linux).
pub fn key_of(addr: u64, kind: LockClassKind) -> Option<(u64, ClassName)> {
    use crate::kernel::sched::core::{Rq, runqueues};
    use crate::kernel::time::hrtimer::{HrtimerCpuBase, hrtimer_bases};
    use crate::kernel::time::timer::{TimerBase, timer_bases};
    use crate::lab::locks::{lab_locks, lab_mutexes, lab_rwlocks, lab_semaphores};

    let rqs = core::ptr::addr_of!(runqueues) as *const Rq;
    if let Some((_, off)) = in_array(addr, rqs, NR_CPUS)
        && off == core::mem::offset_of!(Rq, __lock) as u64
    {
        return Some((rqs as u64 + off, ClassName::Static("&rq->__lock")));
    }
    let tbs = core::ptr::addr_of!(timer_bases) as *const TimerBase;
    if let Some((_, off)) = in_array(addr, tbs, NR_CPUS) {
        return Some((tbs as u64 + off, ClassName::Static("&base->lock")));
    }
    let hbs = core::ptr::addr_of!(hrtimer_bases) as *const HrtimerCpuBase;
    if let Some((_, off)) = in_array(addr, hbs, NR_CPUS) {
        return Some((hbs as u64 + off, ClassName::Static("hrtimer_bases.lock")));
    }
    if let Some((i, 0)) = in_array(addr, lab_locks.as_ptr(), MAX_LOCKS) {
        return Some((addr, ClassName::Lab(i as u8)));
    }
    let mutexes = lab_mutexes.as_ptr();
    if let Some((i, off)) = in_array::<Mutex>(addr, mutexes, MAX_LOCKS) {
        return Some(match kind {
            LockClassKind::Mutex => (addr, ClassName::Lab(i as u8)),
            // `__mutex_init`'s `raw_spin_lock_init(&lock->wait_lock)`: one class.
            _ => (mutexes as u64 + off, ClassName::Static("&lock->wait_lock")),
        });
    }
    let rws = lab_rwlocks.as_ptr();
    if let Some((i, off)) = in_array::<qrwlock>(addr, rws, MAX_LOCKS) {
        return match kind {
            LockClassKind::ReadLock | LockClassKind::WriteLock => {
                Some((addr, ClassName::Lab(i as u8)))
            }
            _ => {
                let _ = off;
                None
            }
        };
    }
    let sems = lab_semaphores.as_ptr();
    if let Some((_, off)) = in_array::<Semaphore>(addr, sems, MAX_LOCKS) {
        // `sema_init`: `lockdep_init_map(&sem->lock.dep_map, "semaphore->lock", &__key, 0)`.
        return Some((sems as u64 + off, ClassName::Static("semaphore->lock")));
    }
    let statics: [(&RawSpinlock, &'static str); 4] = [
        (&crate::mm::page_alloc::zone_lock, "&zone->lock"),
        (&crate::kernel::printk::logbuf_lock, "logbuf_lock"),
        (&crate::kernel::printk::console_sem, "console_sem"),
        (&crate::lab::hog_lock, "hog_lock"),
    ];
    for (lock, name) in statics {
        if addr == lock as *const RawSpinlock as u64 {
            return Some((addr, ClassName::Static(name)));
        }
    }
    Some((addr, ClassName::Addr(addr)))
}

/// The wait type Linux gives a lock of this kind (`{inner:inner}` in reports).
pub fn wait_type(kind: LockClassKind) -> u8 {
    match kind {
        LockClassKind::Mutex | LockClassKind::Semaphore => 3,
        LockClassKind::Spin | LockClassKind::ReadLock | LockClassKind::WriteLock => 2,
    }
}

/// Open-addressed hash of class keys to class indexes + 1 (Linux's `classhash_table`).
pub const CLASSHASH_SIZE: usize = 2 * MAX_LOCKDEP_KEYS;

pub fn classhash(key: u64) -> usize {
    ((key >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 57) as usize % CLASSHASH_SIZE
}
