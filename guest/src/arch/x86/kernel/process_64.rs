//! `show_regs` and `__show_regs` (Linux's `arch/x86/kernel/process_64.c`, with `show_regs`
//! itself from `arch/x86/kernel/dumpstack_64.c` before 4.9 and `dumpstack.c` after), in the
//! format of the version this boot replays:
//! - 4.4 / 3.10: `CPU: … Tainted: … <release> #1`, `Hardware name:`, `task: … ti: …`,
//!   `RIP: 0010:[<addr>]  [<addr>] sym+0xoff/0xsize [mod]`, `RSP: ss:sp  EFLAGS: …`, the
//!   register lines, `FS:`/`CS:`/`CR2:`, `Stack:` with 12 words, the Call Trace, `Code:`.
//! - 6.6: `RIP: 0010:sym+0xoff/0xsize [mod]`, `Code:` right after it (`show_iret_regs`),
//!   `RSP: ss:sp EFLAGS: …` (one space) with ` ORIG_RAX:` when set, no `Stack:`, the Call Trace
//!   last with its `<TASK>` markers.
//! - 2.6.32: `Pid: N, comm: C <taint> <release> #1 <board>` in place of `CPU:`/`Hardware
//!   name:`, otherwise 3.10's layout (2.6.32's `process_64.c` `__show_regs`).
use core::arch::asm;

use lockvmm_abi::PtRegs;
use lockvmm_abi::knob::KernelVersion;

use super::dumpstack::{LOGLEVEL_DEFAULT, show_code, show_stack_words, show_trace_log_lvl};
use crate::init::version::linux_version;
use crate::kernel::kallsyms::Sym;

/// Reads control register `n` (0, 2, 3 or 4).
pub fn read_cr(n: u32) -> u64 {
    let v: u64;
    // SAFETY: reading a control register has no side effects.
    unsafe {
        match n {
            0 => asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)),
            2 => asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)),
            3 => asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)),
            _ => asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)),
        }
    }
    v
}

fn segments() -> (u16, u16, u16, u16) {
    let (ds, es, fs, gs): (u16, u16, u16, u16);
    // SAFETY: reading segment selectors has no side effects.
    unsafe {
        asm!("mov {0:x}, ds", "mov {1:x}, es", "mov {2:x}, fs", "mov {3:x}, gs",
             out(reg) ds, out(reg) es, out(reg) fs, out(reg) gs,
             options(nomem, nostack, preserves_flags));
    }
    (ds, es, fs, gs)
}

/// `dump_stack_print_info` (4.4/3.10 `kernel/printk/printk.c`, 6.6 `lib/dump_stack.c`):
/// the CPU/PID/Comm line with the taint and release, and `Hardware name:` (2.6.32's
/// `Pid:` line instead).
pub fn dump_stack_print_info(level: u8) {
    let cur = crate::kernel::sched::core::current();
    let cpu = crate::arch::x86::percpu::smp_processor_id();
    let release = crate::init::version::utsname_release();
    let taint = crate::kernel::taint::PrintTainted;
    if linux_version() == KernelVersion::V2_6 {
        crate::kernel::printk::printk(
            level,
            format_args!(
                "Pid: {}, comm: {:.20} {} {} #1 {}",
                cur.pid,
                cur.comm(),
                taint,
                release,
                DMI_PRODUCT_NAME
            ),
        );
        return;
    }
    crate::kernel::printk::printk(
        level,
        format_args!(
            "CPU: {} PID: {} Comm: {:.20} {} {} #1",
            cpu,
            cur.pid,
            cur.comm(),
            taint,
            release
        ),
    );
    crate::kernel::printk::printk(level, format_args!("Hardware name: {}", HARDWARE_NAME));
}

/// `dump_stack_arch_desc_str`, which x86 fills from DMI (`"%s %s, BIOS %s %s"`): the lab
/// has no firmware, so it says what it is.
pub const HARDWARE_NAME: &str = "lockvmm KVM lab, BIOS none";
/// 2.6.32's `dmi_get_system_info(DMI_PRODUCT_NAME)`.
const DMI_PRODUCT_NAME: &str = "lockvmm KVM lab";

/// `show_regs`: the header, `__show_regs`, then (kernel mode) the stack and code.
#[inline(never)]
#[unsafe(no_mangle)]
pub fn show_regs(r: &PtRegs) {
    let v = linux_version();
    let kernel = r.cs & 3 == 0;
    if v == KernelVersion::V2_6 {
        show_regs_2_6(r, false);
        return;
    }
    dump_stack_print_info(LOGLEVEL_DEFAULT);
    if matches!(v, KernelVersion::V4_4 | KernelVersion::V3_10) {
        // 4.4's `show_regs_print_info`; 3.10 prints the same line.
        let cur = crate::kernel::sched::core::current();
        let task = cur as *const _ as u64;
        pr_default!(
            "task: {:016x} ti: {:016x} task.ti: {:016x}",
            task,
            cur.stack,
            cur.stack
        );
    }
    __show_regs(r);
    if !kernel {
        return;
    }
    if v == KernelVersion::V6_6 {
        show_trace_log_lvl(r.rsp, r.rbp);
    } else {
        pr_default!("Stack:");
        show_stack_words(r.rsp);
        show_trace_log_lvl(r.rsp, r.rbp);
        show_code(r.rip);
    }
}

/// 2.6.32's `show_regs` (`arch/x86/kernel/process_64.c`) or, with `registers`, its
/// `show_registers` (`arch/x86/kernel/dumpstack_64.c`, for oopses and `die_nmi`):
/// - `printk(KERN_INFO "CPU %d:")` (`"CPU %d "`), a line `__show_regs` ends with its first
///   `printk("\n")`, then its `print_modules()`, the `Pid:` line and the registers, and the
///   `DR0:`…`DR7:` lines;
/// - `show_regs`: `show_trace` (the Call Trace) and nothing else: no `Stack:`, no `Code:`;
/// - `show_registers`: `Process %s (pid: %d, threadinfo %p, task %p)`, `Stack:` with the
///   words and the Call Trace (`show_stack_log_lvl`), then `Code:`.
pub fn show_regs_2_6(r: &PtRegs, registers: bool) {
    use crate::kernel::printk::LOGLEVEL_INFO;
    let cpu = crate::arch::x86::percpu::smp_processor_id();
    if registers {
        printk_open!(LOGLEVEL_DEFAULT, "CPU {} ", cpu);
    } else {
        printk_open!(LOGLEVEL_INFO, "CPU {}:", cpu);
    }
    pr_cont!("\n");
    crate::kernel::module::print_modules();
    dump_stack_print_info(LOGLEVEL_INFO);
    __show_regs(r);
    let dr = read_debugregs();
    pr_default!(
        "DR0: {:016x} DR1: {:016x} DR2: {:016x}",
        dr[0],
        dr[1],
        dr[2]
    );
    pr_default!(
        "DR3: {:016x} DR6: {:016x} DR7: {:016x}",
        dr[3],
        dr[4],
        dr[5]
    );
    if r.cs & 3 != 0 {
        return;
    }
    if !registers {
        show_trace_log_lvl(r.rsp, r.rbp);
        return;
    }
    let cur = crate::kernel::sched::core::current();
    pr_default!(
        "Process {} (pid: {}, threadinfo {:016x}, task {:016x})",
        cur.comm(),
        cur.pid,
        cur.stack,
        cur as *const _ as u64
    );
    pr_default!("Stack:");
    show_stack_words(r.rsp);
    show_trace_log_lvl(r.rsp, r.rbp);
    show_code(r.rip);
}

/// DR0–DR3, DR6, DR7 (`get_debugreg`).
fn read_debugregs() -> [u64; 6] {
    let (d0, d1, d2, d3, d6, d7): (u64, u64, u64, u64, u64, u64);
    // SAFETY: reading debug registers in ring 0 has no side effects.
    unsafe {
        asm!("mov {}, dr0", "mov {}, dr1", "mov {}, dr2", "mov {}, dr3", "mov {}, dr6", "mov {}, dr7",
            out(reg) d0, out(reg) d1, out(reg) d2, out(reg) d3, out(reg) d6, out(reg) d7,
            options(nomem, nostack, preserves_flags));
    }
    [d0, d1, d2, d3, d6, d7]
}

/// `__show_regs(regs, all)`.
pub fn __show_regs(r: &PtRegs) {
    let v = linux_version();
    if v == KernelVersion::V6_6 {
        // 6.6's `show_iret_regs`, then ORIG_RAX on the RSP line.
        pr_default!("RIP: {:04x}:{}", r.cs & 0xffff, Sym(r.rip));
        show_code(r.rip);
        if r.orig_rax != u64::MAX {
            pr_default!(
                "RSP: {:04x}:{:016x} EFLAGS: {:08x} ORIG_RAX: {:016x}",
                r.ss & 0xffff,
                r.rsp,
                r.rflags,
                r.orig_rax
            );
        } else {
            pr_default!(
                "RSP: {:04x}:{:016x} EFLAGS: {:08x}",
                r.ss & 0xffff,
                r.rsp,
                r.rflags
            );
        }
    } else {
        pr_default!(
            "RIP: {:04x}:[<{:016x}>]  [<{:016x}>] {}",
            r.cs & 0xffff,
            r.rip,
            r.rip,
            Sym(r.rip)
        );
        pr_default!(
            "RSP: {:04x}:{:016x}  EFLAGS: {:08x}",
            r.ss & 0xffff,
            r.rsp,
            r.rflags
        );
    }
    pr_default!(
        "RAX: {:016x} RBX: {:016x} RCX: {:016x}",
        r.rax,
        r.rbx,
        r.rcx
    );
    pr_default!(
        "RDX: {:016x} RSI: {:016x} RDI: {:016x}",
        r.rdx,
        r.rsi,
        r.rdi
    );
    pr_default!("RBP: {:016x} R08: {:016x} R09: {:016x}", r.rbp, r.r8, r.r9);
    pr_default!(
        "R10: {:016x} R11: {:016x} R12: {:016x}",
        r.r10,
        r.r11,
        r.r12
    );
    pr_default!(
        "R13: {:016x} R14: {:016x} R15: {:016x}",
        r.r13,
        r.r14,
        r.r15
    );
    let (ds, es, fsindex, gsindex) = segments();
    // SAFETY: FS_BASE, GS_BASE and KERNEL_GS_BASE exist on every x86-64 CPU.
    let (fs, gs, shadowgs) = unsafe {
        use crate::arch::x86::msr::rdmsr;
        (rdmsr(0xc000_0100), rdmsr(0xc000_0101), rdmsr(0xc000_0102))
    };
    pr_default!(
        "FS:  {:016x}({:04x}) GS:{:016x}({:04x}) knlGS:{:016x}",
        fs,
        fsindex,
        gs,
        gsindex,
        shadowgs
    );
    pr_default!(
        "CS:  {:04x} DS: {:04x} ES: {:04x} CR0: {:016x}",
        r.cs & 0xffff,
        ds,
        es,
        read_cr(0)
    );
    pr_default!(
        "CR2: {:016x} CR3: {:016x} CR4: {:016x}",
        read_cr(2),
        read_cr(3),
        read_cr(4)
    );
}
