//! `struct task_struct` and the static pool tasks come from.
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use lockvmm_abi::NR_CPUS;
use lockvmm_abi::program::Policy;
use lockvmm_abi::task::TaskState;

use crate::arch::x86::kernel::head_64::{Stack, THREAD_SIZE, init_stacks};

// `task_struct::state` and `::policy` values (the contract with the host, in Linux's names).
pub const TASK_RUNNING: u32 = TaskState::Running as u32;
pub const TASK_INTERRUPTIBLE: u32 = TaskState::Interruptible as u32;
pub const TASK_UNINTERRUPTIBLE: u32 = TaskState::Uninterruptible as u32;
pub const TASK_DEAD: u32 = TaskState::Dead as u32;

pub const SCHED_NORMAL: u32 = Policy::Normal as u32;
pub const SCHED_FIFO: u32 = Policy::Fifo as u32;

pub const PF_IDLE: u32 = 0x2;
pub const PF_KTHREAD: u32 = 0x0020_0000;

pub use lockvmm_abi::task::TASK_COMM_LEN;

/// A task. `thread_sp` must stay first: `__switch_to_asm` saves and loads it by offset.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct task_struct {
    /// Saved kernel stack pointer while switched out (`thread.sp`).
    pub thread_sp: u64,
    pub state: AtomicU32,
    pub pid: u32,
    pub comm: [u8; TASK_COMM_LEN],
    /// The CPU it runs on; lab tasks and per-CPU threads are pinned (affinity = one CPU).
    pub cpu: u32,
    pub policy: u32,
    pub rt_priority: u32,
    pub flags: u32,
    /// `cpus_mask` for the first 256 CPUs.
    pub cpus_mask: [u64; 4],
    pub on_rq: AtomicU32,
    /// Runqueue link (`*mut TaskStruct`).
    pub run_next: AtomicU64,
    /// Base of its kernel stack.
    pub stack: u64,
    /// Ticks run since it was last picked (round-robin slice).
    pub ticks: u32,
    /// The task-bound perf event (LBR users), or 0.
    pub perf_event: AtomicU64,
    /// Voluntary context switches (`nvcsw`): the hung-task detector's progress mark.
    pub nvcsw: AtomicU64,
    /// `khungtaskd`'s view: the switch count it last saw, and since when (virtual ns).
    pub last_switch_count: AtomicU64,
    pub last_switch_time: AtomicU64,
    /// The mutex or semaphore it sleeps on, or 0 (`CONFIG_DEBUG_MUTEXES`'s `blocked_on`).
    pub blocked_on: AtomicU64,
}

/// The Rust-style name of `task_struct`.
pub type TaskStruct = task_struct;

impl TaskStruct {
    const fn empty() -> Self {
        TaskStruct {
            thread_sp: 0,
            state: AtomicU32::new(TASK_DEAD),
            pid: 0,
            comm: [0; TASK_COMM_LEN],
            cpu: 0,
            policy: SCHED_NORMAL,
            rt_priority: 0,
            flags: 0,
            cpus_mask: [0; 4],
            on_rq: AtomicU32::new(0),
            run_next: AtomicU64::new(0),
            stack: 0,
            ticks: 0,
            perf_event: AtomicU64::new(0),
            nvcsw: AtomicU64::new(0),
            last_switch_count: AtomicU64::new(0),
            last_switch_time: AtomicU64::new(0),
            blocked_on: AtomicU64::new(0),
        }
    }

    pub fn comm(&self) -> &str {
        let len = self
            .comm
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(TASK_COMM_LEN);
        core::str::from_utf8(&self.comm[..len]).unwrap_or("?")
    }

    pub fn set_comm(&mut self, name: &[u8]) {
        let n = name.len().min(TASK_COMM_LEN - 1);
        self.comm = [0; TASK_COMM_LEN];
        self.comm[..n].copy_from_slice(&name[..n]);
    }

    /// Names a per-CPU thread `prefix` + `cpu` in decimal (`swapper/3`, `watchdog/12`, what
    /// Linux's `kthread_create_on_cpu` makes of `"watchdog/%u"`). Built as whole words with
    /// the prefix known at compile time: `set_comm` of a formatted name costs a `memset`, a
    /// `memcpy` and a digit loop, about 70 instructions per CPU at boot.
    #[inline(always)]
    pub fn set_comm_cpu<const P: usize>(&mut self, prefix: &[u8; P], cpu: u32) {
        const { assert!(P + 3 < TASK_COMM_LEN) };
        if cpu >= 1000 {
            let mut name = [0u8; TASK_COMM_LEN];
            name[..P].copy_from_slice(prefix);
            let n = fmt_u32(cpu, &mut name[P..TASK_COMM_LEN - 1]);
            self.set_comm(&name[..P + n]);
            return;
        }
        let mut c = [0u8; TASK_COMM_LEN];
        let mut i = 0;
        while i < P {
            c[i] = prefix[i];
            i += 1;
        }
        let (hundreds, tens, ones) = ((cpu / 100) as u8, (cpu / 10 % 10) as u8, (cpu % 10) as u8);
        let mut at = P;
        if cpu >= 100 {
            c[at] = b'0' + hundreds;
            at += 1;
        }
        if cpu >= 10 {
            c[at] = b'0' + tens;
            at += 1;
        }
        c[at] = b'0' + ones;
        self.comm = c;
    }

    pub fn is_idle(&self) -> bool {
        self.flags & PF_IDLE != 0
    }

    /// Scheduling class rank: RT above fair above idle.
    pub fn prio_rank(&self) -> u32 {
        if self.is_idle() {
            0
        } else if self.policy == SCHED_FIFO {
            100 + self.rt_priority
        } else {
            1
        }
    }
}

/// Tasks besides the idle tasks: one watchdog thread per CPU and the lab's tasks.
pub const MAX_TASKS: usize = lockvmm_abi::task::MAX_TASKS;

/// The task pool; entries 0..NR_CPUS are the idle tasks (`swapper/N`).
#[unsafe(no_mangle)]
pub static mut task_pool: [TaskStruct; MAX_TASKS] = [const { TaskStruct::empty() }; MAX_TASKS];
/// Kernel stacks of the non-idle tasks.
#[unsafe(no_mangle)]
pub static mut task_stacks: [Stack; MAX_TASKS - NR_CPUS] =
    [const { Stack([0; THREAD_SIZE]) }; MAX_TASKS - NR_CPUS];
static NEXT_TASK: AtomicU32 = AtomicU32::new(NR_CPUS as u32);

/// Task `i` of the pool.
pub fn task(i: usize) -> *mut TaskStruct {
    // SAFETY: index in range; tasks are only mutated by their creator before they are
    // published, and through atomics afterwards.
    unsafe { core::ptr::addr_of_mut!(task_pool[i]) }
}

/// Sets up `swapper/cpu`, the idle task this CPU boots as.
pub fn init_idle(cpu: u32) -> *mut TaskStruct {
    let t = task(cpu as usize);
    // SAFETY: only `cpu` initialises its own idle task, once, at bring-up.
    unsafe {
        let idle = &mut *t;
        idle.state.store(TASK_RUNNING, Ordering::Relaxed);
        idle.pid = 0;
        idle.set_comm_cpu(b"swapper/", cpu);
        idle.cpu = cpu;
        idle.flags = PF_IDLE | PF_KTHREAD;
        idle.stack = core::ptr::addr_of!(init_stacks[cpu as usize]) as u64;
        idle.cpus_mask[cpu as usize / 64] = 1 << (cpu % 64);
    }
    t
}

/// Takes a fresh task and its stack from the pool.
pub fn alloc_task() -> Option<*mut TaskStruct> {
    let i = NEXT_TASK.fetch_add(1, Ordering::Relaxed) as usize;
    if i >= MAX_TASKS {
        return None;
    }
    let t = task(i);
    // SAFETY: index `i` was handed out once; the stack slot belongs to it alone.
    unsafe {
        (*t).stack = core::ptr::addr_of!(task_stacks[i - NR_CPUS]) as u64;
    }
    Some(t)
}

/// Writes `n` in decimal into `out`; returns the number of digits.
pub fn fmt_u32(mut n: u32, out: &mut [u8]) -> usize {
    let mut tmp = [0u8; 10];
    let mut len = 0;
    loop {
        tmp[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len.min(out.len()) {
        out[i] = tmp[len - 1 - i];
    }
    len.min(out.len())
}
