//! Model-specific registers.
use core::arch::asm;

pub const MSR_GS_BASE: u32 = 0xc000_0101;
pub const MSR_EFER: u32 = 0xc000_0080;
pub use lockvmm_abi::msr::{MSR_LSTAR, MSR_STAR, MSR_SYSCALL_MASK};
pub const EFER_SCE: u64 = 1 << 0;

/// Writes an MSR.
///
/// # Safety
/// The caller must know what the MSR controls; a wrong value can break the CPU's state.
#[inline(always)]
pub unsafe fn wrmsr(msr: u32, val: u64) {
    // SAFETY: the caller vouches for the MSR and value (see above).
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") val as u32, in("edx") (val >> 32) as u32,
             options(nostack, preserves_flags));
    }
}

/// Reads an MSR.
///
/// # Safety
/// The MSR must exist (the host emulates the PMU's; others may raise #GP).
#[inline(always)]
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller vouches for the MSR.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Reads CR2 (the faulting address of the last page fault).
#[inline(always)]
pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}
