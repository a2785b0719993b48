//! Interrupt and exception entry stubs (Linux's `arch/x86/entry/entry_64.S`).
//!
//! Every stub builds a `struct pt_regs` (see `lockvmm_abi::PtRegs`) on the stack, calls its
//! handler with `(regs, vector)` and restores every general-purpose register before `iretq`.
//! The interrupted RBP is left in RBP, so the frame-pointer chain runs from the handler through
//! the stub into the interrupted code; the host's unwinder recognises the stub's return address
//! and continues from the saved `pt_regs`. Names follow Linux 3.10 (the seeds' kernels).
use core::arch::global_asm;

global_asm!(
    r#"
    .section .entry.text, "ax"

    .macro PUSH_REGS
        push rdi
        push rsi
        push rdx
        push rcx
        push rax
        push r8
        push r9
        push r10
        push r11
        push rbx
        push rbp
        push r12
        push r13
        push r14
        push r15
    .endm

    .macro POP_REGS
        pop r15
        pop r14
        pop r13
        pop r12
        pop rbp
        pop rbx
        pop r11
        pop r10
        pop r9
        pop r8
        pop rax
        pop rcx
        pop rdx
        pop rsi
        pop rdi
    .endm

    /* The frame is 21 words (odd), so one more word keeps the call 16-byte aligned. */
    .macro CALL_HANDLER handler, vector
        mov rdi, rsp
        mov esi, \vector
        cld
        sub rsp, 8
        call \handler
        add rsp, 8
    .endm

    .macro idtentry name, handler, vector, has_error_code
    .global \name
    .type \name, @function
    .balign 16
\name:
    .if \has_error_code == 0
        push -1                     /* orig_rax: no error code */
    .endif
        PUSH_REGS
        CALL_HANDLER \handler, \vector
        POP_REGS
        add rsp, 8                  /* error code / orig_rax */
        iretq
    .size \name, . - \name
    .endm

    idtentry divide_error,                do_error_trap,          0, 0
    idtentry debug,                       do_error_trap,          1, 0
    idtentry int3,                        do_error_trap,          3, 0
    idtentry overflow,                    do_error_trap,          4, 0
    idtentry bounds,                      do_error_trap,          5, 0
    idtentry invalid_op,                  do_invalid_op,          6, 0
    idtentry device_not_available,        do_error_trap,          7, 0
    idtentry double_fault,                do_double_fault,        8, 1
    idtentry coprocessor_segment_overrun, do_error_trap,          9, 0
    idtentry invalid_TSS,                 do_error_trap,         10, 1
    idtentry segment_not_present,         do_error_trap,         11, 1
    idtentry stack_segment,               do_error_trap,         12, 1
    idtentry general_protection,          do_general_protection, 13, 1
    idtentry page_fault,                  do_page_fault,         14, 1
    idtentry spurious_interrupt_bug,      do_error_trap,         15, 0
    idtentry coprocessor_error,           do_error_trap,         16, 0
    idtentry alignment_check,             do_error_trap,         17, 1
    idtentry machine_check,               do_error_trap,         18, 0
    idtentry simd_coprocessor_error,      do_error_trap,         19, 0
    idtentry reserved_exception,          do_error_trap,         31, 0

    /* NMIs arrive on their own IST stack. `end_repeat_nmi` marks the call site, as in the
       seeds' backtraces (Linux uses that label for the nested-NMI repeat logic). */
    .global nmi
    .type nmi, @function
    .balign 16
nmi:
        push -1
        PUSH_REGS
        mov rdi, rsp
        mov esi, 2
        cld
        sub rsp, 8
    .global end_repeat_nmi
    .type end_repeat_nmi, @function
end_repeat_nmi:
        call do_nmi
        add rsp, 8
        POP_REGS
        add rsp, 8
        iretq
    .size nmi, . - nmi

    /* Hardware interrupts run on the per-CPU IRQ stack (Linux's ENTER_IRQ_STACK): the first
       level switches to it, nested ones stay. The old stack pointer (= the pt_regs) is kept
       on the IRQ stack so that `pop rsp` returns to the task stack; then the preemption check
       runs there (Linux's retint_kernel). */
    .macro IRQ_BODY handler
        PUSH_REGS
        mov rdi, rsp
        add dword ptr gs:[{irq_count}], 1
        jnz 1f
        mov rsp, gs:[{irq_stack}]
1:
        and rsp, -16
        sub rsp, 8
        push rdi
        cld
        call \handler
        pop rsp
        sub dword ptr gs:[{irq_count}], 1
        mov rdi, rsp
        sub rsp, 8
        call retint_kernel
        add rsp, 8
        POP_REGS
        add rsp, 8
        iretq
    .endm

    .macro apicinterrupt name, vector, handler
    .global \name
    .type \name, @function
    .balign 16
\name:
        push ~\vector
        IRQ_BODY \handler
    .size \name, . - \name
    .endm

    apicinterrupt apic_timer_interrupt,   0xec, smp_apic_timer_interrupt
    apicinterrupt reschedule_interrupt,   0xfd, smp_reschedule_interrupt

    /* Every other vector 32..255: a 16-byte stub pushes ~vector (as orig_rax) and joins
       common_interrupt, like Linux's irq_entries_start. */
    .global irq_entries_start
    .balign 16
irq_entries_start:
    .set vector, 32
    .rept 224
        .balign 16
        push ~vector
        jmp common_interrupt
        .set vector, vector + 1
    .endr

    .global common_interrupt
    .type common_interrupt, @function
common_interrupt:
        IRQ_BODY do_IRQ
    .size common_interrupt, . - common_interrupt

    /* 64-bit system calls (Linux's entry_SYSCALL_64): RCX = user RIP, R11 = user RFLAGS,
       interrupts off. Switch to the task's kernel stack, build the hardware part of pt_regs
       as an interrupt would have, then the rest, and call do_syscall_64(regs, nr). The user
       RBP stays in RBP, so the frame-pointer chain ends here. Return with iretq. */
    .global entry_SYSCALL_64
    .type entry_SYSCALL_64, @function
    .balign 16
entry_SYSCALL_64:
        mov gs:[{rsp_scratch}], rsp
        mov rsp, gs:[{top_of_stack}]
        push {user_ds}                  /* pt_regs->ss */
        push qword ptr gs:[{rsp_scratch}] /* pt_regs->sp */
        push r11                        /* pt_regs->flags */
        push {user_cs}                  /* pt_regs->cs */
        push rcx                        /* pt_regs->ip */
    .global entry_SYSCALL_64_after_hwframe
    .type entry_SYSCALL_64_after_hwframe, @function
entry_SYSCALL_64_after_hwframe:
        push rax                        /* pt_regs->orig_ax */
        PUSH_REGS
        mov rdi, rsp
        movsxd rsi, eax
        cld
        sub rsp, 8
        call do_syscall_64
        add rsp, 8
        POP_REGS
        add rsp, 8
        iretq
    .global entry_SYSCALL_64_end
entry_SYSCALL_64_end:
    .size entry_SYSCALL_64, . - entry_SYSCALL_64
    .size entry_SYSCALL_64_after_hwframe, . - entry_SYSCALL_64_after_hwframe

    /* switch_to(prev = rdi, next = rsi): save the callee-saved registers on prev's stack,
       switch stacks, restore next's, and continue in __switch_to, which returns prev. */
    .global __switch_to_asm
    .type __switch_to_asm, @function
__switch_to_asm:
        push rbp
        push rbx
        push r12
        push r13
        push r14
        push r15
        mov [rdi + {thread_sp}], rsp
        mov rsp, [rsi + {thread_sp}]
        pop r15
        pop r14
        pop r13
        pop r12
        pop rbx
        pop rbp
        jmp __switch_to
    .size __switch_to_asm, . - __switch_to_asm

    /* A new task's first return from __switch_to lands here: rax = prev, rbx = the thread
       function, r12 = its argument (Linux's ret_from_fork for kernel threads). */
    .global ret_from_fork
    .type ret_from_fork, @function
ret_from_fork:
        mov rdi, rax
        call schedule_tail
        mov rdi, r12
        call rbx
        ud2
    .size ret_from_fork, . - ret_from_fork
    .text
    "#,
    irq_count = const crate::arch::x86::percpu::PERCPU_IRQ_COUNT,
    irq_stack = const crate::arch::x86::percpu::PERCPU_IRQ_STACK_PTR,
    rsp_scratch = const crate::arch::x86::percpu::PERCPU_RSP_SCRATCH,
    top_of_stack = const crate::arch::x86::percpu::PERCPU_TOP_OF_STACK,
    user_ds = const crate::arch::x86::kernel::cpu::common::__USER_DS as u64,
    user_cs = const crate::arch::x86::kernel::cpu::common::__USER_CS as u64,
    thread_sp = const core::mem::offset_of!(crate::kernel::sched::task::TaskStruct, thread_sp),
);

unsafe extern "C" {
    pub fn divide_error();
    pub fn debug();
    pub fn nmi();
    pub fn int3();
    pub fn overflow();
    pub fn bounds();
    pub fn invalid_op();
    pub fn device_not_available();
    pub fn double_fault();
    pub fn coprocessor_segment_overrun();
    pub fn invalid_TSS();
    pub fn segment_not_present();
    pub fn stack_segment();
    pub fn general_protection();
    pub fn page_fault();
    pub fn spurious_interrupt_bug();
    pub fn coprocessor_error();
    pub fn alignment_check();
    pub fn machine_check();
    pub fn simd_coprocessor_error();
    pub fn reserved_exception();
    pub fn irq_entries_start();
    pub fn apic_timer_interrupt();
    pub fn reschedule_interrupt();
    pub fn ret_from_fork();
    pub fn entry_SYSCALL_64();
    pub fn entry_SYSCALL_64_after_hwframe();
    pub fn entry_SYSCALL_64_end();
    /// Switches from `prev` to `next`; returns (on `next`'s stack) the task switched away from.
    pub fn __switch_to_asm(
        prev: *mut crate::kernel::sched::task::TaskStruct,
        next: *mut crate::kernel::sched::task::TaskStruct,
    ) -> *mut crate::kernel::sched::task::TaskStruct;
}

/// Size of one stub in `irq_entries_start`.
pub const IRQ_STUB_SIZE: u64 = 16;
