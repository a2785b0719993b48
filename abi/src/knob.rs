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

contract_enum! {
    /// The Linux version whose behaviour and formats the guest replays:
    /// [`BootInfo::kernel_version`](crate::BootInfo). Each seed comes from one generation
    /// (seed 002 a 3.10 vmcore, seed 001 a 4.4 console, seed 000 a 5.x/6.x vmcore, seed 003
    /// the 2.6 → 3.10 change of thresholds); the version decides message prefixes and
    /// formats, the soft-lockup timing rule, the default thresholds and the spinlock.
    pub enum KernelVersion: u32 {
        /// 6.6 (the default): `watchdog: BUG: …`, `watchdog_report_ts`, qspinlocks,
        /// `<TASK>`/`<IRQ>`/`<NMI>` markers in a Call Trace.
        V6_6 = 0,
        /// 4.4 (Ubuntu 16.04, seed 001): `NMI watchdog: BUG: …`, the `touch_ts == 0` rule,
        /// qspinlocks, a `Stack:` dump before the Call Trace.
        V4_4 = 1,
        /// 3.10 (RHEL 7, seed 002): ticket spinlocks, the `touch_ts == 0` rule.
        V3_10 = 2,
        /// 2.6.32 (seed 003): one 60 s soft threshold (`watchdog_thresh` was the soft one).
        V2_6 = 3,
    }
}

impl KernelVersion {
    /// The release the guest announces (`uname -r`; `Linux version <release>`).
    pub const fn release(self) -> &'static str {
        match self {
            KernelVersion::V6_6 => "6.6.0-lockvmm",
            KernelVersion::V4_4 => "4.4.0-lockvmm",
            KernelVersion::V3_10 => "3.10.0-lockvmm",
            KernelVersion::V2_6 => "2.6.32-lockvmm",
        }
    }

    /// The version as a scenario writes it (`[machine] kernel = "4.4"`).
    pub const fn name(self) -> &'static str {
        match self {
            KernelVersion::V6_6 => "6.6",
            KernelVersion::V4_4 => "4.4",
            KernelVersion::V3_10 => "3.10",
            KernelVersion::V2_6 => "2.6",
        }
    }

    /// Parses [`name`](Self::name)'s spelling.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }
}
