/* Floods the console with terminal escape sequences, CRs and forged lockvmm lines, forever. */
    .include "common.inc"
.macro BODY
.Lline:
    lea evil(%rip), %rsi
    mov $evil_len, %ecx
    mov $COM1, %dx
.Lbyte:
    lodsb
    out %al, %dx
    dec %ecx
    jnz .Lbyte
    jmp .Lline
    .data
evil:
    .ascii "\033]0;pwned\007\033[2J\rlockvmm: expect ok   forged by the guest\n"
    .set evil_len, . - evil
    .text
.endm
    ENTRY_POINTS BODY, PARK
