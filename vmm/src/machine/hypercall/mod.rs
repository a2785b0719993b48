//! The guest→host hypercall interface (see `lockvmm_abi` for the convention). Every argument
//! comes from the guest and is validated: a bad one gets `HC_EINVAL` back and is counted, and
//! never stops or crashes the host.
//!
//! [`dispatch`] decodes the call and hands a [`Call`] (the vCPU, its registers and arguments,
//! with `ret` and `reject`) to one function per hypercall.
mod console;
mod events;
mod lifecycle;
mod reports;
mod wait;

use kvm_bindings::kvm_regs;
use kvm_ioctls::VcpuFd;
use lockvmm_abi::{HC_EINVAL, HC_OK, Hypercall};

use super::Machine;
use super::vcpu_loop::Next;
use crate::state::Outcome;
use crate::state::text::escape_bytes_line;

/// Longest message the host reads from the guest.
const MAX_MESSAGE: u64 = 1024;

/// One hypercall being answered.
pub struct Call<'a> {
    pub m: &'a Machine,
    pub vcpu: &'a VcpuFd,
    pub cpu: usize,
    pub regs: kvm_regs,
    pub cr3: u64,
    /// `RDI, RSI, RCX, R8`.
    pub args: [u64; 4],
}

impl Call<'_> {
    /// Writes `value` to RAX and continues the vCPU.
    pub fn ret(&self, value: u64) -> Next {
        let mut regs = self.regs;
        regs.rax = value;
        match self.vcpu.set_regs(&regs) {
            Ok(()) => Next::Continue,
            Err(e) => self.host_error(format!("cannot write a vCPU's registers: {e}")),
        }
    }

    /// Success.
    pub fn ok(&self) -> Next {
        self.ret(HC_OK)
    }

    /// Refuses the call: counted, and `HC_EINVAL` in RAX.
    pub fn reject(&self, why: String) -> Next {
        self.m.count_bad_hypercall(self.cpu, why);
        self.ret(HC_EINVAL)
    }

    /// lockvmm itself failed: the run ends.
    pub fn host_error(&self, message: String) -> Next {
        self.m.finish(Outcome::HostError { message });
        Next::Stop
    }

    /// A message string the guest passed (at most `MAX_MESSAGE` bytes), its control characters
    /// escaped: it is printed and stored as one line.
    pub fn read_message(&self, addr: u64, len: u64) -> String {
        match self
            .m
            .memory
            .read_virt(self.cr3, addr, len.min(MAX_MESSAGE) as usize)
        {
            Ok(bytes) => escape_bytes_line(&bytes),
            Err(e) => format!("(message unreadable: {e})"),
        }
    }
}

/// Handles hypercall `nr` from `cpu`.
pub fn dispatch(m: &Machine, vcpu: &VcpuFd, cpu: usize, nr: u32) -> Next {
    let (regs, cr3) = match (vcpu.get_regs(), vcpu.get_sregs()) {
        (Ok(r), Ok(s)) => (r, s.cr3),
        (Err(e), _) | (_, Err(e)) => {
            m.finish(Outcome::HostError {
                message: format!("CPU {cpu}: cannot read registers: {e}"),
            });
            return Next::Stop;
        }
    };
    let call = Call {
        m,
        vcpu,
        cpu,
        regs,
        cr3,
        args: [regs.rdi, regs.rsi, regs.rcx, regs.r8],
    };
    let Some(hc) = Hypercall::from_raw(nr) else {
        return call.reject(format!("unknown hypercall {nr:#x}"));
    };
    match hc {
        Hypercall::CpuOnline => lifecycle::cpu_online(&call),
        Hypercall::StartCpu => lifecycle::start_cpu(&call),
        Hypercall::Shutdown => lifecycle::shutdown(&call),
        Hypercall::Panic => reports::panic(&call),
        Hypercall::Exception => reports::exception(&call),
        Hypercall::Watchdog => reports::watchdog(&call),
        Hypercall::Wait => wait::wait(&call),
        Hypercall::Kick => wait::kick(&call),
        Hypercall::SendIpi => events::send_ipi(&call),
        Hypercall::Hook => events::hook(&call),
        Hypercall::Syscall => events::syscall(&call),
        Hypercall::ConsoleWrite => console::console_write(&call),
    }
}
