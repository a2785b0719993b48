//! Queued spinlocks (Linux's `kernel/locking/qspinlock.c`).
//!
//! The 32-bit lock word is Linux's: bits 0–7 the locked byte, bit 8 pending, bits 16–17 the
//! tail's MCS-node index and bits 18–31 the tail CPU + 1. One lab difference: the locked byte
//! holds the owner's CPU number + 1 instead of 1, so the host can tell who holds any lock from
//! its word alone (a debug spinlock's `owner_cpu`, without changing the 4-byte layout that
//! `struct rq` relies on). NR_CPUS = 255 keeps that in a byte. That encoding, the MCS-node
//! contexts and the `qspinlock_spinning_on` table are the host's contract:
//! `lockvmm_abi::locking`.
//!
//! Waiting is real spinning on the real lock word, except that each spin iteration yields the
//! host CPU through the `Wait` hypercall (the host wakes the waiter when the word changes — see
//! `lockvmm_abi::Hypercall::Wait`), in the way pv spinlocks halt instead of burning a physical CPU.
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use lockvmm_abi::NR_CPUS;
pub use lockvmm_abi::locking::Q_LOCKED_MASK;
use lockvmm_abi::locking::{LockContext, NR_LOCK_CONTEXTS, lock_owner, spinning_on_slot};

use crate::arch::x86::lockvmm;
use crate::arch::x86::percpu::smp_processor_id;
use crate::arch::x86::preempt::lock_context;
use crate::kernel::locking::ticket_spinlock::{self as ticket, TICKET_SPINLOCKS};

pub const Q_PENDING_VAL: u32 = 1 << 8;
const Q_LOCKED_PENDING_MASK: u32 = Q_LOCKED_MASK | Q_PENDING_VAL;
const Q_TAIL_IDX_OFFSET: u32 = 16;
const Q_TAIL_CPU_OFFSET: u32 = 18;
const Q_TAIL_MASK: u32 = !0xffff;
const MAX_NODES: usize = NR_LOCK_CONTEXTS;

/// `arch_spinlock_t` / `struct qspinlock`.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct qspinlock {
    pub val: AtomicU32,
}

/// The Rust-style name of `qspinlock`.
pub type QSpinlock = qspinlock;

/// `struct mcs_spinlock`: a waiter's queue node (one per CPU per context).
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct mcs_spinlock {
    next: AtomicU64,
    locked: AtomicU32,
    count: AtomicU32,
}

/// The Rust-style name of `mcs_spinlock`.
pub type McsSpinlock = mcs_spinlock;

#[allow(clippy::declare_interior_mutable_const)]
const NODE_INIT: McsSpinlock = McsSpinlock {
    next: AtomicU64::new(0),
    locked: AtomicU32::new(0),
    count: AtomicU32::new(0),
};
#[allow(clippy::declare_interior_mutable_const)]
const NODES_INIT: [McsSpinlock; MAX_NODES] = [NODE_INIT; MAX_NODES];

/// Linux's per-CPU `qnodes`.
#[unsafe(no_mangle)]
pub static qnodes: [[McsSpinlock; MAX_NODES]; NR_CPUS] = [NODES_INIT; NR_CPUS];

/// Lock debugging: the lock each CPU is spinning on in the slow path, per context (task,
/// softirq, hardirq, NMI), so that a vmcore tells who waits for what even for a waiter queued
/// on its MCS node (lockdep keeps similar per-task bookkeeping).
#[allow(clippy::declare_interior_mutable_const)]
const WAIT_INIT: [AtomicU64; MAX_NODES] = [const { AtomicU64::new(0) }; MAX_NODES];
#[unsafe(no_mangle)]
pub static qspinlock_spinning_on: [[AtomicU64; MAX_NODES]; NR_CPUS] = [WAIT_INIT; NR_CPUS];
// The host reads it as the flat table `lockvmm_abi::locking::spinning_on_slot` indexes.
const _: () = assert!(
    core::mem::size_of_val(&qspinlock_spinning_on)
        == 8 * spinning_on_slot(NR_CPUS, LockContext::Task)
);

/// The locked-byte value that names this CPU.
#[inline(always)]
pub fn locked_val() -> u32 {
    lockvmm_abi::locking::locked_val(smp_processor_id())
}

fn encode_tail(cpu: u32, ctx: LockContext) -> u32 {
    ((cpu + 1) << Q_TAIL_CPU_OFFSET) | ((ctx as u32) << Q_TAIL_IDX_OFFSET)
}

fn decode_tail(tail: u32) -> &'static McsSpinlock {
    let cpu = (tail >> Q_TAIL_CPU_OFFSET) - 1;
    let idx = (tail >> Q_TAIL_IDX_OFFSET) & 3;
    &qnodes[cpu as usize][idx as usize]
}

impl QSpinlock {
    pub const fn new() -> Self {
        QSpinlock {
            val: AtomicU32::new(0),
        }
    }

    /// `queued_spin_trylock`.
    #[inline(always)]
    pub fn trylock(&self) -> bool {
        if TICKET_SPINLOCKS.unlikely() {
            return ticket::ticket_spin_trylock(&self.val);
        }
        self.val
            .compare_exchange(0, locked_val(), Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// `queued_spin_lock`: the uncontended fast path, else the slow path.
    #[inline(always)]
    pub fn lock(&self) {
        if TICKET_SPINLOCKS.unlikely() {
            return ticket::ticket_spin_lock(&self.val);
        }
        if let Err(val) = self.fast_lock() {
            crate::kernel::locking::lockdep::lock_contended(
                self as *const Self as u64,
                crate::kernel::locking::lockdep::LockClassKind::Spin,
            );
            native_queued_spin_lock_slowpath(self, val);
        }
    }

    /// `queued_spin_lock` when no hook is on (`SPIN_HOOKS` off: queued locks, no lockdep).
    #[inline(always)]
    pub fn lock_nohooks(&self) {
        if let Err(val) = self.fast_lock() {
            native_queued_spin_lock_slowpath(self, val);
        }
    }

    #[inline(always)]
    fn fast_lock(&self) -> Result<u32, u32> {
        self.val
            .compare_exchange(0, locked_val(), Ordering::Acquire, Ordering::Relaxed)
    }

    /// `queued_spin_unlock`: clears the locked byte, then wakes whoever waits on the word.
    #[inline(always)]
    pub fn unlock(&self) {
        if TICKET_SPINLOCKS.unlikely() {
            return ticket::ticket_spin_unlock(&self.val);
        }
        self.unlock_nohooks();
    }

    /// `queued_spin_unlock` of a queued lock (`SPIN_HOOKS` off, or past the ticket check).
    #[inline(always)]
    pub fn unlock_nohooks(&self) {
        // As Linux's `smp_store_release(&lock->locked, 0)`: a plain byte store (x86 stores
        // are releases), not a locked read-modify-write loop, then a look at the rest of the
        // word for waiters. The run token lets one vCPU run at a time, so the word cannot
        // change between the two and the kick goes out exactly when a `fetch_and` would say.
        const _: () = assert!(Q_LOCKED_MASK == 0xff);
        // SAFETY: the locked byte is the low byte of the lock word (little endian), which this
        // CPU owns while it holds the lock.
        unsafe {
            core::arch::asm!("mov byte ptr [{p}], 0", p = in(reg) self.val.as_ptr(),
                options(nostack, preserves_flags))
        };
        if self.val.load(Ordering::Relaxed) & !Q_LOCKED_MASK != 0 {
            lockvmm::kick(&self.val);
        }
    }

    /// The CPU holding the lock, if any.
    pub fn owner(&self) -> Option<usize> {
        if TICKET_SPINLOCKS.unlikely() {
            return ticket::ticket_owner(&self.val);
        }
        lock_owner(self.val.load(Ordering::Relaxed))
    }
}

impl Default for QSpinlock {
    fn default() -> Self {
        Self::new()
    }
}

/// Spins until `cond` holds for the lock word, yielding to the host between looks.
#[inline(always)]
fn spin_until(word: &AtomicU32, cond: impl Fn(u32) -> bool) -> u32 {
    loop {
        let v = word.load(Ordering::Acquire);
        if cond(v) {
            return v;
        }
        lockvmm::wait_on(word, v);
    }
}

/// The contended path: pending-bit handover for a single waiter, MCS queue for the rest.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn native_queued_spin_lock_slowpath(lock: &QSpinlock, val: u32) {
    let slot = &qspinlock_spinning_on[smp_processor_id() as usize][lock_context() as usize];
    slot.store(lock as *const QSpinlock as u64, Ordering::Relaxed);
    queued_spin_lock_slowpath(lock, val);
    slot.store(0, Ordering::Relaxed);
}

#[inline(always)]
fn queued_spin_lock_slowpath(lock: &QSpinlock, mut val: u32) {
    let me = locked_val();
    // Only the owner is there: become the pending waiter (Linux's pending fast path).
    if val & !Q_LOCKED_MASK == 0 {
        val = lock.val.fetch_or(Q_PENDING_VAL, Ordering::Acquire);
        if val & !Q_LOCKED_MASK == 0 {
            spin_until(&lock.val, |v| v & Q_LOCKED_MASK == 0);
            // clear_pending_set_locked
            lock.val
                .fetch_add(me.wrapping_sub(Q_PENDING_VAL), Ordering::Acquire);
            return;
        }
        // Someone else became pending or queued meanwhile: undo our bit if we set it.
        if val & Q_PENDING_VAL == 0 {
            lock.val.fetch_and(!Q_PENDING_VAL, Ordering::Relaxed);
        }
    }

    // Queue: take our node for this context.
    let cpu = smp_processor_id();
    let ctx = lock_context();
    let node = &qnodes[cpu as usize][ctx as usize];
    node.count.fetch_add(1, Ordering::Relaxed);
    node.locked.store(0, Ordering::Relaxed);
    node.next.store(0, Ordering::Relaxed);
    let tail = encode_tail(cpu, ctx);

    // xchg_tail
    let mut old = lock.val.load(Ordering::Relaxed);
    loop {
        let new = (old & !Q_TAIL_MASK) | tail;
        match lock
            .val
            .compare_exchange(old, new, Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => break,
            Err(cur) => old = cur,
        }
    }
    if old & Q_TAIL_MASK != 0 {
        let prev = decode_tail(old & Q_TAIL_MASK);
        prev.next
            .store(node as *const McsSpinlock as u64, Ordering::Release);
        lockvmm::kick_addr(prev.next.as_ptr() as u64);
        spin_until(&node.locked, |v| v != 0);
    }

    // Head of the queue: wait for the owner and the pending waiter to go.
    let val = spin_until(&lock.val, |v| v & Q_LOCKED_PENDING_MASK == 0);

    // Claim the lock; if we are also the tail, clear it.
    if val & Q_TAIL_MASK == tail
        && lock
            .val
            .compare_exchange(val, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    {
        node.count.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    lock.val.fetch_or(me, Ordering::Acquire);
    // Hand the head of the queue to our successor (it may still be linking itself in).
    let next = loop {
        let n = node.next.load(Ordering::Acquire);
        if n != 0 {
            break n;
        }
        // The low half of a kernel address is never 0, so "still 0" means "not linked yet".
        lockvmm::wait_on_addr(node.next.as_ptr() as u64, 0);
    };
    // SAFETY: `next` is the address of another CPU's MCS node in the static `qnodes`.
    let next = unsafe { &*(next as *const McsSpinlock) };
    next.locked.store(1, Ordering::Release);
    lockvmm::kick(&next.locked);
    node.count.fetch_sub(1, Ordering::Relaxed);
}
