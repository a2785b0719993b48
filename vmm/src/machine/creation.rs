//! Creating the vCPUs and mapping guest memory while the machine already starts. Creating a
//! vCPU costs about 150 µs of KVM's time (`KVM_CREATE_VCPU`, `KVM_SET_CPUID2`, the boot
//! registers): 64 of them are ~15 ms of CPU, which used to come before the first guest
//! instruction, and so did mapping the memory (an SRCU grace period of the new VM, 6–13 ms
//! asleep) and starting the vCPU threads. The boot CPU, though, runs ~15 ms of guest code
//! before its first `StartCpu`. So worker threads create the vCPUs in order, a setup thread
//! maps the memory meanwhile and then hands the boot CPU's vCPU over, the caller starts the
//! vCPU threads, and each AP's vCPU goes to its thread as soon as it exists. A vCPU thread
//! waits for its vCPU before anything else: before it takes the run token (a `StartCpu` that
//! gets ahead of the workers waits there) and before it answers a capture.
//!
//! A vCPU that cannot be created, or memory that cannot be mapped, still fails the run with
//! KVM's error, as before (`finish`), whatever the guest did meanwhile: the thread left without
//! its vCPU stops the machine.
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use kvm_bindings::CpuId;
use kvm_ioctls::{SyncReg, VcpuFd, VmFd};

use super::MachineError;
use crate::kvm::vcpu::create_vcpu;

/// A vCPU on its way to its thread. The sender's end is dropped without sending when the vCPU
/// could not be created.
pub(super) type Incoming = Receiver<VcpuFd>;

/// A vCPU that already exists (a machine restored to a snapshot runs its vCPUs again).
pub(super) fn ready(vcpu: VcpuFd) -> Incoming {
    let (tx, rx) = channel();
    let _ = tx.send(vcpu);
    rx
}

/// How to create the vCPUs.
pub(super) struct Plan {
    pub n: usize,
    pub entry_bsp: u64,
    pub entry_ap: u64,
    /// `KVM_CAP_SYNC_REGS` with the general registers: set them valid on each vCPU.
    pub sync_regs: bool,
}

/// A worker's failure: the vCPU it was creating (0 for the setup), and why.
type Failure = (usize, MachineError);

/// The threads creating a machine's vCPUs and setting up its memory.
pub(super) struct Creation {
    workers: Vec<JoinHandle<Result<(), Failure>>>,
    /// When the boot CPU's vCPU went to its thread, the memory mapped.
    ready: Arc<OnceLock<Instant>>,
}

/// Starts creating vCPUs `0..n` (the boot CPU at `entry_bsp`, the others at `entry_ap`) on
/// worker threads: one per host CPU but one (the other runs the boot CPU), at most 4, vCPU `i`
/// on worker `i mod workers`, so that each worker goes in vCPU order as the boot CPU starts
/// them. `setup` (mapping guest memory) runs on a thread of its own; the boot CPU's vCPU is
/// handed over once it is done. Returns each vCPU's receiving end, in vCPU order.
pub(super) fn start(
    vm: &Arc<VmFd>,
    cpuid: CpuId,
    plan: &Plan,
    setup: impl FnOnce() -> Result<(), MachineError> + Send + 'static,
) -> Result<(Vec<Incoming>, Creation), MachineError> {
    let n = plan.n;
    let workers = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .saturating_sub(1)
        .clamp(1, 4)
        .min(n.div_ceil(16).max(1));
    let (mut txs, rxs): (Vec<Sender<VcpuFd>>, Vec<Incoming>) = (0..n).map(|_| channel()).unzip();
    // The boot CPU's vCPU goes through the setup thread, which holds it until memory is mapped.
    let (to_setup, from_worker) = channel();
    let to_thread = std::mem::replace(&mut txs[0], to_setup);
    let ready = Arc::new(OnceLock::new());
    let mut handles = Vec::with_capacity(workers + 1);
    let spawn = |name: String, f: Box<dyn FnOnce() -> Result<(), Failure> + Send>| {
        std::thread::Builder::new()
            .name(name)
            .spawn(f)
            .map_err(|e| MachineError::Host(format!("cannot start a vCPU-creating thread: {e}")))
    };
    let at = ready.clone();
    handles.push(spawn(
        "vm-setup".into(),
        Box::new(move || {
            setup().map_err(|e| (0, e))?;
            // Nothing to hand over if vCPU 0 could not be created (its worker says why).
            if let Ok(vcpu) = from_worker.recv() {
                let _ = at.set(Instant::now());
                let _ = to_thread.send(vcpu);
            }
            Ok(())
        }),
    )?);
    let mut shares: Vec<Vec<(usize, Sender<VcpuFd>)>> = (0..workers).map(|_| Vec::new()).collect();
    for (cpu, tx) in txs.into_iter().enumerate() {
        shares[cpu % workers].push((cpu, tx));
    }
    let cpuid = Arc::new(cpuid);
    for (w, share) in shares.into_iter().enumerate() {
        let (vm, cpuid) = (vm.clone(), cpuid.clone());
        let (entry_bsp, entry_ap, sync_regs) = (plan.entry_bsp, plan.entry_ap, plan.sync_regs);
        let work = move || {
            for (cpu, tx) in share {
                let rip = if cpu == 0 { entry_bsp } else { entry_ap };
                // On an error the rest of this worker's senders are dropped unsent: their
                // threads stop the machine.
                let mut vcpu = create_vcpu(&vm, &cpuid, cpu, rip).map_err(|e| (cpu, e.into()))?;
                if sync_regs {
                    // Registers in `kvm_run` at every exit: a hypercall reads its arguments
                    // there.
                    vcpu.set_sync_valid_reg(SyncReg::Register);
                }
                // A thread that already ended (the machine stopped) drops it.
                let _ = tx.send(vcpu);
            }
            Ok(())
        };
        handles.push(spawn(format!("vcpu-create{w}"), Box::new(work))?);
    }
    Ok((
        rxs,
        Creation {
            workers: handles,
            ready,
        },
    ))
}

impl Creation {
    /// When the boot CPU could start (set once it can).
    pub(super) fn ready(&self) -> Arc<OnceLock<Instant>> {
        self.ready.clone()
    }

    /// Waits for the workers (they create at most the remaining vCPUs): the error of the
    /// lowest-numbered vCPU that could not be created (memory that could not be mapped counts
    /// as vCPU 0's), if any. A worker's panic is the caller's (creating a vCPU does not panic).
    pub(super) fn finish(self) -> Result<(), MachineError> {
        let mut first: Option<Failure> = None;
        for w in self.workers {
            let result = w.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            if let Err((cpu, e)) = result
                && first.as_ref().is_none_or(|(c, _)| cpu < *c)
            {
                first = Some((cpu, e));
            }
        }
        first.map_or(Ok(()), |(_, e)| Err(e))
    }

    /// `e`, the run's error, unless a vCPU could not be created: then that (`e` may well be its
    /// consequence).
    pub(super) fn error_or(self, e: MachineError) -> MachineError {
        self.finish().err().unwrap_or(e)
    }
}
