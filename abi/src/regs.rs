//! The CPU state both sides talk about: the saved registers ([`PtRegs`]), RFLAGS bits, the
//! MSRs of the emulated PMU and of `syscall`, interrupt vectors and exception names.

/// The emulated CPU's clock: the PMU's cycle counter advances this many cycles per virtual
/// nanosecond × 1000 (2 GHz).
pub const CPU_KHZ: u64 = 2_000_000;

/// Model-specific registers of the PMU the host emulates (architectural perfmon v2, one
/// general-purpose 48-bit counter), LBR control, and the system-call MSRs.
pub mod msr {
    /// General-purpose performance counter 0.
    pub const IA32_PMC0: u32 = 0xc1;
    /// Event select of counter 0 (`EVTSEL_*` bits).
    pub const IA32_PERFEVTSEL0: u32 = 0x186;
    /// Debug control (LBR enable).
    pub const IA32_DEBUGCTLMSR: u32 = 0x1d9;
    /// Overflow status of the counters.
    pub const IA32_PERF_GLOBAL_STATUS: u32 = 0x38e;
    /// Global enable of the counters.
    pub const IA32_PERF_GLOBAL_CTRL: u32 = 0x38f;
    /// Clears overflow status bits.
    pub const IA32_PERF_GLOBAL_OVF_CTRL: u32 = 0x390;
    /// PERFEVTSEL bit: interrupt (the PMI, delivered as an NMI) on overflow.
    pub const EVTSEL_INT: u64 = 1 << 20;
    /// PERFEVTSEL bit: the counter counts.
    pub const EVTSEL_EN: u64 = 1 << 22;
    /// Counter width.
    pub const PMC_BITS: u32 = 48;

    /// System-call MSR: kernel CS/SS (bits 47:32) and user ones for `sysret` (63:48). The
    /// guest programs the system-call MSRs (`syscall_init`), and the host reads them to perform
    /// `syscall` for ring 3 ([`crate::Hypercall::Syscall`]).
    pub const MSR_STAR: u32 = 0xc000_0081;
    /// System-call MSR: the 64-bit `syscall` entry point.
    pub const MSR_LSTAR: u32 = 0xc000_0082;
    /// System-call MSR: RFLAGS bits `syscall` clears.
    pub const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
}

/// RFLAGS bits (Linux's `X86_EFLAGS_*`), for both sides and the tests.
pub mod eflags {
    /// Bit 1 is always set.
    pub const X86_EFLAGS_FIXED: u64 = 1 << 1;
    /// Trap flag (single step).
    pub const X86_EFLAGS_TF: u64 = 1 << 8;
    /// Interrupts enabled.
    pub const X86_EFLAGS_IF: u64 = 1 << 9;
    /// Direction flag.
    pub const X86_EFLAGS_DF: u64 = 1 << 10;
    /// I/O privilege level (two bits).
    pub const X86_EFLAGS_IOPL: u64 = 3 << 12;
    /// Nested task.
    pub const X86_EFLAGS_NT: u64 = 1 << 14;
    /// Alignment check / SMAP access.
    pub const X86_EFLAGS_AC: u64 = 1 << 18;
}

/// The registers an interrupt or exception entry stub saves, in Linux's `struct pt_regs` order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PtRegs {
    /// Saved R15.
    pub r15: u64,
    /// Saved R14.
    pub r14: u64,
    /// Saved R13.
    pub r13: u64,
    /// Saved R12.
    pub r12: u64,
    /// Saved RBP.
    pub rbp: u64,
    /// Saved RBX.
    pub rbx: u64,
    /// Saved R11.
    pub r11: u64,
    /// Saved R10.
    pub r10: u64,
    /// Saved R9.
    pub r9: u64,
    /// Saved R8.
    pub r8: u64,
    /// Saved RAX.
    pub rax: u64,
    /// Saved RCX.
    pub rcx: u64,
    /// Saved RDX.
    pub rdx: u64,
    /// Saved RSI.
    pub rsi: u64,
    /// Saved RDI.
    pub rdi: u64,
    /// Error code for exceptions that push one, the vector's complement for IRQs, the number
    /// for system calls, -1 otherwise.
    pub orig_rax: u64,
    /// Saved RIP (where the context was interrupted).
    pub rip: u64,
    /// Saved CS (its low two bits are the privilege level).
    pub cs: u64,
    /// Saved RFLAGS.
    pub rflags: u64,
    /// Saved RSP.
    pub rsp: u64,
    /// Saved SS.
    pub ss: u64,
}

/// Size of one [`PtRegs`] in bytes (what the host reads).
pub const PT_REGS_SIZE: usize = core::mem::size_of::<PtRegs>();

/// Interrupt vectors, as in Linux's `arch/x86/include/asm/irq_vectors.h`.
pub mod vector {
    /// The local APIC timer (the clockevent device).
    pub const LOCAL_TIMER_VECTOR: u8 = 0xec;
    /// Spurious interrupts of the local APIC.
    pub const SPURIOUS_APIC_VECTOR: u8 = 0xff;
    /// The reschedule IPI.
    pub const RESCHEDULE_VECTOR: u8 = 0xfd;
    /// `smp_call_function_single`'s IPI.
    pub const CALL_FUNCTION_SINGLE_VECTOR: u8 = 0xfb;
    /// The first vector of the scenario's hardirq handlers (Linux's device vectors start at
    /// 0x20 + 16 legacy ones; lockvmm keeps the low ones free).
    pub const LAB_FIRST_VECTOR: u8 = 0x40;

    /// The vector of hardirq handler `handler` (below
    /// [`MAX_HANDLERS`](crate::program::MAX_HANDLERS)).
    pub const fn lab_vector(handler: u32) -> u8 {
        LAB_FIRST_VECTOR + handler as u8
    }

    /// The handler a lab vector belongs to, if it is one.
    pub const fn lab_handler(vector: u8) -> Option<u32> {
        if vector >= LAB_FIRST_VECTOR
            && ((vector - LAB_FIRST_VECTOR) as usize) < crate::program::MAX_HANDLERS
        {
            Some((vector - LAB_FIRST_VECTOR) as u32)
        } else {
            None
        }
    }
}

/// Exception names by vector, as the kernel and the host print them.
pub fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug",
        2 => "NMI",
        3 => "int3",
        4 => "overflow",
        5 => "bounds",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack segment",
        13 => "general protection fault",
        14 => "page fault",
        16 => "x87 floating point",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating point",
        _ => "unknown exception",
    }
}
