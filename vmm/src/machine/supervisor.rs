//! The supervisor: waits (on event-manager) for the machine to stop, and kicks a vCPU that has
//! held the run token too long without yielding (a guest loop that never waits), so that it is
//! reported as stalled instead of hanging the host. Also joins the vCPU threads at the end.
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use event_manager::{EventManager, EventOps, Events, MutEventSubscriber, SubscriberOps};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::signal::{Killable, SIGRTMIN, register_signal_handler};
use vmm_sys_util::timerfd::TimerFd;

use super::{Machine, MachineError, lock};

/// The signal that kicks a vCPU thread out of `KVM_RUN`.
fn kick_signal() -> i32 {
    SIGRTMIN()
}

pub(super) fn install_kick_handler() -> Result<(), MachineError> {
    extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // Delivering the signal interrupts a running KVM_RUN (EINTR); immediate_exit also
        // catches the thread just before it enters.
        super::vcpu_loop::request_immediate_exit();
    }
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = register_signal_handler(kick_signal(), on_kick).map_err(|e| {
            MachineError::Host(format!("cannot install the vCPU kick signal handler: {e}"))
        });
    });
    result
}

/// Waits (on event-manager) for the machine to stop, checking once a second that the vCPU
/// holding the run token keeps yielding.
pub(super) fn supervise(
    m: &Arc<Machine>,
    threads: &[JoinHandle<Option<kvm_ioctls::VcpuFd>>],
    stall_timeout: Duration,
) -> Result<(), MachineError> {
    fn host_err(e: impl std::fmt::Display) -> MachineError {
        MachineError::Host(format!("supervisor: {e}"))
    }
    let mut timer = TimerFd::new().map_err(host_err)?;
    timer
        .reset(Duration::from_millis(250), Some(Duration::from_millis(250)))
        .map_err(host_err)?;
    let supervisor = Arc::new(Mutex::new(Supervisor {
        machine: m.clone(),
        timer,
        stop: m.stop_evt.try_clone().map_err(host_err)?,
        pthreads: threads.iter().map(|t| t.as_pthread_t()).collect(),
        stall_timeout,
        done: false,
        holder_since: None,
    }));
    let mut events: EventManager<Arc<Mutex<Supervisor>>> =
        EventManager::new().map_err(|e| MachineError::Host(format!("event manager: {e:?}")))?;
    events.add_subscriber(supervisor.clone());
    while !lock(&supervisor).done {
        events
            .run()
            .map_err(|e| MachineError::Host(format!("event manager: {e:?}")))?;
    }
    Ok(())
}

struct Supervisor {
    machine: Arc<Machine>,
    timer: TimerFd,
    stop: EventFd,
    pthreads: Vec<libc::pthread_t>,
    stall_timeout: Duration,
    done: bool,
    /// The token's holder and when this supervisor first saw it hold the token: the token is
    /// handed to a vCPU whose thread may still be asleep (its last entry long ago, or never in
    /// this machine), so a stall counts from the later of its last entry and the handover.
    holder_since: Option<(usize, std::time::Instant)>,
}

impl MutEventSubscriber for Supervisor {
    fn init(&mut self, ops: &mut EventOps) {
        let _ = ops.add(Events::new(&self.stop, EventSet::IN));
        let _ = ops.add(Events::new(&self.timer, EventSet::IN));
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        use std::os::fd::AsRawFd;
        if events.fd() == self.stop.as_raw_fd() {
            let _ = self.stop.read();
            self.done = true;
            return;
        }
        let _ = self.timer.wait();
        if self.machine.is_stopped() {
            self.done = true;
            return;
        }
        if let Some(sig) = crate::process::signals::received() {
            self.machine.finish(crate::state::Outcome::Interrupted {
                signal: crate::process::signals::name(sig),
            });
            return;
        }
        let holder = self.machine.sched.holder();
        let since = match (holder, self.holder_since) {
            (Some(cpu), Some((seen, at))) if seen == cpu => at,
            (Some(cpu), _) => self.holder_since.insert((cpu, std::time::Instant::now())).1,
            (None, _) => {
                self.holder_since = None;
                return;
            }
        };
        if let Some(cpu) = holder {
            let slot = self.machine.cpu(cpu);
            if slot.since_entry_ms() >= self.stall_timeout.as_millis() as u64
                && since.elapsed() >= self.stall_timeout
            {
                slot.stall_kick.store(true, Ordering::Release);
                kick_thread(self.pthreads[cpu]);
            }
        }
    }
}

fn kick_thread(thread: libc::pthread_t) {
    // SAFETY: `thread` is a live vCPU thread of this process (it is joined only after the
    // supervisor returns) and the kick signal has a no-op handler installed.
    unsafe {
        libc::pthread_kill(thread, kick_signal());
    }
}

/// Joins every vCPU thread; one still in `KVM_RUN` is kicked until it leaves. Returns the
/// vCPUs the threads handed back (`None` for a thread that never left, or panicked, or whose
/// vCPU was never created).
pub(super) fn join_all(
    m: &Machine,
    threads: Vec<JoinHandle<Option<kvm_ioctls::VcpuFd>>>,
) -> Vec<Option<kvm_ioctls::VcpuFd>> {
    // Every parked thread was woken by the stop and leaves by itself. Poll them all at once (a
    // 2 ms sleep per CPU in turn cost milliseconds at every power-off); a thread still there
    // after 2 ms may be in `KVM_RUN`: kick it, and again every 2 ms. Kicking at once would
    // send a signal to every parked thread, which only slows their exit down.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut kicked = Instant::now();
    loop {
        let left: Vec<usize> = (0..threads.len())
            .filter(|&cpu| !m.cpu(cpu).exited.load(Ordering::Acquire))
            .collect();
        if left.is_empty() || Instant::now() >= deadline {
            break;
        }
        if kicked.elapsed() >= Duration::from_millis(2) {
            for &cpu in &left {
                let _ = threads[cpu].kill(kick_signal());
            }
            kicked = Instant::now();
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    threads
        .into_iter()
        .enumerate()
        .map(|(cpu, t)| {
            // A thread that never left KVM_RUN is detached; the process exits soon after.
            m.cpu(cpu)
                .exited
                .load(Ordering::Acquire)
                .then(|| t.join().ok().flatten())
                .flatten()
        })
        .collect()
}
