//! The namespace's `/proc` files (`shared_state::procfs`): an open of one of their paths gets a
//! memfd holding the text the kernel would show for the namespace, so read, lseek, pread,
//! fstat, mmap and close work with no more help. A sysctl opened for writing is marked in the
//! fd table; a write to it sets the namespace's limit, as the kernel's handler would.
//!
//! Opens are seen by the catch-all (glibc's fopen calls openat internally), so the views need
//! it armed, as pipes do. An open that is not one of ours costs one short user copy and a
//! prefix compare.

use crate::base::copy::access_ok;
use crate::base::fd;
use crate::base::iov::Iov;
use crate::base::scratch;
use core::fmt;
use shared_state::Region;
use shared_state::procfs::{self, MAX_PATH, PREFIX, VIEWS, View};
use shared_state::sys::{self, Errno, syscall6};
use shared_state::uaccess;

/// `struct open_how` of openat2.
#[repr(C)]
#[derive(Default)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// open/openat/openat2 of one of our paths: `None` for any other path (and for O_PATH, which
/// only names the file), which the kernel then opens.
pub fn open(r: &Region, nr: i64, a: &[u64; 6]) -> Option<i64> {
    let (path, flags) = match nr {
        libc::SYS_open => (a[0] as usize, a[1] as i32),
        libc::SYS_openat => (a[1] as usize, a[2] as i32),
        _ => {
            let mut how = [OpenHow::default()];
            if a[3] < size_of::<OpenHow>() as u64
                || crate::base::copy::slice_in(&mut how, a[2] as usize).is_err()
            {
                return None;
            }
            (a[1] as usize, how[0].flags as i32)
        }
    };
    let idx = view_at(path)?;
    if flags & libc::O_PATH != 0 {
        return None;
    }
    // The kernel opens its own file first: it decides every error (permissions, O_DIRECTORY,
    // O_EXCL…) exactly as for the real file, and the number it picks is the one we return.
    let fd = match syscall6(nr, a[0] as usize, a[1] as usize, a[2] as usize, a[3] as usize, 0, 0) {
        Ok(fd) => fd as i32,
        Err(e) => return Some(-(e as i64)),
    };
    let view = VIEWS[idx].1;
    match replace(r, fd, view, flags) {
        Ok(()) => {
            // The number now names our file, whatever was cached about it before.
            fd::forget(fd);
            let acc = flags & libc::O_ACCMODE;
            if matches!(view, View::Sysctl(_)) && acc != libc::O_RDONLY {
                fd::mark_sysctl(fd, idx);
            }
            Some(fd as i64)
        }
        Err(e) => {
            sys::close(fd);
            Some(-(e as i64))
        }
    }
}

/// The index in `VIEWS` of the NUL-terminated path at the caller's `addr`, if it is ours. A
/// path that cannot be read is not ours: the kernel then reports it.
fn view_at(addr: usize) -> Option<usize> {
    let mut buf = [0u8; MAX_PATH + 1];
    // Up to the end of the page first: a short path may end just before an unmapped page.
    let first = buf.len().min(4096 - addr % 4096);
    if !copy_in(&mut buf[..first], addr)
        || !buf[..first.min(PREFIX.len())].starts_with(&PREFIX[..first.min(PREFIX.len())])
    {
        return None;
    }
    if !buf[..first].contains(&0) && first < buf.len() && !copy_in(&mut buf[first..], addr + first) {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0)?;
    procfs::index_of(&buf[..len])
}

fn copy_in(dst: &mut [u8], addr: usize) -> bool {
    // SAFETY: `dst` is ours and writable; the source may be bad, which copy_user reports.
    access_ok(addr, dst.len())
        && unsafe { uaccess::copy_user(dst.as_mut_ptr(), addr as *const u8, dst.len()) } == 0
}

/// Puts a memfd with the view's text at `fd` (the kernel's file opened with `flags`), with
/// the access mode and flags the caller asked for.
fn replace(r: &Region, fd: i32, view: View, flags: i32) -> Result<(), Errno> {
    let mfd = memfd()?;
    let res = fill(r, mfd, view).and_then(|()| {
        // /proc/self/fd/N opened again is a new open file of the memfd, with our access mode.
        let keep = libc::O_ACCMODE | libc::O_APPEND | libc::O_NONBLOCK | libc::O_NOATIME;
        let nfd = reopen(mfd, flags & keep)?;
        let dup =
            syscall6(libc::SYS_dup3, nfd as usize, fd as usize, (flags & libc::O_CLOEXEC) as usize, 0, 0, 0);
        sys::close(nfd);
        dup?;
        syscall6(libc::SYS_fchmod, fd as usize, view.mode() as usize, 0, 0, 0, 0).map(|_| ())
    });
    sys::close(mfd);
    res
}

/// A new close-on-exec memfd; not executable where the kernel knows the flag (a kernel with
/// vm.memfd_noexec=2 refuses executable ones).
fn memfd() -> Result<i32, Errno> {
    // MFD_NOEXEC_SEAL (Linux 6.3).
    const NOEXEC_SEAL: usize = 0x8;
    let create =
        |flags: usize| syscall6(libc::SYS_memfd_create, c"ipcshim".as_ptr() as usize, flags, 0, 0, 0, 0);
    let cloexec = libc::MFD_CLOEXEC as usize;
    match create(cloexec | NOEXEC_SEAL) {
        Err(libc::EINVAL) => create(cloexec),
        r => r,
    }
    .map(|fd| fd as i32)
}

/// Writes the view's text at the start of `fd` and cuts the file there.
fn fill(r: &Region, fd: i32, view: View) -> Result<(), Errno> {
    let mut w = FdWriter { fd, buf: scratch::take(4096, 0)?, len: 0, off: 0, err: None };
    procfs::render(r, view, &mut w)?;
    w.flush();
    if let Some(e) = w.err {
        return Err(e);
    }
    sys::ftruncate(fd, w.off)
}

/// A `fmt::Write` into a file, a page at a time, with no allocation.
struct FdWriter {
    fd: i32,
    buf: scratch::Slice<u8>,
    len: usize,
    off: u64,
    err: Option<Errno>,
}

impl FdWriter {
    fn flush(&mut self) {
        let mut done = 0;
        while done < self.len && self.err.is_none() {
            let chunk = &self.buf[done..self.len];
            match syscall6(
                libc::SYS_pwrite64,
                self.fd as usize,
                chunk.as_ptr() as usize,
                chunk.len(),
                self.off as usize,
                0,
                0,
            ) {
                Ok(0) => self.err = Some(libc::EIO),
                Ok(n) => {
                    done += n;
                    self.off += n as u64;
                }
                Err(e) => self.err = Some(e),
            }
        }
        self.len = 0;
    }
}

impl fmt::Write for FdWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        if self.err.is_some() { Err(fmt::Error) } else { Ok(()) }
    }
}

const CAP_SYS_ADMIN: u32 = shared_state::ipc::CAP_SYS_ADMIN;
const CAP_CHECKPOINT_RESTORE: u32 = 40;

/// The kernel's limit on a sysctl write (`KMALLOC_MAX_SIZE` on x86_64): ENOMEM beyond.
const MAX_WRITE: usize = 4 << 20;

/// write/pwrite64/writev/pwritev/pwritev2: `None` unless the fd is a sysctl view open for
/// writing.
pub fn write(r: &Region, nr: i64, a: &[u64; 6]) -> Option<i64> {
    let fd = a[0] as i32;
    let idx = fd::sysctl_of(fd)?;
    let View::Sysctl(s) = VIEWS.get(idx)?.1 else { return None };
    let single;
    let vector;
    let (iov, pos): (&[Iov], _) = match nr {
        libc::SYS_write | libc::SYS_pwrite64 => {
            if !access_ok(a[1] as usize, a[2] as usize) {
                return Some(-(libc::EFAULT as i64));
            }
            single = [(a[1] as usize, (a[2] as usize).min(i32::MAX as usize & !4095))];
            (&single, if nr == libc::SYS_pwrite64 { Some(a[3] as i64) } else { None })
        }
        _ => match crate::base::iov::import_iovec(a[1] as usize, a[2]) {
            Ok(v) => {
                vector = v;
                // pwritev2's -1 is the current position.
                let at_pos = nr != libc::SYS_writev && !(nr == libc::SYS_pwritev2 && a[3] as i64 == -1);
                (&vector, at_pos.then_some(a[3] as i64))
            }
            Err(e) => return Some(-(e as i64)),
        },
    };
    if pos.is_some_and(|p| p < 0) {
        return Some(-(libc::EINVAL as i64));
    }
    Some(match sysctl_write(r, fd, s, iov, pos) {
        Ok(n) => n as i64,
        Err(e) => -(e as i64),
    })
}

/// `proc_sys_call_handler` for a write: root only (checked again at each write), the whole
/// buffer is copied in (EFAULT if any of it is bad), a write past offset 0 is ignored and
/// reported done (sysctl_writes_strict), and one at offset 0 is parsed by the sysctl's
/// handler. `pos` is the call's explicit offset; `None`, the file's position.
fn sysctl_write(
    r: &Region,
    fd: i32,
    s: procfs::Sysctl,
    iov: &[Iov],
    pos: Option<i64>,
) -> Result<usize, Errno> {
    // ipc_permissions, checked again at each write: the namespace's root may write, and for
    // the next_id files whoever may checkpoint and restore.
    let may = if s.is_next_id() {
        let caps = sys::effective_caps();
        caps & (1 << CAP_SYS_ADMIN | 1 << CAP_CHECKPOINT_RESTORE) != 0
    } else {
        sys::geteuid() == 0
    };
    if !may {
        return Err(libc::EPERM);
    }
    let total: usize = iov.iter().map(|v| v.1).sum();
    if total >= MAX_WRITE {
        return Err(libc::ENOMEM);
    }
    if total == 0 {
        return Ok(0);
    }
    // The first page is parsed; the rest is copied into the second only to find a bad byte.
    let mut pages = scratch::take(8192, 0u8)?;
    let (head, rest) = pages.split_at_mut(4096);
    let mut at = 0;
    for &(addr, len) in iov {
        let mut off = 0;
        while off < len {
            let k = (len - off).min(4096);
            let dst = if at < head.len() { &mut head[at..(at + k).min(4096)] } else { &mut rest[..k] };
            let k = dst.len();
            if !copy_in(dst, addr + off) {
                return Err(libc::EFAULT);
            }
            off += k;
            at += k;
        }
    }
    let cur = match pos {
        Some(p) => p,
        None => sys::lseek(fd, 0, libc::SEEK_CUR)? as i64,
    };
    let done = if cur != 0 { total } else { procfs::write_sysctl(r, s, &head[..total.min(4096)], total)? };
    if pos.is_none() {
        sys::lseek(fd, done as i64, libc::SEEK_CUR)?;
    }
    refresh(r, fd, s);
    Ok(done)
}

/// Rewrites the text of the sysctl view at `fd`, so that a reader of the same open file sees
/// the new value, as on the kernel. Through a new open file: `fd` may be write-only or
/// O_APPEND. Best effort: the value is set whether or not this works.
fn refresh(r: &Region, fd: i32, s: procfs::Sysctl) {
    if let Ok(w) = reopen(fd, libc::O_WRONLY) {
        let _ = fill(r, w, View::Sysctl(s));
        sys::close(w);
    }
}

/// A new open file (close-on-exec) of what `fd` refers to, through `/proc/self/fd`.
fn reopen(fd: i32, flags: i32) -> Result<i32, Errno> {
    let mut path = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0";
    let mut digits = [0u8; 10];
    let n = shared_state::pipe_gc::itoa(fd as u32, &mut digits);
    path[14..14 + n].copy_from_slice(&digits[..n]);
    sys::open(&path[..14 + n + 1], flags, 0)
}
