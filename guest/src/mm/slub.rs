//! The SLUB allocator (Linux's `mm/slub.c`), with its call chain and the detail the first seed
//! turns on: `allocate_slab` enables interrupts around the page allocation when the GFP flags
//! allow blocking, whatever the caller's interrupt state was.
use core::sync::atomic::{AtomicU32, Ordering};

use lockvmm_abi::hook::Hook;

use super::gfp::{GfpT, gfpflags_allow_blocking};
use super::page_alloc::{PAGE_SIZE, alloc_pages};
use crate::arch::x86::irqflags::{
    local_irq_disable, local_irq_enable, local_irq_restore, local_irq_save,
};
use crate::arch::x86::lockvmm;

/// `struct kmem_cache`.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct kmem_cache {
    pub name: [u8; 16],
    pub size: u32,
    pub order: u32,
    /// Free objects (each links to the next through its first word).
    pub freelist: u64,
    pub nr_slabs: u32,
}

/// The Rust-style name of `kmem_cache`.
pub type KmemCache = kmem_cache;

const MAX_CACHES: usize = 16;
#[unsafe(no_mangle)]
pub static mut kmem_caches: [KmemCache; MAX_CACHES] = [const {
    KmemCache {
        name: [0; 16],
        size: 0,
        order: 0,
        freelist: 0,
        nr_slabs: 0,
    }
}; MAX_CACHES];
static NR_CACHES: AtomicU32 = AtomicU32::new(0);

pub fn kmem_cache_create(name: &[u8], size: u32) -> *mut KmemCache {
    let i = NR_CACHES.fetch_add(1, Ordering::Relaxed) as usize;
    assert!(i < MAX_CACHES, "kmem_cache_create: too many caches");
    // SAFETY: slot `i` is handed out once.
    let s = unsafe { &mut (*core::ptr::addr_of_mut!(kmem_caches))[i] };
    let n = name.len().min(15);
    s.name[..n].copy_from_slice(&name[..n]);
    s.size = size.next_multiple_of(8);
    s.order = if s.size as u64 > PAGE_SIZE / 4 { 1 } else { 0 };
    s as *mut KmemCache
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn kmem_cache_alloc(s: &mut KmemCache, gfpflags: GfpT) -> u64 {
    keep_frame!(slab_alloc(s, gfpflags))
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn slab_alloc(s: &mut KmemCache, gfpflags: GfpT) -> u64 {
    keep_frame!(slab_alloc_node(s, gfpflags))
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn slab_alloc_node(s: &mut KmemCache, gfpflags: GfpT) -> u64 {
    slab_pre_alloc_hook(gfpflags);
    let flags = local_irq_save();
    let object = if s.freelist != 0 {
        take(s)
    } else {
        __slab_alloc(s, gfpflags)
    };
    local_irq_restore(flags);
    object
}

/// `slab_pre_alloc_hook` → `might_alloc(flags)`: an allocation that may block may sleep.
#[inline(always)]
fn slab_pre_alloc_hook(flags: GfpT) {
    crate::kernel::sched::might_sleep::might_sleep_if(gfpflags_allow_blocking(flags));
}

fn take(s: &mut KmemCache) -> u64 {
    let object = s.freelist;
    // SAFETY: a free object's first word links to the next one.
    s.freelist = unsafe { *(object as *const u64) };
    object
}

/// The slow path, entered with interrupts disabled.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn __slab_alloc(s: &mut KmemCache, gfpflags: GfpT) -> u64 {
    keep_frame!(___slab_alloc(s, gfpflags))
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn ___slab_alloc(s: &mut KmemCache, gfpflags: GfpT) -> u64 {
    if !new_slab(s, gfpflags) {
        return 0;
    }
    take(s)
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn new_slab(s: &mut KmemCache, flags: GfpT) -> bool {
    keep_frame!(allocate_slab(s, flags))
}

/// Linux:
/// ```c
/// if (gfpflags_allow_blocking(flags))
///         local_irq_enable();
/// ...
/// if (gfpflags_allow_blocking(flags))
///         local_irq_disable();
/// ```
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn allocate_slab(s: &mut KmemCache, flags: GfpT) -> bool {
    if gfpflags_allow_blocking(flags) {
        local_irq_enable();
    }
    let page = alloc_slab_page(s, flags);
    if gfpflags_allow_blocking(flags) {
        local_irq_disable();
    }
    if page == 0 {
        return false;
    }
    let bytes = PAGE_SIZE << s.order;
    let n = bytes / u64::from(s.size);
    for i in (0..n).rev() {
        let object = page + i * u64::from(s.size);
        // SAFETY: the objects lie in the page we just got.
        unsafe { *(object as *mut u64) = s.freelist };
        s.freelist = object;
    }
    s.nr_slabs += 1;
    true
}

/// Gets the slab's pages. The `allocate_slab` hook lets the host see (and act on) the CPU's
/// state right here, between the interrupt enable and disable.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn alloc_slab_page(s: &mut KmemCache, flags: GfpT) -> u64 {
    lockvmm::hook(Hook::AllocateSlab, u64::from(flags));
    keep_frame!(alloc_pages(flags, s.order))
}
