//! GFP flags (Linux's `include/linux/gfp.h`).
pub type GfpT = u32;

pub const __GFP_HIGH: GfpT = 0x20;
pub const __GFP_IO: GfpT = 0x40;
pub const __GFP_FS: GfpT = 0x80;
pub const __GFP_ZERO: GfpT = 0x100;
pub const __GFP_DIRECT_RECLAIM: GfpT = 0x400;
pub const __GFP_KSWAPD_RECLAIM: GfpT = 0x800;
pub const __GFP_RECLAIM: GfpT = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM;

/// May sleep and reclaim.
pub const GFP_KERNEL: GfpT = __GFP_RECLAIM | __GFP_IO | __GFP_FS;
/// Must not sleep.
pub const GFP_ATOMIC: GfpT = __GFP_HIGH | __GFP_KSWAPD_RECLAIM;

/// Whether an allocation with `gfp` may block (and so may run with interrupts enabled).
#[inline(always)]
pub fn gfpflags_allow_blocking(gfp: GfpT) -> bool {
    gfp & __GFP_DIRECT_RECLAIM != 0
}
