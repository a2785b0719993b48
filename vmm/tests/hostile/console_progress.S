/* Prints 1000 bytes per virtual millisecond, waiting (Wait hypercall with a deadline) between
 * bursts: virtual time advances, so only the console limit bounds the log. */
    .include "common.inc"
.macro BODY
.Lburst:
    mov $999, %ecx
    mov $COM1, %dx
    mov $'x', %al
.Lbyte:
    out %al, %dx
    dec %ecx
    jnz .Lbyte
    mov $'\n', %al
    out %al, %dx
    movabs $VTIME, %rax
    mov (%rax), %rcx
    add $1000000, %rcx              /* deadline: now + 1 ms */
    xor %edi, %edi
    xor %esi, %esi
    HYPERCALL HC_WAIT
    jmp .Lburst
.endm
    ENTRY_POINTS BODY, PARK
