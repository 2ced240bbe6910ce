//! One dispatcher behind both interposition layers: the SIGSYS handler and the exported libc
//! symbols hand it every syscall, and it serves those that touch a shim object.
//!
//! Pipes are served only while the catch-all is armed: a pipe is never served from user space
//! unless every path to it is intercepted.

use crate::base::region;
use crate::base::thread;
use crate::family::pipes;
use crate::family::poll::{self, Timeout};

/// Serves syscall `nr` if it involves a shim object: `Some(kernel-style result, -errno on
/// failure)`; `None` lets the caller issue it to the kernel unchanged.
pub fn syscall(nr: i64, a: &[u64; 6]) -> Option<i64> {
    // shared-state's own calls to the kernel, from a program that links it (`ipcshim ipcs`).
    if a[5] == shared_state::sys::KERNEL_OWN as u64
        && matches!(
            nr,
            libc::SYS_shmget
                | libc::SYS_shmat
                | libc::SYS_shmctl
                | libc::SYS_remap_file_pages
                | libc::SYS_openat
        )
    {
        return None;
    }
    // A DEL the kernel has not made yet is made before any other call (see epoll::defer_del).
    if nr != libc::SYS_epoll_ctl {
        crate::family::epoll::flush_deferred();
    }
    // The region's descriptors survive whatever the program closes (in a vfork child too).
    region::keep_fds(nr, a);
    // Bad user pointers become EFAULT through the SIGSEGV fixups, installed with the catch-all.
    if !thread::catchall_active() || !thread::fault_fixups_active() {
        crate::family::epoll::flush_deferred();
        return (nr == libc::SYS_close_range)
            .then(|| crate::base::iov::ret(region::close_range(a[0], a[1], a[2])));
    }
    let Some(r) = region::active() else {
        crate::family::epoll::flush_deferred();
        return None;
    };
    let g = thread::enter();
    let t0 = crate::base::trace::start();
    // Calls on any fd are passed through by us; only those on shim objects are traced (and
    // System V calls trace themselves, on every path).
    let traced = t0 != 0
        && match nr {
            libc::SYS_close
            | libc::SYS_dup
            | libc::SYS_dup2
            | libc::SYS_dup3
            | libc::SYS_fcntl
            | libc::SYS_ioctl => pipe_like(r, a[0] as i32),
            libc::SYS_semget | libc::SYS_semop | libc::SYS_semtimedop | libc::SYS_semctl => false,
            // Opens of /proc views and writes to sysctl views are not IPC calls.
            libc::SYS_open | libc::SYS_openat | libc::SYS_openat2 => false,
            libc::SYS_write
            | libc::SYS_pwrite64
            | libc::SYS_writev
            | libc::SYS_pwritev
            | libc::SYS_pwritev2
                if crate::base::fd::sysctl_of(a[0] as i32).is_some() =>
            {
                false
            }
            libc::SYS_msgget | libc::SYS_msgsnd | libc::SYS_msgrcv | libc::SYS_msgctl => false,
            libc::SYS_shmget | libc::SYS_shmat | libc::SYS_shmdt | libc::SYS_shmctl => false,
            _ => true,
        };
    let fd_call = !matches!(
        nr,
        libc::SYS_pipe
            | libc::SYS_pipe2
            | libc::SYS_socket
            | libc::SYS_close_range
            | libc::SYS_poll
            | libc::SYS_ppoll
            | libc::SYS_select
            | libc::SYS_pselect6
    );
    if !traced {
        return serve(r, &g, nr, a);
    }
    let path = if fd_call { traced_fd_path(a[0] as i32) } else { crate::base::trace::NO_PATH };
    let res = serve(r, &g, nr, a);
    if let Some(v) = res {
        crate::base::trace::served(nr, a, v, t0, &path);
    }
    if thread::tls().sigpipe_owed.swap(0, core::sync::atomic::Ordering::Relaxed) != 0 {
        pipes::sigpipe();
    }
    res
}

/// A call the kernel answers on a pipe or FIFO: a shim object's placeholder (a read of a write
/// end, an fcntl the shim leaves alone…) or a pipe handed back to the kernel; or a socket call
/// on a shim socket or any AF_UNIX, TCP or UDP socket (a connect the kernel refuses, a socket
/// handed back). Traced too, so that a trace shows every call the program made on its pipes
/// and sockets, as strace does. `call` returns the kernel-style result. Runs under a guard.
pub fn passthrough(nr: i64, a: &[u64; 6], call: impl FnOnce() -> i64) -> i64 {
    if !crate::base::trace::on() {
        return call();
    }
    let fd_call = matches!(
        nr,
        libc::SYS_read
            | libc::SYS_write
            | libc::SYS_readv
            | libc::SYS_writev
            | libc::SYS_preadv2
            | libc::SYS_pwritev2
            | libc::SYS_close
            | libc::SYS_dup
            | libc::SYS_dup2
            | libc::SYS_dup3
            | libc::SYS_fcntl
            | libc::SYS_ioctl
    );
    let socket_call = matches!(
        nr,
        libc::SYS_listen
            | libc::SYS_connect
            | libc::SYS_accept
            | libc::SYS_accept4
            | libc::SYS_sendto
            | libc::SYS_recvfrom
            | libc::SYS_sendmsg
            | libc::SYS_recvmsg
            | libc::SYS_shutdown
    );
    let pair = nr == libc::SYS_socketpair && a[0] as i32 == libc::AF_UNIX;
    let Some(r) = region::active().filter(|_| fd_call || socket_call || pair) else { return call() };
    let fd = a[0] as i32;
    // A socket whose calls a trace shows: AF_UNIX, TCP and UDP.
    let traced_socket = || {
        matches!(
            crate::family::unix::getsockopt_int(fd, libc::SO_DOMAIN),
            Ok(libc::AF_UNIX | libc::AF_INET | libc::AF_INET6)
        )
    };
    let logged = if pair {
        true
    } else if socket_call {
        crate::base::fd::lookup(r, fd).is_some() || traced_socket()
    } else {
        let data = matches!(nr, libc::SYS_read | libc::SYS_write | libc::SYS_readv | libc::SYS_writev);
        pipe_like(r, fd) || data && traced_socket()
    };
    if !logged {
        return call();
    }
    let t0 = crate::base::trace::start();
    let path = if pair { crate::base::trace::NO_PATH } else { traced_fd_path(fd) };
    let v = call();
    crate::base::trace::served(nr, a, v, t0, &path);
    v
}

/// What a traced call's fd is, a socket with its kind (see [`crate::base::trace::FdPath::name_socket`]).
fn traced_fd_path(fd: i32) -> crate::base::trace::FdPath {
    let mut path = crate::base::trace::fd_path(fd);
    if path.is_socket() {
        let opt = |o| crate::family::unix::getsockopt_int(fd, o).unwrap_or(-1);
        let kind = match (opt(libc::SO_DOMAIN), opt(libc::SO_TYPE)) {
            (libc::AF_UNIX, libc::SOCK_STREAM) => "UNIX-STREAM",
            (libc::AF_UNIX, libc::SOCK_DGRAM) => "UNIX-DGRAM",
            (libc::AF_UNIX, libc::SOCK_SEQPACKET) => "UNIX-SEQPACKET",
            (libc::AF_INET, libc::SOCK_STREAM) => "TCP",
            (libc::AF_INET, libc::SOCK_DGRAM) => "UDP",
            (libc::AF_INET6, libc::SOCK_STREAM) => "TCPv6",
            (libc::AF_INET6, libc::SOCK_DGRAM) => "UDPv6",
            _ => "socket",
        };
        // A TCP or UDP socket's ends, as strace -yy shows them.
        let (mut local, mut peer) = ([0u8; 28], [0u8; 28]);
        let name_of = |nr: i64, sa: &mut [u8; 28]| {
            let mut len = sa.len() as u32;
            let got = shared_state::sys::syscall6(
                nr,
                fd as usize,
                sa.as_mut_ptr() as usize,
                &mut len as *mut u32 as usize,
                0,
                0,
                0,
            );
            got.is_ok().then_some(len as usize)
        };
        let inet = matches!(kind, "TCP" | "UDP" | "TCPv6" | "UDPv6");
        let local = inet.then(|| name_of(libc::SYS_getsockname, &mut local).map(|n| &local[..n])).flatten();
        let peer = inet.then(|| name_of(libc::SYS_getpeername, &mut peer).map(|n| &peer[..n])).flatten();
        path.name_socket(kind, local, peer);
    }
    path
}

/// A shim pipe, or a kernel pipe or FIFO (for tracing: strace -y shows them all alike).
fn pipe_like(r: &shared_state::Region, fd: i32) -> bool {
    crate::base::fd::lookup(r, fd).is_some()
        || shared_state::sys::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO)
}

fn serve(r: &'static shared_state::Region, g: &thread::Guard, nr: i64, a: &[u64; 6]) -> Option<i64> {
    let fd = a[0] as i32;
    match nr {
        // Writes to a sysctl view set the namespace's limit (one fd table load for other fds).
        libc::SYS_write | libc::SYS_pwrite64 | libc::SYS_writev | libc::SYS_pwritev | libc::SYS_pwritev2
            if crate::base::fd::sysctl_of(fd).is_some() =>
        {
            crate::family::procfs::write(crate::base::ipcns::current().unwrap_or(r), nr, a)
        }
        libc::SYS_open | libc::SYS_openat | libc::SYS_openat2 => {
            crate::family::procfs::open(crate::base::ipcns::current().unwrap_or(r), nr, a)
        }
        libc::SYS_read => crate::family::file::read(r, g, fd, a[1] as usize, a[2] as usize),
        libc::SYS_write => crate::family::file::write(r, g, fd, a[1] as usize, a[2] as usize),
        libc::SYS_readv => crate::family::file::vector(r, g, false, fd, a[1] as usize, a[2], false),
        libc::SYS_writev => crate::family::file::vector(r, g, true, fd, a[1] as usize, a[2], false),
        // An offset of -1 means "the current position", which is how a pipe is read.
        libc::SYS_preadv2 | libc::SYS_pwritev2 if a[3] as i64 == -1 => {
            let write = nr == libc::SYS_pwritev2;
            let flags = a[5] as i32;
            let known =
                libc::RWF_HIPRI | libc::RWF_DSYNC | libc::RWF_SYNC | libc::RWF_NOWAIT | libc::RWF_APPEND;
            if flags & !known != 0 {
                crate::base::fd::lookup(r, fd)?;
                return Some(-(libc::EOPNOTSUPP as i64));
            }
            crate::family::file::vector(r, g, write, fd, a[1] as usize, a[2], flags & libc::RWF_NOWAIT != 0)
        }
        libc::SYS_pipe => pipes::pipe2(r, a[0] as usize, 0),
        libc::SYS_pipe2 => pipes::pipe2(r, a[0] as usize, a[1]),
        libc::SYS_close => crate::family::file::close(r, fd),
        libc::SYS_close_range => crate::family::file::close_range(r, a[0], a[1], a[2]),
        libc::SYS_dup | libc::SYS_dup2 | libc::SYS_dup3 => crate::family::file::dup(r, nr, a),
        libc::SYS_fcntl => crate::family::file::fcntl(r, fd, a[1] as i32, a[2]),
        libc::SYS_ioctl => crate::family::file::ioctl(r, fd, a[1], a[2] as usize),
        libc::SYS_poll => poll::poll(r, g, a[0] as usize, a[1], Timeout::Millis(a[2] as i32 as i64), 0),
        libc::SYS_ppoll => {
            if a[3] != 0 && a[4] != 8 {
                return None;
            }
            poll::poll(r, g, a[0] as usize, a[1], Timeout::Spec(a[2] as usize), a[3] as usize)
        }
        libc::SYS_select => poll::select(r, g, a, false),
        libc::SYS_pselect6 => poll::select(r, g, a, true),
        libc::SYS_socketpair => crate::family::unix::socketpair(r, a[0], a[1], a[2], a[3] as usize),
        libc::SYS_listen => {
            // A socket made here as AF_UNIX, or announced as an AF_UNIX listener, is no TCP
            // listener: the kernel need not be asked its domain.
            let unix = crate::base::fd::fresh(fd).is_some()
                || crate::base::fd::listener(fd).is_some_and(|l| !crate::family::tcp::is_listener(&l));
            let tcp = crate::base::fd::fresh_tcp(fd);
            let res = crate::family::unix::listen(r, fd, a[1]);
            if res == Some(0) && !unix {
                crate::family::tcp::listened(r, fd, tcp);
            }
            res
        }
        libc::SYS_socket => crate::family::unix::socket(r, a[0], a[1], a[2])
            .or_else(|| crate::family::udp::socket(r, a[0], a[1], a[2]))
            .or_else(|| crate::family::tcp::socket(a[0], a[1], a[2])),
        libc::SYS_bind => crate::family::unix::bind(r, fd, a[1], a[2]),
        libc::SYS_connect => {
            let res = crate::family::tcp::connect(r, g, fd, a[1] as usize, a[2])
                .or_else(|| crate::family::unix::connect(r, g, fd, a[1] as usize, a[2]));
            // A TCP connect the shim serves may say EINPROGRESS (loopback connected it already).
            if res == Some(0)
                || res == Some(-(libc::EINPROGRESS as i64)) && crate::base::fd::lookup(r, fd).is_some()
            {
                crate::family::epoll::connected(r, fd);
            }
            res
        }
        libc::SYS_accept | libc::SYS_accept4 => crate::family::unix::accept(r, g, nr, a),
        libc::SYS_sendto => {
            crate::family::tcp::sending(fd, a[3] as i32);
            crate::family::unix::sendto(r, g, a)
        }
        libc::SYS_recvfrom => crate::family::unix::recvfrom(r, g, a),
        libc::SYS_sendmsg => {
            crate::family::tcp::sending(fd, a[2] as i32);
            crate::family::epoll::passing(r, a[1] as usize);
            crate::family::unix::sendmsg(r, g, fd, a[1] as usize, a[2] as i32)
        }
        libc::SYS_recvmsg => crate::family::unix::recvmsg(r, g, fd, a[1] as usize, a[2] as i32),
        libc::SYS_sendmmsg => {
            crate::family::tcp::sending(fd, a[3] as i32);
            crate::family::unix::sendmmsg(r, g, a)
        }
        libc::SYS_recvmmsg => crate::family::unix::recvmmsg(r, g, a),
        libc::SYS_shutdown => crate::family::unix::shutdown(r, fd, a[1]),
        libc::SYS_setsockopt => crate::family::unix::setsockopt(r, a),
        libc::SYS_getsockopt => crate::family::unix::getsockopt(r, a),
        libc::SYS_vmsplice => {
            let p = crate::base::fd::lookup(r, fd).filter(|p| !p.socket)?;
            // SPLICE_F_GIFT gives pages the kernel could steal; a copy never needs them.
            let known =
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MORE | libc::SPLICE_F_GIFT;
            if a[3] as u32 & !known != 0 {
                return Some(-(libc::EINVAL as i64));
            }
            let nowait = a[3] as u32 & libc::SPLICE_F_NONBLOCK != 0;
            crate::family::file::vector(r, g, p.write, fd, a[1] as usize, a[2], nowait)
        }
        libc::SYS_splice => crate::family::splice::splice(r, g, a),
        libc::SYS_tee => crate::family::splice::tee(r, g, a),
        libc::SYS_sendfile => crate::family::splice::sendfile(r, g, a),
        libc::SYS_epoll_create | libc::SYS_epoll_create1 => crate::family::epoll::create(r, nr, a),
        libc::SYS_epoll_ctl => crate::family::epoll::ctl(r, a),
        libc::SYS_epoll_wait | libc::SYS_epoll_pwait | libc::SYS_epoll_pwait2 => {
            crate::family::epoll::wait(r, g, nr, a)
        }
        // A reaped child's fds are all closed: writers to its pipes must re-check for readers.
        libc::SYS_wait4 | libc::SYS_waitid => {
            let res = g.allow_signals(|| {
                shared_state::sys::syscall6(
                    nr,
                    a[0] as usize,
                    a[1] as usize,
                    a[2] as usize,
                    a[3] as usize,
                    a[4] as usize,
                    0,
                )
            });
            if res.is_ok_and(|pid| nr == libc::SYS_waitid || pid > 0) {
                match reaped(nr, a) {
                    Reaped::No => {}
                    Reaped::Exited => shared_state::pipe::note_exit(r),
                    // It closed nothing through us: what it was the last to hold is found by a
                    // collection, as the kernel frees it at the death.
                    Reaped::Killed => {
                        shared_state::pipe::note_exit(r);
                        shared_state::pipe_gc::collect_soon(r);
                    }
                }
            }
            Some(crate::base::iov::ret(res))
        }
        // A collection running now must look for the child (see `pipe_gc`).
        libc::SYS_fork | libc::SYS_vfork => {
            shared_state::pipe::note_fork(r);
            None
        }
        libc::SYS_clone if a[0] & libc::CLONE_THREAD as u64 == 0 => {
            shared_state::pipe::note_fork(r);
            None
        }
        libc::SYS_exit_group => {
            crate::family::file::exiting(r);
            // What exit_sem does: undo is applied now, not when someone notices the death.
            crate::base::ipcns::each_region(shared_state::proc::exit_cleanup);
            None
        }
        libc::SYS_semget | libc::SYS_semop | libc::SYS_semtimedop | libc::SYS_semctl => {
            Some(crate::entry::sem::serve(crate::base::ipcns::current().unwrap_or(r), g, nr, a))
        }
        libc::SYS_mlockall => Some(crate::base::mlock::mlockall(r, a[0])),
        libc::SYS_munlockall => Some(crate::base::mlock::munlockall()),
        libc::SYS_msgget | libc::SYS_msgsnd | libc::SYS_msgrcv | libc::SYS_msgctl => {
            Some(crate::entry::msg::serve(crate::base::ipcns::current().unwrap_or(r), g, nr, a))
        }
        libc::SYS_remap_file_pages => crate::entry::sysv::serve_remap(a),
        // Attachment records are the process's, as for the exported shmat: a later fork
        // (proc::fork) copies them whichever path made them.
        libc::SYS_shmget | libc::SYS_shmat | libc::SYS_shmdt | libc::SYS_shmctl => {
            Some(crate::entry::sysv::serve(crate::base::ipcns::current().unwrap_or(r), nr, a))
        }
        libc::SYS_unshare => crate::base::ipcns::unshare(a[0]),
        libc::SYS_setns => crate::base::ipcns::setns(a[0], a[1]),
        // Credentials are cached for the semop fast path: refresh after any change.
        libc::SYS_setuid
        | libc::SYS_setgid
        | libc::SYS_setreuid
        | libc::SYS_setregid
        | libc::SYS_setresuid
        | libc::SYS_setresgid
        | libc::SYS_setfsuid
        | libc::SYS_setfsgid => {
            let res = shared_state::sys::syscall6(nr, a[0] as usize, a[1] as usize, a[2] as usize, 0, 0, 0);
            shared_state::ipc::creds_changed();
            Some(crate::base::iov::ret(res))
        }
        _ => None,
    }
}

/// What a successful wait4/waitid reported.
enum Reaped {
    /// A child that stopped or continued (tracers wait for those all the time).
    No,
    /// A child that exited (or unknown).
    Exited,
    /// A child killed by a signal.
    Killed,
}

/// Tells a wait status (or si_code) of a child that is gone, and of one killed by a signal.
type Tests = (fn(i32) -> bool, fn(i32) -> bool);

fn reaped(nr: i64, a: &[u64; 6]) -> Reaped {
    let (addr, (gone, killed)): (u64, Tests) = if nr == libc::SYS_wait4 {
        (a[1], (|st| libc::WIFEXITED(st) || libc::WIFSIGNALED(st), |st| libc::WIFSIGNALED(st)))
    } else {
        // siginfo_t's si_code, at offset 8.
        (
            a[2].wrapping_add(8),
            (
                |code| matches!(code, libc::CLD_EXITED | libc::CLD_KILLED | libc::CLD_DUMPED),
                |code| matches!(code, libc::CLD_KILLED | libc::CLD_DUMPED),
            ),
        )
    };
    if addr == 0 || (nr == libc::SYS_waitid && a[2] == 0) {
        return Reaped::Exited;
    }
    let mut v = [0i32];
    match crate::base::copy::slice_in(&mut v, addr as usize) {
        Err(_) => Reaped::Exited,
        Ok(()) if killed(v[0]) => Reaped::Killed,
        Ok(()) if gone(v[0]) => Reaped::Exited,
        Ok(()) => Reaped::No,
    }
}
