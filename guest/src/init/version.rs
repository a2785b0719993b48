//! The kernel's version (Linux's `init/version.c`: `linux_banner`, `init_uts_ns`).
//!
//! lockvmm replays one Linux generation per scenario (`[machine] kernel`): the version the
//! host put in the boot info decides formats, watchdog rules and the spinlock kind. Code
//! that differs between versions asks [`linux_version`] instead of keeping its own knob.
use lockvmm_abi::knob::KernelVersion;

/// The version this boot replays (6.6 when the boot info holds a value the ABI lacks: the
/// host validates it, so that means a hand-made boot info, and 6.6 is the default).
pub fn linux_version() -> KernelVersion {
    KernelVersion::from_raw(crate::init::main::boot_info().kernel_version)
        .unwrap_or(KernelVersion::V6_6)
}

/// `uname -r` (`init_uts_ns.name.release`).
pub fn utsname_release() -> &'static str {
    linux_version().release()
}

/// Linux's `linux_proc_banner` (`init/version.c`): `%s` is the release, filled in at boot
/// because one image replays several versions. Kept whole in the image so that the host's
/// `lockvmm --version` can read it.
pub static LINUX_PROC_BANNER: &str = concat!(
    "Linux version %s (lockvmm guest ",
    env!("CARGO_PKG_VERSION"),
    ") #1 SMP"
);

/// Prints the banner with this boot's release (`start_kernel`'s first line).
pub fn print_linux_banner() {
    let (head, tail) = LINUX_PROC_BANNER
        .split_once("%s")
        .unwrap_or((LINUX_PROC_BANNER, ""));
    printk!("{}{}{}", head, utsname_release(), tail);
}
