//! Segments the region has no room for live in the kernel's own memory: a private System V
//! segment of the kernel's, used purely as storage (NOTES §9: a tmpfs too small for the region
//! is no limit of the kernel's SysV shm, which only its limits and memory bound).
//!
//! The shim's `shmid_kernel` stays the segment: ids, keys, `kern_ipc_perm` checks, nattch and
//! every view are the shim's. The kernel segment only holds the pages. `shmat` attaches it
//! with the kernel's own `shmat`, so its mapping is the kernel's in every way (fork copies it,
//! exec and exit drop it, `SHM_RDONLY`, `SHM_REMAP`, `SHM_EXEC`, `MCL_FUTURE`). Its owner, group
//! and mode are kept equal to the shim segment's, so the kernel's permission check agrees with
//! the shim's; `SHM_LOCK` is passed on, so the pages are really locked.
//!
//! It must never outlive the shim segment. It is made with `IPC_PRIVATE` (no key for anyone to
//! find it by), removed with the shim segment, and removed already at the shim's `IPC_RMID`
//! when attachments remain: the kernel then frees it at its last detach, even if every
//! process is killed and nobody ever reaps them. A process killed between the kernel's call
//! and the record of its result leaves an [`Orphan`] entry (written before the call, under the
//! region lock) that the next lock holder settles: the segment is removed unless a live shim
//! segment owns it. An entry that cannot be settled here (another kernel IPC namespace, or a
//! remover without the kernel's permission) stays for a later lock holder that can.

use crate::ipc::KernIpcPerm;
use crate::region::PAGE_SIZE;
use crate::sys::{self, Errno};
use libc::EINVAL;

const IPC_RMID: usize = 0;
const IPC_SET: usize = 1;
const SHM_STAT_ANY: usize = 15;
const SHM_DEST: u32 = 0o1000;

/// How many kernel segments may be in doubt at once.
pub const ORPHANS: usize = 16;

/// A kernel segment that may exist without a shim segment owning it: being made (`id` -1 until
/// the kernel answered) or being removed.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Orphan {
    pub used: u32,
    pub id: i32,
    /// The process making it (the kernel's `shm_cprid`), its size and the second the call was
    /// made: what finds a segment whose id was never recorded.
    pub pid: i32,
    pub pad: u32,
    pub size: u64,
    pub since: i64,
    /// The kernel IPC namespace it is in (see [`kernel_ns`]).
    pub kns: u64,
}

/// The inode of the calling thread's kernel IPC namespace (0 when `/proc` cannot tell): a
/// kernel segment id means something only there.
pub fn kernel_ns() -> u64 {
    sys::fstatat(libc::AT_FDCWD, b"/proc/thread-self/ns/ipc\0").map_or(0, |st| st.st_ino)
}

/// Whether the calling thread is in kernel IPC namespace `kns`.
pub fn in_ns(kns: u64) -> bool {
    let here = kernel_ns();
    kns == 0 || here == 0 || here == kns
}

/// Err(EINVAL) when a kernel segment of namespace `kns` cannot be reached from this thread.
pub fn reachable(kns: u64) -> Result<(), Errno> {
    if in_ns(kns) { Ok(()) } else { Err(EINVAL) }
}

/// `shmget(IPC_PRIVATE, size, …)` with the shim segment's mode; the kernel's errno otherwise
/// (under a seccomp filter that denies System V calls, whatever that filter says).
pub fn create(size: u64, flg: i32) -> Result<i32, Errno> {
    let flags = libc::IPC_CREAT | (flg & 0o777) | (flg & crate::shm::SHM_NORESERVE);
    sys::kernel_own(libc::SYS_shmget, libc::IPC_PRIVATE as usize, size as usize, flags as usize, 0, 0)
        .map(|id| id as i32)
}

/// The kernel's `shmat`.
pub fn attach(id: i32, addr: usize, flg: i32) -> Result<usize, Errno> {
    sys::kernel_own(libc::SYS_shmat, id as usize, addr, flg as usize, 0, 0)
}

/// The kernel's `shmctl(IPC_RMID)`.
pub fn remove(id: i32) -> Result<(), Errno> {
    sys::kernel_own(libc::SYS_shmctl, id as usize, IPC_RMID, 0, 0, 0).map(|_| ())
}

/// `SHM_LOCK` or `SHM_UNLOCK` of the kernel segment.
pub fn lock(id: i32, cmd: i32) -> Result<(), Errno> {
    sys::kernel_own(libc::SYS_shmctl, id as usize, cmd as usize, 0, 0, 0).map(|_| ())
}

/// Gives the kernel segment the shim segment's owner, group and mode (`IPC_SET`).
pub fn set_perm(id: i32, perm: &KernIpcPerm) -> Result<(), Errno> {
    let mut ds = crate::shm::Shmid64Ds::default();
    ds.perm.uid = perm.uid;
    ds.perm.gid = perm.gid;
    ds.perm.mode = (perm.mode & 0o777) as u16;
    sys::kernel_own(libc::SYS_shmctl, id as usize, IPC_SET, &mut ds as *mut _ as usize, 0, 0).map(|_| ())
}

/// Whether kernel segment `id` is gone or already removed (freed at its last detach): asked
/// with `SHM_STAT_ANY`, which needs no permission, at its index (15 bits, or 24 with
/// `ipcmni_extend`).
fn dying(id: i32) -> bool {
    let mut ds = crate::shm::Shmid64Ds::default();
    for mask in [0x7fff, 0xff_ffff] {
        let at = (id & mask) as usize;
        match sys::kernel_own(libc::SYS_shmctl, at, SHM_STAT_ANY, &mut ds as *mut _ as usize, 0, 0) {
            Ok(got) if got as i32 == id => return ds.perm.mode as u32 & SHM_DEST != 0,
            // Another segment at that index, or none.
            Ok(_) | Err(EINVAL) => {}
            // The kernel would not say.
            Err(_) => return false,
        }
    }
    true
}

/// Pages of kernel segment `id` in memory (the `rss` of `/proc/sysvipc/shm`), for `shm_rss`.
pub fn rss_pages(id: i32) -> u64 {
    let mut rss = 0;
    each_segment(|s| {
        if s.id == id {
            rss = s.rss.div_ceil(PAGE_SIZE);
        }
    });
    rss
}

/// One line of the kernel's `/proc/sysvipc/shm`.
struct KernelSegment {
    key: i64,
    id: i32,
    size: u64,
    cpid: i32,
    nattch: u64,
    ctime: i64,
    rss: u64,
}

/// Calls `f` for every segment of the calling thread's kernel IPC namespace.
fn each_segment(mut f: impl FnMut(&KernelSegment)) {
    each_line(b"/proc/sysvipc/shm\0", |line| {
        // key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime rss swap
        let mut v = [0i64; 15];
        let mut n = 0;
        for field in line.split(|&b| b == b' ').filter(|f| !f.is_empty()).take(v.len()) {
            let (neg, digits) = match field.split_first() {
                Some((b'-', rest)) => (true, rest),
                _ => (false, field),
            };
            let Some(x) = digits.iter().try_fold(0i64, |a, &b| {
                b.is_ascii_digit().then(|| a.wrapping_mul(10).wrapping_add((b - b'0') as i64))
            }) else {
                return; // the header line
            };
            v[n] = if neg { -x } else { x };
            n += 1;
        }
        if n == v.len() {
            f(&KernelSegment {
                key: v[0],
                id: v[1] as i32,
                size: v[3] as u64,
                cpid: v[4] as i32,
                nattch: v[6] as u64,
                ctime: v[13],
                rss: v[14] as u64,
            });
        }
    });
}

/// Calls `f` with each line of the kernel's file at `path` (NUL-terminated, opened with
/// [`sys::KERNEL_OWN`]: never a shim view), read without allocating in a small buffer; of a
/// line longer than the buffer, `f` gets the buffer's worth that opens it.
pub fn each_line(path: &[u8], mut f: impl FnMut(&[u8])) {
    let flags = (libc::O_RDONLY | libc::O_CLOEXEC) as usize;
    let Ok(fd) =
        sys::kernel_own(libc::SYS_openat, libc::AT_FDCWD as usize, path.as_ptr() as usize, flags, 0, 0)
    else {
        return;
    };
    let fd = fd as i32;
    let mut buf = [0u8; 512];
    let (mut have, mut skipping) = (0, false);
    loop {
        let n = match sys::read(fd, &mut buf[have..]) {
            Ok(n) if n > 0 => n,
            _ => break,
        };
        have += n;
        let mut at = 0;
        while let Some(nl) = buf[at..have].iter().position(|&b| b == b'\n') {
            if !skipping {
                f(&buf[at..at + nl]);
            }
            skipping = false;
            at += nl + 1;
        }
        if at == 0 && have == buf.len() {
            if !skipping {
                f(&buf[..have]);
            }
            (have, skipping) = (0, true);
            continue;
        }
        buf.copy_within(at..have, 0);
        have -= at;
    }
    sys::close(fd);
}

/// Writes an entry for a kernel segment about to be made (`id` -1) or removed; None when the
/// table is full.
pub fn note(orphans: &mut [Orphan; ORPHANS], id: i32, size: u64, kns: u64) -> Option<usize> {
    let i = orphans.iter().position(|o| o.used == 0)?;
    orphans[i] =
        Orphan { used: 1, id, pid: crate::proc::self_pid(), pad: 0, size, since: sys::real_seconds(), kns };
    Some(i)
}

/// Removes every kernel segment in `orphans` that no live shim segment owns (`owned(id, kns)`)
/// and that can be removed from here; what cannot stays for a later lock holder.
pub fn settle(orphans: &mut [Orphan; ORPHANS], owned: impl Fn(i32, u64) -> bool) {
    for o in orphans.iter_mut().filter(|o| o.used != 0) {
        if o.id >= 0 && owned(o.id, o.kns) {
            o.used = 0;
        } else if in_ns(o.kns) {
            let done = if o.id >= 0 {
                match remove(o.id) {
                    Ok(()) | Err(EINVAL | libc::EIDRM) => true,
                    Err(_) => dying(o.id),
                }
            } else {
                // Killed before its id was recorded: its private segment, made by that process
                // since then, that nothing attached and nothing owns.
                let mut all = true;
                each_segment(|s| {
                    if s.key == 0
                        && s.cpid == o.pid
                        && s.size == o.size
                        && s.nattch == 0
                        && s.ctime >= o.since - 1
                        && !owned(s.id, o.kns)
                    {
                        all &= remove(s.id).is_ok() || dying(s.id);
                    }
                });
                all
            };
            if done {
                o.used = 0;
            }
        }
    }
}
