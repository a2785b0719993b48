//! Seeds 000 and 002 line by line against the replay (issue 10): the kdump panic path
//! (`machine_kexec` ← `__crash_kexec` ← `panic`), the CPUs the crash NMI stopped
//! (`crash_nmi_callback`), the frames Linux keeps, the 3.10 ticket spinlock, and the names
//! crash's header reads from the vmcore. Every fact comes from the captured registers and
//! guest memory.
mod common;

use lockvmm::analysis::Analysis;
use lockvmm::state::{BtItem, CpuBacktrace};
use lockvmm_abi::eflags::X86_EFLAGS_IF;

/// `want` appears in `have` in this order (not necessarily adjacent).
fn assert_in_order(have: &[&str], want: &[&str]) {
    let mut it = have.iter();
    for w in want {
        assert!(
            it.any(|h| h == w),
            "{w} missing or out of order in {have:?}"
        );
    }
}

/// The frames of `bt` before its first exception frame (the NMI's own stack).
fn nmi_stack(bt: &CpuBacktrace) -> Vec<&str> {
    bt.items
        .iter()
        .take_while(|i| !matches!(i, BtItem::Exception { .. }))
        .filter_map(|i| match i {
            BtItem::Frame { function, .. } => Some(function.as_str()),
            _ => None,
        })
        .collect()
}

/// A NUL-terminated string at `addr` in the snapshot.
fn c_string(a: &Analysis<'_>, addr: u64) -> String {
    let bytes = a.mem.read(addr, 65).expect("readable");
    let n = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..n]).into_owned()
}

/// `init_uts_ns.name.<field>` as crash reads it for the header.
fn uts(r: &lockvmm::RunResult, a: &Analysis<'_>, field: &str) -> String {
    let base = r
        .kernel
        .symbols
        .addr_of("init_uts_ns")
        .expect("init_uts_ns");
    let off = common::member(r, "uts_namespace", "name") + common::member(r, "new_utsname", field);
    c_string(a, base + off)
}

/// Every CPU but the panicking one halts in `crash_nmi_callback` inside the crash NMI, and
/// saved the context it interrupted in its crash note.
fn assert_stopped_by_crash_nmi(r: &lockvmm::RunResult, a: &Analysis<'_>, panicking: usize) {
    let note = r
        .kernel
        .symbols
        .addr_of("crash_notes")
        .expect("crash_notes");
    let (size, _) = r.kernel.debug_info().array_of("crash_notes").unwrap();
    let saved = common::member(r, "crash_note", "saved");
    let rip_off = common::member(r, "crash_note", "pr_reg") + 16 * 8; // pt_regs.rip
    for cpu in 0..r.online.len() {
        let bt = a.backtrace(cpu);
        let at = note + cpu as u64 * size;
        assert_eq!(a.mem.u32(at + saved).unwrap(), 1, "CPU {cpu}'s crash note");
        if cpu == panicking {
            continue;
        }
        assert_eq!(
            nmi_stack(&bt),
            [
                "crash_nmi_callback",
                "nmi_handle",
                "do_nmi",
                "end_repeat_nmi"
            ],
            "CPU {cpu}"
        );
        let (entry, regs) = bt.exceptions()[0];
        assert_eq!(entry, "end_repeat_nmi");
        // crash_save_cpu kept the interrupted context: its RIP is the one below the NMI.
        assert_eq!(a.mem.u64(at + rip_off).unwrap(), regs.rip, "CPU {cpu}");
    }
}

#[test]
fn seed_000_kdump_path_frames_and_names() {
    let (_, r) = common::run("scenarios/lbr_gfp.toml", None);
    let a = common::analysis(&r);
    // `crash> bt` of CPU 51: #0 machine_kexec, #1 __crash_kexec, #2 panic, then the NMI path
    // with every frame Linux keeps (no tail call drops __perf_event_overflow or
    // perf_event_nmi_handler), then end_repeat_nmi.
    let bt = a.backtrace(51);
    let top = nmi_stack(&bt);
    assert_eq!(&top[..3], ["machine_kexec", "__crash_kexec", "panic"]);
    assert_in_order(
        &top,
        &[
            "panic",
            "watchdog_overflow_callback",
            "__perf_event_overflow",
            "perf_event_overflow",
            "intel_pmu_handle_irq",
            "perf_event_nmi_handler",
            "nmi_handle",
            "do_nmi",
            "end_repeat_nmi",
        ],
    );
    // [exception RIP: native_queued_spin_lock_slowpath+…], RFLAGS 0x46: interrupts off.
    let (_, regs) = bt.exceptions()[0];
    assert_eq!(
        r.kernel.symbols.lookup(regs.rip).unwrap().name,
        "native_queued_spin_lock_slowpath"
    );
    assert_eq!(regs.rflags & X86_EFLAGS_IF, 0);
    // The seed's Call Trace, with the alias its kernel resolves.
    assert_in_order(
        &bt.functions(),
        &[
            "native_queued_spin_lock_slowpath",
            "_raw_spin_lock",
            "raw_spin_rq_lock_nested",
            "online_fair_sched_group",
            "sched_online_group",
            "sched_autogroup_create_attach",
            "ksys_setsid",
            "__ia32_sys_setsid",
            "do_syscall_64",
            "entry_SYSCALL_64_after_hwframe",
        ],
    );
    // RDI is runqueues[56].__lock, held by CPU 56.
    let rq56 = common::elem_addr(&r, "runqueues", 56);
    let waits = a.lock_waits();
    let w = waits.iter().find(|w| w.cpu == 51).expect("CPU 51 spins");
    assert_eq!((w.lock, w.holder), (rq56, Some(56)));
    // `struct rq -o`: [0] __lock, [4] nr_running, [8] bt_nr_running.
    assert_eq!(common::member(&r, "rq", "nr_running"), 4);
    assert_eq!(common::member(&r, "rq", "bt_nr_running"), 8);
    // CPU 56: the interrupt path below the crash NMI keeps irq-side frames in the seed's order.
    let bt56 = a.backtrace(56);
    assert_in_order(
        &bt56.functions(),
        &[
            "crash_nmi_callback",
            "end_repeat_nmi",
            "_raw_spin_lock",
            "scheduler_tick",
            "hrtimer_interrupt",
            "smp_apic_timer_interrupt",
            "apic_timer_interrupt",
            "kmem_cache_alloc",
            "intel_pmu_lbr_add",
            "perf_event_task_sched_in",
            "finish_task_switch",
        ],
    );
    assert_stopped_by_crash_nmi(&r, &a, 51);
    // Idle CPUs stay idle for the report, though the crash NMI stopped them too.
    let idle = a.backtrace(60);
    assert!(idle.crash_stopped() && a.is_idle(&idle, &waits));
    assert_eq!(uts(&r, &a, "release"), "6.6.0-lockvmm");
}

#[test]
fn seed_002_kdump_ticket_lock_and_header() {
    let (_, r) = common::run("scenarios/timer_uaf.toml", None);
    let a = common::analysis(&r);
    let bt = a.backtrace(1);
    let top = nmi_stack(&bt);
    // #0 machine_kexec … #4 watchdog_overflow_callback … #11 end_repeat_nmi, as the seed.
    assert_eq!(
        top,
        [
            "machine_kexec",
            "__crash_kexec",
            "panic",
            "nmi_panic",
            "watchdog_overflow_callback",
            "__perf_event_overflow",
            "perf_event_overflow",
            "intel_pmu_handle_irq",
            "perf_event_nmi_handler",
            "nmi_handle",
            "do_nmi",
            "end_repeat_nmi",
        ]
    );
    // 3.10's ticket spinlock: the CPU spins inside _raw_spin_lock_irqsave itself, with
    // RFLAGS 00000002 (interrupts off, arithmetic flags clear), not in a queued slow path.
    let (_, regs) = bt.exceptions()[0];
    assert_eq!(
        r.kernel.symbols.lookup(regs.rip).unwrap().name,
        "_raw_spin_lock_irqsave"
    );
    assert_eq!(regs.rflags, 0x2);
    assert!(!bt.functions().contains(&"native_queued_spin_lock_slowpath"));
    // The ticket word: the spinner's ticket (tail - INC) is not being served (head).
    let lock = common::elem_addr(&r, "timer_bases", 1);
    let word = a.mem.u32(lock).unwrap();
    let (head, tail) = lockvmm_abi::locking::ticket_head_tail(word);
    assert_ne!(head, tail, "held");
    let waits = a.lock_waits();
    let w = waits.iter().find(|w| w.cpu == 1).expect("CPU 1 spins");
    assert_eq!((w.lock, w.holder), (lock, Some(1)));
    // Below: the page fault in the timer softirq, entered from the idle CPU's timer interrupt.
    assert_in_order(
        &bt.functions(),
        &[
            "_raw_spin_lock_irqsave",
            "lock_timer_base",
            "mod_timer",
            "add_timer",
            "fbcon_add_cursor_timer",
            "fbcon_cursor",
            "hide_cursor",
            "vt_console_print",
            "console_unlock",
            "vprintk_emit",
            "printk",
            "no_context",
            "__bad_area_nosemaphore",
            "bad_area_nosemaphore",
            "__do_page_fault",
            "do_page_fault",
            "page_fault",
            "run_timer_softirq",
            "__do_softirq",
            "call_softirq",
            "do_softirq",
            "irq_exit",
            "smp_apic_timer_interrupt",
            "apic_timer_interrupt",
            "cpuidle_enter_state",
            "cpuidle_idle_call",
            "arch_cpu_idle",
            "cpu_startup_entry",
            "start_secondary",
        ],
    );
    assert_stopped_by_crash_nmi(&r, &a, 1);
    // Header: RELEASE, NODENAME, MACHINE from the guest's utsname in the vmcore.
    assert_eq!(uts(&r, &a, "release"), "3.10.0-lockvmm");
    assert_eq!(uts(&r, &a, "machine"), "x86_64");
    assert!(!uts(&r, &a, "nodename").is_empty());
    assert!(a.ticket_spinlocks());
    // crash's header: PANIC is the log line crash's get_panicmsg picks (the oops' "BUG:
    // unable to handle kernel " comes before the panic in its list), STATE the panic task's.
    let h = lockvmm::report::header::Header::build(&a, 1, &a.dmesg(), true);
    let panic = h.panic.as_deref().expect("a PANIC line in the log");
    // The seed's PANIC exactly: 3.10's show_fault_oops prints its line in pieces, and the CPU
    // hung printing the first (`printk(KERN_ALERT "BUG: unable to handle kernel ")`, whose
    // console output armed the fbcon timer). That piece waited in `struct cont`, printed on
    // the console as a fragment; the hard-lockup report's first line with a level stored it
    // as a record of its own, the record crash's get_panicmsg finds.
    assert_eq!(panic, "BUG: unable to handle kernel ");
    let recs = common::log_records(&r);
    let bug = recs
        .iter()
        .position(|l| l.text.starts_with("BUG: unable to handle kernel"))
        .expect("the oops' record");
    assert_eq!(recs[bug].text, "BUG: unable to handle kernel ");
    // LOG_NOCONS: the console had printed all of it before it became a record.
    assert_eq!(recs[bug].flags & 1, 1);
    assert_eq!(recs[bug].cons as usize, recs[bug].text.len());
    assert_eq!(recs[bug].level, 1, "KERN_ALERT");
    assert!(
        recs[bug + 1..]
            .iter()
            .any(|l| l.text == "Watchdog detected hard LOCKUP on cpu 1")
    );
    // The rest of the line was never printed: the CPU never got past the first printk.
    assert!(!recs.iter().any(|l| l.text.contains("paging request")));
    assert!(!r.console.contains("paging request"));
    assert_eq!(h.release, "3.10.0-lockvmm");
    assert_eq!(h.state, "TASK_RUNNING (PANIC)");
    assert_eq!(h.memory_bytes, r.memory.size());
    assert!(h.tasks >= 2 && h.task_index.is_some());
}

/// Negative control: the fixed module neither faults nor locks up, so no crash path runs and
/// no CPU is stopped.
#[test]
fn seed_002_fixed_runs_no_crash_path() {
    let (_, r) = common::run("scenarios/timer_uaf_fixed.toml", None);
    assert!(r.lockups.is_empty());
    assert!(
        !matches!(r.outcome, lockvmm::state::Outcome::Panic { .. }),
        "{:?}",
        r.outcome
    );
    assert_eq!(common::read_u32(&r, "waiting_for_crash_ipi", 0), 0);
    assert_eq!(common::read_u32(&r, "crashing_cpu", 0), u32::MAX);
}
