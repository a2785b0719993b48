//! Lock waits: which CPU spins on which lock, in which context, and who holds it.
use lockvmm_abi::locking::LockContext;
use serde::{Deserialize, Serialize};

/// The context a CPU spins in, as reports name it (the guest's encoding is
/// `lockvmm_abi::locking::LockContext`). Ordered by nesting: a higher context
/// can interrupt a lower one, so a CPU's innermost wait is its highest context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Context {
    #[serde(rename = "task")]
    Task,
    #[serde(rename = "softirq")]
    Softirq,
    #[serde(rename = "hardirq")]
    Hardirq,
    #[serde(rename = "NMI")]
    Nmi,
}

impl Context {
    /// As Linux and the report name it.
    pub fn name(self) -> &'static str {
        match self {
            Context::Task => "task",
            Context::Softirq => "softirq",
            Context::Hardirq => "hardirq",
            Context::Nmi => "NMI",
        }
    }
}

impl From<LockContext> for Context {
    fn from(c: LockContext) -> Self {
        match c {
            LockContext::Task => Context::Task,
            LockContext::Softirq => Context::Softirq,
            LockContext::Hardirq => Context::Hardirq,
            LockContext::Nmi => Context::Nmi,
        }
    }
}

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// A CPU spinning on a lock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockWait {
    pub cpu: usize,
    pub context: Context,
    #[serde(with = "crate::state::hex")]
    pub lock: u64,
    /// `runqueues[56].__lock`, or a scenario lock's own name.
    pub lock_name: String,
    /// The CPU the lock word names as owner.
    pub holder: Option<usize>,
}

/// The innermost wait of `cpu`: the one in its most deeply nested context. The diagnosis and
/// the expectations both ask this, so they agree on which lock a CPU is stuck on.
pub fn innermost(waits: &[LockWait], cpu: usize) -> Option<&LockWait> {
    waits
        .iter()
        .filter(|w| w.cpu == cpu)
        .max_by_key(|w| w.context)
}

/// A lock whose word says it is held, and by which CPU.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeldLock {
    #[serde(with = "crate::state::hex")]
    pub lock: u64,
    pub lock_name: String,
    pub holder: usize,
}
