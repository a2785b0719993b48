//! `ps`: the tasks of the guest's task pool.
use std::fmt::Write as _;

use lockvmm_abi::task::TaskState;

use super::Inspector;

impl Inspector {
    /// Every task of the pool (crash's `ps`).
    pub(super) fn ps(&self) -> String {
        let a = self.analysis();
        let mut s = String::from("   PID    CPU  TASK              ST  COMM\n");
        let (Some(base), Some((size, count))) = (
            self.syms.addr_of("task_pool"),
            self.dwarf.array_of("task_pool"),
        ) else {
            return s;
        };
        let Some(state_off) = self.dwarf.member_offset("task_struct", "state") else {
            return s;
        };
        let cpu_off = self.dwarf.member_offset("task_struct", "cpu");
        let running: Vec<u64> = (0..self.snap.cpus.len())
            .filter_map(|c| a.task_on(c).map(|t| t.addr))
            .collect();
        // The pool's size comes from the DWARF: at most the guest's MAX_TASKS is meaningful.
        for i in 0..count.min(lockvmm_abi::task::MAX_TASKS as u64) {
            let at = base.wrapping_add(i.wrapping_mul(size));
            let Some(t) = a.task_at(at) else { continue };
            let state = a.mem.u32(at + state_off).ok().and_then(TaskState::from_raw);
            if state.is_none_or(|s| s == TaskState::Dead)
                || (t.pid == 0 && i as usize >= self.snap.cpus.len())
            {
                continue;
            }
            let cpu = cpu_off.and_then(|o| a.mem.u32(at + o).ok()).unwrap_or(0);
            // crash prints RU for running and runnable tasks alike; `>` marks the running ones.
            let st = state.map_or("??", TaskState::name);
            let mark = if running.contains(&at) { '>' } else { ' ' };
            let _ = writeln!(
                s,
                "{mark}{:>6} {:>5}  {at:016x}  {st}  {}",
                t.pid, cpu, t.comm
            );
        }
        s
    }
}
