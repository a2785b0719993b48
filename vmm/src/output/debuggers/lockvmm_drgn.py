"""drgn helpers for a lockvmm vmcore, written beside it in every run directory.

    drgn -c vmcore -s vmlinux lockvmm_drgn.py bt 56     # CPU 56's stack trace
    drgn -c vmcore -s vmlinux lockvmm_drgn.py regs 56   # CPU 56's registers
    drgn -c vmcore -s vmlinux                            # then, at the >>> prompt:
    >>> exec(open("lockvmm_drgn.py").read())
    >>> prog["runqueues"][56].nr_running
    >>> cpu_stack_trace(56)

The vmcore carries a VMCOREINFO note, so drgn opens it as a Linux kernel core with this vmlinux:
globals, types and memory work. drgn's threads, though, are Linux tasks: `prog.threads()`,
`prog.thread()` and `prog.crashed_thread()` need Linux's task list (`init_task`,
`init_pid_ns`), which this kernel does not have, and so do drgn's Linux helpers. These helpers
fill the gap:

- `cpu_regs(cpu)`: the registers of a CPU, from the vmcore's NT_PRSTATUS notes (what gdb shows
  as thread cpu+1; for a CPU caught in the NMI that reported it, the context the NMI
  interrupted).
- `cpu_stack_trace(cpu)`: drgn's own unwinder from those registers, through the DWARF CFI of the
  entry stubs (NMI, IRQ and exception frames).
- short names for the kernel's globals: the guest's statics live in Rust namespaces
  (`guest::kernel::sched::core::runqueues`); an object finder makes `prog["runqueues"]` work.

The registers come from the file `vmcore` beside this script (drgn does not tell a script which
core it opened); set LOCKVMM_VMCORE to read another, or pass the path to
prstatus_registers().
"""
import os
import re
import struct
import sys

from drgn import Object, TypeMember

# NT_PRSTATUS (x86_64): the registers (user_regs_struct) start at byte 112.
NT_PRSTATUS = 1
PR_REG_OFFSET = 112
# user_regs_struct, in order; the first 21 are also struct pt_regs, in Linux's names.
USER_REGS = ["r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx",
             "dx", "si", "di", "orig_ax", "ip", "cs", "flags", "sp", "ss", "fs_base", "gs_base",
             "ds", "es", "fs", "gs"]
PT_REGS = USER_REGS[:21]


def _default_vmcore():
    here = globals().get("__file__")
    base = os.path.dirname(os.path.abspath(here)) if here else os.getcwd()
    return os.environ.get("LOCKVMM_VMCORE") or os.path.join(base, "vmcore")


def prstatus_registers(path=None):
    """Every NT_PRSTATUS note of an ELF core, in order (CPU 0 first): {name: value}."""
    with open(path or _default_vmcore(), "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError("not a 64-bit ELF core")
    phoff, = struct.unpack_from("<Q", data, 32)
    phnum, = struct.unpack_from("<H", data, 56)
    cpus = []
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + 56 * i)
        if p_type != 4:  # PT_NOTE
            continue
        at, end = p_offset, p_offset + p_filesz
        while at + 12 <= end:
            namesz, descsz, n_type = struct.unpack_from("<III", data, at)
            name = data[at + 12:at + 12 + namesz]
            desc = at + 12 + (namesz + 3) // 4 * 4
            if name == b"CORE\0" and n_type == NT_PRSTATUS:
                values = struct.unpack_from("<27Q", data, desc + PR_REG_OFFSET)
                cpus.append(dict(zip(USER_REGS, values)))
            at = desc + (descsz + 3) // 4 * 4
    return cpus


_REGS = None


def cpu_regs(cpu):
    """The registers of CPU `cpu` at the snapshot (Linux's pt_regs names: ip, sp, bp, ax...)."""
    global _REGS
    if _REGS is None:
        _REGS = prstatus_registers()
    if not 0 <= cpu < len(_REGS):
        raise IndexError("CPU %d: the vmcore has CPUs 0 to %d" % (cpu, len(_REGS) - 1))
    return dict(_REGS[cpu])


def _pt_regs_type():
    u64 = prog.int_type("unsigned long", 8, False)
    return prog.struct_type("pt_regs", 8 * len(PT_REGS),
                            [TypeMember(u64, name, 64 * i) for i, name in enumerate(PT_REGS)])


def cpu_pt_regs(cpu):
    """CPU `cpu`'s registers as a `struct pt_regs` value (what prog.stack_trace() takes)."""
    regs = cpu_regs(cpu)
    return Object(prog, _pt_regs_type(), value={n: regs[n] for n in PT_REGS})


def cpu_stack_trace(cpu):
    """drgn's stack trace of CPU `cpu`, from its registers."""
    return prog.stack_trace(cpu_pt_regs(cpu))


# --- short names for the kernel's globals ----------------------------------------------------

# Short name -> qualified name of the kernel's globals, from the vmlinux's DWARF.
GLOBALS = {}  # lockvmm writes the table here

_NAMESPACES = None


def _demangle_path(sym):
    """`_ZN5guest6kernel5sched4core8schedule17h0123456789abcdefE` -> `guest::kernel::sched::core`
    (Rust's legacy mangling; the function's own name and hash dropped)."""
    if not sym.startswith("_ZN"):
        return None
    parts, i = [], 3
    while i < len(sym) and sym[i].isdigit():
        j = i
        while sym[j].isdigit():
            j += 1
        n = int(sym[i:j])
        parts.append(sym[j:j + n])
        i = j + n
    return "::".join(parts[:-2]) if len(parts) > 2 and parts[0] == "guest" else None


def _namespaces():
    global _NAMESPACES
    if _NAMESPACES is None:
        found = {_demangle_path(s.name) for s in prog.symbols()}
        _NAMESPACES = sorted(n for n in found if n)
    return _NAMESPACES


def _candidates(name):
    if name in GLOBALS:
        yield GLOBALS[name]
    for ns in _namespaces():
        yield ns + "::" + name


def kernel_global(name):
    """A kernel global by its Linux name (`runqueues`)."""
    for full in _candidates(name):
        try:
            return prog.object(full)
        except LookupError:
            continue
    raise LookupError("no kernel global %s" % name)


def _find_short_name(prog_, name, flags, filename):
    if "::" in name or not re.match(r"^[A-Za-z_]\w*$", name):
        return None
    for full in _candidates(name):
        try:
            return prog_.object(full, flags, filename)
        except LookupError:
            continue
    return None


prog.add_object_finder(_find_short_name)


def _main(argv):
    if len(argv) == 3 and argv[1] in ("bt", "regs"):
        cpu = int(argv[2])
        if argv[1] == "bt":
            print(cpu_stack_trace(cpu))
        else:
            for name, value in cpu_regs(cpu).items():
                print("%-8s %016x" % (name.upper(), value))
    elif len(argv) > 1:
        sys.exit("usage: drgn -c vmcore -s vmlinux lockvmm_drgn.py [bt CPU | regs CPU]")


# Run as drgn's script (not exec'd from another one): the command line is ours.
if __name__ == "__main__" and os.path.basename(sys.argv[0]) == "lockvmm_drgn.py":
    _main(sys.argv)
