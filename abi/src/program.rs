//! The scenario program the host writes at [`PROGRAM_PADDR`](crate::PROGRAM_PADDR): a
//! [`ProgramHeader`], `nr_tasks` [`TaskDesc`], then `nr_ops` [`OpDesc`], and the enums of their
//! fields.
//!
//! Each op's meaning and arguments are documented on its [`OpKind`]. The old raw constants
//! (`op::LOCK`, `op::LOCK_IRQ`, …) remain in [`op`], with the same values.

use crate::task::TASK_COMM_LEN;

/// Header of the scenario program: `nr_tasks` [`TaskDesc`] follow, then `nr_ops` [`OpDesc`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ProgramHeader {
    /// Number of [`TaskDesc`] after the header.
    pub nr_tasks: u32,
    /// Number of [`OpDesc`] after the tasks.
    pub nr_ops: u32,
    /// [`PROGRAM_POWER_OFF_WHEN_DONE`], …
    pub flags: u32,
    /// Zero.
    pub _pad: u32,
}

/// The kernel powers off once every task has finished its ops.
pub const PROGRAM_POWER_OFF_WHEN_DONE: u32 = 1;

/// One task of the scenario: a kernel thread pinned to `cpu` that runs `nr_ops` ops from
/// `first_op`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskDesc {
    /// The task's pid.
    pub pid: u32,
    /// The CPU it is pinned to.
    pub cpu: u32,
    /// NUL-padded, like `task_struct::comm`.
    pub comm: [u8; TASK_COMM_LEN],
    /// Index of its first op in the program's ops.
    pub first_op: u32,
    /// Number of its ops.
    pub nr_ops: u32,
    /// A [`Policy`].
    pub policy: u32,
    /// 1..99 for [`Policy::Fifo`].
    pub rt_priority: u32,
}

/// One operation a task performs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct OpDesc {
    /// An [`OpKind`].
    pub kind: u32,
    /// Zero.
    pub _pad: u32,
    /// Arguments, as the [`OpKind`] says; unused ones are zero.
    pub args: [u64; 4],
}

/// How many locks a scenario may declare (`lab_locks` in the guest).
pub const MAX_LOCKS: usize = 16;

contract_enum! {
    /// What an op does: [`OpDesc::kind`].
    pub enum OpKind: u32 {
        /// Read a u64 from kernel virtual address `args[0]`.
        Read = 1,
        /// Write `args[1]` to kernel virtual address `args[0]`.
        Write = 2,
        /// Make the CPU triple-fault (load an empty IDT and raise an exception).
        TripleFault = 3,
        /// Issue hypercall `args[0]` with arguments `args[1..4]` exactly as given (tests the
        /// host's validation of garbage).
        RawHypercall = 4,
        /// Print `args[0]` lines of filler through printk (console throughput).
        Printk = 5,
        /// Read a u64 at `args[0]` with RBP set to `args[1]` (a garbage frame-pointer chain).
        ReadWithBadFp = 6,
        /// Loop forever in `hog_thread`: `args[0]` = a [`HogMode`].
        Hog = 7,
        /// `msleep(args[0])`.
        SleepMs = 8,
        /// Enter user mode and call `setsid()` then `exit()` as system calls (the task ends).
        Setsid = 9,
        /// `perf_event_open` of an LBR event on this task.
        PerfEventOpenLbr = 10,
        /// Load `timer_mod` as `args[0]` = a [`ModuleVariant`].
        ModuleLoad = 11,
        /// Unload `timer_mod`.
        ModuleUnload = 12,
        /// With interrupts off, `kmem_cache_alloc` from a fresh cache with `args[0]` = a
        /// [`Gfp`].
        KmallocIrqsOff = 13,
        /// Busy for `args[0]` virtual milliseconds (as the CPU is: preemptible or not,
        /// interrupts on or off); `u64::MAX`: forever.
        BusyMs = 14,
        /// Take scenario lock `args[0]` (below [`MAX_LOCKS`]) as `args[1]` = a [`LockMode`]
        /// says.
        Lock = 15,
        /// Release scenario lock `args[0]` the way `args[1]` (a [`LockMode`]) says it was
        /// taken.
        Unlock = 16,
        /// `local_irq_disable()`.
        IrqDisable = 17,
        /// `local_irq_enable()`.
        IrqEnable = 18,
        /// `preempt_disable()`.
        PreemptDisable = 19,
        /// `preempt_enable()`.
        PreemptEnable = 20,
        /// `kmem_cache_alloc` in the current context with `args[0]` = a [`Gfp`].
        Kmalloc = 21,
        /// Raise HI_SOFTIRQ (its handler counts and logs).
        RaiseSoftirq = 22,
        /// Arm a timer on this CPU firing in `args[0]` virtual milliseconds.
        ArmTimer = 23,
        /// Drop to user mode (ring 3) and spin there forever, yielding like every guest spin
        /// loop (the TSS I/O bitmap opens only the hypercall port to ring 3).
        UserBusyLoop = 24,
        /// Loop in ring 0 without ever yielding to the host (tests the VMM's stall kick).
        SpinWithoutYielding = 25,
    }
}

contract_enum! {
    /// How [`OpKind::Lock`] takes and [`OpKind::Unlock`] releases a lock (`args[1]`).
    pub enum LockMode: u64 {
        /// `spin_lock` / `spin_unlock`.
        Plain = 0,
        /// `spin_lock_irq` / `spin_unlock_irq`.
        Irq = 1,
        /// `spin_lock_irqsave` / `spin_unlock_irqrestore`.
        Irqsave = 2,
    }
}

contract_enum! {
    /// How `hog_thread` hogs its CPU ([`OpKind::Hog`], `args[0]`).
    pub enum HogMode: u64 {
        /// With preemption off (interrupts on): a soft lockup.
        PreemptOff = 0,
        /// Holding a lock taken with `spin_lock_irqsave` (interrupts off too): a hard lockup.
        SpinLockIrqsave = 1,
    }
}

contract_enum! {
    /// How `timer_mod` gets its timer wrong ([`OpKind::ModuleLoad`], `args[0]`): seed 002's
    /// three causes, and the correct module.
    pub enum ModuleVariant: u64 {
        /// Exit deletes the timer with `del_timer_sync`.
        Correct = 0,
        /// Exit forgets `del_timer`.
        TimerNeverDeleted = 1,
        /// Exit deletes the timer, then a late path re-adds it before the memory goes.
        TimerReadded = 2,
        /// Init arms the timer, a later init step fails, and the error path does not roll it
        /// back.
        InitFailed = 3,
    }
}

contract_enum! {
    /// A task's scheduling policy ([`TaskDesc::policy`]), with Linux's values.
    pub enum Policy: u32 {
        /// `SCHED_NORMAL`.
        Normal = 0,
        /// `SCHED_FIFO`, at [`TaskDesc::rt_priority`].
        Fifo = 1,
    }
}

contract_enum! {
    /// The allocation flags of [`OpKind::Kmalloc`] and [`OpKind::KmallocIrqsOff`] (`args[0]`).
    pub enum Gfp: u64 {
        /// `GFP_KERNEL`: may block (`allocate_slab` enables interrupts around the page
        /// allocation).
        Kernel = 0,
        /// `GFP_ATOMIC`: never blocks.
        Atomic = 1,
    }
}

/// The raw [`OpDesc::kind`] values and argument values, as constants (the same numbers as
/// [`OpKind`], [`HogMode`] and [`LockMode`]).
pub mod op {
    use super::{HogMode, LockMode, OpKind};

    /// [`OpKind::Read`].
    pub const READ: u32 = OpKind::Read as u32;
    /// [`OpKind::Write`].
    pub const WRITE: u32 = OpKind::Write as u32;
    /// [`OpKind::TripleFault`].
    pub const TRIPLE_FAULT: u32 = OpKind::TripleFault as u32;
    /// [`OpKind::RawHypercall`].
    pub const RAW_HYPERCALL: u32 = OpKind::RawHypercall as u32;
    /// [`OpKind::Printk`].
    pub const PRINTK: u32 = OpKind::Printk as u32;
    /// [`OpKind::ReadWithBadFp`].
    pub const READ_WITH_BAD_FP: u32 = OpKind::ReadWithBadFp as u32;
    /// [`OpKind::Hog`].
    pub const HOG: u32 = OpKind::Hog as u32;
    /// [`HogMode::PreemptOff`].
    pub const HOG_PREEMPT_OFF: u64 = HogMode::PreemptOff as u64;
    /// [`HogMode::SpinLockIrqsave`].
    pub const HOG_SPIN_LOCK_IRQSAVE: u64 = HogMode::SpinLockIrqsave as u64;
    /// [`OpKind::SleepMs`].
    pub const SLEEP_MS: u32 = OpKind::SleepMs as u32;
    /// [`OpKind::Setsid`].
    pub const SETSID: u32 = OpKind::Setsid as u32;
    /// [`OpKind::PerfEventOpenLbr`].
    pub const PERF_EVENT_OPEN_LBR: u32 = OpKind::PerfEventOpenLbr as u32;
    /// [`OpKind::ModuleLoad`].
    pub const MODULE_LOAD: u32 = OpKind::ModuleLoad as u32;
    /// [`OpKind::ModuleUnload`].
    pub const MODULE_UNLOAD: u32 = OpKind::ModuleUnload as u32;
    /// [`OpKind::KmallocIrqsOff`].
    pub const KMALLOC_IRQS_OFF: u32 = OpKind::KmallocIrqsOff as u32;
    /// [`OpKind::BusyMs`].
    pub const BUSY_MS: u32 = OpKind::BusyMs as u32;
    /// [`OpKind::Lock`].
    pub const LOCK: u32 = OpKind::Lock as u32;
    /// [`OpKind::Unlock`].
    pub const UNLOCK: u32 = OpKind::Unlock as u32;
    /// [`LockMode::Plain`].
    pub const LOCK_PLAIN: u64 = LockMode::Plain as u64;
    /// [`LockMode::Irq`].
    pub const LOCK_IRQ: u64 = LockMode::Irq as u64;
    /// [`LockMode::Irqsave`].
    pub const LOCK_IRQSAVE: u64 = LockMode::Irqsave as u64;
    /// [`OpKind::IrqDisable`].
    pub const IRQ_DISABLE: u32 = OpKind::IrqDisable as u32;
    /// [`OpKind::IrqEnable`].
    pub const IRQ_ENABLE: u32 = OpKind::IrqEnable as u32;
    /// [`OpKind::PreemptDisable`].
    pub const PREEMPT_DISABLE: u32 = OpKind::PreemptDisable as u32;
    /// [`OpKind::PreemptEnable`].
    pub const PREEMPT_ENABLE: u32 = OpKind::PreemptEnable as u32;
    /// [`OpKind::Kmalloc`].
    pub const KMALLOC: u32 = OpKind::Kmalloc as u32;
    /// [`OpKind::RaiseSoftirq`].
    pub const RAISE_SOFTIRQ: u32 = OpKind::RaiseSoftirq as u32;
    /// [`OpKind::ArmTimer`].
    pub const ARM_TIMER: u32 = OpKind::ArmTimer as u32;
    /// [`OpKind::UserBusyLoop`].
    pub const USER_BUSY_LOOP: u32 = OpKind::UserBusyLoop as u32;
    /// [`OpKind::SpinWithoutYielding`].
    pub const SPIN_WITHOUT_YIELDING: u32 = OpKind::SpinWithoutYielding as u32;
    /// How many locks a scenario may declare ([`MAX_LOCKS`](super::MAX_LOCKS)).
    pub const MAX_LOCKS: usize = super::MAX_LOCKS;
}
