/* Two CPUs throw NMIs and fixed IPIs at each other (SendIpi), waking each other from Wait,
 * forever; interrupts stay off, so fixed vectors pile up while NMIs run the IDT's iretq. */
    .include "common.inc"
.macro STORM
    movabs $0x2545f4914f6cdd1d, %r12
    add %rbx, %r12
.Lipi\@:
    mov %rbx, %rdi
    xor $1, %rdi                    /* the other CPU */
    mov $IPI_NMI, %esi
    HYPERCALL HC_SEND_IPI
    RAND
    mov %rax, %rdi
    and $1, %edi                    /* either CPU */
    mov %rax, %rsi
    shr $8, %rsi
    and $0x1ff, %esi                /* NMI, a valid vector, or an invalid one */
    HYPERCALL HC_SEND_IPI
    xor %edi, %edi
    xor %esi, %esi
    xor %ecx, %ecx
    HYPERCALL HC_WAIT               /* until an NMI (interrupts are off) */
    jmp .Lipi\@
.endm
.macro BODY
    mov $1, %edi
    HYPERCALL HC_START_CPU
    STORM
.endm
    ENTRY_POINTS BODY, STORM
