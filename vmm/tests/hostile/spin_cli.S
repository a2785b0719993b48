/* Spins with interrupts off and never exits: only the host's stall kick gets it out of KVM_RUN. */
    .include "common.inc"
.macro BODY
    cli
.Lspin:
    jmp .Lspin
.endm
    ENTRY_POINTS BODY, PARK
