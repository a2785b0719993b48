//! `machine_kexec` (Linux's `arch/x86/kernel/machine_kexec_64.c`): the jump into the capture
//! kernel. lockvmm's capture kernel is the host, so the jump is the `Panic` hypercall: the host
//! freezes every vCPU and guest memory right here and writes the vmcore, as kdump's second
//! kernel would. The other CPUs were stopped before (`machine_crash_shutdown`).
use lockvmm_abi::{Hypercall, PtRegs};

use crate::arch::x86::lockvmm;

/// `machine_kexec(image)`: hands over to the host with the panic message and, when the panic
/// came with an interrupted context (`nmi_panic`), its saved registers.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn machine_kexec(regs: Option<&PtRegs>) {
    let (msg, len) = crate::kernel::panic::panic_message();
    let regs_at = regs.map_or(0, |r| r as *const PtRegs as u64);
    // The host does not return from a capture; if it refused the call, panic() goes on.
    lockvmm::hypercall(Hypercall::Panic as u32, msg, len, regs_at, 0);
}
