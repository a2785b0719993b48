//! Continuation lines, per replayed version (a file of its own beside `printk.rs`; Linux keeps
//! both in `kernel/printk/printk.c`). Everything here runs under `logbuf_lock`.
//!
//! - 3.10 and 4.4 (`kernel/printk/printk.c`, `struct cont`, `cont_add`, `cont_flush`,
//!   `vprintk_emit`, `console_cont_flush`): a line without a newline waits in `cont`. More text
//!   from the same task without a level (`KERN_CONT`) joins it; a newline, a message with a
//!   level, another task's message, or a buffer 80 % full stores it as a record of its own. The
//!   consoles print the waiting text at once, as a fragment, and later only the rest.
//! - 2.6.32 (`kernel/printk.c`): the log is a stream of characters, so whatever is printed next
//!   continues an unfinished line, whoever prints it and with whatever level; here the same
//!   buffer without the owner and level checks.
//! - 6.6 (`vprintk_store` with `prb_reserve_in_last`, `kernel/printk/printk_ringbuffer.c`): the
//!   line is a record at once; `KERN_CONT` text from the same caller (the task, or the CPU in
//!   interrupt context: `printk_caller_id`) is appended to it while it is open. A newline or
//!   any new record finalizes it; the consoles print final records only.
use core::sync::atomic::Ordering;

use lockvmm_abi::knob::KernelVersion;

use crate::arch::x86::percpu::{smp_processor_id, this_cpu};
use crate::arch::x86::preempt::in_task;
use crate::kernel::printk::{
    CONSOLE_LINE_MAX, LOG_CONT, LOG_LINE_MAX, LOG_NEWLINE, LOG_NOCONS, LOG_PREFIX, LineBuf,
    last_record, log_final_seq, log_next_seq, log_store, print_time,
};

/// One printk call, formatted.
pub struct Msg<'a> {
    pub level: u8,
    /// It named a level (Linux's `LOG_PREFIX`); `KERN_CONT` text does not.
    pub prefix: bool,
    /// The text ended with a newline (stripped).
    pub newline: bool,
    pub text: &'a [u8],
}

/// 3.10's `static struct cont`: the buffered line.
struct Cont {
    buf: [u8; LOG_LINE_MAX],
    len: usize,
    /// Bytes the consoles already printed.
    cons: usize,
    /// The task that printed it (`current`); 6.6 keeps its caller id here.
    owner: u64,
    level: u8,
    ts_nsec: u64,
    /// 6.6: the last record is open for appending.
    open: bool,
}

static mut CONT: Cont = Cont {
    buf: [0; LOG_LINE_MAX],
    len: 0,
    cons: 0,
    owner: 0,
    level: 0,
    ts_nsec: 0,
    open: false,
};

fn cont() -> &'static mut Cont {
    // SAFETY: only under `logbuf_lock` (every caller holds it), so never aliased.
    unsafe { &mut *core::ptr::addr_of_mut!(CONT) }
}

/// `current` as an owner: the task pointer, read raw (never dereferenced).
fn current_owner() -> u64 {
    this_cpu().current_task.load(Ordering::Relaxed)
}

/// 6.6's `printk_caller_id()`: the task (its pid in Linux; its address here, as unique), or
/// `0x80000000 + cpu` outside task context (`in_task()`: no NMI, hardirq or serving softirq).
fn caller_id() -> u64 {
    if in_task() {
        current_owner()
    } else {
        0x8000_0000 + u64::from(smp_processor_id())
    }
}

/// Stores `m`, returning the sequence numbers of the records it stored (at most two).
pub fn store(m: &Msg) -> [Option<u64>; 2] {
    match crate::init::version::linux_version() {
        KernelVersion::V6_6 => prb_store(m),
        v => cont_store(m, v == KernelVersion::V2_6),
    }
}

/// 6.6's `vprintk_store`.
fn prb_store(m: &Msg) -> [Option<u64>; 2] {
    let c = cont();
    // `prb_reserve_in_last`: the caller's open record takes the text if it fits
    // (`PRINTKRB_RECORD_MAX`); if not, the text starts a record of its own. The cheap checks
    // come first: this runs once per CPU in the boot's `announce_cpu` line.
    if !m.prefix && c.open && c.owner == caller_id() {
        let rec = last_record();
        let at = rec.len as usize;
        if let Some(room) = rec.text.get_mut(at..at + m.text.len()) {
            copy_short(room, m.text);
            rec.len = (at + m.text.len()) as u16;
            if m.newline {
                rec.flags |= LOG_NEWLINE;
                finalize_all(c);
            }
            return [None, None];
        }
    }
    let flags = if m.newline { LOG_NEWLINE } else { 0 } | if m.prefix { 0 } else { LOG_CONT };
    let seq = log_store(m.level, flags, 0, 0, m.text);
    // Reserving a record finalizes the one before (`desc_make_final`).
    c.open = !m.newline;
    c.owner = caller_id();
    log_final_seq.store(if c.open { seq } else { seq + 1 }, Ordering::Release);
    [Some(seq), None]
}

/// `dst.copy_from_slice(src)` for the few bytes of a continuation: `memcpy` costs ~14
/// emulated instructions before it copies anything, and a `rep movsb` step per byte. Up to 8
/// bytes are two fixed-size moves that may overlap (as `memcpy`s do for short sizes).
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    match n {
        0 => {}
        1 => dst[0] = src[0],
        2..=3 => {
            dst[..2].copy_from_slice(&src[..2]);
            dst[n - 2..n].copy_from_slice(&src[n - 2..]);
        }
        4..=8 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..n].copy_from_slice(&src[n - 4..]);
        }
        _ => dst.copy_from_slice(src),
    }
}

fn finalize_all(c: &mut Cont) {
    c.open = false;
    log_final_seq.store(log_next_seq.load(Ordering::Relaxed), Ordering::Release);
}

/// 3.10's `vprintk_emit` (record part); `stream` is 2.6.32's character log.
fn cont_store(m: &Msg, stream: bool) -> [Option<u64>; 2] {
    let c = cont();
    let owner = current_owner();
    let mut out = [None, None];
    let joins = |c: &Cont| stream || (c.owner == owner && !m.prefix);
    if !m.newline {
        // An earlier newline was missing, or another task prints: flush the conflicting line.
        if c.len != 0 && !joins(c) {
            out[0] = cont_flush(c, LOG_NEWLINE);
        }
        if !cont_add(c, m, owner, &mut out) {
            out[1] = Some(log_store(m.level, LOG_CONT | prefix(m), 0, 0, m.text));
        }
    } else {
        let mut stored = false;
        if c.len != 0 {
            if joins(c) {
                stored = cont_add(c, m, owner, &mut out);
            }
            let s = cont_flush(c, LOG_NEWLINE);
            out[1] = out[1].or(s);
        }
        if !stored {
            out[1] = Some(log_store(m.level, LOG_NEWLINE | prefix(m), 0, 0, m.text));
        }
    }
    log_final_seq.store(log_next_seq.load(Ordering::Relaxed), Ordering::Release);
    out
}

fn prefix(m: &Msg) -> u8 {
    if m.prefix { LOG_PREFIX } else { 0 }
}

/// `cont_add`: false if the text must be a record of its own.
fn cont_add(c: &mut Cont, m: &Msg, owner: u64, out: &mut [Option<u64>; 2]) -> bool {
    if c.len + m.text.len() > LOG_LINE_MAX {
        // The line gets too long: split it up in separate records.
        out[0] = cont_flush(c, LOG_CONT);
        return false;
    }
    if c.len == 0 {
        c.level = m.level;
        c.owner = owner;
        c.ts_nsec = crate::init::main::local_clock();
        c.cons = 0;
    }
    c.buf[c.len..c.len + m.text.len()].copy_from_slice(m.text);
    c.len += m.text.len();
    if c.len > LOG_LINE_MAX * 80 / 100 {
        out[0] = out[0].or(cont_flush(c, LOG_CONT));
    }
    true
}

/// `cont_flush`: the buffered line becomes a record. If the consoles printed part of it, the
/// record keeps its time and says so (`LOG_NOCONS`, with how much), so that they print only
/// the rest; otherwise it is stamped now, as Linux's `log_store(…, ts_nsec = 0, …)`.
fn cont_flush(c: &mut Cont, flags: u8) -> Option<u64> {
    if c.len == 0 {
        return None;
    }
    let seq = if c.cons != 0 {
        log_store(
            c.level,
            flags | LOG_NOCONS,
            c.ts_nsec,
            c.cons as u8,
            &c.buf[..c.len],
        )
    } else {
        log_store(c.level, flags, 0, 0, &c.buf[..c.len])
    };
    c.len = 0;
    c.cons = 0;
    Some(seq)
}

/// `console_cont_flush` / `cont_print_text`: the open line's text the consoles have not
/// printed yet (with the time stamp if none of it was), for `console_unlock`. Takes
/// `logbuf_lock` itself.
pub(crate) fn cont_print_text(text: &mut LineBuf<{ CONSOLE_LINE_MAX }>) -> Option<u8> {
    use crate::kernel::printk::logbuf_lock;
    if crate::init::version::linux_version() == KernelVersion::V6_6 {
        return None;
    }
    logbuf_lock.raw_lock.lock();
    let c = cont();
    let level = (c.len > c.cons).then(|| {
        if c.cons == 0 {
            print_time(c.ts_nsec, text);
        }
        let room = CONSOLE_LINE_MAX - text.len;
        let part = &c.buf[c.cons..c.len];
        text.push(&part[..part.len().min(room)]);
        c.cons = c.len;
        c.level
    });
    logbuf_lock.raw_lock.unlock();
    level
}
