//! Tasks that are not running: what a sleeping task waits on (`blocked_on`), who owns that
//! mutex, and how the hung-task detector's report reads (its stack: `backtrace_of_task`).
use lockvmm_abi::task::TaskState;

use super::Analysis;

impl Analysis<'_> {
    fn task_field_u64(&self, task: u64, field: &str) -> Option<u64> {
        let off = self.dwarf.member_offset("task_struct", field)?;
        self.mem.u64(task.wrapping_add(off)).ok()
    }

    fn task_field_u32(&self, task: u64, field: &str) -> Option<u32> {
        let off = self.dwarf.member_offset("task_struct", field)?;
        self.mem.u32(task.wrapping_add(off)).ok()
    }

    /// A task's state (`task_struct::state`).
    pub fn task_state(&self, task: u64) -> Option<TaskState> {
        self.task_field_u32(task, "state")
            .and_then(TaskState::from_raw)
    }

    /// The CPU a task belongs to.
    pub fn task_cpu(&self, task: u64) -> Option<usize> {
        self.task_field_u32(task, "cpu").map(|c| c as usize)
    }

    /// The mutex or semaphore a task sleeps on, if it does.
    pub fn blocked_on(&self, task: u64) -> Option<u64> {
        self.task_field_u64(task, "blocked_on").filter(|&a| a != 0)
    }

    /// The task that owns a `struct mutex` (0: free).
    pub fn mutex_owner(&self, lock: u64) -> Option<u64> {
        let off = self.dwarf.member_offset("mutex", "owner")?;
        self.mem
            .u64(lock.wrapping_add(off))
            .ok()
            .filter(|&t| t != 0)
    }

    /// A task the hung-task detector reported: what it sleeps on and who holds that.
    pub(super) fn hung_task(&self, task: u64) -> String {
        let name = |t: u64| {
            self.task_at(t).map_or(format!("task {t:#x}"), |i| {
                format!("{} (PID {})", i.comm, i.pid)
            })
        };
        let mut text = format!(
            "Task {} sleeps in TASK_UNINTERRUPTIBLE and has not run since the detector's previous \
             look: the hung-task detector reported it.",
            name(task)
        );
        let Some(lock) = self.blocked_on(task) else {
            text.push_str(" It is not blocked on a mutex or semaphore the lab knows.");
            return text;
        };
        text.push_str(&format!(" It waits on {}", self.name_of(lock)));
        match self.mutex_owner(lock) {
            Some(owner) => {
                text.push_str(&format!(", a mutex owned by {}", name(owner)));
                match (self.task_state(owner), self.blocked_on(owner)) {
                    (Some(lockvmm_abi::task::TaskState::Dead), _) => text.push_str(
                        ", which has exited without unlocking it: nothing will ever release it.",
                    ),
                    (_, Some(other)) => text.push_str(&format!(
                        ", which is itself blocked on {}.",
                        self.name_of(other)
                    )),
                    (Some(s), None) => text.push_str(&format!(
                        " (state {}), which has not released it.",
                        s.name()
                    )),
                    (None, None) => text.push('.'),
                }
            }
            None => text.push_str(
                ", which nobody owns (a semaphore whose count is gone, or a mutex just released).",
            ),
        }
        text
    }
}

impl Analysis<'_> {
    /// `init_uts_ns.name.<field>` (`release`, `nodename`, …), as crash's header reads it.
    pub fn utsname(&self, field: &str) -> Option<String> {
        let base = self.syms.addr_of("init_uts_ns")?;
        let off = self
            .dwarf
            .member_offset("uts_namespace", "name")?
            .checked_add(self.dwarf.member_offset("new_utsname", field)?)?;
        let bytes = self.mem.read(base.checked_add(off)?, 65).ok()?;
        let n = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        (n > 0).then(|| crate::state::text::escape_bytes_line(&bytes[..n]))
    }
}
