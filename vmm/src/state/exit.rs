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
    /// Stopped by SIGINT (128 + 2, as a shell reports it).
    Sigint = 130,
    /// Stopped by SIGTERM (128 + 15).
    Sigterm = 143,
    /// `lockvmm test --skip-without-kvm` found no usable KVM device and ran nothing: 77, the
    /// "skipped" status of automake's and meson's test harnesses.
    Skipped = 77,
}

impl ExitStatus {
    /// The numeric status.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl ExitStatus {
    /// The status with this number (`Success` for one lockvmm does not use).
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => ExitStatus::GuestFailed,
            2 => ExitStatus::BadInput,
            3 => ExitStatus::Environment,
            130 => ExitStatus::Sigint,
            143 => ExitStatus::Sigterm,
            77 => ExitStatus::Skipped,
            _ => ExitStatus::Success,
        }
    }

    /// The status of a run a signal stopped (`Environment` for a signal lockvmm does not catch).
    pub fn from_signal(sig: i32) -> Self {
        match sig {
            2 => ExitStatus::Sigint,
            15 => ExitStatus::Sigterm,
            _ => ExitStatus::Environment,
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(s: ExitStatus) -> Self {
        std::process::ExitCode::from(s.code())
    }
}
