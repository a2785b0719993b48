//! A CPU's stack as the contexts it holds: the live one at the top, then each context an
//! interrupt, exception or system call saved below it. The diagnosis reads the context that
//! spins, with its own registers (its own RFLAGS.IF), and how it was entered from the one below.
use super::Analysis;
use crate::state::{BtItem, CpuBacktrace, Regs};

/// The function every contended spinlock waits in (the guest's qspinlock slow path).
pub const SPIN_FUNCTION: &str = "native_queued_spin_lock_slowpath";
/// Every function a CPU waits in for a lock: the spinlock's and the rwlock's slow paths.
pub const SPIN_FUNCTIONS: [&str; 3] = [
    SPIN_FUNCTION,
    "queued_read_lock_slowpath",
    "queued_write_lock_slowpath",
];

/// Where a ticket spinlock (3.10, 2.6) waits: its loop is inlined into the `_raw_spin_lock*`
/// function itself, so a context spins there when that is its innermost frame.
pub const TICKET_SPIN_FUNCTIONS: [&str; 3] = [
    "_raw_spin_lock",
    "_raw_spin_lock_irq",
    "_raw_spin_lock_irqsave",
];

/// One context on a CPU's stack.
#[derive(Debug, Clone)]
pub struct StackContext {
    /// The registers it ran with: the vCPU's own for the top context, else what the entry
    /// stub that interrupted it saved.
    pub regs: Regs,
    /// The functions of its frames, innermost first.
    pub functions: Vec<String>,
    /// The entry stub that interrupted it (`apic_timer_interrupt`, `page_fault`, `nmi`, …):
    /// the way into the context above it. `None` for the top context.
    pub interrupted_by: Option<String>,
}

impl StackContext {
    /// Whether this context waits in the spinlock slow path.
    pub fn spins(&self) -> bool {
        self.spin_function().is_some()
    }

    /// The lock slow path this context waits in (its innermost), if any.
    pub fn spin_function(&self) -> Option<&'static str> {
        let ticket = self
            .functions
            .first()
            .and_then(|f| TICKET_SPIN_FUNCTIONS.iter().copied().find(|s| s == f));
        ticket.or_else(|| {
            self.functions
                .iter()
                .find_map(|f| SPIN_FUNCTIONS.iter().copied().find(|s| s == f))
        })
    }
}

/// How a CPU got into the context that spins.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The stub that interrupted the context below.
    pub stub: String,
    /// The context below as it was interrupted.
    pub below: Regs,
}

/// Whether an entry stub is the NMI's.
pub fn is_nmi_entry(stub: &str) -> bool {
    matches!(stub, "nmi" | "end_repeat_nmi")
}

/// Whether an entry stub is a device or IPI interrupt's.
pub fn is_irq_entry(stub: &str) -> bool {
    lockvmm_abi::entry::IRQ_STUBS.contains(&stub)
}

impl Analysis<'_> {
    /// The contexts on `bt`'s stack, top first.
    pub fn contexts(&self, bt: &CpuBacktrace) -> Vec<StackContext> {
        let top = self
            .snap
            .cpus
            .get(bt.cpu)
            .map(|c| c.regs)
            .unwrap_or_default();
        let mut out = vec![StackContext {
            regs: top,
            functions: Vec::new(),
            interrupted_by: None,
        }];
        for item in &bt.items {
            match item {
                BtItem::Frame { function, .. } => {
                    if let Some(c) = out.last_mut() {
                        c.functions.push(function.clone());
                    }
                }
                BtItem::Exception { entry, regs, .. } => out.push(StackContext {
                    regs: *regs,
                    functions: Vec::new(),
                    interrupted_by: Some(entry.clone()),
                }),
                BtItem::StackEnd { .. } | BtItem::Note { .. } => {}
            }
        }
        out
    }

    /// The context that spins on `bt`'s CPU (the innermost one in the slow path), with the way
    /// it was entered from the context below, if there is one below.
    pub fn spinning_context(&self, bt: &CpuBacktrace) -> Option<(StackContext, Option<Entry>)> {
        let ctxs = self.contexts(bt);
        let at = ctxs.iter().position(StackContext::spins)?;
        let entry = ctxs.get(at + 1).and_then(|below| {
            Some(Entry {
                stub: below.interrupted_by.clone()?,
                below: below.regs,
            })
        });
        Some((ctxs[at].clone(), entry))
    }

    /// The registers of the context that matters on `bt`'s CPU: the one that spins, else the
    /// one the detector's interrupt interrupted (the first saved kernel context), else the top.
    pub fn stuck_regs(&self, bt: &CpuBacktrace) -> Option<Regs> {
        if let Some((c, _)) = self.spinning_context(bt) {
            return Some(c.regs);
        }
        bt.items
            .iter()
            .find_map(|i| match i {
                BtItem::Exception { regs, .. } => Some(*regs),
                _ => None,
            })
            .or_else(|| self.snap.cpus.get(bt.cpu).map(|c| c.regs))
    }
}
