//! The frame-pointer unwinder: a kernel stack walked from a context's registers, through the
//! `pt_regs` that the guest's interrupt, exception and system-call entry stubs save, across the
//! NMI, IRQ and task stacks. It runs both on a live machine (a fault report at the instant of
//! the fault) and on a frozen snapshot (`bt`), reading guest memory through a closure. Guest
//! memory is untrusted: any wild pointer ends the walk with a note, never an error.
use crate::image::Symbols;
use crate::state::{BtItem, Regs};

const MAX_FRAMES: usize = 96;
const THREAD_SIZE: u64 = 16384;
const EXCEPTION_STKSZ: u64 = 8192;
const IST_NAMES: [&str; 4] = ["double fault", "NMI", "debug", "machine check"];
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
