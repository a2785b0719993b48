//! The KVM virtual machine: `/dev/kvm`, the VM file descriptor, the in-kernel irqchip and the
//! guest memory slots.
use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

use kvm_bindings::{kvm_msi, kvm_userspace_memory_region};
use kvm_ioctls::{Cap, Kvm, VmFd};
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

use crate::memory::GuestMemory;

/// Where KVM's TSS and identity-map pages go (below the xAPIC page, outside guest RAM).
const KVM_TSS_ADDRESS: usize = 0xfffb_d000;
const KVM_IDENTITY_MAP_ADDRESS: u64 = 0xfffb_c000;

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(
        "{path} does not exist: this machine has no KVM (load the kvm module, or run on a host with virtualization enabled)"
    )]
    NoKvm { path: PathBuf },
    #[error(
        "no permission to open {path}: add your user to the `kvm` group (sudo usermod -aG kvm $USER, then log in again) or run as root"
    )]
    KvmPermission { path: PathBuf },
    #[error("cannot open {path}: {source}")]
    KvmOpen { path: PathBuf, source: io::Error },
    #[error(
        "{path} is not a KVM device ({what}): point LOCKVMM_KVM_DEVICE at /dev/kvm or unset it"
    )]
    NotKvm { path: PathBuf, what: String },
    #[error(
        "the KVM device path is empty (LOCKVMM_KVM_DEVICE is set but empty): unset it to use /dev/kvm, or set it to a KVM device"
    )]
    EmptyPath,
    #[error("KVM lacks a capability lockvmm needs: {0}")]
    MissingCap(&'static str),
    #[error("KVM refused to {what}: {source}")]
    Kvm {
        what: &'static str,
        source: kvm_ioctls::Error,
    },
}

impl VmError {
    /// Wraps a failed KVM call.
    pub fn kvm(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
        move |source| VmError::Kvm { what, source }
    }
}

/// Opens the KVM device, turning the usual failures into errors a user can act on.
pub fn open_kvm(path: &Path) -> Result<Kvm, VmError> {
    use std::os::unix::fs::FileTypeExt;
    if path.as_os_str().is_empty() {
        return Err(VmError::EmptyPath);
    }
    let not_kvm = |what: &str| VmError::NotKvm {
        path: path.into(),
        what: what.into(),
    };
    if let Ok(meta) = std::fs::metadata(path) {
        let t = meta.file_type();
        let what = if t.is_file() {
            Some("a regular file")
        } else if t.is_dir() {
            Some("a directory")
        } else if t.is_fifo() {
            Some("a FIFO")
        } else if t.is_socket() {
            Some("a socket")
        } else if t.is_block_device() {
            Some("a block device")
        } else {
            None
        };
        if let Some(what) = what {
            return Err(not_kvm(what));
        }
    }
    let cpath =
        CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| VmError::KvmOpen {
            path: path.into(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"),
        })?;
    let kvm = Kvm::new_with_path(&cpath).map_err(|e| {
        let source = io::Error::from_raw_os_error(e.errno());
        match source.kind() {
            io::ErrorKind::NotFound => VmError::NoKvm { path: path.into() },
            io::ErrorKind::PermissionDenied => VmError::KvmPermission { path: path.into() },
            _ => VmError::KvmOpen {
                path: path.into(),
                source,
            },
        }
    })?;
    // A character device that is not KVM (/dev/null, a tty) fails this ioctl.
    match kvm.get_api_version() {
        12 => Ok(kvm),
        -1 => Err(not_kvm("it does not answer KVM_GET_API_VERSION")),
        v => Err(not_kvm(&format!("KVM API version {v}, not 12"))),
    }
}

/// The most vCPUs this KVM allows in one VM.
pub fn max_vcpus(kvm: &Kvm) -> usize {
    kvm.get_max_vcpus()
}

/// Creates the VM with its in-kernel irqchip (IOAPIC, PIC, a local APIC per vCPU), without
/// memory yet (`map_memory`): vCPUs can be created while the memory is mapped.
pub fn create_vm(kvm: &Kvm) -> Result<VmFd, VmError> {
    for (cap, name) in [
        (Cap::Irqchip, "KVM_CAP_IRQCHIP"),
        (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
        (Cap::SignalMsi, "KVM_CAP_SIGNAL_MSI"),
    ] {
        if !kvm.check_extension(cap) {
            return Err(VmError::MissingCap(name));
        }
    }
    let vm = kvm.create_vm().map_err(VmError::kvm("create a VM"))?;
    vm.set_tss_address(KVM_TSS_ADDRESS)
        .map_err(VmError::kvm("set the TSS address"))?;
    vm.set_identity_map_address(KVM_IDENTITY_MAP_ADDRESS)
        .map_err(VmError::kvm("set the identity-map address"))?;
    vm.create_irq_chip()
        .map_err(VmError::kvm("create the in-kernel irqchip"))?;
    Ok(vm)
}

/// Maps guest memory into the VM (about 6 ms for 256 MiB on this project's machines). With
/// `dirty_log`, KVM logs the pages the guest writes (`KVM_MEM_LOG_DIRTY_PAGES`), for a machine
/// that will be restored to a snapshot (`super::dirty_log`).
pub fn map_memory(vm: &VmFd, memory: &GuestMemory, dirty_log: bool) -> Result<(), VmError> {
    for (slot, region) in memory.mem().iter().enumerate() {
        let host = region
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .map_err(|_| VmError::MissingCap("host-mapped guest memory"))?;
        let desc = kvm_userspace_memory_region {
            slot: slot as u32,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host as u64,
            flags: if dirty_log {
                kvm_bindings::KVM_MEM_LOG_DIRTY_PAGES
            } else {
                0
            },
        };
        // SAFETY: the region is a live anonymous mapping owned by `memory`, which outlives the
        // VM (both are dropped together at the end of a run), and slots do not overlap.
        unsafe { vm.set_user_memory_region(desc) }.map_err(VmError::kvm("map guest memory"))?;
    }
    Ok(())
}

/// Whether KVM can trap MSR accesses to the VMM (`trap_msrs`).
pub fn check_msr_traps(kvm: &Kvm) -> Result<(), VmError> {
    if !kvm.check_extension(Cap::X86UserSpaceMsr) || !kvm.check_extension(Cap::X86MsrFilter) {
        return Err(VmError::MissingCap(
            "KVM_CAP_X86_USER_SPACE_MSR and KVM_CAP_X86_MSR_FILTER (the emulated PMU)",
        ));
    }
    Ok(())
}

/// Makes the guest's accesses to `msrs` exit to the VMM (the emulated PMU): KVM's MSR filter
/// denies them in the kernel and `KVM_CAP_X86_USER_SPACE_MSR` turns the denial into an exit
/// (`check_msr_traps` first).
pub fn trap_msrs(vm: &VmFd, msrs: &[u32]) -> Result<(), VmError> {
    use kvm_bindings::{KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER, kvm_enable_cap};
    use kvm_ioctls::{MsrFilterDefaultAction, MsrFilterRange, MsrFilterRangeFlags};
    let cap = kvm_enable_cap {
        cap: KVM_CAP_X86_USER_SPACE_MSR,
        args: [u64::from(KVM_MSR_EXIT_REASON_FILTER), 0, 0, 0],
        ..Default::default()
    };
    vm.enable_cap(&cap)
        .map_err(VmError::kvm("enable userspace MSR exits"))?;
    let deny = [0u8];
    let ranges: Vec<MsrFilterRange<'_>> = msrs
        .iter()
        .map(|&base| MsrFilterRange {
            flags: MsrFilterRangeFlags::READ | MsrFilterRangeFlags::WRITE,
            base,
            msr_count: 1,
            bitmap: &deny,
        })
        .collect();
    vm.set_msr_filter(MsrFilterDefaultAction::ALLOW, &ranges)
        .map_err(VmError::kvm("install the MSR filter"))
}

/// Sends an MSI to the local APIC `apic_id`: `vector` with fixed delivery, or an NMI.
pub fn send_msi(vm: &VmFd, apic_id: u32, vector: u8, nmi: bool) -> Result<(), VmError> {
    const MSI_ADDR_BASE: u32 = 0xfee0_0000;
    const MSI_DATA_DELIVERY_NMI: u32 = 0x400;
    let msi = kvm_msi {
        address_lo: MSI_ADDR_BASE | (apic_id << 12),
        data: if nmi {
            MSI_DATA_DELIVERY_NMI
        } else {
            u32::from(vector)
        },
        ..Default::default()
    };
    vm.signal_msi(msi)
        .map(|_| ())
        .map_err(VmError::kvm("signal an MSI"))
}
