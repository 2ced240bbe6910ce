//! The SIGSYS handler: every syscall the application makes arrives here. The dispatcher serves
//! those on shim objects; the rest are issued natively, except the few whose effect would be
//! lost on the handler's own stack or frame (clone/vfork, the signal mask, sigreturn, the
//! alternate stack) or that must carry the shim into the next image (exec).
//!
//! Runs inside arbitrary application code (even inside malloc): nothing here allocates, takes
//! a lock, or calls a hooked libc symbol; every syscall is a raw one made under a Guard.

use super::{exec, thunk_for};
use crate::base::thread;
use crate::base::thread::Guard;
use crate::base::thread::{sanitize_mask, sigbit};
use crate::base::user::User;
use crate::entry::signals::{self, KSigaction};
use core::ffi::{c_int, c_void};
use core::sync::atomic::Ordering;
use libc::{REG_R8, REG_R9, REG_R10, REG_RAX, REG_RDI, REG_RDX, REG_RIP, REG_RSI, greg_t, ucontext_t};
use shared_state::sys::syscall6;

/// `si_code` of a SIGSYS raised by Syscall User Dispatch (asm-generic/siginfo.h).
const SYS_USER_DISPATCH: c_int = 2;

/// Issues syscall `nr`; returns the kernel-style result (-errno on failure).
pub(super) fn raw(nr: i64, a: &[u64; 6]) -> i64 {
    let [a1, a2, a3, a4, a5, a6] = a.map(|x| x as usize);
    match syscall6(nr, a1, a2, a3, a4, a5, a6) {
        Ok(v) => v as i64,
        Err(e) => -(e as i64),
    }
}

/// Installs the SIGSYS handler (SA_NODEFER: a syscall made by an application handler running
/// inside another trap must trap too); returns the disposition it replaced.
pub(super) fn install() -> Option<KSigaction> {
    let act = KSigaction {
        handler: sigsys as *const () as usize,
        flags: (libc::SA_SIGINFO | libc::SA_NODEFER) as u64 | signals::SA_RESTORER,
        restorer: super::restorer(),
        mask: 0,
    };
    let mut old = KSigaction::default();
    signals::raw_sigaction(libc::SIGSYS, Some(&act), Some(&mut old)).ok().map(|()| old)
}

extern "C" fn sigsys(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    if unsafe { (*info).si_code } != SYS_USER_DISPATCH {
        // Sent by someone (kill, an application seccomp filter): the application's SIGSYS.
        signals::trampoline(sig, info, ctx);
        return;
    }
    // SAFETY: ... and a valid ucontext, ours until the handler returns.
    let uc = unsafe { &mut *(ctx as *mut ucontext_t) };
    let guard = thread::enter();
    trap(uc, &guard);
}

fn reg(uc: &ucontext_t, r: c_int) -> u64 {
    uc.uc_mcontext.gregs[r as usize] as u64
}

fn set_reg(uc: &mut ucontext_t, r: c_int, v: u64) {
    uc.uc_mcontext.gregs[r as usize] = v as greg_t;
}

/// The mask that sigreturn will install: the application's mask at the trapped syscall.
fn frame_mask(uc: &mut ucontext_t) -> &mut u64 {
    // SAFETY: the kernel's 64-bit sigset is the first word of glibc's uc_sigmask.
    unsafe { &mut *(&raw mut uc.uc_sigmask as *mut u64) }
}

fn trap(uc: &mut ucontext_t, guard: &Guard) {
    if let Some(r) = crate::base::region::active() {
        r.header().counters.sud_traps.fetch_add(1, Ordering::Relaxed);
    }
    // The process's last trap: none of its sites is worth a look (the object lookups of a
    // first trap there, in every fork child that exits).
    if reg(uc, REG_RAX) as i64 == libc::SYS_exit_group {
        super::patch::count_patched();
    } else {
        super::patch::on_trap(uc);
    }
    exec::release_scratch();
    // A vfork child's parent resumes only after it exec'd or exited: the child logs its own
    // creation (once; the parent clears the flag as it resumes).
    if thread::in_vfork_child()
        && crate::base::trace::on()
        && thread::tls().birth_logged.swap(1, Ordering::Relaxed) == 0
    {
        let ppid = syscall6(libc::SYS_getppid, 0, 0, 0, 0, 0, 0).unwrap_or(0) as i32;
        crate::base::trace::created(ppid, "vfork()", crate::base::trace::outer_pid());
    }
    let nr = reg(uc, REG_RAX) as i64;
    let a = [REG_RDI, REG_RSI, REG_RDX, REG_R10, REG_R8, REG_R9].map(|r| reg(uc, r));
    if let Some(r) = crate::entry::dispatch::syscall(nr, &a) {
        set_reg(uc, REG_RAX, r as u64);
        return;
    }
    let user = User::new(*frame_mask(uc));
    let r = match nr {
        // A handler returning through libc's __restore_rt: sigreturn from our range instead, on
        // the same stack, so the kernel restores the application's frame, not ours.
        libc::SYS_rt_sigreturn => {
            set_reg(uc, REG_RIP, super::restorer() as u64);
            return;
        }
        libc::SYS_clone3 => super::clone::clone3(uc, &a),
        libc::SYS_vfork => {
            crate::base::fd::forking();
            redirect(uc, nr, true)
        }
        libc::SYS_clone => super::clone::clone(uc, &a),
        libc::SYS_fork => {
            crate::base::fd::forking();
            let r = fork_here(nr, &a);
            // Again once made, on both sides (see `clone::copy_child`).
            if r >= 0 {
                crate::base::fd::forking();
            }
            r
        }
        libc::SYS_rt_sigaction => signals::rt_sigaction(&a, user, *frame_mask(uc)),
        libc::SYS_rt_sigprocmask => sigprocmask(uc, &a, user),
        libc::SYS_rt_sigsuspend | libc::SYS_rt_sigtimedwait => with_mask(nr, &a, 0, user, guard),
        libc::SYS_signalfd | libc::SYS_signalfd4 => with_mask(nr, &a, 1, user, guard),
        libc::SYS_ppoll => with_mask(nr, &a, 3, user, guard),
        libc::SYS_epoll_pwait | libc::SYS_epoll_pwait2 => with_mask(nr, &a, 4, user, guard),
        libc::SYS_pselect6 => pselect6(&a, user, guard),
        libc::SYS_sigaltstack => sigaltstack(uc, &a),
        libc::SYS_execve | libc::SYS_execveat => exec::exec(nr, &a, guard, user),
        // The thread ends: its scratch arena goes (a served call it interrupted never resumes).
        libc::SYS_exit => {
            crate::base::scratch::thread_exit();
            crate::base::uring::thread_exit();
            raw(nr, &a)
        }
        _ => crate::entry::dispatch::passthrough(nr, &a, || guard.allow_signals(|| raw(nr, &a))),
    };
    set_reg(uc, REG_RAX, r as u64);
}

/// Resumes the application at a thunk that re-issues the call natively (RAX keeps `nr`).
pub(super) fn redirect(uc: &mut ucontext_t, nr: i64, shared: bool) -> i64 {
    match thunk_for(reg(uc, REG_RIP) as usize, shared) {
        Some(t) => {
            set_reg(uc, REG_RIP, t as u64);
            nr
        }
        None => -(libc::ENOMEM as i64),
    }
}

/// fork, or a clone with neither CLONE_VM nor a new stack: the child is a copy of this frame.
pub(super) fn fork_here(nr: i64, a: &[u64; 6]) -> i64 {
    let r = raw(nr, a);
    if r == 0 {
        super::armed_fork_child();
    } else if r > 0 && crate::base::trace::on() {
        crate::base::trace::created(crate::base::trace::outer_pid(), "fork()", r as i32);
    }
    r
}

/// rt_sigprocmask on the frame's mask, which sigreturn installs: a mask set from inside the
/// handler would be overwritten by it.
fn sigprocmask(uc: &mut ucontext_t, a: &[u64; 6], user: User) -> i64 {
    let (how, set, oset, size) = (a[0] as c_int, a[1] as usize, a[2] as usize, a[3]);
    if size != 8 {
        return -(libc::EINVAL as i64);
    }
    let old = *frame_mask(uc);
    if set != 0 {
        let Some(s) = user.read::<u64>(set) else { return -(libc::EFAULT as i64) };
        let mut new = match how {
            libc::SIG_BLOCK => old | s,
            libc::SIG_UNBLOCK => old & !s,
            libc::SIG_SETMASK => s,
            _ => return -(libc::EINVAL as i64),
        };
        sanitize_mask(&mut new);
        *frame_mask(uc) = new & !(sigbit(libc::SIGKILL) | sigbit(libc::SIGSTOP));
        thread::note_mask(*frame_mask(uc));
    }
    if oset != 0 && !user.write(oset, &old) {
        return -(libc::EFAULT as i64);
    }
    0
}

/// A call that installs the sigset at argument `i` while it waits: the same without SIGSYS.
/// An unreadable set goes to the kernel unchanged, which reports it.
fn with_mask(nr: i64, a: &[u64; 6], i: usize, user: User, guard: &Guard) -> i64 {
    let mut b = *a;
    let mask: u64;
    if a[i] != 0
        && let Some(mut m) = user.read::<u64>(a[i] as usize)
    {
        sanitize_mask(&mut m);
        mask = m;
        b[i] = &raw const mask as u64;
    }
    guard.allow_signals(|| raw(nr, &b))
}

/// pselect6's sixth argument points to { const sigset_t *ss; size_t ss_len }.
fn pselect6(a: &[u64; 6], user: User, guard: &Guard) -> i64 {
    let mut b = *a;
    let (mask, data): (u64, [u64; 2]);
    if a[5] != 0
        && let Some(d) = user.read::<[u64; 2]>(a[5] as usize)
        && d[0] != 0
        && let Some(mut m) = user.read::<u64>(d[0] as usize)
    {
        sanitize_mask(&mut m);
        mask = m;
        data = [&raw const mask as u64, d[1]];
        b[5] = &raw const data as u64;
    }
    guard.allow_signals(|| raw(libc::SYS_pselect6, &b))
}

/// sigreturn restores the alternate stack saved in the frame: record the new one there.
fn sigaltstack(uc: &mut ucontext_t, a: &[u64; 6]) -> i64 {
    let r = raw(libc::SYS_sigaltstack, a);
    if r == 0 && a[0] != 0 {
        let mut cur: libc::stack_t = libc::stack_t { ss_sp: core::ptr::null_mut(), ss_flags: 0, ss_size: 0 };
        if raw(libc::SYS_sigaltstack, &[0, &raw mut cur as u64, 0, 0, 0, 0]) == 0 {
            uc.uc_stack = cur;
        }
    }
    r
}
