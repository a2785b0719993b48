//! The scenario program the host writes at [`PROGRAM_PADDR`](crate::PROGRAM_PADDR): a
//! [`ProgramHeader`], `nr_tasks` [`TaskDesc`], `nr_handlers` [`HandlerDesc`], `nr_locks`
//! [`LockDesc`], then `nr_ops` [`OpDesc`], and the enums of their fields.
//!
//! Each op's meaning and arguments are documented on its [`OpKind`].

use crate::task::TASK_COMM_LEN;

/// Header of the scenario program: `nr_tasks` [`TaskDesc`] follow, then `nr_handlers`
/// [`HandlerDesc`], `nr_locks` [`LockDesc`], and `nr_ops` [`OpDesc`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ProgramHeader {
    /// Number of [`TaskDesc`] after the header.
    pub nr_tasks: u32,
    /// Number of [`OpDesc`] after the locks.
    pub nr_ops: u32,
    /// [`PROGRAM_POWER_OFF_WHEN_DONE`], …
    pub flags: u32,
    /// Number of [`HandlerDesc`] after the tasks (at most [`MAX_HANDLERS`]).
    pub nr_handlers: u32,
    /// Number of [`LockDesc`] after the handlers (at most [`MAX_LOCKS`]).
    pub nr_locks: u32,
    /// Zero.
    pub _pad: u32,
}

/// One interrupt-context handler of the scenario: `nr_ops` ops from `first_op`, run in the
/// context its [`HandlerKind`] says.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HandlerDesc {
    /// A [`HandlerKind`].
    pub kind: u32,
    /// Only on this CPU ([`ANY_CPU`]: on any).
    pub cpu: u32,
    /// Index of its first op in the program's ops.
    pub first_op: u32,
    /// Number of its ops.
    pub nr_ops: u32,
    /// [`HANDLER_ON_TICK`], …
    pub flags: u32,
    /// Zero.
    pub _pad: u32,
}

/// [`HandlerDesc::cpu`]: the handler runs on whichever CPU takes its event.
pub const ANY_CPU: u32 = u32::MAX;
/// [`HandlerDesc::flags`]: a hardirq handler that also runs from every timer tick (in
/// `local_apic_timer_interrupt`, hardirq context) on its CPU.
pub const HANDLER_ON_TICK: u32 = 1;
/// How many handlers a scenario may declare.
pub const MAX_HANDLERS: usize = 32;

/// One lock a scenario names: a lab lock, or a kernel lock it aliases.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct LockDesc {
    /// The kernel virtual address of a kernel `raw_spinlock_t` the scenario aliases (e.g.
    /// `runqueues[3].__lock`); 0: the lab's own lock of the same index (`lab_locks[i]`).
    pub addr: u64,
    /// A [`LockKind`]: which of the lab's lock arrays index `i` refers to.
    pub kind: u32,
    /// A semaphore's initial count.
    pub count: u32,
    /// The scenario's name for the lock, NUL-padded (truncated to [`LOCK_NAME_LEN`]` - 1`
    /// bytes): lockdep's class name for the lab's own locks.
    pub name: [u8; LOCK_NAME_LEN],
}

/// Bytes of [`LockDesc::name`].
pub const LOCK_NAME_LEN: usize = 24;

contract_enum! {
    /// What a scenario lock is ([`LockDesc::kind`]).
    pub enum LockKind: u32 {
        /// A `raw_spinlock_t` (`lab_locks[i]`, or the kernel lock at `addr`).
        Spinlock = 0,
        /// A `struct mutex` (`lab_mutexes[i]`): `lock`/`unlock` sleep and wake.
        Mutex = 1,
        /// A `struct semaphore` (`lab_semaphores[i]`): `lock` is `down`, `unlock` is `up`.
        Semaphore = 2,
        /// A queued `rwlock_t` (`lab_rwlocks[i]`): `read_lock`/`write_lock` and their unlocks.
        Rwlock = 3,
    }
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
    /// Virtual nanoseconds from boot before the task starts its ops (0: at once).
    pub start_ns: u64,
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
        /// Raise a softirq on this CPU: `args[0]` = 0 for HI_SOFTIRQ (its handler counts and
        /// logs), or handler index + 1 for a [`HandlerKind::Softirq`] handler.
        RaiseSoftirq = 22,
        /// Arm a timer on this CPU firing in `args[0]` virtual milliseconds; `args[1]` = 0 to
        /// log, or handler index + 1 for a [`HandlerKind::Timer`] handler as its callback.
        ArmTimer = 23,
        /// Drop to user mode (ring 3) and spin there forever, yielding like every guest spin
        /// loop (the TSS I/O bitmap opens only the hypercall port to ring 3).
        UserBusyLoop = 24,
        /// Loop in ring 0 without ever yielding to the host (tests the VMM's stall kick).
        SpinWithoutYielding = 25,
        /// Run the next `args[1]` ops `args[0]` times (a loop; bodies nest).
        Repeat = 26,
        /// Send CPU `args[0]` the vector of [`HandlerKind::Hardirq`] handler `args[1]`.
        SendIpi = 27,
        /// `smp_call_function_single(args[0], handler args[1], wait = args[2] != 0)`: the
        /// target runs the handler's ops in hardirq context from
        /// [`CALL_FUNCTION_SINGLE_VECTOR`](crate::vector::CALL_FUNCTION_SINGLE_VECTOR); with
        /// `wait`, the caller spins in `csd_lock_wait` until it is done.
        SmpCallFunctionSingle = 28,
        /// Send CPU `args[0]` an NMI; its [`HandlerKind::Nmi`] handlers run.
        SendNmi = 29,
        /// `local_bh_disable()`.
        LocalBhDisable = 30,
        /// `local_bh_enable()` (runs pending softirqs).
        LocalBhEnable = 31,
        /// `spin_trylock` of lock `args[0]` as `args[1]` (a [`LockMode`]) says; logs a failure.
        Trylock = 32,
        /// `cond_resched()`.
        CondResched = 33,
        /// `touch_softlockup_watchdog()`.
        TouchSoftlockupWatchdog = 34,
        /// `touch_nmi_watchdog()`.
        TouchNmiWatchdog = 35,
        /// Report [`Hook::Mark`](crate::hook::Hook::Mark) with label `args[0]`.
        Mark = 36,
        /// `read_lock` of rwlock `args[0]` as `args[1]` (a [`LockMode`]) says.
        ReadLock = 37,
        /// `read_unlock` of rwlock `args[0]` as `args[1]` says it was taken.
        ReadUnlock = 38,
        /// `write_lock` of rwlock `args[0]` as `args[1]` says.
        WriteLock = 39,
        /// `write_unlock` of rwlock `args[0]` as `args[1]` says it was taken.
        WriteUnlock = 40,
    }
}

contract_enum! {
    /// The context a scenario handler's ops run in ([`HandlerDesc::kind`]).
    pub enum HandlerKind: u32 {
        /// A device or IPI interrupt: the handler's own vector
        /// ([`lab_vector`](crate::vector::lab_vector)), or the tick with [`HANDLER_ON_TICK`].
        Hardirq = 0,
        /// A softirq a task or handler raises ([`OpKind::RaiseSoftirq`]).
        Softirq = 1,
        /// A `timer_list` callback ([`OpKind::ArmTimer`]), run by `run_timer_softirq`.
        Timer = 2,
        /// An NMI handler: runs on NMIs no other handler claims (a host `nmi` action,
        /// [`OpKind::SendNmi`]).
        Nmi = 3,
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
        /// `spin_lock_bh` / `spin_unlock_bh`: softirqs off on this CPU while held.
        Bh = 3,
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
        /// Exit deletes the timer, then a late path re-adds it before the memory goes: the
        /// module's tasklet, scheduled by its device's interrupt, from softirq context.
        TimerReadded = 2,
        /// Init arms the timer, a later init step fails, and the error path does not roll it
        /// back.
        InitFailed = 3,
        /// Exit deletes the timer with plain `del_timer`: a callback already running on
        /// another CPU re-arms it after the delete, or runs on after the memory is freed.
        DelTimerWithoutSync = 4,
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
