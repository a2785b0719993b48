//! Scenario files (`scenarios/*.toml`): what to run, checked, and turned into the machine's
//! configuration and the guest's program.
//!
//! Parsing is strict (`deny_unknown_fields`); every error names the file, line and column, and
//! an unknown key comes with the nearest valid one.
pub mod errors;
pub mod expect;
pub mod explore;
mod limits;
pub mod ops;
pub mod program;
pub mod schema;
pub mod sysctl;
pub mod trace;
mod validate;
mod validate_program;

use std::ops::Range;
use std::path::{Path, PathBuf};

pub use errors::{ScenarioError, line_col};
pub use ops::{Addr, GfpSpec, LockMode, ModuleVariant, OpSpec};
pub use schema::*;

use crate::machine::{Deliver, HookAction, Knobs, When};
use lockvmm_abi::hook::Hook;
use lockvmm_abi::knob::{KernelVersion, LbrGfpMode};

use errors::{invalid, with_suggestion};

/// A scenario with its source, for locating errors.
pub struct LoadedScenario {
    pub path: PathBuf,
    pub source: String,
    pub scenario: Scenario,
}

impl LoadedScenario {
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let bytes = std::fs::read(path).map_err(|source| ScenarioError::Read {
            path: path.into(),
            source,
        })?;
        let source = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            let valid = String::from_utf8_lossy(&bytes[..at]);
            invalid(
                path,
                &valid,
                at..at,
                format!(
                    "invalid UTF-8 (byte {:#04x}): a scenario is UTF-8 text",
                    bytes[at]
                ),
            )
        })?;
        Self::parse(path, source)
    }

    pub fn parse(path: &Path, source: String) -> Result<Self, ScenarioError> {
        let scenario: Scenario = toml::from_str(&source).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let message = with_suggestion(e.message());
            invalid(path, &source, span, message)
        })?;
        let loaded = LoadedScenario {
            path: path.into(),
            source,
            scenario,
        };
        loaded.validate(None)?;
        Ok(loaded)
    }

    /// An error at `span` of this file.
    pub fn error_at(&self, span: Range<usize>, message: impl Into<String>) -> ScenarioError {
        invalid(&self.path, &self.source, span, message.into())
    }

    pub fn vcpus(&self) -> usize {
        *self.scenario.machine.get_ref().vcpus.get_ref() as usize
    }

    pub fn memory_mib(&self) -> u64 {
        self.scenario
            .machine
            .get_ref()
            .memory_mib
            .as_ref()
            .map_or(DEFAULT_MEMORY_MIB, |m| *m.get_ref() as u64)
    }

    pub fn knobs(&self) -> Knobs {
        // Validated at load; a value out of range cannot reach here.
        let w = sysctl::WatchdogKnobs::resolve(&self.scenario.watchdog, &self.scenario.sysctl)
            .unwrap_or(sysctl::WatchdogKnobs {
                watchdog_thresh: 10,
                softlockup_panic: false,
                hardlockup_panic: false,
                nmi_watchdog: true,
                softlockup_all_cpu_backtrace: false,
                hung_task_timeout_secs: 120,
                hung_task_panic: false,
            });
        Knobs {
            // `watchdog_thresh = 0` turns both detectors off (BootInfo: thresh 0, and no NMI
            // watchdog counter); 2.6.32's default is its own.
            watchdog_thresh: self.watchdog_thresh(w.watchdog_thresh),
            softlockup_panic: w.softlockup_panic,
            hardlockup_panic: w.hardlockup_panic,
            nmi_watchdog: w.nmi_watchdog && w.watchdog_thresh != 0,
            softlockup_all_cpu_backtrace: w.softlockup_all_cpu_backtrace,
            hardlockup_all_cpu_backtrace: self.scenario.watchdog.hardlockup_all_cpu_backtrace,
            hung_task_timeout_secs: w.hung_task_timeout_secs,
            hung_task_panic: w.hung_task_panic,
            lbr_gfp_mode: match self.scenario.faults.lbr_alloc {
                LbrAlloc::GfpKernel => LbrGfpMode::GfpKernel,
                LbrAlloc::GfpAtomic => LbrGfpMode::GfpAtomic,
                LbrAlloc::Upstream => LbrGfpMode::Upstream,
            }
            .raw(),
            console_fbcon: self
                .scenario
                .machine
                .get_ref()
                .console
                .iter()
                .any(|c| c.get_ref() == "tty0"),
            irq_enable_hook: self.explores_irq_enable()
                || self.scenario.action.iter().any(|a| {
                    a.get_ref()
                        .at_hook
                        .as_ref()
                        .is_some_and(|h| h.get_ref() == Hook::IrqEnableLocked.name())
                }),
            // Explore's contention hook when the scenario's space or an action names
            // `lock_contended`; the debug kernel's validators from `[debug]`.
            instrument: {
                use lockvmm_abi::knob::instrument::{
                    DEBUG_ATOMIC_SLEEP, LOCK_CONTENDED_HOOK, LOCKDEP,
                };
                let d = &self.scenario.debug;
                (if self.uses_hook(Hook::LockContended) {
                    LOCK_CONTENDED_HOOK
                } else {
                    0
                }) | (if d.lockdep { LOCKDEP } else { 0 })
                    | (if d.debug_atomic_sleep {
                        DEBUG_ATOMIC_SLEEP
                    } else {
                        0
                    })
                    | self.trace_knobs().instrument
            },
            trace_buf_kib: self.trace_knobs().buf_kib,
            trace_events: self.trace_knobs().events,
            ftrace_dump_on_oops: self.trace_knobs().dump_on_oops,
            kernel_version: self.kernel_version(),
        }
    }

    /// `watchdog_thresh` as given, else the version's default: 10, or on 2.6.32 the 60 s of
    /// its `softlockup_thresh` (seed 003), which the guest takes as the soft threshold itself.
    fn watchdog_thresh(&self, resolved: u32) -> u32 {
        let given = self.scenario.watchdog.watchdog_thresh.span() != (0..0)
            || self.scenario.sysctl.kernel.watchdog_thresh.is_some();
        if !given && self.kernel_version() == KernelVersion::V2_6 {
            60
        } else {
            resolved
        }
    }

    /// The Linux version the scenario replays (validated at load; 6.6 without `kernel`).
    pub fn kernel_version(&self) -> KernelVersion {
        self.scenario
            .machine
            .get_ref()
            .kernel
            .as_ref()
            .and_then(|k| KernelVersion::from_name(k.get_ref()))
            .unwrap_or(KernelVersion::V6_6)
    }

    /// The declared locks' names, by index.
    pub fn lock_names(&self) -> Vec<String> {
        self.scenario
            .lock
            .iter()
            .map(|l| l.name.get_ref().clone())
            .collect()
    }

    /// The host actions, for the machine.
    pub fn actions(&self) -> Vec<HookAction> {
        let names = program::Names::of(&self.scenario);
        self.scenario
            .action
            .iter()
            .filter_map(|a| {
                let a = a.get_ref();
                let when = match (&a.at_hook, &a.at_time) {
                    (Some(h), _) => When::Hook(Hook::from_name(h.get_ref())?),
                    (None, Some(t)) => When::Time((*t.get_ref() * 1e9) as u64),
                    (None, None) => return None,
                };
                let deliver = match a.deliver {
                    DeliverSpec::TimerTick => Deliver::TimerTick,
                    DeliverSpec::Nmi => Deliver::Nmi,
                    DeliverSpec::PmuOverflow => Deliver::PmuOverflow,
                    DeliverSpec::Pause => Deliver::Pause,
                    DeliverSpec::Resume => Deliver::Resume,
                    DeliverSpec::Snapshot => Deliver::Snapshot,
                    DeliverSpec::Irq => Deliver::Irq(lockvmm_abi::vector::lab_vector(
                        names.handler(a.handler.as_ref()?.get_ref()) as u32,
                    )),
                };
                let arg = match (&a.lock, &a.label) {
                    (Some(l), _) => Some(names.lock(l.get_ref())),
                    (None, Some(l)) => Some(names.label(l.get_ref()).unwrap_or(u64::MAX)),
                    (None, None) => None,
                };
                Some(HookAction {
                    when,
                    cpu: a.cpu.as_ref().map(|c| *c.get_ref() as usize),
                    target: a.target.as_ref().map(|c| *c.get_ref() as usize),
                    deliver,
                    once: a.once,
                    arg,
                    nth: a.nth.as_ref().map(|n| *n.get_ref() as u64),
                })
            })
            .collect()
    }

    /// Every op of the scenario: the tasks', the handlers', and those inside `repeat`s.
    pub fn all_ops(&self) -> Vec<OpAt<'_>> {
        self.scenario.all_ops()
    }

    pub fn max_vtime_ns(&self) -> u64 {
        (*self.scenario.run.max_virtual_seconds.get_ref() * 1e9) as u64
    }

    pub fn stop_on_lockup(&self) -> bool {
        self.scenario.run.stop_on_lockup
    }

    pub fn snapshot_at_end(&self) -> bool {
        self.scenario.run.snapshot_at_end
    }

    /// The scenario's name: its file stem.
    pub fn name(&self) -> String {
        self.path
            .file_stem()
            .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<LoadedScenario, ScenarioError> {
        LoadedScenario::parse(Path::new("t.toml"), src.to_string())
    }

    #[test]
    fn unknown_key_names_line_and_nearest_key() {
        let err = parse("description = \"x\"\n[machine]\nvcpu = 2\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("t.toml:3:1:"), "{err}");
        assert!(err.contains("did you mean `vcpus`?"), "{err}");
    }

    #[test]
    fn zero_vcpus_is_rejected_at_its_value() {
        let err = parse("description = \"x\"\n[machine]\nvcpus = 0\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("t.toml:3:9:"), "{err}");
    }

    #[test]
    fn addresses_accept_hex_strings_and_integers() {
        let s = parse(
            "description = \"x\"\n[machine]\nvcpus = 2\n[[task]]\ncomm = \"t\"\ncpu = 1\n\
             ops = [{ op = \"read\", addr = \"0xffffc90000001000\" }, { op = \"printk\", lines = 3 }]\n",
        )
        .unwrap();
        let ops = &s.scenario.task[0].get_ref().ops;
        assert!(matches!(
            ops[0].get_ref(),
            OpSpec::Read {
                addr: Addr(0xffff_c900_0000_1000)
            }
        ));
        assert!(matches!(
            ops[1].get_ref(),
            OpSpec::Printk { lines: Addr(3) }
        ));
    }

    #[test]
    fn task_on_missing_cpu_is_rejected() {
        let err =
            parse("description = \"x\"\n[machine]\nvcpus = 2\n[[task]]\ncomm = \"t\"\ncpu = 2\n")
                .err()
                .unwrap()
                .to_string();
        assert!(err.starts_with("t.toml:6:7:"), "{err}");
    }
}
