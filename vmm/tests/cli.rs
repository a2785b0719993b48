//! Bad input and a bad environment: a one-line error naming what is wrong, the documented
//! exit status, and no panic.
mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lockvmm-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn scenario(name: &str, text: &str) -> PathBuf {
    let p = tmp(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = common::lockvmm();
    cmd.arg("run").arg("--quiet").arg("--out").arg(tmp("out"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Exit status `code`, exactly one line on stderr containing every piece of `wants`, no panic.
fn assert_error(out: &Output, code: i32, wants: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    for w in wants {
        assert!(err.contains(w), "`{w}` missing from: {err}");
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn missing_scenario_file() {
    let p = tmp("does-not-exist.toml");
    assert_error(
        &run(&[path_str(&p)], &[]),
        2,
        &[path_str(&p), "No such file"],
    );
}

#[test]
fn malformed_toml_names_line_and_column() {
    let p = scenario(
        "syntax.toml",
        "description = \"x\"\n[machine]\nvcpus = = 2\n",
    );
    assert_error(
        &run(&[path_str(&p)], &[]),
        2,
        &[&format!("{}:3:", path_str(&p))],
    );
}

#[test]
fn unknown_key_suggests_the_nearest_valid_one() {
    let p = scenario("typo.toml", "description = \"x\"\n[machine]\nvcpu = 2\n");
    assert_error(
        &run(&[path_str(&p)], &[]),
        2,
        &[&format!("{}:3:1:", path_str(&p)), "did you mean `vcpus`?"],
    );
}

#[test]
fn zero_vcpus_in_the_file() {
    let p = scenario("zero.toml", "description = \"x\"\n[machine]\nvcpus = 0\n");
    assert_error(
        &run(&[path_str(&p)], &[]),
        2,
        &[&format!("{}:3:9:", path_str(&p)), "at least 1"],
    );
}

#[test]
fn zero_vcpus_on_the_command_line() {
    let boot = common::root("scenarios/boot.toml");
    assert_error(
        &run(&[path_str(&boot), "--vcpus", "0"], &[]),
        2,
        &["at least 1"],
    );
}

#[test]
fn more_vcpus_than_kvm_allows_in_the_file() {
    let p = scenario(
        "huge.toml",
        "description = \"x\"\n[machine]\nvcpus = 100000\n",
    );
    assert_error(
        &run(&[path_str(&p)], &[]),
        2,
        &[&format!("{}:3:9:", path_str(&p)), "at most"],
    );
}

#[test]
fn more_vcpus_than_kvm_allows_on_the_command_line() {
    let boot = common::root("scenarios/boot.toml");
    assert_error(
        &run(&[path_str(&boot), "--vcpus", "4096"], &[]),
        2,
        &["--vcpus 4096", "at most"],
    );
}

#[test]
fn missing_kvm_device() {
    let boot = common::root("scenarios/boot.toml");
    let out = run(
        &[path_str(&boot)],
        &[("LOCKVMM_KVM_DEVICE", "/nonexistent/kvm")],
    );
    assert_error(&out, 3, &["/nonexistent/kvm does not exist"]);
}

#[test]
fn no_permission_on_kvm_device() {
    let boot = common::root("scenarios/boot.toml");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let out = if root {
        // Root may open anything: drop to nobody, who cannot open /dev/kvm (mode 0600 root).
        let meta = std::fs::metadata("/dev/kvm").unwrap();
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o006 != 0 {
            eprintln!("skipped: /dev/kvm is open to everyone here");
            return;
        }
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_lockvmm"))
            .args(["run", "--quiet", "--out", "/tmp", path_str(&boot)])
            .output()
            .expect("setpriv (util-linux) is needed for this test when run as root")
    } else {
        let dev = tmp("kvm-no-access");
        std::fs::write(&dev, "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dev, std::fs::Permissions::from_mode(0o000)).unwrap();
        run(
            &[path_str(&boot)],
            &[("LOCKVMM_KVM_DEVICE", path_str(&dev))],
        )
    };
    assert_error(&out, 3, &["no permission to open", "`kvm` group"]);
}

#[test]
fn unknown_lock_suggests_the_declared_one() {
    let p = scenario(
        "lockname.toml",
        "description = \"x\"\n[machine]\nvcpus = 2\n[[lock]]\nname = \"lock_a\"\n[[task]]\ncomm = \"t\"\ncpu = 1\nops = [{ op = \"lock\", lock = \"lock_b\" }]\n",
    );
    assert_error(
        &run(&[path_str(&p)], &[]),
        2,
        &[&format!("{}:9:", path_str(&p)), "did you mean `lock_a`?"],
    );
}

#[test]
fn unknown_op_suggests_the_nearest_op() {
    let p = scenario(
        "op.toml",
        "description = \"x\"\n[machine]\nvcpus = 2\n[[task]]\ncomm = \"t\"\ncpu = 1\nops = [{ op = \"slep\", ms = 1 }]\n",
    );
    assert_error(
        &run(&[path_str(&p)], &[]),
        2,
        &[&format!("{}:7:", path_str(&p)), "did you mean `sleep`?"],
    );
}

#[test]
fn an_op_after_one_that_never_returns_is_refused() {
    let p = scenario(
        "after_setsid.toml",
        "description = \"x\"\n[machine]\nvcpus = 2\n[[task]]\ncomm = \"t\"\ncpu = 1\nops = [{ op = \"setsid\" },\n  { op = \"sleep\", ms = 1 }]\n",
    );
    assert_error(
        &run(&[path_str(&p)], &[]),
        2,
        &[
            &format!("{}:8:3:", path_str(&p)),
            "`setsid` before it does not return",
        ],
    );
}

#[test]
fn unknown_hook_in_an_action() {
    let p = scenario(
        "hook.toml",
        "description = \"x\"\n[machine]\nvcpus = 2\n[[action]]\nat_hook = \"alloc_slab\"\ndeliver = \"nmi\"\n",
    );
    assert_error(
        &run(&[path_str(&p)], &[]),
        2,
        &[&format!("{}:5:", path_str(&p)), "unknown hook `alloc_slab`"],
    );
}

#[test]
fn unknown_splat_kind_and_bad_debug_knob_name_their_line() {
    let p = scenario(
        "splat.toml",
        "description = \"x\"\n[machine]\nvcpus = 2\n[[expect.splats]]\nkind = \"deadlock\"\n",
    );
    assert_error(
        &run(&[path_str(&p)], &[]),
        2,
        &[
            &format!("{}:5:", path_str(&p)),
            "unknown kind `deadlock`",
            "inconsistent_lock_state",
        ],
    );
    let p = scenario(
        "debug.toml",
        "description = \"x\"\n[machine]\nvcpus = 2\n[debug]\nlockdep = \"yes\"\n",
    );
    assert_error(
        &run(&[path_str(&p)], &[]),
        2,
        &[&format!("{}:5:", path_str(&p)), "expected a boolean"],
    );
}
