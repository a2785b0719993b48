//! Kernel mappings of single pages outside the linear maps: module memory at MODULES_VADDR
//! (Linux's `module_alloc` / `vmalloc`), with 4 KiB pages that really disappear on free, so a
//! stale pointer into freed module memory faults.
use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use lockvmm_abi::{MODULES_VADDR, PAGE_OFFSET};

use super::gfp::{__GFP_ZERO, GFP_KERNEL};
use super::page_alloc::{__free_pages, __pa, PAGE_SIZE, alloc_pages};

const PTE_PRESENT: u64 = 1;
const PTE_RW: u64 = 2;
const PTE_PSE: u64 = 1 << 7;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

static NEXT_VADDR: AtomicU64 = AtomicU64::new(MODULES_VADDR);

fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

const PTE_USER: u64 = 1 << 2;

/// The PTE slot for `va`, creating the page table if needed (user-accessible tables when
/// `user`, as the CPU checks the U bit at every level).
fn pte_slot_for(va: u64, user: bool) -> Option<&'static mut u64> {
    let flags = PTE_PRESENT | PTE_RW | if user { PTE_USER } else { 0 };
    let mut table = PAGE_OFFSET + (read_cr3() & ADDR_MASK);
    for level in [3u32, 2, 1] {
        let idx = (va >> (12 + 9 * level)) & 0x1ff;
        // SAFETY: `table` is a page-table page reached through the direct map.
        let entry = unsafe { &mut *((table + idx * 8) as *mut u64) };
        if *entry & PTE_PRESENT == 0 {
            let page = alloc_pages(GFP_KERNEL | __GFP_ZERO, 0);
            if page == 0 {
                return None;
            }
            *entry = __pa(page) | flags;
        } else if *entry & PTE_PSE != 0 {
            return None; // inside a large mapping: not ours to change
        }
        *entry |= flags;
        table = PAGE_OFFSET + (*entry & ADDR_MASK);
    }
    // SAFETY: as above, the last level.
    Some(unsafe { &mut *((table + ((va >> 12) & 0x1ff) * 8) as *mut u64) })
}

fn pte_slot(va: u64) -> Option<&'static mut u64> {
    pte_slot_for(va, false)
}

/// Maps a fresh zeroed user page at `va` (code: read-only, else writable); returns its
/// kernel (direct-map) address.
pub fn map_user_page(va: u64, writable: bool) -> Option<u64> {
    let page = alloc_pages(GFP_KERNEL | __GFP_ZERO, 0);
    let pte = pte_slot_for(va, true)?;
    if page == 0 {
        return None;
    }
    *pte = __pa(page) | PTE_PRESENT | PTE_USER | if writable { PTE_RW } else { 0 };
    Some(page)
}

/// Maps `pages` fresh zeroed pages in module space; returns their address.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn module_alloc(pages: u64) -> u64 {
    let va = NEXT_VADDR.fetch_add((pages + 1) * PAGE_SIZE, Ordering::Relaxed); // + a guard page
    if va + pages * PAGE_SIZE > lockvmm_abi::layout::PRELINKED_MODULES_VADDR {
        return 0; // the prelinked modules' area (module_alloc_at) starts here
    }
    for i in 0..pages {
        let page = alloc_pages(GFP_KERNEL | __GFP_ZERO, 0);
        let Some(pte) = pte_slot(va + i * PAGE_SIZE) else {
            return 0;
        };
        if page == 0 {
            return 0;
        }
        *pte = __pa(page) | PTE_PRESENT | PTE_RW;
    }
    va
}

/// Maps `pages` fresh zeroed pages at `va`, in the module area prelinked modules use
/// (`lockvmm_abi::layout::PRELINKED_MODULES_VADDR`, above what `module_alloc` hands out); returns
/// `va`, or 0 when out of memory or already mapped.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn module_alloc_at(va: u64, pages: u64) -> u64 {
    for i in 0..pages {
        let Some(pte) = pte_slot(va + i * PAGE_SIZE) else {
            return 0;
        };
        if *pte & PTE_PRESENT != 0 {
            return 0;
        }
        let page = alloc_pages(GFP_KERNEL | __GFP_ZERO, 0);
        if page == 0 {
            return 0;
        }
        *pte = __pa(page) | PTE_PRESENT | PTE_RW;
    }
    va
}

/// Unmaps and frees module memory (Linux's `module_memfree` → `vfree`).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn module_memfree(va: u64, pages: u64) {
    for i in 0..pages {
        let addr = va + i * PAGE_SIZE;
        if let Some(pte) = pte_slot(addr) {
            let phys = *pte & ADDR_MASK;
            *pte = 0;
            // SAFETY: invalidating the TLB entry of a page we just unmapped.
            unsafe { asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) };
            if phys != 0 {
                __free_pages(PAGE_OFFSET + phys, 0);
            }
        }
    }
}
