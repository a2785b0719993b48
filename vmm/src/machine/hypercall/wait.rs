//! Waiting and waking: `Wait` gives the run token back until a kick, an event or a deadline;
//! `Kick` wakes the waiters on an address.
use lockvmm_abi::eflags::X86_EFLAGS_IF;

use super::Call;
use crate::machine::run_token::Wait;
use crate::machine::vcpu_loop::Next;

/// `a0 = address of a u32, a1 = expected value, a2 = deadline`.
pub fn wait(c: &Call<'_>) -> Next {
    let [addr, expected, until, _] = c.args;
    block(c, addr, expected, until)
}

/// Gives the token back until `*addr != expected` (or a kick on it), an event, or `until`;
/// answers `HC_OK`. Also the waiting half of `StartCpu`.
pub fn block(c: &Call<'_>, addr: u64, expected: u64, until: u64) -> Next {
    if until != 0 && until <= c.m.now_ns() {
        return c.ok();
    }
    let wait = Wait {
        addr: (addr != 0).then_some(addr),
        irq_enabled: c.regs.rflags & X86_EFLAGS_IF != 0,
        rip: c.regs.rip,
        until: (until != 0).then_some(until),
    };
    if addr != 0 {
        match c.m.memory.read_virt_u32(c.cr3(), addr) {
            Err(e) => return c.reject(format!("Wait on {addr:#x}: {e}")),
            // Already changed: the wake-up came before the wait; no need to block.
            Ok(v) if u64::from(v) != expected & 0xffff_ffff => return c.ok(),
            Ok(_) => {}
        }
    }
    match c.ok() {
        Next::Continue => Next::Block(wait),
        stop => stop,
    }
}

/// `a0 = address`: wake every vCPU waiting on it.
pub fn kick(c: &Call<'_>) -> Next {
    c.m.sched.kick(c.args[0]);
    c.ok()
}
