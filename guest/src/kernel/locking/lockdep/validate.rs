//! Lockdep's entry points (Linux's `lock_acquire` → `__lock_acquire` → `validate_chain`,
//! `lock_release` → `__lock_release`, `lockdep_hardirqs_on`, `lockdep_softirqs_on`) and the
//! reports they make themselves (`print_deadlock_bug`, `print_circular_bug`,
//! `print_unlock_imbalance_bug`).
use lockvmm_abi::lockdep::{MAX_CHAIN, SplatKind};

use super::classes::{LockClass, MAX_LOCKDEP_KEYS, classhash, key_of, wait_type};
use super::held_locks::{
    Guard, HeldLock, Lockdep, MAX_LOCK_DEPTH, caller_frame, irq_context, save_trace,
    softirqs_enabled, task_index,
};
use super::irq_usage::{
    LOCK_ENABLED_HARDIRQ, LOCK_ENABLED_SOFTIRQ, check_irq_usage, mark_held_locks, mark_usage,
    trace_event,
};
use super::report::{
    Facts, LockName, Name, header, pr_warn, print_lock, print_trace, record, tail,
};
use crate::kernel::locking::lockdep::{LockClassKind, LockEvent};
use crate::kernel::printk::{LOGLEVEL_WARNING, printk};
use crate::kernel::sched::core::current;
use crate::kernel::sched::task::TaskStruct;

fn current_task() -> Option<usize> {
    task_index(current() as *const TaskStruct)
}

/// `register_lock_class`: the class of `key`, added on first use. `None` when the table is
/// full (lockdep then turns itself off, as Linux does).
fn class_of(
    g: &mut Lockdep,
    key: u64,
    name: super::classes::ClassName,
    kind: LockClassKind,
) -> Option<u8> {
    let mut slot = classhash(key);
    for _ in 0..g.classhash.len() {
        match g.classhash[slot] {
            0 => break,
            i if g.classes[i as usize - 1].key == key => return Some(i - 1),
            _ => slot = (slot + 1) % g.classhash.len(),
        }
    }
    if g.nr_classes >= MAX_LOCKDEP_KEYS || g.classhash[slot] != 0 {
        if super::debug_locks_off() {
            pr_warn!("BUG: MAX_LOCKDEP_KEYS too low!");
            pr_warn!("turning off the locking correctness validator.");
        }
        return None;
    }
    let i = g.nr_classes;
    g.classes[i] = LockClass {
        key,
        name,
        wait_type: wait_type(kind),
        ..LockClass::EMPTY
    };
    g.nr_classes += 1;
    g.classhash[slot] = i as u8 + 1;
    Some(i as u8)
}

/// `lock_acquire`. Takes the event's fields in registers, so the dispatcher `on_acquire`
/// tail-calls it without a frame of its own: `caller_frame()` is then the lock primitive's,
/// and traces start at the primitive's caller.
#[inline(never)]
pub fn acquire(lock: u64, kind: LockClassKind, trylock: bool, ip: u64) {
    let ev = &LockEvent {
        lock,
        kind,
        trylock,
        ip,
    };
    let Some(mut guard) = Guard::enter(caller_frame()) else {
        return;
    };
    let Some(task) = current_task() else { return };
    let Some((key, name)) = key_of(ev.lock, ev.kind) else {
        return;
    };
    let g = guard.state();
    let Some(class) = class_of(g, key, name, ev.kind) else {
        return;
    };
    if g.tasks[task].depth >= MAX_LOCK_DEPTH {
        if super::debug_locks_off() {
            pr_warn!("BUG: MAX_LOCK_DEPTH too low!");
            pr_warn!("turning off the locking correctness validator.");
        }
        return;
    }
    let h = HeldLock {
        instance: ev.lock,
        acquire_ip: ev.ip,
        class,
        read: ev.kind == LockClassKind::ReadLock,
        recursive: ev.kind == LockClassKind::ReadLock && crate::arch::x86::preempt::in_interrupt(),
        trylock: ev.trylock,
        irq_context: irq_context(),
        hardirqs_off: !guard.hardirqs_enabled(),
    };
    if !mark_usage(&mut guard, task, &h) {
        return;
    }
    if !h.trylock && !validate_chain(&mut guard, task, &h) {
        return;
    }
    let tl = &mut guard.state().tasks[task];
    tl.held[tl.depth] = h;
    tl.depth += 1;
}

/// `validate_chain`: `check_deadlock`, then `check_prevs_add`.
fn validate_chain(guard: &mut Guard, task: usize, next: &HeldLock) -> bool {
    // Held locks are copied one at a time (the reports need the guard back): copying the
    // whole stack would cost hundreds of emulated memory operations per acquisition.
    let held = |guard: &mut Guard, i: usize| guard.state().tasks[task].held[i];
    let depth = guard.state().tasks[task].depth;
    // `check_deadlock`: the same class already held (a recursive read after a read is
    // allowed).
    for i in 0..depth {
        let prev = held(guard, i);
        if prev.class == next.class {
            if next.recursive && prev.read {
                return true;
            }
            print_deadlock_bug(guard, task, &prev, next);
            return false;
        }
    }
    // `check_prevs_add`: from the top of the stack, within this irq context, down to and
    // including the first lock that was not a trylock.
    let mut depth = depth;
    while depth > 0 {
        let prev = &held(guard, depth - 1);
        if prev.irq_context != next.irq_context {
            break;
        }
        if !check_prev_add(guard, task, prev, next) {
            return false;
        }
        if !prev.trylock {
            break;
        }
        depth -= 1;
    }
    true
}

/// `check_prev_add`: records `prev -> next` unless it would close a cycle or connect an
/// irq-safe class to an irq-unsafe one.
fn check_prev_add(guard: &mut Guard, task: usize, prev: &HeldLock, next: &HeldLock) -> bool {
    let fp = guard.fp;
    let g = guard.state();
    if g.dep_exists(prev.class, next.class) {
        return true;
    }
    // `check_noncircular`: is `prev` reachable from `next`?
    if let Some(path) = g.bfs(next.class, true, |c| c == prev.class) {
        let mut deps = [0u16; MAX_CHAIN];
        let n = path.deps(g, true, &mut deps);
        print_circular_bug(guard, task, prev, next, &deps[..n]);
        return false;
    }
    if !check_irq_usage(guard, task, prev, next) {
        return false;
    }
    let trace = save_trace(fp);
    if !guard.state().add_dep(prev.class, next.class, trace) && super::debug_locks_off() {
        pr_warn!("BUG: MAX_LOCKDEP_ENTRIES too low!");
        pr_warn!("turning off the locking correctness validator.");
    }
    true
}

/// The opening both the recursive and the circular report share (Linux's
/// `print_deadlock_bug` and `print_circular_bug_header` print the same lines).
fn print_acquiring_while_holding(g: &Lockdep, next: &HeldLock, prev: &HeldLock) {
    let cur = current();
    pr_warn!("{}/{} is trying to acquire lock:", cur.comm(), cur.pid);
    print_lock(g, "", next);
    pr_warn!("");
    pr_warn!("but task is already holding lock:");
    print_lock(g, "", prev);
    pr_warn!("");
}

/// `print_deadlock_bug`.
fn print_deadlock_bug(guard: &mut Guard, task: usize, prev: &HeldLock, next: &HeldLock) {
    if !super::debug_locks_off() {
        return;
    }
    let g = guard.state();
    header("possible recursive locking detected");
    print_acquiring_while_holding(g, next, prev);
    pr_warn!("other info that might help us debug this:");
    // `print_deadlock_scenario`.
    pr_warn!(" Possible unsafe locking scenario:");
    pr_warn!("");
    pr_warn!("       CPU0");
    pr_warn!("       ----");
    pr_warn!("  lock({});", Name(g, prev.class));
    pr_warn!("  lock({});", Name(g, next.class));
    pr_warn!("");
    pr_warn!(" *** DEADLOCK ***");
    pr_warn!("");
    pr_warn!(" May be due to missing lock nesting notation");
    pr_warn!("");
    let mut f = Facts::new(
        SplatKind::RecursiveLocking,
        next.instance,
        next.class,
        next.acquire_ip,
    );
    f.other = Some(prev.class);
    tail(guard, task);
    record(guard.state(), &f);
}

/// `print_circular_bug`: `deps` is the existing path `next -> … -> prev`.
fn print_circular_bug(
    guard: &mut Guard,
    task: usize,
    prev: &HeldLock,
    next: &HeldLock,
    deps: &[u16],
) {
    if !super::debug_locks_off() {
        return;
    }
    let fp = guard.fp;
    let g = guard.state();
    // `print_circular_bug_header`.
    header("possible circular locking dependency detected");
    print_acquiring_while_holding(g, next, prev);
    pr_warn!("which lock already depends on the new lock.");
    pr_warn!("");
    pr_warn!("");
    pr_warn!("the existing dependency chain (in reverse order) is:");
    // `print_circular_bug_entry` from the held lock's class back to the new one; `-> #0` is
    // the dependency being added now, with the current stack.
    for (depth, &d) in deps.iter().enumerate().rev() {
        let dep = &g.deps[d as usize];
        pr_warn!("");
        pr_warn!("-> #{}{}:", depth + 1, LockName(g, dep.to));
        print_trace(&dep.trace, 7);
    }
    pr_warn!("");
    pr_warn!("-> #0{}:", LockName(g, next.class));
    print_trace(&save_trace(fp), 7);
    pr_warn!("");
    pr_warn!("other info that might help us debug this:");
    pr_warn!("");
    // `print_circular_lock_scenario`: `parent` is the class the held lock was taken after.
    let parent = deps.last().map_or(next.class, |&d| g.deps[d as usize].from);
    let (source, target) = (next.class, prev.class);
    if parent != source {
        pr_warn!("Chain exists of:");
        pr_warn!(
            "  {} --> {} --> {}",
            Name(g, source),
            Name(g, parent),
            Name(g, target)
        );
        pr_warn!("");
    }
    pr_warn!(" Possible unsafe locking scenario:");
    pr_warn!("");
    pr_warn!("       CPU0                    CPU1");
    pr_warn!("       ----                    ----");
    pr_warn!("  lock({});", Name(g, target));
    pr_warn!("                               lock({});", Name(g, parent));
    pr_warn!("                               lock({});", Name(g, target));
    pr_warn!("  lock({});", Name(g, source));
    pr_warn!("");
    pr_warn!(" *** DEADLOCK ***");
    pr_warn!("");
    let mut f = Facts::new(
        SplatKind::CircularDependency,
        next.instance,
        next.class,
        next.acquire_ip,
    );
    f.other = Some(prev.class);
    f.chain[0] = g.classes[next.class as usize].key;
    let mut n = 1;
    for &d in deps.iter().take(MAX_CHAIN - 1) {
        f.chain[n] = g.classes[g.deps[d as usize].to as usize].key;
        n += 1;
    }
    f.chain_len = n;
    tail(guard, task);
    record(guard.state(), &f);
}

/// `lock_release`.
#[inline(never)]
pub fn release(ev: &LockEvent) {
    let Some(mut guard) = Guard::enter(caller_frame()) else {
        return;
    };
    let Some(task) = current_task() else { return };
    let tl = &mut guard.state().tasks[task];
    match tl.held[..tl.depth]
        .iter()
        .rposition(|h| h.instance == ev.lock)
    {
        Some(i) => {
            tl.remove(i);
        }
        // Not held: a bug, unless lockdep does not track the lock at all.
        None if key_of(ev.lock, ev.kind).is_some() => {
            print_unlock_imbalance_bug(&mut guard, task, ev)
        }
        None => {}
    }
}

/// `print_unlock_imbalance_bug`.
fn print_unlock_imbalance_bug(guard: &mut Guard, task: usize, ev: &LockEvent) {
    if !super::debug_locks_off() {
        return;
    }
    let cur = current();
    let (key, name) =
        key_of(ev.lock, ev.kind).unwrap_or((ev.lock, super::classes::ClassName::Addr(ev.lock)));
    header("bad unlock balance detected!");
    pr_warn!(
        "{}/{} is trying to release lock ({}) at:",
        cur.comm(),
        cur.pid,
        name
    );
    pr_warn!("[<{:016x}>] {}", ev.ip, crate::kernel::kallsyms::Sym(ev.ip));
    pr_warn!("but there are no more locks to release!");
    pr_warn!("");
    pr_warn!("other info that might help us debug this:");
    let class = class_of(guard.state(), key, name, ev.kind);
    tail(guard, task);
    let mut f = Facts::new(
        SplatKind::BadUnlockBalance,
        ev.lock,
        class.unwrap_or(0),
        ev.ip,
    );
    f.class = class;
    record(guard.state(), &f);
}

/// `lockdep_hardirqs_on`: interrupts are about to be enabled (still off): every held lock
/// becomes HARDIRQ-ON (and SOFTIRQ-ON if softirqs are enabled).
#[inline(never)]
pub fn hardirqs_on(ip: u64) {
    let Some(mut guard) = Guard::enter(caller_frame()) else {
        return;
    };
    // Redundant (already on), or in hardirq context (Linux warns and ignores it).
    if guard.hardirqs_enabled() || crate::arch::x86::preempt::in_irq() {
        return;
    }
    trace_event(0, ip);
    let Some(task) = current_task() else { return };
    if mark_held_locks(&mut guard, task, LOCK_ENABLED_HARDIRQ) && softirqs_enabled() {
        mark_held_locks(&mut guard, task, LOCK_ENABLED_SOFTIRQ);
    }
}

/// `lockdep_hardirqs_off`.
#[inline(never)]
pub fn hardirqs_off(ip: u64) {
    // Called after `cli`: the flags cannot say whether this was a real transition, so
    // record it when the last event was an enable (lockdep's own `hardirqs_enabled`).
    if Guard::enter(caller_frame()).is_some() && super::irq_usage::hardirqs_were_on() {
        trace_event(1, ip);
    }
}

/// `lockdep_softirqs_on`: softirqs were just enabled (`local_bh_enable`): with interrupts on,
/// every held lock becomes SOFTIRQ-ON.
#[inline(never)]
pub fn softirqs_on(ip: u64) {
    let Some(mut guard) = Guard::enter(caller_frame()) else {
        return;
    };
    trace_event(2, ip);
    let Some(task) = current_task() else { return };
    if guard.hardirqs_enabled() {
        mark_held_locks(&mut guard, task, LOCK_ENABLED_SOFTIRQ);
    }
}

/// `lockdep_softirqs_off`.
#[inline(never)]
pub fn softirqs_off(ip: u64) {
    if Guard::enter(caller_frame()).is_some() {
        trace_event(3, ip);
    }
}

/// The scheduler's hand-over of `rq->__lock` (Linux's `prepare_lock_switch` /
/// `finish_lock_switch`): the lock `prev` took in `__schedule` is now held by the task that
/// runs (see the README for where this differs from Linux).
#[inline(never)]
pub fn handoff(prev: *const TaskStruct, lock: u64) {
    let Some(mut guard) = Guard::enter(caller_frame()) else {
        return;
    };
    let (Some(from), Some(to)) = (task_index(prev), current_task()) else {
        return;
    };
    if from == to {
        return;
    }
    let g = guard.state();
    let tl = &mut g.tasks[from];
    let Some(i) = tl.held[..tl.depth].iter().rposition(|h| h.instance == lock) else {
        return;
    };
    let h = tl.remove(i);
    let to = &mut g.tasks[to];
    if to.depth < MAX_LOCK_DEPTH {
        to.held[to.depth] = h;
        to.depth += 1;
    }
}
