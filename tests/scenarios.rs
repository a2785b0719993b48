//! Every shipped scenario on real KVM, its expectations checked from the snapshot, and the
//! replays' determinism (issue 5).
mod common;

use lockvmm::runner::Fingerprint;

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
        let (_, done, _) = common::run_complete(&s);
        assert!(
            !done.summary.expectations.is_empty(),
            "{s} declares no expectations"
        );
        let failed = done.failed_expectations();
        assert!(failed.is_empty(), "{s}: {failed:?}");
        assert_eq!(done.exit_code(), 0, "{s}");
    }
}

#[test]
fn timer_uaf_faults_on_unmapped_module_memory_under_the_base_lock() {
    let (r, done, _) = common::run_complete("scenarios/timer_uaf.toml");
    let report = done.report.as_ref().unwrap();
    let bt = &report.backtraces[0];
    // Somewhere down the stack: the page fault, taken in run_timer_softirq …
    let (_, fault) = *bt
        .exceptions()
        .iter()
        .find(|(e, _)| *e == "page_fault")
        .expect("a page-fault frame");
    assert!(common::range_of(&r, "run_timer_softirq").contains(&fault.rip));
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
    let base1 = r.kernel.symbols.addr_of("timer_bases").unwrap()
        + r.kernel.symbols.get("timer_bases").unwrap().size / 255;
    assert_eq!(w.lock, base1);
}

#[test]
fn replays_are_deterministic() {
    for s in ["scenarios/lbr_gfp.toml", "scenarios/timer_uaf.toml"] {
        let prints: Vec<Fingerprint> = (0..3)
            .map(|_| Fingerprint::of(&common::run_complete(s).1.summary))
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
