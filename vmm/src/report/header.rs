//! crash's header (`crash/main.c`'s `display_sys_stats`): DATE, UPTIME, LOAD AVERAGE, TASKS,
//! NODENAME, RELEASE, VERSION, MACHINE, MEMORY, PANIC, PID, COMMAND, TASK, CPU, STATE, each
//! read from the vmcore as crash reads it (`init_uts_ns`, the task pool, the log), or said to
//! be absent where the lab's kernel keeps no such thing.
use serde::{Deserialize, Serialize};

use crate::analysis::Analysis;

/// The log lines crash's `get_panicmsg` looks for, in its order (crash `kernel.c`): the first
/// kind found in the log is the PANIC string.
const PANIC_MSGS: [&str; 9] = [
    "SysRq : Crash",
    "SysRq : Trigger a crash",
    "Kernel panic: ",
    "Oops: ",
    "Kernel BUG at",
    "kernel BUG at",
    "BUG: unable to handle kernel ",
    "general protection fault: ",
    "Kernel panic - not syncing: ",
];

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Header {
    /// DATE: the guest's wall clock at the capture (it has no RTC: the virtual clock since
    /// the epoch).
    pub date: String,
    /// TASKS: tasks that exist in the pool.
    pub tasks: usize,
    pub nodename: String,
    pub release: String,
    pub version: String,
    pub machine: String,
    /// MEMORY: guest RAM in bytes.
    pub memory_bytes: u64,
    /// PANIC: the log line crash would pick (`None`: no panic in the log).
    pub panic: Option<String>,
    /// STATE of the report CPU's task, as crash prints it (`TASK_RUNNING (PANIC)`).
    pub state: String,
    /// `(N of M)`: the task's place among the tasks.
    pub task_index: Option<usize>,
}

/// `Thu Jan  1 00:00:10 1970` for `secs` after the epoch (the C library's `asctime` layout).
fn asctime(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let t = secs % 86_400;
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        d,
        t / 3600,
        t / 60 % 60,
        t % 60,
        y
    )
}

/// crash's UPTIME: `1 days, 00:22:05`, or `00:22:05` under a day.
pub fn uptime(secs: u64) -> String {
    let hms = format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    );
    match secs / 86_400 {
        0 => hms,
        d => format!("{d} days, {hms}"),
    }
}

/// crash's MEMORY: `2 GB`, `256 MB`.
pub fn memory_text(bytes: u64) -> String {
    const GB: u64 = 1 << 30;
    const MB: u64 = 1 << 20;
    if bytes >= GB && bytes.is_multiple_of(GB) {
        format!("{} GB", bytes / GB)
    } else {
        format!("{} MB", bytes / MB)
    }
}

impl Header {
    /// Reads the header's facts from the snapshot; `cpu` is the report's CPU.
    pub fn build(a: &Analysis<'_>, cpu: usize, dmesg: &[String], panicked: bool) -> Self {
        let uts = |field: &str| a.utsname(field).unwrap_or_default();
        let tasks = a.tasks();
        let current = a.task_on(cpu);
        let task_index = current
            .as_ref()
            .and_then(|c| tasks.iter().position(|t| t.info.addr == c.addr))
            .map(|i| i + 1);
        let state = current
            .as_ref()
            .and_then(|c| a.task_entry(c.addr))
            .and_then(|t| t.state)
            .map(|s| match s {
                lockvmm_abi::task::TaskState::Running => "TASK_RUNNING",
                lockvmm_abi::task::TaskState::Interruptible => "TASK_INTERRUPTIBLE",
                lockvmm_abi::task::TaskState::Uninterruptible => "TASK_UNINTERRUPTIBLE",
                lockvmm_abi::task::TaskState::Dead => "TASK_DEAD",
            })
            .unwrap_or("TASK_RUNNING");
        let state = format!("{state} ({})", if panicked { "PANIC" } else { "ACTIVE" });
        Header {
            date: asctime(a.snap.vtime_ns / 1_000_000_000),
            tasks: tasks.len(),
            nodename: uts("nodename"),
            release: uts("release"),
            version: uts("version"),
            machine: uts("machine"),
            memory_bytes: a.snap.memory.len() as u64,
            panic: panic_message(dmesg),
            state,
            task_index,
        }
    }
}

/// The PANIC string crash's `get_panicmsg` finds in the log: for the first of its strings
/// that occurs, the log line from there on.
pub fn panic_message(dmesg: &[String]) -> Option<String> {
    PANIC_MSGS.iter().find_map(|m| {
        dmesg.iter().find_map(|l| {
            let at = l.find(m)?;
            Some(l[at..].to_string())
        })
    })
}
