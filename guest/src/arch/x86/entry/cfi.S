/* DWARF call-frame information for the entry stubs (entry_64.rs), written into .debug_frame
 * by hand, as Linux's entry code had its CFI_* annotations before ORC.
 *
 * Why by hand: this target's CFI goes to .debug_frame (the linker script drops .eh_frame),
 * where LLVM emits one CIE per object with augmentation "", so `.cfi_signal_frame` is lost.
 * A stub's frame must be a signal frame (augmentation "S"): its caller is the interrupted
 * instruction itself, not a return address (no `pc - 1` lookup), and gdb then accepts the
 * step from the IRQ or NMI stack down to a task stack at a lower address instead of stopping
 * with "previous frame inner to this frame (corrupt stack?)".
 *
 * The CFA of a stub is the end of its pt_regs (just above the hardware frame's SS), so every
 * saved register has a fixed offset below it (lockvmm_abi::PtRegs): RIP at CFA-40, CS -32,
 * RFLAGS -24, RSP -16, SS -8, and PUSH_REGS' registers from RDI (-56) down to R15 (-168).
 * DWARF register numbers: RAX 0, RDX 1, RCX 2, RBX 3, RSI 4, RDI 5, RBP 6, RSP 7, R8-R15 8-15,
 * RIP 16, RFLAGS 49, CS 51, SS 52. Offsets are factored by the CIE's data alignment (-8).
 *
 * Use: STUB_FDE_START name at the stub's first instruction, a CFI_* row after each instruction
 * that changes what it describes (a row holds from the address it is written at), and
 * STUB_FDE_END name after the last instruction. A row starts with DW_CFA_advance_loc1 from the
 * previous row: numeric labels 8 (the previous row) and 7 (this row), which no stub uses. The
 * directives emit no instructions.
 */
    .pushsection .debug_frame, "", @progbits
.Lstub_cie:
    .long .Lstub_cie_end - .Lstub_cie_id    /* length */
.Lstub_cie_id:
    .long 0xffffffff                        /* CIE_id */
    .byte 1                                 /* version */
    .asciz "S"                              /* augmentation: signal frames */
    .uleb128 1                              /* code alignment factor */
    .sleb128 -8                             /* data alignment factor */
    .byte 16                                /* return address column: RIP */
    .balign 8, 0                            /* DW_CFA_nop */
.Lstub_cie_end:
    .popsection

    .macro STUB_FDE_START name
    .pushsection .debug_frame, "", @progbits
    .long .Lfde_end_\name - .Lfde_cie_\name /* length */
.Lfde_cie_\name:
    .long .Lstub_cie                        /* CIE pointer */
    .quad \name                             /* initial location */
    .quad .Lfde_code_end_\name - \name      /* address range */
    .popsection
8:
    .endm

    .macro STUB_FDE_END name
.Lfde_code_end_\name:
    .pushsection .debug_frame, "", @progbits
    .balign 8, 0
.Lfde_end_\name:
    .popsection
    .endm

    /* Opens a row at this address (DW_CFA_advance_loc1); CFI_ROW_END closes it. */
    .macro CFI_ROW
7:
    .pushsection .debug_frame, "", @progbits
    .byte 0x02
    .byte 7b - 8b
    .endm

    .macro CFI_ROW_END
    .popsection
8:
    .endm

    /* CFA = RSP + off (DW_CFA_def_cfa_offset). */
    .macro CFI_CFA_OFFSET off
    CFI_ROW
    .byte 0x0e
    .uleb128 \off
    CFI_ROW_END
    .endm

    /* CFA = RSP + off (DW_CFA_def_cfa: the CFA is RSP-based again). */
    .macro CFI_CFA_RSP off
    CFI_ROW
    .byte 0x0c, 7
    .uleb128 \off
    CFI_ROW_END
    .endm

    /* CFA = RDI + 168: RDI holds the pt_regs. */
    .macro CFI_CFA_RDI_PT_REGS
    CFI_ROW
    .byte 0x0c, 5
    .uleb128 168
    CFI_ROW_END
    .endm

    /* CFA = [RSP] + 168: the word at RSP points at the pt_regs (on the IRQ stack). As Linux
       3.x's SAVE_ARGS_IRQ: DW_CFA_def_cfa_expression (DW_OP_breg7 0; DW_OP_deref;
       DW_OP_plus_uconst 168). */
    .macro CFI_CFA_DEREF_RSP_PT_REGS
    CFI_ROW
    .byte 0x0f, 6, 0x77, 0, 0x06, 0x23, 0xa8, 0x01
    CFI_ROW_END
    .endm

    /* The hardware frame: CFA = RSP + off, RIP CS RFLAGS RSP SS saved below it. */
    .macro CFI_IRET_FRAME off
    CFI_ROW
    .byte 0x0c, 7
    .uleb128 \off
    .byte 0x90, 5, 0xb3, 4, 0xb1, 3, 0x87, 2, 0xb4, 1
    CFI_ROW_END
    .endm

    /* Appends to the row just written: PUSH_REGS' registers at their pt_regs slots. */
    .macro CFI_SAVED_REGS
    .pushsection .debug_frame, "", @progbits
    .byte 0x85, 7, 0x84, 8, 0x81, 9, 0x82, 10, 0x80, 11
    .byte 0x88, 12, 0x89, 13, 0x8a, 14, 0x8b, 15, 0x83, 16
    .byte 0x86, 17, 0x8c, 18, 0x8d, 19, 0x8e, 20, 0x8f, 21
    .popsection
    .endm

    /* Appends to the row just written: DW_CFA_offset reg, factored offset. */
    .macro CFI_SAVED reg, factored
    .pushsection .debug_frame, "", @progbits
    .byte 0x80 + \reg, \factored
    .popsection
    .endm

    /* entry_SYSCALL_64's first instruction: the user RIP is in RCX, RFLAGS in R11, and the
       CFA is the user RSP (DW_CFA_def_cfa RSP 0; DW_CFA_register RIP RCX; RFLAGS R11). */
    .macro CFI_SYSCALL_ENTRY
    CFI_ROW
    .byte 0x0c, 7, 0, 0x09, 16, 2, 0x09, 49, 11
    CFI_ROW_END
    .endm

    /* On the kernel stack, before the user RSP is pushed: it is only in gs:[rsp_scratch],
       which DWARF cannot name (DW_CFA_undefined RSP). The CFA is the stack's top. */
    .macro CFI_USER_RSP_UNDEFINED
    CFI_ROW
    .byte 0x07, 7
    CFI_ROW_END
    .endm
