//! exec: the shim pipe and socket ends an exec closes (O_CLOEXEC) are noted for the new image
//! to wake their peers, as the kernel's release of the last end would (`pipe_exec`).
//!
//! Programs that will not load the shim: setuid, setgid or file-capability programs (the
//! loader ignores LD_PRELOAD for them), static binaries, and images started with
//! `IPCSHIM_DISABLE=1` (they load the shim, which then serves nothing). Such a process would read and
//! write the empty kernel placeholders of the shim pipes and sockets it inherits, so before
//! exec'ing one, a process hands those back to the kernel, data and all, and its listening
//! sockets stop announcing connections as the shim's.

use crate::{fd, pipes};
use shared_state::Region;
use shared_state::{pipe_exec, pipe_gc, sys};

/// Before `execve`/`execveat` of `path` (relative to `dirfd`). Every shim pipe or socket end
/// the exec closes (O_CLOEXEC) is noted for the new image to wake its peers (`pipe_exec`). If
/// the image will run without the shim (`disabled`: its environment says `IPCSHIM_DISABLE=1`),
/// every shim pipe it would inherit goes back to the kernel. False when there is no such file:
/// the exec fails with ENOENT, as the names a PATH search tries before the right one do, and
/// nothing was prepared.
pub fn before_exec(r: &Region, dirfd: i32, path: usize, disabled: bool) -> bool {
    let Some(foreign) = verdict(dirfd, path) else { return false };
    let foreign = foreign || disabled;
    if foreign {
        crate::unix::forget_own_listeners(r);
    }
    crate::tcp::forget_own_listeners(r);
    let pid = sys::getpid();
    // An image without the shim must get every shim fd back from the kernel: all are looked at.
    let census = !foreign;
    each_fd_that_matters(census, |fd| {
        let listener = fd::is_listener(fd);
        if !foreign && !listener && fd::known_other(fd) || crate::region::is_own_fd(fd) {
            return;
        }
        let Ok(fl) = sys::syscall6(libc::SYS_fcntl, fd as usize, libc::F_GETFD as usize, 0, 0, 0, 0) else {
            return;
        };
        let cloexec = fl as i32 & libc::FD_CLOEXEC != 0;
        let found = if cloexec || foreign { fd::find(r, fd) } else { None };
        match (cloexec, found) {
            (true, Some(p)) => {
                pipe_exec::note(r, pid, p.pipe, !foreign);
            }
            (false, Some(_)) if foreign => pipes::hand_back(r, fd),
            // A listener it inherits would accept connections without adopting them.
            (false, None) if foreign => crate::unix::listener_to_foreign(r, fd),
            (true, None) => {
                if let Some(l) = fd::listener(fd) {
                    crate::unix::listener_released(r, &l);
                }
            }
            _ => {}
        }
    });
    true
}

/// After an exec that failed: the process keeps its ends.
pub fn exec_failed(r: &Region) {
    pipe_exec::finish(r, sys::getpid());
}

/// Whether the image at `path` runs without the shim; None when there is no such file (the
/// exec will fail with ENOENT: nothing to prepare, as PATH searches try one name after another).
/// The kernel reads the path itself: a copy of a fixed length would run off the end of the
/// stack where callers keep their paths, and each such fault costs a signal.
fn verdict(dirfd: i32, path: usize) -> Option<bool> {
    // An empty path is execveat's AT_EMPTY_PATH (the fd itself): not looked at. A bad one
    // fails the exec with EFAULT by itself.
    let mut first = [0u8];
    if crate::copy::slice_in(&mut first, path).is_err() || first[0] == 0 {
        return Some(false);
    }
    let flags = (libc::O_RDONLY | libc::O_CLOEXEC) as usize;
    match sys::syscall6(libc::SYS_openat, dirfd as usize, path, flags, 0, 0, 0) {
        Err(libc::ENOENT) => None,
        Err(_) => Some(false),
        Ok(f) => {
            let f = f as i32;
            let verdict = sys::fstat(f).is_ok_and(|st| gains_privilege(f, &st)) || is_static_elf(f);
            sys::close(f);
            Some(verdict)
        }
    }
}

/// The loader runs a program in secure mode (ignoring LD_PRELOAD) when exec changes the
/// credentials: a set-id bit naming someone else, or file capabilities for a non-root user.
fn gains_privilege(f: i32, st: &libc::stat) -> bool {
    let suid = st.st_mode & libc::S_ISUID != 0 && st.st_uid != sys::geteuid();
    let sgid =
        st.st_mode & libc::S_ISGID != 0 && st.st_mode & libc::S_IXGRP != 0 && st.st_gid != sys::getegid();
    let caps = sys::geteuid() != 0
        && sys::syscall6(
            libc::SYS_fgetxattr,
            f as usize,
            c"security.capability".as_ptr() as usize,
            0,
            0,
            0,
            0,
        )
        .is_ok();
    suid || sgid || caps
}

/// An ELF executable without a PT_INTERP program header has no dynamic loader to preload us.
/// The header and the first program headers come in one read (PT_INTERP precedes every
/// loadable segment's header, so it is among the first).
fn is_static_elf(f: i32) -> bool {
    const FIRST: usize = 512;
    let mut head = [0u8; FIRST];
    let got = sys::pread(f, &mut head, 0).unwrap_or(0);
    if got < 64 || &head[..4] != b"\x7fELF" || head[4] != 2 {
        return false;
    }
    let phoff = u64::from_le_bytes(head[32..40].try_into().unwrap_or_default());
    let phentsize = u16::from_le_bytes([head[54], head[55]]) as u64;
    let phnum = u16::from_le_bytes([head[56], head[57]]) as u64;
    if phentsize < 4 || phnum == 0 || phnum > 256 {
        return false;
    }
    let interp = |ptype: [u8; 4]| u32::from_le_bytes(ptype) == libc::PT_INTERP;
    !(0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        match usize::try_from(at).ok().filter(|&a| a + 4 <= got) {
            Some(a) => interp([head[a], head[a + 1], head[a + 2], head[a + 3]]),
            None => {
                let mut ptype = [0u8; 4];
                sys::pread(f, &mut ptype, at) == Ok(4) && interp(ptype)
            }
        }
    })
}

/// Calls `f` for every fd whose going may matter to other processes: those of the census
/// (`fd::each_in_census`) when `census` allows and it is whole, else every open fd.
pub fn each_fd_that_matters(census: bool, mut f: impl FnMut(i32)) {
    if !(census && fd::each_in_census(&mut f)) {
        each_open_fd(f);
    }
}

/// Calls `f` for every open fd: found by [`probe_open_fds`] when it can, else listed from
/// /proc/self/fd.
pub fn each_open_fd(mut f: impl FnMut(i32)) {
    if let Some((low, own)) = probe_open_fds() {
        for fd in (0..PROBED as i32).filter(|&fd| low & 1 << fd != 0).chain(own.into_iter().flatten()) {
            f(fd);
        }
        return;
    }
    let Ok(dir) = sys::open(b"/proc/self/fd\0", libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
    else {
        return;
    };
    let _ = pipe_gc::each_fd_entry(dir, |name| {
        let fd = pipe_gc::parse_u64(name).and_then(|v| i32::try_from(v).ok()).filter(|&fd| fd != dir);
        if let Some(fd) = fd {
            f(fd);
        }
        Ok(())
    });
    sys::close(dir);
}

/// The fds below this are probed by [`probe_open_fds`].
const PROBED: usize = 64;

/// The open fds without listing /proc/self/fd, whose reading makes an inode and a dentry per
/// fd (most of what a short process's exit costs the shim when its census is not whole): the
/// directory's size is their count (Linux 6.2), and one poll without a timeout of fds 0-63 and
/// the region's descriptors says which of those are open (not POLLNVAL). When the two counts
/// agree, every open fd is among them: those below 64 as bits, the region's above. None when
/// they do not (an older kernel reports 0), or a call fails.
#[inline(never)]
fn probe_open_fds() -> Option<(u64, [Option<i32>; 2])> {
    let n = sys::fstatat(libc::AT_FDCWD, b"/proc/self/fd\0").ok()?.st_size;
    let mut fds = [libc::pollfd { fd: -1, events: 0, revents: 0 }; PROBED + 2];
    for (i, p) in fds.iter_mut().enumerate().take(PROBED) {
        p.fd = i as i32;
    }
    for (p, own) in fds[PROBED..].iter_mut().zip(&crate::region::FDS) {
        p.fd = own.load(core::sync::atomic::Ordering::Relaxed);
        if p.fd < PROBED as i32 {
            p.fd = -1;
        }
    }
    sys::syscall6(libc::SYS_poll, fds.as_mut_ptr() as usize, fds.len(), 0, 0, 0, 0).ok()?;
    // A negative fd is skipped by poll (revents 0): not counted.
    let open = |p: &libc::pollfd| p.fd >= 0 && p.revents & libc::POLLNVAL == 0;
    if fds.iter().filter(|p| open(p)).count() as i64 != n {
        return None;
    }
    let low = fds[..PROBED].iter().filter(|p| open(p)).fold(0u64, |m, p| m | 1 << p.fd);
    let own = [0, 1].map(|i| open(&fds[PROBED + i]).then_some(fds[PROBED + i].fd));
    Some((low, own))
}
