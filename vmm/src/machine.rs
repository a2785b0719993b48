//! A machine: the VM, its memory and kernel, the vCPU threads under the run token, and the
//! supervisor that waits for the outcome and catches vCPUs that never yield.
use std::fs::File;
use std::os::unix::thread::JoinHandleExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use event_manager::{EventManager, EventOps, Events, MutEventSubscriber, SubscriberOps};
use kvm_ioctls::VmFd;
use lockvmm_abi::{
    BOOT_MAGIC, BootInfo, CLOCKEVENT_PADDR, NO_EVENT, NR_CPUS, PROGRAM_MAX, PROGRAM_PADDR,
};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::signal::{Killable, SIGRTMIN, register_signal_handler};
use vmm_sys_util::timerfd::TimerFd;

use crate::devices::serial::{ConsoleSink, ConsoleText, SerialConsole, new_console};
use crate::loader::{KernelImage, LoadError};
use crate::memory::{GuestMemory, MemError};
use crate::pmu::Pmu;
use crate::report::{HookEvent, LockupEvent, Outcome, WaitingCpu};
use crate::sched::{CpuState, Idle, Scheduler};
use crate::snapshot::{self, Snapshot, VcpuState};
use crate::vcpu;
use crate::vm::{self, VmError};

/// Everything a run needs to know.
pub struct MachineConfig {
    pub vcpus: usize,
    pub memory_mib: u64,
    pub kernel: KernelImage,
    /// The encoded scenario program (see `crate::program`).
    pub program: Vec<u8>,
    /// Echo the guest console to stdout.
    pub echo_console: bool,
    /// Also write the guest console here.
    pub console_log: Option<PathBuf>,
    pub kvm_device: PathBuf,
    /// How long a vCPU may run guest code without yielding before it counts as stalled.
    pub stall_timeout: Duration,
    /// The kernel's knobs (watchdog sysctls, fault modes).
    pub knobs: Knobs,
    /// The run ends when the virtual clock would pass this.
    pub max_vtime_ns: u64,
    /// End the run once a lockup has been detected and the kernel has printed its report.
    pub stop_on_lockup: bool,
    /// What the host does at hook points.
    pub actions: Vec<HookAction>,
    /// Names of the scenario's locks (`lab_locks[i]`), for reports.
    pub lock_names: Vec<String>,
}

/// When a host action fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// When a CPU reaches this hook point.
    Hook(u64),
    /// When the virtual clock reaches this time (ns).
    Time(u64),
}

/// A host action (see `scenario::ActionSpec`).
#[derive(Debug, Clone)]
pub struct HookAction {
    pub when: When,
    /// For a hook: only when this CPU reaches it. For a time: the CPU acted on.
    pub cpu: Option<usize>,
    /// The CPU acted on (default: the CPU at the hook, or `cpu`).
    pub target: Option<usize>,
    pub deliver: crate::scenario::Deliver,
    pub once: bool,
}

/// The id of a hook by name.
pub fn hook_id(name: &str) -> Option<u64> {
    (1..16).find(|&id| lockvmm_abi::hook::name(id) == Some(name))
}

/// Kernel knobs passed in `BootInfo`, with Linux's defaults.
#[derive(Debug, Clone, Copy)]
pub struct Knobs {
    pub watchdog_thresh: u32,
    pub softlockup_panic: bool,
    pub hardlockup_panic: bool,
    pub nmi_watchdog: bool,
    pub softlockup_all_cpu_backtrace: bool,
    pub lbr_gfp_mode: u32,
    /// A framebuffer console (`tty0`) besides the serial one.
    pub console_fbcon: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            watchdog_thresh: 10,
            softlockup_panic: false,
            hardlockup_panic: false,
            nmi_watchdog: true,
            softlockup_all_cpu_backtrace: false,
            lbr_gfp_mode: lockvmm_abi::knob::LBR_GFP_KERNEL,
            console_fbcon: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error(transparent)]
    Memory(#[from] MemError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{requested} vCPUs requested, but {limit}")]
    TooManyVcpus { requested: usize, limit: String },
    #[error("the scenario program is {0} bytes; at most {PROGRAM_MAX} fit in guest memory")]
    ProgramTooBig(usize),
    #[error("cannot write the console log {path}: {source}")]
    ConsoleLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set up the host side: {0}")]
    Host(String),
}

/// What a finished run leaves behind.
pub struct RunResult {
    pub outcome: Outcome,
    /// CPUs in the order they reported online.
    pub online: Vec<usize>,
    pub console: String,
    pub memory: GuestMemory,
    pub kernel: KernelImage,
    pub timings: Timings,
    /// Hypercalls the host refused (CPU, why).
    pub bad_hypercalls: Vec<(usize, String)>,
    /// Lockups the kernel's detectors reported, in order.
    pub lockups: Vec<LockupEvent>,
    /// Hook points the guest passed, in order.
    pub hooks: Vec<HookEvent>,
    /// The virtual clock when the run ended.
    pub vtime_ns: u64,
    /// NMIs the emulated PMU delivered, per CPU.
    pub pmu_nmis: Vec<u64>,
    /// The machine frozen at the first lockup, panic or fault, if any.
    pub snapshot: Option<Snapshot>,
}

/// Wall-clock milestones, from the start of `Machine::run`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Timings {
    /// When `Machine::run` started (the origin of the other fields).
    #[serde(skip)]
    pub t0: Instant,
    pub vcpus_created_ms: f64,
    pub all_online_ms: Option<f64>,
    pub finished_ms: f64,
}

/// Per-vCPU bookkeeping shared with the supervisor.
#[derive(Default)]
pub struct CpuSlot {
    /// Milliseconds (since the machine started) of the last entry into the guest.
    last_entry_ms: AtomicU64,
    /// Set by the supervisor before it kicks a stalled vCPU.
    pub stall_kick: AtomicBool,
    pub exited: AtomicBool,
}

impl CpuSlot {
    pub fn since_entry_ms(&self) -> u64 {
        let now = START.get().map_or(0, |s| s.elapsed().as_millis() as u64);
        now.saturating_sub(self.last_entry_ms.load(Ordering::Acquire))
    }
}

/// A process-wide clock origin for the per-vCPU timestamps.
static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

pub struct Machine {
    pub vm: VmFd,
    pub memory: GuestMemory,
    pub kernel: KernelImage,
    pub sched: Scheduler,
    pub nr_cpus: usize,
    cpus: Vec<CpuSlot>,
    serial: Mutex<SerialConsole>,
    outcome: Mutex<Option<Outcome>>,
    stopped: AtomicBool,
    stop_evt: EventFd,
    online: Mutex<Vec<usize>>,
    all_online_at: Mutex<Option<Instant>>,
    bad_hypercalls: Mutex<Vec<(usize, String)>>,
    now_ns: AtomicU64,
    pub max_vtime_ns: u64,
    stop_on_lockup: bool,
    pmus: Mutex<Vec<Pmu>>,
    lockups: Mutex<Vec<LockupEvent>>,
    hooks: Mutex<Vec<HookEvent>>,
    /// Host actions, and whether each has fired.
    actions: Mutex<Vec<(HookAction, bool)>>,
    lock_names: Vec<String>,
    /// The first snapshot of the run.
    snapshot: Mutex<Option<Snapshot>>,
    /// Captures delivered by parked vCPU threads for the snapshot being taken.
    captures: Mutex<Vec<Option<VcpuState>>>,
    captures_done: std::sync::Condvar,
    capture_started: Mutex<Option<Instant>>,
}

/// How long a snapshot waits for parked vCPUs to report their state.
const CAPTURE_TIMEOUT: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Bad hypercalls kept for the report (the count beyond is not).
const MAX_BAD_HYPERCALLS_KEPT: usize = 64;

impl Machine {
    pub fn cpu(&self, cpu: usize) -> &CpuSlot {
        &self.cpus[cpu]
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Records how the run ended (the first outcome wins) and stops every vCPU.
    pub fn finish(&self, outcome: Outcome) {
        {
            let mut o = lock(&self.outcome);
            if o.is_none() {
                *o = Some(outcome);
            }
        }
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

    pub fn pmu_read(&self, cpu: usize, msr: u32) -> Option<u64> {
        lock(&self.pmus)[cpu].read(msr, self.now_ns())
    }

    pub fn pmu_write(&self, cpu: usize, msr: u32, value: u64) -> bool {
        let now = self.now_ns();
        lock(&self.pmus)[cpu].write(msr, value, now)
    }

    pub fn pmu_next_overflow(&self, cpu: usize, now: u64) -> Option<u64> {
        lock(&self.pmus)[cpu].next_overflow(now)
    }

    pub fn pmu_overflow(&self, cpu: usize, now: u64) {
        lock(&self.pmus)[cpu].overflow(now);
    }

    /// A lockup detector fired.
    pub fn record_lockup(&self, event: LockupEvent) {
        lock(&self.lockups).push(event);
    }

    pub fn record_hook(&self, event: HookEvent) {
        lock(&self.hooks).push(event);
    }

    /// The deliveries (and their target CPUs) the scenario asks for when `cpu` reaches `hook`
    /// (each `once` action only the first time).
    pub fn actions_for(&self, hook: u64, cpu: usize) -> Vec<(crate::scenario::Deliver, usize)> {
        let mut out = Vec::new();
        for (a, fired) in lock(&self.actions).iter_mut() {
            if a.when == When::Hook(hook) && a.cpu.is_none_or(|c| c == cpu) && !(a.once && *fired) {
                *fired = true;
                out.push((a.deliver, a.target.unwrap_or(cpu)));
            }
        }
        out
    }

    /// When the next timed action is due.
    pub fn next_timed_action(&self) -> Option<u64> {
        lock(&self.actions)
            .iter()
            .filter(|(_, fired)| !fired)
            .filter_map(|(a, _)| match a.when {
                When::Time(t) => Some(t),
                When::Hook(_) => None,
            })
            .min()
    }

    /// Performs every timed action due by `now` (from the clock, while every vCPU waits).
    pub fn run_timed_actions(&self, now: u64) {
        let due: Vec<(crate::scenario::Deliver, usize)> = lock(&self.actions)
            .iter_mut()
            .filter(|(a, fired)| !fired && matches!(a.when, When::Time(t) if t <= now))
            .map(|(a, fired)| {
                *fired = true;
                (a.deliver, a.target.or(a.cpu).unwrap_or(0))
            })
            .collect();
        for (d, target) in due {
            self.perform(d, target);
        }
    }

    /// Delivers one action to `target`. Returns true when `target` must pause (the caller,
    /// if it is that CPU, blocks).
    pub fn perform(&self, d: crate::scenario::Deliver, target: usize) -> bool {
        use crate::scenario::Deliver;
        if target >= self.nr_cpus {
            return false;
        }
        match d {
            Deliver::TimerTick => crate::clock::fire_next_timer(self, target),
            Deliver::Nmi => self.deliver_nmi(target),
            Deliver::PmuOverflow => {
                self.pmu_overflow(target, self.now_ns());
                self.deliver_nmi(target);
            }
            Deliver::Pause => {
                self.sched.pause(target);
                return true;
            }
            Deliver::Resume => self.sched.resume(target),
        }
        false
    }

    /// Whether the run should end now because a lockup was reported.
    pub fn stop_requested_by_lockup(&self) -> bool {
        self.stop_on_lockup && !lock(&self.lockups).is_empty()
    }

    pub fn finish_with_lockups(&self) {
        let events = lock(&self.lockups).clone();
        self.finish(Outcome::Lockup { events });
    }

    /// Whether a snapshot was taken already.
    pub fn has_snapshot(&self) -> bool {
        lock(&self.snapshot).is_some()
    }

    /// Freezes the machine's picture: this vCPU (the caller's, holding the run token or the
    /// last to wait) captures itself, every parked vCPU captures itself on request, then guest
    /// memory is copied. Only the first snapshot of a run is kept.
    pub fn take_snapshot(&self, cpu: usize, vcpu: &kvm_ioctls::VcpuFd, reason: String) {
        if self.has_snapshot() {
            return;
        }
        let t0 = Instant::now();
        *lock(&self.capture_started) = Some(t0);
        *lock(&self.captures) = vec![None; self.nr_cpus];
        let epoch = self.sched.request_capture();
        let own = snapshot::capture(vcpu, cpu).unwrap_or(VcpuState {
            cpu,
            ..Default::default()
        });
        self.deliver_capture(cpu, epoch, own);
        let deadline = t0 + CAPTURE_TIMEOUT;
        let mut caps = lock(&self.captures);
        while caps.iter().any(Option::is_none) && Instant::now() < deadline {
            caps = self
                .captures_done
                .wait_timeout(caps, deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let states = self.sched.states();
        let cpus: Vec<VcpuState> = caps
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
            freeze_us,
            memory_copy_us: t0.elapsed().as_micros() as u64 - freeze_us,
        });
    }

    /// A parked vCPU's answer to capture request `epoch`.
    pub fn deliver_capture(&self, cpu: usize, _epoch: u64, mut state: VcpuState) {
        let started = lock(&self.capture_started).unwrap_or_else(Instant::now);
        state.freeze_us = started.elapsed().as_micros() as u64;
        let mut caps = lock(&self.captures);
        if let Some(slot) = caps.get_mut(cpu) {
            *slot = Some(state);
        }
        self.captures_done.notify_all();
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

    pub fn cpu_online(&self, cpu: usize) {
        let mut online = lock(&self.online);
        if !online.contains(&cpu) {
            online.push(cpu);
            if online.len() == self.nr_cpus {
                *lock(&self.all_online_at) = Some(Instant::now());
            }
        }
    }

    pub fn count_bad_hypercall(&self, cpu: usize, why: String) {
        let mut bad = lock(&self.bad_hypercalls);
        if bad.len() < MAX_BAD_HYPERCALLS_KEPT {
            bad.push((cpu, why));
        }
    }

    pub fn serial_write(&self, offset: u8, value: u8) {
        // The UART only errors when raising its (unwired) interrupt.
        let _ = lock(&self.serial).write(offset, value);
    }

    pub fn serial_read(&self, offset: u8) -> u8 {
        lock(&self.serial).read(offset)
    }

    /// Builds and runs a machine until it stops.
    pub fn run(cfg: MachineConfig) -> Result<RunResult, MachineError> {
        let t0 = Instant::now();
        let _ = START.set(t0);
        let kvm = vm::open_kvm(&cfg.kvm_device)?;
        let max = vm::max_vcpus(&kvm).min(NR_CPUS);
        if cfg.vcpus == 0 || cfg.vcpus > max {
            let limit = if cfg.vcpus == 0 {
                "a machine needs at least 1".to_string()
            } else {
                format!("this KVM and the guest kernel allow at most {max}")
            };
            return Err(MachineError::TooManyVcpus {
                requested: cfg.vcpus,
                limit,
            });
        }
        if cfg.program.len() as u64 > PROGRAM_MAX {
            return Err(MachineError::ProgramTooBig(cfg.program.len()));
        }

        let memory = GuestMemory::new(cfg.memory_mib)?;
        memory.setup_page_tables()?;
        memory.setup_boot_gdt()?;
        cfg.kernel.load(&memory)?;
        memory.write_phys(PROGRAM_PADDR, &cfg.program)?;
        let k = cfg.knobs;
        memory.write_boot_info(&BootInfo {
            magic: BOOT_MAGIC,
            nr_cpus: cfg.vcpus as u32,
            mem_bytes: memory.size(),
            program_paddr: PROGRAM_PADDR,
            program_len: cfg.program.len() as u64,
            vtime_ns: 0,
            watchdog_thresh: k.watchdog_thresh,
            softlockup_panic: k.softlockup_panic.into(),
            hardlockup_panic: k.hardlockup_panic.into(),
            nmi_watchdog: k.nmi_watchdog.into(),
            softlockup_all_cpu_backtrace: k.softlockup_all_cpu_backtrace.into(),
            lbr_gfp_mode: k.lbr_gfp_mode,
            console_fbcon: k.console_fbcon.into(),
            ..Default::default()
        })?;
        // No CPU has a timer armed until it programs one.
        memory.write_phys(CLOCKEVENT_PADDR, &NO_EVENT.to_le_bytes().repeat(NR_CPUS))?;

        let vm = vm::create_vm(&kvm, &memory)?;
        vm::trap_msrs(&kvm, &vm, &Pmu::MSRS)?;
        let cpuid = vcpu::supported_cpuid(&kvm)?;
        let mut vcpus = Vec::with_capacity(cfg.vcpus);
        for cpu in 0..cfg.vcpus {
            let rip = if cpu == 0 {
                cfg.kernel.entry_bsp
            } else {
                cfg.kernel.entry_ap
            };
            vcpus.push(vcpu::create_vcpu(&vm, &cpuid, cpu, rip)?);
        }
        let vcpus_created = t0.elapsed();

        let log = match &cfg.console_log {
            Some(path) => Some(
                File::create(path).map_err(|source| MachineError::ConsoleLog {
                    path: path.clone(),
                    source,
                })?,
            ),
            None => None,
        };
        let console = Arc::new(Mutex::new(ConsoleText::default()));
        let sink = ConsoleSink::new(cfg.echo_console, log, console.clone())
            .with_symbols(cfg.kernel.symbols.clone());
        let host_err = |e: std::io::Error| MachineError::Host(e.to_string());
        let machine = Arc::new(Machine {
            vm,
            memory: memory.clone(),
            kernel: cfg.kernel.clone(),
            sched: Scheduler::new(cfg.vcpus),
            nr_cpus: cfg.vcpus,
            cpus: (0..cfg.vcpus).map(|_| CpuSlot::default()).collect(),
            serial: Mutex::new(new_console(sink)),
            outcome: Mutex::new(None),
            stopped: AtomicBool::new(false),
            stop_evt: EventFd::new(libc::EFD_NONBLOCK).map_err(host_err)?,
            online: Mutex::new(Vec::new()),
            all_online_at: Mutex::new(None),
            bad_hypercalls: Mutex::new(Vec::new()),
            now_ns: AtomicU64::new(0),
            max_vtime_ns: cfg.max_vtime_ns,
            stop_on_lockup: cfg.stop_on_lockup,
            pmus: Mutex::new(vec![Pmu::default(); cfg.vcpus]),
            lockups: Mutex::new(Vec::new()),
            hooks: Mutex::new(Vec::new()),
            actions: Mutex::new(cfg.actions.iter().cloned().map(|a| (a, false)).collect()),
            lock_names: cfg.lock_names.clone(),
            snapshot: Mutex::new(None),
            captures: Mutex::new(Vec::new()),
            captures_done: std::sync::Condvar::new(),
            capture_started: Mutex::new(None),
        });

        install_kick_handler()?;
        let mut threads = Vec::with_capacity(cfg.vcpus);
        for (cpu, fd) in vcpus.into_iter().enumerate() {
            let m = machine.clone();
            let handle = std::thread::Builder::new()
                .name(format!("vcpu{cpu}"))
                .spawn(move || vcpu::vcpu_thread(m, fd, cpu))
                .map_err(host_err)?;
            threads.push(handle);
        }

        supervise(&machine, &threads, cfg.stall_timeout)?;
        join_all(&machine, threads);

        let _ = lock(&machine.serial).writer_mut().finish();
        let outcome = lock(&machine.outcome).take().unwrap_or(Outcome::HostError {
            message: "the machine stopped without an outcome".into(),
        });
        let console = std::mem::take(&mut lock(&console).text);
        let all_online_ms = lock(&machine.all_online_at).map(|t| (t - t0).as_secs_f64() * 1e3);
        Ok(RunResult {
            outcome,
            online: lock(&machine.online).clone(),
            console,
            memory,
            kernel: cfg.kernel,
            timings: Timings {
                t0,
                vcpus_created_ms: vcpus_created.as_secs_f64() * 1e3,
                all_online_ms,
                finished_ms: t0.elapsed().as_secs_f64() * 1e3,
            },
            bad_hypercalls: std::mem::take(&mut lock(&machine.bad_hypercalls)),
            lockups: std::mem::take(&mut lock(&machine.lockups)),
            hooks: std::mem::take(&mut lock(&machine.hooks)),
            vtime_ns: machine.now_ns(),
            pmu_nmis: lock(&machine.pmus).iter().map(|p| p.overflows).collect(),
            snapshot: lock(&machine.snapshot).take(),
        })
    }
}

impl CpuSlot {
    pub fn mark_entry(&self) {
        let now = START.get().map_or(0, |s| s.elapsed().as_millis() as u64);
        self.last_entry_ms.store(now, Ordering::Release);
    }
}

/// What the run token knew of a vCPU, in words.
fn describe_sched(s: &CpuState, syms: &crate::symbols::Symbols) -> String {
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

/// The signal that kicks a vCPU thread out of `KVM_RUN`.
fn kick_signal() -> i32 {
    SIGRTMIN()
}

fn install_kick_handler() -> Result<(), MachineError> {
    extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // Delivering the signal interrupts a running KVM_RUN (EINTR); immediate_exit also
        // catches the thread just before it enters.
        crate::vcpu::request_immediate_exit();
    }
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = register_signal_handler(kick_signal(), on_kick).map_err(|e| {
            MachineError::Host(format!("cannot install the vCPU kick signal handler: {e}"))
        });
    });
    result
}

/// Waits (on event-manager) for the machine to stop, checking once a second that the vCPU
/// holding the run token keeps yielding.
fn supervise(
    m: &Arc<Machine>,
    threads: &[JoinHandle<()>],
    stall_timeout: Duration,
) -> Result<(), MachineError> {
    fn host_err(e: impl std::fmt::Display) -> MachineError {
        MachineError::Host(format!("supervisor: {e}"))
    }
    let mut timer = TimerFd::new().map_err(host_err)?;
    timer
        .reset(Duration::from_millis(250), Some(Duration::from_millis(250)))
        .map_err(host_err)?;
    let supervisor = Arc::new(Mutex::new(Supervisor {
        machine: m.clone(),
        timer,
        stop: m.stop_evt.try_clone().map_err(host_err)?,
        pthreads: threads.iter().map(|t| t.as_pthread_t()).collect(),
        stall_timeout,
        done: false,
    }));
    let mut events: EventManager<Arc<Mutex<Supervisor>>> =
        EventManager::new().map_err(|e| MachineError::Host(format!("event manager: {e:?}")))?;
    events.add_subscriber(supervisor.clone());
    while !lock(&supervisor).done {
        events
            .run()
            .map_err(|e| MachineError::Host(format!("event manager: {e:?}")))?;
    }
    Ok(())
}

struct Supervisor {
    machine: Arc<Machine>,
    timer: TimerFd,
    stop: EventFd,
    pthreads: Vec<libc::pthread_t>,
    stall_timeout: Duration,
    done: bool,
}

impl MutEventSubscriber for Supervisor {
    fn init(&mut self, ops: &mut EventOps) {
        let _ = ops.add(Events::new(&self.stop, EventSet::IN));
        let _ = ops.add(Events::new(&self.timer, EventSet::IN));
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        use std::os::fd::AsRawFd;
        if events.fd() == self.stop.as_raw_fd() {
            let _ = self.stop.read();
            self.done = true;
            return;
        }
        let _ = self.timer.wait();
        if self.machine.is_stopped() {
            self.done = true;
            return;
        }
        if let Some(cpu) = self.machine.sched.holder() {
            let slot = self.machine.cpu(cpu);
            if slot.since_entry_ms() >= self.stall_timeout.as_millis() as u64 {
                slot.stall_kick.store(true, Ordering::Release);
                kick_thread(self.pthreads[cpu]);
            }
        }
    }
}

fn kick_thread(thread: libc::pthread_t) {
    // SAFETY: `thread` is a live vCPU thread of this process (it is joined only after the
    // supervisor returns) and the kick signal has a no-op handler installed.
    unsafe {
        libc::pthread_kill(thread, kick_signal());
    }
}

/// Joins every vCPU thread; one still in `KVM_RUN` is kicked until it leaves.
fn join_all(m: &Machine, threads: Vec<JoinHandle<()>>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for (cpu, t) in threads.iter().enumerate() {
        while !m.cpu(cpu).exited.load(Ordering::Acquire) && Instant::now() < deadline {
            let _ = t.kill(kick_signal());
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    for (cpu, t) in threads.into_iter().enumerate() {
        if m.cpu(cpu).exited.load(Ordering::Acquire) {
            let _ = t.join();
        }
        // A thread that never left KVM_RUN is detached; the process exits soon after.
    }
}
