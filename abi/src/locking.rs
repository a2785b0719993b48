//! The lab's spinlocks as the host reads them: the owner encoded in the lock word, and the
//! `qspinlock_spinning_on` table of the locks each CPU waits for.
//!
//! The guest's `struct qspinlock` is Linux's 32-bit word (bits 0–7 the locked byte, bit 8
//! pending, bits 16–31 the tail), with one lab difference: the locked byte holds the owner's CPU
//! number + 1 instead of 1 ([`locked_byte`]), so the owner of any lock can be read from its word
//! alone ([`lock_owner`]). [`NR_CPUS`](crate::NR_CPUS) = 255 keeps that in a byte.

/// The locked byte of a lock word (Linux's `_Q_LOCKED_MASK`).
pub const Q_LOCKED_MASK: u32 = 0xff;

/// The locked byte of a lock held by `cpu`: `cpu + 1` (`cpu` is below
/// [`NR_CPUS`](crate::NR_CPUS), so it fits).
pub const fn locked_byte(cpu: u32) -> u8 {
    locked_val(cpu) as u8
}

/// [`locked_byte`] as a lock word (Linux's `_Q_LOCKED_VAL`): what the owner's `cmpxchg` writes
/// into a free lock. The same value without a truncation, for the guest's lock fast path.
pub const fn locked_val(cpu: u32) -> u32 {
    cpu + 1
}

/// The CPU holding the lock whose word is `word`; `None` when it is free.
pub const fn lock_owner(word: u32) -> Option<usize> {
    match word & Q_LOCKED_MASK {
        0 => None,
        b => Some(b as usize - 1),
    }
}

contract_enum! {
    /// The context a CPU takes a spinlock in: the index of its MCS node (Linux's per-CPU
    /// `qnodes[]`) and of its slot in `qspinlock_spinning_on`. A higher value is a more deeply
    /// nested context (each may interrupt the ones below it), and the order compares them so.
    #[derive(PartialOrd, Ord)]
    pub enum LockContext: usize {
        /// Task (process) context.
        Task = 0,
        /// Softirq context.
        Softirq = 1,
        /// Hardirq context.
        Hardirq = 2,
        /// NMI context.
        Nmi = 3,
    }
}

impl LockContext {
    /// The name reports use: `"task"`, `"softirq"`, `"hardirq"` or `"NMI"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Softirq => "softirq",
            Self::Hardirq => "hardirq",
            Self::Nmi => "NMI",
        }
    }
}

/// Number of [`LockContext`]s: MCS nodes per CPU (Linux's `MAX_NODES`).
pub const NR_LOCK_CONTEXTS: usize = LockContext::ALL.len();

/// The guest's `[[AtomicU64; NR_LOCK_CONTEXTS]; NR_CPUS]` of the lock (address) each CPU is
/// spinning on in the slow path, per context; 0 when none.
pub const SPINNING_ON_SYMBOL: &str = "qspinlock_spinning_on";

/// The flat index of `cpu`'s slot for `ctx` in [`SPINNING_ON_SYMBOL`]'s table (multiply by 8
/// for the byte offset).
pub const fn spinning_on_slot(cpu: usize, ctx: LockContext) -> usize {
    cpu * NR_LOCK_CONTEXTS + ctx as usize
}

/// Ticket spinlocks (the 3.10 and 2.6 kernels' `arch_spinlock_t`): the same 32-bit word holds
/// `tickets.head` (bits 0–15, the ticket being served) and `tickets.tail` (bits 16–31, the
/// next ticket to draw). Each waiter draws `TICKET_LOCK_INC` (2, as with paravirt spinlocks,
/// RHEL 7's configuration and seed 002's tickets); the lock is free when head == tail.
pub const TICKET_LOCK_INC: u32 = 2;

/// A ticket word's `(head, tail)`.
pub const fn ticket_head_tail(word: u32) -> (u16, u16) {
    (word as u16, (word >> 16) as u16)
}

/// A ticket word names no owner, so the guest keeps the ticket locks each CPU holds here
/// (lock debugging, as `owner_cpu` of a debug spinlock): `[[u64; TICKET_HELD_MAX]; NR_CPUS]`
/// of lock addresses, 0 for a free slot.
pub const TICKET_HELD_SYMBOL: &str = "arch_spin_held";
/// Ticket locks one CPU can hold at once, as recorded in [`TICKET_HELD_SYMBOL`].
pub const TICKET_HELD_MAX: usize = 8;
/// The guest's `u32` that says which Linux generation it replays (a raw
/// [`KernelVersion`](crate::knob::KernelVersion)), and so which spinlock word it uses.
pub const KERNEL_VERSION_SYMBOL: &str = "lockvmm_kernel_version";
