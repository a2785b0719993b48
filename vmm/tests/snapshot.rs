//! Snapshots, the crash-style report, the vmcore (read by real gdb) and `lockvmm inspect`,
//! on real KVM (issue 4).
mod common;

use lockvmm::inspect::Inspector;
use lockvmm::output::summary::RunSummary;
use lockvmm::state::BtItem;
use lockvmm_abi::eflags::X86_EFLAGS_IF;

/// One hog_hard run shared by the four tests of this file that read it (none writes to it): a
/// debug-build run with its vmcore costs seconds, and the tests only look.
fn hog_hard() -> &'static common::Complete {
    static RUN: std::sync::OnceLock<common::Complete> = std::sync::OnceLock::new();
    RUN.get_or_init(|| common::run_complete("scenarios/hog_hard.toml"))
}

/// `source` (`src/…/file.rs:LINE`) is a line of the guest file that defines `function`, at or
/// after its definition.
fn assert_source_is_in(function: &str, source: &str) {
    let (file, line) = source.rsplit_once(':').expect("file:line");
    let line: usize = line.parse().expect("a line number");
    let text = std::fs::read_to_string(common::root(&format!("guest/{file}")))
        .unwrap_or_else(|e| panic!("{source} of {function}: {e}"));
    let defined = text
        .lines()
        .position(|l| l.contains(&format!("fn {function}(")))
        .unwrap_or_else(|| panic!("{file} does not define {function}"))
        + 1;
    assert!(
        line >= defined,
        "{function} at {source}, defined at line {defined}"
    );
}

#[test]
fn hard_lockup_snapshot_report_and_gdb_agree() {
    let (r, done, dir) = hog_hard();
    let snap = r.snapshot.as_ref().expect("a snapshot at the watchdog");
    assert!(
        snap.cpus.iter().all(|c| c.captured),
        "every vCPU frozen and captured"
    );

    let report = done.report.as_ref().expect("a report");
    assert_eq!(report.cpu, 1);
    let bt = &report.backtraces[0];
    assert_eq!(bt.cpu, 1);
    // The NMI interrupted the hog: its saved RIP lies in hog_thread, with interrupts off.
    let (entry, regs) = *bt.exceptions().last().expect("an NMI frame");
    assert_eq!(entry, "end_repeat_nmi");
    assert!(common::range_of(r, "hog_thread").contains(&regs.rip));
    assert_eq!(regs.rflags & X86_EFLAGS_IF, 0);
    // The report's chain below the NMI stack.
    let after_nmi: Vec<&str> = bt
        .items
        .iter()
        .skip_while(|i| !matches!(i, BtItem::StackEnd { .. }))
        .filter_map(|i| match i {
            BtItem::Frame { function, .. } => Some(function.as_str()),
            _ => None,
        })
        .collect();
    // Seed 001's chain: the module's thread function straight from kthread.
    assert_eq!(after_nmi, ["hog_thread", "kthread", "ret_from_fork"]);
    // Every Rust frame has its source line (`bt -l`): a line of the file that defines the
    // frame's function, at or after that definition.
    for item in &bt.items {
        let BtItem::Frame {
            function, source, ..
        } = item
        else {
            continue;
        };
        if function == "ret_from_fork" || function == "end_repeat_nmi" {
            continue; // assembly, no line table
        }
        let source = source
            .as_deref()
            .unwrap_or_else(|| panic!("{function} has no source line"));
        assert_source_is_in(function, source);
    }

    // gdb on the vmcore: thread 2 is CPU 1, and its backtrace is the same chain.
    let out = std::process::Command::new("gdb")
        .args(["-batch", "-nx", "-ex", "thread 2", "-ex", "bt"])
        .arg(dir.join("vmlinux"))
        .arg(dir.join("vmcore"))
        .output()
        .expect("gdb is required (.ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    // gdb shows the current frame of each thread it switches to, then `bt`: the backtrace is
    // the last run of lines that starts at `#0`.
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .rposition(|l| l.starts_with("#0 "))
        .expect("a backtrace");
    let frames: Vec<&str> = lines[start..]
        .iter()
        .copied()
        .filter(|l| l.starts_with('#'))
        .collect();
    let find = |f: &str| {
        frames
            .iter()
            .position(|l| l.contains(f))
            .unwrap_or_else(|| panic!("gdb bt lacks {f}:\n{text}"))
    };
    assert_eq!(find("hog_thread"), 0, "{text}");
    assert!(find("hog_thread") < find("kthread") && find("kthread") < find("ret_from_fork"));
}

#[test]
fn all_64_vcpus_are_frozen_with_the_lock_word_and_registers_consistent() {
    let (r, done, _) = common::run_complete("scenarios/lbr_gfp.toml");
    // The report's `log`: the guest names its Call Trace entries itself (kallsyms, 6.6's
    // ` function+0xoff/0xsize`); each name is a kernel function, the offset inside it.
    let report = done.report.as_ref().expect("a report");
    let log = report.dmesg_tail.join("\n");
    let mut named = 0;
    let mut in_trace = false;
    for line in log.lines() {
        let text = line.split("] ").skip(1).collect::<Vec<_>>().join("] ");
        if text == "Call Trace:" {
            in_trace = true;
            continue;
        }
        if !in_trace || text.starts_with(" <") {
            continue;
        }
        let Some(entry) = text.strip_prefix(' ') else {
            in_trace = false;
            continue;
        };
        let reliable = !entry.starts_with("? ");
        let entry = entry.strip_prefix("? ").unwrap_or(entry);
        let (name, rest) = entry.split_once('+').expect("function+0xoff/0xsize");
        let (off, size) = rest.split_once('/').unwrap();
        let off = u64::from_str_radix(off.trim_start_matches("0x"), 16).unwrap();
        let size = u64::from_str_radix(size.trim_start_matches("0x"), 16).unwrap();
        let start = r
            .kernel
            .symbols
            .addr_of(name)
            .unwrap_or_else(|| panic!("{line}"));
        assert!(off <= size, "{line}");
        if reliable {
            // A return address: the call before it is in the function named.
            assert_eq!(
                r.kernel.symbols.lookup(start + off - 1).map(|l| l.name),
                Some(name.to_string()),
                "{line}"
            );
        }
        named += 1;
    }
    assert!(named >= 3, "{log}");
    let snap = r.snapshot.as_ref().unwrap();
    assert_eq!(snap.cpus.len(), 64);
    assert!(
        snap.cpus
            .iter()
            .all(|c| c.captured && c.freeze_us < 5_000_000),
        "bounded freeze of every vCPU"
    );
    let report = done.report.as_ref().unwrap();
    // RDI of CPU 51's stuck context is runqueues[56]'s lock (rq->__lock is at offset 0) …
    let (_, regs) = *report.backtraces[0].exceptions().last().unwrap();
    let rq56 = common::elem_addr(&r, "runqueues", 56) + common::member(&r, "rq", "__lock");
    assert_eq!(regs.rdi, rq56);
    assert_eq!(regs.rflags & X86_EFLAGS_IF, 0);
    // … and the lock word in the snapshot's memory names CPU 56 (locked byte = owner + 1).
    let mem = lockvmm::memory::FrozenMemory {
        phys: &snap.memory,
        cr3: snap.cpus[0].sregs.cr3,
    };
    assert_eq!(common::owner(mem.u32(rq56).unwrap()), Some(56));
    // CPU 56 is in the report too, stuck from an interrupt taken with interrupts enabled.
    let bt56 = report
        .backtraces
        .iter()
        .find(|b| b.cpu == 56)
        .expect("CPU 56 is not idle");
    let (entry, inner) = *bt56.exceptions().last().unwrap();
    assert_eq!(entry, "apic_timer_interrupt");
    assert_ne!(inner.rflags & X86_EFLAGS_IF, 0);
    assert!(bt56.functions().contains(&"allocate_slab"));
    assert!(bt56.functions().contains(&"finish_task_switch"));
}

#[test]
fn inspect_answers_like_crash() {
    let (r, _, dir) = hog_hard();
    let insp = Inspector::open(&dir.join("vmcore"), None).expect("the vmcore reads back");
    let rq = insp.exec("struct rq -o").unwrap();
    assert!(
        rq.lines()
            .nth(1)
            .unwrap()
            .contains("[0] raw_spinlock_t __lock;"),
        "{rq}"
    );
    assert!(rq.contains("[4] unsigned int nr_running;"), "{rq}");

    let sym = insp
        .exec(&format!("sym {:x}", common::elem_addr(r, "runqueues", 1)))
        .unwrap();
    assert!(sym.contains("&runqueues[1].__lock"), "{sym}");

    // rd of a valid address reads what the snapshot holds.
    let lock = r.kernel.symbols.addr_of("hog_lock").unwrap();
    let rd = insp.exec(&format!("rd {lock:x}")).unwrap();
    let snap = r.snapshot.as_ref().unwrap();
    let mem = lockvmm::memory::FrozenMemory {
        phys: &snap.memory,
        cr3: snap.cpus[0].sregs.cr3,
    };
    assert!(
        rd.contains(&format!("{:016x}", mem.u64(lock).unwrap())),
        "{rd}"
    );
    // … and of an invalid one, crash's error.
    let err = insp.exec("rd ffffffffa88b53b0").unwrap_err();
    assert!(
        err.contains("invalid kernel virtual address: ffffffffa88b53b0"),
        "{err}"
    );

    let bt = insp.exec("bt").unwrap();
    assert!(
        bt.contains("COMMAND: \"hog\"") && bt.contains("--- <NMI exception stack> ---"),
        "{bt}"
    );
    // `bt -l`: the line under each frame is its source line.
    let bt_l = insp.exec("bt -l -c 1").unwrap();
    let lines: Vec<&str> = bt_l.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("] hog_thread at "))
        .unwrap_or_else(|| panic!("{bt_l}"));
    assert_source_is_in("hog_thread", lines[at + 1].trim());
    assert!(
        !bt.lines().any(|l| l.trim_start().starts_with("src/")),
        "{bt}"
    );
    assert!(insp.exec("regs 1").unwrap().contains("IF=0"));
    assert!(insp.exec("no_such_command").is_err());
}

#[test]
fn result_json_round_trips_through_its_schema() {
    let (_, _, dir) = hog_hard();
    let text = std::fs::read_to_string(dir.join("result.json")).unwrap();
    let parsed: RunSummary = serde_json::from_str(&text).expect("result.json matches the schema");
    assert_eq!(
        parsed.schema_version,
        lockvmm::output::summary::SCHEMA_VERSION
    );
    let again: serde_json::Value = serde_json::to_value(&parsed).unwrap();
    let original: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(again, original);
}

#[test]
fn result_json_profiles_the_run() {
    let (r, done, dir) = hog_hard();
    let text = std::fs::read_to_string(dir.join("result.json")).unwrap();
    let p = serde_json::from_str::<RunSummary>(&text).unwrap().profile;
    assert_eq!(p.exits, done.summary.profile.exits);
    assert_eq!(p.hypercalls, done.summary.profile.hypercalls);
    assert!(p.vm_exits > 0);
    assert_eq!(p.vm_exits, p.exits.values().sum::<u64>(), "{p:?}");
    // Every hypercall exit is counted under its kind.
    assert_eq!(p.exits["hypercall"], p.hypercalls.values().sum::<u64>());
    assert_eq!(p.hypercalls["CpuOnline"], r.online.len() as u64);
    assert_eq!(p.hypercalls["Watchdog"], r.lockups.len() as u64);
    // The console travels a line per exit, never a byte per exit; except that 4.4's printk
    // prints an unfinished line in its pieces as they come (`console_cont_flush`): the boot
    // CPU's announce_cpu line (the `.... node` text, its padding, one `#N` per other CPU), then
    // its end once it is a record (`LOG_NOCONS`, the only such record here).
    let nocons = common::log_records(r)
        .iter()
        .filter(|l| l.flags & 1 != 0)
        .count();
    assert_eq!(nocons, 1);
    assert_eq!(
        p.hypercalls["ConsoleWrite"],
        r.console.lines().count() as u64 + 2 + (r.online.len() as u64 - 1)
    );
    assert!(!p.exits.contains_key("serial_io"), "{p:?}");
    for phase in ["create", "run", "analysis", "vmcore", "files"] {
        assert!(p.host_ms.contains_key(phase), "{phase}: {:?}", p.host_ms);
    }
}

#[test]
fn a_garbage_stack_still_gives_a_report() {
    let (_, done, dir) = common::run_complete("vmm/tests/scenarios/bad_frame_pointer.toml");
    let report = done
        .report
        .as_ref()
        .expect("a report despite the wild frame pointer");
    let notes: Vec<&str> = report.backtraces[0]
        .items
        .iter()
        .filter_map(|i| match i {
            BtItem::Note { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("ffff888012345678")),
        "{notes:?}"
    );
    assert!(dir.join("report.txt").is_file() && dir.join("vmcore").is_file());
}
