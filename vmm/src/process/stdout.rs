//! Standard output that may go away. A reader that stops reading (`lockvmm run … | head -1`)
//! ends lockvmm's output quietly: later writes are dropped and the run still finishes its files.
//! Any other failure (stdout on a full disk) is kept, and the command reports it once, as one
//! line, when it ends. Nothing here panics, unlike `print!`.
use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);
static ERROR: Mutex<Option<String>> = Mutex::new(None);

/// Writes `s` to standard output and flushes it (dropped once stdout is gone).
pub fn print(s: &str) {
    write(s.as_bytes());
}

/// Writes `bytes` to standard output and flushes them (dropped once stdout is gone).
pub fn write(bytes: &[u8]) {
    if CLOSED.load(Ordering::Acquire) {
        return;
    }
    super::live::around_stdout(&mut || {
        let mut out = io::stdout().lock();
        if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
            failed(e);
        }
    });
}

fn failed(e: io::Error) {
    CLOSED.store(true, Ordering::Release);
    if e.kind() != io::ErrorKind::BrokenPipe {
        let mut err = ERROR.lock().unwrap_or_else(|p| p.into_inner());
        err.get_or_insert_with(|| e.to_string());
    }
}

/// Whether stdout has gone away (a closed pipe or an error): echoing more is pointless.
pub fn is_closed() -> bool {
    CLOSED.load(Ordering::Acquire)
}

/// Flushes stdout; the first write error other than a closed pipe, if any.
pub fn finish() -> Option<String> {
    if !is_closed()
        && let Err(e) = io::stdout().lock().flush()
    {
        failed(e);
    }
    ERROR.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Writes one line to standard error, ignoring failures (there is nowhere left to report them).
pub fn eprint_line(s: &str) {
    let mut err = io::stderr().lock();
    let _ = err.write_all(s.as_bytes());
    let _ = err.write_all(b"\n");
}

/// The exit status a command has reached so far, for when printing its last lines fails.
static STATUS_HINT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Records the status the command will exit with if its remaining output cannot be printed.
pub fn set_status_hint(code: u8) {
    STATUS_HINT.store(code, Ordering::Release);
}

/// The status recorded by [`set_status_hint`] (0 if none).
pub fn status_hint() -> u8 {
    STATUS_HINT.load(Ordering::Acquire)
}

/// Runs `f`, turning a failed `print!`/`println!` inside it (which panics in std) into what
/// [`write`] does: a closed pipe ends the output quietly, any other error is kept for
/// [`finish`]. Returns `None` when printing failed; any other panic goes on as a panic.
pub fn guard<T>(f: impl FnOnce() -> T) -> Option<T> {
    fn print_failure(msg: &str) -> bool {
        msg.starts_with("failed printing to stdout")
    }
    let previous = std::sync::Arc::new(std::panic::take_hook());
    let chained = previous.clone();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload_as_str().unwrap_or_default();
        if !print_failure(msg) {
            chained(info);
        }
    }));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let _ = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| previous(info)));
    match result {
        Ok(v) => Some(v),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or_default();
            if !print_failure(msg) {
                std::panic::resume_unwind(payload);
            }
            if msg.contains("Broken pipe") || msg.contains(&format!("os error {}", libc::EPIPE)) {
                CLOSED.store(true, Ordering::Release);
            } else {
                failed(io::Error::other(
                    msg.trim_start_matches("failed printing to stdout: ")
                        .to_string(),
                ));
            }
            None
        }
    }
}
