//! Loadable modules (Linux's `kernel/module.c`), reduced to one built-in module, `timer_mod`,
//! whose data lives in module memory mapped with 4 KiB pages: unloading unmaps it, so a timer
//! left behind points into nothing. The unload variants are seed 002's three causes, plus the
//! correct module.
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use lockvmm_abi::hook::Hook;
use lockvmm_abi::program::ModuleVariant;

use crate::arch::x86::lockvmm;
use crate::kernel::time::timer::{
    TimerList, add_timer, del_timer, del_timer_sync, mod_timer, timer_setup,
};
use crate::kernel::time::{HZ, jiffies};
use crate::mm::vmalloc::{module_alloc, module_memfree};

const MODULE_PAGES: u64 = 2;
/// Where the module's `struct timer_list` sits in its memory (its .data).
const TIMER_OFFSET: u64 = 0x3b0;

/// The loaded module: base address of its memory (0 when none) and its variant (how it gets
/// its timer wrong, a `ModuleVariant`).
#[unsafe(no_mangle)]
pub static timer_mod_base: AtomicU64 = AtomicU64::new(0);
static VARIANT: AtomicU64 = AtomicU64::new(0);
static LOADED: AtomicU32 = AtomicU32::new(0);

/// The variant `load_module` was given.
fn variant() -> ModuleVariant {
    let raw = VARIANT.load(Ordering::Relaxed);
    match ModuleVariant::from_raw(raw) {
        Some(v) => v,
        None => corrupt_variant(raw),
    }
}

/// Only `load_module` stores the variant, from a `ModuleVariant`. Out of line, so that the
/// module's functions keep their code and frames small.
#[cold]
#[inline(never)]
fn corrupt_variant(raw: u64) -> ! {
    panic!("timer_mod: variant {} was never stored", raw)
}

fn timer_of(base: u64) -> &'static mut TimerList {
    // SAFETY: inside the module's mapped memory, aligned, owned by the module.
    unsafe { &mut *((base + TIMER_OFFSET) as *mut TimerList) }
}

/// Lists loaded modules (`print_modules`).
pub fn for_each_module(mut f: impl FnMut(&str)) {
    if LOADED.load(Ordering::Relaxed) != 0 {
        f("timer_mod(OE)");
    }
}

/// The module's timer callback: re-arms itself every second. It reports its entry to the host
/// (`timer_fn`), the choice point where `lockvmm explore` holds a running callback while
/// another CPU unloads the module.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn timer_mod_fn(t: &mut TimerList) {
    lockvmm::hook(Hook::TimerFn, t as *mut TimerList as u64);
    mod_timer(t, jiffies() + HZ);
}

/// `init_module` for timer_mod; returns 0 or -errno.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn timer_mod_init(base: u64) -> i32 {
    let t = timer_of(base);
    timer_setup(t, timer_mod_fn);
    t.expires = jiffies() + HZ;
    add_timer(t);
    if variant() == ModuleVariant::InitFailed {
        return -12; // -ENOMEM from "step B"; the timer is left armed
    }
    0
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn timer_mod_exit(base: u64) {
    let t = timer_of(base);
    match variant() {
        ModuleVariant::Correct => {
            del_timer_sync(t);
        }
        ModuleVariant::TimerReadded => {
            del_timer(t);
            // A late softirq or interrupt of the module re-arms it after the delete.
            mod_timer(t, jiffies() + HZ);
        }
        ModuleVariant::TimerNeverDeleted => {}
        // Linux's classic: not pending is not "not running"; a callback running on another
        // CPU re-arms the timer, or touches it after the free.
        ModuleVariant::DelTimerWithoutSync => {
            del_timer(t);
        }
        // Init failed, so the module never loaded and is never unloaded.
        ModuleVariant::InitFailed => {}
    }
}

/// `load_module` + `do_init_module`; returns the init result.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn load_module(variant: ModuleVariant) -> i32 {
    VARIANT.store(variant.raw(), Ordering::Relaxed);
    let base = module_alloc(MODULE_PAGES);
    if base == 0 {
        return -12;
    }
    let ret = timer_mod_init(base);
    if ret != 0 {
        // The loader frees the failed module's memory; its armed timer stays queued.
        module_memfree(base, MODULE_PAGES);
        lockvmm::hook(Hook::ModuleLoad, ret as u64);
        return ret;
    }
    timer_mod_base.store(base, Ordering::Relaxed);
    LOADED.store(1, Ordering::Relaxed);
    lockvmm::hook(Hook::ModuleLoad, 0);
    0
}

/// `delete_module`: run exit, then free (unmap) the module's memory.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn delete_module() -> i32 {
    let base = timer_mod_base.swap(0, Ordering::Relaxed);
    if base == 0 {
        return -2; // -ENOENT
    }
    timer_mod_exit(base);
    lockvmm::hook(Hook::ModuleGoing, base);
    LOADED.store(0, Ordering::Relaxed);
    module_memfree(base, MODULE_PAGES);
    lockvmm::hook(Hook::ModuleUnload, 0);
    0
}
