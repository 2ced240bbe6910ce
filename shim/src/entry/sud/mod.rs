//! The syscall-level catch-all (Syscall User Dispatch, NOTES §2).
//!
//! Every thread of a shimmed process runs with SUD armed: a syscall issued outside our allowed
//! range while the thread's selector byte says BLOCK raises SIGSYS, and [`trap`]'s handler
//! serves it (through `crate::entry::dispatch`) or issues it natively. Shim code runs inside a
//! [`Guard`], which sets the selector to ALLOW so its own syscalls, and those of the libc
//! functions it calls, go straight to the kernel.
//!
//! The allowed range is this library's executable segment: the signal restorer, the
//! child-arming code and the per-call-site thunks that re-issue `clone`/`vfork` on the
//! application's own stack, and every system call of shim code, which the kernel then lets
//! through without reading the selector (~33 ns less each than from outside, and the exported
//! symbols' pass-through is a plain `syscall`). libc, which shim code also calls, is another
//! object and stays outside the range: its calls obey the selector. Per-thread state lives in
//! initial-exec TLS defined in assembly, so the handler, the thunks and Rust code reach it
//! without `__tls_get_addr`.

use crate::base::thread::{ALLOW, ARMED, BLOCK, Tls, catchall_active, enter, tls};
use core::arch::global_asm;
use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicUsize, Ordering, compiler_fence};
use shared_state::sys::syscall6;

mod clone;
mod exec;
mod patch;
mod stubs;
mod trap;

pub(crate) use exec::{execve, execvpe};
pub(crate) use patch::{excluding_rewrites, settle};
pub(crate) use stubs::fault_fixup;

const PR_SET_SYSCALL_USER_DISPATCH: usize = 59;
const PR_SYS_DISPATCH_ON: usize = 1;
/// asm/prctl.h
const ARCH_GET_FS: usize = 0x1003;

/// Number of per-call-site `clone`/`vfork` thunks, and the size of one.
const THUNKS: usize = 256;
const THUNK_SIZE: usize = 32;

/// Where thunk `i` resumes the application, and whether its child shares our memory and TLS.
#[repr(C)]
struct Slot {
    resume: AtomicUsize,
    shared: AtomicUsize,
}

static SLOTS: [Slot; THUNKS] =
    [const { Slot { resume: AtomicUsize::new(0), shared: AtomicUsize::new(0) } }; THUNKS];
static SLOTS_USED: AtomicUsize = AtomicUsize::new(0);

// The allowed range. Thunk i: issue the trapped clone/vfork with the application's registers
// (restored by sigreturn), then continue at SLOTS[i].resume. rcx and r11 are free: the syscall
// instruction clobbers them anyway; flags are not preserved (glibc re-tests rax).
//
// Parent (or failure): the selector goes back to BLOCK and depth/vfork/held/region_fds/
// birth_logged are cleared, because a vfork child ran our handler on this same TLS and may
// have exec'd inside a guard (or moved the region's descriptors in its own fd table, or logged
// its creation).
// Child: arm SUD for this task on the selector at its own TLS (a new thread's fresh block or
// the shared one), set BLOCK, mark a shared-TLS child as a vfork child, and return 0. A TLS
// that is not glibc's (%fs:0 is not the TCB's self-pointer: another runtime's clone) is left
// alone, and the task unarmed. It saves what it uses below the red zone, so the parent's red
// zone on a shared stack survives.
global_asm!(
    ".pushsection .text.ipcshim_sud,\"ax\",@progbits",
    ".balign 4096",
    ".globl ipcshim_sud_start",
    ".hidden ipcshim_sud_start",
    "ipcshim_sud_start:",
    ".globl ipcshim_sud_restorer",
    ".hidden ipcshim_sud_restorer",
    "ipcshim_sud_restorer:",
    // movq $15, %rax; syscall: the exact bytes by which libgcc's unwinder (linux-unwind.h)
    // recognizes a signal frame, so pthread_cancel and C++ forced unwinding from a handler
    // step through our frames to the application's destructors.
    "    .byte 0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00",
    "    syscall",
    "    ud2",
    // The system call of a rewritten call site (`patch`, `stubs`): entered 136 bytes below
    // the site's stack (red zone, then the site's return address), it goes back there with
    // rcx holding that address, as the site's own `syscall` leaves it (an indirect jump: a
    // `ret` without its `call` costs a misprediction each time). A call the shim never serves
    // enters at `ipcshim_sud_pass`, straight from its trampoline: one more call through a
    // rewritten site for `ipcshim status` (no flags touched), then the call.
    ".globl ipcshim_sud_pass",
    ".hidden ipcshim_sud_pass",
    "ipcshim_sud_pass:",
    "    .cfi_startproc",
    "    .cfi_def_cfa_offset 136",
    "    .cfi_offset %rip, -136",
    "    mov ipcshim_tls@gottpoff(%rip), %rcx",
    "    mov %fs:{patched}(%rcx), %r11",
    "    lea 1(%r11), %r11",
    "    mov %r11, %fs:{patched}(%rcx)",
    ".globl ipcshim_sud_syscall",
    ".hidden ipcshim_sud_syscall",
    "ipcshim_sud_syscall:",
    "    syscall",
    "    mov (%rsp), %rcx",
    "    lea 136(%rsp), %rsp",
    "    .cfi_def_cfa_offset 0",
    "    .cfi_register %rip, %rcx",
    ".globl ipcshim_sud_syscall_leave",
    ".hidden ipcshim_sud_syscall_leave",
    "ipcshim_sud_syscall_leave:",
    "    jmp *%rcx",
    "    .cfi_endproc",
    // A system call made by a `call` (the number and arguments already in place), for a stub
    // that asks the kernel something first (`stubs`), whose interrupted state `settle` finds.
    ".globl ipcshim_sud_call",
    ".hidden ipcshim_sud_call",
    "ipcshim_sud_call:",
    "    .cfi_startproc",
    "    syscall",
    "    ret",
    "    .cfi_endproc",
    ".globl ipcshim_sud_call_end",
    ".hidden ipcshim_sud_call_end",
    "ipcshim_sud_call_end:",
    ".balign 64",
    "ipcshim_sud_parent:",
    "    mov ipcshim_tls@gottpoff(%rip), %r11",
    "    movb ${block}, %fs:{sel}(%r11)",
    "    movb $0, %fs:{depth}(%r11)",
    "    movb $0, %fs:{vfork}(%r11)",
    "    movq $0, %fs:{held}(%r11)",
    "    movq $0, %fs:{region_fds}(%r11)",
    "    movb $0, %fs:{birth_logged}(%r11)",
    "    jmp *(%rcx)",
    ".balign 64",
    "ipcshim_sud_child:",
    "    lea -128(%rsp), %rsp",
    "    push %rcx",
    "    push %rdi",
    "    push %rsi",
    "    push %rdx",
    "    push %r10",
    "    push %r8",
    "    sub $8, %rsp",
    "    mov ${arch_prctl}, %eax",
    "    mov ${get_fs}, %edi",
    "    mov %rsp, %rsi",
    "    syscall",
    "    mov %fs:0, %r8",
    "    cmp (%rsp), %r8",
    "    jne 1f",
    "    add ipcshim_tls@gottpoff(%rip), %r8",
    "    mov ${prctl}, %eax",
    "    mov ${pr_sud}, %edi",
    "    mov ${pr_on}, %esi",
    "    mov {range}(%rip), %rdx",
    "    mov {range}+8(%rip), %r10",
    "    syscall",
    "    movb ${block}, {sel}(%r8)",
    "    mov 48(%rsp), %rcx",
    "    cmpq $0, {shared}(%rcx)",
    "    je 1f",
    "    movb $1, {vfork}(%r8)",
    "1:",
    "    add $8, %rsp",
    "    pop %r8",
    "    pop %r10",
    "    pop %rdx",
    "    pop %rsi",
    "    pop %rdi",
    "    pop %rcx",
    "    lea 128(%rsp), %rsp",
    "    xor %eax, %eax",
    "    jmp *(%rcx)",
    ".balign {tsize}",
    ".globl ipcshim_sud_thunks",
    ".hidden ipcshim_sud_thunks",
    "ipcshim_sud_thunks:",
    ".set ipcshim_sud_i, 0",
    ".rept {thunks}",
    "    syscall",
    "    test %rax, %rax",
    "    lea {slots}+{slot_size}*ipcshim_sud_i(%rip), %rcx",
    "    jz ipcshim_sud_child",
    "    jmp ipcshim_sud_parent",
    "    .balign {tsize}, 0xcc",
    "    .set ipcshim_sud_i, ipcshim_sud_i + 1",
    ".endr",
    ".balign 4096, 0xcc",
    ".globl ipcshim_sud_end",
    ".hidden ipcshim_sud_end",
    "ipcshim_sud_end:",
    ".popsection",
    block = const BLOCK,
    sel = const offset_of!(Tls, selector),
    depth = const offset_of!(Tls, depth),
    vfork = const offset_of!(Tls, vfork),
    held = const offset_of!(Tls, held),
    region_fds = const offset_of!(Tls, region_fds),
    birth_logged = const offset_of!(Tls, birth_logged),
    patched = const offset_of!(Tls, patched),
    shared = const offset_of!(Slot, shared),
    arch_prctl = const libc::SYS_arch_prctl,
    get_fs = const ARCH_GET_FS,
    prctl = const libc::SYS_prctl,
    pr_sud = const PR_SET_SYSCALL_USER_DISPATCH,
    pr_on = const PR_SYS_DISPATCH_ON,
    tsize = const THUNK_SIZE,
    thunks = const THUNKS,
    slots = sym SLOTS,
    range = sym RANGE,
    slot_size = const size_of::<Slot>(),
    options(att_syntax),
);

unsafe extern "C" {
    static ipcshim_sud_start: u8;
    static ipcshim_sud_end: u8;
    static ipcshim_sud_restorer: u8;
    static ipcshim_sud_thunks: u8;
    /// This library's ELF header (defined by the linker), mapped by its first segment.
    static __ehdr_start: libc::Elf64_Ehdr;
}

/// The allowed range (start, length): this library's executable segment, set once before the
/// first task is armed (the child-arming code reads it too).
static RANGE: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];

fn range() -> (usize, usize) {
    (RANGE[0].load(Ordering::Relaxed), RANGE[1].load(Ordering::Relaxed))
}

/// This library's executable segment, from its own program headers; None if they are not
/// where its first segment maps the file's start, or the segment does not hold the code that
/// must run in the range.
fn own_text() -> Option<(usize, usize)> {
    let ehdr = &raw const __ehdr_start;
    // SAFETY: the linker's symbol for our ELF header, which the loader mapped.
    let eh = unsafe { &*ehdr };
    let base = ehdr as usize;
    let (phoff, phnum) = (eh.e_phoff as usize, eh.e_phnum as usize);
    let end = phoff.saturating_add(phnum * size_of::<libc::Elf64_Phdr>());
    if eh.e_ident[..4] != *b"\x7fELF"
        || eh.e_phentsize as usize != size_of::<libc::Elf64_Phdr>()
        || end > 4096
    {
        return None;
    }
    // SAFETY: the program headers lie in the ELF header's page, which is mapped.
    let phdrs = unsafe { core::slice::from_raw_parts((base + phoff) as *const libc::Elf64_Phdr, phnum) };
    // That page is the file's start (where the loader maps the first segment).
    let first = phdrs.iter().find(|p| p.p_type == libc::PT_LOAD)?;
    if first.p_offset != 0 {
        return None;
    }
    let bias = base.wrapping_sub(first.p_vaddr as usize);
    let text = phdrs.iter().find(|p| p.p_type == libc::PT_LOAD && p.p_flags & libc::PF_X != 0)?;
    let (start, len) = (bias.wrapping_add(text.p_vaddr as usize), text.p_memsz as usize);
    let holds = |a: usize| a.wrapping_sub(start) < len;
    let sud = ((&raw const ipcshim_sud_start) as usize, (&raw const ipcshim_sud_end) as usize - 1);
    (holds(sud.0) && holds(sud.1)).then_some((start, len))
}

/// Our `rt_sigreturn` restorer, inside the allowed range.
pub(crate) fn restorer() -> usize {
    (&raw const ipcshim_sud_restorer) as usize
}

/// The thunk that re-issues a clone/vfork trapped just before `resume`; None when all are used.
/// Lock-free: a slot is claimed by one fetch_add and written once; two threads racing on a new
/// site may each claim one, which is harmless.
fn thunk_for(resume: usize, shared: bool) -> Option<usize> {
    let thunk = |i: usize| (&raw const ipcshim_sud_thunks) as usize + i * THUNK_SIZE;
    let used = SLOTS_USED.load(Ordering::Acquire).min(THUNKS);
    for (i, s) in SLOTS[..used].iter().enumerate() {
        if s.resume.load(Ordering::Acquire) == resume && s.shared.load(Ordering::Relaxed) == shared as usize {
            return Some(thunk(i));
        }
    }
    let i = SLOTS_USED.fetch_add(1, Ordering::AcqRel);
    let s = SLOTS.get(i)?;
    s.shared.store(shared as usize, Ordering::Relaxed);
    s.resume.store(resume, Ordering::Release);
    Some(thunk(i))
}

/// Arms SUD for the calling task on its own selector (left as it is). In a fork child, the
/// rewriting of call sites starts afresh.
fn arm_current() -> bool {
    tls().patched.store(0, Ordering::Relaxed);
    patch::forked();
    let (start, len) = range();
    let sel = tls().selector.as_ptr() as usize;
    syscall6(libc::SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON, start, len, sel, 0).is_ok()
}

/// Called from the constructor once the region is open: arms the catch-all for this image
/// unless `IPCSHIM_CATCHALL=0` or the kernel refuses.
pub(crate) fn init() {
    if std::env::var_os("IPCSHIM_CATCHALL").is_some_and(|v| v == "0") {
        return;
    }
    // Shim code makes its system calls as if from the range: without it, no catch-all.
    let Some((start, len)) = own_text() else { return };
    RANGE[0].store(start, Ordering::Relaxed);
    RANGE[1].store(len, Ordering::Relaxed);
    let t = tls();
    t.selector.store(ALLOW, Ordering::Relaxed);
    // Armed with ALLOW first: nothing traps until the handlers are in place.
    if !arm_current() {
        return;
    }
    // The SIGSYS handler before any wrapping: if it cannot be installed, nothing is changed.
    let Some(app_sigsys) = trap::install() else {
        let _ = syscall6(libc::SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH, 0, 0, 0, 0, 0);
        return;
    };
    exec::capture();
    patch::init();
    crate::entry::signals::init(&app_sigsys);
    patch::start();
    ARMED.store(true, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    t.selector.store(BLOCK, Ordering::Relaxed);
}

/// Before libc's fork (from `pthread_atfork`): whether its child is armed is not known yet.
pub(crate) fn before_fork() {
    tls().fork_armed.store(0, Ordering::Relaxed);
}

/// In a fork child (from `pthread_atfork`): SUD is not inherited, so arm this thread again,
/// unless the fork trapped and its child armed itself then (`trap::fork_here`).
pub(crate) fn rearm_after_fork() {
    if catchall_active() && tls().fork_armed.swap(0, Ordering::Relaxed) == 0 {
        let _g = enter();
        arm_current();
    }
}

/// In the child of a fork the catch-all made: armed.
pub(crate) fn armed_fork_child() {
    if arm_current() {
        tls().fork_armed.store(1, Ordering::Relaxed);
    }
}
