//! lockvmm: a KVM lab that boots a tiny Rust guest kernel on many vCPUs and replays Linux
//! lockups deterministically.
//!
//! The module map is the architecture (see ARCHITECTURE.md). Data flows one way, and a module
//! imports only from the layers listed before it:
//!
//! 1. [`state`]: plain data — registers, snapshots, backtraces, lock waits, outcomes, escaped
//!    text; and [`process`]: the host process — stdout that may close, stop signals.
//! 2. [`memory`]: guest RAM (live and frozen) and the page-table walk.
//! 3. [`image`]: the guest kernel ELF — loader, symbols, DWARF types, source lines.
//! 4. [`unwind`]: the frame-pointer unwinder over any memory reader.
//! 5. [`kvm`] and [`devices`]: KVM objects (VM, vCPUs, capture) and the emulated UART and PMU.
//! 6. [`machine`]: behaviour — the run token, virtual clock, vCPU loop, hypercalls, host
//!    actions, snapshot capture, supervisor.
//! 7. [`analysis`]: crash-style reading of a snapshot — tasks, backtraces, locks, diagnosis, log.
//! 8. [`report`]: rendering — the crash-style report and the outcome text.
//! 9. [`scenario`]: scenario files — schema, validation, the guest program, expectations.
//! 10. [`output`]: files — atomic writes, the vmcore, `result.json`'s schema.
//! 11. [`inspect`], [`lab`], [`bench`]: the commands — inspect a vmcore, run a scenario to its
//!     run directory, measure.
//! 12. [`explore`]: `lockvmm explore` — many schedules of one scenario, built on `lab`.
pub mod process;
pub mod state;

pub mod memory;

pub mod image;

pub mod unwind;

pub mod devices;
pub mod kvm;

pub mod machine;

pub mod analysis;

pub mod report;

pub mod scenario;

pub mod output;

pub mod bench;
pub mod inspect;
pub mod lab;

pub mod explore;

pub use lab::{LabError, RunOptions, run_scenario};
pub use machine::{Knobs, MachineConfig, MachineError, RunResult};
pub use scenario::{LoadedScenario, ScenarioError};
