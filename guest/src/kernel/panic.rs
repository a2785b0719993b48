//! `panic()` (Linux's `kernel/panic.c`): print, tell the host, stop this CPU.
use core::fmt::{self, Write};

use lockvmm_abi::{Hypercall, PtRegs};

use crate::arch::x86::irqflags::local_irq_disable;
use crate::arch::x86::lockvmm;

struct MsgBuf {
    buf: [u8; 256],
    len: usize,
}

impl Write for MsgBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[inline(never)]
#[unsafe(no_mangle)]
pub fn panic_fmt(args: fmt::Arguments) -> ! {
    panic_regs(None, args)
}

/// `panic()`, naming the interrupted context when there is one (`nmi_panic(regs, …)`).
#[inline(never)]
#[unsafe(no_mangle)]
pub fn panic_regs(regs: Option<&PtRegs>, args: fmt::Arguments) -> ! {
    local_irq_disable();
    let mut msg = MsgBuf {
        buf: [0; 256],
        len: 0,
    };
    let _ = msg.write_fmt(args);
    let text = core::str::from_utf8(&msg.buf[..msg.len]).unwrap_or("(invalid UTF-8)");
    pr_emerg!("Kernel panic - not syncing: {}", text);
    // The panic notifiers: ftrace's `trace_panic_handler`.
    crate::kernel::trace::trace_dump::ftrace_dump_on_oops();
    let regs_at = regs.map_or(0, |r| r as *const PtRegs as u64);
    lockvmm::hypercall(
        Hypercall::Panic as u32,
        msg.buf.as_ptr() as u64,
        msg.len as u64,
        regs_at,
        0,
    );
    loop {
        lockvmm::wait_for_event();
    }
}
