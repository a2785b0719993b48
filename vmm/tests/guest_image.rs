//! The guest kernel must contain no SSE/AVX: this host's KVM emulates ring-0 code and fails on
//! those instructions (KVM_EXIT_INTERNAL_ERROR). vmm/build.rs refuses such a build too; this
//! test keeps the check even where the build could not run objdump.
use std::process::Command;

#[test]
fn guest_has_no_simd_instructions() {
    let elf = lockvmm::image::loader::EMBEDDED_GUEST_PATH;
    let out = Command::new("objdump")
        .arg("-d")
        .arg(elf)
        .output()
        .expect("objdump (binutils) is required");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().count() > 1000,
        "objdump printed too little to judge"
    );
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("%xmm") || l.contains("%ymm"))
        .collect();
    assert!(
        bad.is_empty(),
        "{} SSE/AVX instructions, e.g. {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
}

#[test]
fn guest_is_a_static_executable_at_linux_addresses() {
    let elf = lockvmm::image::loader::KernelImage::open(None).unwrap();
    assert_eq!(
        elf.entry_bsp, 0xffff_ffff_8100_0000,
        "startup_64 at __START_KERNEL_map + 16 MiB"
    );
    assert_eq!(&elf.elf[16..18], &[2, 0], "ET_EXEC");
}

/// Every name the host's unwinder and lock analysis look up in the guest, as `lockvmm_abi`
/// defines them, is a symbol of the built guest: renaming one on either side fails here.
#[test]
fn the_guest_has_every_symbol_the_abi_names() {
    let k = lockvmm::image::KernelImage::open(None).unwrap();
    let names = lockvmm_abi::entry::IRQ_STUBS
        .iter()
        .chain(lockvmm_abi::entry::EXCEPTION_STUBS)
        .chain(&[
            lockvmm_abi::stacks::EXCEPTION_STACKS_SYMBOL,
            lockvmm_abi::stacks::IRQ_STACK_SYMBOL,
            lockvmm_abi::stacks::INIT_STACKS_SYMBOL,
            lockvmm_abi::stacks::TASK_STACKS_SYMBOL,
            lockvmm_abi::locking::SPINNING_ON_SYMBOL,
        ]);
    for name in names {
        assert!(
            k.symbols.get(name).is_some(),
            "the guest has no symbol {name}"
        );
    }
    // The spinning-on table has a slot per CPU and lock context.
    let table = k
        .symbols
        .get(lockvmm_abi::locking::SPINNING_ON_SYMBOL)
        .unwrap();
    assert_eq!(
        table.size as usize,
        lockvmm_abi::NR_CPUS * lockvmm_abi::locking::NR_LOCK_CONTEXTS * 8
    );
}
