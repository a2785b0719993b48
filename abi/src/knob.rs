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
