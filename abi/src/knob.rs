//! Values of the scenario's fault knobs in [`BootInfo`](crate::BootInfo).

contract_enum! {
    /// How `intel_pmu_lbr_add` gets its LBR buffer: [`BootInfo::lbr_gfp_mode`](crate::BootInfo).
    pub enum LbrGfpMode: u32 {
        /// It allocates with GFP_KERNEL (the bug in seed 000).
        GfpKernel = 0,
        /// … with GFP_ATOMIC (the seed's fix).
        GfpAtomic = 1,
        /// … not at all: the buffer is allocated at event creation (the upstream fix).
        Upstream = 2,
    }
}

/// [`LbrGfpMode::GfpKernel`] as a raw value.
pub const LBR_GFP_KERNEL: u32 = LbrGfpMode::GfpKernel as u32;
/// [`LbrGfpMode::GfpAtomic`] as a raw value.
pub const LBR_GFP_ATOMIC: u32 = LbrGfpMode::GfpAtomic as u32;
/// [`LbrGfpMode::Upstream`] as a raw value.
pub const LBR_UPSTREAM: u32 = LbrGfpMode::Upstream as u32;

/// Bits of [`BootInfo::instrument`](crate::BootInfo): the debug instrumentation a kernel
/// config would build in (Linux's `CONFIG_PROVE_LOCKING`, `CONFIG_DEBUG_ATOMIC_SLEEP`,
/// `CONFIG_FTRACE`). The guest always has the code; these bits switch it on at boot, through
/// static keys, so a kernel without them pays one load and branch per hook site.
pub mod instrument {
    /// Lockdep: lock classes, the dependency graph and irq-usage checks (`CONFIG_PROVE_LOCKING`).
    pub const LOCKDEP: u32 = 1 << 0;
    /// `might_sleep()` checks (`CONFIG_DEBUG_ATOMIC_SLEEP`).
    pub const DEBUG_ATOMIC_SLEEP: u32 = 1 << 1;
    /// The per-CPU trace ring buffer (ftrace's events).
    pub const TRACE: u32 = 1 << 2;
    /// Report every contended spinlock to the host (`Hook::LockContended`), for `lockvmm
    /// explore`'s ordering choices.
    pub const LOCK_CONTENDED_HOOK: u32 = 1 << 3;
    /// Every bit this ABI defines; the host refuses others.
    pub const ALL: u32 = LOCKDEP | DEBUG_ATOMIC_SLEEP | TRACE | LOCK_CONTENDED_HOOK;
}
