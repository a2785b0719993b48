//! Events the guest raises: `SendIpi`, `Hook` (where the scenario's host actions fire), and
//! `Syscall` (the ring-3 → ring-0 transition this KVM does not make by itself).
use lockvmm_abi::IPI_NMI;
use lockvmm_abi::hook::Hook;

use super::Call;
use crate::machine::Then;
use crate::machine::run_token::{PAUSED, Wait};
use crate::machine::syscall::{self, SyscallError};
use crate::machine::vcpu_loop::Next;
use crate::state::HookEvent;

/// `a0 = cpu, a1 = vector` (or `IPI_NMI`).
pub fn send_ipi(c: &Call<'_>) -> Next {
    let [target, vector, ..] = c.args;
    if target as usize >= c.m.nr_cpus || !c.m.sched.is_started(target as usize) {
        return c.reject(format!("SendIpi to CPU {target}: no such online CPU"));
    }
    match vector {
        IPI_NMI => c.m.deliver_nmi(target as usize),
        32..=255 => c.m.deliver_interrupt(target as usize, vector as u8),
        _ => return c.reject(format!("SendIpi: invalid vector {vector:#x}")),
    }
    c.ok()
}

/// `a0 = hook id, a1 = argument`: record the point, then perform the scenario's actions for it.
pub fn hook(c: &Call<'_>) -> Next {
    let [id, arg, ..] = c.args;
    let Some(hook) = Hook::from_raw(id) else {
        return c.reject(format!("Hook: unknown hook id {id}"));
    };
    let m = c.m;
    m.record_hook(HookEvent {
        vtime_ns: m.now_ns(),
        cpu: c.cpu,
        hook: hook.name().into(),
        arg,
        rip: c.regs.rip,
        rip_symbol: m.kernel.symbols.describe(c.regs.rip),
        rflags: c.regs.rflags,
    });
    if hook == Hook::LockdepSplat {
        record_splat(c, arg);
    }
    let mut pause_self = false;
    let mut acted = 0;
    for (deliver, target) in m.actions_for(hook, arg, c.cpu) {
        acted += 1;
        match m.perform(deliver, target) {
            Then::Pause(t) => pause_self |= t == c.cpu,
            Then::Snapshot => m.take_snapshot(
                c.cpu,
                c.vcpu,
                format!("requested at hook {} on CPU {}", hook.name(), c.cpu),
            ),
            Then::Continue => {}
        }
    }
    crate::machine::trace_action::record_hook(m, c, id, arg, acted);
    match c.ok() {
        Next::Continue if pause_self => Next::Block(Wait {
            addr: Some(PAUSED),
            irq_enabled: false,
            rip: c.regs.rip,
            until: None,
        }),
        next => next,
    }
}

/// `Hook::LockdepSplat`: the guest's record of the report, read from its memory (a record
/// that cannot be read or names an unknown kind is refused, like any bad argument).
fn record_splat(c: &Call<'_>, at: u64) {
    use lockvmm_abi::lockdep::SplatRecord;
    let m = c.m;
    match m.memory.read_virt_obj::<SplatRecord>(c.cr3(), at) {
        Ok(rec) => {
            // A return address: name the call (`lab_lock+0xbc`), as the console does.
            let sym = m.kernel.symbols.lookup(rec.ip.wrapping_sub(1)).map_or_else(
                || format!("{:#x}", rec.ip),
                |l| format!("{}+{:#x}", l.name, l.offset + 1),
            );
            match crate::state::Splat::from_record(&rec, m.now_ns(), sym) {
                Some(s) => m.record_splat(s),
                None => m.count_bad_hypercall(c.cpu, format!("lockdep splat: kind {}", rec.kind)),
            }
        }
        Err(e) => m.count_bad_hypercall(c.cpu, format!("lockdep splat record at {at:#x}: {e}")),
    }
}

/// From ring 3, `a3 = system call number`: enter the kernel as `syscall` would.
pub fn syscall(c: &Call<'_>) -> Next {
    match syscall::enter(c.m, c.vcpu, c.regs, c.args[3]) {
        Ok(()) => Next::Continue,
        Err(SyscallError::Kvm(e)) => c.host_error(format!("CPU {}: Syscall: {e}", c.cpu)),
        Err(e) => c.reject(format!("Syscall: {e}")),
    }
}
