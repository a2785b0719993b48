//! The command line against hostile surroundings and input: closed pipes and full disks, a
//! reused or shared run directory, devices that are not KVM, flags and scenarios past the
//! guest's limits. Each ends with one clear line (or quietly, for a closed pipe) and the
//! documented status.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lockvmm-hostile-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn scenario(name: &str, text: &[u8]) -> PathBuf {
    let p = tmp(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_lockvmm")
}

/// `sh -c SCRIPT` in the workspace, with `$LOCKVMM` set; prints `$?` of lockvmm as `rc=N`.
fn shell(script: &str) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("LOCKVMM", bin())
        .current_dir(common::root(""))
        .output()
        .unwrap()
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = common::lockvmm();
    cmd.arg("run").arg("--quiet").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_error(out: &Output, code: i32, wants: &[&str]) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for w in wants {
        assert!(err.contains(w), "`{w}` missing from: {err}");
    }
}

/// The status of lockvmm in a pipeline, from `rc=N` on the script's stdout.
fn rc(out: &Output) -> i32 {
    let so = text(&out.stdout);
    so.lines()
        .find_map(|l| l.strip_prefix("rc="))
        .unwrap_or_else(|| panic!("no rc in {so}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let out_dir = tmp("pipe-run");
    for (script, want_rc) in [
        (
            "$LOCKVMM list | head -1 >/dev/null; echo rc=${PIPESTATUS[0]}",
            0,
        ),
        (
            &format!(
                "$LOCKVMM run scenarios/boot.toml --vcpus 2 --out {} | head -1 >/dev/null; echo rc=${{PIPESTATUS[0]}}",
                s(&out_dir)
            )[..],
            0,
        ),
        (
            &format!(
                "$LOCKVMM run scenarios/boot.toml --vcpus 2 --json --out {} | head -c 10 >/dev/null; echo rc=${{PIPESTATUS[0]}}",
                s(&out_dir)
            )[..],
            0,
        ),
        (
            "echo 'bt -a' | $LOCKVMM inspect /nonexistent 2>/dev/null | head -1; echo rc=${PIPESTATUS[1]}",
            2,
        ),
    ] {
        let out = shell(script);
        let err = text(&out.stderr);
        assert!(err.is_empty(), "{script}: {err}");
        assert_eq!(rc(&out), want_rc, "{script}");
    }
    // The run still wrote its files.
    assert!(out_dir.join("result.json").exists());
}

#[test]
fn stdout_on_a_full_disk_is_one_line_and_status_3() {
    for args in [
        vec!["list".to_string()],
        vec![
            "run".into(),
            "-q".into(),
            "scenarios/boot.toml".into(),
            "--vcpus".into(),
            "2".into(),
            "--out".into(),
            s(&tmp("full-run")).into(),
        ],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = common::lockvmm()
            .args(&args)
            .stdout(Stdio::from(full))
            .output()
            .unwrap();
        assert_error(
            &out,
            3,
            &["cannot write to standard output", "No space left"],
        );
    }
}

#[test]
fn a_console_log_that_cannot_be_written_is_an_error() {
    let boot = common::root("scenarios/boot.toml");
    let out = run(
        &[
            s(&boot),
            "--vcpus",
            "2",
            "--log",
            "/dev/full",
            "--out",
            s(&tmp("log-full")),
        ],
        &[],
    );
    assert_error(&out, 3, &["cannot write the console log /dev/full"]);
}

#[test]
fn a_run_that_fails_to_start_leaves_no_run_directory() {
    let boot = common::root("scenarios/boot.toml");
    let dir = tmp("failed-start/run");
    // The console log cannot be created: the machine fails after the directory was claimed.
    let out = run(
        &[
            s(&boot),
            "--vcpus",
            "2",
            "--log",
            "/nonexistent/console.log",
            "--out",
            s(&dir),
        ],
        &[],
    );
    assert_error(&out, 3, &["/nonexistent/console.log"]);
    assert!(
        !dir.exists() && !dir.parent().unwrap().exists(),
        "{} is left",
        dir.display()
    );
}

#[test]
fn a_reused_run_directory_keeps_nothing_of_the_earlier_run() {
    let dir = tmp("reused");
    let out = run(&["scenarios/hog_hard.toml", "--out", s(&dir)], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(dir.join("vmcore").exists() && dir.join("report.txt").exists());
    // A temporary file a killed run left.
    std::fs::write(dir.join(".vmcore.tmp.999999"), b"half").unwrap();
    let boot = common::root("scenarios/boot.toml");
    let out = run(&[s(&boot), "--vcpus", "2", "--out", s(&dir)], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for stale in ["vmcore", "vmlinux", "report.txt", ".vmcore.tmp.999999"] {
        assert!(
            !dir.join(stale).exists(),
            "{stale} of the earlier run is still there"
        );
    }
    let result = std::fs::read_to_string(dir.join("result.json")).unwrap();
    assert!(result.contains("\"scenario\": \"boot\""), "{result}");
}

#[test]
fn a_second_run_into_a_busy_run_directory_is_refused() {
    let dir = tmp("busy");
    // The first run spins without yielding until its 30 s stall timeout: long enough.
    let mut first = common::lockvmm()
        .args([
            "run",
            "-q",
            "vmm/tests/scenarios/stall.toml",
            "--out",
            s(&dir),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !dir.join("console.log").exists() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let boot = common::root("scenarios/boot.toml");
    let second = run(&[s(&boot), "--vcpus", "2", "--out", s(&dir)], &[]);
    // SAFETY: kill(2) of our own child; SIGTERM stops it cleanly.
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    let status = first.wait().unwrap();
    assert_error(
        &second,
        3,
        &[
            "another lockvmm run",
            &format!("pid {}", first.id()),
            s(&dir),
        ],
    );
    assert_eq!(status.code(), Some(143));
}

#[test]
fn kvm_devices_that_are_not_kvm_are_named_as_such() {
    let boot = common::root("scenarios/boot.toml");
    let file = tmp("not-kvm");
    std::fs::write(&file, b"").unwrap();
    let fifo = tmp("kvm-fifo");
    let _ = std::fs::remove_file(&fifo);
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: mkfifo(3) with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for dev in ["/dev/null", s(&file), s(&fifo), "/tmp"] {
        let out = run(
            &[s(&boot), "--out", s(&tmp("nokvm"))],
            &[("LOCKVMM_KVM_DEVICE", dev)],
        );
        assert_error(&out, 3, &[&format!("{dev} is not a KVM device")]);
    }
    let out = run(
        &[s(&boot), "--out", s(&tmp("nokvm"))],
        &[("LOCKVMM_KVM_DEVICE", "")],
    );
    assert_error(&out, 3, &["LOCKVMM_KVM_DEVICE is set but empty"]);
    assert!(
        !tmp("nokvm").exists(),
        "a failed run left its run directory"
    );
}

#[test]
fn vcpus_flags_out_of_range_are_blamed_on_the_flag() {
    let boot = common::root("scenarios/boot.toml");
    for (flag, want) in [
        ("0", "at least 1"),
        ("18446744073709551615", "at most 255"),
        ("256", "at most 255"),
    ] {
        let out = run(&[s(&boot), "--vcpus", flag, "--out", s(&tmp("vcpus"))], &[]);
        assert_error(&out, 2, &[&format!("--vcpus {flag}:"), want]);
        assert!(
            !text(&out.stderr).contains("boot.toml"),
            "{}",
            text(&out.stderr)
        );
    }
}

fn task(i: usize, extra: &str) -> String {
    format!("[[task]]\ncomm = \"t{i}\"\ncpu = 1\n{extra}\n")
}

const HEAD: &str = "description = \"x\"\n[machine]\nvcpus = 4\n";

#[test]
fn scenarios_past_the_guests_limits_are_refused_at_their_line() {
    // 314 tasks fit (574 task slots, less 255 idle tasks, 4 watchdog threads and khungtaskd);
    // 315 do not.
    let fits: String = HEAD.to_string() + &(0..314).map(|i| task(i, "")).collect::<String>();
    assert!(lockvmm::LoadedScenario::parse(Path::new("t.toml"), fits).is_ok());
    let many: String = HEAD.to_string() + &(0..315).map(|i| task(i, "")).collect::<String>();
    let p = scenario("tasks.toml", many.as_bytes());
    let line = HEAD.lines().count() + 314 * 4 + 1;
    assert_error(
        &run(&[s(&p)], &[]),
        2,
        &[&format!("{}:{line}:", s(&p)), "at most 314"],
    );

    for (name, body, line, want) in [
        (
            "prio0.toml",
            task(0, "policy = \"SCHED_FIFO\"\nrt_priority = 0"),
            8,
            "1 to 99",
        ),
        (
            "prio-1.toml",
            task(0, "policy = \"SCHED_FIFO\"\nrt_priority = -1"),
            8,
            "1 to 99",
        ),
        (
            "prio32.toml",
            task(0, "policy = \"SCHED_FIFO\"\nrt_priority = 4294967296"),
            8,
            "1 to 99",
        ),
        (
            "prio_normal.toml",
            task(0, "rt_priority = 50"),
            7,
            "SCHED_FIFO",
        ),
        (
            "lockup_cpus.toml",
            "[expect]\nlockup_cpus = [100000, -5]\n".to_string(),
            5,
            "CPU 100000 does not exist",
        ),
        (
            "pids.toml",
            task(0, "pid = 7") + &task(1, "pid = 7"),
            11,
            "pid 7 is already task #1's",
        ),
        (
            "printk.toml",
            task(
                0,
                "ops = [{ op = \"printk\", lines = \"18446744073709551615\" }]",
            ),
            7,
            "at most 10000",
        ),
    ] {
        let p = scenario(name, (HEAD.to_string() + &body).as_bytes());
        assert_error(
            &run(&[s(&p)], &[]),
            2,
            &[&format!("{}:{line}:", s(&p)), want],
        );
    }
}

#[test]
fn invalid_utf8_in_a_scenario_is_located() {
    let p = scenario(
        "utf8.toml",
        b"description = \"x\"\n[machine]\nvcpus = 2 # caf\xe9\n",
    );
    assert_error(
        &run(&[s(&p)], &[]),
        2,
        &[&format!("{}:3:16:", s(&p)), "invalid UTF-8"],
    );
}

#[test]
fn a_program_too_big_for_the_guest_is_located() {
    let ops: String = std::iter::repeat_n("{op=\"irq_enable\"},", 400_000).collect();
    let src = format!("{HEAD}[[task]]\ncomm = \"t\"\ncpu = 1\nops = [\n{ops}]\n");
    let p = scenario("big.toml", src.as_bytes());
    assert_error(
        &run(&[s(&p)], &[]),
        2,
        &[&format!("{}:8:", s(&p)), "too big"],
    );
}
