//! Finishing a run: the analysis of its snapshot (once), the vmcore, the crash-style report,
//! the expectations, and `result.json`.
use std::path::Path;
use std::time::Instant;

use crate::analysis::{Analysis, Incident, dmesg_from};
use crate::image::SourceLines;
use crate::machine::RunResult;
use crate::output::summary::{RunSummary, SCHEMA_VERSION, Timings};
use crate::output::vmcore::{self, CoreMeta};
use crate::output::write_atomic;
use crate::report::{CrashReport, Detection, ReportInput, report_cpu};
use crate::scenario::LoadedScenario;
use crate::scenario::expect::{self, Verdict};
use crate::state::{CpuBacktrace, ExitStatus, LockupKind, Outcome, OutcomeClass};

/// What a finished run produced.
pub struct Completed {
    pub summary: RunSummary,
    pub report: Option<CrashReport>,
    /// Problems writing the run's files (the run itself is still reported).
    pub warnings: Vec<String>,
}

impl Completed {
    /// Success when the scenario's expectations hold (or, without expectations, on a clean
    /// power-off with every CPU online and no lockup reported); the environment for a host
    /// error; else a guest failure.
    pub fn exit_status(&self) -> ExitStatus {
        let s = &self.summary;
        if matches!(s.outcome, Outcome::HostError { .. }) {
            return ExitStatus::Environment;
        }
        let ok = if s.expectations.is_empty() {
            s.class == OutcomeClass::Shutdown
                && s.lockups.is_empty()
                && s.cpus_online.len() == s.vcpus
        } else {
            s.expectations.iter().all(|v| v.ok)
        };
        if ok {
            ExitStatus::Success
        } else {
            ExitStatus::GuestFailed
        }
    }

    pub fn failed_expectations(&self) -> Vec<&Verdict> {
        self.summary.expectations.iter().filter(|v| !v.ok).collect()
    }
}

/// Peak resident memory of this process.
pub fn max_rss_kib() -> i64 {
    // SAFETY: getrusage only writes into the struct we pass; RUSAGE_SELF is always valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
        usage.ru_maxrss
    } else {
        -1
    }
}

/// Wall time of consecutive steps, by name.
struct PhaseClock {
    at: Instant,
    laps: Vec<(String, f64)>,
}

impl PhaseClock {
    fn new() -> Self {
        PhaseClock {
            at: Instant::now(),
            laps: Vec::new(),
        }
    }

    fn lap(&mut self, name: &str) {
        let now = Instant::now();
        self.laps
            .push((name.into(), (now - self.at).as_secs_f64() * 1e3));
        self.at = now;
    }
}

/// The machine's phases, from its milestones (ms).
fn host_phases(r: &RunResult, prepare_ms: f64) -> std::collections::BTreeMap<String, f64> {
    let t = &r.timings;
    let booted = t.all_online_ms.unwrap_or(t.vcpus_created_ms);
    let mut phases = std::collections::BTreeMap::from([
        ("prepare".to_string(), prepare_ms),
        ("create".to_string(), t.vcpus_created_ms),
        ("boot".to_string(), booted - t.vcpus_created_ms),
        ("run".to_string(), t.finished_ms - booted),
    ]);
    if let Some(s) = &r.snapshot {
        phases.insert("freeze".into(), s.freeze_us as f64 / 1e3);
        phases.insert("memory_copy".into(), s.memory_copy_us as f64 / 1e3);
    }
    phases
}

/// What stopped the machine on the report's CPU.
fn incident(r: &RunResult) -> Incident<'_> {
    if let Some(first) = r.lockups.first() {
        return match (first.kind, first.task) {
            (LockupKind::HungTask, Some(task)) => Incident::HungTask(task),
            (kind, _) => Incident::Lockup(kind),
        };
    }
    match &r.outcome {
        Outcome::Fault(f) => Incident::Fault(f),
        Outcome::Panic { message, .. } => Incident::Panic(message),
        Outcome::AllWaiting { .. } => Incident::AllWaiting,
        _ => Incident::Undetected,
    }
}

/// The snapshot's analysis, made once: every CPU's backtrace, then the crash-style report (when
/// the run names a CPU) and the vmcore's thread registers share them.
struct Analysed {
    report: Option<CrashReport>,
    backtraces: Vec<CpuBacktrace>,
}

fn analyse(r: &RunResult, dumpfile: Option<String>) -> Option<Analysed> {
    let snap = r.snapshot.as_ref()?;
    let a = Analysis::new(snap, &r.kernel.symbols, r.kernel.debug_info());
    let backtraces: Vec<CpuBacktrace> = (0..snap.cpus.len()).map(|c| a.backtrace(c)).collect();
    // Without a CPU the run names (a snapshot at the end, or asked for), the report is about
    // the first CPU that spins on a lock, else CPU 0.
    let cpu = report_cpu(&r.outcome, &r.lockups)
        .or_else(|| a.lock_waits().first().map(|w| w.cpu))
        .unwrap_or(0);
    let report = Some(cpu).map(|cpu| {
        let cr3 = a.mem.cr3;
        let dmesg = dmesg_from(
            |va, len| r.memory.read_virt(cr3, va, len).ok(),
            a.syms,
            a.dwarf,
        );
        let panic = match &r.outcome {
            Outcome::Panic { message, .. } => Some(message.clone()),
            _ => None,
        };
        let detections = r
            .lockups
            .iter()
            .map(|e| Detection {
                cpu: e.cpu,
                kind: e.kind,
                vtime_ns: e.vtime_ns,
                message: e.message.clone(),
            })
            .collect();
        let mut report = CrashReport::build(
            &a,
            ReportInput {
                cpu,
                incident: incident(r),
                backtraces: &backtraces,
                panic,
                detections,
                hung: r.lockups.iter().filter_map(|e| e.task).collect(),
                kernel: r.kernel.path.display().to_string(),
                dumpfile,
                dmesg,
                splats: &r.splats,
            },
        );
        if let Some(lines) = SourceLines::from_elf(&r.kernel.elf) {
            for bt in &mut report.backtraces {
                lines.annotate(&mut bt.items);
            }
        }
        report
    });
    Some(Analysed { report, backtraces })
}

/// The crash-style report of a run that left a snapshot, without writing any file (`lockvmm
/// explore` tells failures apart by it).
pub fn crash_report(r: &RunResult) -> Option<CrashReport> {
    analyse(r, None).and_then(|a| a.report)
}

/// Writes the vmcore of a run that left a snapshot (and `vmlinux` beside it).
fn write_vmcore(out: &Path, r: &RunResult, backtraces: &[CpuBacktrace]) -> Result<(), String> {
    let Some(snap) = &r.snapshot else {
        return Ok(());
    };
    let meta = CoreMeta {
        format: "lockvmm-vmcore-1".into(),
        reason: snap.reason.clone(),
        vtime_ns: snap.vtime_ns,
        kernel: r.kernel.path.display().to_string(),
        cpus: snap.cpus.clone(),
        mem_bytes: snap.memory.len() as u64,
        console: r.console.clone(),
        freeze_us: snap.freeze_us,
        memory_copy_us: snap.memory_copy_us,
        report_cpu: report_cpu(&r.outcome, &r.lockups),
        lock_names: snap.lock_names.clone(),
        lock_aliases: snap.lock_aliases.clone(),
        kernel_digest: Some(r.kernel.digest()),
    };
    vmcore::write(
        &out.join("vmcore"),
        snap,
        &meta,
        &vmcore::thread_regs(backtraces),
        &vmcore::vmcoreinfo(&r.kernel.elf, snap),
    )
    .map_err(|e| e.to_string())
}

/// Writes the run's files into `out` and builds its summary. `started` is when the process
/// started (timings count from there).
pub fn complete(
    scenario: &LoadedScenario,
    r: &RunResult,
    vcpus: usize,
    out: &Path,
    console_log: &Path,
    started: Instant,
) -> Completed {
    let mut warnings = Vec::new();
    let vmcore_path = out.join("vmcore").display().to_string();
    let mut clock = PhaseClock::new();
    let analysed = analyse(r, Some(vmcore_path.clone()));
    clock.lap("analysis");
    let mut vmcore = None;
    let mut report = None;
    if let Some(Analysed {
        report: rep,
        backtraces,
    }) = analysed
    {
        report = rep;
        let written = write_vmcore(out, r, &backtraces);
        clock.lap("vmcore");
        match written {
            Ok(()) => {
                vmcore = Some(vmcore_path);
                if let Err(e) = write_atomic(&out.join("vmlinux"), &r.kernel.elf) {
                    warnings.push(format!(
                        "cannot write {}: {e}",
                        out.join("vmlinux").display()
                    ));
                }
                // gdb's vmlinux-gdb.py and drgn's helpers, beside the vmlinux.
                if let Err(e) = crate::output::debuggers::write_scripts(out, &r.kernel.elf) {
                    warnings.push(format!("cannot write the debugger scripts: {e}"));
                }
            }
            Err(e) => {
                warnings.push(e);
                if let Some(rep) = report.as_mut() {
                    rep.dumpfile = None;
                }
            }
        }
    }
    if let Some(Err(e)) = report
        .as_ref()
        .map(|c| write_atomic(&out.join("report.txt"), c.render().as_bytes()))
    {
        warnings.push(format!(
            "cannot write {}: {e}",
            out.join("report.txt").display()
        ));
    }
    warnings.extend(super::trace_files::write_trace_files(
        out,
        scenario,
        r,
        report.as_ref(),
    ));
    let expectations = expect::check(&scenario.scenario.expect, r, report.as_ref());
    let offset_ms = (r.timings.t0 - started).as_secs_f64() * 1e3;
    let mut profile = r.profile.clone();
    profile.host_ms = host_phases(r, offset_ms);
    let mut summary = RunSummary {
        schema_version: SCHEMA_VERSION,
        scenario: scenario.name(),
        description: scenario.scenario.description.clone(),
        kernel: r.kernel.path.display().to_string(),
        vcpus,
        cpus_online: r.online.clone(),
        outcome: r.outcome.clone(),
        class: OutcomeClass::of(&r.outcome, &r.lockups),
        lockups: r.lockups.clone(),
        hooks: r.hooks.clone(),
        splats: r.splats.clone(),
        pmu_nmis: r.pmu_nmis.clone(),
        bad_hypercalls: r.bad_hypercalls.clone(),
        dropped: r.dropped,
        vtime_ns: r.vtime_ns,
        report: report.clone(),
        console_log: console_log.display().to_string(),
        vmcore,
        timings: Timings {
            vcpus_created_ms: offset_ms + r.timings.vcpus_created_ms,
            all_online_ms: r.timings.all_online_ms.map(|t| offset_ms + t),
            finished_ms: offset_ms + r.timings.finished_ms,
            exit_ms: started.elapsed().as_secs_f64() * 1e3,
        },
        max_rss_kib: max_rss_kib(),
        expectations,
        profile,
    };
    clock.lap("files");
    summary.profile.host_ms.extend(clock.laps);
    match serde_json::to_string_pretty(&summary) {
        Ok(text) => {
            if let Err(e) = write_atomic(&out.join("result.json"), text.as_bytes()) {
                warnings.push(format!(
                    "cannot write {}: {e}",
                    out.join("result.json").display()
                ));
            }
        }
        Err(e) => warnings.push(format!("cannot encode result.json: {e}")),
    }
    Completed {
        summary,
        report,
        warnings,
    }
}
