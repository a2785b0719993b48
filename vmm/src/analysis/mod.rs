//! crash-style analysis of a snapshot: each CPU's task and backtrace (through NMI, IRQ and
//! exception frames), the locks CPUs spin on and who holds them, and a diagnosis that follows
//! the wait-for chain.
//!
//! Everything is read from the snapshot's memory and registers; guest memory is untrusted, so
//! every read can fail, and a failure ends a walk with a note instead of an error.
mod contexts;
mod diagnose;
mod dmesg;
mod incident;
mod irq;
mod lockdep;
mod locks;
mod sched;
mod tasks;
mod timers;

pub use contexts::{Entry, SPIN_FUNCTION, StackContext};
pub use diagnose::{DeadlockKind, Findings, Incident};
pub use dmesg::dmesg_from;
pub use irq::{Gate, LapicState};
pub use lockdep::lockdep_findings;
pub use sched::{Queue, RunQueue, TaskEntry};
pub use timers::{HrtimerBase, Timer, TimerBase};

use crate::image::{DebugInfo, Symbols};
use crate::memory::FrozenMemory;
use crate::state::{BtItem, CpuBacktrace, LockWait, Regs, Snapshot, TaskInfo};
use crate::unwind::{Unwinder, stack_of};

/// Reads a frozen machine the way `crash` reads a vmcore.
pub struct Analysis<'a> {
    pub snap: &'a Snapshot,
    pub mem: FrozenMemory<'a>,
    pub syms: &'a Symbols,
    pub dwarf: &'a DebugInfo,
}

impl<'a> Analysis<'a> {
    pub fn new(snap: &'a Snapshot, syms: &'a Symbols, dwarf: &'a DebugInfo) -> Self {
        let cr3 = snap
            .cpus
            .iter()
            .find(|c| c.captured)
            .map_or(crate::memory::BOOT_CR3, |c| c.sregs.cr3);
        Analysis {
            snap,
            mem: FrozenMemory {
                phys: &snap.memory,
                cr3,
            },
            syms,
            dwarf,
        }
    }

    fn nr_cpus(&self) -> usize {
        self.snap.cpus.len()
    }

    /// The address of element `idx` of a per-CPU array variable.
    fn per_cpu_elem(&self, var: &str, idx: usize) -> Option<u64> {
        let base = self.syms.addr_of(var)?;
        let (esz, count) = self.dwarf.array_of(var)?;
        (idx < count as usize).then(|| base.wrapping_add((idx as u64).wrapping_mul(esz)))
    }

    /// The task a CPU was running (`per_cpu_area[cpu].current_task`).
    pub fn task_on(&self, cpu: usize) -> Option<TaskInfo> {
        let off = self.dwarf.member_offset("percpu", "current_task")?;
        let addr = self
            .mem
            .u64(self.per_cpu_elem("per_cpu_area", cpu)? + off)
            .ok()?;
        self.task_at(addr)
    }

    pub fn task_at(&self, addr: u64) -> Option<TaskInfo> {
        let pid = self
            .mem
            .u32(addr.wrapping_add(self.dwarf.member_offset("task_struct", "pid")?))
            .ok()?;
        let comm = self
            .mem
            .read(
                addr.wrapping_add(self.dwarf.member_offset("task_struct", "comm")?),
                16,
            )
            .ok()?;
        let len = comm.iter().position(|&b| b == 0).unwrap_or(16);
        Some(TaskInfo {
            addr,
            pid,
            comm: crate::state::text::escape_bytes_line(&comm[..len]),
        })
    }

    /// Which stack an address is on (see `stack_of`).
    pub fn stack_of(&self, addr: u64) -> Option<String> {
        stack_of(self.syms, addr)
    }

    /// The walk of one CPU's stack from its captured registers.
    pub fn backtrace(&self, cpu: usize) -> CpuBacktrace {
        let task = self.task_on(cpu);
        let items = match self.snap.cpus.get(cpu).filter(|c| c.captured) {
            Some(state) => {
                let read = |va: u64, len: usize| self.mem.read(va, len).ok();
                Unwinder {
                    read: &read,
                    syms: self.syms,
                }
                .walk(&state.regs)
            }
            None => vec![BtItem::Note {
                text: "this CPU's state was not captured".into(),
            }],
        };
        CpuBacktrace { cpu, task, items }
    }

    /// `runqueues[56].__lock`, a scenario lock's own name, else `symbol+off`, else hex.
    pub fn name_of(&self, addr: u64) -> String {
        if let Some((_, name)) = self.snap.lock_aliases.iter().find(|(a, _)| *a == addr) {
            return name.clone();
        }
        let name = self
            .dwarf
            .describe(self.syms, addr)
            .unwrap_or_else(|| self.syms.describe(addr));
        // The lab's lock arrays, by index, carry the scenario's names.
        for array in ["lab_locks", "lab_mutexes", "lab_semaphores", "lab_rwlocks"] {
            let Some(rest) = name.strip_prefix(array).and_then(|r| r.strip_prefix('[')) else {
                continue;
            };
            let Some((idx, member)) = rest.split_once(']') else {
                continue;
            };
            let Some(user) = idx
                .parse::<usize>()
                .ok()
                .and_then(|i| self.snap.lock_names.get(i))
            else {
                continue;
            };
            // The lock word itself is the lock; an inner lock keeps its member's name.
            return match member {
                "" | ".cnts" | ".owner" | ".raw_lock" => user.clone(),
                inner => format!("{user}{inner}"),
            };
        }
        name
    }

    /// Registers that point into kernel data or text, named.
    pub fn pointer_registers(&self, regs: &Regs) -> Vec<(String, u64, String)> {
        let named = [
            ("RDI", regs.rdi),
            ("RSI", regs.rsi),
            ("RAX", regs.rax),
            ("RBX", regs.rbx),
            ("RCX", regs.rcx),
            ("RDX", regs.rdx),
            ("R8", regs.r8),
            ("R9", regs.r9),
            ("R12", regs.r12),
            ("R13", regs.r13),
            ("R14", regs.r14),
            ("R15", regs.r15),
        ];
        named
            .iter()
            .filter(|(_, v)| *v >= lockvmm_abi::START_KERNEL_MAP && self.stack_of(*v).is_none())
            .filter_map(|(n, v)| {
                self.dwarf
                    .describe(self.syms, *v)
                    .map(|_| (n.to_string(), *v, format!("&{}", self.name_of(*v))))
            })
            .collect()
    }

    /// The guest's kernel log (`__log_buf`), oldest first.
    pub fn dmesg(&self) -> Vec<String> {
        dmesg_from(|va, len| self.mem.read(va, len).ok(), self.syms, self.dwarf)
    }

    /// Whether a CPU is idle (its task is `swapper/N` and nothing is pending for it).
    pub fn is_idle(&self, bt: &CpuBacktrace, waits: &[LockWait]) -> bool {
        bt.task.as_ref().is_some_and(|t| t.pid == 0)
            && bt.exceptions_before_crash().is_empty()
            && !waits.iter().any(|w| w.cpu == bt.cpu)
    }
}
