//! crash-style analysis of a snapshot: each CPU's task and backtrace (through NMI, IRQ and
//! exception frames), the locks CPUs spin on and who holds them, and a diagnosis that follows
//! the wait-for chain.
//!
//! Everything is read from the snapshot's memory and registers; guest memory is untrusted, so
//! every read can fail, and a failure ends a walk with a note instead of an error.
use serde::Serialize;

use crate::dwarf::DebugInfo;
use crate::memory::FrozenMemory;
use crate::report::{Regs, describe_if};
use crate::snapshot::Snapshot;
use crate::symbols::Symbols;

const MAX_FRAMES: usize = 96;
const THREAD_SIZE: u64 = 16384;
const EXCEPTION_STKSZ: u64 = 8192;
const IST_NAMES: [&str; 4] = ["double fault", "NMI", "debug", "machine check"];
/// Contexts of `qspinlock_spinning_on` (the MCS node index).
const CONTEXTS: [&str; 4] = ["task", "softirq", "hardirq", "NMI"];

/// Entry stubs that switch to the IRQ stack and keep the `pt_regs` pointer above the return
/// address (see guest/src/arch/x86/entry/entry_64.rs, `IRQ_BODY`).
const IRQ_STUBS: [&str; 3] = [
    "apic_timer_interrupt",
    "reschedule_interrupt",
    "common_interrupt",
];
/// Exception stubs, `nmi` and the system-call entry: `pt_regs` sits 16 bytes above the return
/// address.
const EXCEPTION_STUBS: [&str; 23] = [
    "entry_SYSCALL_64_after_hwframe",
    "divide_error",
    "debug",
    "int3",
    "overflow",
    "bounds",
    "invalid_op",
    "device_not_available",
    "double_fault",
    "coprocessor_segment_overrun",
    "invalid_TSS",
    "segment_not_present",
    "stack_segment",
    "general_protection",
    "page_fault",
    "spurious_interrupt_bug",
    "coprocessor_error",
    "alignment_check",
    "machine_check",
    "simd_coprocessor_error",
    "reserved_exception",
    "nmi",
    "end_repeat_nmi",
];

/// A task, as read from its `task_struct`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct TaskInfo {
    pub addr: u64,
    pub pid: u32,
    pub comm: String,
}

/// One line of a backtrace.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BtItem {
    /// `#N [sp] function at pc`, and its source line when the DWARF has it.
    Frame {
        n: usize,
        sp: u64,
        pc: u64,
        function: String,
        symbol: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
    /// A saved `pt_regs`: the context an interrupt or exception interrupted.
    Exception {
        entry: String,
        regs: Regs,
        rip_symbol: String,
    },
    /// The walk leaves a stack: `--- <NMI exception stack> ---`.
    StackEnd { stack: String },
    /// Why the walk ended early.
    Note { text: String },
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CpuBacktrace {
    pub cpu: usize,
    pub task: Option<TaskInfo>,
    pub items: Vec<BtItem>,
}

impl CpuBacktrace {
    /// Function names of the frames, in order (for tests and comparisons).
    pub fn functions(&self) -> Vec<&str> {
        self.items
            .iter()
            .filter_map(|i| match i {
                BtItem::Frame { function, .. } => Some(function.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The kernel contexts that interrupts and exceptions saved on the way, outermost last.
    /// The user context a system call saved at the bottom is not one of them: it is where the
    /// task came from, not something that interrupted it.
    pub fn exceptions(&self) -> Vec<(&str, &Regs)> {
        self.items
            .iter()
            .filter_map(|i| match i {
                BtItem::Exception { entry, regs, .. } if regs.cs & 3 == 0 => {
                    Some((entry.as_str(), regs))
                }
                _ => None,
            })
            .collect()
    }
}

/// A CPU spinning on a lock.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct LockWait {
    pub cpu: usize,
    /// task, softirq, hardirq or NMI.
    pub context: String,
    pub lock: u64,
    /// `runqueues[56].__lock`.
    pub lock_name: String,
    /// The CPU the lock word names as owner.
    pub holder: Option<usize>,
}

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
        (idx < count as usize).then_some(base + idx as u64 * esz)
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
            comm: String::from_utf8_lossy(&comm[..len]).into_owned(),
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

    /// The locks CPUs are spinning on (`qspinlock_spinning_on`), with their holders.
    pub fn lock_waits(&self) -> Vec<LockWait> {
        let mut out = Vec::new();
        let Some(base) = self.syms.addr_of("qspinlock_spinning_on") else {
            return out;
        };
        for cpu in 0..self.nr_cpus() {
            for (ctx, name) in CONTEXTS.iter().enumerate() {
                let Ok(lock) = self.mem.u64(base + (cpu * 4 + ctx) as u64 * 8) else {
                    continue;
                };
                if lock == 0 {
                    continue;
                }
                let holder = self
                    .mem
                    .u32(lock)
                    .ok()
                    .and_then(|w| (w & 0xff).checked_sub(1))
                    .map(|c| c as usize);
                out.push(LockWait {
                    cpu,
                    context: (*name).into(),
                    lock,
                    lock_name: self.name_of(lock),
                    holder,
                });
            }
        }
        out
    }

    /// `runqueues[56].__lock`, a scenario lock's own name, else `symbol+off`, else hex.
    pub fn name_of(&self, addr: u64) -> String {
        let name = self
            .dwarf
            .describe(self.syms, addr)
            .unwrap_or_else(|| self.syms.describe(addr));
        let lab = name
            .strip_prefix("lab_locks[")
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|i| i.parse::<usize>().ok());
        match lab.and_then(|i| self.snap.lock_names.get(i)) {
            Some(user) => user.clone(),
            None => name,
        }
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
                    .map(|d| (n.to_string(), *v, format!("&{d}")))
            })
            .collect()
    }

    /// The guest's kernel log (`__log_buf`), oldest first.
    pub fn dmesg(&self) -> Vec<String> {
        dmesg_from(|va, len| self.mem.read(va, len).ok(), self.syms, self.dwarf)
    }

    /// Whether a CPU is idle (its task is `swapper/N` and nothing is pending for it).
    pub fn is_idle(&self, cpu: usize, bt: &CpuBacktrace) -> bool {
        bt.task.as_ref().is_some_and(|t| t.pid == 0)
            && bt.exceptions().is_empty()
            && !self.lock_waits().iter().any(|w| w.cpu == cpu)
    }

    /// The explanation of a lockup on `cpu`: what it waits for, who holds that, and why that
    /// holder cannot let go — following the chain of waits.
    pub fn diagnose(
        &self,
        cpu: usize,
        kind: &str,
        waits: &[LockWait],
        bts: &[CpuBacktrace],
    ) -> String {
        let who = |c: usize| match self.task_on(c) {
            Some(t) => format!("CPU {c} ({}, PID {})", t.comm, t.pid),
            None => format!("CPU {c}"),
        };
        let bt_of = |c: usize| bts.iter().find(|b| b.cpu == c);
        // The context the watchdog interrupted on the stuck CPU.
        let stuck_regs = bt_of(cpu).and_then(|b| b.exceptions().last().map(|(_, r)| *r));
        let mut text = String::new();
        let innermost = |c: usize| {
            waits
                .iter()
                .filter(|w| w.cpu == c)
                .max_by_key(|w| context_rank(&w.context))
        };
        let Some(w) = innermost(cpu) else {
            let at = stuck_regs.map_or_else(String::new, |r| {
                format!(
                    " It was at {} with {}.",
                    self.syms.describe(r.rip),
                    describe_if(r.rflags)
                )
            });
            return format!(
                "{} is not waiting for any lock: it has kept the CPU in the kernel without letting \
                 {} run.{at} Nothing else is needed for a {kind} lockup: a loop that never schedules \
                 (with preemption or interrupts disabled), or a task the watchdog thread cannot preempt.",
                who(cpu),
                if kind == "hard" {
                    "interrupts"
                } else {
                    "the watchdog thread"
                },
            );
        };
        let irqs = stuck_regs.map_or("", |r| {
            if r.irqs_enabled() {
                "interrupts enabled"
            } else {
                "interrupts disabled"
            }
        });
        text.push_str(&format!(
            "{} spins in native_queued_spin_lock_slowpath ({} context{}{}) on {}",
            who(cpu),
            w.context,
            if irqs.is_empty() { "" } else { ", " },
            irqs,
            w.lock_name
        ));
        let mut seen = vec![cpu];
        let mut cur = w.clone();
        loop {
            let Some(h) = cur.holder else {
                text.push_str(
                    ", which nobody holds any more: the waiter should get it at its next look.",
                );
                break;
            };
            if h == cur.cpu {
                text.push_str(&format!(
                    ", which {} itself holds",
                    if h == cpu { "that CPU" } else { "it" }
                ));
                let why = bt_of(h).and_then(|b| {
                    let exc = b.exceptions();
                    exc.iter()
                        .rev()
                        .find(|(e, r)| r.irqs_enabled() || *e == "page_fault")
                        .map(|(e, r)| (e.to_string(), *r))
                });
                match why {
                    Some((entry, r)) if entry == "page_fault" => text.push_str(&format!(
                        ": it took the lock, then faulted at {} (CR2 {:#x}), and the fault path tried to take it again \
                         on the same CPU. The CPU can never release it.",
                        self.syms.describe(r.rip),
                        self.snap.cpus.get(h).map_or(0, |c| c.sregs.cr2)
                    )),
                    Some((entry, r)) => text.push_str(&format!(
                        ": it took the lock, then ran {} with interrupts enabled (RFLAGS.IF=1) while holding it; an \
                         interrupt ({entry}) on the same CPU tried to take the lock again. The CPU can never release it.",
                        self.syms.describe(r.rip)
                    )),
                    None => text.push_str(" and is trying to take again: a self-deadlock."),
                }
                break;
            }
            text.push_str(&format!(", held by {}", who(h)));
            if seen.contains(&h) {
                text.push_str(", which closes a cycle of CPUs waiting on each other: a deadlock.");
                break;
            }
            seen.push(h);
            match innermost(h) {
                Some(next) => {
                    text.push_str(&format!(
                        ". {} cannot release it: it is itself spinning ({} context) on {}",
                        who(h),
                        next.context,
                        next.lock_name
                    ));
                    cur = next.clone();
                }
                None => {
                    let at = self
                        .snap
                        .cpus
                        .get(h)
                        .map(|c| (self.syms.describe(c.regs.rip), describe_if(c.regs.rflags)));
                    match at {
                        Some((rip, ifl)) => text.push_str(&format!(
                            ". {} is running at {rip} ({ifl}) and has not released it.",
                            who(h)
                        )),
                        None => text.push('.'),
                    }
                    break;
                }
            }
        }
        text
    }
}

/// Which stack an address is on: "NMI exception stack", "IRQ stack", a task's stack.
pub fn stack_of(syms: &Symbols, addr: u64) -> Option<String> {
    let within = |var: &str| {
        let s = syms.get(var)?;
        (s.addr..s.addr.saturating_add(s.size))
            .contains(&addr)
            .then(|| addr - s.addr)
    };
    if let Some(off) = within("exception_stacks") {
        let ist = (off % (4 * EXCEPTION_STKSZ)) / EXCEPTION_STKSZ;
        return Some(format!("{} exception stack", IST_NAMES[ist as usize]));
    }
    if within("irq_stack_backing_store").is_some() {
        return Some("IRQ stack".into());
    }
    if let Some(off) = within("init_stacks") {
        return Some(format!("swapper/{} stack", off / THREAD_SIZE));
    }
    within("task_stacks").map(|off| format!("task stack {}", off / THREAD_SIZE))
}

/// The frame-pointer unwinder, through the `pt_regs` the entry stubs save. It reads guest
/// memory (untrusted) through `read`, so any wild pointer ends the walk with a note.
pub struct Unwinder<'a> {
    pub read: &'a dyn Fn(u64, usize) -> Option<Vec<u8>>,
    pub syms: &'a Symbols,
}

impl Unwinder<'_> {
    fn u64(&self, va: u64) -> Option<u64> {
        (self.read)(va, 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }

    fn frame(&self, n: usize, sp: u64, pc: u64, is_return: bool) -> BtItem {
        let loc = if is_return {
            self.syms.lookup(pc.wrapping_sub(1))
        } else {
            self.syms.lookup(pc)
        };
        let function = loc
            .as_ref()
            .map_or_else(|| format!("{pc:#x}"), |l| l.name.clone());
        let symbol = match loc {
            Some(l) => {
                let start = if is_return { pc - 1 } else { pc } - l.offset;
                if pc == start {
                    l.name.clone()
                } else {
                    format!("{}+{}", l.name, pc - start)
                }
            }
            None => format!("{pc:#x}"),
        };
        BtItem::Frame {
            n,
            sp,
            pc,
            function,
            symbol,
            source: None,
        }
    }

    /// Walks from `regs` (RIP, RSP, RBP).
    pub fn walk(&self, regs: &Regs) -> Vec<BtItem> {
        let mut items = Vec::new();
        let mut fp = regs.rbp;
        let mut n = 0;
        items.push(self.frame(n, regs.rsp, regs.rip, false));
        let mut stack = stack_of(self.syms, regs.rsp);
        while n < MAX_FRAMES {
            if fp == 0 {
                break;
            }
            let (Some(next), Some(ret)) = (self.u64(fp), self.u64(fp.wrapping_add(8))) else {
                items.push(BtItem::Note {
                    text: format!("frame pointer {fp:#x} is not a readable kernel address"),
                });
                break;
            };
            if ret == 0 {
                break;
            }
            n += 1;
            items.push(self.frame(n, fp.wrapping_add(8), ret, true));
            let stub = self
                .syms
                .lookup(ret.wrapping_sub(1))
                .map(|l| l.name)
                .unwrap_or_default();
            let regs_at = if IRQ_STUBS.contains(&stub.as_str()) {
                self.u64(fp.wrapping_add(16))
            } else if EXCEPTION_STUBS.contains(&stub.as_str()) {
                Some(fp.wrapping_add(24))
            } else {
                None
            };
            if let Some(at) = regs_at {
                let Some(bytes) = (self.read)(at, lockvmm_abi::PT_REGS_SIZE) else {
                    items.push(BtItem::Note {
                        text: format!("saved registers at {at:#x} are not readable"),
                    });
                    break;
                };
                let mut saved = lockvmm_abi::PtRegs::default();
                vm_memory::ByteValued::as_mut_slice(&mut saved).copy_from_slice(&bytes);
                let saved = Regs::from_pt_regs(&saved);
                items.push(BtItem::Exception {
                    entry: stub,
                    regs: saved,
                    rip_symbol: self.syms.describe(saved.rip),
                });
                if saved.cs & 3 == 3 {
                    n += 1;
                    items.push(self.frame(n, saved.rsp, saved.rip, false));
                    items.push(BtItem::Note {
                        text: format!(
                            "the CPU was in user mode (CS {:04x}): the rest is user space",
                            saved.cs
                        ),
                    });
                    break;
                }
                let next_stack = stack_of(self.syms, saved.rsp);
                if next_stack != stack {
                    if let Some(s) = &stack {
                        items.push(BtItem::StackEnd { stack: s.clone() });
                    }
                    stack = next_stack;
                }
                fp = saved.rbp;
                n += 1;
                items.push(self.frame(n, saved.rsp, saved.rip, false));
                continue;
            }
            if next != 0 && next <= fp && stack_of(self.syms, next) == stack_of(self.syms, fp) {
                items.push(BtItem::Note {
                    text: format!("frame pointer chain goes backwards at {fp:#x}"),
                });
                break;
            }
            fp = next;
        }
        if n >= MAX_FRAMES {
            items.push(BtItem::Note {
                text: format!("stopped after {MAX_FRAMES} frames"),
            });
        }
        items
    }
}

fn context_rank(c: &str) -> usize {
    CONTEXTS.iter().position(|x| *x == c).unwrap_or(0)
}

/// Reads `__log_buf` (Linux-style records) through `read`.
pub fn dmesg_from(
    read: impl Fn(u64, usize) -> Option<Vec<u8>>,
    syms: &Symbols,
    dwarf: &DebugInfo,
) -> Vec<String> {
    let (Some(buf), Some(next)) = (syms.addr_of("__log_buf"), syms.addr_of("log_next_seq")) else {
        return Vec::new();
    };
    let Some((rec_size, count)) = dwarf
        .array_of("__log_buf")
        .filter(|(s, c)| *s > 0 && *c > 0)
    else {
        return Vec::new();
    };
    let off = |m: &str| dwarf.member_offset("printk_log", m);
    let (Some(ts_off), Some(len_off), Some(text_off)) = (off("ts_nsec"), off("len"), off("text"))
    else {
        return Vec::new();
    };
    let Some(seq) = read(next, 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    else {
        return Vec::new();
    };
    let first = seq.saturating_sub(count);
    (first..seq)
        .filter_map(|s| {
            let rec = read(buf + (s % count) * rec_size, rec_size as usize)?;
            let ts = u64::from_le_bytes(
                rec.get(ts_off as usize..ts_off as usize + 8)?
                    .try_into()
                    .ok()?,
            );
            let len = u16::from_le_bytes(
                rec.get(len_off as usize..len_off as usize + 2)?
                    .try_into()
                    .ok()?,
            ) as usize;
            let text = rec.get(text_off as usize..(text_off as usize + len).min(rec.len()))?;
            // The guest has no kallsyms: name its `[<address>]`s as the console does.
            let text = String::from_utf8_lossy(text);
            let text = if text.contains("[<") {
                crate::devices::serial::annotate_addresses(&text, syms)
                    .trim_end()
                    .to_string()
            } else {
                text.into_owned()
            };
            Some(format!(
                "[{:5}.{:06}] {text}",
                ts / 1_000_000_000,
                (ts % 1_000_000_000) / 1000,
            ))
        })
        .collect()
}
