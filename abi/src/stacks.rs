//! The guest's kernel stacks: their sizes, the order of the exception (IST) stacks, and the
//! symbols of the arrays they live in, by which the host tells which stack an address is on.

/// Size of a task's kernel stack and of each boot/idle stack (Linux's `THREAD_SIZE` on
/// x86_64).
pub const THREAD_SIZE: u64 = 16384;
/// Size of each CPU's IRQ stack (Linux's `IRQ_STACK_SIZE`).
pub const IRQ_STACK_SIZE: u64 = THREAD_SIZE;
/// Size of each exception stack (Linux's `EXCEPTION_STKSZ`).
pub const EXCEPTION_STKSZ: u64 = 8192;

contract_enum! {
    /// The exception stacks of a CPU, in their order in [`EXCEPTION_STACKS_SYMBOL`]'s per-CPU
    /// entry (Linux's `IST_INDEX_*`). The TSS and the IDT count IST slots from 1: see
    /// [`Ist::tss_slot`].
    pub enum Ist: u8 {
        /// `#DF`.
        DoubleFault = 0,
        /// NMI.
        Nmi = 1,
        /// `#DB`.
        Debug = 2,
        /// `#MC`.
        MachineCheck = 3,
    }
}

/// Number of exception stacks per CPU.
pub const N_IST: usize = Ist::ALL.len();

impl Ist {
    /// The name reports use (`"NMI exception stack"`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::DoubleFault => "double fault",
            Self::Nmi => "NMI",
            Self::Debug => "debug",
            Self::MachineCheck => "machine check",
        }
    }

    /// The IST field of an IDT gate, and the TSS `ist[]` entry + 1, that select this stack.
    pub const fn tss_slot(self) -> u8 {
        self as u8 + 1
    }

    /// The stack at byte `offset` into [`EXCEPTION_STACKS_SYMBOL`] (of any CPU).
    pub const fn at_offset(offset: u64) -> Self {
        Self::ALL[((offset / EXCEPTION_STKSZ) % N_IST as u64) as usize]
    }
}

/// `[[[u8; EXCEPTION_STKSZ]; N_IST]; NR_CPUS]`: every CPU's exception stacks, in [`Ist`] order.
pub const EXCEPTION_STACKS_SYMBOL: &str = "exception_stacks";
/// `[[u8; IRQ_STACK_SIZE]; NR_CPUS]`: every CPU's IRQ stack.
pub const IRQ_STACK_SYMBOL: &str = "irq_stack_backing_store";
/// `[[u8; THREAD_SIZE]; NR_CPUS]`: the stack each CPU boots on and its idle task
/// (`swapper/N`) runs on.
pub const INIT_STACKS_SYMBOL: &str = "init_stacks";
/// `[[u8; THREAD_SIZE]; _]`: the kernel stacks of the other tasks, in allocation order.
pub const TASK_STACKS_SYMBOL: &str = "task_stacks";
