//! Ops that test lockvmm itself rather than model Linux: reads and writes of any address, a
//! garbage frame-pointer chain, a triple fault, a loop that never yields to the host.
use crate::arch::x86::kernel::idt::load_empty_idt;

/// Reads a u64 from any kernel address (faults if it is not mapped).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_op_read(addr: u64) -> u64 {
    // SAFETY: none: reading wild addresses is this op's purpose; a fault goes to the oops path.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_op_write(addr: u64, val: u64) {
    // SAFETY: none: as `lab_op_read`, deliberately.
    unsafe { core::ptr::write_volatile(addr as *mut u64, val) }
}

/// Reads `addr` with RBP set to `fp`: a fault here leaves a garbage frame-pointer chain for the
/// host's unwinder to cope with.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_op_read_with_frame_pointer(addr: u64, fp: u64) -> u64 {
    let v: u64;
    // SAFETY: none needed beyond the op's purpose: RBP is saved and restored around the load
    // (if the load faults, the oops path never returns here).
    unsafe {
        core::arch::asm!(
            "push rbp",
            "mov rbp, {fp}",
            "mov {v}, [{addr}]",
            "pop rbp",
            fp = in(reg) fp,
            addr = in(reg) addr,
            v = lateout(reg) v,
        );
    }
    v
}

/// Breaks exception delivery and raises #UD: #UD → #GP (no IDT) → #DF → triple fault.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_op_triple_fault() -> ! {
    load_empty_idt();
    // SAFETY: `ud2` raises #UD; with no IDT the CPU shuts down, which is the point.
    unsafe { core::arch::asm!("ud2", options(noreturn)) }
}

/// Misbehaves on purpose: a loop that never waits, so the host gets this CPU back only by
/// kicking it out of `KVM_RUN` (its stall timeout).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_op_spin_without_yielding() -> ! {
    loop {
        core::hint::spin_loop();
    }
}
