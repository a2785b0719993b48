//! `lockvmm bench qemu`: lockvmm's 64-vCPU boot against QEMU's microvm with as many vCPUs,
//! measured pair by pair (each pair run back to back, alternating which goes first, so that a
//! busy host slows both alike).
//!
//! QEMU boots a minimal PVH guest this bench writes: an ELF whose `XEN_ELFNOTE_PHYS32_ENTRY`
//! note points at five instructions that write one byte to the serial port and halt. QEMU's
//! time is from spawn to that byte on its stdout: creating its machine and vCPUs, its
//! firmware, loading the ELF and one guest instruction stream, while its other 63 vCPUs never
//! start. lockvmm's is from spawn to all 64 CPUs online (each ran its bring-up and printed its
//! line), as `bench boot` measures it.
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

use super::{BootBenchArgs, sample};

#[derive(clap::Args, Debug)]
pub struct QemuBenchArgs {
    /// Pairs of runs.
    #[arg(long, default_value_t = 10)]
    pub pairs: usize,
    /// vCPUs of both machines.
    #[arg(long, default_value_t = 64)]
    pub vcpus: usize,
    /// The QEMU binary.
    #[arg(long, default_value = "qemu-system-x86_64")]
    pub qemu: PathBuf,
}

/// Physical address the PVH guest is loaded at (1 MiB, as Linux's kernel).
const LOAD_PADDR: u64 = 0x10_0000;
/// Xen's `XEN_ELFNOTE_PHYS32_ENTRY` (xen/include/public/elfnote.h): the 32-bit PVH entry point.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// The PVH guest: a 64-bit ELF (as a vmlinux) with one loadable segment holding the note and
/// the code, entered in 32-bit protected mode with paging off.
pub fn pvh_elf() -> Vec<u8> {
    const EHDR: usize = 64;
    const PHDR: usize = 56;
    let note_off = EHDR + 2 * PHDR;
    // namesz, descsz, type, "Xen\0", then the 8-byte entry address (Linux's `_ASM_PTR`).
    let note_len = 12 + 4 + 8;
    let code_off = note_off + note_len;
    let entry = LOAD_PADDR + code_off as u64;
    let code: [u8; 11] = [
        0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8 (COM1)
        0xb0, b'L', // mov al, 'L'
        0xee, // out dx, al
        0xfa, // cli
        0xf4, // 1: hlt
        0xeb, 0xfd, // jmp 1b
    ];
    let total = code_off + code.len();
    let mut f = Vec::with_capacity(total);
    // ELF header (ELFCLASS64, little endian, ET_EXEC, EM_X86_64).
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&2u16.to_le_bytes()); // e_type
    f.extend_from_slice(&62u16.to_le_bytes()); // e_machine
    f.extend_from_slice(&1u32.to_le_bytes()); // e_version
    f.extend_from_slice(&entry.to_le_bytes()); // e_entry
    f.extend_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for h in [EHDR as u16, PHDR as u16, 2, 64, 0, 0] {
        // e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
        f.extend_from_slice(&h.to_le_bytes());
    }
    let phdr = |f: &mut Vec<u8>, kind: u32, flags: u32, off: usize, len: usize, align: u64| {
        f.extend_from_slice(&kind.to_le_bytes());
        f.extend_from_slice(&flags.to_le_bytes());
        f.extend_from_slice(&(off as u64).to_le_bytes());
        let addr = LOAD_PADDR + off as u64;
        f.extend_from_slice(&addr.to_le_bytes()); // p_vaddr
        f.extend_from_slice(&addr.to_le_bytes()); // p_paddr
        f.extend_from_slice(&(len as u64).to_le_bytes()); // p_filesz
        f.extend_from_slice(&(len as u64).to_le_bytes()); // p_memsz
        f.extend_from_slice(&align.to_le_bytes());
    };
    phdr(&mut f, 1, 5, 0, total, 0x1000); // PT_LOAD, R+X, the whole file
    phdr(&mut f, 4, 4, note_off, note_len, 4); // PT_NOTE
    f.extend_from_slice(&4u32.to_le_bytes());
    f.extend_from_slice(&8u32.to_le_bytes());
    f.extend_from_slice(&XEN_ELFNOTE_PHYS32_ENTRY.to_le_bytes());
    f.extend_from_slice(b"Xen\0");
    f.extend_from_slice(&entry.to_le_bytes());
    f.extend_from_slice(&code);
    debug_assert_eq!(f.len(), total);
    f
}

/// Milliseconds from spawning QEMU to the guest's first serial byte on its stdout.
fn qemu_first_byte(args: &QemuBenchArgs, elf: &Path) -> anyhow::Result<f64> {
    let t = Instant::now();
    let mut child = Command::new(&args.qemu)
        .args(["-M", "microvm", "-accel", "kvm", "-m", "256", "-smp"])
        .arg(args.vcpus.to_string())
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-serial", "stdio", "-kernel"])
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", args.qemu.display()))?;
    let mut byte = [0u8; 1];
    let got = child
        .stdout
        .take()
        .map(|mut out| out.read(&mut byte))
        .transpose()?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let _ = child.kill();
    let status = child.wait_with_output()?;
    if got != Some(1) || byte[0] != b'L' {
        bail!(
            "QEMU printed no byte: {}",
            String::from_utf8_lossy(&status.stderr).trim()
        );
    }
    Ok(ms)
}

/// Pairs of (lockvmm all-online, QEMU first byte), and their ratio's median and spread.
pub fn qemu(args: &QemuBenchArgs) -> anyhow::Result<()> {
    if args.pairs == 0 {
        bail!("--pairs: at least one pair is needed");
    }
    let exe = std::env::current_exe().context("cannot find the lockvmm executable")?;
    let dir = std::env::temp_dir().join(format!("lockvmm-bench-qemu-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let elf = dir.join("pvh.elf");
    std::fs::write(&elf, pvh_elf())?;
    let boot = BootBenchArgs {
        runs: 1,
        vcpus: vec![args.vcpus],
        scenario: "scenarios/boot.toml".into(),
    };
    let out = dir.join("run");
    let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..args.pairs {
        let (l, q) = if i % 2 == 0 {
            let l = sample(&exe, &boot, args.vcpus, &out)?.online_ms;
            (l, qemu_first_byte(args, &elf)?)
        } else {
            let q = qemu_first_byte(args, &elf)?;
            (sample(&exe, &boot, args.vcpus, &out)?.online_ms, q)
        };
        ours.push(l);
        theirs.push(q);
        ratios.push(l / q);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let stat = |v: &mut Vec<f64>, digits: usize| {
        v.sort_by(f64::total_cmp);
        let (med, lo, hi) = (v[v.len() / 2], v[0], v[v.len() - 1]);
        format!("{med:.digits$} [{lo:.digits$}–{hi:.digits$}]")
    };
    println!(
        "lockvmm bench qemu: {} pairs, {} vCPUs, alternating which runs first",
        args.pairs, args.vcpus
    );
    println!(
        "| lockvmm, all CPUs online (ms) | QEMU microvm, first serial byte (ms) | lockvmm / QEMU, per pair |"
    );
    println!("|---:|---:|---:|");
    println!(
        "| {} | {} | {} |",
        stat(&mut ours, 1),
        stat(&mut theirs, 1),
        stat(&mut ratios, 2)
    );
    Ok(())
}

/// Whether a QEMU binary answers `--version` (`bench all` skips the comparison without one).
pub fn qemu_installed(qemu: &Path) -> bool {
    Command::new(qemu)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use object::{Object, ObjectSegment};

    use super::*;

    /// The note QEMU looks for names an entry inside the loaded segment, at the code.
    #[test]
    fn pvh_note_points_at_the_code() {
        let elf = pvh_elf();
        let file = object::File::parse(elf.as_slice()).expect("an ELF object parses it");
        assert_eq!(file.architecture(), object::Architecture::X86_64);
        let seg = file.segments().next().expect("one loadable segment");
        let (start, len) = (seg.address(), seg.size());
        let note = elf
            .windows(4)
            .position(|w| w == b"Xen\0")
            .expect("the Xen note's name");
        let entry = u64::from_le_bytes(elf[note + 4..note + 12].try_into().unwrap());
        assert!(
            start <= entry && entry < start + len,
            "{entry:#x} outside the segment"
        );
        assert_eq!(
            u32::from_le_bytes(elf[note - 4..note].try_into().unwrap()),
            XEN_ELFNOTE_PHYS32_ENTRY
        );
        let code = &elf[(entry - LOAD_PADDR) as usize..];
        assert_eq!(&code[..4], &[0x66, 0xba, 0xf8, 0x03], "mov dx, 0x3f8 first");
    }
}
