/* Triple-faults: an empty IDT, then an invalid opcode. */
    .include "common.inc"
.macro BODY
    lidt empty_idtr(%rip)
    ud2
    .data
empty_idtr:
    .word 0
    .quad 0
    .text
.endm
    ENTRY_POINTS BODY, PARK
