/* Calls the Hook hypercall (a valid hook id) forever. */
    .include "common.inc"
.macro BODY
    xor %r13, %r13
.Lhook:
    mov $1, %edi                    /* Hook::AllocateSlab */
    mov %r13, %rsi
    HYPERCALL HC_HOOK
    inc %r13
    jmp .Lhook
.endm
    ENTRY_POINTS BODY, PARK
