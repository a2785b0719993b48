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
