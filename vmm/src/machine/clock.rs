//! The lab's virtual clock.
//!
//! Guest time is not wall time: it advances only when every vCPU waits (see `sched`), and then
//! jumps straight to the next event — the earliest timer deadline a CPU programmed in the
//! clockevent page, or the earliest PMU counter overflow. The events due at that instant are
//! delivered (a `LOCAL_TIMER_VECTOR` interrupt, an NMI) and the CPUs that can take them run.
//! "Stuck for 22s" therefore costs only the guest instructions that really run in those 22
//! seconds, and reads the same on this emulating KVM as on a hardware runner.
use lockvmm_abi::{CLOCKEVENT_PADDR, NO_EVENT, vector::LOCAL_TIMER_VECTOR};

use super::Machine;
use super::run_token::Idle;
use crate::state::Outcome;

/// Virtual nanoseconds per second.
pub const NSEC_PER_SEC: u64 = 1_000_000_000;

/// One step of the clock, from a state where nobody holds the run token.
pub enum Step {
    /// Someone can run again.
    Running,
    /// The machine stopped (an outcome was recorded).
    Stopped,
}

/// Advances the clock until a vCPU can run, or the run ends. `cpu`/`vcpu` are the caller's
/// (the last vCPU to wait), in case the end needs a snapshot.
pub fn advance(m: &Machine, mut idle: Idle, cpu: usize, vcpu: &kvm_ioctls::VcpuFd) -> Step {
    loop {
        if m.is_stopped() {
            return Step::Stopped;
        }
        if m.stop_requested_by_lockup() {
            m.finish_with_lockups();
            return Step::Stopped;
        }
        let now = m.now_ns();
        let deadlines = read_deadlines(m);
        let overflows: Vec<Option<u64>> = (0..m.nr_cpus)
            .map(|c| m.pmu_next_overflow(c, now))
            .collect();
        let busy_until = m.sched.next_deadline().map(|(t, _)| t);
        let timed_action = m.next_timed_action();
        let next = (0..m.nr_cpus)
            .filter(|&c| m.sched.is_started(c))
            .flat_map(|c| [deadlines[c], overflows[c].unwrap_or(NO_EVENT)])
            .chain(busy_until)
            .chain(timed_action)
            .filter(|&t| t != NO_EVENT)
            .min();
        let Some(next) = next else {
            m.take_snapshot(
                cpu,
                vcpu,
                "every CPU is waiting and nothing can wake any of them".into(),
            );
            m.report_all_waiting(idle);
            return Step::Stopped;
        };
        let at = next.max(now);
        if at > m.max_vtime_ns {
            m.set_now_ns(m.max_vtime_ns);
            if m.snapshot_at_end {
                m.take_snapshot(
                    cpu,
                    vcpu,
                    "the run reached its time limit with nothing detected".into(),
                );
            }
            m.finish(Outcome::TimeLimit {
                vtime_ns: m.max_vtime_ns,
            });
            return Step::Stopped;
        }
        m.set_now_ns(at);
        // For a progress display: a few times per virtual second, not every step.
        if crate::process::live::due(at) {
            let ticking = (0..m.nr_cpus)
                .filter(|&c| m.sched.is_started(c) && deadlines[c] != NO_EVENT)
                .count();
            crate::process::live::record(at, ticking, m.nr_cpus);
        }
        m.sched.wake_deadlines(at);
        m.run_timed_actions(at, cpu, vcpu);
        for cpu in 0..m.nr_cpus {
            if !m.sched.is_started(cpu) {
                continue;
            }
            // One event per CPU per step, the NMI first: this KVM can lose a fixed interrupt
            // that is pending together with an NMI whose handler exits to the VMM (the PMU's
            // MSRs). The timer stays armed and is delivered, at the same virtual instant, once
            // the CPU waits again.
            if overflows[cpu].is_some_and(|t| t <= at) {
                m.pmu_overflow(cpu, at);
                m.deliver_nmi(cpu);
            } else if deadlines[cpu] <= at {
                clear_deadline(m, cpu);
                deliver_tick(m, cpu);
            }
        }
        match m.sched.dispatch() {
            Ok(()) => return Step::Running,
            // Every event went to a CPU that cannot take it now (interrupts off): next event.
            Err(again) => idle = again,
        }
    }
}

/// A host action: `cpu` (running, at a hook) takes its next timer interrupt now. The clock
/// moves to that CPU's programmed deadline and everything due by then is delivered, to every
/// CPU, so no event is seen out of order; the others run once this one waits.
pub fn fire_next_timer(m: &Machine, cpu: usize) {
    let deadlines = read_deadlines(m);
    let at = match deadlines[cpu] {
        NO_EVENT => m.now_ns(),
        d => d.max(m.now_ns()),
    };
    if at > m.now_ns() && at <= m.max_vtime_ns {
        m.set_now_ns(at);
    }
    let now = m.now_ns();
    for c in (0..m.nr_cpus).filter(|&c| m.sched.is_started(c)) {
        if c != cpu && m.pmu_next_overflow(c, now).is_some_and(|t| t <= now) {
            m.pmu_overflow(c, now);
            m.deliver_nmi(c);
        } else if c == cpu || deadlines[c] <= now {
            clear_deadline(m, c);
            deliver_tick(m, c);
        }
    }
}

/// A timer interrupt to `cpu`, counted for the run's profile.
fn deliver_tick(m: &Machine, cpu: usize) {
    m.profile.timer_interrupt();
    m.deliver_interrupt(cpu, LOCAL_TIMER_VECTOR);
}

fn read_deadlines(m: &Machine) -> Vec<u64> {
    match m.memory.read_phys(CLOCKEVENT_PADDR, m.nr_cpus * 8) {
        Ok(bytes) => bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        Err(_) => vec![NO_EVENT; m.nr_cpus],
    }
}

fn clear_deadline(m: &Machine, cpu: usize) {
    let _ = m
        .memory
        .write_phys(CLOCKEVENT_PADDR + cpu as u64 * 8, &NO_EVENT.to_le_bytes());
}
