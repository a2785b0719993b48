//! The guest's memory map: kernel addresses, the pages the host shares with the kernel
//! ([`BootInfo`], the clockevent page) and the window the scenario program is loaded into.

/// The most CPUs the guest supports: xAPIC IDs are 8 bits and 0xff is broadcast.
pub const NR_CPUS: usize = 255;

/// Linux's `__START_KERNEL_map`: the kernel image is mapped here (physical 0 and up).
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// Physical address the kernel image is loaded at (as Linux's `CONFIG_PHYSICAL_START`).
pub const KERNEL_PHYS_START: u64 = 0x100_0000;
/// Linux's `page_offset_base` with 4-level paging: all of guest RAM is mapped here.
pub const PAGE_OFFSET: u64 = 0xffff_8880_0000_0000;
/// Size of the kernel-image mapping at [`START_KERNEL_MAP`] (Linux's KERNEL_IMAGE_SIZE).
pub const KERNEL_MAP_SIZE: u64 = 512 << 20;
/// Linux's `MODULES_VADDR`: module memory (4 KiB pages the kernel maps and unmaps itself).
pub const MODULES_VADDR: u64 = START_KERNEL_MAP + KERNEL_MAP_SIZE;
/// Where the guest's prelinked modules (the seed 001 `hog`) are loaded, 16 MiB into module
/// space (guest/linker.ld links their text here; `module_alloc` stays below).
pub const PRELINKED_MODULES_VADDR: u64 = MODULES_VADDR + (16 << 20);
/// Size of the direct map at [`PAGE_OFFSET`] (covers the xAPIC page at 0xfee00000).
pub const DIRECT_MAP_SIZE: u64 = 4 << 30;
/// The local APIC's MMIO page (physical).
pub const APIC_BASE_PHYS: u64 = 0xfee0_0000;

/// Physical address of the [`BootInfo`] page the host fills before the first instruction.
pub const BOOT_INFO_PADDR: u64 = 0x7000;
/// Physical address of the clockevent page: `[u64; NR_CPUS]`, each CPU's next timer deadline
/// in virtual nanoseconds ([`NO_EVENT`] for none). The guest writes its own entry (Linux's
/// `clockevents_program_event`); the host reads them all when it advances the clock and clears
/// an entry when it delivers that CPU's timer interrupt (the device is one-shot).
pub const CLOCKEVENT_PADDR: u64 = 0x6000;
/// No timer armed.
pub const NO_EVENT: u64 = u64::MAX;

/// Physical window the host writes the scenario program (tasks and ops) into.
pub const PROGRAM_PADDR: u64 = 0x10_0000;
/// Size of the program window (it ends where the kernel image starts).
pub const PROGRAM_MAX: u64 = KERNEL_PHYS_START - PROGRAM_PADDR;

/// `BootInfo::magic`: "LOCKVMM1".
pub const BOOT_MAGIC: u64 = u64::from_le_bytes(*b"LOCKVMM1");

/// What the host tells the kernel at boot, at [`BOOT_INFO_PADDR`]. The host also keeps the
/// virtual clock here (`vtime_ns`), updated only while every vCPU is stopped, so a running
/// guest always sees a stable value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BootInfo {
    /// [`BOOT_MAGIC`].
    pub magic: u64,
    /// Number of CPUs the machine has (`nr_cpu_ids`).
    pub nr_cpus: u32,
    /// Zero.
    pub _pad: u32,
    /// Bytes of guest RAM from physical 0.
    pub mem_bytes: u64,
    /// Physical address of the scenario program (see [`ProgramHeader`](crate::ProgramHeader)).
    pub program_paddr: u64,
    /// Byte length of the scenario program.
    pub program_len: u64,
    /// The lab's virtual clock in nanoseconds.
    pub vtime_ns: u64,
    /// Watchdog knob, as Linux's sysctl: seconds (the soft threshold is twice this).
    pub watchdog_thresh: u32,
    /// Watchdog knob, as Linux's sysctl: panic on a soft lockup.
    pub softlockup_panic: u32,
    /// Watchdog knob, as Linux's sysctl: panic on a hard lockup.
    pub hardlockup_panic: u32,
    /// Watchdog knob, as Linux's sysctl: the NMI (hard-lockup) watchdog is enabled.
    pub nmi_watchdog: u32,
    /// Watchdog knob, as Linux's sysctl: a soft lockup makes every CPU print its backtrace.
    pub softlockup_all_cpu_backtrace: u32,
    /// Fault knob of the scenario: a [`LbrGfpMode`](crate::knob::LbrGfpMode).
    pub lbr_gfp_mode: u32,
    /// Non-zero: register a framebuffer console (`tty0`) besides the serial one.
    pub console_fbcon: u32,
    /// Non-zero: report [`Hook::IrqEnableLocked`](crate::hook::Hook::IrqEnableLocked) when a
    /// CPU enables interrupts while it holds a spinlock (a scenario acts on it; the
    /// bookkeeping costs a few instructions per lock, so it is off unless asked for).
    pub irq_enable_hook: u32,
    /// The hung-task detector, as Linux's sysctl: seconds a task may stay in
    /// TASK_UNINTERRUPTIBLE before `khungtaskd` reports it (0: off).
    pub hung_task_timeout_secs: u32,
    /// As Linux's sysctl: panic when a hung task is reported.
    pub hung_task_panic: u32,
    /// The debug instrumentation the kernel turns on at boot: an OR of the
    /// [`instrument`](crate::knob::instrument) bits (0: none, the default; each costs guest
    /// instructions on every lock and interrupt-flag change).
    pub instrument: u32,
    /// Size of each CPU's trace ring buffer in KiB, when
    /// [`instrument::TRACE`](crate::knob::instrument::TRACE) is set.
    pub trace_buf_kib: u32,
    /// The trace's event classes (an OR of [`trace::class`](crate::trace::class) bits).
    pub trace_events: u32,
    /// Non-zero: a panic or oops dumps the trace buffers to the console (Linux's
    /// `ftrace_dump_on_oops`).
    pub ftrace_dump_on_oops: u32,
    /// The Linux version the guest replays: a [`KernelVersion`](crate::knob::KernelVersion).
    pub kernel_version: u32,
    /// Non-zero: a hard lockup also asks every other CPU for an NMI backtrace (Linux's
    /// `kernel.hardlockup_all_cpu_backtrace`).
    pub hardlockup_all_cpu_backtrace: u32,
}
