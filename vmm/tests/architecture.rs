//! The host's layout is its architecture (see ARCHITECTURE.md): each top-level module of
//! `vmm/src` imports only from the layers below it, so there is no import circle, and no source
//! file is long enough that a reader scrolls through it twice.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first, as lib.rs lists them.
const LAYERS: &[&[&str]] = &[
    &["state", "process"],
    &["memory"],
    &["image"],
    &["unwind"],
    &["kvm", "devices"],
    &["machine"],
    &["analysis"],
    &["report"],
    &["scenario"],
    &["output"],
    &["inspect", "lab", "bench"],
    &["explore"],
];

/// About 400 lines: past that a file holds more than one concern.
const MAX_LINES: usize = 420;

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// module → the modules its code (not its unit tests) names as `crate::X`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src()).unwrap();
        let module = rel
            .iter()
            .next()
            .unwrap()
            .to_string_lossy()
            .replace(".rs", "");
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if name != module && rank(&name).is_some() {
                out.entry(module.clone()).or_default().insert(name);
            }
        }
    }
    out
}

#[test]
fn every_module_imports_only_from_the_layers_below_it() {
    let g = imports();
    let mut bad = Vec::new();
    for (m, deps) in &g {
        let Some(rm) = rank(m) else {
            bad.push(format!(
                "{m} is in no layer: add it to lib.rs's map and LAYERS"
            ));
            continue;
        };
        for d in deps {
            let rd = rank(d).unwrap();
            if rd > rm || (rd == rm && g.get(d).is_some_and(|x| x.contains(m))) {
                bad.push(format!("{m} imports {d}"));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
    // The check sees the real graph: the machine does use the state, the lab the machine.
    assert!(
        g["machine"].contains("state") && g["lab"].contains("machine"),
        "{g:?}"
    );
}

#[test]
fn every_top_level_folder_is_a_layer() {
    for e in std::fs::read_dir(src()).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().replace(".rs", "");
        if name != "lib" && name != "main" {
            assert!(rank(&name).is_some(), "{name} is in no layer");
        }
    }
}

#[test]
fn no_source_file_is_longer_than_about_400_lines() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    rust_files(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../abi/src"),
        &mut files,
    );
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > MAX_LINES).then(|| format!("{}: {n} lines", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "{long:#?}");
}
