//! Links the kernel with its linker script (Linux's addresses: text at 0xffffffff81000000).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
    // A GNU build ID note (`.notes` in linker.ld), so debuggers can tell which vmlinux a vmcore
    // belongs to.
    println!("cargo:rustc-link-arg-bins=--build-id=sha1");
    println!("cargo:rerun-if-changed=linker.ld");
}
