//! General registers as captured from KVM or from a `pt_regs` the guest saved.
use lockvmm_abi::PtRegs;
use lockvmm_abi::eflags::X86_EFLAGS_IF;
use serde::{Deserialize, Serialize};

/// General registers as captured (from KVM, or from a `pt_regs` the guest saved).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Regs {
    #[serde(with = "crate::state::hex")]
    pub rip: u64,
    #[serde(with = "crate::state::hex")]
    pub rsp: u64,
    #[serde(with = "crate::state::hex")]
    pub rflags: u64,
    #[serde(with = "crate::state::hex")]
    pub rax: u64,
    #[serde(with = "crate::state::hex")]
    pub rbx: u64,
    #[serde(with = "crate::state::hex")]
    pub rcx: u64,
    #[serde(with = "crate::state::hex")]
    pub rdx: u64,
    #[serde(with = "crate::state::hex")]
    pub rsi: u64,
    #[serde(with = "crate::state::hex")]
    pub rdi: u64,
    #[serde(with = "crate::state::hex")]
    pub rbp: u64,
    #[serde(with = "crate::state::hex")]
    pub r8: u64,
    #[serde(with = "crate::state::hex")]
    pub r9: u64,
    #[serde(with = "crate::state::hex")]
    pub r10: u64,
    #[serde(with = "crate::state::hex")]
    pub r11: u64,
    #[serde(with = "crate::state::hex")]
    pub r12: u64,
    #[serde(with = "crate::state::hex")]
    pub r13: u64,
    #[serde(with = "crate::state::hex")]
    pub r14: u64,
    #[serde(with = "crate::state::hex")]
    pub r15: u64,
    #[serde(with = "crate::state::hex")]
    pub cs: u64,
    #[serde(with = "crate::state::hex")]
    pub ss: u64,
}

impl Regs {
    /// The registers an entry stub saved.
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
        self.rflags & X86_EFLAGS_IF != 0
    }

    /// CS's privilege level is 3: the context ran in user mode.
    pub fn user_mode(&self) -> bool {
        self.cs & 3 == 3
    }
}

/// `IF=0: interrupts disabled` / `IF=1: interrupts enabled`.
pub fn describe_if(rflags: u64) -> &'static str {
    if rflags & X86_EFLAGS_IF != 0 {
        "IF=1: interrupts enabled"
    } else {
        "IF=0: interrupts disabled"
    }
}
