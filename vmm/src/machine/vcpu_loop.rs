//! The thread that runs one vCPU under the run token: enter the guest, decode the exit, answer
//! it (devices, PMU MSRs, hypercalls), and give the token back when the guest waits.
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use kvm_bindings::{KVM_MP_STATE_RUNNABLE, kvm_mp_state};
use kvm_ioctls::{VcpuExit, VcpuFd};
use lockvmm_abi::eflags::X86_EFLAGS_IF;
use lockvmm_abi::{HYPERCALL_PORT, SERIAL_PORT};

use super::capture::capture_or_empty;
use super::creation::Incoming;
use super::fault::{capture_exit_fault, capture_fault};
use super::hypercall;
use super::profile::ExitReason;
use super::run_token::{Grant, Wait};
use super::{Machine, clock};
use crate::state::{FaultKind, Outcome};

/// An exit, decoded into owned data so that the vCPU is free to be used again.
enum Event {
    /// Handled entirely by the device models.
    Handled,
    Hypercall(u32),
    Halt,
    /// `KVM_RUN` was interrupted (a kick) or asked to retry.
    Interrupted,
    Fault(FaultKind),
    HostError(String),
}

/// What the thread does next.
pub enum Next {
    Continue,
    Block(Wait),
    Stop,
}

thread_local! {
    /// This thread's `kvm_run.immediate_exit`, for the kick signal handler (null until the
    /// thread runs a vCPU, and again once it is done with it).
    static IMMEDIATE_EXIT: Cell<*mut u8> = const { Cell::new(std::ptr::null_mut()) };
}

/// Called by the kick signal handler on the kicked thread. A signal that lands just before
/// the thread enters `KVM_RUN` would interrupt nothing; with `immediate_exit` set, that
/// `KVM_RUN` returns `EINTR` at once (the protocol in KVM's api.rst, as Firecracker uses it).
pub fn request_immediate_exit() {
    let _ = IMMEDIATE_EXIT.try_with(|p| {
        let p = p.get();
        if !p.is_null() {
            // SAFETY: `p` points into this thread's vCPU `kvm_run` mapping, which lives as long
            // as the `VcpuFd` that `vcpu_thread` owns and is cleared before that is dropped.
            // The field is a byte KVM reads on entry, so a volatile store is the whole protocol.
            unsafe { std::ptr::write_volatile(p, 1) };
        }
    });
}

/// Runs vCPU `cpu`, once it is created, until the machine stops. Only the holder of the run
/// token is in `KVM_RUN`. The vCPU is handed back: a machine restored to a snapshot runs it
/// again. `None`: it could not be created, and the machine is stopped (the run fails with the
/// creation's error, `creation::Creation::finish`).
pub fn vcpu_thread(m: Arc<Machine>, incoming: Incoming, cpu: usize) -> Option<VcpuFd> {
    let Ok(mut vcpu) = incoming.recv() else {
        m.finish(Outcome::HostError {
            message: format!("CPU {cpu}: its vCPU could not be created"),
        });
        m.cpu(cpu).exited.store(true, Ordering::Release);
        return None;
    };
    m.sched.handover.register(cpu);
    let immediate_exit: *mut u8 = &mut vcpu.get_kvm_run().immediate_exit;
    IMMEDIATE_EXIT.with(|p| p.set(immediate_exit));
    run_vcpu(&m, &mut vcpu, cpu);
    let _ = hypercall::flush_deferred(&mut vcpu);
    IMMEDIATE_EXIT.with(|p| p.set(std::ptr::null_mut()));
    m.cpu(cpu).exited.store(true, Ordering::Release);
    Some(vcpu)
}

fn run_vcpu(m: &Arc<Machine>, vcpu: &mut VcpuFd, cpu: usize) {
    let sync = u64::from(kvm_bindings::KVM_SYNC_X86_REGS);
    let synced = vcpu.get_kvm_run().kvm_valid_regs & sync == sync;
    let mut started = cpu == 0 || m.cpu(cpu).started.load(Ordering::Acquire);
    let mut seen_epoch = 0;
    'token: loop {
        match m.sched.acquire(cpu, seen_epoch) {
            Grant::Token => m.sched.handover.took_token(cpu),
            Grant::Stopped => break,
            Grant::Capture(epoch) => {
                seen_epoch = epoch;
                // A wait's answer may still sit in `kvm_run` (see `hypercall::dispatch`).
                let _ = hypercall::flush_deferred(vcpu);
                m.deliver_capture(cpu, epoch, capture_or_empty(vcpu, cpu));
                continue;
            }
        }
        seen_epoch = m.sched.capture_epoch();
        if m.count_grant() {
            break;
        }
        // The stall check measures from here: a vCPU that has just taken the token (and never
        // ran before) has not been running guest code for the whole run.
        m.cpu(cpu).mark_entry();
        if !started {
            // The boot CPU started it (StartCpu): leave wait-for-SIPI for the entry point set
            // at creation.
            let state = kvm_mp_state {
                mp_state: KVM_MP_STATE_RUNNABLE,
            };
            if let Err(e) = vcpu.set_mp_state(state) {
                m.finish(Outcome::HostError {
                    message: format!("CPU {cpu}: cannot make it runnable: {e}"),
                });
                break;
            }
            started = true;
            m.cpu(cpu).started.store(true, Ordering::Release);
        }
        loop {
            m.cpu(cpu).mark_entry();
            let event = decode_exit(m, cpu, vcpu.run());
            if let Some(exits) = m.count_exit() {
                if !m.is_stopped() {
                    let outcome = capture_fault(m, vcpu, cpu, FaultKind::Runaway { exits });
                    if let Outcome::Fault(r) = &outcome {
                        m.take_snapshot(cpu, vcpu, r.headline());
                    }
                    m.finish(outcome);
                }
                break 'token;
            }
            let next = match event {
                Event::Handled => Next::Continue,
                Event::Hypercall(nr) => hypercall::dispatch(m, vcpu, cpu, nr, synced),
                Event::Halt => halt(vcpu),
                Event::Interrupted => {
                    // Re-arm: the kick that set it has been taken.
                    vcpu.set_kvm_immediate_exit(0);
                    interrupted(m, vcpu, cpu)
                }
                Event::Fault(kind) => {
                    let outcome = capture_exit_fault(m, vcpu, cpu, kind);
                    if let Outcome::Fault(r) = &outcome {
                        m.take_snapshot(cpu, vcpu, r.headline());
                    }
                    m.finish(outcome);
                    Next::Stop
                }
                Event::HostError(message) => {
                    m.finish(Outcome::HostError { message });
                    Next::Stop
                }
            };
            match next {
                Next::Continue if m.is_stopped() => {
                    let _ = hypercall::flush_deferred(vcpu);
                    break 'token;
                }
                Next::Continue => {}
                Next::Block(wait) => {
                    if let Err(idle) = m.sched.release(cpu, wait) {
                        // The clock may snapshot this vCPU: its registers must be in KVM.
                        let _ = hypercall::flush_deferred(vcpu);
                        clock::advance(m, idle, cpu, vcpu);
                    }
                    continue 'token;
                }
                Next::Stop => break 'token,
            }
        }
    }
}

fn decode_exit(m: &Machine, cpu: usize, exit: Result<VcpuExit<'_>, kvm_ioctls::Error>) -> Event {
    let exit = match exit {
        Ok(exit) => exit,
        Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
            m.profile.exit(ExitReason::Interrupted);
            return Event::Interrupted;
        }
        Err(e) => return Event::HostError(format!("CPU {cpu}: KVM_RUN failed: {e}")),
    };
    let serial = SERIAL_PORT..SERIAL_PORT + 8;
    let count = |reason| m.profile.exit(reason);
    match exit {
        VcpuExit::IoOut(HYPERCALL_PORT, data) => {
            count(ExitReason::Hypercall);
            let nr = data
                .iter()
                .rev()
                .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
            m.profile.hypercall(nr);
            Event::Hypercall(nr)
        }
        VcpuExit::IoOut(port, data) if serial.contains(&port) => {
            count(ExitReason::Serial);
            if let Some(&b) = data.first() {
                m.serial_write((port - SERIAL_PORT) as u8, b);
            }
            Event::Handled
        }
        VcpuExit::IoIn(port, data) if serial.contains(&port) => {
            count(ExitReason::Serial);
            if let Some(b) = data.first_mut() {
                *b = m.serial_read((port - SERIAL_PORT) as u8);
            }
            Event::Handled
        }
        // Like a PC with nothing on the bus: reads float high, writes vanish.
        VcpuExit::IoIn(_, data) => {
            count(ExitReason::OtherIo);
            data.fill(0xff);
            Event::Handled
        }
        VcpuExit::IoOut(..) => {
            count(ExitReason::OtherIo);
            Event::Handled
        }
        VcpuExit::MmioRead(gpa, _) => {
            count(ExitReason::Mmio);
            Event::Fault(FaultKind::UnbackedMemory { gpa, write: false })
        }
        VcpuExit::MmioWrite(gpa, _) => {
            count(ExitReason::Mmio);
            Event::Fault(FaultKind::UnbackedMemory { gpa, write: true })
        }
        VcpuExit::X86Rdmsr(exit) => {
            count(ExitReason::MsrRead);
            match m.pmu_read(cpu, exit.index) {
                Some(v) => *exit.data = v,
                None => *exit.error = 1,
            }
            Event::Handled
        }
        VcpuExit::X86Wrmsr(exit) => {
            count(ExitReason::MsrWrite);
            if !m.pmu_write(cpu, exit.index, exit.data) {
                *exit.error = 1;
            }
            Event::Handled
        }
        VcpuExit::Intr => {
            count(ExitReason::Interrupted);
            Event::Interrupted
        }
        VcpuExit::Hlt => {
            count(ExitReason::Halt);
            Event::Halt
        }
        other => {
            count(ExitReason::Failure);
            match other {
                VcpuExit::Shutdown => Event::Fault(FaultKind::TripleFault),
                VcpuExit::FailEntry(reason, _) => Event::Fault(FaultKind::FailEntry { reason }),
                VcpuExit::InternalError => Event::Fault(FaultKind::InternalError {
                    suberror: 0,
                    insn: Vec::new(),
                }),
                other => Event::HostError(format!("CPU {cpu}: unexpected KVM exit {other:?}")),
            }
        }
    }
}

/// A `hlt` that reached the host (only without an in-kernel APIC): wait for an interrupt.
fn halt(vcpu: &VcpuFd) -> Next {
    let (rflags, rip) = vcpu.get_regs().map(|r| (r.rflags, r.rip)).unwrap_or((0, 0));
    Next::Block(Wait {
        addr: None,
        irq_enabled: rflags & X86_EFLAGS_IF != 0,
        rip,
        until: None,
    })
}

/// A kick got the vCPU out of the guest: the supervisor saw it run too long without yielding.
fn interrupted(m: &Machine, vcpu: &VcpuFd, cpu: usize) -> Next {
    let slot = m.cpu(cpu);
    if slot.stall_kick.swap(false, Ordering::AcqRel) && !m.is_stopped() {
        let wall_ms = slot.since_entry_ms();
        let outcome = capture_fault(m, vcpu, cpu, FaultKind::Stall { wall_ms });
        if let Outcome::Fault(r) = &outcome {
            m.take_snapshot(cpu, vcpu, r.headline());
        }
        m.finish(outcome);
        return Next::Stop;
    }
    Next::Continue
}
