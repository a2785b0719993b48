//! The scenario language's interrupt-context handlers, lock kinds and control ops, run for
//! real by the guest kernel and checked from captured state: the contexts on the stacks, the
//! lock words, the spinning-on table, the hooks the guest passed and when.
mod common;

use lockvmm::analysis::Analysis;
use lockvmm::machine::RunResult;
use lockvmm::state::locks::innermost;
use lockvmm::state::{Context, ExitStatus, Outcome, OutcomeClass};

/// The functions of the context that spins on `cpu`, and its wait.
fn spinning(a: &Analysis<'_>, cpu: usize) -> (Vec<String>, lockvmm::state::LockWait) {
    let bt = a.backtrace(cpu);
    let (ctx, _) = a.spinning_context(&bt).expect("a context in the slow path");
    let w = innermost(&a.lock_waits(), cpu).expect("a wait").clone();
    (ctx.functions, w)
}

/// (hook, arg, cpu, virtual ns) of every hook the run passed but task starts.
fn hooks(r: &RunResult) -> Vec<(String, u64, usize, u64)> {
    r.hooks
        .iter()
        .filter(|h| h.hook != "task_start")
        .map(|h| (h.hook.clone(), h.arg, h.cpu, h.vtime_ns))
        .collect()
}

#[test]
fn every_example_meets_its_expectations() {
    let mut names: Vec<String> = std::fs::read_dir(common::root("examples"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| format!("examples/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    names.sort();
    assert!(names.len() >= 4, "{names:?}");
    for n in names {
        let (_, done, _) = common::run_complete(&n);
        assert_eq!(
            done.exit_status(),
            ExitStatus::Success,
            "{n}: {:?}",
            done.failed_expectations()
        );
    }
}

#[test]
fn a_device_interrupt_handler_runs_in_hardirq_on_the_interrupted_cpu() {
    let (r, _, _) = common::run_complete("examples/irq_unsafe_lock.toml");
    let a = common::analysis(&r);
    let (functions, w) = spinning(&a, 1);
    // The handler's lock op runs from do_IRQ → handle_irq → lab_irq_handler, in hardirq.
    for f in ["lab_lock", "lab_irq_handler", "handle_irq", "do_IRQ"] {
        assert!(functions.iter().any(|x| x == f), "{f} not in {functions:?}");
    }
    assert_eq!((w.context, w.holder), (Context::Hardirq, Some(1)));
    assert_eq!(
        common::owner(a.mem.u32(w.lock).unwrap()),
        Some(1),
        "the task's lock word"
    );
}

#[test]
fn a_softirq_handler_runs_as_a_tasklet_on_interrupt_exit() {
    let (r, _, _) = common::run_complete("examples/softirq_vs_task.toml");
    let a = common::analysis(&r);
    let (functions, w) = spinning(&a, 1);
    for f in ["tasklet_action", "__do_softirq", "irq_exit"] {
        assert!(functions.iter().any(|x| x == f), "{f} not in {functions:?}");
    }
    assert_eq!((w.context, w.holder), (Context::Softirq, Some(1)));
    // Softirqs run with interrupts enabled: the spinning context's own IF is 1.
    let (ctx, _) = a.spinning_context(&a.backtrace(1)).unwrap();
    assert!(ctx.regs.irqs_enabled());
}

#[test]
fn an_nmi_handler_deadlocks_its_cpu_and_the_end_of_run_snapshot_shows_it() {
    let (r, done, _) = common::run_complete("examples/nmi_lock.toml");
    assert!(
        matches!(r.outcome, Outcome::TimeLimit { .. }),
        "{:?}",
        r.outcome
    );
    assert!(
        r.lockups.is_empty(),
        "nothing can detect a CPU stuck in NMI"
    );
    let a = common::analysis(&r);
    let (functions, w) = spinning(&a, 1);
    for f in ["lab_nmi_handler", "nmi_handle", "do_nmi"] {
        assert!(functions.iter().any(|x| x == f), "{f} not in {functions:?}");
    }
    assert_eq!((w.context, w.holder), (Context::Nmi, Some(1)));
    let report = done
        .report
        .as_ref()
        .expect("the end-of-run snapshot's report");
    assert_eq!(report.deadlock.map(|d| d.name()), Some("self_nmi"));
}

#[test]
fn smp_call_function_single_with_wait_spins_in_csd_lock_wait() {
    let (r, _, _) = common::run_complete("vmm/tests/scenarios/language/csd_deadlock.toml");
    let a = common::analysis(&r);
    // The caller (CPU 1, holding L with interrupts off) waits for CPU 2 to run the call …
    let caller = a.backtrace(1);
    assert!(
        caller.functions().contains(&"csd_lock_wait"),
        "{:?}",
        caller.functions()
    );
    assert!(caller.functions().contains(&"smp_call_function_single"));
    // … which spins on L with interrupts off, so its IPI is never taken.
    let w = innermost(&a.lock_waits(), 2).unwrap().clone();
    assert_eq!(w.holder, Some(1));
    assert!(
        !r.hooks.iter().any(|h| h.hook == "mark"),
        "the remote call never ran"
    );
    let mut cpus: Vec<usize> = r.lockups.iter().map(|e| e.cpu).collect();
    cpus.sort();
    assert_eq!(cpus, [1, 2]);
}

#[test]
fn spin_lock_bh_keeps_the_softirq_out_until_the_unlock() {
    let (r, done, _) = common::run_complete("vmm/tests/scenarios/language/bh_fixed.toml");
    assert_eq!(
        done.exit_status(),
        ExitStatus::Success,
        "{:?}",
        done.failed_expectations()
    );
    let h = hooks(&r);
    let released = h.iter().position(|x| x.0 == "lock_released").unwrap();
    let tasklet = h.iter().rposition(|x| x.0 == "lock_acquired").unwrap();
    assert!(
        tasklet > released,
        "the tasklet took the lock after the task let go: {h:?}"
    );
    assert_eq!(h[tasklet].2, 1, "on the task's CPU");
}

#[test]
fn a_scenario_lock_can_be_a_kernel_lock() {
    let (r, done, _) = common::run_complete("vmm/tests/scenarios/language/kernel_lock_alias.toml");
    let rq1 = common::elem_addr(&r, "runqueues", 1) + common::member(&r, "rq", "__lock");
    let a = common::analysis(&r);
    assert_eq!(
        common::owner(a.mem.u32(rq1).unwrap()),
        Some(2),
        "CPU 2 holds rq 1's lock"
    );
    // CPU 1's tick spins on it in scheduler_tick, and the report calls it by its scenario name.
    let w = innermost(&a.lock_waits(), 1).unwrap().clone();
    assert_eq!(
        (w.lock, w.context, w.holder),
        (rq1, Context::Hardirq, Some(2))
    );
    // (The tick's watchdog hrtimer wakes its thread: try_to_wake_up takes the rq lock.)
    let f = a.backtrace(1);
    assert!(
        f.functions().contains(&"raw_spin_rq_lock_nested"),
        "{:?}",
        f.functions()
    );
    assert!(
        f.functions().contains(&"hrtimer_interrupt"),
        "{:?}",
        f.functions()
    );
    let report = done.report.as_ref().unwrap();
    assert!(
        report
            .locks
            .iter()
            .any(|l| l.lock == rq1 && l.lock_name == "rq1"),
        "{:?}",
        report.locks
    );
}

#[test]
fn start_at_trylock_timer_and_nmi_handlers_run_when_and_where_they_should() {
    let (r, done, _) = common::run_complete("vmm/tests/scenarios/language/timing_and_trylock.toml");
    assert_eq!(done.summary.class, OutcomeClass::Shutdown);
    let h = hooks(&r);
    let at = |hook: &str, arg: u64| {
        h.iter()
            .find(|x| x.0 == hook && x.1 == arg)
            .unwrap_or_else(|| panic!("{hook} {arg}: {h:?}"))
            .clone()
    };
    // Labels are numbered in order of first use: started, timer ran, nmi ran.
    let started = at("mark", 0);
    assert_eq!(
        (started.2, started.3),
        (2, 2_000_000_000),
        "start_at = 2 s on CPU 2"
    );
    // The first trylock (at 2 s, L held by CPU 1 until 3 s) failed: CPU 2 took L only later.
    let taken_by_2: Vec<_> = h
        .iter()
        .filter(|x| x.0 == "lock_acquired" && x.2 == 2)
        .collect();
    assert_eq!(taken_by_2.len(), 1, "{h:?}");
    assert!(taken_by_2[0].3 >= at("lock_released", 0).3);
    // The timer callback ran about 100 ms after it was armed, the NMI handler on CPU 2.
    let nmi = at("mark", 2);
    let timer = at("mark", 1);
    assert_eq!(nmi.2, 2);
    assert!(timer.3 >= taken_by_2[0].3 + 100_000_000, "{h:?}");
}

#[test]
fn touch_nmi_watchdog_keeps_the_hard_lockup_detector_quiet() {
    let (r, done, _) = common::run_complete("vmm/tests/scenarios/language/touch_nmi.toml");
    assert!(
        r.lockups.is_empty(),
        "{:?}",
        r.lockups.first().map(|e| &e.message)
    );
    assert_eq!(
        done.exit_status(),
        ExitStatus::Success,
        "{:?}",
        done.failed_expectations()
    );
    // The control: the same loop without the touch is a hard lockup.
    let (r, _, _) = common::run_complete("vmm/tests/scenarios/language/no_touch.toml");
    assert_eq!(r.lockups.first().map(|e| e.cpu), Some(1));
}

#[test]
fn repeat_loops_nest() {
    let src = r#"
description = "repeat"
[machine]
vcpus = 2
[[lock]]
name = "L"
[[task]]
comm = "t"
cpu = 1
ops = [
  { op = "repeat", times = 3, ops = [
      { op = "mark", label = "outer" },
      { op = "repeat", times = 2, ops = [ { op = "lock", lock = "L" }, { op = "unlock", lock = "L" } ] },
  ] },
  { op = "mark", label = "done" },
]
"#;
    let path = std::env::temp_dir().join(format!("lockvmm-repeat-{}.toml", std::process::id()));
    std::fs::write(&path, src).unwrap();
    let (_, r) = common::run(path.to_str().unwrap(), None);
    let seq: Vec<(String, u64)> = hooks(&r).into_iter().map(|(h, a, _, _)| (h, a)).collect();
    let inner = [("lock_acquired", 0), ("lock_released", 0)].repeat(2);
    let mut want = Vec::new();
    for _ in 0..3 {
        want.push(("mark", 0));
        want.extend(inner.iter().copied());
    }
    want.push(("mark", 1));
    let want: Vec<(String, u64)> = want.into_iter().map(|(h, a)| (h.to_string(), a)).collect();
    assert_eq!(seq, want);
}

#[test]
fn handler_and_reference_mistakes_are_errors_at_their_line() {
    let head = "description = \"x\"\n[machine]\nvcpus = 2\n[[lock]]\nname = \"L\"\n";
    let cases = [
        (
            "[[handler]]\nname = \"h\"\ncontext = \"softirq\"\nops = []\n[[task]]\ncomm = \"t\"\ncpu = 1\nops = [{ op = \"send_ipi\", cpu = 1, handler = \"h\" }]\n",
            13,
            "runs in softirq context; this needs a hardirq handler",
        ),
        (
            "[[handler]]\nname = \"h\"\ncontext = \"hardirq\"\nops = [{ op = \"sleep\", ms = 1 }]\n",
            9,
            "`sleep` cannot run in a hardirq handler",
        ),
        (
            "[[action]]\nat_time = 1.0\ncpu = 1\ndeliver = \"irq\"\n",
            6,
            "deliver = \"irq\" needs `handler`",
        ),
        (
            "[[task]]\ncomm = \"t\"\ncpu = 1\nops = [{ op = \"raise_softirq\", handler = \"nope\" }]\n",
            9,
            "no handler named `nope`",
        ),
        (
            "[[task]]\ncomm = \"t\"\ncpu = 1\nops = [{ op = \"repeat\", times = 2, ops = [{ op = \"hog\" }] }]\n",
            9,
            "inside a repeat never returns",
        ),
    ];
    for (body, line, want) in cases {
        let err =
            lockvmm::LoadedScenario::parse(std::path::Path::new("s.toml"), format!("{head}{body}"))
                .err()
                .unwrap_or_else(|| panic!("accepted: {body}"))
                .to_string();
        assert!(err.starts_with(&format!("s.toml:{line}:")), "{err}");
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn the_irq_enable_hook_finds_seed_000s_window_without_naming_it() {
    let (r, _, _) =
        common::run_complete("vmm/tests/scenarios/language/lbr_gfp_irq_enable_hook.toml");
    // The first interrupt enable on CPU 56 with a spinlock held is allocate_slab's, under its
    // rq lock: the tick delivered there is the seed's hard lockup.
    let first = r
        .hooks
        .iter()
        .find(|h| h.hook == "irq_enable_locked" && h.cpu == 56)
        .expect("the hook fired on CPU 56");
    assert!(first.arg >= 1, "locks held: {}", first.arg);
    assert_eq!(r.lockups.first().map(|e| e.cpu), Some(51));
    let a = common::analysis(&r);
    let rq56 = common::elem_addr(&r, "runqueues", 56) + common::member(&r, "rq", "__lock");
    assert_eq!(common::owner(a.mem.u32(rq56).unwrap()), Some(56));
    assert!(a.backtrace(56).functions().contains(&"allocate_slab"));
}

#[test]
fn a_task_blocked_on_a_mutex_is_reported_by_the_hung_task_detector() {
    let (r, done, _) = common::run_complete("examples/hung_task_mutex.toml");
    let first = r.lockups.first().expect("a hung-task report");
    assert_eq!(first.kind, lockvmm::state::LockupKind::HungTask);
    // Two looks of khungtaskd, each `hung_task_timeout_secs` (10 s) apart.
    assert!(
        (10_000_000_000..=30_000_000_000).contains(&first.vtime_ns),
        "{}",
        first.vtime_ns
    );
    let a = common::analysis(&r);
    let task = first.task.expect("the reported task");
    assert_eq!(a.task_at(task).unwrap().comm, "waiter");
    assert_eq!(
        a.task_state(task),
        Some(lockvmm_abi::task::TaskState::Uninterruptible)
    );
    let mutex = common::elem_addr(&r, "lab_mutexes", 0);
    assert_eq!(a.blocked_on(task), Some(mutex));
    let owner = a.mutex_owner(mutex).expect("an owner");
    assert_eq!(a.task_at(owner).unwrap().comm, "owner");
    // The report shows where the task went to sleep.
    let report = done.report.as_ref().unwrap();
    let bt = &report.hung_tasks[0];
    assert!(
        bt.functions().contains(&"__mutex_lock_slowpath"),
        "{:?}",
        bt.functions()
    );
    assert!(
        report.diagnosis.contains("config_mutex"),
        "{}",
        report.diagnosis
    );
}

#[test]
fn a_process_context_reader_queues_behind_a_waiting_writer_and_deadlocks() {
    let (r, _, _) = common::run_complete("examples/rwlock_irq.toml");
    let a = common::analysis(&r);
    let waits = a.lock_waits();
    let rw = common::elem_addr(&r, "lab_rwlocks", 0);
    let writer = innermost(&waits, 2).unwrap();
    let reader = innermost(&waits, 1).unwrap();
    // The writer waits for the reader (which holds it for reading) …
    assert_eq!((writer.lock, writer.holder), (rw, Some(1)));
    let readers = common::member(&r, "qrwlock", "readers");
    assert_eq!(
        a.mem.read(rw + readers + 1, 1).unwrap()[0],
        1,
        "CPU 1 holds one read lock"
    );
    // … and the reader's second read_lock queues on the wait lock the writer holds.
    assert_eq!(reader.holder, Some(2));
    assert!(
        reader.lock > rw && reader.lock < rw + 64,
        "the rwlock's own wait_lock"
    );
    // The same second read_lock from an interrupt handler gets through (the writer only waits).
    let (r, done, _) = common::run_complete("vmm/tests/scenarios/language/rwlock_irq_reader.toml");
    assert!(r.lockups.is_empty());
    assert_eq!(
        done.exit_status(),
        ExitStatus::Success,
        "{:?}",
        done.failed_expectations()
    );
    let irq_reader = r
        .hooks
        .iter()
        .find(|h| h.hook == "mark")
        .expect("the irq reader ran");
    assert_eq!(irq_reader.cpu, 1);
}

#[test]
fn bugs_linux_prints_without_lockdep_are_printed() {
    let (_, r) = common::run("vmm/tests/scenarios/language/debug_checks.toml", None);
    // The console is what the guest printed; each line names the task that did it.
    for want in [
        "BUG: scheduling while atomic: sleeper/980/0x00000002",
        "BUG: spinlock already unlocked on CPU#2, unlocker/981",
        "note: leaker[982] exited with preempt_count 1",
    ] {
        assert!(r.console.contains(want), "`{want}` missing:\n{}", r.console);
    }
    // do_exit reset the leaker's count: its CPU did not go on to schedule while atomic.
    assert!(!r.console.contains("scheduling while atomic: leaker"));
}

#[test]
fn hung_task_panic_panics_and_snapshot_at_freezes_an_undetected_run() {
    // hung_task_panic: the same example, but the report ends the machine.
    let src = std::fs::read_to_string(common::root("examples/hung_task_mutex.toml")).unwrap();
    let src = src.replace(
        "hung_task_timeout_secs = 10",
        "hung_task_timeout_secs = 10\nhung_task_panic = true",
    );
    let path = std::env::temp_dir().join(format!("lockvmm-hungpanic-{}.toml", std::process::id()));
    std::fs::write(&path, src).unwrap();
    let (_, r) = common::run(path.to_str().unwrap(), None);
    let Outcome::Panic { message, .. } = &r.outcome else {
        panic!("{:?}", r.outcome)
    };
    assert_eq!(message, "hung_task: blocked tasks");
    // --snapshot-at: a snapshot of a run nothing detected, at the asked-for virtual time.
    let mut opts = lockvmm::RunOptions::new(common::root("scenarios/hog_soft.toml"));
    opts.snapshot_at = Some(5_000_000_000);
    let (_, r) = lockvmm::run_scenario(&opts).unwrap();
    let snap = r.snapshot.as_ref().expect("the asked-for snapshot");
    assert!(snap.reason.starts_with("requested at"), "{}", snap.reason);
    assert_eq!(snap.vtime_ns, 5_000_000_000);
    assert!(snap.cpus.iter().all(|c| c.captured));
    // The run went on: the hog's soft lockup was still detected after the snapshot.
    assert!(r.lockups.iter().any(|e| e.vtime_ns > snap.vtime_ns));
}

#[test]
fn the_new_expectations_fail_when_the_run_contradicts_them() {
    // irq_unsafe_lock's run, checked against wrong values of every new expectation.
    let src = std::fs::read_to_string(common::root("examples/irq_unsafe_lock.toml")).unwrap();
    let head = &src[..src.find("[expect]").unwrap()];
    let wrong = format!(
        "{head}[expect]\ncontext = \"softirq\"\ndeadlock = \"cycle\"\ndetected_before = 5.0\n\
         detected_after = 11.0\nreports = 2\nquiet_cpus = [1]\nmessage = \"soft lockup\"\n\
         hung_tasks = [\"dev_ioctl\"]\n"
    );
    let path = std::env::temp_dir().join(format!("lockvmm-wrong-{}.toml", std::process::id()));
    std::fs::write(&path, wrong).unwrap();
    let out = common::lockvmm()
        .args(["run", "--out"])
        .arg(std::env::temp_dir().join(format!("lockvmm-wrong-out-{}", std::process::id())))
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for what in [
        "context",
        "deadlock",
        "detected_before",
        "detected_after",
        "reports",
        "quiet_cpus",
        "message",
        "hung_tasks",
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains("expect FAIL") && l.contains(what)),
            "{what} did not fail:\n{text}"
        );
    }
}
