//! The file operations every shim fd has, whatever it is (`fs/read_write.c`, `fs/open.c`,
//! `fs/fcntl.c`, `fs/ioctl.c`, `fs/file.c`): read and write, close and its variants, dup,
//! fcntl, ioctl, and the closes of an exiting process. Each returns `None` when the fd is not
//! a shim object (or not open for that direction): the kernel's placeholder then gives the
//! kernel's answer (EBADF, ESPIPE, ...). Below them, one module per family.

use crate::base::fd::{self, PipeFd};
use crate::base::iov::{Iov, import_iovec, ret, single};
use crate::base::thread;
use crate::family::pipes;
use shared_state::Region;
use shared_state::pipe;
use shared_state::sys::{self, Errno};

/// Runs `drop_fd`, the kernel call that drops the shim fd `p` (a close, or a dup onto it),
/// and frees its object if that was the last end of it anywhere, as the kernel frees it at its
/// last release (pipes: `pipes::dropping`; sockets: `crate::family::unix::dropping`). Then
/// whoever waits on the object looks again, and epoll sets drop their interests in it if this
/// was its file's last reference. Returns `drop_fd`'s result.
pub fn dropping(
    r: &Region,
    p: &PipeFd,
    drop_fd: impl FnOnce() -> Result<usize, Errno>,
) -> Result<usize, Errno> {
    if p.socket {
        let (res, both_gone) = crate::family::unix::dropping(r, p, drop_fd);
        crate::family::epoll::object_closed(r, p);
        // Last, once nothing more is done to them: their slots may be reused from here on.
        if let Some(peer) = both_gone {
            pipe::release(r, peer);
            pipe::release(r, p.pipe);
        }
        return res;
    }
    let res = pipes::dropping(r, p, drop_fd);
    closed(r, p);
    res
}

pub fn readv(r: &Region, g: &thread::Guard, fd: i32, iov: &[Iov], nowait: bool) -> Option<i64> {
    let p = fd::lookup(r, fd).filter(|p| p.read)?;
    if p.socket {
        // sock_read_iter returns at once for nothing; recv of nothing waits (crate::family::unix).
        if iov.iter().all(|v| v.1 == 0) {
            return Some(0);
        }
        let flags = if nowait { libc::MSG_DONTWAIT } else { 0 };
        return crate::family::unix::recv(r, g, &p, iov, flags, &mut crate::family::scm::Ctl::none())
            .map(|res| ret(res.map(|(n, _)| n)));
    }
    pipes::readv(r, g, &p, iov, nowait)
}

pub fn writev(r: &Region, g: &thread::Guard, fd: i32, iov: &[Iov], nowait: bool) -> Option<i64> {
    let p = fd::lookup(r, fd).filter(|p| p.write)?;
    if p.socket {
        let flags = if nowait { libc::MSG_DONTWAIT } else { 0 };
        return crate::family::unix::send(r, g, &p, iov, flags).map(ret);
    }
    pipes::writev(r, g, &p, iov, nowait)
}

pub fn read(r: &Region, g: &thread::Guard, fd: i32, buf: usize, len: usize) -> Option<i64> {
    let p = fd::lookup(r, fd).filter(|p| p.read)?;
    match single(buf, len) {
        Ok(iov) => readv(r, g, p.fd, &[iov], false),
        Err(e) => Some(-(e as i64)),
    }
}

pub fn write(r: &Region, g: &thread::Guard, fd: i32, buf: usize, len: usize) -> Option<i64> {
    let p = fd::lookup(r, fd).filter(|p| p.write)?;
    match single(buf, len) {
        Ok(iov) => writev(r, g, p.fd, &[iov], false),
        Err(e) => Some(-(e as i64)),
    }
}

/// readv/writev/preadv2/pwritev2 with a user iovec array.
pub fn vector(
    r: &Region,
    g: &thread::Guard,
    write: bool,
    fd: i32,
    uiov: usize,
    cnt: u64,
    nowait: bool,
) -> Option<i64> {
    let p = fd::lookup(r, fd).filter(|p| if write { p.write } else { p.read })?;
    match import_iovec(uiov, cnt) {
        Ok(iov) if write => writev(r, g, p.fd, &iov, nowait),
        Ok(iov) => readv(r, g, p.fd, &iov, nowait),
        Err(e) => Some(-(e as i64)),
    }
}

/// `fd` is being closed: after the kernel close, peers re-check whether we were the last.
pub fn close(r: &Region, fd: i32) -> Option<i64> {
    crate::family::tcp::closing(r, fd);
    // A listener's close resets the connections still waiting in its queue: their clients'
    // cached view of their peer must go. Held by this fd alone, no program without the shim
    // holds it too.
    let listener = fd::listener(fd).filter(|l| !crate::family::tcp::is_listener(l));
    if let Some(l) = listener.filter(|l| !l.sole.holds()) {
        crate::family::unix::listener_released(r, &l);
    }
    let epoll = crate::family::epoll::instance_of(fd);
    let close = || sys::syscall6(libc::SYS_close, fd as usize, 0, 0, 0, 0, 0);
    let res = match fd::take(r, fd) {
        Some(p) => dropping(r, &p, close),
        None => close(),
    };
    if let (Some(h), Ok(_)) = (epoll, res) {
        crate::family::epoll::closed(r, h);
    }
    if let (Some(l), Ok(_)) = (listener, res) {
        pipe::note_exit(r);
        // Its last holder: the connects waiting for it are reset, their queues freed. Only
        // when the fd may not have been the only one does the kernel say.
        if fd::released_by_close(fd, l.sole) {
            shared_state::unix::listener_gone(r, l.ino, Some(l.name_slot));
        } else if crate::family::unix::diag::released(l.ino as u64) {
            shared_state::unix::listener_gone(r, l.ino, None);
        }
    }
    Some(ret(res))
}

/// `close_range`: the shim fds in the range are closed one by one first, each waking its
/// peers (it may be the last end), then the kernel closes the rest (around the region's
/// descriptors).
pub fn close_range(r: &Region, first: u64, last: u64, flags: u64) -> Option<i64> {
    // The kernel takes unsigned ints.
    let (first, last, mut flags) = (first as u32 as u64, last as u32 as u64, flags as u32 as u64);
    let known = (libc::CLOSE_RANGE_UNSHARE | libc::CLOSE_RANGE_CLOEXEC) as u64;
    // The kernel's own checks, before anything is closed.
    if flags & !known != 0 || first > last {
        return Some(-(libc::EINVAL as i64));
    }
    let closing = flags & libc::CLOSE_RANGE_CLOEXEC as u64 == 0;
    if closing {
        // What CLOSE_RANGE_UNSHARE does first: the closes below must not reach a table
        // another process shares.
        if flags & libc::CLOSE_RANGE_UNSHARE as u64 != 0 {
            if let Err(e) = sys::syscall6(libc::SYS_unshare, libc::CLONE_FILES as usize, 0, 0, 0, 0, 0) {
                return Some(-(e as i64));
            }
            flags &= !(libc::CLOSE_RANGE_UNSHARE as u64);
        }
        fd::each_open_fd(|fd| {
            if !(first..=last).contains(&(fd as u64)) {
                return;
            }
            crate::family::tcp::closing(r, fd);
            if let Some(h) = crate::family::epoll::instance_of(fd) {
                fd::forget(fd);
                sys::close(fd);
                crate::family::epoll::closed(r, h);
            } else if let Some(p) = fd::take(r, fd) {
                let _ = dropping(r, &p, || sys::syscall6(libc::SYS_close, fd as usize, 0, 0, 0, 0, 0));
            }
        });
    }
    let res = crate::base::region::close_range(first, last, flags);
    if res.is_ok() && closing {
        for fd in first..=last.min(fd::highest() as u64) {
            fd::forget(fd as i32);
        }
    }
    Some(ret(res))
}

/// dup, dup2, dup3, F_DUPFD(_CLOEXEC): the kernel duplicates the placeholder; we copy the
/// entry (and dup2/dup3 close the target first).
pub fn dup(r: &Region, nr: i64, a: &[u64; 6]) -> Option<i64> {
    let old = a[0] as i32;
    let target = (nr != libc::SYS_dup && nr != libc::SYS_fcntl).then_some(a[1] as i32);
    let call = || sys::syscall6(nr, a[0] as usize, a[1] as usize, a[2] as usize, 0, 0, 0);
    // The target, if open, is closed by the call: its object is found while it is open, and
    // may go with it.
    let epoll = target.filter(|&t| t != old).and_then(crate::family::epoll::instance_of);
    if let Some(t) = target.filter(|&t| t != old) {
        crate::family::tcp::closing(r, t);
    }
    let res = match target.filter(|&t| t != old).and_then(|t| fd::take(r, t)) {
        Some(p) => dropping(r, &p, call),
        None => call(),
    };
    if let Ok(new) = res {
        let new = new as i32;
        if new != old {
            fd::copy(r, old, new);
            if let Some(h) = epoll {
                crate::family::epoll::closed(r, h);
            }
        }
    }
    Some(ret(res))
}

/// The fcntl commands and ioctl requests that may mean something for a shim object (`fcntl`,
/// `ioctl`, `unix::ioctl`): any other goes to the kernel whatever the fd. The rewritten
/// sites' stubs and the exported symbols decide by these lists.
pub(crate) const FD_FCNTLS: [i32; 7] = [
    libc::F_DUPFD,
    libc::F_DUPFD_CLOEXEC,
    libc::F_SETFL,
    libc::F_GETPIPE_SZ,
    libc::F_SETOWN,
    crate::family::unix::F_SETOWN_EX,
    libc::F_SETPIPE_SZ,
];
pub(crate) const FD_IOCTLS: [u32; 6] = [
    libc::FIONBIO as u32,
    libc::FIONREAD as u32,
    crate::family::unix::FIOSETOWN as u32,
    crate::family::unix::SIOCSPGRP as u32,
    crate::family::unix::SIOCATMARK as u32,
    libc::TIOCOUTQ as u32,
];

/// fcntl commands that mean something different for a shim pipe.
pub fn fcntl(r: &Region, fd: i32, cmd: i32, arg: u64) -> Option<i64> {
    match cmd {
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
            dup(r, libc::SYS_fcntl, &[fd as u64, cmd as u64, arg, 0, 0, 0])
        }
        // O_DIRECT can be switched on a pipe: packet mode follows the file's flag.
        libc::F_SETFL => {
            let p = fd::lookup(r, fd)?;
            let res = sys::syscall6(libc::SYS_fcntl, fd as usize, cmd as usize, arg as usize, 0, 0, 0);
            if let (Ok(fl), false) = (fd::getfl(fd), p.socket) {
                fd::insert(&PipeFd { packet: fl & libc::O_DIRECT != 0, ..p });
            }
            // Every process caching this description's O_NONBLOCK reads it again.
            pipes::note_closed(r, &p);
            Some(ret(res))
        }
        cmd if crate::family::unix::sets_owner(cmd) => {
            let p = fd::lookup(r, fd).filter(|p| p.socket)?;
            let res = sys::syscall6(libc::SYS_fcntl, fd as usize, cmd as usize, arg as usize, 0, 0, 0);
            if res.is_ok() {
                crate::family::unix::owner_changed(r, &p);
            }
            Some(ret(res))
        }
        libc::F_GETPIPE_SZ => {
            let p = fd::lookup(r, fd).filter(|p| !p.socket)?;
            Some(ret(pipe::get_pipe_size(r, p.pipe)))
        }
        libc::F_SETPIPE_SZ => {
            let p = fd::lookup(r, fd).filter(|p| !p.socket)?;
            Some(ret(pipe::set_pipe_size(r, p.pipe, arg as usize, sys::effective_caps() & (1 << 24) != 0)))
        }
        _ => None,
    }
}

/// `ioctl(FIONREAD)`: bytes queued, stored as an int.
pub fn ioctl(r: &Region, fd: i32, req: u64, arg: usize) -> Option<i64> {
    if req == libc::FIONBIO {
        let p = fd::lookup(r, fd)?;
        let res = sys::syscall6(libc::SYS_ioctl, fd as usize, req as usize, arg, 0, 0, 0);
        pipes::note_closed(r, &p);
        return Some(ret(res));
    }
    let p = fd::lookup(r, fd)?;
    if p.socket {
        return crate::family::unix::ioctl(r, &p, req, arg);
    }
    if req != libc::FIONREAD {
        return None;
    }
    let n = match pipe::fionread(r, p.pipe) {
        Ok(n) => n as i32,
        Err(e) => return Some(-(e as i64)),
    };
    Some(ret(crate::base::copy::slice_out(arg, &[n]).map(|_| 0)))
}

/// Process exit: close our shim fds now, freeing the objects we were the last to hold, and
/// wake their peers, so that they see EOF or EPIPE at once instead of at their next liveness
/// check. That includes the fds the table has not seen (inherited by an image that never used
/// them).
pub fn exiting(r: &Region) {
    crate::family::foreign::each_fd_that_matters(true, |fd| {
        if crate::base::region::is_own_fd(fd) {
            return;
        }
        if fd::is_listener(fd) {
            let _ = close(r, fd);
        } else if let Some(h) = crate::family::epoll::instance_of(fd) {
            fd::forget(fd);
            sys::close(fd);
            crate::family::epoll::closed(r, h);
        } else if let Some(p) = fd::take(r, fd) {
            let _ = dropping(r, &p, || sys::syscall6(libc::SYS_close, fd as usize, 0, 0, 0, 0, 0));
        }
    });
}

/// An fd of `p` was closed: its other side's sleepers look again (or a socket's peer), and
/// epoll sets check whether their interests in it went with the file (its last reference), as
/// the kernel's release wakes its peers.
pub fn closed(r: &Region, p: &PipeFd) {
    if p.socket {
        crate::family::unix::note_change(r, p);
    } else {
        pipe::note_end_closed(r, p.pipe, p.read, p.write);
    }
    crate::family::epoll::object_closed(r, p);
}
