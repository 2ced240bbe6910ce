//! `mlockall` and `munlockall` in a shimmed process. The kernel's `mlockall(MCL_CURRENT)`
//! would lock, and fault in, every mapping, the region among them: 139 GiB of sparse file that
//! then take memory until the OOM killer acts, and that an unprivileged process may not lock
//! at all (`RLIMIT_MEMLOCK` is checked against its whole address space). So the program's
//! mappings are locked one by one from `/proc/self/maps`, the region's two views left out, and
//! the limit is checked against the mappings the program would have without us. `MCL_FUTURE`
//! is the kernel's own (it only marks mappings made later, and the region is mapped at start-
//! up); a segment attached later, which is a view of the region the kernel does not mark, is
//! locked when it is attached (one backed by a kernel segment is the kernel's own attachment,
//! which the mark covers). `mlock`/`munlock` of ranges stay the kernel's.

use core::sync::atomic::{AtomicI32, Ordering};
use shared_state::Region;
use shared_state::region::{SHM_DATA_SIZE, TOTAL_SIZE};
use shared_state::sys::{self, Errno};

const CAP_IPC_LOCK: u64 = 1 << 14;

/// The MCL_FUTURE (and MCL_ONFAULT) in force in this process (0: none). Not inherited by a fork
/// child, as the kernel's `def_flags` are not; a new image starts without it.
static FUTURE: AtomicI32 = AtomicI32::new(0);

/// In a fork child.
pub fn forked() {
    // Stored only when set: a store copies the page the child shares with its parent.
    if FUTURE.load(Ordering::Relaxed) != 0 {
        FUTURE.store(0, Ordering::Relaxed);
    }
}

/// One mapping of /proc/self/maps: its range, and whether it is the shim's own library.
struct Mapping {
    start: usize,
    end: usize,
    ours: bool,
}

/// Calls `f` for each line of /proc/self/maps, parsed; false if the file could not be read.
fn each_mapping(mut f: impl FnMut(&Mapping)) -> bool {
    // In scratch memory: a page is too large for a small stack.
    let Ok(mut buf) = crate::base::scratch::take(4096, 0u8) else { return false };
    let Ok(fd) = sys::open(b"/proc/self/maps\0", libc::O_RDONLY | libc::O_CLOEXEC, 0) else { return false };
    let mut have = 0;
    let mut ok = true;
    loop {
        let n = match sys::read(fd, &mut buf[have..]) {
            Ok(n) => n,
            Err(_) => {
                ok = false;
                break;
            }
        };
        have += n;
        let mut at = 0;
        while let Some(nl) = buf[at..have].iter().position(|&c| c == b'\n') {
            if let Some(m) = parse(&buf[at..at + nl]) {
                f(&m);
            }
            at += nl + 1;
        }
        // A line longer than the buffer (a very long path) is skipped whole.
        if at == 0 && have == buf.len() {
            have = 0;
            continue;
        }
        buf.copy_within(at..have, 0);
        have -= at;
        if n == 0 {
            break;
        }
    }
    sys::close(fd);
    ok
}

/// `start-end perms offset dev inode path`.
fn parse(line: &[u8]) -> Option<Mapping> {
    let hex = |s: &[u8]| {
        s.iter().try_fold(0usize, |a, &c| Some(a.checked_mul(16)? + (c as char).to_digit(16)? as usize))
    };
    let dash = line.iter().position(|&c| c == b'-')?;
    let space = line.iter().position(|&c| c == b' ')?;
    let (start, end) = (hex(&line[..dash])?, hex(&line[dash + 1..space])?);
    Some(Mapping { start, end, ours: line.ends_with(b"/libipcshim.so") })
}

fn caps() -> u64 {
    sys::effective_caps()
}

/// `RLIMIT_MEMLOCK`'s soft limit.
fn memlock_limit() -> u64 {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    let res = sys::syscall6(
        libc::SYS_prlimit64,
        0,
        libc::RLIMIT_MEMLOCK as usize,
        0,
        &mut rl as *mut libc::rlimit as usize,
        0,
        0,
    );
    if res.is_ok() { rl.rlim_cur } else { 0 }
}

/// The region's own mappings: the shared view and the read-only view of the data area.
fn in_region(r: &Region, m: &Mapping) -> bool {
    let inside = |base: usize, len: u64| m.start >= base && m.end <= base + len as usize;
    inside(r.base(), TOTAL_SIZE) || inside(r.ro_data(), SHM_DATA_SIZE)
}

/// `mlockall(flags)`, kernel-style result.
pub fn mlockall(r: &Region, flags: u64) -> i64 {
    let flags = flags as i32;
    let all = libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT;
    if flags == 0 || flags & !all != 0 || flags == libc::MCL_ONFAULT {
        return -(libc::EINVAL as i64);
    }
    let capable = caps() & CAP_IPC_LOCK != 0;
    let limit = memlock_limit();
    if limit == 0 && !capable {
        return -(libc::EPERM as i64);
    }
    if flags & libc::MCL_CURRENT != 0 && !capable && limit != libc::RLIM_INFINITY {
        // What the program's total_vm would be: without the region and our own library
        // ([vsyscall] is no mapping of the process).
        let mut total = 0u64;
        let read = each_mapping(|m| {
            if !in_region(r, m) && !m.ours && m.start < 0xffff_8000_0000_0000 {
                total += (m.end - m.start) as u64;
            }
        });
        if !read {
            return -(libc::ENOMEM as i64);
        }
        if total / 4096 > limit / 4096 {
            return -(libc::ENOMEM as i64);
        }
    }
    let onfault = flags & libc::MCL_ONFAULT;
    let res = if flags & libc::MCL_FUTURE != 0 {
        // Only the mark for later mappings: the current ones are left alone by the kernel.
        sys::syscall6(libc::SYS_mlockall, (libc::MCL_FUTURE | onfault) as usize, 0, 0, 0, 0, 0)
    } else if FUTURE.load(Ordering::Relaxed) != 0 {
        // MCL_CURRENT alone clears an earlier MCL_FUTURE: only munlockall does that without
        // locking the region; every current mapping is locked again below.
        sys::syscall6(libc::SYS_munlockall, 0, 0, 0, 0, 0, 0)
    } else {
        Ok(0)
    };
    if let Err(e) = res {
        return -(e as i64);
    }
    FUTURE.store(
        flags & libc::MCL_FUTURE | if flags & libc::MCL_FUTURE != 0 { onfault } else { 0 },
        Ordering::Relaxed,
    );
    if flags & libc::MCL_CURRENT != 0 {
        let lock = if onfault != 0 { libc::MLOCK_ONFAULT } else { 0 };
        // As the kernel's mlockall, a mapping that cannot be faulted in (PROT_NONE) is locked
        // all the same and its error ignored; so is a limit reached by our own library.
        each_mapping(|m| {
            if !in_region(r, m) && m.start < 0xffff_8000_0000_0000 {
                let _ = lock_range(m.start, m.end - m.start, lock);
            }
        });
    }
    0
}

fn lock_range(addr: usize, len: usize, flags: u32) -> Result<usize, Errno> {
    sys::syscall6(libc::SYS_mlock2, addr, len, flags as usize, 0, 0, 0)
}

/// `munlockall()`.
pub fn munlockall() -> i64 {
    FUTURE.store(0, Ordering::Relaxed);
    match sys::syscall6(libc::SYS_munlockall, 0, 0, 0, 0, 0, 0) {
        Ok(_) => 0,
        Err(e) => -(e as i64),
    }
}

/// A segment was attached at `addr`: under MCL_FUTURE the kernel's mapping would have been
/// locked (and faulted in, unless MCL_ONFAULT). Err(EAGAIN) beyond `RLIMIT_MEMLOCK`, as the
/// kernel's `do_mmap` says; the caller detaches it then.
pub fn attached(addr: usize) -> Result<(), Errno> {
    let future = FUTURE.load(Ordering::Relaxed);
    if future == 0 {
        return Ok(());
    }
    let mut len = 0;
    each_mapping(|m| {
        if m.start == addr {
            len = m.end - m.start;
        }
    });
    let flags = if future & libc::MCL_ONFAULT != 0 { libc::MLOCK_ONFAULT } else { 0 };
    match lock_range(addr, len, flags) {
        Err(libc::ENOMEM | libc::EAGAIN | libc::EPERM) => Err(libc::EAGAIN),
        _ => Ok(()),
    }
}
