//! The run token: lockvmm runs exactly one vCPU at a time, deterministically.
//!
//! A vCPU holds the token while it is inside `KVM_RUN` or handling its own exits. It gives the
//! token back only when the guest waits (the `Wait` hypercall: idle, a contended lock, a CPU it
//! is waiting for) or the machine stops. The next holder is always the lowest-numbered ready
//! vCPU, so the interleaving of guest code — and every report built from it — is a function of
//! the scenario alone, not of host speed or thread timing. Guest wait loops hand the host CPU
//! back instead of spinning, so 64 vCPUs on 2 host cores cost only the work they really do.
use std::sync::{Condvar, Mutex, MutexGuard};

use super::handover::Handover;

/// What a waiting vCPU waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wait {
    /// The guest virtual address of the word it waits on (`None`: only an interrupt).
    pub addr: Option<u64>,
    /// RFLAGS.IF at the wait: whether a maskable interrupt can wake it.
    pub irq_enabled: bool,
    /// Where it waits (the RIP after the hypercall).
    pub rip: u64,
    /// Virtual time at which it wakes by itself (a busy loop's end), if any.
    pub until: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpuState {
    /// Not started yet (Linux: in wait-for-SIPI).
    Offline,
    Ready,
    Running,
    Waiting(Wait),
}

/// Why `release` found nobody to run.
#[derive(Debug, Clone)]
pub enum Idle {
    /// Every started vCPU waits and nothing can wake any of them.
    AllWaiting(Vec<(usize, Wait)>),
}

#[derive(Clone)]
struct Inner {
    cpus: Vec<CpuState>,
    token: Option<usize>,
    stopped: bool,
    /// Raised to ask every parked vCPU thread to capture its state (see `Grant::Capture`).
    capture_epoch: u64,
    /// CPUs a scenario paused: never handed the token until resumed.
    paused: Vec<bool>,
}

/// The address a paused vCPU "waits on": no guest address, so only `resume` wakes it.
pub const PAUSED: u64 = u64::MAX;

/// What `acquire` hands a vCPU thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// It holds the run token.
    Token,
    /// The machine stopped.
    Stopped,
    /// A snapshot is being taken: capture this vCPU's state (for epoch `n`), then acquire again.
    Capture(u64),
}

pub struct Scheduler {
    inner: Mutex<Inner>,
    wakeups: Vec<Condvar>,
    /// Which host CPU a handover wakes the next holder on.
    pub handover: Handover,
}

/// The run token's state at a snapshot (`machine::restore`).
#[derive(Clone)]
pub struct SchedState(Inner);

impl Scheduler {
    /// A machine of `n` vCPUs; CPU 0 holds the token first.
    pub fn new(n: usize) -> Self {
        let mut cpus = vec![CpuState::Offline; n];
        cpus[0] = CpuState::Running;
        Scheduler {
            inner: Mutex::new(Inner {
                cpus,
                token: Some(0),
                stopped: false,
                capture_epoch: 0,
                paused: vec![false; n],
            }),
            wakeups: (0..n).map(|_| Condvar::new()).collect(),
            handover: Handover::new(n),
        }
    }

    /// Its state now, to resume from (`from_saved`).
    pub fn save(&self) -> SchedState {
        SchedState(self.lock().clone())
    }

    /// A scheduler where `save` left one: the same holder, states and pauses, running.
    pub fn from_saved(s: &SchedState) -> Self {
        let inner = Inner {
            stopped: false,
            capture_epoch: 0,
            ..s.0.clone()
        };
        Scheduler {
            wakeups: (0..inner.cpus.len()).map(|_| Condvar::new()).collect(),
            handover: Handover::new(inner.cpus.len()),
            inner: Mutex::new(inner),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks until `cpu` holds the token, the machine stops, or a snapshot newer than
    /// `seen_epoch` wants this vCPU's state.
    pub fn acquire(&self, cpu: usize, seen_epoch: u64) -> Grant {
        let mut inner = self.lock();
        loop {
            if inner.capture_epoch > seen_epoch {
                return Grant::Capture(inner.capture_epoch);
            }
            if inner.stopped {
                return Grant::Stopped;
            }
            if inner.token == Some(cpu) {
                return Grant::Token;
            }
            inner = self.wakeups[cpu]
                .wait(inner)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Asks every parked vCPU thread to capture its state; returns the request's epoch.
    pub fn request_capture(&self) -> u64 {
        let mut inner = self.lock();
        inner.capture_epoch += 1;
        for cv in &self.wakeups {
            cv.notify_one();
        }
        inner.capture_epoch
    }

    /// `cpu` (the holder) starts waiting and gives the token to the next ready vCPU.
    pub fn release(&self, cpu: usize, wait: Wait) -> Result<(), Idle> {
        let mut inner = self.lock();
        debug_assert_eq!(inner.token, Some(cpu));
        inner.cpus[cpu] = CpuState::Waiting(wait);
        inner.token = None;
        self.pass_token(&mut inner)
    }

    /// Makes an offline vCPU ready (the `StartCpu` hypercall). `false` if it was not offline.
    pub fn start(&self, cpu: usize) -> bool {
        let mut inner = self.lock();
        match inner.cpus.get(cpu) {
            Some(CpuState::Offline) => {
                inner.cpus[cpu] = CpuState::Ready;
                true
            }
            _ => false,
        }
    }

    /// Makes every vCPU waiting on `addr` ready; returns how many.
    pub fn kick(&self, addr: u64) -> usize {
        let mut inner = self.lock();
        let mut woken = 0;
        for state in inner.cpus.iter_mut() {
            if matches!(state, CpuState::Waiting(w) if w.addr == Some(addr)) {
                *state = CpuState::Ready;
                woken += 1;
            }
        }
        woken
    }

    /// An interrupt (or, with `nmi`, an NMI) was delivered to `cpu`: a waiting vCPU that can
    /// take it becomes ready. Returns whether it did.
    pub fn deliver(&self, cpu: usize, nmi: bool) -> bool {
        let mut inner = self.lock();
        match &inner.cpus[cpu] {
            CpuState::Waiting(w) if nmi || w.irq_enabled => {
                inner.cpus[cpu] = CpuState::Ready;
                true
            }
            _ => false,
        }
    }

    /// The earliest self-wake deadline of a waiting vCPU (`Wait::until`), with the vCPU.
    pub fn next_deadline(&self) -> Option<(u64, usize)> {
        let inner = self.lock();
        inner
            .cpus
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                CpuState::Waiting(w) => w.until.map(|t| (t, i)),
                _ => None,
            })
            .min()
    }

    /// Wakes every waiting vCPU whose deadline is at or before `now`.
    pub fn wake_deadlines(&self, now: u64) {
        let mut inner = self.lock();
        for s in inner.cpus.iter_mut() {
            if matches!(s, CpuState::Waiting(w) if w.until.is_some_and(|t| t <= now)) {
                *s = CpuState::Ready;
            }
        }
    }

    /// Hands the token out if nobody holds it (after the clock delivered events).
    pub fn dispatch(&self) -> Result<(), Idle> {
        let mut inner = self.lock();
        if inner.token.is_some() || inner.stopped {
            return Ok(());
        }
        self.pass_token(&mut inner)
    }

    /// Whether `cpu` has been started.
    pub fn is_started(&self, cpu: usize) -> bool {
        !matches!(self.lock().cpus[cpu], CpuState::Offline)
    }

    /// Stops the machine: every `acquire` returns `false` from now on.
    pub fn stop(&self) {
        let mut inner = self.lock();
        inner.stopped = true;
        for cv in &self.wakeups {
            cv.notify_one();
        }
    }

    /// Which vCPU holds the token.
    pub fn holder(&self) -> Option<usize> {
        self.lock().token
    }

    /// The epoch of the latest capture request.
    pub fn capture_epoch(&self) -> u64 {
        self.lock().capture_epoch
    }

    /// Every vCPU's state (for reports).
    pub fn states(&self) -> Vec<CpuState> {
        self.lock().cpus.clone()
    }

    /// One vCPU's state.
    pub fn state(&self, cpu: usize) -> CpuState {
        self.lock().cpus[cpu].clone()
    }

    /// A scenario pauses `cpu`: it keeps its state but is not run until `resume`.
    pub fn pause(&self, cpu: usize) {
        self.lock().paused[cpu] = true;
    }

    /// Resumes a paused CPU; one that paused itself at a hook continues from there.
    pub fn resume(&self, cpu: usize) {
        let mut inner = self.lock();
        inner.paused[cpu] = false;
        if matches!(&inner.cpus[cpu], CpuState::Waiting(w) if w.addr == Some(PAUSED)) {
            inner.cpus[cpu] = CpuState::Ready;
        }
    }

    fn pass_token(&self, inner: &mut Inner) -> Result<(), Idle> {
        let paused = &inner.paused;
        if let Some(next) = inner
            .cpus
            .iter()
            .enumerate()
            .position(|(i, s)| *s == CpuState::Ready && !paused[i])
        {
            inner.cpus[next] = CpuState::Running;
            inner.token = Some(next);
            self.handover.bind_to_this_cpu(next);
            self.wakeups[next].notify_one();
            return Ok(());
        }
        let waiting = inner
            .cpus
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                CpuState::Waiting(w) => Some((i, w.clone())),
                _ => None,
            })
            .collect();
        Err(Idle::AllWaiting(waiting))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_on(addr: u64) -> Wait {
        Wait {
            addr: Some(addr),
            irq_enabled: true,
            rip: 0,
            until: None,
        }
    }

    #[test]
    fn token_goes_to_lowest_ready_cpu() {
        let s = Scheduler::new(4);
        assert!(s.start(3));
        assert!(s.start(2));
        assert!(!s.start(2), "a started CPU cannot be started again");
        s.release(0, wait_on(0x1000)).unwrap();
        assert_eq!(s.holder(), Some(2));
    }

    #[test]
    fn kick_wakes_only_waiters_on_that_address() {
        let s = Scheduler::new(3);
        s.start(1);
        s.start(2);
        s.release(0, wait_on(0x1000)).unwrap();
        s.release(1, wait_on(0x2000)).unwrap();
        assert_eq!(s.holder(), Some(2));
        assert_eq!(s.kick(0x2000), 1);
        s.release(2, wait_on(0x3000)).unwrap();
        assert_eq!(s.holder(), Some(1));
    }

    #[test]
    fn masked_interrupts_do_not_wake_but_nmis_do() {
        let s = Scheduler::new(2);
        s.start(1);
        s.release(
            0,
            Wait {
                addr: None,
                irq_enabled: false,
                rip: 0,
                until: None,
            },
        )
        .unwrap();
        assert!(
            s.release(
                1,
                Wait {
                    addr: None,
                    irq_enabled: true,
                    rip: 0,
                    until: None,
                }
            )
            .is_err()
        );
        assert!(!s.deliver(0, false), "IF=0: an interrupt stays pending");
        assert!(s.deliver(0, true), "an NMI always wakes");
        s.dispatch().unwrap();
        assert_eq!(s.holder(), Some(0));
    }

    #[test]
    fn everyone_waiting_is_reported() {
        let s = Scheduler::new(2);
        s.start(1);
        s.release(0, wait_on(0x1000)).unwrap();
        match s.release(1, wait_on(0x2000)) {
            Err(Idle::AllWaiting(w)) => {
                assert_eq!(w.iter().map(|(c, _)| *c).collect::<Vec<_>>(), vec![0, 1])
            }
            Ok(()) => panic!("nobody can run, yet the token moved"),
        }
    }
}
