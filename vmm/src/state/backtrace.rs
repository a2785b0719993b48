//! Backtraces as data: frames, saved interrupt/exception contexts, stack changes and notes.
use serde::{Deserialize, Serialize};

use super::Regs;

/// A task, as read from its `task_struct`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TaskInfo {
    #[serde(with = "crate::state::hex")]
    pub addr: u64,
    pub pid: u32,
    pub comm: String,
}

/// One line of a backtrace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BtItem {
    /// `#N [sp] function at pc`, and its source line when the DWARF has it.
    Frame {
        n: usize,
        #[serde(with = "crate::state::hex")]
        sp: u64,
        #[serde(with = "crate::state::hex")]
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

/// One CPU's backtrace with the task it was running.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
                BtItem::Exception { entry, regs, .. } if !regs.user_mode() => {
                    Some((entry.as_str(), regs))
                }
                _ => None,
            })
            .collect()
    }

    /// Whether this CPU was stopped by a crash's NMI (Linux's `crash_nmi_callback`, from
    /// `nmi_shootdown_cpus`): it halts inside that NMI until the capture.
    pub fn crash_stopped(&self) -> bool {
        self.functions().first() == Some(&CRASH_STOP_FUNCTION)
    }

    /// [`exceptions`](Self::exceptions) without the crash's stopping NMI: the contexts the CPU
    /// was in when the machine stopped.
    pub fn exceptions_before_crash(&self) -> Vec<(&str, &Regs)> {
        let mut e = self.exceptions();
        if self.crash_stopped() && !e.is_empty() {
            e.remove(0);
        }
        e
    }
}

/// The function each CPU a crash stopped halts in (Linux's `arch/x86/kernel/reboot.c`).
pub const CRASH_STOP_FUNCTION: &str = "crash_nmi_callback";
