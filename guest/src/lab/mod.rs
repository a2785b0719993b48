//! The lab: runs the tasks of the scenario the host loaded (see `lockvmm_abi::ProgramHeader`).
//!
//! The host writes the program into guest memory before boot; the boot CPU hands each task to
//! its CPU, which runs the task's ops from its idle loop, and waits until all have finished.
use core::mem::size_of;
use core::sync::atomic::{AtomicU32, Ordering};

use lockvmm_abi::{OpDesc, PAGE_OFFSET, ProgramHeader, TaskDesc, op};

use crate::arch::x86::kernel::idt::load_empty_idt;
use crate::arch::x86::lockvmm;
use crate::arch::x86::percpu::per_cpu;
use crate::init::main::boot_info;

/// Number of tasks that have run to completion.
#[unsafe(no_mangle)]
pub static lab_tasks_done: AtomicU32 = AtomicU32::new(0);

struct Program {
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
    // map and validated the counts against `program_len`; the layout is `#[repr(C)]`.
    unsafe {
        let hdr = &*(base as *const ProgramHeader);
        let tasks_at = base + size_of::<ProgramHeader>() as u64;
        let ops_at = tasks_at + (hdr.nr_tasks as usize * size_of::<TaskDesc>()) as u64;
        Some(Program {
            tasks: core::slice::from_raw_parts(tasks_at as *const TaskDesc, hdr.nr_tasks as usize),
            ops: core::slice::from_raw_parts(ops_at as *const OpDesc, hdr.nr_ops as usize),
        })
    }
}

/// Dispatches every task to its CPU and waits for all of them (on the boot CPU).
pub fn run_program() {
    let Some(prog) = program() else { return };
    for (i, task) in prog.tasks.iter().enumerate() {
        if task.cpu == 0 {
            run_task(i as u32);
            continue;
        }
        let slot = &per_cpu(task.cpu).pending_task;
        // One task at a time per CPU: wait for the previous one to leave the slot.
        loop {
            let cur = slot.load(Ordering::Acquire);
            if cur == 0 {
                break;
            }
            lockvmm::wait_on(slot, cur);
        }
        slot.store(i as u32 + 1, Ordering::Release);
        lockvmm::kick(slot);
    }
    let total = prog.tasks.len() as u32;
    loop {
        let done = lab_tasks_done.load(Ordering::Acquire);
        if done >= total {
            break;
        }
        lockvmm::wait_on(&lab_tasks_done, done);
    }
}

/// Runs task `idx` on this CPU.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn run_task(idx: u32) {
    let Some(prog) = program() else { return };
    let Some(task) = prog.tasks.get(idx as usize) else {
        return;
    };
    let comm_len = task
        .comm
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(task.comm.len());
    let comm = core::str::from_utf8(&task.comm[..comm_len]).unwrap_or("?");
    printk!("lab: {}:{} running on CPU {}", comm, task.pid, task.cpu);
    let first = task.first_op as usize;
    let ops = prog
        .ops
        .get(first..first + task.nr_ops as usize)
        .unwrap_or(&[]);
    for o in ops {
        run_op(o);
    }
    lab_tasks_done.fetch_add(1, Ordering::AcqRel);
    lockvmm::kick(&lab_tasks_done);
}

fn run_op(o: &OpDesc) {
    match o.kind {
        op::READ => {
            lab_op_read(o.args[0]);
        }
        op::WRITE => lab_op_write(o.args[0], o.args[1]),
        op::TRIPLE_FAULT => lab_op_triple_fault(),
        op::RAW_HYPERCALL => {
            let ret = lockvmm::hypercall(o.args[0] as u32, o.args[1], o.args[2], o.args[3], 0);
            printk!("lab: hypercall {:#x} returned {:#x}", o.args[0], ret);
        }
        op::PRINTK => {
            for i in 0..o.args[0] {
                printk!("lab: console line {}", i);
            }
        }
        op::READ_WITH_BAD_FP => {
            lab_op_read_with_frame_pointer(o.args[0], o.args[1]);
        }
        other => printk!("lab: unknown op {}", other),
    }
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
