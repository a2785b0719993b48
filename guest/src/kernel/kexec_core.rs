//! kexec's crash path (Linux's `kernel/kexec_core.c`): `__crash_kexec` stops the other CPUs,
//! saves this CPU's registers and jumps into the capture kernel. In the lab the capture kernel
//! is the host: `machine_kexec` hands over through a hypercall and the host takes the vmcore
//! there, so the panicking CPU's backtrace reads `machine_kexec`, `__crash_kexec`, `panic` as
//! a kdump vmcore's does.
use core::sync::atomic::{AtomicU32, Ordering};

use lockvmm_abi::{NR_CPUS, PtRegs};

use crate::arch::x86::kernel::crash::machine_crash_shutdown;
use crate::arch::x86::kernel::machine_kexec_64::machine_kexec;

/// An all-zero `pt_regs` (a const for the static table).
const NO_REGS: PtRegs = PtRegs {
    r15: 0,
    r14: 0,
    r13: 0,
    r12: 0,
    rbp: 0,
    rbx: 0,
    r11: 0,
    r10: 0,
    r9: 0,
    r8: 0,
    rax: 0,
    rcx: 0,
    rdx: 0,
    rsi: 0,
    rdi: 0,
    orig_rax: 0,
    rip: 0,
    cs: 0,
    rflags: 0,
    rsp: 0,
    ss: 0,
};

/// `note_buf_t` of `crash_notes`: what `crash_save_cpu` keeps of a CPU (an `elf_prstatus`'s
/// `pr_pid` and `pr_reg`).
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct crash_note {
    /// Non-zero once saved.
    pub saved: u32,
    pub pr_pid: u32,
    pub pr_reg: PtRegs,
}

/// Linux's per-CPU `crash_notes`: each CPU's registers as the crash path saved them.
#[unsafe(no_mangle)]
pub static mut crash_notes: [crash_note; NR_CPUS] = [crash_note {
    saved: 0,
    pr_pid: 0,
    pr_reg: NO_REGS,
}; NR_CPUS];

/// `kexec_mutex` (taken with `mutex_trylock`: a second panicking CPU does not wait).
#[unsafe(no_mangle)]
pub static kexec_mutex: AtomicU32 = AtomicU32::new(0);

/// `crash_save_cpu`: store `regs` in this CPU's crash note (Linux builds an ELF
/// `NT_PRSTATUS` note there; the capture kernel reads it back).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn crash_save_cpu(regs: &PtRegs, cpu: u32) {
    if cpu as usize >= NR_CPUS {
        return;
    }
    let pid = crate::kernel::sched::core::current().pid;
    // SAFETY: each CPU writes only its own note, once, with the machine stopping.
    unsafe {
        let note = &mut (*core::ptr::addr_of_mut!(crash_notes))[cpu as usize];
        note.pr_pid = pid;
        note.pr_reg = *regs;
        note.saved = 1;
    }
}

/// `crash_setup_regs`: the registers to save, the interrupted context's when the caller has
/// one (`nmi_panic`'s), else a zeroed record (the host captures the live CPU instead).
fn crash_setup_regs(regs: Option<&PtRegs>) -> PtRegs {
    regs.copied().unwrap_or_else(PtRegs::default)
}

/// `__crash_kexec(regs)`: called by `panic()` (and with the oops' registers by `crash_kexec`).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn __crash_kexec(regs: Option<&PtRegs>) {
    if kexec_mutex
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    // `kexec_crash_image` is always loaded: the host is the capture kernel.
    let fixed_regs = crash_setup_regs(regs);
    machine_crash_shutdown(&fixed_regs);
    keep_frame!(machine_kexec(regs.map(|_| &fixed_regs)));
    kexec_mutex.store(0, Ordering::Release);
}
