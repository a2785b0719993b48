//! `preempt_count` and its context tests (Linux's `include/linux/preempt.h`).
use core::arch::asm;

use lockvmm_abi::locking::LockContext;

use crate::arch::x86::percpu::PERCPU_PREEMPT_COUNT;

pub const PREEMPT_OFFSET: u32 = 1;
pub const SOFTIRQ_OFFSET: u32 = 1 << 8;
/// `local_bh_disable()` adds twice the serving offset, so "serving a softirq" stays the low bit.
pub const SOFTIRQ_DISABLE_OFFSET: u32 = 2 * SOFTIRQ_OFFSET;
pub const HARDIRQ_OFFSET: u32 = 1 << 16;
pub const NMI_OFFSET: u32 = 1 << 20;
const SOFTIRQ_MASK: u32 = 0xff << 8;
const HARDIRQ_MASK: u32 = 0xf << 16;
const NMI_MASK: u32 = 0xf << 20;

// As Linux's `__preempt_count` ops (`arch/x86/include/asm/preempt.h`): one GS-relative
// instruction, not locked (only this CPU writes its count, and one instruction cannot be split
// by an interrupt). The asm is a compiler barrier, as `preempt_disable()`'s `barrier()`.

#[inline(always)]
pub fn preempt_count() -> u32 {
    let count: u32;
    // SAFETY: GS points at this CPU's `PerCpu`; reads its `preempt_count`.
    unsafe {
        asm!("mov {:e}, gs:[{off}]", out(reg) count, off = const PERCPU_PREEMPT_COUNT,
            options(nostack, readonly, preserves_flags))
    };
    count
}

/// `add`/`sub` of `preempt_count` as one GS-relative instruction; the offsets the hot paths use
/// are immediates (`add dword ptr gs:[..], 1`), any other value goes through a register. After
/// inlining, the `match` on a constant argument leaves one instruction.
macro_rules! preempt_count_op {
    ($op:literal, $val:expr) => {
        match $val {
            PREEMPT_OFFSET => preempt_count_op!(@imm $op, PREEMPT_OFFSET),
            HARDIRQ_OFFSET => preempt_count_op!(@imm $op, HARDIRQ_OFFSET),
            SOFTIRQ_OFFSET => preempt_count_op!(@imm $op, SOFTIRQ_OFFSET),
            SOFTIRQ_DISABLE_OFFSET => preempt_count_op!(@imm $op, SOFTIRQ_DISABLE_OFFSET),
            v => {
                // SAFETY: GS points at this CPU's `PerCpu`; changes its `preempt_count`.
                unsafe {
                    asm!(concat!($op, " dword ptr gs:[{off}], {v:e}"),
                        off = const PERCPU_PREEMPT_COUNT, v = in(reg) v, options(nostack))
                }
            }
        }
    };
    (@imm $op:literal, $c:expr) => {
        // SAFETY: GS points at this CPU's `PerCpu`; changes its `preempt_count`.
        unsafe {
            asm!(concat!($op, " dword ptr gs:[{off}], {v}"),
                off = const PERCPU_PREEMPT_COUNT, v = const $c, options(nostack))
        }
    };
}

#[inline(always)]
pub fn preempt_count_add(val: u32) {
    preempt_count_op!("add", val);
}

#[inline(always)]
pub fn preempt_count_sub(val: u32) {
    preempt_count_op!("sub", val);
}

#[inline(always)]
pub fn preempt_disable() {
    preempt_disable_notrace();
    crate::kernel::trace::trace_preemptirq::trace_preempt_off();
}

/// `preempt_disable_notrace`: the count only, no tracing hook.
#[inline(always)]
pub fn preempt_disable_notrace() {
    preempt_count_add(PREEMPT_OFFSET);
}

/// Re-enables preemption without rescheduling (the caller reschedules when it may).
#[inline(always)]
pub fn preempt_enable_no_resched() {
    crate::kernel::trace::trace_preemptirq::trace_preempt_on();
    preempt_count_sub(PREEMPT_OFFSET);
}

/// Re-enables preemption and reschedules if something asked for it meanwhile. As Linux's
/// `preempt_enable` (`__preempt_count_dec_and_test`): one `sub` whose zero flag says whether
/// the count reached 0, without reading it back.
#[inline(always)]
pub fn preempt_enable() {
    crate::kernel::trace::trace_preemptirq::trace_preempt_on();
    preempt_enable_notrace();
}

/// `preempt_enable_notrace`: `preempt_enable` without the tracing hook.
#[inline(always)]
pub fn preempt_enable_notrace() {
    // SAFETY: GS points at this CPU's `PerCpu`; decrements its `preempt_count` and jumps to the
    // reschedule check when it reaches 0.
    unsafe {
        asm!("sub dword ptr gs:[{off}], {one}", "jz {zero}",
            off = const PERCPU_PREEMPT_COUNT, one = const PREEMPT_OFFSET,
            zero = label {
                if crate::kernel::sched::core::need_resched() {
                    crate::kernel::sched::core::preempt_schedule();
                }
            },
            options(nostack))
    };
}

pub fn in_nmi() -> bool {
    preempt_count() & NMI_MASK != 0
}

pub fn in_irq() -> bool {
    preempt_count() & HARDIRQ_MASK != 0
}

pub fn in_softirq() -> bool {
    preempt_count() & SOFTIRQ_MASK != 0
}

/// `in_serving_softirq()`: running a softirq, not just with bottom halves disabled.
pub fn in_serving_softirq() -> bool {
    preempt_count() & SOFTIRQ_OFFSET != 0
}

/// `in_task()`: neither NMI nor hardirq nor serving a softirq (one read of the count).
pub fn in_task() -> bool {
    preempt_count() & (NMI_MASK | HARDIRQ_MASK | SOFTIRQ_OFFSET) == 0
}

/// `in_interrupt()`: hardirq, softirq or NMI context.
pub fn in_interrupt() -> bool {
    preempt_count() & (NMI_MASK | HARDIRQ_MASK | SOFTIRQ_MASK) != 0
}

/// The context a spinlock waiter is in, which picks its MCS node and its
/// `qspinlock_spinning_on` slot: the innermost of NMI, hardirq, softirq and task.
pub fn lock_context() -> LockContext {
    let pc = preempt_count();
    if pc & NMI_MASK != 0 {
        LockContext::Nmi
    } else if pc & HARDIRQ_MASK != 0 {
        LockContext::Hardirq
    } else if pc & SOFTIRQ_OFFSET != 0 {
        // Serving a softirq; a task that only disabled bottom halves is still a task.
        LockContext::Softirq
    } else {
        LockContext::Task
    }
}
