//! Lockdep's reports, in Linux's format (`kernel/locking/lockdep.c`: `print_usage_bug`,
//! `print_circular_bug`, `print_deadlock_bug`, `print_bad_irq_dependency`,
//! `print_irq_inversion_bug`, `print_unlock_imbalance_bug`, `lockdep_print_held_locks`), and
//! the record each one leaves for the host ([`SplatRecord`]). The guest has no kallsyms: where
//! Linux prints `%pS`, this prints `[<address>]` and the host names it (as for `Call Trace:`).
use core::fmt;

use lockvmm_abi::hook::Hook;
use lockvmm_abi::lockdep::{MAX_CHAIN, NO_USAGE, SplatKind, SplatRecord, USAGE_STR, USAGE_TRACE};

use super::classes::Trace;
use super::held_locks::{Guard, HeldLock, Lockdep};
use crate::kernel::kallsyms::Sym;
use crate::kernel::printk::{LOGLEVEL_WARNING, printk};
use crate::kernel::sched::core::current;

macro_rules! pr_warn {
    ($($arg:tt)*) => {
        printk(LOGLEVEL_WARNING, format_args!($($arg)*))
    };
}
pub(crate) use pr_warn;

/// ` (name){usage}-{inner:inner}` (`print_lock_name`).
pub struct LockName<'a>(pub &'a Lockdep, pub u8);

impl fmt::Display for LockName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.0.classes[self.1 as usize];
        // `get_usage_chars`: per state, the write then the read usage; `get_usage_char`:
        // '+' irq enabled (not in irq), '-' in irq (irqs disabled), '?' both, '.' neither.
        let ch = |bit: u32| {
            let en = c.usage_mask & (1 << (bit + 2)) != 0;
            let used_in = c.usage_mask & (1 << bit) != 0;
            match (en, used_in) {
                (true, true) => '?',
                (true, false) => '+',
                (false, true) => '-',
                (false, false) => '.',
            }
        };
        write!(
            f,
            " ({}){{{}{}{}{}}}-{{{}:{}}}",
            c.name,
            ch(0),
            ch(1),
            ch(4),
            ch(5),
            c.wait_type,
            c.wait_type
        )
    }
}

/// Just the class name (`__print_lock_name`).
pub struct Name<'a>(pub &'a Lockdep, pub u8);

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.classes[self.1 as usize].name)
    }
}

/// The report's banner: blank line, `====`, `WARNING: <title>`, `print_kernel_ident`, `----`
/// (the rules as long as Linux's: the title's length, but for the one whose title has a `%s`).
pub fn header(title: &str) {
    header_ruled(title, "WARNING: ".len() + title.len());
}

pub fn header_ruled(title: &str, rule_len: usize) {
    let rule = "================================================================";
    let dash = "----------------------------------------------------------------";
    let n = rule_len.min(rule.len());
    pr_warn!("");
    pr_warn!("{}", &rule[..n]);
    pr_warn!("WARNING: {}", title);
    pr_warn!(
        "{} #1 {}",
        crate::init::version::utsname_release(),
        crate::kernel::taint::PrintTainted
    );
    pr_warn!("{}", &dash[..n]);
}

/// `print_lock`: `%px (name){usage}-{w:w}, at: %pS`, with ` #i: ` before it in lists.
pub fn print_lock(g: &Lockdep, prefix: &str, h: &HeldLock) {
    pr_warn!(
        "{}{:016x}{}, at: [<{:016x}>] {}",
        prefix,
        h.instance,
        LockName(g, h.class),
        h.acquire_ip,
        Sym(h.acquire_ip)
    );
}

/// `lockdep_print_held_locks`.
pub fn print_held_locks(g: &Lockdep, task: usize) {
    let cur = current();
    let tl = &g.tasks[task];
    if tl.depth == 0 {
        pr_warn!("no locks held by {}/{}.", cur.comm(), cur.pid);
        return;
    }
    let s = if tl.depth > 1 { "s" } else { "" };
    pr_warn!("{} lock{} held by {}/{}:", tl.depth, s, cur.comm(), cur.pid);
    for (i, h) in tl.held[..tl.depth].iter().enumerate() {
        let mut prefix = [0u8; 8];
        let n = fmt_prefix(i, &mut prefix);
        print_lock(g, core::str::from_utf8(&prefix[..n]).unwrap_or(" #?: "), h);
    }
}

fn fmt_prefix(i: usize, out: &mut [u8; 8]) -> usize {
    out[..2].copy_from_slice(b" #");
    let d = crate::kernel::sched::task::fmt_u32(i as u32, &mut out[2..6]);
    out[2 + d..4 + d].copy_from_slice(b": ");
    4 + d
}

/// `print_lock_trace(trace, spaces)`: one `%pS` per line, indented.
pub fn print_trace(t: &Trace, spaces: usize) {
    for &ip in t.iter().take_while(|&&ip| ip != 0) {
        pr_warn!("{:w$}[<{:016x}>] {}", "", ip, Sym(ip), w = spaces);
    }
}

/// `dump_stack()`: the CPU/task line and the call trace from lockdep's entry.
pub fn dump_stack(fp: u64) {
    // `dump_stack` → `dump_stack_print_info` (CPU, PID, Comm, taint, release, hardware).
    crate::arch::x86::kernel::process_64::dump_stack_print_info(
        crate::kernel::printk::LOGLEVEL_WARNING,
    );
    crate::arch::x86::kernel::traps::show_stack(fp);
}

/// The tail every report shares: the held locks and `stack backtrace:`.
pub fn tail(guard: &mut Guard, task: usize) {
    let fp = guard.fp;
    print_held_locks(guard.state(), task);
    pr_warn!("");
    pr_warn!("stack backtrace:");
    dump_stack(fp);
}

/// What a report tells the host.
pub struct Facts {
    pub kind: SplatKind,
    pub lock: u64,
    pub class: Option<u8>,
    pub other: Option<u8>,
    pub usage: (u32, u32),
    pub ip: u64,
    pub chain: [u64; MAX_CHAIN],
    pub chain_len: usize,
    /// The traces of the two usages of a usage report.
    pub traces: (Trace, Trace),
}

impl Facts {
    pub fn new(kind: SplatKind, lock: u64, class: u8, ip: u64) -> Facts {
        Facts {
            kind,
            lock,
            class: Some(class),
            other: None,
            usage: (NO_USAGE, NO_USAGE),
            ip,
            chain: [0; MAX_CHAIN],
            chain_len: 0,
            traces: (
                [0; super::classes::TRACE_LEN],
                [0; super::classes::TRACE_LEN],
            ),
        }
    }
}

/// The record the host reads for lockdep's (single) report.
static mut SPLAT: SplatRecord = empty_record();

pub const fn empty_record() -> SplatRecord {
    SplatRecord::EMPTY
}

/// Fills the common fields of `r` for the current CPU and task.
pub fn stamp(r: &mut SplatRecord, kind: SplatKind, ip: u64) {
    let cur = current();
    r.kind = kind.raw();
    r.cpu = crate::arch::x86::percpu::smp_processor_id();
    r.pid = cur.pid;
    r.comm = cur.comm;
    r.ip = ip;
}

/// Tells the host about lockdep's report (once: lockdep is off after it).
pub fn record(g: &Lockdep, f: &Facts) {
    // SAFETY: written once, under the graph lock, by the only report lockdep prints.
    let r = unsafe { &mut *core::ptr::addr_of_mut!(SPLAT) };
    stamp(r, f.kind, f.ip);
    r.lock = f.lock;
    if let Some(c) = f.class {
        r.class_key = g.classes[c as usize].key;
        r.class_name = g.classes[c as usize].name.to_bytes();
    }
    if let Some(c) = f.other {
        r.other_key = g.classes[c as usize].key;
        r.other_name = g.classes[c as usize].name.to_bytes();
    }
    (r.prev_usage, r.new_usage) = f.usage;
    r.chain = f.chain;
    r.chain_len = f.chain_len as u32;
    r.prev_trace.copy_from_slice(&f.traces.0[..USAGE_TRACE]);
    r.new_trace.copy_from_slice(&f.traces.1[..USAGE_TRACE]);
    crate::arch::x86::lockvmm::hook(Hook::LockdepSplat, r as *const SplatRecord as u64);
}

/// `usage_str[bit]`.
pub fn usage_str(bit: u32) -> &'static str {
    USAGE_STR.get(bit as usize).copied().unwrap_or("?")
}

/// `print_irqtrace_events`: where this CPU last turned interrupts and softirqs on and off.
pub fn print_irqtrace_events() {
    let t = super::irq_usage::irqtrace();
    pr_warn!("irq event stamp: {}", t.events);
    pr_warn!(
        "hardirqs last  enabled at ({}): [<{:016x}>] {}",
        t.hardirq_enable_event,
        t.hardirq_enable_ip,
        Sym(t.hardirq_enable_ip)
    );
    pr_warn!(
        "hardirqs last disabled at ({}): [<{:016x}>] {}",
        t.hardirq_disable_event,
        t.hardirq_disable_ip,
        Sym(t.hardirq_disable_ip)
    );
    pr_warn!(
        "softirqs last  enabled at ({}): [<{:016x}>] {}",
        t.softirq_enable_event,
        t.softirq_enable_ip,
        Sym(t.softirq_enable_ip)
    );
    pr_warn!(
        "softirqs last disabled at ({}): [<{:016x}>] {}",
        t.softirq_disable_event,
        t.softirq_disable_ip,
        Sym(t.softirq_disable_ip)
    );
}

/// `debug_show_held_locks(current)` (for `might_sleep`'s report).
pub fn print_held_locks_of_current() {
    use core::sync::atomic::Ordering;
    if !super::DEBUG_LOCKS.load(Ordering::Relaxed) || !super::PROVE_LOCKING.load(Ordering::Relaxed)
    {
        pr_warn!("INFO: lockdep is turned off.");
        return;
    }
    let Some(mut guard) = Guard::enter(0) else {
        return;
    };
    let cur = current() as *const crate::kernel::sched::task::TaskStruct;
    if let Some(t) = super::held_locks::task_index(cur) {
        print_held_locks(guard.state(), t);
    }
}
