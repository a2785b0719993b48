//! Per-CPU data, reached through the GS base as in Linux (`this_cpu_read`).
use core::arch::asm;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use lockvmm_abi::NR_CPUS;

/// What each CPU keeps for itself. `GS_BASE` points at its own entry; the entry code reaches
/// `irq_count` and `irq_stack_ptr` by offset (see `entry_64`).
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct percpu {
    /// Linux's `this_cpu_off`: the entry's own address.
    pub this: u64,
    /// `smp_processor_id()`.
    pub cpu: u32,
    /// Non-zero once the CPU finished bring-up.
    pub online: AtomicU32,
    /// Linux's `__preempt_count`: preemption, softirq, hardirq and NMI nesting.
    pub preempt_count: AtomicU32,
    /// -1 when not on the IRQ stack (Linux's `irq_count`).
    pub irq_count: i32,
    /// Top of this CPU's IRQ stack.
    pub irq_stack_ptr: u64,
    /// `current`.
    pub current_task: AtomicU64,
    /// TIF_NEED_RESCHED for the running task; the idle loop waits on it (polling idle).
    pub need_resched: AtomicU32,
    /// Pending softirqs (`local_softirq_pending()`).
    pub softirq_pending: AtomicU32,
    /// Spinlocks this CPU holds (counted only while the irq-enable hook is armed).
    pub spinlocks_held: AtomicU32,
    /// The running task's kernel stack top, where `entry_SYSCALL_64` switches to (Linux's
    /// `cpu_current_top_of_stack`; the CPU itself only uses the TSS copy for interrupts).
    pub cpu_current_top_of_stack: AtomicU64,
    /// The user RSP while `entry_SYSCALL_64` has no stack yet (Linux's `rsp_scratch`).
    pub rsp_scratch: AtomicU64,
}

/// The Rust-style name of `percpu`.
pub type PerCpu = percpu;

impl PerCpu {
    const fn new() -> Self {
        PerCpu {
            this: 0,
            cpu: 0,
            online: AtomicU32::new(0),
            preempt_count: AtomicU32::new(0),
            irq_count: -1,
            irq_stack_ptr: 0,
            current_task: AtomicU64::new(0),
            need_resched: AtomicU32::new(0),
            softirq_pending: AtomicU32::new(0),
            spinlocks_held: AtomicU32::new(0),
            cpu_current_top_of_stack: AtomicU64::new(0),
            rsp_scratch: AtomicU64::new(0),
        }
    }
}

/// Offsets the entry code uses.
pub const PERCPU_IRQ_COUNT: usize = core::mem::offset_of!(PerCpu, irq_count);
pub const PERCPU_IRQ_STACK_PTR: usize = core::mem::offset_of!(PerCpu, irq_stack_ptr);
pub const PERCPU_TOP_OF_STACK: usize = core::mem::offset_of!(PerCpu, cpu_current_top_of_stack);
pub const PERCPU_RSP_SCRATCH: usize = core::mem::offset_of!(PerCpu, rsp_scratch);
const PERCPU_CPU: usize = core::mem::offset_of!(PerCpu, cpu);
const _: () = assert!(PERCPU_CPU == 8);
const _: () = assert!(core::mem::offset_of!(PerCpu, this) == 0);
/// Offset of `preempt_count`, which `preempt` reaches through GS.
pub const PERCPU_PREEMPT_COUNT: usize = core::mem::offset_of!(PerCpu, preempt_count);

/// Size of each CPU's IRQ stack (Linux's `IRQ_STACK_SIZE`).
pub const IRQ_STACK_SIZE: usize = lockvmm_abi::stacks::IRQ_STACK_SIZE as usize;

#[repr(C, align(16))]
pub struct IrqStack(pub [u8; IRQ_STACK_SIZE]);

#[unsafe(no_mangle)]
pub static mut irq_stack_backing_store: [IrqStack; NR_CPUS] =
    [const { IrqStack([0; IRQ_STACK_SIZE]) }; NR_CPUS];

#[allow(clippy::declare_interior_mutable_const)]
const PER_CPU_INIT: PerCpu = PerCpu::new();
/// Every CPU's per-CPU area.
#[unsafe(no_mangle)]
pub static mut per_cpu_area: [PerCpu; NR_CPUS] = [PER_CPU_INIT; NR_CPUS];

/// The per-CPU area of `cpu`.
pub fn per_cpu(cpu: u32) -> &'static PerCpu {
    // SAFETY: the array is only mutated by `setup_per_cpu` on the owning CPU before it is
    // shared, and by the entry code (`irq_count`) on the owning CPU; shared fields are atomic.
    unsafe { &(*core::ptr::addr_of!(per_cpu_area))[cpu as usize] }
}

/// Points GS at `cpu`'s area. Runs once per CPU, before anything reads `smp_processor_id()`.
pub fn setup_per_cpu(cpu: u32) {
    // SAFETY: only this CPU touches its own entry before GS points at it.
    unsafe {
        let area = &mut (*core::ptr::addr_of_mut!(per_cpu_area))[cpu as usize];
        area.this = area as *mut PerCpu as u64;
        area.cpu = cpu;
        area.irq_count = -1;
        let stack = &(*core::ptr::addr_of!(irq_stack_backing_store))[cpu as usize];
        area.irq_stack_ptr = stack.0.as_ptr() as u64 + IRQ_STACK_SIZE as u64;
        crate::arch::x86::msr::wrmsr(crate::arch::x86::msr::MSR_GS_BASE, area.this);
    }
}

/// `smp_processor_id()`.
#[inline(always)]
pub fn smp_processor_id() -> u32 {
    let cpu: u32;
    // SAFETY: GS points at this CPU's `PerCpu` (set up first thing at boot); `cpu` is at offset 8.
    unsafe { asm!("mov {:e}, gs:[8]", out(reg) cpu, options(nostack, readonly, preserves_flags)) };
    cpu
}

/// Linux's `this_cpu_ptr(&var)`: this CPU's element of a per-CPU array, without the bounds
/// check an index costs (a compare and a branch at every use on the tick path).
#[inline(always)]
pub fn this_cpu_ptr<T>(array: &[T; NR_CPUS]) -> &T {
    // SAFETY: `setup_per_cpu` indexed `per_cpu_area` by this CPU's number (checked there)
    // before storing it, so `smp_processor_id() < NR_CPUS`.
    unsafe { array.get_unchecked(smp_processor_id() as usize) }
}

/// `this_cpu_ptr` of a `static mut` per-CPU array: a raw pointer to this CPU's element.
#[inline(always)]
pub fn this_cpu_ptr_mut<T>(array: *mut [T; NR_CPUS]) -> *mut T {
    // `smp_processor_id() < NR_CPUS` (see `this_cpu_ptr`): the offset stays inside the array.
    array.cast::<T>().wrapping_add(smp_processor_id() as usize)
}

/// This CPU's area, from its own address at `gs:[0]` (Linux's `this_cpu_off`): one load,
/// where indexing `per_cpu_area` by `smp_processor_id()` cost a load, a bounds check and an
/// address computation at every use (several per spinlock operation on the tick path).
#[inline(always)]
pub fn this_cpu() -> &'static PerCpu {
    let this: u64;
    // SAFETY: GS points at this CPU's `PerCpu` (set up first thing at boot); `this` is at
    // offset 0.
    unsafe { asm!("mov {}, gs:[0]", out(reg) this, options(nostack, readonly, preserves_flags)) };
    // SAFETY: `setup_per_cpu` stored the address of this CPU's entry of the static
    // `per_cpu_area` there before pointing GS at it; shared fields are atomic.
    unsafe { &*(this as *const PerCpu) }
}

/// Whether `cpu` finished bring-up.
pub fn cpu_online(cpu: u32) -> bool {
    per_cpu(cpu).online.load(Ordering::Acquire) != 0
}
