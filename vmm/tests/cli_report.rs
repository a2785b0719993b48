//! What the command line shows: `-q` is one outcome line, op arguments that do not apply are
//! errors, a key in the wrong section is named as such, hook expectations can fail, and the
//! interactive `inspect` prompt works in a real pseudo-terminal with `$HOME` set.
mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lockvmm-clireport-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn write(name: &str, text: &str) -> PathBuf {
    let p = tmp(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn run(args: &[&str], out: &str) -> std::process::Output {
    common::lockvmm()
        .args(["run", "-q", "--out"])
        .arg(tmp(out))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn quiet_prints_one_outcome_line() {
    let out = run(&["scenarios/lbr_gfp.toml"], "quiet");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    // The line is the run's class and the first detection's CPU, from result.json.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp("quiet").join("result.json")).unwrap())
            .unwrap();
    let want = format!(
        "lockvmm: {} on CPU {} at",
        json["class"].as_str().unwrap(),
        json["lockups"][0]["cpu"]
    );
    assert!(text.starts_with(&want), "{text} vs {want}");
    assert!(
        std::fs::read_to_string(tmp("quiet").join("report.txt"))
            .unwrap()
            .contains("crash> bt"),
        "the report stays in the run directory"
    );
}

const HEAD: &str = "description = \"x\"\n[machine]\nvcpus = 2\n[[lock]]\nname = \"L\"\n";

fn assert_input_error(name: &str, body: &str, line: usize, wants: &[&str], not: &[&str]) {
    let p = write(name, &format!("{HEAD}{body}"));
    let out = run(&[p.to_str().unwrap()], &format!("{name}.out"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(&format!("{}:{line}:", p.display())), "{err}");
    for w in wants {
        assert!(err.contains(w), "`{w}` missing: {err}");
    }
    for n in not {
        assert!(!err.contains(n), "`{n}` present: {err}");
    }
}

#[test]
fn op_arguments_that_do_not_apply_are_errors() {
    let task = "[[task]]\ncomm = \"t\"\ncpu = 1\n";
    assert_input_error(
        "hog_mode.toml",
        &format!("{task}ops = [{{ op = \"hog\", mode = \"irqsave\" }}]\n"),
        9,
        &["`mode`", "takes no arguments"],
        &[],
    );
    assert_input_error(
        "softirq_lock.toml",
        &format!("{task}ops = [{{ op = \"raise_softirq\", lock = \"L\" }}]\n"),
        9,
        &["`lock`"],
        &[],
    );
    assert_input_error(
        "sleep_mode.toml",
        &format!("{task}ops = [{{ op = \"sleep\", ms = 5, mode = \"irq\" }}]\n"),
        9,
        &["unknown field `mode`"],
        &[],
    );
}

#[test]
fn a_key_in_the_wrong_section_is_named_not_misspelled() {
    assert_input_error(
        "action_ops.toml",
        "[[action]]\nat_time = 1.0\ncpu = 1\ndeliver = \"nmi\"\nops = []\n",
        10,
        &["`ops` belongs in [[task]]"],
        &["did you mean `cpu`"],
    );
}

#[test]
fn a_hook_expectation_the_run_contradicts_fails() {
    // The buggy kernel allocates on CPU 56 with interrupts enabled: count = 0 must fail.
    let src = std::fs::read_to_string(common::root("scenarios/lbr_gfp.toml")).unwrap();
    let p = write(
        "lbr_hooks.toml",
        &format!(
            "{src}\n[[expect.hooks]]\nhook = \"allocate_slab\"\ncpu = 56\nirqs = \"enabled\"\ncount = 0\n"
        ),
    );
    let out = run(&[p.to_str().unwrap()], "lbr_hooks");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL hook"), "{text}");
}

#[test]
fn the_interactive_inspect_prompt_works_in_a_pseudo_terminal() {
    let out = run(&["scenarios/hog_hard.toml"], "pty");
    assert_eq!(out.status.code(), Some(0));
    let vmcore = tmp("pty").join("vmcore");
    let home = tmp("home");
    std::fs::create_dir_all(&home).unwrap();
    // What `bt` must show: the one-shot command's first frame line.
    let one_shot = common::lockvmm()
        .args(["inspect"])
        .arg(&vmcore)
        .arg("bt")
        .output()
        .unwrap();
    let one_shot = String::from_utf8_lossy(&one_shot.stdout);
    let first_frame = one_shot
        .lines()
        .find(|l| l.contains(" #0 "))
        .unwrap()
        .to_string();
    // `script` gives the inspector a real terminal, so it shows its prompt and uses history.
    let cmd = format!(
        "{} inspect {}",
        env!("CARGO_BIN_EXE_lockvmm"),
        vmcore.display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("HOME", &home)
        .env("TERM", "dumb")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux/bsdutils");
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stdin.write_all(b"bt\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stdin.write_all(b"quit\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(text.contains("crash> "), "{text}");
    assert!(text.contains(first_frame.trim()), "{text}");
    let history = std::fs::read_to_string(home.join(".lockvmm_history")).unwrap();
    assert!(history.lines().any(|l| l == "bt"), "{history}");
}
