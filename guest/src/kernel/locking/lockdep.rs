//! The lock-event hooks every lock primitive calls, as Linux's `include/linux/lockdep.h`
//! (`lock_acquire`, `lock_contended`, `lock_acquired`, `lock_release`; in Linux these also
//! fire the `lock:` trace events). One set of hooks serves every consumer, so the lock
//! primitives are annotated once:
//! - lockdep's validator (`CONFIG_PROVE_LOCKING`),
//! - the trace ring buffer (`kernel/trace`),
//! - the lab's per-CPU count of held spinlocks behind the `irq_enable_locked` hook.
//!
//! Every hook is guarded by [`LOCK_EVENTS`]: with no consumer on, a hook costs one load and
//! one branch, and its arguments are not even computed.
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::x86::percpu::this_cpu;
use lockvmm_abi::trace::TraceEvent;

use crate::kernel::jump_label::{StaticKey, ret_ip};

mod classes;
mod graph;
mod held_locks;
mod irq_usage;
mod report;
mod validate;

pub use report::print_held_locks_of_current;
pub use report::{dump_stack, empty_record, stamp};
pub use validate::{hardirqs_off, hardirqs_on, softirqs_off, softirqs_on};

/// On when lockdep validates (`CONFIG_PROVE_LOCKING`, switched on at boot).
pub static PROVE_LOCKING: AtomicBool = AtomicBool::new(false);

/// `debug_locks_off()`: true for the caller that turned lock debugging off (and so reports).
pub fn debug_locks_off() -> bool {
    DEBUG_LOCKS.swap(false, Ordering::Relaxed)
}

/// `lockdep_softirqs_on/off` from `local_bh_enable/disable` (only the outermost ones count).
#[inline(always)]
pub fn lockdep_softirqs_changed(on: bool) {
    if LOCK_EVENTS.unlikely() && PROVE_LOCKING.load(Ordering::Relaxed) {
        softirqs_changed(on, ret_ip());
    }
}

#[cold]
#[inline(never)]
fn softirqs_changed(on: bool, ip: u64) {
    let count = crate::arch::x86::preempt::preempt_count() & 0xff00;
    match on {
        true if count == 0 => softirqs_on(ip),
        false if count == crate::arch::x86::preempt::SOFTIRQ_DISABLE_OFFSET => softirqs_off(ip),
        _ => {}
    }
}

/// The scheduler hands `rq->__lock` from `prev` to the task now running (after `switch_to`).
#[inline(always)]
pub fn lockdep_sched_handoff(prev: *const crate::kernel::sched::task::TaskStruct, lock: u64) {
    if LOCK_EVENTS.unlikely() && PROVE_LOCKING.load(Ordering::Relaxed) {
        validate::handoff(prev, lock);
    }
}

/// On when any consumer of lock events is (set once at boot).
pub static LOCK_EVENTS: StaticKey = StaticKey::new();

/// Linux's `debug_locks`: lockdep validates while this is set, and clears it after its first
/// report ("turning off the locking correctness validator").
#[unsafe(export_name = "debug_locks")]
pub static DEBUG_LOCKS: AtomicBool = AtomicBool::new(false);

/// What kind of lock an event is about (lockdep's wait types and read modes need it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LockClassKind {
    /// `raw_spinlock_t`.
    Spin,
    /// `rwlock_t`, shared.
    ReadLock,
    /// `rwlock_t`, exclusive.
    WriteLock,
    /// `struct mutex` (sleeps).
    Mutex,
    /// `struct semaphore` (sleeps; Linux gives it no lockdep map, so lockdep ignores it).
    Semaphore,
}

/// One lock event, as the hooks pass it to their consumers.
#[derive(Clone, Copy, Debug)]
pub struct LockEvent {
    /// The lock's address (lockdep maps it to its class).
    pub lock: u64,
    pub kind: LockClassKind,
    /// A trylock: it cannot deadlock by waiting, so lockdep adds no dependency for it.
    pub trylock: bool,
    /// Where the lock operation was called from (`_RET_IP_`).
    pub ip: u64,
}

/// `lock_acquire`: about to take `lock` (before spinning or sleeping on it).
#[inline(always)]
pub fn lock_acquire(lock: u64, kind: LockClassKind, trylock: bool) {
    if LOCK_EVENTS.unlikely() {
        on_acquire(lock, kind, trylock, ret_ip());
    }
}

/// `lock_contended`: `lock` is held by someone else; the caller is about to wait.
#[inline(always)]
pub fn lock_contended(lock: u64, kind: LockClassKind) {
    if LOCK_EVENTS.unlikely() {
        on_contended(lock, kind, ret_ip());
    }
}

/// `lock_acquired`: the caller now holds `lock`.
#[inline(always)]
pub fn lock_acquired(lock: u64, kind: LockClassKind) {
    if LOCK_EVENTS.unlikely() {
        on_acquired(lock, kind, ret_ip());
    }
}

/// `lock_release`: the caller has let go of `lock`.
#[inline(always)]
pub fn lock_release(lock: u64, kind: LockClassKind) {
    if LOCK_EVENTS.unlikely() {
        on_release(lock, kind, ret_ip());
    }
}

// The cold dispatchers take the event's fields in registers: a `LockEvent` argument is
// passed through memory, which gave every lock operation's fast path a stack frame to build it.

#[cold]
#[inline(never)]
fn on_acquire(lock: u64, kind: LockClassKind, trylock: bool, ip: u64) {
    if PROVE_LOCKING.load(Ordering::Relaxed) {
        validate::acquire(lock, kind, trylock, ip);
    }
}

/// Set at boot when the host wants each contended spinlock reported (`lockvmm explore`).
pub static LOCK_CONTENDED_HOOK: AtomicBool = AtomicBool::new(false);

#[cold]
#[inline(never)]
fn on_contended(lock: u64, kind: LockClassKind, ip: u64) {
    let ev = LockEvent {
        lock,
        kind,
        trylock: false,
        ip,
    };
    trace_lock(TraceEvent::LockContended, ev);
    if ev.kind == LockClassKind::Spin && LOCK_CONTENDED_HOOK.load(Ordering::Relaxed) {
        crate::arch::x86::lockvmm::hook(lockvmm_abi::hook::Hook::LockContended, ev.lock);
    }
}

#[cold]
#[inline(never)]
fn on_acquired(lock: u64, kind: LockClassKind, ip: u64) {
    let ev = LockEvent {
        lock,
        kind,
        trylock: false,
        ip,
    };
    trace_lock(TraceEvent::LockAcquired, ev);
    if ev.kind == LockClassKind::Spin
        && crate::arch::x86::irqflags::IRQ_ENABLE_HOOK.load(Ordering::Relaxed)
    {
        this_cpu().spinlocks_held.fetch_add(1, Ordering::Relaxed);
    }
}

#[cold]
#[inline(never)]
fn on_release(lock: u64, kind: LockClassKind, ip: u64) {
    let ev = LockEvent {
        lock,
        kind,
        trylock: false,
        ip,
    };
    trace_lock(TraceEvent::LockReleased, ev);
    if PROVE_LOCKING.load(Ordering::Relaxed) {
        validate::release(&ev);
    }
    if ev.kind == LockClassKind::Spin
        && crate::arch::x86::irqflags::IRQ_ENABLE_HOOK.load(Ordering::Relaxed)
    {
        let held = &this_cpu().spinlocks_held;
        let _ = held.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

/// The trace's lock events (Linux's `lock:contention_begin`, `lock_acquired`, `lock_release`).
fn trace_lock(event: TraceEvent, ev: LockEvent) {
    if crate::kernel::trace::events::TRACE_EVENTS.unlikely() {
        crate::kernel::trace::ring_buffer::trace_record(event, ev.ip, ev.lock);
    }
}
