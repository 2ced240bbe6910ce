//! The namespace's files under `/proc`, as the kernel shows them: `/proc/sysvipc/{shm,sem,msg}`
//! (`sysvipc_shm_proc_show` in ipc/shm.c, `sysvipc_sem_proc_show` in ipc/sem.c,
//! `sysvipc_msg_proc_show` in ipc/msg.c, with the
//! header lines given to `ipc_init_proc_interface`) and the IPC sysctls of `/proc/sys/kernel`
//! (ipc/ipc_sysctl.c), read and written by the rules of `proc_dointvec_minmax` and
//! `proc_doulongvec_minmax` (kernel/sysctl.c).
//!
//! Rendering allocates nothing: it writes into any `fmt::Write`.

use crate::region::{IPCMNI, Limits, PAGE_SIZE, Region};
use crate::sys::Errno;
use crate::{msg, sem, shm};
use core::fmt::{self, Write};
use libc::{EINVAL, ENOMEM, ERANGE};

/// What one path shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    SysvipcShm,
    SysvipcSem,
    SysvipcMsg,
    Sysctl(Sysctl),
}

/// The IPC sysctls of `/proc/sys/kernel` that the namespace has limits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sysctl {
    Shmmax,
    Shmall,
    Shmmni,
    ShmRmidForced,
    /// semmsl, semmns, semopm, semmni.
    Sem,
    Msgmax,
    Msgmnb,
    Msgmni,
    /// `ids->next_id` of each family (`ipc_idr_alloc`).
    ShmNextId,
    SemNextId,
    MsgNextId,
}

/// Every path served, and what it shows.
pub const VIEWS: [(&str, View); 14] = [
    ("/proc/sysvipc/shm", View::SysvipcShm),
    ("/proc/sysvipc/sem", View::SysvipcSem),
    ("/proc/sysvipc/msg", View::SysvipcMsg),
    ("/proc/sys/kernel/shmmax", View::Sysctl(Sysctl::Shmmax)),
    ("/proc/sys/kernel/shmall", View::Sysctl(Sysctl::Shmall)),
    ("/proc/sys/kernel/shmmni", View::Sysctl(Sysctl::Shmmni)),
    ("/proc/sys/kernel/shm_rmid_forced", View::Sysctl(Sysctl::ShmRmidForced)),
    ("/proc/sys/kernel/sem", View::Sysctl(Sysctl::Sem)),
    ("/proc/sys/kernel/msgmax", View::Sysctl(Sysctl::Msgmax)),
    ("/proc/sys/kernel/msgmnb", View::Sysctl(Sysctl::Msgmnb)),
    ("/proc/sys/kernel/msgmni", View::Sysctl(Sysctl::Msgmni)),
    ("/proc/sys/kernel/shm_next_id", View::Sysctl(Sysctl::ShmNextId)),
    ("/proc/sys/kernel/sem_next_id", View::Sysctl(Sysctl::SemNextId)),
    ("/proc/sys/kernel/msg_next_id", View::Sysctl(Sysctl::MsgNextId)),
];

/// Every path in [`VIEWS`] starts with this.
pub const PREFIX: &[u8] = b"/proc/sys";

/// The longest path in [`VIEWS`]: a caller needs at most this many bytes and the NUL.
pub const MAX_PATH: usize = {
    let mut i = 0;
    let mut max = 0;
    while i < VIEWS.len() {
        if VIEWS[i].0.len() > max {
            max = VIEWS[i].0.len();
        }
        i += 1;
    }
    max
};

/// The index in [`VIEWS`] of `path` (without its NUL), if it is one of ours.
pub fn index_of(path: &[u8]) -> Option<usize> {
    VIEWS.iter().position(|(p, _)| p.as_bytes() == path)
}

impl Sysctl {
    /// One of the `*_next_id` files, which `ipc_permissions` opens to writers with
    /// `CAP_CHECKPOINT_RESTORE` (or `CAP_SYS_ADMIN`) instead of the namespace's root.
    pub fn is_next_id(self) -> bool {
        matches!(self, Sysctl::ShmNextId | Sysctl::SemNextId | Sysctl::MsgNextId)
    }
}

impl View {
    /// The kernel file's permission bits (for fstat).
    pub fn mode(self) -> u32 {
        match self {
            View::Sysctl(s) if s.is_next_id() => 0o444,
            View::Sysctl(_) => 0o644,
            _ => 0o444,
        }
    }
}

const SHM_HEADER: &str = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n";
const SEM_HEADER: &str =
    "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n";
const MSG_HEADER: &str = "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n";

/// Writes the file's text as a read at offset 0 returns it.
pub fn render(r: &Region, v: View, out: &mut dyn Write) -> Result<(), Errno> {
    let mut res = Ok(());
    let mut put = |f: fmt::Result| {
        if res.is_ok() && f.is_err() {
            res = Err(libc::EIO);
        }
    };
    match v {
        View::SysvipcShm => {
            put(out.write_str(SHM_HEADER));
            shm::each_stat(r, |id, ds, rss| put(shm_line(out, id, ds, rss)))?;
        }
        View::SysvipcSem => {
            put(out.write_str(SEM_HEADER));
            sem::each_stat(r, |id, ds| put(sem_line(out, id, ds)))?;
        }
        View::SysvipcMsg => {
            put(out.write_str(MSG_HEADER));
            msg::each_stat(r, |id, ds| put(msg_line(out, id, ds)))?;
        }
        View::Sysctl(s) => {
            let l = r.header().limits;
            put(match s {
                _ if s.is_next_id() => {
                    // SAFETY: an aligned word of the mapped header.
                    writeln!(out, "{}", unsafe { core::ptr::read_volatile(next_id(r, s)) })
                }
                Sysctl::Shmmax => writeln!(out, "{}", l.shmmax),
                Sysctl::Shmall => writeln!(out, "{}", l.shmall),
                Sysctl::Sem => writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    l.semmsl as i32, l.semmns as i32, l.semopm as i32, l.semmni as i32
                ),
                _ => writeln!(out, "{}", int_value(&l, s)),
            });
        }
    }
    res
}

/// `sysvipc_shm_proc_show` (64-bit: sizes in 21 columns; times printed unsigned).
#[inline(never)]
fn shm_line(out: &mut dyn Write, id: i32, ds: &shm::Shmid64Ds, rss: u64) -> fmt::Result {
    let p = &ds.perm;
    writeln!(
        out,
        "{:>10} {:>10}  {:>4o} {:>21} {:>5} {:>5}  {:>5} {:>5} {:>5} {:>5} {:>5} {:>10} {:>10} {:>10} {:>21} {:>21}",
        p.key,
        id,
        p.mode,
        ds.segsz,
        ds.cpid as u32,
        ds.lpid as u32,
        ds.nattch,
        p.uid,
        p.gid,
        p.cuid,
        p.cgid,
        ds.atime as u64,
        ds.dtime as u64,
        ds.ctime as u64,
        rss,
        0
    )
}

/// `sysvipc_sem_proc_show`.
#[inline(never)]
fn sem_line(out: &mut dyn Write, id: i32, ds: &sem::Semid64Ds) -> fmt::Result {
    let p = &ds.perm;
    writeln!(
        out,
        "{:>10} {:>10}  {:>4o} {:>10} {:>5} {:>5} {:>5} {:>5} {:>10} {:>10}",
        p.key, id, p.mode, ds.nsems, p.uid, p.gid, p.cuid, p.cgid, ds.otime as u64, ds.ctime as u64
    )
}

/// `sysvipc_msg_proc_show`.
#[inline(never)]
fn msg_line(out: &mut dyn Write, id: i32, ds: &msg::Msqid64Ds) -> fmt::Result {
    let p = &ds.perm;
    writeln!(
        out,
        "{:>10} {:>10}  {:>4o}  {:>10} {:>10} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>10} {:>10} {:>10}",
        p.key,
        id,
        p.mode,
        ds.cbytes,
        ds.qnum,
        ds.lspid as u32,
        ds.lrpid as u32,
        p.uid,
        p.gid,
        p.cuid,
        p.cgid,
        ds.stime as u64,
        ds.rtime as u64,
        ds.ctime as u64
    )
}

/// The family's `ids->next_id`, for a `*_next_id` sysctl: read, or changed by one aligned
/// store, as the kernel's handler does without the ids' lock.
fn next_id(r: &Region, s: Sysctl) -> *mut i32 {
    let h = r.header();
    let ids = match s {
        Sysctl::ShmNextId => &h.shm.ids,
        Sysctl::SemNextId => &h.sem.ids,
        _ => &h.msg.ids,
    };
    (&raw const ids.next_id).cast_mut()
}

/// An int sysctl's value (the fields hold the bits of a C `int`).
fn int_value(l: &Limits, s: Sysctl) -> i32 {
    (match s {
        Sysctl::Shmmni => l.shmmni,
        Sysctl::ShmRmidForced => l.shm_rmid_forced,
        Sysctl::Msgmax => l.msgmax,
        Sysctl::Msgmnb => l.msgmnb,
        _ => l.msgmni,
    }) as i32
}

/// One aligned store: other processes read the limits without the lock.
fn store<T: Copy>(field: &mut T, v: T) {
    // SAFETY: `field` is a valid, aligned, exclusive reference.
    unsafe { core::ptr::write_volatile(field, v) };
}

/// A write of `total` bytes at offset 0 to `s`, as the kernel's handler does it, given the
/// first of them in `head` (the handler reads at most a page less one): the bytes consumed, or
/// the errno. Values parsed before an error stay set, as on the kernel.
pub fn write_sysctl(r: &Region, s: Sysctl, head: &[u8], total: usize) -> Result<usize, Errno> {
    if total == 0 {
        return Ok(0);
    }
    let values = |max, take| parse(head, total, max, take);
    let guard = r.lock().map_err(|_| ENOMEM)?;
    // SAFETY: the region lock serialises writers of the limits; readers copy them unlocked,
    // and every field changes by one aligned store.
    let l = unsafe { &mut r.header_mut().limits };
    let res = match s {
        // proc_doulongvec_minmax without bounds.
        Sysctl::Shmmax | Sysctl::Shmall => {
            let f = if s == Sysctl::Shmmax { &mut l.shmmax } else { &mut l.shmall };
            values(1, &mut |_, neg, v| {
                if neg {
                    return Err(EINVAL);
                }
                store(f, v);
                Ok(())
            })
        }
        // proc_ipc_sem_dointvec: plain ints, then semmni must lie in [0, IPCMNI] or is put back.
        Sysctl::Sem => {
            let mut v = [l.semmsl, l.semmns, l.semopm, l.semmni].map(|x| x as i32);
            let old_semmni = v[3];
            let mut res = values(4, &mut |i, neg, x| {
                v[i] = to_int(neg, x)?;
                Ok(())
            });
            if res.is_ok() && !(0..=IPCMNI as i32).contains(&v[3]) {
                res = Err(ERANGE);
            }
            if res.is_err() {
                v[3] = old_semmni;
            }
            for (f, x) in [&mut l.semmsl, &mut l.semmns, &mut l.semopm, &mut l.semmni].into_iter().zip(v) {
                store(f, x as u32);
            }
            res
        }
        // proc_dointvec_minmax in [0, INT_MAX]; the family's allocation takes it.
        _ if s.is_next_id() => {
            let f = next_id(r, s);
            values(1, &mut |_, neg, x| {
                let v = to_int(neg, x)?;
                if v < 0 {
                    return Err(EINVAL);
                }
                // SAFETY: an aligned word of the mapped header, changed by one store.
                unsafe { core::ptr::write_volatile(f, v) };
                Ok(())
            })
        }
        // proc_dointvec_minmax with the table's bounds.
        _ => {
            let (max, f) = match s {
                Sysctl::Shmmni => (IPCMNI as i32, &mut l.shmmni),
                Sysctl::ShmRmidForced => (1, &mut l.shm_rmid_forced),
                Sysctl::Msgmax => (i32::MAX, &mut l.msgmax),
                Sysctl::Msgmnb => (i32::MAX, &mut l.msgmnb),
                _ => (IPCMNI as i32, &mut l.msgmni),
            };
            values(1, &mut |_, neg, x| {
                let v = to_int(neg, x)?;
                if !(0..=max).contains(&v) {
                    return Err(EINVAL);
                }
                store(f, v as u32);
                Ok(())
            })
        }
    };
    drop(guard);
    // proc_ipc_dointvec_minmax_orphans.
    if s == Sysctl::ShmRmidForced && res.is_ok() && r.header().limits.shm_rmid_forced != 0 {
        shm::destroy_orphaned(r)?;
    }
    res
}

/// `do_proc_dointvec_conv`: the parsed value as a C int.
fn to_int(neg: bool, v: u64) -> Result<i32, Errno> {
    match neg {
        true if v <= i32::MAX as u64 + 1 => Ok((v as i64).wrapping_neg() as i32),
        false if v <= i32::MAX as u64 => Ok(v as i32),
        _ => Err(EINVAL),
    }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// What [`parse`] hands each value to: (index, negative, magnitude).
type Take<'a> = &'a mut dyn FnMut(usize, bool, u64) -> Result<(), Errno>;

/// The write loop of `__do_proc_dointvec` / `__do_proc_doulongvec_minmax` over a write of
/// `total` bytes starting with `buf`: up to `max` values separated by white space, each handed
/// to `take` as it is parsed. Returns the bytes consumed (trailing white space included).
fn parse(buf: &[u8], total: usize, max: usize, take: Take) -> Result<usize, Errno> {
    let mut left = total.min(PAGE_SIZE as usize - 1).min(buf.len());
    let mut p = 0;
    let mut first = true;
    let mut err = None;
    let skip = |p: &mut usize, left: &mut usize| {
        while *left > 0 && is_space(buf[*p]) {
            *p += 1;
            *left -= 1;
        }
    };
    for i in 0..max {
        if left == 0 {
            break;
        }
        skip(&mut p, &mut left);
        if left == 0 {
            break;
        }
        match get_long(&buf[p..p + left]).and_then(|(neg, v, len)| take(i, neg, v).map(|()| len)) {
            Ok(len) => {
                p += len;
                left -= len;
            }
            Err(e) => {
                err = Some(e);
                break;
            }
        }
        first = false;
    }
    if err.is_none() {
        skip(&mut p, &mut left);
    }
    match err {
        Some(e) => Err(e),
        None if first => Err(EINVAL),
        None => Ok(total - left),
    }
}

/// `proc_get_long` with the white-space separators: (negative, magnitude, bytes used).
fn get_long(s: &[u8]) -> Result<(bool, u64, usize), Errno> {
    // TMPBUFLEN - 1: a longer number could not be told from two numbers.
    const MAX_LEN: usize = 21;
    let tmp = &s[..s.len().min(MAX_LEN)];
    let at = |i: usize| tmp.get(i).copied().unwrap_or(0);
    let neg = at(0) == b'-' && s.len() > 1;
    let mut i = neg as usize;
    if !at(i).is_ascii_digit() {
        return Err(EINVAL);
    }
    // strtoul's base 0: 0x… is hex (when a hex digit follows), 0… octal.
    let base = if at(i) == b'0' {
        if at(i + 1).eq_ignore_ascii_case(&b'x') && at(i + 2).is_ascii_hexdigit() {
            i += 2;
            16
        } else {
            8
        }
    } else {
        10
    };
    let mut v: u64 = 0;
    let mut overflow = false;
    while let Some(d) = (at(i) as char).to_digit(base) {
        match v.checked_mul(base as u64).and_then(|x| x.checked_add(d as u64)) {
            Some(x) => v = x,
            None => overflow = true,
        }
        i += 1;
    }
    if overflow || i == MAX_LEN || (i < s.len() && !matches!(s[i], b' ' | b'\t' | b'\n')) {
        return Err(EINVAL);
    }
    Ok((neg, v, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What each write leaves in a single ulong and a single int sysctl (shmmax-like and
    /// shmmni-like), following the kernel's parser.
    fn ulong(buf: &str) -> Result<(usize, u64), Errno> {
        let mut got = 0;
        let n = parse(buf.as_bytes(), buf.len(), 1, &mut |_, neg, v| {
            if neg {
                return Err(EINVAL);
            }
            got = v;
            Ok(())
        })?;
        Ok((n, got))
    }

    #[test]
    fn numbers_like_the_kernel() {
        assert_eq!(ulong("100\n"), Ok((4, 100)));
        assert_eq!(ulong("  7  \n"), Ok((6, 7)));
        assert_eq!(ulong("0x10"), Ok((4, 16)));
        assert_eq!(ulong("010"), Ok((3, 8)));
        assert_eq!(ulong("18446744073709551615"), Ok((20, u64::MAX)));
        assert_eq!(ulong("18446744073709551616"), Err(EINVAL));
        assert_eq!(ulong("-1"), Err(EINVAL));
        assert_eq!(ulong("abc"), Err(EINVAL));
        assert_eq!(ulong("12abc"), Err(EINVAL));
        assert_eq!(ulong("09"), Err(EINVAL));
        assert_eq!(ulong("0x"), Err(EINVAL));
        assert_eq!(ulong("100\0"), Err(EINVAL));
        assert_eq!(ulong("   "), Err(EINVAL));
        // A second number is not consumed: the write is short.
        assert_eq!(ulong("5 6"), Ok((2, 5)));
        assert_eq!(ulong("000000000000000000005"), Err(EINVAL));
    }

    #[test]
    fn ints_like_the_kernel() {
        assert_eq!(to_int(false, i32::MAX as u64), Ok(i32::MAX));
        assert_eq!(to_int(false, i32::MAX as u64 + 1), Err(EINVAL));
        assert_eq!(to_int(true, i32::MAX as u64 + 1), Ok(i32::MIN));
        assert_eq!(to_int(true, i32::MAX as u64 + 2), Err(EINVAL));
        let mut v = [0i32; 4];
        let r = parse(b"1\t2 3\n4\n", 8, 4, &mut |i, neg, x| {
            v[i] = to_int(neg, x)?;
            Ok(())
        });
        assert_eq!((r, v), (Ok(8), [1, 2, 3, 4]));
        // Values before a bad one are kept.
        let mut v = [0i32; 4];
        let r = parse(b"5 6 x", 5, 4, &mut |i, neg, x| {
            v[i] = to_int(neg, x)?;
            Ok(())
        });
        assert_eq!((r, v), (Err(EINVAL), [5, 6, 0, 0]));
    }

    #[test]
    fn paths() {
        let view = |p: &[u8]| index_of(p).map(|i| VIEWS[i].1);
        assert_eq!(view(b"/proc/sysvipc/shm"), Some(View::SysvipcShm));
        assert_eq!(view(b"/proc/sys/kernel/sem"), Some(View::Sysctl(Sysctl::Sem)));
        assert_eq!(view(b"/proc/sysvipc/msg"), Some(View::SysvipcMsg));
        assert_eq!(view(b"/proc/sysvipc/shm/"), None);
        assert_eq!(MAX_PATH, "/proc/sys/kernel/shm_rmid_forced".len());
        assert!(VIEWS.iter().all(|(p, _)| p.as_bytes().starts_with(PREFIX)));
    }
}
