/* Writes and reads pseudo-random I/O ports (never the hypercall port), then writes to a
 * physical address where there is neither RAM nor a device. */
    .include "common.inc"
.macro BODY
    movabs $0x853c49e6748fea9b, %r12
    mov $5000, %r13d
.Lport:
    RAND
    mov %eax, %edx
    and $0xffff, %edx
    cmp $HC_PORT, %edx
    je .Lport
    shr $16, %eax
    out %al, %dx
    in %dx, %al
    dec %r13d
    jnz .Lport
    movabs $PAGE_OFFSET + 0xc0000000, %rax
    movq $0x1234, (%rax)            /* 3 GiB: above the machine's RAM, below the xAPIC */
    PARK
.endm
    ENTRY_POINTS BODY, PARK
