//! KVM itself: `/dev/kvm`, the VM and its irqchip, memory slots and MSR filter, MSIs, vCPU
//! creation and reading a vCPU's state. The only place (with the vCPU run loop) that calls KVM.
pub mod capture;
pub mod dirty_log;
pub mod saved;
pub mod vcpu;
pub mod vm;

pub use vm::VmError;
