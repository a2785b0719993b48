//! vCPUs: their boot state (64-bit mode, Linux's selectors, the host-built page tables), and
//! the thread that runs each one under the run token.
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use kvm_bindings::{
    CpuId, KVM_MAX_CPUID_ENTRIES, KVM_MP_STATE_RUNNABLE, kvm_mp_state, kvm_segment,
};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use lockvmm_abi::eflags::X86_EFLAGS_FIXED;
use lockvmm_abi::{HYPERCALL_PORT, PAGE_OFFSET, SERIAL_PORT};

use crate::hypercall;
use crate::machine::Machine;
use crate::memory::{BOOT_CR3, BOOT_GDT_PADDR};
use crate::report::{FaultKind, FaultReport, Outcome, Regs};
use crate::sched::{Grant, Wait};
use crate::vm::VmError;

const X86_CR0_PE: u64 = 1 << 0;
const X86_CR0_MP: u64 = 1 << 1;
const X86_CR0_ET: u64 = 1 << 4;
const X86_CR0_NE: u64 = 1 << 5;
const X86_CR0_PG: u64 = 1 << 31;
const X86_CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

/// The CPUID table KVM supports, read once per machine.
pub fn supported_cpuid(kvm: &Kvm) -> Result<CpuId, VmError> {
    kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(VmError::kvm("report its CPUID"))
}

/// Creates vCPU `cpu` and puts it in 64-bit mode at `rip` with `RDI = cpu`.
pub fn create_vcpu(vm: &VmFd, cpuid: &CpuId, cpu: usize, rip: u64) -> Result<VcpuFd, VmError> {
    let vcpu = vm
        .create_vcpu(cpu as u64)
        .map_err(VmError::kvm("create a vCPU"))?;
    let mut cpuid = cpuid.clone();
    for entry in cpuid.as_mut_slice() {
        match entry.function {
            // Initial APIC ID and the hypervisor bit.
            1 => {
                entry.ebx = (entry.ebx & 0x00ff_ffff) | ((cpu as u32) << 24);
                entry.ecx |= 1 << 31;
            }
            0xb => entry.edx = cpu as u32,
            // This KVM has no virtual PMU; the VMM emulates architectural perfmon v2 with one
            // 48-bit general-purpose counter and all seven architectural events (pmu.rs).
            0xa => {
                entry.eax = 2 | (1 << 8) | (lockvmm_abi::msr::PMC_BITS << 16) | (7 << 24);
                entry.ebx = 0;
                entry.ecx = 0;
                entry.edx = 0;
            }
            _ => {}
        }
    }
    vcpu.set_cpuid2(&cpuid).map_err(VmError::kvm("set CPUID"))?;

    let mut sregs = vcpu
        .get_sregs()
        .map_err(VmError::kvm("read special registers"))?;
    let code = kernel_code_segment(0x10);
    let data = kernel_data_segment(0x18);
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = kvm_segment {
        selector: 0x40,
        type_: 0xb,
        s: 0,
        l: 0,
        g: 0,
        limit: 0x67,
        ..code
    };
    sregs.gdt.base = PAGE_OFFSET + BOOT_GDT_PADDR;
    sregs.gdt.limit = 4 * 8 - 1;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_PG;
    sregs.cr3 = BOOT_CR3;
    sregs.cr4 = X86_CR4_PAE;
    sregs.efer = EFER_LME | EFER_LMA;
    vcpu.set_sregs(&sregs)
        .map_err(VmError::kvm("set special registers"))?;

    let mut regs = vcpu.get_regs().map_err(VmError::kvm("read registers"))?;
    regs.rip = rip;
    regs.rdi = cpu as u64;
    regs.rflags = X86_EFLAGS_FIXED;
    vcpu.set_regs(&regs)
        .map_err(VmError::kvm("set registers"))?;
    Ok(vcpu)
}

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

/// Runs vCPU `cpu` until the machine stops. Only the holder of the run token is in `KVM_RUN`.
pub fn vcpu_thread(m: Arc<Machine>, mut vcpu: VcpuFd, cpu: usize) {
    let immediate_exit: *mut u8 = &mut vcpu.get_kvm_run().immediate_exit;
    IMMEDIATE_EXIT.with(|p| p.set(immediate_exit));
    run_vcpu(&m, &mut vcpu, cpu);
    IMMEDIATE_EXIT.with(|p| p.set(std::ptr::null_mut()));
    m.cpu(cpu).exited.store(true, Ordering::Release);
}

fn run_vcpu(m: &Arc<Machine>, vcpu: &mut VcpuFd, cpu: usize) {
    let mut started = cpu == 0;
    let mut seen_epoch = 0;
    'token: loop {
        match m.sched.acquire(cpu, seen_epoch) {
            Grant::Token => {}
            Grant::Stopped => break,
            Grant::Capture(epoch) => {
                seen_epoch = epoch;
                let state =
                    crate::snapshot::capture(vcpu, cpu).unwrap_or(crate::snapshot::VcpuState {
                        cpu,
                        ..Default::default()
                    });
                m.deliver_capture(cpu, epoch, state);
                continue;
            }
        }
        seen_epoch = m.sched.capture_epoch();
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
        }
        loop {
            m.cpu(cpu).mark_entry();
            let event = decode_exit(m, cpu, vcpu.run());
            let next = match event {
                Event::Handled => Next::Continue,
                Event::Hypercall(nr) => hypercall::handle(m, vcpu, cpu, nr),
                Event::Halt => halt(vcpu),
                Event::Interrupted => {
                    // Re-arm: the kick that set it has been taken.
                    vcpu.set_kvm_immediate_exit(0);
                    interrupted(m, vcpu, cpu)
                }
                Event::Fault(kind) => {
                    let outcome = capture_fault(m, vcpu, cpu, kind);
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
                Next::Continue if m.is_stopped() => break 'token,
                Next::Continue => {}
                Next::Block(wait) => {
                    if let Err(idle) = m.sched.release(cpu, wait) {
                        crate::clock::advance(m, idle, cpu, vcpu);
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
            return Event::Interrupted;
        }
        Err(e) => return Event::HostError(format!("CPU {cpu}: KVM_RUN failed: {e}")),
    };
    let serial = SERIAL_PORT..SERIAL_PORT + 8;
    match exit {
        VcpuExit::IoOut(HYPERCALL_PORT, data) => Event::Hypercall(
            data.iter()
                .rev()
                .fold(0u32, |acc, &b| (acc << 8) | u32::from(b)),
        ),
        VcpuExit::IoOut(port, data) if serial.contains(&port) => {
            if let Some(&b) = data.first() {
                m.serial_write((port - SERIAL_PORT) as u8, b);
            }
            Event::Handled
        }
        VcpuExit::IoIn(port, data) if serial.contains(&port) => {
            if let Some(b) = data.first_mut() {
                *b = m.serial_read((port - SERIAL_PORT) as u8);
            }
            Event::Handled
        }
        // Like a PC with nothing on the bus: reads float high, writes vanish.
        VcpuExit::IoIn(_, data) => {
            data.fill(0xff);
            Event::Handled
        }
        VcpuExit::IoOut(..) => Event::Handled,
        VcpuExit::MmioRead(gpa, _) => Event::Fault(FaultKind::UnbackedMemory { gpa, write: false }),
        VcpuExit::MmioWrite(gpa, _) => Event::Fault(FaultKind::UnbackedMemory { gpa, write: true }),
        VcpuExit::Shutdown => Event::Fault(FaultKind::TripleFault),
        VcpuExit::FailEntry(reason, _) => Event::Fault(FaultKind::FailEntry { reason }),
        VcpuExit::InternalError => Event::Fault(FaultKind::InternalError { suberror: 0 }),
        VcpuExit::X86Rdmsr(exit) => {
            match m.pmu_read(cpu, exit.index) {
                Some(v) => *exit.data = v,
                None => *exit.error = 1,
            }
            Event::Handled
        }
        VcpuExit::X86Wrmsr(exit) => {
            if !m.pmu_write(cpu, exit.index, exit.data) {
                *exit.error = 1;
            }
            Event::Handled
        }
        VcpuExit::Intr => Event::Interrupted,
        VcpuExit::Hlt => Event::Halt,
        other => Event::HostError(format!("CPU {cpu}: unexpected KVM exit {other:?}")),
    }
}

/// A `hlt` that reached the host (only without an in-kernel APIC): wait for an interrupt.
fn halt(vcpu: &VcpuFd) -> Next {
    let (rflags, rip) = vcpu.get_regs().map(|r| (r.rflags, r.rip)).unwrap_or((0, 0));
    Next::Block(Wait {
        addr: None,
        irq_enabled: rflags & (1 << 9) != 0,
        rip,
        until: None,
    })
}

/// A kick got the vCPU out of the guest: the supervisor saw it run too long without yielding.
fn interrupted(m: &Machine, vcpu: &VcpuFd, cpu: usize) -> Next {
    let slot = m.cpu(cpu);
    if slot.stall_kick.swap(false, Ordering::AcqRel) && !m.is_stopped() {
        let wall_ms = slot.since_entry_ms();
        m.finish(capture_fault_ref(
            m,
            vcpu,
            cpu,
            FaultKind::Stall { wall_ms },
        ));
        return Next::Stop;
    }
    Next::Continue
}

fn capture_fault(m: &Machine, vcpu: &mut VcpuFd, cpu: usize, mut kind: FaultKind) -> Outcome {
    if let FaultKind::InternalError { suberror } = &mut kind {
        // SAFETY: the last exit was KVM_EXIT_INTERNAL_ERROR, so `internal` is the live member
        // of the exit-information union.
        *suberror = unsafe { vcpu.get_kvm_run().__bindgen_anon_1.internal.suberror };
    }
    capture_fault_ref(m, vcpu, cpu, kind)
}

/// Registers, CR2 and CR3 of this vCPU, as a report.
pub fn capture_fault_ref(m: &Machine, vcpu: &VcpuFd, cpu: usize, fault: FaultKind) -> Outcome {
    let regs = vcpu.get_regs();
    let sregs = vcpu.get_sregs();
    match (regs, sregs) {
        (Ok(r), Ok(s)) => {
            let regs = Regs::from_kvm(&r, u64::from(s.cs.selector), u64::from(s.ss.selector));
            Outcome::Fault(FaultReport::new(
                cpu,
                fault,
                regs,
                s.cr2,
                s.cr3,
                &m.memory,
                &m.kernel.symbols,
            ))
        }
        (Err(e), _) | (_, Err(e)) => Outcome::HostError {
            message: format!("CPU {cpu} stopped ({fault:?}) but its registers cannot be read: {e}"),
        },
    }
}

/// A flat 64-bit ring-0 code segment, as the CPU loads it on entry to the kernel.
pub fn kernel_code_segment(selector: u16) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: 0xb,
        present: 1,
        dpl: 0,
        db: 0,
        s: 1,
        l: 1,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// A flat ring-0 data (stack) segment.
pub fn kernel_data_segment(selector: u16) -> kvm_segment {
    kvm_segment {
        selector,
        type_: 0x3,
        db: 1,
        l: 0,
        ..kernel_code_segment(selector)
    }
}
