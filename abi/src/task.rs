//! `task_struct` values the host reads out of guest memory.

/// Size of `task_struct::comm` and [`TaskDesc::comm`](crate::TaskDesc), NUL included
/// (Linux's `TASK_COMM_LEN`).
pub const TASK_COMM_LEN: usize = 16;

/// Entries of the guest's task pool (`task_pool`): the idle task of every possible CPU
/// ([`NR_CPUS`](crate::NR_CPUS)), one `watchdog/N` thread per CPU, and the scenario's tasks.
pub const MAX_TASKS: usize = 2 * crate::NR_CPUS + 64;

/// How many scenario tasks the guest can create on a machine of `vcpus` CPUs that also runs
/// `kthreads` other kernel threads (`khungtaskd` when the hung-task detector is on): the pool
/// less the idle tasks, the `watchdog/N` threads and those. A task beyond is never created, and
/// the run would idle to its time limit.
pub const fn max_lab_tasks(vcpus: usize, kthreads: usize) -> usize {
    MAX_TASKS.saturating_sub(crate::NR_CPUS + vcpus + kthreads)
}

contract_enum! {
    /// `task_struct::state`, with Linux's values (those of the seeds' kernels). Every state the
    /// guest puts a task in.
    pub enum TaskState: u32 {
        /// `TASK_RUNNING`: running, or runnable on a runqueue.
        Running = 0,
        /// `TASK_INTERRUPTIBLE`: sleeping (the watchdog threads between runs).
        Interruptible = 1,
        /// `TASK_UNINTERRUPTIBLE`: sleeping until a wake-up (`msleep`, a new kthread).
        Uninterruptible = 2,
        /// `TASK_DEAD`: exited, or a pool entry never used.
        Dead = 64,
    }
}

impl TaskState {
    /// The state as `crash`'s `ps` prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Running => "RU",
            Self::Interruptible => "IN",
            Self::Uninterruptible => "UN",
            Self::Dead => "DE",
        }
    }
}
