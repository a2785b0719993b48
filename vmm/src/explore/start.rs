//! How each schedule starts: from a snapshot taken once where every schedule's run is still
//! the same (`machine::restore`, the default), or from a fresh boot (`--reboot`, the reference
//! the restored runs are checked against). The recording run (no forced event) always boots:
//! it tells where the snapshot goes (the run-token hand-out of its first hook).
use crate::lab::{self, Prepared};
use crate::machine::restore::{RestoreStats, Snapshotted};
use crate::machine::{HookAction, RunResult};

use super::{ExploreError, ExploreOptions};

/// Starts schedules.
pub enum Starter {
    Reboot,
    /// Restore mode, before the snapshot exists: at this run-token hand-out (`None` while the
    /// recording run has not told, or when it passed no hook).
    Pending(Option<u64>),
    Restore(Box<Snapshotted>),
}

impl Starter {
    pub fn new(opts: &ExploreOptions) -> Starter {
        if opts.reboot {
            Starter::Reboot
        } else {
            Starter::Pending(None)
        }
    }

    /// `explore.json`'s `mode`.
    pub fn mode(&self) -> &'static str {
        match self {
            Starter::Reboot | Starter::Pending(None) => "reboot",
            Starter::Pending(Some(_)) | Starter::Restore(_) => "restore",
        }
    }

    pub fn stats(&self) -> RestoreStats {
        match self {
            Starter::Restore(s) => s.stats(),
            _ => RestoreStats::default(),
        }
    }

    /// Runs one schedule: the scenario with `actions` added and the hooks `arm` turns on.
    pub fn run(
        &mut self,
        opts: &ExploreOptions,
        actions: Vec<HookAction>,
        arm: impl Fn(&mut Prepared),
    ) -> Result<RunResult, ExploreError> {
        if let Starter::Pending(Some(grant)) = *self {
            let mut p = lab::prepare(&opts.run)?;
            arm(&mut p);
            *self = match p.snapshot_at_grant(grant) {
                Ok(snap) => Starter::Restore(Box::new(snap)),
                // Slower, not wrong: every schedule boots (explore.json says `reboot`).
                Err(e) => {
                    eprintln!("lockvmm: explore: no snapshot ({e}); booting every schedule");
                    Starter::Reboot
                }
            };
        }
        if let Starter::Restore(snap) = self {
            return Ok(snap.run(actions).map_err(lab::LabError::from)?);
        }
        let mut p = lab::prepare(&opts.run)?;
        p.add_actions(actions);
        arm(&mut p);
        let (_, r) = p.run()?;
        if let Starter::Pending(at) = self {
            *at = r.first_hook_grant;
        }
        Ok(r)
    }
}
