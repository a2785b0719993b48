//! Interrupt-flag primitives, as Linux's `arch/x86/include/asm/irqflags.h`.
use core::arch::asm;

use lockvmm_abi::eflags::X86_EFLAGS_IF;

#[inline(always)]
pub fn local_irq_disable() {
    // SAFETY: masking interrupts is always sound; it only delays their delivery.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

#[inline(always)]
pub fn local_irq_enable() {
    // SAFETY: the kernel's interrupt handlers are installed before anything enables interrupts.
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// Returns the current RFLAGS.
#[inline(always)]
pub fn native_save_fl() -> u64 {
    let flags: u64;
    // SAFETY: pushes and pops one word on the current stack.
    unsafe { asm!("pushfq", "pop {}", out(reg) flags, options(nomem, preserves_flags)) };
    flags
}

/// `local_irq_save`: disables interrupts and returns the previous flags.
#[inline(always)]
pub fn local_irq_save() -> u64 {
    let flags = native_save_fl();
    local_irq_disable();
    flags
}

/// `local_irq_restore`: re-enables interrupts if `flags` had them enabled.
#[inline(always)]
pub fn local_irq_restore(flags: u64) {
    if flags & X86_EFLAGS_IF != 0 {
        local_irq_enable();
    }
}

#[inline(always)]
pub fn irqs_disabled() -> bool {
    native_save_fl() & X86_EFLAGS_IF == 0
}
