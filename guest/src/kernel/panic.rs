//! `panic()` (Linux's `kernel/panic.c`): print, then the kdump path: `__crash_kexec` stops the
//! other CPUs and `machine_kexec` hands over to the capture kernel (the host), which takes
//! the vmcore. A CPU that panics while another already does stops itself
//! (`panic_smp_self_stop`).
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU32, Ordering};

use lockvmm_abi::PtRegs;

use crate::arch::x86::irqflags::local_irq_disable;
use crate::arch::x86::lockvmm;
use crate::arch::x86::percpu::smp_processor_id;

const PANIC_BUF: usize = 256;

struct MsgBuf {
    buf: [u8; PANIC_BUF],
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

/// `panic()`'s `static char buf[1024]`: the message, kept for the capture (`machine_kexec`).
static mut PANIC_MSG: MsgBuf = MsgBuf {
    buf: [0; PANIC_BUF],
    len: 0,
};

/// `panic_cpu` (`PANIC_CPU_INVALID` = -1 until a CPU panics).
#[unsafe(no_mangle)]
pub static panic_cpu: AtomicU32 = AtomicU32::new(u32::MAX);

/// The panic message's address and length, for the host.
pub fn panic_message() -> (u64, u64) {
    // SAFETY: written once by the CPU that owns `panic_cpu`, before it gets here.
    unsafe {
        let m = &*core::ptr::addr_of!(PANIC_MSG);
        (m.buf.as_ptr() as u64, m.len as u64)
    }
}

/// `panic(fmt, …)` without an interrupted context.
#[inline(always)]
pub fn panic_fmt(args: fmt::Arguments) -> ! {
    panic_regs(None, args)
}

/// `panic()`. `regs` is the interrupted context when the caller has one (`nmi_panic`): the
/// host's report shows that context; the vmcore shows this CPU inside `machine_kexec`.
#[inline(never)]
#[unsafe(export_name = "panic")]
pub fn panic_regs(regs: Option<&PtRegs>, args: fmt::Arguments) -> ! {
    local_irq_disable();
    let this_cpu = smp_processor_id();
    if let Err(old) =
        panic_cpu.compare_exchange(u32::MAX, this_cpu, Ordering::AcqRel, Ordering::Acquire)
        && old != this_cpu
    {
        panic_smp_self_stop();
    }
    // SAFETY: only the CPU that owns `panic_cpu` gets here.
    let msg = unsafe { &mut *core::ptr::addr_of_mut!(PANIC_MSG) };
    msg.len = 0;
    let _ = msg.write_fmt(args);
    let text = core::str::from_utf8(&msg.buf[..msg.len]).unwrap_or("(invalid UTF-8)");
    pr_emerg!("Kernel panic - not syncing: {}", text);
    // The panic notifiers: ftrace's `trace_panic_handler`.
    crate::kernel::trace::trace_dump::ftrace_dump_on_oops();
    // `__crash_kexec(NULL)`: kdump. It returns only if the capture kernel refused.
    keep_frame!(crate::kernel::kexec_core::__crash_kexec(regs));
    loop {
        lockvmm::wait_for_event();
    }
}

/// `panic_smp_self_stop`: another CPU is already panicking; stop here.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn panic_smp_self_stop() -> ! {
    loop {
        lockvmm::wait_for_event();
    }
}
