//! The watchdog knobs as Linux spells them: the `nmi_watchdog=` boot parameter's
//! `[panic,][nopanic,][num]` form (kernel/watchdog.c's `hardlockup_panic_setup`,
//! Documentation/admin-guide/kernel-parameters.txt), and the sysctl names as the seeds write
//! them in a `[sysctl]` section (`kernel.watchdog_thresh = 10`, the same as a quoted
//! `"kernel.watchdog_thresh"` key is not: TOML reads the dotted key as the `kernel` table).
//! A `[sysctl]` value overrides the `[watchdog]` one, as a `sysctl -w` after boot would.
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

/// `nmi_watchdog`: `true`/`false`, or the boot parameter's string (`"panic,1"`, `"0"`).
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum NmiWatchdogSpec {
    Bool(bool),
    Param(String),
}

/// `[sysctl]`: only the `kernel.` sysctls the lab's kernel has.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SysctlSpec {
    pub kernel: KernelSysctls,
}

/// `kernel.*` (Linux's `/proc/sys/kernel/`), each an integer as `sysctl` takes it.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct KernelSysctls {
    pub watchdog_thresh: Option<Spanned<i64>>,
    pub softlockup_panic: Option<Spanned<i64>>,
    pub hardlockup_panic: Option<Spanned<i64>>,
    pub nmi_watchdog: Option<Spanned<i64>>,
    pub softlockup_all_cpu_backtrace: Option<Spanned<i64>>,
    pub hung_task_timeout_secs: Option<Spanned<i64>>,
    pub hung_task_panic: Option<Spanned<i64>>,
}

/// The knobs after the boot parameter and the sysctls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchdogKnobs {
    /// 0 turns both lockup detectors off (Linux's `watchdog_thresh = 0`).
    pub watchdog_thresh: u32,
    pub softlockup_panic: bool,
    pub hardlockup_panic: bool,
    pub nmi_watchdog: bool,
    pub softlockup_all_cpu_backtrace: bool,
    pub hung_task_timeout_secs: u32,
    pub hung_task_panic: bool,
}

/// A bad value: where it is and why.
pub type KnobError = (Range<usize>, String);

/// `nmi_watchdog=[panic,][nopanic,][num]`: each comma-separated token in turn, as the
/// documented form (Linux's own parser reads one token per `strncmp`). Returns
/// (enabled, hardlockup_panic) changes.
pub fn parse_nmi_watchdog(s: &str) -> Result<(Option<bool>, Option<bool>), String> {
    let (mut enabled, mut panic) = (None, None);
    for tok in s.split(',').map(str::trim) {
        match tok {
            "panic" => panic = Some(true),
            "nopanic" => panic = Some(false),
            "0" => enabled = Some(false),
            "1" => enabled = Some(true),
            other => {
                return Err(format!(
                    "watchdog.nmi_watchdog: {other:?} is not panic, nopanic, 0 or 1 (the boot parameter's [panic,][nopanic,][num])"
                ));
            }
        }
    }
    Ok((enabled, panic))
}

fn flag(v: &Option<Spanned<i64>>, name: &str) -> Result<Option<bool>, KnobError> {
    match v {
        None => Ok(None),
        Some(s) if matches!(s.get_ref(), 0 | 1) => Ok(Some(*s.get_ref() == 1)),
        Some(s) => Err((s.span(), format!("sysctl.kernel.{name} must be 0 or 1"))),
    }
}

impl WatchdogKnobs {
    /// `[watchdog]`, then its `nmi_watchdog` string, then `[sysctl]`; checks every range.
    pub fn resolve(
        w: &super::schema::WatchdogSpec,
        sys: &SysctlSpec,
    ) -> Result<WatchdogKnobs, KnobError> {
        let mut k = WatchdogKnobs {
            watchdog_thresh: 0,
            softlockup_panic: w.softlockup_panic,
            hardlockup_panic: w.hardlockup_panic,
            nmi_watchdog: true,
            softlockup_all_cpu_backtrace: w.softlockup_all_cpu_backtrace,
            hung_task_timeout_secs: 0,
            hung_task_panic: w.hung_task_panic,
        };
        match w.nmi_watchdog.get_ref() {
            NmiWatchdogSpec::Bool(b) => k.nmi_watchdog = *b,
            NmiWatchdogSpec::Param(p) => {
                let (en, panic) = parse_nmi_watchdog(p).map_err(|e| (w.nmi_watchdog.span(), e))?;
                k.nmi_watchdog = en.unwrap_or(true);
                if let Some(p) = panic {
                    k.hardlockup_panic = p;
                }
            }
        }
        let s = &sys.kernel;
        let thresh = s.watchdog_thresh.as_ref().unwrap_or(&w.watchdog_thresh);
        if !(0..=60).contains(thresh.get_ref()) {
            return Err((
                thresh.span(),
                "watchdog_thresh must be 0 to 60 seconds (as Linux; 0 turns the lockup detectors off)"
                    .into(),
            ));
        }
        k.watchdog_thresh = *thresh.get_ref() as u32;
        let hung = s
            .hung_task_timeout_secs
            .as_ref()
            .unwrap_or(&w.hung_task_timeout_secs);
        if !(0..=i64::from(u32::MAX)).contains(hung.get_ref()) {
            return Err((
                hung.span(),
                "hung_task_timeout_secs must be 0 or more".into(),
            ));
        }
        k.hung_task_timeout_secs = *hung.get_ref() as u32;
        let set = |slot: &mut bool, v: Option<bool>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(
            &mut k.softlockup_panic,
            flag(&s.softlockup_panic, "softlockup_panic")?,
        );
        set(
            &mut k.hardlockup_panic,
            flag(&s.hardlockup_panic, "hardlockup_panic")?,
        );
        set(&mut k.nmi_watchdog, flag(&s.nmi_watchdog, "nmi_watchdog")?);
        set(
            &mut k.softlockup_all_cpu_backtrace,
            flag(
                &s.softlockup_all_cpu_backtrace,
                "softlockup_all_cpu_backtrace",
            )?,
        );
        set(
            &mut k.hung_task_panic,
            flag(&s.hung_task_panic, "hung_task_panic")?,
        );
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_nmi_watchdog;

    #[test]
    fn boot_parameter_forms() {
        assert_eq!(parse_nmi_watchdog("panic,1"), Ok((Some(true), Some(true))));
        assert_eq!(parse_nmi_watchdog("nopanic"), Ok((None, Some(false))));
        assert_eq!(parse_nmi_watchdog("0"), Ok((Some(false), None)));
        assert!(parse_nmi_watchdog("2").is_err());
        assert!(parse_nmi_watchdog("panic,on").is_err());
    }
}
