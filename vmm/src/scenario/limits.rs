//! Checks that keep a scenario within what the guest can do and the host will spend: no more
//! tasks than the guest can create, real-time priorities Linux accepts, pids that are unique,
//! expected CPUs that exist, console output and a program that fit.
use lockvmm_abi::task::max_lab_tasks;
use lockvmm_abi::{OpDesc, PROGRAM_MAX, ProgramHeader, TaskDesc};

use super::errors::ScenarioError;
use super::ops::OpSpec;
use super::{LoadedScenario, Policy};

/// The most console lines one `printk` op may print (a runaway console is also cut by the run's
/// limits; this keeps the scenario honest).
pub const MAX_PRINTK_LINES: u64 = 10_000;

/// The largest `printk lines` in an op, `repeat` bodies included.
fn printk_lines(op: &OpSpec) -> Option<u64> {
    match op {
        OpSpec::Printk { lines } => Some(lines.0),
        OpSpec::Repeat { ops, .. } => ops.iter().filter_map(printk_lines).max(),
        _ => None,
    }
}

impl LoadedScenario {
    /// The checks of this module; `vcpus` as `validate` resolved it.
    pub(super) fn validate_capacity(&self, vcpus: i64) -> Result<(), ScenarioError> {
        let vcpus_n = usize::try_from(vcpus).unwrap_or(usize::MAX);
        // khungtaskd, unless the hung-task detector is off.
        let kthreads = usize::from(*self.scenario.watchdog.hung_task_timeout_secs.get_ref() != 0);
        let max_tasks = max_lab_tasks(vcpus_n, kthreads);
        if let Some(t) = self.scenario.task.get(max_tasks) {
            return Err(self.error_at(
                t.span(),
                format!(
                    "too many tasks: the guest kernel creates at most {max_tasks} scenario tasks on {vcpus} vCPUs (its pool of {} holds an idle task per possible CPU, a watchdog thread per CPU{})",
                    lockvmm_abi::task::MAX_TASKS,
                    if kthreads > 0 { " and khungtaskd" } else { "" }
                ),
            ));
        }
        let mut pids: Vec<(i64, usize)> = Vec::new();
        for (i, task) in self.scenario.task.iter().enumerate() {
            let t = task.get_ref();
            if let Some(p) = &t.rt_priority {
                let v = *p.get_ref();
                if t.policy != Policy::Fifo {
                    return Err(self.error_at(
                        p.span(),
                        "task.rt_priority is for policy = \"SCHED_FIFO\" only",
                    ));
                }
                if !(1..=99).contains(&v) {
                    return Err(self.error_at(
                        p.span(),
                        format!("task.rt_priority = {v}: must be 1 to 99 (as Linux's SCHED_FIFO)"),
                    ));
                }
            }
            // The pid the program gives the task (see `program::encode`).
            let pid = t.pid.as_ref().map_or(100 + i as i64, |p| *p.get_ref());
            if let Some((_, other)) = pids.iter().find(|(p, _)| *p == pid) {
                let span = t.pid.as_ref().map_or(task.span(), |p| p.span());
                return Err(self.error_at(
                    span,
                    format!(
                        "pid {pid} is already task #{}'s: pids must be unique",
                        other + 1
                    ),
                ));
            }
            pids.push((pid, i));
        }
        let handler_ops = self.scenario.handler.iter().flat_map(|h| &h.get_ref().ops);
        for op in self
            .scenario
            .task
            .iter()
            .flat_map(|t| &t.get_ref().ops)
            .chain(handler_ops)
        {
            if let Some(lines) = printk_lines(op.get_ref()).filter(|&l| l > MAX_PRINTK_LINES) {
                return Err(self.error_at(
                    op.span(),
                    format!("printk lines = {lines}: at most {MAX_PRINTK_LINES}"),
                ));
            }
        }
        if let Some(cs) = &self.scenario.expect.lockup_cpus
            && let Some(c) = cs.get_ref().iter().find(|c| !(0..vcpus).contains(*c))
        {
            return Err(self.error_at(
                cs.span(),
                format!(
                    "expect.lockup_cpus: CPU {c} does not exist (0 to {})",
                    vcpus - 1
                ),
            ));
        }
        self.validate_program_size()
    }

    /// The encoded program must fit the guest's program window; the error points at the first
    /// op past it (counting one descriptor per op as written).
    fn validate_program_size(&self) -> Result<(), ScenarioError> {
        let size = super::program::encode(&self.scenario, &[]).len() as u64;
        if size <= PROGRAM_MAX {
            return Ok(());
        }
        let message = format!(
            "the scenario is too big: its program (tasks, handlers and ops) is {size} bytes, and the guest reserves {PROGRAM_MAX} for it"
        );
        let tasks = self
            .scenario
            .task
            .iter()
            .map(|t| (t.span(), &t.get_ref().ops));
        let handlers = self
            .scenario
            .handler
            .iter()
            .map(|h| (h.span(), &h.get_ref().ops));
        let fixed = size_of::<ProgramHeader>() + self.scenario.task.len() * size_of::<TaskDesc>();
        let mut at = fixed as u64;
        let mut last = None;
        for (span, ops) in tasks.chain(handlers) {
            last = Some(span);
            for op in ops {
                at += size_of::<OpDesc>() as u64;
                if at > PROGRAM_MAX {
                    return Err(self.error_at(op.span(), message));
                }
            }
        }
        Err(self.error_at(last.unwrap_or(0..0), message))
    }
}
