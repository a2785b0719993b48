//! The scheduler (Linux's `kernel/sched`): tasks, per-CPU runqueues, context switch, the tick,
//! the idle loop, and the autogroup path that `setsid` takes.
pub mod autogroup;
pub mod core;
pub mod fair;
pub mod idle;
pub mod might_sleep;
pub mod rq_lock;
pub mod task;
