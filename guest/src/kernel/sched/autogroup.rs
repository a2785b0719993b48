//! Autogroups (Linux's `kernel/sched/autogroup.c`): `setsid()` gives the new session its own
//! task group, which has to be brought online on every CPU.
use core::sync::atomic::{AtomicU32, Ordering};

use lockvmm_abi::NR_CPUS;

use super::fair::online_fair_sched_group;

/// A task group (only what onlining touches).
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct task_group {
    pub id: u32,
    pub se_attached: [bool; NR_CPUS],
}

/// The Rust-style name of `task_group`.
pub type TaskGroup = task_group;

const MAX_GROUPS: usize = 8;
#[unsafe(no_mangle)]
pub static mut task_groups: [TaskGroup; MAX_GROUPS] = [const {
    TaskGroup {
        id: 0,
        se_attached: [false; NR_CPUS],
    }
}; MAX_GROUPS];
static NEXT_GROUP: AtomicU32 = AtomicU32::new(0);

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn sched_autogroup_create_attach() {
    let i = NEXT_GROUP.fetch_add(1, Ordering::Relaxed) as usize % MAX_GROUPS;
    // SAFETY: each group slot is handed out to one caller at a time (bounded lab use).
    let tg = unsafe { &mut (*core::ptr::addr_of_mut!(task_groups))[i] };
    tg.id = i as u32 + 1;
    keep_frame!(sched_online_group(tg));
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn sched_online_group(tg: &mut TaskGroup) {
    keep_frame!(online_fair_sched_group(tg));
}
