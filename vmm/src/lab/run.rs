//! Running a scenario: load and check it, size the machine, build its configuration, run it.
use std::path::PathBuf;
use std::time::Duration;

use crate::image::KernelImage;
use crate::image::dwarf::parse_path;
use crate::kvm::vm;
use crate::machine::{
    Deliver, HookAction, Machine, MachineConfig, MachineError, RunLimits, RunResult, When,
};
use crate::scenario::{LoadedScenario, ScenarioError, program};
use crate::state::ExitStatus;

/// The default KVM device.
pub const KVM_DEVICE: &str = "/dev/kvm";

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub scenario: PathBuf,
    /// Overrides `machine.vcpus`.
    pub vcpus: Option<usize>,
    pub console_log: Option<PathBuf>,
    pub echo_console: bool,
    /// A guest kernel ELF other than the embedded one.
    pub kernel: Option<PathBuf>,
    pub kvm_device: PathBuf,
    pub stall_timeout: Duration,
    /// Also take a snapshot at this virtual time (ns), whatever happens.
    pub snapshot_at: Option<u64>,
    /// What a runaway guest may cost the host.
    pub limits: RunLimits,
    /// Count the guest's instructions for the run's profile.
    pub count_instructions: bool,
}

impl RunOptions {
    pub fn new(scenario: impl Into<PathBuf>) -> Self {
        RunOptions {
            scenario: scenario.into(),
            vcpus: None,
            console_log: None,
            echo_console: false,
            kernel: None,
            kvm_device: PathBuf::from(
                std::env::var_os("LOCKVMM_KVM_DEVICE").unwrap_or_else(|| KVM_DEVICE.into()),
            ),
            stall_timeout: Duration::from_secs(30),
            snapshot_at: None,
            limits: RunLimits::default(),
            count_instructions: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("--vcpus {requested}: {why}")]
    VcpusFlag { requested: usize, why: String },
    #[error(transparent)]
    Machine(#[from] MachineError),
}

impl LabError {
    /// Bad input (scenario, flags) or the environment (KVM, files).
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            LabError::Scenario(_) | LabError::VcpusFlag { .. } => ExitStatus::BadInput,
            LabError::Machine(
                MachineError::TooManyVcpus { .. }
                | MachineError::ProgramTooBig(_)
                | MachineError::Load(_),
            ) => ExitStatus::BadInput,
            LabError::Machine(_) => ExitStatus::Environment,
        }
    }
}

/// Loads, checks and runs a scenario.
pub fn run_scenario(opts: &RunOptions) -> Result<(LoadedScenario, RunResult), LabError> {
    prepare(opts)?.run()
}

/// A scenario checked against the flags, KVM and its kernel, ready to run: everything that can
/// be refused as bad input or a missing KVM is refused before a run touches its directory.
pub struct Prepared {
    pub scenario: LoadedScenario,
    cfg: MachineConfig,
}

impl Prepared {
    /// Adds host actions to the scenario's own (`lockvmm explore`'s forced events).
    pub fn add_actions(&mut self, actions: Vec<HookAction>) {
        self.cfg.actions.extend(actions);
    }

    /// The machine's knobs, for `lockvmm explore` to arm the hooks its space uses.
    pub fn knobs_mut(&mut self) -> &mut crate::machine::Knobs {
        &mut self.cfg.knobs
    }

    /// Boots the machine to its snapshot point (`machine::restore`), for `lockvmm explore` to
    /// run many schedules from.
    pub fn snapshot_at_grant(
        self,
        grant: u64,
    ) -> Result<crate::machine::restore::Snapshotted, LabError> {
        Ok(Machine::snapshot_at_grant(self.cfg, grant)?)
    }

    /// Runs the machine to its end.
    pub fn run(self) -> Result<(LoadedScenario, RunResult), LabError> {
        let result = Machine::run(self.cfg)?;
        Ok((self.scenario, result))
    }
}

/// Loads and checks a scenario, the flags, KVM and the kernel, and builds the machine's
/// configuration.
pub fn prepare(opts: &RunOptions) -> Result<Prepared, LabError> {
    let scenario = LoadedScenario::load(&opts.scenario)?;
    // `--vcpus` is checked as the flag it is, before the file is checked with it.
    match opts.vcpus {
        Some(0) => {
            return Err(LabError::VcpusFlag {
                requested: 0,
                why: "a machine needs at least 1 vCPU".into(),
            });
        }
        Some(v) if v > lockvmm_abi::NR_CPUS => {
            return Err(LabError::VcpusFlag {
                requested: v,
                why: format!(
                    "the guest kernel supports at most {} vCPUs",
                    lockvmm_abi::NR_CPUS
                ),
            });
        }
        _ => {}
    }
    scenario.validate(opts.vcpus)?;
    let kvm = vm::open_kvm(&opts.kvm_device).map_err(MachineError::from)?;
    let max = vm::max_vcpus(&kvm).min(lockvmm_abi::NR_CPUS);
    drop(kvm);
    let vcpus = opts.vcpus.unwrap_or_else(|| scenario.vcpus());
    if vcpus > max {
        let why = format!("this KVM and the guest kernel allow at most {max} vCPUs");
        return Err(match opts.vcpus {
            Some(requested) => LabError::VcpusFlag { requested, why },
            None => scenario
                .error_at(
                    scenario.scenario.machine.get_ref().vcpus.span(),
                    format!("machine.vcpus = {vcpus}: {why}"),
                )
                .into(),
        });
    }
    let kernel = KernelImage::open(opts.kernel.as_deref()).map_err(MachineError::from)?;
    let lock_addrs = kernel_locks(&scenario, &kernel)?;
    let mut actions = scenario.actions();
    if let Some(t) = opts.snapshot_at {
        actions.push(HookAction {
            when: When::Time(t),
            cpu: Some(0),
            target: Some(0),
            deliver: Deliver::Snapshot,
            once: true,
            arg: None,
            nth: None,
        });
    }
    let cfg = MachineConfig {
        vcpus,
        memory_mib: scenario.memory_mib(),
        program: program::encode(&scenario.scenario, &lock_addrs),
        lock_aliases: scenario
            .lock_names()
            .into_iter()
            .zip(&lock_addrs)
            .filter(|(_, a)| **a != 0)
            .map(|(n, a)| (*a, n))
            .collect(),
        kernel,
        echo_console: opts.echo_console,
        console_log: opts.console_log.clone(),
        kvm_device: opts.kvm_device.clone(),
        stall_timeout: opts.stall_timeout,
        knobs: scenario.knobs(),
        max_vtime_ns: scenario.max_vtime_ns(),
        stop_on_lockup: scenario.stop_on_lockup(),
        actions,
        snapshot_at_end: scenario.snapshot_at_end(),
        lock_names: scenario.lock_names(),
        limits: opts.limits,
        count_instructions: opts.count_instructions,
    };
    Ok(Prepared { scenario, cfg })
}

/// The kernel address of each scenario lock that aliases a kernel lock (`[[lock]] kernel =
/// "runqueues[3].__lock"`), resolved through the kernel's DWARF; 0 for the lab's own locks.
fn kernel_locks(scenario: &LoadedScenario, kernel: &KernelImage) -> Result<Vec<u64>, LabError> {
    let mut out = Vec::new();
    for l in &scenario.scenario.lock {
        let Some(expr) = &l.kernel else {
            out.push(0);
            continue;
        };
        let resolved = parse_path(expr.get_ref()).ok().and_then(|(var, path)| {
            let place = kernel.debug_info().var_place(&var, &path).ok()?;
            Some((
                kernel.symbols.addr_of(&var)?.checked_add(place.offset)?,
                place.type_name,
            ))
        });
        match resolved {
            Some((addr, ty)) if ty == "raw_spinlock_t" => out.push(addr),
            Some((_, ty)) => {
                return Err(scenario
                    .error_at(
                        expr.span(),
                        format!(
                            "lock.kernel: `{}` is a {ty}, not a raw_spinlock_t",
                            expr.get_ref()
                        ),
                    )
                    .into());
            }
            None => {
                return Err(scenario
                    .error_at(
                        expr.span(),
                        format!(
                            "lock.kernel: `{}` is not a kernel lock (a global, its [index] and .members)",
                            expr.get_ref()
                        ),
                    )
                    .into());
            }
        }
    }
    Ok(out)
}
