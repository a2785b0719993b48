# gdb helpers for a lockvmm guest kernel, after Linux's scripts/gdb (vmlinux-gdb.py).
#
# lockvmm writes this file beside `vmlinux` in every run directory; gdb loads it with the
# vmlinux when the directory is in its auto-load safe path:
#
#   gdb -iex 'add-auto-load-safe-path lockvmm-runs/lbr_gfp' \
#       lockvmm-runs/lbr_gfp/vmlinux lockvmm-runs/lbr_gfp/vmcore
#
# What it adds (gdb thread N is CPU N-1):
#   p runqueues[56].__lock   the kernel's globals by their Linux names (the guest's statics live in
#                            Rust namespaces; each gets a C macro, so the language is set to C)
#   lx-dmesg                 the kernel log (__log_buf)
#   lx-ps                    the tasks of task_pool
#   lx-lockowner ADDR        who holds a spinlock (the lab's locked byte is owner CPU + 1)
#   lx-cpu N                 switch to CPU N's thread
#   $lx_per_cpu("runqueues", 56), $lx_current(56)
#   bt                       Linux function names, the entry stubs named (they are signal frames
#                            in the CFI) and Rust's inlined library helpers (core::...) left out
#   print                    atomics and cells as their values, lock words with their owner
import bisect
import re
import struct

import gdb

try:
    from gdb.FrameDecorator import FrameDecorator
except ImportError:  # pragma: no cover - gdb without the Python frame API
    FrameDecorator = object

# The lab's lock word (lockvmm_abi::locking): bits 0-7 the owner CPU + 1, bit 8 pending,
# bits 16-17 the tail's MCS index, bits 18-31 the tail CPU + 1.
Q_LOCKED_MASK = 0xFF
Q_PENDING = 1 << 8
Q_TAIL_IDX_OFFSET = 16
Q_TAIL_CPU_OFFSET = 18
# The start of the kernel half of the address space.
KERNEL_SPACE = 0xFFFF800000000000

# Short name -> qualified name of every kernel global that has a Linux (unmangled) symbol.
GLOBALS = {}


def _qualified_globals():
    """Kernel globals from `info variables` (in C, which prints qualified names)."""
    text = gdb.execute("info variables -n", to_string=True)
    found = {}
    for line in text.splitlines():
        m = re.search(r"((?:[A-Za-z_]\w*::)+)([A-Za-z_]\w*)\s*(?:\[[^;]*)?;\s*$", line)
        if m and m.group(1).startswith("guest::"):
            found.setdefault(m.group(2), set()).add(m.group(1) + m.group(2))
    return found


def _has_linux_symbol(name):
    try:
        gdb.parse_and_eval("&'%s'" % name)
        return True
    except gdb.error:
        return False


def define_global_names():
    """`macro define runqueues 'guest::kernel::sched::core::runqueues'`, for each global whose
    short name is also an ELF symbol (the guest's #[no_mangle] statics: Linux's names) and is
    unambiguous. Macros expand only in C, so the language is set to C. A global whose
    qualified name is also a type's (`cpu_hw_events`) expands to `$lx_global("NAME")` instead:
    that evaluates, but ptype and sizeof see an int."""
    gdb.execute("set language c", to_string=True)
    for short, full in sorted(_qualified_globals().items()):
        if len(full) != 1 or not _has_linux_symbol(short):
            continue
        GLOBALS[short] = full.pop()
        quoted = "'%s'" % GLOBALS[short]
        try:
            gdb.parse_and_eval("&" + quoted)
        except gdb.error:
            quoted = '$lx_global("%s")' % short
        gdb.execute("macro define %s %s" % (short, quoted), to_string=True)


def kernel_global(name):
    """The variable (an lvalue) of a kernel global by its short name."""
    full = GLOBALS.get(name)
    sym = full and (gdb.lookup_global_symbol(full, gdb.SYMBOL_VAR_DOMAIN)
                    or gdb.lookup_static_symbol(full, gdb.SYMBOL_VAR_DOMAIN))
    if not sym:
        raise gdb.GdbError("no kernel global %s" % name)
    return sym.value()


class LxGlobal(gdb.Function):
    """A kernel global by its Linux name.

$lx_global("runqueues"): the variable guest::kernel::sched::core::runqueues. The short names
themselves (`p runqueues[56]`) are macros for this."""

    def __init__(self):
        super().__init__("lx_global")

    def invoke(self, name):
        return kernel_global(name.string())


def _short(name):
    """`guest::kernel::sched::core::scheduler_tick` -> `scheduler_tick` (generics dropped)."""
    depth, base = 0, []
    for ch in name:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif depth == 0:
            base.append(ch)
    return "".join(base).split("::")[-1] or name


def _symbol_at(pc):
    out = gdb.execute("info symbol %#x" % pc, to_string=True)
    m = re.match(r"(\S+)( \+ \d+)? in section", out)
    return m.group(1) if m else None


def _symbol_size(pc):
    # The outermost function block: an inlined function's block (the ticket lock's loop
    # inlined into `_raw_spin_lock_irqsave`) also names a function, but %pS names the symbol.
    block, found = gdb.block_for_pc(pc), None
    while block is not None and not (block.is_static or block.is_global):
        if block.function is not None:
            found = block
        block = block.superblock
    if found is not None:
        return (found.start, found.end - found.start)
    # An assembly entry stub has no DWARF block: its ELF symbol's value and size.
    return _elf_symbol(pc)


_ELF_SYMS = None


def _elf_symbols():
    """(value, size) of the ELF's sized function symbols, sorted (read once)."""
    global _ELF_SYMS
    if _ELF_SYMS is None:
        _ELF_SYMS = []
        try:
            with open(gdb.objfiles()[0].filename, "rb") as f:
                elf = f.read()
            shoff, = struct.unpack_from("<Q", elf, 0x28)
            shentsize, shnum = struct.unpack_from("<HH", elf, 0x3a)
            for i in range(shnum):
                sh = shoff + i * shentsize
                sh_type, = struct.unpack_from("<I", elf, sh + 4)
                if sh_type != 2:  # SHT_SYMTAB
                    continue
                off, size = struct.unpack_from("<QQ", elf, sh + 0x18)
                for at in range(off, off + size, 24):
                    info = elf[at + 4]
                    value, sz = struct.unpack_from("<QQ", elf, at + 8)
                    if info & 0xf == 2 and value and sz:  # STT_FUNC
                        _ELF_SYMS.append((value, sz))
            _ELF_SYMS.sort()
        except (OSError, IndexError, struct.error):
            pass
    return _ELF_SYMS


def _elf_symbol(pc):
    syms = _elf_symbols()
    i = bisect.bisect_right(syms, (pc, float("inf"))) - 1
    if i >= 0 and syms[i][0] <= pc < syms[i][0] + syms[i][1]:
        return syms[i]
    return (None, None)


# --- per-CPU data -------------------------------------------------------------------------


def nr_cpus():
    return len(gdb.selected_inferior().threads())


def per_cpu(name, cpu):
    """Linux's per_cpu(): an element of a per-CPU array (`runqueues`, `timer_bases`) or a
    field of the CPU's `per_cpu_area` entry (`current_task`, `preempt_count`)."""
    cpu = int(cpu)
    if name in GLOBALS:
        var = kernel_global(name)
        if var.type.strip_typedefs().code != gdb.TYPE_CODE_ARRAY:
            raise gdb.GdbError("%s is not a per-CPU array" % name)
        lo, hi = var.type.strip_typedefs().range()
        if not lo <= cpu <= hi:
            raise gdb.GdbError("CPU %d is out of range (0..%d)" % (cpu, hi))
        return var[cpu]
    area = kernel_global("per_cpu_area")[cpu]
    try:
        return area[name]
    except gdb.error:
        raise gdb.GdbError("no per-CPU variable %s" % name)


def current_task(cpu):
    addr = int(_int_value(per_cpu("current_task", cpu)))
    return task_at(addr)


def _int_value(v):
    """The integer inside an atomic or cell (`AtomicU64 { v: UnsafeCell { value } }`)."""
    while v.type.strip_typedefs().code == gdb.TYPE_CODE_STRUCT:
        fields = v.type.strip_typedefs().fields()
        if not fields:
            break
        v = v[fields[0].name]
    return int(v)


def task_type():
    return kernel_global("task_pool").type.strip_typedefs().target()


def task_at(addr):
    return gdb.Value(addr).cast(task_type().pointer()).dereference()


def task_comm(task):
    comm = task["comm"]
    raw = bytes(gdb.selected_inferior().read_memory(comm.address, comm.type.sizeof))
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


class LxPerCpu(gdb.Function):
    """Per-CPU variable of a CPU.

$lx_per_cpu("VAR", CPU): `runqueues[CPU]` for a per-CPU array, else the field VAR of
per_cpu_area[CPU] (current_task, preempt_count, ...)."""

    def __init__(self):
        super().__init__("lx_per_cpu")

    def invoke(self, var, cpu):
        return per_cpu(var.string(), int(cpu))


class LxCurrent(gdb.Function):
    """The task_struct running on a CPU.

$lx_current(CPU): per_cpu_area[CPU].current_task, as a task_struct."""

    def __init__(self):
        super().__init__("lx_current")

    def invoke(self, cpu=None):
        if cpu is None:
            cpu = gdb.selected_thread().num - 1
        return current_task(int(cpu))


# --- commands -----------------------------------------------------------------------------


class LxDmesg(gdb.Command):
    """Print the kernel log buffer (__log_buf)."""

    def __init__(self):
        super().__init__("lx-dmesg", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        buf = kernel_global("__log_buf")
        count = buf.type.strip_typedefs().range()[1] + 1
        seq = _int_value(kernel_global("log_next_seq"))
        inf = gdb.selected_inferior()
        for s in range(max(0, seq - count), seq):
            rec = buf[s % count]
            ts = int(rec["ts_nsec"])
            n = min(int(rec["len"]), rec["text"].type.sizeof)
            text = bytes(inf.read_memory(rec["text"].address, n)).decode("utf-8", "replace")
            gdb.write("[%5d.%06d] %s\n" % (ts // 1000000000, ts % 1000000000 // 1000,
                                           _annotate(text)))


def _annotate(line):
    """`[<ffffffff81005bf0>]` -> `... native_queued_spin_lock_slowpath+0x1f0/0x2a0` (the guest
    has no kallsyms; a return address, so the symbol of addr - 1)."""
    m = re.search(r"\[<([0-9a-f]{16})>\]", line)
    if not m:
        return line
    addr = int(m.group(1), 16)
    name = _symbol_at(addr - 1)
    start, size = _symbol_size(addr - 1)
    if name is None or start is None:
        return line
    return "%s %s+%#x/%#x" % (line.rstrip(), name, addr - start, size)


class LxPs(gdb.Command):
    """Dump the guest's tasks (task_pool): TASK PID CPU ST COMM; '>' marks a running task."""

    def __init__(self):
        super().__init__("lx-ps", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        pool = kernel_global("task_pool")
        count = pool.type.strip_typedefs().range()[1] + 1
        cpus = nr_cpus()
        running = set()
        for c in range(cpus):
            try:
                running.add(int(current_task(c).address))
            except gdb.error:
                pass
        states = {0: "RU", 1: "IN", 2: "UN", 64: "DE"}  # lockvmm_abi::task::TaskState
        gdb.write("%18s %7s %4s %2s  %s\n" % ("TASK", "PID", "CPU", "ST", "COMM"))
        for i in range(count):
            t = pool[i]
            state = _int_value(t["state"])
            pid = int(t["pid"])
            if state == 64 or (pid == 0 and i >= cpus):
                continue
            mark = ">" if int(t.address) in running else " "
            gdb.write("%s%#17x %7d %4d %2s  %s\n" % (mark, int(t.address), pid, int(t["cpu"]),
                                                   states.get(state, "??"), task_comm(t)))


class LxLockowner(gdb.Command):
    """Who holds a spinlock: lx-lockowner ADDR (an address or an expression such as
&runqueues[56].__lock). The lab's locked byte holds the owner CPU + 1."""

    def __init__(self):
        super().__init__("lx-lockowner", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        if not arg.strip():
            raise gdb.GdbError("usage: lx-lockowner ADDR")
        addr = int(gdb.parse_and_eval(arg).cast(gdb.lookup_type("unsigned long")))
        word = int.from_bytes(bytes(gdb.selected_inferior().read_memory(addr, 4)), "little")
        where = _describe(addr)
        gdb.write("%s%#x: lock word %#010x\n" % (where, addr, word))
        locked = word & Q_LOCKED_MASK
        if locked:
            cpu = locked - 1
            gdb.write("  locked by CPU %d%s\n" % (cpu, _task_on(cpu)))
        else:
            gdb.write("  unlocked\n")
        if word & Q_PENDING:
            gdb.write("  pending: a waiter spins on the locked byte\n")
        tail = word >> Q_TAIL_CPU_OFFSET
        if tail:
            idx = (word >> Q_TAIL_IDX_OFFSET) & 3
            gdb.write("  queue tail: CPU %d (MCS node %d)%s\n" % (tail - 1, idx, _task_on(tail - 1)))


def _describe(addr):
    """`runqueues[56].__lock at `: the global an address is in, its element and member."""
    for short in GLOBALS:
        var = kernel_global(short)
        base = int(var.address)
        if not base <= addr < base + var.type.sizeof:
            continue
        expr, ty, off = short, var.type.strip_typedefs(), addr - base
        for _ in range(8):
            if ty.code == gdb.TYPE_CODE_ARRAY and ty.target().sizeof:
                esz = ty.target().sizeof
                expr += "[%d]" % (off // esz)
                ty, off = ty.target().strip_typedefs(), off % esz
            elif ty.code == gdb.TYPE_CODE_STRUCT and not _is_leaf(ty.tag or ""):
                inner = [f for f in ty.fields() if f.bitpos // 8 <= off < f.bitpos // 8 + f.type.sizeof]
                if not inner:
                    break
                f = inner[-1]
                expr += "." + f.name
                ty, off = f.type.strip_typedefs(), off - f.bitpos // 8
            else:
                break
        return "%s%s at " % (expr, "+%d" % off if off else "")
    name = _symbol_at(addr)
    return "%s at " % name if name else ""


def _is_leaf(tag):
    """Types whose insides are not named: Rust's library types and the lock types
    (`runqueues[56].__lock` is the lock, not its first member)."""
    return tag.startswith(LIBRARY_PREFIXES) or tag.endswith(
        ("::raw_spinlock_t", "::qspinlock", "::mcs_spinlock"))


def _task_on(cpu):
    try:
        t = current_task(cpu)
        return " (%s, PID %d)" % (task_comm(t), int(t["pid"]))
    except (gdb.error, gdb.GdbError):
        return ""


class LxCpu(gdb.Command):
    """Switch to CPU N's thread (gdb thread N+1): lx-cpu N."""

    def __init__(self):
        super().__init__("lx-cpu", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        gdb.execute("thread %d" % (int(arg, 0) + 1), from_tty)


# --- backtraces ---------------------------------------------------------------------------

LIBRARY_PREFIXES = ("core::", "alloc::", "compiler_builtins::")


class KernelFrame(FrameDecorator):
    def __init__(self, fobj):
        super().__init__(fobj)
        self._fobj = fobj

    def function(self):
        frame = self._fobj.inferior_frame()
        if frame.type() == gdb.SIGTRAMP_FRAME:
            # An entry stub: name it (gdb says "<signal handler called>").
            return _symbol_at(frame.pc()) or super().function()
        name = frame.name()
        return _short(name) if name else super().function()


class KernelFrameFilter:
    """Linux names in backtraces; Rust's inlined library helpers left out."""

    def __init__(self):
        self.name = "lockvmm"
        self.priority = 100
        self.enabled = True
        gdb.frame_filters[self.name] = self

    def filter(self, frames):
        for f in frames:
            frame = f.inferior_frame()
            name = frame.name() or ""
            if frame.type() == gdb.INLINE_FRAME and name.startswith(LIBRARY_PREFIXES):
                continue
            yield KernelFrame(f)


# --- values -------------------------------------------------------------------------------


class IntPrinter:
    """An atomic or a cell, printed as the value it holds."""

    def __init__(self, val):
        self.val = val

    def to_string(self):
        v = _int_value(self.val)
        # A kernel address reads better in hex, as crash prints pointers.
        return "%#x" % v if v >= KERNEL_SPACE else str(v)


class LockPrinter:
    """A qspinlock word with its owner and queue."""

    def __init__(self, val):
        self.val = val

    def to_string(self):
        word = _int_value(self.val)
        locked = word & Q_LOCKED_MASK
        state = "locked by CPU %d" % (locked - 1) if locked else "unlocked"
        if word >> Q_TAIL_CPU_OFFSET:
            state += ", queue tail CPU %d" % ((word >> Q_TAIL_CPU_OFFSET) - 1)
        return "%#010x (%s)" % (word, state)


def lookup_printer(val):
    t = val.type.strip_typedefs()
    if t.code != gdb.TYPE_CODE_STRUCT or t.tag is None:
        return None
    tag = t.tag
    if tag.endswith("::qspinlock"):
        return LockPrinter(val)
    if re.match(r"core::sync::atomic::Atomic(U|I)(8|16|32|64|size)$|core::sync::atomic::AtomicBool$",
                tag) or tag.startswith("core::cell::UnsafeCell<"):
        fields = t.fields()
        if fields and fields[0].type.strip_typedefs().code in (gdb.TYPE_CODE_INT,
                                                               gdb.TYPE_CODE_BOOL,
                                                               gdb.TYPE_CODE_STRUCT):
            return IntPrinter(val)
    return None


def register():
    LxGlobal()
    define_global_names()
    LxPerCpu()
    LxCurrent()
    LxDmesg()
    LxPs()
    LxLockowner()
    LxCpu()
    KernelFrameFilter()
    gdb.current_objfile().pretty_printers.append(lookup_printer)


register()
