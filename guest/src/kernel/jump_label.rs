//! Static keys (Linux's `include/linux/jump_label.h`): switches flipped once at boot that
//! guard debug hooks on hot paths. Linux patches the branch into a NOP; here a key is one
//! byte, so a hook site whose key is off costs one compare with memory and one branch
//! (about 2 µs of emulated ring 0 on this lab's KVM; a few cycles on hardware).
use core::sync::atomic::{AtomicBool, Ordering};

pub struct StaticKey(AtomicBool);

impl StaticKey {
    pub const fn new() -> Self {
        StaticKey(AtomicBool::new(false))
    }

    /// `static_branch_enable`: only at boot, before the other CPUs run.
    pub fn enable(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// `static_branch_unlikely`. A plain (non-atomic) read, so the compiler can fold it into
    /// the branch (`cmp byte ptr [key], 0; jne`: two instructions where an atomic load took
    /// three); the key only changes at boot, before any other CPU runs.
    #[inline(always)]
    pub fn unlikely(&self) -> bool {
        // SAFETY: the byte is a valid bool; the only writes (`enable`) happen at boot before
        // the readers on other CPUs start, so no read races a write.
        unsafe { *self.0.as_ptr() }
    }
}

impl Default for StaticKey {
    fn default() -> Self {
        Self::new()
    }
}

/// The caller's return address, as Linux's `_RET_IP_` (`__builtin_return_address(0)`).
/// Sound because every guest function keeps a frame pointer (`force-frame-pointers`, no
/// shrink-wrapping): `[rbp + 8]` is the return address of the function this is inlined into.
#[inline(always)]
pub fn ret_ip() -> u64 {
    let ip: u64;
    // SAFETY: reads the saved return address of the current frame, which is always mapped.
    unsafe {
        core::arch::asm!("mov {}, [rbp + 8]", out(reg) ip, options(nostack, readonly, preserves_flags))
    };
    ip
}

/// The current instruction's address, as Linux's `_THIS_IP_`.
#[inline(always)]
pub fn this_ip() -> u64 {
    let ip: u64;
    // SAFETY: computes an address; reads no memory.
    unsafe {
        core::arch::asm!("lea {}, [rip]", out(reg) ip, options(nomem, nostack, preserves_flags))
    };
    ip
}
