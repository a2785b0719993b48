//! Booting 1, 2 and 64 vCPUs on real KVM: every CPU comes online — as the host saw it
//! (CpuOnline hypercalls) and as the guest recorded it (its per-CPU areas) — and the guest
//! powers off cleanly.
mod common;

use lockvmm_abi::NR_CPUS;

fn boot(n: usize) {
    let (_, r) = common::run("scenarios/boot.toml", Some(n));
    common::assert_clean_shutdown(&r.outcome);
    let mut online = r.online.clone();
    online.sort();
    assert_eq!(
        online,
        (0..n).collect::<Vec<_>>(),
        "CPUs the host saw come online"
    );

    // The per-CPU areas, through the DWARF layout of `struct percpu`.
    let base = r.kernel.symbols.addr_of("per_cpu_area").unwrap();
    let (this, cpu_off, online_off) = (
        common::member(&r, "percpu", "this"),
        common::member(&r, "percpu", "cpu"),
        common::member(&r, "percpu", "online"),
    );
    for cpu in 0..n as u64 {
        let at = common::elem_addr(&r, "per_cpu_area", cpu) - base;
        assert_eq!(
            common::read_u64(&r, "per_cpu_area", at + this),
            base + at,
            "per_cpu_area[{cpu}].this"
        );
        assert_eq!(
            common::read_u32(&r, "per_cpu_area", at + cpu_off),
            cpu as u32,
            "per_cpu_area[{cpu}].cpu"
        );
        assert_eq!(
            common::read_u32(&r, "per_cpu_area", at + online_off),
            1,
            "per_cpu_area[{cpu}].online"
        );
    }
    // The CPUs the machine does not have never ran.
    if n < NR_CPUS {
        let at = common::elem_addr(&r, "per_cpu_area", n as u64) - base;
        assert_eq!(common::read_u32(&r, "per_cpu_area", at + online_off), 0);
    }
    // Every CPU's line reached the console.
    for cpu in 0..n {
        assert!(
            r.console.contains(&format!("smpboot: CPU {cpu} online\n")),
            "console lacks CPU {cpu}"
        );
    }
}

#[test]
fn boots_one_vcpu() {
    boot(1);
}

#[test]
fn boots_two_vcpus() {
    boot(2);
}

#[test]
fn boots_sixty_four_vcpus() {
    boot(64);
}

/// Bringing an AP up takes one exit per fact: the boot CPU's `StartCpu` is also its wait
/// for the AP's online flag, and the AP's `CpuOnline` also wakes it. Before, each was a
/// second hypercall (a `Wait` and a `Kick` per AP). What remains: the AP's idle `Wait` and
/// the boot CPU's `Kick` of the idle AP when it wakes `watchdog/N`.
#[test]
fn bring_up_costs_one_exit_per_fact() {
    let n = 8u64;
    let (_, r) = common::run("scenarios/boot.toml", Some(n as usize));
    common::assert_clean_shutdown(&r.outcome);
    let p = &r.profile;
    let calls = |k: &str| p.hypercalls.get(k).copied().unwrap_or(0);
    assert_eq!(calls("StartCpu"), n - 1, "{p:?}");
    assert_eq!(calls("CpuOnline"), n, "{p:?}");
    assert_eq!(calls("Wait"), n - 1, "one idle wait per AP: {p:?}");
    assert_eq!(calls("Kick"), n - 1, "one watchdog wake-up per AP: {p:?}");
    let mut online = r.online.clone();
    online.sort();
    assert_eq!(online, (0..n as usize).collect::<Vec<_>>());
}

#[test]
fn the_boot_scenario_exits_zero_from_the_command_line() {
    let out = common::lockvmm()
        .args(["run", "--quiet", "scenarios/boot.toml", "--out"])
        .arg(std::env::temp_dir().join(format!("lockvmm-test-boot-{}", std::process::id())))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The guest's instructions of one boot, as `--count-instructions` puts them in the profile.
fn counted_boot(n: usize) -> (Option<u64>, String) {
    let mut opts = lockvmm::RunOptions::new(common::root("scenarios/boot.toml"));
    opts.vcpus = Some(n);
    opts.count_instructions = true;
    let (_, r) = lockvmm::run_scenario(&opts).unwrap();
    common::assert_clean_shutdown(&r.outcome);
    let by = r.profile.guest_instructions_counted_by.clone();
    (
        r.profile.guest_instructions,
        by.expect("--count-instructions leaves the counter's name or why there is none"),
    )
}

#[test]
fn the_profile_counts_the_guests_instructions_exactly() {
    // Without the flag there is no count and no counter.
    let (_, plain) = common::run("scenarios/boot.toml", Some(2));
    assert_eq!(plain.profile.guest_instructions, None);
    assert_eq!(plain.profile.guest_instructions_counted_by, None);

    let (two, by) = counted_boot(2);
    let Some(two) = two else {
        // No host PMU and no tracefs: the reason names both counters (.ci/run mounts tracefs,
        // so CI takes the branch below).
        assert!(
            by.contains("instructions:G") && by.contains("kvm:kvm_emulate_insn"),
            "{by}"
        );
        return;
    };
    assert!(
        by == "instructions:G" || by == "kvm:kvm_emulate_insn",
        "{by}"
    );
    // The guest is deterministic, so is its instruction count; and each AP's bring-up adds
    // instructions of its own.
    let (again, _) = counted_boot(2);
    let (four, _) = counted_boot(4);
    assert!(two > 1000, "a boot of {two} instructions");
    assert_eq!(again, Some(two), "two boots of 2 vCPUs");
    assert!(four.unwrap() > two, "4 vCPUs: {four:?}, 2 vCPUs: {two}");
}
