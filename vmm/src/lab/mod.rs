//! The top of the host: running a scenario end to end (`run`), finishing it into its run
//! directory (`finish`), and `--repeat`'s determinism check (`fingerprint`).
pub mod fingerprint;
pub mod finish;
pub mod run;

pub use finish::{Completed, complete};
pub use run::{KVM_DEVICE, LabError, RunOptions, run_scenario};
