/* Hammers the hypercall port with pseudo-random numbers and arguments (half of them small, to
 * reach valid CPUs, hooks and vectors), never Shutdown, Panic, Exception or Wait. */
    .include "common.inc"
.macro BODY
    movabs $0x9e3779b97f4a7c15, %r12
.Lcall:
    RAND
    mov %rax, %r14
    RAND
    mov %rax, %rdi
    RAND
    mov %rax, %rsi
    RAND
    mov %rax, %rcx
    RAND
    mov %rax, %r8
    test $1, %r14
    jz .Lnumber
    and $3, %rdi
    and $0x1ff, %rsi
    and $0xfff, %rcx
.Lnumber:
    mov %r14, %rax
    shr $8, %rax
    and $15, %eax
    cmp $3, %eax
    jb .Lissue
    cmp $6, %eax
    ja .Lissue
    mov %r14d, %eax                 /* 3..6 stop or block the machine: a junk number instead */
    or $0x10000, %eax
.Lissue:
    mov $HC_PORT, %dx
    out %eax, %dx
    jmp .Lcall
.endm
    ENTRY_POINTS BODY, PARK
