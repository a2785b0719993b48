//! The guest kernel's mechanisms on real KVM (issue 3): lockups come from real spinning and are
//! detected by the real watchdog; every assertion is on captured vCPU state or guest memory.
mod common;

use lockvmm::state::{LockupEvent, LockupKind, Outcome};
use lockvmm_abi::eflags::X86_EFLAGS_IF;

const NSEC: u64 = 1_000_000_000;

fn lockups(outcome: &Outcome) -> &[LockupEvent] {
    match outcome {
        Outcome::Lockup { events } => events,
        other => panic!("expected lockups, got {other:?}"),
    }
}

/// The symbol containing `addr` (its name, without the offset).
fn function_at(r: &lockvmm::RunResult, addr: u64) -> String {
    r.kernel
        .symbols
        .lookup(addr)
        .map(|l| l.name)
        .unwrap_or_default()
}

/// `comm` of the task the snapshot shows running on `cpu` (`per_cpu_area[cpu].current_task`,
/// through the DWARF layout).
fn current_comm(r: &lockvmm::RunResult, cpu: usize) -> String {
    common::analysis(r)
        .task_on(cpu)
        .expect("a current task")
        .comm
}

#[test]
fn preempt_off_hog_is_a_soft_lockup_after_twice_the_threshold() {
    let (_, r) = common::run("scenarios/hog_soft.toml", None);
    let events = lockups(&r.outcome);
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!((e.cpu, e.kind), (1, LockupKind::Soft));
    // The interrupted context: the hog's loop, interrupts on (a soft, not a hard, lockup).
    assert_eq!(function_at(&r, e.report.regs.rip), "hog_thread");
    assert_ne!(e.report.regs.rflags & X86_EFLAGS_IF, 0);
    // The hog started after its 8.5 s sleep; detection needs 2 x watchdog_thresh (20 s) without
    // the watchdog thread running, seen at the next 4 s sample.
    let start = r
        .hooks
        .iter()
        .find(|h| h.hook == "task_start" && h.cpu == 1)
        .unwrap()
        .vtime_ns;
    let hog_from = start + 8_500_000_000;
    assert!(
        e.vtime_ns >= hog_from + 20 * NSEC && e.vtime_ns <= hog_from + 28 * NSEC,
        "{} vs {}",
        e.vtime_ns,
        hog_from
    );
    // It names the task that is stuck, as guest memory has it.
    let comm = current_comm(&r, 1);
    assert!(
        e.message.contains(&format!("[{comm}:")),
        "{} / {comm}",
        e.message
    );
}

#[test]
fn softlockup_panic_panics_on_the_stuck_cpu() {
    let (_, r) = common::run("scenarios/xen_softlockup_panic.toml", None);
    let Outcome::Panic { report, .. } = &r.outcome else {
        panic!("{:?}", r.outcome)
    };
    assert_eq!(report.cpu, 3);
    assert_eq!(report.rip_function.as_deref(), Some("hog_thread"));
    assert!(
        r.pmu_nmis.iter().all(|&n| n == 0),
        "no NMI watchdog: {:?}",
        r.pmu_nmis
    );
}

#[test]
fn spin_lock_irqsave_hog_is_a_hard_lockup_holding_the_lock() {
    let (_, r) = common::run("scenarios/hog_hard.toml", None);
    let e = &lockups(&r.outcome)[0];
    assert_eq!((e.cpu, e.kind), (1, LockupKind::Hard));
    assert_eq!(function_at(&r, e.report.regs.rip), "hog_thread");
    assert_eq!(
        e.report.regs.rflags & X86_EFLAGS_IF,
        0,
        "interrupts are off"
    );
    // hog_lock's locked byte names its owner (CPU + 1).
    let word = common::read_u32(&r, "hog_lock", 0);
    assert_eq!(
        common::owner(word),
        Some(1),
        "hog_lock = {word:#x}: held by CPU 1"
    );
}

#[test]
fn without_the_nmi_watchdog_a_hard_hog_goes_undetected() {
    let (_, r) = common::run("vmm/tests/scenarios/hog_hard_no_nmi.toml", None);
    assert!(
        matches!(r.outcome, Outcome::TimeLimit { .. }),
        "{:?}",
        r.outcome
    );
    assert!(r.lockups.is_empty());
    assert!(r.pmu_nmis.iter().all(|&n| n == 0));
    // Still stuck: the lock is held by CPU 1 and its hog never got a tick (hrtimer_interrupts
    // of CPU 1 stayed where they were when it took the lock).
    assert_eq!(common::owner(common::read_u32(&r, "hog_lock", 0)), Some(1));
}

#[test]
fn allocate_slab_enables_interrupts_only_for_gfp_kernel() {
    let (_, r) = common::run("vmm/tests/scenarios/gfp_irqs.toml", None);
    common::assert_clean_shutdown(&r.outcome);
    let at_slab: Vec<_> = r
        .hooks
        .iter()
        .filter(|h| h.hook == "allocate_slab")
        .collect();
    let by_gfp = |gfp: u64| {
        at_slab
            .iter()
            .find(|h| h.arg == gfp)
            .unwrap_or_else(|| panic!("no allocation with gfp {gfp:#x}"))
    };
    const GFP_KERNEL: u64 = 0xcc0;
    const GFP_ATOMIC: u64 = 0x820;
    let kernel = by_gfp(GFP_KERNEL);
    let atomic = by_gfp(GFP_ATOMIC);
    assert_eq!(function_at(&r, kernel.rip), "alloc_slab_page");
    assert_ne!(
        kernel.rflags & X86_EFLAGS_IF,
        0,
        "GFP_KERNEL: interrupts enabled inside the allocation"
    );
    assert_eq!(
        atomic.rflags & X86_EFLAGS_IF,
        0,
        "GFP_ATOMIC: interrupts stay off"
    );
}

#[test]
fn the_pmu_delivers_nmis_at_the_programmed_period() {
    let (_, r) = common::run("vmm/tests/scenarios/pmu_period.toml", None);
    assert!(
        matches!(r.outcome, Outcome::TimeLimit { .. }),
        "{:?}",
        r.outcome
    );
    // watchdog_thresh = 2: one overflow every 2 virtual seconds from when each CPU's watchdog
    // programmed the counter (at time 0): 2, 4, … 20 → 10 in 21 s.
    assert_eq!(r.pmu_nmis, vec![10, 10]);
    assert!(r.lockups.is_empty(), "an idle machine has no lockup");
}

#[test]
fn softlockup_all_cpu_backtrace_asks_the_other_cpus_by_nmi() {
    let (_, r) = common::run("vmm/tests/scenarios/all_cpu_backtrace.toml", None);
    let e = &lockups(&r.outcome)[0];
    assert_eq!((e.cpu, e.kind), (1, LockupKind::Soft));
    // CPUs 0 and 2 answered the NMI IPI with their registers; the stuck CPU did not ask itself.
    for cpu in [0, 2] {
        assert!(
            r.console
                .contains(&format!("NMI backtrace for cpu {cpu}\n")),
            "CPU {cpu}:\n{}",
            r.console
        );
    }
    assert!(!r.console.contains("NMI backtrace for cpu 1\n"));
    // The call traces name kernel functions (the guest's own kallsyms, 6.6's format).
    assert!(r.console.contains("]  kthread+0x"), "{}", r.console);
}

#[test]
fn a_fifo99_user_space_spinner_starves_the_watchdog_thread() {
    let (_, r) = common::run("scenarios/rt_fifo99.toml", None);
    let e = &lockups(&r.outcome)[0];
    assert_eq!((e.cpu, e.kind), (2, LockupKind::Soft));
    // The timer interrupted user mode: CS has privilege level 3, and RIP is no kernel symbol.
    assert_eq!(e.report.regs.cs & 3, 3, "{:?}", e.report.regs);
    assert!(e.report.rip_function.is_none());
    assert_eq!(current_comm(&r, 2), "rt_spin");
    // watchdog/2 last ran before the task left for user mode at 8.5 s: its timestamp (in
    // ns >> 30 units) stayed at or below 8.5 s's.
    let touch = common::read_u64(&r, "watchdog_touch_ts", 2 * 8);
    assert!(touch <= 8_500_000_000 >> 30, "touch_ts = {touch}");
}

/// The state of the task with `pid`, found in `task_pool` through the DWARF layout.
fn task_state(r: &lockvmm::RunResult, pid: u32) -> Option<u32> {
    let dwarf = r.kernel.debug_info();
    let (size, count) = dwarf.array_of("task_pool").unwrap();
    let pid_off = dwarf.member_offset("task_struct", "pid").unwrap();
    let state_off = dwarf.member_offset("task_struct", "state").unwrap();
    (0..count)
        .map(|i| i * size)
        .find(|t| common::read_u32(r, "task_pool", t + pid_off) == pid)
        .map(|t| common::read_u32(r, "task_pool", t + state_off))
}

#[test]
fn crond_enters_setsid_through_the_system_call_entry_from_user_mode() {
    const NR_SETSID: u64 = 112;
    let (r, done, _) = common::run_complete("scenarios/lbr_gfp.toml");
    let bt = &done.report.as_ref().expect("a report").backtraces[0];
    assert_eq!(bt.cpu, 51);
    let items = &bt.items;
    let at = items
        .iter()
        .position(|i| {
            matches!(i, lockvmm::state::BtItem::Exception { entry, .. }
                if entry == "entry_SYSCALL_64_after_hwframe")
        })
        .expect("a system-call frame");
    let lockvmm::state::BtItem::Exception { regs, .. } = &items[at] else {
        unreachable!()
    };
    // The saved context is user mode, with the system call's number in RAX and its RIP in
    // no kernel symbol.
    assert_eq!(regs.cs & 3, 3, "{regs:?}");
    assert_eq!(regs.rax, NR_SETSID);
    assert!(r.kernel.symbols.lookup(regs.rip).is_none());
    let functions: Vec<&str> = items[..at]
        .iter()
        .filter_map(|i| match i {
            lockvmm::state::BtItem::Frame { function, .. } => Some(function.as_str()),
            _ => None,
        })
        .rev()
        .take(4)
        .collect();
    assert_eq!(
        functions,
        [
            "entry_SYSCALL_64_after_hwframe",
            "do_syscall_64",
            "__ia32_sys_setsid",
            "ksys_setsid"
        ]
    );
}

#[test]
fn with_gfp_atomic_crond_returns_from_setsid_and_exits() {
    const CROND: u32 = 1_000_877;
    const TASK_DEAD: u32 = 64;
    let (_, r) = common::run("scenarios/lbr_gfp_atomic.toml", None);
    assert!(
        !matches!(r.outcome, Outcome::Lockup { .. }),
        "{:?}",
        r.outcome
    );
    // Its exit() system call ran: the task is dead.
    assert_eq!(task_state(&r, CROND), Some(TASK_DEAD));
}
