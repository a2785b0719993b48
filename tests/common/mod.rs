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

/// Reads a u64 at `symbol + offset` in the guest's memory after the run.
pub fn read_u64(r: &RunResult, symbol: &str, offset: u64) -> u64 {
    let base = r
        .kernel
        .symbols
        .addr_of(symbol)
        .unwrap_or_else(|| panic!("no symbol {symbol}"));
    r.memory
        .read_virt_u64(BOOT_CR3, base + offset)
        .expect("readable kernel memory")
}

pub fn read_u32(r: &RunResult, symbol: &str, offset: u64) -> u32 {
    let base = r
        .kernel
        .symbols
        .addr_of(symbol)
        .unwrap_or_else(|| panic!("no symbol {symbol}"));
    r.memory
        .read_virt_u32(BOOT_CR3, base + offset)
        .expect("readable kernel memory")
}

/// The `lockvmm` binary.
pub fn lockvmm() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lockvmm"));
    cmd.current_dir(root(""));
    cmd
}
