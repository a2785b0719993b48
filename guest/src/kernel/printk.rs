//! printk (Linux's `kernel/printk/printk.c`).
//!
//! Every message becomes a record in `__log_buf` (the host reads it as `dmesg`), stamped with
//! the virtual clock. Consoles are fed by whoever holds the console lock: a CPU that cannot
//! take it (`console_trylock`) leaves its record for the holder, so printk never spins. The
//! serial console prints every record; the framebuffer console (when the scenario has one)
//! only those more severe than KERN_WARNING, like a quiet `console_loglevel=4` VT.
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::x86::irqflags::{local_irq_restore, local_irq_save};
use crate::drivers::tty::serial::serial8250;
use crate::kernel::locking::spinlock::RawSpinlock;

pub const LOGLEVEL_EMERG: u8 = 0;
pub const LOGLEVEL_ALERT: u8 = 1;
pub const LOGLEVEL_ERR: u8 = 3;
pub const LOGLEVEL_WARNING: u8 = 4;
pub const LOGLEVEL_INFO: u8 = 6;

/// The console lock (Linux's `console_sem`), only ever try-locked by printk.
#[unsafe(no_mangle)]
pub static console_sem: RawSpinlock = RawSpinlock::new();
/// Protects the log buffer (`logbuf_lock`).
#[unsafe(no_mangle)]
pub static logbuf_lock: RawSpinlock = RawSpinlock::new();

/// Longest record (Linux: `LOG_LINE_MAX`).
pub const LOG_LINE_MAX: usize = 240;
pub const LOG_RECORDS: usize = 2048;

/// One record of the log buffer.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct printk_log {
    pub ts_nsec: u64,
    pub len: u16,
    pub level: u8,
    pub _pad: [u8; 5],
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
    _pad: [0; 5],
    text: [0; LOG_LINE_MAX],
}; LOG_RECORDS];
/// Sequence number of the next record to store.
#[unsafe(no_mangle)]
pub static log_next_seq: AtomicU64 = AtomicU64::new(0);
/// Sequence number of the next record the consoles print.
#[unsafe(no_mangle)]
pub static console_seq: AtomicU64 = AtomicU64::new(0);

struct LineBuf {
    buf: [u8; LOG_LINE_MAX],
    len: usize,
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(LOG_LINE_MAX - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
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
    let mut line = LineBuf {
        buf: [0; LOG_LINE_MAX],
        len: 0,
    };
    let _ = line.write_fmt(args);
    let flags = local_irq_save();
    log_store(level, &line.buf[..line.len]);
    if console_sem.raw_lock.trylock() {
        console_unlock();
    }
    local_irq_restore(flags);
}

fn log_store(level: u8, text: &[u8]) {
    logbuf_lock.raw_lock.lock();
    let seq = log_next_seq.load(Ordering::Relaxed);
    // SAFETY: records are written under `logbuf_lock`.
    let rec = unsafe { &mut (*core::ptr::addr_of_mut!(__log_buf))[seq as usize % LOG_RECORDS] };
    rec.ts_nsec = crate::init::main::local_clock();
    rec.level = level;
    rec.len = text.len() as u16;
    rec.text[..text.len()].copy_from_slice(text);
    log_next_seq.store(seq + 1, Ordering::Release);
    logbuf_lock.raw_lock.unlock();
    crate::kernel::trace::events::trace_event(lockvmm_abi::trace::TraceEvent::Printk, 0, seq);
}

/// Prints every pending record to the consoles, then releases the console lock.
#[inline(never)]
#[unsafe(no_mangle)]
pub fn console_unlock() {
    loop {
        let seq = console_seq.load(Ordering::Relaxed);
        if seq >= log_next_seq.load(Ordering::Acquire) {
            break;
        }
        let first = log_next_seq
            .load(Ordering::Relaxed)
            .saturating_sub(LOG_RECORDS as u64);
        let seq = seq.max(first);
        // SAFETY: a stored record; the holder of the console lock is its only reader here.
        let rec = unsafe { (*core::ptr::addr_of!(__log_buf))[seq as usize % LOG_RECORDS] };
        console_seq.store(seq + 1, Ordering::Relaxed);
        let mut text = LineBuf {
            buf: [0; LOG_LINE_MAX],
            len: 0,
        };
        let ns = rec.ts_nsec;
        let _ = write!(
            text,
            "[{:5}.{:06}] ",
            ns / 1_000_000_000,
            (ns % 1_000_000_000) / 1000
        );
        let body = core::str::from_utf8(&rec.text[..rec.len as usize]).unwrap_or("?");
        let _ = text.write_str(body);
        call_console_drivers(rec.level, &text.buf[..text.len]);
    }
    console_sem.raw_lock.unlock();
}

#[inline(never)]
#[unsafe(no_mangle)]
pub fn call_console_drivers(level: u8, text: &[u8]) {
    serial8250::serial8250_console_write(text);
    serial8250::serial8250_console_write(b"\n");
    if level < LOGLEVEL_WARNING {
        keep_frame!(crate::drivers::tty::vt::vt_console_print(text));
    }
}
