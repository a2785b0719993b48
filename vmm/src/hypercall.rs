//! The guest→host hypercall interface (see `lockvmm_abi` for the convention). Every argument
//! comes from the guest and is validated: a bad one gets `HC_EINVAL` back and is counted, and
//! never stops or crashes the host.
use kvm_bindings::kvm_regs;
use kvm_ioctls::VcpuFd;
use lockvmm_abi::eflags::X86_EFLAGS_IF;
use lockvmm_abi::{
    HC_EINVAL, HC_OK, Hypercall, IPI_NMI, LOCKUP_HARD, LOCKUP_SOFT, PtRegs, exception_name, hook,
};

use crate::machine::Machine;
use crate::report::{FaultKind, FaultReport, HookEvent, LockupEvent, Outcome, Regs};
use crate::sched::Wait;
use crate::vcpu::{Next, capture_fault_ref};

/// Longest panic message the host reads from the guest.
const MAX_PANIC_MSG: u64 = 1024;

/// Handles hypercall `nr` from `cpu`.
pub fn handle(m: &Machine, vcpu: &VcpuFd, cpu: usize, nr: u32) -> Next {
    let (regs, cr3) = match (vcpu.get_regs(), vcpu.get_sregs()) {
        (Ok(r), Ok(s)) => (r, s.cr3),
        (Err(e), _) | (_, Err(e)) => {
            m.finish(Outcome::HostError {
                message: format!("CPU {cpu}: cannot read registers: {e}"),
            });
            return Next::Stop;
        }
    };
    let args = [regs.rdi, regs.rsi, regs.rcx, regs.r8];
    let Some(call) = Hypercall::from_raw(nr) else {
        return reject(m, vcpu, regs, cpu, format!("unknown hypercall {nr:#x}"));
    };
    match call {
        Hypercall::CpuOnline => {
            if args[0] != cpu as u64 {
                return reject(
                    m,
                    vcpu,
                    regs,
                    cpu,
                    format!("CpuOnline for CPU {} issued by CPU {cpu}", args[0]),
                );
            }
            m.cpu_online(cpu);
            ret(m, vcpu, regs, HC_OK)
        }
        Hypercall::StartCpu => {
            let target = args[0];
            if target as usize >= m.nr_cpus || !m.sched.start(target as usize) {
                return reject(
                    m,
                    vcpu,
                    regs,
                    cpu,
                    format!("StartCpu({target}): no such offline CPU"),
                );
            }
            ret(m, vcpu, regs, HC_OK)
        }
        Hypercall::Shutdown => {
            m.finish(Outcome::Shutdown {
                status: args[0] as u32,
            });
            Next::Stop
        }
        Hypercall::Panic => {
            let message = read_message(m, cr3, args[0], args[1]);
            let fault = FaultKind::Panic;
            // With the interrupted context (`nmi_panic(regs, …)`) the report shows that;
            // otherwise the CPU as it is now, inside panic().
            let saved = (args[2] != 0)
                .then(|| m.memory.read_virt_obj::<PtRegs>(cr3, args[2]).ok())
                .flatten();
            let report = match saved {
                Some(r) => FaultReport::new(
                    cpu,
                    fault,
                    Regs::from_pt_regs(&r),
                    0,
                    cr3,
                    &m.memory,
                    &m.kernel.symbols,
                ),
                None => match capture_fault_ref(m, vcpu, cpu, fault) {
                    Outcome::Fault(r) => r,
                    other => {
                        m.finish(other);
                        return Next::Stop;
                    }
                },
            };
            m.take_snapshot(cpu, vcpu, format!("panic on CPU {cpu}: {message}"));
            m.finish(Outcome::Panic { message, report });
            Next::Stop
        }
        Hypercall::Exception => {
            let [regs_at, vector, error_code, cr2] = args;
            let name = if vector < 32 {
                exception_name(vector)
            } else {
                "invalid vector"
            }
            .to_string();
            let fault = FaultKind::Oops {
                vector,
                name,
                error_code,
            };
            // The faulting context is the pt_regs the entry stub saved; if the guest passed a
            // pointer we cannot read, report the live registers instead.
            let outcome = match m.memory.read_virt_obj::<PtRegs>(cr3, regs_at) {
                Ok(saved) => Outcome::Fault(FaultReport::new(
                    cpu,
                    fault,
                    Regs::from_pt_regs(&saved),
                    cr2,
                    cr3,
                    &m.memory,
                    &m.kernel.symbols,
                )),
                Err(_) => {
                    m.count_bad_hypercall(
                        cpu,
                        format!("Exception with unreadable pt_regs at {regs_at:#x}"),
                    );
                    capture_fault_ref(m, vcpu, cpu, fault)
                }
            };
            if let Outcome::Fault(r) = &outcome {
                m.take_snapshot(cpu, vcpu, r.headline());
            }
            m.finish(outcome);
            Next::Stop
        }
        Hypercall::Wait => {
            let [addr, expected, until, _] = args;
            if until != 0 && until <= m.now_ns() {
                return ret(m, vcpu, regs, HC_OK);
            }
            let wait = Wait {
                addr: (addr != 0).then_some(addr),
                irq_enabled: regs.rflags & X86_EFLAGS_IF != 0,
                rip: regs.rip,
                until: (args[2] != 0).then_some(args[2]),
            };
            if addr != 0 {
                match m.memory.read_virt_u32(cr3, addr) {
                    Err(e) => return reject(m, vcpu, regs, cpu, format!("Wait on {addr:#x}: {e}")),
                    // Already changed: the wake-up came before the wait; no need to block.
                    Ok(v) if u64::from(v) != expected & 0xffff_ffff => {
                        return ret(m, vcpu, regs, HC_OK);
                    }
                    Ok(_) => {}
                }
            }
            match ret(m, vcpu, regs, HC_OK) {
                Next::Continue => Next::Block(wait),
                stop => stop,
            }
        }
        Hypercall::Kick => {
            m.sched.kick(args[0]);
            ret(m, vcpu, regs, HC_OK)
        }
        Hypercall::Watchdog => {
            let [kind, regs_at, msg, len] = args;
            let kind = match kind {
                LOCKUP_SOFT => "soft",
                LOCKUP_HARD => "hard",
                other => {
                    return reject(
                        m,
                        vcpu,
                        regs,
                        cpu,
                        format!("Watchdog: unknown lockup kind {other}"),
                    );
                }
            };
            let Ok(saved) = m.memory.read_virt_obj::<PtRegs>(cr3, regs_at) else {
                return reject(
                    m,
                    vcpu,
                    regs,
                    cpu,
                    format!("Watchdog: unreadable pt_regs at {regs_at:#x}"),
                );
            };
            let message = read_message(m, cr3, msg, len);
            let fault = FaultKind::Lockup { kind: kind.into() };
            let report = FaultReport::new(
                cpu,
                fault,
                Regs::from_pt_regs(&saved),
                0,
                cr3,
                &m.memory,
                &m.kernel.symbols,
            );
            let reason = format!("{kind} lockup on CPU {cpu}: {message}");
            m.record_lockup(LockupEvent {
                vtime_ns: m.now_ns(),
                cpu,
                kind: kind.into(),
                message,
                report,
            });
            m.take_snapshot(cpu, vcpu, reason);
            ret(m, vcpu, regs, HC_OK)
        }
        Hypercall::SendIpi => {
            let [target, vector, ..] = args;
            if target as usize >= m.nr_cpus || !m.sched.is_started(target as usize) {
                return reject(
                    m,
                    vcpu,
                    regs,
                    cpu,
                    format!("SendIpi to CPU {target}: no such online CPU"),
                );
            }
            match vector {
                IPI_NMI => m.deliver_nmi(target as usize),
                32..=255 => m.deliver_interrupt(target as usize, vector as u8),
                _ => {
                    return reject(
                        m,
                        vcpu,
                        regs,
                        cpu,
                        format!("SendIpi: invalid vector {vector:#x}"),
                    );
                }
            }
            ret(m, vcpu, regs, HC_OK)
        }
        Hypercall::Hook => {
            let [id, arg, ..] = args;
            let Some(name) = hook::name(id) else {
                return reject(m, vcpu, regs, cpu, format!("Hook: unknown hook id {id}"));
            };
            m.record_hook(HookEvent {
                vtime_ns: m.now_ns(),
                cpu,
                hook: name.into(),
                arg,
                rip: regs.rip,
                rip_symbol: m.kernel.symbols.describe(regs.rip),
                rflags: regs.rflags,
            });
            let mut pause_self = false;
            for (deliver, target) in m.actions_for(id, cpu) {
                pause_self |= m.perform(deliver, target) && target == cpu;
            }
            match ret(m, vcpu, regs, HC_OK) {
                Next::Continue if pause_self => Next::Block(Wait {
                    addr: Some(crate::sched::PAUSED),
                    irq_enabled: false,
                    rip: regs.rip,
                    until: None,
                }),
                next => next,
            }
        }
        Hypercall::Syscall => match crate::syscall::enter(m, vcpu, regs, args[3]) {
            Ok(()) => Next::Continue,
            Err(crate::syscall::SyscallError::Kvm(e)) => {
                m.finish(Outcome::HostError {
                    message: format!("CPU {cpu}: Syscall: {e}"),
                });
                Next::Stop
            }
            Err(e) => reject(m, vcpu, regs, cpu, format!("Syscall: {e}")),
        },
    }
}

/// A message string the guest passed (at most `MAX_PANIC_MSG` bytes).
fn read_message(m: &Machine, cr3: u64, addr: u64, len: u64) -> String {
    match m
        .memory
        .read_virt(cr3, addr, len.min(MAX_PANIC_MSG) as usize)
    {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("(message unreadable: {e})"),
    }
}

/// Writes the hypercall's result to RAX and continues the vCPU.
fn ret(m: &Machine, vcpu: &VcpuFd, regs: kvm_regs, value: u64) -> Next {
    match set_rax(vcpu, regs, value) {
        Ok(()) => Next::Continue,
        Err(e) => {
            m.finish(Outcome::HostError {
                message: format!("cannot write a vCPU's registers: {e}"),
            });
            Next::Stop
        }
    }
}

fn set_rax(vcpu: &VcpuFd, mut regs: kvm_regs, value: u64) -> Result<(), kvm_ioctls::Error> {
    regs.rax = value;
    vcpu.set_regs(&regs)
}

fn reject(m: &Machine, vcpu: &VcpuFd, regs: kvm_regs, cpu: usize, why: String) -> Next {
    m.count_bad_hypercall(cpu, why);
    ret(m, vcpu, regs, HC_EINVAL)
}
