//! The page allocator (Linux's `mm/page_alloc.c`), reduced to per-order free lists over the RAM
//! above the kernel image, under the zone lock.
use core::sync::atomic::{AtomicU64, Ordering};

use lockvmm_abi::{PAGE_OFFSET, START_KERNEL_MAP};

use super::gfp::{__GFP_ZERO, GfpT};
use crate::kernel::locking::spinlock::RawSpinlock;

pub const PAGE_SIZE: u64 = 4096;
const MAX_ORDER: usize = 11;

/// `zone->lock`.
#[unsafe(no_mangle)]
pub static zone_lock: RawSpinlock = RawSpinlock::new();
static NEXT_FREE: AtomicU64 = AtomicU64::new(0);
static END: AtomicU64 = AtomicU64::new(0);
static mut FREE_LISTS: [u64; MAX_ORDER] = [0; MAX_ORDER];

unsafe extern "C" {
    static _end: u8;
}

/// Hands RAM from the end of the kernel to the end of memory to the allocator.
pub fn mem_init(mem_bytes: u64) {
    // Only the linker symbol's address is used.
    let end_virt = core::ptr::addr_of!(_end) as u64;
    let start_phys = (end_virt - START_KERNEL_MAP).next_multiple_of(2 << 20);
    NEXT_FREE.store(start_phys, Ordering::Relaxed);
    END.store(mem_bytes, Ordering::Relaxed);
}

/// Free pages left (for `Memory:` at boot).
pub fn nr_free_pages() -> u64 {
    (END.load(Ordering::Relaxed) - NEXT_FREE.load(Ordering::Relaxed)) / PAGE_SIZE
}

/// Returns the direct-map address of 2^order contiguous pages, or 0.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn __alloc_pages(gfp: GfpT, order: u32) -> u64 {
    let order = order as usize;
    if order >= MAX_ORDER {
        return 0;
    }
    let flags = zone_lock.lock_irqsave();
    // SAFETY: the free lists are only touched under `zone_lock`.
    let head = unsafe { FREE_LISTS[order] };
    let addr = if head != 0 {
        // SAFETY: a free block's first word links to the next free block.
        unsafe { FREE_LISTS[order] = *(head as *const u64) };
        head
    } else {
        let size = PAGE_SIZE << order;
        let phys = NEXT_FREE.load(Ordering::Relaxed).next_multiple_of(size);
        if phys + size > END.load(Ordering::Relaxed) {
            0
        } else {
            NEXT_FREE.store(phys + size, Ordering::Relaxed);
            PAGE_OFFSET + phys
        }
    };
    zone_lock.unlock_irqrestore(flags);
    if addr != 0 && gfp & __GFP_ZERO != 0 {
        // SAFETY: the block was just handed out to us.
        unsafe { core::ptr::write_bytes(addr as *mut u8, 0, (PAGE_SIZE << order) as usize) };
    }
    addr
}

/// Takes 2^order pages off the top of memory for a boot-time allocation that lives for good
/// (as memblock hands out memory from the top): the addresses the allocator hands out later
/// stay what they would be without it. Returns the direct-map address, or 0.
pub fn alloc_pages_top(order: u32) -> u64 {
    let size = PAGE_SIZE << order;
    let flags = zone_lock.lock_irqsave();
    let end = END.load(Ordering::Relaxed);
    let at = end.checked_sub(size).map(|a| a & !(size - 1));
    let addr = match at {
        Some(a) if a >= NEXT_FREE.load(Ordering::Relaxed) => {
            END.store(a, Ordering::Relaxed);
            PAGE_OFFSET + a
        }
        _ => 0,
    };
    zone_lock.unlock_irqrestore(flags);
    addr
}

pub fn alloc_pages(gfp: GfpT, order: u32) -> u64 {
    __alloc_pages(gfp, order)
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn __free_pages(addr: u64, order: u32) {
    let flags = zone_lock.lock_irqsave();
    // SAFETY: `addr` came from `__alloc_pages(_, order)` and is no longer used by its owner.
    unsafe {
        *(addr as *mut u64) = FREE_LISTS[order as usize];
        FREE_LISTS[order as usize] = addr;
    }
    zone_lock.unlock_irqrestore(flags);
}

/// Physical address of a direct-map address.
pub fn __pa(virt: u64) -> u64 {
    virt - PAGE_OFFSET
}
