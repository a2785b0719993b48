//! gdb and drgn on a run's vmcore (issue 16, items 5 and 6), checked against the snapshot: gdb
//! unwinds through the entry stubs' CFI (IRQ, exception and NMI frames) and the run's
//! vmlinux-gdb.py answers `lx-*` and short global names; drgn opens the vmcore with its
//! VMCOREINFO, reads globals and memory, and the run's lockvmm_drgn.py gives per-CPU registers
//! and stack traces.
mod common;

use std::path::Path;
use std::process::Command;

use lockvmm::memory::FrozenMemory;
use lockvmm::state::Regs;

/// One lbr_gfp run shared by the gdb and the drgn test (each only reads its vmcore; the drgn
/// test adds its own script file): a debug-build run with its vmcore costs seconds.
fn lbr() -> &'static common::Complete {
    static RUN: std::sync::OnceLock<common::Complete> = std::sync::OnceLock::new();
    RUN.get_or_init(|| common::run_complete("scenarios/lbr_gfp.toml"))
}

/// Runs gdb on a run directory with its vmlinux-gdb.py auto-loaded; each command's output is
/// preceded by a `=== N` line.
fn gdb(dir: &Path, commands: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("gdb");
    cmd.args(["-batch", "-nx", "-iex"])
        .arg(format!("add-auto-load-safe-path {}", dir.display()));
    for (i, c) in commands.iter().enumerate() {
        cmd.args(["-ex", &format!("echo === {i}\\n"), "-ex", c]);
    }
    let out = cmd
        .arg(dir.join("vmlinux"))
        .arg(dir.join("vmcore"))
        .output()
        .expect("gdb is required (.ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("Python Exception") && !errors.contains("Python"),
        "a Python error in the script:\n{text}\n{errors}"
    );
    let mut parts = Vec::new();
    for i in 0..commands.len() {
        let start = text
            .find(&format!("=== {i}\n"))
            .unwrap_or_else(|| panic!("no output for {}:\n{text}", commands[i]));
        let body = &text[start + format!("=== {i}\n").len()..];
        let end = body.find("\n=== ").map_or(body.len(), |e| e + 1);
        parts.push(body[..end].to_string());
    }
    parts
}

/// The function of each frame of a gdb `bt` (`#3  0x… in name (args) at …` or `#3  name (…`).
fn bt_functions(bt: &str) -> Vec<String> {
    bt.lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            let rest = l
                .split_once(char::is_whitespace)
                .map_or("", |x| x.1)
                .trim_start();
            let rest = rest
                .split_once(" in ")
                .map_or(rest, |(a, b)| if a.starts_with("0x") { b } else { rest });
            rest.split([' ', '(']).next().unwrap_or("").to_string()
        })
        .collect()
}

/// Asserts `names` appear in `frames` in this order (each an exact function name).
fn assert_in_order(frames: &[String], names: &[&str], text: &str) {
    let mut at = 0;
    for name in names {
        let pos = frames[at..]
            .iter()
            .position(|f| f == name)
            .unwrap_or_else(|| panic!("{name} not after frame {at} in:\n{text}"));
        at += pos + 1;
    }
}

#[test]
fn gdb_unwinds_cpu56_through_the_timer_interrupt_and_the_script_answers_like_linux() {
    let (r, done, dir) = lbr();
    assert!(dir.join("vmlinux-gdb.py").is_file() && dir.join("lockvmm_drgn.py").is_file());
    let a = common::analysis(r);
    let snap = r.snapshot.as_ref().unwrap();
    let mem = FrozenMemory {
        phys: &snap.memory,
        cr3: snap.cpus[0].sregs.cr3,
    };
    let report = done.report.as_ref().unwrap();
    let lock = common::elem_addr(r, "runqueues", 56) + common::member(r, "rq", "__lock");
    let word = mem.u32(lock).unwrap();
    let out = gdb(
        dir,
        &[
            "thread 57",
            "bt",
            "p runqueues[56].__lock",
            "lx-lockowner &runqueues[56].__lock",
            "lx-ps",
            "p $lx_per_cpu(\"runqueues\", 56).cpu",
            "p $lx_current(51).pid",
            "lx-dmesg",
            "thread 52",
            "bt",
        ],
    );
    // CPU 56: the tick's spin, the interrupt stub, then the interrupted allocation under the
    // scheduler: gdb crosses the IRQ frame through the stub's CFI.
    let frames = bt_functions(&out[1]);
    assert_in_order(
        &frames,
        &[
            "native_queued_spin_lock_slowpath",
            "scheduler_tick",
            "apic_timer_interrupt",
            "alloc_slab_page",
            "allocate_slab",
            "intel_pmu_lbr_add",
            "finish_task_switch",
            "kthread",
            "ret_from_fork",
        ],
        &out[1],
    );
    assert_eq!(
        frames.last().map(String::as_str),
        Some("ret_from_fork"),
        "{}",
        out[1]
    );
    assert!(
        frames
            .iter()
            .all(|f| !f.starts_with("core::") && !f.contains("::")),
        "library frames elided, Linux names: {frames:?}"
    );
    // The frame after the stub is the interrupted RIP the snapshot's exception frame has.
    let bt56 = a.backtrace(56);
    let (_, irq) = *bt56.exceptions().last().expect("CPU 56's IRQ frame");
    let after_stub = out[1]
        .lines()
        .skip_while(|l| !l.contains(" apic_timer_interrupt "))
        .nth(1)
        .unwrap();
    assert!(
        r.kernel.symbols.lookup(irq.rip).unwrap().name == "alloc_slab_page"
            && after_stub.contains("alloc_slab_page"),
        "{after_stub}"
    );

    // Short names and the lock word as the snapshot has it, with its owner.
    assert!(out[2].contains(&format!("{word:#010x}")), "{}", out[2]);
    assert!(out[2].contains("locked by CPU 56"), "{}", out[2]);
    let holder = report
        .locks
        .iter()
        .find(|w| w.cpu == 51)
        .and_then(|w| w.holder)
        .expect("the report names CPU 51's lock holder");
    let task = a.task_on(holder).unwrap();
    assert!(
        out[3].starts_with("runqueues[56].__lock at ")
            && out[3].contains(&format!(
                "locked by CPU {holder} ({}, PID {})",
                task.comm, task.pid
            )),
        "{}",
        out[3]
    );
    // lx-ps lists the report's tasks, the running ones marked.
    for bt in &report.backtraces {
        let t = bt.task.as_ref().unwrap();
        let line = out[4]
            .lines()
            .find(|l| l.contains(&format!("{:#x}", t.addr)))
            .unwrap_or_else(|| panic!("lx-ps lacks {}:\n{}", t.comm, out[4]));
        assert!(
            line.starts_with('>') && line.contains(&t.comm) && line.contains(&t.pid.to_string()),
            "{line}"
        );
    }
    let value = |s: &str| s.trim().split_once(" = ").map(|x| x.1.to_string());
    assert_eq!(value(&out[5]).as_deref(), Some("56"), "{}", out[5]);
    let crond = a.task_on(51).unwrap();
    assert_eq!(value(&out[6]), Some(crond.pid.to_string()), "{}", out[6]);
    // lx-dmesg prints the log the analysis reads.
    let dmesg: Vec<&str> = out[7].lines().collect();
    assert_eq!(dmesg, a.dmesg(), "lx-dmesg");
    // CPU 51 came from user space through the system call: the stub ends the kernel part.
    let frames51 = bt_functions(&out[9]);
    assert_in_order(
        &frames51,
        &[
            "native_queued_spin_lock_slowpath",
            "online_fair_sched_group",
            "do_syscall_64",
            "entry_SYSCALL_64_after_hwframe",
        ],
        &out[9],
    );
}

#[test]
fn gdb_reaches_run_timer_softirq_through_the_page_fault_in_seed_002() {
    let (r, _, dir) = common::run_complete("scenarios/timer_uaf.toml");
    let out = gdb(
        &dir,
        &[
            "thread 2",
            "bt",
            "frame function guest::kernel::time::timer::run_timer_softirq",
            "p/x $pc",
        ],
    );
    let frames = bt_functions(&out[1]);
    // The fault path spins; below the page-fault stub, the softirq that faulted; below the
    // timer interrupt's stub, the idle task the interrupt came in on, down to the boot stub.
    assert_in_order(
        &frames,
        &[
            // 3.10's ticket lock spins inside _raw_spin_lock_irqsave; 3.10's idle path.
            "_raw_spin_lock_irqsave",
            "no_context",
            "do_page_fault",
            "page_fault",
            "run_timer_softirq",
            "__do_softirq",
            "apic_timer_interrupt",
            "cpuidle_enter_state",
            "cpuidle_idle_call",
            "arch_cpu_idle",
            "cpu_startup_entry",
            "secondary_startup_64",
        ],
        &out[1],
    );
    assert!(!out[1].contains("corrupt stack"), "{}", out[1]);
    // The PC gdb has in run_timer_softirq is the faulting RIP the page fault saved (the stub
    // is a signal frame: no return-address adjustment).
    let a = common::analysis(&r);
    let bt = a.backtrace(1);
    let (_, fault) = bt
        .exceptions()
        .into_iter()
        .find(|(e, _)| *e == "page_fault")
        .unwrap();
    assert!(
        out[3].trim().ends_with(&format!("= {:#x}", fault.rip)),
        "{} vs {:#x}",
        out[3],
        fault.rip
    );
}

/// The registers gdb and drgn get for a CPU: the snapshot's, or for a CPU caught in the NMI
/// that reported it, the context the NMI interrupted (lockvmm::output::vmcore::thread_regs).
fn thread_regs(r: &lockvmm::RunResult, cpu: usize) -> Regs {
    let a = common::analysis(r);
    let bts: Vec<_> = (0..r.snapshot.as_ref().unwrap().cpus.len())
        .map(|c| a.backtrace(c))
        .collect();
    lockvmm::output::vmcore::thread_regs(&bts)
        .get(&cpu)
        .copied()
        .unwrap_or(r.snapshot.as_ref().unwrap().cpus[cpu].regs)
}

#[test]
fn drgn_opens_the_vmcore_with_its_vmcoreinfo_and_the_helpers_give_cpu_registers() {
    let (r, _, dir) = lbr();
    let script = dir.join("drgn-test.py");
    std::fs::write(
        &script,
        r#"
import json, sys
sys.path.insert(0, sys.argv[1])
exec(open(sys.argv[1] + "/lockvmm_drgn.py").read())
out = {"flags": str(prog.flags)}
rq = prog["guest::kernel::sched::core::runqueues"]
out["rq_addr"] = rq.address_
out["lock_word"] = prog["runqueues"][56].__lock.raw_lock.val.v.value.value_()
out["curr"] = prog["runqueues"][56].curr.v.value.value_()
out["read_u32"] = prog.read_u32(rq[56].address_of_().value_())
out["regs56"] = cpu_regs(56)
out["regs51"] = cpu_regs(51)
def frame_name(f):
    try:
        return f.name or f.symbol().name
    except LookupError:  # the frame past the outermost one has no PC
        return "???"
out["trace56"] = [frame_name(f) for f in cpu_stack_trace(56)]
try:
    prog.threads().__next__()
    out["threads"] = "ok"
except Exception as e:
    out["threads"] = "%s: %s" % (type(e).__name__, e)
print("JSON" + json.dumps(out))
"#,
    )
    .unwrap();
    let run = Command::new("drgn")
        .args(["-c"])
        .arg(dir.join("vmcore"))
        .arg("-s")
        .arg(dir.join("vmlinux"))
        .arg(&script)
        .arg(dir)
        .output()
        .expect("drgn is required (python3-drgn; .ci/run installs it)");
    let text =
        String::from_utf8_lossy(&run.stdout).into_owned() + &String::from_utf8_lossy(&run.stderr);
    let json = text
        .lines()
        .find_map(|l| l.strip_prefix("JSON"))
        .unwrap_or_else(|| panic!("drgn failed:\n{text}"));
    let v: serde_json::Value = serde_json::from_str(json).unwrap();

    // VMCOREINFO: drgn takes the core for a Linux kernel's, and this file for its vmlinux (it
    // looks for an .init.text section); only the Linux module list is missing.
    assert!(
        v["flags"].as_str().unwrap().contains("IS_LINUX_KERNEL"),
        "{v}"
    );
    assert!(!text.contains("could not find vmlinux"), "{text}");
    // Globals (qualified and short) and memory, as the snapshot has them.
    let snap = r.snapshot.as_ref().unwrap();
    let mem = FrozenMemory {
        phys: &snap.memory,
        cr3: snap.cpus[0].sregs.cr3,
    };
    let rq56 = common::elem_addr(r, "runqueues", 56);
    assert_eq!(v["rq_addr"], r.kernel.symbols.addr_of("runqueues").unwrap());
    assert_eq!(v["lock_word"], mem.u32(rq56).unwrap());
    assert_eq!(v["read_u32"], mem.u32(rq56).unwrap());
    let curr = common::analysis(r).task_on(56).unwrap().addr;
    assert_eq!(v["curr"], curr);
    // Per-CPU registers: what the vmcore's NT_PRSTATUS holds for gdb too.
    for (cpu, key) in [(56, "regs56"), (51, "regs51")] {
        let want = thread_regs(r, cpu);
        let got = &v[key];
        assert_eq!(got["ip"], want.rip, "CPU {cpu}");
        assert_eq!(got["sp"], want.rsp, "CPU {cpu}");
        assert_eq!(got["bp"], want.rbp, "CPU {cpu}");
        assert_eq!(got["di"], want.rdi, "CPU {cpu}");
        assert_eq!(got["flags"], want.rflags, "CPU {cpu}");
    }
    // CPU 51 is the NMI's: its registers are the spinning context the NMI interrupted.
    assert_ne!(thread_regs(r, 51).rip, snap.cpus[51].regs.rip);
    // drgn's unwinder crosses the IRQ frame too.
    let trace: Vec<String> = v["trace56"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = f.as_str().unwrap_or("");
            s.split('+').next().unwrap().to_string()
        })
        .collect();
    assert_in_order(
        &trace,
        &[
            "native_queued_spin_lock_slowpath",
            "apic_timer_interrupt",
            "alloc_slab_page",
            "intel_pmu_lbr_add",
            "finish_task_switch",
        ],
        &format!("{trace:?}"),
    );
    // What drgn cannot do: its threads are Linux tasks (documented in the README).
    assert!(
        v["threads"].as_str().unwrap().contains("init_task"),
        "{}",
        v["threads"]
    );
}
