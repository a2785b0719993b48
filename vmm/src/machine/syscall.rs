//! `syscall` from ring 3, performed by the host. This KVM runs ring-3 code such that `syscall`
//! lands at LSTAR still at CPL 3 and `int $0x80` raises #UD (both measured), so the guest's
//! user programs ask for the transition with [`Hypercall::Syscall`] and the host applies the
//! instruction's architectural effects (Intel SDM, SYSCALL). From there on the guest's real
//! `entry_SYSCALL_64` runs.
//!
//! [`Hypercall::Syscall`]: lockvmm_abi::Hypercall::Syscall
use kvm_bindings::{Msrs, kvm_msr_entry, kvm_regs};
use kvm_ioctls::VcpuFd;
use lockvmm_abi::eflags::X86_EFLAGS_FIXED;
use lockvmm_abi::msr::{MSR_LSTAR, MSR_STAR, MSR_SYSCALL_MASK};

use super::Machine;
use crate::kvm::vcpu::{kernel_code_segment, kernel_data_segment};

/// `out dx, eax`, the one-byte instruction every hypercall is.
const OUT_DX_EAX: u8 = 0xef;

#[derive(Debug, thiserror::Error)]
pub enum SyscallError {
    #[error("a Syscall hypercall from kernel mode (CS {0:04x})")]
    NotFromUser(u16),
    #[error("cannot tell where the Syscall hypercall's `out dx, eax` is (RIP {0:#x})")]
    NotAnOut(u64),
    #[error("the guest has not set up system calls (LSTAR is 0)")]
    NoEntry,
    #[error("KVM did not return the system-call MSRs")]
    MsrsUnreadable,
    #[error("KVM: {0}")]
    Kvm(#[from] kvm_ioctls::Error),
}

/// Moves the vCPU from the user context in `regs` to the kernel's system-call entry, with
/// `nr` in RAX.
pub fn enter(m: &Machine, vcpu: &VcpuFd, mut regs: kvm_regs, nr: u64) -> Result<(), SyscallError> {
    let mut sregs = vcpu.get_sregs()?;
    if sregs.cs.dpl != 3 {
        return Err(SyscallError::NotFromUser(sregs.cs.selector));
    }
    // The return address is the instruction after the `out`. KVM reports a port-I/O exit with
    // RIP at the `out` when the CPU ran it, and already past it when its emulator did (as this
    // KVM does for ring 3): tell the two apart by where the `out` is. Setting RIP cancels the
    // skip that KVM would otherwise do when the vCPU resumes (`complete_fast_pio_out`).
    let is_out = |va: u64| {
        m.memory
            .read_virt(sregs.cr3, va, 1)
            .is_ok_and(|b| b[0] == OUT_DX_EAX)
    };
    let next_rip = match (is_out(regs.rip.wrapping_sub(1)), is_out(regs.rip)) {
        (true, false) => regs.rip,
        (false, true) => regs.rip + 1,
        _ => return Err(SyscallError::NotAnOut(regs.rip)),
    };

    let mut msrs =
        Msrs::from_entries(
            &[MSR_STAR, MSR_LSTAR, MSR_SYSCALL_MASK].map(|index| kvm_msr_entry {
                index,
                ..Default::default()
            }),
        )
        .map_err(|_| SyscallError::MsrsUnreadable)?;
    if vcpu.get_msrs(&mut msrs)? != msrs.as_slice().len() {
        return Err(SyscallError::MsrsUnreadable);
    }
    let [star, lstar, fmask] = [0, 1, 2].map(|i| msrs.as_slice()[i].data);
    if lstar == 0 {
        return Err(SyscallError::NoEntry);
    }

    regs.rcx = next_rip;
    regs.r11 = regs.rflags;
    regs.rflags = (regs.rflags & !fmask) | X86_EFLAGS_FIXED;
    regs.rip = lstar;
    regs.rax = nr;
    let cs = ((star >> 32) as u16) & !3;
    sregs.cs = kernel_code_segment(cs);
    sregs.ss = kernel_data_segment(cs + 8);
    vcpu.set_sregs(&sregs)?;
    vcpu.set_regs(&regs)?;
    Ok(())
}
