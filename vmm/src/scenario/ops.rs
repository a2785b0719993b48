//! The ops a task performs, as a scenario file spells them, and the values they take.
use serde::Deserialize;

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
    TripleFault {},
    /// Loop in the kernel without ever yielding to the host (the VMM's stall kick ends it).
    SpinWithoutYielding {},
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
    Hog {},
    /// `spin_lock_irqsave` then loop forever (seed 001's hard-lockup module).
    HogSpinLockIrqsave {},
    /// `msleep(ms)`.
    Sleep {
        ms: Addr,
    },
    /// Busy (interrupts on, preemptible) for `ms` virtual milliseconds.
    Busy {
        ms: Addr,
    },
    /// Busy forever (interrupts on, preemptible): a runaway kernel task.
    BusyLoop {},
    /// Drop to user mode and spin there forever, never making a system call.
    UserBusyLoop {},
    /// `setsid()`: a new autogroup, onlined on every CPU under each rq lock.
    Setsid {},
    /// `perf_event_open` of an LBR event on this task (`perf record -b`).
    PerfEventOpenLbr {},
    /// Load `timer_mod`, which arms a timer in its module memory.
    ModuleLoad {
        #[serde(default)]
        variant: ModuleVariant,
    },
    /// Unload `timer_mod` (its memory is unmapped).
    ModuleUnload {},
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
    IrqDisable {},
    IrqEnable {},
    /// `preempt_disable()` / `preempt_enable()`.
    PreemptDisable {},
    PreemptEnable {},
    /// `kmem_cache_alloc(…, gfp)` in the current context (interrupts as they are).
    Kmalloc {
        gfp: GfpSpec,
    },
    /// Raise a softirq on this CPU: a `[[handler]]` of context `softirq` (as a tasklet), or,
    /// without `handler`, HI_SOFTIRQ (which only logs). It runs at the next interrupt exit or
    /// `local_bh_enable`.
    RaiseSoftirq {
        #[serde(default)]
        handler: Option<String>,
    },
    /// Arm a timer on this CPU that fires in `ms` virtual milliseconds; its callback runs the
    /// `[[handler]]` of context `timer` named `handler` (without one, it only logs).
    ArmTimer {
        ms: Addr,
        #[serde(default)]
        handler: Option<String>,
    },
    /// Run `ops` `times` times (a loop; `repeat`s nest).
    Repeat {
        times: Addr,
        /// The body (errors in it point at the `repeat`: spans do not survive the nesting).
        ops: Vec<OpSpec>,
    },
    /// Send CPU `cpu` the vector of the `[[handler]]` (context `hardirq`) named `handler`.
    SendIpi {
        cpu: i64,
        handler: String,
    },
    /// `smp_call_function_single(cpu, handler, wait)`: CPU `cpu` runs the `hardirq` handler
    /// from its IPI; with `wait` (default), this CPU spins in `csd_lock_wait` until it has.
    SmpCallFunctionSingle {
        cpu: i64,
        handler: String,
        #[serde(default = "yes")]
        wait: bool,
    },
    /// Send CPU `cpu` an NMI; its `nmi` handlers run.
    SendNmi {
        cpu: i64,
    },
    /// `local_bh_disable()` / `local_bh_enable()`.
    LocalBhDisable {},
    LocalBhEnable {},
    /// `spin_trylock` (in `mode`): takes the lock only if it is free; a failure is logged.
    Trylock {
        lock: String,
        #[serde(default)]
        mode: LockMode,
    },
    /// `cond_resched()`.
    CondResched {},
    /// `touch_softlockup_watchdog()` / `touch_nmi_watchdog()`.
    TouchSoftlockupWatchdog {},
    TouchNmiWatchdog {},
    /// Report the `mark` hook with this label (an `[[action]]` can act on it).
    Mark {
        label: String,
    },
    /// `read_lock` / `read_unlock` / `write_lock` / `write_unlock` of an rwlock (in `mode`).
    ReadLock {
        lock: String,
        #[serde(default)]
        mode: LockMode,
    },
    ReadUnlock {
        lock: String,
        #[serde(default)]
        mode: LockMode,
    },
    WriteLock {
        lock: String,
        #[serde(default)]
        mode: LockMode,
    },
    WriteUnlock {
        lock: String,
        #[serde(default)]
        mode: LockMode,
    },
}

fn yes() -> bool {
    true
}

impl OpSpec {
    /// The op's name if the task never gets past it (it loops, ends the task or the machine).
    pub fn never_returns(&self) -> Option<&'static str> {
        Some(match self {
            OpSpec::TripleFault {} => "triple_fault",
            OpSpec::SpinWithoutYielding {} => "spin_without_yielding",
            OpSpec::Hog {} => "hog",
            OpSpec::HogSpinLockIrqsave {} => "hog_spin_lock_irqsave",
            OpSpec::BusyLoop {} => "busy_loop",
            OpSpec::UserBusyLoop {} => "user_busy_loop",
            OpSpec::Setsid {} => "setsid",
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
    /// `spin_lock_bh`: bottom halves (softirqs) off on this CPU while held.
    Bh,
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
    DelTimerWithoutSync,
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

impl OpSpec {
    /// Whether the op may sleep or never returns: not allowed in interrupt context.
    pub fn sleeps(&self) -> Option<&'static str> {
        if let Some(n) = self.never_returns() {
            return Some(n);
        }
        Some(match self {
            OpSpec::Sleep { .. } => "sleep",
            OpSpec::CondResched {} => "cond_resched",
            OpSpec::ModuleLoad { .. } => "module_load",
            OpSpec::ModuleUnload {} => "module_unload",
            OpSpec::PerfEventOpenLbr {} => "perf_event_open_lbr",
            OpSpec::SmpCallFunctionSingle { wait: true, .. } => {
                "smp_call_function_single with wait"
            }
            _ => return None,
        })
    }

    /// The scenario lock the op names, if any.
    pub fn lock(&self) -> Option<&str> {
        match self {
            OpSpec::Lock { lock, .. }
            | OpSpec::Unlock { lock, .. }
            | OpSpec::Trylock { lock, .. }
            | OpSpec::ReadLock { lock, .. }
            | OpSpec::ReadUnlock { lock, .. }
            | OpSpec::WriteLock { lock, .. }
            | OpSpec::WriteUnlock { lock, .. } => Some(lock),
            _ => None,
        }
    }
}
