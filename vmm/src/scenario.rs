//! Scenario files (`scenarios/*.toml`): the machine, and the tasks the guest runs.
//!
//! Parsing is strict (`deny_unknown_fields`); every error names the file, line and column, and
//! an unknown key comes with the nearest valid one.
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::memory::{MAX_MEM_MIB, MIN_MEM_MIB};

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
    #[serde(default)]
    pub faults: FaultSpec,
    #[serde(default)]
    pub run: RunSpec,
    /// Host actions at hook points.
    #[serde(default)]
    pub action: Vec<Spanned<ActionSpec>>,
    /// What the run must show (see `expect`).
    #[serde(default)]
    pub expect: crate::expect::ExpectSpec,
    /// Spinlocks the tasks use by name.
    #[serde(default)]
    pub lock: Vec<LockSpec>,
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
    pub deliver: Deliver,
    /// Act only the first time (default), or every time.
    #[serde(default = "yes")]
    pub once: bool,
}

fn yes() -> bool {
    true
}

/// What the host does to the target CPU.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
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
}

/// The lockup detectors' sysctls (Linux's defaults).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchdogSpec {
    pub watchdog_thresh: Spanned<i64>,
    pub softlockup_panic: bool,
    pub hardlockup_panic: bool,
    pub nmi_watchdog: bool,
    pub softlockup_all_cpu_backtrace: bool,
}

impl Default for WatchdogSpec {
    fn default() -> Self {
        WatchdogSpec {
            watchdog_thresh: Spanned::new(0..0, 10),
            softlockup_panic: false,
            hardlockup_panic: false,
            nmi_watchdog: true,
            softlockup_all_cpu_backtrace: false,
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
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec {
            max_virtual_seconds: Spanned::new(0..0, 120.0),
            stop_on_lockup: true,
            power_off_when_done: true,
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

/// What a task does, one step at a time.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum OpSpec {
    /// Read a u64 at a kernel virtual address.
    Read {
        addr: Addr,
    },
    /// Write a u64 at a kernel virtual address.
    Write {
        addr: Addr,
        value: Addr,
    },
    /// Make this CPU triple-fault.
    TripleFault,
    /// Loop in the kernel without ever yielding to the host (the VMM's stall kick ends it).
    SpinWithoutYielding,
    /// Issue a raw hypercall (for testing the host's validation).
    Hypercall {
        nr: Addr,
        #[serde(default)]
        args: Vec<Addr>,
    },
    /// Print this many console lines.
    Printk {
        lines: Addr,
    },
    /// Read a u64 at `addr` with the frame pointer set to `frame_pointer` (tests unwinding).
    ReadWithBadFramePointer {
        addr: Addr,
        frame_pointer: Addr,
    },
    /// Loop forever in `hog_thread` with preemption off (seed 001's soft-lockup module).
    Hog,
    /// `spin_lock_irqsave` then loop forever (seed 001's hard-lockup module).
    HogSpinLockIrqsave,
    /// `msleep(ms)`.
    Sleep {
        ms: Addr,
    },
    /// Busy (interrupts on, preemptible) for `ms` virtual milliseconds.
    Busy {
        ms: Addr,
    },
    /// Busy forever (interrupts on, preemptible): a runaway kernel task.
    BusyLoop,
    /// Drop to user mode and spin there forever, never making a system call.
    UserBusyLoop,
    /// `setsid()`: a new autogroup, onlined on every CPU under each rq lock.
    Setsid,
    /// `perf_event_open` of an LBR event on this task (`perf record -b`).
    PerfEventOpenLbr,
    /// Load `timer_mod`, which arms a timer in its module memory.
    ModuleLoad {
        #[serde(default)]
        variant: ModuleVariant,
    },
    /// Unload `timer_mod` (its memory is unmapped).
    ModuleUnload,
    /// With interrupts off, allocate from a fresh slab cache with `gfp`.
    KmallocIrqsOff {
        gfp: GfpSpec,
    },
    /// Take a scenario lock (`[[lock]]`): `spin_lock`, `spin_lock_irq` or `spin_lock_irqsave`.
    Lock {
        lock: String,
        #[serde(default)]
        mode: LockMode,
    },
    /// Release a scenario lock the way it was taken.
    Unlock {
        lock: String,
        #[serde(default)]
        mode: LockMode,
    },
    /// `local_irq_disable()` / `local_irq_enable()`.
    IrqDisable,
    IrqEnable,
    /// `preempt_disable()` / `preempt_enable()`.
    PreemptDisable,
    PreemptEnable,
    /// `kmem_cache_alloc(…, gfp)` in the current context (interrupts as they are).
    Kmalloc {
        gfp: GfpSpec,
    },
    /// `raise_softirq(HI_SOFTIRQ)`; it runs at the next interrupt exit.
    RaiseSoftirq,
    /// Arm a timer on this CPU that fires in `ms` virtual milliseconds.
    ArmTimer {
        ms: Addr,
    },
}

impl OpSpec {
    /// The op's name if the task never gets past it (it loops, ends the task or the machine).
    fn never_returns(&self) -> Option<&'static str> {
        Some(match self {
            OpSpec::TripleFault => "triple_fault",
            OpSpec::SpinWithoutYielding => "spin_without_yielding",
            OpSpec::Hog => "hog",
            OpSpec::HogSpinLockIrqsave => "hog_spin_lock_irqsave",
            OpSpec::BusyLoop => "busy_loop",
            OpSpec::UserBusyLoop => "user_busy_loop",
            OpSpec::Setsid => "setsid",
            _ => return None,
        })
    }
}

/// How a lock is taken.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LockMode {
    #[default]
    Plain,
    Irq,
    Irqsave,
}

/// A spinlock the scenario declares; it lives in guest memory and reports name it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockSpec {
    pub name: Spanned<String>,
}

/// How `timer_mod` handles its timer (seed 002's three causes, or correctly).
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ModuleVariant {
    #[default]
    Correct,
    TimerNeverDeleted,
    TimerReadded,
    InitFailed,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
pub enum GfpSpec {
    #[serde(rename = "GFP_KERNEL")]
    Kernel,
    #[serde(rename = "GFP_ATOMIC")]
    Atomic,
}

/// An address or number: a TOML integer, or a string in hex (`"0xffff…"`) or decimal — kernel
/// addresses do not fit TOML's signed 64-bit integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr(pub u64);

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(i) => u64::try_from(i)
                .map(Addr)
                .map_err(|_| serde::de::Error::custom("a negative number is not an address")),
            Raw::Str(s) => parse_u64(&s).map(Addr).ok_or_else(|| {
                serde::de::Error::custom(format!("`{s}` is not a number (use 0x… for hex)"))
            }),
        }
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    let t = s.trim().replace('_', "");
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{col}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        col: usize,
        message: String,
    },
}

/// A scenario with its source, for locating errors.
pub struct LoadedScenario {
    pub path: PathBuf,
    pub source: String,
    pub scenario: Scenario,
}

impl LoadedScenario {
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let source = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(path, source)
    }

    pub fn parse(path: &Path, source: String) -> Result<Self, ScenarioError> {
        let scenario: Scenario = toml::from_str(&source).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let message = with_suggestion(e.message());
            invalid(path, &source, span, message)
        })?;
        let loaded = LoadedScenario {
            path: path.into(),
            source,
            scenario,
        };
        loaded.validate(None)?;
        Ok(loaded)
    }

    /// An error at `span` of this file.
    pub fn error_at(&self, span: Range<usize>, message: impl Into<String>) -> ScenarioError {
        invalid(&self.path, &self.source, span, message.into())
    }

    /// Checks the values serde cannot; `vcpus_override` is the command line's `--vcpus`.
    pub fn validate(&self, vcpus_override: Option<usize>) -> Result<(), ScenarioError> {
        let m = self.scenario.machine.get_ref();
        let vcpus = match vcpus_override {
            Some(v) => v as i64,
            None => *m.vcpus.get_ref(),
        };
        if vcpus < 1 {
            return Err(self.error_at(
                m.vcpus.span(),
                format!("machine.vcpus = {vcpus}: a machine needs at least 1 vCPU"),
            ));
        }
        if let Some(mem) = &m.memory_mib {
            let v = *mem.get_ref();
            if !(MIN_MEM_MIB as i64..=MAX_MEM_MIB as i64).contains(&v) {
                return Err(self.error_at(
                    mem.span(),
                    format!(
                        "machine.memory_mib = {v}: must be between {MIN_MEM_MIB} and {MAX_MEM_MIB}"
                    ),
                ));
            }
        }
        for c in &m.console {
            if !matches!(c.get_ref().as_str(), "ttyS0" | "tty0") {
                return Err(self.error_at(
                    c.span(),
                    format!(
                        "machine.console: unknown console `{}` (ttyS0 or tty0)",
                        c.get_ref()
                    ),
                ));
            }
        }
        for spanned in &self.scenario.action {
            let a = spanned.get_ref();
            match (&a.at_hook, &a.at_time) {
                (Some(h), None) if crate::machine::hook_id(h.get_ref()).is_none() => {
                    let msg = format!(
                        "action.at_hook: unknown hook `{}` (allocate_slab, task_start)",
                        h.get_ref()
                    );
                    return Err(self.error_at(h.span(), msg));
                }
                (None, Some(t)) if !t.get_ref().is_finite() || *t.get_ref() < 0.0 => {
                    return Err(self.error_at(
                        t.span(),
                        "action.at_time must be a time in virtual seconds, 0 or more",
                    ));
                }
                (None, Some(_)) if a.cpu.is_none() && a.target.is_none() => {
                    return Err(self.error_at(
                        spanned.span(),
                        "an action at_time needs `cpu` (or `target`): the CPU to act on",
                    ));
                }
                (Some(_), None) | (None, Some(_)) => {}
                _ => {
                    return Err(self.error_at(
                        spanned.span(),
                        "an action needs exactly one of `at_hook` and `at_time`",
                    ));
                }
            }
            for c in [&a.cpu, &a.target].into_iter().flatten() {
                if !(0..vcpus).contains(c.get_ref()) {
                    return Err(self.error_at(
                        c.span(),
                        format!(
                            "action: CPU {} does not exist (0 to {})",
                            c.get_ref(),
                            vcpus - 1
                        ),
                    ));
                }
            }
        }
        let e = &self.scenario.expect;
        for c in [&e.cpu, &e.holder].into_iter().flatten() {
            if !(0..vcpus).contains(c.get_ref()) {
                return Err(self.error_at(
                    c.span(),
                    format!(
                        "expect: CPU {} does not exist (0 to {})",
                        c.get_ref(),
                        vcpus - 1
                    ),
                ));
            }
        }
        let thresh = &self.scenario.watchdog.watchdog_thresh;
        if !(1..=60).contains(thresh.get_ref()) {
            return Err(self.error_at(
                thresh.span(),
                "watchdog.watchdog_thresh must be 1 to 60 seconds (as Linux)",
            ));
        }
        let limit = &self.scenario.run.max_virtual_seconds;
        if !(*limit.get_ref() > 0.0 && *limit.get_ref() <= 86_400.0) {
            return Err(self.error_at(
                limit.span(),
                "run.max_virtual_seconds must be in (0, 86400]",
            ));
        }
        let names: Vec<&str> = self
            .scenario
            .lock
            .iter()
            .map(|l| l.name.get_ref().as_str())
            .collect();
        if names.len() > lockvmm_abi::op::MAX_LOCKS {
            let at = self.scenario.lock[lockvmm_abi::op::MAX_LOCKS].name.span();
            return Err(self.error_at(at, format!("at most {} locks", lockvmm_abi::op::MAX_LOCKS)));
        }
        for (i, l) in self.scenario.lock.iter().enumerate() {
            if names[..i].contains(&l.name.get_ref().as_str()) {
                return Err(self.error_at(
                    l.name.span(),
                    format!("lock `{}` is declared twice", l.name.get_ref()),
                ));
            }
        }
        for task in &self.scenario.task {
            for op in &task.get_ref().ops {
                if let OpSpec::Lock { lock, .. } | OpSpec::Unlock { lock, .. } = op.get_ref()
                    && !names.contains(&lock.as_str())
                {
                    {
                        let hint = nearest(lock, &names).map_or_else(
                            || " (declare it with [[lock]] name = ...)".to_string(),
                            |n| format!(" (did you mean `{n}`?)"),
                        );
                        return Err(
                            self.error_at(op.span(), format!("no lock named `{lock}`{hint}"))
                        );
                    }
                }
            }
        }
        for task in &self.scenario.task {
            let ops = &task.get_ref().ops;
            if let Some((end, name)) = ops
                .iter()
                .enumerate()
                .find_map(|(i, o)| o.get_ref().never_returns().map(|n| (i, n)))
                && let Some(next) = ops.get(end + 1)
            {
                return Err(self.error_at(
                    next.span(),
                    format!(
                        "this op would never run: `{name}` before it does not return (make it the task's last op)"
                    ),
                ));
            }
        }
        for task in &self.scenario.task {
            let t = task.get_ref();
            let cpu = *t.cpu.get_ref();
            if cpu < 0 || cpu >= vcpus {
                return Err(self.error_at(
                    t.cpu.span(),
                    format!("task.cpu = {cpu}: the machine has CPUs 0 to {}", vcpus - 1),
                ));
            }
            if t.comm.get_ref().is_empty() || t.comm.get_ref().len() > 15 {
                return Err(self.error_at(
                    t.comm.span(),
                    "task.comm must be 1 to 15 bytes (TASK_COMM_LEN)",
                ));
            }
            if let Some(pid) = t
                .pid
                .as_ref()
                .filter(|p| !(1..=i64::from(u32::MAX)).contains(p.get_ref()))
            {
                return Err(self.error_at(pid.span(), "task.pid must be a positive 32-bit number"));
            }
        }
        Ok(())
    }

    pub fn vcpus(&self) -> usize {
        *self.scenario.machine.get_ref().vcpus.get_ref() as usize
    }

    pub fn memory_mib(&self) -> u64 {
        self.scenario
            .machine
            .get_ref()
            .memory_mib
            .as_ref()
            .map_or(DEFAULT_MEMORY_MIB, |m| *m.get_ref() as u64)
    }

    pub fn knobs(&self) -> crate::Knobs {
        let w = &self.scenario.watchdog;
        crate::Knobs {
            watchdog_thresh: *w.watchdog_thresh.get_ref() as u32,
            softlockup_panic: w.softlockup_panic,
            hardlockup_panic: w.hardlockup_panic,
            nmi_watchdog: w.nmi_watchdog,
            softlockup_all_cpu_backtrace: w.softlockup_all_cpu_backtrace,
            lbr_gfp_mode: match self.scenario.faults.lbr_alloc {
                LbrAlloc::GfpKernel => lockvmm_abi::knob::LBR_GFP_KERNEL,
                LbrAlloc::GfpAtomic => lockvmm_abi::knob::LBR_GFP_ATOMIC,
                LbrAlloc::Upstream => lockvmm_abi::knob::LBR_UPSTREAM,
            },
            console_fbcon: self
                .scenario
                .machine
                .get_ref()
                .console
                .iter()
                .any(|c| c.get_ref() == "tty0"),
        }
    }

    /// Index of a declared lock.
    pub fn lock_index(&self, name: &str) -> u64 {
        self.scenario
            .lock
            .iter()
            .position(|l| l.name.get_ref() == name)
            .unwrap_or(0) as u64
    }

    /// The declared locks' names, by index.
    pub fn lock_names(&self) -> Vec<String> {
        self.scenario
            .lock
            .iter()
            .map(|l| l.name.get_ref().clone())
            .collect()
    }

    /// The host actions, for the machine.
    pub fn actions(&self) -> Vec<crate::machine::HookAction> {
        use crate::machine::When;
        self.scenario
            .action
            .iter()
            .filter_map(|a| {
                let a = a.get_ref();
                let when = match (&a.at_hook, &a.at_time) {
                    (Some(h), _) => When::Hook(crate::machine::hook_id(h.get_ref())?),
                    (None, Some(t)) => When::Time((*t.get_ref() * 1e9) as u64),
                    (None, None) => return None,
                };
                Some(crate::machine::HookAction {
                    when,
                    cpu: a.cpu.as_ref().map(|c| *c.get_ref() as usize),
                    target: a.target.as_ref().map(|c| *c.get_ref() as usize),
                    deliver: a.deliver,
                    once: a.once,
                })
            })
            .collect()
    }

    pub fn max_vtime_ns(&self) -> u64 {
        (*self.scenario.run.max_virtual_seconds.get_ref() * 1e9) as u64
    }

    pub fn stop_on_lockup(&self) -> bool {
        self.scenario.run.stop_on_lockup
    }

    /// The scenario's name: its file stem.
    pub fn name(&self) -> String {
        self.path
            .file_stem()
            .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned())
    }
}

fn invalid(path: &Path, source: &str, span: Range<usize>, message: String) -> ScenarioError {
    let (line, col) = line_col(source, span.start);
    ScenarioError::Invalid {
        path: path.into(),
        line,
        col,
        message,
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Turns serde's "unknown field `x`, expected `a`, `b`" into one line with the nearest key.
fn with_suggestion(message: &str) -> String {
    let message = message.trim().replace('\n', " ");
    let Some(rest) = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))
    else {
        return message;
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return message;
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match nearest(unknown, &candidates) {
        Some(best) => format!("{message} (did you mean `{best}`?)"),
        None => message,
    }
}

/// The candidate closest to `word`, if it is close enough to be a typo.
fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .copied()
        .min_by_key(|c| edit_distance(word, c))
        .filter(|c| edit_distance(word, c) <= c.len().max(2) / 2 + 1)
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<LoadedScenario, ScenarioError> {
        LoadedScenario::parse(Path::new("t.toml"), src.to_string())
    }

    #[test]
    fn unknown_key_names_line_and_nearest_key() {
        let err = parse("description = \"x\"\n[machine]\nvcpu = 2\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("t.toml:3:1:"), "{err}");
        assert!(err.contains("did you mean `vcpus`?"), "{err}");
    }

    #[test]
    fn zero_vcpus_is_rejected_at_its_value() {
        let err = parse("description = \"x\"\n[machine]\nvcpus = 0\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("t.toml:3:9:"), "{err}");
    }

    #[test]
    fn addresses_accept_hex_strings_and_integers() {
        let s = parse(
            "description = \"x\"\n[machine]\nvcpus = 2\n[[task]]\ncomm = \"t\"\ncpu = 1\n\
             ops = [{ op = \"read\", addr = \"0xffffc90000001000\" }, { op = \"printk\", lines = 3 }]\n",
        )
        .unwrap();
        let ops = &s.scenario.task[0].get_ref().ops;
        assert!(matches!(
            ops[0].get_ref(),
            OpSpec::Read {
                addr: Addr(0xffff_c900_0000_1000)
            }
        ));
        assert!(matches!(
            ops[1].get_ref(),
            OpSpec::Printk { lines: Addr(3) }
        ));
    }

    #[test]
    fn task_on_missing_cpu_is_rejected() {
        let err =
            parse("description = \"x\"\n[machine]\nvcpus = 2\n[[task]]\ncomm = \"t\"\ncpu = 2\n")
                .err()
                .unwrap()
                .to_string();
        assert!(err.starts_with("t.toml:6:7:"), "{err}");
    }
}
