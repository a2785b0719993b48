//! The kernel reports that stop or mark the run: `Panic`, `Exception` (an oops) and
//! `Watchdog` (a lockup detector fired). Each freezes the machine for the snapshot at once;
//! a panic's (issued by the guest's `machine_kexec`, after the crash NMI stopped the other
//! CPUs) replaces the one a detector's report took.
use lockvmm_abi::{PtRegs, exception_name};

use super::Call;
use crate::machine::fault::{capture_fault, fault_report};
use crate::machine::vcpu_loop::Next;
use crate::state::{FaultKind, LockupEvent, LockupKind, Outcome, Regs};

/// `a0 = message, a1 = length, a2 = saved pt_regs or 0`: `panic()`.
pub fn panic(c: &Call<'_>) -> Next {
    let [msg, len, regs_at, _] = c.args;
    let message = c.read_message(msg, len);
    let fault = FaultKind::Panic;
    // With the interrupted context (`nmi_panic(regs, …)`) the report shows that; otherwise the
    // CPU as it is now, inside panic().
    let saved = (regs_at != 0)
        .then(|| c.m.memory.read_virt_obj::<PtRegs>(c.cr3(), regs_at).ok())
        .flatten();
    let report = match saved {
        Some(r) => fault_report(c.m, c.cpu, fault, Regs::from_pt_regs(&r), 0, c.cr3()),
        None => match capture_fault(c.m, c.vcpu, c.cpu, fault) {
            Outcome::Fault(r) => r,
            other => {
                c.m.finish(other);
                return Next::Stop;
            }
        },
    };
    // Issued by `machine_kexec`: the host is the capture kernel, the vmcore is taken here.
    c.m.take_capture_snapshot(c.cpu, c.vcpu, format!("panic on CPU {}: {message}", c.cpu));
    c.m.finish(Outcome::Panic { message, report });
    Next::Stop
}

/// `a0 = saved pt_regs, a1 = vector, a2 = error code, a3 = CR2`: an oops.
pub fn exception(c: &Call<'_>) -> Next {
    let [regs_at, vector, error_code, cr2] = c.args;
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
    // The faulting context is the pt_regs the entry stub saved; if the guest passed a pointer
    // we cannot read, report the live registers instead.
    let outcome = match c.m.memory.read_virt_obj::<PtRegs>(c.cr3(), regs_at) {
        Ok(saved) => Outcome::Fault(fault_report(
            c.m,
            c.cpu,
            fault,
            Regs::from_pt_regs(&saved),
            cr2,
            c.cr3(),
        )),
        Err(_) => {
            c.m.count_bad_hypercall(
                c.cpu,
                format!("Exception with unreadable pt_regs at {regs_at:#x}"),
            );
            capture_fault(c.m, c.vcpu, c.cpu, fault)
        }
    };
    if let Outcome::Fault(r) = &outcome {
        c.m.take_snapshot(c.cpu, c.vcpu, r.headline());
    }
    c.m.finish(outcome);
    Next::Stop
}

/// `a0 = kind, a1 = interrupted pt_regs, a2 = message, a3 = length`: a lockup detector fired.
/// The run goes on (the kernel prints its report); the snapshot is of this instant.
pub fn watchdog(c: &Call<'_>) -> Next {
    let [kind, regs_at, msg, len] = c.args;
    let Some(kind) = lockvmm_abi::hypercall::LockupKind::from_raw(kind).map(LockupKind::from)
    else {
        return c.reject(format!("Watchdog: unknown lockup kind {kind}"));
    };
    let message = c.read_message(msg, len);
    let fault = FaultKind::Lockup { kind };
    // A hung task is reported from khungtaskd's own context (a1 names the task); the lockup
    // detectors pass the context they interrupted.
    let (report, task) = if kind == LockupKind::HungTask {
        match capture_fault(c.m, c.vcpu, c.cpu, fault) {
            Outcome::Fault(r) => (r, Some(regs_at)),
            other => {
                c.m.finish(other);
                return Next::Stop;
            }
        }
    } else {
        let Ok(saved) = c.m.memory.read_virt_obj::<PtRegs>(c.cr3(), regs_at) else {
            return c.reject(format!("Watchdog: unreadable pt_regs at {regs_at:#x}"));
        };
        (
            fault_report(c.m, c.cpu, fault, Regs::from_pt_regs(&saved), 0, c.cr3()),
            None,
        )
    };
    let reason = format!("{kind} lockup on CPU {}: {message}", c.cpu);
    c.m.record_lockup(LockupEvent {
        vtime_ns: c.m.now_ns(),
        cpu: c.cpu,
        task,
        kind,
        message,
        report,
    });
    c.m.take_detection_snapshot(c.cpu, c.vcpu, reason);
    c.ok()
}
