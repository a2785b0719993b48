//! `ps`: the tasks of the guest's task pool.
use std::fmt::Write as _;

use lockvmm_abi::task::TaskState;

use super::Inspector;

impl Inspector {
    /// Every task of the pool (crash's `ps`).
    pub(super) fn ps(&self) -> String {
        let a = self.analysis();
        let mut s = String::from("   PID    CPU  TASK              ST  COMM\n");
        let running: Vec<u64> = (0..self.snap.cpus.len())
            .filter_map(|c| a.task_on(c).map(|t| t.addr))
            .collect();
        for t in a.tasks() {
            // crash prints RU for running and runnable tasks alike; `>` marks the running ones.
            let st = t.state.map_or("??", TaskState::name);
            let mark = if running.contains(&t.info.addr) {
                '>'
            } else {
                ' '
            };
            let _ = writeln!(
                s,
                "{mark}{:>6} {:>5}  {:016x}  {st}  {}",
                t.info.pid, t.cpu, t.info.addr, t.info.comm
            );
        }
        s
    }
}
