//! What the guest's lockdep (`CONFIG_PROVE_LOCKING`) and `might_sleep`
//! (`CONFIG_DEBUG_ATOMIC_SLEEP`) tell the host about a report: the guest fills a
//! [`SplatRecord`] and passes its address with [`Hook::LockdepSplat`](crate::hook::Hook), so
//! the host knows each splat as facts (kind, lock class, CPU, task) and never scrapes the
//! console text.

/// Bytes of a class name in a [`SplatRecord`] (NUL-padded, truncated).
pub const CLASS_NAME_LEN: usize = 32;

contract_enum! {
    /// Which report the guest printed: [`SplatRecord::kind`].
    pub enum SplatKind: u32 {
        /// `WARNING: inconsistent lock state` (`print_usage_bug`).
        InconsistentLockState = 1,
        /// `WARNING: possible circular locking dependency detected` (`print_circular_bug`).
        CircularDependency = 2,
        /// `WARNING: possible recursive locking detected` (`print_deadlock_bug`).
        RecursiveLocking = 3,
        /// `WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected` (and the SOFTIRQ
        /// one; `print_bad_irq_dependency`).
        IrqSafeToUnsafe = 4,
        /// `WARNING: bad unlock balance detected!` (`print_unlock_imbalance_bug`).
        BadUnlockBalance = 5,
        /// `WARNING: possible irq lock inversion dependency detected`
        /// (`print_irq_inversion_bug`).
        IrqLockInversion = 6,
        /// `BUG: sleeping function called from invalid context` (`__might_resched`).
        SleepInAtomic = 7,
    }
}

impl SplatKind {
    /// The name reports, `result.json` and scenario files use.
    pub const fn name(self) -> &'static str {
        match self {
            Self::InconsistentLockState => "inconsistent_lock_state",
            Self::CircularDependency => "circular_dependency",
            Self::RecursiveLocking => "recursive_locking",
            Self::IrqSafeToUnsafe => "irq_safe_to_unsafe",
            Self::BadUnlockBalance => "bad_unlock_balance",
            Self::IrqLockInversion => "irq_lock_inversion",
            Self::SleepInAtomic => "sleep_in_atomic",
        }
    }

    /// The kind a report or scenario names; `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Lockdep's usage bits (`enum lock_usage_bit`, from `kernel/locking/lockdep_states.h`:
/// per state, USED_IN, USED_IN_READ, ENABLED, ENABLED_READ), as Linux prints them
/// (`usage_str[]` in `kernel/locking/lockdep.c`). [`NO_USAGE`] where a report has none.
pub const USAGE_STR: [&str; 9] = [
    "IN-HARDIRQ-W",
    "IN-HARDIRQ-R",
    "HARDIRQ-ON-W",
    "HARDIRQ-ON-R",
    "IN-SOFTIRQ-W",
    "IN-SOFTIRQ-R",
    "SOFTIRQ-ON-W",
    "SOFTIRQ-ON-R",
    "INITIAL USE",
];

/// [`SplatRecord::prev_usage`]/`new_usage` when the report is not about usage.
pub const NO_USAGE: u32 = u32::MAX;

/// One report, as the guest passes it to the host.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SplatRecord {
    /// A [`SplatKind`].
    pub kind: u32,
    /// The CPU that printed it.
    pub cpu: u32,
    /// The task it was printed for (`current`).
    pub pid: u32,
    /// Number of valid entries of `chain` (0 unless a circular dependency).
    pub chain_len: u32,
    /// `current->comm`.
    pub comm: [u8; crate::task::TASK_COMM_LEN],
    /// The lock being acquired or released (`hlock->instance`), or 0.
    pub lock: u64,
    /// Its class's key and name (`&rq->__lock`, the scenario's lock name, …).
    pub class_key: u64,
    /// The class's name.
    pub class_name: [u8; CLASS_NAME_LEN],
    /// The other class of the report (the held lock of a circular, recursive or irq-order
    /// report; the irq-unsafe lock of a HARDIRQ-safe -> HARDIRQ-unsafe one), or empty.
    pub other_key: u64,
    /// The other class's name.
    pub other_name: [u8; CLASS_NAME_LEN],
    /// Inconsistent lock state: the usage the class had ([`USAGE_STR`] index) and the one
    /// that conflicts with it; [`NO_USAGE`] otherwise.
    pub prev_usage: u32,
    /// The usage that conflicts with `prev_usage`.
    pub new_usage: u32,
    /// Where the bug was hit (the acquire, release or `might_sleep` call site).
    pub ip: u64,
    /// The class keys of a circular dependency's chain, from the lock being acquired.
    pub chain: [u64; MAX_CHAIN],
    /// `might_sleep`: the preemption count, and 1 if interrupts were disabled.
    pub preempt_count: u32,
    /// 1 if interrupts were disabled.
    pub irqs_disabled: u32,
    /// Where `prev_usage` was first seen (the top of its stack trace: for IN-HARDIRQ-W, where
    /// the lock was taken in hardirq), 0-terminated.
    pub prev_trace: [u64; USAGE_TRACE],
    /// Where `new_usage` was first seen (for HARDIRQ-ON-W, where interrupts were enabled with
    /// the lock held).
    pub new_trace: [u64; USAGE_TRACE],
}

impl SplatRecord {
    /// A record with nothing in it.
    pub const EMPTY: SplatRecord = SplatRecord {
        kind: 0,
        cpu: 0,
        pid: 0,
        chain_len: 0,
        comm: [0; crate::task::TASK_COMM_LEN],
        lock: 0,
        class_key: 0,
        class_name: [0; CLASS_NAME_LEN],
        other_key: 0,
        other_name: [0; CLASS_NAME_LEN],
        prev_usage: NO_USAGE,
        new_usage: NO_USAGE,
        ip: 0,
        chain: [0; MAX_CHAIN],
        preempt_count: 0,
        irqs_disabled: 0,
        prev_trace: [0; USAGE_TRACE],
        new_trace: [0; USAGE_TRACE],
    };
}

impl Default for SplatRecord {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// Entries of [`SplatRecord::prev_trace`] and `new_trace`.
pub const USAGE_TRACE: usize = 4;

/// Entries of [`SplatRecord::chain`].
pub const MAX_CHAIN: usize = 8;

/// `name` up to its first NUL, if it is UTF-8.
pub fn c_name(name: &[u8]) -> &str {
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    core::str::from_utf8(&name[..len]).unwrap_or("?")
}
