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
    // `#ifdef CONFIG_DEBUG_BUGVERBOSE dump_stack()` (`kernel/panic.c` of 2.6.32 … 6.6, which
    // 4.4 and 6.6 skip when an oops already dumped: `test_taint(TAINT_DIE)`; the lab's oopses
    // do not reach panic).
    crate::arch::x86::kernel::dumpstack::dump_stack();
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

/// `oops_id` (`kernel/panic.c`): Linux draws it at random on the first oops end marker; the lab
/// takes the virtual clock at that moment, so a replay prints the same id.
#[unsafe(no_mangle)]
pub static oops_id: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// `print_oops_end_marker` (3.10 `kernel/panic.c`): `init_oops_id()`, then
/// `printk(KERN_WARNING "---[ end trace %016llx ]---\n", oops_id)`.
pub fn print_oops_end_marker() {
    if oops_id.load(Ordering::Relaxed) == 0 {
        oops_id.store(crate::init::main::local_clock() | 1, Ordering::Relaxed);
    } else {
        oops_id.fetch_add(1, Ordering::Relaxed);
    }
    pr_default!(
        "---[ end trace {:016x} ]---",
        oops_id.load(Ordering::Relaxed)
    );
}

/// `WARN(1, fmt, …)` as 3.10 expands it: `warn_slowpath_fmt(__FILE__, __LINE__, fmt, …)`,
/// whose caller (`__builtin_return_address(0)`) the `WARNING:` line names. `file` is the
/// guest's source path without `src/`, as Linux's `__FILE__` is relative to the tree.
#[inline(never)]
#[unsafe(no_mangle)]
pub fn warn_slowpath_fmt(file: &str, line: u32, args: fmt::Arguments) {
    let caller = crate::kernel::jump_label::ret_ip();
    keep_frame!(warn_slowpath_common(file, line, caller, args));
}

/// `warn_slowpath_common` (3.10 `kernel/panic.c`):
///   printk(KERN_WARNING "------------[ cut here ]------------\n");
///   printk(KERN_WARNING "WARNING: at %s:%d %pS()\n", file, line, caller);
///   vprintk(args->fmt, args->args);      // no level, no newline: it waits in `cont`
///   print_modules(); dump_stack(); print_oops_end_marker(); add_taint(TAINT_WARN);
/// (4.4's `__warn` adds `CPU: %d PID: %d` to the `WARNING:` line; 6.6 prints
/// `WARNING: CPU: %d PID: %d at %pS`.)
#[inline(never)]
#[unsafe(no_mangle)]
pub fn warn_slowpath_common(file: &str, line: u32, caller: u64, args: fmt::Arguments) {
    let file = file.strip_prefix("src/").unwrap_or(file);
    pr_default!("------------[ cut here ]------------");
    pr_default!(
        "WARNING: at {}:{} {}()",
        file,
        line,
        crate::kernel::kallsyms::Sym(caller)
    );
    // `vprintk` without a level: 3.10 keeps the text in `cont` until the next line with a
    // level (`Modules linked in:`) stores it as a record of its own.
    pr_cont!("{}", args);
    crate::kernel::module::print_modules();
    crate::arch::x86::kernel::dumpstack::dump_stack();
    print_oops_end_marker();
    crate::kernel::taint::add_taint(crate::kernel::taint::TAINT_WARN);
}
