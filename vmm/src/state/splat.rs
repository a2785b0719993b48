//! A report of the guest's lockdep or `might_sleep` (a "splat"), as the host knows it: from
//! the guest's [`SplatRecord`](lockvmm_abi::lockdep::SplatRecord), never from console text.
use serde::{Deserialize, Serialize};

use lockvmm_abi::lockdep::{NO_USAGE, SplatKind, SplatRecord, USAGE_STR, c_name};

use super::text::escape_bytes_line;

/// One splat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Splat {
    /// `inconsistent_lock_state`, `circular_dependency`, `recursive_locking`,
    /// `irq_safe_to_unsafe`, `bad_unlock_balance`, `irq_lock_inversion`, `sleep_in_atomic`.
    pub kind: String,
    /// Virtual time of the report, nanoseconds.
    pub vtime_ns: u64,
    pub cpu: usize,
    pub pid: u32,
    pub comm: String,
    /// The lock class (`&rq->__lock`, the scenario's lock name, …); empty for `might_sleep`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub class: String,
    /// The lock instance being acquired or released.
    #[serde(default, skip_serializing_if = "is_zero", with = "super::hex")]
    pub lock: u64,
    /// The report's other class (the held one, or the irq-unsafe one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_class: Option<String>,
    /// Inconsistent lock state: the usage the class had and the one that conflicts
    /// (`IN-HARDIRQ-W`, `HARDIRQ-ON-W`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<(String, String)>,
    /// A circular dependency's class keys, from the lock being acquired.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "super::hex::seq"
    )]
    pub chain: Vec<u64>,
    /// Where the bug was hit (the acquire, release or `might_sleep` call site).
    #[serde(with = "super::hex")]
    pub ip: u64,
    pub ip_symbol: String,
    /// `might_sleep`: the preemption count and whether interrupts were disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irqs_disabled: Option<bool>,
    /// Where each of `usage` was first seen: the top return addresses of its stack trace.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "super::hex::seq"
    )]
    pub prev_trace: Vec<u64>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "super::hex::seq"
    )]
    pub new_trace: Vec<u64>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Splat {
    /// The splat a guest record describes; `None` for an unknown kind.
    pub fn from_record(r: &SplatRecord, vtime_ns: u64, ip_symbol: String) -> Option<Splat> {
        let kind = SplatKind::from_raw(r.kind)?;
        let name = |b: &[u8]| escape_bytes_line(c_name(b).as_bytes());
        let usage = |u: u32| USAGE_STR.get(u as usize).map(|s| s.to_string());
        let sleep = kind == SplatKind::SleepInAtomic;
        Some(Splat {
            kind: kind.name().into(),
            vtime_ns,
            cpu: r.cpu as usize,
            pid: r.pid,
            comm: name(&r.comm),
            class: name(&r.class_name),
            lock: r.lock,
            other_class: Some(name(&r.other_name)).filter(|n| !n.is_empty()),
            usage: (r.prev_usage != NO_USAGE)
                .then(|| usage(r.prev_usage).zip(usage(r.new_usage)))
                .flatten(),
            chain: r.chain[..(r.chain_len as usize).min(r.chain.len())].to_vec(),
            ip: r.ip,
            ip_symbol,
            preempt_count: sleep.then_some(r.preempt_count),
            irqs_disabled: sleep.then_some(r.irqs_disabled != 0),
            prev_trace: r
                .prev_trace
                .iter()
                .copied()
                .take_while(|&a| a != 0)
                .collect(),
            new_trace: r
                .new_trace
                .iter()
                .copied()
                .take_while(|&a| a != 0)
                .collect(),
        })
    }

    /// The report's first line, as the guest printed it (Linux's header).
    pub fn title(&self) -> String {
        match SplatKind::from_name(&self.kind) {
            Some(SplatKind::InconsistentLockState) => "inconsistent lock state".into(),
            Some(SplatKind::CircularDependency) => {
                "possible circular locking dependency detected".into()
            }
            Some(SplatKind::RecursiveLocking) => "possible recursive locking detected".into(),
            Some(SplatKind::IrqSafeToUnsafe) => {
                let state = match &self.usage {
                    Some((u, _)) if u.contains("SOFTIRQ") => "SOFTIRQ",
                    _ => "HARDIRQ",
                };
                format!("{state}-safe -> {state}-unsafe lock order detected")
            }
            Some(SplatKind::BadUnlockBalance) => "bad unlock balance detected!".into(),
            Some(SplatKind::IrqLockInversion) => {
                "possible irq lock inversion dependency detected".into()
            }
            Some(SplatKind::SleepInAtomic) | None => {
                "sleeping function called from invalid context".into()
            }
        }
    }
}
