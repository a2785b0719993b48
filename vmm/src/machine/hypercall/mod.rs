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

use std::cell::Cell;

use kvm_bindings::kvm_regs;
use kvm_ioctls::{SyncReg, VcpuFd};
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
    /// CR3, read the first time the call needs it (`cr3()`).
    cr3: Cell<Option<u64>>,
    /// `RDI, RSI, RCX, R8`.
    pub args: [u64; 4],
    /// With `KVM_CAP_SYNC_REGS`: the registers `ret` wrote, which `dispatch` hands to KVM
    /// through `kvm_run` instead of a `KVM_SET_REGS` (about 16 µs a hypercall here).
    deferred: Option<Cell<Option<kvm_regs>>>,
}

impl Call<'_> {
    /// Writes `value` to RAX and continues the vCPU.
    pub fn ret(&self, value: u64) -> Next {
        let mut regs = self.regs;
        regs.rax = value;
        if let Some(deferred) = &self.deferred {
            deferred.set(Some(regs));
            return Next::Continue;
        }
        match self.vcpu.set_regs(&regs) {
            Ok(()) => Next::Continue,
            Err(e) => self.host_error(format!("cannot write a vCPU's registers: {e}")),
        }
    }

    /// The calling vCPU's CR3, for reading guest memory at the call's virtual addresses. Read
    /// with `KVM_GET_SREGS` the first time a call needs it: most calls read no guest memory
    /// (`Kick`, `CpuOnline`, `SendIpi`, a `Wait` on no address) and the ioctl costs about
    /// 10 µs. (Keeping the special registers in `kvm_run` too, `KVM_SYNC_X86_SREGS`, would
    /// copy them out at every exit: that cost more than it saved, see the README.) If KVM
    /// cannot read them, the run ends with a host error and the call reads through CR3 0,
    /// which finds nothing.
    pub fn cr3(&self) -> u64 {
        if let Some(cr3) = self.cr3.get() {
            return cr3;
        }
        let cr3 = match self.vcpu.get_sregs() {
            Ok(s) => s.cr3,
            Err(e) => {
                self.m.finish(Outcome::HostError {
                    message: format!("CPU {}: cannot read registers: {e}", self.cpu),
                });
                0
            }
        };
        self.cr3.set(Some(cr3));
        cr3
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
            .read_virt(self.cr3(), addr, len.min(MAX_MESSAGE) as usize)
        {
            Ok(bytes) => escape_bytes_line(&bytes),
            Err(e) => format!("(message unreadable: {e})"),
        }
    }
}

/// Handles hypercall `nr` from `cpu`. `synced`: KVM keeps the registers in `kvm_run` at every
/// exit (`KVM_CAP_SYNC_REGS`), so they are read there instead of by two ioctls.
pub fn dispatch(m: &Machine, vcpu: &mut VcpuFd, cpu: usize, nr: u32, synced: bool) -> Next {
    let read = if synced {
        Ok(vcpu.sync_regs().regs)
    } else {
        vcpu.get_regs()
    };
    let regs = match read {
        Ok(r) => r,
        Err(e) => {
            m.finish(Outcome::HostError {
                message: format!("CPU {cpu}: cannot read registers: {e}"),
            });
            return Next::Stop;
        }
    };
    let call = Call {
        m,
        vcpu: &*vcpu,
        cpu,
        regs,
        cr3: Cell::new(None),
        args: [regs.rdi, regs.rsi, regs.rcx, regs.r8],
        deferred: synced.then(|| Cell::new(None)),
    };
    let next = handle(&call, nr);
    let Some(regs) = call.deferred.and_then(Cell::into_inner) else {
        return next;
    };
    // Back into the guest, now or after a wait: KVM takes the registers from `kvm_run` on
    // entry. A waiting vCPU writes them (`flush_deferred`) before anything reads its state
    // (a capture, the clock's idle path, the end of its thread). A stop may capture the vCPU
    // at once, which must see them: write them now.
    if matches!(next, Next::Continue | Next::Block(_)) && !m.is_stopped() {
        vcpu.sync_regs_mut().regs = regs;
        vcpu.set_sync_dirty_reg(SyncReg::Register);
        return next;
    }
    match vcpu.set_regs(&regs) {
        Ok(()) => next,
        Err(e) => {
            m.finish(Outcome::HostError {
                message: format!("CPU {cpu}: cannot write a vCPU's registers: {e}"),
            });
            Next::Stop
        }
    }
}

fn handle(call: &Call<'_>, nr: u32) -> Next {
    let Some(hc) = Hypercall::from_raw(nr) else {
        return call.reject(format!("unknown hypercall {nr:#x}"));
    };
    match hc {
        Hypercall::CpuOnline => lifecycle::cpu_online(call),
        Hypercall::StartCpu => lifecycle::start_cpu(call),
        Hypercall::Shutdown => lifecycle::shutdown(call),
        Hypercall::Panic => reports::panic(call),
        Hypercall::Exception => reports::exception(call),
        Hypercall::Watchdog => reports::watchdog(call),
        Hypercall::Wait => wait::wait(call),
        Hypercall::Kick => wait::kick(call),
        Hypercall::SendIpi => events::send_ipi(call),
        Hypercall::Hook => events::hook(call),
        Hypercall::Syscall => events::syscall(call),
        Hypercall::ConsoleWrite => console::console_write(call),
    }
}

/// Writes registers a deferred `ret` left in `kvm_run` for the next `KVM_RUN` (when the vCPU
/// will not enter again soon, so that a capture reads them, and before its thread hands the
/// vCPU back: a restore's `KVM_SET_REGS` must not be overwritten by stale ones).
pub fn flush_deferred(vcpu: &mut VcpuFd) -> Result<(), kvm_ioctls::Error> {
    if vcpu.get_kvm_run().kvm_dirty_regs & u64::from(kvm_bindings::KVM_SYNC_X86_REGS) != 0 {
        let regs = vcpu.sync_regs().regs;
        vcpu.clear_sync_dirty_reg(SyncReg::Register);
        vcpu.set_regs(&regs)?;
    }
    Ok(())
}
