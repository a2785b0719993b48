//! A machine: the VM, its memory and kernel, the vCPU threads under the run token, the virtual
//! clock, the host actions, the snapshot, and the supervisor that waits for the outcome.
//!
//! [`Machine`] is the state the vCPU threads share. Each concern that acts on it has its own
//! file: `boot` builds and runs it, `vcpu_loop` runs one vCPU, `hypercall` answers the guest,
//! `clock` moves virtual time, `actions` performs the scenario's host actions, `capture` takes
//! the snapshot, `supervisor` catches a vCPU that never yields.
mod actions;
mod boot;
mod capture;
pub mod clock;
pub mod config;
mod creation;
mod fault;
mod handover;
pub mod hypercall;
pub mod insn_count;
pub mod profile;
pub mod restore;
pub mod run_token;
mod supervisor;
mod syscall;
mod trace_action;
mod vcpu_loop;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use kvm_ioctls::VmFd;
use vmm_sys_util::eventfd::EventFd;

pub use actions::Then;
pub use config::{
    Deliver, Dropped, HookAction, Knobs, MachineConfig, MachineError, RunLimits, RunResult,
    Timings, When,
};

use crate::devices::pmu::Pmu;
use crate::devices::serial::SerialConsole;
use crate::image::KernelImage;
use crate::kvm::vm;
use crate::memory::GuestMemory;
use crate::state::{HookEvent, LockupEvent, Outcome, Snapshot, VcpuState, WaitingCpu};
use run_token::{Idle, Scheduler};

/// Bad hypercalls kept for the report (beyond, they are only counted).
const MAX_BAD_HYPERCALLS_KEPT: usize = 64;
/// Hook points kept for the trace (beyond, they are only counted).
const MAX_HOOKS_KEPT: usize = 4096;
/// Lockdep turns itself off after one report; `might_sleep` reports once a second.
const MAX_SPLATS_KEPT: usize = 64;
/// Lockup reports kept (beyond, they are only counted).
const MAX_LOCKUPS_KEPT: usize = 256;
/// Virtual time that counts as progress for the runaway check (`RunLimits`).
pub const PROGRESS_NS: u64 = 1_000_000;

/// A process-wide clock origin for the per-vCPU timestamps.
static START: OnceLock<Instant> = OnceLock::new();

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Milliseconds since the first machine of this process started.
fn since_start_ms() -> u64 {
    START.get().map_or(0, |s| s.elapsed().as_millis() as u64)
}

/// Per-vCPU bookkeeping shared with the supervisor.
#[derive(Default)]
pub struct CpuSlot {
    /// Milliseconds (since the machine started) of the last entry into the guest.
    last_entry_ms: AtomicU64,
    /// Set by the supervisor before it kicks a stalled vCPU.
    stall_kick: AtomicBool,
    exited: AtomicBool,
    /// Its vCPU left wait-for-SIPI (the thread made it runnable); kept across a restore.
    started: AtomicBool,
}

impl CpuSlot {
    /// A slot that counts from now: the stall check starts at this machine's start, not the
    /// process's (`lockvmm explore` runs many machines in one process).
    fn new(started: bool) -> Self {
        let slot = CpuSlot::default();
        slot.started.store(started, Ordering::Release);
        slot.mark_entry();
        slot
    }

    /// Wall milliseconds since this vCPU last entered the guest.
    pub fn since_entry_ms(&self) -> u64 {
        since_start_ms().saturating_sub(self.last_entry_ms.load(Ordering::Acquire))
    }

    fn mark_entry(&self) {
        self.last_entry_ms
            .store(since_start_ms(), Ordering::Release);
    }
}

/// What the run has recorded so far (one lock: these are written rarely).
#[derive(Default, Clone)]
struct RunRecord {
    outcome: Option<Outcome>,
    /// CPUs in the order they reported online, and when the last one did.
    online: Vec<usize>,
    all_online_at: Option<Instant>,
    bad_hypercalls: Vec<(usize, String)>,
    lockups: Vec<LockupEvent>,
    hooks: Vec<HookEvent>,
    splats: Vec<crate::state::Splat>,
    dropped: Dropped,
}

/// VM exits since virtual time last made progress (the runaway check).
#[derive(Default)]
struct Progress {
    /// Virtual time of the last progress.
    mark_ns: AtomicU64,
    exits: AtomicU64,
}

/// A snapshot being taken: what parked vCPUs have delivered, and since when.
#[derive(Default)]
struct CaptureState {
    started: Option<Instant>,
    cpus: Vec<Option<VcpuState>>,
}

/// The state the vCPU threads, the clock and the supervisor share.
pub struct Machine {
    /// Shared with the machines restored from a snapshot of this one (`restore`).
    vm: std::sync::Arc<VmFd>,
    memory: GuestMemory,
    kernel: KernelImage,
    sched: Scheduler,
    nr_cpus: usize,
    max_vtime_ns: u64,
    stop_on_lockup: bool,
    snapshot_at_end: bool,
    lock_names: Vec<String>,
    lock_aliases: Vec<(u64, String)>,
    cpus: Vec<CpuSlot>,
    stopped: AtomicBool,
    stop_evt: EventFd,
    now_ns: AtomicU64,
    serial: Mutex<SerialConsole>,
    pmus: Mutex<Vec<Pmu>>,
    record: Mutex<RunRecord>,
    /// Host actions, whether each has fired, and how many of its hook's occurrences matched.
    actions: Mutex<Vec<(HookAction, bool, u64)>>,
    /// The first snapshot of the run.
    snapshot: Mutex<Option<Snapshot>>,
    /// The snapshot was taken at a lockup detector's report: a later kdump capture (a panic's
    /// `machine_kexec`) replaces it, as a kdump vmcore is taken then.
    detection_snapshot: AtomicBool,
    capture: Mutex<CaptureState>,
    capture_done: Condvar,
    limits: RunLimits,
    progress: Progress,
    profile: profile::ExitCounters,
    /// Times the run token was handed out (the snapshot point of `restore` is one of them).
    grants: AtomicU64,
    /// Stop, with no outcome, when the run token is handed out for this time (0: never).
    pause_at_grant: u64,
    /// `grants` when the first hook was recorded (0: none yet).
    first_hook_grant: AtomicU64,
    /// The run stopped at `pause_at_grant`.
    paused: AtomicBool,
}

impl Machine {
    /// Guest RAM.
    pub fn memory(&self) -> &GuestMemory {
        &self.memory
    }

    /// The kernel it runs.
    pub fn kernel(&self) -> &KernelImage {
        &self.kernel
    }

    /// The run token.
    pub fn sched(&self) -> &Scheduler {
        &self.sched
    }

    /// Number of vCPUs.
    pub fn nr_cpus(&self) -> usize {
        self.nr_cpus
    }

    /// The run ends when the virtual clock would pass this.
    pub fn max_vtime_ns(&self) -> u64 {
        self.max_vtime_ns
    }

    /// One vCPU's bookkeeping.
    pub fn cpu(&self, cpu: usize) -> &CpuSlot {
        &self.cpus[cpu]
    }

    /// Whether the run has ended.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Records how the run ended (the first outcome wins) and stops every vCPU.
    pub fn finish(&self, outcome: Outcome) {
        lock(&self.record).outcome.get_or_insert(outcome);
        self.stopped.store(true, Ordering::Release);
        self.sched.stop();
        let _ = self.stop_evt.write(1);
    }

    /// The virtual clock.
    pub fn now_ns(&self) -> u64 {
        self.now_ns.load(Ordering::Acquire)
    }

    /// Moves the virtual clock (only while every vCPU waits) and publishes it to the guest.
    pub fn set_now_ns(&self, ns: u64) {
        self.now_ns.store(ns, Ordering::Release);
        self.memory.set_vtime(ns);
    }

    /// A maskable interrupt to `cpu`'s local APIC; wakes it if it waits with interrupts on.
    pub fn deliver_interrupt(&self, cpu: usize, vector: u8) {
        if let Err(e) = vm::send_msi(&self.vm, cpu as u32, vector, false) {
            self.finish(Outcome::HostError {
                message: format!("interrupt to CPU {cpu}: {e}"),
            });
        }
        self.sched.deliver(cpu, false);
    }

    /// An NMI to `cpu`; it always wakes.
    pub fn deliver_nmi(&self, cpu: usize) {
        if let Err(e) = vm::send_msi(&self.vm, cpu as u32, 0, true) {
            self.finish(Outcome::HostError {
                message: format!("NMI to CPU {cpu}: {e}"),
            });
        }
        self.sched.deliver(cpu, true);
    }

    /// `rdmsr` of an emulated PMU MSR.
    pub fn pmu_read(&self, cpu: usize, msr: u32) -> Option<u64> {
        lock(&self.pmus)[cpu].read(msr, self.now_ns())
    }

    /// `wrmsr` of an emulated PMU MSR.
    pub fn pmu_write(&self, cpu: usize, msr: u32, value: u64) -> bool {
        let now = self.now_ns();
        lock(&self.pmus)[cpu].write(msr, value, now)
    }

    /// When `cpu`'s counter next overflows.
    pub fn pmu_next_overflow(&self, cpu: usize, now: u64) -> Option<u64> {
        lock(&self.pmus)[cpu].next_overflow(now)
    }

    /// `cpu`'s counter overflows now.
    pub fn pmu_overflow(&self, cpu: usize, now: u64) {
        lock(&self.pmus)[cpu].overflow(now);
    }

    /// A lockup detector fired.
    pub fn record_lockup(&self, event: LockupEvent) {
        let mut r = lock(&self.record);
        if r.lockups.len() < MAX_LOCKUPS_KEPT {
            r.lockups.push(event);
        } else {
            r.dropped.lockups += 1;
        }
    }

    /// The guest passed a hook point.
    pub fn record_hook(&self, event: HookEvent) {
        let _ = self.first_hook_grant.compare_exchange(
            0,
            self.grants.load(Ordering::Acquire),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        let mut r = lock(&self.record);
        if r.hooks.len() < MAX_HOOKS_KEPT {
            r.hooks.push(event);
        } else {
            r.dropped.hooks += 1;
        }
    }

    /// The guest's lockdep or `might_sleep` reported a bug.
    pub fn record_splat(&self, splat: crate::state::Splat) {
        let mut r = lock(&self.record);
        if r.splats.len() < MAX_SPLATS_KEPT {
            r.splats.push(splat);
        } else {
            r.dropped.splats += 1;
        }
    }

    /// Counts one VM exit; returns the count when the guest has made more exits than the
    /// limit allows without virtual time advancing (a runaway: an I/O loop, a console flood,
    /// a hypercall storm).
    pub fn count_exit(&self) -> Option<u64> {
        let now = self.now_ns();
        let p = &self.progress;
        if now
            >= p.mark_ns
                .load(Ordering::Relaxed)
                .saturating_add(PROGRESS_NS)
        {
            p.mark_ns.store(now, Ordering::Relaxed);
            p.exits.store(0, Ordering::Relaxed);
        }
        let n = p.exits.fetch_add(1, Ordering::Relaxed) + 1;
        (n > self.limits.max_exits_without_progress).then_some(n)
    }

    /// Whether the run should end now because a lockup was reported.
    pub fn stop_requested_by_lockup(&self) -> bool {
        self.stop_on_lockup && !lock(&self.record).lockups.is_empty()
    }

    /// Ends the run with the lockups reported so far.
    pub fn finish_with_lockups(&self) {
        let events = lock(&self.record).lockups.clone();
        self.finish(Outcome::Lockup { events });
    }

    /// Nobody can run and nothing will wake anyone.
    pub fn report_all_waiting(&self, idle: Idle) {
        let Idle::AllWaiting(waiting) = idle;
        let syms = &self.kernel.symbols;
        let waiting = waiting
            .into_iter()
            .map(|(cpu, w)| WaitingCpu {
                cpu,
                addr: w.addr,
                addr_symbol: w.addr.and_then(|a| syms.lookup(a)).map(|l| l.to_string()),
                rip_symbol: syms.describe(w.rip),
                irq_enabled: w.irq_enabled,
            })
            .collect();
        self.finish(Outcome::AllWaiting { waiting });
    }

    /// `cpu` finished bring-up.
    pub fn cpu_online(&self, cpu: usize) {
        let mut r = lock(&self.record);
        if !r.online.contains(&cpu) {
            r.online.push(cpu);
            if r.online.len() == self.nr_cpus {
                r.all_online_at = Some(Instant::now());
            }
        }
    }

    /// A hypercall the host refused.
    pub fn count_bad_hypercall(&self, cpu: usize, why: String) {
        let mut r = lock(&self.record);
        if r.bad_hypercalls.len() < MAX_BAD_HYPERCALLS_KEPT {
            r.bad_hypercalls.push((cpu, why));
        } else {
            r.dropped.bad_hypercalls += 1;
        }
    }

    /// A write to the UART.
    pub fn serial_write(&self, offset: u8, value: u8) {
        // The UART only errors when raising its (unwired) interrupt.
        let _ = lock(&self.serial).write(offset, value);
    }

    /// Bytes written one by one to the UART's transmit register (a `ConsoleWrite` line).
    pub fn serial_write_all(&self, bytes: &[u8]) {
        let mut serial = lock(&self.serial);
        for &b in bytes {
            let _ = serial.write(0, b);
        }
    }

    /// A read of the UART.
    pub fn serial_read(&self, offset: u8) -> u8 {
        lock(&self.serial).read(offset)
    }
}
