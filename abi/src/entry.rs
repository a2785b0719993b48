//! The entry stubs (guest `arch/x86/entry/entry_64.rs`) that the host's frame-pointer unwinder
//! crosses, and where each keeps the `struct pt_regs` ([`PtRegs`](crate::PtRegs)) it saved.
//!
//! Every stub builds the `pt_regs` on the stack and calls its handler without touching RBP, so
//! the handler's frame (`push rbp; mov rbp, rsp`) links straight to the interrupted code, and
//! the return address at `fp + 8` of that frame lies in the stub. Above the return address:
//!
//! - exception stubs (`idtentry`), `nmi` and `entry_SYSCALL_64`: `PUSH_REGS` leaves RSP at the
//!   `pt_regs`, then `sub rsp, 8` (alignment: the frame is 21 words) and `call`. So
//!   `fp + 16` is the padding word and the `pt_regs` starts at `fp + 24`:
//!   [`PtRegsAt::InlineAtFpPlus`]`(24)`. `nmi`'s call sits at its `end_repeat_nmi` label and
//!   `entry_SYSCALL_64`'s after its `entry_SYSCALL_64_after_hwframe` label, so return
//!   addresses resolve to those names.
//! - hardware interrupts (`apicinterrupt` stubs and `common_interrupt`, `IRQ_BODY`): RDI =
//!   the `pt_regs`, then the switch to the IRQ stack, `and rsp, -16; sub rsp, 8; push rdi` and
//!   `call`. So `fp + 16` holds a pointer to the `pt_regs` (on the interrupted stack):
//!   [`PtRegsAt::PointerAtFpPlus`]`(16)`.
//!
//! One call site does not follow its stub's rule: the `call retint_kernel` an `IRQ_BODY`
//! makes after the handler, back on the interrupted stack, has the exception layout (`pt_regs`
//! inline at `fp + 24`). [`pt_regs_at`] goes by the stub's name only, so it describes the
//! handler call.

/// Where the `pt_regs` an entry stub saved is, relative to the frame pointer `fp` of the frame
/// whose return address (at `fp + 8`) lies in the stub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtRegsAt {
    /// The u64 at `fp + n` is the address of the `pt_regs` (interrupt stubs, which switch to
    /// the IRQ stack).
    PointerAtFpPlus(u64),
    /// The `pt_regs` starts at `fp + n` (exception stubs, NMI and system calls).
    InlineAtFpPlus(u64),
}

/// The `pt_regs` pointer's offset above an interrupt stub's frame pointer.
pub const IRQ_PT_REGS_PTR_OFFSET: u64 = 16;
/// The `pt_regs`' offset above an exception stub's frame pointer (16 bytes above the return
/// address).
pub const EXCEPTION_PT_REGS_OFFSET: u64 = 24;

/// Stubs that switch to the IRQ stack and keep a pointer to the `pt_regs`
/// ([`PtRegsAt::PointerAtFpPlus`]`(`[`IRQ_PT_REGS_PTR_OFFSET`]`)`).
pub const IRQ_STUBS: &[&str] = &[
    "apic_timer_interrupt",
    "reschedule_interrupt",
    "common_interrupt",
];

/// Exception stubs, `nmi` (and its `end_repeat_nmi` call site) and the system-call entry: the
/// `pt_regs` sits inline ([`PtRegsAt::InlineAtFpPlus`]`(`[`EXCEPTION_PT_REGS_OFFSET`]`)`).
pub const EXCEPTION_STUBS: &[&str] = &[
    "entry_SYSCALL_64_after_hwframe",
    "divide_error",
    "debug",
    "int3",
    "overflow",
    "bounds",
    "invalid_op",
    "device_not_available",
    "double_fault",
    "coprocessor_segment_overrun",
    "invalid_TSS",
    "segment_not_present",
    "stack_segment",
    "general_protection",
    "page_fault",
    "spurious_interrupt_bug",
    "coprocessor_error",
    "alignment_check",
    "machine_check",
    "simd_coprocessor_error",
    "reserved_exception",
    "nmi",
    "end_repeat_nmi",
];

/// Where the `pt_regs` is for a return address in the stub named `stub`; `None` when `stub` is
/// not an entry stub (an ordinary frame).
pub fn pt_regs_at(stub: &str) -> Option<PtRegsAt> {
    if IRQ_STUBS.contains(&stub) {
        Some(PtRegsAt::PointerAtFpPlus(IRQ_PT_REGS_PTR_OFFSET))
    } else if EXCEPTION_STUBS.contains(&stub) {
        Some(PtRegsAt::InlineAtFpPlus(EXCEPTION_PT_REGS_OFFSET))
    } else {
        None
    }
}

/// The frame `__switch_to_asm` leaves on the stack of a task it switches away from: it was
/// called (the return address into the scheduler), pushed RBP, RBX, R12, R13, R14 and R15, and
/// saved RSP in `task_struct::thread_sp`. A new task's first frame (`copy_thread`) has the same
/// layout with `ret_from_fork` as the return address. From the saved RSP, RBP is at this
/// offset …
pub const SWITCH_FRAME_RBP_OFFSET: u64 = 40;
/// … the return address at this one …
pub const SWITCH_FRAME_RETURN_OFFSET: u64 = 48;
/// … and the task's RSP after the return is the saved RSP plus this.
pub const SWITCH_FRAME_SIZE: u64 = 56;
