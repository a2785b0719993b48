//! The hypercall interface: the I/O ports, [`Hypercall`] numbers, results, and the values of
//! some calls' arguments ([`LockupKind`], [`IPI_NMI`]).
//!
//! The guest issues `out %eax, %dx` with `DX = HYPERCALL_PORT` and `EAX = nr` (a [`Hypercall`]).
//! Arguments travel in `RDI, RSI, RCX, R8`; a result, where a call has one, comes back in `RAX`.

/// I/O port of the hypercall interface.
pub const HYPERCALL_PORT: u16 = 0x0510;
/// The 16550 UART of the console (COM1).
pub const SERIAL_PORT: u16 = 0x3f8;

/// Hypercall succeeded.
pub const HC_OK: u64 = 0;
/// The host rejected the arguments (bad CPU number, address outside guest memory, …).
pub const HC_EINVAL: u64 = u64::MAX;

contract_enum! {
    /// Hypercall numbers (`EAX`).
    pub enum Hypercall: u32 {
        /// `a0 = cpu, a1 = address of a u32 or 0`: this CPU finished bring-up (`smpboot: CPU
        /// N online`). With `a1`, the call is also a [`Kick`](Self::Kick) on that address (the
        /// online flag its starter waits on, set before the call): one exit for both facts.
        CpuOnline = 1,
        /// `a0 = cpu, a1 = address of a u32 or 0`: start a secondary CPU at the kernel entry
        /// (the paravirt stand-in for INIT/SIPI). With `a1`, the caller then waits as
        /// [`Wait`](Self::Wait) with `a0 = a1, a1 = 0` (its wait for the CPU's online flag),
        /// in the same exit.
        StartCpu = 2,
        /// `a0 = exit status`: power off; the host exits with that status.
        Shutdown = 3,
        /// `a0 = message address, a1 = length, a2 = the interrupted context's saved
        /// [`PtRegs`](crate::PtRegs) or 0`: `panic()`'s kdump hand-over, issued by
        /// `machine_kexec` after the crash NMI stopped the other CPUs; the host is the capture
        /// kernel: it freezes the machine (the vmcore) and reports.
        Panic = 4,
        /// `a0 = address of the saved [`PtRegs`](crate::PtRegs), a1 = vector, a2 = error code,
        /// a3 = CR2`: an exception the kernel cannot handle (an oops). The host stops and
        /// reports.
        Exception = 5,
        /// `a0 = address of a u32, a1 = expected value, a2 = deadline`: block this vCPU until
        /// it is kicked, an event it can take is delivered to it, the virtual clock reaches the
        /// deadline (`a2 = 0`: none), or (checked first) the u32 no longer holds the value.
        /// `a0 = 0` waits for an event (or the deadline) only. This is how every guest wait
        /// loop yields the host CPU.
        Wait = 6,
        /// `a0 = address`: wake every vCPU waiting on that address.
        Kick = 7,
        /// `a0 = kind` (a [`LockupKind`]), `a1 = address of the interrupted context's
        /// [`PtRegs`](crate::PtRegs), a2 = message address, a3 = length`: a lockup detector
        /// fired on this CPU. Issued before the kernel prints its report, so the host sees the
        /// machine exactly as the detector did.
        Watchdog = 8,
        /// `a0 = cpu, a1 = vector` (or [`IPI_NMI`]): send an inter-processor interrupt through
        /// the host, which also wakes the target (Linux's KVM PV send-IPI).
        SendIpi = 9,
        /// `a0 = hook id` (a [`Hook`](crate::hook::Hook)), `a1 = argument`: guest code passed a
        /// named point. The host records it with the vCPU's registers (the trace), and a
        /// scenario may act on it.
        Hook = 10,
        /// From ring 3 only, `a3 = system call number`: enter the kernel as the `syscall`
        /// instruction would (RCX = return RIP, R11 = RFLAGS, RFLAGS &= ~SYSCALL_MASK, CS/SS
        /// from STAR, RIP = LSTAR, RAX = the number). This KVM executes `syscall` (and `int n`)
        /// from ring 3 without the switch to ring 0, so the host performs it.
        Syscall = 11,
        /// `a0 = address, a1 = length`: bytes for the serial console (one printk line). The
        /// host feeds them to the UART's transmit register one by one, exactly as if the guest
        /// had written each to [`SERIAL_PORT`]: one exit a line instead of one a byte.
        ConsoleWrite = 12,
    }
}

contract_enum! {
    /// Which detector fired: `a0` of [`Hypercall::Watchdog`].
    pub enum LockupKind: u64 {
        /// The soft-lockup detector (`watchdog_timer_fn`, from the hrtimer interrupt).
        Soft = 1,
        /// The hard-lockup detector (`watchdog_overflow_callback`, from the PMU NMI).
        Hard = 2,
        /// The hung-task detector (`khungtaskd`): `a1` is the blocked task's `task_struct`
        /// (not a `pt_regs`).
        HungTask = 3,
    }
}

impl LockupKind {
    /// `"soft"`, `"hard"` or `"hung_task"`, as reports name the kind.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Soft => "soft",
            Self::Hard => "hard",
            Self::HungTask => "hung_task",
        }
    }
}

/// [`LockupKind::Soft`] as a raw value.
pub const LOCKUP_SOFT: u64 = LockupKind::Soft as u64;
/// [`LockupKind::Hard`] as a raw value.
pub const LOCKUP_HARD: u64 = LockupKind::Hard as u64;

/// [`Hypercall::SendIpi`] vector meaning "an NMI".
pub const IPI_NMI: u64 = 0x100;
