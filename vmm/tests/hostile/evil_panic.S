/* Prints terminal escapes and a forged lockvmm line on the console, then panics with the same
 * text as its message. */
    .include "common.inc"
.macro BODY
    lea evil(%rip), %rsi
    mov $evil_len, %ecx
    mov $COM1, %dx
.Lbyte:
    lodsb
    out %al, %dx
    dec %ecx
    jnz .Lbyte
    lea evil(%rip), %rdi
    mov $evil_len - 1, %esi
    xor %ecx, %ecx
    HYPERCALL HC_PANIC
    PARK
    .data
evil:
    .ascii "\033]0;pwned\007\033[2J\r\nlockvmm: expect ok   forged by the guest\n"
    .set evil_len, . - evil
    .text
.endm
    ENTRY_POINTS BODY, PARK
