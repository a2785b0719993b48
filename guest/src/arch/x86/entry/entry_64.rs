//! Interrupt and exception entry stubs (Linux's `arch/x86/entry/entry_64.S`).
//!
//! Every stub builds a `struct pt_regs` (see `lockvmm_abi::PtRegs`) on the stack, calls its
//! handler with `(regs, vector)` and restores every general-purpose register before `iretq`.
//! The interrupted RBP is left in RBP, so the frame-pointer chain runs from the handler through
//! the stub into the interrupted code; the host's unwinder recognises the stub's return address
//! and continues from the saved `pt_regs`. Names follow Linux 3.10 (the seeds' kernels).
//!
//! The stubs carry DWARF CFI (`cfi.S`: signal frames whose CFA is the end of the `pt_regs`,
//! with the interrupted RIP, RSP, RFLAGS and every general-purpose register at its slot), so
//! gdb and drgn unwind through them into the interrupted code. The CFI emits no instructions.
use core::arch::global_asm;

global_asm!(
    include_str!("cfi.S"),
    r#"
    .section .entry.text, "ax"

    /* Both run with the CFA at RSP + 48 (orig_rax pushed) and RSP + 168 (pt_regs complete). */
    .macro PUSH_REGS
        push rdi
        CFI_CFA_OFFSET 56
        push rsi
        CFI_CFA_OFFSET 64
        push rdx
        CFI_CFA_OFFSET 72
        push rcx
        CFI_CFA_OFFSET 80
        push rax
        CFI_CFA_OFFSET 88
        push r8
        CFI_CFA_OFFSET 96
        push r9
        CFI_CFA_OFFSET 104
        push r10
        CFI_CFA_OFFSET 112
        push r11
        CFI_CFA_OFFSET 120
        push rbx
        CFI_CFA_OFFSET 128
        push rbp
        CFI_CFA_OFFSET 136
        push r12
        CFI_CFA_OFFSET 144
        push r13
        CFI_CFA_OFFSET 152
        push r14
        CFI_CFA_OFFSET 160
        push r15
        CFI_CFA_OFFSET 168
        CFI_SAVED_REGS
    .endm

    .macro POP_REGS
        pop r15
        CFI_CFA_OFFSET 160
        pop r14
        CFI_CFA_OFFSET 152
        pop r13
        CFI_CFA_OFFSET 144
        pop r12
        CFI_CFA_OFFSET 136
        pop rbp
        CFI_CFA_OFFSET 128
        pop rbx
        CFI_CFA_OFFSET 120
        pop r11
        CFI_CFA_OFFSET 112
        pop r10
        CFI_CFA_OFFSET 104
        pop r9
        CFI_CFA_OFFSET 96
        pop r8
        CFI_CFA_OFFSET 88
        pop rax
        CFI_CFA_OFFSET 80
        pop rcx
        CFI_CFA_OFFSET 72
        pop rdx
        CFI_CFA_OFFSET 64
        pop rsi
        CFI_CFA_OFFSET 56
        pop rdi
        CFI_CFA_OFFSET 48
    .endm

    /* The frame is 21 words (odd), so one more word keeps the call 16-byte aligned. */
    .macro CALL_HANDLER handler, vector
        mov rdi, rsp
        mov esi, \vector
        cld
        sub rsp, 8
        CFI_CFA_OFFSET 176
        call \handler
        add rsp, 8
        CFI_CFA_OFFSET 168
    .endm

    .macro idtentry name, handler, vector, has_error_code
    .global \name
    .type \name, @function
    .balign 16
\name:
        STUB_FDE_START \name
    .if \has_error_code == 0
        CFI_IRET_FRAME 40
        push -1                     /* orig_rax: no error code */
        CFI_CFA_OFFSET 48
    .else
        CFI_IRET_FRAME 48
    .endif
        PUSH_REGS
        CALL_HANDLER \handler, \vector
        POP_REGS
        add rsp, 8                  /* error code / orig_rax */
        CFI_CFA_OFFSET 40
        iretq
        STUB_FDE_END \name
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
        STUB_FDE_START nmi
        CFI_IRET_FRAME 40
        push -1
        CFI_CFA_OFFSET 48
        PUSH_REGS
        mov rdi, rsp
        mov esi, 2
        cld
        sub rsp, 8
        CFI_CFA_OFFSET 176
    .global end_repeat_nmi
    .type end_repeat_nmi, @function
end_repeat_nmi:
        call do_nmi
        add rsp, 8
        CFI_CFA_OFFSET 168
        POP_REGS
        add rsp, 8
        CFI_CFA_OFFSET 40
        iretq
        STUB_FDE_END nmi
    .size nmi, . - nmi

    /* Hardware interrupts run on the per-CPU IRQ stack (Linux's ENTER_IRQ_STACK): the first
       level switches to it, nested ones stay. The old stack pointer (= the pt_regs) is kept
       on the IRQ stack so that `pop rsp` returns to the task stack; then the preemption check
       runs there (Linux's retint_kernel). The CFA follows the pt_regs: through RDI while it
       holds them, then through the pointer pushed on the IRQ stack. */
    .macro IRQ_BODY handler
        PUSH_REGS
        mov rdi, rsp
        CFI_CFA_RDI_PT_REGS
        add dword ptr gs:[{irq_count}], 1
        jnz 1f
        mov rsp, gs:[{irq_stack}]
1:
        and rsp, -16
        sub rsp, 8
        push rdi
        CFI_CFA_DEREF_RSP_PT_REGS
        cld
        call \handler
        pop rsp
        CFI_CFA_RSP 168
        sub dword ptr gs:[{irq_count}], 1
        mov rdi, rsp
        sub rsp, 8
        CFI_CFA_OFFSET 176
        call retint_kernel
        add rsp, 8
        CFI_CFA_OFFSET 168
        POP_REGS
        add rsp, 8
        CFI_CFA_OFFSET 40
        iretq
    .endm

    .macro apicinterrupt name, vector, handler
    .global \name
    .type \name, @function
    .balign 16
\name:
        STUB_FDE_START \name
        CFI_IRET_FRAME 40
        push ~\vector
        CFI_CFA_OFFSET 48
        IRQ_BODY \handler
        STUB_FDE_END \name
    .size \name, . - \name
    .endm

    apicinterrupt apic_timer_interrupt,   0xec, smp_apic_timer_interrupt
    apicinterrupt reschedule_interrupt,   0xfd, smp_reschedule_interrupt

    /* Every other vector 32..255: a 16-byte stub pushes ~vector (as orig_rax) and joins
       common_interrupt, like Linux's irq_entries_start. */
    .global irq_entries_start
    .type irq_entries_start, @function
    .balign 16
irq_entries_start:
        STUB_FDE_START irq_entries_start
        CFI_IRET_FRAME 40
    .set vector, 32
    .rept 224
        .balign 16
        CFI_CFA_OFFSET 40
        push ~vector
        CFI_CFA_OFFSET 48
        jmp common_interrupt
        .set vector, vector + 1
    .endr
        STUB_FDE_END irq_entries_start
    .size irq_entries_start, . - irq_entries_start

    .global common_interrupt
    .type common_interrupt, @function
common_interrupt:
        STUB_FDE_START common_interrupt
        CFI_IRET_FRAME 48
        IRQ_BODY do_IRQ
        STUB_FDE_END common_interrupt
    .size common_interrupt, . - common_interrupt

    /* 64-bit system calls (Linux's entry_SYSCALL_64): RCX = user RIP, R11 = user RFLAGS,
       interrupts off. Switch to the task's kernel stack, build the hardware part of pt_regs
       as an interrupt would have, then the rest, and call do_syscall_64(regs, nr). The user
       RBP stays in RBP, so the frame-pointer chain ends here. Return with iretq. */
    .global entry_SYSCALL_64
    .type entry_SYSCALL_64, @function
    .balign 16
entry_SYSCALL_64:
        STUB_FDE_START entry_SYSCALL_64
        CFI_SYSCALL_ENTRY
        mov gs:[{rsp_scratch}], rsp
        mov rsp, gs:[{top_of_stack}]
        CFI_USER_RSP_UNDEFINED
        push {user_ds}                  /* pt_regs->ss */
        CFI_CFA_OFFSET 8
        CFI_SAVED 52, 1
        push qword ptr gs:[{rsp_scratch}] /* pt_regs->sp */
        CFI_CFA_OFFSET 16
        CFI_SAVED 7, 2
        push r11                        /* pt_regs->flags */
        CFI_CFA_OFFSET 24
        CFI_SAVED 49, 3
        push {user_cs}                  /* pt_regs->cs */
        CFI_CFA_OFFSET 32
        CFI_SAVED 51, 4
        push rcx                        /* pt_regs->ip */
        CFI_CFA_OFFSET 40
        CFI_SAVED 16, 5
    .global entry_SYSCALL_64_after_hwframe
    .type entry_SYSCALL_64_after_hwframe, @function
entry_SYSCALL_64_after_hwframe:
        push rax                        /* pt_regs->orig_ax */
        CFI_CFA_OFFSET 48
        PUSH_REGS
        mov rdi, rsp
        movsxd rsi, eax
        cld
        sub rsp, 8
        CFI_CFA_OFFSET 176
        call do_syscall_64
        add rsp, 8
        CFI_CFA_OFFSET 168
        POP_REGS
        add rsp, 8
        CFI_CFA_OFFSET 40
        iretq
    .global entry_SYSCALL_64_end
entry_SYSCALL_64_end:
        STUB_FDE_END entry_SYSCALL_64
    .size entry_SYSCALL_64, . - entry_SYSCALL_64
    .size entry_SYSCALL_64_after_hwframe, . - entry_SYSCALL_64_after_hwframe

    /* switch_to(prev = rdi, next = rsi): save the callee-saved registers on prev's stack,
       switch stacks, restore next's, and continue in __switch_to, which returns prev. */
    .global __switch_to_asm
    .type __switch_to_asm, @function
__switch_to_asm:
        .cfi_startproc
        push rbp
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset rbp, 0
        push rbx
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset rbx, 0
        push r12
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r12, 0
        push r13
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r13, 0
        push r14
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r14, 0
        push r15
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r15, 0
        mov [rdi + {thread_sp}], rsp
        /* From here the frame is next's, with the same layout on its own stack. */
        mov rsp, [rsi + {thread_sp}]
        pop r15
        .cfi_adjust_cfa_offset -8
        pop r14
        .cfi_adjust_cfa_offset -8
        pop r13
        .cfi_adjust_cfa_offset -8
        pop r12
        .cfi_adjust_cfa_offset -8
        pop rbx
        .cfi_adjust_cfa_offset -8
        pop rbp
        .cfi_adjust_cfa_offset -8
        jmp __switch_to
        .cfi_endproc
    .size __switch_to_asm, . - __switch_to_asm

    /* A new task's first return from __switch_to lands here: rax = prev, rbx = the thread
       function, r12 = its argument (Linux's ret_from_fork for kernel threads). */
    .global ret_from_fork
    .type ret_from_fork, @function
ret_from_fork:
        /* The outermost frame of every kernel thread (Linux's UNWIND_HINT_EMPTY): no caller. */
        .cfi_startproc
        .cfi_def_cfa rsp, 0
        .cfi_undefined rip
        mov rdi, rax
        call schedule_tail
        mov rdi, r12
        call rbx
        ud2
        .cfi_endproc
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
