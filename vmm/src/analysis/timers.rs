//! Timers as crash's `timer` reads them: each CPU's timer wheel (`timer_bases[cpu]`, one sorted
//! hlist here) and its hrtimers (`hrtimer_bases[cpu]`). The lists live in guest memory, where a
//! freed timer is exactly the bug seed 002 shows: walks are bounded, and an unreadable node
//! ends one with a note instead of an error.
use super::Analysis;

/// Timers a list is followed for at most.
const MAX_TIMERS: usize = 4096;

/// One pending timer: `timer_list` (expiry in jiffies) or `hrtimer` (in nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    pub addr: u64,
    pub expires: u64,
    /// The callback's address (0: none).
    pub function: u64,
}

/// A CPU's `struct timer_base`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerBase {
    pub cpu: usize,
    pub addr: u64,
    /// The base lock's word.
    pub lock: u32,
    pub running_timer: u64,
    /// Cached earliest expiry (`u64::MAX`: none).
    pub next_expiry: u64,
    /// Pending timers, in list (expiry) order.
    pub timers: Vec<Timer>,
    /// Why the walk stopped early, if it did.
    pub note: Option<String>,
}

/// A CPU's `struct hrtimer_cpu_base`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HrtimerBase {
    pub cpu: usize,
    pub addr: u64,
    pub timers: Vec<Timer>,
    pub note: Option<String>,
}

impl Analysis<'_> {
    /// `jiffies` at the snapshot: the guest derives it from the virtual clock.
    pub fn jiffies(&self) -> u64 {
        self.snap.vtime_ns / (1_000_000_000 / lockvmm_abi::HZ)
    }

    /// Follows a singly linked list of timers from the pointer at `head`: `link` is the offset
    /// of the next pointer in a node, `node` the node's offset in the timer.
    fn timer_list(
        &self,
        head: u64,
        node: u64,
        link: u64,
        ty: &str,
    ) -> (Vec<Timer>, Option<String>) {
        let off = |m: &str| self.dwarf.member_offset(ty, m);
        let (Some(exp_off), Some(fn_off)) = (off("expires"), off("function")) else {
            return (
                Vec::new(),
                Some(format!("struct {ty} has no expires/function")),
            );
        };
        let mut out: Vec<Timer> = Vec::new();
        let Ok(mut at) = self.mem.u64(head) else {
            return (out, Some(format!("list head {head:#x} is not readable")));
        };
        while at != 0 {
            let timer = at.wrapping_sub(node);
            if out.len() >= MAX_TIMERS || out.iter().any(|t| t.addr == timer) {
                return (
                    out,
                    Some(format!("the list loops or runs past {MAX_TIMERS} timers")),
                );
            }
            let (Ok(expires), Ok(function), Ok(next)) = (
                self.mem.u64(timer.wrapping_add(exp_off)),
                self.mem.u64(timer.wrapping_add(fn_off)),
                self.mem.u64(at.wrapping_add(link)),
            ) else {
                return (out, Some(format!("timer at {timer:#x} is not readable")));
            };
            out.push(Timer {
                addr: timer,
                expires,
                function,
            });
            at = next;
        }
        (out, None)
    }

    /// CPU `cpu`'s timer wheel.
    pub fn timer_base(&self, cpu: usize) -> Option<TimerBase> {
        let addr = self.per_cpu_elem("timer_bases", cpu)?;
        let off = |m: &str| self.dwarf.member_offset("timer_base", m);
        let u64_at = |m: &str| {
            off(m)
                .and_then(|o| self.mem.u64(addr.wrapping_add(o)).ok())
                .unwrap_or(0)
        };
        let node = self.dwarf.member_offset("timer_list", "entry").unwrap_or(0);
        let link = self.dwarf.member_offset("hlist_node", "next").unwrap_or(0);
        let (timers, note) = match off("first") {
            Some(first) => self.timer_list(addr.wrapping_add(first), node, link, "timer_list"),
            None => (Vec::new(), Some("struct timer_base has no first".into())),
        };
        Some(TimerBase {
            cpu,
            addr,
            lock: off("lock")
                .and_then(|o| self.mem.u32(addr.wrapping_add(o)).ok())
                .unwrap_or(0),
            running_timer: u64_at("running_timer"),
            next_expiry: u64_at("next_expiry"),
            timers,
            note,
        })
    }

    /// CPU `cpu`'s hrtimers.
    pub fn hrtimer_base(&self, cpu: usize) -> Option<HrtimerBase> {
        let addr = self.per_cpu_elem("hrtimer_bases", cpu)?;
        let link = self.dwarf.member_offset("hrtimer", "next").unwrap_or(0);
        let (timers, note) = match self.dwarf.member_offset("hrtimer_cpu_base", "head") {
            Some(head) => self.timer_list(addr.wrapping_add(head), 0, link, "hrtimer"),
            None => (
                Vec::new(),
                Some("struct hrtimer_cpu_base has no head".into()),
            ),
        };
        Some(HrtimerBase {
            cpu,
            addr,
            timers,
            note,
        })
    }
}
