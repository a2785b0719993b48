//! CFS group scheduling bits (Linux's `kernel/sched/fair.c`).
use lockvmm_abi::NR_CPUS;

use super::autogroup::TaskGroup;
use super::core::{cpu_rq, raw_spin_rq_lock};
use super::rq_lock::rq_unlock_irq;
use crate::arch::x86::irqflags::local_irq_disable;
use crate::arch::x86::percpu::cpu_online;

/// Brings a new task group online on every CPU: takes each CPU's rq lock with interrupts off,
/// attaches the group's entity, and moves on — the loop CPU 51 was stuck in, in seed 000.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn online_fair_sched_group(tg: &mut TaskGroup) {
    for cpu in 0..NR_CPUS as u32 {
        if !cpu_online(cpu) {
            continue;
        }
        let rq = cpu_rq(cpu);
        // rq_lock_irq(rq, &rf)
        local_irq_disable();
        raw_spin_rq_lock(rq);
        tg.se_attached[cpu as usize] = true;
        rq_unlock_irq(rq);
    }
}
