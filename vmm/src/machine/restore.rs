//! Snapshot and restore, so that `lockvmm explore`'s schedules do not pay for boot (as snapshot
//! fuzzers do). A machine boots once and pauses when the run token is handed out for the
//! hand-out during which the recording run passed its first hook: every schedule forces its
//! events at hooks, so all of them share the run up to there. That pause is the snapshot:
//! every vCPU's KVM state (`kvm::saved`), the irqchip, a copy of RAM, and the host's side of
//! the machine ([`HostState`]). Each schedule then writes the vCPUs and irqchip back, copies
//! back only the pages written since (KVM's dirty log for the guest's writes, the host's own
//! log for its writes), and runs a fresh [`Machine`] that resumes the host's side.
//!
//! At the pause no vCPU is inside the guest: the holder has not entered yet and every other
//! one gave the token back with a `Wait` hypercall. Each vCPU first finishes that pending port
//! I/O (`saved::complete_pending`), so the state saved is after the instruction; KVM would
//! have finished it the same way on the vCPU's next entry, so a restored schedule runs the
//! same guest instructions, hooks and host actions as one booted from scratch.
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kvm_bindings::kvm_irqchip;
use kvm_ioctls::{VcpuFd, VmFd};
use vm_superio::serial::SerialState;

use super::boot::{assemble, build, collect, drive};
use super::creation::ready;
use super::insn_count::counted;
use super::run_token::SchedState;
use super::{HookAction, Machine, MachineConfig, MachineError, RunRecord, RunResult, lock};
use crate::devices::pmu::Pmu;
use crate::devices::serial::SinkState;
use crate::kvm::dirty_log;
use crate::kvm::saved::{self, SaveSpec, SavedVcpu};
use crate::memory::GuestMemory;

/// The host's side of a machine at the snapshot: everything a run mutates outside guest RAM
/// and KVM (the clock, the run token, the PMUs, the record, the actions, the UART and console,
/// the runaway check, which vCPUs started).
pub struct HostState {
    pub(super) now_ns: u64,
    pub(super) sched: SchedState,
    pub(super) pmus: Vec<Pmu>,
    pub(super) record: RunRecord,
    /// The scenario's actions, as they stood.
    pub(super) actions: Vec<(HookAction, bool, u64)>,
    pub(super) serial: SerialState,
    pub(super) sink: SinkState,
    pub(super) console: String,
    pub(super) progress: (u64, u64),
    pub(super) started: Vec<bool>,
    pub(super) grants: u64,
}

/// How much restoring cost so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RestoreStats {
    /// Schedules run from the snapshot.
    pub restores: u64,
    /// Pages copied back, in all.
    pub pages: u64,
    /// Wall time of the boot to the snapshot and of saving it.
    pub boot_ms: f64,
    /// Wall time spent writing the snapshot back, in all.
    pub restore_ms: f64,
}

/// A machine paused at its snapshot point, ready to run schedules from there.
pub struct Snapshotted {
    cfg: MachineConfig,
    /// `cfg.actions` up to here are the scenario's (in `host`); the rest are a schedule's.
    base_actions: usize,
    vm: Arc<VmFd>,
    memory: GuestMemory,
    vcpus: Vec<VcpuFd>,
    saved: Vec<SavedVcpu>,
    irqchip: Vec<kvm_irqchip>,
    image: Vec<u8>,
    host: HostState,
    stats: RestoreStats,
}

impl Machine {
    /// Boots `cfg` and pauses it when the run token is handed out for the `grant`-th time
    /// (`RunResult::first_hook_grant` of a run of the same machine), then saves it.
    pub fn snapshot_at_grant(cfg: MachineConfig, grant: u64) -> Result<Snapshotted, MachineError> {
        let t0 = Instant::now();
        let b = build(&cfg, true)?;
        let (m, console) = match assemble(&cfg, b.vm.clone(), b.memory.clone(), None, grant) {
            Ok(assembled) => assembled,
            Err(e) => return Err(b.creation.error_or(e)),
        };
        let fds = drive(&m, b.vcpus, Some(b.creation), cfg.stall_timeout)?;
        if !m.paused.load(Ordering::Acquire) {
            let why = lock(&m.record).outcome.as_ref().map(|o| o.render());
            return Err(MachineError::Host(format!(
                "the run ended ({}) before the snapshot point (run-token hand-out {grant})",
                why.unwrap_or_else(|| "no outcome".into())
            )));
        }
        let mut vcpus = all_back(fds)?;
        let mut spec = SaveSpec::of(&b.kvm, &b.vm)?;
        let mut saved = Vec::with_capacity(vcpus.len());
        for v in &mut vcpus {
            saved::complete_pending(v);
            saved.push(saved::save(v, &mut spec)?);
        }
        let irqchip = saved::save_irqchip(&b.vm)?;
        // Both logs start empty at the snapshot.
        dirty_log::take(&b.vm, &b.memory)?;
        let _ = b.memory.take_host_dirty();
        let image = b.memory.copy_all();
        let serial = lock(&m.serial);
        let host = HostState {
            now_ns: m.now_ns(),
            sched: m.sched.save(),
            pmus: lock(&m.pmus).clone(),
            record: lock(&m.record).clone(),
            actions: lock(&m.actions).clone(),
            serial: serial.state(),
            sink: serial.writer().state(),
            console: lock(&console.0).text.clone(),
            progress: m.progress.save(),
            started: m
                .cpus
                .iter()
                .map(|c| c.started.load(Ordering::Acquire))
                .collect(),
            // The holder counted the pause's hand-out and has not run: it counts it again.
            grants: grant - 1,
        };
        drop(serial);
        let base_actions = cfg.actions.len();
        Ok(Snapshotted {
            cfg,
            base_actions,
            vm: b.vm,
            memory: b.memory,
            vcpus,
            saved,
            irqchip,
            image,
            host,
            stats: RestoreStats {
                boot_ms: t0.elapsed().as_secs_f64() * 1e3,
                ..Default::default()
            },
        })
    }
}

impl Machine {
    /// The run token was handed to a vCPU about to enter the guest. Returns `true` when this
    /// is the hand-out the run pauses at (`restore`'s snapshot point): the run then stops
    /// without an outcome, before that vCPU runs.
    pub fn count_grant(&self) -> bool {
        let n = self.grants.fetch_add(1, Ordering::AcqRel) + 1;
        if n != self.pause_at_grant {
            return false;
        }
        self.paused.store(true, Ordering::Release);
        self.stopped.store(true, Ordering::Release);
        self.sched.stop();
        let _ = self.stop_evt.write(1);
        true
    }
}

impl super::Progress {
    pub(super) fn save(&self) -> (u64, u64) {
        (
            self.mark_ns.load(Ordering::Acquire),
            self.exits.load(Ordering::Acquire),
        )
    }

    pub(super) fn restore(&self, (mark_ns, exits): (u64, u64)) {
        self.mark_ns.store(mark_ns, Ordering::Release);
        self.exits.store(exits, Ordering::Release);
    }
}

fn all_back(fds: Vec<Option<VcpuFd>>) -> Result<Vec<VcpuFd>, MachineError> {
    fds.into_iter()
        .enumerate()
        .map(|(cpu, fd)| {
            fd.ok_or_else(|| {
                MachineError::Host(format!("CPU {cpu}: its thread never left the guest"))
            })
        })
        .collect()
}

impl Snapshotted {
    /// Restores the snapshot and runs it to the end with `actions` added to the scenario's.
    pub fn run(&mut self, actions: Vec<HookAction>) -> Result<RunResult, MachineError> {
        if self.vcpus.len() != self.saved.len() {
            return Err(MachineError::Host(
                "a vCPU was lost in an earlier run: the snapshot cannot be restored".into(),
            ));
        }
        let t0 = Instant::now();
        self.restore()?;
        self.cfg.actions.truncate(self.base_actions);
        self.cfg.actions.extend(actions);
        let (m, console) = assemble(
            &self.cfg,
            self.vm.clone(),
            self.memory.clone(),
            Some((&self.host, self.base_actions)),
            0,
        )?;
        let vcpus = std::mem::take(&mut self.vcpus)
            .into_iter()
            .map(ready)
            .collect();
        let (fds, insns) = counted(self.cfg.count_instructions, || {
            drive(&m, vcpus, None, self.cfg.stall_timeout)
        });
        let fds = fds?;
        let mut result = collect(&m, &console, &self.cfg, t0, Duration::ZERO);
        result.profile.set_guest_instructions(insns);
        self.vcpus = fds.into_iter().flatten().collect();
        Ok(result)
    }

    /// Puts the machine back as it was at the snapshot.
    fn restore(&mut self) -> Result<(), MachineError> {
        let t0 = Instant::now();
        for v in &mut self.vcpus {
            saved::complete_pending(v);
        }
        for (v, s) in self.vcpus.iter().zip(&self.saved) {
            saved::restore(v, s)?;
        }
        saved::restore_irqchip(&self.vm, &self.irqchip)?;
        // RAM last: whatever KVM wrote to guest memory while the state went back is in the
        // dirty log too, and is undone with the rest.
        let mut dirty = dirty_log::take(&self.vm, &self.memory)?;
        for (d, h) in dirty.iter_mut().zip(self.memory.take_host_dirty()) {
            *d |= h;
        }
        let pages = self.memory.restore_pages(&self.image, &dirty);
        self.stats.restores += 1;
        self.stats.pages += pages as u64;
        self.stats.restore_ms += t0.elapsed().as_secs_f64() * 1e3;
        Ok(())
    }

    /// How much restoring cost so far.
    pub fn stats(&self) -> RestoreStats {
        self.stats
    }
}
