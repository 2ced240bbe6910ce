//! Per-thread and per-process state of the shim's own code: the catch-all's selector and guard
//! depth (initial-exec TLS defined in assembly, so the SIGSYS handler, the clone thunks and Rust
//! code all reach it without `__tls_get_addr`), signals held back while a guard is up, and the
//! flags the entry points set once (catch-all armed, fault fixups installed, threads seen).
//!
//! The entry points (`crate::entry`) arm and fill it; every layer reads it.

use core::arch::{asm, global_asm};
use core::ffi::c_int;
use core::marker::PhantomData;
use core::mem::size_of;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, compiler_fence};
use shared_state::sys::syscall6;

/// Selector values (linux/prctl.h).
pub(crate) const ALLOW: u8 = 0;

pub(crate) const BLOCK: u8 = 1;

/// This thread's catch-all state. Offsets of the first fields are used by the assembly below.
#[repr(C)]
pub(crate) struct Tls {
    /// The SUD selector the kernel reads.
    pub selector: AtomicU8,
    /// How many [`Guard`]s are live (0: application code, or a wait in `allow_signals`).
    pub depth: AtomicU8,
    /// 1 in the child of a `vfork`/`CLONE_VM` clone, which runs on the parent thread's TLS.
    pub vfork: AtomicU8,
    /// Application handlers run since `clear_interrupt` (see `signals`).
    pub interrupt: AtomicU8,
    /// Signals held back (blocked and requeued) while shim code ran; unblocked when the last
    /// guard drops.
    pub held: AtomicU64,
    /// An exec envp block that a vfork child left mapped in our memory (address, length).
    pub scratch: AtomicUsize,
    pub scratch_len: AtomicUsize,
    /// Bumped whenever an application handler runs: a futex word a wait can include, so that
    /// a wait the kernel would restart after the handler (futex_waitv) sees it change.
    pub handled: AtomicU32,
    /// A SIGPIPE the call being traced owes, sent once its trace line is out (a default
    /// SIGPIPE kills at once, and the line would be lost).
    pub sigpipe_owed: AtomicU8,
    /// The thread's signal mask blocks SIGSEGV or SIGBUS: a fault in a fixup copy would kill
    /// it, so user copies go through process_vm_readv instead (see `thread::fixup_usable`).
    pub fault_blocked: AtomicU8,
    /// This thread's io_uring (see `crate::base::uring`): the task that made it (a fork child's copy
    /// is not its own), its state (none, unavailable, or its registered index + 2), its
    /// memory, the offsets of its ring fields, and whether a wait is using it.
    pub uring_tid: AtomicU32,
    pub uring_state: AtomicU32,
    pub uring_base: AtomicUsize,
    pub uring_offs: [AtomicU32; 6],
    pub uring_busy: AtomicU8,
    /// In a vfork child that moved the region's descriptors in its own fd table: their new
    /// numbers (see `region::keep_fds`), cleared when the parent resumes.
    pub region_fds: AtomicU64,
    /// The IPC namespace this thread moved to (`crate::base::ipcns`), 0 for the process's.
    pub ipc_ns: AtomicU32,
    /// This thread's scratch arena (see `crate::base::scratch`): its address (0 until first used)
    /// and the offset of its first free byte.
    pub arena: AtomicUsize,
    pub arena_top: AtomicUsize,
    /// Syscalls this thread made through rewritten call sites since its last trap (`patch`).
    pub patched: AtomicU64,
    /// In a vfork child: its creation is in the trace (see `trap`); cleared when the parent
    /// resumes.
    pub birth_logged: AtomicU8,
    /// Set in a fork child that the trapped fork armed already; cleared before each fork by
    /// libc (`rearm_after_fork`).
    pub fork_armed: AtomicU8,
}

global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".balign 64",
    ".globl ipcshim_tls",
    ".hidden ipcshim_tls",
    ".type ipcshim_tls,@tls_object",
    "ipcshim_tls:",
    ".zero {size}",
    ".size ipcshim_tls, {size}",
    ".popsection",
    size = const size_of::<Tls>(),
);

/// This thread's [`Tls`]. Only meaningful on the calling thread (a vfork child shares it).
#[inline(always)]
pub(crate) fn tls() -> &'static Tls {
    let addr: usize;
    // SAFETY: reads the thread pointer (glibc's TCB self-pointer at %fs:0) and the static TLS
    // offset of `ipcshim_tls` from the GOT: the initial-exec TLS access sequence.
    unsafe {
        asm!(
            "mov {a}, qword ptr fs:[0]",
            "add {a}, qword ptr [rip + ipcshim_tls@GOTTPOFF]",
            a = out(reg) addr,
            options(nostack, pure, readonly),
        );
    }
    // SAFETY: the loader allocated and zeroed this thread's block of `size_of::<Tls>()` bytes,
    // which lives as long as the thread; every field is an atomic or an UnsafeCell.
    unsafe { &*(addr as *const Tls) }
}

/// The address of the [`Tls`] of the thread whose thread pointer (`%fs` base, glibc's TCB)
/// is `tp`: at the same offset from it as ours from our own.
pub(crate) fn tls_of(tp: usize) -> usize {
    let own_tp: usize;
    // SAFETY: reads glibc's TCB self-pointer at %fs:0.
    unsafe { asm!("mov {a}, qword ptr fs:[0]", a = out(reg) own_tp, options(nostack, readonly)) };
    (tls() as *const Tls as usize).wrapping_sub(own_tp).wrapping_add(tp)
}

pub(crate) static ARMED: AtomicBool = AtomicBool::new(false);

/// The process runs on a stack of the application's that may be too small for shim code (a
/// clone child given its own stack, see `clone`): exported symbols call libc at once, whose
/// system call then traps onto the alternate stack the child got.
pub(crate) static TRAP_ONLY: AtomicBool = AtomicBool::new(false);

/// Whether exported symbols must leave shim code to the trap (see `TRAP_ONLY`).
pub fn trap_only() -> bool {
    TRAP_ONLY.load(Ordering::Relaxed)
}

/// True when every syscall of this process reaches the shim (SUD armed in this image).
pub fn catchall_active() -> bool {
    ARMED.load(Ordering::Relaxed)
}

/// True in the child of a `vfork`/`CLONE_VM` clone, which shares the parent's memory (and so
/// its per-process tables) but not its fd table.
#[inline]
pub fn in_vfork_child() -> bool {
    tls().vfork.load(Ordering::Relaxed) != 0
}

/// Held while shim code runs: syscalls go straight to the kernel, and asynchronous signals
/// that arrive meanwhile are deferred until the guard drops.
///
/// Guards nest (`crate::entry::dispatch::syscall` already runs inside the SIGSYS handler's guard; it
/// may take its own to call `allow_signals`). Cheap, allocation-free, and usable whether or
/// not the catch-all is armed.
pub struct Guard {
    saved: u8,
    /// The guard belongs to this thread's TLS.
    _thread: PhantomData<*const ()>,
}

/// Makes system call `nr` from the allowed range (shim code), where it never traps whatever
/// the selector says: an exported symbol's pass-through, without a guard (signals reach the
/// application's handlers as during libc's own call, and a restart restarts it here). Inline,
/// not a call to a `syscall; ret`: that `ret` costs ~20 ns here, as the kernel's return
/// thunks leave the CPU's return predictions wrong. The kernel-style result (-errno on
/// failure).
#[inline]
pub(crate) fn allowed_syscall(nr: i64, a: &[u64; 6]) -> i64 {
    let r: i64;
    // SAFETY: the syscall instruction clobbers rax, rcx and r11 and no stack; memory is left
    // to the kernel's call, as asm! assumes by default.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr => r,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    r
}

/// Takes a guard on this thread: every exported hook should hold one while it runs shim code.
pub fn enter() -> Guard {
    let t = tls();
    let saved = t.selector.load(Ordering::Relaxed);
    t.selector.store(ALLOW, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    t.depth.store(t.depth.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    Guard { saved, _thread: PhantomData }
}

impl Guard {
    /// Runs `f` (a wait holding no shim lock) with signals delivered to the application's
    /// handlers as they arrive.
    pub fn allow_signals<R>(&self, f: impl FnOnce() -> R) -> R {
        let t = tls();
        let depth = t.depth.load(Ordering::Relaxed);
        set_depth(t, 0);
        compiler_fence(Ordering::SeqCst);
        let r = f();
        compiler_fence(Ordering::SeqCst);
        t.depth.store(depth, Ordering::Relaxed);
        r
    }
}

impl Guard {
    /// A cancellation point inside a blocking shim call (read, write and poll are ones): a
    /// pending pthread_cancel acts here, as in libc's wrapper. Cancellation unwinds past our
    /// frames, so the thread's state is the application's while it may.
    pub fn testcancel(&self) {
        let t = tls();
        let (depth, selector) = (t.depth.load(Ordering::Relaxed), t.selector.load(Ordering::Relaxed));
        set_depth(t, 0);
        if catchall_active() {
            t.selector.store(BLOCK, Ordering::Relaxed);
        }
        compiler_fence(Ordering::SeqCst);
        unsafe extern "C" {
            fn pthread_testcancel();
        }
        // SAFETY: pthread_testcancel has no preconditions.
        unsafe { pthread_testcancel() };
        compiler_fence(Ordering::SeqCst);
        t.selector.store(selector, Ordering::Relaxed);
        t.depth.store(depth, Ordering::Relaxed);
    }
}

/// Held while shim code runs that makes no system call: asynchronous signals are deferred
/// until it drops, as under a [`Guard`], but the selector is left alone (a lock-free semop
/// costs a third less without the guard's stores and loads).
pub struct SignalsHeld {
    /// Belongs to this thread's TLS.
    _thread: PhantomData<*const ()>,
}

/// Defers the application's signal handlers until the result drops (see [`SignalsHeld`]).
#[inline]
pub fn hold_signals() -> SignalsHeld {
    let t = tls();
    t.depth.store(t.depth.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    SignalsHeld { _thread: PhantomData }
}

impl Drop for SignalsHeld {
    #[inline]
    fn drop(&mut self) {
        let t = tls();
        compiler_fence(Ordering::SeqCst);
        set_depth(t, t.depth.load(Ordering::Relaxed).saturating_sub(1));
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let t = tls();
        compiler_fence(Ordering::SeqCst);
        set_depth(t, t.depth.load(Ordering::Relaxed).saturating_sub(1));
        compiler_fence(Ordering::SeqCst);
        t.selector.store(self.saved, Ordering::Relaxed);
    }
}

pub(crate) static FIXUPS: AtomicBool = AtomicBool::new(false);

pub(crate) fn sigbit(sig: c_int) -> u64 {
    1u64 << (sig - 1)
}

/// Records whether the calling thread's mask (now `mask`) blocks a fault signal.
pub(crate) fn note_mask(mask: u64) {
    let faults = sigbit(libc::SIGSEGV) | sigbit(libc::SIGBUS);
    tls().fault_blocked.store((mask & faults != 0) as u8, Ordering::Relaxed);
}

/// Whether a fault in a fixup copy would reach our wrapper: not from a vfork child (its
/// handlers are not ours to rely on), nor with SIGSEGV/SIGBUS blocked (the kernel then kills).
pub(crate) fn fixup_usable() -> bool {
    let t = tls();
    t.fault_blocked.load(Ordering::Relaxed) == 0 && t.vfork.load(Ordering::Relaxed) == 0
}

/// True when a fault in `shared_state::uaccess::copy_user` becomes a short count (our
/// SIGSEGV/SIGBUS wrapper is installed: the catch-all is armed). Without it, use the
/// process_vm copies.
pub fn fault_fixups_active() -> bool {
    FIXUPS.load(Ordering::Acquire)
}

/// Sets this thread's guard depth; at 0, lets in the signals held back meanwhile.
#[inline]
pub(crate) fn set_depth(t: &Tls, depth: u8) {
    t.depth.store(depth, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    // Load and store, not a (locked) swap: only this thread's handlers add to `held`, and with
    // depth 0 stored they no longer do.
    if depth == 0 && t.held.load(Ordering::Relaxed) != 0 {
        let_in_held(t);
    }
}

/// The signals held back while the guard was up are let in.
#[cold]
#[inline(never)]
fn let_in_held(t: &Tls) {
    let held = t.held.load(Ordering::Relaxed);
    t.held.store(0, Ordering::Relaxed);
    let _ =
        syscall6(libc::SYS_rt_sigprocmask, libc::SIG_UNBLOCK as usize, &raw const held as usize, 0, 8, 0, 0);
}

/// Forgets earlier handler runs; call before a wait.
pub fn clear_interrupt() {
    tls().interrupt.store(0, Ordering::Relaxed);
}

/// Whether an application handler ran since `clear_interrupt` (also one held back while shim
/// code ran and let in as a wait began): the wait must not start.
pub fn interrupt_pending() -> bool {
    tls().interrupt.load(Ordering::Relaxed) != 0
}

/// After a wait returned EINTR: `Some(true)` if every handler that ran had SA_RESTART,
/// `Some(false)` if one did not, `None` if no application handler ran.
pub fn take_interrupt() -> Option<bool> {
    match tls().interrupt.swap(0, Ordering::Relaxed) {
        0 => None,
        1 => Some(true),
        _ => Some(false),
    }
}

/// This thread's count of application handler runs, as a futex word: a wait that includes it
/// ends when a handler runs even where the kernel would restart the wait itself.
pub fn handled_word() -> &'static core::sync::atomic::AtomicU32 {
    &tls().handled
}

/// Removes SIGSYS from a signal mask the application wants to install.
pub fn sanitize_mask(mask: &mut u64) {
    *mask &= !(1u64 << (libc::SIGSYS - 1));
}

/// Set once this process may have a second thread (a clone sharing its memory that runs beside
/// it): from then on a site that one store cannot rewrite is rewritten through `jmp .`.
pub(crate) static THREADED: AtomicBool = AtomicBool::new(false);

/// Whether this process may have a second thread (see `THREADED`; glibc's own flag too, for
/// threads started through a call site that did not trap).
pub(crate) fn may_have_threads() -> bool {
    THREADED.load(Ordering::Relaxed) || !crate::base::real::single_threaded()
}
