//! The scheduler's data as crash reads it: the tasks of the pool (`ps`, `foreach`), each CPU's
//! runqueue (`runq`), and the stack of a task that is not running (from the frame its last
//! switch left). Offsets come from the DWARF; guest memory is untrusted, so every list walk is
//! bounded and a bad pointer ends it with a note.
use lockvmm_abi::entry::{SWITCH_FRAME_RBP_OFFSET, SWITCH_FRAME_RETURN_OFFSET, SWITCH_FRAME_SIZE};
use lockvmm_abi::program::Policy;
use lockvmm_abi::task::TaskState;

use super::Analysis;
use crate::state::{BtItem, CpuBacktrace, Regs, TaskInfo};
use crate::unwind::Unwinder;

/// Tasks a runqueue list is followed for at most (the pool is smaller; memory may loop).
const MAX_QUEUED: usize = 4096;

/// A task of the pool, as `ps` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEntry {
    pub info: TaskInfo,
    /// `None` when the word holds no state the contract defines.
    pub state: Option<TaskState>,
    pub cpu: u32,
    pub policy: Option<Policy>,
    pub rt_priority: u32,
}

impl TaskEntry {
    /// The kernel priority crash shows in `runq` (`task->prio`): 99 - rt_priority for an RT
    /// task, 120 for a normal one at nice 0.
    pub fn prio(&self) -> u32 {
        match self.policy {
            Some(Policy::Fifo) => 99u32.saturating_sub(self.rt_priority),
            _ => 120,
        }
    }
}

/// One of a runqueue's FIFOs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Queue {
    /// Address of the list head (`rq->rt_head`, `rq->cfs_head`).
    pub head: u64,
    pub tasks: Vec<TaskEntry>,
    /// Why the walk stopped early, if it did.
    pub note: Option<String>,
}

/// A CPU's `struct rq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunQueue {
    pub cpu: usize,
    pub addr: u64,
    pub nr_running: u32,
    pub nr_switches: u64,
    /// `rq->clock`, virtual nanoseconds.
    pub clock: u64,
    /// `rq->curr` and the task there.
    pub curr: u64,
    pub curr_task: Option<TaskInfo>,
    pub idle: u64,
    pub rt: Queue,
    pub cfs: Queue,
}

impl Analysis<'_> {
    fn member(&self, ty: &str, member: &str) -> Option<u64> {
        self.dwarf.member_offset(ty, member)
    }

    /// The task at `addr` with its scheduling fields.
    pub fn task_entry(&self, addr: u64) -> Option<TaskEntry> {
        let info = self.task_at(addr)?;
        let u32_at = |m: &str| {
            self.member("task_struct", m)
                .and_then(|o| self.mem.u32(addr.wrapping_add(o)).ok())
        };
        Some(TaskEntry {
            info,
            state: u32_at("state").and_then(TaskState::from_raw),
            cpu: u32_at("cpu").unwrap_or(0),
            policy: u32_at("policy").and_then(Policy::from_raw),
            rt_priority: u32_at("rt_priority").unwrap_or(0),
        })
    }

    /// The tasks of the pool that exist (not dead; the pool's spare idle slots left out), in
    /// pool order, as crash's `ps` lists them.
    pub fn tasks(&self) -> Vec<TaskEntry> {
        let (Some(base), Some((size, count))) = (
            self.syms.addr_of("task_pool"),
            self.dwarf.array_of("task_pool"),
        ) else {
            return Vec::new();
        };
        // The pool's length comes from the DWARF: no more than the guest's MAX_TASKS is real.
        (0..count.min(lockvmm_abi::task::MAX_TASKS as u64))
            .filter_map(|i| {
                let t = self.task_entry(base.wrapping_add(i.wrapping_mul(size)))?;
                let unused = t.state.is_none_or(|s| s == TaskState::Dead)
                    || (t.info.pid == 0 && i as usize >= self.nr_cpus());
                (!unused).then_some(t)
            })
            .collect()
    }

    /// The CPU a task is running on (it is that CPU's `current`).
    pub fn running_on(&self, task: u64) -> Option<usize> {
        (0..self.nr_cpus()).find(|&c| self.task_on(c).is_some_and(|t| t.addr == task))
    }

    fn queue(&self, head: u64) -> Queue {
        let mut q = Queue {
            head,
            ..Queue::default()
        };
        let Some(next_off) = self.member("task_struct", "run_next") else {
            q.note = Some("task_struct has no run_next".into());
            return q;
        };
        let mut at = match self.mem.u64(head) {
            Ok(a) => a,
            Err(_) => {
                q.note = Some(format!("list head {head:#x} is not readable"));
                return q;
            }
        };
        while at != 0 {
            if q.tasks.len() >= MAX_QUEUED || q.tasks.iter().any(|t| t.info.addr == at) {
                q.note = Some(format!("the list loops or runs past {MAX_QUEUED} tasks"));
                break;
            }
            let (Some(t), Ok(next)) =
                (self.task_entry(at), self.mem.u64(at.wrapping_add(next_off)))
            else {
                q.note = Some(format!("task {at:#x} is not readable"));
                break;
            };
            q.tasks.push(t);
            at = next;
        }
        q
    }

    /// CPU `cpu`'s runqueue (`runqueues[cpu]`).
    pub fn runqueue(&self, cpu: usize) -> Option<RunQueue> {
        let addr = self.per_cpu_elem("runqueues", cpu)?;
        let off = |m: &str| self.member("rq", m).map(|o| addr.wrapping_add(o));
        let u64_of = |m: &str| off(m).and_then(|a| self.mem.u64(a).ok()).unwrap_or(0);
        let curr = u64_of("curr");
        Some(RunQueue {
            cpu,
            addr,
            nr_running: off("nr_running")
                .and_then(|a| self.mem.u32(a).ok())
                .unwrap_or(0),
            nr_switches: u64_of("nr_switches"),
            clock: u64_of("clock"),
            curr,
            curr_task: self.task_at(curr),
            idle: u64_of("idle"),
            rt: off("rt_head").map(|h| self.queue(h)).unwrap_or_default(),
            cfs: off("cfs_head").map(|h| self.queue(h)).unwrap_or_default(),
        })
    }

    /// The registers a switched-out task resumes with: `__switch_to_asm` left its callee-saved
    /// registers and the return address at `thread_sp` (`lockvmm_abi::entry`).
    pub fn switch_frame_regs(&self, task: u64) -> Option<Regs> {
        let sp = self
            .mem
            .u64(task.wrapping_add(self.member("task_struct", "thread_sp")?))
            .ok()?;
        Some(Regs {
            rip: self
                .mem
                .u64(sp.wrapping_add(SWITCH_FRAME_RETURN_OFFSET))
                .ok()?,
            rbp: self
                .mem
                .u64(sp.wrapping_add(SWITCH_FRAME_RBP_OFFSET))
                .ok()?,
            rsp: sp.wrapping_add(SWITCH_FRAME_SIZE),
            ..Regs::default()
        })
    }

    /// A task's backtrace: its CPU's when it is running, else from its switch frame.
    pub fn backtrace_of_task(&self, task: u64) -> CpuBacktrace {
        if let Some(cpu) = self.running_on(task) {
            return self.backtrace(cpu);
        }
        let entry = self.task_entry(task);
        let cpu = entry.as_ref().map_or(0, |t| t.cpu as usize);
        let items = match self.switch_frame_regs(task) {
            Some(regs) => {
                let read = |va: u64, len: usize| self.mem.read(va, len).ok();
                Unwinder {
                    read: &read,
                    syms: self.syms,
                }
                .walk(&regs)
            }
            None => vec![BtItem::Note {
                text: format!("task {task:#x}: its saved stack pointer is not readable"),
            }],
        };
        CpuBacktrace {
            cpu,
            task: entry.map(|t| t.info),
            items,
        }
    }
}
