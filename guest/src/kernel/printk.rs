//! printk (Linux's `kernel/printk/printk.c`).
//!
//! Every message becomes a record in `__log_buf` (the host reads it as `dmesg`), stamped with
//! the virtual clock. Consoles are fed by whoever holds the console lock: a CPU that cannot
//! take it (`console_trylock`) leaves its record for the holder, so printk never spins. The
//! serial console prints every record; the framebuffer console (when the scenario has one)
//! only those more severe than KERN_WARNING, like a quiet `console_loglevel=4` VT.
//!
//! Continuation lines (`KERN_CONT`, `pr_cont`) follow the replayed version's printk: 2.6.32,
//! 3.10 and 4.4 keep an unfinished line in `struct cont` (`kernel/printk.c` of 2.6.32 and 3.10,
//! `kernel/printk/printk.c` of 4.4) and store it as a record when a newline ends it or another
//! caller prints; 6.6 stores it at once and appends to it in place (`prb_reserve_in_last` in
//! `kernel/printk/printk_ringbuffer.c`) until a newline or another record finalizes it. See
//! `printk_cont.rs`.
use core::fmt::{self, Write};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::x86::irqflags::{local_irq_restore, local_irq_save};
use crate::drivers::tty::serial::serial8250;
use crate::kernel::locking::spinlock::RawSpinlock;
use crate::kernel::printk_cont;

pub const LOGLEVEL_EMERG: u8 = 0;
pub const LOGLEVEL_ALERT: u8 = 1;
pub const LOGLEVEL_ERR: u8 = 3;
pub const LOGLEVEL_WARNING: u8 = 4;
pub const LOGLEVEL_INFO: u8 = 6;
/// `KERN_CONT`, or'ed into a `printk` level argument: no level of its own, continues the
/// caller's open line (Linux puts it in the text as `KERN_SOH "c"`).
pub const KERN_CONT: u8 = 0x80;
/// Or'ed into a `printk` level argument: the line ends only where the text ends with a newline,
/// as every Linux printk (`printk_open!`, `pr_cont!`). Without it a call is one whole line.
pub const PRINTK_NEWLINE_RULE: u8 = 0x40;
const LEVEL_MASK: u8 = 0x07;

/// Record flags (Linux's `enum log_flags`, `kernel/printk/printk.c` of 3.10).
pub const LOG_NOCONS: u8 = 1;
pub const LOG_NEWLINE: u8 = 2;
pub const LOG_PREFIX: u8 = 4;
pub const LOG_CONT: u8 = 8;

/// The console lock (Linux's `console_sem`), only ever try-locked by printk.
#[unsafe(no_mangle)]
pub static console_sem: RawSpinlock = RawSpinlock::new();
/// Protects the log buffer (`logbuf_lock`).
#[unsafe(no_mangle)]
pub static logbuf_lock: RawSpinlock = RawSpinlock::new();

/// Longest record (Linux: `LOG_LINE_MAX`).
pub const LOG_LINE_MAX: usize = 240;
pub const LOG_RECORDS: usize = 2048;
/// A console line: the time stamp (at most 30 bytes), a whole record and the newline.
pub const CONSOLE_LINE_MAX: usize = LOG_LINE_MAX + 32;

/// One record of the log buffer.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct printk_log {
    pub ts_nsec: u64,
    pub len: u16,
    pub level: u8,
    /// `LOG_*` flags.
    pub flags: u8,
    /// With `LOG_NOCONS`: how many bytes of `text` the console already printed as a
    /// fragment of the open line (3.10's `cont.cons`); it prints only the rest.
    pub cons: u8,
    pub _pad: [u8; 3],
    pub text: [u8; LOG_LINE_MAX],
}

/// The Rust-style name of `printk_log`.
pub type PrintkLog = printk_log;

/// `__log_buf`: the last `LOG_RECORDS` records, indexed by sequence number modulo its size.
#[unsafe(no_mangle)]
pub static mut __log_buf: [PrintkLog; LOG_RECORDS] = [PrintkLog {
    ts_nsec: 0,
    len: 0,
    level: 0,
    flags: 0,
    cons: 0,
    _pad: [0; 3],
    text: [0; LOG_LINE_MAX],
}; LOG_RECORDS];
/// Sequence number of the next record to store.
#[unsafe(no_mangle)]
pub static log_next_seq: AtomicU64 = AtomicU64::new(0);
/// Records below this sequence number are final: the consoles print only those (6.6's
/// ringbuffer hands readers finalized records only; an open last record waits).
#[unsafe(no_mangle)]
pub static log_final_seq: AtomicU64 = AtomicU64::new(0);
/// Sequence number of the next record the consoles print.
#[unsafe(no_mangle)]
pub static console_seq: AtomicU64 = AtomicU64::new(0);

/// A line being formatted, left uninitialised past `len`: zeroing 240 bytes a line cost about
/// as much as formatting it (this KVM emulates every guest ring-0 instruction).
pub(crate) struct LineBuf<const N: usize> {
    buf: [MaybeUninit<u8>; N],
    pub(crate) len: usize,
}

impl<const N: usize> LineBuf<N> {
    pub(crate) fn new() -> Self {
        LineBuf {
            buf: [MaybeUninit::uninit(); N],
            len: 0,
        }
    }

    /// Appends what fits of `bytes` (the rest is cut, as Linux cuts a record at `LOG_LINE_MAX`).
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(N - self.len);
        // SAFETY: `n` bytes fit from `len` on (`n <= N - len`), and `bytes` does not overlap
        // this buffer (it is borrowed while `self` is borrowed mutably).
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.buf.as_mut_ptr().add(self.len).cast::<u8>(),
                n,
            );
        }
        self.len += n;
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        // SAFETY: the first `len` bytes were written by `push`.
        unsafe { core::slice::from_raw_parts(self.buf.as_ptr().cast::<u8>(), self.len) }
    }
}

impl<const N: usize> Write for LineBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// Linux's `print_time()` (`kernel/printk/printk.c`): `"[%5lu.%06lu] "`, formatted by hand
/// (core::fmt's width and fill handling cost hundreds of instructions a line here).
pub(crate) fn print_time(ns: u64, out: &mut LineBuf<{ CONSOLE_LINE_MAX }>) {
    let mut secs = ns / 1_000_000_000;
    let mut usec = (ns % 1_000_000_000) / 1000;
    // 20 digits hold any u64; the field is at least 5 wide, right-aligned.
    let mut digits = [b' '; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (secs % 10) as u8;
        secs /= 10;
        if secs == 0 {
            break;
        }
    }
    let mut frac = [b'0'; 6];
    for d in frac.iter_mut().rev() {
        *d = b'0' + (usec % 10) as u8;
        usec /= 10;
    }
    out.push(b"[");
    out.push(&digits[at.min(digits.len() - 5)..]);
    out.push(b".");
    out.push(&frac);
    out.push(b"] ");
}

/// `printk!("fmt", args…)`: a KERN_INFO line.
#[macro_export]
macro_rules! printk {
    ($($arg:tt)*) => {
        $crate::kernel::printk::printk($crate::kernel::printk::LOGLEVEL_INFO, format_args!($($arg)*))
    };
}

/// `pr_alert!`: a KERN_ALERT line (oopses).
#[macro_export]
macro_rules! pr_alert {
    ($($arg:tt)*) => {
        $crate::kernel::printk::printk($crate::kernel::printk::LOGLEVEL_ALERT, format_args!($($arg)*))
    };
}

/// `pr_emerg!`: a KERN_EMERG line (lockups, panics).
#[macro_export]
macro_rules! pr_emerg {
    ($($arg:tt)*) => {
        $crate::kernel::printk::printk($crate::kernel::printk::LOGLEVEL_EMERG, format_args!($($arg)*))
    };
}

/// `pr_cont!("fmt", args…)`: `printk(KERN_CONT …)`. It continues the caller's open line; the
/// line ends where the text ends with a newline.
#[macro_export]
macro_rules! pr_cont {
    ($($arg:tt)*) => {
        $crate::kernel::printk::printk(
            $crate::kernel::printk::KERN_CONT | $crate::kernel::printk::PRINTK_NEWLINE_RULE,
            format_args!($($arg)*),
        )
    };
}

/// `printk_open!(LEVEL, "fmt", args…)`: a printk as Linux writes it, with the newline rule:
/// text without a trailing newline leaves the line open for `pr_cont!`.
#[macro_export]
macro_rules! printk_open {
    ($level:expr, $($arg:tt)*) => {
        $crate::kernel::printk::printk(
            $level | $crate::kernel::printk::PRINTK_NEWLINE_RULE,
            format_args!($($arg)*),
        )
    };
}

/// `printk(KERN_DEFAULT …)`: `default_message_loglevel` (4), as `show_regs` prints.
#[macro_export]
macro_rules! pr_default {
    ($($arg:tt)*) => {
        $crate::kernel::printk::printk($crate::kernel::printk::LOGLEVEL_WARNING, format_args!($($arg)*))
    };
}

#[inline(never)]
#[unsafe(no_mangle)]
pub fn printk(level: u8, args: fmt::Arguments) {
    keep_frame!(vprintk_default(level, args));
}

#[inline(never)]
#[unsafe(no_mangle)]
pub fn vprintk_default(level: u8, args: fmt::Arguments) {
    keep_frame!(vprintk_emit(level, args));
}

#[inline(never)]
#[unsafe(no_mangle)]
pub fn vprintk_emit(level: u8, args: fmt::Arguments) {
    let mut line = LineBuf::<LOG_LINE_MAX>::new();
    let _ = line.write_fmt(args);
    emit_text(level, line.as_bytes());
}

/// `pr_cont` of text formatted by the caller: the boot CPU's `announce_cpu` continues its line
/// once per CPU, where `core::fmt`'s padding would cost ~400 emulated instructions each.
#[inline(never)]
pub fn pr_cont_text(text: &[u8]) {
    emit_text(KERN_CONT | PRINTK_NEWLINE_RULE, text);
}

/// The rest of `vprintk_emit`, inlined into both callers so that a CPU stuck in the console
/// shows Linux's frames (`vprintk_emit` → `console_unlock`).
#[inline(always)]
fn emit_text(level: u8, mut text: &[u8]) {
    // Linux's `vprintk_emit`: a trailing newline ends the line (and is not stored).
    let newline = if level & PRINTK_NEWLINE_RULE == 0 {
        true
    } else if let Some(t) = text.strip_suffix(b"\n") {
        text = t;
        true
    } else {
        false
    };
    let msg = printk_cont::Msg {
        // `KERN_CONT` carries no level: `default_message_loglevel`.
        level: if level & KERN_CONT != 0 {
            LOGLEVEL_WARNING
        } else {
            level & LEVEL_MASK
        },
        prefix: level & KERN_CONT == 0,
        newline,
        text,
    };
    let flags = local_irq_save();
    logbuf_lock.raw_lock.lock();
    let stored = printk_cont::store(&msg);
    logbuf_lock.raw_lock.unlock();
    for seq in stored.iter().flatten() {
        crate::kernel::trace::events::trace_event(lockvmm_abi::trace::TraceEvent::Printk, 0, *seq);
    }
    if console_sem.raw_lock.trylock() {
        console_unlock();
    }
    local_irq_restore(flags);
}

/// Stores one record (Linux's `log_store`); the caller holds `logbuf_lock`. `ts_nsec` 0 means
/// now. Returns its sequence number.
pub(crate) fn log_store(level: u8, flags: u8, ts_nsec: u64, cons: u8, text: &[u8]) -> u64 {
    let seq = log_next_seq.load(Ordering::Relaxed);
    // SAFETY: records are written under `logbuf_lock`.
    let rec = unsafe { &mut (*core::ptr::addr_of_mut!(__log_buf))[seq as usize % LOG_RECORDS] };
    rec.ts_nsec = if ts_nsec == 0 {
        crate::init::main::local_clock()
    } else {
        ts_nsec
    };
    rec.level = level;
    rec.flags = flags;
    rec.cons = cons;
    let n = text.len().min(LOG_LINE_MAX);
    rec.len = n as u16;
    rec.text[..n].copy_from_slice(&text[..n]);
    log_next_seq.store(seq + 1, Ordering::Release);
    seq
}

/// The last record, for 6.6's in-place append; the caller holds `logbuf_lock`.
pub(crate) fn last_record() -> &'static mut PrintkLog {
    let seq = log_next_seq.load(Ordering::Relaxed).wrapping_sub(1);
    // SAFETY: only under `logbuf_lock`; the consoles do not read a record that is not final.
    unsafe { &mut (*core::ptr::addr_of_mut!(__log_buf))[seq as usize % LOG_RECORDS] }
}

/// Prints every pending record to the consoles, then releases the console lock.
#[inline(never)]
#[unsafe(no_mangle)]
pub fn console_unlock() {
    // Nothing final to print and (6.6) no open fragment to show: most `pr_cont`s of the boot.
    if console_seq.load(Ordering::Relaxed) >= log_final_seq.load(Ordering::Acquire)
        && crate::init::version::linux_version() == lockvmm_abi::knob::KernelVersion::V6_6
    {
        console_sem.raw_lock.unlock();
        return;
    }
    loop {
        let seq = console_seq.load(Ordering::Relaxed);
        if seq >= log_final_seq.load(Ordering::Acquire) {
            break;
        }
        let first = log_next_seq
            .load(Ordering::Relaxed)
            .saturating_sub(LOG_RECORDS as u64);
        let seq = seq.max(first);
        // SAFETY: a stored record, borrowed (not copied) while the console lock is held: a
        // writer could only reuse its slot after `LOG_RECORDS` newer records.
        let rec = unsafe { &(*core::ptr::addr_of!(__log_buf))[seq as usize % LOG_RECORDS] };
        console_seq.store(seq + 1, Ordering::Relaxed);
        // The console line: time stamp and text cut at `LOG_LINE_MAX` bytes, then the newline
        // (Linux's `record_print_text()` ends each line with one).
        let mut text = LineBuf::<{ CONSOLE_LINE_MAX }>::new();
        let mut body = &rec.text[..(rec.len as usize).min(LOG_LINE_MAX)];
        if rec.flags & LOG_NOCONS != 0 {
            // The console printed the start of this line as a fragment (3.10's
            // `console_cont_flush`): the rest, then the newline.
            body = &body[(rec.cons as usize).min(body.len())..];
        } else {
            print_time(rec.ts_nsec, &mut text);
        }
        // Records hold whole `&str`s, cut only when full: only a full one can end inside a
        // character (and then prints as "?", as before).
        let body = if body.len() == LOG_LINE_MAX && core::str::from_utf8(body).is_err() {
            b"?".as_slice()
        } else {
            body
        };
        let room = CONSOLE_LINE_MAX - 1 - text.len;
        text.push(&body[..body.len().min(room)]);
        text.push(b"\n");
        call_console_drivers(rec.level, text.as_bytes());
    }
    // 3.10's `console_cont_flush`: the open line's new text goes out at once, no newline
    // (inline, as Linux's static function: the stack reads console_unlock → call_console_drivers).
    let mut text = LineBuf::<{ CONSOLE_LINE_MAX }>::new();
    if let Some(level) = printk_cont::cont_print_text(&mut text) {
        call_console_drivers(level, text.as_bytes());
    }
    console_sem.raw_lock.unlock();
}

#[inline(never)]
#[unsafe(no_mangle)]
pub fn call_console_drivers(level: u8, text: &[u8]) {
    // `text` ends with its newline (a fragment of an open line has none); the VT draws the
    // line without it.
    serial8250::serial8250_console_write(text);
    if level < LOGLEVEL_WARNING {
        let line = text.strip_suffix(b"\n").unwrap_or(text);
        keep_frame!(crate::drivers::tty::vt::vt_console_print(line));
    }
}
