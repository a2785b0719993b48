/* Resets itself with an INIT IPI written to the xAPIC's ICR (physical 0xfee00000, reached
 * through the direct map), then spins. */
    .include "common.inc"
.macro BODY
    movabs $PAGE_OFFSET + 0xfee00310, %rax
    movl $0, (%rax)                 /* ICR high: destination APIC ID 0 (itself) */
    movabs $PAGE_OFFSET + 0xfee00300, %rax
    movl $0x00004500, (%rax)        /* ICR low: INIT, level assert, physical destination */
.Lafter:
    pause
    jmp .Lafter
.endm
    ENTRY_POINTS BODY, PARK
