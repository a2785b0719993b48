/* Exits forever: `out` to an unused port in a loop that never waits (virtual time never moves). */
    .include "common.inc"
.macro BODY
.Lloop:
    out %al, $0x80
    jmp .Lloop
.endm
    ENTRY_POINTS BODY, PARK
