//! The paravirtual interface to the lockvmm host (the counterpart of Linux's
//! `arch/x86/kernel/kvm.c`). See `lockvmm_abi` for the calling convention.
use core::arch::asm;
use core::sync::atomic::AtomicU32;

use lockvmm_abi::hook::Hook;
use lockvmm_abi::{HYPERCALL_PORT, Hypercall};

/// Issues hypercall `nr`; returns the host's `RAX`.
#[inline(always)]
pub fn hypercall(nr: u32, a0: u64, a1: u64, a2: u64, a3: u64) -> u64 {
    let ret: u64;
    // SAFETY: an OUT to the hypercall port exits to the host, which reads the arguments from
    // the registers named here and may write RAX; no guest memory is touched by the instruction.
    unsafe {
        asm!(
            "out dx, eax",
            inlateout("rax") nr as u64 => ret,
            in("dx") HYPERCALL_PORT,
            in("rdi") a0,
            in("rsi") a1,
            in("rcx") a2,
            in("r8") a3,
            options(nostack, preserves_flags)
        );
    }
    ret
}

/// Tells the host this CPU is online and wakes whoever waits on `flag` (already set): one
/// exit for both.
pub fn cpu_online(cpu: u32, flag: &AtomicU32) {
    hypercall(
        Hypercall::CpuOnline as u32,
        cpu as u64,
        flag.as_ptr() as u64,
        0,
        0,
    );
}

/// Sends an IPI (`vector`, or `lockvmm_abi::IPI_NMI`) to `cpu` through the host.
pub fn send_ipi(cpu: u32, vector: u64) {
    hypercall(Hypercall::SendIpi as u32, cpu as u64, vector, 0, 0);
}

/// Reports a hook point to the host.
#[inline(always)]
pub fn hook(id: Hook, arg: u64) {
    hypercall(Hypercall::Hook as u32, id as u64, arg, 0, 0);
}

/// Asks the host to start `cpu` at `secondary_startup_64`, then waits (as `wait_on(online,
/// 0)`) in the same exit: the new CPU runs at once and sets `online`.
pub fn start_cpu(cpu: u32, online: &AtomicU32) -> u64 {
    hypercall(
        Hypercall::StartCpu as u32,
        cpu as u64,
        online.as_ptr() as u64,
        0,
        0,
    )
}

/// Powers the machine off with `status`.
pub fn shutdown(status: u32) -> ! {
    loop {
        hypercall(Hypercall::Shutdown as u32, status as u64, 0, 0, 0);
    }
}

/// Blocks until `*word != val`, a kick on `word`, or an interrupt this CPU can take.
/// The host checks the value first, so a wake-up between our check and the call is never lost.
#[inline(always)]
pub fn wait_on(word: &AtomicU32, val: u32) {
    hypercall(
        Hypercall::Wait as u32,
        word.as_ptr() as u64,
        val as u64,
        0,
        0,
    );
}

/// `wait_on` for a raw address of a u32.
#[inline(always)]
pub fn wait_on_addr(addr: u64, val: u32) {
    hypercall(Hypercall::Wait as u32, addr, val as u64, 0, 0);
}

/// `kick` for a raw address.
#[inline(always)]
pub fn kick_addr(addr: u64) {
    hypercall(Hypercall::Kick as u32, addr, 0, 0, 0);
}

/// Blocks until an interrupt (or NMI) is delivered to this CPU or the virtual clock reaches
/// `deadline` (ns).
#[inline(always)]
pub fn wait_until(deadline: u64) {
    hypercall(Hypercall::Wait as u32, 0, 0, deadline, 0);
}

/// Blocks until an interrupt (or NMI) is delivered to this CPU.
#[inline(always)]
pub fn wait_for_event() {
    hypercall(Hypercall::Wait as u32, 0, 0, 0, 0);
}

/// Wakes every CPU waiting on `word`.
#[inline(always)]
pub fn kick(word: &AtomicU32) {
    hypercall(Hypercall::Kick as u32, word.as_ptr() as u64, 0, 0, 0);
}
