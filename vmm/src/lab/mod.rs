//! The top of the host: running a scenario end to end (`run`), finishing it into its run
//! directory (`finish`), which it owns (`rundir`), and `--repeat`'s determinism check
//! (`fingerprint`, `repeat`), the progress line of a long run (`progress`), `--version` and the
//! generated completions and man page (`about`), and `lockvmm test`'s suite runner (`suite`).
pub mod about;
pub mod fingerprint;
pub mod finish;
pub mod progress;
pub mod repeat;
pub mod run;
pub mod rundir;
pub mod suite;

pub use finish::{Completed, complete};
pub use run::{KVM_DEVICE, LabError, Prepared, RunOptions, prepare, run_scenario};
pub use rundir::{RunDir, RunDirError};
