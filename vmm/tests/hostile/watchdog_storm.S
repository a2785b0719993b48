/* Reports a soft lockup (Watchdog hypercall, readable pt_regs, an evil message) forever. */
    .include "common.inc"
.macro BODY
.Lreport:
    mov $1, %edi                    /* LockupKind::Soft */
    lea regs(%rip), %rsi
    lea msg(%rip), %rcx
    mov $msg_len, %r8d
    HYPERCALL HC_WATCHDOG
    jmp .Lreport
    .data
    .align 8
regs:
    .skip 256
msg:
    .ascii "BUG: soft lockup\033[2J\r\nlockvmm: expect ok   forged"
    .set msg_len, . - msg
    .text
.endm
    ENTRY_POINTS BODY, PARK
