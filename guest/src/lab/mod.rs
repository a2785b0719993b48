//! The lab: runs the tasks of the scenario the host loaded (see `lockvmm_abi::ProgramHeader`).
//!
//! Each task becomes a kernel thread pinned to its CPU, with the scenario's comm and pid, that
//! performs its ops in order through the kernel's real paths.
pub mod user;

use core::mem::size_of;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use lockvmm_abi::hook::Hook;
use lockvmm_abi::program::{Gfp, HogMode, LockMode, MAX_LOCKS, ModuleVariant, OpKind, Policy};
use lockvmm_abi::{OpDesc, PAGE_OFFSET, PROGRAM_POWER_OFF_WHEN_DONE, ProgramHeader, TaskDesc};

use crate::arch::x86::kernel::idt::load_empty_idt;
use crate::arch::x86::lockvmm;
use crate::arch::x86::preempt::preempt_disable;
use crate::init::main::{boot_info, local_clock};
use crate::kernel::kthread::kthread_create_on_cpu;
use crate::kernel::locking::spinlock::RawSpinlock;
use crate::kernel::sched::core::wake_up_process;
use crate::kernel::sched::task::SCHED_FIFO;
use crate::mm::gfp::{GFP_ATOMIC, GFP_KERNEL, GfpT};

/// Number of tasks that have run to completion.
#[unsafe(no_mangle)]
pub static lab_tasks_done: AtomicU32 = AtomicU32::new(0);
/// The lock `hog_thread` takes with `spin_lock_irqsave` (the seed's `DEFINE_SPINLOCK(lock)`).
#[unsafe(no_mangle)]
pub static hog_lock: RawSpinlock = RawSpinlock::new();

struct Program {
    header: &'static ProgramHeader,
    tasks: &'static [TaskDesc],
    ops: &'static [OpDesc],
}

fn program() -> Option<Program> {
    let info = boot_info();
    if info.program_len < size_of::<ProgramHeader>() as u64 {
        return None;
    }
    let base = PAGE_OFFSET + info.program_paddr;
    // SAFETY: the host placed the program (header, tasks, ops) inside guest RAM in the direct
    // map and sized `program_len` to match; the layout is `#[repr(C)]`.
    unsafe {
        let header = &*(base as *const ProgramHeader);
        let tasks_at = base + size_of::<ProgramHeader>() as u64;
        let ops_at = tasks_at + (header.nr_tasks as usize * size_of::<TaskDesc>()) as u64;
        Some(Program {
            header,
            tasks: core::slice::from_raw_parts(
                tasks_at as *const TaskDesc,
                header.nr_tasks as usize,
            ),
            ops: core::slice::from_raw_parts(ops_at as *const OpDesc, header.nr_ops as usize),
        })
    }
}

/// Starts every task on its CPU. Returns whether the machine should power off now (nothing
/// to run, and the scenario does not ask to keep running).
pub fn run_program() -> bool {
    let Some(prog) = program() else { return true };
    if prog.tasks.is_empty() {
        return prog.header.flags & PROGRAM_POWER_OFF_WHEN_DONE != 0;
    }
    for (i, t) in prog.tasks.iter().enumerate() {
        let Some(policy) = Policy::from_raw(t.policy) else {
            bad_policy(i, t.policy);
            continue;
        };
        let comm_len = t.comm.iter().position(|&b| b == 0).unwrap_or(t.comm.len());
        let Some(p) = kthread_create_on_cpu(lab_task, i as u64, t.cpu, &t.comm[..comm_len], t.pid)
        else {
            printk!("lab: cannot create task {}", i);
            continue;
        };
        match policy {
            Policy::Fifo => {
                p.policy = SCHED_FIFO;
                p.rt_priority = t.rt_priority.clamp(1, 99);
            }
            Policy::Normal => {}
        }
        wake_up_process(p);
    }
    false
}

/// Body of every lab task.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_task(idx: u64) {
    let Some(prog) = program() else { return };
    let Some(task) = prog.tasks.get(idx as usize) else {
        return;
    };
    lockvmm::hook(Hook::TaskStart, u64::from(task.pid));
    let cur = crate::kernel::sched::core::current();
    printk!(
        "lab: {}:{} running on CPU {}",
        cur.comm(),
        task.pid,
        task.cpu
    );
    let first = task.first_op as usize;
    let ops = prog
        .ops
        .get(first..first + task.nr_ops as usize)
        .unwrap_or(&[]);
    for o in ops {
        run_op(o);
    }
    let done = lab_tasks_done.fetch_add(1, Ordering::AcqRel) + 1;
    if done == prog.header.nr_tasks && prog.header.flags & PROGRAM_POWER_OFF_WHEN_DONE != 0 {
        crate::kernel::reboot::kernel_power_off();
    }
}

/// Performs one op. An op the contract does not define, or an argument outside its type, is
/// reported on the console and skipped.
fn run_op(o: &OpDesc) {
    let Some(kind) = OpKind::from_raw(o.kind) else {
        printk!("lab: unknown op {}", o.kind);
        return;
    };
    match kind {
        OpKind::Read => {
            lab_op_read(o.args[0]);
        }
        OpKind::Write => lab_op_write(o.args[0], o.args[1]),
        OpKind::TripleFault => lab_op_triple_fault(),
        OpKind::RawHypercall => {
            let ret = lockvmm::hypercall(o.args[0] as u32, o.args[1], o.args[2], o.args[3], 0);
            printk!("lab: hypercall {:#x} returned {:#x}", o.args[0], ret);
        }
        OpKind::Printk => {
            for i in 0..o.args[0] {
                printk!("lab: console line {}", i);
            }
        }
        OpKind::ReadWithBadFp => {
            lab_op_read_with_frame_pointer(o.args[0], o.args[1]);
        }
        OpKind::Hog => match HogMode::from_raw(o.args[0]) {
            Some(mode) => hog_thread(mode),
            None => bad_arg(kind, "hog mode", o.args[0]),
        },
        OpKind::SleepMs => crate::kernel::time::timer::msleep(o.args[0]),
        OpKind::Setsid => user::user_setsid(),
        OpKind::PerfEventOpenLbr => {
            crate::kernel::events::core::perf_event_open_lbr(crate::kernel::sched::core::current());
        }
        OpKind::ModuleLoad => match ModuleVariant::from_raw(o.args[0]) {
            Some(variant) => {
                let ret = crate::kernel::module::load_module(variant);
                if ret != 0 {
                    printk!("lab: insmod timer_mod: error {}", ret);
                }
            }
            None => bad_arg(kind, "module variant", o.args[0]),
        },
        OpKind::ModuleUnload => {
            crate::kernel::module::delete_module();
        }
        OpKind::KmallocIrqsOff => match Gfp::from_raw(o.args[0]) {
            Some(gfp) => lab_kmalloc_irqs_off(gfp),
            None => bad_arg(kind, "gfp", o.args[0]),
        },
        OpKind::BusyMs => lab_busy(o.args[0]),
        OpKind::Lock => match LockMode::from_raw(o.args[1]) {
            Some(mode) => lab_lock(o.args[0], mode),
            None => bad_arg(kind, "lock mode", o.args[1]),
        },
        OpKind::Unlock => match LockMode::from_raw(o.args[1]) {
            Some(mode) => lab_unlock(o.args[0], mode),
            None => bad_arg(kind, "lock mode", o.args[1]),
        },
        OpKind::IrqDisable => crate::arch::x86::irqflags::local_irq_disable(),
        OpKind::IrqEnable => crate::arch::x86::irqflags::local_irq_enable(),
        OpKind::PreemptDisable => preempt_disable(),
        OpKind::PreemptEnable => crate::arch::x86::preempt::preempt_enable(),
        OpKind::Kmalloc => match Gfp::from_raw(o.args[0]) {
            Some(gfp) => {
                let cache = crate::mm::slub::kmem_cache_create(b"lab_cache", 256);
                keep_frame!(crate::mm::slub::kmem_cache_alloc(
                    // SAFETY: `kmem_cache_create` returns a pool cache.
                    unsafe { &mut *cache },
                    gfp_flags(gfp)
                ));
            }
            None => bad_arg(kind, "gfp", o.args[0]),
        },
        OpKind::RaiseSoftirq => {
            crate::kernel::softirq::raise_softirq(crate::kernel::softirq::HI_SOFTIRQ)
        }
        OpKind::ArmTimer => lab_arm_timer(o.args[0]),
        OpKind::UserBusyLoop => user::user_busy_loop(),
        OpKind::SpinWithoutYielding => lab_op_spin_without_yielding(),
    }
}

/// Reports a task whose policy is not one the contract defines; the task is not started.
#[cold]
#[inline(never)]
fn bad_policy(task: usize, raw: u32) {
    printk!("lab: task {}: unknown policy {}", task, raw);
}

/// Reports an op whose argument is outside its type; the op is skipped, like an unknown op.
#[cold]
#[inline(never)]
fn bad_arg(kind: OpKind, what: &str, raw: u64) {
    printk!("lab: op {:?}: unknown {} {}", kind, what, raw);
}

/// The GFP flags of an op's [`Gfp`].
fn gfp_flags(gfp: Gfp) -> GfpT {
    match gfp {
        Gfp::Kernel => GFP_KERNEL,
        Gfp::Atomic => GFP_ATOMIC,
    }
}

/// The seed 001 hog: loops forever with preemption off, or holding a spinlock taken with
/// `spin_lock_irqsave` (interrupts off too). Each iteration yields the host CPU until an
/// interrupt arrives (`cpu_relax`), which changes nothing for the guest.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn hog_thread(mode: HogMode) -> ! {
    match mode {
        HogMode::SpinLockIrqsave => {
            let _flags = hog_lock.lock_irqsave();
        }
        HogMode::PreemptOff => preempt_disable(),
    }
    loop {
        cpu_relax();
    }
}

/// `cpu_relax()`: `pause`, and let the host run someone else until an event for this CPU.
#[inline(always)]
pub fn cpu_relax() {
    // SAFETY: `pause` is a hint with no architectural effect.
    unsafe { core::arch::asm!("pause", options(nomem, nostack, preserves_flags)) };
    lockvmm::wait_for_event();
}

/// Busy for `ms` virtual milliseconds, as the CPU is (interrupts and preemption unchanged).
/// Each spin yields the host CPU until an event or the end time, so time passes even with
/// interrupts off.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_busy(ms: u64) {
    let end = local_clock().saturating_add(ms.saturating_mul(1_000_000));
    while local_clock() < end {
        // SAFETY: `pause` is a hint with no architectural effect.
        unsafe { core::arch::asm!("pause", options(nomem, nostack, preserves_flags)) };
        lockvmm::wait_until(if end == u64::MAX { 0 } else { end });
    }
}

/// The scenario's locks (`[[lock]]`), by index; the host names them in reports.
#[unsafe(no_mangle)]
pub static lab_locks: [RawSpinlock; MAX_LOCKS] = [const { RawSpinlock::new() }; MAX_LOCKS];
/// Flags saved by `spin_lock_irqsave` of each lock.
static LOCK_FLAGS: [AtomicU64; MAX_LOCKS] = [const { AtomicU64::new(0) }; MAX_LOCKS];

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_lock(idx: u64, mode: LockMode) {
    let Some(lock) = lab_locks.get(idx as usize) else {
        return;
    };
    match mode {
        LockMode::Irq => keep_frame!(lock.lock_irq()),
        LockMode::Irqsave => {
            let flags = keep_frame!(lock.lock_irqsave());
            LOCK_FLAGS[idx as usize].store(flags, Ordering::Relaxed);
        }
        LockMode::Plain => keep_frame!(lock.lock()),
    }
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_unlock(idx: u64, mode: LockMode) {
    let Some(lock) = lab_locks.get(idx as usize) else {
        return;
    };
    match mode {
        LockMode::Irq => lock.unlock_irq(),
        LockMode::Irqsave => {
            lock.unlock_irqrestore(LOCK_FLAGS[idx as usize].load(Ordering::Relaxed))
        }
        LockMode::Plain => lock.unlock(),
    }
}

/// HI_SOFTIRQ raised by the lab: counted and logged.
#[unsafe(no_mangle)]
pub static lab_softirqs: AtomicU32 = AtomicU32::new(0);

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_softirq_action() {
    let n = lab_softirqs.fetch_add(1, Ordering::Relaxed) + 1;
    printk!("lab: HI_SOFTIRQ ran ({} so far)", n);
}

const LAB_TIMERS: usize = 16;
#[unsafe(no_mangle)]
pub static mut lab_timers: [crate::kernel::time::timer::TimerList; LAB_TIMERS] =
    [const { crate::kernel::time::timer::TimerList::new() }; LAB_TIMERS];
static NEXT_TIMER: AtomicU32 = AtomicU32::new(0);

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_timer_fn(_t: &mut crate::kernel::time::timer::TimerList) {
    printk!(
        "lab: timer fired on CPU {}",
        crate::arch::x86::percpu::smp_processor_id()
    );
}

fn lab_arm_timer(ms: u64) {
    let i = NEXT_TIMER.fetch_add(1, Ordering::Relaxed) as usize;
    if i >= LAB_TIMERS {
        printk!("lab: out of timers");
        return;
    }
    // SAFETY: each slot is armed once, by the task that took its index.
    let t = unsafe { &mut (*core::ptr::addr_of_mut!(lab_timers))[i] };
    crate::kernel::time::timer::timer_setup(t, lab_timer_fn);
    t.expires = crate::kernel::time::jiffies() + ms.div_ceil(1000 / crate::kernel::time::HZ).max(1);
    crate::kernel::time::timer::add_timer(t);
}

/// A fresh cache per call, so each allocation takes the slow path into `allocate_slab`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_kmalloc_irqs_off(gfp: Gfp) {
    let cache = crate::mm::slub::kmem_cache_create(b"lab_cache", 256);
    let gfp = gfp_flags(gfp);
    crate::arch::x86::irqflags::local_irq_disable();
    // SAFETY: `kmem_cache_create` returns a pool cache.
    crate::mm::slub::kmem_cache_alloc(unsafe { &mut *cache }, gfp);
    crate::arch::x86::irqflags::local_irq_enable();
}

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
