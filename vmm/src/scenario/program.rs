//! Encodes a scenario into the program the guest reads at boot (`lockvmm_abi::ProgramHeader`,
//! then the tasks, handlers, locks and ops).
use lockvmm_abi::program as abi;
use lockvmm_abi::{HandlerDesc, LockDesc, OpDesc, ProgramHeader, TaskDesc};
use vm_memory::ByteValued;

use crate::scenario::{
    GfpSpec, HandlerContext, LockKindSpec, LockMode, ModuleVariant, OpSpec, Policy, Scenario,
};

/// Names resolved to the indices the guest uses.
pub struct Names<'a> {
    scenario: &'a Scenario,
    /// The labels of `mark` ops, in order of first use.
    labels: Vec<String>,
}

impl<'a> Names<'a> {
    /// The names of `scenario` (its locks, handlers and `mark` labels).
    pub fn of(scenario: &'a Scenario) -> Self {
        let mut labels = Vec::new();
        for (o, _) in scenario.all_ops() {
            if let OpSpec::Mark { label } = o
                && !labels.contains(label)
            {
                labels.push(label.clone());
            }
        }
        Names { scenario, labels }
    }

    /// Index of a declared lock (validation made sure it exists).
    pub fn lock(&self, name: &str) -> u64 {
        self.scenario
            .lock
            .iter()
            .position(|l| l.name.get_ref() == name)
            .unwrap_or(0) as u64
    }

    /// Index of a declared handler.
    pub fn handler(&self, name: &str) -> u64 {
        self.scenario
            .handler
            .iter()
            .position(|h| h.get_ref().name.get_ref() == name)
            .unwrap_or(0) as u64
    }

    /// Index of a `mark` label.
    pub fn label(&self, label: &str) -> Option<u64> {
        self.labels
            .iter()
            .position(|l| l == label)
            .map(|i| i as u64)
    }
}

/// The program bytes for `scenario`; `lock_addrs` holds each lock's kernel address (0 for the
/// lab's own).
pub fn encode(scenario: &Scenario, lock_addrs: &[u64]) -> Vec<u8> {
    let names = Names::of(scenario);
    let mut tasks = Vec::new();
    let mut ops = Vec::new();
    for (i, t) in scenario.task.iter().enumerate() {
        let t = t.get_ref();
        let mut comm = [0u8; 16];
        let name = t.comm.get_ref().as_bytes();
        comm[..name.len().min(15)].copy_from_slice(&name[..name.len().min(15)]);
        let first_op = ops.len() as u32;
        encode_ops(t.ops.iter().map(|o| o.get_ref()), &names, &mut ops);
        tasks.push(TaskDesc {
            pid: t
                .pid
                .as_ref()
                .map_or(100 + i as u32, |p| *p.get_ref() as u32),
            cpu: *t.cpu.get_ref() as u32,
            comm,
            first_op,
            nr_ops: ops.len() as u32 - first_op,
            policy: match t.policy {
                Policy::Normal => abi::Policy::Normal,
                Policy::Fifo => abi::Policy::Fifo,
            }
            .raw(),
            rt_priority: t.rt_priority.as_ref().map_or(0, |p| *p.get_ref() as u32),
            start_ns: t
                .start_at
                .as_ref()
                .map_or(0, |s| (*s.get_ref() * 1e9) as u64),
        });
    }
    let mut handlers = Vec::new();
    for h in &scenario.handler {
        let h = h.get_ref();
        let first_op = ops.len() as u32;
        encode_ops(h.ops.iter().map(|o| o.get_ref()), &names, &mut ops);
        handlers.push(HandlerDesc {
            kind: match h.context {
                HandlerContext::Hardirq => abi::HandlerKind::Hardirq,
                HandlerContext::Softirq => abi::HandlerKind::Softirq,
                HandlerContext::Timer => abi::HandlerKind::Timer,
                HandlerContext::Nmi => abi::HandlerKind::Nmi,
            }
            .raw(),
            cpu: h.cpu.as_ref().map_or(abi::ANY_CPU, |c| *c.get_ref() as u32),
            first_op,
            nr_ops: ops.len() as u32 - first_op,
            flags: if h.on_tick { abi::HANDLER_ON_TICK } else { 0 },
            _pad: 0,
        });
    }
    let locks: Vec<LockDesc> = scenario
        .lock
        .iter()
        .enumerate()
        .map(|(i, l)| LockDesc {
            addr: lock_addrs.get(i).copied().unwrap_or(0),
            kind: match l.kind {
                LockKindSpec::Spinlock => abi::LockKind::Spinlock,
                LockKindSpec::Mutex => abi::LockKind::Mutex,
                LockKindSpec::Semaphore => abi::LockKind::Semaphore,
                LockKindSpec::Rwlock => abi::LockKind::Rwlock,
            }
            .raw(),
            count: l.count.as_ref().map_or(1, |c| *c.get_ref() as u32),
            name: lock_name(l.name.get_ref()),
        })
        .collect();
    let flags = if scenario.run.power_off_when_done {
        lockvmm_abi::PROGRAM_POWER_OFF_WHEN_DONE
    } else {
        0
    };
    let header = ProgramHeader {
        nr_tasks: tasks.len() as u32,
        nr_ops: ops.len() as u32,
        flags,
        nr_handlers: handlers.len() as u32,
        nr_locks: locks.len() as u32,
        _pad: 0,
    };
    let mut out = header.as_slice().to_vec();
    for t in &tasks {
        out.extend_from_slice(t.as_slice());
    }
    for h in &handlers {
        out.extend_from_slice(h.as_slice());
    }
    for l in &locks {
        out.extend_from_slice(l.as_slice());
    }
    for o in &ops {
        out.extend_from_slice(o.as_slice());
    }
    out
}

/// Appends `list`'s ops; a `repeat` becomes its header op followed by its body.
fn encode_ops<'a>(
    list: impl IntoIterator<Item = &'a OpSpec>,
    names: &Names<'_>,
    out: &mut Vec<OpDesc>,
) {
    for o in list {
        if let OpSpec::Repeat { times, ops } = o {
            let at = out.len();
            out.push(op(abi::OpKind::Repeat, [times.0, 0, 0, 0]));
            encode_ops(ops, names, out);
            out[at].args[1] = (out.len() - at - 1) as u64;
        } else {
            out.push(encode_op(o, names));
        }
    }
}

fn op(kind: abi::OpKind, args: [u64; 4]) -> OpDesc {
    OpDesc {
        kind: kind.raw(),
        _pad: 0,
        args,
    }
}

fn lock_mode(m: LockMode) -> u64 {
    match m {
        LockMode::Plain => abi::LockMode::Plain,
        LockMode::Irq => abi::LockMode::Irq,
        LockMode::Irqsave => abi::LockMode::Irqsave,
        LockMode::Bh => abi::LockMode::Bh,
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
        ModuleVariant::DelTimerWithoutSync => abi::ModuleVariant::DelTimerWithoutSync,
    }
    .raw()
}

fn encode_op(o: &OpSpec, names: &Names<'_>) -> OpDesc {
    let lock = |l: &str| names.lock(l);
    let handler = |h: &Option<String>| h.as_deref().map_or(0, |h| names.handler(h) + 1);
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
        OpSpec::RaiseSoftirq { handler: h } => (K::RaiseSoftirq, [handler(h), 0, 0, 0]),
        OpSpec::ArmTimer { ms, handler: h } => (K::ArmTimer, [ms.0, handler(h), 0, 0]),
        OpSpec::KmallocIrqsOff { gfp: g } => (K::KmallocIrqsOff, [gfp(*g), 0, 0, 0]),
        // Encoded with its body by `encode_ops`.
        OpSpec::Repeat { times, .. } => (K::Repeat, [times.0, 0, 0, 0]),
        OpSpec::SendIpi { cpu, handler: h } => (K::SendIpi, [*cpu as u64, names.handler(h), 0, 0]),
        OpSpec::SmpCallFunctionSingle {
            cpu,
            handler: h,
            wait,
        } => (
            K::SmpCallFunctionSingle,
            [*cpu as u64, names.handler(h), u64::from(*wait), 0],
        ),
        OpSpec::SendNmi { cpu } => (K::SendNmi, [*cpu as u64, 0, 0, 0]),
        OpSpec::LocalBhDisable {} => (K::LocalBhDisable, [0; 4]),
        OpSpec::LocalBhEnable {} => (K::LocalBhEnable, [0; 4]),
        OpSpec::Trylock { lock: l, mode } => (K::Trylock, [lock(l), lock_mode(*mode), 0, 0]),
        OpSpec::CondResched {} => (K::CondResched, [0; 4]),
        OpSpec::TouchSoftlockupWatchdog {} => (K::TouchSoftlockupWatchdog, [0; 4]),
        OpSpec::TouchNmiWatchdog {} => (K::TouchNmiWatchdog, [0; 4]),
        OpSpec::Mark { label } => (K::Mark, [names.label(label).unwrap_or(0), 0, 0, 0]),
        OpSpec::ReadLock { lock: l, mode } => (K::ReadLock, [lock(l), lock_mode(*mode), 0, 0]),
        OpSpec::ReadUnlock { lock: l, mode } => (K::ReadUnlock, [lock(l), lock_mode(*mode), 0, 0]),
        OpSpec::WriteLock { lock: l, mode } => (K::WriteLock, [lock(l), lock_mode(*mode), 0, 0]),
        OpSpec::WriteUnlock { lock: l, mode } => {
            (K::WriteUnlock, [lock(l), lock_mode(*mode), 0, 0])
        }
    };
    op(kind, args)
}

/// The scenario's name of a lock for [`LockDesc::name`]: NUL-padded, cut at a character
/// boundary to leave room for the NUL (lockdep's class name in the guest).
fn lock_name(name: &str) -> [u8; abi::LOCK_NAME_LEN] {
    let mut out = [0u8; abi::LOCK_NAME_LEN];
    let mut end = name.len().min(abi::LOCK_NAME_LEN - 1);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&name.as_bytes()[..end]);
    out
}
