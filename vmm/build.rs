//! Builds the guest kernel (`../guest`) for `x86_64-unknown-none` and hands its path to the
//! `lockvmm` crate, which embeds it. A user never builds the guest by hand.
//!
//! The nested cargo gets its own target directory (a build script must not wait on the lock of
//! the build that runs it) and a clean environment (no host RUSTFLAGS, no clippy wrapper).
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "build/kallsyms.rs"]
mod kallsyms;

const GUEST_TARGET: &str = "x86_64-unknown-none";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    let guest = root.join("guest");
    let target_dir = root.join("target").join("guest");
    for dir in ["guest/src", "abi/src"] {
        rerun_if_changed_tree(&root.join(dir));
    }
    for file in [
        "guest/Cargo.toml",
        "guest/linker.ld",
        "guest/build.rs",
        "guest/.cargo/config.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    ensure_guest_target();
    let status = Command::new(&cargo)
        .current_dir(&guest)
        .args([
            "build",
            "--release",
            "--target",
            GUEST_TARGET,
            "--target-dir",
        ])
        .arg(&target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_MAKEFLAGS")
        .status()
        .expect("failed to run cargo for the guest kernel");
    if !status.success() {
        panic!("building the guest kernel failed (see the errors above)");
    }
    let elf = target_dir.join(GUEST_TARGET).join("release").join("guest");
    check_no_simd(&elf);
    let vmlinux = elf.with_file_name("vmlinux");
    if let Err(e) = kallsyms::fill(&elf, &vmlinux) {
        panic!("building the guest's kallsyms table: {e}");
    }
    println!("cargo:rustc-env=LOCKVMM_GUEST_ELF={}", vmlinux.display());
}

/// A fresh machine has no `x86_64-unknown-none` standard library: add it through rustup.
fn ensure_guest_target() {
    let sysroot = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = sysroot
        .map(|s| s.join("lib/rustlib").join(GUEST_TARGET).exists())
        .unwrap_or(false);
    if installed {
        return;
    }
    println!("cargo:warning=installing the guest target: rustup target add {GUEST_TARGET}");
    let ok = Command::new("rustup")
        .args(["target", "add", GUEST_TARGET])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        panic!("the guest needs the {GUEST_TARGET} target: run `rustup target add {GUEST_TARGET}`");
    }
}

/// This host's KVM cannot emulate SSE/AVX in ring 0: refuse a guest that contains any.
fn check_no_simd(elf: &Path) {
    let Ok(out) = Command::new("objdump").arg("-d").arg(elf).output() else {
        println!(
            "cargo:warning=objdump not found: the SSE/AVX check of the guest is left to the tests"
        );
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("%xmm") || l.contains("%ymm"))
        .collect();
    if !bad.is_empty() {
        panic!(
            "the guest kernel contains {} SSE/AVX instructions (KVM here cannot run them in ring 0), e.g.\n{}",
            bad.len(),
            bad.iter().take(5).copied().collect::<Vec<_>>().join("\n")
        );
    }
}

fn rerun_if_changed_tree(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                rerun_if_changed_tree(&path);
            } else {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}
