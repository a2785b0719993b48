//! The one host thread that runs every vCPU.
//!
//! The run token lets one vCPU run at a time, so one thread can run them all: it enters the
//! token holder's vCPU until it waits, then the next holder's, without a thread switch. With a
//! thread per vCPU, each handover woke the next vCPU's sleeping thread, which cost about 10 µs
//! on an idle host and over a millisecond on a busy one (the woken thread waits for a CPU), two
//! handovers per AP at boot and about one per tick. KVM lets any thread run a vCPU (since
//! Linux 6.13 a change of thread costs only a lock around the vCPU's pid).
//!
//! The vCPUs not running sit in `Machine::parked`, where a snapshot captures them directly
//! (`take_snapshot`); the running one is taken out for its slice.
use std::sync::Arc;
use std::sync::atomic::Ordering;

use kvm_ioctls::VcpuFd;

use super::vcpu_loop::{SliceEnd, run_slice, set_immediate_exit};
use super::{Machine, lock};

/// Runs the machine's vCPUs until it stops.
pub fn runner_thread(m: Arc<Machine>, vcpus: Vec<VcpuFd>) {
    let mut started: Vec<bool> = (0..vcpus.len()).map(|cpu| cpu == 0).collect();
    *lock(&m.parked) = vcpus.into_iter().map(Some).collect();
    while let Some(cpu) = m.sched.wait_holder() {
        let Some(mut vcpu) = lock(&m.parked).get_mut(cpu).and_then(Option::take) else {
            break;
        };
        set_immediate_exit(Some(&mut vcpu));
        let end = run_slice(&m, &mut vcpu, cpu, &mut started[cpu]);
        set_immediate_exit(None);
        lock(&m.parked)[cpu] = Some(vcpu);
        if matches!(end, SliceEnd::Stop) {
            break;
        }
    }
    for cpu in 0..m.nr_cpus {
        m.cpu(cpu).exited.store(true, Ordering::Release);
    }
}
