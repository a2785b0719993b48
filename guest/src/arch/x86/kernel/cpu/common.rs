//! Per-CPU GDT and TSS, and the CPU initialisation every CPU runs (Linux's `cpu_init`).
use core::arch::asm;
use core::mem::size_of;

use lockvmm_abi::NR_CPUS;
use lockvmm_abi::stacks::{Ist, N_IST};

use crate::arch::x86::kernel::idt;
use crate::arch::x86::percpu;

/// Linux's GDT layout, so that selectors read the same in reports (`CS: 0010  SS: 0018`).
pub const __KERNEL_CS: u16 = 2 * 8;
pub const __KERNEL_DS: u16 = 3 * 8;
pub const __USER32_CS: u16 = 4 * 8 + 3;
pub const __USER_DS: u16 = 5 * 8 + 3;
pub const __USER_CS: u16 = 6 * 8 + 3;
const GDT_ENTRY_TSS: usize = 8;
const GDT_ENTRIES: usize = 10;

/// Interrupt-stack-table slots, as Linux's `IST_INDEX_*` (+1: the TSS counts from 1). The
/// stacks of `exception_stacks` are in `Ist` order, which the host relies on.
pub const IST_DF: u8 = Ist::DoubleFault.tss_slot();
pub const IST_NMI: u8 = Ist::Nmi.tss_slot();
pub const IST_DB: u8 = Ist::Debug.tss_slot();
pub const IST_MCE: u8 = Ist::MachineCheck.tss_slot();
/// Size of each exception stack.
pub const EXCEPTION_STKSZ: usize = lockvmm_abi::stacks::EXCEPTION_STKSZ as usize;

/// Bytes of I/O permission bitmap: enough to cover the hypercall port, plus the 0xff byte the
/// CPU requires after the bitmap.
const IO_BITMAP_BYTES: usize = (lockvmm_abi::HYPERCALL_PORT as usize + 4) / 8 + 2;

#[repr(C, packed(4))]
#[derive(Clone, Copy)]
pub struct TssStruct {
    _reserved0: u32,
    pub sp: [u64; 3],
    _reserved1: u64,
    pub ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    pub io_bitmap_base: u16,
    /// Every port denied to ring 3 but the hypercall port's four bytes, so that user-mode spin
    /// loops can yield like kernel ones (`lab::user_busy_loop`).
    pub io_bitmap: [u8; IO_BITMAP_BYTES],
}

const fn io_bitmap() -> [u8; IO_BITMAP_BYTES] {
    let mut b = [0xff; IO_BITMAP_BYTES];
    let port = lockvmm_abi::HYPERCALL_PORT as usize;
    let mut p = port;
    while p < port + 4 {
        b[p / 8] &= !(1 << (p % 8));
        p += 1;
    }
    b
}

const TSS_INIT: TssStruct = TssStruct {
    _reserved0: 0,
    sp: [0; 3],
    _reserved1: 0,
    ist: [0; 7],
    _reserved2: 0,
    _reserved3: 0,
    io_bitmap_base: core::mem::offset_of!(TssStruct, io_bitmap) as u16,
    io_bitmap: io_bitmap(),
};

/// Points this CPU's TSS at `task`'s kernel stack: where the CPU lands on an interrupt from
/// user mode (Linux's `load_sp0`).
pub fn load_sp0(cpu: u32, sp0: u64) {
    // SAFETY: each CPU only writes its own TSS; the field is read by the CPU on ring changes.
    unsafe {
        let tss = &mut (*core::ptr::addr_of_mut!(cpu_tss_rw))[cpu as usize];
        core::ptr::write_unaligned(core::ptr::addr_of_mut!(tss.sp[0]), sp0);
    }
}

#[repr(C, align(16))]
pub struct ExceptionStacks(pub [[u8; EXCEPTION_STKSZ]; N_IST]);

/// A CPU's GDT before `cpu_init` adds its TSS: the flat segments, initialised statically as
/// Linux's `gdt_page` (`arch/x86/kernel/cpu/common.c`, `GDT_ENTRY_INIT`), so bring-up does not
/// store them again on every CPU.
const GDT_INIT: [u64; GDT_ENTRIES] = [
    0,
    0x00cf_9b00_0000_ffff, // __KERNEL32_CS
    0x00af_9b00_0000_ffff, // __KERNEL_CS
    0x00cf_9300_0000_ffff, // __KERNEL_DS
    0x00cf_fb00_0000_ffff, // __USER32_CS
    0x00cf_f300_0000_ffff, // __USER_DS
    0x00af_fb00_0000_ffff, // __USER_CS
    0,
    0, // the TSS (two entries), set by `cpu_init`
    0,
];

/// Per-CPU descriptor tables; `static mut` because `lgdt`/`ltr` need them at fixed addresses.
#[unsafe(no_mangle)]
pub static mut gdt_page: [[u64; GDT_ENTRIES]; NR_CPUS] = [GDT_INIT; NR_CPUS];
#[unsafe(no_mangle)]
pub static mut cpu_tss_rw: [TssStruct; NR_CPUS] = [TSS_INIT; NR_CPUS];
#[unsafe(no_mangle)]
pub static mut exception_stacks: [ExceptionStacks; NR_CPUS] =
    [const { ExceptionStacks([[0; EXCEPTION_STKSZ]; N_IST]) }; NR_CPUS];

#[repr(C, packed)]
struct DescPtr {
    limit: u16,
    base: u64,
}

/// Loads this CPU's GDT, TSS and the shared IDT, and points GS at its per-CPU area.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn cpu_init(cpu: u32) {
    let c = cpu as usize;
    // SAFETY: each CPU only writes its own entries of these arrays, once, before loading them;
    // the descriptors are the architectural encodings of flat 64-bit code/data and a 64-bit TSS.
    unsafe {
        let tss = &mut (*core::ptr::addr_of_mut!(cpu_tss_rw))[c];
        let stacks = &(*core::ptr::addr_of!(exception_stacks))[c];
        for (i, stack) in stacks.0.iter().enumerate() {
            tss.ist[i] = stack.as_ptr() as u64 + EXCEPTION_STKSZ as u64;
        }
        let gdt = &mut (*core::ptr::addr_of_mut!(gdt_page))[c];
        let base = tss as *mut TssStruct as u64;
        let limit = (size_of::<TssStruct>() - 1) as u64;
        gdt[GDT_ENTRY_TSS] =
            limit | ((base & 0xff_ffff) << 16) | (0x89 << 40) | (((base >> 24) & 0xff) << 56);
        gdt[GDT_ENTRY_TSS + 1] = base >> 32;

        let gdtr = DescPtr {
            limit: (GDT_ENTRIES * 8 - 1) as u16,
            base: gdt.as_ptr() as u64,
        };
        asm!(
            "lgdt [{gdtr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov {tmp:e}, {ds}",
            "mov ss, {tmp:e}",
            "xor {tmp:e}, {tmp:e}",
            "mov ds, {tmp:e}",
            "mov es, {tmp:e}",
            "mov fs, {tmp:e}",
            "mov gs, {tmp:e}",
            "mov {tmp:e}, {tss}",
            "ltr {tmp:x}",
            gdtr = in(reg) &gdtr,
            cs = const __KERNEL_CS as u64,
            ds = const __KERNEL_DS as u32,
            tss = const (GDT_ENTRY_TSS * 8) as u32,
            tmp = out(reg) _,
        );
    }
    idt::load_idt();
    syscall_init();
    // Loading GS above cleared its base, so the per-CPU pointer goes in last.
    percpu::setup_per_cpu(cpu);
}

/// Enables `syscall` from user mode into `entry_SYSCALL_64` (Linux's `syscall_init`): kernel
/// CS/SS from STAR[47:32], user ones for `sysret` from STAR[63:48], and RFLAGS bits cleared
/// on entry (interrupts among them).
fn syscall_init() {
    use crate::arch::x86::msr::{
        EFER_SCE, MSR_EFER, MSR_LSTAR, MSR_STAR, MSR_SYSCALL_MASK, rdmsr, wrmsr,
    };
    use lockvmm_abi::eflags::*;
    let star = ((__USER32_CS as u64) << 48) | ((__KERNEL_CS as u64) << 32);
    // SAFETY: the architectural SYSCALL MSRs, pointing at our entry stub with our selectors.
    unsafe {
        wrmsr(MSR_STAR, star);
        wrmsr(
            MSR_LSTAR,
            crate::arch::x86::entry::entry_64::entry_SYSCALL_64 as *const () as u64,
        );
        wrmsr(
            MSR_SYSCALL_MASK,
            X86_EFLAGS_TF
                | X86_EFLAGS_DF
                | X86_EFLAGS_IF
                | X86_EFLAGS_IOPL
                | X86_EFLAGS_AC
                | X86_EFLAGS_NT,
        );
        wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SCE);
    }
}
