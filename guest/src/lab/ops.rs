//! The op interpreter: a task's ops, or a handler's, in order, with `repeat` loops.
use lockvmm_abi::OpDesc;
use lockvmm_abi::hook::Hook;
use lockvmm_abi::program::{Gfp, HogMode, LockMode, ModuleVariant, OpKind};

use super::selftest::{
    lab_op_read, lab_op_read_with_frame_pointer, lab_op_spin_without_yielding, lab_op_triple_fault,
    lab_op_write,
};
use super::{gfp_flags, handlers, lab_busy, lab_kmalloc_irqs_off, locks, user};
use crate::arch::x86::lockvmm;
use crate::arch::x86::preempt::preempt_disable;

/// How deeply `repeat` bodies may nest (the host checks it too).
const MAX_NESTING: u32 = 8;

/// Runs `ops` in order; a `repeat` runs the ops of its body its number of times. Iterative
/// (a small stack of open loops) and inlined, so the caller's frame (`lab_task`, a handler)
/// calls each op directly, as the seeds' stacks show.
#[inline(always)]
pub fn run_ops(ops: &[OpDesc]) {
    // Each open loop: the index of its first body op, one past its last, and the passes left.
    let mut loops = [(0usize, 0usize, 0u64); MAX_NESTING as usize];
    let mut depth = 0;
    let mut i = 0;
    let mut end = ops.len();
    loop {
        if i >= end {
            if depth == 0 {
                return;
            }
            let (start, stop, left) = &mut loops[depth - 1];
            if *left > 1 {
                *left -= 1;
                i = *start;
                continue;
            }
            i = *stop;
            depth -= 1;
            end = if depth == 0 {
                ops.len()
            } else {
                loops[depth - 1].1
            };
            continue;
        }
        let o = &ops[i];
        if o.kind == OpKind::Repeat.raw() {
            let body_end = (i + 1).saturating_add(o.args[1] as usize).min(end);
            if o.args[0] == 0 || body_end == i + 1 || depth == MAX_NESTING as usize {
                i = body_end;
                continue;
            }
            loops[depth] = (i + 1, body_end, o.args[0]);
            depth += 1;
            i += 1;
            end = body_end;
            continue;
        }
        run_op(o);
        i += 1;
    }
}

/// Performs one op. An op the contract does not define, or an argument outside its type, is
/// reported on the console and skipped.
#[inline(always)]
fn run_op(o: &OpDesc) {
    let Some(kind) = OpKind::from_raw(o.kind) else {
        printk!("lab: unknown op {}", o.kind);
        return;
    };
    match kind {
        OpKind::Read => {
            lab_op_read(o.args[0]);
        }
        OpKind::Write => lab_op_write(o.args[0], o.args[1]),
        OpKind::TripleFault => lab_op_triple_fault(),
        OpKind::RawHypercall => {
            let ret = lockvmm::hypercall(o.args[0] as u32, o.args[1], o.args[2], o.args[3], 0);
            printk!("lab: hypercall {:#x} returned {:#x}", o.args[0], ret);
        }
        OpKind::Printk => {
            for i in 0..o.args[0] {
                printk!("lab: console line {}", i);
            }
        }
        OpKind::ReadWithBadFp => {
            lab_op_read_with_frame_pointer(o.args[0], o.args[1]);
        }
        OpKind::Hog => match HogMode::from_raw(o.args[0]) {
            Some(mode) => super::hog::insmod_hog(mode),
            None => bad_arg(kind, "hog mode", o.args[0]),
        },
        OpKind::SleepMs => crate::kernel::time::timer::msleep(o.args[0]),
        OpKind::Setsid => user::user_setsid(),
        OpKind::PerfEventOpenLbr => {
            crate::kernel::events::core::perf_event_open_lbr(crate::kernel::sched::core::current());
        }
        OpKind::ModuleLoad => match ModuleVariant::from_raw(o.args[0]) {
            Some(variant) => {
                let ret = crate::kernel::module::load_module(variant);
                if ret != 0 {
                    printk!("lab: insmod timer_mod: error {}", ret);
                }
            }
            None => bad_arg(kind, "module variant", o.args[0]),
        },
        OpKind::ModuleUnload => {
            crate::kernel::module::delete_module();
        }
        OpKind::KmallocIrqsOff => match Gfp::from_raw(o.args[0]) {
            Some(gfp) => lab_kmalloc_irqs_off(gfp),
            None => bad_arg(kind, "gfp", o.args[0]),
        },
        OpKind::BusyMs => lab_busy(o.args[0]),
        OpKind::Lock => match LockMode::from_raw(o.args[1]) {
            Some(mode) => locks::lab_lock(o.args[0], mode),
            None => bad_arg(kind, "lock mode", o.args[1]),
        },
        OpKind::Unlock => match LockMode::from_raw(o.args[1]) {
            Some(mode) => locks::lab_unlock(o.args[0], mode),
            None => bad_arg(kind, "lock mode", o.args[1]),
        },
        OpKind::IrqDisable => crate::arch::x86::irqflags::local_irq_disable(),
        OpKind::IrqEnable => crate::arch::x86::irqflags::local_irq_enable(),
        OpKind::PreemptDisable => preempt_disable(),
        OpKind::PreemptEnable => crate::arch::x86::preempt::preempt_enable(),
        OpKind::Kmalloc => match Gfp::from_raw(o.args[0]) {
            Some(gfp) => {
                let cache = crate::mm::slub::kmem_cache_create(b"lab_cache", 256);
                keep_frame!(crate::mm::slub::kmem_cache_alloc(
                    // SAFETY: `kmem_cache_create` returns a pool cache.
                    unsafe { &mut *cache },
                    gfp_flags(gfp)
                ));
            }
            None => bad_arg(kind, "gfp", o.args[0]),
        },
        OpKind::RaiseSoftirq => match o.args[0] {
            0 => crate::kernel::softirq::raise_softirq(crate::kernel::softirq::HI_SOFTIRQ),
            h => handlers::raise(h - 1),
        },
        OpKind::ArmTimer => handlers::arm_timer(o.args[0], o.args[1]),
        OpKind::UserBusyLoop => user::user_busy_loop(),
        OpKind::SpinWithoutYielding => lab_op_spin_without_yielding(),
        // Bodies are run by `run_ops`; a stray one does nothing.
        OpKind::Repeat => {}
        OpKind::SendIpi => handlers::send_ipi(o.args[0], o.args[1]),
        OpKind::SmpCallFunctionSingle => {
            handlers::smp_call_function_single(o.args[0], o.args[1], o.args[2] != 0)
        }
        OpKind::SendNmi => lockvmm::send_ipi(o.args[0] as u32, lockvmm_abi::IPI_NMI),
        OpKind::LocalBhDisable => crate::kernel::softirq::local_bh_disable(),
        OpKind::LocalBhEnable => crate::kernel::softirq::local_bh_enable(),
        OpKind::Trylock => match LockMode::from_raw(o.args[1]) {
            Some(mode) => {
                locks::lab_trylock(o.args[0], mode);
            }
            None => bad_arg(kind, "lock mode", o.args[1]),
        },
        OpKind::CondResched => crate::kernel::sched::core::_cond_resched(),
        OpKind::TouchSoftlockupWatchdog => crate::kernel::watchdog::touch_softlockup_watchdog(),
        OpKind::TouchNmiWatchdog => crate::kernel::watchdog_hld::touch_nmi_watchdog(),
        OpKind::Mark => lockvmm::hook(Hook::Mark, o.args[0]),
        OpKind::ReadLock | OpKind::WriteLock | OpKind::ReadUnlock | OpKind::WriteUnlock => {
            match LockMode::from_raw(o.args[1]) {
                Some(mode) => {
                    let write = matches!(kind, OpKind::WriteLock | OpKind::WriteUnlock);
                    if matches!(kind, OpKind::ReadLock | OpKind::WriteLock) {
                        locks::lab_rw_lock(o.args[0], write, mode);
                    } else {
                        locks::lab_rw_unlock(o.args[0], write, mode);
                    }
                }
                None => bad_arg(kind, "lock mode", o.args[1]),
            }
        }
    }
}

/// Reports an op whose argument is outside its type; the op is skipped, like an unknown op.
#[cold]
#[inline(never)]
fn bad_arg(kind: OpKind, what: &str, raw: u64) {
    printk!("lab: op {:?}: unknown {} {}", kind, what, raw);
}
