//! Irq-usage states (Linux's `mark_lock`, `mark_usage`, `mark_held_locks`, `valid_state`,
//! `check_usage_forwards/backwards`, `check_irq_usage`; the bits of `lockdep_states.h`): a
//! class used in hardirq (softirq) context must never be held with hardirqs (softirqs)
//! enabled, nor depend on a class that is.
use core::sync::atomic::{AtomicU64, Ordering};

use lockvmm_abi::NR_CPUS;
use lockvmm_abi::lockdep::SplatKind;

use super::held_locks::{Guard, HeldLock, Lockdep, softirqs_enabled};
use super::report::{
    Facts, LockName, Name, header, header_ruled, pr_warn, print_irqtrace_events, print_lock,
    print_trace, record, tail, usage_str,
};
use crate::arch::x86::percpu::smp_processor_id;
use crate::kernel::printk::{LOGLEVEL_WARNING, printk};
use crate::kernel::sched::core::current;

pub const LOCK_USED_IN_HARDIRQ: u32 = 0;
pub const LOCK_ENABLED_HARDIRQ: u32 = 2;
pub const LOCK_USED_IN_SOFTIRQ: u32 = 4;
pub const LOCK_ENABLED_SOFTIRQ: u32 = 6;
pub const LOCK_USED: u32 = 8;
const LOCK_USAGE_READ_MASK: u32 = 1;
const LOCK_USAGE_DIR_MASK: u32 = 2;

/// `exclusive_bit`: USED_IN_x <-> ENABLED_x (the read bit dropped).
fn exclusive_bit(bit: u32) -> u32 {
    (bit & !(LOCK_USAGE_READ_MASK | LOCK_USAGE_DIR_MASK)) | ((bit & LOCK_USAGE_DIR_MASK) ^ 2)
}

/// `HARDIRQ` or `SOFTIRQ` (`state_name`).
fn state_name(bit: u32) -> &'static str {
    if bit & 4 == 0 { "HARDIRQ" } else { "SOFTIRQ" }
}

/// Per-CPU `struct irqtrace_events`.
pub struct IrqTrace {
    pub events: u64,
    pub hardirq_enable_ip: u64,
    pub hardirq_enable_event: u64,
    pub hardirq_disable_ip: u64,
    pub hardirq_disable_event: u64,
    pub softirq_enable_ip: u64,
    pub softirq_enable_event: u64,
    pub softirq_disable_ip: u64,
    pub softirq_disable_event: u64,
}

/// `[events, hardirq on ip, event, hardirq off ip, event, softirq on ip, event, off ip, event]`.
static IRQTRACE: [[AtomicU64; 9]; NR_CPUS] = [const { [const { AtomicU64::new(0) }; 9] }; NR_CPUS];

pub fn irqtrace() -> IrqTrace {
    let t = &IRQTRACE[smp_processor_id() as usize];
    let v = |i: usize| t[i].load(Ordering::Relaxed);
    IrqTrace {
        events: v(0),
        hardirq_enable_ip: v(1),
        hardirq_enable_event: v(2),
        hardirq_disable_ip: v(3),
        hardirq_disable_event: v(4),
        softirq_enable_ip: v(5),
        softirq_enable_event: v(6),
        softirq_disable_ip: v(7),
        softirq_disable_event: v(8),
    }
}

/// Whether this CPU's last hardirq event was an enable (lockdep's `hardirqs_enabled`).
pub fn hardirqs_were_on() -> bool {
    let t = &IRQTRACE[smp_processor_id() as usize];
    t[2].load(Ordering::Relaxed) >= t[4].load(Ordering::Relaxed)
}

/// Records an irq-flag event `which` (0: hardirqs on, 1: off, 2: softirqs on, 3: off) at `ip`.
pub fn trace_event(which: usize, ip: u64) {
    let t = &IRQTRACE[smp_processor_id() as usize];
    let n = t[0].fetch_add(1, Ordering::Relaxed) + 1;
    t[1 + 2 * which].store(ip, Ordering::Relaxed);
    t[2 + 2 * which].store(n, Ordering::Relaxed);
}

/// `mark_lock`: sets `new_bit` on the class of `h` (saving where); on a newly set irq bit,
/// checks it against the class's other usage and its dependencies. False after a report.
pub fn mark_lock(guard: &mut Guard, task: usize, h: &HeldLock, new_bit: u32) -> bool {
    let fp = guard.fp;
    let g = guard.state();
    let c = &mut g.classes[h.class as usize];
    if c.usage_mask & (1 << new_bit) != 0 {
        return true;
    }
    c.usage_mask |= 1 << new_bit;
    c.usage_traces[new_bit as usize] = super::held_locks::save_trace(fp);
    if new_bit == LOCK_USED {
        return true;
    }
    mark_lock_irq(guard, task, h, new_bit)
}

/// `mark_lock_irq`.
fn mark_lock_irq(guard: &mut Guard, task: usize, h: &HeldLock, new_bit: u32) -> bool {
    let excl = exclusive_bit(new_bit);
    let read = new_bit & LOCK_USAGE_READ_MASK != 0;
    let mask = guard.state().classes[h.class as usize].usage_mask;
    // `valid_state`, then the read-in-write conflict.
    if mask & (1 << excl) != 0 {
        print_usage_bug(guard, task, h, excl, new_bit);
        return false;
    }
    if !read && mask & (1 << (excl | LOCK_USAGE_READ_MASK)) != 0 {
        print_usage_bug(guard, task, h, excl | LOCK_USAGE_READ_MASK, new_bit);
        return false;
    }
    let forwards = new_bit & LOCK_USAGE_DIR_MASK == 0;
    // USED_IN looks forwards for an ENABLED dependency; ENABLED looks backwards for a
    // USED_IN one (`check_usage_forwards` / `check_usage_backwards`).
    let want = (1u32 << excl) | (1 << (excl | LOCK_USAGE_READ_MASK));
    let g = guard.state();
    let found = g.bfs(h.class, forwards, |c| {
        g.classes[c as usize].usage_mask & want != 0
    });
    if let Some(p) = found {
        print_irq_inversion_bug(guard, task, h, p.found, forwards, excl);
        return false;
    }
    true
}

/// `mark_usage`: the usage an acquisition implies (`hlock` is not yet on the stack).
pub fn mark_usage(guard: &mut Guard, task: usize, h: &HeldLock) -> bool {
    let r = u32::from(h.read);
    if !h.trylock {
        if h.irq_context & 2 != 0 && !mark_lock(guard, task, h, LOCK_USED_IN_HARDIRQ + r) {
            return false;
        }
        if h.irq_context & 1 != 0 && !mark_lock(guard, task, h, LOCK_USED_IN_SOFTIRQ + r) {
            return false;
        }
    }
    if !h.hardirqs_off {
        if !mark_lock(guard, task, h, LOCK_ENABLED_HARDIRQ + r) {
            return false;
        }
        if softirqs_enabled() && !mark_lock(guard, task, h, LOCK_ENABLED_SOFTIRQ + r) {
            return false;
        }
    }
    mark_lock(guard, task, h, LOCK_USED)
}

/// `mark_held_locks`: every lock the task holds gets `base_bit` (interrupts or softirqs are
/// about to be enabled with them held).
pub fn mark_held_locks(guard: &mut Guard, task: usize, base_bit: u32) -> bool {
    let depth = guard.state().tasks[task].depth;
    for i in 0..depth {
        let h = guard.state().tasks[task].held[i];
        if !mark_lock(guard, task, &h, base_bit + u32::from(h.read)) {
            return false;
        }
    }
    true
}

/// `print_usage_bug`.
fn print_usage_bug(guard: &mut Guard, task: usize, h: &HeldLock, prev_bit: u32, new_bit: u32) {
    if !super::debug_locks_off() {
        return;
    }
    let hardirqs_enabled = guard.hardirqs_enabled();
    let g = guard.state();
    let cur = current();
    let pc = crate::arch::x86::preempt::preempt_count();
    header("inconsistent lock state");
    pr_warn!(
        "inconsistent {{{}}} -> {{{}}} usage.",
        usage_str(prev_bit),
        usage_str(new_bit)
    );
    pr_warn!(
        "{}/{} [HC{}[{}]:SC{}[{}]:HE{}:SE{}] takes:",
        cur.comm(),
        cur.pid,
        u32::from(h.irq_context & 2 != 0),
        (pc >> 16) & 0xf,
        u32::from(h.irq_context & 1 != 0),
        (pc >> 8) & 0xff,
        u32::from(hardirqs_enabled),
        u32::from(softirqs_enabled())
    );
    print_lock(g, "", h);
    pr_warn!("{{{}}} state was registered at:", usage_str(prev_bit));
    print_trace(
        &g.classes[h.class as usize].usage_traces[prev_bit as usize],
        2,
    );
    print_irqtrace_events();
    pr_warn!("");
    pr_warn!("other info that might help us debug this:");
    // `print_usage_bug_scenario`.
    pr_warn!(" Possible unsafe locking scenario:");
    pr_warn!("");
    pr_warn!("       CPU0");
    pr_warn!("       ----");
    pr_warn!("  lock({});", Name(g, h.class));
    pr_warn!("  <Interrupt>");
    pr_warn!("    lock({});", Name(g, h.class));
    pr_warn!("");
    pr_warn!(" *** DEADLOCK ***");
    pr_warn!("");
    let mut f = Facts::new(
        SplatKind::InconsistentLockState,
        h.instance,
        h.class,
        h.acquire_ip,
    );
    f.usage = (prev_bit, new_bit);
    let c = &guard.state().classes[h.class as usize];
    f.traces = (
        c.usage_traces[prev_bit as usize],
        c.usage_traces[new_bit as usize],
    );
    tail(guard, task);
    record(guard.state(), &f);
}

/// `print_irq_inversion_bug`.
fn print_irq_inversion_bug(
    guard: &mut Guard,
    task: usize,
    h: &HeldLock,
    other: u8,
    forwards: bool,
    bit: u32,
) {
    if !super::debug_locks_off() {
        return;
    }
    let g = guard.state();
    let cur = current();
    let irqclass = state_name(bit);
    header("possible irq lock inversion dependency detected");
    pr_warn!("{}/{} just changed the state of lock:", cur.comm(), cur.pid);
    print_lock(g, "", h);
    if forwards {
        pr_warn!(
            "but this lock took another, {}-unsafe lock in the past:",
            irqclass
        );
    } else {
        pr_warn!(
            "but this lock was taken by another, {}-safe lock in the past:",
            irqclass
        );
    }
    pr_warn!("{}", LockName(g, other));
    pr_warn!("");
    pr_warn!("and interrupts could create inverse lock ordering between them.");
    pr_warn!("");
    pr_warn!("");
    pr_warn!("other info that might help us debug this:");
    let (safe, unsafe_) = if forwards {
        (h.class, other)
    } else {
        (other, h.class)
    };
    irq_lock_scenario(g, safe, unsafe_, safe, unsafe_);
    let mut f = Facts::new(
        SplatKind::IrqLockInversion,
        h.instance,
        h.class,
        h.acquire_ip,
    );
    f.other = Some(other);
    tail(guard, task);
    record(guard.state(), &f);
}

/// `print_irq_lock_scenario`: the middle class is `prev`'s, or `next`'s when `prev` is the
/// irq-safe class itself.
fn irq_lock_scenario(g: &Lockdep, safe: u8, unsafe_: u8, prev: u8, next: u8) {
    let middle = if prev == safe { next } else { prev };
    if middle != unsafe_ {
        pr_warn!("Chain exists of:");
        pr_warn!(
            "  {} --> {} --> {}",
            Name(g, safe),
            Name(g, middle),
            Name(g, unsafe_)
        );
        pr_warn!("");
    }
    pr_warn!(" Possible interrupt unsafe locking scenario:");
    pr_warn!("");
    pr_warn!("       CPU0                    CPU1");
    pr_warn!("       ----                    ----");
    pr_warn!("  lock({});", Name(g, unsafe_));
    pr_warn!("                               local_irq_disable();");
    pr_warn!("                               lock({});", Name(g, safe));
    pr_warn!("                               lock({});", Name(g, middle));
    pr_warn!("  <Interrupt>");
    pr_warn!("    lock({});", Name(g, safe));
    pr_warn!("");
    pr_warn!(" *** DEADLOCK ***");
    pr_warn!("");
}

/// `check_irq_usage`: taking `next` while holding `prev` must not connect a class used in
/// hardirq (softirq) context, at or behind `prev`, to one held with hardirqs (softirqs)
/// enabled, at or after `next`. False after a report.
pub fn check_irq_usage(guard: &mut Guard, task: usize, prev: &HeldLock, next: &HeldLock) -> bool {
    for used_in in [LOCK_USED_IN_HARDIRQ, LOCK_USED_IN_SOFTIRQ] {
        let safe_mask = (1u32 << used_in) | (1 << (used_in + 1));
        let unsafe_mask = 1u32 << (used_in + 2);
        let g = guard.state();
        let has = |c: u8, m: u32| g.classes[c as usize].usage_mask & m != 0;
        let safe = if has(prev.class, safe_mask) {
            Some(prev.class)
        } else {
            g.bfs(prev.class, false, |c| has(c, safe_mask))
                .map(|p| p.found)
        };
        let Some(safe) = safe else { continue };
        let unsafe_ = if has(next.class, unsafe_mask) {
            Some(next.class)
        } else {
            g.bfs(next.class, true, |c| has(c, unsafe_mask))
                .map(|p| p.found)
        };
        if let Some(unsafe_) = unsafe_ {
            print_bad_irq_dependency(guard, task, prev, next, safe, unsafe_, used_in);
            return false;
        }
    }
    true
}

/// `print_bad_irq_dependency`.
fn print_bad_irq_dependency(
    guard: &mut Guard,
    task: usize,
    prev: &HeldLock,
    next: &HeldLock,
    safe: u8,
    unsafe_: u8,
    used_in: u32,
) {
    if !super::debug_locks_off() {
        return;
    }
    let hardirqs_enabled = guard.hardirqs_enabled();
    let g = guard.state();
    let cur = current();
    let irqclass = state_name(used_in);
    let pc = crate::arch::x86::preempt::preempt_count();
    let mut title = [0u8; 64];
    let t = fmt_title(&mut title, irqclass);
    // `print_bad_irq_dependency`'s rules are 53 wide (its format has two `%s`).
    header_ruled(t, 53);
    pr_warn!(
        "{}/{} [HC{}[{}]:SC{}[{}]:HE{}:SE{}] is trying to acquire:",
        cur.comm(),
        cur.pid,
        u32::from(next.irq_context & 2 != 0),
        (pc >> 16) & 0xf,
        u32::from(next.irq_context & 1 != 0),
        (pc >> 8) & 0xff,
        u32::from(hardirqs_enabled),
        u32::from(softirqs_enabled())
    );
    print_lock(g, "", next);
    pr_warn!("");
    pr_warn!("and this task is already holding:");
    print_lock(g, "", prev);
    pr_warn!("which would create a new lock dependency:");
    pr_warn!("{} ->{}", LockName(g, prev.class), LockName(g, next.class));
    pr_warn!("");
    pr_warn!(
        "but this new dependency connects a {}-irq-safe lock:",
        irqclass
    );
    pr_warn!("{}", LockName(g, safe));
    pr_warn!("");
    pr_warn!("... which became {}-irq-safe at:", irqclass);
    print_trace(&g.classes[safe as usize].usage_traces[used_in as usize], 2);
    pr_warn!("");
    pr_warn!("to a {}-irq-unsafe lock:", irqclass);
    pr_warn!("{}", LockName(g, unsafe_));
    pr_warn!("");
    pr_warn!("... which became {}-irq-unsafe at:", irqclass);
    pr_warn!("...");
    print_trace(
        &g.classes[unsafe_ as usize].usage_traces[used_in as usize + 2],
        2,
    );
    pr_warn!("");
    pr_warn!("other info that might help us debug this:");
    pr_warn!("");
    irq_lock_scenario(g, safe, unsafe_, prev.class, next.class);
    let mut f = Facts::new(
        SplatKind::IrqSafeToUnsafe,
        next.instance,
        safe,
        next.acquire_ip,
    );
    f.other = Some(unsafe_);
    f.usage = (used_in, used_in + 2);
    let g = guard.state();
    f.traces = (
        g.classes[safe as usize].usage_traces[used_in as usize],
        g.classes[unsafe_ as usize].usage_traces[used_in as usize + 2],
    );
    tail(guard, task);
    record(guard.state(), &f);
}

fn fmt_title<'a>(buf: &'a mut [u8; 64], irqclass: &str) -> &'a str {
    let mut n = 0;
    for part in [
        irqclass,
        "-safe -> ",
        irqclass,
        "-unsafe lock order detected",
    ] {
        let b = part.as_bytes();
        let m = b.len().min(buf.len() - n);
        buf[n..n + m].copy_from_slice(&b[..m]);
        n += m;
    }
    core::str::from_utf8(&buf[..n]).unwrap_or("")
}
