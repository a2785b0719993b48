//! Taking the snapshot: every vCPU captures itself on its own thread (KVM's vCPU ioctls belong
//! to it) while the run token keeps all but the caller parked outside `KVM_RUN`, so registers
//! and memory are one consistent instant; then guest memory is copied.
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kvm_ioctls::VcpuFd;

use super::run_token::CpuState;
use super::{CaptureState, Machine, lock};
use crate::image::Symbols;
use crate::kvm::capture::capture;
use crate::state::{Snapshot, VcpuState};

/// How long a snapshot waits for parked vCPUs to report their state.
const CAPTURE_TIMEOUT: Duration = Duration::from_secs(5);

impl Machine {
    /// Whether a snapshot was taken already.
    pub fn has_snapshot(&self) -> bool {
        lock(&self.snapshot).is_some()
    }

    /// Freezes the machine's picture: this vCPU (the caller's, holding the run token or the
    /// last to wait) captures itself, every parked vCPU captures itself on request, then guest
    /// memory is copied. Only the first snapshot of a run is kept.
    pub fn take_snapshot(&self, cpu: usize, vcpu: &VcpuFd, reason: String) {
        if self.has_snapshot() {
            return;
        }
        let t0 = Instant::now();
        *lock(&self.capture) = CaptureState {
            started: Some(t0),
            cpus: vec![None; self.nr_cpus],
        };
        let epoch = self.sched.request_capture();
        self.deliver_capture(cpu, epoch, capture_or_empty(vcpu, cpu));
        let deadline = t0 + CAPTURE_TIMEOUT;
        let mut caps = lock(&self.capture);
        while caps.cpus.iter().any(Option::is_none) && Instant::now() < deadline {
            caps = self
                .capture_done
                .wait_timeout(caps, deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let states = self.sched.states();
        let cpus: Vec<VcpuState> = caps
            .cpus
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut st = c.clone().unwrap_or(VcpuState {
                    cpu: i,
                    ..Default::default()
                });
                st.sched = describe_sched(&states[i], &self.kernel.symbols);
                st
            })
            .collect();
        drop(caps);
        let freeze_us = t0.elapsed().as_micros() as u64;
        let memory = self.memory.copy_all();
        *lock(&self.snapshot) = Some(Snapshot {
            reason,
            vtime_ns: self.now_ns(),
            cpus,
            memory: Arc::new(memory),
            lock_names: self.lock_names.clone(),
            lock_aliases: self.lock_aliases.clone(),
            freeze_us,
            memory_copy_us: t0.elapsed().as_micros() as u64 - freeze_us,
        });
    }

    /// The snapshot at a lockup detector's report (kept unless a panic's capture follows).
    pub fn take_detection_snapshot(&self, cpu: usize, vcpu: &VcpuFd, reason: String) {
        if self.has_snapshot() {
            return;
        }
        self.take_snapshot(cpu, vcpu, reason);
        self.detection_snapshot.store(true, Ordering::Release);
    }

    /// The kdump capture (`machine_kexec`'s hand-over): the vmcore is of this instant, with
    /// the other CPUs stopped by the crash NMI. It replaces a snapshot taken at the detector's
    /// report (the same incident, seen later as Linux's vmcore sees it), never any other.
    pub fn take_capture_snapshot(&self, cpu: usize, vcpu: &VcpuFd, reason: String) {
        if self.detection_snapshot.swap(false, Ordering::AcqRel) {
            *lock(&self.snapshot) = None;
        }
        self.take_snapshot(cpu, vcpu, reason);
    }

    /// A parked vCPU's answer to capture request `epoch`.
    pub fn deliver_capture(&self, cpu: usize, _epoch: u64, mut state: VcpuState) {
        let mut caps = lock(&self.capture);
        let started = caps.started.unwrap_or_else(Instant::now);
        state.freeze_us = started.elapsed().as_micros() as u64;
        if let Some(slot) = caps.cpus.get_mut(cpu) {
            *slot = Some(state);
        }
        self.capture_done.notify_all();
    }
}

/// This vCPU's state, or an empty record saying it was not captured.
pub fn capture_or_empty(vcpu: &VcpuFd, cpu: usize) -> VcpuState {
    capture(vcpu, cpu).unwrap_or(VcpuState {
        cpu,
        ..Default::default()
    })
}

/// What the run token knew of a vCPU, in words.
fn describe_sched(s: &CpuState, syms: &Symbols) -> String {
    match s {
        CpuState::Offline => "offline (never started)".into(),
        CpuState::Ready => "ready".into(),
        CpuState::Running => "running".into(),
        CpuState::Waiting(w) => {
            let irq = if w.irq_enabled {
                "interrupts on"
            } else {
                "interrupts off"
            };
            match w.addr {
                Some(a) => format!(
                    "waiting on {} ({irq})",
                    syms.lookup(a)
                        .map_or(format!("{a:#x}"), |l| format!("&{l}"))
                ),
                None => format!("waiting for an interrupt ({irq})"),
            }
        }
    }
}
