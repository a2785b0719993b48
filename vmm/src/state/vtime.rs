//! Virtual time as the kernel prints it: seconds and microseconds, `12.345678`, as printk's
//! `[%5lu.%06lu]` prefix (`kernel/printk/printk.c` `print_time`) and trace-cmd's timestamps.
use std::fmt;

/// Nanoseconds of virtual time, shown as `SECONDS.MICROS`; a width pads the whole
/// (`{:>12}` gives printk's `%5lu.%06lu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secs(pub u64);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!(
            "{}.{:06}",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000 / 1000
        );
        f.pad(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::Secs;

    #[test]
    fn seconds_and_micros_padded_as_printk() {
        assert_eq!(format!("[{:>12}]", Secs(10_000_123_999)), "[   10.000123]");
        assert_eq!(Secs(999).to_string(), "0.000000");
    }
}
