//! printk (Linux's `kernel/printk/printk.c`): a line with a `[    0.001234]` timestamp of the
//! lab's virtual clock, written to the console under the console lock.
use core::fmt::{self, Write};

use crate::drivers::tty::serial::serial8250;
use crate::kernel::locking::spinlock::RawSpinLock;

/// Serialises console output so that lines from different CPUs never interleave.
#[unsafe(no_mangle)]
pub static console_sem: RawSpinLock = RawSpinLock::new();

/// Longest line printk emits; longer ones are cut (Linux: `LOG_LINE_MAX`).
const LOG_LINE_MAX: usize = 512;

struct LineBuf {
    buf: [u8; LOG_LINE_MAX],
    len: usize,
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = LOG_LINE_MAX - 1 - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// `printk!("fmt", args…)`: one console line.
#[macro_export]
macro_rules! printk {
    ($($arg:tt)*) => {
        $crate::kernel::printk::printk(format_args!($($arg)*))
    };
}

#[inline(never)]
#[unsafe(no_mangle)]
pub fn printk(args: fmt::Arguments) {
    vprintk_emit(args);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub fn vprintk_emit(args: fmt::Arguments) {
    let mut line = LineBuf {
        buf: [0; LOG_LINE_MAX],
        len: 0,
    };
    let ns = crate::init::main::local_clock();
    let _ = write!(
        line,
        "[{:5}.{:06}] ",
        ns / 1_000_000_000,
        (ns % 1_000_000_000) / 1000
    );
    let _ = line.write_fmt(args);
    line.buf[line.len] = b'\n';
    line.len += 1;
    let flags = console_sem.lock_irqsave();
    console_unlock(&line.buf[..line.len]);
    console_sem.unlock_irqrestore(flags);
}

/// Hands the line to every console (only the 8250 here).
#[inline(never)]
#[unsafe(no_mangle)]
pub fn console_unlock(text: &[u8]) {
    call_console_drivers(text);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub fn call_console_drivers(text: &[u8]) {
    serial8250::serial8250_console_write(text);
}
