//! Interrupt-flag primitives, as Linux's `arch/x86/include/asm/irqflags.h`.
use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

use lockvmm_abi::eflags::X86_EFLAGS_IF;

/// `raw_local_irq_disable`: `cli` without the tracing hook (`native_irq_disable`).
#[inline(always)]
pub fn raw_local_irq_disable() {
    // SAFETY: masking interrupts is always sound; it only delays their delivery.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

/// `raw_local_irq_enable`: `sti` without the tracing hook (`native_irq_enable`).
#[inline(always)]
pub fn raw_local_irq_enable() {
    // SAFETY: the kernel's interrupt handlers are installed before anything enables interrupts.
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// `local_irq_disable`: `cli`, then `trace_hardirqs_off()` (Linux's `include/linux/irqflags.h`).
#[inline(always)]
pub fn local_irq_disable() {
    raw_local_irq_disable();
    crate::kernel::trace::trace_preemptirq::trace_hardirqs_off();
}

/// Set at boot when a scenario acts on `irq_enable_locked`: spinlocks are then counted per CPU
/// and an interrupt enable with locks held is reported to the host.
pub static IRQ_ENABLE_HOOK: AtomicBool = AtomicBool::new(false);

/// `local_irq_enable`: `trace_hardirqs_on()`, then `sti` (Linux's `include/linux/irqflags.h`).
#[inline(always)]
pub fn local_irq_enable() {
    crate::kernel::trace::trace_preemptirq::trace_hardirqs_on();
    raw_local_irq_enable();
}

/// Reports an interrupt enable while this CPU holds spinlocks (out of line: rare and cold).
#[cold]
#[inline(never)]
pub fn irq_enable_locked_hook() {
    let held = crate::arch::x86::percpu::this_cpu()
        .spinlocks_held
        .load(Ordering::Relaxed);
    if held != 0 && irqs_disabled() {
        crate::arch::x86::lockvmm::hook(lockvmm_abi::hook::Hook::IrqEnableLocked, u64::from(held));
    }
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

/// `raw_local_irq_restore`: `local_irq_restore` without the tracing hook.
#[inline(always)]
pub fn raw_local_irq_restore(flags: u64) {
    if flags & X86_EFLAGS_IF != 0 {
        raw_local_irq_enable();
    }
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
