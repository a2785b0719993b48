//! `init_uts_ns` (Linux's `init/version.c` and `include/linux/utsname.h`): the names `uname`
//! returns and crash's header shows (NODENAME, RELEASE, VERSION, MACHINE), filled in at boot
//! because one image replays several kernel versions. `lockvmm_kernel_version` records which
//! (a raw `KernelVersion`), so a vmcore says how to read its spinlock words.
use core::sync::atomic::{AtomicU32, Ordering};

use lockvmm_abi::knob::KernelVersion;

const NEW_UTS_LEN: usize = 64;

/// `struct new_utsname`.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct new_utsname {
    pub sysname: [u8; NEW_UTS_LEN + 1],
    pub nodename: [u8; NEW_UTS_LEN + 1],
    pub release: [u8; NEW_UTS_LEN + 1],
    pub version: [u8; NEW_UTS_LEN + 1],
    pub machine: [u8; NEW_UTS_LEN + 1],
    pub domainname: [u8; NEW_UTS_LEN + 1],
}

/// `struct uts_namespace` (its `kref` and `name`).
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct uts_namespace {
    pub kref: u32,
    pub name: new_utsname,
}

const EMPTY: [u8; NEW_UTS_LEN + 1] = [0; NEW_UTS_LEN + 1];

#[unsafe(no_mangle)]
pub static mut init_uts_ns: uts_namespace = uts_namespace {
    kref: 2,
    name: new_utsname {
        sysname: EMPTY,
        nodename: EMPTY,
        release: EMPTY,
        version: EMPTY,
        machine: EMPTY,
        domainname: EMPTY,
    },
};

/// The `KernelVersion` this boot replays (`lockvmm_abi::locking::KERNEL_VERSION_SYMBOL`).
#[unsafe(no_mangle)]
pub static lockvmm_kernel_version: AtomicU32 = AtomicU32::new(0);

fn set(field: &mut [u8; NEW_UTS_LEN + 1], parts: &[&str]) {
    for (n, b) in parts.iter().flat_map(|p| p.bytes()).enumerate() {
        if n == NEW_UTS_LEN {
            break;
        }
        field[n] = b;
    }
}

/// Fills `init_uts_ns` for this boot's version (from `start_kernel`, before the other CPUs).
pub fn uts_init(version: KernelVersion) {
    lockvmm_kernel_version.store(version.raw(), Ordering::Relaxed);
    // SAFETY: written once at boot, before any other CPU runs or anything reads it.
    let name = unsafe { &mut (*core::ptr::addr_of_mut!(init_uts_ns)).name };
    set(&mut name.sysname, &["Linux"]);
    set(&mut name.nodename, &["lockvmm"]);
    set(&mut name.release, &[version.release()]);
    // UTS_VERSION without a build date: replays are deterministic.
    set(
        &mut name.version,
        &["#1 SMP lockvmm guest ", env!("CARGO_PKG_VERSION")],
    );
    set(&mut name.machine, &["x86_64"]);
    set(&mut name.domainname, &["(none)"]);
}
