//! `lockvmm test` (the CI suite runner), the example GitHub workflow that runs it, `run --repeat
//! --json`, the progress line on a terminal, completions, the man page and `--version`. Every
//! scenario runs on real KVM; verdicts are checked against what each child left in its run
//! directory (result.json), not against the scenario text.
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

const SUITE: &str = "vmm/tests/scenarios/suite";

use common::{run_cli as lockvmm, s, text};

fn tmp(name: &str) -> PathBuf {
    common::scratch("suite", name)
}

fn result_json(dir: &Path) -> Value {
    let t = std::fs::read_to_string(dir.join("result.json"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    serde_json::from_str(&t).unwrap()
}

/// The JUnit file, read with a plain XML reader: (testcase names, failures as (name, message,
/// type, body), skipped names, `<testsuite>`'s tests/failures/skipped attributes).
#[derive(Default, Debug)]
struct Junit {
    cases: Vec<String>,
    failures: Vec<(String, String, String, String)>,
    skipped: Vec<String>,
    counts: (usize, usize, usize),
}

fn read_junit(path: &Path) -> Junit {
    use quick_xml::events::Event;
    let xml = std::fs::read_to_string(path).unwrap();
    let mut r = quick_xml::Reader::from_str(&xml);
    let mut j = Junit::default();
    let attr = |e: &quick_xml::events::BytesStart, k: &str| -> String {
        e.attributes()
            .flatten()
            .find(|a| a.key.as_ref() == k.as_bytes())
            .map(|a| {
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .unwrap()
                    .into_owned()
            })
            .unwrap_or_default()
    };
    let mut in_failure = false;
    loop {
        match r.read_event().expect("well-formed XML") {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"testsuite" => {
                    let n = |k| attr(&e, k).parse().unwrap();
                    j.counts = (n("tests"), n("failures"), n("skipped"));
                }
                b"testcase" => j.cases.push(attr(&e, "name")),
                b"failure" => {
                    let case = j.cases.last().unwrap().clone();
                    j.failures
                        .push((case, attr(&e, "message"), attr(&e, "type"), String::new()));
                    in_failure = true;
                }
                b"skipped" => j.skipped.push(j.cases.last().unwrap().clone()),
                _ => {}
            },
            Event::Text(t) if in_failure => {
                j.failures.last_mut().unwrap().3 += &t.decode().unwrap();
            }
            Event::End(e) if e.name().as_ref() == b"failure" => in_failure = false,
            _ => {}
        }
    }
    j
}

#[test]
fn a_suite_passes_what_held_fails_what_did_not_and_writes_junit() {
    let out = tmp("mixed");
    let junit = tmp("mixed.xml");
    let o = lockvmm(&[
        "test",
        SUITE,
        "scenarios/boot.toml",
        "-j",
        "2",
        "--out",
        s(&out),
        "--junit",
        s(&junit),
    ]);
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}{}", text(&o.stderr));
    // Each verdict agrees with what its run left: exit status and expectations in result.json.
    for (name, want) in [
        ("boot_small", "PASS"),
        ("expect_violated", "FAIL"),
        ("boot", "PASS"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no line for {name}: {stdout}"));
        assert!(line.starts_with(want), "{line}");
        let r = result_json(&out.join(name));
        let all_ok = r["expectations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["ok"] == true);
        assert_eq!(all_ok, want == "PASS", "{name}: {r}");
    }
    // The failing one powered off cleanly though it expected a lockup: the FAIL says what was
    // observed, as result.json has it.
    let bad = result_json(&out.join("expect_violated"));
    assert_eq!(bad["class"], "shutdown");
    let failed = &bad["expectations"].as_array().unwrap()[0];
    assert_eq!(failed["ok"], false);
    let observed = failed["observed"].as_str().unwrap();
    let fail_line = stdout.lines().find(|l| l.starts_with("FAIL")).unwrap();
    assert!(fail_line.contains(observed), "{fail_line} vs {observed}");
    assert!(
        stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("SUMMARY: 3 tests, 2 passed, 1 failed, 0 skipped"),
        "{stdout}"
    );

    let j = read_junit(&junit);
    assert_eq!(j.counts, (3, 1, 0), "{j:?}");
    let mut cases = j.cases.clone();
    cases.sort();
    assert_eq!(cases, ["boot", "boot_small", "expect_violated"]);
    assert_eq!(j.failures.len(), 1);
    let (name, message, kind, body) = &j.failures[0];
    assert_eq!(name, "expect_violated");
    assert_eq!(kind, "expectation failed");
    assert!(
        message.contains(observed) && body.contains(observed),
        "{j:?}"
    );
    // Written atomically: no temporary file beside it.
    let leftovers = std::fs::read_dir(junit.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("mixed.xml") && n != "mixed.xml"
        })
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn tap_output_is_version_13_in_the_order_given() {
    let o = lockvmm(&["test", "--tap", SUITE, "--out", s(&tmp("tap"))]);
    let t = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{t}");
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(
        &lines[..4],
        [
            "TAP version 13",
            "1..2",
            "ok 1 - boot_small",
            "not ok 2 - expect_violated"
        ],
        "{t}"
    );
    // The YAML diagnostic block under the failure.
    assert_eq!(lines[4], "  ---", "{t}");
    let end = lines
        .iter()
        .position(|l| *l == "  ...")
        .expect("a closed YAML block");
    assert!(
        lines[5..end]
            .iter()
            .any(|l| l.starts_with("  message: \"1 of 1 expectations failed")),
        "{t}"
    );
    assert!(!t.contains("PASS ") && !t.contains("FAIL "), "{t}");
}

/// Processes whose command line mentions `needle` (a run directory unique to one test).
fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| text(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
}

#[test]
fn a_scenario_past_its_timeout_is_killed_with_its_group_and_fails() {
    // hog_all_cpus takes about 20 s here; two of them, side by side, are killed at 3 s each.
    let out = tmp("timeout");
    let junit = tmp("timeout.xml");
    let t = Instant::now();
    let o = lockvmm(&[
        "test",
        "scenarios/hog_all_cpus.toml",
        "scenarios/hog_all_cpus.toml",
        "-j",
        "2",
        "--timeout",
        "3",
        "--out",
        s(&out),
        "--junit",
        s(&junit),
    ]);
    let wall = t.elapsed();
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    let fails: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fails.len(), 2, "{stdout}");
    assert!(
        fails
            .iter()
            .all(|l| l.contains("timeout: killed after 3 s")),
        "{stdout}"
    );
    // In parallel: one after the other would take 6 s.
    assert!(wall < Duration::from_millis(5500), "{wall:?}");
    // Nothing of the killed runs is left, and neither finished its result.
    assert_eq!(processes_mentioning(s(&out)), Vec::<String>::new());
    for d in ["scenarios-hog_all_cpus", "scenarios-hog_all_cpus-2"] {
        assert!(!out.join(d).join("result.json").exists(), "{d}");
    }
    let j = read_junit(&junit);
    assert_eq!(j.counts, (2, 2, 0));
    assert!(j.failures.iter().all(|f| f.2 == "timeout"), "{j:?}");
}

#[test]
fn without_kvm_the_suite_skips_with_77_or_fails_without_the_flag() {
    let junit = tmp("skip.xml");
    let run = |extra: &[&str]| {
        common::lockvmm()
            .env("LOCKVMM_KVM_DEVICE", tmp("no-such-kvm"))
            .args(["test", SUITE, "--out", s(&tmp("skip"))])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = run(&["--skip-without-kvm", "--junit", s(&junit)]);
    let t = text(&o.stdout);
    assert_eq!(o.status.code(), Some(77), "{t}");
    let skips: Vec<&str> = t.lines().filter(|l| l.starts_with("SKIP")).collect();
    assert_eq!(skips.len(), 2, "{t}");
    assert!(skips[0].contains("no-such-kvm"), "{t}");
    assert!(t.contains("0 passed, 0 failed, 2 skipped"), "{t}");
    let j = read_junit(&junit);
    assert_eq!((j.counts, j.skipped.len()), ((2, 0, 2), 2));
    // Without the flag a missing device is a failure of every scenario, the children's own
    // environment error (status 3) named.
    let o = run(&[]);
    let t = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{t}");
    let fails: Vec<&str> = t.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fails.len(), 2, "{t}");
    assert!(fails.iter().all(|l| l.contains("environment (3)")), "{t}");
}

#[test]
fn bad_paths_and_timeouts_are_refused_with_one_line() {
    let empty = tmp("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for (args, want) in [
        (
            vec!["test", "no/such/dir"],
            "no such scenario file or directory",
        ),
        (vec!["test", "--timeout", "0", SUITE], "--timeout 0"),
        (vec!["test", s(&empty)], "no scenario files"),
        // `run` takes one file, and points at `test` for a directory.
        (
            vec!["run", "scenarios"],
            "`lockvmm test scenarios` runs every scenario",
        ),
    ] {
        let o = lockvmm(&args);
        let e = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains(want), "{e}");
    }
}
