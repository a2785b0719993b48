//! Stack dumps (Linux's `arch/x86/kernel/dumpstack.c` and `dumpstack_64.c`), in the format of
//! the version this boot replays:
//! - 2.6.32, 3.10, 4.4 (`dumpstack.c` `printk_address`/`print_trace_address`,
//!   `dumpstack_64.c` `show_stack_log_lvl`, `show_regs`): ` [<ffffffff810a0c25>] kthread+0xe5/0x100`,
//!   `? ` for a text address found on the stack that is not the frame's return address, a
//!   `Stack:` dump of 12 words and `Code:` with 64 bytes, 43 before RIP.
//! - 6.6 (`dumpstack.c` `printk_stack_address`, `show_trace_log_lvl`, `show_opcodes`):
//!   ` kthread+0xe5/0x100` (no address), `<TASK>`/`<IRQ>`/`<NMI>` around each stack, no
//!   `Stack:` dump, `Code:` with 42 bytes before RIP and 21 after.
use core::fmt::{self, Write};

use lockvmm_abi::knob::KernelVersion;
use lockvmm_abi::stacks::Ist;

use crate::init::version::linux_version;
use crate::kernel::kallsyms::{SymB, kernel_text_address};

/// Linux's `KERN_DEFAULT`, which prints at `default_message_loglevel` (4).
pub const LOGLEVEL_DEFAULT: u8 = crate::kernel::printk::LOGLEVEL_WARNING;

/// A console line built piecewise, as Linux's `pr_cont` continues one (`LOG_LINE_MAX`).
pub struct Line {
    buf: [u8; 240],
    len: usize,
}

impl Line {
    pub fn new() -> Self {
        Line {
            buf: [0; 240],
            len: 0,
        }
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }

    /// Prints the line at `level`.
    pub fn emit(&self, level: u8) {
        crate::kernel::printk::printk(level, format_args!("{}", self.as_str()));
    }
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Which stack an address is on (`enum stack_type`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum StackType {
    Task,
    Irq,
    Exception(Ist),
}

/// `struct stack_info`: the stack `addr` is on, `[start, end)`.
#[derive(Clone, Copy)]
pub struct StackInfo {
    pub kind: StackType,
    pub start: u64,
    pub end: u64,
}

/// `get_stack_info`: which of the kernel's stacks holds `addr`.
pub fn get_stack_info(addr: u64) -> Option<StackInfo> {
    use crate::arch::x86::kernel::cpu::common::{EXCEPTION_STKSZ, exception_stacks};
    use crate::arch::x86::kernel::head_64::{THREAD_SIZE, init_stacks};
    use crate::arch::x86::percpu::{IRQ_STACK_SIZE, irq_stack_backing_store};
    use crate::kernel::sched::task::task_stacks;
    fn within<T>(p: *const T, each: usize, addr: u64) -> Option<(u64, u64, usize)> {
        let (start, len) = (p as u64, core::mem::size_of::<T>() as u64);
        if addr < start || addr >= start + len {
            return None;
        }
        let i = (addr - start) / each as u64;
        Some((
            start + i * each as u64,
            start + (i + 1) * each as u64,
            i as usize,
        ))
    }
    let task = |(s, e, _)| StackInfo {
        kind: StackType::Task,
        start: s,
        end: e,
    };
    if let Some(t) = within(core::ptr::addr_of!(task_stacks), THREAD_SIZE, addr)
        .or_else(|| within(core::ptr::addr_of!(init_stacks), THREAD_SIZE, addr))
    {
        return Some(task(t));
    }
    if let Some((s, e, _)) = within(
        core::ptr::addr_of!(irq_stack_backing_store),
        IRQ_STACK_SIZE,
        addr,
    ) {
        return Some(StackInfo {
            kind: StackType::Irq,
            start: s,
            end: e,
        });
    }
    let (s, e, i) = within(core::ptr::addr_of!(exception_stacks), EXCEPTION_STKSZ, addr)?;
    let ist = Ist::ALL[i % Ist::ALL.len()];
    Some(StackInfo {
        kind: StackType::Exception(ist),
        start: s,
        end: e,
    })
}

/// 6.6's `stack_type_name`.
fn stack_type_name(kind: StackType) -> &'static str {
    match kind {
        StackType::Task => "TASK",
        StackType::Irq => "IRQ",
        StackType::Exception(Ist::Nmi) => "NMI",
        StackType::Exception(Ist::DoubleFault) => "#DF",
        StackType::Exception(Ist::Debug) => "#DB",
        StackType::Exception(Ist::MachineCheck) => "#MC",
    }
}

/// One Call Trace entry (`printk_stack_address` / 4.4's `print_trace_address`).
pub fn printk_stack_address(addr: u64, reliable: bool) {
    let q = if reliable { "" } else { "? " };
    if linux_version() == KernelVersion::V6_6 {
        pr_default!(" {}{}", q, SymB(addr));
    } else {
        pr_default!(" [<{:016x}>] {}{}", addr, q, SymB(addr));
    }
}

fn read_word(at: u64) -> u64 {
    // SAFETY: callers pass addresses inside a kernel stack (`get_stack_info`), 8-aligned.
    unsafe { core::ptr::read_volatile(at as *const u64) }
}

/// `show_trace_log_lvl`: `Call Trace:`, then every kernel text address on the stack from `sp`
/// up, reliable (no `? `) when it is the return address of the frame chain from `bp`. Where a
/// stack ends, the walk continues on the stack the frame chain leads to (the task's, after an
/// interrupt's): 6.6 marks each stack (`<IRQ>` … `</IRQ>`), the older versions the end of
/// an interrupt stack (` <EOI> `) or exception stack (` <<EOE>> `).
pub fn show_trace_log_lvl(sp: u64, bp: u64) {
    pr_default!("Call Trace:");
    let v66 = linux_version() == KernelVersion::V6_6;
    let mut stack = sp & !7;
    let mut bp = bp;
    for _ in 0..4 {
        let Some(info) = get_stack_info(stack) else {
            break;
        };
        let name = stack_type_name(info.kind);
        if v66 {
            pr_default!(" <{}>", name);
        }
        while stack + 8 <= info.end {
            let addr = read_word(stack);
            if kernel_text_address(addr) {
                let reliable = bp != 0 && stack == bp + 8;
                if reliable {
                    let next = read_word(bp);
                    bp = if get_stack_info(next).is_some() {
                        next
                    } else {
                        0
                    };
                }
                printk_stack_address(addr, reliable);
            }
            stack += 8;
        }
        if v66 {
            pr_default!(" </{}>", name);
        } else if info.kind == StackType::Irq {
            pr_default!(" <EOI> ");
        } else if info.kind != StackType::Task {
            pr_default!(" <<EOE>> ");
        }
        // The interrupted stack, where the frame chain continues.
        match get_stack_info(bp) {
            Some(next) if next.start != info.start => stack = bp,
            _ => break,
        }
    }
}

/// 4.4's `show_stack_log_lvl` words (`kstack_depth_to_print` = 12, 4 a line) from `sp`,
/// stopping at the end of its stack.
pub fn show_stack_words(sp: u64) {
    let Some(info) = get_stack_info(sp) else {
        return;
    };
    let mut line = Line::new();
    let mut at = sp & !7;
    for i in 0..12 {
        if at + 8 > info.end {
            break;
        }
        if i != 0 && i % 4 == 0 {
            line.emit(LOGLEVEL_DEFAULT);
            line = Line::new();
        }
        let _ = write!(line, " {:016x}", read_word(at));
        at += 8;
    }
    line.emit(LOGLEVEL_DEFAULT);
}

/// Whether `va` is mapped (Linux's `probe_kernel_address` succeeds): a walk of the page
/// tables instead of a fault and its fixup, so CR2 keeps its value.
pub fn kern_addr_valid(va: u64) -> bool {
    const PRESENT: u64 = 1;
    const PSE: u64 = 1 << 7;
    const ADDR: u64 = 0x000f_ffff_ffff_f000;
    if va < lockvmm_abi::PAGE_OFFSET {
        return false;
    }
    let mut table = crate::arch::x86::kernel::process_64::read_cr(3) & ADDR;
    for level in [3u32, 2, 1, 0] {
        let idx = (va >> (12 + 9 * level)) & 0x1ff;
        let entry = read_word(lockvmm_abi::PAGE_OFFSET + table + idx * 8);
        if entry & PRESENT == 0 {
            return false;
        }
        if level == 0 || (level < 3 && entry & PSE != 0) {
            return true;
        }
        table = entry & ADDR;
    }
    true
}

fn code_byte(at: u64) -> Option<u8> {
    // SAFETY: `at` is mapped (checked by `kern_addr_valid`).
    kern_addr_valid(at).then(|| unsafe { core::ptr::read_volatile(at as *const u8) })
}

/// The `Code:` line: 4.4's `show_regs` (64 bytes, 43 before RIP, or from RIP on when those
/// cannot be read, ` Bad RIP value.` where reading stops) or 6.6's `show_opcodes` (42 before,
/// 21 after, or `Unable to access opcode bytes at`).
pub fn show_code(rip: u64) {
    let mut line = Line::new();
    let _ = write!(line, "Code: ");
    if linux_version() == KernelVersion::V6_6 {
        let start = rip.wrapping_sub(42);
        if (start..rip + 22).any(|a| code_byte(a).is_none()) {
            pr_default!(
                "Code: Unable to access opcode bytes at {}.",
                crate::kernel::kallsyms::Sym(start)
            );
            return;
        }
        for a in start..rip + 22 {
            let c = code_byte(a).unwrap_or(0);
            let sep = if a + 1 == rip + 22 { "" } else { " " };
            if a == rip {
                let _ = write!(line, "<{:02x}>{}", c, sep);
            } else {
                let _ = write!(line, "{:02x}{}", c, sep);
            }
        }
    } else {
        let (code_bytes, prologue) = (64u64, 43u64);
        let (mut ip, mut len) = (rip.wrapping_sub(prologue), code_bytes);
        if code_byte(ip).is_none() {
            ip = rip;
            len = code_bytes - prologue + 1;
        }
        for _ in 0..len {
            let Some(c) = code_byte(ip) else {
                let _ = write!(line, " Bad RIP value.");
                break;
            };
            if ip == rip {
                let _ = write!(line, "<{:02x}> ", c);
            } else {
                let _ = write!(line, "{:02x} ", c);
            }
            ip += 1;
        }
    }
    line.emit(LOGLEVEL_DEFAULT);
}

/// `dump_stack()`, as each version prints it:
/// - 3.10 and 4.4 (`lib/dump_stack.c` → `dump_stack_print_info(KERN_DEFAULT)` and
///   `show_stack(NULL, NULL)`, which on x86_64 is `show_stack_log_lvl`): the stack words from
///   here, with no `Stack:` header, then the Call Trace through every stack up to the task's;
/// - 6.6 (`lib/dump_stack.c` → `show_stack` → `show_trace_log_lvl`): no words, the trace
///   with its `<NMI>`/`<IRQ>`/`<TASK>` markers;
/// - 2.6.32 (`arch/x86/kernel/dumpstack_64.c`): `printk("Pid: %d, comm: %.20s %s %s %.*s\n")`
///   (no board) and `show_trace`.
#[inline(never)]
#[unsafe(no_mangle)]
pub fn dump_stack() {
    let (sp, bp): (u64, u64);
    // SAFETY: reads this frame's stack and frame pointers.
    unsafe {
        core::arch::asm!("mov {}, rsp", "mov {}, rbp", out(reg) sp, out(reg) bp,
            options(nomem, nostack, preserves_flags))
    };
    match linux_version() {
        KernelVersion::V2_6 => {
            let cur = crate::kernel::sched::core::current();
            pr_default!(
                "Pid: {}, comm: {:.20} {} {} #1",
                cur.pid,
                cur.comm(),
                crate::kernel::taint::PrintTainted,
                crate::init::version::utsname_release()
            );
        }
        v => {
            crate::arch::x86::kernel::process_64::dump_stack_print_info(LOGLEVEL_DEFAULT);
            if v != KernelVersion::V6_6 {
                show_stack_words(sp);
            }
        }
    }
    show_trace_log_lvl(sp, bp);
}
