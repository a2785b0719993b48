//! Kernel page faults (Linux's `arch/x86/mm/fault.c`), with its chain of function names:
//! `page_fault` → `do_page_fault` → `__do_page_fault` → `bad_area_nosemaphore` →
//! `__bad_area_nosemaphore` → `no_context`, which prints the oops.
use lockvmm_abi::knob::KernelVersion;
use lockvmm_abi::{PAGE_OFFSET, PtRegs};

use crate::arch::x86::kernel::traps::die;
use crate::arch::x86::msr::read_cr2;
use crate::init::version::linux_version;
use crate::kernel::printk::{LOGLEVEL_INFO, LOGLEVEL_WARNING};

const PF_PROT: u64 = 1 << 0;
const PF_WRITE: u64 = 1 << 1;
const PF_USER: u64 = 1 << 2;
const PF_RSVD: u64 = 1 << 3;
const PF_INSTR: u64 = 1 << 4;
const PAGE_SIZE: u64 = 4096;
const PTE_PRESENT: u64 = 1;
const PTE_PSE: u64 = 1 << 7;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

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
    show_fault_oops(regs, error_code, address);
    die("Oops", regs, 14, error_code, address);
}

/// `show_fault_oops` (inlined into `no_context`, as Linux's static function), in the replayed
/// version's words.
#[inline(always)]
fn show_fault_oops(regs: &PtRegs, error_code: u64, address: u64) {
    use crate::kernel::kallsyms::{Sym, SymB};
    use crate::kernel::printk::LOGLEVEL_ALERT;
    match linux_version() {
        KernelVersion::V6_6 => {
            // 6.6 `arch/x86/mm/fault.c`: `pr_alert("BUG: kernel NULL pointer dereference,
            // address: %px\n")` or `pr_alert("BUG: unable to handle page fault for address:
            // %px\n")`, then the two `#PF:` lines.
            if address < PAGE_SIZE {
                pr_alert!(
                    "BUG: kernel NULL pointer dereference, address: {:016x}",
                    address
                );
            } else {
                pr_alert!(
                    "BUG: unable to handle page fault for address: {:016x}",
                    address
                );
            }
            let access = if error_code & PF_INSTR != 0 {
                "instruction fetch"
            } else if error_code & PF_WRITE != 0 {
                "write access"
            } else {
                "read access"
            };
            let mode = if error_code & PF_USER != 0 {
                "user"
            } else {
                "supervisor"
            };
            pr_alert!("#PF: {} {} in kernel mode", mode, access);
            let why = if error_code & PF_PROT == 0 {
                "not-present page"
            } else if error_code & PF_RSVD != 0 {
                "reserved bit violation"
            } else {
                "permissions violation"
            };
            pr_alert!("#PF: error_code(0x{:04x}) - {}", error_code, why);
        }
        v => {
            // 2.6.32, 3.10 and 4.4 `arch/x86/mm/fault.c`: one line printed in pieces,
            //   printk(KERN_ALERT "BUG: unable to handle kernel ");
            //   printk(KERN_CONT "NULL pointer dereference" / "paging request");
            //   printk(KERN_CONT " at %p\n", (void *) address);
            //   printk(KERN_ALERT "IP:"); printk_address(regs->ip, 1);
            // `printk_address` is `pr_cont(" [<%p>] %s%pB\n")` in 3.10 (`%pS` in 4.4,
            // `printk(" [<%016lx>] %s%pS\n")` in 2.6.32; `dumpstack.c`). 3.10's kdump vmcore
            // therefore holds `BUG: unable to handle kernel ` alone when the first printk hangs
            // (seed 002), and crash's PANIC reads that record.
            printk_open!(LOGLEVEL_ALERT, "BUG: unable to handle kernel ");
            if address < PAGE_SIZE {
                pr_cont!("NULL pointer dereference");
            } else {
                pr_cont!("paging request");
            }
            pr_cont!(" at {:016x}\n", address);
            printk_open!(LOGLEVEL_ALERT, "IP:");
            if v == KernelVersion::V3_10 {
                pr_cont!(" [<{:016x}>] {}\n", regs.rip, SymB(regs.rip));
            } else {
                pr_cont!(" [<{:016x}>] {}\n", regs.rip, Sym(regs.rip));
            }
        }
    }
    dump_pagetable(address);
}

/// `dump_pagetable` (x86_64, `arch/x86/mm/fault.c`): each level's entry, down to the first
/// that is not present or maps a large page. 2.6.32/3.10/4.4 print with plain `printk`
/// (`"PGD %lx "`, `"PUD %lx "`, `"PMD %lx "`, `"PTE %lx"`, then `"\n"`); 6.6 with
/// `pr_info("PGD %lx ")` and `pr_cont`, and a `P4D` level (the PGD entry again with 4-level
/// paging).
fn dump_pagetable(address: u64) {
    let cr3: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe {
        core::arch::asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack, preserves_flags))
    };
    let v66 = linux_version() == KernelVersion::V6_6;
    let names: &[&str] = if v66 {
        &["PGD", "P4D", "PUD", "PMD", "PTE"]
    } else {
        &["PGD", "PUD", "PMD", "PTE"]
    };
    // The level each name reads (P4D folds onto the PGD entry).
    let shifts: &[u64] = if v66 {
        &[39, 39, 30, 21, 12]
    } else {
        &[39, 30, 21, 12]
    };
    let mut table = cr3 & ADDR_MASK;
    for (i, (name, &shift)) in names.iter().zip(shifts).enumerate() {
        let sep = if i + 1 == names.len() { "" } else { " " };
        let entry_addr = PAGE_OFFSET + table + ((address >> shift) & 0x1ff) * 8;
        // SAFETY: page-table pages are RAM reached through the direct map (the host builds
        // them there; the guest adds only pages from its allocator).
        let entry = unsafe { core::ptr::read_volatile(entry_addr as *const u64) };
        if i == 0 {
            printk_open!(
                if v66 { LOGLEVEL_INFO } else { LOGLEVEL_WARNING },
                "{} {:x}{}",
                name,
                entry,
                sep
            );
        } else {
            pr_cont!("{} {:x}{}", name, entry, sep);
        }
        let folded = v66 && i == 0;
        if !folded {
            if entry & PTE_PRESENT == 0 || (shift != 12 && shift != 39 && entry & PTE_PSE != 0) {
                break;
            }
            table = entry & ADDR_MASK;
        }
    }
    pr_cont!("\n");
}
