//! Building a machine and running it to the end: guest memory with the boot page tables, GDT,
//! kernel, scenario program and boot info; the VM with its MSR filter; the vCPUs and their
//! threads; then the supervisor until the outcome. The steps are separate functions because
//! `restore` runs the last three again on a machine restored to a snapshot.
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use lockvmm_abi::{
    BOOT_MAGIC, BootInfo, CLOCKEVENT_PADDR, NO_EVENT, NR_CPUS, PROGRAM_MAX, PROGRAM_PADDR,
};
use vm_superio::serial::NoEvents;
use vmm_sys_util::eventfd::EventFd;

use super::creation::{self, Creation, Incoming, Plan};
use super::insn_count::counted;
use super::restore::HostState;
use super::run_token::Scheduler;
use super::supervisor::{install_kick_handler, join_all, supervise};
use super::vcpu_loop::vcpu_thread;
use super::{
    CaptureState, CpuSlot, Machine, MachineConfig, MachineError, Progress, RunRecord, RunResult,
    START, Timings, lock,
};
use crate::devices::pmu::Pmu;
use crate::devices::serial::{ConsoleSink, ConsoleText, NoIrq, SerialConsole, new_console};
use crate::kvm::{vcpu, vm};
use crate::memory::GuestMemory;
use crate::state::Outcome;

/// A machine built and not yet run: KVM, the VM, RAM and the vCPUs at their boot state.
pub(super) struct Built {
    pub kvm: Kvm,
    pub vm: Arc<VmFd>,
    pub memory: GuestMemory,
    /// The vCPUs, in order, as the creating threads hand them over.
    pub vcpus: Vec<Incoming>,
    pub creation: Creation,
    pub t0: Instant,
}

/// What a machine's run leaves for its result besides the machine itself.
pub(super) struct Console(pub(super) Arc<Mutex<ConsoleText>>);

impl Machine {
    /// Builds and runs a machine until it stops.
    pub fn run(cfg: MachineConfig) -> Result<RunResult, MachineError> {
        let b = build(&cfg, false)?;
        let (machine, console) = match assemble(&cfg, b.vm, b.memory.clone(), None, 0) {
            Ok(assembled) => assembled,
            Err(e) => return Err(b.creation.error_or(e)),
        };
        let ready = b.creation.ready();
        let (driven, insns) = counted(cfg.count_instructions, || {
            drive(&machine, b.vcpus, Some(b.creation), cfg.stall_timeout)
        });
        let vcpus = driven?;
        let ready = ready.get().map_or(Duration::ZERO, |at| *at - b.t0);
        let mut result = collect(&machine, &console, &cfg, b.t0, ready);
        result.profile.set_guest_instructions(insns);
        release(machine, vcpus);
        Ok(result)
    }
}

/// Closes a stopped machine's vCPUs and VM on a thread of its own. KVM tears a VM down when
/// its last file closes, and that waits for SRCU grace periods (`mmu_notifier_unregister`:
/// about 4 ms here, asleep), which the caller would otherwise wait through before writing the
/// run's files. Guest memory is not the VM's (the result keeps it); a process that exits
/// meanwhile finishes the teardown in its exit, as it would have anyway.
fn release(machine: Arc<Machine>, vcpus: Vec<Option<VcpuFd>>) {
    // Without a thread, the closure is dropped with the error: they close here.
    let _ = std::thread::Builder::new()
        .name("vm-release".into())
        .spawn(move || drop((machine, vcpus)));
}

/// Builds the machine: checks the size, fills RAM, creates the VM and starts mapping its memory
/// (with KVM's dirty log for a machine that will be restored) and creating the vCPUs.
pub(super) fn build(cfg: &MachineConfig, dirty_log: bool) -> Result<Built, MachineError> {
    let t0 = Instant::now();
    let _ = START.set(t0);
    let kvm = vm::open_kvm(&cfg.kvm_device)?;
    let max = vm::max_vcpus(&kvm).min(NR_CPUS);
    if cfg.vcpus == 0 || cfg.vcpus > max {
        let limit = if cfg.vcpus == 0 {
            "a machine needs at least 1".to_string()
        } else {
            format!("this KVM and the guest kernel allow at most {max}")
        };
        return Err(MachineError::TooManyVcpus {
            requested: cfg.vcpus,
            limit,
        });
    }
    if cfg.program.len() as u64 > PROGRAM_MAX {
        return Err(MachineError::ProgramTooBig(cfg.program.len()));
    }

    let memory = GuestMemory::new(cfg.memory_mib)?;
    memory.setup_page_tables()?;
    memory.setup_boot_gdt()?;
    cfg.kernel.load(&memory)?;
    memory.write_phys(PROGRAM_PADDR, &cfg.program)?;
    let k = cfg.knobs;
    memory.write_boot_info(&BootInfo {
        magic: BOOT_MAGIC,
        nr_cpus: cfg.vcpus as u32,
        mem_bytes: memory.size(),
        program_paddr: PROGRAM_PADDR,
        program_len: cfg.program.len() as u64,
        vtime_ns: 0,
        watchdog_thresh: k.watchdog_thresh,
        softlockup_panic: k.softlockup_panic.into(),
        hardlockup_panic: k.hardlockup_panic.into(),
        nmi_watchdog: k.nmi_watchdog.into(),
        softlockup_all_cpu_backtrace: k.softlockup_all_cpu_backtrace.into(),
        hardlockup_all_cpu_backtrace: k.hardlockup_all_cpu_backtrace.into(),
        lbr_gfp_mode: k.lbr_gfp_mode,
        console_fbcon: k.console_fbcon.into(),
        irq_enable_hook: k.irq_enable_hook.into(),
        hung_task_timeout_secs: k.hung_task_timeout_secs,
        hung_task_panic: k.hung_task_panic.into(),
        instrument: k.instrument,
        trace_buf_kib: k.trace_buf_kib,
        trace_events: k.trace_events,
        ftrace_dump_on_oops: k.ftrace_dump_on_oops.into(),
        kernel_version: k.kernel_version.raw(),
        ..Default::default()
    })?;
    // No CPU has a timer armed until it programs one.
    memory.write_phys(CLOCKEVENT_PADDR, &NO_EVENT.to_le_bytes().repeat(NR_CPUS))?;

    let vm = Arc::new(vm::create_vm(&kvm)?);
    vm::check_msr_traps(&kvm)?;
    let cpuid = vcpu::supported_cpuid(&kvm)?;
    // KVM_CAP_SYNC_REGS answers with the register sets it can sync.
    let wanted = kvm_bindings::KVM_SYNC_X86_REGS as i32;
    let sync_regs = kvm.check_extension_int(kvm_ioctls::Cap::SyncRegs) & wanted == wanted;
    // From here on other threads create the vCPUs and map guest memory, while this one goes on
    // to start the vCPU threads (`creation`). Mapping the memory, then the MSR filter, before
    // the boot CPU runs: the first of those calls waits for an SRCU grace period of the new VM
    // (`synchronize_srcu` in KVM: 6–13 ms here, asleep) and the second then takes well under a
    // millisecond; the memory's is expedited, so it goes first.
    let plan = Plan {
        n: cfg.vcpus,
        entry_bsp: cfg.kernel.entry_bsp,
        entry_ap: cfg.kernel.entry_ap,
        sync_regs,
    };
    let setup = {
        let (vm, memory) = (vm.clone(), memory.clone());
        move || -> Result<(), MachineError> {
            vm::map_memory(&vm, &memory, dirty_log)?;
            Ok(vm::trap_msrs(&vm, &Pmu::MSRS)?)
        }
    };
    let (vcpus, creation) = creation::start(&vm, cpuid, &plan, setup)?;
    Ok(Built {
        kvm,
        vm,
        memory,
        vcpus,
        creation,
        t0,
    })
}

fn host_err(e: std::io::Error) -> MachineError {
    MachineError::Host(e.to_string())
}

/// The shared state of one run: fresh, or (`resume`) the host's side of a snapshot, with the
/// scenario's actions as they stood then followed by `cfg.actions[from_action..]` (fresh).
/// `pause_at_grant`: stop when the run token is handed out for that time (0: never).
pub(super) fn assemble(
    cfg: &MachineConfig,
    vm: Arc<VmFd>,
    memory: GuestMemory,
    resume: Option<(&HostState, usize)>,
    pause_at_grant: u64,
) -> Result<(Arc<Machine>, Console), MachineError> {
    let log = match &cfg.console_log {
        Some(path) => Some(
            File::create(path).map_err(|source| MachineError::ConsoleLog {
                path: path.clone(),
                source,
            })?,
        ),
        None => None,
    };
    let console = Arc::new(Mutex::new(ConsoleText {
        text: resume.map_or_else(String::new, |(h, _)| h.console.clone()),
        dropped: 0,
    }));
    let mut sink = ConsoleSink::new(cfg.echo_console, log, console.clone())
        .with_limit(usize::try_from(cfg.limits.console_bytes).unwrap_or(usize::MAX));
    let fresh = |a: &super::HookAction| (a.clone(), false, 0);
    let (serial, sched, actions, pmus, record, started) = match resume {
        None => (
            new_console(sink),
            Scheduler::new(cfg.vcpus),
            cfg.actions.iter().map(fresh).collect(),
            vec![Pmu::default(); cfg.vcpus],
            RunRecord::default(),
            vec![false; cfg.vcpus],
        ),
        Some((h, from)) => {
            sink.resume(&h.sink);
            let serial: SerialConsole = SerialConsole::from_state(&h.serial, NoIrq, NoEvents, sink)
                .map_err(|e| MachineError::Host(format!("restoring the UART: {e:?}")))?;
            let mut actions = h.actions.clone();
            actions.extend(cfg.actions.iter().skip(from).map(fresh));
            let sched = Scheduler::from_saved(&h.sched);
            (
                serial,
                sched,
                actions,
                h.pmus.clone(),
                h.record.clone(),
                h.started.clone(),
            )
        }
    };
    let machine = Arc::new(Machine {
        vm,
        memory,
        kernel: cfg.kernel.clone(),
        sched,
        nr_cpus: cfg.vcpus,
        max_vtime_ns: cfg.max_vtime_ns,
        stop_on_lockup: cfg.stop_on_lockup,
        snapshot_at_end: cfg.snapshot_at_end,
        lock_names: cfg.lock_names.clone(),
        lock_aliases: cfg.lock_aliases.clone(),
        cpus: started.into_iter().map(CpuSlot::new).collect(),
        stopped: AtomicBool::new(false),
        stop_evt: EventFd::new(libc::EFD_NONBLOCK).map_err(host_err)?,
        now_ns: AtomicU64::new(resume.map_or(0, |(h, _)| h.now_ns)),
        serial: Mutex::new(serial),
        pmus: Mutex::new(pmus),
        record: Mutex::new(record),
        actions: Mutex::new(actions),
        snapshot: Mutex::new(None),
        detection_snapshot: AtomicBool::new(false),
        capture: Mutex::new(CaptureState::default()),
        capture_done: Condvar::new(),
        limits: cfg.limits,
        progress: Progress::default(),
        profile: Default::default(),
        grants: AtomicU64::new(resume.map_or(0, |(h, _)| h.grants)),
        pause_at_grant,
        first_hook_grant: AtomicU64::new(0),
        paused: AtomicBool::new(false),
    });
    if let Some((h, _)) = resume {
        machine.progress.restore(h.progress);
    }
    Ok((machine, Console(console)))
}

/// Runs the vCPU threads until the machine stops; hands back the vCPUs whose threads ended
/// (`None` for one stuck in `KVM_RUN`, detached, or never created). With `creation` (the
/// vCPUs still being created), a vCPU that could not be created is the run's error.
pub(super) fn drive(
    machine: &Arc<Machine>,
    vcpus: Vec<Incoming>,
    creation: Option<Creation>,
    stall_timeout: Duration,
) -> Result<Vec<Option<VcpuFd>>, MachineError> {
    let mut threads = Vec::with_capacity(vcpus.len());
    let run = install_kick_handler()
        .and_then(|()| {
            for (cpu, incoming) in vcpus.into_iter().enumerate() {
                let m = machine.clone();
                let handle = std::thread::Builder::new()
                    .name(format!("vcpu{cpu}"))
                    .spawn(move || vcpu_thread(m, incoming, cpu))
                    .map_err(host_err)?;
                threads.push(handle);
            }
            Ok(())
        })
        .and_then(|()| supervise(machine, &threads, stall_timeout));
    if let Err(e) = &run {
        // Stop the threads that started: they are parked, or about to enter the guest.
        machine.finish(Outcome::HostError {
            message: e.to_string(),
        });
    }
    let vcpus = join_all(machine, threads);
    // A vCPU that could not be created is the run's error, before a host error that may well
    // be its consequence (the file descriptors it ran out of, say).
    if let Some(c) = creation {
        c.finish()?;
    }
    run?;
    Ok(vcpus)
}

/// The result of a run that has stopped; `ready`: when the machine could start.
pub(super) fn collect(
    machine: &Machine,
    console: &Console,
    cfg: &MachineConfig,
    t0: Instant,
    ready: Duration,
) -> RunResult {
    let (console_dropped, console_log_error) = {
        let mut serial = lock(&machine.serial);
        let sink = serial.writer_mut();
        sink.finish();
        (sink.dropped() as u64, sink.log_error())
    };
    let mut record = std::mem::take(&mut *lock(&machine.record));
    record.dropped.console_bytes = console_dropped;
    let outcome = record.outcome.unwrap_or(Outcome::HostError {
        message: "the machine stopped without an outcome".into(),
    });
    let text = std::mem::take(&mut lock(&console.0).text);
    let all_online_ms = record.all_online_at.map(|t| (t - t0).as_secs_f64() * 1e3);
    let first_hook = machine
        .first_hook_grant
        .load(std::sync::atomic::Ordering::Acquire);
    RunResult {
        outcome,
        online: record.online,
        console: text,
        memory: machine.memory.clone(),
        kernel: cfg.kernel.clone(),
        timings: Timings {
            t0,
            vcpus_created_ms: ready.as_secs_f64() * 1e3,
            all_online_ms,
            finished_ms: t0.elapsed().as_secs_f64() * 1e3,
        },
        bad_hypercalls: record.bad_hypercalls,
        lockups: record.lockups,
        hooks: record.hooks,
        splats: record.splats,
        vtime_ns: machine.now_ns(),
        pmu_nmis: lock(&machine.pmus).iter().map(|p| p.overflows).collect(),
        snapshot: lock(&machine.snapshot).take(),
        dropped: record.dropped,
        console_log_error,
        profile: machine.profile.profile(),
        first_hook_grant: (first_hook != 0).then_some(first_hook),
    }
}
