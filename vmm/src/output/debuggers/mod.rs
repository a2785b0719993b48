//! Debugger helpers written beside `vmlinux` in a run directory: gdb's `vmlinux-gdb.py` (gdb
//! auto-loads `<objfile>-gdb.py` from a directory in its auto-load safe path) and drgn's
//! `lockvmm_drgn.py`. The scripts' sources live next to this file.
use std::fmt::Write as _;
use std::path::Path;

use crate::image::dwarf::qualified_globals;
use crate::output::write_atomic;

/// gdb's name for the script of an objfile named `vmlinux`.
pub const GDB_SCRIPT_NAME: &str = "vmlinux-gdb.py";
/// The drgn helpers' file name (a Python module name).
pub const DRGN_SCRIPT_NAME: &str = "lockvmm_drgn.py";

/// `lx-dmesg`, `lx-ps`, `lx-lockowner`, `$lx_per_cpu`, short names for globals, backtraces
/// with Linux names (see the script's header).
pub const GDB_SCRIPT: &str = include_str!("vmlinux-gdb.py");
const DRGN_SCRIPT: &str = include_str!("lockvmm_drgn.py");
/// The line of the drgn script that the table of global names replaces.
const DRGN_GLOBALS_LINE: &str = "GLOBALS = {}  # lockvmm writes the table here";

/// The drgn helpers for the kernel `elf`: the script with its table of the kernel's globals
/// (short name → qualified name; names declared in two namespaces are left out).
pub fn drgn_script(elf: &[u8]) -> String {
    let names = qualified_globals(elf);
    let mut table = String::from("GLOBALS = {\n");
    for (i, (short, full)) in names.iter().enumerate() {
        let ambiguous =
            i > 0 && names[i - 1].0 == *short || names.get(i + 1).is_some_and(|n| n.0 == *short);
        if !ambiguous {
            let _ = writeln!(table, "    {short:?}: {full:?},");
        }
    }
    table.push('}');
    DRGN_SCRIPT.replacen(DRGN_GLOBALS_LINE, &table, 1)
}

/// Writes both scripts into `dir` (atomically, as every run file).
pub fn write_scripts(dir: &Path, elf: &[u8]) -> std::io::Result<()> {
    write_atomic(&dir.join(GDB_SCRIPT_NAME), GDB_SCRIPT.as_bytes())?;
    write_atomic(&dir.join(DRGN_SCRIPT_NAME), drgn_script(elf).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drgn_script_gets_the_table_of_globals() {
        assert!(DRGN_SCRIPT.contains(DRGN_GLOBALS_LINE));
        let s = drgn_script(crate::image::loader::EMBEDDED_GUEST);
        assert!(!s.contains(DRGN_GLOBALS_LINE));
        assert!(
            s.contains(r#"    "runqueues": "guest::kernel::sched::core::runqueues","#),
            "{s}"
        );
    }
}
