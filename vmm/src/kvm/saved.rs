//! A vCPU's and the irqchip's whole KVM state, saved once and written back for every schedule
//! `lockvmm explore` runs from a snapshot: registers, special registers, FPU/XSAVE, XCRs, debug
//! registers, the local APIC, every MSR KVM lists (the TSC and TSC deadline among them), the
//! MP state and the pending events, in the order Firecracker restores them (the LAPIC before
//! the MSRs for the TSC deadline, the events last).
use kvm_bindings::{
    KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, Msrs, kvm_debugregs,
    kvm_fpu, kvm_irqchip, kvm_lapic_state, kvm_mp_state, kvm_msr_entry, kvm_regs, kvm_sregs,
    kvm_vcpu_events, kvm_xcrs, kvm_xsave,
};
use kvm_ioctls::{Cap, Kvm, SyncReg, VcpuFd, VmFd};

use super::vm::VmError;

/// kvmclock's MSRs (`MSR_KVM_WALL_CLOCK`, `MSR_KVM_SYSTEM_TIME` and their `_NEW` forms): the
/// guest does not use kvmclock (its clock is the VMM's, `BootInfo::vtime_ns`), and writing the
/// wall-clock MSR back makes KVM write the host's time into guest memory.
const KVMCLOCK_MSRS: [u32; 4] = [0x11, 0x12, 0x4b56_4d00, 0x4b56_4d01];

/// Everything KVM keeps for one vCPU.
pub struct SavedVcpu {
    regs: kvm_regs,
    sregs: kvm_sregs,
    fpu: kvm_fpu,
    xsave: Option<kvm_xsave>,
    xcrs: Option<kvm_xcrs>,
    debugregs: kvm_debugregs,
    lapic: kvm_lapic_state,
    msrs: Msrs,
    mp_state: kvm_mp_state,
    events: kvm_vcpu_events,
}

impl SavedVcpu {
    /// Whether the vCPU had left wait-for-SIPI (it has run guest code).
    pub fn runnable(&self) -> bool {
        self.mp_state.mp_state == kvm_bindings::KVM_MP_STATE_RUNNABLE
    }
}

/// What to save, decided once per machine.
#[derive(Clone)]
pub struct SaveSpec {
    msrs: Vec<u32>,
    /// `KVM_GET_XSAVE`'s 4 KiB covers this host's XSAVE area: `KVM_SET_XSAVE` reads no more
    /// (with a larger area only the legacy FPU state is restored; the guest is soft-float).
    xsave: bool,
    xcrs: bool,
}

impl SaveSpec {
    pub fn of(kvm: &Kvm, vm: &VmFd) -> Result<SaveSpec, VmError> {
        let msrs = kvm
            .get_msr_index_list()
            .map_err(VmError::kvm("list its MSRs"))?
            .as_slice()
            .iter()
            .copied()
            .filter(|m| !KVMCLOCK_MSRS.contains(m))
            .collect();
        let xsave2 = vm.check_extension_int(Cap::Xsave2);
        Ok(SaveSpec {
            msrs,
            xsave: kvm.check_extension(Cap::Xsave) && xsave2 <= size_of::<kvm_xsave>() as i32,
            xcrs: kvm.check_extension(Cap::Xcrs),
        })
    }
}

/// Finishes what the vCPU's last exit left pending (a port I/O the guest is inside): KVM
/// completes it on the next `KVM_RUN`, and with `immediate_exit` that `KVM_RUN` returns at once
/// without running guest code (KVM's api.rst, "immediate_exit"). Registers written through
/// `kvm_run` and not yet taken are dropped first: the state written next replaces them.
pub fn complete_pending(vcpu: &mut VcpuFd) {
    vcpu.clear_sync_dirty_reg(SyncReg::Register);
    vcpu.set_kvm_immediate_exit(1);
    let _ = vcpu.run();
    vcpu.set_kvm_immediate_exit(0);
}

/// Saves a vCPU (call `complete_pending` first). MSRs KVM lists but cannot read or write back
/// are left out of `spec` once, on the first vCPU.
pub fn save(vcpu: &VcpuFd, spec: &mut SaveSpec) -> Result<SavedVcpu, VmError> {
    let msrs = save_msrs(vcpu, &mut spec.msrs)?;
    Ok(SavedVcpu {
        regs: vcpu.get_regs().map_err(VmError::kvm("read registers"))?,
        sregs: vcpu
            .get_sregs()
            .map_err(VmError::kvm("read special registers"))?,
        fpu: vcpu.get_fpu().map_err(VmError::kvm("read the FPU state"))?,
        xsave: match spec.xsave {
            true => Some(vcpu.get_xsave().map_err(VmError::kvm("read XSAVE"))?),
            false => None,
        },
        xcrs: match spec.xcrs {
            true => Some(vcpu.get_xcrs().map_err(VmError::kvm("read XCRs"))?),
            false => None,
        },
        debugregs: vcpu
            .get_debug_regs()
            .map_err(VmError::kvm("read debug registers"))?,
        lapic: vcpu.get_lapic().map_err(VmError::kvm("read the LAPIC"))?,
        msrs,
        mp_state: vcpu
            .get_mp_state()
            .map_err(VmError::kvm("read the MP state"))?,
        events: vcpu
            .get_vcpu_events()
            .map_err(VmError::kvm("read vCPU events"))?,
    })
}

/// Reads the MSRs of `list`, dropping from it those KVM refuses to read or write back.
fn save_msrs(vcpu: &VcpuFd, list: &mut Vec<u32>) -> Result<Msrs, VmError> {
    let entries = |list: &[u32]| {
        let e: Vec<kvm_msr_entry> = list
            .iter()
            .map(|&index| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        Msrs::from_entries(&e).map_err(|_| VmError::MissingCap("a list of MSRs that fits"))
    };
    loop {
        let mut msrs = entries(list)?;
        let read = vcpu
            .get_msrs(&mut msrs)
            .map_err(VmError::kvm("read MSRs"))?;
        if read < list.len() {
            list.remove(read);
            continue;
        }
        // Written back as read: the state it is, so harmless.
        let written = vcpu.set_msrs(&msrs).map_err(VmError::kvm("write MSRs"))?;
        if written < list.len() {
            list.remove(written);
            continue;
        }
        return Ok(msrs);
    }
}

/// Writes a saved state back (call `complete_pending` first).
pub fn restore(vcpu: &VcpuFd, s: &SavedVcpu) -> Result<(), VmError> {
    vcpu.set_mp_state(s.mp_state)
        .map_err(VmError::kvm("write the MP state"))?;
    vcpu.set_regs(&s.regs)
        .map_err(VmError::kvm("write registers"))?;
    vcpu.set_sregs(&s.sregs)
        .map_err(VmError::kvm("write special registers"))?;
    vcpu.set_fpu(&s.fpu)
        .map_err(VmError::kvm("write the FPU state"))?;
    if let Some(x) = &s.xsave {
        // SAFETY: `SaveSpec::of` checked that this host's XSAVE area (KVM_CAP_XSAVE2) fits in
        // `kvm_xsave`, so KVM reads no more than the struct holds.
        unsafe { vcpu.set_xsave(x) }.map_err(VmError::kvm("write XSAVE"))?;
    }
    if let Some(x) = &s.xcrs {
        vcpu.set_xcrs(x).map_err(VmError::kvm("write XCRs"))?;
    }
    vcpu.set_debug_regs(&s.debugregs)
        .map_err(VmError::kvm("write debug registers"))?;
    vcpu.set_lapic(&s.lapic)
        .map_err(VmError::kvm("write the LAPIC"))?;
    let n = vcpu.set_msrs(&s.msrs).map_err(VmError::kvm("write MSRs"))?;
    if n < s.msrs.as_slice().len() {
        return Err(VmError::MissingCap("writing back every MSR it read"));
    }
    vcpu.set_vcpu_events(&s.events)
        .map_err(VmError::kvm("write vCPU events"))
}

/// The in-kernel irqchip: both PICs and the IOAPIC.
pub fn save_irqchip(vm: &VmFd) -> Result<Vec<kvm_irqchip>, VmError> {
    [
        KVM_IRQCHIP_PIC_MASTER,
        KVM_IRQCHIP_PIC_SLAVE,
        KVM_IRQCHIP_IOAPIC,
    ]
    .into_iter()
    .map(|chip_id| {
        let mut chip = kvm_irqchip {
            chip_id,
            ..Default::default()
        };
        vm.get_irqchip(&mut chip)
            .map_err(VmError::kvm("read the irqchip"))?;
        Ok(chip)
    })
    .collect()
}

pub fn restore_irqchip(vm: &VmFd, chips: &[kvm_irqchip]) -> Result<(), VmError> {
    for chip in chips {
        vm.set_irqchip(chip)
            .map_err(VmError::kvm("write the irqchip"))?;
    }
    Ok(())
}
