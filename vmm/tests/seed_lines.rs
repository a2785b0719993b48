//! Seeds 001 and 003, line by line (issue 10): the guest prints each lockup block in the format
//! of the Linux version the scenario replays, with names from its own kallsyms. Every
//! expected line is rebuilt from captured state and guest memory (the registers the detector's
//! interrupt saved, the task on the CPU, the taint mask, the bytes at RIP, the stack words),
//! never copied from the scenario or the seed.
mod common;

use lockvmm::memory::BOOT_CR3;
use lockvmm::state::{LockupEvent, LockupKind, Outcome};
use lockvmm_abi::eflags::X86_EFLAGS_IF;

const NSEC: u64 = 1_000_000_000;

fn lockups(r: &lockvmm::RunResult) -> &[LockupEvent] {
    match &r.outcome {
        Outcome::Lockup { events } => events,
        other => panic!("expected lockups, got {other:?}"),
    }
}

fn read(r: &lockvmm::RunResult, addr: u64, len: usize) -> Vec<u8> {
    r.memory
        .read_virt(BOOT_CR3, addr, len)
        .expect("mapped guest memory")
}

fn u64_at(r: &lockvmm::RunResult, addr: u64) -> u64 {
    r.memory.read_virt_u64(BOOT_CR3, addr).expect("mapped")
}

/// When CPU 1's task (the hog) started: its `task_start` hook, plus the 8.5 s sleep.
fn hog_start(r: &lockvmm::RunResult, sleep_ns: u64) -> u64 {
    r.hooks
        .iter()
        .find(|h| h.hook == "task_start" && h.cpu == 1)
        .expect("the hog's task started")
        .vtime_ns
        + sleep_ns
}

/// 4.4's `print_tainted` of a mask (16 flags: kernel/panic.c `tnts[]`).
fn tainted_4_4(mask: u64) -> String {
    let flags = b"PFSRMBUDAWCIOELK";
    let mut s = String::from("Tainted: ");
    for (i, &c) in flags.iter().enumerate() {
        let set = mask & (1 << i) != 0;
        s.push(match (i, set) {
            (0, false) => 'G',
            (_, true) => c as char,
            _ => ' ',
        });
    }
    s
}

/// The bytes of the `.module.hog` section in the kernel image (the module as built).
fn module_text(r: &lockvmm::RunResult) -> Vec<u8> {
    use object::{Object, ObjectSection};
    let elf = object::File::parse(&r.kernel.elf[..]).unwrap();
    elf.section_by_name(".module.hog")
        .expect("the hog module in the image")
        .data()
        .unwrap()
        .to_vec()
}

/// The line after `prefix` (the first that starts with it), with its index.
fn line_from(lines: &[String], from: usize, prefix: &str) -> (usize, String) {
    lines
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, l)| l.starts_with(prefix))
        .map(|(i, l)| (i, l.clone()))
        .unwrap_or_else(|| {
            panic!(
                "no line {prefix:?} after line {from}:\n{}",
                lines.join("\n")
            )
        })
}

#[test]
fn seed_001_soft_lockup_block_line_for_line_on_4_4() {
    let (_, r) = common::run("scenarios/hog_soft.toml", None);
    let e = &lockups(&r)[0];
    assert_eq!((e.cpu, e.kind), (1, LockupKind::Soft));
    let regs = &e.report.regs;
    let a = common::analysis(&r);
    let task = a.task_on(1).expect("the hog is current on CPU 1");
    let lines = common::console_lines(&r);

    // `printk(KERN_INFO "Hogging a CPU now")`, when the hog started.
    let hog_from = hog_start(&r, 8_500_000_000);
    let stamp = format!(
        "[{:5}.{:06}] Hogging a CPU now",
        hog_from / NSEC,
        hog_from % NSEC / 1000
    );
    assert!(r.console.contains(&stamp), "{stamp}\n{}", r.console);

    // The message: 4.4's `pr_fmt` "NMI watchdog: ", the stuck time by the 4.4 rule (now - touch
    // timestamp, both in 2^30 ns units), the task from guest memory.
    let touch = common::read_u64(&r, "watchdog_touch_ts", 8);
    let stuck = (e.vtime_ns >> 30) - touch;
    let (m, msg) = line_from(&lines, 0, "NMI watchdog: BUG: soft lockup");
    assert_eq!(
        msg,
        format!(
            "NMI watchdog: BUG: soft lockup - CPU#1 stuck for {stuck}s! [{}:{}]",
            task.comm, task.pid
        )
    );
    // `Modules linked in: hog(OE)`: the hog's text is in module space, the image's bytes.
    let hog = common::range_of(&r, "hog_thread");
    assert!(hog.start >= lockvmm_abi::MODULES_VADDR, "{hog:?}");
    assert_eq!(
        read(&r, hog.start, (hog.end - hog.start) as usize),
        module_text(&r)[..(hog.end - hog.start) as usize],
        "module memory holds the module's text"
    );
    assert_eq!(lines[m + 1], "Modules linked in: hog(OE)");
    // `CPU: N PID: P Comm: C Tainted: G … OE …`: the taint mask as guest memory has it (the L
    // of this very lockup comes after the report, as 4.4's add_taint does).
    let mask = common::read_u64(&r, "tainted_mask", 0);
    assert_eq!(mask & (1 << 14), 1 << 14, "L set after the report");
    let before = mask & !(1 << 14);
    assert_eq!(
        lines[m + 2],
        format!(
            "CPU: 1 PID: {} Comm: {} {} 4.4.0-lockvmm #1",
            task.pid,
            task.comm,
            tainted_4_4(before)
        )
    );
    assert!(lines[m + 3].starts_with("Hardware name: "));
    let stack_off = common::member(&r, "task_struct", "stack");
    let ti = u64_at(&r, task.addr + stack_off);
    assert_eq!(
        lines[m + 4],
        format!("task: {:016x} ti: {ti:016x} task.ti: {ti:016x}", task.addr)
    );
    // The RIP line: the registers the timer interrupt saved; the hog's loop, named by the
    // guest as the module's symbol (its size: up to the end of the module's text page).
    assert!(hog.contains(&regs.rip));
    // hog_thread opens the module's text (`.module.hog`), which ends at a page boundary.
    let end = hog.start + module_text(&r).len() as u64;
    assert_eq!(end % 4096, 0);
    assert_eq!(
        lines[m + 5],
        format!(
            "RIP: 0010:[<{0:016x}>]  [<{0:016x}>] hog_thread+{1:#x}/{2:#x} [hog]",
            regs.rip,
            regs.rip - hog.start,
            end - hog.start
        )
    );
    assert_ne!(
        regs.rflags & X86_EFLAGS_IF,
        0,
        "a soft lockup: interrupts on"
    );
    assert_eq!(
        lines[m + 6],
        format!(
            "RSP: {:04x}:{:016x}  EFLAGS: {:08x}",
            regs.ss, regs.rsp, regs.rflags
        )
    );
    let regs_lines = [
        format!(
            "RAX: {:016x} RBX: {:016x} RCX: {:016x}",
            regs.rax, regs.rbx, regs.rcx
        ),
        format!(
            "RDX: {:016x} RSI: {:016x} RDI: {:016x}",
            regs.rdx, regs.rsi, regs.rdi
        ),
        format!(
            "RBP: {:016x} R08: {:016x} R09: {:016x}",
            regs.rbp, regs.r8, regs.r9
        ),
        format!(
            "R10: {:016x} R11: {:016x} R12: {:016x}",
            regs.r10, regs.r11, regs.r12
        ),
        format!(
            "R13: {:016x} R14: {:016x} R15: {:016x}",
            regs.r13, regs.r14, regs.r15
        ),
    ];
    assert_eq!(lines[m + 7..m + 12], regs_lines);
    assert!(lines[m + 12].starts_with("FS:  "));
    assert!(lines[m + 13].starts_with("CS:  0010 DS: "));
    assert!(lines[m + 14].starts_with("CR2: "));
    // `Stack:`: the words from RSP, as guest memory holds them.
    assert_eq!(lines[m + 15], "Stack:");
    let (t, _) = line_from(&lines, m, "Call Trace:");
    let words: Vec<u64> = lines[m + 16..t]
        .iter()
        .flat_map(|l| l.split_whitespace())
        .map(|w| u64::from_str_radix(w, 16).unwrap())
        .collect();
    assert!(!words.is_empty() && words.len() <= 12);
    for (i, w) in words.iter().enumerate() {
        assert_eq!(*w, u64_at(&r, regs.rsp + 8 * i as u64), "stack word {i}");
    }
    // The Call Trace: every text address on the stack; the frame chain's return addresses
    // reliable (kthread, then ret_from_fork), the others marked `? `.
    let (c, code) = line_from(&lines, t, "Code: ");
    let trace = &lines[t + 1..c];
    let reliable: Vec<&str> = trace
        .iter()
        .filter(|l| !l.contains("] ? "))
        .map(|l| {
            let name = l.split("] ").nth(1).unwrap();
            name.split('+').next().unwrap()
        })
        .collect();
    assert_eq!(reliable, ["kthread", "ret_from_fork"], "{trace:?}");
    assert!(trace.iter().any(|l| l.contains("] ? ")), "{trace:?}");
    for l in trace {
        let hex = &l[l.find("[<").unwrap() + 2..l.find(">]").unwrap()];
        let addr = u64::from_str_radix(hex, 16).unwrap();
        let found = (0..512).any(|i| u64_at(&r, regs.rsp + 8 * i) == addr);
        assert!(found, "{l}: not on the stack");
    }
    // The reliable kthread entry is the return address above the hog's frame.
    let ret = format!("[<{:016x}>] kthread+", u64_at(&r, regs.rbp + 8));
    assert!(trace.iter().any(|l| l.contains(&ret)), "{ret} in {trace:?}");
    // `Code:`: the bytes at RIP (4.4: 43 before it, 64 in all), `<..>` on RIP's.
    let bytes: Vec<&str> = code["Code: ".len()..].split_whitespace().collect();
    let at = bytes.iter().position(|b| b.starts_with('<')).unwrap();
    let first = regs.rip - at as u64;
    let mem = read(&r, first, bytes.len());
    for (i, b) in bytes.iter().enumerate() {
        let hex = b.trim_matches(['<', '>']);
        assert_eq!(u8::from_str_radix(hex, 16).unwrap(), mem[i], "byte {i}");
    }
    assert_eq!(bytes.len(), 64);
    assert_eq!(at, 43);
}

#[test]
fn soft_lockups_re_report_on_6_6_and_4_4_reports_a_stuck_task_once() {
    let (_, r) = common::run("vmm/tests/scenarios/hog_soft_rereport.toml", None);
    let soft: Vec<_> = r
        .lockups
        .iter()
        .filter(|l| l.kind == LockupKind::Soft)
        .collect();
    // The run went on past the first report (softlockup_panic = 0, stop_on_lockup = false).
    assert!(r.vtime_ns >= 70 * NSEC, "{}", r.vtime_ns);
    assert!(soft.len() >= 2, "{soft:?}");
    for w in soft.windows(2) {
        assert_eq!(w[1].cpu, 1);
        // 6.6: one report per threshold (2 x 10 s) while stuck.
        assert!(w[1].vtime_ns - w[0].vtime_ns >= 20 * NSEC, "{soft:?}");
        assert!(w[1].vtime_ns - w[0].vtime_ns <= 24 * NSEC, "{soft:?}");
    }
    let printed = r.console.matches("watchdog: BUG: soft lockup").count();
    assert_eq!(printed, soft.len());
    // Each report restarted the period: watchdog_report_ts is the last one's time.
    let report_ts = common::read_u64(&r, "watchdog_report_ts", 8);
    assert_eq!(report_ts, soft.last().unwrap().vtime_ns >> 30);
    // The second one carries the L taint the first added.
    let lines = common::console_lines(&r);
    let taints: Vec<&String> = lines.iter().filter(|l| l.starts_with("CPU: 1 ")).collect();
    assert!(
        !taints[0].contains("OEL") && taints[1].contains("OEL"),
        "{taints:?}"
    );

    let (_, r) = common::run("vmm/tests/scenarios/hog_soft_once_4_4.toml", None);
    assert!(r.vtime_ns >= 70 * NSEC);
    assert_eq!(r.lockups.len(), 1, "{:?}", r.lockups);
    assert_eq!(r.console.matches("BUG: soft lockup").count(), 1);
    assert_eq!(common::read_u64(&r, "soft_watchdog_warn", 8), 1);
}

/// The message line of the first soft lockup and the event.
fn soft_message(rel: &str) -> (lockvmm::RunResult, String) {
    let (_, r) = common::run(rel, None);
    let e = lockups(&r)[0].clone();
    assert_eq!((e.cpu, e.kind), (1, LockupKind::Soft));
    let line = common::console_lines(&r)
        .into_iter()
        .find(|l| l.contains(&e.message))
        .unwrap_or_else(|| panic!("{} not printed", e.message));
    (r, line)
}

#[test]
fn each_version_prints_its_own_prefix_and_layout() {
    // 6.6: `pr_fmt` "watchdog: ", RIP as `%pS`, Code right after it, `<TASK>` markers, no Stack.
    let (r, line) = soft_message("vmm/tests/scenarios/hog_soft_6_6.toml");
    assert!(
        line.starts_with("watchdog: BUG: soft lockup - CPU#1 "),
        "{line}"
    );
    let rip = lockups(&r)[0].report.regs.rip;
    let hog = common::range_of(&r, "hog_thread");
    let lines = common::console_lines(&r);
    let (i, _) = line_from(&lines, 0, "RIP: 0010:hog_thread+");
    assert_eq!(
        lines[i],
        format!("RIP: 0010:hog_thread+{:#x}/0x1000 [hog]", rip - hog.start)
    );
    assert!(lines[i + 1].starts_with("Code: ") && lines[i + 2].starts_with("RSP: "));
    assert!(lines.iter().any(|l| l == " <TASK>") && lines.iter().any(|l| l == " </TASK>"));
    assert!(!lines.iter().any(|l| l == "Stack:"));
    assert!(
        lines.iter().any(|l| l.starts_with(" kthread+0x")),
        "{lines:?}"
    );

    // 4.4: "NMI watchdog: ".
    let (_, line) = soft_message("scenarios/hog_soft.toml");
    assert!(
        line.starts_with("NMI watchdog: BUG: soft lockup - CPU#1 "),
        "{line}"
    );

    // 3.10: no prefix (its watchdog.c has no pr_fmt), 2 x watchdog_thresh.
    let (r, line) = soft_message("vmm/tests/scenarios/hog_soft_3_10.toml");
    assert!(line.starts_with("BUG: soft lockup - CPU#1 "), "{line}");
    let after = lockups(&r)[0].vtime_ns - hog_start(&r, 8_500_000_000);
    assert!((20 * NSEC..=28 * NSEC).contains(&after), "{after}");
    assert!(
        r.console.contains("]  [<ffffffff"),
        "3.10's addresses in brackets"
    );

    // 2.6.32 (seed 003): softlockup.c's KERN_ERR line, after its 60 s threshold (60 units of
    // 2^30 ns, as its get_timestamp counts: 64.4 s, then the next check).
    let (r, line) = soft_message("vmm/tests/scenarios/hog_soft_2_6.toml");
    assert!(line.starts_with("BUG: soft lockup - CPU#1 "), "{line}");
    let after = lockups(&r)[0].vtime_ns - hog_start(&r, 8_500_000_000);
    assert!((64 * NSEC..=67 * NSEC).contains(&after), "{after}");
    let stuck: u64 = line
        .split("stuck for ")
        .nth(1)
        .and_then(|s| s.split('s').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(stuck > 60, "{line}");
    assert!(
        common::console_lines(&r)
            .iter()
            .any(|l| l.starts_with("Pid: "))
    );
}

#[test]
fn seed_003_two_six_hard_lockup_waits_a_fixed_60_seconds() {
    let (_, r) = common::run("vmm/tests/scenarios/hog_hard_2_6.toml", None);
    let e = &lockups(&r)[0];
    assert_eq!((e.cpu, e.kind), (1, LockupKind::Hard));
    assert_eq!(e.report.regs.rflags & X86_EFLAGS_IF, 0);
    // watchdog_thresh = 10 in the scenario: a 3.10+ kernel would have reported within 20 s.
    let after = e.vtime_ns - hog_start(&r, 8_500_000_000);
    assert!(after > 60 * NSEC, "{after}");
    assert!(
        e.message.starts_with(&format!(
            "BUG: NMI Watchdog detected LOCKUP on CPU1, ip {:08x}",
            e.report.regs.rip
        )),
        "{}",
        e.message
    );
}

#[test]
fn the_soft_lockup_timing_rule_is_the_versions() {
    // A hog from the first second: 6.6 (watchdog_report_ts) reports at the first sample past
    // the threshold, 4.4 (the touch_ts == 0 rule, touch reset by the first sample) later.
    let mut at = Vec::new();
    for v in ["6_6", "4_4"] {
        let (_, r) = common::run(
            &format!("vmm/tests/scenarios/hog_soft_early_{v}.toml"),
            None,
        );
        let e = lockups(&r)[0].clone();
        // The stuck time printed is now - touch_ts, as guest memory has touch_ts.
        let touch = common::read_u64(&r, "watchdog_touch_ts", 8);
        let stuck = (e.vtime_ns >> 30) - touch;
        assert!(
            e.message.contains(&format!("stuck for {stuck}s!")),
            "{v}: {} (touch {touch})",
            e.message
        );
        at.push((e.vtime_ns, stuck));
    }
    // The numbers: 6.6 says 22 s at 24 s, 4.4 23 s at 28 s.
    assert!(at[0].0 < at[1].0, "{at:?}");
    assert_eq!(at, [(24 * NSEC, 22), (28 * NSEC, 23)]);
}

#[test]
fn watchdog_thresh_zero_turns_the_detectors_off() {
    let (_, r) = common::run("vmm/tests/scenarios/hog_soft_thresh0.toml", None);
    assert!(r.lockups.is_empty(), "{:?}", r.lockups);
    // The hog did run and stays on CPU 1 with preemption off: only the detectors are off.
    let a = common::analysis(&r);
    assert_eq!(a.task_on(1).unwrap().comm, "hog");
    assert!(
        a.tasks()
            .iter()
            .all(|t| !t.info.comm.starts_with("watchdog/"))
    );
    assert_eq!(common::read_u64(&r, "hrtimer_interrupts", 8), 0);
    assert_eq!(common::read_u64(&r, "watchdog_ev", 8), 0);
}

#[test]
fn hardlockup_all_cpu_backtrace_asks_the_other_cpus_by_nmi_once() {
    let (_, r) = common::run("vmm/tests/scenarios/all_cpu_backtrace_hard.toml", None);
    let e = &lockups(&r)[0];
    assert_eq!((e.cpu, e.kind), (1, LockupKind::Hard));
    assert_eq!(common::read_u64(&r, "hardlockup_allcpu_dumped", 0), 1);
    // CPUs 0 and 2 answered the NMI IPI with their registers, after the stuck CPU's block;
    // the stuck CPU did not ask itself.
    let lines = common::console_lines(&r);
    let (hard, _) = line_from(
        &lines,
        0,
        "NMI watchdog: Watchdog detected hard LOCKUP on cpu 1",
    );
    for cpu in [0, 2] {
        let (at, _) = line_from(&lines, hard, &format!("NMI backtrace for cpu {cpu}"));
        assert!(
            lines[at + 1].starts_with(&format!("CPU: {cpu} PID: ")),
            "{}",
            lines[at + 1]
        );
    }
    assert!(!lines.iter().any(|l| l == "NMI backtrace for cpu 1"));
    // Without the knob, the same hard lockup asks no one.
    let (_, r) = common::run("scenarios/hog_hard.toml", None);
    assert_eq!(lockups(&r)[0].kind, LockupKind::Hard);
    assert!(!r.console.contains("NMI backtrace for cpu"));
    assert_eq!(common::read_u64(&r, "hardlockup_allcpu_dumped", 0), 0);
}

/// The records from the first whose text starts with `prefix`.
fn records_from(recs: &[common::LogRecord], prefix: &str) -> usize {
    recs.iter()
        .position(|l| l.text.starts_with(prefix))
        .unwrap_or_else(|| panic!("no record starting {prefix:?}"))
}

#[test]
fn each_version_announces_the_cpus_as_it_did_with_continued_records() {
    const LOG_NEWLINE: u8 = 2;
    const LOG_CONT: u8 = 8;
    const LOG_NOCONS: u8 = 1;
    // 3.10: `smpboot: Booting Node   0, Processors ` continued by ` #N` and ` OK\n`, one record
    // (the console printed it piecewise as 3.10's `console_cont_flush`: LOG_NOCONS).
    let (_, r) = common::run("vmm/tests/scenarios/boot_3_10.toml", None);
    let n = r.online.len();
    let recs = common::log_records(&r);
    let at = records_from(&recs, "smpboot: Booting Node ");
    let cpus: String = (1..n).map(|c| format!(" #{c}")).collect();
    assert_eq!(
        recs[at].text,
        format!("smpboot: Booting Node   0, Processors {cpus} OK")
    );
    assert_eq!(
        recs[at].flags & (LOG_NEWLINE | LOG_NOCONS),
        LOG_NEWLINE | LOG_NOCONS
    );
    assert_eq!(recs[at + 1].text, format!("Brought up {n} CPUs"));
    assert!(r.console.contains(&format!("] {}\n", recs[at].text)));
    // 4.4: no `smpboot: ` on the first line (a bare printk), `width` = digits of 4 CPUs + 1.
    let (_, r) = common::run("vmm/tests/scenarios/boot_4_4.toml", None);
    let recs = common::log_records(&r);
    let at = records_from(&recs, "x86: Booting SMP configuration:");
    let cpus: String = (1..n).map(|c| format!(" #{c}")).collect();
    assert_eq!(
        recs[at + 1].text,
        format!(".... node  #0, CPUs:     {cpus}")
    );
    assert_eq!(
        recs[at + 2].text,
        format!("x86: Booted up 1 node, {n} CPUs")
    );
    assert_eq!(
        recs[at + 1].flags & LOG_CONT,
        0,
        "one record, not continued"
    );
    // 2.6.32: one `Booting processor` line per CPU, from the boot CPU, before it starts it.
    let (_, r) = common::run("vmm/tests/scenarios/boot_2_6.toml", None);
    let recs = common::log_records(&r);
    let at = records_from(&recs, "Booting processor 1 ");
    for c in 1..n {
        assert!(
            recs[at + c - 1]
                .text
                .starts_with(&format!("Booting processor {c} APIC {c:#x} ip 0x")),
            "{}",
            recs[at + c - 1].text
        );
    }
    assert_eq!(recs[at + n - 1].text, format!("Brought up {n} CPUs"));
}

#[test]
fn three_ten_warns_on_a_hard_lockup_without_hardlockup_panic() {
    let (_, r) = common::run("vmm/tests/scenarios/hog_hard_3_10.toml", None);
    let e = &lockups(&r)[0];
    assert_eq!((e.cpu, e.kind), (1, LockupKind::Hard));
    let recs = common::log_records(&r);
    let cut = records_from(&recs, "------------[ cut here ]------------");
    let t = |i: usize| recs[cut + i].text.as_str();
    // `WARNING: at %s:%d %pS()`: the callback's own file and the address it called WARN from.
    assert!(
        t(1).starts_with("WARNING: at kernel/watchdog_hld.rs:")
            && t(1).contains(" watchdog_overflow_callback+0x")
            && t(1).ends_with("()"),
        "{}",
        t(1)
    );
    // The WARN's text waited in 3.10's `cont` (no level, no newline) until `Modules linked
    // in:` stored it as a record of its own.
    assert_eq!(
        t(2),
        format!("Watchdog detected hard LOCKUP on cpu {}", e.cpu)
    );
    assert_eq!(recs[cut + 2].flags & 2, 2);
    assert!(t(3).starts_with("Modules linked in:"), "{}", t(3));
    let task = common::analysis(&r).task_on(e.cpu).expect("the hog");
    assert!(
        t(4).starts_with(&format!("CPU: {} PID: {} Comm: ", e.cpu, task.pid)),
        "{}",
        t(4)
    );
    // dump_stack, not show_regs: no register lines; the trace runs from the WARN to the task.
    let end = records_from(&recs, "---[ end trace ");
    let block: Vec<&str> = recs[cut..=end].iter().map(|l| l.text.as_str()).collect();
    assert!(!block.iter().any(|l| l.starts_with("RIP: ")), "{block:#?}");
    for f in [
        "warn_slowpath_fmt+",
        "watchdog_overflow_callback+",
        "kthread+",
    ] {
        assert!(block.iter().any(|l| l.contains(f)), "{f} in {block:#?}");
    }
    let id = common::read_u64(&r, "oops_id", 0);
    assert_eq!(recs[end].text, format!("---[ end trace {id:016x} ]---"));
    // add_taint(TAINT_WARN): W.
    assert_ne!(common::read_u64(&r, "tainted_mask", 0) & (1 << 9), 0);
    // Negative control: 4.4 prints no WARN block for the same hog.
    let (_, r) = common::run("scenarios/hog_hard.toml", None);
    assert!(!r.console.contains("cut here"));
    assert_eq!(common::read_u64(&r, "tainted_mask", 0) & (1 << 9), 0);
}

#[test]
fn two_six_prints_show_regs_for_a_soft_lockup_and_show_registers_for_die_nmi() {
    // softlockup_tick: the KERN_ERR line (3), print_modules, then show_regs: `CPU 1:` (a line
    // `__show_regs` ends), the modules again, `Pid:`, the registers, the DR lines, the trace.
    let (_, r) = common::run("vmm/tests/scenarios/hog_soft_2_6.toml", None);
    let e = lockups(&r)[0].clone();
    let recs = common::log_records(&r);
    let at = records_from(&recs, &e.message);
    assert_eq!(recs[at].level, 3, "KERN_ERR");
    let t: Vec<&str> = recs[at..].iter().map(|l| l.text.as_str()).collect();
    assert!(t[1].starts_with("Modules linked in: hog"), "{}", t[1]);
    assert_eq!(t[2], format!("CPU {}:", e.cpu));
    assert_eq!(t[3], t[1]);
    let task = common::analysis(&r).task_on(e.cpu).expect("the hog");
    assert!(
        t[4].starts_with(&format!("Pid: {}, comm: ", task.pid)),
        "{}",
        t[4]
    );
    let trace = t.iter().position(|l| *l == "Call Trace:").expect("a trace");
    assert!(t[trace - 2].starts_with("DR0: ") && t[trace - 1].starts_with("DR3: "));
    assert!(
        !t[..trace].contains(&"Stack:"),
        "show_regs prints no Stack:"
    );
    assert!(!t.iter().any(|l| l.starts_with("Code: ")));
    // 2.6.32 had no O or E module taint: `hog`, no flags.
    assert_eq!(t[1], "Modules linked in: hog");
    // die_nmi: show_registers, with `Process`, `Stack:` and `Code:`.
    let (_, r) = common::run("vmm/tests/scenarios/hog_hard_2_6.toml", None);
    let e = lockups(&r)[0].clone();
    let recs = common::log_records(&r);
    let at = records_from(&recs, "BUG: NMI Watchdog detected LOCKUP on CPU");
    let t: Vec<&str> = recs[at..].iter().map(|l| l.text.as_str()).collect();
    assert_eq!(t[1], format!("CPU {} ", e.cpu));
    let task = common::analysis(&r).task_on(e.cpu).expect("the hog");
    let p = t
        .iter()
        .position(|l| {
            l.starts_with(&format!(
                "Process {} (pid: {}, threadinfo ",
                task.comm, task.pid
            ))
        })
        .expect("the Process line");
    assert_eq!(t[p + 1], "Stack:");
    assert!(t[p..].iter().any(|l| l.starts_with("Code: ")));
}
