//! The architecture's crash shutdown (Linux's `arch/x86/kernel/crash.c`): before the capture
//! kernel runs, every other CPU is stopped by an NMI and saves its registers, then this CPU
//! saves its own.
use lockvmm_abi::PtRegs;
use lockvmm_abi::knob::KernelVersion;

use super::reboot::nmi_shootdown_cpus;
use crate::arch::x86::irqflags::local_irq_disable;
use crate::arch::x86::percpu::smp_processor_id;
use crate::init::version::linux_version;
use crate::kernel::kexec_core::crash_save_cpu;

/// `kdump_nmi_callback`: what each stopped CPU does in its NMI (Linux also turns VMX off and
/// disables its local APIC; the lab's CPUs only halt).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn kdump_nmi_callback(cpu: u32, regs: &PtRegs) {
    crash_save_cpu(regs, cpu);
}

/// `kdump_nmi_shootdown_cpus`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn kdump_nmi_shootdown_cpus() {
    nmi_shootdown_cpus(kdump_nmi_callback);
}

/// `crash_smp_send_stop` (4.x and later; `smp_ops.crash_stop_other_cpus` is
/// `kdump_nmi_shootdown_cpus` on native x86).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn crash_smp_send_stop() {
    keep_frame!(kdump_nmi_shootdown_cpus());
}

/// `native_machine_crash_shutdown(regs)`: 3.10 calls `kdump_nmi_shootdown_cpus()` directly,
/// later versions `crash_smp_send_stop()`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn native_machine_crash_shutdown(regs: &PtRegs) {
    local_irq_disable();
    if linux_version() == KernelVersion::V3_10 || linux_version() == KernelVersion::V2_6 {
        kdump_nmi_shootdown_cpus();
    } else {
        crash_smp_send_stop();
    }
    crash_save_cpu(regs, smp_processor_id());
}

/// `machine_crash_shutdown` (`machine_ops.crash_shutdown`).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn machine_crash_shutdown(regs: &PtRegs) {
    keep_frame!(native_machine_crash_shutdown(regs));
}
