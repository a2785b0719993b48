//! Building a machine and running it to the end: guest memory with the boot page tables, GDT,
//! kernel, scenario program and boot info; the VM with its MSR filter; the vCPUs and their
//! threads; then the supervisor until the outcome.
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use lockvmm_abi::{
    BOOT_MAGIC, BootInfo, CLOCKEVENT_PADDR, NO_EVENT, NR_CPUS, PROGRAM_MAX, PROGRAM_PADDR,
};
use vmm_sys_util::eventfd::EventFd;

use super::run_token::Scheduler;
use super::supervisor::{install_kick_handler, join_all, supervise};
use super::vcpu_loop::vcpu_thread;
use super::{
    CaptureState, CpuSlot, Machine, MachineConfig, MachineError, Progress, RunRecord, RunResult,
    START, Timings, lock,
};
use crate::devices::pmu::Pmu;
use crate::devices::serial::{ConsoleSink, ConsoleText, new_console};
use crate::kvm::{vcpu, vm};
use crate::memory::GuestMemory;
use crate::state::Outcome;

impl Machine {
    /// Builds and runs a machine until it stops.
    pub fn run(cfg: MachineConfig) -> Result<RunResult, MachineError> {
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

        let vm = vm::create_vm(&kvm, &memory)?;
        vm::trap_msrs(&kvm, &vm, &Pmu::MSRS)?;
        let cpuid = vcpu::supported_cpuid(&kvm)?;
        // KVM_CAP_SYNC_REGS answers with the register sets it can sync.
        let wanted = kvm_bindings::KVM_SYNC_X86_REGS as i32;
        let sync_regs = kvm.check_extension_int(kvm_ioctls::Cap::SyncRegs) & wanted == wanted;
        let mut vcpus = Vec::with_capacity(cfg.vcpus);
        for cpu in 0..cfg.vcpus {
            let rip = if cpu == 0 {
                cfg.kernel.entry_bsp
            } else {
                cfg.kernel.entry_ap
            };
            let mut fd = vcpu::create_vcpu(&vm, &cpuid, cpu, rip)?;
            if sync_regs {
                // Registers in `kvm_run` at every exit: a hypercall reads its arguments there.
                fd.set_sync_valid_reg(kvm_ioctls::SyncReg::Register);
            }
            vcpus.push(fd);
        }
        let vcpus_created = t0.elapsed();

        let log = match &cfg.console_log {
            Some(path) => Some(
                File::create(path).map_err(|source| MachineError::ConsoleLog {
                    path: path.clone(),
                    source,
                })?,
            ),
            None => None,
        };
        let console = Arc::new(Mutex::new(ConsoleText::default()));
        let sink = ConsoleSink::new(cfg.echo_console, log, console.clone())
            .with_symbols(cfg.kernel.symbols.clone())
            .with_limit(usize::try_from(cfg.limits.console_bytes).unwrap_or(usize::MAX));
        let host_err = |e: std::io::Error| MachineError::Host(e.to_string());
        let machine = Arc::new(Machine {
            vm,
            memory: memory.clone(),
            kernel: cfg.kernel.clone(),
            sched: Scheduler::new(cfg.vcpus),
            nr_cpus: cfg.vcpus,
            max_vtime_ns: cfg.max_vtime_ns,
            stop_on_lockup: cfg.stop_on_lockup,
            snapshot_at_end: cfg.snapshot_at_end,
            lock_names: cfg.lock_names.clone(),
            lock_aliases: cfg.lock_aliases.clone(),
            cpus: (0..cfg.vcpus).map(|_| CpuSlot::new()).collect(),
            stopped: AtomicBool::new(false),
            stop_evt: EventFd::new(libc::EFD_NONBLOCK).map_err(host_err)?,
            now_ns: AtomicU64::new(0),
            serial: Mutex::new(new_console(sink)),
            pmus: Mutex::new(vec![Pmu::default(); cfg.vcpus]),
            record: Mutex::new(RunRecord::default()),
            actions: Mutex::new(cfg.actions.iter().cloned().map(|a| (a, false, 0)).collect()),
            snapshot: Mutex::new(None),
            detection_snapshot: AtomicBool::new(false),
            capture: Mutex::new(CaptureState::default()),
            capture_done: Condvar::new(),
            limits: cfg.limits,
            progress: Progress::default(),
            profile: Default::default(),
        });

        install_kick_handler()?;
        let mut threads = Vec::with_capacity(cfg.vcpus);
        for (cpu, fd) in vcpus.into_iter().enumerate() {
            let m = machine.clone();
            let handle = std::thread::Builder::new()
                .name(format!("vcpu{cpu}"))
                .spawn(move || vcpu_thread(m, fd, cpu))
                .map_err(host_err)?;
            threads.push(handle);
        }

        supervise(&machine, &threads, cfg.stall_timeout)?;
        join_all(&machine, threads);

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
        let console = std::mem::take(&mut lock(&console).text);
        let all_online_ms = record.all_online_at.map(|t| (t - t0).as_secs_f64() * 1e3);
        Ok(RunResult {
            outcome,
            online: record.online,
            console,
            memory,
            kernel: cfg.kernel,
            timings: Timings {
                t0,
                vcpus_created_ms: vcpus_created.as_secs_f64() * 1e3,
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
        })
    }
}
