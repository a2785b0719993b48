//! The first instructions every CPU runs (Linux's `arch/x86/kernel/head_64.S`).
//!
//! The host enters `startup_64` on CPU 0 and `secondary_startup_64` on every other CPU, already
//! in 64-bit mode with paging on, with `RDI` = the CPU number. Each CPU takes its own boot stack.
use core::arch::global_asm;

use lockvmm_abi::NR_CPUS;

/// Size of a kernel stack (Linux's `THREAD_SIZE` on x86_64).
pub const THREAD_SIZE: usize = lockvmm_abi::stacks::THREAD_SIZE as usize;

#[repr(C, align(4096))]
pub struct Stack(pub [u8; THREAD_SIZE]);

/// The stack each CPU boots on and later idles on (`init_stack` and the idle tasks' stacks).
#[unsafe(no_mangle)]
pub static mut init_stacks: [Stack; NR_CPUS] = [const { Stack([0; THREAD_SIZE]) }; NR_CPUS];

global_asm!(
    r#"
    .section .head.text, "ax"
    .macro SETUP_BOOT_STACK
        mov rax, rdi
        inc rax
        shl rax, {shift}
        lea rsp, [rip + {stacks}]
        add rsp, rax
        xor ebp, ebp                /* terminates the frame-pointer chain for unwinders */
    .endm

    .global startup_64
    .type startup_64, @function
startup_64:
    .cfi_startproc
    .cfi_undefined rip          /* the outermost frame: debuggers stop here */
    SETUP_BOOT_STACK
    call x86_64_start_kernel
    ud2
    .cfi_endproc
    .size startup_64, . - startup_64

    .global secondary_startup_64
    .type secondary_startup_64, @function
secondary_startup_64:
    .cfi_startproc
    .cfi_undefined rip          /* the outermost frame: debuggers stop here */
    SETUP_BOOT_STACK
    call start_secondary
    ud2
    .cfi_endproc
    .size secondary_startup_64, . - secondary_startup_64
    .text
    "#,
    shift = const 14,
    stacks = sym init_stacks,
);

const _: () = assert!(1 << 14 == THREAD_SIZE);
