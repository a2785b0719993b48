//! The watchdog knobs as Linux spells them (issue 10, item 7): the `nmi_watchdog=` boot
//! parameter's form, `watchdog_thresh = 0`, and the sysctl names in a `[sysctl]` section; a
//! bad value is one error naming the field and its line.
mod common;

use lockvmm::scenario::LoadedScenario;

fn err(name: &str, body: &str) -> String {
    match load(name, body) {
        Ok(_) => panic!("{name} must be refused"),
        Err(e) => e,
    }
}

fn load(name: &str, body: &str) -> Result<LoadedScenario, String> {
    let path = common::scratch("knobs", name);
    let text = format!("description = \"knobs\"\n[machine]\nvcpus = 1\n{body}");
    std::fs::write(&path, text).unwrap();
    LoadedScenario::load(&path).map_err(|e| e.to_string())
}

#[test]
fn nmi_watchdog_boot_parameter_form() {
    let k = load("param.toml", "[watchdog]\nnmi_watchdog = \"panic,1\"\n")
        .unwrap()
        .knobs();
    assert!(k.nmi_watchdog && k.hardlockup_panic);
    let k = load(
        "off.toml",
        "[watchdog]\nnmi_watchdog = \"0\"\nhardlockup_panic = true\n",
    )
    .unwrap()
    .knobs();
    assert!(!k.nmi_watchdog && k.hardlockup_panic);
    let k = load(
        "nopanic.toml",
        "[watchdog]\nhardlockup_panic = true\nnmi_watchdog = \"nopanic\"\n",
    )
    .unwrap()
    .knobs();
    assert!(k.nmi_watchdog && !k.hardlockup_panic);
    let e = err("bad.toml", "[watchdog]\nnmi_watchdog = \"panic,2\"\n");
    assert!(e.contains("nmi_watchdog") && e.contains(":5:"), "{e}");
}

#[test]
fn sysctl_names_and_thresh_zero() {
    let k = load(
        "sysctl.toml",
        "[watchdog]\nwatchdog_thresh = 10\n[sysctl]\nkernel.watchdog_thresh = 20\nkernel.softlockup_panic = 1\n\"kernel.hardlockup_panic\" = 0\n",
    );
    // The quoted key is one name with a dot, not the `kernel` table: refused.
    assert!(k.is_err(), "a quoted dotted key must be refused");
    let k = load(
        "sysctl2.toml",
        "[watchdog]\nwatchdog_thresh = 10\nhardlockup_panic = true\n[sysctl]\nkernel.watchdog_thresh = 20\nkernel.softlockup_panic = 1\nkernel.hardlockup_panic = 0\n",
    )
    .unwrap()
    .knobs();
    assert_eq!(k.watchdog_thresh, 20);
    assert!(k.softlockup_panic && !k.hardlockup_panic);
    // 0 disables the detectors: no NMI watchdog counter either.
    let k = load("zero.toml", "[sysctl]\nkernel.watchdog_thresh = 0\n")
        .unwrap()
        .knobs();
    assert_eq!(k.watchdog_thresh, 0);
    assert!(!k.nmi_watchdog);
    let e = err("big.toml", "[sysctl]\nkernel.watchdog_thresh = 61\n");
    assert!(e.contains("watchdog_thresh") && e.contains(":5:"), "{e}");
    let e = err("flag.toml", "[sysctl]\nkernel.softlockup_panic = 2\n");
    assert!(e.contains("softlockup_panic"), "{e}");
}

/// `p watchdog_thresh` in `lockvmm inspect`: the vmcore holds the knobs the kernel ran with,
/// read from guest memory (the `[sysctl]` values differ from Linux's defaults, so a kernel
/// that ignored them, or an inspect that printed defaults, fails).
#[test]
fn inspect_shows_the_knobs_a_vmcore_ran_with() {
    let path = common::scratch("knobs", "ran_with.toml");
    std::fs::write(
        &path,
        "description = \"knobs in the vmcore\"\n[machine]\nvcpus = 2\n\
         [sysctl]\nkernel.watchdog_thresh = 4\nkernel.softlockup_panic = 1\n\
         kernel.hung_task_timeout_secs = 37\n\
         [[task]]\ncomm = \"hog\"\ncpu = 1\nops = [{ op = \"hog\" }]\n",
    )
    .unwrap();
    let out = common::scratch("knobs", "ran_with");
    let run = common::run_cli(&["run", common::s(&path), "--out", common::s(&out), "-q"]);
    assert!(out.join("vmcore").exists(), "{}", common::text(&run.stderr));
    let value = |var: &str| -> u64 {
        let o = common::run_cli(&["inspect", common::s(&out.join("vmcore")), "p", var]);
        let t = common::text(&o.stdout);
        let v = t.rsplit("= ").next().unwrap().trim();
        let v = v.trim_start_matches("0x");
        u64::from_str_radix(v, 16)
            .unwrap_or_else(|_| panic!("p {var}: {t}{}", common::text(&o.stderr)))
    };
    assert_eq!(value("watchdog_thresh"), 4);
    assert_eq!(value("softlockup_panic"), 1);
    assert_eq!(value("hardlockup_panic"), 0);
    assert_eq!(value("nmi_watchdog_user_enabled"), 1);
    assert_eq!(value("sysctl_hung_task_timeout_secs"), 37);
}
