//! The C half of system-call entry (Linux's `arch/x86/entry/common.c`).
use lockvmm_abi::PtRegs;

use crate::arch::x86::irqflags::{local_irq_disable, local_irq_enable};

/// The system calls the lab's user programs make (x86-64 numbers).
pub const __NR_EXIT: u64 = 60;
pub const __NR_SETSID: u64 = 112;
const ENOSYS: i64 = 38;

/// Runs system call `nr` for the user context in `regs`; the result goes back in RAX.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn do_syscall_64(regs: &mut PtRegs, nr: u64) {
    // SYSCALL masked interrupts; a system call runs with them on (syscall_enter_from_user_mode).
    local_irq_enable();
    let ret = match nr {
        __NR_SETSID => crate::kernel::sys::__x64_sys_setsid(),
        __NR_EXIT => crate::kernel::sys::__x64_sys_exit(regs.rdi),
        _ => -ENOSYS,
    };
    regs.rax = ret as u64;
    local_irq_disable();
}
