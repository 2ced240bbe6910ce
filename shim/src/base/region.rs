//! The process's view of its namespace: opened once at start-up and never unmapped.
//!
//! A namespace follows the process tree, as a kernel IPC namespace does: the region file stays
//! open on two descriptors that exec does not close, named in `IPCSHIM_REGION_FD`, and every
//! image a process of the namespace execs maps the region from them, whatever its credentials
//! became meanwhile. Only the first process (or one whose descriptors were lost) looks the
//! namespace up by name. The descriptors sit high and move out of the way when the program
//! closes or replaces their numbers; `close_range` goes around them.

use crate::base::fd::REGION_FDS;
use crate::base::thread;
use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicU64, Ordering};
use shared_state::Region;
use shared_state::region::{self, RegionErrorKind, RegionFiles};
use shared_state::sys::{self, Errno};
use std::sync::atomic::AtomicBool;

const UNINIT: u8 = 0;
const ACTIVE: u8 = 1;
const DISABLED: u8 = 2;
const BROKEN: u8 = 3;
/// The region could not be created for want of room: every call is the kernel's.
const NO_ROOM: u8 = 4;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
/// The one-line error, written once at start-up and printed on first use.
static ERROR: AtomicPtr<String> = AtomicPtr::new(core::ptr::null_mut());
static ERROR_SHOWN: AtomicBool = AtomicBool::new(false);

/// The region file's device and inode, for `IPCSHIM_REGION_FD`.
static DEV: AtomicU64 = AtomicU64::new(0);
static INO: AtomicU64 = AtomicU64::new(0);

/// Called from the constructor. `IPCSHIM_DISABLE=1` leaves every call to the kernel (and the
/// inherited descriptors to the processes it starts).
pub fn init() -> Option<&'static Region> {
    if std::env::var_os("IPCSHIM_DISABLE").is_some_and(|v| v == "1") {
        STATE.store(DISABLED, Ordering::Release);
        return None;
    }
    let opened = match RegionFiles::handed_from_env() {
        Some(h) => {
            // What follows RW,RO,DEV,INO: the census of the fds the exec handed down.
            let value = std::env::var(region::FD_VAR).unwrap_or_default();
            crate::base::fd::census_start(value.split(';').next().and_then(|v| v.split(',').nth(4)));
            Region::map_handed(&h, || h.files.path()).map(|r| (r, h.files, (h.dev, h.ino)))
        }
        None => region::name_from_env().and_then(|name| {
            let files = crate::base::fd::keep_high(RegionFiles::open(&name, true)?);
            match Region::map(&files, &name.path) {
                Ok(r) => Ok((r, files, files.identity().unwrap_or_default())),
                Err(e) => {
                    files.close();
                    Err(e)
                }
            }
        }),
    };
    match opened {
        Ok((r, files, (dev, ino))) => {
            DEV.store(dev, Ordering::Relaxed);
            INO.store(ino, Ordering::Relaxed);
            // Not put into our own environment (a program may define its own setenv, as bash
            // does, unusable this early): each exec passes them on (see `exec_entry`).
            set_fds([files.rw, files.ro]);
            let r: &'static Region = Box::leak(Box::new(r));
            r.set_fd_hint(files.rw);
            crate::base::ipcns::set_base_region(r);
            STATE.store(ACTIVE, Ordering::Release);
            Some(r)
        }
        Err(e) => {
            let state = if matches!(e.kind, RegionErrorKind::NoSpace(_)) { NO_ROOM } else { BROKEN };
            ERROR.store(Box::into_raw(Box::new(format!("{e}\n"))), Ordering::Release);
            STATE.store(state, Ordering::Release);
            // Left to the kernel from the start: said at once, as nothing will fail later.
            if state == NO_ROOM {
                show_error();
            }
            None
        }
    }
}

/// The one-line error, on the first call that meets it.
fn show_error() {
    if !ERROR_SHOWN.swap(true, Ordering::Relaxed) {
        let p = ERROR.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: set once to a leaked Box that is never freed.
            let _ = shared_state::sys::write(2, unsafe { &*p }.as_bytes());
        }
    }
}

/// The namespace's region, once mapped (kept by `ipcns`, which routes to it by default).
pub fn active() -> Option<&'static Region> {
    crate::base::ipcns::base_region()
}

/// What a hooked call should do.
pub enum Route {
    Serve(&'static Region),
    Kernel,
    /// The region is unusable: fail with ENOSYS (the error was printed).
    Fail,
}

#[inline]
pub fn route() -> Route {
    match STATE.load(Ordering::Acquire) {
        // System V calls go to the calling thread's IPC namespace.
        ACTIVE => Route::Serve(crate::base::ipcns::current().or_else(active).expect("active region")),
        DISABLED => Route::Kernel,
        BROKEN => {
            show_error();
            Route::Fail
        }
        NO_ROOM => Route::Kernel,
        // Called before our constructor ran (from another library's): serve from the kernel,
        // as nothing of ours can exist yet.
        _ => Route::Kernel,
    }
}

/// The region's descriptors in this process. A vfork child has its own fd table but shares
/// our memory: what it moved is kept on its (shared) thread state, which the parent clears
/// when it resumes.
fn fds() -> [i32; 2] {
    let moved = thread::tls().region_fds.load(Ordering::Relaxed);
    if thread::in_vfork_child() && moved & MOVED != 0 {
        let fd = |bits: u64| (bits & 0x7fff_ffff) as i32 - 1;
        return [fd(moved), fd(moved >> 31)];
    }
    [REGION_FDS[0].load(Ordering::Relaxed), REGION_FDS[1].load(Ordering::Relaxed)]
}

/// Whether `fd` is one of the region descriptors kept open here (the namespace's, or an IPC
/// namespace's): never a shim object, nothing for an exit or exec to look at.
pub fn is_own_fd(fd: i32) -> bool {
    fd >= 0 && (fds().contains(&fd) || crate::base::ipcns::files().contains(&fd))
}

/// The region file's read-write descriptor here (every process of the namespace keeps it
/// open: the epoll collector tells them by it).
pub fn rw_fd() -> i32 {
    fds()[0]
}

/// Marks `Tls::region_fds` as set; below it, each descriptor + 1 in 31 bits.
const MOVED: u64 = 1 << 63;

fn set_fds(fds: [i32; 2]) {
    if thread::in_vfork_child() {
        let enc = |fd: i32| (fd + 1) as u64 & 0x7fff_ffff;
        thread::tls().region_fds.store(MOVED | enc(fds[0]) | enc(fds[1]) << 31, Ordering::Relaxed);
    } else {
        REGION_FDS[0].store(fds[0], Ordering::Relaxed);
        REGION_FDS[1].store(fds[1], Ordering::Relaxed);
        if let Some(r) = active() {
            r.set_fd_hint(fds[0]);
        }
    }
}

/// Before `close(fd)`, `dup2(_, fd)` or `dup3(_, fd, _)`: a region descriptor numbered `fd`
/// moves to another number first (the lowest free one above, else below), so that the
/// program's call does what it asked and the region stays open for the images it execs.
pub fn keep_fds(nr: i64, a: &[u64; 6]) {
    let fd = match nr {
        libc::SYS_close => a[0] as i32,
        libc::SYS_dup2 | libc::SYS_dup3 if a[0] as i32 != a[1] as i32 => a[1] as i32,
        _ => return,
    };
    let mut fds = fds();
    let Some(i) = fds.iter().position(|&f| f == fd && f >= 0) else {
        crate::base::ipcns::keep_file(fd, |f| {
            crate::base::fd::dupfd(f, f as usize + 1).or_else(|_| crate::base::fd::dupfd(f, 3)).ok()
        });
        return;
    };
    fds[i] =
        crate::base::fd::dupfd(fd, fd as usize + 1).or_else(|_| crate::base::fd::dupfd(fd, 3)).unwrap_or(-1);
    set_fds(fds);
}

/// Whether `fd` is one of the descriptors of a region this process maps (the namespace's, an
/// IPC namespace's): `keep_fds` moves it away before the program closes or replaces it.
pub fn holds_fd(fd: i32) -> bool {
    fd >= 0 && (fds().contains(&fd) || crate::base::ipcns::files().contains(&fd))
}

/// `close_range(first, last, flags)`, leaving the region descriptors open (and inheritable)
/// whatever the range: the kernel's call on the pieces around them.
pub fn close_range(first: u64, last: u64, flags: u64) -> Result<usize, Errno> {
    // The kernel takes unsigned ints.
    let (first, last, flags) = (first as u32, last as u32, flags as u32);
    let call = |lo: u32, hi: u32, fl: u32| {
        sys::syscall6(libc::SYS_close_range, lo as usize, hi as usize, fl as usize, 0, 0, 0)
    };
    let base = fds();
    let ns = crate::base::ipcns::files();
    let mut ours: [i64; 2 + 2 * (shared_state::proc::MAX_REGIONS - 1)] =
        core::array::from_fn(|i| if i < 2 { base[i] } else { ns[i - 2] } as i64);
    ours.sort_unstable();
    let inside = |f: i64| f >= first as i64 && f <= last as i64;
    if !ours.iter().any(|&f| f >= 0 && inside(f)) {
        return call(first, last, flags);
    }
    if flags & !(libc::CLOSE_RANGE_UNSHARE | libc::CLOSE_RANGE_CLOEXEC) != 0 || first > last {
        return Err(libc::EINVAL);
    }
    let mut unshare = flags & libc::CLOSE_RANGE_UNSHARE;
    let mut lo = first as i64;
    for f in ours.into_iter().filter(|&f| f >= 0 && inside(f)).chain([last as i64 + 1]) {
        if f > lo {
            call(lo as u32, (f - 1) as u32, flags & !libc::CLOSE_RANGE_UNSHARE | unshare)?;
            unshare = 0;
        }
        lo = f + 1;
    }
    if unshare != 0 {
        sys::syscall6(libc::SYS_unshare, libc::CLONE_FILES as usize, 0, 0, 0, 0, 0)?;
    }
    Ok(0)
}

/// `IPCSHIM_REGION_FD=RW,RO,DEV,INO,CENSUS` for an image we exec into `buf`, its length (the
/// census: see `fd::census_for_exec`); only the `IPCSHIM_REGION_FD=` part when the
/// descriptors are lost.
pub fn exec_entry(buf: &mut [u8; 512]) -> usize {
    let mut len = 0;
    let mut put = |b: &[u8]| {
        buf[len..len + b.len()].copy_from_slice(b);
        len += b.len();
    };
    put(region::FD_VAR.as_bytes());
    put(b"=");
    let fds = fds();
    if fds.iter().all(|&f| f >= 0) {
        let nums = [fds[0] as u64, fds[1] as u64, DEV.load(Ordering::Relaxed), INO.load(Ordering::Relaxed)];
        for (i, n) in nums.into_iter().enumerate() {
            if i > 0 {
                put(b",");
            }
            let mut digits = [0u8; 20];
            let k = shared_state::pipe_gc::itoa64(n, &mut digits);
            put(&digits[..k]);
        }
        put(b",");
        crate::base::fd::census_for_exec(active(), is_own_fd, &mut put);
        crate::base::ipcns::exec_suffix(&mut put);
    }
    len
}

/// Whether an exec passes the region's descriptors on: when the new image `stays` in our
/// namespace and we still have them.
pub fn passes_on(stays: bool) -> bool {
    stays && fds().iter().all(|&f| f >= 0)
}

/// Just before an exec (of a file that exists): the region's descriptors are made inheritable
/// when they are passed on (`keep`; the program may have set FD_CLOEXEC on them), close-on-exec
/// otherwise.
pub fn prepare_exec(keep: bool) {
    let flag = if keep { 0 } else { libc::FD_CLOEXEC };
    for f in fds().into_iter().filter(|&f| f >= 0) {
        let _ = sys::syscall6(libc::SYS_fcntl, f as usize, libc::F_SETFD as usize, flag as usize, 0, 0, 0);
    }
    crate::base::ipcns::prepare_exec(keep);
}
