//! The fuzzing suite (proptest, on stable Rust): structure-aware mutations of lockvmm's three
//! kinds of untrusted input, fed to the code that reads them. None may panic, hang or exhaust
//! the host; a rejection must be an error value.
//!
//! - `scenario`: the shipped scenarios (`scenarios/`, `examples/`, the test scenarios), mutated
//!   as TOML trees (values set to extremes, keys dropped or invented, tables multiplied) and as
//!   bytes, then parsed, validated and encoded for the guest.
//! - `vmcore`: a real vmcore from one short run, mutated in its ELF and program headers, its
//!   notes, its `LOCKVMM` note's JSON, its CPUs' registers and the guest memory the analysis
//!   walks (stacks, task structs, the log buffer, page tables), then read back and given every
//!   `inspect` command and the crash report.
//! - `elf`: the embedded guest kernel, mutated in its ELF, section and program headers and in
//!   its DWARF (type references rewired into cycles, sizes and counts set to extremes), then
//!   loaded and read for symbols, types, source lines and the analysis of a real snapshot.
//!
//! Case counts are sized for CI (a few minutes for the whole suite in a debug build);
//! `LOCKVMM_FUZZ_CASES=N` multiplies them for longer runs, and `LOCKVMM_FUZZ_SEED=N` (or
//! `random`) changes the otherwise fixed seed. A failure prints the minimal input; it then
//! becomes a regression test (see `hostile_files.rs`).
#[path = "../common/mod.rs"]
mod common;
#[path = "../support/elfmut.rs"]
mod elfmut;

mod elf;
mod mutate;
mod scenario;
mod vmcore;

use proptest::test_runner::{Config, RngSeed};

/// The proptest configuration for a target with `base` cases in CI.
pub fn config(base: u32) -> Config {
    let scale: u32 = std::env::var("LOCKVMM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let rng_seed = match std::env::var("LOCKVMM_FUZZ_SEED").ok().as_deref() {
        Some("random") => RngSeed::Random,
        Some(s) => RngSeed::Fixed(s.parse().unwrap_or(0x10c4_f022)),
        None => RngSeed::Fixed(0x10c4_f022),
    };
    Config {
        cases: base.saturating_mul(scale),
        failure_persistence: None,
        max_shrink_iters: 200,
        rng_seed,
        ..Config::default()
    }
}
