//! Helpers shared by the integration tests: run a scenario on real KVM and read guest memory
//! through the kernel's symbols.
#![allow(dead_code)]

use std::path::PathBuf;

use lockvmm::memory::BOOT_CR3;
use lockvmm::{LoadedScenario, RunOptions, RunResult};

/// A path relative to the workspace root.
pub fn root(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

/// Runs a scenario (quietly) and returns what it left.
pub fn run(rel: &str, vcpus: Option<usize>) -> (LoadedScenario, RunResult) {
    let mut opts = RunOptions::new(root(rel));
    opts.vcpus = vcpus;
    lockvmm::run_scenario(&opts).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The address of `symbol + offset` in the guest kernel.
fn at(r: &RunResult, symbol: &str, offset: u64) -> u64 {
    r.kernel
        .symbols
        .addr_of(symbol)
        .unwrap_or_else(|| panic!("no symbol {symbol}"))
        + offset
}

/// Reads a u64 at `symbol + offset` in the guest's memory after the run.
pub fn read_u64(r: &RunResult, symbol: &str, offset: u64) -> u64 {
    r.memory
        .read_virt_u64(BOOT_CR3, at(r, symbol, offset))
        .expect("readable kernel memory")
}

/// Reads a u32 at `symbol + offset` in the guest's memory after the run.
pub fn read_u32(r: &RunResult, symbol: &str, offset: u64) -> u32 {
    r.memory
        .read_virt_u32(BOOT_CR3, at(r, symbol, offset))
        .expect("readable kernel memory")
}

/// The `lockvmm` binary.
pub fn lockvmm() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lockvmm"));
    cmd.current_dir(root(""));
    cmd
}

/// A run end to end: the run, what it wrote, and its directory.
pub type Complete = (lockvmm::RunResult, lockvmm::lab::Completed, PathBuf);

/// Runs a scenario end to end as `lockvmm run` does (vmcore, report, result.json) into a fresh
/// directory; returns the run, what it wrote, and the directory.
pub fn run_complete(rel: &str) -> Complete {
    run_complete_with(rel, |_| {})
}

/// As [`run_complete`], with `tune` adjusting the run's options first (a test of a stall sets a
/// short stall timeout rather than wait the default 30 wall seconds).
pub fn run_complete_with(rel: &str, tune: impl FnOnce(&mut RunOptions)) -> Complete {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "lockvmm-test-{}-{}-{}",
        std::process::id(),
        rel.replace('/', "_"),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut opts = RunOptions::new(root(rel));
    tune(&mut opts);
    let (scenario, result) = lockvmm::run_scenario(&opts).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let vcpus = scenario.vcpus();
    let done = lockvmm::lab::complete(
        &scenario,
        &result,
        vcpus,
        &dir,
        &dir.join("console.log"),
        std::time::Instant::now(),
    );
    assert!(done.warnings.is_empty(), "{:?}", done.warnings);
    (result, done, dir)
}

/// A symbol's address range.
pub fn range_of(r: &RunResult, name: &str) -> std::ops::Range<u64> {
    let s = r
        .kernel
        .symbols
        .get(name)
        .unwrap_or_else(|| panic!("no symbol {name}"));
    s.addr..s.addr + s.size
}

/// Some return address of a saved stack trace lies in function `f` (`a - 1`: a return address
/// may be one past its call's function).
pub fn trace_passes(r: &RunResult, trace: &[u64], f: &str) -> bool {
    let range = range_of(r, f);
    trace.iter().any(|&a| range.contains(&a.wrapping_sub(1)))
}

/// The guest powered off cleanly (status 0).
pub fn assert_clean_shutdown(outcome: &lockvmm::state::Outcome) {
    assert!(
        matches!(outcome, lockvmm::state::Outcome::Shutdown { status: 0 }),
        "outcome: {outcome:?}"
    );
}

/// The address of element `idx` of a global array, with the element size from the DWARF.
pub fn elem_addr(r: &RunResult, var: &str, idx: u64) -> u64 {
    let (size, count) = r
        .kernel
        .debug_info()
        .array_of(var)
        .unwrap_or_else(|| panic!("{var} is not an array in the DWARF"));
    assert!(idx < count, "{var}[{idx}] is out of bounds ({count})");
    at(r, var, idx * size)
}

/// The offset of `member` in struct `ty`, from the DWARF.
pub fn member(r: &RunResult, ty: &str, member: &str) -> u64 {
    r.kernel
        .debug_info()
        .member_offset(ty, member)
        .unwrap_or_else(|| panic!("no {ty}.{member} in the DWARF"))
}

/// The owner a lock word names (the contract in `lockvmm_abi::locking`).
pub fn owner(word: u32) -> Option<usize> {
    lockvmm_abi::locking::lock_owner(word)
}

/// The snapshot of a run, read the way `crash` reads a vmcore.
pub fn analysis(r: &RunResult) -> lockvmm::analysis::Analysis<'_> {
    let snap = r.snapshot.as_ref().expect("the run left a snapshot");
    lockvmm::analysis::Analysis::new(snap, &r.kernel.symbols, r.kernel.debug_info())
}

/// A scratch path `name` in this test process's own directory `lockvmm-<suite>-<pid>`.
pub fn scratch(suite: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lockvmm-{suite}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A path as the `&str` a command line takes.
pub fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// Runs the `lockvmm` binary with `args` and waits for it.
pub fn run_cli(args: &[&str]) -> std::process::Output {
    lockvmm().args(args).output().unwrap()
}

/// A process's output as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The console's lines without their `[    32.000000] ` stamps.
pub fn console_lines(r: &RunResult) -> Vec<String> {
    r.console
        .lines()
        .map(|l| match l.find("] ") {
            Some(i) if l.starts_with('[') => l[i + 2..].to_string(),
            _ => l.to_string(),
        })
        .collect()
}

/// One record of the guest's `__log_buf`, read from its memory after the run.
pub struct LogRecord {
    pub ts_nsec: u64,
    pub level: u8,
    /// Linux's `LOG_*` flags (`LOG_NOCONS` 1, `LOG_NEWLINE` 2, `LOG_PREFIX` 4, `LOG_CONT` 8).
    pub flags: u8,
    /// With `LOG_NOCONS`: bytes the console printed before the record was stored.
    pub cons: u8,
    pub text: String,
}

/// Every record `__log_buf` still holds, oldest first, through the DWARF layout of
/// `printk_log` (`log_next_seq` records were stored; the ring keeps the last ones).
pub fn log_records(r: &RunResult) -> Vec<LogRecord> {
    let (size, count) = r
        .kernel
        .debug_info()
        .array_of("__log_buf")
        .expect("__log_buf in the DWARF");
    let next = read_u64(r, "log_next_seq", 0);
    let m = |name: &str| member(r, "printk_log", name);
    let (ts, len, level, flags, cons, text) = (
        m("ts_nsec"),
        m("len"),
        m("level"),
        m("flags"),
        m("cons"),
        m("text"),
    );
    (next.saturating_sub(count)..next)
        .map(|seq| {
            let off = (seq % count) * size;
            let rec = r
                .memory
                .read_virt(BOOT_CR3, at(r, "__log_buf", off), size as usize)
                .expect("readable __log_buf");
            let n = u16::from_le_bytes([rec[len as usize], rec[len as usize + 1]]) as usize;
            LogRecord {
                ts_nsec: u64::from_le_bytes(rec[ts as usize..ts as usize + 8].try_into().unwrap()),
                level: rec[level as usize],
                flags: rec[flags as usize],
                cons: rec[cons as usize],
                text: String::from_utf8_lossy(&rec[text as usize..text as usize + n]).into_owned(),
            }
        })
        .collect()
}

/// Runs `lockvmm explore SCENARIO --out OUT ARGS`: no panic, the closing line that counts the
/// schedules and names the space; returns its exit status and explore.json.
pub fn explore(
    scenario: &str,
    out: &std::path::Path,
    args: &[&str],
) -> (i32, lockvmm::explore::results::ExploreResult) {
    let o = lockvmm()
        .args(["explore", scenario, "--out"])
        .arg(out)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.contains("schedules") && last.contains("depth"),
        "{stdout}{stderr}"
    );
    let json = std::fs::read_to_string(out.join("explore.json")).unwrap();
    (
        o.status.code().unwrap(),
        serde_json::from_str(&json).unwrap(),
    )
}
