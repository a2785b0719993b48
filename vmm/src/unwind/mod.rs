//! The frame-pointer unwinder: a kernel stack walked from a context's registers, through the
//! `pt_regs` that the guest's interrupt, exception and system-call entry stubs save, across the
//! NMI, IRQ and task stacks. It runs both on a live machine (a fault report at the instant of
//! the fault) and on a frozen snapshot (`bt`), reading guest memory through a closure. Guest
//! memory is untrusted: any wild pointer ends the walk with a note, never an error.
use lockvmm_abi::entry::{PtRegsAt, pt_regs_at};
use lockvmm_abi::stacks::{
    EXCEPTION_STACKS_SYMBOL, INIT_STACKS_SYMBOL, IRQ_STACK_SYMBOL, Ist, TASK_STACKS_SYMBOL,
    THREAD_SIZE,
};

use crate::image::Symbols;
use crate::state::{BtItem, Regs};

const MAX_FRAMES: usize = 96;
/// Which stack an address is on: "NMI exception stack", "IRQ stack", a task's stack.
pub fn stack_of(syms: &Symbols, addr: u64) -> Option<String> {
    let within = |var: &str| {
        let s = syms.get(var)?;
        (s.addr..s.addr.saturating_add(s.size))
            .contains(&addr)
            .then(|| addr - s.addr)
    };
    if let Some(off) = within(EXCEPTION_STACKS_SYMBOL) {
        return Some(format!("{} exception stack", Ist::at_offset(off).name()));
    }
    if within(IRQ_STACK_SYMBOL).is_some() {
        return Some("IRQ stack".into());
    }
    if let Some(off) = within(INIT_STACKS_SYMBOL) {
        return Some(format!("swapper/{} stack", off / THREAD_SIZE));
    }
    within(TASK_STACKS_SYMBOL).map(|off| format!("task stack {}", off / THREAD_SIZE))
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
            let regs_at = match pt_regs_at(&stub) {
                Some(PtRegsAt::PointerAtFpPlus(n)) => self.u64(fp.wrapping_add(n)),
                Some(PtRegsAt::InlineAtFpPlus(n)) => Some(fp.wrapping_add(n)),
                None => None,
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
