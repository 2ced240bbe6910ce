//! Rewriting trapping call sites (issue 23): at the second trap from a glibc-style
//! `mov $NR, %eax; [register moves;] syscall` whose call the shim never serves (or decides in
//! a few instructions, see `stubs`), the 5-byte `mov` becomes a `jmp` to a per-site
//! trampoline, and later calls from the site cost what the kernel's do plus the catch-all's
//! own entry work (a syscall from the allowed range), instead of a SIGSYS. (A site that traps
//! once only, start-up code mostly, is not worth the rewriting.)
//!
//! The `syscall` bytes stay: a thread already past the `mov` still makes a correct, trapping
//! call, and a stub that needs the shim goes back there. The 5 bytes are replaced by one
//! locked store when they lie in one aligned 8- or 16-byte word (another thread sees the whole
//! old or the whole new instruction); in a process that never started a second thread by
//! plain stores; otherwise through a `jmp .` that other threads spin on meanwhile
//! (`spin_replace`). Only sites in the executable segment of an object the dynamic linker
//! loaded are rewritten (not JIT code, the vDSO or ours), with the page made writable for the
//! store and its protection put back. The trampoline (`mov $NR, %eax`, the site's register
//! moves, `lea -128(%rsp), %rsp; pushq ret; jmp *stub`) lives in pages mapped within ±2 GiB of
//! the site.
//!
//! glibc's `read` sets its number with a 2-byte `xor %eax, %eax`: that becomes a `jmp rel8` to
//! 5 dead bytes nearby holding the `jmp` to the trampoline (the alignment padding after the
//! wrapper's `ret`, or between the end of the site's function, from its FDE, and the next one),
//! written first, then the 2 bytes in one locked store. A thread stopped on the landing spot is
//! at the site for [`settle`].
//!
//! A signal handler never sees this machinery: [`settle`] moves an interrupted context out of
//! trampolines and stubs to the site's own state (at its `mov` or its register moves, at its
//! `syscall` when the call is to be made or restarted, after it when done), which is also what
//! an unwinder (pthread_cancel) walks from.
//!
//! `IPCSHIM_PATCH=0` turns the rewriting off (every call traps, as before).

use super::stubs::{self, Regs, Stub};
use crate::base::thread::{self, in_vfork_child, tls};
use crate::base::user::User;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use libc::{REG_EFL, REG_RAX, REG_RCX, REG_RDI, REG_RDX, REG_RIP, REG_RSI, REG_RSP, ucontext_t};
use shared_state::sys::syscall6;

mod cache;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// glibc's `_dl_find_object` (2.35): which loaded object an address is in; async-signal-safe.
static FIND_OBJECT: AtomicUsize = AtomicUsize::new(0);
/// Our own object and the vDSO (their link maps), never rewritten.
static OWN_MAP: AtomicUsize = AtomicUsize::new(0);
/// The end of the dynamic loader's mapping: the kernel maps it above the libraries, with free
/// room above it, where a chunk of trampolines for their sites is first looked for.
static LOADER_END: AtomicUsize = AtomicUsize::new(0);
static VDSO: AtomicUsize = AtomicUsize::new(0);
/// Runs `f` while no thread rewrites a site (whose page it makes writable for the time), or
/// returns None when one does.
pub(crate) fn excluding_rewrites<T>(f: impl FnOnce() -> T) -> Option<T> {
    BUSY.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).ok()?;
    let v = f();
    BUSY.store(false, Ordering::Release);
    Some(v)
}

/// Whether the CPU has cmpxchg16b: 0 not asked yet, 1 no, 2 yes.
static CX16: AtomicU8 = AtomicU8::new(0);
/// Held by the thread rewriting a site (never waited for: another thread just keeps trapping).
static BUSY: AtomicBool = AtomicBool::new(false);

/// At start-up (before anything traps).
pub(super) fn init() {
    if std::env::var_os("IPCSHIM_PATCH").is_some_and(|v| v == "0") {
        return;
    }
    // SAFETY: dlsym with a NUL-terminated name; RTLD_DEFAULT searches every loaded object.
    let find = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_dl_find_object".as_ptr()) } as usize;
    if find == 0 {
        return;
    }
    FIND_OBJECT.store(find, Ordering::Relaxed);
    OWN_MAP.store(find_object(init as *const () as usize).map_or(0, |o| o.link_map), Ordering::Relaxed);
    // SAFETY: getauxval has no preconditions.
    let vdso = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
    if vdso != 0 {
        VDSO.store(find_object(vdso).map_or(0, |o| o.link_map), Ordering::Relaxed);
    }
    // SAFETY: getauxval has no preconditions.
    let loader = unsafe { libc::getauxval(libc::AT_BASE) } as usize;
    if loader != 0 {
        LOADER_END.store(find_object(loader).map_or(0, |o| o.map_end), Ordering::Relaxed);
    }
    // A constructor that ran before ours may have started threads already.
    // SAFETY: dlsym with a NUL-terminated name.
    let single = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__libc_single_threaded".as_ptr()) } as *const u8;
    // SAFETY: glibc's `char __libc_single_threaded`, when it has one.
    if single.is_null() || unsafe { single.read_volatile() } == 0 {
        thread::THREADED.store(true, Ordering::Relaxed);
    }
    cache::init();
    ENABLED.store(true, Ordering::Release);
}

/// At start-up, once the fault fixups are in place (before anything traps): the known sites
/// of the program, libc and the loader are rewritten (see `cache`).
pub(super) fn start() {
    if !ENABLED.load(Ordering::Acquire) {
        return;
    }
    let mut mask = 0u64;
    let _ = syscall6(libc::SYS_rt_sigprocmask, libc::SIG_BLOCK as usize, 0, &raw mut mask as usize, 8, 0, 0);
    cache::start(User::new(mask));
}

/// Whether the CPU has cmpxchg16b, asked the first time a site needs it: one CPUID leaf
/// (CMPXCHG16B is ECX bit 13 of leaf 1), not std's detection of every feature, as in a virtual
/// machine each CPUID exits to the hypervisor.
fn cx16() -> bool {
    match CX16.load(Ordering::Relaxed) {
        0 => {
            let yes = core::arch::x86_64::__cpuid(1).ecx & 1 << 13 != 0;
            CX16.store(1 + u8::from(yes), Ordering::Relaxed);
            yes
        }
        v => v == 2,
    }
}

/// In a fork child: its only thread is this one, so nobody is rewriting; a site the parent
/// was rewriting through `jmp .` gets its `mov` back.
pub(super) fn forked() {
    // Loaded first: a store copies the page the child shares with its parent.
    let site = if PENDING.load(Ordering::Relaxed) != 0 { PENDING.swap(0, Ordering::Relaxed) } else { 0 };
    if site != 0 {
        let page = site & !4095;
        let rwx = (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as usize;
        if syscall6(libc::SYS_mprotect, page, 4096, rwx, 0, 0, 0).is_ok() {
            let mov = PENDING_MOV.load(Ordering::Relaxed).to_le_bytes();
            // SAFETY: the page is writable and this is the process's only thread.
            unsafe { core::ptr::copy_nonoverlapping(mov.as_ptr(), site as *mut u8, 5) };
            let rx = (libc::PROT_READ | libc::PROT_EXEC) as usize;
            let _ = syscall6(libc::SYS_mprotect, page, 4096, rx, 0, 0, 0);
        }
    }
    if BUSY.load(Ordering::Relaxed) {
        BUSY.store(false, Ordering::Release);
    }
}

/// `struct dl_find_object` (dlfcn.h, x86_64).
#[repr(C)]
struct DlFindObject {
    flags: u64,
    map_start: usize,
    map_end: usize,
    link_map: usize,
    eh_frame: usize,
    reserved: [u64; 7],
}

struct Object {
    map_start: usize,
    map_end: usize,
    link_map: usize,
    /// Its `.eh_frame_hdr` (0 if none).
    eh_frame: usize,
}

fn find_object(addr: usize) -> Option<Object> {
    let f = FIND_OBJECT.load(Ordering::Relaxed);
    if f == 0 {
        return None;
    }
    // SAFETY: all-zero is a valid DlFindObject; `f` is glibc's _dl_find_object.
    let mut o: DlFindObject = unsafe { core::mem::zeroed() };
    // SAFETY: `f` has this signature (dlfcn.h); it only reads the loader's tables.
    let find = unsafe { core::mem::transmute::<usize, extern "C" fn(usize, *mut DlFindObject) -> i32>(f) };
    (find(addr, &mut o) == 0 && o.link_map != 0).then_some(Object {
        map_start: o.map_start,
        map_end: o.map_end,
        link_map: o.link_map,
        eh_frame: o.eh_frame,
    })
}

/// The syscalls a site may be rewritten for, and how their stub decides. Anything the trap
/// handler or the dispatcher does more with than "serve it if it touches a shim object, else
/// let the kernel do it" keeps trapping: signals and masks (but a vfork child's queries of
/// dispositions), clone/fork/vfork/exec, exit, the
/// waits that take a signal mask, sockets, pipes, poll/select/epoll, SysV IPC, wait4/waitid
/// and the credential calls. A syscall the dispatcher starts to serve must leave `Pass`.
fn stub_for(nr: i64) -> Option<Stub> {
    Some(match nr {
        libc::SYS_read
        | libc::SYS_write
        | libc::SYS_readv
        | libc::SYS_writev
        | libc::SYS_pwrite64
        | libc::SYS_pwritev
        | libc::SYS_preadv2
        | libc::SYS_pwritev2 => Stub::Fd,
        libc::SYS_fcntl => Stub::Fcntl,
        libc::SYS_ioctl => Stub::Ioctl,
        libc::SYS_close => Stub::Close,
        libc::SYS_rt_sigaction => Stub::Sigaction,
        libc::SYS_open => Stub::Open,
        libc::SYS_openat | libc::SYS_openat2 => Stub::OpenAt,
        libc::SYS_stat
        | libc::SYS_fstat
        | libc::SYS_lstat
        | libc::SYS_newfstatat
        | libc::SYS_statx
        | libc::SYS_lseek
        | libc::SYS_pread64
        | libc::SYS_preadv
        | libc::SYS_mmap
        | libc::SYS_mprotect
        | libc::SYS_munmap
        | libc::SYS_mremap
        | libc::SYS_brk
        | libc::SYS_madvise
        | libc::SYS_msync
        | libc::SYS_mincore
        | libc::SYS_mlock
        | libc::SYS_munlock
        | libc::SYS_access
        | libc::SYS_faccessat
        | libc::SYS_faccessat2
        | libc::SYS_getdents64
        | libc::SYS_getcwd
        | libc::SYS_chdir
        | libc::SYS_fchdir
        | libc::SYS_rename
        | libc::SYS_renameat
        | libc::SYS_renameat2
        | libc::SYS_mkdir
        | libc::SYS_mkdirat
        | libc::SYS_rmdir
        | libc::SYS_link
        | libc::SYS_linkat
        | libc::SYS_unlink
        | libc::SYS_unlinkat
        | libc::SYS_symlink
        | libc::SYS_symlinkat
        | libc::SYS_readlink
        | libc::SYS_readlinkat
        | libc::SYS_chmod
        | libc::SYS_fchmod
        | libc::SYS_fchmodat
        | libc::SYS_chown
        | libc::SYS_fchown
        | libc::SYS_lchown
        | libc::SYS_fchownat
        | libc::SYS_umask
        | libc::SYS_truncate
        | libc::SYS_ftruncate
        | libc::SYS_fsync
        | libc::SYS_fdatasync
        | libc::SYS_fallocate
        | libc::SYS_fadvise64
        | libc::SYS_flock
        | libc::SYS_utimensat
        | libc::SYS_statfs
        | libc::SYS_fstatfs
        | libc::SYS_getxattr
        | libc::SYS_lgetxattr
        | libc::SYS_fgetxattr
        | libc::SYS_listxattr
        | libc::SYS_llistxattr
        | libc::SYS_flistxattr
        | libc::SYS_copy_file_range
        | libc::SYS_futex
        | libc::SYS_sched_yield
        | libc::SYS_nanosleep
        | libc::SYS_clock_nanosleep
        | libc::SYS_clock_gettime
        | libc::SYS_clock_getres
        | libc::SYS_gettimeofday
        | libc::SYS_time
        | libc::SYS_getpid
        | libc::SYS_getppid
        | libc::SYS_gettid
        | libc::SYS_getuid
        | libc::SYS_geteuid
        | libc::SYS_getgid
        | libc::SYS_getegid
        | libc::SYS_getresuid
        | libc::SYS_getresgid
        | libc::SYS_getgroups
        | libc::SYS_getpgrp
        | libc::SYS_getpgid
        | libc::SYS_getsid
        | libc::SYS_getrlimit
        | libc::SYS_prlimit64
        | libc::SYS_getrusage
        | libc::SYS_getpriority
        | libc::SYS_uname
        | libc::SYS_sysinfo
        | libc::SYS_times
        | libc::SYS_getcpu
        | libc::SYS_getrandom
        | libc::SYS_sched_getaffinity
        | libc::SYS_sched_setaffinity
        | libc::SYS_sched_getparam
        | libc::SYS_sched_getscheduler
        | libc::SYS_set_robust_list
        | libc::SYS_rseq
        | libc::SYS_membarrier
        | libc::SYS_kill
        | libc::SYS_tkill
        | libc::SYS_tgkill
        | libc::SYS_rt_sigpending
        | libc::SYS_setitimer
        | libc::SYS_getitimer
        | libc::SYS_alarm
        | libc::SYS_timerfd_create
        | libc::SYS_timerfd_settime
        | libc::SYS_timerfd_gettime
        | libc::SYS_eventfd2
        | libc::SYS_inotify_init1
        | libc::SYS_inotify_add_watch
        | libc::SYS_inotify_rm_watch
        | libc::SYS_memfd_create
        | libc::SYS_readahead
        | libc::SYS_sync
        | libc::SYS_syncfs => Stub::Pass,
        _ => return None,
    })
}

/// Adds the calls this thread made through rewritten sites since its last trap to the
/// namespace's count.
pub(super) fn count_patched() {
    let t = tls();
    let n = t.patched.load(Ordering::Relaxed);
    if n != 0 {
        t.patched.store(0, Ordering::Relaxed);
        if let Some(r) = crate::base::region::active() {
            r.header().counters.sud_patched_calls.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Before a trap is handled: counts this thread's calls through rewritten sites, and rewrites
/// the site the trap came from if it can. Runs in the SIGSYS handler, under its guard.
pub(super) fn on_trap(uc: &ucontext_t) {
    let g = |r: i32| uc.uc_mcontext.gregs[r as usize] as u64;
    count_patched();
    let nr = g(REG_RAX) as i64;
    if nr == libc::SYS_clone
        && g(REG_RDI) & (libc::CLONE_VM | libc::CLONE_VFORK) as u64 == libc::CLONE_VM as u64
    {
        thread::THREADED.store(true, Ordering::Relaxed);
    }
    if !ENABLED.load(Ordering::Acquire) {
        return;
    }
    // Sites are known by their return address (the instruction after the `syscall`).
    let ret = g(REG_RIP) as usize;
    // SAFETY: the kernel's 64-bit sigset is the first word of glibc's uc_sigmask.
    let mask = unsafe { *(&raw const uc.uc_sigmask as *const u64) };
    let user = User::new(mask);
    // The first trap in an object this image has not seen: the sites other processes
    // found in it are rewritten, this one maybe too. Not in a vfork child: its text and
    // tables are its parent's.
    let vfork = in_vfork_child();
    if !vfork && sites::get(ret).is_none() {
        cache::first_trap(ret, user);
    }
    let Some(stub) = stub_for(nr) else { return };
    // In a vfork child, only rt_sigaction (posix_spawn's child queries every signal; its
    // parent may never make the call twice). The text, the site table and the parent's
    // threads are as in the parent, which waits.
    if vfork && stub != Stub::Sigaction {
        return;
    }
    // A traced call on a pipe is logged by the dispatcher even when the kernel answers it.
    if stub != Stub::Pass && crate::base::trace::on() {
        return;
    }
    // One that traps once only (start-up code) is not worth rewriting in this process: a site
    // is rewritten at its second trap, and recorded for the next ones at its first.
    let seen = sites::get(ret);
    if seen.is_some_and(|v| v != sites::SEEN) {
        return;
    }
    if BUSY.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        return;
    }
    let done = if seen.is_none() {
        sites::put(ret, sites::SEEN);
        if !vfork && cache::on() && rewritable(ret, nr as u32, user).is_some() {
            cache::record(ret, nr as u32);
        }
        None
    } else {
        let done = rewrite(ret, nr as u32, stub, user);
        sites::put(ret, done.unwrap_or(sites::REFUSED));
        done
    };
    BUSY.store(false, Ordering::Release);
    if done.is_some()
        && let Some(r) = crate::base::region::active()
    {
        r.header().counters.sud_patched_sites.fetch_add(1, Ordering::Relaxed);
    }
}

/// Bytes that, just before a `b8`, could make it part of another instruction: a REX or
/// operand-size prefix (mov to r8d, movabs, mov to ax) or an escape whose payload it would be
/// (0f, VEX, EVEX, XOP). Other prefixes (segment, lock, rep, address size) leave a `mov $imm32,
/// %eax` and the `jmp` that replaces it meaning what they meant without them.
fn prefix(b: u8) -> bool {
    matches!(b, 0x40..=0x4f | 0x66 | 0x0f | 0x62 | 0x8f | 0xc4 | 0xc5)
}

/// How the site's 5 bytes are replaced.
#[derive(Clone, Copy)]
enum Store {
    /// One locked compare-and-swap of the aligned 8- or 16-byte word at `.0`.
    Word(usize, usize),
    /// Plain stores: no other thread exists.
    Plain,
    /// Through a 2-byte `jmp .` that other threads spin on meanwhile (see `spin_replace`).
    Spin,
    /// An `xor` site's 2 bytes by one locked store (see `short_replace`).
    Short,
}

/// A `mov` whose 5 bytes cross a page is never rewritten (two pages to make writable).
fn within_page(site: usize) -> Option<()> {
    (site % 4096 <= 4096 - 5).then_some(())
}

fn store_kind(s: &Site) -> Option<Store> {
    let site = s.at;
    within_page(site)?;
    if s.head == Head::Xor {
        let threaded = thread::THREADED.load(Ordering::Relaxed);
        return (site % 64 != 63 && (!threaded || membarrier_ready())).then_some(Store::Short);
    }
    Some(if site % 8 <= 3 {
        Store::Word(site & !7, 8)
    } else if site % 16 <= 11 && cx16() {
        Store::Word(site & !15, 16)
    } else if !thread::THREADED.load(Ordering::Relaxed) {
        Store::Plain
    } else if site % 64 != 63 && membarrier_ready() {
        Store::Spin
    } else {
        return None;
    })
}

/// `mov $nr, %eax`.
fn mov(nr: u32) -> [u8; 5] {
    let n = nr.to_le_bytes();
    [0xb8, n[0], n[1], n[2], n[3]]
}

/// The longest run of instructions between the `mov` and the `syscall` a site may have.
const MAX_GAP: usize = 16;

/// How a site sets the call's number.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Head {
    /// `mov $nr, %eax` (5 bytes), replaced by a `jmp rel32` to the trampoline.
    Mov,
    /// glibc's `read`: `xor %eax, %eax` (2 bytes) right before the `syscall`, replaced by a
    /// `jmp rel8` to a landing spot in dead padding nearby that holds the `jmp rel32`.
    Xor,
}

/// `xor %eax, %eax` and a 3-byte `nop`: a trampoline's first 5 bytes for a `Head::Xor` site.
const XOR_HEAD: [u8; 5] = [0x31, 0xc0, 0x0f, 0x1f, 0x00];

/// Finds the site of the `syscall` that returns to `ret`: `mov $nr, %eax` at `site`, then
/// `gap` (instructions the trampoline can copy), then the `syscall`. The `mov` nearest the
/// `syscall` is taken; for `read` (nr 0), failing a `mov`, an `xor %eax, %eax` right before.
fn find_site(ret: usize, nr: u32, user: User) -> Option<(usize, Gap, Head)> {
    // The bytes before `ret`: as many as can be read (the page before may be unmapped).
    let (bytes, n): ([u8; MAX_GAP + 8], usize) = match user.read(ret - MAX_GAP - 8) {
        Some(b) => (b, MAX_GAP + 8),
        None => {
            let tail: [u8; 8] = user.read(ret - 8)?;
            let mut b = [0u8; MAX_GAP + 8];
            b[MAX_GAP..].copy_from_slice(&tail);
            (b, 8)
        }
    };
    let at = |addr: usize| bytes[addr + MAX_GAP + 8 - ret];
    if at(ret - 2) != 0x0f || at(ret - 1) != 0x05 {
        return None;
    }
    let mov = mov(nr);
    let found = (0..=MAX_GAP).filter(|k| k + 8 <= n).find_map(|k| {
        let site = ret - 7 - k;
        let i = site - (ret - MAX_GAP - 8);
        if bytes[i..i + 5] != mov || prefix(bytes[i - 1]) {
            return None;
        }
        let gap = &bytes[i + 5..i + 5 + k];
        let mut off = 0;
        while off < k {
            off += copyable(&gap[off..])?;
        }
        (off == k).then(|| (site, Gap::new(gap), Head::Mov))
    });
    found.or_else(|| {
        let xor = [at(ret - 4), at(ret - 3)] == XOR_HEAD[..2] && !prefix(at(ret - 5));
        (nr == 0 && xor).then(|| (ret - 4, Gap::new(&[]), Head::Xor))
    })
}

/// The length of the padding instruction at the start of `b`: `int3`, or `nop` in its one- to
/// many-byte forms (`66`/`2e` prefixes, `0f 1f /0` with a memory operand), as assemblers
/// align code with.
fn padding_len(b: &[u8]) -> Option<usize> {
    if matches!(b.first()?, 0x90 | 0xcc) {
        return Some(1);
    }
    let mut i = 0;
    while i < 8 && matches!(b.get(i), Some(0x66 | 0x2e)) {
        i += 1;
    }
    if i > 0 && b.get(i) == Some(&0x90) {
        return Some(i + 1);
    }
    if b.get(i..i + 2)? != [0x0f, 0x1f] {
        return None;
    }
    let modrm = *b.get(i + 2)?;
    let (md, reg, rm) = (modrm >> 6, modrm >> 3 & 7, modrm & 7);
    if md == 3 || reg != 0 {
        return None;
    }
    let mut len = i + 3;
    if rm == 4 {
        let sib = *b.get(len)?;
        len += 1 + if md == 0 && sib & 7 == 5 { 4 } else { 0 };
    } else if md == 0 && rm == 5 {
        len += 4;
    }
    len += [0, 1, 4][md as usize];
    (len <= b.len()).then_some(len)
}

/// Whether `b` is nothing but padding instructions.
fn all_padding(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        match padding_len(&b[i..]) {
            Some(n) => i += n,
            None => return false,
        }
    }
    true
}

/// Where the `jmp rel32` of a `Head::Xor` site at `site` (returning to `ret`) can go: 5 dead
/// bytes on the site's page within a `jmp rel8`'s reach of it, either the alignment padding
/// after the `[cmp $imm32, %rax;] [jcc;] ret` that follows the `syscall` (glibc's wrappers), or
/// the padding between the end of the site's function (its FDE) and the next one.
fn landing(site: usize, ret: usize, user: User) -> Option<usize> {
    let page_end = (site & !4095) + 4096;
    let fits = |p: usize| p >= ret && p + 5 <= page_end && p - (site + 2) <= 127;
    after_return(ret, page_end, user)
        .filter(|&p| fits(p))
        .or_else(|| after_function(site, ret, user).filter(|&p| fits(p)))
}

/// The padding after the `ret` that follows a site's `syscall` (see `landing`), up to the
/// next 16-byte boundary, if it is at least 5 bytes.
fn after_return(ret: usize, page_end: usize, user: User) -> Option<usize> {
    let mut b = [0u8; 32];
    let n = b.len().min(page_end - ret);
    if !user.copy_in(&mut b[..n], ret) {
        return None;
    }
    let b = &b[..n];
    let mut i = 0;
    if b.get(..2)? == [0x48, 0x3d] {
        i += 6;
    }
    match *b.get(i)? {
        0x70..=0x7f => i += 2,
        0x0f if matches!(b.get(i + 1)?, 0x80..=0x8f) => i += 6,
        _ => {}
    }
    if *b.get(i)? != 0xc3 {
        return None;
    }
    let pad = ret + i + 1;
    let end = pad.next_multiple_of(16);
    (end - pad >= 5 && end - ret <= n && all_padding(&b[i + 1..end - ret])).then_some(pad)
}

/// The padding between the end of the function holding [site, ret) and the next function,
/// from the object's `.eh_frame_hdr` search table and the function's FDE, if it is at most 64
/// bytes and all padding.
fn after_function(site: usize, ret: usize, user: User) -> Option<usize> {
    let hdr = find_object(site)?.eh_frame;
    if hdr == 0 {
        return None;
    }
    // Version 1; eh_frame_ptr pcrel sdata4, fde_count udata4, the table datarel sdata4.
    let h: [u8; 12] = user.read(hdr)?;
    if h[..4] != [1, 0x1b, 0x03, 0x3b] {
        return None;
    }
    let count = u32::from_le_bytes(h[8..].try_into().ok()?) as usize;
    let entry = |i: usize| -> Option<(usize, usize)> {
        let e: [i32; 2] = user.read(hdr + 12 + 8 * i)?;
        Some((hdr.wrapping_add_signed(e[0] as isize), hdr.wrapping_add_signed(e[1] as isize)))
    };
    // The first function starting after the site; the one before holds it.
    let (mut lo, mut hi) = (0, count);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if entry(mid)?.0 <= site {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if lo == 0 || lo >= count {
        return None;
    }
    let ((start, fde), next) = (entry(lo - 1)?, entry(lo)?.0);
    // length, CIE pointer, pc_begin (pcrel sdata4, checked against the table), pc_range.
    let f: [i32; 4] = user.read(fde)?;
    if f[0] <= 0 || f[1] == 0 || (fde + 8).wrapping_add_signed(f[2] as isize) != start {
        return None;
    }
    let end = start.checked_add(f[3] as u32 as usize)?;
    if !(start <= site && ret <= end && (5..=64).contains(&(next.saturating_sub(end)))) {
        return None;
    }
    let mut b = [0u8; 64];
    let gap = &mut b[..next - end];
    (user.copy_in(gap, end) && all_padding(gap)).then_some(end)
}

/// Instructions between a site's `mov` and its `syscall`, copied into its trampoline.
#[derive(Clone, Copy)]
struct Gap {
    bytes: [u8; MAX_GAP],
    len: usize,
}

impl Gap {
    fn new(b: &[u8]) -> Gap {
        let mut bytes = [0u8; MAX_GAP];
        bytes[..b.len()].copy_from_slice(b);
        Gap { bytes, len: b.len() }
    }
}

/// The length of the instruction at the start of `b` if it is one a trampoline can run in
/// place of the original: register to register or immediate to register, writing neither
/// rax nor rsp (the call's number and the stack), touching no memory; None otherwise.
fn copyable(b: &[u8]) -> Option<usize> {
    let (rex, rest) = match *b.first()? {
        r @ 0x40..=0x4f => (r, &b[1..]),
        _ => (0, b),
    };
    let p = usize::from(rex != 0);
    let (w, r, x) = (rex & 8 != 0, (rex >> 2) & 1, rex & 1);
    let op = *rest.first()?;
    let modrm = rest.get(1).copied().filter(|m| m >> 6 == 3);
    // Register 0 is rax (al, or ah without REX), 4 rsp (spl; ah without REX).
    let dst_ok = |d: u8| d != 0 && d != 4;
    let len = match op {
        // mov and xor, register to register; the destination in r/m, or in reg.
        0x89 | 0x31 => dst_ok((modrm? & 7) | x << 3).then_some(2)?,
        0x8b | 0x33 => dst_ok((modrm? >> 3 & 7) | r << 3).then_some(2)?,
        // mov $imm32 (or $imm64 with REX.W), register.
        0xb8..=0xbf => dst_ok((op - 0xb8) | x << 3).then_some(if w { 9 } else { 5 })?,
        // ALU op $imm8 on an 8-bit or a 32/64-bit register.
        0x80 | 0x83 => dst_ok((modrm? & 7) | x << 3).then_some(3)?,
        // mov $imm32, register (sign-extended with REX.W).
        0xc7 => (modrm? >> 3 & 7 == 0 && dst_ok((modrm? & 7) | x << 3)).then_some(6)?,
        _ => return None,
    };
    (p + len <= b.len()).then_some(p + len)
}

/// A site the rewriter may rewrite, checked against the bytes in memory: its `mov`, the
/// instructions between, and the protection of the code segment holding it.
struct Rewritable {
    site: Site,
    prot: usize,
}

/// A site as found in memory: where its `mov` or `xor` is, the instructions between it and
/// the `syscall`, and for an `xor` the landing spot of its `jmp rel8` (0 for a `mov`).
#[derive(Clone, Copy)]
struct Site {
    at: usize,
    gap: Gap,
    head: Head,
    pad: usize,
}

/// The site whose `syscall` returns to `ret`, if it makes call `nr` in a way the rewriter
/// handles (the protection of its code not checked).
fn site_at(ret: usize, nr: u32, user: User) -> Option<Site> {
    let (at, gap, head) = find_site(ret, nr, user)?;
    within_page(at)?;
    let pad = match head {
        Head::Mov => 0,
        Head::Xor => landing(at, ret, user)?,
    };
    Some(Site { at, gap, head, pad })
}

/// The site whose `syscall` returns to `ret`, if it makes call `nr` in a way the rewriter
/// handles, in code it may rewrite.
fn rewritable(ret: usize, nr: u32, user: User) -> Option<Rewritable> {
    let site = site_at(ret, nr, user)?;
    let prot = code_protection(site.at, ret, user)?;
    Some(Rewritable { site, prot })
}

/// Rewrites the site whose `syscall` returns to `ret` so that its `mov` jumps to a trampoline
/// for `stub`; the trampoline's address, or None if the site must keep trapping.
fn rewrite(ret: usize, nr: u32, stub: Stub, user: User) -> Option<usize> {
    let r = rewritable(ret, nr, user)?;
    let page = r.site.at & !4095;
    let rwx = r.prot | libc::PROT_WRITE as usize;
    // The trampoline first: a site whose slot cannot be had costs no mprotect.
    let store = store_kind(&r.site)?;
    let tramp = trampolines::make(&r.site, ret, nr, stub)?;
    syscall6(libc::SYS_mprotect, page, 4096, rwx, 0, 0, 0).ok()?;
    let ok = store_jmp(&r.site, nr, store, tramp);
    let _ = syscall6(libc::SYS_mprotect, page, 4096, r.prot, 0, 0, 0);
    ok.then_some(tramp)
}

/// Replaces the `mov $nr, %eax` (or the `xor`) of `s`, on a page made writable, with a `jmp`
/// to `tramp`.
fn store_jmp(s: &Site, nr: u32, store: Store, tramp: usize) -> bool {
    let site = if s.head == Head::Xor { s.pad } else { s.at };
    let rel = (tramp as i64 - (site as i64 + 5)) as i32;
    let mut jmp = [0xe9u8; 5];
    jmp[1..].copy_from_slice(&rel.to_le_bytes());
    match store {
        // SAFETY: the page is writable, the pad dead bytes, and `s.at` holds the `xor`
        // (checked by `find_site`), 2 bytes in one cache line (`store_kind`).
        Store::Short => unsafe { short_replace(s.at, s.pad, &jmp) },
        Store::Plain => {
            // SAFETY: the page is writable now, and no other thread exists to execute it.
            unsafe { core::ptr::copy_nonoverlapping(jmp.as_ptr(), site as *mut u8, 5) };
            true
        }
        // SAFETY: `word` is an aligned word of the writable page holding the site.
        Store::Word(word, size) => unsafe { replace(word, size, site - word, &jmp) },
        // SAFETY: the page is writable, and `site` holds the `mov` (checked by `find_site`).
        Store::Spin => unsafe { spin_replace(site, &mov(nr), &jmp) },
    }
}

/// Rewrites an `xor` site: the `jmp` to its trampoline into the dead padding at `pad` (no
/// thread executes those bytes; every core serialized after it when there may be threads, so
/// none holds them stale), then the `xor` becomes a `jmp rel8` to it in one locked store.
///
/// # Safety
/// `site` must hold `xor %eax, %eax` (2 bytes in one cache line) and `pad` 5 bytes of padding
/// no code reaches, both on a writable page, and only one thread may rewrite at a time.
unsafe fn short_replace(site: usize, pad: usize, jmp: &[u8; 5]) -> bool {
    // SAFETY: the caller's writable, dead bytes.
    unsafe { core::ptr::copy_nonoverlapping(jmp.as_ptr(), pad as *mut u8, 5) };
    if thread::THREADED.load(Ordering::Relaxed) {
        sync_cores();
    }
    // Known before any thread can stop there (see `settle`).
    if !pads::add(pad, site) {
        return false;
    }
    let short = u16::from_le_bytes([0xeb, (pad - (site + 2)) as u8]);
    // SAFETY: the caller's writable site.
    unsafe { cas16(site, u16::from_le_bytes([XOR_HEAD[0], XOR_HEAD[1]]), short) }
}

/// A site being rewritten through a `jmp .` (Store::Spin) and its original 5 bytes, for a fork
/// child to put back (its copy of the rewriting thread is gone).
static PENDING: AtomicUsize = AtomicUsize::new(0);
static PENDING_MOV: AtomicU64 = AtomicU64::new(0);

/// Linux's text_poke_bp with `jmp .` (eb fe) for int3, so that no thread needs a signal, a
/// handler or an unblocked mask: the first two bytes become `jmp .` (one locked store; a
/// thread arriving spins there), every core is serialized (no thread is left decoding the old
/// `mov`), the last three bytes are written, every core is serialized again, and the first two
/// become the `jmp`'s, releasing the spinners onto the finished instruction.
///
/// # Safety
/// `site` must hold `old` (5 bytes) on a writable page, with `site % 64 != 63` (the two bytes
/// that change first in one cache line, so no core fetches one new and one old), and only one
/// thread may rewrite at a time.
unsafe fn spin_replace(site: usize, old: &[u8; 5], new: &[u8; 5]) -> bool {
    let mut mov = [0u8; 8];
    mov[..5].copy_from_slice(old);
    PENDING_MOV.store(u64::from_le_bytes(mov), Ordering::Relaxed);
    PENDING.store(site, Ordering::SeqCst);
    let head = |b: &[u8]| u16::from_le_bytes([b[0], b[1]]);
    // SAFETY: the caller's writable site.
    let ok = unsafe { cas16(site, head(old), 0xfeeb) };
    if ok {
        sync_cores();
        // SAFETY: as above; no thread executes these bytes now (they spin before them).
        unsafe { core::ptr::copy_nonoverlapping(new[2..].as_ptr(), (site + 2) as *mut u8, 3) };
        sync_cores();
        // SAFETY: as above.
        unsafe { cas16(site, 0xfeeb, head(new)) };
    }
    PENDING.store(0, Ordering::SeqCst);
    ok
}

/// A locked compare-and-swap of the two bytes at `at` (any alignment within a cache line).
///
/// # Safety
/// `at` must be writable for 2 bytes.
unsafe fn cas16(at: usize, old: u16, new: u16) -> bool {
    let ok: u8;
    // SAFETY: a locked cmpxchg on the caller's two bytes.
    unsafe {
        core::arch::asm!(
            "lock cmpxchg word ptr [{at}], {new:x}",
            "sete {ok}",
            at = in(reg) at,
            new = in(reg) new,
            ok = out(reg_byte) ok,
            inout("ax") old => _,
        );
    }
    ok != 0
}

/// MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE and its registration (linux/membarrier.h).
const SYNC_CORE: usize = 1 << 5;
const REGISTER_SYNC_CORE: usize = 1 << 6;

/// Whether every thread can be made to serialize its core: registers for it (idempotent, and
/// each process needs its own registration).
fn membarrier_ready() -> bool {
    syscall6(libc::SYS_membarrier, REGISTER_SYNC_CORE, 0, 0, 0, 0, 0).is_ok()
}

/// Makes every running thread of this process execute a serializing instruction.
fn sync_cores() {
    let _ = syscall6(libc::SYS_membarrier, SYNC_CORE, 0, 0, 0, 0, 0);
}

/// Replaces `new.len()` bytes at offset `at` of the aligned `size`-byte word at `word` with one
/// locked compare-and-swap. False if the word changed meanwhile.
///
/// # Safety
/// `word` must be an aligned, writable `size`-byte word (8 or 16).
unsafe fn replace(word: usize, size: usize, at: usize, new: &[u8]) -> bool {
    let mut old = [0u8; 16];
    // SAFETY: the caller's word is readable.
    unsafe { core::ptr::copy_nonoverlapping(word as *const u8, old.as_mut_ptr(), size) };
    let mut want = old;
    want[at..at + new.len()].copy_from_slice(new);
    let (lo, hi) =
        (u64::from_le_bytes(old[..8].try_into().unwrap()), u64::from_le_bytes(old[8..].try_into().unwrap()));
    let (nlo, nhi) = (
        u64::from_le_bytes(want[..8].try_into().unwrap()),
        u64::from_le_bytes(want[8..].try_into().unwrap()),
    );
    if size == 8 {
        // SAFETY: an aligned, writable u64 (the caller's word).
        let a = unsafe { &*(word as *const core::sync::atomic::AtomicU64) };
        return a.compare_exchange(lo, nlo, Ordering::SeqCst, Ordering::Relaxed).is_ok();
    }
    let ok: u8;
    // SAFETY: cmpxchg16b on the caller's aligned, writable 16-byte word; rbx (which asm! may
    // not name) is swapped with rdi around it.
    unsafe {
        core::arch::asm!(
            "xchg rdi, rbx",
            "lock cmpxchg16b xmmword ptr [rsi]",
            "sete r8b",
            "mov rbx, rdi",
            in("rsi") word,
            inout("rdi") nlo => _,
            inout("rax") lo => _,
            inout("rdx") hi => _,
            in("rcx") nhi,
            out("r8b") ok,
        );
    }
    ok != 0
}

/// The protection of the executable segment holding [site-1, ret) in an object the dynamic
/// linker loaded (not ours, not the vDSO), from its program headers; None otherwise.
fn code_protection(site: usize, ret: usize, user: User) -> Option<usize> {
    let o = find_object(site)?;
    let mut prot = None;
    program_headers(&o, user, |ph, start| {
        let here = ph.p_type == libc::PT_LOAD && start < site && ret <= start + ph.p_filesz as usize;
        if here {
            prot = Some(segment_protection(ph));
        }
        here
    })?;
    prot?
}

/// The protection of a loaded segment if it is code the rewriter may change: executable and
/// not writable.
fn segment_protection(ph: &libc::Elf64_Phdr) -> Option<usize> {
    let f = ph.p_flags;
    if f & libc::PF_X == 0 || f & libc::PF_W != 0 {
        return None;
    }
    let read = if f & libc::PF_R != 0 { libc::PROT_READ } else { 0 };
    Some((read | libc::PROT_EXEC) as usize)
}

/// Calls `each(header, where its segment starts in memory)` for the program headers of `o`
/// until it returns true, `o` being an object the dynamic linker loaded (not ours, not the vDSO); its load bias, or None if it
/// is ours or the vDSO or its headers are not where its first segment maps the file's start.
fn program_headers(
    o: &Object,
    user: User,
    mut each: impl FnMut(&libc::Elf64_Phdr, usize) -> bool,
) -> Option<usize> {
    if o.link_map == OWN_MAP.load(Ordering::Relaxed) || o.link_map == VDSO.load(Ordering::Relaxed) {
        return None;
    }
    // struct link_map starts with l_addr, the load bias.
    let bias: usize = user.read(o.link_map)?;
    let ehdr = o.map_start & !4095;
    let head: [u8; 64] = user.read(ehdr)?;
    let u16_at = |i: usize| u16::from_le_bytes([head[i], head[i + 1]]) as usize;
    if head[..4] != *b"\x7fELF" || head[4] != 2 || u16_at(54) != size_of::<libc::Elf64_Phdr>() {
        return None;
    }
    let phoff = u64::from_le_bytes(head[32..40].try_into().ok()?) as usize;
    let mut first = true;
    for i in 0..u16_at(56).min(64) {
        let ph: libc::Elf64_Phdr = user.read(ehdr + phoff + i * size_of::<libc::Elf64_Phdr>())?;
        let start = bias.wrapping_add(ph.p_vaddr as usize);
        if ph.p_type == libc::PT_LOAD {
            // The headers are read where the first segment maps the file's start.
            if first && (ph.p_offset != 0 || start & !4095 != ehdr) {
                return None;
            }
            first = false;
        }
        if each(&ph, start) {
            break;
        }
    }
    Some(bias)
}

/// If `uc` was interrupted in a rewritten site's trampoline or stub, moves it to the site's
/// own state (see the module comment). For a signal about to reach an application handler.
pub(crate) fn settle(uc: &mut ucontext_t) {
    let gr = &mut uc.uc_mcontext.gregs;
    let mut r = Regs {
        rip: gr[REG_RIP as usize] as usize,
        rsp: gr[REG_RSP as usize] as usize,
        rax: gr[REG_RAX as usize] as u64,
        rcx: gr[REG_RCX as usize] as u64,
        rdx: gr[REG_RDX as usize] as u64,
        rsi: gr[REG_RSI as usize] as u64,
        eflags: gr[REG_EFL as usize] as u64,
    };
    if !(trampolines::settle(&mut r) || stubs::settle_stub(&mut r) || pads::settle(&mut r)) {
        return;
    }
    gr[REG_RIP as usize] = r.rip as i64;
    gr[REG_RSP as usize] = r.rsp as i64;
    gr[REG_RAX as usize] = r.rax as i64;
    gr[REG_RDX as usize] = r.rdx as i64;
    gr[REG_RSI as usize] = r.rsi as i64;
    gr[REG_EFL as usize] = r.eflags as i64;
}

/// The sites seen: rewritten (their trampoline) or refused. Written under BUSY, read by any
/// thread; open-addressed tables that stop taking sites when full. The first sites go to a
/// table of one page, which most processes never outgrow: each page of a table costs a fault
/// at its first touch (two with the read before the write), in every process and fork child,
/// and a bigger table spreads a few sites over many pages.
mod sites {
    use super::*;

    pub(super) const REFUSED: usize = 1;
    /// Trapped once.
    pub(super) const SEEN: usize = 2;

    /// A site's return address and what is known of it, in one 16-byte line.
    struct Entry {
        key: AtomicUsize,
        value: AtomicUsize,
    }

    #[repr(C, align(4096))]
    struct Table<const N: usize>([Entry; N]);

    static FIRST: Table<256> =
        Table([const { Entry { key: AtomicUsize::new(0), value: AtomicUsize::new(0) } }; 256]);
    static MORE: Table<4096> =
        Table([const { Entry { key: AtomicUsize::new(0), value: AtomicUsize::new(0) } }; 4096]);
    /// Sites in FIRST (taken there while it is less than half full), and whether MORE holds any.
    static FIRST_USED: AtomicUsize = AtomicUsize::new(0);
    static MORE_USED: AtomicBool = AtomicBool::new(false);

    fn slots<const N: usize>(t: &'static Table<N>, site: usize) -> impl Iterator<Item = &'static Entry> {
        let h = site.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
        (0..N).map(move |i| &t.0[(h + i) % N])
    }

    fn find<const N: usize>(t: &'static Table<N>, site: usize) -> Option<usize> {
        for e in slots(t, site) {
            match e.key.load(Ordering::Acquire) {
                0 => return None,
                k if k == site => return Some(e.value.load(Ordering::Relaxed)),
                _ => {}
            }
        }
        None
    }

    pub(super) fn get(site: usize) -> Option<usize> {
        find(&FIRST, site)
            .or_else(|| if MORE_USED.load(Ordering::Acquire) { find(&MORE, site) } else { None })
    }

    /// What `store` did.
    enum Stored {
        Updated,
        Added,
        No,
    }

    /// Stores `value` in the entry of `site`, or in a new one if `room`.
    fn store<const N: usize>(t: &'static Table<N>, site: usize, value: usize, room: bool) -> Stored {
        for e in slots(t, site).take(N / 2) {
            match e.key.load(Ordering::Relaxed) {
                0 if room => {
                    e.value.store(value, Ordering::Relaxed);
                    e.key.store(site, Ordering::Release);
                    return Stored::Added;
                }
                0 => return Stored::No,
                k if k == site => {
                    e.value.store(value, Ordering::Relaxed);
                    return Stored::Updated;
                }
                _ => {}
            }
        }
        Stored::No
    }

    /// Only under BUSY.
    pub(super) fn put(site: usize, value: usize) {
        let used = FIRST_USED.load(Ordering::Relaxed);
        match store(&FIRST, site, value, used < FIRST.0.len() / 2) {
            Stored::Added => FIRST_USED.store(used + 1, Ordering::Relaxed),
            Stored::Updated => {}
            Stored::No => {
                if !matches!(store(&MORE, site, value, true), Stored::No) {
                    MORE_USED.store(true, Ordering::Release);
                }
            }
        }
    }
}

/// The landing spots of rewritten `xor` sites and their sites: a thread stopped on one (its
/// `jmp rel8` taken, the `jmp` there not yet) is at its site, whose `jmp rel8` has done nothing
/// yet. Written under BUSY, read by any thread.
mod pads {
    use super::*;

    const N: usize = 64;
    static PAD: [AtomicUsize; N] = [const { AtomicUsize::new(0) }; N];
    static SITE: [AtomicUsize; N] = [const { AtomicUsize::new(0) }; N];
    static USED: AtomicUsize = AtomicUsize::new(0);

    /// False when the table is full (the site then keeps trapping).
    pub(super) fn add(pad: usize, site: usize) -> bool {
        let n = USED.load(Ordering::Relaxed);
        if n == N {
            return false;
        }
        SITE[n].store(site, Ordering::Relaxed);
        PAD[n].store(pad, Ordering::Relaxed);
        USED.store(n + 1, Ordering::Release);
        true
    }

    /// `r` stopped on a landing spot: back at its site.
    pub(super) fn settle(r: &mut Regs) -> bool {
        let n = USED.load(Ordering::Acquire);
        let Some(i) = PAD[..n].iter().position(|p| p.load(Ordering::Relaxed) == r.rip) else { return false };
        r.rip = SITE[i].load(Ordering::Relaxed);
        true
    }
}

/// Trampolines: 64-byte slots in chunks mapped near the sites they serve, filled once (under
/// BUSY) and never changed, so no thread can execute a half-written one.
mod trampolines {
    use super::*;

    const SLOT: usize = 64;
    const CHUNK: usize = 64 * 1024;
    const MAX_CHUNKS: usize = 64;
    /// Offsets in a slot: the length of the copied instructions (and above its 8 bits, of the
    /// site's `mov` or `xor`), the stub's address and the site's return address.
    const GAP_AT: usize = 40;
    const STUB_AT: usize = 48;
    const RET_AT: usize = 56;
    static CHUNKS: [AtomicUsize; MAX_CHUNKS] = [const { AtomicUsize::new(0) }; MAX_CHUNKS];
    static USED: [AtomicU32; MAX_CHUNKS] = [const { AtomicU32::new(0) }; MAX_CHUNKS];

    /// rel32 reach, less a chunk.
    fn reaches(a: usize, b: usize) -> bool {
        (a as i64 - b as i64).unsigned_abs() < (1 << 31) - CHUNK as u64
    }

    /// A new trampoline for the site: `mov $nr, %eax` (`xor %eax, %eax; nop`), the site's
    /// `gap`, `lea -128(%rsp), %rsp`, `pushq ret`, `jmp stub` (direct when the stub is within
    /// a rel32's reach, as it is when the shim is mapped among the libraries: no load, no
    /// indirect branch). None if no slot within reach can be had.
    pub(super) fn make(s: &Site, ret: usize, nr: u32, stub: Stub) -> Option<usize> {
        let (site, gap) = (s.at, &s.gap);
        let slot = alloc(site)?;
        let mut code = [0xccu8; SLOT];
        let k = gap.len;
        // The site's own length of the head (in the word at GAP_AT, above the gap's).
        let (head, head_len) = match s.head {
            Head::Mov => (mov(nr), 5),
            Head::Xor => (XOR_HEAD, 2),
        };
        code[..5].copy_from_slice(&head);
        code[5..5 + k].copy_from_slice(&gap.bytes[..k]);
        // lea -0x80(%rsp), %rsp; pushq RET_AT(%rip); jmp stub or jmp *STUB_AT(%rip) (displacements from
        // the next instruction).
        let (lea, push, jmp) = (5 + k, 10 + k, 16 + k);
        code[lea..push].copy_from_slice(&[0x48, 0x8d, 0x64, 0x24, 0x80]);
        code[push..push + 2].copy_from_slice(&[0xff, 0x35]);
        code[push + 2..jmp].copy_from_slice(&((RET_AT - jmp) as u32).to_le_bytes());
        let rel = (stub.addr() as i64).wrapping_sub((slot + jmp + 5) as i64);
        if let Ok(rel) = i32::try_from(rel) {
            code[jmp] = 0xe9;
            code[jmp + 1..jmp + 5].copy_from_slice(&rel.to_le_bytes());
        } else {
            code[jmp..jmp + 2].copy_from_slice(&[0xff, 0x25]);
            code[jmp + 2..jmp + 6].copy_from_slice(&((STUB_AT - (jmp + 6)) as u32).to_le_bytes());
        }
        code[GAP_AT..GAP_AT + 8].copy_from_slice(&((k | head_len << 8) as u64).to_le_bytes());
        code[STUB_AT..STUB_AT + 8].copy_from_slice(&stub.addr().to_le_bytes());
        code[RET_AT..RET_AT + 8].copy_from_slice(&ret.to_le_bytes());
        // SAFETY: a fresh slot of a chunk we mapped read-write-execute; nothing jumps to it
        // before the site is rewritten, after this store.
        unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), slot as *mut u8, SLOT) };
        Some(slot)
    }

    fn alloc(site: usize) -> Option<usize> {
        for (c, used) in CHUNKS.iter().zip(&USED) {
            let base = c.load(Ordering::Acquire);
            if base == 0 {
                let base = map_near(site)?;
                used.store(1, Ordering::Relaxed);
                c.store(base, Ordering::Release);
                return Some(base);
            }
            let n = used.load(Ordering::Relaxed) as usize;
            if n < CHUNK / SLOT && reaches(base, site) {
                used.store(n as u32 + 1, Ordering::Relaxed);
                return Some(base + n * SLOT);
            }
        }
        None
    }

    /// A read-write-execute chunk within reach of `site`: above the loader first, then at
    /// growing distances on either side of the site.
    fn map_near(site: usize) -> Option<usize> {
        const FIXED_NOREPLACE: usize = 0x10_0000;
        let prot = (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as usize;
        let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as usize;
        let around = site & !(CHUNK - 1);
        let loader = LOADER_END.load(Ordering::Relaxed);
        let above_loader = (loader != 0).then(|| loader.next_multiple_of(CHUNK) + CHUNK);
        let hints =
            (20..31).flat_map(|shift| [around.wrapping_sub(1 << shift), around.wrapping_add(1 << shift)]);
        for hint in above_loader.filter(|&h| reaches(h, site)).into_iter().chain(hints) {
            let Ok(a) = syscall6(libc::SYS_mmap, hint, CHUNK, prot, flags | FIXED_NOREPLACE, usize::MAX, 0)
            else {
                continue;
            };
            if reaches(a, site) {
                return Some(a);
            }
            let _ = syscall6(libc::SYS_munmap, a, CHUNK, 0, 0, 0, 0);
        }
        None
    }

    /// `r` interrupted in a trampoline: at the site's `mov` or `xor` (not run yet, or run again:
    /// it sets eax and the flags as it did), in its copied instructions (the same ones of the
    /// site), or at its `syscall`.
    pub(super) fn settle(r: &mut Regs) -> bool {
        for (c, used) in CHUNKS.iter().zip(&USED) {
            let base = c.load(Ordering::Acquire);
            if base == 0 {
                break;
            }
            let n = used.load(Ordering::Relaxed) as usize;
            if !(base..base + n * SLOT).contains(&r.rip) {
                continue;
            }
            let slot = r.rip - (r.rip - base) % SLOT;
            // SAFETY: a slot `make` filled, with these words at these offsets.
            let (lens, ret) = unsafe {
                (((slot + GAP_AT) as *const usize).read(), ((slot + RET_AT) as *const usize).read())
            };
            let (k, head) = (lens & 0xff, lens >> 8);
            let syscall = ret - 2;
            let site = syscall - k - head;
            let o = r.rip - slot;
            if o < 5 {
                r.rip = site;
                return true;
            }
            if o < 5 + k {
                r.rip = site + head + (o - 5);
                return true;
            }
            r.rsp += match o - 5 - k {
                0..5 => 0,
                5..11 => 128,
                _ => 136,
            };
            r.rip = syscall;
            return true;
        }
        false
    }
}
