//! Hostile files: kernel ELFs with crafted DWARF and headers, crafted and truncated vmcores.
//! Each must end with a clear one-line error or a sensible answer, in bounded time, never a
//! crash or a hang. The files are made from the real embedded guest and a real vmcore.
mod common;
#[path = "support/elfmut.rs"]
mod elfmut;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use lockvmm::image::loader::EMBEDDED_GUEST;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lockvmm-hostile-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = tmp(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Runs `lockvmm ARGS` (stdin from `input`), failing the test if it runs past `limit`.
fn lockvmm(args: &[&str], input: &[u8], limit: Duration) -> Output {
    let mut child = common::lockvmm()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) of our own child, which has not been reaped (it is still running).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("lockvmm {args:?} still running after {limit:?}: it hangs");
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Ended by itself with a status lockvmm documents (no panic, no signal).
fn assert_no_crash(out: &Output) {
    let err = text(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0..=3)),
        "status {:?}: {err}",
        out.status
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// Exit `code`, one line on stderr with every piece of `wants`.
fn assert_error(out: &Output, code: i32, wants: &[&str]) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    for w in wants {
        assert!(err.contains(w), "`{w}` missing from: {err}");
    }
}

/// A real vmcore (and the vmlinux beside it): hog_hard's hard lockup on 2 vCPUs.
fn vmcore() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tmp("base-run");
        let out = lockvmm(
            &[
                "run",
                "-q",
                "scenarios/hog_hard.toml",
                "--out",
                dir.to_str().unwrap(),
            ],
            b"",
            Duration::from_secs(120),
        );
        assert!(dir.join("vmcore").exists(), "{}", text(&out.stderr));
        dir.join("vmcore")
    })
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn a_dwarf_array_whose_element_is_itself_crashes_neither_run_nor_inspect() {
    let mut elf = EMBEDDED_GUEST.to_vec();
    let dies = elfmut::dies(&elf);
    let var = elfmut::variable(&dies, "__log_buf");
    let array = elfmut::at(&dies, var.unit, var.type_ref.unwrap()).unwrap();
    assert_eq!(array.tag, gimli::DW_TAG_array_type);
    elfmut::self_reference(&mut elf, array);
    let kernel = write("cycle_array.elf", &elf);
    let dir = tmp("cycle-run");
    let out = lockvmm(
        &[
            "run",
            "-q",
            "scenarios/hog_hard.toml",
            "--kernel",
            p(&kernel),
            "--out",
            p(&dir),
        ],
        b"",
        LIMIT,
    );
    assert_no_crash(&out);
    assert!(dir.join("report.txt").exists(), "{}", text(&out.stderr));
    // inspect reads the same DWARF from the vmlinux beside the vmcore.
    let core = dir.join("vmcore");
    for cmd in [
        &["log"][..],
        &["p", "__log_buf"],
        &["sym", "__log_buf"],
        &["ps"],
    ] {
        let mut args = vec!["inspect", p(&core)];
        args.extend_from_slice(cmd);
        let out = lockvmm(&args, b"", LIMIT);
        assert_no_crash(&out);
    }
}

#[test]
fn a_dwarf_type_that_names_itself_does_not_hang_inspect() {
    let mut elf = EMBEDDED_GUEST.to_vec();
    let dies = elfmut::dies(&elf);
    let syms = lockvmm::image::Symbols::from_elf(&elf).unwrap();
    // An enumeration (a named type over its base type) and a global of the same unit.
    let (named, var) = dies
        .iter()
        .filter(|d| d.tag == gimli::DW_TAG_enumeration_type && d.type_ref.is_some())
        .find_map(|e| {
            let v = dies.iter().find(|v| {
                v.unit == e.unit
                    && v.tag == gimli::DW_TAG_variable
                    && v.type_ref.is_some()
                    && v.name.as_deref().is_some_and(|n| syms.addr_of(n).is_some())
            })?;
            Some((e.clone(), v.clone()))
        })
        .expect("an enumeration and a global in one unit");
    elfmut::self_reference(&mut elf, &named);
    elfmut::set(&mut elf, var.attr(gimli::DW_AT_type).unwrap(), named.off);
    let kernel = write("cycle_named.elf", &elf);
    let name = var.name.clone().unwrap();
    let indexed = format!("{name}[1]");
    for cmd in [["p", name.as_str()], ["p", &indexed], ["sym", &name]] {
        let mut args = vec!["inspect", p(vmcore()), "--kernel", p(&kernel)];
        args.extend(cmd);
        let out = lockvmm(&args, b"", Duration::from_secs(30));
        assert_no_crash(&out);
    }
}

/// The vmcore, read and written back with its note changed by `f`.
fn crafted_vmcore(name: &str, f: impl FnOnce(&mut lockvmm::output::vmcore::CoreMeta)) -> PathBuf {
    let core = lockvmm::output::vmcore::read(vmcore()).unwrap();
    let snap = core.snapshot();
    let mut meta = core.meta.clone();
    f(&mut meta);
    let path = tmp(name);
    lockvmm::output::vmcore::write(&path, &snap, &meta, &Default::default(), "").unwrap();
    path
}

#[test]
fn a_vmcore_whose_note_claims_huge_memory_is_refused_with_one_line() {
    for (name, bytes) in [("max.vmcore", u64::MAX), ("64g.vmcore", 64 << 30)] {
        let core = crafted_vmcore(name, |m| m.mem_bytes = bytes);
        let out = lockvmm(&["inspect", p(&core), "bt"], b"", LIMIT);
        assert_error(&out, 2, &[p(&core), &format!("claims {bytes} bytes")]);
    }
}

#[test]
fn a_vmcore_note_with_impossible_cpus_is_refused() {
    let core = crafted_vmcore("nocpu.vmcore", |m| m.cpus.clear());
    assert_error(
        &lockvmm(&["inspect", p(&core), "bt"], b"", LIMIT),
        2,
        &["CPUs"],
    );
    let core = crafted_vmcore("badcpu.vmcore", |m| m.report_cpu = Some(1000));
    assert_error(
        &lockvmm(&["inspect", p(&core), "bt"], b"", LIMIT),
        2,
        &["CPU 1000"],
    );
}

#[test]
fn a_malformed_lockvmm_note_says_so() {
    let mut bytes = std::fs::read(vmcore()).unwrap();
    let at = bytes
        .windows(8)
        .position(|w| w == b"LOCKVMM\0")
        .expect("the note's name");
    assert_eq!(bytes[at + 8], b'{');
    bytes[at + 8] = b'x';
    let core = write("malformed.vmcore", &bytes);
    let out = lockvmm(&["inspect", p(&core), "bt"], b"", LIMIT);
    assert_error(&out, 2, &["LOCKVMM note is malformed"]);
}

#[test]
fn a_truncated_vmcore_is_reported() {
    let bytes = std::fs::read(vmcore()).unwrap();
    let core = write("truncated.vmcore", &bytes[..bytes.len() * 3 / 4]);
    let out = lockvmm(&["inspect", p(&core), "bt"], b"", LIMIT);
    assert_no_crash(&out);
    let err = text(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("is truncated"),
        "{err}"
    );
    // Cut inside the notes: an error, not a silently empty machine.
    let core = write("cut.vmcore", &bytes[..200]);
    let out = lockvmm(&["inspect", p(&core), "bt"], b"", LIMIT);
    assert_error(&out, 2, &["truncated"]);
}

#[test]
fn piped_inspect_reads_past_a_line_that_is_not_utf8() {
    let out = lockvmm(
        &["inspect", p(vmcore())],
        b"sym startup_64\n\xff\xfe not utf-8\nsym secondary_startup_64\n",
        LIMIT,
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains(" startup_64"), "{stdout}");
    assert!(stdout.contains(" secondary_startup_64"), "{stdout}");
    // The garbage line is a command that does not exist: the status says a command failed.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

#[test]
fn inspect_warns_when_the_kernel_is_not_the_vmcores() {
    // Another file altogether.
    let out = lockvmm(
        &["inspect", p(vmcore()), "--kernel", "/bin/ls", "bt"],
        b"",
        LIMIT,
    );
    assert_no_crash(&out);
    assert!(
        text(&out.stderr).contains("is not the one this vmcore was taken with"),
        "{}",
        text(&out.stderr)
    );
    // The right kernel but one byte changed (a rebuilt guest).
    let mut elf = std::fs::read(vmcore().with_file_name("vmlinux")).unwrap();
    let n = elf.len();
    elf[n - 1] ^= 0xff;
    let other = write("other.elf", &elf);
    let out = lockvmm(
        &["inspect", p(vmcore()), "--kernel", p(&other), "bt"],
        b"",
        LIMIT,
    );
    assert!(
        text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
    // The right one: no warning.
    let out = lockvmm(&["inspect", p(vmcore()), "bt"], b"", LIMIT);
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn rd_says_when_it_caps_the_count() {
    let out = lockvmm(
        &["inspect", p(vmcore()), "rd", "startup_64", "100000000"],
        b"",
        LIMIT,
    );
    let stdout = text(&out.stdout);
    // Whatever the cap, the output says it applied one.
    assert!(
        stdout.contains("100000000 units asked for") && stdout.contains("shown"),
        "{}",
        &stdout[stdout.len().saturating_sub(300)..]
    );
}

/// The embedded guest with `f` applied to its bytes.
fn patched(name: &str, f: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut elf = EMBEDDED_GUEST.to_vec();
    f(&mut elf);
    write(name, &elf)
}

#[test]
fn kernels_for_another_machine_or_of_another_type_are_refused() {
    let boot = common::root("scenarios/boot.toml");
    for (name, at, value, want) in [
        ("aarch64.elf", 18, 183u16, "aarch64"),
        ("i386.elf", 18, 3, "i386"),
        ("rel.elf", 16, 1, "ET_REL"),
        ("dyn.elf", 16, 3, "ET_DYN"),
    ] {
        let k = patched(name, |e| {
            e[at..at + 2].copy_from_slice(&value.to_le_bytes())
        });
        let out = lockvmm(
            &[
                "run",
                "-q",
                p(&boot),
                "--kernel",
                p(&k),
                "--out",
                p(&tmp("refused")),
            ],
            b"",
            LIMIT,
        );
        assert_error(&out, 2, &[p(&k), want]);
    }
}

#[test]
fn a_segment_outside_guest_ram_is_named() {
    let k = patched("far.elf", |e| {
        let phoff = u64::from_le_bytes(e[32..40].try_into().unwrap()) as usize;
        let phnum = u16::from_le_bytes([e[56], e[57]]) as usize;
        let load = (0..phnum)
            .map(|i| phoff + i * 56)
            .find(|&at| u32::from_le_bytes(e[at..at + 4].try_into().unwrap()) == 1)
            .unwrap();
        e[load + 24..load + 32].copy_from_slice(&0x7fff_0000_0000u64.to_le_bytes());
    });
    let boot = common::root("scenarios/boot.toml");
    let out = lockvmm(
        &[
            "run",
            "-q",
            p(&boot),
            "--kernel",
            p(&k),
            "--out",
            p(&tmp("far")),
        ],
        b"",
        LIMIT,
    );
    assert_error(&out, 2, &["outside guest RAM", "0x7fff00000000"]);
}

#[test]
fn a_missing_kernel_is_bad_input_and_leaves_no_run_directory() {
    let boot = common::root("scenarios/boot.toml");
    let dir = tmp("never-created/run");
    let out = lockvmm(
        &[
            "run",
            "-q",
            p(&boot),
            "--kernel",
            "/nonexistent/vmlinux",
            "--out",
            p(&dir),
        ],
        b"",
        LIMIT,
    );
    assert_error(&out, 2, &["/nonexistent/vmlinux"]);
    assert!(
        !dir.exists() && !dir.parent().unwrap().exists(),
        "the failed run left {}",
        dir.display()
    );
}
