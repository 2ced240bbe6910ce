//! Exported libc symbols for the hot fd calls: the fast path into the same dispatcher as the
//! catch-all, without a trap. What the dispatcher does not serve goes to libc's own function,
//! called with the catch-all's selector open so that its syscall does not trap a second time.

use crate::base::real::{self, real_call};
use crate::base::thread;
use crate::{entry::dispatch, entry::sud};
use libc::{c_int, c_long, c_ulong, c_void, iovec, nfds_t, pollfd, size_t, sockaddr, socklen_t, ssize_t};

/// Turns a kernel-style result into the C convention (-1 and errno).
pub(crate) fn c_ret(r: i64) -> i64 {
    if r < 0 {
        // SAFETY: __errno_location returns this thread's errno slot.
        unsafe { *libc::__errno_location() = -r as i32 };
        -1
    } else {
        r
    }
}

/// What libc's function is, next to the bare system call `nr(a)`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Libc {
    /// The system call itself.
    Bare,
    /// The system call, made a cancellation point once a second thread ever started.
    Cancellable,
    /// More than that (copies, a signal mask, another call): only libc's function will do.
    Own,
}

/// Serves through the dispatcher, or else passes the call on: as the bare system call from the
/// catch-all's allowed range where that is what libc's function would make (no guard, no
/// selector to flip, and the kernel does not read the selector), else by running `libc` with
/// signals deliverable (it may block).
fn serve<T: TryFrom<i64> + TryInto<i64> + Default + Copy>(
    nr: i64,
    a: [u64; 6],
    how: Libc,
    libc: impl FnOnce() -> T,
) -> T {
    if thread::trap_only() {
        return libc();
    }
    // A call on a known kernel fd, decided as the rewritten sites' stubs decide it: neither
    // the dispatcher nor a guard. What must be libc's own function makes its system call
    // from libc's site, which the catch-all rewrites to the same stub after its first traps.
    if !crate::base::trace::on() && kernel_fd_call(nr, &a) {
        return match how {
            Libc::Bare => T::try_from(c_ret(thread::allowed_syscall(nr, &a))).unwrap_or_default(),
            Libc::Cancellable if crate::base::real::single_threaded() => {
                T::try_from(c_ret(thread::allowed_syscall(nr, &a))).unwrap_or_default()
            }
            _ => libc(),
        };
    }
    match dispatch::syscall(nr, &a) {
        Some(r) => T::try_from(c_ret(r)).unwrap_or_default(),
        None if !crate::base::trace::on()
            && (how == Libc::Bare || how == Libc::Cancellable && crate::base::real::single_threaded()) =>
        {
            T::try_from(c_ret(thread::allowed_syscall(nr, &a))).unwrap_or_default()
        }
        None => {
            let g = thread::enter();
            if !crate::base::trace::on() {
                return g.allow_signals(libc);
            }
            let mut out = T::default();
            dispatch::passthrough(nr, &a, || {
                out = g.allow_signals(libc);
                match out.try_into().unwrap_or(0) {
                    // SAFETY: __errno_location returns this thread's errno slot.
                    -1 => -(unsafe { *libc::__errno_location() } as i64),
                    v => v,
                }
            });
            out
        }
    }
}

/// A read, write, fcntl, ioctl or close the kernel alone serves: on an fd the table knows as
/// the kernel's (an fcntl or ioctl whose command means nothing for a shim object, on any
/// fd). A close forgets the fd first
/// (as `crate::family::file::close` does), unless it is one of the region descriptors, which the dispatcher
/// moves away before the program's close (`region::keep_fds`); as the close stub does, one
/// the table has not seen is the kernel's alone unless lseek says ESPIPE (a pipe, FIFO or
/// socket may be a shim object's last end, whose peers the dispatcher's close wakes).
fn kernel_fd_call(nr: i64, a: &[u64; 6]) -> bool {
    let fd = a[0] as i32;
    match nr {
        libc::SYS_read | libc::SYS_write | libc::SYS_readv | libc::SYS_writev => {
            crate::base::fd::is_kernel(fd)
        }
        libc::SYS_fcntl => {
            !crate::family::file::FD_FCNTLS.contains(&(a[1] as i32)) || crate::base::fd::is_kernel(fd)
        }
        libc::SYS_ioctl => {
            !crate::family::file::FD_IOCTLS.contains(&(a[1] as u32)) || crate::base::fd::is_kernel(fd)
        }
        libc::SYS_close if !crate::base::region::holds_fd(fd) => {
            let plain = match crate::base::fd::entry_known(fd) {
                Some(known) => known,
                None => {
                    thread::allowed_syscall(libc::SYS_lseek, &[fd as u64, 0, libc::SEEK_CUR as u64, 0, 0, 0])
                        != -(libc::ESPIPE as i64)
                }
            };
            if plain {
                crate::base::fd::forget(fd);
            }
            plain
        }
        _ => false,
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    serve(libc::SYS_read, [fd as u64, buf as u64, n as u64, 0, 0, 0], Libc::Cancellable, || {
        real_call!(real::READ, fn(c_int, *mut c_void, size_t) -> ssize_t, fd, buf, n)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn __read_chk(fd: c_int, buf: *mut c_void, n: size_t, buflen: size_t) -> ssize_t {
    if n > buflen {
        // libc's own check fails the program, as it would without us.
        return real_call!(
            real::READ_CHK,
            fn(c_int, *mut c_void, size_t, size_t) -> ssize_t,
            fd,
            buf,
            n,
            buflen
        );
    }
    read(fd, buf, n)
}

#[unsafe(no_mangle)]
pub extern "C" fn write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t {
    serve(libc::SYS_write, [fd as u64, buf as u64, n as u64, 0, 0, 0], Libc::Cancellable, || {
        real_call!(real::WRITE, fn(c_int, *const c_void, size_t) -> ssize_t, fd, buf, n)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn readv(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t {
    serve(libc::SYS_readv, [fd as u64, iov as u64, cnt as i64 as u64, 0, 0, 0], Libc::Cancellable, || {
        real_call!(real::READV, fn(c_int, *const iovec, c_int) -> ssize_t, fd, iov, cnt)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn writev(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t {
    serve(libc::SYS_writev, [fd as u64, iov as u64, cnt as i64 as u64, 0, 0, 0], Libc::Cancellable, || {
        real_call!(real::WRITEV, fn(c_int, *const iovec, c_int) -> ssize_t, fd, iov, cnt)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn close(fd: c_int) -> c_int {
    serve(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0], Libc::Cancellable, || {
        real_call!(real::CLOSE, fn(c_int) -> c_int, fd)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn pipe(fds: *mut c_int) -> c_int {
    serve(libc::SYS_pipe2, [fds as u64, 0, 0, 0, 0, 0], Libc::Bare, || {
        real_call!(real::PIPE, fn(*mut c_int) -> c_int, fds)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn pipe2(fds: *mut c_int, flags: c_int) -> c_int {
    serve(libc::SYS_pipe2, [fds as u64, flags as u64, 0, 0, 0, 0], Libc::Bare, || {
        real_call!(real::PIPE2, fn(*mut c_int, c_int) -> c_int, fds, flags)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn dup(fd: c_int) -> c_int {
    serve(libc::SYS_dup, [fd as u64, 0, 0, 0, 0, 0], Libc::Bare, || {
        real_call!(real::DUP, fn(c_int) -> c_int, fd)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    serve(libc::SYS_dup2, [old as u64, new as u64, 0, 0, 0, 0], Libc::Bare, || {
        real_call!(real::DUP2, fn(c_int, c_int) -> c_int, old, new)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    serve(libc::SYS_dup3, [old as u64, new as u64, flags as u64, 0, 0, 0], Libc::Bare, || {
        real_call!(real::DUP3, fn(c_int, c_int, c_int) -> c_int, old, new, flags)
    })
}

/// glibc's fcntl: F_GETOWN through F_GETOWN_EX (a process group's negative id), the waiting
/// locks a cancellation point, the rest the bare call.
fn fcntl_libc(cmd: c_int) -> Libc {
    match cmd {
        libc::F_GETOWN => Libc::Own,
        libc::F_SETLKW | libc::F_OFD_SETLKW => Libc::Cancellable,
        _ => Libc::Bare,
    }
}

/// `fcntl` is variadic; on x86_64 a fixed third argument is passed the same way.
#[unsafe(no_mangle)]
pub extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    serve(libc::SYS_fcntl, [fd as u64, cmd as u64, arg, 0, 0, 0], fcntl_libc(cmd), || {
        real_call!(real::FCNTL, fn(c_int, c_int, c_ulong) -> c_int, fd, cmd, arg)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    serve(libc::SYS_fcntl, [fd as u64, cmd as u64, arg, 0, 0, 0], fcntl_libc(cmd), || {
        real_call!(real::FCNTL64, fn(c_int, c_int, c_ulong) -> c_int, fd, cmd, arg)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn ioctl(fd: c_int, req: c_ulong, arg: c_ulong) -> c_int {
    serve(libc::SYS_ioctl, [fd as u64, req, arg, 0, 0, 0], Libc::Bare, || {
        real_call!(real::IOCTL, fn(c_int, c_ulong, c_ulong) -> c_int, fd, req, arg)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int {
    serve(libc::SYS_poll, [fds as u64, n, timeout as i64 as u64, 0, 0, 0], Libc::Cancellable, || {
        real_call!(real::POLL, fn(*mut pollfd, nfds_t, c_int) -> c_int, fds, n, timeout)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn __poll_chk(fds: *mut pollfd, n: nfds_t, timeout: c_int, fdslen: size_t) -> c_int {
    if (fdslen / size_of::<pollfd>()) < n as usize {
        return real_call!(
            real::POLL_CHK,
            fn(*mut pollfd, nfds_t, c_int, size_t) -> c_int,
            fds,
            n,
            timeout,
            fdslen
        );
    }
    poll(fds, n, timeout)
}

#[unsafe(no_mangle)]
pub extern "C" fn epoll_wait(ep: c_int, ev: *mut libc::epoll_event, max: c_int, timeout: c_int) -> c_int {
    serve(
        libc::SYS_epoll_wait,
        [ep as u64, ev as u64, max as i64 as u64, timeout as i64 as u64, 0, 0],
        Libc::Cancellable,
        || {
            real_call!(
                real::EPOLL_WAIT,
                fn(c_int, *mut libc::epoll_event, c_int, c_int) -> c_int,
                ep,
                ev,
                max,
                timeout
            )
        },
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn epoll_ctl(ep: c_int, op: c_int, fd: c_int, ev: *mut libc::epoll_event) -> c_int {
    serve(libc::SYS_epoll_ctl, [ep as u64, op as u64, fd as u64, ev as u64, 0, 0], Libc::Bare, || {
        real_call!(real::EPOLL_CTL, fn(c_int, c_int, c_int, *mut libc::epoll_event) -> c_int, ep, op, fd, ev)
    })
}

/// libc's epoll_pwait gets a copy of the mask without SIGSYS, which must never be blocked
/// (an unreadable one is passed on, for the kernel's EFAULT).
#[unsafe(no_mangle)]
pub extern "C" fn epoll_pwait(
    ep: c_int,
    ev: *mut libc::epoll_event,
    max: c_int,
    timeout: c_int,
    mask: *const libc::sigset_t,
) -> c_int {
    // The kernel's sigset: the first 64 bits of glibc's.
    let mut m = [0u64; 16];
    let copied = !mask.is_null() && crate::base::copy::slice_in(&mut m[..1], mask as usize).is_ok();
    thread::sanitize_mask(&mut m[0]);
    let mp = if copied { m.as_ptr() as *const libc::sigset_t } else { mask };
    let a = [ep as u64, ev as u64, max as i64 as u64, timeout as i64 as u64, mp as u64, 8];
    serve(libc::SYS_epoll_pwait, a, Libc::Own, || {
        real_call!(
            real::EPOLL_PWAIT,
            fn(c_int, *mut libc::epoll_event, c_int, c_int, *const libc::sigset_t) -> c_int,
            ep,
            ev,
            max,
            timeout,
            mp
        )
    })
}

/// glibc's ppoll passes a copy of the timeout, so the caller's is never updated.
#[unsafe(no_mangle)]
pub extern "C" fn ppoll(
    fds: *mut pollfd,
    n: nfds_t,
    tmo: *const libc::timespec,
    mask: *const libc::sigset_t,
) -> c_int {
    let copy = (!tmo.is_null()).then(|| {
        // SAFETY: a non-null timeout must point at a timespec, as for libc's ppoll.
        unsafe { *tmo }
    });
    let tp = copy.as_ref().map_or(0, |t| t as *const libc::timespec as u64);
    // What glibc passes, mask or not (and what strace shows).
    let sz = 8;
    serve(libc::SYS_ppoll, [fds as u64, n, tp, mask as u64, sz, 0], Libc::Own, || {
        real_call!(
            real::PPOLL,
            fn(*mut pollfd, nfds_t, *const libc::timespec, *const libc::sigset_t) -> c_int,
            fds,
            n,
            tmo,
            mask
        )
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn select(
    n: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    tv: *mut libc::timeval,
) -> c_int {
    serve(libc::SYS_select, [n as i64 as u64, r as u64, w as u64, e as u64, tv as u64, 0], Libc::Own, || {
        real_call!(
            real::SELECT,
            fn(c_int, *mut libc::fd_set, *mut libc::fd_set, *mut libc::fd_set, *mut libc::timeval) -> c_int,
            n,
            r,
            w,
            e,
            tv
        )
    })
}

/// glibc's pselect passes a copy of the timeout and the mask as pselect6's {mask, size} pair.
#[unsafe(no_mangle)]
pub extern "C" fn pselect(
    n: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    tmo: *const libc::timespec,
    mask: *const libc::sigset_t,
) -> c_int {
    let copy = (!tmo.is_null()).then(|| {
        // SAFETY: a non-null timeout must point at a timespec, as for libc's pselect.
        unsafe { *tmo }
    });
    let tp = copy.as_ref().map_or(0, |t| t as *const libc::timespec as u64);
    let data: [u64; 2] = [mask as u64, if mask.is_null() { 0 } else { 8 }];
    serve(
        libc::SYS_pselect6,
        [n as i64 as u64, r as u64, w as u64, e as u64, tp, data.as_ptr() as u64],
        Libc::Own,
        || {
            real_call!(
                real::PSELECT,
                fn(
                    c_int,
                    *mut libc::fd_set,
                    *mut libc::fd_set,
                    *mut libc::fd_set,
                    *const libc::timespec,
                    *const libc::sigset_t,
                ) -> c_int,
                n,
                r,
                w,
                e,
                tmo,
                mask
            )
        },
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn send(fd: c_int, buf: *const c_void, n: size_t, flags: c_int) -> ssize_t {
    serve(libc::SYS_sendto, [fd as u64, buf as u64, n as u64, flags as u64, 0, 0], Libc::Cancellable, || {
        real_call!(real::SEND, fn(c_int, *const c_void, size_t, c_int) -> ssize_t, fd, buf, n, flags)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t {
    serve(
        libc::SYS_recvfrom,
        [fd as u64, buf as u64, n as u64, flags as u64, 0, 0],
        Libc::Cancellable,
        || real_call!(real::RECV, fn(c_int, *mut c_void, size_t, c_int) -> ssize_t, fd, buf, n, flags),
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    n: size_t,
    flags: c_int,
    addr: *const libc::sockaddr,
    alen: libc::socklen_t,
) -> ssize_t {
    serve(
        libc::SYS_sendto,
        [fd as u64, buf as u64, n as u64, flags as u64, addr as u64, alen as u64],
        Libc::Cancellable,
        || {
            real_call!(
                real::SENDTO,
                fn(c_int, *const c_void, size_t, c_int, *const libc::sockaddr, libc::socklen_t) -> ssize_t,
                fd,
                buf,
                n,
                flags,
                addr,
                alen
            )
        },
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    flags: c_int,
    addr: *mut libc::sockaddr,
    alen: *mut libc::socklen_t,
) -> ssize_t {
    serve(
        libc::SYS_recvfrom,
        [fd as u64, buf as u64, n as u64, flags as u64, addr as u64, alen as u64],
        Libc::Cancellable,
        || {
            real_call!(
                real::RECVFROM,
                fn(c_int, *mut c_void, size_t, c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> ssize_t,
                fd,
                buf,
                n,
                flags,
                addr,
                alen
            )
        },
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> ssize_t {
    serve(libc::SYS_sendmsg, [fd as u64, msg as u64, flags as u64, 0, 0, 0], Libc::Cancellable, || {
        real_call!(real::SENDMSG, fn(c_int, *const libc::msghdr, c_int) -> ssize_t, fd, msg, flags)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> ssize_t {
    serve(libc::SYS_recvmsg, [fd as u64, msg as u64, flags as u64, 0, 0, 0], Libc::Cancellable, || {
        real_call!(real::RECVMSG, fn(c_int, *mut libc::msghdr, c_int) -> ssize_t, fd, msg, flags)
    })
}

// Socket set-up calls: exported too, so a connect-accept cycle takes no trap.

#[unsafe(no_mangle)]
pub extern "C" fn socket(domain: c_int, ty: c_int, proto: c_int) -> c_int {
    serve(libc::SYS_socket, [domain as u64, ty as u64, proto as u64, 0, 0, 0], Libc::Bare, || {
        real_call!(real::SOCKET, fn(c_int, c_int, c_int) -> c_int, domain, ty, proto)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn socketpair(domain: c_int, ty: c_int, proto: c_int, sv: *mut c_int) -> c_int {
    serve(libc::SYS_socketpair, [domain as u64, ty as u64, proto as u64, sv as u64, 0, 0], Libc::Bare, || {
        real_call!(real::SOCKETPAIR, fn(c_int, c_int, c_int, *mut c_int) -> c_int, domain, ty, proto, sv)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    serve(libc::SYS_bind, [fd as u64, addr as u64, len as u64, 0, 0, 0], Libc::Bare, || {
        real_call!(real::BIND, fn(c_int, *const sockaddr, socklen_t) -> c_int, fd, addr, len)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    serve(libc::SYS_listen, [fd as u64, backlog as i64 as u64, 0, 0, 0, 0], Libc::Bare, || {
        real_call!(real::LISTEN, fn(c_int, c_int) -> c_int, fd, backlog)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    serve(libc::SYS_connect, [fd as u64, addr as u64, len as u64, 0, 0, 0], Libc::Cancellable, || {
        real_call!(real::CONNECT, fn(c_int, *const sockaddr, socklen_t) -> c_int, fd, addr, len)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    serve(libc::SYS_accept, [fd as u64, addr as u64, len as u64, 0, 0, 0], Libc::Cancellable, || {
        real_call!(real::ACCEPT, fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int, fd, addr, len)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int {
    serve(
        libc::SYS_accept4,
        [fd as u64, addr as u64, len as u64, flags as u64, 0, 0],
        Libc::Cancellable,
        || {
            real_call!(
                real::ACCEPT4,
                fn(c_int, *mut sockaddr, *mut socklen_t, c_int) -> c_int,
                fd,
                addr,
                len,
                flags
            )
        },
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn shutdown(fd: c_int, how: c_int) -> c_int {
    serve(libc::SYS_shutdown, [fd as u64, how as i64 as u64, 0, 0, 0, 0], Libc::Bare, || {
        real_call!(real::SHUTDOWN, fn(c_int, c_int) -> c_int, fd, how)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    let a = [fd as u64, level as u64, name as u64, val as u64, len as u64, 0];
    serve(libc::SYS_setsockopt, a, Libc::Bare, || {
        real_call!(
            real::SETSOCKOPT,
            fn(c_int, c_int, c_int, *const c_void, socklen_t) -> c_int,
            fd,
            level,
            name,
            val,
            len
        )
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    let a = [fd as u64, level as u64, name as u64, val as u64, len as u64, 0];
    serve(libc::SYS_getsockopt, a, Libc::Bare, || {
        real_call!(
            real::GETSOCKOPT,
            fn(c_int, c_int, c_int, *mut c_void, *mut socklen_t) -> c_int,
            fd,
            level,
            name,
            val,
            len
        )
    })
}

/// `syscall(2)` for fd calls (node's libuv closes fds with it); the SysV numbers stay with
/// the exported System V entry points.
pub fn syscall_fd(nr: c_long, a: [u64; 6]) -> Option<c_long> {
    dispatch::syscall(nr, &a).map(c_ret)
}

/// `mlockall`: never the region (see `crate::base::mlock`), whether or not the catch-all is on.
#[unsafe(no_mangle)]
pub extern "C" fn mlockall(flags: c_int) -> c_int {
    let _g = thread::enter();
    let r = match crate::base::region::active() {
        Some(r) => crate::base::mlock::mlockall(r, flags as u64),
        None => crate::base::iov::ret(shared_state::sys::syscall6(
            libc::SYS_mlockall,
            flags as usize,
            0,
            0,
            0,
            0,
            0,
        )),
    };
    c_ret(r) as c_int
}

#[unsafe(no_mangle)]
pub extern "C" fn munlockall() -> c_int {
    let _g = thread::enter();
    c_ret(crate::base::mlock::munlockall()) as c_int
}

unsafe extern "C" {
    static environ: *const *const libc::c_char;
}

/// Whether the exec functions below make their execve from here: with the catch-all armed,
/// outside a vfork child (whose scratch memory would outlive it in the parent) and off an
/// application stack too small for shim code.
fn exec_here() -> bool {
    thread::catchall_active() && !thread::trap_only() && !thread::in_vfork_child()
}

type Argv = *const *const libc::c_char;
type Path = *const libc::c_char;

/// An exec that returned: -1 with `errno`.
fn exec_failed(errno: i32) -> c_int {
    c_ret(-(errno as i64)) as c_int
}

fn env() -> Argv {
    // SAFETY: glibc's environ, read once.
    unsafe { environ }
}

/// `execve`, `execv`, `execvp` and `execvpe`: the exec the catch-all makes of a trapped
/// execve, without the trap; `execvp`'s PATH search tries its names without a trap each.
#[unsafe(no_mangle)]
pub extern "C" fn execve(path: Path, argv: Argv, envp: Argv) -> c_int {
    if !exec_here() {
        return real_call!(real::EXECVE, fn(Path, Argv, Argv) -> c_int, path, argv, envp);
    }
    exec_failed(sud::execve(path as usize, argv as usize, envp as usize))
}

#[unsafe(no_mangle)]
pub extern "C" fn execv(path: Path, argv: Argv) -> c_int {
    if !exec_here() {
        return real_call!(real::EXECV, fn(Path, Argv) -> c_int, path, argv);
    }
    exec_failed(sud::execve(path as usize, argv as usize, env() as usize))
}

#[unsafe(no_mangle)]
pub extern "C" fn execvp(file: Path, argv: Argv) -> c_int {
    if !exec_here() {
        return real_call!(real::EXECVP, fn(Path, Argv) -> c_int, file, argv);
    }
    exec_failed(sud::execvpe(file as usize, argv as usize, env() as usize))
}

#[unsafe(no_mangle)]
pub extern "C" fn execvpe(file: Path, argv: Argv, envp: Argv) -> c_int {
    if !exec_here() {
        return real_call!(real::EXECVPE, fn(Path, Argv, Argv) -> c_int, file, argv, envp);
    }
    exec_failed(sud::execvpe(file as usize, argv as usize, envp as usize))
}
