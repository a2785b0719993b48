//! `help` and `help CMD`, in crash's layout (help.c): NAME, SYNOPSIS, DESCRIPTION.

/// (name, one line, synopsis, description) of every command.
const COMMANDS: &[(&str, &str, &str, &str)] = &[
    (
        "bt",
        "backtrace",
        "bt [-l] [-f|-F] [-a [--idle] [-n idle] | -c CPU[S] | -p | CPU]",
        "Display the kernel stack backtrace of the report's CPU, of one CPU, or of every CPU:\n\
         frames, the contexts interrupts and exceptions saved ([exception RIP: ...]) and the\n\
         stacks crossed (--- <IRQ stack> ---).\n\
         \x20      -a  every CPU that is not idle (as crash's -a -n idle).\n\
         \x20  --idle  with -a: the idle CPUs too.\n\
         \x20 -n idle  accepted (crash's filter; -a applies it already).\n\
         \x20  -c cpu  one or more CPUs: \"3\", \"1,8,9\", \"1-23\", \"1,8,9-14\".\n\
         \x20      -p  the CPU the report is about (the panic or lockup CPU).\n\
         \x20      -l  the source file and line of each frame.\n\
         \x20      -f  all stack data in each frame, two words a line.\n\
         \x20      -F  as -f, with the words that are kernel symbols shown by name.\n\
         \x20     CPU  a bare number is a CPU (use foreach for tasks).",
    ),
    (
        "foreach",
        "display command data for multiple tasks",
        "foreach [RU|IN|UN|PID|COMM] bt [-l] [-f|-F]",
        "Run bt for every task of the pool (as ps lists them), or for the tasks in a state,\n\
         with a PID, or with a name. A running task's stack is its CPU's; a switched-out\n\
         task's starts at the frame __switch_to_asm left.",
    ),
    (
        "dis",
        "disassemble",
        "dis [-l] [-r] SYMBOL|SYMBOL+OFF|ADDR [COUNT]",
        "Disassemble kernel code from the vmcore's memory (AT&T syntax, as gdb). A text\n\
         symbol alone disassembles the whole function; an address, COUNT instructions\n\
         (default 1). Branch targets and RIP-relative operands are named.\n\
         \x20      -l  the source file and line before the instructions of each line.\n\
         \x20      -r  from the start of the function up to and including the address.",
    ),
    (
        "runq",
        "run queue",
        "runq [-c CPU[S]]",
        "Display each CPU's struct rq (runqueues[cpu]): the task rq->curr names, nr_running,\n\
         nr_switches and the clock, then the tasks queued on its RT and CFS FIFOs with their\n\
         priority, as crash prints [prio] PID: TASK: COMMAND:.",
    ),
    (
        "irq",
        "IRQ data",
        "irq [-d | -c CPU[S] | VECTOR]",
        "Without arguments, each CPU's interrupt state at the snapshot: RFLAGS.IF, the local\n\
         APIC's TPR and PPR, the vectors in service (ISR) and requested (IRR), and pending\n\
         or injected events, then the handler of each vector listed.\n\
         \x20      -d  dump the interrupt descriptor table (vector and entry stub).\n\
         \x20  VECTOR  the vector's handler and the CPUs that have it in service or pending.",
    ),
    (
        "timer",
        "timer queue data",
        "timer [-r] [-c CPU[S]]",
        "Display jiffies and each CPU's timer wheel (timer_bases[cpu]): expiry, time to\n\
         expire, the timer_list and its function; a held base lock is named. A timer whose\n\
         memory cannot be read (freed module memory) ends its list with a note.\n\
         \x20      -r  the hrtimers of each CPU (hrtimer_bases[cpu]), in nanoseconds.",
    ),
    (
        "regs",
        "registers",
        "regs CPU",
        "Every register KVM had for the CPU, with its events and local APIC state.",
    ),
    (
        "sym",
        "translate a symbol to its virtual address, or vice-versa",
        "sym ADDR | sym NAME | sym NAME+OFF",
        "The symbol an address is in (with the C expression of a data address, such as\n\
         &runqueues[56].__lock, and the source line of a text address), or a symbol's\n\
         address. NAME+OFF takes a decimal or 0x offset.",
    ),
    (
        "rd",
        "read memory",
        "rd [-8|-16|-32|-64] [-x] ADDR|SYMBOL|EXPR [COUNT]",
        "Display COUNT units of kernel memory (default 64-bit), 16 bytes a line with the\n\
         ASCII column. EXPR is a C expression rooted at a global (runqueues[56].__lock).\n\
         \x20      -x  no ASCII column.",
    ),
    (
        "p",
        "print the value of an expression",
        "p SYMBOL | p SYMBOL[INDEX] | p SYMBOL[INDEX].MEMBER...",
        "Print a global or a place inside it, from the DWARF: a struct with its members, an\n\
         integer in hex, a lock word with the CPU that holds it. A per-CPU array alone lists\n\
         the address of each CPU's element.",
    ),
    (
        "struct",
        "structure contents",
        "struct NAME[.MEMBER...] [-o] [ADDR|SYMBOL|EXPR]",
        "Display a struct's layout (-o: with member offsets), or its values at an address.\n\
         With .MEMBER, only that member (crash's struct rq.nr_running ADDR).",
    ),
    (
        "log",
        "dump system message buffer",
        "log",
        "The kernel log (__log_buf).",
    ),
    (
        "ps",
        "display process status information",
        "ps",
        "The tasks of the pool: PID, CPU, TASK, state and name; > marks a running task.",
    ),
    (
        "trace",
        "the guest's trace buffers",
        "trace [show] [-c CPU[S]] [-s SECONDS] [-e SECONDS] [-n COUNT]",
        "The per-CPU trace ring buffers (a scenario's [trace] section), as `trace-cmd report`\n\
         prints them: task-pid, [CPU], the irqs-off/need-resched/context/preempt columns, the\n\
         virtual time, the event and its fields, in the machine's order.\n\
         \x20      -c  only these CPUs (3, 1,8,9, 1-23, all)\n\
         \x20      -s  only events at or after this virtual time (seconds)\n\
         \x20      -e  only events at or before this virtual time (seconds)\n\
         \x20      -n  only the last COUNT events",
    ),
    (
        "help",
        "get help",
        "help [COMMAND]",
        "The list of commands, or one command's synopsis and description. Any command's\n\
         output can go through | grep [-v] [-i] [-w] [-c] PATTERN, | head [-n N] and\n\
         | tail [-n N] (PATTERN is a fixed string, ^ and $ anchor it).",
    ),
    (
        "quit",
        "exit this session",
        "quit",
        "Leave the interactive prompt.",
    ),
];

/// `help` (the command list) or `help CMD`.
pub(super) fn help(args: &[&str]) -> Result<String, String> {
    match args {
        [] => {
            let mut s = String::from("Commands (help COMMAND for one):\n\n");
            for (name, summary, _, _) in COMMANDS {
                s.push_str(&format!("  {name:<8} {summary}\n"));
            }
            Ok(s)
        }
        [cmd] => {
            let cmd = match *cmd {
                "print" => "p",
                "dmesg" => "log",
                "h" | "?" => "help",
                "q" | "exit" => "quit",
                c => c,
            };
            let (name, summary, synopsis, description) = COMMANDS
                .iter()
                .find(|c| c.0 == cmd)
                .ok_or_else(|| format!("help: no such command: {cmd}"))?;
            let body: String = description
                .lines()
                .map(|l| format!("  {}\n", l.trim_end()))
                .collect();
            Ok(format!(
                "NAME\n  {name} - {summary}\n\nSYNOPSIS\n  {synopsis}\n\nDESCRIPTION\n{body}"
            ))
        }
        _ => Err("usage: help [COMMAND]".into()),
    }
}

/// The names of every command (for tests and completion).
pub fn command_names() -> Vec<&'static str> {
    COMMANDS.iter().map(|c| c.0).collect()
}
