//! Stopping the other CPUs for a crash (Linux's `arch/x86/kernel/reboot.c`:
//! `nmi_shootdown_cpus`, `crash_nmi_callback`): an NMI to every other CPU; each saves its
//! registers through the callback, says so, and halts with interrupts off inside the NMI
//! handler. Their backtraces in the vmcore therefore start at `crash_nmi_callback`, with the
//! context the NMI interrupted below the NMI frame.
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use lockvmm_abi::{HYPERCALL_PORT, Hypercall, IPI_NMI, PtRegs};

use crate::arch::x86::irqflags::local_irq_disable;
use crate::arch::x86::lockvmm;
use crate::arch::x86::percpu::{cpu_online, smp_processor_id};

/// `nmi_shootdown_cb`.
pub type NmiShootdownCb = extern "C" fn(u32, &PtRegs);

/// `crashing_cpu` (-1 while no crash is in progress).
#[unsafe(no_mangle)]
pub static crashing_cpu: AtomicU32 = AtomicU32::new(u32::MAX);
/// `waiting_for_crash_ipi`: CPUs that have not stopped yet.
#[unsafe(no_mangle)]
pub static waiting_for_crash_ipi: AtomicU32 = AtomicU32::new(0);
/// `shootdown_callback` (the function's address).
static SHOOTDOWN_CALLBACK: AtomicU64 = AtomicU64::new(0);
/// `register_nmi_handler(NMI_LOCAL, crash_nmi_callback, NMI_FLAG_FIRST, "crash")` done.
pub static CRASH_NMI_REGISTERED: AtomicBool = AtomicBool::new(false);

/// How long the crashing CPU waits for the others: Linux's `msecs = 1000`.
const SHOOTDOWN_WAIT_NS: u64 = 1_000_000_000;

/// The NMI handler registered first while a crash shuts the machine down: every CPU but the
/// crashing one saves its state and halts here for good.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn crash_nmi_callback(_val: u32, regs: &PtRegs) -> u32 {
    let cpu = smp_processor_id();
    if cpu == crashing_cpu.load(Ordering::Acquire) {
        return 1; // NMI_HANDLED
    }
    local_irq_disable();
    let cb = SHOOTDOWN_CALLBACK.load(Ordering::Acquire);
    if cb != 0 {
        // SAFETY: only `nmi_shootdown_cpus` stores it, from a `NmiShootdownCb`.
        let cb: NmiShootdownCb = unsafe { core::mem::transmute(cb as usize) };
        cb(cpu, regs);
    }
    waiting_for_crash_ipi.fetch_sub(1, Ordering::AcqRel);
    lockvmm::kick(&waiting_for_crash_ipi);
    // "Assume hlt works": halt with interrupts off, inside the NMI (no further NMI is taken
    // before its iret), so the CPU stays here until the capture. The wait is this function's
    // own instruction, as Linux's inlined `halt()`, so the frame is `crash_nmi_callback`.
    loop {
        // SAFETY: the hypercall only exits to the host; it touches no guest memory.
        unsafe {
            core::arch::asm!(
                "out dx, eax",
                inlateout("rax") Hypercall::Wait as u64 => _,
                in("dx") HYPERCALL_PORT,
                in("rdi") 0u64,
                in("rsi") 0u64,
                in("rcx") 0u64,
                in("r8") 0u64,
                options(nostack)
            );
        }
    }
}

/// `nmi_shootdown_cpus(callback)`: NMI every other online CPU and wait (at most a second)
/// until each has run `callback` and halted.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn nmi_shootdown_cpus(callback: NmiShootdownCb) {
    local_irq_disable();
    let me = smp_processor_id();
    crashing_cpu.store(me, Ordering::Release);
    SHOOTDOWN_CALLBACK.store(callback as usize as u64, Ordering::Release);
    let nr = crate::init::main::boot_info().nr_cpus;
    let others = (0..nr).filter(|&c| c != me && cpu_online(c)).count() as u32;
    waiting_for_crash_ipi.store(others, Ordering::Release);
    CRASH_NMI_REGISTERED.store(true, Ordering::Release);
    // `smp_send_nmi_allbutself()`.
    for cpu in (0..nr).filter(|&c| c != me && cpu_online(c)) {
        lockvmm::send_ipi(cpu, IPI_NMI);
    }
    let deadline = crate::init::main::local_clock() + SHOOTDOWN_WAIT_NS;
    loop {
        let left = waiting_for_crash_ipi.load(Ordering::Acquire);
        if left == 0 || crate::init::main::local_clock() >= deadline {
            break;
        }
        lockvmm::hypercall(
            Hypercall::Wait as u32,
            waiting_for_crash_ipi.as_ptr() as u64,
            left as u64,
            deadline,
            0,
        );
    }
}
