//! What the command line prints for machines and people: JSON schema version 2 (addresses as
//! `"0x…"` strings), `run --repeat N --json`, the progress line on a terminal (and nowhere
//! else), shell completions, the man page and `--version`.
mod common;

use std::path::PathBuf;

use serde_json::Value;

use common::{run_cli as lockvmm, s, text};

fn tmp(name: &str) -> PathBuf {
    common::scratch("cli-output", name)
}

fn hex(v: &Value) -> u64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not a hex string: {v}"));
    u64::from_str_radix(s.strip_prefix("0x").expect("0x…"), 16).unwrap()
}

#[test]
fn json_addresses_are_hex_strings_that_name_the_symbols() {
    let out = tmp("hex");
    let o = lockvmm(&["run", "scenarios/lbr_gfp.toml", "--json", "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schema_version"], 2);
    let kernel = lockvmm::image::KernelImage::open(Some(&out.join("vmlinux"))).unwrap();
    let addr = |sym: &str| kernel.symbols.addr_of(sym).unwrap();
    // A hook's RIP is its symbol plus the offset the symbol string gives.
    let hook = &v["hooks"][0];
    let (name, off) = hook["rip_symbol"]
        .as_str()
        .unwrap()
        .split_once('+')
        .unwrap();
    assert_eq!(hex(&hook["rip"]), addr(name) + off.parse::<u64>().unwrap());
    // The lock CPU 51 spins on is runqueues[56]'s, an address past 2^53 that a double would
    // round; the report's registers are strings too.
    let lock = v["report"]["locks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["cpu"] == 51)
        .unwrap();
    let rq = hex(&lock["lock"]);
    assert!(rq >= addr("runqueues") && rq > 1 << 53, "{lock}");
    assert_eq!(lock["lock_name"], "runqueues[56].__lock");
    let regs = &v["lockups"][0]["report"]["regs"];
    assert!(regs["rip"].as_str().unwrap().starts_with("0xffffffff81"));
    assert!(hex(&regs["rflags"]) & 2 == 2, "RFLAGS bit 1 is always set");
    // result.json is the same document.
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    assert_eq!(file["report"]["locks"], v["report"]["locks"]);
}

#[test]
fn repeat_json_prints_every_runs_fingerprint_and_the_summary() {
    let out = tmp("repeat");
    let o = lockvmm(&[
        "run",
        "examples/abba_irq.toml",
        "--repeat",
        "2",
        "--json",
        "--out",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON, not text");
    assert_eq!(v["repeat"], 2);
    assert_eq!(v["deterministic"], true);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["fingerprint"], runs[1]["fingerprint"]);
    assert_eq!(runs[0]["fingerprint"], v["fingerprint"]);
    // Each run is the one in its directory.
    for r in runs {
        let dir = PathBuf::from(r["run_dir"].as_str().unwrap());
        let res: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).unwrap())
                .unwrap();
        assert_eq!(r["class"], res["class"]);
    }
    assert_eq!(v["first"]["schema_version"], 2);
    assert_eq!(v["expectations_met"], 2);
    // The text mode prints the same fingerprint.
    let o = lockvmm(&[
        "run",
        "examples/abba_irq.toml",
        "--repeat",
        "2",
        "--out",
        s(&out),
    ]);
    let t = text(&o.stdout);
    assert!(t.contains(v["fingerprint"].as_str().unwrap()), "{t}");
}

/// `lockvmm ARGS` with stdout and stderr on a pseudo-terminal (util-linux `script`).
fn on_a_terminal(args: &str) -> String {
    let cmd = format!("{} {args}", env!("CARGO_BIN_EXE_lockvmm"));
    let o = std::process::Command::new("script")
        .args(["-qefc", &cmd, "/dev/null"])
        .current_dir(common::root(""))
        // From the start: no scenario can be counted on to last the usual second.
        .env("LOCKVMM_PROGRESS_AFTER_MS", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script(1) from util-linux");
    text(&o.stdout)
}

#[test]
fn a_long_run_shows_progress_on_a_terminal_only() {
    let out = tmp("progress");
    // lbr_gfp: 64 vCPUs, about a wall second.
    let tty = on_a_terminal(&format!("run scenarios/lbr_gfp.toml --out {}", s(&out)));
    // The last drawing: the machine is up and its clock has moved.
    let line = tty
        .split(['\r', '\n'])
        .rfind(|l| l.contains("CPUs ticking"))
        .unwrap_or_else(|| panic!("no progress line: {tty}"));
    // `virtual 7.25 s · 64/64 CPUs ticking · …`: of the machine's CPUs, as result.json says.
    let res: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    let of = format!("/{} CPUs ticking", res["vcpus"]);
    assert!(line.contains(&of) && line.contains("virtual s/s"), "{line}");
    // The guest console still reaches the terminal whole.
    assert!(tty.contains("Watchdog detected hard LOCKUP"), "{tty}");
    // Not in a pipe, not with --quiet or --json. These runs show the line from their start
    // (LOCKVMM_PROGRESS_AFTER_MS=0, as on_a_terminal sets), so hog_hard (2 CPUs ticking) does
    // as a control what three more 64-CPU lbr_gfp runs did: on a terminal without a flag it
    // draws `booting ·` and then `… CPUs ticking …` lines (a dozen or more in the debug build).
    let o = common::lockvmm()
        .args(["run", "scenarios/hog_hard.toml", "--out", s(&out)])
        .env("LOCKVMM_PROGRESS_AFTER_MS", "0")
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert!(
        !err.contains("ticking") && !err.contains("booting ·"),
        "{err}"
    );
    for flag in ["-q", "--json"] {
        let tty = on_a_terminal(&format!(
            "run scenarios/hog_hard.toml {flag} --out {}",
            s(&out)
        ));
        assert!(
            !tty.contains("ticking") && !tty.contains("booting ·"),
            "{flag}: {tty}"
        );
    }
}

const SUBCOMMANDS: &[&str] = &[
    "run",
    "list",
    "inspect",
    "bench",
    "test",
    "completions",
    "man",
];

#[test]
fn completions_and_the_man_page_come_from_the_cli_definition() {
    for shell in ["bash", "zsh", "fish"] {
        let o = lockvmm(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0));
        let t = text(&o.stdout);
        for sub in SUBCOMMANDS {
            assert!(t.contains(sub), "{shell} lacks {sub}");
        }
        assert!(t.contains("skip-without-kvm"), "{shell}: test's flags");
    }
    let o = lockvmm(&["completions", "no-such-shell"]);
    assert_eq!(o.status.code(), Some(2));
    let o = lockvmm(&["man"]);
    assert_eq!(o.status.code(), Some(0));
    let man = text(&o.stdout);
    assert!(
        man.starts_with(".ie") || man.starts_with(".TH"),
        "{}",
        &man[..80]
    );
    assert!(man.contains(".TH lockvmm 1"), "the page");
    for sub in SUBCOMMANDS {
        // A section per subcommand, with its own options.
        assert!(man.contains(&format!(".TH lockvmm-{sub} 1")), "{sub}");
    }
    assert!(man.contains("\\-\\-junit"));
}

#[test]
fn version_names_the_guest_it_boots() {
    let o = lockvmm(&["--version"]);
    let v = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0));
    // The banner the guest prints on its console at boot.
    let out = tmp("version");
    let run = lockvmm(&[
        "run",
        "vmm/tests/scenarios/suite/boot_small.toml",
        "-q",
        "--out",
        s(&out),
    ]);
    assert_eq!(run.status.code(), Some(0));
    let console = std::fs::read_to_string(out.join("console.log")).unwrap();
    let banner = console
        .lines()
        .find_map(|l| l.find("Linux version ").map(|at| &l[at..]))
        .unwrap();
    let banner = &banner[..=banner.find(')').unwrap()];
    assert!(v.contains(&format!("guest: {banner}")), "{v} vs {banner}");
    // The GNU build ID of the kernel it embeds, as the ELF note has it.
    let elf = lockvmm::image::loader::EMBEDDED_GUEST;
    let id = object::Object::build_id(&object::File::parse(elf).unwrap())
        .unwrap()
        .unwrap();
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    assert!(v.contains(&format!("GNU build ID {id}")), "{v}");
}
