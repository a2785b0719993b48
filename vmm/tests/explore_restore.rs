//! `lockvmm explore`'s snapshot and restore on real KVM: a schedule run from the snapshot (the
//! vCPUs, irqchip and dirtied pages written back, the host's side resumed) runs exactly as the
//! same schedule booted from scratch, whatever ran on the machine before; and an explore with
//! restore gives the same schedules and outcomes as one with `--reboot`.
mod common;

use lockvmm::explore::results::ExploreResult;
use lockvmm::explore::space::{Event, Forced};
use lockvmm::lab::{Prepared, prepare};
use lockvmm::machine::HookAction;
use lockvmm::state::OutcomeClass;
use lockvmm::{RunOptions, RunResult};

/// The scenario ready to run, with the interrupt-window hook on (as explore arms it).
fn prepared(rel: &str) -> Prepared {
    let mut p = prepare(&RunOptions::new(common::root(rel))).unwrap();
    p.knobs_mut().irq_enable_hook = true;
    p
}

fn boot(rel: &str, actions: &[HookAction]) -> RunResult {
    let mut p = prepared(rel);
    p.add_actions(actions.to_vec());
    p.run().unwrap().1
}

/// Everything a run shows of the guest: how it ended, every hook (time, CPU, argument, RIP,
/// RFLAGS), every lockup report, the console, virtual time, PMU interrupts, CPUs online.
fn digest(r: &RunResult) -> Vec<String> {
    let mut d = vec![
        format!("{:?}", OutcomeClass::of(&r.outcome, &r.lockups)),
        format!(
            "vtime {} online {:?} nmis {:?}",
            r.vtime_ns, r.online, r.pmu_nmis
        ),
        format!("lockups {:?}", r.lockups),
        format!("bad {:?} splats {:?}", r.bad_hypercalls, r.splats),
        r.console.clone(),
    ];
    d.extend(r.hooks.iter().map(|h| format!("{h:?}")));
    d
}

#[test]
fn a_restored_schedule_runs_exactly_as_the_same_schedule_booted() {
    let lbr = "scenarios/lbr_gfp_race.toml";
    // The tick in allocate_slab's window on CPU 56: a hard lockup, with NMIs, PMU overflows,
    // timer ticks and a panic on the way, all after the snapshot point.
    let tick = Forced {
        hook: "irq_enable_locked".into(),
        cpu: 56,
        nth: 1,
        vtime_ns: 0,
        event: Event::TimerTick,
    }
    .actions();
    let recording = boot(lbr, &[]);
    let booted = boot(lbr, &tick);
    assert_eq!(
        OutcomeClass::of(&booted.outcome, &booted.lockups),
        OutcomeClass::HardLockup
    );
    let grant = recording
        .first_hook_grant
        .expect("the recording passed hooks");
    assert!(
        grant > 1,
        "the snapshot point is past boot's first hand-outs"
    );
    let mut snap = prepared(lbr).snapshot_at_grant(grant).unwrap();
    // Alternate: each run starts from what the previous one left (a lockup, a clean end).
    let first = snap.run(tick.clone()).unwrap();
    let clean = snap.run(Vec::new()).unwrap();
    let again = snap.run(tick).unwrap();
    assert_eq!(digest(&first), digest(&booted));
    assert_eq!(digest(&clean), digest(&recording));
    assert_eq!(digest(&again), digest(&booted));
    let stats = snap.stats();
    assert_eq!(stats.restores, 3);
    assert!(
        stats.pages > 0,
        "the runs dirtied pages that were copied back"
    );
}

fn explore(name: &str, args: &[&str]) -> ExploreResult {
    let out = std::env::temp_dir().join(format!("lockvmm-restore-{}-{name}", std::process::id()));
    let args = [&["--depth", "2"], args].concat();
    let (status, result) = common::explore("examples/abba_race.toml", &out, &args);
    assert_eq!(status, 1, "the search finds abba_race's deadlock");
    result
}

#[test]
fn explore_with_restore_gives_every_schedule_the_outcome_reboot_gives() {
    let restored = explore("restore", &[]);
    let rebooted = explore("reboot", &["--reboot"]);
    let outcomes = |r: &ExploreResult| -> Vec<String> {
        r.schedules
            .iter()
            .map(|s| {
                format!(
                    "{:?} {:?} {:?} {:?} {} {} {}",
                    s.id, s.forced, s.class, s.signature, s.children, s.reached, s.vtime_ns
                )
            })
            .collect()
    };
    assert!(restored.schedules.len() > 5, "depth 2 is a tree");
    assert_eq!(outcomes(&restored), outcomes(&rebooted));
    assert_eq!(restored.classes, rebooted.classes);
    assert_eq!(
        (restored.mode.as_str(), rebooted.mode.as_str()),
        ("restore", "reboot")
    );
    // Every schedule but the recording (which finds the snapshot point) was restored.
    assert_eq!(restored.restores as usize, restored.schedules.len() - 1);
    assert!(restored.restored_pages > 0);
    assert_eq!(rebooted.restores, 0);
}
