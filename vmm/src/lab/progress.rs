//! The progress line a long run shows on a terminal: `virtual 12.40 s · 48/64 CPUs ticking ·
//! 2.1 virtual s/s · 6 s`, drawn on stderr by `indicatif` from what the clock records
//! (`process::live`), from one second into the run, and gone when the run ends. Never drawn
//! when stderr is not a terminal, nor with `--json` or `--quiet` (the caller decides).
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::process::live;

/// Shown only for runs longer than this: a short run needs no progress.
const SHOW_AFTER: Duration = Duration::from_secs(1);
/// Overrides [`SHOW_AFTER`] (milliseconds): runs got fast enough that a test cannot count on
/// any scenario lasting a second, so the test shows the line from the start instead.
const SHOW_AFTER_ENV: &str = "LOCKVMM_PROGRESS_AFTER_MS";

fn show_after() -> Duration {
    std::env::var(SHOW_AFTER_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(SHOW_AFTER, Duration::from_millis)
}
const REFRESH: Duration = Duration::from_millis(200);

/// A running progress display; dropping it clears the line.
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts the display (a no-op when `enabled` is false).
    pub fn start(enabled: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        if !enabled {
            return Progress { stop, thread: None };
        }
        live::reset();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || draw(&flag))
            .ok();
        Progress { stop, thread }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

fn draw(stop: &AtomicBool) {
    let started = Instant::now();
    std::thread::park_timeout(show_after());
    if stop.load(Ordering::Acquire) {
        return;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    // The guest console echoed on stdout goes above the line, not through it.
    let b = bar.clone();
    live::set_around_stdout(Some(Arc::new(move |w: &mut dyn FnMut()| b.suspend(w))));
    while !stop.load(Ordering::Acquire) {
        bar.set_message(message(started.elapsed()));
        bar.tick();
        std::thread::park_timeout(REFRESH);
    }
    live::set_around_stdout(None);
    bar.finish_and_clear();
}

/// `virtual 12.40 s · 48/64 CPUs ticking · 2.1 virtual s/s · 6 s`.
pub fn message(wall: Duration) -> String {
    let (ns, ticking, cpus) = live::read();
    let vsecs = ns as f64 / 1e9;
    let wall = wall.as_secs_f64();
    if cpus == 0 {
        // The clock has not moved yet: the CPUs are still coming up.
        return format!("booting · {wall:.0} s");
    }
    let rate = if wall > 0.0 { vsecs / wall } else { 0.0 };
    format!(
        "virtual {vsecs:.2} s · {ticking}/{cpus} CPUs ticking · {rate:.2} virtual s/s · {wall:.0} s"
    )
}
