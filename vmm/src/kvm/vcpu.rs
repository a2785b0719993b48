//! vCPUs at creation: CPUID (the APIC ID, the hypervisor bit, the emulated perfmon leaf) and
//! the boot state every vCPU starts in — 64-bit mode, Linux's selectors, the host-built page
//! tables.
use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES, kvm_segment};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use lockvmm_abi::PAGE_OFFSET;
use lockvmm_abi::eflags::X86_EFLAGS_FIXED;

use super::vm::VmError;
use crate::memory::{BOOT_CR3, BOOT_GDT_PADDR};

const X86_CR0_PE: u64 = 1 << 0;
const X86_CR0_MP: u64 = 1 << 1;
const X86_CR0_ET: u64 = 1 << 4;
const X86_CR0_NE: u64 = 1 << 5;
const X86_CR0_PG: u64 = 1 << 31;
const X86_CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

/// The CPUID table KVM supports, read once per machine.
pub fn supported_cpuid(kvm: &Kvm) -> Result<CpuId, VmError> {
    kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(VmError::kvm("report its CPUID"))
}

/// Creates vCPU `cpu` and puts it in 64-bit mode at `rip` with `RDI = cpu`.
pub fn create_vcpu(vm: &VmFd, cpuid: &CpuId, cpu: usize, rip: u64) -> Result<VcpuFd, VmError> {
    let vcpu = vm
        .create_vcpu(cpu as u64)
        .map_err(VmError::kvm("create a vCPU"))?;
    let mut cpuid = cpuid.clone();
    for entry in cpuid.as_mut_slice() {
        match entry.function {
            // Initial APIC ID and the hypervisor bit.
            1 => {
                entry.ebx = (entry.ebx & 0x00ff_ffff) | ((cpu as u32) << 24);
                entry.ecx |= 1 << 31;
            }
            0xb => entry.edx = cpu as u32,
            // This KVM has no virtual PMU; the VMM emulates architectural perfmon v2 with one
            // 48-bit general-purpose counter and all seven architectural events (pmu.rs).
            0xa => {
                entry.eax = 2 | (1 << 8) | (lockvmm_abi::msr::PMC_BITS << 16) | (7 << 24);
                entry.ebx = 0;
                entry.ecx = 0;
                entry.edx = 0;
            }
            _ => {}
        }
    }
    vcpu.set_cpuid2(&cpuid).map_err(VmError::kvm("set CPUID"))?;

    let mut sregs = vcpu
        .get_sregs()
        .map_err(VmError::kvm("read special registers"))?;
    let code = kernel_code_segment(0x10);
    let data = kernel_data_segment(0x18);
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = kvm_segment {
        selector: 0x40,
        type_: 0xb,
        s: 0,
        l: 0,
        g: 0,
        limit: 0x67,
        ..code
    };
    sregs.gdt.base = PAGE_OFFSET + BOOT_GDT_PADDR;
    sregs.gdt.limit = 4 * 8 - 1;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_PG;
    sregs.cr3 = BOOT_CR3;
    sregs.cr4 = X86_CR4_PAE;
    sregs.efer = EFER_LME | EFER_LMA;
    vcpu.set_sregs(&sregs)
        .map_err(VmError::kvm("set special registers"))?;

    let mut regs = vcpu.get_regs().map_err(VmError::kvm("read registers"))?;
    regs.rip = rip;
    regs.rdi = cpu as u64;
    regs.rflags = X86_EFLAGS_FIXED;
    vcpu.set_regs(&regs)
        .map_err(VmError::kvm("set registers"))?;
    Ok(vcpu)
}

/// A flat 64-bit ring-0 code segment, as the CPU loads it on entry to the kernel.
pub fn kernel_code_segment(selector: u16) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: 0xb,
        present: 1,
        dpl: 0,
        db: 0,
        s: 1,
        l: 1,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// A flat ring-0 data (stack) segment.
pub fn kernel_data_segment(selector: u16) -> kvm_segment {
    kvm_segment {
        selector,
        type_: 0x3,
        db: 1,
        l: 0,
        ..kernel_code_segment(selector)
    }
}
