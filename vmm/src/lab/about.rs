//! What lockvmm says about itself: `--version` with the guest it embeds (the version string the
//! guest announces at boot, its GNU build ID, a digest of the image), and the shell completions
//! and man page generated from the CLI definition (`clap_complete`, `clap_mangen`: the
//! definition is the one source, so they cannot drift from the flags).
use std::sync::OnceLock;

use crate::image::loader::{EMBEDDED_GUEST, digest};
use crate::output::vmcore::build_id_hex;

/// `0.1.0 (guest: Linux version 6.6.0-lockvmm (lockvmm guest 0.1.0), GNU build ID 5e…,
/// image 0123456789abcdef)`.
pub fn version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        format!(
            "{} (guest: {}, GNU build ID {}, image {})",
            env!("CARGO_PKG_VERSION"),
            guest_banner(EMBEDDED_GUEST).unwrap_or_else(|| "no version string".into()),
            build_id_hex(EMBEDDED_GUEST).unwrap_or_else(|| "none".into()),
            digest(EMBEDDED_GUEST)
        )
    })
}

/// The version the guest kernel announces on its console (`Linux version 6.6.0-lockvmm
/// (lockvmm guest 0.1.0)`, Linux's `linux_banner` up to the compiler), read from its image:
/// its `linux_proc_banner`, with the default version's release for `%s`.
pub fn guest_banner(elf: &[u8]) -> Option<String> {
    const HEAD: &[u8] = b"Linux version ";
    let at = elf.windows(HEAD.len()).position(|w| w == HEAD)?;
    let rest = &elf[at..elf.len().min(at + 160)];
    let end = rest.iter().position(|&b| b == b')')?;
    let text = std::str::from_utf8(&rest[..=end]).ok()?.replacen(
        "%s",
        lockvmm_abi::knob::KernelVersion::V6_6.release(),
        1,
    );
    text.chars()
        .all(|c| c.is_ascii_graphic() || c == ' ')
        .then(|| text.to_string())
}

/// The shell completion script for `shell`.
pub fn completions(mut cmd: clap::Command, shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out
}

/// The man page (roff): `lockvmm(1)` with every subcommand's synopsis and options.
pub fn man(cmd: clap::Command) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let cmd = cmd.version(version());
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    // clap_mangen renders one command: the subcommands' own options follow as sections.
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("{}-{}", cmd.get_name(), sub.get_name());
        let sub = sub.clone().name(name).version(version());
        clap_mangen::Man::new(sub).render(&mut out)?;
    }
    Ok(out)
}
