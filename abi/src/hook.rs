//! Hook points ([`Hypercall::Hook`](crate::Hypercall::Hook)): named places in the guest that
//! report to the host, which traces them and lets a scenario act on them.

contract_enum! {
    /// A hook point: `a0` of [`Hypercall::Hook`](crate::Hypercall::Hook).
    pub enum Hook: u64 {
        /// `allocate_slab` is getting its pages (between its interrupt enable and disable when
        /// the GFP flags allow blocking); arg = gfp.
        AllocateSlab = 1,
        /// A lab task started; arg = pid.
        TaskStart = 2,
        /// `intel_pmu_lbr_add` was entered (seed 000's path, from `finish_task_switch` when an
        /// LBR event is scheduled in); arg = the LBR allocation mode.
        LbrAdd = 3,
        /// `load_module` finished; arg = the init result (0: loaded).
        ModuleLoad = 4,
        /// `delete_module` finished (the module's memory is unmapped); arg = 0.
        ModuleUnload = 5,
        /// A task's `mark` op; arg = its label's index.
        Mark = 6,
        /// A scenario lock was taken; arg = its index.
        LockAcquired = 7,
        /// A scenario lock was released; arg = its index.
        LockReleased = 8,
        /// A CPU is about to enable interrupts while it holds spinlocks (armed by
        /// `BootInfo::irq_enable_hook`); arg = how many it holds.
        IrqEnableLocked = 9,
        /// A CPU found a spinlock held and is about to wait for it (`lock_contended`, armed by
        /// `instrument::LOCK_CONTENDED_HOOK`): `lockvmm explore`'s ordering choice point;
        /// arg = the lock's address.
        LockContended = 10,
        /// Lockdep or `might_sleep` reported a bug; arg = the guest address of its
        /// [`SplatRecord`](crate::lockdep::SplatRecord).
        LockdepSplat = 11,
        /// `timer_mod`'s timer callback was entered (the timer is detached and its base's
        /// `running_timer`): `lockvmm explore`'s choice point inside the callback; arg = the
        /// timer's address.
        TimerFn = 12,
        /// `delete_module` ran the module's exit and has not freed its memory yet (Linux: the
        /// `MODULE_STATE_GOING` notifiers and `free_module`'s RCU wait): `lockvmm explore`'s
        /// choice point between `del_timer` and the free; arg = the module's base address.
        ModuleGoing = 13,
    }
}

impl Hook {
    /// The name traces and scenario files use.
    pub const fn name(self) -> &'static str {
        match self {
            Self::AllocateSlab => "allocate_slab",
            Self::TaskStart => "task_start",
            Self::LbrAdd => "lbr_add",
            Self::ModuleLoad => "module_load",
            Self::ModuleUnload => "module_unload",
            Self::Mark => "mark",
            Self::LockAcquired => "lock_acquired",
            Self::LockReleased => "lock_released",
            Self::IrqEnableLocked => "irq_enable_locked",
            Self::LockContended => "lock_contended",
            Self::LockdepSplat => "lockdep_splat",
            Self::TimerFn => "timer_fn",
            Self::ModuleGoing => "module_going",
        }
    }

    /// The hook a trace or scenario names; `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.name() == name)
    }
}

/// [`Hook::AllocateSlab`] as a raw id.
pub const ALLOCATE_SLAB: u64 = Hook::AllocateSlab as u64;
/// [`Hook::TaskStart`] as a raw id.
pub const TASK_START: u64 = Hook::TaskStart as u64;

/// Name of a raw hook id, for traces and scenario files; `None` for an unknown id.
pub fn name(id: u64) -> Option<&'static str> {
    match Hook::from_raw(id) {
        Some(h) => Some(h.name()),
        None => None,
    }
}
