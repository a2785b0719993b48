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

/// The saved `pt_regs` of exception `regs` on the stack below its RSP: its address (where
/// `rip`, `cs`, `rflags`, `rsp` sit in that order).
fn pt_regs_at(a: &Analysis<'_>, regs: &lockvmm::state::Regs) -> u64 {
    let rip_off = std::mem::offset_of!(lockvmm_abi::PtRegs, rip) as u64;
    (1..512u64)
        .map(|i| regs.rsp - 8 * i)
        .find(|&p| {
            let w = |o: u64| a.mem.u64(p + o).ok();
            w(rip_off) == Some(regs.rip)
                && w(rip_off + 8) == Some(regs.cs)
                && w(rip_off + 16) == Some(regs.rflags)
                && w(rip_off + 24) == Some(regs.rsp)
        })
        .expect("the exception's pt_regs below its RSP")
}

/// Seed 002's faulting instruction, `[exception RIP: run_timer_softirq+248]`
/// `mov %rsi,0x8(%rcx)`: the timer list's unlink (`next->prev = prev`) of a live timer
/// whose successor is the module's timer, in the freed module. A write (error code W, not
/// present), CR2 = that timer + the offset of its back pointer, in every variant whose timer
/// outlives the module.
#[test]
fn seed_002_faults_on_the_unlinks_store_into_the_freed_module() {
    use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter, OpKind, Register};
    for s in [
        "scenarios/timer_uaf.toml",
        "scenarios/timer_uaf_init_failed.toml",
        "scenarios/timer_uaf_timer_readded.toml",
    ] {
        let (_, r) = common::run(s, None);
        let a = common::analysis(&r);
        let bt = a.backtrace(1);
        let (_, regs) = *bt
            .exceptions()
            .iter()
            .find(|(e, _)| *e == "page_fault")
            .unwrap_or_else(|| panic!("{s}: no page fault on CPU 1"));
        assert!(
            common::range_of(&r, "run_timer_softirq").contains(&regs.rip),
            "{s}"
        );
        // The instruction at RIP, decoded from guest memory: a store to 8(%rcx) of %rsi.
        let bytes = a.mem.read(regs.rip, 15).unwrap();
        let insn = Decoder::with_ip(64, &bytes, regs.rip, DecoderOptions::NONE).decode();
        let mut text = String::new();
        let mut fmt = GasFormatter::new();
        fmt.options_mut().set_hex_prefix("0x");
        fmt.options_mut().set_hex_suffix("");
        fmt.options_mut().set_small_hex_numbers_in_decimal(false);
        fmt.format(&insn, &mut text);
        assert_eq!(text, "mov %rsi,0x8(%rcx)", "{s}");
        assert_eq!(insn.op0_kind(), OpKind::Memory, "{s}: a store");
        assert_eq!(
            (insn.memory_base(), insn.memory_displacement64()),
            (Register::RCX, 8)
        );
        // The page fault's error code, as its entry saved it (orig_ax): W set, P clear.
        let error_code = a
            .mem
            .u64(pt_regs_at(&a, regs) + std::mem::offset_of!(lockvmm_abi::PtRegs, orig_rax) as u64)
            .unwrap();
        assert_eq!(
            error_code & 0b111,
            0b010,
            "{s}: a kernel write to a missing page"
        );
        // CR2: next + 8, the back pointer of `next`, in module memory the page tables no
        // longer map (the module was freed: its base is gone).
        let next = regs.rcx;
        let pprev = common::member(&r, "hlist_node", "pprev");
        assert_eq!(pprev, 8);
        let snap = r.snapshot.as_ref().unwrap();
        assert_eq!(snap.cpus[1].sregs.cr2, next + pprev, "{s}");
        assert!(next >= lockvmm_abi::MODULES_VADDR, "{s}: {next:#x}");
        assert!(
            a.mem.translate(next).is_none(),
            "{s}: the module's memory is unmapped"
        );
        assert_eq!(
            common::read_u64(&r, "timer_mod_base", 0),
            0,
            "{s}: unloaded"
        );
        // The timer being unlinked is the live one the insmod task armed (lab_timers[0]), the
        // head of CPU 1's base: its `pprev` (RSI) is the base's list head, its `next` (RCX)
        // the module's timer; the unlink's first store (`*pprev = next`) had already run.
        let live = common::elem_addr(&r, "lab_timers", 0);
        let head =
            common::elem_addr(&r, "timer_bases", 1) + common::member(&r, "timer_base", "first");
        assert_eq!(a.mem.u64(live).unwrap(), next, "{s}: live.next");
        assert_eq!(
            a.mem.u64(live + pprev).unwrap(),
            regs.rsi,
            "{s}: live.pprev"
        );
        assert_eq!(regs.rsi, head, "{s}");
        assert_eq!(a.mem.u64(head).unwrap(), next, "{s}: base.first = next");
        // The live timer is mapped kernel memory, due: it expired in this very softirq.
        let expires = common::member(&r, "timer_list", "expires");
        assert!(a.mem.translate(live).is_some());
        let tick = 1_000_000_000 / lockvmm_abi::HZ;
        assert!(
            a.mem.u64(live + expires).unwrap() * tick <= r.vtime_ns,
            "{s}"
        );
    }
}

/// Seed 002's second cause, "deleted, then re-added by another path, e.g. a softirq": exit's
/// del_timer runs while the module's device can still interrupt; the tasklet its interrupt
/// schedules re-arms the timer from softirq context (tasklet_action) after the delete, and
/// the module is freed with its timer queued. The module that never deletes its timer has
/// no device: nothing re-arms it there.
#[test]
fn seed_002_timer_readded_is_rearmed_by_the_modules_tasklet_after_the_delete() {
    let (_, r) = common::run("scenarios/timer_uaf_timer_readded.toml", None);
    let rearms = common::read_u32(&r, "timer_mod_rearms_after_del", 0);
    assert!(rearms >= 1, "re-armed after exit's del_timer: {rearms}");
    let ip = common::read_u64(&r, "timer_mod_rearm_ip", 0);
    assert!(
        common::range_of(&r, "tasklet_action").contains(&ip),
        "{ip:#x}"
    );
    // preempt_count() then: serving a softirq (SOFTIRQ_OFFSET), not in a hardirq.
    let pc = common::read_u32(&r, "timer_mod_rearm_preempt_count", 0);
    assert_ne!(pc & 0x100, 0, "{pc:#x}");
    assert_eq!(pc & 0xf_0000, 0, "{pc:#x}");
    // Re-armed before the module was freed (its last re-arm's jiffy is the free's or
    // earlier), and the timer it queued is the one run_timer_softirq later met: the fault.
    let going = r
        .hooks
        .iter()
        .find(|h| h.hook == "module_going")
        .expect("exit ran");
    let unload = r
        .hooks
        .iter()
        .find(|h| h.hook == "module_unload")
        .expect("the module was freed");
    assert!(going.vtime_ns <= unload.vtime_ns);
    let rearmed_at = common::read_u64(&r, "timer_mod_rearm_jiffies", 0);
    let fault = r.snapshot.as_ref().unwrap().cpus[1].sregs.cr2;
    assert!(
        fault >= going.arg && fault < going.arg + 2 * 4096,
        "{fault:#x} in the module"
    );
    // The re-arm ran during exit (after the insmod task's 500 ms sleep, before the free).
    let tick = 1_000_000_000 / lockvmm_abi::HZ;
    let start = r
        .hooks
        .iter()
        .find(|h| h.hook == "task_start" && h.cpu == 1)
        .expect("insmod started");
    assert!(
        rearmed_at * tick >= start.vtime_ns + 500_000_000,
        "{rearmed_at}"
    );
    assert!(rearmed_at * tick <= going.vtime_ns, "{rearmed_at}");
    // It queued the timer a second out (`mod_timer(t, jiffies + HZ)`): the tick the live
    // timer ahead of it is due, the seed's shared bucket.
    let expires = common::read_u64(
        &r,
        "lab_timers",
        common::member(&r, "timer_list", "expires"),
    );
    assert_eq!(expires, rearmed_at + lockvmm_abi::HZ);

    let (_, r) = common::run("scenarios/timer_uaf.toml", None);
    assert_eq!(common::read_u32(&r, "timer_mod_rearms_after_del", 0), 0);
    assert_eq!(common::read_u64(&r, "timer_mod_rearm_ip", 0), 0);
}
