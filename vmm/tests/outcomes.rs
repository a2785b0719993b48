//! Outcomes that must not pass or read falsely: one vocabulary for result.json and `[expect]`,
//! a stuck machine is never `no_lockup`, a lockup followed by a power-off is not a success,
//! runs that go on past a lockup keep its report, stalls leave a report and a vmcore, and the
//! fixed scenarios prove they ran the path that used to fail.
mod common;

use lockvmm::state::{ExitStatus, LockupKind, Outcome, OutcomeClass};

#[test]
fn a_machine_where_every_cpu_is_stuck_is_all_waiting_never_no_lockup() {
    let rel = "vmm/tests/scenarios/diagnosis/all_stuck_no_nmi.toml";
    let (r, done, _) = common::run_complete(rel);
    assert!(
        matches!(r.outcome, Outcome::AllWaiting { .. }),
        "{:?}",
        r.outcome
    );
    assert!(r.lockups.is_empty(), "the NMI watchdog is off");
    assert_eq!(done.summary.class, OutcomeClass::AllWaiting);
    assert_eq!(
        done.exit_status(),
        ExitStatus::Success,
        "it expects all_waiting"
    );
    // The same run expecting no_lockup fails, naming what was observed.
    let src = std::fs::read_to_string(common::root(rel)).unwrap();
    let wrong = std::env::temp_dir().join(format!("lockvmm-nolockup-{}.toml", std::process::id()));
    std::fs::write(&wrong, src.replace("all_waiting", "no_lockup")).unwrap();
    let out = common::lockvmm()
        .args(["run", "-q", "--out"])
        .arg(std::env::temp_dir().join(format!("lockvmm-nolockup-out-{}", std::process::id())))
        .arg(&wrong)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("expected no_lockup") && text.contains("observed all_waiting"),
        "{text}"
    );
}

#[test]
fn result_json_and_expect_speak_one_vocabulary() {
    for s in [
        "scenarios/lbr_gfp.toml",
        "scenarios/boot.toml",
        "scenarios/hog_soft.toml",
    ] {
        let (r, done, dir) = common::run_complete(s);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).unwrap())
                .unwrap();
        let class = json["class"].as_str().unwrap();
        assert_eq!(class, OutcomeClass::of(&r.outcome, &r.lockups).name());
        let verdict = done
            .summary
            .expectations
            .iter()
            .find(|v| v.what == "outcome")
            .unwrap();
        assert_eq!(verdict.expected, class, "{s}");
        assert!(
            verdict.observed.starts_with(class),
            "{s}: {}",
            verdict.observed
        );
    }
}

#[test]
fn a_lockup_followed_by_a_power_off_keeps_its_report_and_fails() {
    let (r, done, dir) =
        common::run_complete("vmm/tests/scenarios/diagnosis/lockup_then_poweroff.toml");
    assert!(
        matches!(r.outcome, Outcome::Shutdown { status: 0 }),
        "{:?}",
        r.outcome
    );
    assert_eq!(r.lockups[0].kind, LockupKind::Hard);
    assert_eq!(done.summary.class, OutcomeClass::HardLockup);
    assert_eq!(done.exit_status(), ExitStatus::GuestFailed);
    let report = done.report.as_ref().expect("the lockup's report");
    assert_eq!(report.cpu, r.lockups[0].cpu);
    assert!(dir.join("report.txt").is_file() && dir.join("vmcore").is_file());
}

#[test]
fn a_run_that_goes_on_past_lockups_reports_the_first_and_lists_every_detection() {
    let (r, done, _) = common::run_complete("scenarios/hog_all_cpus.toml");
    assert!(r.lockups.len() > 1, "{} detections", r.lockups.len());
    let report = done.report.as_ref().expect("a report");
    assert_eq!(report.cpu, r.lockups[0].cpu);
    let listed: Vec<(usize, u64)> = report
        .detections
        .iter()
        .map(|d| (d.cpu, d.vtime_ns))
        .collect();
    let recorded: Vec<(usize, u64)> = r.lockups.iter().map(|e| (e.cpu, e.vtime_ns)).collect();
    assert_eq!(listed, recorded);
    // The comm expectation is checked against the lockup's CPU, not the end of the run.
    let comm = done.summary.expectations.iter().find(|v| v.what == "comm");
    if let Some(v) = comm {
        assert!(v.ok, "{v:?}");
    }
    assert!(report.render().contains("Lockups detected"));
}

#[test]
fn a_stall_leaves_a_report_and_a_vmcore() {
    // A 1 s stall timeout, as faults.rs's stall test: the default 30 s is only wall time waited.
    let (r, done, dir) = common::run_complete_with("vmm/tests/scenarios/stall.toml", |o| {
        o.stall_timeout = std::time::Duration::from_secs(1)
    });
    let Outcome::Fault(f) = &r.outcome else {
        panic!("{:?}", r.outcome)
    };
    assert!(matches!(f.fault, lockvmm::state::FaultKind::Stall { .. }));
    assert_eq!(done.report.as_ref().expect("a report").cpu, f.cpu);
    assert!(dir.join("vmcore").is_file() && dir.join("report.txt").is_file());
    assert_eq!(done.summary.class, OutcomeClass::Fault);
}

#[test]
fn the_fixed_scenarios_prove_they_ran_the_path_that_used_to_fail() {
    // GFP_ATOMIC: CPU 56 scheduled the LBR event in and allocated with interrupts off, every time.
    let (r, done, _) = common::run_complete("scenarios/lbr_gfp_atomic.toml");
    assert_eq!(
        done.exit_status(),
        ExitStatus::Success,
        "{:?}",
        done.failed_expectations()
    );
    let on56 = |hook: &'static str| -> Vec<&lockvmm::state::HookEvent> {
        r.hooks
            .iter()
            .filter(|h| h.hook == hook && h.cpu == 56)
            .collect()
    };
    assert!(!on56("lbr_add").is_empty());
    assert!(!on56("allocate_slab").is_empty());
    assert!(
        on56("allocate_slab")
            .iter()
            .all(|h| h.rflags & lockvmm_abi::eflags::X86_EFLAGS_IF == 0)
    );
    assert!(r.lockups.is_empty());
    // The module of the fixed seed-002 scenario loaded and was unloaded.
    let (r, done, _) = common::run_complete("scenarios/timer_uaf_fixed.toml");
    assert_eq!(
        done.exit_status(),
        ExitStatus::Success,
        "{:?}",
        done.failed_expectations()
    );
    let count = |hook: &str| r.hooks.iter().filter(|h| h.hook == hook).count();
    assert_eq!((count("module_load"), count("module_unload")), (1, 1));
}

#[test]
fn faults_are_diagnosed_as_faults_not_lockups() {
    for rel in [
        "vmm/tests/scenarios/triple_fault.toml",
        "vmm/tests/scenarios/fault_unmapped.toml",
    ] {
        let (r, done, _) = common::run_complete(rel);
        let Outcome::Fault(f) = &r.outcome else {
            panic!("{rel}: {:?}", r.outcome)
        };
        let d = &done.report.as_ref().expect("a report").diagnosis;
        assert!(d.contains(&f.headline()), "{rel}: {d}");
        assert!(!d.contains("lockup"), "{rel}: {d}");
    }
}
