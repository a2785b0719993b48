//! `lockvmm explore` on real KVM: it finds the schedule that kills a workload, the file it
//! writes replays that failure (checked from the replayed machine's memory and registers), the
//! fixes survive the same space, and the search is deterministic (reruns and shards agree).
mod common;

use std::path::{Path, PathBuf};

use lockvmm::explore::results::ExploreResult;
use lockvmm::explore::space::Event;
use lockvmm::memory::FrozenMemory;
use lockvmm::state::{LockupKind, OutcomeClass};
use lockvmm_abi::eflags::X86_EFLAGS_IF;

fn out_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lockvmm-explore-{}-{name}", std::process::id()))
}

/// Runs `lockvmm explore` with `args`; returns its exit status, explore.json and the directory.
fn explore(name: &str, scenario: &str, args: &[&str]) -> (i32, ExploreResult, PathBuf) {
    let out = out_dir(name);
    let (status, result) = common::explore(scenario, &out, args);
    (status, result, out)
}

/// The (id, forced events, class, signature) of every schedule: what two searches must share.
fn tree(r: &ExploreResult) -> Vec<String> {
    r.schedules
        .iter()
        .map(|s| format!("{:?} {:?} {:?} {:?}", s.id, s.forced, s.class, s.signature))
        .collect()
}

/// Replays a found file in this process, as `lockvmm run` does.
fn replay(path: &Path) -> lockvmm::RunResult {
    lockvmm::run_scenario(&lockvmm::RunOptions::new(path))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .1
}

#[test]
fn lbr_gfp_race_finds_the_tick_in_allocate_slabs_window_and_replays_it() {
    let (code, r, out) = explore("lbr", "scenarios/lbr_gfp_race.toml", &[]);
    assert_eq!(code, 1, "a failing schedule exits 1");
    assert!(r.complete);
    // The recording, then 6 choice points on CPU 56 (2 task starts aside) × 3 events.
    assert_eq!(r.schedules.len(), 19);
    assert_eq!(r.classes.get("hard_lockup"), Some(&6));
    assert_eq!(r.classes.get("no_lockup"), Some(&13));
    assert!(
        !r.schedules[0].failed,
        "nothing fails without a forced event"
    );
    // Every schedule reached the occurrence it names (the second window on CPU 56 too).
    assert!(r.schedules.iter().all(|s| s.reached));
    assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
    let f = &r.failures[0];
    assert_eq!(f.replayed, Some(true));
    // The shortest: one tick on CPU 56 in the first window where it enables interrupts
    // holding a lock (allocate_slab's, under rq->__lock).
    assert_eq!(f.forced.len(), 1);
    assert_eq!(
        (f.forced[0].hook.as_str(), f.forced[0].cpu, f.forced[0].nth),
        ("irq_enable_locked", 56, 1)
    );
    // Every failing schedule got a tick into that window on CPU 56: forced, or due while a
    // delay held CPU 56 there. An NMI (which does not schedule) never fails.
    for s in r.schedules.iter().filter(|s| s.failed) {
        let e = &s.forced[0];
        assert_eq!(e.cpu, 56, "{s:?}");
        assert!(!matches!(e.event, Event::Nmi), "{s:?}");
    }
    assert!(
        r.schedules
            .iter()
            .filter(|s| s.forced.iter().any(|f| matches!(f.event, Event::Nmi)))
            .all(|s| !s.failed)
    );
    // found-1.toml replays: a hard LOCKUP on CPU 51, spinning with interrupts off on
    // runqueues[56].__lock, whose word names CPU 56.
    let rr = replay(&out.join("found-1.toml"));
    let first = rr.lockups.first().expect("a lockup");
    assert_eq!((first.cpu, first.kind), (51, LockupKind::Hard));
    assert_eq!(
        first.report.rip_function.as_deref(),
        Some("native_queued_spin_lock_slowpath")
    );
    assert_eq!(first.report.regs.rflags & X86_EFLAGS_IF, 0);
    let lock = common::elem_addr(&rr, "runqueues", 56) + common::member(&rr, "rq", "__lock");
    let a = common::analysis(&rr);
    let w = a.lock_waits().into_iter().find(|w| w.cpu == 51).unwrap();
    assert_eq!(w.lock, lock);
    let snap = rr.snapshot.as_ref().unwrap();
    let mem = FrozenMemory {
        phys: &snap.memory,
        cr3: snap.cpus[0].sregs.cr3,
    };
    assert_eq!(common::owner(mem.u32(lock).unwrap()), Some(56));
    // And the replay directory has the failure's report and vmcore.
    assert!(out.join("found-1/report.txt").is_file() && out.join("found-1/vmcore").is_file());
    // And the trace of what led to it: events of the spinning CPU and of the holder.
    let trace = std::fs::read_to_string(out.join("found-1/trace.txt")).expect("found-1/trace.txt");
    for cpu in [first.cpu, 56] {
        assert!(
            trace.contains(&format!("[{cpu:03}]")),
            "no events of CPU {cpu}"
        );
    }
    for f in ["trace.json", "report.html", "waitfor.dot"] {
        assert!(out.join("found-1").join(f).is_file(), "found-1/{f}");
    }
}

#[test]
fn the_lbr_gfp_fixes_survive_the_same_space() {
    for s in [
        "scenarios/lbr_gfp_atomic_race.toml",
        "scenarios/lbr_gfp_upstream_race.toml",
    ] {
        let (code, r, _) = explore("fix", s, &[]);
        assert_eq!(code, 0, "{s}: {:?}", r.failures);
        assert!(r.complete && r.failures.is_empty(), "{s}");
        // Not an empty search: the recording offered choice points (CPU 56 scheduling the LBR
        // event in among them), and each ran.
        assert!(r.schedules[0].children >= 3, "{s}: {:?}", r.schedules[0]);
        assert_eq!(r.schedules.len(), 1 + r.schedules[0].children, "{s}");
        assert!(
            r.schedules
                .iter()
                .any(|x| x.forced.iter().any(|f| f.hook == "lbr_add" && f.cpu == 56)),
            "{s}"
        );
    }
}

#[test]
fn abba_race_finds_the_deadlocking_order_and_consistent_order_has_none() {
    let (code, r, out) = explore("abba", "examples/abba_race.toml", &["--depth", "2"]);
    assert_eq!(code, 1);
    assert_eq!(r.failures.len(), 1);
    // The deadlocking order, and its extension (worker_b held after it took lock_b too).
    assert_eq!(r.failed(), 2);
    assert_eq!(r.classes.get("shutdown"), Some(&(r.schedules.len() - 2)));
    assert!(r.schedules.iter().filter(|s| s.failed).all(|s| {
        (s.forced[0].hook.as_str(), s.forced[0].cpu, s.forced[0].nth) == ("lock_acquired", 1, 1)
    }));
    let f = &r.failures[0];
    assert_eq!(f.signature.deadlock.as_deref(), Some("cycle"));
    // worker_a held up right after it took lock_a.
    assert_eq!(
        (f.forced[0].hook.as_str(), f.forced[0].cpu),
        ("lock_acquired", 1)
    );
    let rr = replay(&out.join("found-1.toml"));
    let mut cpus: Vec<usize> = rr.lockups.iter().map(|e| e.cpu).collect();
    cpus.sort_unstable();
    cpus.dedup();
    assert_eq!(cpus, [1, 2]);
    let snap = rr.snapshot.as_ref().unwrap();
    let mem = FrozenMemory {
        phys: &snap.memory,
        cr3: snap.cpus[0].sregs.cr3,
    };
    let lock = |i| mem.u32(common::elem_addr(&rr, "lab_locks", i)).unwrap();
    assert_eq!(
        common::owner(lock(0)),
        Some(1),
        "lock_a held by worker_a's CPU"
    );
    assert_eq!(
        common::owner(lock(1)),
        Some(2),
        "lock_b held by worker_b's CPU"
    );

    let (code, r, _) = explore(
        "ordered",
        "examples/abba_ordered_race.toml",
        &["--depth", "2"],
    );
    assert_eq!(code, 0, "{:?}", r.failures);
    assert!(r.complete && r.schedules.len() > 4);
    assert!(
        r.schedules
            .iter()
            .all(|s| s.class == OutcomeClass::Shutdown)
    );
}

#[test]
fn explore_is_deterministic_and_shards_add_up_to_the_whole() {
    let (_, a, _) = explore("det-a", "examples/abba_race.toml", &["--depth", "2"]);
    let (_, b, _) = explore("det-b", "examples/abba_race.toml", &["--depth", "2"]);
    assert_eq!(tree(&a), tree(&b));
    let (_, s0, d0) = explore(
        "shard0",
        "examples/abba_race.toml",
        &["--depth", "2", "--shard", "0/2"],
    );
    let (_, s1, d1) = explore(
        "shard1",
        "examples/abba_race.toml",
        &["--depth", "2", "--shard", "1/2"],
    );
    assert!(s0.schedules.len() < a.schedules.len() && s1.schedules.len() < a.schedules.len());
    let merged = out_dir("merged");
    let o = common::lockvmm()
        .args(["explore", "--out"])
        .arg(&merged)
        .arg("--merge")
        .args([&d0, &d1])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let m: ExploreResult =
        serde_json::from_str(&std::fs::read_to_string(merged.join("explore.json")).unwrap())
            .unwrap();
    assert_eq!(tree(&m), tree(&a));
    assert_eq!(m.classes, a.classes);
    assert!(merged.join("found-1.toml").is_file());
}

#[test]
fn merging_a_directory_without_results_is_bad_input() {
    let o = common::lockvmm()
        .args(["explore", "--out"])
        .arg(out_dir("merge-bad"))
        .arg("--merge")
        .arg(out_dir("no-such-shard"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("no-such-shard") && err.contains("explore.json"),
        "{err}"
    );
}

#[test]
fn a_bad_explore_section_is_one_line_naming_the_field() {
    let p = std::env::temp_dir().join(format!("lockvmm-explore-bad-{}.toml", std::process::id()));
    std::fs::write(
        &p,
        "description = \"x\"\n[machine]\nvcpus = 2\n[explore]\ncpus = [5]\n",
    )
    .unwrap();
    let o = common::lockvmm()
        .args(["explore", "--out"])
        .arg(out_dir("bad"))
        .arg(&p)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("explore.cpus") && err.contains(":5:"), "{err}");
}

/// Which CPU took `lock_acquired` first among `cpus`.
fn first_to_acquire(r: &lockvmm::RunResult, cpus: &[usize]) -> usize {
    r.hooks
        .iter()
        .find(|h| h.hook == "lock_acquired" && cpus.contains(&h.cpu))
        .map(|h| h.cpu)
        .unwrap()
}

#[test]
fn a_delay_at_lock_contention_changes_who_goes_first() {
    let rel = "vmm/tests/scenarios/explore_contended.toml";
    // The guest reports each contended spinlock, with the lock's address, when the space names
    // lock_contended: CPUs 2 and 3 both wait for lock_a, which CPU 1 holds.
    let (_, r) = common::run(rel, None);
    let lock_a = common::elem_addr(&r, "lab_locks", 0);
    let contended: Vec<(usize, u64)> = r
        .hooks
        .iter()
        .filter(|h| h.hook == "lock_contended")
        .map(|h| (h.cpu, h.arg))
        .collect();
    assert_eq!(contended, [(2, lock_a), (3, lock_a)]);
    assert_eq!(first_to_acquire(&r, &[2, 3]), 2);
    // Holding CPU 2 back at its contention lets CPU 3 take the lock first.
    let src = std::fs::read_to_string(common::root(rel)).unwrap();
    let p = std::env::temp_dir().join(format!("lockvmm-contended-{}.toml", std::process::id()));
    std::fs::write(
        &p,
        format!(
            "{src}\n[[action]]\nat_hook = \"lock_contended\"\ncpu = 2\nnth = 1\ndeliver = \"pause\"\n\n[[action]]\nat_time = 0.05\ncpu = 2\ndeliver = \"resume\"\n"
        ),
    )
    .unwrap();
    let delayed = replay(&p);
    common::assert_clean_shutdown(&delayed.outcome);
    assert_eq!(first_to_acquire(&delayed, &[2, 3]), 3);
    // explore offers both contentions as choices, and each order runs to a clean end.
    let (code, e, _) = explore("contended", rel, &["--depth", "2"]);
    assert_eq!(code, 0);
    assert_eq!(e.schedules[0].children, 2);
    assert_eq!(e.schedules.len(), 4);
    assert!(
        e.schedules
            .iter()
            .all(|s| s.class == OutcomeClass::Shutdown)
    );
}

/// The vtime of the first `hook` on `cpu` in a run.
fn hook_at(r: &lockvmm::RunResult, hook: &str, cpu: usize) -> Option<(u64, u64)> {
    r.hooks
        .iter()
        .find(|h| h.hook == hook && h.cpu == cpu)
        .map(|h| (h.vtime_ns, h.arg))
}

#[test]
fn timer_uaf_race_finds_the_unload_under_a_running_callback_and_del_timer_sync_survives_it() {
    let (code, r, out) = explore("timer-uaf", "scenarios/timer_uaf_race.toml", &[]);
    assert_eq!(code, 1, "a failing schedule exits 1");
    assert!(r.complete && r.schedules.iter().all(|s| s.reached));
    // The recording (callback at 1 s re-arms, rmmod's del_timer at 1.001 s deletes it) passes.
    // Of its 5 choice points and their 9 extensions, holding the running callback oopses
    // (alone or after another delay), and holding it and then rmmod between del_timer and the
    // free locks up; the other orders pass.
    assert!(!r.schedules[0].failed);
    assert_eq!(r.schedules.len(), 15);
    assert_eq!(r.classes.get("oops"), Some(&3), "{:?}", r.classes);
    assert_eq!(r.classes.get("hard_lockup"), Some(&1), "{:?}", r.classes);
    assert_eq!(r.classes.get("no_lockup"), Some(&11), "{:?}", r.classes);
    assert_eq!(r.failures.len(), 2);
    assert!(r.failures.iter().all(|f| f.replayed == Some(true)));
    lockup_order_replays(&out, &r.failures[1]);
    let f = &r.failures[0];
    assert_eq!(f.replayed, Some(true));
    assert_eq!(
        (f.forced[0].hook.as_str(), f.forced[0].cpu, f.forced[0].nth),
        ("timer_fn", 1, 1)
    );
    assert!(matches!(f.forced[0].event, Event::Delay { .. }));
    // found-1.toml replays: CPU 0 unloaded the module while CPU 1's callback was held, and the
    // callback's mod_timer then faulted on the timer's `flags` in the unmapped module memory.
    let rr = replay(&out.join("found-1.toml"));
    let lockvmm::state::Outcome::Fault(fault) = &rr.outcome else {
        panic!("{:?}", rr.outcome)
    };
    assert_eq!(
        OutcomeClass::of(&rr.outcome, &rr.lockups),
        OutcomeClass::Oops
    );
    assert_eq!(fault.cpu, 1);
    let (fn_at, timer) = hook_at(&rr, "timer_fn", 1).expect("the callback ran");
    let (unload_at, _) = hook_at(&rr, "module_unload", 0).expect("rmmod unloaded");
    assert!(fn_at < unload_at, "the callback started before the unload");
    assert_eq!(
        fault.cr2,
        timer + common::member(&rr, "timer_list", "flags")
    );
    assert_eq!(fault.rip_function.as_deref(), Some("lock_timer_base"));
    assert_eq!(common::read_u64(&rr, "timer_mod_base", 0), 0, "unloaded");

    // The fix: del_timer_sync waits for the running callback. The same space, nothing fails.
    let (code, r, _) = explore(
        "timer-uaf-fixed",
        "scenarios/timer_uaf_fixed_race.toml",
        &[],
    );
    assert_eq!(code, 0, "{:?}", r.failures);
    assert!(r.complete && r.schedules.len() == 15);
    assert!(
        r.schedules
            .iter()
            .all(|s| s.class == OutcomeClass::NoLockup)
    );
    assert!(
        r.schedules
            .iter()
            .any(|s| s.forced.iter().any(|f| f.hook == "timer_fn"))
    );
    assert!(r.schedules.iter().any(|s| {
        s.forced.len() == 2 && s.forced[0].hook == "timer_fn" && s.forced[1].hook == "module_going"
    }));
    // Replaying the failing schedule against the fix: the unload waits until the held
    // callback has run (and re-armed), then deletes the timer, so CPU 1's base holds no timer
    // in the freed module memory.
    let src = std::fs::read_to_string(out.join("found-1.toml")).unwrap();
    let fixed = src.replace("\"del_timer_without_sync\"", "\"correct\"");
    let fixed = &fixed[..fixed.find("\n[expect]").unwrap()];
    let p = out_dir("fixed-replay.toml");
    std::fs::write(&p, fixed).unwrap();
    let fr = replay(&p);
    assert_eq!(
        OutcomeClass::of(&fr.outcome, &fr.lockups),
        OutcomeClass::NoLockup
    );
    let (fn_at, timer) = hook_at(&fr, "timer_fn", 1).unwrap();
    let (unload_at, _) = hook_at(&fr, "module_unload", 0).unwrap();
    assert!(unload_at >= fn_at + 10_000_000, "{fn_at} {unload_at}");
    let base1 = common::elem_addr(&fr, "timer_bases", 1) - common::elem_addr(&fr, "timer_bases", 0);
    let first = common::read_u64(
        &fr,
        "timer_bases",
        base1 + common::member(&fr, "timer_base", "first"),
    );
    assert_ne!(first, timer, "the module's timer is not left queued");
}

/// The timer race's lockup order: the callback held on CPU 1 until rmmod's del_timer found the
/// timer not pending, then rmmod held before the free while the callback re-armed it; the
/// module memory is freed under a queued timer, whose expiry faults under CPU 1's timer base
/// lock, and the oops's fbcon cursor timer spins on that lock: a hard LOCKUP on CPU 1.
fn lockup_order_replays(out: &Path, f: &lockvmm::explore::results::Failure) {
    let hooks: Vec<(&str, usize)> = f.forced.iter().map(|x| (x.hook.as_str(), x.cpu)).collect();
    assert_eq!(hooks, [("timer_fn", 1), ("module_going", 0)]);
    let rr = replay(&out.join(&f.file));
    let first = rr.lockups.first().expect("a lockup");
    assert_eq!((first.cpu, first.kind), (1, LockupKind::Hard));
    let (fn_at, _) = hook_at(&rr, "timer_fn", 1).unwrap();
    let (going_at, _) = hook_at(&rr, "module_going", 0).unwrap();
    let (unload_at, _) = hook_at(&rr, "module_unload", 0).unwrap();
    assert!(fn_at < going_at && going_at <= unload_at);
    assert_eq!(common::read_u64(&rr, "timer_mod_base", 0), 0, "unloaded");
    let lock = common::elem_addr(&rr, "timer_bases", 1) + common::member(&rr, "timer_base", "lock");
    let w = common::analysis(&rr)
        .lock_waits()
        .into_iter()
        .find(|w| w.cpu == 1)
        .expect("CPU 1 waits for a lock");
    assert_eq!(w.lock, lock);
    // timer_uaf_race runs 3.10: a ticket word names no owner; `arch_spin_held` does.
    assert_eq!(
        common::analysis(&rr).spin_owner(lock),
        Some(1),
        "CPU 1 holds it"
    );
}
