//! The trace ring buffer (ftrace's per-CPU buffers, Linux's `kernel/trace/ring_buffer.c`,
//! simplified to fixed-size records): its layout in guest memory, the event types and the
//! event classes a scenario's `[trace] events` selects.
//!
//! The guest allocates one buffer per CPU at boot (when
//! [`instrument::TRACE`](crate::knob::instrument::TRACE) is set) and publishes each one's
//! direct-map address in the symbol [`TRACE_BUFFERS_SYMBOL`] (`[u64; NR_CPUS]`, 0: none). A
//! buffer is a [`TraceBufHeader`] followed by `nr_entries` [`TraceEntry`] records, written in
//! overwrite mode: record `n` (counting from 0 since boot) lives in slot `n % nr_entries`, so
//! the last `nr_entries` records survive.

/// The guest symbol holding each CPU's buffer address (`[u64; NR_CPUS]`).
pub const TRACE_BUFFERS_SYMBOL: &str = "trace_buffers";
/// The guest symbol of the machine-wide record counter (`AtomicU64`): the next
/// [`TraceEntry::seq`]. The host takes one when it records its own action.
pub const TRACE_SEQ_SYMBOL: &str = "trace_seq";
/// The guest symbol of the event classes it records (`u32`, [`class`] bits; 0 until the
/// buffers exist). The host records hooks only when [`class::HOOK`] is set.
pub const TRACE_CLASSES_SYMBOL: &str = "trace_classes";
/// [`TraceBufHeader::magic`]: "LVTRACE1".
pub const TRACE_MAGIC: u64 = u64::from_le_bytes(*b"LVTRACE1");
/// The default size of each CPU's buffer, in KiB (the scenario's `buffer_kib`).
pub const TRACE_DEFAULT_KIB: u32 = 64;
/// The largest buffer a scenario may ask for, in KiB per CPU.
pub const TRACE_MAX_KIB: u32 = 4096;

/// The head of one CPU's buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceBufHeader {
    /// [`TRACE_MAGIC`].
    pub magic: u64,
    /// Records written since boot (the next one goes to slot `written % nr_entries`).
    pub written: u64,
    /// Slots after the header.
    pub nr_entries: u32,
    /// The CPU the buffer belongs to.
    pub cpu: u32,
}

/// One record (40 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceEntry {
    /// The virtual clock when it was written (`BootInfo::vtime_ns`).
    pub ts_ns: u64,
    /// A machine-wide sequence number: only one vCPU runs at a time, so it orders events
    /// that share a timestamp.
    pub seq: u64,
    /// Where it happened (the caller for irq-flag, preempt and lock events).
    pub ip: u64,
    /// The event's datum: see [`TraceEvent`].
    pub arg: u64,
    /// `current`'s pid (0: the idle task or none yet).
    pub pid: u32,
    /// A [`TraceEvent`].
    pub event: u16,
    /// [`flags`] bits (ftrace's latency columns).
    pub flags: u8,
    /// The low byte of `preempt_count`.
    pub preempt: u8,
}

/// Size of a [`TraceEntry`].
pub const TRACE_ENTRY_SIZE: usize = core::mem::size_of::<TraceEntry>();
const _: () = assert!(TRACE_ENTRY_SIZE == 40);
/// Size of a [`TraceBufHeader`].
pub const TRACE_HEADER_SIZE: usize = core::mem::size_of::<TraceBufHeader>();
const _: () = assert!(TRACE_HEADER_SIZE == 24);

/// [`TraceEntry::flags`], as ftrace's `TRACE_FLAG_*` (`kernel/trace/trace.h`).
pub mod flags {
    /// Interrupts were disabled (`d`).
    pub const IRQS_OFF: u8 = 1 << 0;
    /// In hardirq context (`h`).
    pub const HARDIRQ: u8 = 1 << 1;
    /// In softirq context (`s`).
    pub const SOFTIRQ: u8 = 1 << 2;
    /// In NMI context (`Z` with hardirq).
    pub const NMI: u8 = 1 << 3;
    /// A reschedule was pending (`N`).
    pub const NEED_RESCHED: u8 = 1 << 4;
}

contract_enum! {
    /// [`TraceEntry::event`]: what happened, and what `ip` and `arg` hold.
    pub enum TraceEvent: u16 {
        /// Interrupts were disabled (`irq_disable`); ip = caller.
        IrqDisable = 1,
        /// Interrupts are about to be enabled (`irq_enable`); ip = caller.
        IrqEnable = 2,
        /// Preemption went off, count 0 → 1 (`preempt_disable`); ip = caller.
        PreemptDisable = 3,
        /// Preemption is about to go on, count 1 → 0 (`preempt_enable`); ip = caller.
        PreemptEnable = 4,
        /// A lock is taken but busy (`contention_begin`); arg = lock, ip = caller.
        LockContended = 5,
        /// A lock was taken (`lock_acquired`); arg = lock, ip = caller.
        LockAcquired = 6,
        /// A lock is released (`lock_release`); arg = lock, ip = caller.
        LockReleased = 7,
        /// A hardware interrupt handler starts (`irq_handler_entry`); arg = vector.
        IrqEntry = 8,
        /// It returns (`irq_handler_exit`); arg = vector.
        IrqExit = 9,
        /// A softirq runs (`softirq_entry`); arg = softirq number.
        SoftirqEntry = 10,
        /// It returns (`softirq_exit`); arg = softirq number.
        SoftirqExit = 11,
        /// An NMI handler starts (`nmi_handler` entry); arg = 2 (the NMI vector).
        NmiEntry = 12,
        /// It returns.
        NmiExit = 13,
        /// `sched_switch`; arg = next pid << 32 | prev pid.
        SchedSwitch = 14,
        /// An hrtimer callback runs (`hrtimer_expire_entry`); ip = its function, arg = timer.
        HrtimerExpire = 15,
        /// A timer_list callback runs (`timer_expire_entry`); ip = its function, arg = timer.
        TimerExpire = 16,
        /// The soft-lockup watchdog was touched (`touch_softlockup_watchdog`); ip = caller.
        WatchdogTouch = 17,
        /// A watchdog check ran; arg = [`WatchdogCheck`] << 32 | verdict (1: lockup).
        WatchdogCheck = 18,
        /// A hook point reported to the host; ip = where, arg = hook id << 32 | low 32 bits of
        /// its arg. The host writes this record (see [`TraceEvent::HostAction`]).
        Hook = 19,
        /// The host acted on the hook just reported; arg = number of actions. The host writes
        /// this record and the hook's, while the CPU is stopped in the hook's hypercall, so
        /// they come before any interrupt the action injects and the guest's hook sites do
        /// not change.
        HostAction = 20,
        /// A printk record was stored; arg = its sequence number in `__log_buf`.
        Printk = 21,
    }
}

contract_enum! {
    /// Which watchdog check a [`TraceEvent::WatchdogCheck`] is.
    pub enum WatchdogCheck: u32 {
        /// The soft-lockup check in `watchdog_timer_fn`.
        Soft = 1,
        /// The hard-lockup check in `watchdog_overflow_callback` (NMI).
        Hard = 2,
    }
}

impl TraceEvent {
    /// The name ftrace gives the event (`trace-cmd report`'s event column).
    pub const fn name(self) -> &'static str {
        match self {
            Self::IrqDisable => "irq_disable",
            Self::IrqEnable => "irq_enable",
            Self::PreemptDisable => "preempt_disable",
            Self::PreemptEnable => "preempt_enable",
            Self::LockContended => "contention_begin",
            Self::LockAcquired => "lock_acquired",
            Self::LockReleased => "lock_release",
            Self::IrqEntry => "irq_handler_entry",
            Self::IrqExit => "irq_handler_exit",
            Self::SoftirqEntry => "softirq_entry",
            Self::SoftirqExit => "softirq_exit",
            Self::NmiEntry => "nmi_handler_entry",
            Self::NmiExit => "nmi_handler_exit",
            Self::SchedSwitch => "sched_switch",
            Self::HrtimerExpire => "hrtimer_expire_entry",
            Self::TimerExpire => "timer_expire_entry",
            Self::WatchdogTouch => "watchdog_touch",
            Self::WatchdogCheck => "watchdog_check",
            Self::Hook => "lockvmm_hook",
            Self::HostAction => "lockvmm_host_action",
            Self::Printk => "console",
        }
    }

    /// The [`class`] bit that turns the event on.
    pub const fn class(self) -> u32 {
        match self {
            Self::IrqDisable | Self::IrqEnable => class::IRQ_FLAGS,
            Self::PreemptDisable | Self::PreemptEnable => class::PREEMPT,
            Self::LockContended | Self::LockAcquired | Self::LockReleased => class::LOCK,
            Self::IrqEntry | Self::IrqExit | Self::NmiEntry | Self::NmiExit => class::IRQ,
            Self::SoftirqEntry | Self::SoftirqExit => class::SOFTIRQ,
            Self::SchedSwitch => class::SCHED,
            Self::HrtimerExpire | Self::TimerExpire => class::TIMER,
            Self::WatchdogTouch | Self::WatchdogCheck => class::WATCHDOG,
            Self::Hook | Self::HostAction => class::HOOK,
            Self::Printk => class::PRINTK,
        }
    }
}

/// Event classes: `BootInfo::trace_events` bits, named by the scenario's `[trace] events`.
pub mod class {
    /// `irq_disable`/`irq_enable` (the irqsoff tracer's events).
    pub const IRQ_FLAGS: u32 = 1 << 0;
    /// `preempt_disable`/`preempt_enable`.
    pub const PREEMPT: u32 = 1 << 1;
    /// Lock contention, acquisition and release.
    pub const LOCK: u32 = 1 << 2;
    /// Hardirq and NMI handler entry and exit.
    pub const IRQ: u32 = 1 << 3;
    /// Softirq entry and exit.
    pub const SOFTIRQ: u32 = 1 << 4;
    /// `sched_switch`.
    pub const SCHED: u32 = 1 << 5;
    /// hrtimer and timer_list expiry.
    pub const TIMER: u32 = 1 << 6;
    /// Watchdog touches and checks.
    pub const WATCHDOG: u32 = 1 << 7;
    /// Hook points and host actions.
    pub const HOOK: u32 = 1 << 8;
    /// printk.
    pub const PRINTK: u32 = 1 << 9;
    /// Every class.
    pub const ALL: u32 = (1 << 10) - 1;
    /// The names a scenario uses, with their bits.
    pub const NAMES: [(&str, u32); 10] = [
        ("irq_flags", IRQ_FLAGS),
        ("preempt", PREEMPT),
        ("lock", LOCK),
        ("irq", IRQ),
        ("softirq", SOFTIRQ),
        ("sched", SCHED),
        ("timer", TIMER),
        ("watchdog", WATCHDOG),
        ("hook", HOOK),
        ("printk", PRINTK),
    ];
}
