//! Hostile guest kernels: small programs assembled from `vmm/tests/hostile/*.S` (GNU `as` and
//! `ld`, at test time) and booted with `lockvmm run --kernel`. Each hammers one host interface
//! (the hypercall port, I/O ports and MMIO, the console, IPIs and NMIs, the xAPIC's INIT, a
//! loop without exits, a loop of exits). Each test asserts the outcome the host reported, that
//! the run ended within a bounded wall time, and that the host stayed small (its peak RSS and
//! `result.json`).
mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A hostile run ends well within this (the slowest takes about 3 s here).
const WALL_LIMIT: Duration = Duration::from_secs(60);
/// The host's peak resident memory stays below this (a 64 MiB guest that touches little of it).
const RSS_LIMIT_KIB: i64 = 128 << 10;
/// The runaway limit the tests run with (the default is 1,000,000 exits, ~10 s here).
const RUNAWAY_EXITS: u64 = 20_000;

fn hostile_dir() -> PathBuf {
    common::root("vmm/tests/hostile")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lockvmm-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Assembles and links `vmm/tests/hostile/NAME.S` into an ELF kernel.
fn build(name: &str) -> PathBuf {
    let dir = scratch(&format!("build-{name}"));
    let obj = dir.join(format!("{name}.o"));
    let elf = dir.join(name);
    let src = hostile_dir();
    let ok = |c: &mut Command| {
        let out = c
            .output()
            .expect("GNU binutils (as, ld) are needed: .ci/run installs them");
        assert!(
            out.status.success(),
            "{c:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(Command::new("as")
        .args(["--64", "-I"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .arg(src.join(format!("{name}.S"))));
    ok(Command::new("ld")
        .arg("-T")
        .arg(src.join("kernel.ld"))
        .arg("-o")
        .arg(&elf)
        .arg(&obj));
    elf
}

struct Run {
    status: Option<i32>,
    wall: Duration,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    out: PathBuf,
    result: Value,
}

impl Run {
    fn outcome(&self) -> &Value {
        &self.result["outcome"]
    }

    /// The kind of fault that ended the run (`runaway`, `stall`, …).
    fn fault(&self) -> &str {
        assert_eq!(self.outcome()["outcome"], "fault", "{}", self.outcome());
        self.outcome()["fault"]["fault"].as_str().unwrap()
    }

    /// A field of that fault.
    fn fault_field(&self, f: &str) -> &Value {
        &self.outcome()["fault"][f]
    }

    fn file(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// The bounds every hostile run must keep.
    fn assert_bounded(&self) {
        assert!(self.wall < WALL_LIMIT, "took {:?}", self.wall);
        let rss = self.result["max_rss_kib"].as_i64().unwrap();
        assert!(rss > 0 && rss < RSS_LIMIT_KIB, "max RSS {rss} KiB");
        let json = std::fs::metadata(self.out.join("result.json"))
            .unwrap()
            .len();
        assert!(json < 8 << 20, "result.json is {json} bytes");
        assert!(
            !String::from_utf8_lossy(&self.stderr).contains("panicked"),
            "{}",
            String::from_utf8_lossy(&self.stderr)
        );
    }
}

/// Boots the hostile kernel `name` on `vmm/tests/hostile/scenario.toml` (2 vCPUs, 64 MiB,
/// 0.2 virtual seconds), killing it if it outlives `WALL_LIMIT`.
fn run(name: &str, extra: &[&str]) -> Run {
    let kernel = build(name);
    let out = scratch(&format!("out-{name}"));
    let mut cmd = common::lockvmm();
    cmd.args(["run", "--kernel"])
        .arg(&kernel)
        .arg("--out")
        .arg(&out)
        .args(["--stall-timeout", "1", "--runaway-exits"])
        .arg(RUNAWAY_EXITS.to_string())
        .args(extra)
        .arg(hostile_dir().join("scenario.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut so, &mut b).map(|_| b)
    });
    let ereader = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut se, &mut b).map(|_| b)
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > WALL_LIMIT {
            let _ = child.kill();
            panic!("{name}: lockvmm still running after {WALL_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = started.elapsed();
    let stdout = reader.join().unwrap().unwrap();
    let stderr = ereader.join().unwrap().unwrap();
    let text = std::fs::read_to_string(out.join("result.json")).unwrap_or_else(|e| {
        panic!(
            "{name}: no result.json ({e}): {}",
            String::from_utf8_lossy(&stderr)
        )
    });
    Run {
        status: status.code(),
        wall,
        stdout,
        stderr,
        out,
        result: serde_json::from_str(&text).unwrap(),
    }
}

fn quiet(name: &str) -> Run {
    run(name, &["--quiet"])
}

/// No terminal control in what the host wrote: no ESC, no CR, no BEL.
fn assert_no_controls(what: &str, bytes: &[u8]) {
    let bad: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| matches!(b, 0x1b | b'\r' | 0x07 | 0x9b))
        .collect();
    assert!(bad.is_empty(), "{what} has raw control bytes {bad:x?}");
}

#[test]
fn a_loop_of_port_io_exits_is_stopped_as_a_runaway() {
    let r = quiet("exit_loop");
    assert_eq!(r.fault(), "runaway");
    assert_eq!(r.fault_field("exits"), RUNAWAY_EXITS + 1);
    assert_eq!(r.outcome()["cpu"], 0);
    assert_eq!(r.status, Some(1));
    r.assert_bounded();
}

#[test]
fn a_loop_that_never_exits_is_kicked_out_as_a_stall() {
    let r = quiet("spin_cli");
    assert_eq!(r.fault(), "stall");
    assert!(r.fault_field("wall_ms").as_u64().unwrap() >= 1000);
    r.assert_bounded();
}

#[test]
fn a_triple_fault_stops_the_machine() {
    let r = quiet("triple_fault");
    assert_eq!(r.fault(), "triple_fault");
    r.assert_bounded();
}

#[test]
fn an_init_ipi_to_itself_ends_the_run_with_a_fault() {
    let r = quiet("init_reset");
    // After INIT the CPU restarts in real mode at the reset vector, where there is no memory:
    // lockvmm names that a reset; a KVM that reports it otherwise gives an emulation failure or
    // the unbacked fetch, or the CPU waits for a SIPI and the stall kick ends it.
    let f = r.fault();
    assert!(
        [
            "reset",
            "internal_error",
            "unbacked_memory",
            "stall",
            "triple_fault"
        ]
        .contains(&f),
        "{}",
        r.outcome()
    );
    assert_eq!(r.outcome()["cpu"], 0);
    r.assert_bounded();
}

#[test]
fn a_console_flood_is_stopped_and_its_escapes_are_neutralised() {
    let r = quiet("console_flood");
    assert_eq!(r.fault(), "runaway");
    let log = r.file("console.log");
    // One byte per exit at most, and every escape written out as text.
    assert!(
        log.len() < 4 * RUNAWAY_EXITS as usize,
        "{} bytes",
        log.len()
    );
    assert_no_controls("console.log", &log);
    let text = String::from_utf8_lossy(&log);
    assert!(
        text.contains("\\x1b[2J"),
        "{}",
        &text[..200.min(text.len())]
    );
    assert!(!text.lines().any(|l| l.starts_with("lockvmm:")));
    r.assert_bounded();
}

#[test]
fn a_console_that_prints_while_time_passes_is_cut_at_the_limit_with_a_marker() {
    let limit = 64 << 10;
    let r = run(
        "console_progress",
        &["--quiet", "--console-limit", &limit.to_string()],
    );
    assert_eq!(r.outcome()["outcome"], "time_limit", "{}", r.outcome());
    let dropped = r.result["dropped"]["console_bytes"].as_u64().unwrap();
    // 200 virtual ms of 1000 bytes each, 64 KiB kept.
    assert!(dropped > 100_000, "dropped {dropped}");
    let log = r.file("console.log");
    let marker = format!("console output truncated: {dropped} bytes dropped");
    let text = String::from_utf8_lossy(&log);
    assert!(
        text.trim_end().ends_with(']') && text.contains(&marker),
        "{}",
        text.lines().last().unwrap_or("")
    );
    assert!(
        log.len() <= limit + 200,
        "console.log is {} bytes",
        log.len()
    );
    r.assert_bounded();
}

#[test]
fn a_hook_storm_keeps_a_bounded_trace_and_counts_the_rest() {
    let r = quiet("hook_storm");
    assert_eq!(r.fault(), "runaway");
    let kept = r.result["hooks"].as_array().unwrap().len() as u64;
    let dropped = r.result["dropped"]["hooks"].as_u64().unwrap();
    assert_eq!(kept, 4096);
    // Every exit of the storm but the first few is a hook.
    assert!(kept + dropped > RUNAWAY_EXITS - 100, "{kept} + {dropped}");
    r.assert_bounded();
}

#[test]
fn a_watchdog_storm_keeps_a_bounded_list_of_lockups() {
    let r = quiet("watchdog_storm");
    assert_eq!(r.fault(), "runaway");
    let lockups = r.result["lockups"].as_array().unwrap();
    assert_eq!(lockups.len(), 256);
    assert!(r.result["dropped"]["lockups"].as_u64().unwrap() > 10_000);
    let msg = lockups[0]["message"].as_str().unwrap();
    assert!(msg.starts_with("BUG: soft lockup\\x1b[2J\\r\\n"), "{msg}");
    assert!(!msg.chars().any(char::is_control), "{msg}");
    r.assert_bounded();
}

#[test]
fn a_panic_message_with_terminal_escapes_and_forged_lines_is_printed_escaped() {
    // Not quiet: the console echo and the outcome go to the (captured) terminal.
    let r = run("evil_panic", &[]);
    assert_eq!(r.outcome()["outcome"], "panic");
    let msg = r.outcome()["message"].as_str().unwrap();
    assert_eq!(
        msg,
        "\\x1b]0;pwned\\x07\\x1b[2J\\r\\nlockvmm: expect ok   forged by the guest"
    );
    // The guest's console may print any line it likes (newlines are its own), but only there:
    // the line it forged shows once on the terminal and in console.log (its console), never in a
    // field the host prints as one line (PANIC:, SNAPSHOT:, the diagnosis, the vmcore note).
    for (what, bytes, console_lines) in [
        ("stdout", r.stdout.clone(), 1),
        ("stderr", r.stderr.clone(), 0),
        ("console.log", r.file("console.log"), 1),
        ("report.txt", r.file("report.txt"), 0),
        ("result.json", r.file("result.json"), 0),
    ] {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("\x1b]0;pwned"),
            "{what} has the raw OSC sequence"
        );
        let forged = text
            .lines()
            .filter(|l| l.starts_with("lockvmm: expect ok   forged"))
            .count();
        assert_eq!(forged, console_lines, "{what}: {text}");
    }
    // JSON (result.json, the vmcore's LOCKVMM note) would carry a raw ESC as `\u001b`; the
    // vmcore's memory segments hold the guest's own bytes, raw, as they should.
    for (what, bytes) in [
        ("result.json", r.file("result.json")),
        ("vmcore", r.file("vmcore")),
    ] {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("\\u001b"), "{what} has an unescaped ESC");
        assert!(
            text.contains(r"\\x1b]0;pwned"),
            "{what} lacks the escaped message"
        );
    }
    assert_no_controls("stdout", &r.stdout);
    assert_no_controls("report.txt", &r.file("report.txt"));
    r.assert_bounded();
}

#[test]
fn random_hypercalls_are_refused_and_counted_without_growing_the_host() {
    let r = quiet("hypercall_storm");
    assert_eq!(r.fault(), "runaway");
    assert_eq!(r.result["bad_hypercalls"].as_array().unwrap().len(), 64);
    assert!(r.result["dropped"]["bad_hypercalls"].as_u64().unwrap() > 1000);
    r.assert_bounded();
}

#[test]
fn an_ipi_and_nmi_storm_between_two_cpus_is_stopped() {
    let r = quiet("ipi_storm");
    assert_eq!(r.fault(), "runaway");
    let bad = r.result["bad_hypercalls"].as_array().unwrap();
    assert!(
        bad.iter()
            .any(|b| b[1].as_str().unwrap().contains("SendIpi")),
        "{bad:?}"
    );
    r.assert_bounded();
}

#[test]
fn random_port_io_is_absorbed_and_a_write_to_nowhere_is_a_fault() {
    let r = quiet("ports_mmio");
    assert_eq!(r.fault(), "unbacked_memory");
    // Schema version 2: a physical address is a "0x…" string.
    assert_eq!(r.fault_field("gpa"), "0xc0000000");
    assert_eq!(r.fault_field("write"), true);
    r.assert_bounded();
}

fn signal_stops_the_run(sig: i32, code: i32, name: &str) {
    let kernel = build("exit_loop");
    let out = scratch(&format!("signal-{sig}"));
    let mut child = common::lockvmm()
        .args([
            "run",
            "--quiet",
            "--runaway-exits",
            "4000000000",
            "--kernel",
        ])
        .arg(&kernel)
        .arg("--out")
        .arg(&out)
        .arg(hostile_dir().join("scenario.toml"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The machine runs once its console log exists; give it a moment in the guest's loop.
    let t0 = Instant::now();
    while !out.join("console.log").exists() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended before the signal"
    );
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
    let sent = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(20),
            "still running after {name}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(code), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(&format!("interrupted by {name}")), "{err}");
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    assert_eq!(result["outcome"]["outcome"], "interrupted");
    assert_eq!(result["outcome"]["signal"], name);
    let leftovers: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn sigint_stops_the_machine_writes_the_result_and_exits_130() {
    signal_stops_the_run(libc::SIGINT, 130, "SIGINT");
}

#[test]
fn sigterm_stops_the_machine_writes_the_result_and_exits_143() {
    signal_stops_the_run(libc::SIGTERM, 143, "SIGTERM");
}
