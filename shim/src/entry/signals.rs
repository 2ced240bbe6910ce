//! The application's signal handlers, wrapped: the shim learns which handlers ran (and with
//! which SA_RESTART) and keeps SIGSYS deliverable.
//!
//! With the catch-all armed, the application's `rt_sigaction` is virtualized: its dispositions
//! live in [`TABLE`], and the kernel holds our [`trampoline`] for every signal that has an
//! application handler, plus SIGSEGV/SIGBUS always (for the user-copy fixups). The trampoline
//! holds a signal back while shim code runs on the thread (it may hold a lock the handler
//! would need): it blocks the signal in the interrupted context and queues it again, so the
//! kernel keeps it pending (queued or coalesced as usual) until the last guard drops and
//! unblocks it. A held-back real-time signal goes behind instances of it already queued.

use crate::base::thread::{self, FIXUPS, Tls, fixup_usable, note_mask, sanitize_mask, sigbit, tls};
use crate::base::user::User;
use crate::entry::sud;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering, compiler_fence};
use libc::{SIG_DFL, SIG_IGN, siginfo_t};
use shared_state::sys::{self, Errno, syscall6};

const NSIG: usize = 64;
/// asm/signal.h (x86); glibc does not export it.
pub(crate) const SA_RESTORER: u64 = 0x0400_0000;
/// Flags the kernel keeps and reports (UAPI_SA_FLAGS, include/linux/signal_types.h).
const UAPI_FLAGS: u64 = (libc::SA_NOCLDSTOP
    | libc::SA_NOCLDWAIT
    | libc::SA_SIGINFO
    | libc::SA_ONSTACK
    | libc::SA_RESTART
    | libc::SA_NODEFER
    | libc::SA_RESETHAND) as u64
    | SA_RESTORER
    | 0x800; // SA_EXPOSE_TAGBITS
/// The application's flags that our trampoline keeps at kernel level.
const KEEP: u64 = (libc::SA_RESTART
    | libc::SA_ONSTACK
    | libc::SA_NODEFER
    | libc::SA_RESETHAND
    | libc::SA_NOCLDSTOP
    | libc::SA_NOCLDWAIT) as u64;

/// The kernel's `struct sigaction` (x86_64, 64-bit sigset).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct KSigaction {
    pub handler: usize,
    pub flags: u64,
    pub restorer: usize,
    pub mask: u64,
}

/// One application disposition. Written handler last (Release) and read handler first: a
/// sigaction racing a delivery of the same signal may pair the new handler with old flags.
struct Action {
    handler: AtomicUsize,
    flags: AtomicU64,
    restorer: AtomicUsize,
    mask: AtomicU64,
}

impl Action {
    fn load(&self) -> KSigaction {
        let handler = self.handler.load(Ordering::Acquire);
        KSigaction {
            handler,
            flags: self.flags.load(Ordering::Relaxed),
            restorer: self.restorer.load(Ordering::Relaxed),
            mask: self.mask.load(Ordering::Relaxed),
        }
    }

    fn store(&self, a: &KSigaction) {
        self.flags.store(a.flags, Ordering::Relaxed);
        self.restorer.store(a.restorer, Ordering::Relaxed);
        self.mask.store(a.mask, Ordering::Relaxed);
        self.handler.store(a.handler, Ordering::Release);
    }
}

/// The handler of a disposition [`TABLE`] does not hold yet: the kernel's is the application's
/// (see [`init`]). Not an address a handler can have.
const UNKNOWN: usize = 2;

/// The application's disposition of signal i+1, as it set it.
static TABLE: [Action; NSIG] = [const {
    Action {
        handler: AtomicUsize::new(UNKNOWN),
        flags: AtomicU64::new(0),
        restorer: AtomicUsize::new(0),
        mask: AtomicU64::new(0),
    }
}; NSIG];

fn action(sig: c_int) -> &'static Action {
    &TABLE[(sig - 1) as usize]
}

/// The application's disposition of `sig`. One the table does not hold yet has been the
/// kernel's since exec (SIG_DFL or SIG_IGN, no flags, an empty mask), which is read once.
fn app_action(sig: c_int) -> KSigaction {
    let a = action(sig);
    if a.handler.load(Ordering::Acquire) == UNKNOWN {
        let mut k = KSigaction::default();
        let handler = if raw_sigaction(sig, None, Some(&mut k)).is_ok() { k.handler } else { SIG_DFL };
        // A disposition set meanwhile (by another thread) stays.
        let _ = a.handler.compare_exchange(UNKNOWN, handler, Ordering::AcqRel, Ordering::Acquire);
    }
    a.load()
}

/// rt_sigaction on the kernel's table.
pub(crate) fn raw_sigaction(
    sig: c_int,
    act: Option<&KSigaction>,
    old: Option<&mut KSigaction>,
) -> Result<(), Errno> {
    let act = act.map_or(0, |a| a as *const KSigaction as usize);
    let old = old.map_or(0, |o| o as *mut KSigaction as usize);
    syscall6(libc::SYS_rt_sigaction, sig as usize, act, old, 8, 0, 0).map(|_| ())
}

/// Signals whose kernel-level disposition is our trampoline when the application's is `handler`.
fn wrapped(sig: c_int, handler: usize) -> bool {
    handler != SIG_DFL && handler != SIG_IGN || sig == libc::SIGSEGV || sig == libc::SIGBUS
}

/// What the kernel should hold for the application's `app` disposition of `sig`.
fn kernel_action(sig: c_int, app: &KSigaction) -> KSigaction {
    let mut mask = app.mask;
    sanitize_mask(&mut mask);
    if wrapped(sig, app.handler) {
        KSigaction {
            handler: trampoline as *const () as usize,
            flags: app.flags & KEEP | libc::SA_SIGINFO as u64 | SA_RESTORER,
            restorer: sud::restorer(),
            mask,
        }
    } else {
        KSigaction { mask, ..*app }
    }
}

/// At start-up, before anything traps: the table from the kernel's current dispositions
/// (inherited SIG_IGN, handlers installed by earlier constructors), and our trampoline under
/// those that need it. SIGSYS already holds `sud`'s handler; `sigsys` is what it replaced.
/// When no code but the loader's, libc's and ours can have run since exec, which left only
/// SIG_DFL and SIG_IGN, only SIGSEGV and SIGBUS (always wrapped) are asked now, the others when
/// the application first asks or sets them: 62 system calls fewer in every image.
pub(crate) fn init(sigsys: &KSigaction) {
    action(libc::SIGSYS).store(sigsys);
    let all = others_ran_first();
    for sig in (1..=NSIG as c_int).filter(|&s| s != libc::SIGSYS) {
        if !all && sig != libc::SIGSEGV && sig != libc::SIGBUS {
            continue;
        }
        let mut old = KSigaction::default();
        if raw_sigaction(sig, None, Some(&mut old)).is_err() {
            continue;
        }
        action(sig).store(&old);
        if sig != libc::SIGKILL && sig != libc::SIGSTOP && wrapped(sig, old.handler) {
            let _ = raw_sigaction(sig, Some(&kernel_action(sig, &old)), None);
        }
    }
    // The mask this image started with (exec keeps it).
    let mut mask = 0u64;
    let _ = syscall6(libc::SYS_rt_sigprocmask, libc::SIG_BLOCK as usize, 0, &raw mut mask as usize, 8, 0, 0);
    note_mask(mask);
    shared_state::uaccess::set_usable_check(fixup_usable);
    FIXUPS.store(true, Ordering::Release);
}

/// Whether code other than the loader's, libc's and ours may have installed handlers in this
/// image before our constructor: another object is loaded that may set dispositions (whose
/// constructor runs first, unless it needs us), the program has pre-initialisers, or we were
/// not preloaded. The program's own code runs after ours (short of a library's constructor
/// calling a function the program exports).
fn others_ran_first() -> bool {
    unsafe extern "C" fn each(info: *mut libc::dl_phdr_info, _: libc::size_t, data: *mut c_void) -> c_int {
        // SAFETY: dl_iterate_phdr passes a valid dl_phdr_info; `data` is the `bool` below.
        let (info, others) = unsafe { (&*info, &mut *(data as *mut bool)) };
        // SAFETY: the object's name is a NUL-terminated string (empty for the program).
        let name = unsafe { core::ffi::CStr::from_ptr(info.dlpi_name) }.to_bytes();
        // SAFETY: its program headers, as the loader has them.
        let phdrs = unsafe { core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let ours = init as *const () as u64;
        let loads = |p: &&libc::Elf64_Phdr| p.p_type == libc::PT_LOAD;
        let mine = phdrs.iter().filter(loads).any(|p| {
            let start = info.dlpi_addr.wrapping_add(p.p_vaddr);
            (start..start + p.p_memsz).contains(&ours)
        });
        let known = [&b"libc.so.6"[..], b"ld-linux-x86-64.so.2", b"linux-vdso.so.1"];
        if name.is_empty() {
            // Elf64_Dyn entries (tag, value) up to DT_NULL (0); DT_PREINIT_ARRAYSZ is 33.
            *others |= phdrs.iter().filter(|p| p.p_type == libc::PT_DYNAMIC).any(|p| {
                let dynamic = info.dlpi_addr.wrapping_add(p.p_vaddr) as *const [u64; 2];
                (0..p.p_memsz as usize / 16)
                    // SAFETY: the program's mapped dynamic section.
                    .map(|i| unsafe { *dynamic.add(i) })
                    .take_while(|d| d[0] != 0)
                    .any(|d| d[0] == 33 && d[1] != 0)
            });
        } else if !mine && !known.iter().any(|k| name.ends_with(k)) {
            *others |= may_set_handlers(info.dlpi_addr as usize, phdrs);
        }
        0
    }
    let preloaded = std::env::var_os("LD_PRELOAD").is_some();
    let mut others = !preloaded;
    // SAFETY: the callback only reads what the loader passes it and writes `others`.
    unsafe { libc::dl_iterate_phdr(Some(each), &raw mut others as *mut c_void) };
    others
}

/// libc's functions by which an object's code can change a disposition (`syscall`: a raw
/// rt_sigaction; `dlsym`: any of them by name).
const SETTERS: [&[u8]; 15] = [
    b"sigaction",
    b"__sigaction",
    b"__libc_sigaction",
    b"signal",
    b"bsd_signal",
    b"sysv_signal",
    b"__sysv_signal",
    b"ssignal",
    b"sigset",
    b"sigvec",
    b"siginterrupt",
    b"sigignore",
    b"syscall",
    b"dlsym",
    b"dlvsym",
];

/// Whether a loaded object's code may have set a disposition: one of its relocations (the
/// only way it reaches another object's function) names one of [`SETTERS`], or it cannot be
/// told (no RELA tables, or a REL one). Most libraries (libz, libm, libpcre2, libexpat)
/// import none, which spares the start-up 62 queries of dispositions.
fn may_set_handlers(base: usize, phdrs: &[libc::Elf64_Phdr]) -> bool {
    const DT_PLTRELSZ: u64 = 2;
    const DT_STRTAB: u64 = 5;
    const DT_SYMTAB: u64 = 6;
    const DT_RELA: u64 = 7;
    const DT_RELASZ: u64 = 8;
    const DT_REL: u64 = 17;
    const DT_JMPREL: u64 = 23;
    let Some(dynamic) = phdrs.iter().find(|p| p.p_type == libc::PT_DYNAMIC) else { return true };
    let at = base.wrapping_add(dynamic.p_vaddr as usize) as *const [u64; 2];
    let (mut strtab, mut symtab) = (0, 0);
    // (address, size) of the RELA table and of the PLT's.
    let mut tables = [(0, 0); 2];
    for i in 0..dynamic.p_memsz as usize / 16 {
        // SAFETY: the object's mapped dynamic section, read up to DT_NULL.
        let [tag, val] = unsafe { *at.add(i) };
        // The loader relocates the addresses in place on x86_64; an unrelocated one is below
        // the base.
        let addr = if (val as usize) < base { base.wrapping_add(val as usize) } else { val as usize };
        match tag {
            0 => break,
            DT_REL => return true,
            DT_STRTAB => strtab = addr,
            DT_SYMTAB => symtab = addr,
            DT_RELA => tables[0].0 = addr,
            DT_RELASZ => tables[0].1 = val as usize,
            DT_JMPREL => tables[1].0 = addr,
            DT_PLTRELSZ => tables[1].1 = val as usize,
            _ => {}
        }
    }
    if strtab == 0 || symtab == 0 {
        return true;
    }
    let named = |sym: usize| {
        // SAFETY: a symbol a relocation names, in the mapped symbol table.
        let sym = unsafe { &*(symtab as *const libc::Elf64_Sym).add(sym) };
        // SAFETY: a symbol's name is a NUL-terminated string in the mapped string table.
        let name =
            unsafe { core::ffi::CStr::from_ptr((strtab + sym.st_name as usize) as *const libc::c_char) };
        // Section index 0: SHN_UNDEF, an import.
        sym.st_shndx == 0 && SETTERS.contains(&name.to_bytes())
    };
    tables.iter().filter(|t| t.0 != 0).any(|&(table, size)| {
        // SAFETY: the object's mapped relocation table of `size` bytes.
        let relocs = unsafe { core::slice::from_raw_parts(table as *const libc::Elf64_Rela, size / 24) };
        relocs.iter().any(|r| r.r_info >> 32 != 0 && named((r.r_info >> 32) as usize))
    })
}

/// The application's rt_sigaction(sig, act, oldact, sigsetsize), trapped. In a vfork child
/// (posix_spawn resets handlers there, in its own copy of the kernel table) it goes to the
/// kernel, except SIGSYS, which stays ours.
pub(crate) fn rt_sigaction(a: &[u64; 6], user: User, mask: u64) -> i64 {
    let (sig, act_p, old_p, size) = (a[0] as c_int, a[1] as usize, a[2] as usize, a[3]);
    let vfork = thread::in_vfork_child();
    if vfork
        && sig != libc::SIGSYS
        && (act_p == 0 || (1..=NSIG as c_int).contains(&sig) && mask & sigbit(sig) != 0)
    {
        return vfork_sigaction(a);
    }
    if size != 8 || !(1..=NSIG as c_int).contains(&sig) {
        return -(libc::EINVAL as i64);
    }
    let act = match act_p {
        0 => None,
        p => match user.read::<KSigaction>(p) {
            Some(a) => Some(a),
            None => return -(libc::EFAULT as i64),
        },
    };
    if act.is_some() && (sig == libc::SIGKILL || sig == libc::SIGSTOP) {
        return -(libc::EINVAL as i64);
    }
    let old = if vfork && sig != libc::SIGSYS {
        // A set: its mask is read here to take SIGSYS out before the kernel sees it.
        let mut old = KSigaction::default();
        let mut k = act;
        if let Some(k) = &mut k {
            sanitize_mask(&mut k.mask);
        }
        if let Err(e) = raw_sigaction(sig, k.as_ref(), Some(&mut old)) {
            return -(e as i64);
        }
        old
    } else {
        let old = app_action(sig);
        // A vfork child's SIGSYS change is dropped: the table is its parent's.
        if let Some(mut act) = act.filter(|_| !vfork) {
            act.flags &= UAPI_FLAGS;
            act.mask &= !(sigbit(libc::SIGKILL) | sigbit(libc::SIGSTOP));
            if sig != libc::SIGSYS
                && let Err(e) = raw_sigaction(sig, Some(&kernel_action(sig, &act)), None)
            {
                return -(e as i64);
            }
            action(sig).store(&act);
        }
        old
    };
    if old_p != 0 && !user.write(old_p, &old) {
        return -(libc::EFAULT as i64);
    }
    0
}

/// A vfork child's rt_sigaction that queries, or sets a signal blocked at the call (as
/// posix_spawn's child makes two per signal, all blocked): the kernel's, on the application's
/// own pointers, which it checks and copies itself (a vfork child can only copy them through
/// process_vm_readv/writev, which tripled the cost). A handler set with SIGSYS in its mask then
/// has it taken out, as everywhere, before the signal can be delivered to it.
fn vfork_sigaction(a: &[u64; 6]) -> i64 {
    let r =
        syscall6(libc::SYS_rt_sigaction, a[0] as usize, a[1] as usize, a[2] as usize, a[3] as usize, 0, 0);
    let sig = a[0] as c_int;
    let mut now = KSigaction::default();
    if r.is_ok()
        && a[1] != 0
        && raw_sigaction(sig, None, Some(&mut now)).is_ok()
        && now.handler != SIG_DFL
        && now.handler != SIG_IGN
        && now.mask & sigbit(libc::SIGSYS) != 0
    {
        sanitize_mask(&mut now.mask);
        let _ = raw_sigaction(sig, Some(&now), None);
    }
    r.map_or_else(|e| -(e as i64), |v| v as i64)
}

/// Before an exec: SIGSEGV/SIGBUS that the application ignores carry our trampoline, which exec
/// would reset to SIG_DFL; set SIG_IGN so the new image inherits it. Returns those signals.
pub(crate) fn exec_dispositions() -> u64 {
    let mut set = 0;
    for sig in [libc::SIGSEGV, libc::SIGBUS] {
        let app = app_action(sig);
        if app.handler == SIG_IGN && raw_sigaction(sig, Some(&app), None).is_ok() {
            set |= sigbit(sig);
        }
    }
    set
}

/// After a failed exec: our trampoline back under the signals `exec_dispositions` changed.
pub(crate) fn exec_failed(set: u64) {
    for sig in [libc::SIGSEGV, libc::SIGBUS] {
        if set & sigbit(sig) != 0 {
            let _ = raw_sigaction(sig, Some(&kernel_action(sig, &app_action(sig))), None);
        }
    }
}

/// A fault raised by the CPU (not sent): returning from it re-executes the faulting instruction.
fn is_fault(sig: c_int, info: &siginfo_t) -> bool {
    matches!(sig, libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP)
        && info.si_code > 0
}

/// Puts SIG_DFL at kernel level: a returning fault then kills as it would on the kernel.
fn kernel_default(sig: c_int) {
    let dfl = KSigaction::default();
    let _ = raw_sigaction(sig, Some(&dfl), None);
}

/// Sends `info` again to this thread.
fn requeue(info: *const siginfo_t) {
    // SAFETY: `info` points to a full siginfo (ours or the kernel's).
    let sig = unsafe { (*info).si_signo };
    let tid = syscall6(libc::SYS_gettid, 0, 0, 0, 0, 0, 0).unwrap_or(0);
    let _ =
        syscall6(libc::SYS_rt_tgsigqueueinfo, sys::getpid() as usize, tid, sig as usize, info as usize, 0, 0);
}

/// Our kernel-level handler for every application-handled signal (and SIGSEGV/SIGBUS).
pub(crate) extern "C" fn trampoline(sig: c_int, info: *mut siginfo_t, ctx: *mut c_void) {
    let t = tls();
    let saved = t.selector.load(Ordering::Relaxed);
    t.selector.store(thread::ALLOW, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    deliver(t, sig, info, ctx);
    compiler_fence(Ordering::SeqCst);
    t.selector.store(saved, Ordering::Relaxed);
}

fn deliver(t: &Tls, sig: c_int, info: *mut siginfo_t, ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo and ucontext to an SA_SIGINFO handler.
    let (si, uc) = unsafe { (&*info, &mut *(ctx as *mut libc::ucontext_t)) };
    let fault = is_fault(sig, si);
    if sig == libc::SIGSEGV || sig == libc::SIGBUS {
        let rip = &mut uc.uc_mcontext.gregs[libc::REG_RIP as usize];
        let fixup =
            shared_state::uaccess::fixup_target(*rip as usize).or_else(|| sud::fault_fixup(*rip as usize));
        if let Some(fix) = fixup {
            *rip = fix as libc::greg_t;
            return;
        }
    }
    let app = app_action(sig);
    if app.handler == SIG_IGN || app.handler == SIG_DFL {
        if app.handler == SIG_DFL || fault {
            kernel_default(sig);
        }
        if app.handler == SIG_DFL && !fault {
            requeue(info);
        }
        return;
    }
    if t.depth.load(Ordering::Relaxed) != 0 {
        if fault {
            // A crash in shim code: die of it as an unhandled fault would.
            kernel_default(sig);
        } else if sig != libc::SIGSYS {
            hold(t, sig, info, uc);
        }
        // (A SIGSYS sent while shim code runs, e.g. by the application's seccomp filter for a
        // syscall the shim made, is not the application's: dropped, as SIGSYS is never blocked.)
        return;
    }
    // The handler sees (and unwinds from) the rewritten call site's own state, not the shim's.
    sud::settle(uc);
    let restart = app.flags & libc::SA_RESTART as u64 != 0;
    t.handled.fetch_add(1, Ordering::Relaxed);
    if app.flags & libc::SA_RESETHAND as u64 != 0 {
        // The kernel reset our trampoline to SIG_DFL as it delivered.
        action(sig).store(&KSigaction { handler: SIG_DFL, ..app });
        if wrapped(sig, SIG_DFL) {
            let _ = raw_sigaction(sig, Some(&kernel_action(sig, &action(sig).load())), None);
        }
    }
    // The handler runs with its own mask added (and its signal, unless SA_NODEFER); the
    // interrupted code gets back the one sigreturn restores, which the handler may change.
    // SAFETY: the kernel's 64-bit sigset is the first word of glibc's uc_sigmask.
    let interrupted = unsafe { *(&raw const uc.uc_sigmask as *const u64) };
    let own = if app.flags & libc::SA_NODEFER as u64 != 0 { 0 } else { sigbit(sig) };
    note_mask(interrupted | app.mask | own);
    t.selector.store(thread::BLOCK, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    if app.flags & libc::SA_SIGINFO as u64 != 0 {
        // SAFETY: the application installed this address as an SA_SIGINFO handler.
        let h = unsafe {
            core::mem::transmute::<usize, extern "C" fn(c_int, *mut siginfo_t, *mut c_void)>(app.handler)
        };
        h(sig, info, ctx);
    } else {
        // SAFETY: the application installed this address as a plain handler.
        let h = unsafe { core::mem::transmute::<usize, extern "C" fn(c_int)>(app.handler) };
        h(sig);
    }
    compiler_fence(Ordering::SeqCst);
    // Recorded once the handler is done: a served call it made cleared the flag for its own
    // wait, and the interrupted call must still see that a handler ran.
    t.interrupt.fetch_max(if restart { 1 } else { 2 }, Ordering::Relaxed);
    t.selector.store(thread::ALLOW, Ordering::Relaxed);
    // SAFETY: as above; `ctx` is still the frame sigreturn will restore.
    note_mask(unsafe { *(&raw const (*(ctx as *const libc::ucontext_t)).uc_sigmask as *const u64) });
}

/// Holds `sig` back: blocked now (also under SA_NODEFER) and in the interrupted context that
/// sigreturn restores, and queued again.
fn hold(t: &Tls, sig: c_int, info: *const siginfo_t, uc: &mut libc::ucontext_t) {
    let bit = sigbit(sig);
    let _ = syscall6(libc::SYS_rt_sigprocmask, libc::SIG_BLOCK as usize, &raw const bit as usize, 0, 8, 0, 0);
    // SAFETY: the kernel's 64-bit sigset is the first word of glibc's uc_sigmask.
    unsafe { *(&raw mut uc.uc_sigmask as *mut u64) |= bit };
    t.held.fetch_or(bit, Ordering::Relaxed);
    requeue(info);
}
