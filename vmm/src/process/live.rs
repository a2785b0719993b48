//! What a running machine shows of itself while it runs, for a progress display on a terminal:
//! the virtual clock and how many CPUs have a timer tick programmed. The clock stores these as it
//! advances (a few relaxed stores per 50 virtual ms); a display thread reads them. And a display that draws
//! on the terminal can ask stdout's writes to step around it ([`set_around_stdout`]).
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

static VTIME_NS: AtomicU64 = AtomicU64::new(0);
static TICKING: AtomicUsize = AtomicUsize::new(0);
static CPUS: AtomicUsize = AtomicUsize::new(0);

/// A wrapper every stdout write runs inside (a progress bar hides itself around it).
pub type Around = Arc<dyn Fn(&mut dyn FnMut()) + Send + Sync>;
static AROUND: Mutex<Option<Around>> = Mutex::new(None);

/// Virtual time between two records: the display is read a few times a wall second.
const RECORD_EVERY_NS: u64 = 50_000_000;

/// Whether the clock, now at `vtime_ns`, has moved far enough since the last record to record.
pub fn due(vtime_ns: u64) -> bool {
    vtime_ns / RECORD_EVERY_NS != VTIME_NS.load(Ordering::Relaxed) / RECORD_EVERY_NS
}

/// The clock moved to `vtime_ns`; `ticking` of `cpus` CPUs have a timer deadline programmed.
pub fn record(vtime_ns: u64, ticking: usize, cpus: usize) {
    VTIME_NS.store(vtime_ns, Ordering::Relaxed);
    TICKING.store(ticking, Ordering::Relaxed);
    CPUS.store(cpus, Ordering::Relaxed);
}

/// (virtual ns, ticking CPUs, CPUs) as last recorded.
pub fn read() -> (u64, usize, usize) {
    (
        VTIME_NS.load(Ordering::Relaxed),
        TICKING.load(Ordering::Relaxed),
        CPUS.load(Ordering::Relaxed),
    )
}

/// Installs (or with `None` removes) the wrapper stdout's writes run inside.
pub fn set_around_stdout(f: Option<Around>) {
    *AROUND.lock().unwrap_or_else(|p| p.into_inner()) = f;
}

/// Runs `write` inside the installed wrapper, if any.
pub fn around_stdout(write: &mut dyn FnMut()) {
    let f = AROUND.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match f {
        Some(f) => f(write),
        None => write(),
    }
}

/// Forgets the last run's values (a new run starts at 0).
pub fn reset() {
    record(0, 0, 0);
}
