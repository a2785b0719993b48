//! The top of the host: running a scenario end to end (`run`), finishing it into its run
//! directory (`finish`), which it owns (`rundir`), and `--repeat`'s determinism check
//! (`fingerprint`).
pub mod fingerprint;
pub mod finish;
pub mod run;
pub mod rundir;
pub mod trace_files;

pub use finish::{Completed, complete};
pub use run::{KVM_DEVICE, LabError, Prepared, RunOptions, prepare, run_scenario};
pub use rundir::{RunDir, RunDirError};
