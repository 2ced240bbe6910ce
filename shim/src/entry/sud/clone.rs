//! `clone` and `clone3` trapped by the catch-all. A child that shares our memory or gets a
//! new TLS is started by a thunk (see `thunk_for`); a copy of the process with no stack of its
//! own is forked right here, on the handler's frame. A copy that asked for a stack of its own
//! (`clone(fn, stack, CLONE_NEWPID | SIGCHLD, arg)`, runc's nsexec) is forked here too and
//! then resumes on that stack: a small one (gVisor's tests give 4 KiB) could not hold shim
//! code, so the child first gets an alternate signal stack for its SIGSYS frames, and its
//! exported symbols leave everything to the trap (`trap_only`).

use super::trap::{fork_here, raw, redirect};
use crate::base::thread;
use crate::entry::signals::{self, KSigaction};
use libc::{REG_RSP, greg_t, ucontext_t};

/// What the child's SIGSYS handler runs on when its own stack is the caller's.
const ALTSTACK: usize = 64 << 10;

pub(super) fn clone(uc: &mut ucontext_t, a: &[u64; 6]) -> i64 {
    let flags = a[0];
    let vm = flags & libc::CLONE_VM as u64 != 0;
    let new_tls = flags & libc::CLONE_SETTLS as u64 != 0;
    crate::base::ipcns::before_clone(flags);
    if !shares_fds_and_memory(flags) {
        crate::base::fd::forking();
    }
    if vm || new_tls {
        if new_tls {
            crate::base::ipcns::to_new_thread(a[4]);
        }
        // The child needs our memory or its own TLS: it cannot start on this frame.
        return redirect(uc, libc::SYS_clone, vm && !new_tls);
    }
    if a[1] == 0 {
        return copy_child(fork_here(libc::SYS_clone, a), flags);
    }
    let mut b = *a;
    b[1] = 0;
    copy_child(fork_onto(uc, libc::SYS_clone, &b, a[1]), flags)
}

/// A thread of ours: its fd table and memory are ours, so it is no other holder of our fds
/// (a process sharing only the fd table, or only memory, is: see `fd::forking`).
fn shares_fds_and_memory(flags: u64) -> bool {
    let both = (libc::CLONE_FILES | libc::CLONE_VM) as u64;
    flags & both == both
}

/// In a child that is a copy of the process (fork's result 0): a new IPC namespace's. Both
/// sides count the fork again once it is made: a socket one of the parent's threads made
/// in between, and the child's copy of every fd, have another holder.
fn copy_child(r: i64, flags: u64) -> i64 {
    if r >= 0 {
        crate::base::fd::forking();
    }
    if r == 0 {
        crate::base::ipcns::clone_child(flags);
    }
    r
}

/// `struct clone_args` up to CLONE_ARGS_SIZE_VER2.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

pub(super) fn clone3(uc: &mut ucontext_t, a: &[u64; 6]) -> i64 {
    let size = a[1] as usize;
    let mut args = [CloneArgs::default()];
    // An unreadable or malformed struct is the kernel's to refuse (it copies it first); one
    // larger than we know goes to the thunk, as it is.
    if size < 64 || crate::base::copy::slice_in(as_bytes(&mut args, size.min(88)), a[0] as usize).is_err() {
        return raw(libc::SYS_clone3, a);
    }
    if !shares_fds_and_memory(args[0].flags) {
        crate::base::fd::forking();
    }
    if size > size_of::<CloneArgs>() {
        let flags = args[0].flags;
        let shared = flags & libc::CLONE_VM as u64 != 0 && flags & libc::CLONE_SETTLS as u64 == 0;
        return redirect(uc, libc::SYS_clone3, shared);
    }
    let ca = args[0];
    let vm = ca.flags & libc::CLONE_VM as u64 != 0;
    let new_tls = ca.flags & libc::CLONE_SETTLS as u64 != 0;
    crate::base::ipcns::before_clone(ca.flags);
    if vm || new_tls {
        if new_tls {
            crate::base::ipcns::to_new_thread(ca.tls);
        }
        return redirect(uc, libc::SYS_clone3, vm && !new_tls);
    }
    if ca.stack == 0 || ca.stack_size == 0 {
        return copy_child(fork_here(libc::SYS_clone3, a), ca.flags);
    }
    let mut own = [CloneArgs { stack: 0, stack_size: 0, ..ca }];
    let b = [own.as_mut_ptr() as u64, a[1], 0, 0, 0, 0];
    copy_child(fork_onto(uc, libc::SYS_clone3, &b, ca.stack.wrapping_add(ca.stack_size)), ca.flags)
}

fn as_bytes(args: &mut [CloneArgs; 1], len: usize) -> &mut [u8] {
    // SAFETY: CloneArgs is plain u64s; `len` <= its size.
    unsafe { core::slice::from_raw_parts_mut(args.as_mut_ptr().cast::<u8>(), len) }
}

/// Forks here with `b` (no new stack), then the child resumes the application on
/// `stack_top`, its SIGSYS frames on an alternate stack of its own.
fn fork_onto(uc: &mut ucontext_t, nr: i64, b: &[u64; 6], stack_top: u64) -> i64 {
    let r = fork_here(nr, b);
    if r == 0 {
        give_altstack(uc);
        uc.uc_mcontext.gregs[REG_RSP as usize] = stack_top as greg_t;
    }
    r
}

/// In the child: an alternate stack, recorded in the frame (sigreturn restores the alternate
/// stack from it), and our SIGSYS handler moved onto it. Its other handlers keep their flags.
fn give_altstack(uc: &mut ucontext_t) {
    let Ok(sp) = shared_state::sys::mmap(
        0,
        ALTSTACK,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
        -1,
        0,
    ) else {
        return;
    };
    let ss = libc::stack_t { ss_sp: sp as *mut libc::c_void, ss_flags: 0, ss_size: ALTSTACK };
    if raw(libc::SYS_sigaltstack, &[&raw const ss as u64, 0, 0, 0, 0, 0]) != 0 {
        let _ = shared_state::sys::munmap(sp, ALTSTACK);
        return;
    }
    uc.uc_stack = ss;
    let mut act = KSigaction::default();
    if signals::raw_sigaction(libc::SIGSYS, None, Some(&mut act)).is_ok() {
        act.flags |= libc::SA_ONSTACK as u64;
        if signals::raw_sigaction(libc::SIGSYS, Some(&act), None).is_ok() {
            thread::TRAP_ONLY.store(true, core::sync::atomic::Ordering::Relaxed);
        }
    }
}
