//! Bring-up and power-off: `CpuOnline`, `StartCpu`, `Shutdown`.
use super::Call;
use crate::machine::vcpu_loop::Next;
use crate::state::Outcome;

/// `a0 = cpu, a1 = address to kick or 0`: this CPU finished bring-up (and its starter may go
/// on: the kick on the online flag it waits on).
pub fn cpu_online(c: &Call<'_>) -> Next {
    if c.args[0] != c.cpu as u64 {
        return c.reject(format!(
            "CpuOnline for CPU {} issued by CPU {}",
            c.args[0], c.cpu
        ));
    }
    c.m.cpu_online(c.cpu);
    if c.args[1] != 0 {
        c.m.sched.kick(c.args[1]);
    }
    c.ok()
}

/// `a0 = cpu, a1 = address to wait on or 0`: start a secondary CPU, then (with `a1`) wait
/// until the u32 there is no longer 0 (the CPU's online flag).
pub fn start_cpu(c: &Call<'_>) -> Next {
    let [target, online, _, _] = c.args;
    if online != 0
        && let Err(e) = c.m.memory.read_virt_u32(c.cr3(), online)
    {
        return c.reject(format!("StartCpu({target}) waiting on {online:#x}: {e}"));
    }
    if target as usize >= c.m.nr_cpus || !c.m.sched.start(target as usize) {
        return c.reject(format!("StartCpu({target}): no such offline CPU"));
    }
    if online == 0 {
        return c.ok();
    }
    super::wait::block(c, online, 0, 0)
}

/// `a0 = exit status`: power off.
pub fn shutdown(c: &Call<'_>) -> Next {
    c.m.finish(Outcome::Shutdown {
        status: c.args[0] as u32,
    });
    Next::Stop
}
