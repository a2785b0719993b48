//! Keeping a run-token handover on one host CPU. Only the token's holder runs, so a handover
//! is one thread waking another and going to sleep at once. Left to itself, Linux wakes the
//! sleeper on another CPU: an idle one (on this project's nested machines, a halted CPU that
//! takes a while to wake) or a busy one, where the woken thread waits for the running task's
//! time slice to end (up to ~4 ms here). The waker therefore binds the thread it wakes to its
//! own CPU just before the wake-up: the woken thread runs there as soon as the waker sleeps,
//! which it does a few microseconds later. Once it holds the token, the thread drops the
//! binding again (`took_token`), so a long-running vCPU still moves away from a busy CPU.
//! Binding is best effort: where the host refuses it (a cpuset that excludes that CPU), the
//! handover is as before. It changes when threads run, never what the guest sees.
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::sched::{CpuSet, sched_getaffinity, sched_getcpu, sched_setaffinity};
use nix::unistd::{Pid, gettid};

/// Per vCPU: its thread, and whether a waker bound it.
pub struct Handover {
    tids: Vec<AtomicI32>,
    bound: Vec<AtomicBool>,
}

thread_local! {
    /// The CPUs this thread may run on, as it started (what `took_token` restores).
    static ALLOWED: Option<CpuSet> = sched_getaffinity(Pid::from_raw(0)).ok();
}

impl Handover {
    pub fn new(n: usize) -> Self {
        Handover {
            tids: (0..n).map(|_| AtomicI32::new(0)).collect(),
            bound: (0..n).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// The calling thread runs vCPU `cpu` from now on. A thread that could not read its own
    /// CPUs (and so could not restore them) is never bound.
    pub fn register(&self, cpu: usize) {
        if ALLOWED.with(Option::is_some) {
            self.tids[cpu].store(gettid().as_raw(), Ordering::Release);
        }
    }

    /// About to wake `cpu`'s thread: bind it to the calling thread's CPU.
    pub fn bind_to_this_cpu(&self, cpu: usize) {
        let tid = self.tids[cpu].load(Ordering::Acquire);
        let Ok(here) = sched_getcpu() else { return };
        let mut set = CpuSet::new();
        if tid == 0 || set.set(here).is_err() {
            return;
        }
        if sched_setaffinity(Pid::from_raw(tid), &set).is_ok() {
            self.bound[cpu].store(true, Ordering::Release);
        }
    }

    /// `cpu`'s thread (the caller) took the token: drop a waker's binding.
    pub fn took_token(&self, cpu: usize) {
        if self.bound[cpu].swap(false, Ordering::AcqRel) {
            ALLOWED.with(|allowed| {
                if let Some(set) = allowed {
                    let _ = sched_setaffinity(Pid::from_raw(0), set);
                }
            });
        }
    }
}
