//! Kernel page faults (Linux's `arch/x86/mm/fault.c`), with its chain of function names:
//! `page_fault` → `do_page_fault` → `__do_page_fault` → `bad_area_nosemaphore` →
//! `__bad_area_nosemaphore` → `no_context`, which prints the oops.
use lockvmm_abi::PtRegs;

use crate::arch::x86::kernel::traps::die;
use crate::arch::x86::msr::read_cr2;

const PF_WRITE: u64 = 1 << 1;
const PF_PROT: u64 = 1 << 0;

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn do_page_fault(regs: &mut PtRegs, _vector: u64) {
    let address = read_cr2();
    let error_code = regs.orig_rax;
    keep_frame!(__do_page_fault(regs, error_code, address));
}

/// The kernel has no demand paging: every kernel-mode fault is a bad area.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn __do_page_fault(regs: &mut PtRegs, error_code: u64, address: u64) {
    keep_frame!(bad_area_nosemaphore(regs, error_code, address));
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn bad_area_nosemaphore(regs: &mut PtRegs, error_code: u64, address: u64) {
    keep_frame!(__bad_area_nosemaphore(regs, error_code, address));
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn __bad_area_nosemaphore(regs: &mut PtRegs, error_code: u64, address: u64) {
    keep_frame!(no_context(regs, error_code, address));
}

/// No exception-table fixup exists for the faulting instruction: oops.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn no_context(regs: &mut PtRegs, error_code: u64, address: u64) {
    let what = if error_code & PF_PROT == 0 && address < 4096 {
        "NULL pointer dereference"
    } else {
        "paging request"
    };
    pr_alert!("BUG: unable to handle kernel {} at {:016x}", what, address);
    // 4.4's `printk(KERN_ALERT "IP:"); printk_address(regs->ip)`.
    pr_alert!(
        "IP: [<{:016x}>] {}",
        regs.rip,
        crate::kernel::kallsyms::Sym(regs.rip)
    );
    let access = if error_code & PF_WRITE != 0 {
        "write"
    } else {
        "read"
    };
    printk!("PGD 0 ({} access, error code {:#x})", access, error_code);
    die("Oops", regs, 14, error_code, address);
}
