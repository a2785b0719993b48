//! Loadable modules (Linux's `kernel/module.c`), reduced to two:
//! - `timer_mod`, whose data lives in module memory mapped with 4 KiB pages: unloading unmaps
//!   it, so a timer left behind points into nothing. The unload variants are seed 002's three
//!   causes, plus the correct module.
//! - `hog` (seed 001, `lab/hog.rs`), whose text is loaded into module space: its bytes are
//!   linked at their load address (guest/linker.ld) and copied into fresh module pages when
//!   loaded, so kallsyms names its addresses `sym+off/size [hog]`.
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use lockvmm_abi::NR_CPUS;
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
/// Linux's `last_unloaded_module` (`kernel/module.c`): the lab unloads only timer_mod.
static LAST_UNLOADED_TIMER_MOD: AtomicU32 = AtomicU32::new(0);

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

/// Load order of each module (0: not loaded), for `print_modules`' newest-first order.
static TIMER_MOD_SEQ: AtomicU32 = AtomicU32::new(0);
static HOG_SEQ: AtomicU32 = AtomicU32::new(0);
static LOAD_SEQ: AtomicU32 = AtomicU32::new(0);

/// Lists loaded modules with their `module_flags` (`(OE)`: out of tree, unsigned), newest
/// first, as Linux's `modules` list (`list_add_rcu` at its head).
pub fn for_each_module(mut f: impl FnMut(&str)) {
    let timer = if LOADED.load(Ordering::Relaxed) != 0 {
        TIMER_MOD_SEQ.load(Ordering::Relaxed)
    } else {
        0
    };
    let hog = HOG_SEQ.load(Ordering::Relaxed);
    let mut mods = [(hog, "hog(OE)"), (timer, "timer_mod(OE)")];
    if timer > hog {
        mods.swap(0, 1);
    }
    for (seq, name) in mods {
        if seq != 0 {
            f(name);
        }
    }
}

unsafe extern "C" {
    /// guest/linker.ld: the hog's text, as linked (its load address) and where the image
    /// carries its bytes (a physical address).
    static __module_hog_start: u8;
    static __module_hog_end: u8;
    static __module_hog_lma: u8;
}

/// The hog's text, `[start, end)` at its load address.
pub fn hog_text() -> (u64, u64) {
    (
        core::ptr::addr_of!(__module_hog_start) as u64,
        core::ptr::addr_of!(__module_hog_end) as u64,
    )
}

/// `load_module` for `hog`: maps its pages in module space and copies its text there from
/// the image (once; later loads find it loaded). Returns whether it is loaded.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn load_hog() -> bool {
    if HOG_SEQ.load(Ordering::Acquire) != 0 {
        return true;
    }
    let (start, end) = hog_text();
    let lma = core::ptr::addr_of!(__module_hog_lma) as u64;
    let pages = (end - start).div_ceil(4096);
    if pages == 0 || crate::mm::vmalloc::module_alloc_at(start, pages) != start {
        return false;
    }
    // SAFETY: `start..end` was just mapped, fresh pages of its own; the source is the image's
    // copy of the module (inside the kernel's reserved memory, through the direct map).
    unsafe {
        core::ptr::copy_nonoverlapping(
            (lockvmm_abi::PAGE_OFFSET + lma) as *const u8,
            start as *mut u8,
            (end - start) as usize,
        );
    }
    crate::kernel::taint::add_taint(crate::kernel::taint::TAINT_OOT_MODULE);
    crate::kernel::taint::add_taint(crate::kernel::taint::TAINT_UNSIGNED_MODULE);
    HOG_SEQ.store(
        LOAD_SEQ.fetch_add(1, Ordering::Relaxed) + 1,
        Ordering::Release,
    );
    true
}

/// `print_modules()` (Linux's `kernel/module.c`, the same in 2.6.32 … 6.6): `Modules linked
/// in:` and each loaded module with its flags, at KERN_DEFAULT. `module_flags` prints the
/// module taints the version knows: O and E from 3.15 on (4.4, 6.6: `(OE)`), O alone in 3.10
/// (`TAINT_OOT_MODULE` came in 3.2, `TAINT_UNSIGNED_MODULE` in 3.15), none in 2.6.32 (only
/// P, F and C existed).
pub fn print_modules() {
    use core::fmt::Write;
    use lockvmm_abi::knob::KernelVersion;
    let flags = match crate::init::version::linux_version() {
        KernelVersion::V6_6 | KernelVersion::V4_4 => "(OE)",
        KernelVersion::V3_10 => "(O)",
        KernelVersion::V2_6 => "",
    };
    let mut line = crate::arch::x86::kernel::dumpstack::Line::new();
    let _ = write!(line, "Modules linked in:");
    for_each_module(|name| {
        let name = name.split_once('(').map_or(name, |(n, _)| n);
        let _ = write!(line, " {}{}", name, flags);
    });
    // `if (last_unloaded_module[0]) pr_cont(" [last unloaded: %s]", …)`, in every version.
    if LAST_UNLOADED_TIMER_MOD.load(Ordering::Relaxed) != 0 {
        let _ = write!(line, " [last unloaded: timer_mod]");
    }
    line.emit(crate::kernel::printk::LOGLEVEL_WARNING);
}

/// `module_address_lookup` (`kernel/module.c`): the symbol of a loaded module's text
/// containing `addr` (timer_mod has data only; the hog has text).
pub fn module_address_lookup(addr: u64) -> Option<crate::kernel::kallsyms::Symbol> {
    let (start, end) = hog_text();
    if HOG_SEQ.load(Ordering::Acquire) == 0 || !(start..end).contains(&addr) {
        return None;
    }
    crate::kernel::kallsyms::lookup_in(addr, start, end).map(|mut s| {
        s.module = Some("hog");
        s
    })
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

/// timer_mod's device (the `TimerReadded` module only): `request_irq` at init sets this to
/// its CPU + 1. Its interrupt is modelled by that CPU's tick (a device that interrupts as
/// traffic arrives); the handler schedules the module's tasklet.
static IRQ_REQUESTED: AtomicU32 = AtomicU32::new(0);
/// The module's `tasklet_struct` state: TASKLET_STATE_SCHED per CPU.
static TASKLET_SCHED: [AtomicU32; NR_CPUS] = [const { AtomicU32::new(0) }; NR_CPUS];
/// The tasklet's `data` (`tasklet_init`): the module's base.
static TASKLET_DATA: AtomicU64 = AtomicU64::new(0);
/// Set by exit before its `del_timer`.
static EXITING: AtomicU32 = AtomicU32::new(0);
/// The last re-arm by the module's tasklet, for tests and `crash`'s `rd`: its return address
/// (`_RET_IP_`: inside `tasklet_action`), `preempt_count()` then (SOFTIRQ_OFFSET: serving a
/// softirq), the jiffy, and how many re-arms came after exit's `del_timer`.
#[unsafe(no_mangle)]
pub static timer_mod_rearm_ip: AtomicU64 = AtomicU64::new(0);
#[unsafe(no_mangle)]
pub static timer_mod_rearm_preempt_count: AtomicU32 = AtomicU32::new(0);
#[unsafe(no_mangle)]
pub static timer_mod_rearm_jiffies: AtomicU64 = AtomicU64::new(0);
#[unsafe(no_mangle)]
pub static timer_mod_rearms_after_del: AtomicU32 = AtomicU32::new(0);

/// From the tick (`local_apic_timer_interrupt`): the module's device interrupt, if its IRQ
/// is requested on this CPU. One load when it is not.
#[inline(always)]
pub fn timer_mod_tick() {
    if IRQ_REQUESTED.load(Ordering::Relaxed) != 0 {
        timer_mod_interrupt();
    }
}

/// The device's interrupt handler (hardirq): defers its work to the module's tasklet
/// (`tasklet_schedule`).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn timer_mod_interrupt() {
    let cpu = crate::arch::x86::percpu::smp_processor_id();
    if IRQ_REQUESTED.load(Ordering::Relaxed) != cpu + 1 {
        return;
    }
    if TASKLET_SCHED[cpu as usize].swap(1, Ordering::Relaxed) == 0 {
        crate::kernel::softirq::raise_softirq(crate::kernel::softirq::TASKLET_SOFTIRQ);
    }
}

/// From `tasklet_action` (TASKLET_SOFTIRQ): runs the module's tasklet if it is scheduled on
/// this CPU.
#[inline(always)]
pub fn timer_mod_tasklets() {
    let cpu = crate::arch::x86::percpu::smp_processor_id() as usize;
    if TASKLET_SCHED[cpu].swap(0, Ordering::Relaxed) != 0 {
        let base = TASKLET_DATA.load(Ordering::Relaxed);
        if base != 0 {
            keep_frame!(timer_mod_tasklet_fn(base));
        }
    }
}

/// The module's tasklet: the device saw traffic, so the timer (a keepalive) is pushed a
/// second out — `mod_timer`, which re-adds a deleted timer.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn timer_mod_tasklet_fn(base: u64) {
    timer_mod_rearm_ip.store(crate::kernel::jump_label::ret_ip(), Ordering::Relaxed);
    timer_mod_rearm_preempt_count.store(
        crate::arch::x86::preempt::preempt_count(),
        Ordering::Relaxed,
    );
    timer_mod_rearm_jiffies.store(jiffies(), Ordering::Relaxed);
    if EXITING.load(Ordering::Relaxed) != 0 {
        timer_mod_rearms_after_del.fetch_add(1, Ordering::Relaxed);
    }
    keep_frame!(mod_timer(timer_of(base), jiffies() + HZ));
}

/// `init_module` for timer_mod; returns 0 or -errno.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn timer_mod_init(base: u64) -> i32 {
    let t = timer_of(base);
    timer_setup(t, timer_mod_fn);
    t.expires = jiffies() + HZ;
    add_timer(t);
    if variant() == ModuleVariant::TimerReadded {
        // tasklet_init, then request_irq: the device interrupts on this CPU from now on.
        TASKLET_DATA.store(base, Ordering::Relaxed);
        EXITING.store(0, Ordering::Relaxed);
        IRQ_REQUESTED.store(
            crate::arch::x86::percpu::smp_processor_id() + 1,
            Ordering::Relaxed,
        );
    }
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
        // The seed's second cause: the timer is deleted first, while the module's device can
        // still interrupt. Exit then waits a tick for the device to go quiet and releases its
        // interrupt, but never kills its tasklet (`tasklet_kill`): the interrupt taken during
        // the wait scheduled it, and it re-armed the timer from softirq context after the
        // delete. The fix: free_irq, tasklet_kill, then del_timer_sync.
        ModuleVariant::TimerReadded => {
            EXITING.store(1, Ordering::Relaxed);
            del_timer(t);
            keep_frame!(crate::kernel::time::timer::msleep(1000 / HZ));
            IRQ_REQUESTED.store(0, Ordering::Relaxed); // free_irq
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
    TIMER_MOD_SEQ.store(
        LOAD_SEQ.fetch_add(1, Ordering::Relaxed) + 1,
        Ordering::Relaxed,
    );
    LOADED.store(1, Ordering::Relaxed);
    // `module_flags`' O and E: an out-of-tree, unsigned module (as the seeds' modules).
    crate::kernel::taint::add_taint(crate::kernel::taint::TAINT_OOT_MODULE);
    crate::kernel::taint::add_taint(crate::kernel::taint::TAINT_UNSIGNED_MODULE);
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
    LAST_UNLOADED_TIMER_MOD.store(1, Ordering::Relaxed);
    module_memfree(base, MODULE_PAGES);
    lockvmm::hook(Hook::ModuleUnload, 0);
    0
}
