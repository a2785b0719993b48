//! `trace`: the guest's trace ring buffers in the vmcore, as `trace-cmd report` prints them
//! (crash's trace extension calls this `trace show`).
use super::Inspector;
use crate::report::trace::{TxtFilter, render_txt};
use crate::trace::read_trace;

const USAGE: &str = "usage: trace [show] [-c CPU[S]] [-s SECONDS] [-e SECONDS] [-n COUNT]";

impl Inspector {
    pub(super) fn trace(&self, args: &[&str]) -> Result<String, String> {
        let args = match args {
            ["show", rest @ ..] => rest,
            _ => args,
        };
        let mut f = TxtFilter::default();
        let mut it = args.iter();
        while let Some(&opt) = it.next() {
            let val = it.next().ok_or_else(|| USAGE.to_string())?;
            match opt {
                "-c" | "-C" => f.cpus = self.cpu_list(val)?,
                "-s" => f.from_ns = secs(val)?,
                "-e" => f.to_ns = Some(secs(val)?),
                "-n" => {
                    f.last = Some(
                        val.parse::<usize>()
                            .map_err(|_| format!("trace: -n {val}: not a count"))?,
                    )
                }
                _ => return Err(USAGE.into()),
            }
        }
        let a = self.analysis();
        let trace = read_trace(&a).ok_or_else(|| {
            "trace: this vmcore has no trace buffers (the scenario had no [trace] section)"
                .to_string()
        })?;
        Ok(render_txt(&trace, &f))
    }
}

/// Seconds of virtual time (`1.5`) as nanoseconds.
fn secs(s: &str) -> Result<u64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1e9).contains(&v) => Ok((v * 1e9) as u64),
        _ => Err(format!("trace: {s}: not a time in seconds")),
    }
}
