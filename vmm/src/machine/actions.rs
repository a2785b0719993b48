//! The scenario's host actions: at a hook point or a virtual time, deliver a timer tick, an NMI
//! or a PMU overflow to a CPU, or pause and resume it.
use lockvmm_abi::hook::Hook;

use super::{Deliver, Machine, When, lock};

/// What the caller of [`Machine::perform`] does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    Continue,
    /// `target` was paused: if the caller is that CPU, it blocks.
    Pause(usize),
    /// The caller takes the snapshot (it holds the vCPU).
    Snapshot,
}

impl Machine {
    /// The deliveries (and their target CPUs) the scenario asks for when `cpu` reaches `hook`
    /// with `arg` (each `once` action only the first time).
    pub fn actions_for(&self, hook: Hook, arg: u64, cpu: usize) -> Vec<(Deliver, usize)> {
        let mut out = Vec::new();
        for (a, fired, seen) in lock(&self.actions).iter_mut() {
            if a.when != When::Hook(hook)
                || a.cpu.is_some_and(|c| c != cpu)
                || a.arg.is_some_and(|x| x != arg)
            {
                continue;
            }
            *seen += 1;
            if a.nth.is_none_or(|n| n == *seen) && !(a.once && *fired) {
                *fired = true;
                out.push((a.deliver, a.target.unwrap_or(cpu)));
            }
        }
        out
    }

    /// When the next timed action is due.
    pub fn next_timed_action(&self) -> Option<u64> {
        lock(&self.actions)
            .iter()
            .filter(|(_, fired, _)| !fired)
            .filter_map(|(a, _, _)| match a.when {
                When::Time(t) => Some(t),
                When::Hook(_) => None,
            })
            .min()
    }

    /// Performs every timed action due by `now` (from the clock, while every vCPU waits; `cpu`
    /// and `vcpu` are the last to wait, for a snapshot).
    pub fn run_timed_actions(&self, now: u64, cpu: usize, vcpu: &kvm_ioctls::VcpuFd) {
        let due: Vec<(Deliver, usize)> = lock(&self.actions)
            .iter_mut()
            .filter(|(a, fired, _)| !fired && matches!(a.when, When::Time(t) if t <= now))
            .map(|(a, fired, _)| {
                *fired = true;
                (a.deliver, a.target.or(a.cpu).unwrap_or(0))
            })
            .collect();
        for (d, target) in due {
            if self.perform(d, target) == Then::Snapshot {
                self.take_snapshot(cpu, vcpu, format!("requested at {:.3} s", now as f64 / 1e9));
            }
        }
    }

    /// Delivers one action to `target`; says what the caller must do next.
    pub fn perform(&self, d: Deliver, target: usize) -> Then {
        if target >= self.nr_cpus {
            return Then::Continue;
        }
        match d {
            Deliver::TimerTick => super::clock::fire_next_timer(self, target),
            Deliver::Nmi => self.deliver_nmi(target),
            Deliver::PmuOverflow => {
                self.pmu_overflow(target, self.now_ns());
                self.deliver_nmi(target);
            }
            Deliver::Pause => {
                self.sched.pause(target);
                return Then::Pause(target);
            }
            Deliver::Resume => self.sched.resume(target),
            Deliver::Irq(vector) => self.deliver_interrupt(target, vector),
            Deliver::Snapshot => return Then::Snapshot,
        }
        Then::Continue
    }
}
