//! The lockvmm guest kernel.
//!
//! A tiny `no_std` kernel that models the Linux mechanisms behind real lockups, with Linux's own
//! function names so that a backtrace of it reads like one of Linux. The tree mirrors Linux's:
//! `arch/x86` (entry, traps, APIC, SMP boot), `kernel` (printk, panic, locking), `drivers` (the
//! 8250 console), `init` (`start_kernel`), and `lab` (runs the tasks a scenario asks for).
//!
//! Functions that must appear in backtraces are `#[inline(never)]` and `#[unsafe(no_mangle)]`.
#![no_std]
#![no_main]

/// Keeps the calling function's frame in backtraces: an (empty) instruction barrier after a
/// call stops the compiler from turning the call into a jump. Linux's call chains in the seeds
/// (`_raw_spin_lock` → `native_queued_spin_lock_slowpath`, …) show these frames.
#[macro_export]
macro_rules! keep_frame {
    ($call:expr) => {{
        let r = $call;
        // SAFETY: an empty asm block with no operands has no effect.
        unsafe { core::arch::asm!("", options(nomem, nostack, preserves_flags)) };
        r
    }};
}

#[macro_use]
pub mod kernel;
pub mod arch;
pub mod drivers;
pub mod init;
pub mod lab;
pub mod mm;

#[panic_handler]
fn rust_panic(info: &core::panic::PanicInfo) -> ! {
    kernel::panic::panic_fmt(format_args!("{}", info.message()))
}
