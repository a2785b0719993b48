//! The state of a CPU that stopped the machine (a fault, a panic, a lockup report), taken at
//! that instant: its registers, CR2/CR3, and the walk of its stack through live guest memory.
use kvm_ioctls::VcpuFd;

use super::Machine;
use crate::kvm::capture::regs_from_kvm;

/// CR0.PE: protected mode (clear after a reset).
const X86_CR0_PE: u64 = 1;
use crate::state::{FaultKind, FaultReport, Outcome, Regs};
use crate::unwind::Unwinder;

/// A fault report for `cpu` from `regs` (live or saved by an entry stub), with its backtrace
/// walked through the live memory now.
pub fn fault_report(
    m: &Machine,
    cpu: usize,
    fault: FaultKind,
    regs: Regs,
    cr2: u64,
    cr3: u64,
) -> FaultReport {
    let syms = &m.kernel.symbols;
    let loc = syms.lookup(regs.rip);
    let read = |va: u64, len: usize| m.memory.read_virt(cr3, va, len).ok();
    let backtrace = Unwinder { read: &read, syms }.walk(&regs);
    FaultReport {
        cpu,
        fault,
        regs,
        cr2,
        cr3,
        rip_symbol: loc.as_ref().map(|l| l.to_string()),
        rip_function: loc.map(|l| l.name),
        backtrace,
    }
}

/// A fault KVM reported as the exit itself (with an internal error's suberror read from
/// `kvm_run`), as a report.
pub fn capture_exit_fault(
    m: &Machine,
    vcpu: &mut VcpuFd,
    cpu: usize,
    mut kind: FaultKind,
) -> Outcome {
    if let FaultKind::InternalError { suberror, insn } = &mut kind {
        // SAFETY: the last exit was KVM_EXIT_INTERNAL_ERROR, so `internal` is the live member
        // of the exit-information union.
        *suberror = unsafe { vcpu.get_kvm_run().__bindgen_anon_1.internal.suberror };
        if let (Ok(r), Ok(s)) = (vcpu.get_regs(), vcpu.get_sregs()) {
            if s.cr0 & X86_CR0_PE == 0 {
                // An INIT put the vCPU back in real mode: not an instruction the emulator failed.
                kind = FaultKind::Reset { rip: r.rip };
            } else if let Ok(bytes) = m.memory.read_virt(s.cr3, r.rip, 15) {
                *insn = bytes;
            }
        }
    }
    capture_fault(m, vcpu, cpu, kind)
}

/// Registers, CR2 and CR3 of this vCPU, as a report.
pub fn capture_fault(m: &Machine, vcpu: &VcpuFd, cpu: usize, fault: FaultKind) -> Outcome {
    let regs = vcpu.get_regs();
    let sregs = vcpu.get_sregs();
    match (regs, sregs) {
        (Ok(r), Ok(s)) => {
            let regs = regs_from_kvm(&r, u64::from(s.cs.selector), u64::from(s.ss.selector));
            Outcome::Fault(fault_report(m, cpu, fault, regs, s.cr2, s.cr3))
        }
        (Err(e), _) | (_, Err(e)) => Outcome::HostError {
            message: format!("CPU {cpu} stopped ({fault:?}) but its registers cannot be read: {e}"),
        },
    }
}
