//! Scenario errors: one line naming the file, line and column, with the nearest valid key or
//! name when the input looks like a typo.
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{col}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        col: usize,
        message: String,
    },
}

pub(super) fn invalid(
    path: &Path,
    source: &str,
    span: Range<usize>,
    message: String,
) -> ScenarioError {
    let (line, col) = line_col(source, span.start);
    ScenarioError::Invalid {
        path: path.into(),
        line,
        col,
        // The message may quote the file's text: a scenario is untrusted input too.
        message: crate::state::text::escape_line(&message),
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Turns serde's "unknown field `x`, expected `a`, `b`" into one line with the nearest key.
pub(super) fn with_suggestion(message: &str) -> String {
    let message = message.trim().replace('\n', " ");
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((key, _)) = rest.split_once("`, there are no fields")
    {
        return format!("`{key}`: this op takes no arguments");
    }
    let Some(rest) = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))
    else {
        return message;
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return message;
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    if message.starts_with("unknown field")
        && let Some((_, section)) = SECTION_KEYS
            .iter()
            .find(|(key, _)| *key == unknown && !candidates.contains(key))
    {
        return format!("{message} (`{unknown}` belongs in {section})");
    }
    match nearest(unknown, &candidates) {
        Some(best) => format!("{message} (did you mean `{best}`?)"),
        None => message,
    }
}

/// Keys that belong to one section only, so that a key written in the wrong one is named as
/// such instead of being "corrected" to an unrelated key of this section.
const SECTION_KEYS: &[(&str, &str)] = &[
    ("ops", "[[task]]"),
    ("comm", "[[task]]"),
    ("pid", "[[task]]"),
    ("policy", "[[task]]"),
    ("rt_priority", "[[task]]"),
    ("at_hook", "[[action]]"),
    ("at_time", "[[action]]"),
    ("deliver", "[[action]]"),
    ("vcpus", "[machine]"),
    ("memory_mib", "[machine]"),
    ("console", "[machine]"),
    ("kernel", "[machine]"),
    ("watchdog_thresh", "[watchdog]"),
    ("softlockup_panic", "[watchdog]"),
    ("hardlockup_panic", "[watchdog]"),
    ("nmi_watchdog", "[watchdog]"),
    ("max_virtual_seconds", "[run]"),
    ("stop_on_lockup", "[run]"),
    ("lbr_alloc", "[faults]"),
    ("outcome", "[expect]"),
    ("holder", "[expect]"),
];

/// The candidate closest to `word`, if it is close enough to be a typo.
pub(super) fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .copied()
        .min_by_key(|c| edit_distance(word, c))
        // A typo changes about one letter in three; more than that is another word.
        .filter(|c| edit_distance(word, c) <= (c.len() / 3).max(1))
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
