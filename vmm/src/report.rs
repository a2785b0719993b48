//! What a run ends with, and how it is told: a crash-like text report (registers decoded,
//! addresses symbolized, a frame-pointer backtrace) and the same facts as JSON.
use std::fmt::Write as _;

use kvm_bindings::kvm_regs;
use lockvmm_abi::PtRegs;
use serde::Serialize;

use crate::memory::GuestMemory;
use crate::symbols::Symbols;

/// General registers as captured (from KVM, or from a `pt_regs` the guest saved).
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Regs {
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub cs: u64,
    pub ss: u64,
}

impl Regs {
    pub fn from_kvm(r: &kvm_regs, cs: u64, ss: u64) -> Self {
        Regs {
            rip: r.rip,
            rsp: r.rsp,
            rflags: r.rflags,
            rax: r.rax,
            rbx: r.rbx,
            rcx: r.rcx,
            rdx: r.rdx,
            rsi: r.rsi,
            rdi: r.rdi,
            rbp: r.rbp,
            r8: r.r8,
            r9: r.r9,
            r10: r.r10,
            r11: r.r11,
            r12: r.r12,
            r13: r.r13,
            r14: r.r14,
            r15: r.r15,
            cs,
            ss,
        }
    }

    pub fn from_pt_regs(r: &PtRegs) -> Self {
        Regs {
            rip: r.rip,
            rsp: r.rsp,
            rflags: r.rflags,
            rax: r.rax,
            rbx: r.rbx,
            rcx: r.rcx,
            rdx: r.rdx,
            rsi: r.rsi,
            rdi: r.rdi,
            rbp: r.rbp,
            r8: r.r8,
            r9: r.r9,
            r10: r.r10,
            r11: r.r11,
            r12: r.r12,
            r13: r.r13,
            r14: r.r14,
            r15: r.r15,
            cs: r.cs,
            ss: r.ss,
        }
    }

    /// RFLAGS.IF.
    pub fn irqs_enabled(&self) -> bool {
        self.rflags & (1 << 9) != 0
    }
}

/// How a fault stopped the machine.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum FaultKind {
    /// The kernel hit an exception it cannot handle and reported it (an oops).
    Oops {
        vector: u64,
        name: String,
        error_code: u64,
    },
    /// KVM_EXIT_SHUTDOWN: an exception while delivering a double fault.
    TripleFault,
    /// KVM_EXIT_INTERNAL_ERROR (suberror 1 is an instruction KVM cannot emulate, e.g. SSE).
    InternalError { suberror: u32 },
    /// KVM_EXIT_FAIL_ENTRY.
    FailEntry { reason: u64 },
    /// The guest touched physical memory with nothing behind it.
    UnbackedMemory { gpa: u64, write: bool },
    /// A vCPU ran guest code for this long without ever yielding (a wait loop that never waits).
    Stall { wall_ms: u64 },
    /// The kernel's soft or hard lockup detector fired on this CPU.
    Lockup { kind: String },
    /// The kernel called panic().
    Panic,
}

/// The state of the CPU that stopped the machine, decoded.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FaultReport {
    pub cpu: usize,
    pub fault: FaultKind,
    pub regs: Regs,
    pub cr2: u64,
    pub cr3: u64,
    /// `function+offset` of RIP, if it lies in a kernel symbol.
    pub rip_symbol: Option<String>,
    /// The function RIP is in (without offset).
    pub rip_function: Option<String>,
    /// The walk of its stack (frames, saved interrupt/exception contexts, notes).
    pub backtrace: Vec<crate::analysis::BtItem>,
}

/// A lockup detector's report, with the state of the CPU it fired on: the registers of the
/// context the NMI or timer interrupt interrupted.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct LockupEvent {
    pub vtime_ns: u64,
    pub cpu: usize,
    /// "soft" or "hard".
    pub kind: String,
    /// The kernel's message (`BUG: soft lockup - CPU#3 stuck for 23s! [hog:6885]`).
    pub message: String,
    pub report: FaultReport,
}

/// A hook point the guest passed.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct HookEvent {
    pub vtime_ns: u64,
    pub cpu: usize,
    pub hook: String,
    pub arg: u64,
    pub rip: u64,
    pub rip_symbol: String,
    pub rflags: u64,
}

/// How a run ended.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The guest powered off with this status.
    Shutdown {
        status: u32,
    },
    Fault(FaultReport),
    Panic {
        message: String,
        report: FaultReport,
    },
    /// Every vCPU waits and nothing can wake them.
    AllWaiting {
        waiting: Vec<WaitingCpu>,
    },
    /// The kernel's lockup detectors fired (the run stops once they have reported).
    Lockup {
        events: Vec<LockupEvent>,
    },
    /// The virtual clock reached the run's limit with nothing else happening.
    TimeLimit {
        vtime_ns: u64,
    },
    /// lockvmm itself failed (a KVM call, a thread).
    HostError {
        message: String,
    },
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct WaitingCpu {
    pub cpu: usize,
    pub addr: Option<u64>,
    pub addr_symbol: Option<String>,
    pub rip_symbol: String,
    pub irq_enabled: bool,
}

impl Outcome {
    /// The process exit status this outcome maps to (0 only for a clean power-off).
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Shutdown { status: 0 } => 0,
            Outcome::HostError { .. } => 3,
            _ => 1,
        }
    }
}

impl FaultReport {
    pub fn new(
        cpu: usize,
        fault: FaultKind,
        regs: Regs,
        cr2: u64,
        cr3: u64,
        mem: &GuestMemory,
        syms: &Symbols,
    ) -> Self {
        let loc = syms.lookup(regs.rip);
        let read = |va: u64, len: usize| mem.read_virt(cr3, va, len).ok();
        let backtrace = crate::analysis::Unwinder { read: &read, syms }.walk(&regs);
        FaultReport {
            cpu,
            fault,
            regs,
            cr2,
            cr3,
            rip_symbol: loc.as_ref().map(|l| l.to_string()),
            rip_function: loc.map(|l| l.name),
            backtrace,
        }
    }

    pub fn headline(&self) -> String {
        match &self.fault {
            FaultKind::Oops {
                name,
                error_code,
                vector,
            } => {
                let mut s = format!(
                    "kernel oops on CPU {}: {} (vector {}, error code {:#x}",
                    self.cpu, name, vector, error_code
                );
                if *vector == 14 {
                    s.push_str(&format!(": {}", describe_pf_error(*error_code)));
                }
                s.push(')');
                s
            }
            FaultKind::TripleFault => {
                format!("triple fault on CPU {} (KVM_EXIT_SHUTDOWN)", self.cpu)
            }
            FaultKind::InternalError { suberror } => format!(
                "KVM internal error on CPU {} (suberror {}{})",
                self.cpu,
                suberror,
                if *suberror == 1 {
                    ": instruction emulation failed; SSE/AVX in ring 0 cannot run on this KVM"
                } else {
                    ""
                }
            ),
            FaultKind::FailEntry { reason } => format!(
                "KVM could not enter CPU {} (hardware reason {:#x})",
                self.cpu, reason
            ),
            FaultKind::UnbackedMemory { gpa, write } => format!(
                "CPU {} {} guest physical {:#x}, where there is no RAM or device",
                self.cpu,
                if *write { "wrote" } else { "read" },
                gpa
            ),
            FaultKind::Lockup { kind } => format!("{kind} lockup detected on CPU {}", self.cpu),
            FaultKind::Panic => format!("panic on CPU {}", self.cpu),
            FaultKind::Stall { wall_ms } => format!(
                "CPU {} ran guest code for {} ms of wall time without yielding (a loop that never waits?)",
                self.cpu, wall_ms
            ),
        }
    }

    /// crash-style text: exception RIP, decoded registers, CR2/CR3, backtrace.
    pub fn render(&self, _syms: &Symbols) -> String {
        let r = &self.regs;
        let mut s = String::new();
        let _ = writeln!(s, "{}", self.headline());
        let _ = writeln!(
            s,
            "    [exception RIP: {}]",
            self.rip_symbol.as_deref().unwrap_or("unknown")
        );
        crate::crashreport::render_regs(&mut s, r);
        let _ = writeln!(s, "    CR2: {:016x}  CR3: {:016x}", self.cr2, self.cr3);
        let _ = writeln!(s, "  backtrace:");
        crate::crashreport::render_items(&mut s, &self.backtrace);
        s
    }
}

/// `IF=0: interrupts disabled` / `IF=1: interrupts enabled`.
pub fn describe_if(rflags: u64) -> &'static str {
    if rflags & (1 << 9) != 0 {
        "IF=1: interrupts enabled"
    } else {
        "IF=0: interrupts disabled"
    }
}

/// The bits of a page-fault error code, as Linux prints them.
pub fn describe_pf_error(code: u64) -> String {
    let mut parts = vec![
        if code & 1 != 0 {
            "protection violation"
        } else {
            "not-present page"
        },
        if code & 2 != 0 { "write" } else { "read" },
        if code & 4 != 0 {
            "user mode"
        } else {
            "kernel mode"
        },
    ];
    if code & 16 != 0 {
        parts.push("instruction fetch");
    }
    parts.join(", ")
}

impl Outcome {
    /// The text `lockvmm run` prints at the end.
    pub fn render(&self, syms: &Symbols) -> String {
        match self {
            Outcome::Shutdown { status } => format!("guest powered off with status {status}\n"),
            Outcome::Fault(r) => r.render(syms),
            Outcome::Panic { message, report } => {
                format!(
                    "Kernel panic on CPU {}: {}\n{}",
                    report.cpu,
                    message,
                    report.render(syms)
                )
            }
            Outcome::AllWaiting { waiting } => {
                let mut s =
                    String::from("every CPU is waiting and nothing can wake any of them:\n");
                for w in waiting {
                    let what = match (&w.addr, &w.addr_symbol) {
                        (Some(_), Some(sym)) => format!("waits on &{sym}"),
                        (Some(a), None) => format!("waits on {a:#x}"),
                        (None, _) => "waits for an interrupt".to_string(),
                    };
                    let _ = writeln!(
                        s,
                        "  CPU {:>3}: {} in {} ({})",
                        w.cpu,
                        what,
                        w.rip_symbol,
                        describe_if(if w.irq_enabled { 1 << 9 } else { 0 })
                    );
                }
                s
            }
            Outcome::Lockup { events } => {
                let mut s = String::new();
                for e in events {
                    let _ = writeln!(
                        s,
                        "{} lockup at {:.3}s: {}",
                        e.kind,
                        e.vtime_ns as f64 / 1e9,
                        e.message
                    );
                    s.push_str(&e.report.render(syms));
                }
                s
            }
            Outcome::TimeLimit { vtime_ns } => {
                format!(
                    "no lockup and no exit within {:.3} virtual seconds\n",
                    *vtime_ns as f64 / 1e9
                )
            }
            Outcome::HostError { message } => format!("lockvmm error: {message}\n"),
        }
    }
}
