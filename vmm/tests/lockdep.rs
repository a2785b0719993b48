//! Lockdep (`CONFIG_PROVE_LOCKING`) and `might_sleep` (`CONFIG_DEBUG_ATOMIC_SLEEP`) in the
//! guest, on real KVM. Each report kind is checked twice: its facts (the class, its usage, the
//! chain) against guest memory and the symbols (never against the scenario's text), and its
//! lines against the format of Linux's `kernel/locking/lockdep.c` and `kernel/sched/core.c`.
//! Each has a negative control: the fixed variant reports nothing, with lockdep still on.
mod common;

use lockvmm::RunResult;
use lockvmm::state::{Outcome, Splat};

/// The run's splats of `kind`.
fn splats<'a>(r: &'a RunResult, kind: &str) -> Vec<&'a Splat> {
    r.splats.iter().filter(|s| s.kind == kind).collect()
}

/// Linux's `debug_locks` after the run (lockdep turns it off with its first report).
fn debug_locks(r: &RunResult) -> bool {
    common::read_u32(r, "debug_locks", 0) & 0xff != 0
}

/// The index of the first line equal to `want` at or after `from`.
fn line_at(lines: &[String], from: usize, want: &str) -> usize {
    lines[from..]
        .iter()
        .position(|l| l == want)
        .map(|i| i + from)
        .unwrap_or_else(|| panic!("no line {want:?} after line {from}:\n{}", lines.join("\n")))
}

/// Linux's banner: blank, `=` rule, `WARNING: title`, kernel ident, `-` rule (the rules as
/// long as the title line, as in lockdep.c). Returns the index of the title line.
fn banner(lines: &[String], title: &str) -> usize {
    let n = "WARNING: ".len() + title.len();
    banner_ruled(lines, title, n)
}

/// [`banner`] with rules `n` wide (`print_bad_irq_dependency`'s are 53, its format has `%s`).
fn banner_ruled(lines: &[String], title: &str, n: usize) -> usize {
    let t = line_at(lines, 0, &format!("WARNING: {title}"));
    assert_eq!(lines[t - 1], "=".repeat(n), "the rule above {title}");
    assert_eq!(
        lines[t + 1],
        format!("{} #1 Not tainted", lockvmm_abi::UTS_RELEASE)
    );
    assert_eq!(lines[t + 2], "-".repeat(n), "the rule below {title}");
    t
}

/// `print_lock`: `%px (name){usage}-{w:w}, at: [<ip>] symbol+off/size` for `lock`.
fn assert_print_lock(line: &str, lock: u64, class: &str) {
    let head = format!("{lock:016x} ({class}){{");
    assert!(
        line.starts_with(&head) || line.contains(&format!(": {head}")),
        "{line}"
    );
    assert!(line.contains("}-{2:2}, at: [<ffffffff"), "{line}");
}

#[test]
fn lbr_gfp_on_a_debug_kernel_reports_might_sleep_and_inconsistent_rq_lock() {
    let (r, done, dir) = common::run_complete("scenarios/lbr_gfp_lockdep.toml");
    assert!(r.lockups.is_empty(), "no lockup without the forced tick");
    // might_sleep, from kmem_cache_alloc under intel_pmu_lbr_add with the rq lock held.
    let sleep = splats(&r, "sleep_in_atomic");
    assert_eq!(sleep.len(), 1, "{:?}", r.splats);
    let s = sleep[0];
    assert!(s.irqs_disabled == Some(true) && s.preempt_count.unwrap() >= 1);
    // The task is the one whose LBR event is scheduled in: the perf event hangs off it.
    let lines = common::console_lines(&r);
    let bug = lines
        .iter()
        .position(|l| l.starts_with("BUG: sleeping function called from invalid context at "))
        .expect("the might_sleep BUG line");
    assert!(
        lines[bug].starts_with("BUG: sleeping function called from invalid context at mm/slub.rs:")
    );
    assert_eq!(
        lines[bug + 1],
        format!(
            "in_atomic(): 1, irqs_disabled(): 1, non_block: 0, pid: {}, name: {}",
            s.pid, s.comm
        )
    );
    assert_eq!(
        lines[bug + 2],
        format!("preempt_count: {:x}, expected: 0", s.preempt_count.unwrap())
    );
    // The stack: kmem_cache_alloc called from intel_pmu_lbr_add (named by the guest's
    // kallsyms, 6.6's ` function+0xoff/0xsize`).
    let trace: Vec<&String> = lines[bug..].iter().take(30).collect();
    let k = trace
        .iter()
        .position(|l| l.starts_with(" kmem_cache_alloc+"))
        .unwrap_or_else(|| panic!("{trace:#?}"));
    assert!(
        trace[k + 1].starts_with(" intel_pmu_lbr_add+"),
        "{trace:#?}"
    );

    // Lockdep: rq->__lock used in hardirq (the tick), then held with interrupts enabled.
    let inc = splats(&r, "inconsistent_lock_state");
    assert_eq!(inc.len(), 1, "{:?}", r.splats);
    let l = inc[0];
    let rq_of_cpu =
        common::elem_addr(&r, "runqueues", l.cpu as u64) + common::member(&r, "rq", "__lock");
    assert_eq!(l.class, "&rq->__lock");
    assert_eq!(l.lock, rq_of_cpu, "the instance is the CPU's own rq lock");
    assert_eq!(
        (l.cpu, l.pid, l.comm.as_str()),
        (s.cpu, s.pid, s.comm.as_str())
    );
    assert_eq!(
        l.usage,
        Some(("IN-HARDIRQ-W".to_string(), "HARDIRQ-ON-W".to_string()))
    );
    let within = |trace: &[u64], f: &str| common::trace_passes(&r, trace, f);
    assert!(
        within(&l.prev_trace, "scheduler_tick"),
        "taken in hardirq by the tick"
    );
    assert!(
        within(&l.new_trace, "allocate_slab"),
        "irqs enabled in allocate_slab"
    );
    assert!(
        !debug_locks(&r),
        "lockdep turned itself off after its report"
    );
    // The lines, as print_usage_bug prints them.
    let t = banner(&lines, "inconsistent lock state");
    assert_eq!(
        lines[t + 3],
        "inconsistent {IN-HARDIRQ-W} -> {HARDIRQ-ON-W} usage."
    );
    assert_eq!(
        lines[t + 4],
        format!("{}/{} [HC0[0]:SC0[0]:HE0:SE1] takes:", l.comm, l.pid)
    );
    assert_print_lock(&lines[t + 5], rq_of_cpu, "&rq->__lock");
    assert_eq!(lines[t + 6], "{IN-HARDIRQ-W} state was registered at:");
    let p = line_at(&lines, t, " Possible unsafe locking scenario:");
    assert_eq!(lines[p + 4], "  lock(&rq->__lock);");
    assert_eq!(lines[p + 5], "  <Interrupt>");
    assert_eq!(lines[p + 6], "    lock(&rq->__lock);");
    assert_eq!(lines[p + 8], " *** DEADLOCK ***");
    let held = line_at(&lines, p, &format!("1 lock held by {}/{}:", l.comm, l.pid));
    assert!(lines[held + 1].starts_with(" #0: "));
    assert_print_lock(&lines[held + 1][5..], rq_of_cpu, "&rq->__lock");
    line_at(&lines, held, "stack backtrace:");
    // result.json lists both, with their facts.
    assert_eq!(done.summary.splats, r.splats);
    let json = std::fs::read_to_string(dir.join("result.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let kinds: Vec<&str> = v["splats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&"sleep_in_atomic") && kinds.contains(&"inconsistent_lock_state"));
}

#[test]
fn the_fixes_on_a_debug_kernel_report_nothing() {
    for f in [
        "scenarios/lbr_gfp_atomic_lockdep.toml",
        "scenarios/lbr_gfp_upstream_lockdep.toml",
    ] {
        let (_, r) = common::run(f, None);
        assert!(r.splats.is_empty(), "{f}: {:?}", r.splats);
        assert!(r.lockups.is_empty(), "{f}");
        // Lockdep ran the whole time and found nothing (it is still on).
        assert!(debug_locks(&r), "{f}: lockdep is on and never reported");
        assert!(!r.console.contains("WARNING:") && !r.console.contains("BUG: sleeping"));
    }
    // Without the [debug] knobs nothing of it runs: the bug's run has no splat either.
    let (_, r) = common::run("scenarios/lbr_gfp.toml", None);
    assert!(r.splats.is_empty() && !debug_locks(&r));
}

#[test]
fn abba_that_never_overlaps_reports_the_circular_dependency() {
    let (_, r) = common::run("examples/abba_lockdep.toml", None);
    common::assert_clean_shutdown(&r.outcome);
    assert!(r.lockups.is_empty());
    let c = splats(&r, "circular_dependency");
    assert_eq!(c.len(), 1, "{:?}", r.splats);
    let c = c[0];
    let a = common::elem_addr(&r, "lab_locks", 0);
    let b = common::elem_addr(&r, "lab_locks", 1);
    // The new lock is A, taken with B held; the chain from A leads back to B.
    assert_eq!(c.lock, a);
    assert_eq!(
        c.chain,
        vec![a, b],
        "lock_a -> lock_b exists; lock_b -> lock_a is new"
    );
    let (class_a, class_b) = (c.class.clone(), c.other_class.clone().unwrap());
    assert_ne!(class_a, class_b);
    let lines = common::console_lines(&r);
    let t = banner(&lines, "possible circular locking dependency detected");
    assert_eq!(
        lines[t + 3],
        format!("{}/{} is trying to acquire lock:", c.comm, c.pid)
    );
    assert_print_lock(&lines[t + 4], a, &class_a);
    assert_eq!(lines[t + 6], "but task is already holding lock:");
    assert_print_lock(&lines[t + 7], b, &class_b);
    line_at(&lines, t, "which lock already depends on the new lock.");
    let chain = line_at(
        &lines,
        t,
        "the existing dependency chain (in reverse order) is:",
    );
    assert!(
        lines[chain + 2].starts_with(&format!("-> #1 ({class_b}){{")),
        "{}",
        lines[chain + 2]
    );
    let zero = lines[chain..]
        .iter()
        .position(|l| l.starts_with("-> #0 "))
        .unwrap()
        + chain;
    assert!(lines[zero].starts_with(&format!("-> #0 ({class_a}){{")));
    let p = line_at(&lines, zero, " Possible unsafe locking scenario:");
    assert_eq!(lines[p + 2], "       CPU0                    CPU1");
    assert_eq!(lines[p + 4], format!("  lock({class_b});"));
    assert_eq!(
        lines[p + 5],
        format!("                               lock({class_a});")
    );
    assert_eq!(
        lines[p + 6],
        format!("                               lock({class_b});")
    );
    assert_eq!(lines[p + 7], format!("  lock({class_a});"));
    assert_eq!(lines[p + 9], " *** DEADLOCK ***");
    line_at(&lines, p, &format!("1 lock held by {}/{}:", c.comm, c.pid));
}

#[test]
fn abba_taken_in_one_order_reports_nothing() {
    let (_, r) = common::run("vmm/tests/scenarios/lockdep/abba_fixed.toml", None);
    common::assert_clean_shutdown(&r.outcome);
    assert!(r.splats.is_empty(), "{:?}", r.splats);
    assert!(debug_locks(&r));
}

#[test]
fn irq_unsafe_lock_reports_inconsistent_state_before_the_hard_lockup() {
    let (_, r) = common::run("examples/irq_unsafe_lock_lockdep.toml", None);
    let lockup = r.lockups.first().expect("the hard lockup still happens");
    let s = splats(&r, "inconsistent_lock_state");
    assert_eq!(s.len(), 1, "{:?}", r.splats);
    let s = s[0];
    assert!(s.vtime_ns < lockup.vtime_ns, "lockdep reports first");
    assert_eq!(s.cpu, lockup.cpu);
    assert_eq!(s.lock, common::elem_addr(&r, "lab_locks", 0));
    // Held with interrupts on in process context first, then taken in hardirq context.
    assert_eq!(
        s.usage,
        Some(("HARDIRQ-ON-W".to_string(), "IN-HARDIRQ-W".to_string()))
    );
    let within = |trace: &[u64], f: &str| common::trace_passes(&r, trace, f);
    assert!(within(&s.prev_trace, "lab_task"));
    assert!(within(&s.new_trace, "lab_irq_handler"));
    let lines = common::console_lines(&r);
    let t = banner(&lines, "inconsistent lock state");
    assert_eq!(
        lines[t + 3],
        "inconsistent {HARDIRQ-ON-W} -> {IN-HARDIRQ-W} usage."
    );
    assert_eq!(
        lines[t + 4],
        format!("{}/{} [HC1[1]:SC0[0]:HE0:SE1] takes:", s.comm, s.pid)
    );
    let p = line_at(&lines, t, " Possible unsafe locking scenario:");
    line_at(&lines, p, " *** DEADLOCK ***");
    // The diagnosis of the lockup names lockdep's finding.
    assert!(matches!(r.outcome, Outcome::Lockup { .. }));
}

#[test]
fn taking_a_held_lock_again_reports_recursive_locking() {
    let (_, r) = common::run("vmm/tests/scenarios/lockdep/recursive.toml", None);
    let s = splats(&r, "recursive_locking");
    assert_eq!(s.len(), 1, "{:?}", r.splats);
    let s = s[0];
    let lock = common::elem_addr(&r, "lab_locks", 0);
    assert_eq!(s.lock, lock);
    assert_eq!(s.other_class.as_deref(), Some(s.class.as_str()));
    let lines = common::console_lines(&r);
    let t = banner(&lines, "possible recursive locking detected");
    assert_eq!(
        lines[t + 3],
        format!("{}/{} is trying to acquire lock:", s.comm, s.pid)
    );
    assert_print_lock(&lines[t + 4], lock, &s.class);
    assert_eq!(lines[t + 6], "but task is already holding lock:");
    assert_print_lock(&lines[t + 7], lock, &s.class);
    let p = line_at(&lines, t, " Possible unsafe locking scenario:");
    assert_eq!(lines[p + 4], format!("  lock({});", s.class));
    assert_eq!(lines[p + 5], format!("  lock({});", s.class));
    assert_eq!(lines[p + 7], " *** DEADLOCK ***");
    assert_eq!(lines[p + 9], " May be due to missing lock nesting notation");
    let (_, ok) = common::run("vmm/tests/scenarios/lockdep/recursive_fixed.toml", None);
    common::assert_clean_shutdown(&ok.outcome);
    assert!(ok.splats.is_empty() && debug_locks(&ok), "{:?}", ok.splats);
}

#[test]
fn an_irq_safe_lock_taken_before_an_irq_unsafe_one_is_reported() {
    let (_, r) = common::run("vmm/tests/scenarios/lockdep/irq_safe_unsafe.toml", None);
    common::assert_clean_shutdown(&r.outcome);
    let s = splats(&r, "irq_safe_to_unsafe");
    assert_eq!(s.len(), 1, "{:?}", r.splats);
    let s = s[0];
    let (safe, unsafe_) = (
        common::elem_addr(&r, "lab_locks", 0),
        common::elem_addr(&r, "lab_locks", 1),
    );
    assert_eq!(s.lock, unsafe_, "the lock being acquired");
    assert_eq!(
        s.usage,
        Some(("IN-HARDIRQ-W".to_string(), "HARDIRQ-ON-W".to_string()))
    );
    let within = |trace: &[u64], f: &str| common::trace_passes(&r, trace, f);
    assert!(
        within(&s.prev_trace, "lab_irq_handler"),
        "irq-safe: taken in hardirq"
    );
    assert!(
        within(&s.new_trace, "lab_task"),
        "irq-unsafe: taken by a task, irqs on"
    );
    let (safe_name, unsafe_name) = (s.class.clone(), s.other_class.clone().unwrap());
    let lines = common::console_lines(&r);
    let t = banner_ruled(
        &lines,
        "HARDIRQ-safe -> HARDIRQ-unsafe lock order detected",
        53,
    );
    assert!(lines[t + 3].starts_with(&format!(
        "{}/{} [HC0[0]:SC0[0]:HE0:SE1] is trying to acquire:",
        s.comm, s.pid
    )));
    assert_print_lock(&lines[t + 4], unsafe_, &unsafe_name);
    assert_eq!(lines[t + 6], "and this task is already holding:");
    assert_print_lock(&lines[t + 7], safe, &safe_name);
    assert_eq!(lines[t + 8], "which would create a new lock dependency:");
    line_at(
        &lines,
        t,
        "but this new dependency connects a HARDIRQ-irq-safe lock:",
    );
    line_at(&lines, t, "... which became HARDIRQ-irq-safe at:");
    line_at(&lines, t, "to a HARDIRQ-irq-unsafe lock:");
    let p = line_at(&lines, t, " Possible interrupt unsafe locking scenario:");
    assert_eq!(lines[p + 4], format!("  lock({unsafe_name});"));
    assert_eq!(
        lines[p + 5],
        "                               local_irq_disable();"
    );
    assert_eq!(
        lines[p + 6],
        format!("                               lock({safe_name});")
    );
    assert_eq!(
        lines[p + 7],
        format!("                               lock({unsafe_name});")
    );
    assert_eq!(lines[p + 8], "  <Interrupt>");
    assert_eq!(lines[p + 9], format!("    lock({safe_name});"));
    let (_, ok) = common::run(
        "vmm/tests/scenarios/lockdep/irq_safe_unsafe_fixed.toml",
        None,
    );
    common::assert_clean_shutdown(&ok.outcome);
    assert!(ok.splats.is_empty() && debug_locks(&ok), "{:?}", ok.splats);
}

#[test]
fn releasing_an_untaken_mutex_reports_bad_unlock_balance() {
    let (_, r) = common::run("vmm/tests/scenarios/lockdep/bad_unlock.toml", None);
    let s = splats(&r, "bad_unlock_balance");
    assert_eq!(s.len(), 1, "{:?}", r.splats);
    let s = s[0];
    assert_eq!(s.lock, common::elem_addr(&r, "lab_mutexes", 0));
    let lines = common::console_lines(&r);
    let t = banner(&lines, "bad unlock balance detected!");
    assert_eq!(
        lines[t + 3],
        format!(
            "{}/{} is trying to release lock ({}) at:",
            s.comm, s.pid, s.class
        )
    );
    assert!(
        lines[t + 4].starts_with(&format!("[<{:016x}>] ", s.ip)),
        "{}",
        lines[t + 4]
    );
    assert_eq!(lines[t + 5], "but there are no more locks to release!");
    line_at(
        &lines,
        t,
        &format!("no locks held by {}/{}.", s.comm, s.pid),
    );
    let (_, ok) = common::run("vmm/tests/scenarios/lockdep/bad_unlock_fixed.toml", None);
    assert!(ok.splats.is_empty() && debug_locks(&ok), "{:?}", ok.splats);
}

#[test]
fn a_read_lock_is_recursive_only_in_interrupt_context() {
    // Queued rwlocks (`read_lock_is_recursive`): a task re-taking its read lock can deadlock
    // behind a waiting writer, so lockdep reports it; rwlock_irq.toml is exactly that.
    let text = std::fs::read_to_string(common::root("examples/rwlock_irq.toml")).unwrap();
    let p = std::env::temp_dir().join(format!(
        "lockvmm-rwlock-lockdep-{}.toml",
        std::process::id()
    ));
    std::fs::write(&p, format!("{text}\n[debug]\nlockdep = true\n")).unwrap();
    let (_, r) = lockvmm::run_scenario(&lockvmm::RunOptions::new(&p)).unwrap();
    let s = splats(&r, "recursive_locking");
    assert_eq!(s.len(), 1, "{:?}", r.splats);
    assert_eq!(s[0].lock, common::elem_addr(&r, "lab_rwlocks", 0));
    // A reader in hardirq context while a task holds the read lock is allowed.
    let text = std::fs::read_to_string(common::root(
        "vmm/tests/scenarios/language/rwlock_irq_reader.toml",
    ))
    .unwrap();
    std::fs::write(&p, format!("{text}\n[debug]\nlockdep = true\n")).unwrap();
    let (_, ok) = lockvmm::run_scenario(&lockvmm::RunOptions::new(&p)).unwrap();
    assert!(ok.splats.is_empty() && debug_locks(&ok), "{:?}", ok.splats);
    assert!(
        ok.hooks.iter().any(|h| h.hook == "mark"),
        "the irq reader got in"
    );
}

#[test]
fn a_lock_turning_irq_safe_after_leading_to_an_unsafe_one_is_an_inversion() {
    let (_, r) = common::run("vmm/tests/scenarios/lockdep/irq_inversion.toml", None);
    common::assert_clean_shutdown(&r.outcome);
    let s = splats(&r, "irq_lock_inversion");
    assert_eq!(s.len(), 1, "{:?}", r.splats);
    let s = s[0];
    let reg = common::elem_addr(&r, "lab_locks", 0);
    assert_eq!(s.lock, reg, "the lock whose state changed");
    let other = s.other_class.clone().unwrap();
    assert_ne!(other, s.class);
    let lines = common::console_lines(&r);
    let t = banner(&lines, "possible irq lock inversion dependency detected");
    assert_eq!(
        lines[t + 3],
        format!("{}/{} just changed the state of lock:", s.comm, s.pid)
    );
    assert_print_lock(&lines[t + 4], reg, &s.class);
    assert_eq!(
        lines[t + 5],
        "but this lock took another, HARDIRQ-unsafe lock in the past:"
    );
    assert!(lines[t + 6].starts_with(&format!(" ({other}){{")));
    let p = line_at(&lines, t, " Possible interrupt unsafe locking scenario:");
    assert_eq!(lines[p + 4], format!("  lock({other});"));
    assert_eq!(lines[p + 9], format!("    lock({});", s.class));
}
