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
    // The boot CPU announced every other CPU as Linux 6.6 does (`announce_cpu`, continued with
    // `pr_cont`): `#N` for each CPU in the `.... node  #0, CPUs:` record and the `LOG_CONT`
    // records that continue it when it is full, read from the guest's log buffer.
    let records = common::log_records(&r);
    let texts: Vec<&str> = records.iter().map(|l| l.text.as_str()).collect();
    let s = if n > 1 { "s" } else { "" };
    let done = texts
        .iter()
        .position(|t| *t == format!("smp: Brought up 1 node, {n} CPU{s}"))
        .expect("the smp: Brought up record");
    let announced: Vec<usize> = match texts
        .iter()
        .position(|t| t.starts_with(".... node  #0, CPUs:  "))
    {
        None => Vec::new(),
        Some(first) => {
            assert!(first < done);
            assert_eq!(texts[first - 1], "smpboot: x86: Booting SMP configuration:");
            // The line is continued, not one record per CPU: a new record only when the
            // open one is full (240 bytes here, `LOG_LINE_MAX`).
            assert!(done - first <= 1 + n / 40, "{} records", done - first);
            for rec in &records[first + 1..done] {
                assert_eq!(rec.flags & 8, 8, "a continuation record: {}", rec.text);
            }
            texts[first..done]
                .iter()
                .flat_map(|t| {
                    t.trim_start_matches(".... node  #0, CPUs:")
                        .split_whitespace()
                })
                .map(|w| w.strip_prefix('#').expect("#N").parse().unwrap())
                .collect()
        }
    };
    assert_eq!(announced, (1..n).collect::<Vec<_>>(), "CPUs announced");
    // Linux prints no line per CPU coming online.
    assert!(!r.console.contains("smpboot: CPU"), "{}", r.console);
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

/// The profile counts the timer interrupts the clock delivered, which is what `bench tick`
/// divides by: a busy CPU takes one a jiffy (HZ of them a virtual second, from the ABI), an
/// idle one none (NOHZ). Two CPUs hogging for the whole run: exactly CPUs × HZ × its virtual
/// seconds. The negative control: a boot, whose CPUs are idle until the power-off, takes none.
#[test]
fn the_profile_counts_the_ticks_delivered() {
    let (_, busy) = common::run("vmm/tests/scenarios/tick_all_busy.toml", None);
    let (cpus, secs) = (busy.online.len() as u64, busy.vtime_ns / 1_000_000_000);
    assert!(secs >= 1, "the run lasted {} ns", busy.vtime_ns);
    assert_eq!(
        busy.profile.timer_interrupts,
        cpus * lockvmm_abi::HZ * secs,
        "{cpus} busy CPUs for {secs} virtual seconds"
    );
    let (_, idle) = common::run("scenarios/boot.toml", Some(4));
    common::assert_clean_shutdown(&idle.outcome);
    assert_eq!(idle.profile.timer_interrupts, 0, "{:?}", idle.profile);

    // So `bench tick` refuses a scenario in which nothing ticks, rather than dividing by zero
    // or by ticks that never happened.
    let out = common::lockvmm()
        .args([
            "bench",
            "tick",
            "--runs",
            "1",
            "--scenario",
            "scenarios/boot.toml",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(
        stderr.contains("scenarios/boot.toml") && stderr.contains("no CPU ticked"),
        "{stderr}"
    );
}

/// A vCPU that cannot be created fails the run with KVM's error and the environment's exit
/// status, within seconds. Here the process runs out of file descriptors (a vCPU is one): with
/// 40, early in the creation; with 100 and 128 vCPUs, around vCPU 85, when the boot CPU
/// normally already runs (the vCPUs are created behind it), so the machine has to be stopped
/// and its threads joined. The control: the same 128-vCPU boot with enough descriptors powers
/// off cleanly.
#[test]
fn a_vcpu_that_cannot_be_created_fails_the_run_cleanly() {
    for (limit, vcpus, created) in [(40, 64, false), (100, 128, false), (4096, 128, true)] {
        let dir = common::scratch("boot", &format!("nofile-{limit}"));
        let mut child = std::process::Command::new("sh")
            .current_dir(common::root(""))
            .arg("-c")
            .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_lockvmm"))
            .args(["run", "--quiet", "scenarios/boot.toml", "--vcpus"])
            .arg(vcpus.to_string())
            .arg("--out")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("limit {limit}: the run did not end within 60 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        if created {
            assert_eq!(status.code(), Some(0), "limit {limit}: {stderr}");
        } else {
            assert_eq!(status.code(), Some(3), "limit {limit}: {stderr}");
            assert!(
                stderr.contains("KVM refused to create a vCPU: Too many open files"),
                "limit {limit}: {stderr}"
            );
        }
    }
}
