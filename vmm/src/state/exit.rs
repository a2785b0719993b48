//! The process exit statuses of `lockvmm`, defined once.

/// How `lockvmm` exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// The scenario's expectations hold (or, without any, a clean power-off).
    Success = 0,
    /// The guest failed: a fault, panic, lockup or stuck machine the scenario did not expect.
    GuestFailed = 1,
    /// Bad input: a scenario file, a flag, a kernel ELF, a vmcore.
    BadInput = 2,
    /// The environment or the host: no /dev/kvm, no permission, KVM refused, a file not writable.
    Environment = 3,
}

impl ExitStatus {
    /// The numeric status.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(s: ExitStatus) -> Self {
        std::process::ExitCode::from(s.code())
    }
}
