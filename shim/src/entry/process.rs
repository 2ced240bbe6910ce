//! Process events: start-up (a new image, maybe after exec), fork, and exit.

use crate::base::region;
use crate::base::thread;
use shared_state::proc;

extern "C" fn atfork_prepare() {
    crate::entry::sud::before_fork();
    let _g = thread::enter();
    crate::entry::forkcopy::before_fork();
    // Taken once here rather than by every child at its exec or exit (see `fd`).
    crate::base::fd::census_from_listing(crate::base::region::active(), crate::base::region::is_own_fd);
    crate::base::ipcns::each_region(proc::fork::prepare);
    proc::before_fork();
}

extern "C" fn atfork_child() {
    // SUD is not inherited; a fork made from shim code (selector ALLOW) was not trapped.
    crate::entry::sud::rearm_after_fork();
    crate::base::mlock::forked();
    crate::family::unix::forked();
    if region::active().is_some() {
        let _g = thread::enter();
        proc::identify_fork_child();
        crate::base::ipcns::each_region(proc::fork::child);
    }
}

/// Runs in every image that loads the shim, before `main`.
extern "C" fn init() {
    crate::base::real::resolve_all();
    if let Some(r) = region::init() {
        proc::identify_self();
        // First: a reader may be waiting for an end our exec closed (see `pipe_exec`).
        shared_state::pipe_exec::finish(r, proc::self_pid());
        // exec keeps the pid and start time: a record that matches them is our old image's.
        proc::exec_cleanup(r);
        // The IPC namespace the exec'ing thread was in, if not the tree's own.
        crate::base::ipcns::init(std::env::var(shared_state::region::FD_VAR).ok().as_deref());
        crate::base::trace::init();
        // SAFETY: plain function pointers with static lifetime.
        unsafe { libc::pthread_atfork(Some(atfork_prepare), None, Some(atfork_child)) };
        // Last: from here on every syscall of the image traps.
        crate::entry::sud::init();
        // Every set*id call is now seen (dispatch refreshes the cache): semop need not ask.
        shared_state::ipc::cache_creds(thread::catchall_active() && thread::fault_fixups_active());
    }
}

/// Runs at exit(): what exit_mm would drop. A process that dies otherwise is reaped later.
extern "C" fn fini() {
    let _g = thread::enter();
    if let Some(r) = region::active() {
        crate::family::tcp::at_exit(r);
        crate::family::udp::at_exit(r);
    }
    crate::base::ipcns::each_region(proc::exit_cleanup);
}

#[used]
#[unsafe(link_section = ".init_array")]
static INIT: extern "C" fn() = init;

#[used]
#[unsafe(link_section = ".fini_array")]
static FINI: extern "C" fn() = fini;

/// `fork` itself, to learn the child's pid (atfork handlers are not told it) and to undo the
/// prepared record when fork fails.
#[unsafe(no_mangle)]
pub extern "C" fn fork() -> libc::pid_t {
    let real = crate::base::real::FORK.get();
    // SAFETY: `real` is libc's fork, resolved by dlsym.
    let pid = unsafe { core::mem::transmute::<usize, extern "C" fn() -> libc::pid_t>(real)() };
    if pid != 0 {
        let _g = thread::enter();
        if let Some(r) = region::active() {
            // Counted again now that the child exists (see `pipe_gc`'s rounds): between the
            // child's creation and here, the parent closed nothing.
            shared_state::pipe::note_fork(r);
        }
        crate::base::ipcns::each_region(|r| proc::fork::parent(r, pid));
    }
    pid
}

/// `munmap`: a program may unmap an attachment itself instead of calling shmdt.
#[unsafe(no_mangle)]
pub extern "C" fn munmap(addr: *mut libc::c_void, len: libc::size_t) -> libc::c_int {
    let _g = thread::enter();
    match shared_state::sys::munmap(addr as usize, len) {
        Ok(()) => {
            crate::base::ipcns::each_region(|r| shared_state::shm::unmapped(r, addr as usize, len));
            0
        }
        Err(e) => {
            // SAFETY: __errno_location returns this thread's errno slot.
            unsafe { *libc::__errno_location() = e };
            -1
        }
    }
}
