//! Scenario files: the shipped ones, mutated as TOML trees and as bytes, parsed, validated (with
//! and without `--vcpus`) and encoded. Must never panic.
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use lockvmm::LoadedScenario;
use lockvmm::scenario::program;
use proptest::prelude::*;
use toml::Value;

use crate::common::root;
use crate::mutate;

/// Every scenario the repository ships, with its text.
fn corpus() -> &'static [(PathBuf, String)] {
    static C: OnceLock<Vec<(PathBuf, String)>> = OnceLock::new();
    C.get_or_init(|| {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|e| e == "toml") {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        for dir in [
            "scenarios",
            "examples",
            "vmm/tests/scenarios",
            "vmm/tests/hostile",
        ] {
            walk(&root(dir), &mut files);
        }
        files.sort();
        let v: Vec<(PathBuf, String)> = files
            .into_iter()
            .map(|f| {
                let text = std::fs::read_to_string(&f).unwrap();
                (f, text)
            })
            .collect();
        assert!(v.len() > 20, "the corpus is the shipped scenarios");
        v
    })
}

/// One edit of a TOML tree, aimed at a node chosen by `at` among all of them.
#[derive(Debug, Clone)]
enum TreeEdit {
    SetInt {
        at: u64,
        sel: u64,
        random: u64,
        negative: bool,
    },
    SetFloat {
        at: u64,
        sel: u8,
    },
    SetString {
        at: u64,
        sel: u64,
    },
    SetBool {
        at: u64,
    },
    Remove {
        at: u64,
    },
    InsertKey {
        at: u64,
        sel: u64,
    },
    /// Repeats an array's element (a task, an op, an action) `n` times.
    Multiply {
        at: u64,
        n: u16,
    },
    EmptyArray {
        at: u64,
    },
    Nest {
        at: u64,
        depth: u8,
    },
}

fn tree_edit() -> impl Strategy<Value = TreeEdit> {
    prop_oneof![
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<bool>()).prop_map(
            |(at, sel, random, negative)| TreeEdit::SetInt {
                at,
                sel,
                random,
                negative
            }
        ),
        (any::<u64>(), any::<u8>()).prop_map(|(at, sel)| TreeEdit::SetFloat { at, sel }),
        (any::<u64>(), any::<u64>()).prop_map(|(at, sel)| TreeEdit::SetString { at, sel }),
        any::<u64>().prop_map(|at| TreeEdit::SetBool { at }),
        any::<u64>().prop_map(|at| TreeEdit::Remove { at }),
        (any::<u64>(), any::<u64>()).prop_map(|(at, sel)| TreeEdit::InsertKey { at, sel }),
        (any::<u64>(), 1u16..400).prop_map(|(at, n)| TreeEdit::Multiply { at, n }),
        any::<u64>().prop_map(|at| TreeEdit::EmptyArray { at }),
        (any::<u64>(), 1u8..40).prop_map(|(at, depth)| TreeEdit::Nest { at, depth }),
    ]
}

/// Paths to every node of the tree (the root excluded).
fn paths(v: &Value, prefix: &mut Vec<PathSeg>, out: &mut Vec<Vec<PathSeg>>) {
    match v {
        Value::Table(t) => {
            for (k, child) in t {
                prefix.push(PathSeg::Key(k.clone()));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                prefix.push(PathSeg::Index(i));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum PathSeg {
    Key(String),
    Index(usize),
}

fn node<'a>(v: &'a mut Value, path: &[PathSeg]) -> Option<&'a mut Value> {
    let mut cur = v;
    for seg in path {
        cur = match (seg, cur) {
            (PathSeg::Key(k), Value::Table(t)) => t.get_mut(k)?,
            (PathSeg::Index(i), Value::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

const KEYS: &[&str] = &[
    "vcpus",
    "memory_mib",
    "cpu",
    "pid",
    "rt_priority",
    "policy",
    "lockup_cpus",
    "lines",
    "ms",
    "at_time",
    "target",
    "max_virtual_seconds",
    "watchdog_thresh",
    "comm",
    "op",
    "lock",
    "unknown",
];

fn apply(root: &mut Value, e: &TreeEdit) {
    let mut all = Vec::new();
    paths(root, &mut Vec::new(), &mut all);
    if all.is_empty() {
        return;
    }
    let pick = |at: u64| all[(at % all.len() as u64) as usize].clone();
    match e {
        TreeEdit::SetInt {
            at,
            sel,
            random,
            negative,
        } => {
            if let Some(n) = node(root, &pick(*at)) {
                let v = mutate::int(*sel, *random) as i64;
                *n = Value::Integer(if *negative { v.wrapping_neg() } else { v });
            }
        }
        TreeEdit::SetFloat { at, sel } => {
            if let Some(n) = node(root, &pick(*at)) {
                let f = [
                    f64::NAN,
                    f64::INFINITY,
                    -0.0,
                    1e-300,
                    1e300,
                    -1.0,
                    86400.0,
                    86400.5,
                    0.2,
                ][*sel as usize % 9];
                *n = Value::Float(f);
            }
        }
        TreeEdit::SetString { at, sel } => {
            if let Some(n) = node(root, &pick(*at)) {
                *n = Value::String(mutate::string(*sel));
            }
        }
        TreeEdit::SetBool { at } => {
            if let Some(n) = node(root, &pick(*at)) {
                *n = Value::Boolean(true);
            }
        }
        TreeEdit::Remove { at } => {
            let p = pick(*at);
            let (last, parent) = p.split_last().unwrap();
            match (node(root, parent), last) {
                (Some(Value::Table(t)), PathSeg::Key(k)) => {
                    t.remove(k);
                }
                (Some(Value::Array(a)), PathSeg::Index(i)) if *i < a.len() => {
                    a.remove(*i);
                }
                _ => {}
            }
        }
        TreeEdit::InsertKey { at, sel } => {
            let key = KEYS[(*sel % KEYS.len() as u64) as usize].to_string();
            let value = Value::Integer(mutate::int(*sel >> 8, *sel) as i64);
            match node(root, &pick(*at)) {
                Some(Value::Table(t)) => {
                    t.insert(key, value);
                }
                _ => {
                    if let Value::Table(t) = root {
                        t.insert(key, value);
                    }
                }
            }
        }
        TreeEdit::Multiply { at, n } => {
            let p = pick(*at);
            let is_array = matches!(node(root, &p), Some(Value::Array(a)) if !a.is_empty());
            let p = if is_array {
                p
            } else {
                vec![PathSeg::Key("task".into())]
            };
            if let Some(Value::Array(a)) = node(root, &p)
                && let Some(first) = a.first().cloned()
            {
                a.extend(std::iter::repeat_n(first, *n as usize));
            }
        }
        TreeEdit::EmptyArray { at } => {
            if let Some(n) = node(root, &pick(*at)) {
                *n = Value::Array(Vec::new());
            }
        }
        TreeEdit::Nest { at, depth } => {
            if let Some(n) = node(root, &pick(*at)) {
                let mut v = n.clone();
                for _ in 0..*depth {
                    v = Value::Array(vec![v]);
                }
                *n = v;
            }
        }
    }
}

/// One edit of the text itself.
#[derive(Debug, Clone)]
enum ByteEdit {
    Flip { at: u64, xor: u8 },
    Insert { at: u64, bytes: Vec<u8> },
    Truncate { at: u64 },
    DuplicateLine { at: u64 },
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        (any::<u64>(), 1u8..).prop_map(|(at, xor)| ByteEdit::Flip { at, xor }),
        (any::<u64>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| ByteEdit::Insert { at, bytes }),
        any::<u64>().prop_map(|at| ByteEdit::Truncate { at }),
        any::<u64>().prop_map(|at| ByteEdit::DuplicateLine { at }),
    ]
}

fn apply_bytes(b: &mut Vec<u8>, e: &ByteEdit) {
    if b.is_empty() {
        return;
    }
    let at = |x: u64| (x % b.len() as u64) as usize;
    match e {
        ByteEdit::Flip { at: a, xor } => {
            let i = at(*a);
            b[i] ^= xor;
        }
        ByteEdit::Insert { at: a, bytes } => {
            let i = at(*a);
            b.splice(i..i, bytes.iter().copied());
        }
        ByteEdit::Truncate { at: a } => {
            let i = at(*a);
            b.truncate(i);
        }
        ByteEdit::DuplicateLine { at: a } => {
            let i = at(*a);
            let start = b[..i]
                .iter()
                .rposition(|&c| c == b'\n')
                .map_or(0, |p| p + 1);
            let end = b[i..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |p| i + p + 1);
            let line = b[start..end].to_vec();
            b.splice(end..end, line);
        }
    }
}

/// Everything the host does with a scenario before it boots a machine.
fn exercise(path: &Path, bytes: Vec<u8>, vcpus: Option<usize>) {
    let Ok(text) = String::from_utf8(bytes.clone()) else {
        // The loader's own path for bytes that are not UTF-8.
        let f = std::env::temp_dir().join(format!("lockvmm-fuzz-{}.toml", std::process::id()));
        std::fs::write(&f, &bytes).unwrap();
        let err = LoadedScenario::load(&f)
            .err()
            .expect("not UTF-8 is an error");
        assert!(err.to_string().contains("invalid UTF-8"), "{err}");
        return;
    };
    let Ok(s) = LoadedScenario::parse(path, text) else {
        return;
    };
    let _ = s.validate(vcpus);
    let program = program::encode(&s.scenario, &[]);
    assert!(
        program.len() as u64 <= lockvmm_abi::PROGRAM_MAX,
        "a valid scenario's program fits"
    );
    let _ = (
        s.knobs(),
        s.actions(),
        s.lock_names(),
        s.max_vtime_ns(),
        s.memory_mib(),
        s.vcpus(),
        s.name(),
    );
}

proptest! {
    #![proptest_config(crate::config(1000))]

    #[test]
    fn mutated_scenario_trees_never_panic(
        file in any::<prop::sample::Index>(),
        edits in proptest::collection::vec(tree_edit(), 1..6),
        vcpus in proptest::option::of(0usize..300),
    ) {
        let (path, text) = file.get(corpus());
        let mut tree: Value = toml::from_str(text).unwrap();
        for e in &edits {
            apply(&mut tree, e);
        }
        if let Ok(out) = toml::to_string(&tree) {
            exercise(path, out.into_bytes(), vcpus);
        }
    }

    #[test]
    fn mutated_scenario_bytes_never_panic(
        file in any::<prop::sample::Index>(),
        edits in proptest::collection::vec(byte_edit(), 1..6),
    ) {
        let (path, text) = file.get(corpus());
        let mut bytes = text.clone().into_bytes();
        for e in &edits {
            apply_bytes(&mut bytes, e);
        }
        exercise(path, bytes, None);
    }
}
