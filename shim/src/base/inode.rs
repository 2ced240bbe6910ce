//! Which shim object a kernel file is: the placeholder pipe's or socket's inode names it, and a
//! FIFO's kernel pipe carries a mark in its size (see [`FIFO_MARK`]). Asked when an fd is first
//! seen (`crate::base::fd`) and when a FIFO is opened.

use core::sync::atomic::{AtomicU64, Ordering};
use shared_state::sys;
use shared_state::{Region, pipe};

static PIPEFS_DEV: AtomicU64 = AtomicU64::new(u64::MAX);

pub(crate) fn set_pipefs_dev(dev: u64) {
    PIPEFS_DEV.store(dev, Ordering::Relaxed);
}

/// The device of anonymous pipes (pipefs), learnt from a pipe of our own or from another
/// process of the namespace.
fn pipefs_dev(r: &Region) -> u64 {
    match PIPEFS_DEV.load(Ordering::Relaxed) {
        u64::MAX => {
            if let Some(dev) = pipe::pipefs_dev(r) {
                PIPEFS_DEV.store(dev, Ordering::Relaxed);
                return dev;
            }
            let Ok((rd, wr)) = sys::pipe2(libc::O_CLOEXEC) else { return u64::MAX };
            let st = sys::fstat(rd);
            sys::close(rd);
            sys::close(wr);
            let Ok(st) = st else { return u64::MAX };
            set_pipefs_dev(st.st_dev);
            pipe::set_pipefs_dev(r, st.st_dev);
            st.st_dev
        }
        d => d,
    }
}

/// Whether `st` (a file's) is an anonymous pipe with no shim object: one the shim did not
/// make, which never gets one (only a FIFO gets an object at a later open).
pub fn never_ours(r: &Region, st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFIFO
        && st.st_dev == pipefs_dev(r)
        && pipe::pipe_find(r, st.st_dev, st.st_ino).is_none()
}

/// The placeholder size that marks a FIFO's kernel pipe as known to the shim. A kernel pipe
/// starts at 16 pages (2 when the user is over pipe-user-pages-soft); the shim never uses the
/// placeholder's own buffer, so its size is free to carry this mark.
pub(crate) const FIFO_MARK: usize = 4 * 4096;

/// … and the size that marks it as the kernel's: the region had no room for its object when
/// it was first opened, so every opener leaves it to the kernel until every end is closed.
pub(crate) const FIFO_KERNEL_MARK: usize = 8 * 4096;

/// The shim object behind a FIFO-typed kernel object, and whether it is a FIFO file: an
/// anonymous pipe is ours only if we made it; a FIFO file is served by us from its first open.
/// The kernel frees a FIFO's pipe when its last file closes, and the next open gets a fresh
/// one: a kernel pipe without our mark means that whatever the object still holds is left
/// over from before, so the object starts afresh, as the kernel's pipe did. Without `create`,
/// such a FIFO has no object (nobody used it through the shim yet).
pub fn object_for(r: &Region, dev: u64, ino: u64, fd: i32, create: bool) -> Option<(pipe::PipeHandle, bool)> {
    if dev == pipefs_dev(r) {
        return pipe::pipe_find(r, dev, ino).map(|h| (h, false));
    }
    let fcntl =
        |cmd: i32, arg: usize| sys::syscall6(libc::SYS_fcntl, fd as usize, cmd as usize, arg, 0, 0, 0);
    match fcntl(libc::F_GETPIPE_SZ, 0) {
        Ok(FIFO_MARK) => return pipe::fifo_get(r, dev, ino).ok().map(|h| (h, true)),
        Ok(FIFO_KERNEL_MARK) => return None,
        _ => {}
    }
    if !create {
        return None;
    }
    // Two first openers must not both start afresh: the FIFO's flock orders them.
    let _ = sys::flock(fd, libc::LOCK_EX);
    let h = match fcntl(libc::F_GETPIPE_SZ, 0) {
        Ok(FIFO_MARK) => pipe::fifo_get(r, dev, ino),
        Ok(FIFO_KERNEL_MARK) => Err(pipe::NO_SPACE),
        _ => {
            let h = pipe::pipe_new(r, dev, ino);
            let _ = fcntl(libc::F_SETPIPE_SZ, if h.is_ok() { FIFO_MARK } else { FIFO_KERNEL_MARK });
            h
        }
    };
    let _ = sys::flock(fd, libc::LOCK_UN);
    h.ok().map(|h| (h, true))
}

/// The shim object behind a socket `fstat` found (a new image, an inherited or passed fd).
pub fn socket_object(r: &Region, st: &libc::stat) -> Option<pipe::PipeHandle> {
    if st.st_dev != sys::sockfs_dev() {
        return None;
    }
    let h = pipe::pipe_find(r, st.st_dev, st.st_ino)?;
    matches!(pipe::sock_state(r, h), pipe::SOCK_PENDING | pipe::SOCK_LINKED).then_some(h)
}
