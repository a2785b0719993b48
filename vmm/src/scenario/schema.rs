//! The scenario file's schema (serde, strict: `deny_unknown_fields`): the machine, the
//! watchdog's knobs, the run's limits, the host actions, the locks and the tasks.
use serde::Deserialize;
use toml::Spanned;

use super::expect::ExpectSpec;
use super::ops::OpSpec;

pub const DEFAULT_MEMORY_MIB: u64 = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// One line: what the scenario shows (`lockvmm list`).
    pub description: String,
    pub machine: Spanned<MachineSpec>,
    #[serde(default)]
    pub task: Vec<Spanned<TaskSpec>>,
    #[serde(default)]
    pub watchdog: WatchdogSpec,
    /// The sysctls as Linux names them (`kernel.watchdog_thresh = 10`); they override
    /// `[watchdog]`.
    #[serde(default)]
    pub sysctl: super::sysctl::SysctlSpec,
    #[serde(default)]
    pub faults: FaultSpec,
    /// The debug options the guest kernel runs with (`[debug]`).
    #[serde(default)]
    pub debug: DebugSpec,
    #[serde(default)]
    pub run: RunSpec,
    /// Host actions at hook points.
    #[serde(default)]
    pub action: Vec<Spanned<ActionSpec>>,
    /// What the run must show (see `expect`).
    #[serde(default)]
    pub expect: ExpectSpec,
    /// Spinlocks the tasks use by name.
    #[serde(default)]
    pub lock: Vec<LockSpec>,
    /// Ops that run in interrupt context (hardirq, softirq, timer, NMI).
    #[serde(default)]
    pub handler: Vec<Spanned<HandlerSpec>>,
    /// The guest's trace ring buffer (off without the section).
    pub trace: Option<super::trace::TraceSpec>,
    /// The schedule space `lockvmm explore` searches (see `explore`).
    pub explore: Option<Spanned<super::explore::ExploreSpec>>,
}

/// What a scenario lock is.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LockKindSpec {
    /// `raw_spinlock_t`: `lock`/`unlock`/`trylock` in any mode.
    #[default]
    Spinlock,
    /// `struct mutex`: `lock` sleeps until it is free (`mutex_lock`), `unlock` wakes a waiter.
    Mutex,
    /// `struct semaphore`: `lock` is `down` (sleeps at 0), `unlock` is `up`.
    Semaphore,
    /// A queued `rwlock_t`: `read_lock`/`read_unlock`/`write_lock`/`write_unlock`.
    Rwlock,
}

/// `[[handler]]`: ops that run in interrupt context, through the kernel's real entry paths.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerSpec {
    /// How ops and actions refer to it.
    pub name: Spanned<String>,
    /// The context its ops run in.
    pub context: HandlerContext,
    /// Only on this CPU (default: whichever CPU takes its event).
    pub cpu: Option<Spanned<i64>>,
    /// A `hardirq` handler that also runs from every timer tick (of `cpu`, or every CPU).
    #[serde(default)]
    pub on_tick: bool,
    #[serde(default)]
    pub ops: Vec<Spanned<OpSpec>>,
}

/// The context a handler's ops run in.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HandlerContext {
    /// A device interrupt on its own vector (an `irq` action, `send_ipi`), `on_tick`, or
    /// `smp_call_function_single`'s IPI.
    Hardirq,
    /// A tasklet a task or handler raises (`raise_softirq { handler }`).
    Softirq,
    /// A `timer_list` callback (`arm_timer { handler }`), run by `run_timer_softirq`.
    Timer,
    /// An NMI handler, for NMIs no other handler claims (an `nmi` action, `send_nmi`).
    Nmi,
}

/// What the host does when a CPU reaches a hook point in guest code.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// The hook (`allocate_slab`, `task_start`) …
    pub at_hook: Option<Spanned<String>>,
    /// … or a virtual time, in seconds.
    pub at_time: Option<Spanned<f64>>,
    /// At a hook: only when this CPU reaches it (any CPU if absent). At a time: the CPU acted on.
    pub cpu: Option<Spanned<i64>>,
    /// The CPU acted on, if not the one at the hook (or `cpu`).
    pub target: Option<Spanned<i64>>,
    pub deliver: DeliverSpec,
    /// With `deliver = "irq"`: the `hardirq` handler whose vector is delivered.
    pub handler: Option<Spanned<String>>,
    /// With `at_hook = "lock_acquired"` or `"lock_released"`: only for this lock.
    pub lock: Option<Spanned<String>>,
    /// With `at_hook = "mark"`: only for this label.
    pub label: Option<Spanned<String>>,
    /// Act only the first time (default), or every time.
    #[serde(default = "yes")]
    pub once: bool,
    /// At a hook: act only at its N-th occurrence (counted from 1, among those `cpu`, `lock`
    /// and `label` select): how `lockvmm explore` names one window of many.
    pub nth: Option<Spanned<i64>>,
}

fn yes() -> bool {
    true
}

/// What the host does to the target CPU.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeliverSpec {
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
    /// A device interrupt: the vector of the `hardirq` handler named by `handler`.
    Irq,
    /// Freeze the machine for a report and vmcore (once), and run on.
    Snapshot,
}

/// The lockup detectors' sysctls (Linux's defaults).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchdogSpec {
    pub watchdog_thresh: Spanned<i64>,
    pub softlockup_panic: bool,
    pub hardlockup_panic: bool,
    /// A bool, or the boot parameter's `[panic,][nopanic,][num]` string (`scenario::sysctl`).
    pub nmi_watchdog: Spanned<super::sysctl::NmiWatchdogSpec>,
    pub softlockup_all_cpu_backtrace: bool,
    /// A hard lockup also dumps every other CPU's backtrace by NMI.
    pub hardlockup_all_cpu_backtrace: bool,
    /// The hung-task detector: seconds a task may sleep uninterruptibly before `khungtaskd`
    /// reports it (Linux's default 120; 0 turns it off).
    pub hung_task_timeout_secs: Spanned<i64>,
    /// Panic when a hung task is reported.
    pub hung_task_panic: bool,
}

impl Default for WatchdogSpec {
    fn default() -> Self {
        WatchdogSpec {
            watchdog_thresh: Spanned::new(0..0, 10),
            softlockup_panic: false,
            hardlockup_panic: false,
            nmi_watchdog: Spanned::new(0..0, super::sysctl::NmiWatchdogSpec::Bool(true)),
            softlockup_all_cpu_backtrace: false,
            hardlockup_all_cpu_backtrace: false,
            hung_task_timeout_secs: Spanned::new(0..0, 120),
            hung_task_panic: false,
        }
    }
}

/// How `intel_pmu_lbr_add` gets its buffer (seed 000 and its two fixes).
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
pub enum LbrAlloc {
    #[default]
    #[serde(rename = "GFP_KERNEL")]
    GfpKernel,
    #[serde(rename = "GFP_ATOMIC")]
    GfpAtomic,
    #[serde(rename = "upstream")]
    Upstream,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSpec {
    pub lbr_alloc: LbrAlloc,
}

/// The debug kernel's options: each costs guest instructions, so all are off by default.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DebugSpec {
    /// Lockdep (`CONFIG_PROVE_LOCKING`): lock classes, the dependency graph, irq-usage checks.
    pub lockdep: bool,
    /// `might_sleep()` checks (`CONFIG_DEBUG_ATOMIC_SLEEP`).
    pub debug_atomic_sleep: bool,
}

/// When a run ends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSpec {
    /// Virtual seconds after which the run stops if nothing else ended it.
    pub max_virtual_seconds: Spanned<f64>,
    /// Stop once a lockup was detected and reported (else run on to a panic or the limit).
    pub stop_on_lockup: bool,
    /// Power off once every task has finished its ops (else run on).
    pub power_off_when_done: bool,
    /// Take a snapshot (report, vmcore) when the run ends at its time limit without one, so a
    /// hang nobody detected can still be inspected.
    pub snapshot_at_end: bool,
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec {
            max_virtual_seconds: Spanned::new(0..0, 120.0),
            stop_on_lockup: true,
            power_off_when_done: true,
            snapshot_at_end: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSpec {
    pub vcpus: Spanned<i64>,
    pub memory_mib: Option<Spanned<i64>>,
    /// Consoles: `ttyS0` (always) and optionally `tty0`, a framebuffer console that shows
    /// only messages more severe than KERN_WARNING.
    #[serde(default)]
    pub console: Vec<Spanned<String>>,
    /// The Linux version replayed (`"6.6"`, the default; `"4.4"`, `"3.10"`, `"2.6"`): its
    /// formats, watchdog rules, default thresholds and spinlock (`abi::knob::KernelVersion`).
    pub kernel: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// `task_struct::comm` (at most 15 bytes).
    pub comm: Spanned<String>,
    pub pid: Option<Spanned<i64>>,
    /// The CPU the task is pinned to.
    pub cpu: Spanned<i64>,
    /// Scheduling policy: `SCHED_NORMAL` (default) or `SCHED_FIFO`.
    #[serde(default)]
    pub policy: Policy,
    /// SCHED_FIFO priority, 1..99.
    pub rt_priority: Option<Spanned<i64>>,
    /// Virtual seconds after boot before the task starts its ops.
    pub start_at: Option<Spanned<f64>>,
    #[serde(default)]
    pub ops: Vec<Spanned<OpSpec>>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    #[default]
    #[serde(rename = "SCHED_NORMAL")]
    Normal,
    #[serde(rename = "SCHED_FIFO")]
    Fifo,
}

/// A spinlock the scenario declares; it lives in guest memory and reports name it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockSpec {
    pub name: Spanned<String>,
    /// What it is (default `spinlock`).
    #[serde(default)]
    pub kind: LockKindSpec,
    /// A semaphore's initial count (default 1).
    pub count: Option<Spanned<i64>>,
    /// A kernel lock this name stands for, as a C expression (`runqueues[3].__lock`,
    /// `timer_bases[1].lock`); without it, the lock is the lab's own.
    pub kernel: Option<Spanned<String>>,
}

/// An op with the position errors about it point at (a `repeat`'s body ops point at the
/// `repeat`).
pub type OpAt<'a> = (&'a OpSpec, std::ops::Range<usize>);

/// `list`'s ops, with those inside `repeat`s after their `repeat`, depth first.
pub fn flatten<'a>(list: &'a [Spanned<OpSpec>]) -> Vec<OpAt<'a>> {
    fn walk<'a>(ops: &'a [OpSpec], at: &std::ops::Range<usize>, out: &mut Vec<OpAt<'a>>) {
        for o in ops {
            out.push((o, at.clone()));
            if let OpSpec::Repeat { ops, .. } = o {
                walk(ops, at, out);
            }
        }
    }
    let mut out = Vec::new();
    for o in list {
        out.push((o.get_ref(), o.span()));
        if let OpSpec::Repeat { ops, .. } = o.get_ref() {
            walk(ops, &o.span(), &mut out);
        }
    }
    out
}

impl Scenario {
    /// Every op: the tasks', the handlers', and those inside `repeat`s, depth first.
    pub fn all_ops(&self) -> Vec<OpAt<'_>> {
        let mut out = Vec::new();
        for t in &self.task {
            out.extend(flatten(&t.get_ref().ops));
        }
        for h in &self.handler {
            out.extend(flatten(&h.get_ref().ops));
        }
        out
    }
}
