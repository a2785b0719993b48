//! Every shipped scenario on real KVM, its expectations checked from the snapshot, and the
//! replays' determinism (issue 5).
mod common;

use std::sync::{Mutex, OnceLock};

use lockvmm::lab::fingerprint::Fingerprint;

type Run = (
    lockvmm::RunResult,
    lockvmm::lab::Completed,
    std::path::PathBuf,
);

/// One complete run per scenario, shared by the tests of this file that only read it (every
/// shipped scenario's expectations, the timer_uaf facts, the first of each determinism triple):
/// a debug-build run with its vmcore costs seconds. Each scenario has its own cell, so two tests
/// wanting different scenarios do not wait on each other.
fn completed(rel: &str) -> &'static Run {
    static RUNS: Mutex<Vec<(String, &'static OnceLock<Run>)>> = Mutex::new(Vec::new());
    let cell = {
        let mut runs = RUNS.lock().unwrap_or_else(|e| e.into_inner());
        match runs.iter().find(|(r, _)| r == rel) {
            Some(&(_, cell)) => cell,
            None => {
                let cell: &'static OnceLock<Run> = Box::leak(Box::default());
                runs.push((rel.to_string(), cell));
                cell
            }
        }
    };
    cell.get_or_init(|| common::run_complete(rel))
}

fn shipped() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(common::root("scenarios"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| format!("scenarios/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    v.sort();
    v
}

#[test]
fn every_shipped_scenario_meets_its_expectations() {
    let all = shipped();
    assert!(all.len() >= 13, "{all:?}");
    for s in all {
        let (_, done, _) = completed(&s);
        assert!(
            !done.summary.expectations.is_empty(),
            "{s} declares no expectations"
        );
        let failed = done.failed_expectations();
        assert!(failed.is_empty(), "{s}: {failed:?}");
        assert_eq!(
            done.exit_status(),
            lockvmm::state::ExitStatus::Success,
            "{s}"
        );
    }
}

#[test]
fn timer_uaf_faults_on_unmapped_module_memory_under_the_base_lock() {
    let (r, done, _) = completed("scenarios/timer_uaf.toml");
    let report = done.report.as_ref().unwrap();
    let bt = &report.backtraces[0];
    // Somewhere down the stack: the page fault, taken in run_timer_softirq …
    let (_, fault) = *bt
        .exceptions()
        .iter()
        .find(|(e, _)| *e == "page_fault")
        .expect("a page-fault frame");
    assert!(common::range_of(r, "run_timer_softirq").contains(&fault.rip));
    // … on an address the snapshot's page tables do not map (the freed module).
    let snap = r.snapshot.as_ref().unwrap();
    let cr2 = snap.cpus[1].sregs.cr2;
    let mem = lockvmm::memory::FrozenMemory {
        phys: &snap.memory,
        cr3: snap.cpus[1].sregs.cr3,
    };
    assert!(
        cr2 >= lockvmm_abi::MODULES_VADDR && mem.translate(cr2).is_none(),
        "CR2 {cr2:#x}"
    );
    // The lock it spins on is its own timer base's, held by itself.
    let w = report.locks.iter().find(|w| w.cpu == 1).unwrap();
    assert_eq!(w.holder, Some(1));
    let base1 = common::elem_addr(r, "timer_bases", 1) + common::member(r, "timer_base", "lock");
    assert_eq!(w.lock, base1);
}

#[test]
fn replays_are_deterministic() {
    for s in ["scenarios/lbr_gfp.toml", "scenarios/timer_uaf.toml"] {
        // Three runs: the shared one (made by whichever test asked first) and two fresh ones.
        let prints: Vec<Fingerprint> = std::iter::once(Fingerprint::of(&completed(s).1.summary))
            .chain((1..3).map(|_| Fingerprint::of(&common::run_complete(s).1.summary)))
            .collect();
        for (i, p) in prints.iter().enumerate().skip(1) {
            assert_eq!(
                p,
                &prints[0],
                "{s}: run {i} differs: {:?}",
                p.first_difference(&prints[0])
            );
        }
    }
}

#[test]
fn a_users_abba_deadlock_is_found_as_a_cycle() {
    let (r, done, _) = common::run_complete("examples/abba_irq.toml");
    assert_eq!(
        done.exit_status(),
        lockvmm::state::ExitStatus::Success,
        "{:?}",
        done.failed_expectations()
    );
    let report = done.report.unwrap();
    let waits: Vec<(usize, &str, Option<usize>)> = report
        .locks
        .iter()
        .map(|w| (w.cpu, w.lock_name.as_str(), w.holder))
        .collect();
    assert_eq!(waits, [(1, "lock_b", Some(2)), (2, "lock_a", Some(1))]);
    // The lock words in guest memory agree: lab_locks[0] (lock_a) is held by CPU 1, [1] by CPU 2.
    let snap = r.snapshot.as_ref().unwrap();
    let mem = lockvmm::memory::FrozenMemory {
        phys: &snap.memory,
        cr3: snap.cpus[0].sregs.cr3,
    };
    let lock = |i| mem.u32(common::elem_addr(&r, "lab_locks", i)).unwrap();
    assert_eq!(common::owner(lock(0)), Some(1));
    assert_eq!(common::owner(lock(1)), Some(2));
}

#[test]
fn generic_ops_really_run_in_the_guest() {
    let (r, done, _) = common::run_complete("vmm/tests/scenarios/generic_ops.toml");
    common::assert_clean_shutdown(&done.summary.outcome);
    assert_eq!(
        common::read_u32(&r, "lab_softirqs", 0),
        1,
        "HI_SOFTIRQ ran once"
    );
    assert_eq!(
        common::read_u32(&r, "lab_locks", 0),
        0,
        "the lock was released"
    );
    // The armed timer fired: it is no longer queued (its hlist pprev is NULL again) …
    assert_eq!(common::read_u64(&r, "lab_timers", 8), 0);
    // … and both allocations went through allocate_slab, with interrupts as their GFP flags say.
    let slabs: Vec<_> = r
        .hooks
        .iter()
        .filter(|h| h.hook == "allocate_slab")
        .collect();
    assert_eq!(slabs.len(), 2);
    assert!(
        slabs
            .iter()
            .all(|h| (h.arg == 0xcc0) == (h.rflags & (1 << 9) != 0))
    );
}

#[test]
fn a_failed_expectation_exits_one_naming_the_observed_value() {
    let src = std::fs::read_to_string(common::root("scenarios/hog_hard.toml")).unwrap();
    let wrong = src.replace("cpu = 1\ncomm", "cpu = 0\ncomm");
    assert_ne!(src, wrong);
    let path = std::env::temp_dir().join(format!("lockvmm-wrong-{}.toml", std::process::id()));
    std::fs::write(&path, wrong).unwrap();
    let out = common::lockvmm()
        .args(["run", "-q", "--out"])
        .arg(std::env::temp_dir().join(format!("lockvmm-wrong-out-{}", std::process::id())))
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("FAIL"))
        .expect("a FAIL line");
    assert!(
        line.contains("cpu") && line.contains("expected 0") && line.contains("observed 1"),
        "{line}"
    );
}

#[test]
fn list_shows_every_scenario_with_its_description() {
    let out = common::lockvmm().arg("list").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for s in shipped() {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&s) && l.len() > s.len() + 10),
            "{s} missing from:\n{text}"
        );
    }
}

#[test]
fn host_actions_at_hooks_and_times() {
    let (r, done, _) = common::run_complete("vmm/tests/scenarios/actions.toml");
    common::assert_clean_shutdown(&done.summary.outcome);
    // Paused at task_start (time 0), resumed at 6 s, then 1 ms of work before the power-off.
    let start = r.hooks.iter().find(|h| h.hook == "task_start").unwrap();
    assert_eq!((start.cpu, start.vtime_ns), (1, 0));
    assert_eq!(r.vtime_ns, 6_001_000_000);
    assert!(r.lockups.is_empty(), "{:?}", r.lockups);
    // The injected PMU overflow is the only one (the watchdog's own period is 10 s).
    assert_eq!(r.pmu_nmis, vec![1, 0]);
    // The bare NMI reached CPU 0, which had nothing to attribute it to.
    assert!(
        r.console
            .contains("NMI received for unknown reason on CPU 0"),
        "{}",
        r.console
    );
}
