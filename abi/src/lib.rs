//! The contract between the lockvmm host (`vmm/`) and its guest kernel (`guest/`).
//!
//! Both sides compile this crate, so a number defined here can never drift between them.
//! Everything is plain `#[repr(C)]` data and constants: the guest is `no_std` and the host
//! reads these structures out of guest memory with bounds checks.
//!
//! # Hypercalls
//! The guest issues `out %eax, %dx` with `DX = HYPERCALL_PORT` and `EAX = nr` (a [`Hypercall`]).
//! Arguments travel in `RDI, RSI, RCX, R8` (the System V order without RDX, which holds the port);
//! a result, where a call has one, comes back in `RAX`. Unknown numbers and invalid arguments are
//! refused by the host with `RAX = HC_EINVAL` and are never fatal to the host.
#![no_std]

/// I/O port of the hypercall interface.
pub const HYPERCALL_PORT: u16 = 0x0510;
/// The 16550 UART of the console (COM1).
pub const SERIAL_PORT: u16 = 0x3f8;

/// Hypercall succeeded.
pub const HC_OK: u64 = 0;
/// The host rejected the arguments (bad CPU number, address outside guest memory, …).
pub const HC_EINVAL: u64 = u64::MAX;

/// Hypercall numbers (`EAX`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hypercall {
    /// `a0 = cpu`: this CPU finished bring-up (`smpboot: CPU N online`).
    CpuOnline = 1,
    /// `a0 = cpu`: start a secondary CPU at the kernel entry (the paravirt stand-in for INIT/SIPI).
    StartCpu = 2,
    /// `a0 = exit status`: power off; the host exits with that status.
    Shutdown = 3,
    /// `a0 = message address, a1 = length`: `panic()`; the host freezes the machine and reports.
    Panic = 4,
    /// `a0 = address of the saved [`PtRegs`], a1 = vector, a2 = error code, a3 = CR2`: an
    /// exception the kernel cannot handle (an oops). The host stops and reports.
    Exception = 5,
    /// `a0 = address of a u32, a1 = expected value, a2 = deadline`: block this vCPU until it is
    /// kicked, an event it can take is delivered to it, the virtual clock reaches the deadline
    /// (`a2 = 0`: none), or (checked first) the u32 no longer holds the value. `a0 = 0` waits for
    /// an event (or the deadline) only. This is how every guest wait loop yields the host CPU.
    Wait = 6,
    /// `a0 = address`: wake every vCPU waiting on that address.
    Kick = 7,
    /// `a0 = kind` ([`LOCKUP_SOFT`] or [`LOCKUP_HARD`]), `a1 = address of the interrupted
    /// context's [`PtRegs`], a2 = message address, a3 = length`: a lockup detector fired on
    /// this CPU. Issued before the kernel prints its report, so the
    /// host sees the machine exactly as the detector did.
    Watchdog = 8,
    /// `a0 = cpu, a1 = vector` (or [`IPI_NMI`]): send an inter-processor interrupt through the
    /// host, which also wakes the target (Linux's KVM PV send-IPI).
    SendIpi = 9,
    /// `a0 = hook id` (see [`hook`]), `a1 = argument`: guest code passed a named point. The host
    /// records it with the vCPU's registers (the trace), and a scenario may act on it.
    Hook = 10,
    /// From ring 3 only, `a3 = system call number`: enter the kernel as the `syscall`
    /// instruction would (RCX = return RIP, R11 = RFLAGS, RFLAGS &= ~SYSCALL_MASK, CS/SS from
    /// STAR, RIP = LSTAR, RAX = the number). This KVM executes `syscall` (and `int n`) from
    /// ring 3 without the switch to ring 0, so the host performs it.
    Syscall = 11,
}

/// Hook points ([`Hypercall::Hook`]).
pub mod hook {
    /// `allocate_slab` is getting its pages (between its interrupt enable and disable when the
    /// GFP flags allow blocking); arg = gfp.
    pub const ALLOCATE_SLAB: u64 = 1;
    /// A lab task started; arg = pid.
    pub const TASK_START: u64 = 2;

    /// Name of a hook id, for traces and scenario files.
    pub fn name(id: u64) -> Option<&'static str> {
        Some(match id {
            ALLOCATE_SLAB => "allocate_slab",
            TASK_START => "task_start",
            _ => return None,
        })
    }
}

/// [`Hypercall::Watchdog`] kinds.
pub const LOCKUP_SOFT: u64 = 1;
pub const LOCKUP_HARD: u64 = 2;
/// [`Hypercall::SendIpi`] vector meaning "an NMI".
pub const IPI_NMI: u64 = 0x100;

impl Hypercall {
    /// Decodes `EAX`; `None` for a number the host does not know.
    pub fn from_raw(nr: u32) -> Option<Self> {
        Some(match nr {
            1 => Self::CpuOnline,
            2 => Self::StartCpu,
            3 => Self::Shutdown,
            4 => Self::Panic,
            5 => Self::Exception,
            6 => Self::Wait,
            7 => Self::Kick,
            8 => Self::Watchdog,
            9 => Self::SendIpi,
            10 => Self::Hook,
            11 => Self::Syscall,
            _ => return None,
        })
    }
}

/// The most CPUs the guest supports: xAPIC IDs are 8 bits and 0xff is broadcast.
pub const NR_CPUS: usize = 255;

/// Linux's `__START_KERNEL_map`: the kernel image is mapped here (physical 0 and up).
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// Physical address the kernel image is loaded at (as Linux's `CONFIG_PHYSICAL_START`).
pub const KERNEL_PHYS_START: u64 = 0x100_0000;
/// Linux's `page_offset_base` with 4-level paging: all of guest RAM is mapped here.
pub const PAGE_OFFSET: u64 = 0xffff_8880_0000_0000;
/// Size of the kernel-image mapping at [`START_KERNEL_MAP`] (Linux's KERNEL_IMAGE_SIZE).
pub const KERNEL_MAP_SIZE: u64 = 512 << 20;
/// Linux's `MODULES_VADDR`: module memory (4 KiB pages the kernel maps and unmaps itself).
pub const MODULES_VADDR: u64 = START_KERNEL_MAP + KERNEL_MAP_SIZE;
/// Size of the direct map at [`PAGE_OFFSET`] (covers the xAPIC page at 0xfee00000).
pub const DIRECT_MAP_SIZE: u64 = 4 << 30;
/// The local APIC's MMIO page (physical).
pub const APIC_BASE_PHYS: u64 = 0xfee0_0000;

/// Physical address of the [`BootInfo`] page the host fills before the first instruction.
pub const BOOT_INFO_PADDR: u64 = 0x7000;
/// Physical address of the clockevent page: `[u64; NR_CPUS]`, each CPU's next timer deadline
/// in virtual nanoseconds ([`NO_EVENT`] for none). The guest writes its own entry (Linux's
/// `clockevents_program_event`); the host reads them all when it advances the clock and clears
/// an entry when it delivers that CPU's timer interrupt (the device is one-shot).
pub const CLOCKEVENT_PADDR: u64 = 0x6000;
/// No timer armed.
pub const NO_EVENT: u64 = u64::MAX;

/// The emulated CPU's clock: the PMU's cycle counter advances this many cycles per virtual
/// nanosecond × 1000 (2 GHz).
pub const CPU_KHZ: u64 = 2_000_000;

/// Model-specific registers of the PMU the host emulates (architectural perfmon v2, one
/// general-purpose 48-bit counter), and LBR control.
pub mod msr {
    pub const IA32_PMC0: u32 = 0xc1;
    pub const IA32_PERFEVTSEL0: u32 = 0x186;
    pub const IA32_DEBUGCTLMSR: u32 = 0x1d9;
    pub const IA32_PERF_GLOBAL_STATUS: u32 = 0x38e;
    pub const IA32_PERF_GLOBAL_CTRL: u32 = 0x38f;
    pub const IA32_PERF_GLOBAL_OVF_CTRL: u32 = 0x390;
    /// PERFEVTSEL bits.
    pub const EVTSEL_INT: u64 = 1 << 20;
    pub const EVTSEL_EN: u64 = 1 << 22;
    /// Counter width.
    pub const PMC_BITS: u32 = 48;

    /// System-call MSRs: the guest programs them (`syscall_init`), and the host reads them to
    /// perform `syscall` for ring 3 ([`crate::Hypercall::Syscall`]).
    pub const MSR_STAR: u32 = 0xc000_0081;
    pub const MSR_LSTAR: u32 = 0xc000_0082;
    pub const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
}

/// RFLAGS bits (Linux's `X86_EFLAGS_*`), for both sides and the tests.
pub mod eflags {
    /// Bit 1 is always set.
    pub const X86_EFLAGS_FIXED: u64 = 1 << 1;
    pub const X86_EFLAGS_TF: u64 = 1 << 8;
    pub const X86_EFLAGS_IF: u64 = 1 << 9;
    pub const X86_EFLAGS_DF: u64 = 1 << 10;
    pub const X86_EFLAGS_IOPL: u64 = 3 << 12;
    pub const X86_EFLAGS_NT: u64 = 1 << 14;
    pub const X86_EFLAGS_AC: u64 = 1 << 18;
}
/// Physical window the host writes the scenario program (tasks and ops) into.
pub const PROGRAM_PADDR: u64 = 0x10_0000;
/// Size of the program window (it ends where the kernel image starts).
pub const PROGRAM_MAX: u64 = KERNEL_PHYS_START - PROGRAM_PADDR;

/// `BootInfo::magic`: "LOCKVMM1".
pub const BOOT_MAGIC: u64 = u64::from_le_bytes(*b"LOCKVMM1");

/// What the host tells the kernel at boot, at [`BOOT_INFO_PADDR`]. The host also keeps the
/// virtual clock here (`vtime_ns`), updated only while every vCPU is stopped, so a running
/// guest always sees a stable value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BootInfo {
    pub magic: u64,
    /// Number of CPUs the machine has (`nr_cpu_ids`).
    pub nr_cpus: u32,
    pub _pad: u32,
    /// Bytes of guest RAM from physical 0.
    pub mem_bytes: u64,
    /// Physical address and byte length of the scenario program (see [`TaskDesc`]).
    pub program_paddr: u64,
    pub program_len: u64,
    /// The lab's virtual clock in nanoseconds.
    pub vtime_ns: u64,
    /// Watchdog knobs, as Linux's sysctls.
    pub watchdog_thresh: u32,
    pub softlockup_panic: u32,
    pub hardlockup_panic: u32,
    pub nmi_watchdog: u32,
    pub softlockup_all_cpu_backtrace: u32,
    /// Fault knobs of the scenario (see [`knob`]).
    pub lbr_gfp_mode: u32,
    /// Non-zero: register a framebuffer console (`tty0`) besides the serial one.
    pub console_fbcon: u32,
    pub _pad2: u32,
}

/// Values of the scenario's fault knobs in [`BootInfo`].
pub mod knob {
    /// `intel_pmu_lbr_add` allocates with GFP_KERNEL (the bug in seed 000).
    pub const LBR_GFP_KERNEL: u32 = 0;
    /// … with GFP_ATOMIC (the seed's fix).
    pub const LBR_GFP_ATOMIC: u32 = 1;
    /// … not at all: the buffer is allocated at event creation (the upstream fix).
    pub const LBR_UPSTREAM: u32 = 2;
}

/// Header of the scenario program: `nr_tasks` [`TaskDesc`] follow, then `nr_ops` [`OpDesc`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ProgramHeader {
    pub nr_tasks: u32,
    pub nr_ops: u32,
    /// [`PROGRAM_POWER_OFF_WHEN_DONE`], …
    pub flags: u32,
    pub _pad: u32,
}

/// The kernel powers off once every task has finished its ops.
pub const PROGRAM_POWER_OFF_WHEN_DONE: u32 = 1;

/// One task of the scenario: a kernel thread pinned to `cpu` that runs `nr_ops` ops from
/// `first_op`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskDesc {
    pub pid: u32,
    pub cpu: u32,
    /// NUL-padded, like `task_struct::comm` (TASK_COMM_LEN = 16).
    pub comm: [u8; 16],
    pub first_op: u32,
    pub nr_ops: u32,
    /// 0 = SCHED_NORMAL, 1 = SCHED_FIFO.
    pub policy: u32,
    /// 1..99 for SCHED_FIFO.
    pub rt_priority: u32,
}

/// One operation a task performs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct OpDesc {
    pub kind: u32,
    pub _pad: u32,
    pub args: [u64; 4],
}

/// [`OpDesc::kind`] values.
pub mod op {
    /// Read a u64 from kernel virtual address `args[0]`.
    pub const READ: u32 = 1;
    /// Write `args[1]` to kernel virtual address `args[0]`.
    pub const WRITE: u32 = 2;
    /// Make the CPU triple-fault (load an empty IDT and raise an exception).
    pub const TRIPLE_FAULT: u32 = 3;
    /// Issue hypercall `args[0]` with arguments `args[1..4]` exactly as given (tests the host's
    /// validation of garbage).
    pub const RAW_HYPERCALL: u32 = 4;
    /// Print `args[0]` lines of filler through printk (console throughput).
    pub const PRINTK: u32 = 5;
    /// Read a u64 at `args[0]` with RBP set to `args[1]` (a garbage frame-pointer chain).
    pub const READ_WITH_BAD_FP: u32 = 6;
    /// Loop forever in `hog_thread`: `args[0]` = [`HOG_PREEMPT_OFF`] or [`HOG_SPIN_LOCK_IRQSAVE`].
    pub const HOG: u32 = 7;
    pub const HOG_PREEMPT_OFF: u64 = 0;
    pub const HOG_SPIN_LOCK_IRQSAVE: u64 = 1;
    /// `msleep(args[0])`.
    pub const SLEEP_MS: u32 = 8;
    /// Enter user mode and call `setsid()` then `exit()` as system calls (the task ends).
    pub const SETSID: u32 = 9;
    /// `perf_event_open` of an LBR event on this task.
    pub const PERF_EVENT_OPEN_LBR: u32 = 10;
    /// Load `timer_mod` with variant `args[0]`.
    pub const MODULE_LOAD: u32 = 11;
    /// Unload `timer_mod`.
    pub const MODULE_UNLOAD: u32 = 12;
    /// With interrupts off, `kmem_cache_alloc` from a fresh cache with GFP_KERNEL (`args[0]` =
    /// 0) or GFP_ATOMIC (1).
    pub const KMALLOC_IRQS_OFF: u32 = 13;
    /// Busy for `args[0]` virtual milliseconds (as the CPU is: preemptible or not, interrupts on
    /// or off); `u64::MAX`: forever.
    pub const BUSY_MS: u32 = 14;
    /// Take scenario lock `args[0]` with `args[1]` = [`LOCK_PLAIN`], [`LOCK_IRQ`] or
    /// [`LOCK_IRQSAVE`].
    pub const LOCK: u32 = 15;
    /// Release scenario lock `args[0]` the way `args[1]` says it was taken.
    pub const UNLOCK: u32 = 16;
    pub const LOCK_PLAIN: u64 = 0;
    pub const LOCK_IRQ: u64 = 1;
    pub const LOCK_IRQSAVE: u64 = 2;
    pub const IRQ_DISABLE: u32 = 17;
    pub const IRQ_ENABLE: u32 = 18;
    pub const PREEMPT_DISABLE: u32 = 19;
    pub const PREEMPT_ENABLE: u32 = 20;
    /// `kmem_cache_alloc` in the current context with GFP_KERNEL (`args[0]` = 0) or GFP_ATOMIC.
    pub const KMALLOC: u32 = 21;
    /// Raise HI_SOFTIRQ (its handler counts and logs).
    pub const RAISE_SOFTIRQ: u32 = 22;
    /// Arm a timer on this CPU firing in `args[0]` virtual milliseconds.
    pub const ARM_TIMER: u32 = 23;
    /// Drop to user mode (ring 3) and spin there forever, yielding like every guest spin loop
    /// (the TSS I/O bitmap opens only the hypercall port to ring 3).
    pub const USER_BUSY_LOOP: u32 = 24;
    /// Loop in ring 0 without ever yielding to the host (tests the VMM's stall kick).
    pub const SPIN_WITHOUT_YIELDING: u32 = 25;
    /// How many locks a scenario may declare.
    pub const MAX_LOCKS: usize = 16;
}

/// The registers an interrupt or exception entry stub saves, in Linux's `struct pt_regs` order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PtRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    /// Error code for exceptions that push one, the vector's complement for IRQs, -1 otherwise.
    pub orig_rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Size of one [`PtRegs`] in bytes (what the host reads).
pub const PT_REGS_SIZE: usize = core::mem::size_of::<PtRegs>();

/// Interrupt vectors, as in Linux's `arch/x86/include/asm/irq_vectors.h`.
pub mod vector {
    pub const LOCAL_TIMER_VECTOR: u8 = 0xec;
    pub const SPURIOUS_APIC_VECTOR: u8 = 0xff;
    pub const RESCHEDULE_VECTOR: u8 = 0xfd;
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

// SAFETY (for each impl): plain `#[repr(C)]` structs of integers and byte arrays, so every bit
// pattern is a valid value and there are no pointers or padding-dependent invariants.
#[cfg(feature = "host")]
mod host_impls {
    use super::*;
    unsafe impl vm_memory::ByteValued for BootInfo {}
    unsafe impl vm_memory::ByteValued for ProgramHeader {}
    unsafe impl vm_memory::ByteValued for TaskDesc {}
    unsafe impl vm_memory::ByteValued for OpDesc {}
    unsafe impl vm_memory::ByteValued for PtRegs {}
}
