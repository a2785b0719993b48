//! Encodes a scenario's tasks into the program the guest reads at boot
//! (`lockvmm_abi::ProgramHeader`, then the tasks, then the ops).
use lockvmm_abi::{OpDesc, ProgramHeader, TaskDesc, op};
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
            policy: u32::from(t.policy == Policy::Fifo),
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
        LockMode::Plain => op::LOCK_PLAIN,
        LockMode::Irq => op::LOCK_IRQ,
        LockMode::Irqsave => op::LOCK_IRQSAVE,
    }
}

fn encode_op(o: &OpSpec, lock: impl Fn(&str) -> u64) -> OpDesc {
    let (kind, args) = match o {
        OpSpec::Read { addr } => (op::READ, [addr.0, 0, 0, 0]),
        OpSpec::Write { addr, value } => (op::WRITE, [addr.0, value.0, 0, 0]),
        OpSpec::TripleFault => (op::TRIPLE_FAULT, [0; 4]),
        OpSpec::SpinWithoutYielding => (op::SPIN_WITHOUT_YIELDING, [0; 4]),
        OpSpec::Hypercall { nr, args } => {
            let a = |i: usize| args.get(i).map_or(0, |x| x.0);
            (op::RAW_HYPERCALL, [nr.0, a(0), a(1), a(2)])
        }
        OpSpec::Printk { lines } => (op::PRINTK, [lines.0, 0, 0, 0]),
        OpSpec::ReadWithBadFramePointer {
            addr,
            frame_pointer,
        } => (op::READ_WITH_BAD_FP, [addr.0, frame_pointer.0, 0, 0]),
        OpSpec::Hog => (op::HOG, [op::HOG_PREEMPT_OFF, 0, 0, 0]),
        OpSpec::HogSpinLockIrqsave => (op::HOG, [op::HOG_SPIN_LOCK_IRQSAVE, 0, 0, 0]),
        OpSpec::Sleep { ms } => (op::SLEEP_MS, [ms.0, 0, 0, 0]),
        OpSpec::Busy { ms } => (op::BUSY_MS, [ms.0, 0, 0, 0]),
        OpSpec::BusyLoop => (op::BUSY_MS, [u64::MAX, 0, 0, 0]),
        OpSpec::UserBusyLoop => (op::USER_BUSY_LOOP, [0; 4]),
        OpSpec::Setsid => (op::SETSID, [0; 4]),
        OpSpec::PerfEventOpenLbr => (op::PERF_EVENT_OPEN_LBR, [0; 4]),
        OpSpec::ModuleLoad { variant } => {
            let v = match variant {
                ModuleVariant::Correct => 0,
                ModuleVariant::TimerNeverDeleted => 1,
                ModuleVariant::TimerReadded => 2,
                ModuleVariant::InitFailed => 3,
            };
            (op::MODULE_LOAD, [v, 0, 0, 0])
        }
        OpSpec::ModuleUnload => (op::MODULE_UNLOAD, [0; 4]),
        OpSpec::Lock { lock: l, mode } => (op::LOCK, [lock(l), lock_mode(*mode), 0, 0]),
        OpSpec::Unlock { lock: l, mode } => (op::UNLOCK, [lock(l), lock_mode(*mode), 0, 0]),
        OpSpec::IrqDisable => (op::IRQ_DISABLE, [0; 4]),
        OpSpec::IrqEnable => (op::IRQ_ENABLE, [0; 4]),
        OpSpec::PreemptDisable => (op::PREEMPT_DISABLE, [0; 4]),
        OpSpec::PreemptEnable => (op::PREEMPT_ENABLE, [0; 4]),
        OpSpec::Kmalloc { gfp } => (op::KMALLOC, [u64::from(*gfp == GfpSpec::Atomic), 0, 0, 0]),
        OpSpec::RaiseSoftirq => (op::RAISE_SOFTIRQ, [0; 4]),
        OpSpec::ArmTimer { ms } => (op::ARM_TIMER, [ms.0, 0, 0, 0]),
        OpSpec::KmallocIrqsOff { gfp } => (
            op::KMALLOC_IRQS_OFF,
            [u64::from(*gfp == GfpSpec::Atomic), 0, 0, 0],
        ),
    };
    OpDesc {
        kind,
        _pad: 0,
        args,
    }
}
