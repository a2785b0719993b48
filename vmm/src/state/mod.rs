//! Plain data at the bottom of the host: registers, the frozen machine, backtraces, lock waits and
//! how a run ended. Nothing here talks to KVM or reads guest memory; every other layer builds or
//! reads these types, and [`text`] escapes untrusted text before anything prints it.
pub mod backtrace;
pub mod exit;
pub mod hex;
pub mod locks;
pub mod outcome;
pub mod regs;
pub mod snapshot;
pub mod splat;
pub mod text;
pub mod vtime;

pub use backtrace::{BtItem, CpuBacktrace, TaskInfo};
pub use exit::ExitStatus;
pub use locks::{Context, HeldLock, LockWait};
pub use outcome::{
    FaultKind, FaultReport, HookEvent, LockupEvent, LockupKind, Outcome, OutcomeClass, WaitingCpu,
};
pub use regs::Regs;
pub use snapshot::{Events, Lapic, Snapshot, Sregs, VcpuState};
pub use splat::Splat;
