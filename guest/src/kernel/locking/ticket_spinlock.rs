//! Ticket spinlocks, the `arch_spinlock_t` of Linux 3.10 and 2.6 (`arch/x86/include/asm/
//! spinlock.h`: `__ticket_spin_lock`, `arch_spin_unlock`, `arch_spin_trylock`), chosen at
//! boot for `kernel = "3.10"` / `"2.6"`; 4.4 and 6.6 keep the queued spinlock. A waiter draws
//! a ticket (`xadd` on the tail) and spins, in the caller's own frame (3.10 inlines the
//! ticket loop into `_raw_spin_lock_irqsave`), until the head reaches its ticket; unlock
//! advances the head. The word is `lockvmm_abi::locking::ticket_head_tail`'s.
//!
//! Lab bookkeeping the host reads: the `qspinlock_spinning_on` slot while spinning (as for
//! the queued lock) and `arch_spin_held` (a ticket names no owner).
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use lockvmm_abi::locking::{TICKET_HELD_MAX, TICKET_LOCK_INC};
use lockvmm_abi::{HYPERCALL_PORT, Hypercall, NR_CPUS};

use crate::arch::x86::lockvmm;
use crate::arch::x86::percpu::smp_processor_id;
use crate::arch::x86::preempt::lock_context;
use crate::kernel::jump_label::StaticKey;
use crate::kernel::locking::qspinlock::qspinlock_spinning_on;

/// On for the generations that used ticket locks (set once at boot).
pub static TICKET_SPINLOCKS: StaticKey = StaticKey::new();

/// The ticket locks each CPU holds (see `lockvmm_abi::locking::TICKET_HELD_SYMBOL`).
#[allow(clippy::declare_interior_mutable_const)]
const HELD_INIT: [AtomicU64; TICKET_HELD_MAX] = [const { AtomicU64::new(0) }; TICKET_HELD_MAX];
#[unsafe(no_mangle)]
pub static arch_spin_held: [[AtomicU64; TICKET_HELD_MAX]; NR_CPUS] = [HELD_INIT; NR_CPUS];

/// Chooses the lock kind of this boot (from `start_kernel`).
pub fn spinlock_init(version: lockvmm_abi::knob::KernelVersion) {
    use lockvmm_abi::knob::KernelVersion::{V2_6, V3_10};
    if matches!(version, V3_10 | V2_6) {
        TICKET_SPINLOCKS.enable();
    }
}

#[inline(never)]
fn note_held(lock: &AtomicU32) {
    let row = &arch_spin_held[smp_processor_id() as usize];
    if let Some(slot) = row.iter().find(|s| s.load(Ordering::Relaxed) == 0) {
        slot.store(lock.as_ptr() as u64, Ordering::Relaxed);
    }
}

#[inline(never)]
fn note_released(lock: &AtomicU32) {
    let row = &arch_spin_held[smp_processor_id() as usize];
    let at = lock.as_ptr() as u64;
    if let Some(slot) = row.iter().rev().find(|s| s.load(Ordering::Relaxed) == at) {
        slot.store(0, Ordering::Relaxed);
    }
}

/// Marks this CPU as spinning on `lock` (0: done) in the host's table.
#[inline(never)]
fn note_spinning(lock: u64) {
    qspinlock_spinning_on[smp_processor_id() as usize][lock_context() as usize]
        .store(lock, Ordering::Relaxed);
}

/// `__ticket_spin_lock`: draw a ticket; if it is not served yet, spin here (inlined into the
/// `_raw_spin_lock*` caller, so the spinning RIP is in that function as in 3.10).
#[inline(always)]
pub fn ticket_spin_lock(lock: &AtomicU32) {
    let old = lock.fetch_add(TICKET_LOCK_INC << 16, Ordering::Acquire);
    let me = (old >> 16) as u16;
    if old as u16 != me {
        crate::kernel::locking::lockdep::lock_contended(
            lock.as_ptr() as u64,
            crate::kernel::locking::lockdep::LockClassKind::Spin,
        );
        note_spinning(lock.as_ptr() as u64);
        // SAFETY: reads the lock word and exits to the host (`Wait` on the word while it
        // holds the value just read); no other memory is touched. `test` of a register
        // holding 1 leaves the arithmetic flags clear while the CPU waits, as the `pause`
        // loop's RFLAGS in a 3.10 vmcore (00000002 with interrupts off).
        unsafe {
            core::arch::asm!(
                "2:",
                "mov esi, dword ptr [rdi]",
                "cmp si, {me:x}",
                "je 3f",
                "mov r9d, 1",
                "test r9d, r9d",
                "mov eax, {wait}",
                "out dx, eax",
                "jmp 2b",
                "3:",
                me = in(reg) me,
                wait = const Hypercall::Wait as u32,
                in("rdi") lock.as_ptr(),
                in("dx") HYPERCALL_PORT,
                in("rcx") 0u64,
                in("r8") 0u64,
                out("rsi") _,
                out("rax") _,
                out("r9") _,
                options(nostack)
            );
        }
        note_spinning(0);
    }
    note_held(lock);
}

/// `arch_spin_trylock`: take a ticket only if it would be served at once.
#[inline(always)]
pub fn ticket_spin_trylock(lock: &AtomicU32) -> bool {
    let old = lock.load(Ordering::Relaxed);
    if old as u16 != (old >> 16) as u16 {
        return false;
    }
    let taken = lock
        .compare_exchange(
            old,
            old.wrapping_add(TICKET_LOCK_INC << 16),
            Ordering::Acquire,
            Ordering::Relaxed,
        )
        .is_ok();
    if taken {
        note_held(lock);
    }
    taken
}

/// `arch_spin_unlock`: serve the next ticket (`add` on the head), and wake the waiters.
#[inline(always)]
pub fn ticket_spin_unlock(lock: &AtomicU32) {
    note_released(lock);
    // SAFETY: the head is the low half of the lock word; only its holder advances it.
    unsafe {
        core::arch::asm!("add word ptr [{p}], {inc}", p = in(reg) lock.as_ptr(),
            inc = const TICKET_LOCK_INC, options(nostack))
    };
    let v = lock.load(Ordering::Relaxed);
    if v as u16 != (v >> 16) as u16 {
        lockvmm::kick(lock);
    }
}

/// The CPU holding a ticket lock, from `arch_spin_held`.
pub fn ticket_owner(lock: &AtomicU32) -> Option<usize> {
    let at = lock.as_ptr() as u64;
    arch_spin_held
        .iter()
        .position(|row| row.iter().any(|s| s.load(Ordering::Relaxed) == at))
}
