//! SIGINT and SIGTERM ask a run to stop instead of killing it: the handler only records the
//! signal; the supervisor stops the machine, the run writes what is complete (never a
//! half-written file: `output::atomic` checks [`received`] between chunks and removes its
//! temporary file), and `lockvmm` exits 130 or 143. A second signal ends the process at once,
//! after removing the temporary file being written, if any (see [`set_temp_file`]).
use std::ffi::CString;
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// The temporary file being written (a leaked C string), for a second signal to remove.
static TEMP_FILE: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work here: atomics, unlink(2), _exit(2).
    if SIGNAL.swap(sig, Ordering::SeqCst) != 0 {
        let tmp = TEMP_FILE.load(Ordering::SeqCst);
        // SAFETY: `tmp` is null or a C string leaked by `set_temp_file`, never freed.
        unsafe {
            if !tmp.is_null() {
                libc::unlink(tmp);
            }
            libc::_exit(128 + sig);
        }
    }
}

/// The temporary file being written now (`None` once it is renamed or removed), which a
/// second signal removes before ending the process. The path's C string is leaked on purpose:
/// the handler may read it at any moment.
pub fn set_temp_file(path: Option<&Path>) {
    let ptr = path
        .and_then(|p| CString::new(p.as_os_str().as_encoded_bytes()).ok())
        .map_or(std::ptr::null_mut(), CString::into_raw);
    TEMP_FILE.store(ptr, Ordering::SeqCst);
}

/// Installs the handler for SIGINT and SIGTERM.
pub fn install() -> std::io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; we fill in a
        // handler that only stores to an atomic, and pass valid pointers to sigaction(2).
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The stop signal received, if any.
pub fn received() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// `SIGINT`, `SIGTERM`, or the number.
pub fn name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        s => format!("signal {s}"),
    }
}

/// The shell's status for a process ended by `sig`: 128 + the signal (130, 143).
pub fn exit_code(sig: i32) -> u8 {
    (128 + sig).clamp(0, 255) as u8
}

/// Sends `sig` to every process of the process group `pgid` (a child started in its own group
/// with `process_group(0)`: its id is the group's).
pub fn kill_group(pgid: u32, sig: i32) -> std::io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid).map_err(std::io::Error::other)?;
    if pgid <= 1 {
        return Err(std::io::Error::other("not a child's process group"));
    }
    // SAFETY: kill(2) takes plain integers; a negative pid names the group, and pgid > 1 so
    // it never names every process (-1) or our own group (0).
    if unsafe { libc::kill(-pgid, sig) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
