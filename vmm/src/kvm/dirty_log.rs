//! The pages the guest wrote since the last look: `KVM_GET_DIRTY_LOG` on every memory slot of
//! a VM whose memory was mapped with dirty logging (`vm::map_memory(.., true)`). Reading the log clears it.
use kvm_ioctls::VmFd;
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

use super::vm::VmError;
use crate::memory::GuestMemory;

/// One bit per 4 KiB page of guest RAM (64 a word), set where the guest wrote since the last
/// call; `memory` has one slot per region, numbered as `create_vm` numbered them.
pub fn take(vm: &VmFd, memory: &GuestMemory) -> Result<Vec<u64>, VmError> {
    let mut out = vec![0u64; memory.size().div_ceil(4096 * 64) as usize];
    for (slot, region) in memory.mem().iter().enumerate() {
        let bits = vm
            .get_dirty_log(slot as u32, region.len() as usize)
            .map_err(VmError::kvm("read the dirty log"))?;
        let first = region.start_addr().0 / 4096;
        for (w, word) in bits.into_iter().enumerate() {
            let mut rest = word;
            while rest != 0 {
                let page = first + w as u64 * 64 + u64::from(rest.trailing_zeros());
                rest &= rest - 1;
                if let Some(o) = out.get_mut((page / 64) as usize) {
                    *o |= 1 << (page % 64);
                }
            }
        }
    }
    Ok(out)
}
