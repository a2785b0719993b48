//! The lab's user-space programs: tiny position-independent code copied into a user page of
//! the task, entered with `iretq` to ring 3.
use crate::arch::x86::entry::common::{__NR_EXIT, __NR_SETSID};
use crate::arch::x86::kernel::cpu::common::{__USER_CS, __USER_DS};
use crate::mm::vmalloc::map_user_page;

// `user_busy_loop`: spin forever, each turn yielding the host CPU with the Wait hypercall (the
// only port the TSS I/O bitmap opens to ring 3). It never makes a system call.
//
// `user_setsid`: what seed 000's crond does, `setsid()` as a system call, then `exit(0)`. On
// this KVM neither `syscall` nor `int $0x80` leaves ring 3 (both measured), so each system
// call is the Syscall hypercall, with which the host performs `syscall`'s effects; the kernel
// side is the real entry_SYSCALL_64.
core::arch::global_asm!(
    r#"
    .text
    .global user_busy_loop_start
    .global user_busy_loop_end
user_busy_loop_start:
2:  pause
    mov eax, {wait}
    xor edi, edi
    xor esi, esi
    xor ecx, ecx
    xor r8d, r8d
    mov dx, {port}
    out dx, eax
    jmp 2b
user_busy_loop_end:

    .global user_setsid_start
    .global user_setsid_end
user_setsid_start:
    mov r8d, {setsid}
    mov eax, {hc_syscall}
    mov dx, {port}
    out dx, eax
    mov r8d, {exit}
    xor edi, edi
    mov eax, {hc_syscall}
    mov dx, {port}
    out dx, eax
    ud2
user_setsid_end:
    "#,
    wait = const lockvmm_abi::Hypercall::Wait as u32,
    port = const lockvmm_abi::HYPERCALL_PORT,
    setsid = const __NR_SETSID,
    exit = const __NR_EXIT,
    hc_syscall = const lockvmm_abi::Hypercall::Syscall as u32,
);

unsafe extern "C" {
    static user_busy_loop_start: u8;
    static user_busy_loop_end: u8;
    static user_setsid_start: u8;
    static user_setsid_end: u8;
}

/// Where user programs go: one 64 KiB slot per task (code page, then stack page).
const USER_BASE: u64 = 0x40_0000;
const USER_SLOT: u64 = 0x1_0000;

/// Drops the current task to user mode, in a loop that never makes a system call: a runaway
/// user-space task, as seed 003's SCHED_FIFO 99 process.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn user_busy_loop() -> ! {
    let start = core::ptr::addr_of!(user_busy_loop_start) as u64;
    enter_user_mode(start, core::ptr::addr_of!(user_busy_loop_end) as u64)
}

/// Drops the current task to user mode to call `setsid()` and `exit()` as system calls, so its
/// kernel stack starts at `entry_SYSCALL_64` as a real process's does.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn user_setsid() -> ! {
    let start = core::ptr::addr_of!(user_setsid_start) as u64;
    enter_user_mode(start, core::ptr::addr_of!(user_setsid_end) as u64)
}

/// Copies the program `start..end` into the task's user slot and enters it in ring 3, with
/// interrupts on and its own stack.
fn enter_user_mode(start: u64, end: u64) -> ! {
    let me = crate::kernel::sched::core::current();
    let slot = (me as *const _ as u64 - crate::kernel::sched::task::task(0) as u64)
        / core::mem::size_of::<crate::kernel::sched::task::TaskStruct>() as u64;
    let code_va = USER_BASE + slot * USER_SLOT;
    let stack_va = code_va + USER_SLOT / 2;
    let (Some(code), Some(_stack)) = (map_user_page(code_va, false), map_user_page(stack_va, true))
    else {
        panic!("user mode: out of memory");
    };
    // SAFETY: `code` is a fresh page of ours (direct map); the program is `end - start` bytes
    // of text, less than a page.
    unsafe {
        core::ptr::copy_nonoverlapping(start as *const u8, code as *mut u8, (end - start) as usize)
    };
    printk!(
        "lab: {}:{} enters user mode at {:#x}",
        me.comm(),
        me.pid,
        code_va
    );
    crate::arch::x86::irqflags::local_irq_disable();
    // SAFETY: an interrupt-return frame to ring 3 at the program's entry, with interrupts on and
    // its own stack; the kernel stack for its interrupts is in the TSS (`__switch_to`).
    unsafe {
        core::arch::asm!(
            "push {ss}",
            "push {rsp}",
            "push {rflags}",
            "push {cs}",
            "push {rip}",
            // No kernel values leak to user mode (and RBP = 0 ends any unwinder's walk).
            "xor eax, eax",
            "xor ebx, ebx",
            "xor ecx, ecx",
            "xor edx, edx",
            "xor esi, esi",
            "xor edi, edi",
            "xor ebp, ebp",
            "xor r8d, r8d",
            "xor r9d, r9d",
            "xor r10d, r10d",
            "xor r11d, r11d",
            "xor r12d, r12d",
            "xor r13d, r13d",
            "xor r14d, r14d",
            "xor r15d, r15d",
            "iretq",
            ss = in(reg) u64::from(__USER_DS),
            rsp = in(reg) stack_va + 0x1000,
            rflags = in(reg) 0x202u64,
            cs = in(reg) u64::from(__USER_CS),
            rip = in(reg) code_va,
            options(noreturn)
        )
    }
}
