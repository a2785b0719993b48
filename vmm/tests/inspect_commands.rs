//! `lockvmm inspect`'s crash commands (issue 16, item 7) on real vmcores, each checked against
//! the captured state: the snapshot's memory and registers, the DWARF, and the analysis.
mod common;

use std::sync::OnceLock;

use lockvmm::inspect::Inspector;
use lockvmm::memory::FrozenMemory;
use lockvmm::state::BtItem;

/// One lbr_gfp run shared by the tests of this file (64 CPUs: a spinning NMI context on CPU 51,
/// a hardirq one on CPU 56, idle CPUs).
fn lbr() -> &'static common::Complete {
    static RUN: OnceLock<common::Complete> = OnceLock::new();
    RUN.get_or_init(|| common::run_complete("scenarios/lbr_gfp.toml"))
}

fn inspector(dir: &std::path::Path) -> Inspector {
    Inspector::open(&dir.join("vmcore"), None).expect("the vmcore reads back")
}

fn mem(r: &lockvmm::RunResult) -> FrozenMemory<'_> {
    let snap = r.snapshot.as_ref().unwrap();
    FrozenMemory {
        phys: &snap.memory,
        cr3: snap.cpus[0].sregs.cr3,
    }
}

#[test]
fn runq_shows_rq_curr_and_counters_from_memory() {
    let (r, _, dir) = lbr();
    let insp = inspector(dir);
    let a = common::analysis(r);
    let out = insp.exec("runq -c 56").unwrap();
    let curr = a.task_on(56).unwrap();
    assert!(
        out.contains(&format!(
            "  CURRENT: PID: {:<5}  TASK: {:x}  COMMAND: \"{}\"",
            curr.pid, curr.addr, curr.comm
        )),
        "{out}"
    );
    let rq = common::elem_addr(r, "runqueues", 56);
    assert!(
        out.starts_with(&format!("CPU 56 RUNQUEUE: {rq:x}\n")),
        "{out}"
    );
    let nr = mem(r)
        .u32(rq + common::member(r, "rq", "nr_running"))
        .unwrap();
    let switches = mem(r)
        .u64(rq + common::member(r, "rq", "nr_switches"))
        .unwrap();
    assert!(
        out.contains(&format!("  NR_RUNNING: {nr}  NR_SWITCHES: {switches}  ")),
        "{out}"
    );
    let all = insp.exec("runq").unwrap();
    assert_eq!(all.matches(" RUNQUEUE: ").count(), 64);
}

#[test]
fn runq_lists_the_rt_task_the_hog_keeps_off_the_cpu() {
    let (r, _, dir) = common::run_complete("scenarios/rt_fifo99.toml");
    let a = common::analysis(&r);
    let out = inspector(&dir).exec("runq -c 2").unwrap();
    let rq = a.runqueue(2).unwrap();
    // The queue as the list in memory has it: rq->rt_head points at the first task.
    let head = mem(&r)
        .u64(common::elem_addr(&r, "runqueues", 2) + common::member(&r, "rq", "rt_head"))
        .unwrap();
    assert_eq!(rq.rt.tasks.first().map(|t| t.info.addr), Some(head));
    let waiting = &rq.rt.tasks[0];
    assert_eq!(waiting.info.comm, "watchdog/2");
    assert!(
        out.contains(&format!(
            "     [  0] PID: {:<5}  TASK: {:x}  COMMAND: \"watchdog/2\"",
            waiting.info.pid, waiting.info.addr
        )),
        "{out}"
    );
    assert!(
        out.contains("CFS QUEUE: ") && out.contains("[no tasks queued]"),
        "{out}"
    );
}

#[test]
fn dis_shows_the_instruction_cpu51_was_spinning_at() {
    let (r, done, dir) = lbr();
    let insp = inspector(dir);
    let report = done.report.as_ref().unwrap();
    let (_, regs) = *report.backtraces[0].exceptions().last().unwrap();
    let f = r
        .kernel
        .symbols
        .get("native_queued_spin_lock_slowpath")
        .unwrap();
    assert!((f.addr..f.addr + f.size).contains(&regs.rip));
    let out = insp.exec("dis native_queued_spin_lock_slowpath").unwrap();
    let at = format!(
        "{:#x} <native_queued_spin_lock_slowpath+{}>:\t",
        regs.rip,
        regs.rip - f.addr
    );
    assert!(
        out.lines().any(|l| l.starts_with(&at)),
        "{at} not in:\n{out}"
    );
    // Every instruction boundary agrees with objdump's decoding of the same bytes.
    let objdump = std::process::Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(format!("--start-address={:#x}", f.addr))
        .arg(format!("--stop-address={:#x}", f.addr + f.size))
        .arg(dir.join("vmlinux"))
        .output()
        .expect("objdump");
    let theirs: Vec<u64> = String::from_utf8_lossy(&objdump.stdout)
        .lines()
        .filter_map(|l| u64::from_str_radix(l.trim().split(':').next()?, 16).ok())
        .collect();
    let ours: Vec<u64> = out
        .lines()
        .filter_map(|l| u64::from_str_radix(l.split(' ').next()?.trim_start_matches("0x"), 16).ok())
        .collect();
    assert!(ours.len() > 20 && ours == theirs, "{ours:x?}\n{theirs:x?}");
    // A call names its target; -l puts source lines before the instructions.
    let lock = insp.exec("dis _raw_spin_lock").unwrap();
    assert!(
        lock.contains("call   0x") && lock.contains(" <native_queued_spin_lock_slowpath>"),
        "{lock}"
    );
    let with_lines = insp
        .exec("dis -l native_queued_spin_lock_slowpath")
        .unwrap();
    assert!(
        with_lines
            .lines()
            .any(|l| l.starts_with("src/kernel/locking/qspinlock.rs: ")),
        "{with_lines}"
    );
    // COUNT instructions from an address; -r from the function's start to the address.
    assert_eq!(
        insp.exec(&format!("dis {:x} 3", regs.rip))
            .unwrap()
            .lines()
            .count(),
        3
    );
    let rev = insp.exec(&format!("dis -r {:x}", regs.rip)).unwrap();
    assert!(
        rev.lines()
            .next()
            .unwrap()
            .starts_with(&format!("{:#x} <", f.addr))
    );
    assert!(rev.lines().last().unwrap().starts_with(&at), "{rev}");
    assert!(insp.exec("dis ffffffffa88b5000").is_err());
}

#[test]
fn bt_f_dumps_the_stack_words_of_each_frame() {
    let (r, _, dir) = lbr();
    let insp = inspector(dir);
    let out = insp.exec("bt -f -c 56").unwrap();
    let bt = common::analysis(r).backtrace(56);
    let frames: Vec<(u64, u64)> = bt
        .items
        .iter()
        .filter_map(|i| match i {
            BtItem::Frame { sp, pc, .. } => Some((*sp, *pc)),
            _ => None,
        })
        .collect();
    let m = mem(r);
    let mut checked = 0;
    for w in frames.windows(2) {
        let ((sp0, _), (sp1, pc1)) = (w[0], w[1]);
        if sp1 <= sp0 || sp1 - sp0 > 256 {
            continue; // another stack, or past a saved context
        }
        // The words from sp0 + 8 up to sp1 are shown, two a line; the last is the return
        // address of the next frame.
        let mut at = sp0 + 8;
        while at <= sp1 {
            let line = out
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{at:x}: ")))
                .unwrap_or_else(|| panic!("no line for {at:x}:\n{out}"));
            assert!(
                line.contains(&format!("{:016x}", m.u64(at).unwrap())),
                "{line}"
            );
            at += 16;
        }
        let words: String = out.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(words.contains(&format!("{pc1:016x}")));
        checked += 1;
    }
    assert!(checked >= 10, "{out}");
    // -F names the return addresses.
    let sym = insp.exec("bt -F -c 56").unwrap();
    assert!(sym.contains("_raw_spin_lock+"), "{sym}");
}

#[test]
fn bt_a_leaves_out_idle_cpus_unless_asked() {
    let (r, _, dir) = lbr();
    let insp = inspector(dir);
    let a = common::analysis(r);
    let waits = a.lock_waits();
    let busy: Vec<usize> = (0..64)
        .filter(|&c| !a.is_idle(&a.backtrace(c), &waits))
        .collect();
    assert!(
        busy.contains(&51) && busy.contains(&56) && busy.len() < 64,
        "{busy:?}"
    );
    let out = insp.exec("bt -a").unwrap();
    let cpus: Vec<usize> = out
        .lines()
        .filter(|l| l.starts_with("PID: "))
        .map(|l| {
            l.split("CPU: ")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(cpus, busy);
    assert!(out.contains("(idle: CPUs 0-50,52-55,57-63;"), "{out}");
    assert_eq!(insp.exec("bt -a -n idle").unwrap(), out);
    let all = insp.exec("bt -a --idle").unwrap();
    assert_eq!(all.lines().filter(|l| l.starts_with("PID: ")).count(), 64);
    let some = insp.exec("bt -c 51,56").unwrap();
    assert_eq!(some.lines().filter(|l| l.starts_with("PID: ")).count(), 2);
}

#[test]
fn irq_shows_the_lapic_vectors_the_snapshot_has() {
    let (r, _, dir) = lbr();
    let insp = inspector(dir);
    let snap = r.snapshot.as_ref().unwrap();
    let out = insp.exec("irq").unwrap();
    let list = |v: &[u8]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        if v.is_empty() {
            "-".to_string()
        } else {
            v.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
        }
    };
    let mut pending = 0;
    for c in &snap.cpus {
        let row = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(&c.cpu.to_string()))
            .unwrap();
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[2], format!("{:02x}", c.lapic.tpr), "{row}");
        assert_eq!(cols[4], list(&c.lapic.isr), "{row}");
        assert_eq!(cols[5], list(&c.lapic.irr), "{row}");
        pending += c.lapic.irr.len() + c.lapic.isr.len();
    }
    assert!(
        pending > 0,
        "the snapshot has vectors pending somewhere:\n{out}"
    );
    // The IDT from memory: each vector's entry stub.
    let idt = insp.exec("irq -d").unwrap();
    assert!(idt.contains("\n [14] page_fault\n") && idt.contains("\n[236] apic_timer_interrupt\n"));
    assert!(idt.contains("\n  [2] nmi\n"), "{idt}");
    let timer = insp.exec("irq 236").unwrap();
    for c in snap.cpus.iter().filter(|c| c.lapic.irr.contains(&236)) {
        assert!(
            timer.contains(&format!("CPU {}: requested (IRR)", c.cpu)),
            "{timer}"
        );
    }
}

#[test]
fn timer_walks_the_wheel_to_seed_002s_freed_timer_and_lists_hrtimers() {
    let (r, _, dir) = common::run_complete("scenarios/timer_uaf.toml");
    let insp = inspector(&dir);
    let a = common::analysis(&r);
    let out = insp.exec("timer").unwrap();
    assert!(out.starts_with(&format!(
        "JIFFIES\n{:>7}\n",
        r.snapshot.as_ref().unwrap().vtime_ns / 10_000_000
    )));
    // CPU 1's base: its lock is held (the fault path spins on it) and its first timer is the
    // unloaded module's, whose memory is gone.
    let base = common::elem_addr(&r, "timer_bases", 1);
    let first = mem(&r)
        .u64(base + common::member(&r, "timer_base", "first"))
        .unwrap();
    let cpu1 = insp.exec("timer -c 1").unwrap();
    assert!(
        cpu1.contains(&format!("TIMER_BASES[1][BASE_STD]: {base:x}")),
        "{cpu1}"
    );
    assert!(cpu1.contains("(base->lock is held by CPU 1)"), "{cpu1}");
    assert!(
        cpu1.contains(&format!("(stopped: timer at {first:#x} is not readable)")),
        "{cpu1}"
    );
    // hrtimers: each CPU's list from hrtimer_bases[cpu].head, with the callback named.
    let hr = insp.exec("timer -r").unwrap();
    let mut rows = 0;
    for c in 0..2 {
        let b = a.hrtimer_base(c).unwrap();
        let head = mem(&r)
            .u64(b.addr + common::member(&r, "hrtimer_cpu_base", "head"))
            .unwrap();
        assert_eq!(b.timers.first().map_or(0, |t| t.addr), head);
        for t in &b.timers {
            let name = r.kernel.symbols.lookup(t.function).unwrap().name;
            assert!(
                hr.contains(&format!("{:016x}  {:016x}  <{name}>", t.addr, t.function)),
                "{hr}"
            );
            rows += 1;
        }
    }
    assert!(rows > 0, "{hr}");
}

#[test]
fn foreach_bt_walks_every_task_running_or_switched_out() {
    let (r, _, dir) = lbr();
    let insp = inspector(dir);
    let a = common::analysis(r);
    let all = insp.exec("foreach bt").unwrap();
    assert_eq!(
        all.lines().filter(|l| l.starts_with("PID: ")).count(),
        a.tasks().len()
    );
    // A running task's stack is its CPU's.
    assert_eq!(
        insp.exec("foreach perf bt").unwrap(),
        insp.exec("bt -c 56").unwrap()
    );
    // A sleeping watchdog thread: from its switch frame down to ret_from_fork.
    let w = insp.exec("foreach watchdog/3 bt").unwrap();
    let fns: Vec<&str> = w
        .lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(fns.last(), Some(&"ret_from_fork"), "{w}");
    assert!(
        fns.contains(&"schedule") && fns.contains(&"watchdog"),
        "{w}"
    );
    let sleeping = insp.exec("foreach IN bt").unwrap();
    assert!(sleeping.contains("watchdog/0") && !sleeping.contains("\"perf\""));
    assert!(insp.exec("foreach nobody bt").is_err());
}

#[test]
fn p_and_struct_reach_members_through_the_dwarf() {
    let (r, _, dir) = lbr();
    let insp = inspector(dir);
    let m = mem(r);
    let rq = common::elem_addr(r, "runqueues", 56);
    let word = m.u32(rq).unwrap();
    let p = insp.exec("p runqueues[56].__lock").unwrap();
    assert_eq!(
        p,
        format!(
            "runqueues[56].__lock @ {rq:016x} (raw_spinlock_t) = {word:#010x} (locked by CPU 56)\n"
        )
    );
    let nr_off = common::member(r, "rq", "nr_running");
    let nr = insp.exec("p runqueues[56].nr_running").unwrap();
    assert!(
        nr.ends_with(&format!("= {:#x}\n", m.u32(rq + nr_off).unwrap())),
        "{nr}"
    );
    assert_eq!(
        insp.exec(&format!("struct rq.__lock {rq:x}")).unwrap(),
        format!("  __lock = {word:#010x} (locked by CPU 56)\n")
    );
    assert_eq!(
        insp.exec("struct rq.nr_running -o").unwrap(),
        format!("struct rq {{\n  [{nr_off}] unsigned int nr_running;\n}}\n")
    );
    assert!(
        insp.exec("p runqueues[255]")
            .unwrap_err()
            .contains("out of range")
    );
    assert!(
        insp.exec("p runqueues[1].no_such")
            .unwrap_err()
            .contains("no member no_such")
    );
}

#[test]
fn sym_takes_name_plus_offset() {
    let (r, _, dir) = lbr();
    let insp = inspector(dir);
    let f = r
        .kernel
        .symbols
        .addr_of("native_queued_spin_lock_slowpath")
        .unwrap();
    for arg in [
        "native_queued_spin_lock_slowpath+496",
        "native_queued_spin_lock_slowpath+0x1f0",
    ] {
        let out = insp.exec(&format!("sym {arg}")).unwrap();
        assert!(
            out.starts_with(&format!(
                "{:016x} (T) native_queued_spin_lock_slowpath+496 ",
                f + 496
            )),
            "{out}"
        );
    }
}

#[test]
fn rd_reads_8_16_32_and_64_bit_units_with_the_ascii_column() {
    let (r, _, dir) = lbr();
    let insp = inspector(dir);
    let m = mem(r);
    let rq = common::elem_addr(r, "runqueues", 56);
    let out = insp.exec("rd -32 runqueues[56].__lock 8").unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for (l, line) in lines.iter().enumerate() {
        let at = rq + 16 * l as u64;
        let bytes = m.read(at, 16).unwrap();
        let words: Vec<String> = bytes
            .chunks(4)
            .map(|c| format!("{:08x}", u32::from_le_bytes(c.try_into().unwrap())))
            .collect();
        let ascii: String = bytes
            .iter()
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        assert_eq!(
            *line,
            format!("{at:016x}:  {}   {ascii}", words.join(" ")).trim_end()
        );
    }
    // The log buffer reads as text in the ASCII column.
    let log = insp.exec("rd -8 __log_buf 64").unwrap();
    assert!(log.contains("Linux version 6."), "{log}");
    assert!(
        log.lines()
            .next()
            .unwrap()
            .split("  ")
            .nth(1)
            .unwrap()
            .split(' ')
            .all(|b| b.len() == 2)
    );
    let h = insp.exec(&format!("rd -16 {rq:x} 3")).unwrap();
    let b = m.read(rq, 6).unwrap();
    assert!(
        h.starts_with(&format!(
            "{rq:016x}:  {:04x} {:04x} {:04x} ",
            u16::from_le_bytes([b[0], b[1]]),
            u16::from_le_bytes([b[2], b[3]]),
            u16::from_le_bytes([b[4], b[5]])
        )),
        "{h}"
    );
    assert!(
        !insp
            .exec(&format!("rd -x {rq:x} 2"))
            .unwrap()
            .contains("  ."),
        "no ASCII with -x"
    );
    let err = insp.exec("rd -32 ffffffffa88b53b0").unwrap_err();
    assert!(
        err.contains("invalid kernel virtual address: ffffffffa88b53b0  type: \"32-bit KVADDR\""),
        "{err}"
    );
}

#[test]
fn pipes_grep_any_commands_output() {
    let (r, _, dir) = lbr();
    let insp = inspector(dir);
    let bt = insp.exec("bt -a").unwrap();
    let grepped = insp.exec("bt -a | grep exception RIP").unwrap();
    let want: Vec<&str> = bt.lines().filter(|l| l.contains("exception RIP")).collect();
    assert_eq!(grepped.lines().collect::<Vec<_>>(), want);
    assert!(want.len() >= 3);
    let n = common::analysis(r)
        .tasks()
        .iter()
        .filter(|t| t.info.comm.starts_with("watchdog/"))
        .count();
    assert_eq!(
        insp.exec("ps | grep -c watchdog/").unwrap(),
        format!("{n}\n")
    );
    assert_eq!(
        insp.exec("ps | grep -v watchdog | grep -w perf | head -1")
            .unwrap()
            .lines()
            .count(),
        1
    );
    assert!(insp.exec("ps | sort").is_err());
}

#[test]
fn every_command_has_help_and_the_banner_names_the_release() {
    let (r, _, dir) = lbr();
    let insp = inspector(dir);
    for cmd in lockvmm::inspect::command_names() {
        let h = insp.exec(&format!("help {cmd}")).unwrap();
        assert!(h.starts_with(&format!("NAME\n  {cmd} - ")), "{h}");
        assert!(
            h.contains("\nSYNOPSIS\n  ") && h.contains("\nDESCRIPTION\n  "),
            "{h}"
        );
        if cmd != "quit" {
            let e = insp.exec(cmd).err().unwrap_or_default();
            assert!(!e.contains("command not found"), "{cmd}: {e}");
        }
    }
    assert!(insp.exec("help nosuch").is_err());
    // VMCOREINFO's OSRELEASE is the release the guest's banner prints.
    let first = common::analysis(r).dmesg()[0].clone();
    assert!(
        first.contains(&format!("Linux version {} (", lockvmm_abi::UTS_RELEASE)),
        "{first}"
    );
}
