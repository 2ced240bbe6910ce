//! The code a rewritten call site jumps to (see `patch`): for each class of system call, a stub
//! that decides in a few instructions whether the call needs the shim and, if not, makes it
//! through `ipcshim_sud_syscall`, inside the catch-all's allowed range, so it does not trap.
//!
//! Entry (from the site's trampoline): rsp 136 bytes below the site's (the red zone skipped,
//! then the site's return address pushed), eax the call's number, every argument in place.
//! The way out is the site's `syscall` itself: back to the site with rsp restored, where the
//! original `syscall` instruction traps into the SIGSYS handler as before. Stubs clobber only
//! rax, rcx and r11, which `syscall` clobbers, and keep the flags (saved with lahf/seto around
//! the checks, as `syscall` keeps them); the close stub's lseek saves and restores rsi and rdx.
//!
//! Every instruction boundary of a stub is described by a mark (`PATCH_MARK kind`), so that a signal
//! handler never sees the shim's code: [`settle`] moves an interrupted context back to the
//! site (before the call, or at its `syscall` for a restart) or on to its return address.

use crate::base::thread;
use core::arch::global_asm;
use core::mem::offset_of;

/// What an interrupted stub has done, from its mark (the `kind` of `PATCH_MARK`).
const K_ENTRY: u64 = 1; // rsp = site's - 136, flags the site's
const K_SAVED: u64 = 2; // rax pushed: rsp = site's - 144, flags the site's
const K_CHECK: u64 = 3; // ... flags in ah (SF ZF AF PF CF) and al (OF)
const K_RESTORE: u64 = 4; // ... OF back in the flags, the others still in ah
const K_LEAVE: u64 = 5; // rsp = site's, rcx = the site's `syscall`
const K_LOAD: u64 = 6; // as K_CHECK; a fault here goes to the mark's `aux` (the trap)
// The close and fd stubs' look at an fd (an lseek, which changes nothing: an interrupted look
// is dropped and the call made by the site's own `syscall`, which traps):
const K_LOOK: u64 = 7; // as K_CHECK, 24 bytes lower: rsp = site's - 168
const K_LOOKING: u64 = 8; // ... with rdx, rsi and the saved flags (ax) in those 24 bytes

global_asm!(
    ".pushsection .data.rel.ro.ipcshim_patch_marks,\"aw\",@progbits",
    ".balign 8",
    ".globl ipcshim_patch_marks",
    ".hidden ipcshim_patch_marks",
    "ipcshim_patch_marks:",
    ".popsection",
    // A mark: from here to the next one, the stub is in state `kind`.
    ".macro PATCH_MARK kind, aux=0",
    ".pushsection .data.rel.ro.ipcshim_patch_marks,\"aw\",@progbits",
    ".quad .Lmark\\@, \\kind, \\aux",
    ".popsection",
    ".Lmark\\@:",
    ".endm",
    // One more call through a rewritten site, for `ipcshim status` (no flags touched).
    ".macro PATCH_COUNT",
    "    mov ipcshim_tls@gottpoff(%rip), %rcx",
    "    mov %fs:{patched}(%rcx), %r11",
    "    lea 1(%r11), %r11",
    "    mov %r11, %fs:{patched}(%rcx)",
    ".endm",
    ".macro PATCH_SAVE",
    "    PATCH_MARK {entry}",
    "    push %rax",
    "    PATCH_MARK {saved}",
    "    lahf",
    "    seto %al",
    "    PATCH_MARK {check}",
    ".endm",
    // The flags and rax back as they were before PATCH_SAVE.
    ".macro PATCH_RESTORE",
    "    PATCH_MARK {check}",
    "    add $0x7f, %al",
    "    PATCH_MARK {restore}",
    "    sahf",
    "    PATCH_MARK {saved}",
    "    pop %rax",
    "    PATCH_MARK {entry}",
    ".endm",
    // After the checks: the fast way (falling through) and the trap (`\\slow`).
    ".macro PATCH_TAILS slow",
    "    PATCH_RESTORE",
    "    PATCH_COUNT",
    "    jmp ipcshim_sud_syscall",
    "\\slow:",
    "    PATCH_RESTORE",
    "    mov (%rsp), %rcx",
    "    lea -2(%rcx), %rcx",
    "    lea 136(%rsp), %rsp",
    "    PATCH_MARK {leave}",
    "    jmp *%rcx",
    ".endm",
    // rcx = &fd::TABLE[edi], or to \\slow for a vfork child (its fd table is not ours) or an
    // fd the table does not cache.
    ".macro PATCH_FD slow",
    "    mov ipcshim_tls@gottpoff(%rip), %rcx",
    "    cmpb $0, %fs:{vfork}(%rcx)",
    "    jne \\slow",
    "    cmp ${cached}, %edi",
    "    jae \\slow",
    "    mov %edi, %ecx",
    "    lea {table}(%rip), %r11",
    "    lea (%r11,%rcx,8), %rcx",
    ".endm",
    // open(path) / openat(dirfd, path): a path that cannot be one of the /proc views
    // (`procfs::open` matches absolute paths under /proc/sys) goes to the kernel. The path is
    // read here, so only where a fault can be fixed up (SIGSEGV and SIGBUS not blocked).
    ".macro PATCH_OPEN name, path",
    ".balign 16",
    ".globl \\name",
    ".hidden \\name",
    "\\name:",
    "    PATCH_SAVE",
    "    mov ipcshim_tls@gottpoff(%rip), %rcx",
    "    cmpb $0, %fs:{vfork}(%rcx)",
    "    jne 9f",
    "    cmpb $0, %fs:{fault_blocked}(%rcx)",
    "    jne 9f",
    "    PATCH_MARK {load}, 9f",
    "    cmpb $0x2f, (\\path)",
    "    jne 8f",
    "    cmpb $0x70, 1(\\path)",
    "    jne 8f",
    "    cmpb $0x72, 2(\\path)",
    "    jne 8f",
    "    cmpb $0x6f, 3(\\path)",
    "    jne 8f",
    "    cmpb $0x63, 4(\\path)",
    "    jne 8f",
    "    cmpb $0x2f, 5(\\path)",
    "    jne 8f",
    "    cmpb $0x73, 6(\\path)",
    "    jne 8f",
    "    cmpb $0x79, 7(\\path)",
    "    jne 8f",
    "    cmpb $0x73, 8(\\path)",
    "    jne 8f",
    "    PATCH_MARK {check}",
    "    jmp 9f",
    "8:",
    "    PATCH_TAILS 9",
    ".endm",
    ".pushsection .text.ipcshim_patch,\"ax\",@progbits",
    ".balign 64",
    ".globl ipcshim_patch_text",
    ".hidden ipcshim_patch_text",
    "ipcshim_patch_text:",
    // A call on the fd in edi: the kernel's when the table knows it as a kernel fd. One it
    // has not seen (a file opened through a rewritten open, inherited) is looked at with
    // lseek, as by the close stub: what does not say ESPIPE is no pipe, FIFO or socket, so no
    // shim object, and is entered as KERNEL (what the dispatcher's look-up would enter, after
    // a trap), one past it in HIGHEST first, as `fd::store` does, so that scans of the
    // table (close_range) see it.
    ".balign 16",
    ".globl ipcshim_patch_fd",
    ".hidden ipcshim_patch_fd",
    "ipcshim_patch_fd:",
    "    PATCH_SAVE",
    "    PATCH_FD 9f",
    "    mov (%rcx), %r11",
    "    test %r11, %r11",
    "    jz 5f",
    "    or ${listener}, %r11",
    "    cmp ${plain}, %r11",
    "    jne 9f",
    "4:",
    "    PATCH_TAILS 9",
    "5:",
    "    PATCH_MARK {check}",
    "    lea -24(%rsp), %rsp",
    "    PATCH_MARK {look}",
    "    mov %rdx, (%rsp)",
    "    mov %rsi, 8(%rsp)",
    "    mov %rax, 16(%rsp)",
    "    PATCH_MARK {looking}",
    "    xor %esi, %esi",
    "    mov ${seek_cur}, %edx",
    "    mov ${lseek}, %eax",
    "    call ipcshim_sud_call",
    "    test %rax, %rax",
    "    js 6f",
    "    lea {highest}(%rip), %rcx",
    "    mov %edi, %r11d",
    "    add $1, %r11",
    "3:",
    "    mov (%rcx), %rax",
    "    cmp %r11, %rax",
    "    jae 2f",
    "    lock cmpxchg %r11, (%rcx)",
    "    jne 3b",
    "2:",
    "    mov %edi, %ecx",
    "    lea {table}(%rip), %r11",
    "    lea (%r11,%rcx,8), %rcx",
    "    mov ${kernel}, %r11d",
    "    xor %eax, %eax",
    // ZF: entered (nobody entered anything else meanwhile).
    "    lock cmpxchg %r11, (%rcx)",
    "    jmp 7f",
    "6:",
    // ZF clear: the trap.
    "    test %rsp, %rsp",
    "7:",
    "    mov (%rsp), %rdx",
    "    mov 8(%rsp), %rsi",
    "    mov 16(%rsp), %rax",
    "    lea 24(%rsp), %rsp",
    "    PATCH_MARK {check}",
    "    jz 4b",
    "    jmp 9b",
    // fcntl(edi, esi) and ioctl(edi, esi): only a few commands mean anything for a shim
    // object (`crate::family::file::fcntl`, `crate::family::file::ioctl`, `unix::ioctl`: the owner of a socket's SIGURG,
    // its out-of-band mark); the others go to the kernel whatever the fd.
    ".balign 16",
    ".globl ipcshim_patch_fcntl",
    ".hidden ipcshim_patch_fcntl",
    "ipcshim_patch_fcntl:",
    "    PATCH_SAVE",
    "    cmp ${f_dupfd}, %esi",
    "    je 7f",
    "    cmp ${f_dupfd_cloexec}, %esi",
    "    je 7f",
    "    cmp ${f_setfl}, %esi",
    "    je 7f",
    "    cmp ${f_getpipe_sz}, %esi",
    "    je 7f",
    "    cmp ${f_setown}, %esi",
    "    je 7f",
    "    cmp ${f_setown_ex}, %esi",
    "    je 7f",
    "    cmp ${f_setpipe_sz}, %esi",
    "    jne 8f",
    "7:",
    "    PATCH_FD 9f",
    "    mov (%rcx), %r11",
    "    or ${listener}, %r11",
    "    cmp ${plain}, %r11",
    "    jne 9f",
    "8:",
    "    PATCH_TAILS 9",
    ".balign 16",
    ".globl ipcshim_patch_ioctl",
    ".hidden ipcshim_patch_ioctl",
    "ipcshim_patch_ioctl:",
    "    PATCH_SAVE",
    "    cmp ${fionbio}, %esi",
    "    je 7f",
    "    cmp ${fionread}, %esi",
    "    je 7f",
    "    cmp ${fiosetown}, %esi",
    "    je 7f",
    "    cmp ${siocspgrp}, %esi",
    "    je 7f",
    "    cmp ${siocatmark}, %esi",
    "    je 7f",
    "    cmp ${siocoutq}, %esi",
    "    jne 8f",
    "7:",
    "    PATCH_FD 9f",
    "    mov (%rcx), %r11",
    "    or ${listener}, %r11",
    "    cmp ${plain}, %r11",
    "    jne 9f",
    "8:",
    "    PATCH_TAILS 9",
    // close(edi): an fd the table knows as a kernel one (no shim object, listener, epoll fd
    // or sysctl view) is forgotten (its entry UNKNOWN) and closed. The namespace's region
    // descriptors go to the dispatcher, which moves them away first (`region::keep_fds`). An
    // fd the table has not seen (inherited across exec, received, opened by a rewritten open)
    // is closed at once only if lseek does not say ESPIPE: a pipe, FIFO or socket may be a
    // shim object's last end, whose peers the dispatcher's close wakes.
    ".balign 16",
    ".globl ipcshim_patch_close",
    ".hidden ipcshim_patch_close",
    "ipcshim_patch_close:",
    "    PATCH_SAVE",
    "    PATCH_FD 9f",
    "    cmp {region_fds}(%rip), %edi",
    "    je 9f",
    "    cmp {region_fds}+4(%rip), %edi",
    "    je 9f",
    "    mov (%rcx), %r11",
    "    cmp ${plain}, %r11",
    "    ja 9f",
    "    cmp ${listener}, %r11",
    "    je 9f",
    "    test %r11, %r11",
    "    jz 5f",
    "    movq ${unknown}, (%rcx)",
    "4:",
    "    PATCH_TAILS 9",
    "5:",
    "    PATCH_MARK {check}",
    "    lea -24(%rsp), %rsp",
    "    PATCH_MARK {look}",
    "    mov %rdx, (%rsp)",
    "    mov %rsi, 8(%rsp)",
    "    mov %rax, 16(%rsp)",
    "    PATCH_MARK {looking}",
    "    xor %esi, %esi",
    "    mov ${seek_cur}, %edx",
    "    mov ${lseek}, %eax",
    "    call ipcshim_sud_call",
    "    mov %rax, %r11",
    "    mov (%rsp), %rdx",
    "    mov 8(%rsp), %rsi",
    "    mov 16(%rsp), %rax",
    "    lea 24(%rsp), %rsp",
    "    PATCH_MARK {check}",
    "    test %r11, %r11",
    "    jns 4b",
    "    jmp 9b",
    // rt_sigaction(edi, rsi, rdx) in a vfork child: a query (rsi NULL) of any signal but
    // SIGSYS is the kernel's, from the child's own copy of the table (`signals::rt_sigaction`).
    // posix_spawn's child makes one per signal.
    ".balign 16",
    ".globl ipcshim_patch_sigaction",
    ".hidden ipcshim_patch_sigaction",
    "ipcshim_patch_sigaction:",
    "    PATCH_SAVE",
    "    mov ipcshim_tls@gottpoff(%rip), %rcx",
    "    cmpb $0, %fs:{vfork}(%rcx)",
    "    je 9f",
    "    cmp ${sigsys}, %edi",
    "    je 9f",
    "    test %rsi, %rsi",
    "    jnz 9f",
    "    PATCH_TAILS 9",
    "    PATCH_OPEN ipcshim_patch_open, %rdi",
    "    PATCH_OPEN ipcshim_patch_openat, %rsi",
    ".globl ipcshim_patch_text_end",
    ".hidden ipcshim_patch_text_end",
    "ipcshim_patch_text_end:",
    ".popsection",
    ".pushsection .data.rel.ro.ipcshim_patch_marks,\"aw\",@progbits",
    ".globl ipcshim_patch_marks_end",
    ".hidden ipcshim_patch_marks_end",
    "ipcshim_patch_marks_end:",
    ".popsection",
    entry = const K_ENTRY,
    saved = const K_SAVED,
    check = const K_CHECK,
    restore = const K_RESTORE,
    leave = const K_LEAVE,
    load = const K_LOAD,
    look = const K_LOOK,
    looking = const K_LOOKING,
    region_fds = sym crate::base::fd::REGION_FDS,
    seek_cur = const libc::SEEK_CUR,
    sigsys = const libc::SIGSYS,
    lseek = const libc::SYS_lseek,
    patched = const offset_of!(thread::Tls, patched),
    vfork = const offset_of!(thread::Tls, vfork),
    fault_blocked = const offset_of!(thread::Tls, fault_blocked),
    cached = const crate::base::fd::CACHED,
    table = sym crate::base::fd::TABLE,
    highest = sym crate::base::fd::HIGHEST,
    kernel = const crate::base::fd::KERNEL,
    plain = const crate::base::fd::PLAIN,
    listener = const crate::base::fd::LISTENER,
    unknown = const crate::base::fd::UNKNOWN,
    f_dupfd = const crate::family::file::FD_FCNTLS[0],
    f_dupfd_cloexec = const crate::family::file::FD_FCNTLS[1],
    f_setfl = const crate::family::file::FD_FCNTLS[2],
    f_getpipe_sz = const crate::family::file::FD_FCNTLS[3],
    f_setpipe_sz = const crate::family::file::FD_FCNTLS[6],
    f_setown = const crate::family::file::FD_FCNTLS[4],
    f_setown_ex = const crate::family::file::FD_FCNTLS[5],
    fiosetown = const crate::family::file::FD_IOCTLS[2],
    siocspgrp = const crate::family::file::FD_IOCTLS[3],
    siocatmark = const crate::family::file::FD_IOCTLS[4],
    fionbio = const crate::family::file::FD_IOCTLS[0],
    fionread = const crate::family::file::FD_IOCTLS[1],
    siocoutq = const crate::family::file::FD_IOCTLS[5],
    options(att_syntax),
);

// The fcntl and ioctl stubs compare each entry of these lists, no more.
const _: () = assert!(crate::family::file::FD_FCNTLS.len() == 7 && crate::family::file::FD_IOCTLS.len() == 6);
// The checks above rely on these values: KERNEL | PLAIN == PLAIN, and the others above PLAIN
// except LISTENER.
const _: () = assert!(crate::base::fd::UNKNOWN == 0 && crate::base::fd::KERNEL == 1);
const _: () = assert!(crate::base::fd::LISTENER == 2 && crate::base::fd::PLAIN == 3);
// ... and the OPEN stubs' bytes spell the views' common prefix.
const _: () = assert!(eq(shared_state::procfs::PREFIX, b"/proc/sys"));

const fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[repr(C)]
struct Mark {
    addr: usize,
    kind: u64,
    aux: usize,
}

unsafe extern "C" {
    static ipcshim_patch_marks: Mark;
    static ipcshim_patch_marks_end: u8;
    static ipcshim_patch_text: u8;
    static ipcshim_patch_text_end: u8;
    static ipcshim_sud_syscall: u8;
    static ipcshim_sud_syscall_leave: u8;
    static ipcshim_sud_call: u8;
    static ipcshim_sud_call_end: u8;
    static ipcshim_sud_pass: u8;
    static ipcshim_patch_fd: u8;
    static ipcshim_patch_close: u8;
    static ipcshim_patch_fcntl: u8;
    static ipcshim_patch_ioctl: u8;
    static ipcshim_patch_open: u8;
    static ipcshim_patch_openat: u8;
    static ipcshim_patch_sigaction: u8;
}

/// How a rewritten site's call is decided.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Stub {
    /// Never served: always the kernel's.
    Pass,
    /// The fd in the first argument decides.
    Fd,
    /// The command decides, then the fd.
    Fcntl,
    Ioctl,
    Close,
    /// The path in the first (open) or second (openat, openat2) argument decides.
    Open,
    OpenAt,
    /// A query in a vfork child (see `ipcshim_patch_sigaction`).
    Sigaction,
}

impl Stub {
    pub(super) fn addr(self) -> usize {
        let s = match self {
            Stub::Pass => &raw const ipcshim_sud_pass,
            Stub::Fd => &raw const ipcshim_patch_fd,
            Stub::Close => &raw const ipcshim_patch_close,
            Stub::Fcntl => &raw const ipcshim_patch_fcntl,
            Stub::Ioctl => &raw const ipcshim_patch_ioctl,
            Stub::Open => &raw const ipcshim_patch_open,
            Stub::OpenAt => &raw const ipcshim_patch_openat,
            Stub::Sigaction => &raw const ipcshim_patch_sigaction,
        };
        s as usize
    }
}

fn marks() -> &'static [Mark] {
    let start = &raw const ipcshim_patch_marks;
    let n = ((&raw const ipcshim_patch_marks_end) as usize - start as usize) / size_of::<Mark>();
    // SAFETY: the assembly above lays out `n` marks between the two symbols, in address order,
    // in read-only data that lives as long as the library.
    unsafe { core::slice::from_raw_parts(start, n) }
}

/// The mark in force at `rip`, if `rip` is in a stub.
fn mark_at(rip: usize) -> Option<&'static Mark> {
    let text = ((&raw const ipcshim_patch_text) as usize, (&raw const ipcshim_patch_text_end) as usize);
    if !(text.0..text.1).contains(&rip) {
        return None;
    }
    let m = marks();
    let i = m.partition_point(|k| k.addr <= rip);
    i.checked_sub(1).map(|i| &m[i])
}

/// Where a SIGSEGV/SIGBUS at `rip` resumes, if it is a stub's read of a path.
pub(crate) fn fault_fixup(rip: usize) -> Option<usize> {
    mark_at(rip).filter(|m| m.kind == K_LOAD).map(|m| m.aux)
}

/// An interrupted context, as `settle` sees it: the registers it may move.
pub(super) struct Regs {
    pub rip: usize,
    pub rsp: usize,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub eflags: u64,
}

/// Reads the machine word at `addr` in the interrupted stack (ours: a stub pushed it).
fn word(addr: usize) -> usize {
    // SAFETY: `addr` is a slot the stub pushed on the thread's stack, which the signal frame
    // sits below, so it is mapped and unchanged.
    unsafe { (addr as *const usize).read() }
}

/// The flags a stub saved with lahf (SF ZF AF PF CF in ah) and, unless `of_restored`, seto
/// (OF in al), put back into `eflags`.
fn saved_flags(eflags: u64, rax: u64, of_restored: bool) -> u64 {
    const LAHF: u64 = 0xd5; // SF ZF AF PF CF
    const OF: u64 = 1 << 11;
    let mut f = (eflags & !LAHF) | ((rax >> 8) & LAHF);
    if !of_restored {
        f = (f & !OF) | ((rax & 1) << 11);
    }
    f
}

/// If `r` was interrupted inside a stub or the allowed-range syscall of a rewritten site,
/// moves it to where the site itself would be: at its `syscall` (the call about to be made,
/// or restarted: the original instruction then traps once), or after it (done). Returns false
/// if `r` is not in a stub.
pub(super) fn settle_stub(r: &mut Regs) -> bool {
    let pass = (&raw const ipcshim_sud_pass) as usize;
    let gadget = (&raw const ipcshim_sud_syscall) as usize;
    let leave = (&raw const ipcshim_sud_syscall_leave) as usize;
    // Counting a call the shim never serves: at the site's `syscall`, not made yet.
    if (pass..gadget).contains(&r.rip) {
        r.rip = word(r.rsp) - 2;
        r.rsp += 136;
        return true;
    }
    if (gadget..leave).contains(&r.rip) {
        let ret = word(r.rsp);
        // At the syscall: not made yet, or rewound for a restart (rax holds what to make).
        r.rip = if r.rip == gadget { ret - 2 } else { ret };
        r.rsp += 136;
        return true;
    }
    if r.rip == leave {
        r.rip = r.rcx as usize;
        return true;
    }
    // In the close stub's lseek: back in the stub, whose return address is on the stack.
    let call = ((&raw const ipcshim_sud_call) as usize, (&raw const ipcshim_sud_call_end) as usize);
    let (rip, rsp) =
        if (call.0..call.1).contains(&r.rip) { (word(r.rsp), r.rsp + 8) } else { (r.rip, r.rsp) };
    let Some(m) = mark_at(rip) else { return false };
    // The close stub's look: K_CHECK's frame 24 bytes up, the flags in ax or in the frame.
    if matches!(m.kind, K_LOOK | K_LOOKING) {
        let mut ax = r.rax;
        if m.kind == K_LOOKING {
            r.rdx = word(rsp) as u64;
            r.rsi = word(rsp + 8) as u64;
            ax = word(rsp + 16) as u64;
        }
        r.eflags = saved_flags(r.eflags, ax, false);
        r.rax = word(rsp + 24) as u64;
        r.rip = word(rsp + 32) - 2;
        r.rsp = rsp + 24 + 144;
        return true;
    }
    // Before the call: at the site's `syscall`, with the call's number in rax.
    match m.kind {
        K_ENTRY => {
            r.rip = word(r.rsp) - 2;
            r.rsp += 136;
        }
        K_SAVED | K_CHECK | K_RESTORE | K_LOAD => {
            if m.kind != K_SAVED {
                r.eflags = saved_flags(r.eflags, r.rax, m.kind == K_RESTORE);
            }
            r.rax = word(r.rsp) as u64;
            r.rip = word(r.rsp + 8) - 2;
            r.rsp += 144;
        }
        // Already the site's state, on the way to its `syscall`.
        K_LEAVE => r.rip = r.rcx as usize,
        _ => return false,
    }
    true
}
