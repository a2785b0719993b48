//! The example GitHub Actions workflow (`.github/workflows/lockvmm.yml`): parsed as YAML, its
//! steps checked for what a hosted runner needs (the udev rule for /dev/kvm before anything runs
//! a VM, a build cache, `lockvmm test --junit`, results published even when the suite fails),
//! and its `lockvmm test` command run here, flags as written, on a small scenario directory.
mod common;

use serde_norway::Value;

const WORKFLOW: &str = ".github/workflows/lockvmm.yml";
const UDEV_RULE: &str = r#"echo 'KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"' | sudo tee /etc/udev/rules.d/99-kvm4all.rules"#;

fn steps() -> Vec<Value> {
    let text = std::fs::read_to_string(common::root(WORKFLOW)).unwrap();
    let doc: Value = serde_norway::from_str(&text).expect("the workflow is YAML");
    assert!(doc["on"].is_mapping(), "triggers: {:?}", doc["on"]);
    let jobs = doc["jobs"].as_mapping().expect("jobs");
    assert_eq!(jobs.len(), 1);
    let job = jobs.values().next().unwrap();
    assert_eq!(job["runs-on"].as_str(), Some("ubuntu-latest"));
    job["steps"].as_sequence().expect("steps").clone()
}

fn run_of(step: &Value) -> &str {
    step["run"].as_str().unwrap_or("")
}

fn uses(step: &Value) -> &str {
    step["uses"].as_str().unwrap_or("")
}

/// The index of the first step matching `f`.
fn find(steps: &[Value], what: &str, f: impl Fn(&Value) -> bool) -> usize {
    steps
        .iter()
        .position(f)
        .unwrap_or_else(|| panic!("no step {what}"))
}

/// `lockvmm test`'s arguments in the workflow.
fn test_command(steps: &[Value]) -> Vec<String> {
    let i = find(steps, "running lockvmm test", |s| {
        run_of(s).contains("lockvmm test")
    });
    let line = run_of(&steps[i])
        .lines()
        .find(|l| l.contains("lockvmm test"))
        .unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "test").unwrap();
    assert!(words[at - 1].ends_with("target/release/lockvmm"), "{line}");
    words[at + 1..].iter().map(|w| w.to_string()).collect()
}

#[test]
fn the_workflow_enables_kvm_caches_runs_the_suite_and_publishes_it() {
    let steps = steps();
    let checkout = find(&steps, "checkout", |s| {
        uses(s).starts_with("actions/checkout@")
    });
    let kvm = find(&steps, "with the udev rule", |s| {
        let r = run_of(s);
        r.lines().any(|l| l.trim() == UDEV_RULE)
            && r.contains("sudo udevadm control --reload-rules")
            && r.contains("sudo udevadm trigger --name-match=kvm")
    });
    let cache = find(&steps, "caching the build", |s| {
        uses(s).starts_with("Swatinem/rust-cache@") || uses(s).starts_with("actions/cache@")
    });
    let build = find(&steps, "building", |s| {
        run_of(s).contains("cargo build --release")
    });
    let test = find(&steps, "running lockvmm test", |s| {
        run_of(s).contains("lockvmm test")
    });
    assert!(checkout < kvm && kvm < test && cache < build && build < test);

    let args = test_command(&steps);
    let junit = &args[args.iter().position(|a| a == "--junit").expect("--junit") + 1];
    // The results are uploaded and reported even when a scenario failed (the step before
    // exited 1).
    let upload = find(&steps, "uploading", |s| {
        uses(s).starts_with("actions/upload-artifact@")
    });
    assert_eq!(steps[upload]["if"].as_str(), Some("always()"));
    let paths = steps[upload]["with"]["path"].as_str().unwrap();
    assert!(paths.lines().any(|l| l.trim() == junit), "{paths}");
    let report = find(&steps, "publishing JUnit", |s| {
        s["with"]["report_paths"].as_str() == Some(junit.as_str())
    });
    assert_eq!(steps[report]["if"].as_str(), Some("always()"));
    assert!(test < upload && test < report);
}

#[test]
fn the_workflows_test_command_runs_here_and_its_junit_counts_match() {
    let args = test_command(&steps());
    // The flags as the workflow writes them; its scenario directories replaced by a small one
    // (one scenario that meets its expectations, one that does not), its files put in a
    // temporary directory.
    let dir = std::env::temp_dir().join(format!("lockvmm-workflow-{}", std::process::id()));
    let junit = dir.join("junit.xml");
    let mut local: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--junit" => {
                it.next();
                local.extend(["--junit".into(), junit.display().to_string()]);
            }
            "-j" | "--timeout" | "--out" => {
                local.push(a.clone());
                local.push(it.next().unwrap().clone());
            }
            f if f.starts_with('-') => local.push(a.clone()),
            _ => {} // a scenario path
        }
    }
    local.push("vmm/tests/scenarios/suite".into());
    local.extend(["--out".into(), dir.join("runs").display().to_string()]);
    let o = common::lockvmm().arg("test").args(&local).output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{local:?}: {stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    let count = |w: &str| lines.iter().filter(|l| l.starts_with(w)).count();
    assert_eq!((count("PASS "), count("FAIL ")), (1, 1), "{stdout}");

    let report =
        quick_junit::Report::deserialize_from_str(&std::fs::read_to_string(&junit).unwrap())
            .expect("JUnit XML that parses");
    assert_eq!(report.tests, 2);
    assert_eq!(report.failures, 1);
    assert_eq!(report.test_suites.len(), 1);
    let suite = &report.test_suites[0];
    let failed: Vec<&str> = suite
        .test_cases
        .iter()
        .filter(|c| !matches!(c.status, quick_junit::TestCaseStatus::Success { .. }))
        .map(|c| c.name.as_str())
        .collect();
    let fail_line = lines.iter().find(|l| l.starts_with("FAIL ")).unwrap();
    assert_eq!(failed, [fail_line.split_whitespace().nth(1).unwrap()]);
}
