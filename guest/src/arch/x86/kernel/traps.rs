//! Exception and interrupt handlers (Linux's `arch/x86/kernel/traps.c`, `irq.c`, `nmi.c`).
use lockvmm_abi::{Hypercall, PtRegs, exception_name};

use crate::arch::x86::lockvmm;

/// Prints an oops for `regs` and hands the machine to the host, which stops and reports
/// (Linux's `die` → `oops_end`, with the host in the place of kdump).
#[inline(never)]
#[unsafe(no_mangle)]
pub fn die(msg: &str, regs: &PtRegs, vector: u64, err: u64, cr2: u64) -> ! {
    // `__die` (`arch/x86/kernel/dumpstack.c`): 3.10 and 4.4 `printk(KERN_DEFAULT "%s: %04lx
    // [#%d] " PREEMPT SMP DEBUG_PAGEALLOC "\n")`, so `SMP ` keeps its trailing space; 6.6's
    // `__die_header` `"%s: %04lx [#%d]%s%s%s%s%s\n"` with `" SMP"`; 2.6.32 `printk(KERN_EMERG
    // "%s: %04lx [#%d] ")`, then `printk("SMP ")` and `printk("\n")`.
    static DIE_COUNTER: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
    let n = DIE_COUNTER.fetch_add(1, core::sync::atomic::Ordering::Relaxed) + 1;
    match crate::init::version::linux_version() {
        lockvmm_abi::knob::KernelVersion::V6_6 => {
            pr_default!("{}: {:04x} [#{}] SMP", msg, err & 0xffff, n)
        }
        lockvmm_abi::knob::KernelVersion::V2_6 => {
            pr_emerg!("{}: {:04x} [#{}] SMP ", msg, err & 0xffff, n)
        }
        _ => pr_default!("{}: {:04x} [#{}] SMP ", msg, err & 0xffff, n),
    }
    // `__die`: the modules, then the registers (4.4's order); 6.6's `__die_body` prints the
    // modules after the trace.
    let v66 = crate::init::version::linux_version() == lockvmm_abi::knob::KernelVersion::V6_6;
    if !v66 {
        crate::kernel::module::print_modules();
    }
    show_regs(regs);
    if v66 {
        crate::kernel::module::print_modules();
    }
    lockvmm::hypercall(
        Hypercall::Exception as u32,
        regs as *const PtRegs as u64,
        vector,
        err,
        cr2,
    );
    // The host does not resume a CPU after an oops; should it, stay parked.
    loop {
        lockvmm::wait_for_event();
    }
}

/// Whether `addr..addr+16` lies on one of the kernel's stacks (so a frame there can be read
/// without faulting, whatever a corrupt RBP says).
pub fn on_a_stack(addr: u64) -> bool {
    use crate::arch::x86::kernel::cpu::common::exception_stacks;
    use crate::arch::x86::kernel::head_64::init_stacks;
    use crate::arch::x86::percpu::irq_stack_backing_store;
    use crate::kernel::sched::task::task_stacks;
    /// Start and size of a static, from its address and type.
    fn span<T>(p: *const T) -> (u64, u64) {
        (p as u64, core::mem::size_of::<T>() as u64)
    }
    [
        span(core::ptr::addr_of!(init_stacks)),
        span(core::ptr::addr_of!(task_stacks)),
        span(core::ptr::addr_of!(irq_stack_backing_store)),
        span(core::ptr::addr_of!(exception_stacks)),
    ]
    .iter()
    .any(|&(start, len)| addr >= start && addr.wrapping_add(16) <= start + len)
}

/// The user registers a system call saved, if `ret` (at `fp + 8`) returns into the system-call
/// entry: its `pt_regs` sit 16 bytes above the return address (see `entry_SYSCALL_64`).
fn syscall_user_regs(fp: u64, ret: u64) -> Option<&'static PtRegs> {
    use crate::arch::x86::entry::entry_64::{entry_SYSCALL_64_after_hwframe, entry_SYSCALL_64_end};
    let entry = entry_SYSCALL_64_after_hwframe as *const () as u64;
    let end = entry_SYSCALL_64_end as *const () as u64;
    let regs = fp + 24;
    if !(entry..end).contains(&ret) || !on_a_stack(regs + size_of::<PtRegs>() as u64 - 16) {
        return None;
    }
    // SAFETY: `regs` lies on a kernel stack (checked above), where the entry saved them.
    let regs = unsafe { &*(regs as *const PtRegs) };
    (regs.cs & 3 == 3).then_some(regs)
}

/// `Call Trace:` of the return addresses on the frame chain from `rbp` (Linux's `show_stack`
/// for a frame it trusts: every entry reliable), each named by the guest's kallsyms.
#[inline(never)]
#[unsafe(no_mangle)]
pub fn show_stack(rbp: u64) {
    use crate::arch::x86::kernel::dumpstack::printk_stack_address;
    pr_default!("Call Trace:");
    let mut fp = rbp;
    for _ in 0..32 {
        if fp == 0 || !fp.is_multiple_of(8) || !on_a_stack(fp) {
            break;
        }
        // SAFETY: `fp..fp+16` lies on a kernel stack (checked above).
        let (next, ret) = unsafe { (*(fp as *const u64), *((fp + 8) as *const u64)) };
        if ret == 0 {
            break;
        }
        printk_stack_address(ret, true);
        if let Some(user) = syscall_user_regs(fp, ret) {
            // The bottom of a system call: the user context it came from, as Linux prints it.
            pr_default!("RIP: {:04x}:{:#x}", user.cs, user.rip);
            break;
        }
        if next <= fp && on_a_stack(next) && next.abs_diff(fp) < 16384 {
            break;
        }
        fp = next;
    }
}

pub use crate::arch::x86::kernel::process_64::show_regs;

/// Every exception without a handler of its own.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn do_error_trap(regs: &mut PtRegs, vector: u64) {
    let err = regs.orig_rax;
    die(exception_name(vector), regs, vector, err, 0);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn do_invalid_op(regs: &mut PtRegs, vector: u64) {
    die("invalid opcode", regs, vector, 0, 0);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn do_general_protection(regs: &mut PtRegs, vector: u64) {
    let err = regs.orig_rax;
    die("general protection fault", regs, vector, err, 0);
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn do_double_fault(regs: &mut PtRegs, vector: u64) {
    let err = regs.orig_rax;
    die(
        "double fault",
        regs,
        vector,
        err,
        crate::arch::x86::msr::read_cr2(),
    );
}
