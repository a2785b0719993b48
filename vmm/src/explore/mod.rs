//! `lockvmm explore`: run a scenario's workload under many schedules and report which ones
//! fail. A schedule is a list of forced events, each at one occurrence of a hook on a CPU (an
//! interrupt enable with spinlocks held, `allocate_slab`, a lock taken, …): a timer tick, an NMI,
//! a handler's interrupt, or a delay that lets the other CPUs go first.
//!
//! The search is breadth-first over the number of forced events (iterative deepening, as
//! CHESS's preemption bounding): the recording run (no forced event) lists the choice points it
//! passed; each schedule's children force one more event at a choice point its own run reached
//! after its last forced event. Every schedule with k events runs before any with k + 1, so the
//! first schedule that reaches a failure is a shortest one. The order is fixed by the runs
//! themselves (deterministic), so shards and reruns see the same tree.
pub mod cli;
pub mod found;
pub mod results;
pub mod space;
mod start;

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::lab::{self, LabError, RunOptions};
use crate::process::signals;
use crate::state::OutcomeClass;
use results::{ExploreResult, ScheduleResult, Signature};
use space::{Forced, Space};

/// When the search stops before the space is covered.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Schedules(usize),
    /// Wall time: how far the search gets then depends on the host.
    Wall(Duration),
}

/// How to explore.
#[derive(Debug, Clone)]
pub struct ExploreOptions {
    pub run: RunOptions,
    /// Overrides `[explore] depth`.
    pub depth: Option<usize>,
    pub budget: Budget,
    /// `(K, N)`: only the subtrees of the recording's choices i with i mod N = K.
    pub shard: (usize, usize),
    /// The run directory (`explore.json`, `found-N.toml`, `found-N/`).
    pub out: PathBuf,
    /// A progress line on stderr.
    pub progress: bool,
    /// Boot a fresh machine for every schedule instead of restoring the snapshot.
    pub reboot: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error("schedule {id:?} ({what}): lockvmm failed: {why}")]
    Host {
        id: Vec<usize>,
        what: String,
        why: String,
    },
    #[error("cannot write {path}: {why}")]
    Write { path: PathBuf, why: String },
    /// A shard's result that cannot be merged (missing, not explore.json, another space).
    #[error("cannot merge {path}: {why}")]
    Merge { path: PathBuf, why: String },
}

/// One schedule's run: its result and the hooks it passed.
fn run_one(
    opts: &ExploreOptions,
    starter: &mut start::Starter,
    space: &Space,
    id: &[usize],
    forced: &[Forced],
) -> Result<(ScheduleResult, Vec<crate::state::HookEvent>), ExploreError> {
    let t = Instant::now();
    let arm = |p: &mut lab::Prepared| {
        if space.wants_irq_enable_hook() {
            p.knobs_mut().irq_enable_hook = true;
        }
    };
    let r = starter.run(opts, space::actions(forced), arm)?;
    let class = OutcomeClass::of(&r.outcome, &r.lockups);
    if class == OutcomeClass::HostError && signals::received().is_none() {
        return Err(ExploreError::Host {
            id: id.to_vec(),
            what: forced
                .iter()
                .map(Forced::label)
                .collect::<Vec<_>>()
                .join("; "),
            why: r.outcome.render(),
        });
    }
    let failed = !matches!(
        class,
        OutcomeClass::NoLockup | OutcomeClass::Shutdown | OutcomeClass::HostError
    );
    let signature = failed.then(|| {
        let report = lab::finish::crash_report(&r);
        Signature::of(class, &r, report.as_ref())
    });
    let result = ScheduleResult {
        id: id.to_vec(),
        forced: forced.to_vec(),
        class,
        failed,
        reached: space::reached(forced, &r.hooks),
        signature,
        children: 0,
        vtime_ns: r.vtime_ns,
        wall_ms: t.elapsed().as_secs_f64() * 1e3,
    };
    Ok((result, r.hooks))
}

/// The search: runs schedules until the space (of this shard) is covered or the budget spent.
pub fn explore(opts: &ExploreOptions) -> Result<ExploreResult, ExploreError> {
    let started = Instant::now();
    let scenario = lab::prepare(&opts.run)?.scenario;
    let space = Space::of(&scenario, opts.depth);
    let (k, n) = opts.shard;
    let mut queue: VecDeque<(Vec<usize>, Vec<Forced>)> = VecDeque::from([(vec![], vec![])]);
    let mut schedules: Vec<ScheduleResult> = Vec::new();
    let mut complete = true;
    let mut starter = start::Starter::new(opts);
    while let Some((id, forced)) = queue.pop_front() {
        let spent = match opts.budget {
            Budget::Schedules(max) => schedules.len() >= max,
            Budget::Wall(d) => started.elapsed() >= d,
        };
        if spent || signals::received().is_some() {
            complete = false;
            break;
        }
        let (mut result, hooks) = run_one(opts, &mut starter, &space, &id, &forced)?;
        // A failed schedule is extended too: its children force one more event at a choice
        // point its run reached before it failed, which can turn the failure into another
        // (timer_uaf_race: holding rmmod before the free turns the oops into a lockup).
        if result.reached {
            let children = space.children(&forced, &hooks);
            result.children = children.len();
            for (i, child) in children.into_iter().enumerate() {
                if !id.is_empty() || i % n == k {
                    let mut cid = id.clone();
                    cid.push(i);
                    queue.push_back((cid, child));
                }
            }
        }
        schedules.push(result);
        if opts.progress {
            progress(&schedules, queue.len(), started.elapsed());
        }
    }
    if opts.progress && std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
    let wall_s = started.elapsed().as_secs_f64();
    let mut result = ExploreResult {
        schema_version: results::SCHEMA_VERSION,
        scenario: scenario.name(),
        space,
        shard: opts.shard,
        mode: starter.mode().into(),
        restores: starter.stats().restores,
        restored_pages: starter.stats().pages,
        snapshot_ms: starter.stats().boot_ms,
        restore_ms: starter.stats().restore_ms,
        schedules_per_s: schedules.len() as f64 / wall_s.max(1e-9),
        schedules,
        classes: Default::default(),
        failures: Vec::new(),
        complete,
        wall_s,
    };
    result.tally();
    let names: Vec<String> = scenario
        .scenario
        .handler
        .iter()
        .map(|h| h.get_ref().name.get_ref().clone())
        .collect();
    for f in &mut result.failures {
        f.toml = found::scenario_text(&scenario.source, f.n, &f.signature, &f.forced, &names);
    }
    Ok(result)
}

/// The progress line (a terminal only): schedules done, failures so far, the rate.
fn progress(done: &[ScheduleResult], queued: usize, elapsed: Duration) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let failed = done.iter().filter(|s| s.failed).count();
    eprint!(
        "\r\x1b[Klockvmm: explore: {} schedules, {failed} failing, {queued} queued, {:.2} schedules/s",
        done.len(),
        done.len() as f64 / elapsed.as_secs_f64().max(1e-9)
    );
}

/// Writes each failure's `found-N.toml`, replays it with `lockvmm run`'s own path into
/// `found-N/` (report, vmcore, result.json), and records whether it showed the same failure.
pub fn write_and_replay(
    result: &mut ExploreResult,
    out: &Path,
    base: &RunOptions,
) -> Result<(), ExploreError> {
    for f in &mut result.failures {
        let path = out.join(&f.file);
        crate::output::write_atomic(&path, f.toml.as_bytes()).map_err(|e| ExploreError::Write {
            path: path.clone(),
            why: e.to_string(),
        })?;
        if signals::received().is_some() {
            continue;
        }
        let dir = out.join(format!("found-{}", f.n));
        std::fs::create_dir_all(&dir).map_err(|e| ExploreError::Write {
            path: dir.clone(),
            why: e.to_string(),
        })?;
        let mut opts = base.clone();
        opts.scenario = path;
        opts.console_log = Some(dir.join("console.log"));
        opts.echo_console = false;
        let started = Instant::now();
        let (scenario, r) = lab::run_scenario(&opts)?;
        let vcpus = opts.vcpus.unwrap_or_else(|| scenario.vcpus());
        let console = dir.join("console.log");
        let done = lab::complete(&scenario, &r, vcpus, &dir, &console, started);
        let class = OutcomeClass::of(&r.outcome, &r.lockups);
        let same = Signature::of(class, &r, done.report.as_ref()) == f.signature;
        f.replayed = Some(same && done.failed_expectations().is_empty());
    }
    Ok(())
}
