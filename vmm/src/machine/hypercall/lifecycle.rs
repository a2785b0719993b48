//! Bring-up and power-off: `CpuOnline`, `StartCpu`, `Shutdown`.
use super::Call;
use crate::machine::vcpu_loop::Next;
use crate::state::Outcome;

/// `a0 = cpu`: this CPU finished bring-up.
pub fn cpu_online(c: &Call<'_>) -> Next {
    if c.args[0] != c.cpu as u64 {
        return c.reject(format!(
            "CpuOnline for CPU {} issued by CPU {}",
            c.args[0], c.cpu
        ));
    }
    c.m.cpu_online(c.cpu);
    c.ok()
}

/// `a0 = cpu`: start a secondary CPU.
pub fn start_cpu(c: &Call<'_>) -> Next {
    let target = c.args[0];
    if target as usize >= c.m.nr_cpus || !c.m.sched.start(target as usize) {
        return c.reject(format!("StartCpu({target}): no such offline CPU"));
    }
    c.ok()
}

/// `a0 = exit status`: power off.
pub fn shutdown(c: &Call<'_>) -> Next {
    c.m.finish(Outcome::Shutdown {
        status: c.args[0] as u32,
    });
    Next::Stop
}
