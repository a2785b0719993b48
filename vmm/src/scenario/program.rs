//! Encodes a scenario's tasks into the program the guest reads at boot
//! (`lockvmm_abi::ProgramHeader`, then the tasks, then the ops).
use lockvmm_abi::program as abi;
use lockvmm_abi::{OpDesc, ProgramHeader, TaskDesc};
use vm_memory::ByteValued;

use crate::scenario::{GfpSpec, LockMode, ModuleVariant, OpSpec, Policy, Scenario};

/// The program bytes for `scenario`.
pub fn encode(scenario: &Scenario) -> Vec<u8> {
    let mut tasks = Vec::new();
    let mut ops = Vec::new();
    for (i, t) in scenario.task.iter().enumerate() {
        let t = t.get_ref();
        let mut comm = [0u8; 16];
        let name = t.comm.get_ref().as_bytes();
        comm[..name.len().min(15)].copy_from_slice(&name[..name.len().min(15)]);
        tasks.push(TaskDesc {
            pid: t
                .pid
                .as_ref()
                .map_or(100 + i as u32, |p| *p.get_ref() as u32),
            cpu: *t.cpu.get_ref() as u32,
            comm,
            first_op: ops.len() as u32,
            nr_ops: t.ops.len() as u32,
            policy: match t.policy {
                Policy::Normal => abi::Policy::Normal,
                Policy::Fifo => abi::Policy::Fifo,
            }
            .raw(),
            rt_priority: t.rt_priority.as_ref().map_or(0, |p| *p.get_ref() as u32),
        });
        ops.extend(
            t.ops
                .iter()
                .map(|o| encode_op(o.get_ref(), |name| lock_index(scenario, name))),
        );
    }
    let flags = if scenario.run.power_off_when_done {
        lockvmm_abi::PROGRAM_POWER_OFF_WHEN_DONE
    } else {
        0
    };
    let header = ProgramHeader {
        nr_tasks: tasks.len() as u32,
        nr_ops: ops.len() as u32,
        flags,
        _pad: 0,
    };
    let mut out = header.as_slice().to_vec();
    for t in &tasks {
        out.extend_from_slice(t.as_slice());
    }
    for o in &ops {
        out.extend_from_slice(o.as_slice());
    }
    out
}

fn lock_index(s: &Scenario, name: &str) -> u64 {
    s.lock
        .iter()
        .position(|l| l.name.get_ref() == name)
        .unwrap_or(0) as u64
}

fn lock_mode(m: LockMode) -> u64 {
    match m {
        LockMode::Plain => abi::LockMode::Plain,
        LockMode::Irq => abi::LockMode::Irq,
        LockMode::Irqsave => abi::LockMode::Irqsave,
    }
    .raw()
}

fn gfp(g: GfpSpec) -> u64 {
    match g {
        GfpSpec::Kernel => abi::Gfp::Kernel,
        GfpSpec::Atomic => abi::Gfp::Atomic,
    }
    .raw()
}

fn module_variant(v: ModuleVariant) -> u64 {
    match v {
        ModuleVariant::Correct => abi::ModuleVariant::Correct,
        ModuleVariant::TimerNeverDeleted => abi::ModuleVariant::TimerNeverDeleted,
        ModuleVariant::TimerReadded => abi::ModuleVariant::TimerReadded,
        ModuleVariant::InitFailed => abi::ModuleVariant::InitFailed,
    }
    .raw()
}

fn encode_op(o: &OpSpec, lock: impl Fn(&str) -> u64) -> OpDesc {
    use abi::OpKind as K;
    let (kind, args) = match o {
        OpSpec::Read { addr } => (K::Read, [addr.0, 0, 0, 0]),
        OpSpec::Write { addr, value } => (K::Write, [addr.0, value.0, 0, 0]),
        OpSpec::TripleFault {} => (K::TripleFault, [0; 4]),
        OpSpec::SpinWithoutYielding {} => (K::SpinWithoutYielding, [0; 4]),
        OpSpec::Hypercall { nr, args } => {
            let a = |i: usize| args.get(i).map_or(0, |x| x.0);
            (K::RawHypercall, [nr.0, a(0), a(1), a(2)])
        }
        OpSpec::Printk { lines } => (K::Printk, [lines.0, 0, 0, 0]),
        OpSpec::ReadWithBadFramePointer {
            addr,
            frame_pointer,
        } => (K::ReadWithBadFp, [addr.0, frame_pointer.0, 0, 0]),
        OpSpec::Hog {} => (K::Hog, [abi::HogMode::PreemptOff.raw(), 0, 0, 0]),
        OpSpec::HogSpinLockIrqsave {} => (K::Hog, [abi::HogMode::SpinLockIrqsave.raw(), 0, 0, 0]),
        OpSpec::Sleep { ms } => (K::SleepMs, [ms.0, 0, 0, 0]),
        OpSpec::Busy { ms } => (K::BusyMs, [ms.0, 0, 0, 0]),
        OpSpec::BusyLoop {} => (K::BusyMs, [u64::MAX, 0, 0, 0]),
        OpSpec::UserBusyLoop {} => (K::UserBusyLoop, [0; 4]),
        OpSpec::Setsid {} => (K::Setsid, [0; 4]),
        OpSpec::PerfEventOpenLbr {} => (K::PerfEventOpenLbr, [0; 4]),
        OpSpec::ModuleLoad { variant } => (K::ModuleLoad, [module_variant(*variant), 0, 0, 0]),
        OpSpec::ModuleUnload {} => (K::ModuleUnload, [0; 4]),
        OpSpec::Lock { lock: l, mode } => (K::Lock, [lock(l), lock_mode(*mode), 0, 0]),
        OpSpec::Unlock { lock: l, mode } => (K::Unlock, [lock(l), lock_mode(*mode), 0, 0]),
        OpSpec::IrqDisable {} => (K::IrqDisable, [0; 4]),
        OpSpec::IrqEnable {} => (K::IrqEnable, [0; 4]),
        OpSpec::PreemptDisable {} => (K::PreemptDisable, [0; 4]),
        OpSpec::PreemptEnable {} => (K::PreemptEnable, [0; 4]),
        OpSpec::Kmalloc { gfp: g } => (K::Kmalloc, [gfp(*g), 0, 0, 0]),
        OpSpec::RaiseSoftirq {} => (K::RaiseSoftirq, [0; 4]),
        OpSpec::ArmTimer { ms } => (K::ArmTimer, [ms.0, 0, 0, 0]),
        OpSpec::KmallocIrqsOff { gfp: g } => (K::KmallocIrqsOff, [gfp(*g), 0, 0, 0]),
    };
    OpDesc {
        kind: kind.raw(),
        _pad: 0,
        args,
    }
}
