//! What a machine is given (its configuration, the kernel's knobs, the host actions) and what
//! it leaves behind (the run's result), as data.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lockvmm_abi::PROGRAM_MAX;
use lockvmm_abi::hook::Hook;

use crate::image::{KernelImage, LoadError};
use crate::kvm::VmError;
use crate::memory::{GuestMemory, MemError};
use crate::state::{HookEvent, LockupEvent, Outcome, Snapshot};

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
    /// Take a snapshot when the run reaches its time limit without one.
    pub snapshot_at_end: bool,
    /// Names of the scenario's locks (`lab_locks[i]`), for reports.
    pub lock_names: Vec<String>,
    /// Kernel locks the scenario names (address, name), for reports.
    pub lock_aliases: Vec<(u64, String)>,
    /// What a runaway guest may cost the host.
    pub limits: RunLimits,
    /// Count the guest's instructions for the profile (see `insn_count`).
    pub count_instructions: bool,
}

/// Bounds on what one run may cost the host, whatever the guest does.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// VM exits (port I/O, MMIO, MSRs, hypercalls, kicks) the guest may make without virtual
    /// time advancing by [`PROGRESS_NS`](super::PROGRESS_NS); past it the run stops as a
    /// runaway. A count, not a duration: the verdict does not depend on host speed.
    pub max_exits_without_progress: u64,
    /// Console bytes kept (in memory, in the console log, echoed); the rest is counted and
    /// dropped, and a marker line says how much.
    pub console_bytes: u64,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            max_exits_without_progress: 1_000_000,
            console_bytes: 8 << 20,
        }
    }
}

/// What a run recorded but did not keep, per bounded list: a hostile guest can report hooks,
/// lockups and bad hypercalls without end, and print without end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dropped {
    pub hooks: u64,
    pub lockups: u64,
    pub bad_hypercalls: u64,
    pub console_bytes: u64,
    #[serde(default)]
    pub splats: u64,
}

impl Dropped {
    /// Whether anything was dropped.
    pub fn any(&self) -> bool {
        *self != Dropped::default()
    }
}

/// When a host action fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// When a CPU reaches this hook point.
    Hook(Hook),
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
    pub deliver: Deliver,
    pub once: bool,
    /// At a hook: only when its argument is this (a lock's index, a mark's label).
    pub arg: Option<u64>,
    /// At a hook: only at its N-th matching occurrence (from 1); `lockvmm explore`'s windows.
    pub nth: Option<u64>,
}

/// What the host does to a CPU (a scenario's `[[action]] deliver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deliver {
    /// The CPU's next timer interrupt, now: the clock moves to its next programmed deadline.
    TimerTick,
    /// An NMI.
    Nmi,
    /// A PMU counter overflow: the status bit is set and the NMI delivered.
    PmuOverflow,
    /// Stop running the CPU (it keeps its state) until a `resume`.
    Pause,
    /// Run a paused CPU again.
    Resume,
    /// A device interrupt with this vector.
    Irq(u8),
    /// Freeze the machine for a snapshot (the first of the run), and run on.
    Snapshot,
}

/// Kernel knobs passed in `BootInfo`, with Linux's defaults.
#[derive(Debug, Clone, Copy)]
pub struct Knobs {
    pub watchdog_thresh: u32,
    pub softlockup_panic: bool,
    pub hardlockup_panic: bool,
    pub nmi_watchdog: bool,
    pub softlockup_all_cpu_backtrace: bool,
    pub hardlockup_all_cpu_backtrace: bool,
    pub lbr_gfp_mode: u32,
    /// A framebuffer console (`tty0`) besides the serial one.
    pub console_fbcon: bool,
    /// Count spinlocks per CPU and report `irq_enable_locked` (a scenario acts on it).
    pub irq_enable_hook: bool,
    /// The hung-task detector's timeout (0: off) and whether it panics.
    pub hung_task_timeout_secs: u32,
    pub hung_task_panic: bool,
    /// The debug instrumentation switched on at boot (`lockvmm_abi::knob::instrument` bits).
    pub instrument: u32,
    /// Each CPU's trace ring buffer, in KiB (with `instrument::TRACE`).
    pub trace_buf_kib: u32,
    /// The trace's event classes (`lockvmm_abi::trace::class` bits).
    pub trace_events: u32,
    /// Dump the trace to the console on a panic or oops (`ftrace_dump_on_oops`).
    pub ftrace_dump_on_oops: bool,
    /// The Linux version the guest replays (`[machine] kernel`).
    pub kernel_version: lockvmm_abi::knob::KernelVersion,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            watchdog_thresh: 10,
            softlockup_panic: false,
            hardlockup_panic: false,
            nmi_watchdog: true,
            softlockup_all_cpu_backtrace: false,
            hardlockup_all_cpu_backtrace: false,
            lbr_gfp_mode: lockvmm_abi::knob::LbrGfpMode::GfpKernel.raw(),
            console_fbcon: false,
            irq_enable_hook: false,
            hung_task_timeout_secs: 120,
            hung_task_panic: false,
            instrument: 0,
            trace_buf_kib: 0,
            trace_events: 0,
            ftrace_dump_on_oops: false,
            kernel_version: lockvmm_abi::knob::KernelVersion::V6_6,
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
    /// What the guest's lockdep and `might_sleep` reported, in order.
    pub splats: Vec<crate::state::Splat>,
    /// The virtual clock when the run ended.
    pub vtime_ns: u64,
    /// NMIs the emulated PMU delivered, per CPU.
    pub pmu_nmis: Vec<u64>,
    /// The machine frozen at the first lockup, panic or fault, if any.
    pub snapshot: Option<Snapshot>,
    /// What the bounded lists and the console did not keep.
    pub dropped: Dropped,
    /// Why the console log could not be written (all of it), if it could not.
    pub console_log_error: Option<String>,
    /// Exits by reason and hypercalls by kind.
    pub profile: super::profile::RunProfile,
    /// The run token's hand-out during which the first hook was passed (`restore`'s
    /// snapshot point), if any hook was.
    pub first_hook_grant: Option<u64>,
}

/// Wall-clock milestones, from the start of `Machine::run`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Timings {
    /// When `Machine::run` started (the origin of the other fields).
    #[serde(skip)]
    pub t0: Instant,
    /// When the machine could start: the VM and its memory ready, the boot CPU's vCPU created
    /// or about to be, the others being created behind it (`machine::creation`).
    pub vcpus_created_ms: f64,
    pub all_online_ms: Option<f64>,
    pub finished_ms: f64,
}
