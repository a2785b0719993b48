//! The scenario's interrupt-context handlers (`[[handler]]`): ops that run in hardirq context
//! (their own device vector, the tick, or `smp_call_function_single`'s IPI), in softirq
//! context (a tasklet a task or handler raises), as a `timer_list` callback, or in NMI context.
//! They run through the kernel's real entry paths (`do_IRQ`, `__do_softirq`,
//! `run_timer_softirq`, `nmi_handle`), so the stacks the host unwinds are the ones Linux's
//! would be.
use core::sync::atomic::{AtomicU32, Ordering};

use lockvmm_abi::program::{ANY_CPU, HANDLER_ON_TICK, HandlerKind, MAX_HANDLERS};
use lockvmm_abi::vector::{CALL_FUNCTION_SINGLE_VECTOR, lab_vector};
use lockvmm_abi::{HandlerDesc, NR_CPUS, PtRegs};

use super::{program, run_ops};
use crate::arch::x86::lockvmm;
use crate::arch::x86::percpu::smp_processor_id;
use crate::kernel::softirq::{TASKLET_SOFTIRQ, raise_softirq};
use crate::kernel::time::timer::{TimerList, add_timer, timer_setup};

/// Runs handler `h` if it is of `kind` and may run on this CPU (inlined, so the entry path's
/// frame calls the handler's ops directly, as a driver's handler would).
#[inline(always)]
fn run_handler(h: u32, kind: HandlerKind) -> bool {
    let Some(prog) = program() else { return false };
    let Some(d) = prog.handlers.get(h as usize) else {
        return false;
    };
    if HandlerKind::from_raw(d.kind) != Some(kind)
        || (d.cpu != ANY_CPU && d.cpu != smp_processor_id())
    {
        return false;
    }
    let first = d.first_op as usize;
    run_ops(
        prog.ops
            .get(first..first + d.nr_ops as usize)
            .unwrap_or(&[]),
    );
    true
}

fn handlers() -> &'static [HandlerDesc] {
    program().map_or(&[], |p| p.handlers)
}

/// A device interrupt on a lab vector (`do_IRQ` → `handle_irq`): hardirq context.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_irq_handler(handler: u32) {
    keep_frame!(run_handler(handler, HandlerKind::Hardirq));
}

/// Hardirq handlers that also run from every tick on their CPU (set at program start, so
/// the tick pays one load when there are none).
static TICK_HANDLERS: AtomicU32 = AtomicU32::new(0);

/// Notes which hardirq handlers run on the tick.
pub fn init() {
    let mut mask = 0;
    for (i, d) in handlers().iter().enumerate().take(MAX_HANDLERS) {
        if d.flags & HANDLER_ON_TICK != 0
            && HandlerKind::from_raw(d.kind) == Some(HandlerKind::Hardirq)
        {
            mask |= 1 << i;
        }
    }
    TICK_HANDLERS.store(mask, Ordering::Relaxed);
}

/// From `local_apic_timer_interrupt`: the tick's hardirq handlers.
#[inline(always)]
pub fn tick() {
    let mask = TICK_HANDLERS.load(Ordering::Relaxed);
    if mask != 0 {
        lab_tick_handlers(mask);
    }
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_tick_handlers(mask: u32) {
    for h in (0..MAX_HANDLERS as u32).filter(|h| mask & (1 << h) != 0) {
        keep_frame!(run_handler(h, HandlerKind::Hardirq));
    }
}

/// Sends CPU `cpu` the vector of hardirq handler `h`.
pub fn send_ipi(cpu: u64, h: u64) {
    if h < MAX_HANDLERS as u64 {
        lockvmm::send_ipi(cpu as u32, u64::from(lab_vector(h as u32)));
    }
}

/// Softirq handlers raised on each CPU (bit per handler).
#[allow(clippy::declare_interior_mutable_const)]
const PENDING_INIT: AtomicU32 = AtomicU32::new(0);
static TASKLETS_PENDING: [AtomicU32; NR_CPUS] = [PENDING_INIT; NR_CPUS];

/// `tasklet_schedule`: softirq handler `h` runs at this CPU's next softirq.
pub fn raise(h: u64) {
    if h < MAX_HANDLERS as u64 {
        TASKLETS_PENDING[smp_processor_id() as usize].fetch_or(1 << h, Ordering::Relaxed);
        raise_softirq(TASKLET_SOFTIRQ);
    }
}

/// TASKLET_SOFTIRQ's action: every raised softirq handler of this CPU, in softirq context.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn tasklet_action() {
    // The kernel's own tasklets first (timer_mod's), then the scenario's.
    crate::kernel::module::timer_mod_tasklets();
    let pending = TASKLETS_PENDING[smp_processor_id() as usize].swap(0, Ordering::Relaxed);
    for h in (0..MAX_HANDLERS as u32).filter(|h| pending & (1 << h) != 0) {
        keep_frame!(run_handler(h, HandlerKind::Softirq));
    }
}

const LAB_TIMERS: usize = 16;
#[unsafe(no_mangle)]
pub static mut lab_timers: [TimerList; LAB_TIMERS] = [const { TimerList::new() }; LAB_TIMERS];
/// The handler (+ 1) of each timer slot; 0: the timer only logs.
static TIMER_HANDLER: [AtomicU32; LAB_TIMERS] = [const { AtomicU32::new(0) }; LAB_TIMERS];
static NEXT_TIMER: AtomicU32 = AtomicU32::new(0);

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_timer_fn(t: &mut TimerList) {
    let base = core::ptr::addr_of!(lab_timers) as u64;
    let slot = (t as *mut TimerList as u64 - base) / core::mem::size_of::<TimerList>() as u64;
    match TIMER_HANDLER
        .get(slot as usize)
        .map_or(0, |h| h.load(Ordering::Relaxed))
    {
        0 => printk!("lab: timer fired on CPU {}", smp_processor_id()),
        h => {
            keep_frame!(run_handler(h - 1, HandlerKind::Timer));
        }
    }
}

/// Arms a timer on this CPU firing in `ms`; `handler` = 0 logs, else handler + 1 runs.
pub fn arm_timer(ms: u64, handler: u64) {
    let i = NEXT_TIMER.fetch_add(1, Ordering::Relaxed) as usize;
    if i >= LAB_TIMERS {
        printk!("lab: out of timers");
        return;
    }
    TIMER_HANDLER[i].store(handler.min(u64::from(u32::MAX)) as u32, Ordering::Relaxed);
    // SAFETY: each slot is armed once, by the task that took its index.
    let t = unsafe { &mut (*core::ptr::addr_of_mut!(lab_timers))[i] };
    timer_setup(t, lab_timer_fn);
    t.expires = crate::kernel::time::jiffies() + ms.div_ceil(1000 / crate::kernel::time::HZ).max(1);
    add_timer(t);
}

/// NMI handlers: run for an NMI nobody else claimed (a host `nmi` action, `send_nmi`).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn lab_nmi_handler(_regs: &mut PtRegs) -> u32 {
    let mut handled = 0;
    for h in 0..handlers().len().min(MAX_HANDLERS) as u32 {
        if keep_frame!(run_handler(h, HandlerKind::Nmi)) {
            handled = 1;
        }
    }
    handled
}

/// `smp_call_function_single`'s per-CPU `call_single_data`: the handler (+ 1) queued for
/// each CPU, and whether it has run.
static CSD_FUNC: [AtomicU32; NR_CPUS] = [PENDING_INIT; NR_CPUS];
static CSD_DONE: [AtomicU32; NR_CPUS] = [PENDING_INIT; NR_CPUS];

/// `smp_call_function_single(cpu, handler, wait)`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn smp_call_function_single(cpu: u64, h: u64, wait: bool) {
    let Some(slot) = CSD_FUNC.get(cpu as usize) else {
        return;
    };
    // `csd_lock`: one call per target at a time.
    while slot
        .compare_exchange(0, h as u32 + 1, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        lockvmm::wait_on(slot, slot.load(Ordering::Relaxed));
    }
    CSD_DONE[cpu as usize].store(0, Ordering::Release);
    lockvmm::send_ipi(cpu as u32, u64::from(CALL_FUNCTION_SINGLE_VECTOR));
    if wait {
        keep_frame!(csd_lock_wait(cpu as usize));
    }
}

/// Spins until the target CPU has run the call (`csd_lock_wait`).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn csd_lock_wait(cpu: usize) {
    while CSD_DONE[cpu].load(Ordering::Acquire) == 0 {
        // SAFETY: `pause` is a hint with no architectural effect.
        unsafe { core::arch::asm!("pause", options(nomem, nostack, preserves_flags)) };
        lockvmm::wait_on(&CSD_DONE[cpu], 0);
    }
}

/// CALL_FUNCTION_SINGLE_VECTOR's handler: runs the call queued for this CPU.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn generic_smp_call_function_single_interrupt() {
    let cpu = smp_processor_id() as usize;
    let h = CSD_FUNC[cpu].load(Ordering::Acquire);
    if h == 0 {
        return;
    }
    keep_frame!(run_handler(h - 1, HandlerKind::Hardirq));
    CSD_DONE[cpu].store(1, Ordering::Release);
    lockvmm::kick(&CSD_DONE[cpu]);
    CSD_FUNC[cpu].store(0, Ordering::Release);
    lockvmm::kick(&CSD_FUNC[cpu]);
}
