//! Garbage collection of pipe objects. The kernel frees a `pipe_inode_info` when its last file
//! is released; here nothing sees every close (fds are closed inside libc, inherited, or die
//! with their process), so objects whose (dev, ino) is no longer open in any process are found
//! by scanning `/proc/[pid]/fd`: `readlink` names an anonymous pipe `pipe:[ino]`, and a FIFO's
//! link is `stat`ed.
//!
//! Races it must not lose: an object created after the scan began is skipped (creation number);
//! a lookup during the scan marks its object (the caller has an fd the scan may have passed);
//! a process forked during the scan is found by listing `/proc` again until no new pid appears
//! (its parent may have closed the fd after being scanned), or, when that never happens in
//! [`MAX_ROUNDS`] listings (a busy machine), until a listing during which no shimmed process
//! forked (a fork is counted before it is made and again when `fork` returns in the parent,
//! so a child missed by the listing has a parent that had not closed anything since); an
//! operation in progress (`active`)
//! keeps its object, unless the count was leaked by a process killed mid-operation — it is then
//! ignored once the object has been unreferenced and without a sleeping waiter's heartbeat for
//! [`SUSPECT_SECS`].
//!
//! Processes whose fds we may not read (more privileged ones, such as a setuid `sudo` in a
//! pipeline, or another user's) can only have inherited an object that already existed when
//! they started: every object older than the youngest such process is kept. (One that started
//! earlier could only have received an fd by SCM_RIGHTS.)
//!
//! Runs in whatever context called `pipe_new` (possibly a signal handler): no allocation, raw
//! system calls only, the pid list in a private mapping of its own.

use crate::pipe::{self, coarse_secs, ns, ns_lock, slot, try_free};
use crate::region::{PIPE_MAX, Region};
use crate::sys::{self, Errno};
use core::sync::atomic::Ordering;

/// A collection every this many creations (or as many as there are objects live, if more),
/// when the table grew by half as many since the last one.
pub const GC_EVERY: u32 = 1024;
/// How long an unreferenced object with operations "in progress" but no sign of life is kept.
pub const SUSPECT_SECS: i64 = 10;
/// A collector that has not finished after this long is presumed dead (pid reuse).
const OWNER_TIMEOUT_SECS: i64 = 60;
/// Listings of /proc before giving up on processes that keep forking.
const MAX_ROUNDS: usize = 8;
/// Processes a collection can list (the kernel's PID_MAX_LIMIT).
const PIDS_MAX: usize = 1 << 22;
/// USER_HZ: the unit of start times in /proc/[pid]/stat.
const NS_PER_TICK: u64 = 10_000_000;

/// What one collection did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcReport {
    pub freed: u32,
    pub processes: u32,
    /// Processes whose fds could not be read.
    pub unreadable: u32,
}

/// Frees every object no process has open. None when another collection is running (it
/// then runs once more when done, so that what this caller knows to be garbage is found) or
/// the scan could not see every process (nothing is freed then).
pub fn collect_garbage(region: &Region) -> Option<GcReport> {
    let ns = ns(region);
    ns.gc_again.store(1, Ordering::SeqCst);
    let _claim = Claim::take(region)?;
    let mut report = None;
    // Each request made before a pass began is served by that pass.
    while ns.gc_again.swap(0, Ordering::SeqCst) != 0 {
        report = collect_once(region);
    }
    ns.gc_ended_ms.store(coarse_ms(), Ordering::Relaxed);
    report
}

/// Whether a collection ended less than [`SOON_MS`] ago. What asks for collections often
/// (every reaping of a killed child, every creation in a full table) waits that long between
/// them: a scan reads every process's fds, and a scan each time would keep a parent that reaps
/// many, or a program holding thousands of sockets, busy scanning.
pub fn collected_lately(region: &Region) -> bool {
    coarse_ms() - ns(region).gc_ended_ms.load(Ordering::Relaxed) < SOON_MS
}

/// A collection, unless one ended lately (see [`collected_lately`]): it is then only asked
/// for, and the next collection (a status, the next creations) runs it.
pub fn collect_soon(region: &Region) {
    // Nothing it could free, no listener to forget: a parent reaping killed children of a
    // namespace without pipes or sockets scans nobody's fds. (What is created after this look
    // is held by a live process.)
    if ns(region).nr_live.load(Ordering::Relaxed) == 0 && !crate::unix::any_pending(region) {
        return;
    }
    if collected_lately(region) {
        ns(region).gc_again.store(1, Ordering::SeqCst);
        return;
    }
    collect_garbage(region);
}

/// See [`collected_lately`].
pub const SOON_MS: i64 = 100;

fn coarse_ms() -> i64 {
    let t = sys::clock_gettime(libc::CLOCK_MONOTONIC_COARSE);
    t.tv_sec * 1000 + t.tv_nsec / 1_000_000
}

fn collect_once(region: &Region) -> Option<GcReport> {
    let ns = ns(region);
    let pass = ns.gc_pass.fetch_add(1, Ordering::SeqCst).wrapping_add(1).max(1);
    ns.gc_pass.store(pass, Ordering::SeqCst);
    let seq_limit = ns.create_seq.load(Ordering::SeqCst);
    let pipefs_dev = {
        let (r, w) = sys::pipe2(libc::O_CLOEXEC).ok()?;
        let st = sys::fstat(r);
        sys::close(r);
        sys::close(w);
        st.ok()?.st_dev
    };
    let mut listeners = [0u32; 64];
    let nlisteners = crate::unix::pending_listeners(region, &mut listeners);
    let mut scan = Scan {
        region,
        listeners: &listeners[..nlisteners],
        listeners_seen: 0,
        pass,
        pipefs_dev,
        sockfs_dev: sys::sockfs_dev(),
        fifos: any_fifo(region, pipefs_dev, sys::sockfs_dev()),
        marks: [(0, 0); 16],
        n: 0,
        keep_born_before: 0,
        unreadable: 0,
    };
    let processes = scan.all_processes()?;
    let freed = sweep(region, pass, seq_limit, scan.keep_born_before);
    // A listener no process holds is gone (killed, say): its pending connects never will be
    // accepted. Unless a process could not be read, which might hold it.
    if scan.unreadable == 0 {
        for (i, &ino) in scan.listeners.iter().enumerate() {
            if scan.listeners_seen & 1 << i == 0 {
                crate::unix::listener_gone(region, ino, None);
            }
        }
    }
    ns.gc_runs.fetch_add(1, Ordering::Relaxed);
    ns.gc_freed.fetch_add(freed as u64, Ordering::Relaxed);
    ns.live_after_gc.store(ns.nr_live.load(Ordering::Relaxed), Ordering::Relaxed);
    Some(GcReport { freed, processes, unreadable: scan.unreadable })
}

/// At most one collector at a time; a dead or stuck one is replaced.
struct Claim<'a> {
    region: &'a Region,
}

impl<'a> Claim<'a> {
    fn take(region: &'a Region) -> Option<Claim<'a>> {
        let owner = &ns(region).gc_owner;
        let now = coarse_secs();
        let me = (sys::getpid() as u64) << 32 | (now as u64 & 0xffff_ffff);
        let cur = owner.load(Ordering::Acquire);
        if cur != 0 {
            let (pid, since) = ((cur >> 32) as i32, (cur & 0xffff_ffff) as i64);
            let dead = sys::kill(pid, 0) == Err(libc::ESRCH);
            if !dead && now.wrapping_sub(since) & 0xffff_ffff < OWNER_TIMEOUT_SECS {
                return None;
            }
        }
        owner.compare_exchange(cur, me, Ordering::AcqRel, Ordering::Acquire).ok()?;
        Some(Claim { region })
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        ns(self.region).gc_owner.store(0, Ordering::Release);
    }
}

fn any_fifo(region: &Region, pipefs_dev: u64, sockfs_dev: u64) -> bool {
    let Ok(_g) = ns_lock(region) else { return true };
    (0..ns(region).hwm.load(Ordering::Relaxed).min(PIPE_MAX))
        .map(|i| slot(region, i))
        .any(|p| !p.is_free() && ![pipefs_dev, sockfs_dev].contains(&p.dev.load(Ordering::Relaxed)))
}

struct Scan<'a> {
    region: &'a Region,
    /// Listening sockets that connects are pending to, and which of them some process holds.
    listeners: &'a [u32],
    listeners_seen: u64,
    pass: u32,
    pipefs_dev: u64,
    /// AF_UNIX stream sockets' objects are named by their socket's inode (`socket:[ino]`).
    sockfs_dev: u64,
    /// Whether any object is a FIFO file (only then are other links stat'ed).
    fifos: bool,
    /// (dev, ino) found, marked in batches under the namespace lock.
    marks: [(u64, u64); 16],
    n: usize,
    /// Objects born before this (CLOCK_BOOTTIME ns) may be held by a process we cannot read.
    keep_born_before: u64,
    unreadable: u32,
}

/// Decimal digits of `v` into `buf`; their length.
pub fn itoa(v: u32, buf: &mut [u8; 10]) -> usize {
    let mut wide = [0u8; 20];
    let n = itoa64(v as u64, &mut wide);
    buf[..n].copy_from_slice(&wide[..n]);
    n
}

/// `itoa` for any u64.
pub fn itoa64(mut v: u64, buf: &mut [u8; 20]) -> usize {
    let mut tmp = [0u8; 20];
    let mut n = 0;
    loop {
        tmp[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        buf[i] = tmp[n - 1 - i];
    }
    n
}

pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    s.iter().try_fold(0u64, |a, &c| {
        c.is_ascii_digit().then(|| a.checked_mul(10)?.checked_add((c - b'0') as u64))?
    })
}

/// Calls `f` with each entry name of the directory `fd` (without "." and ".."). Err on a
/// getdents failure or when `f` fails. Its stack buffer holds an entry with the longest name
/// (280 bytes) and little more: scans nest (/proc, then a process's fds) on what may be a small
/// stack. A directory that needs more than two reads of it (a process with thousands of fds)
/// is read on through a mapped buffer instead, 64 KiB at a time.
pub fn each_entry(fd: i32, f: impl FnMut(&[u8]) -> Result<(), Errno>) -> Result<(), Errno> {
    entries(fd, false, f)
}

/// [`each_entry`] for a `/proc/PID/fd` directory: a read that leaves room for another entry
/// was its last (the kernel fills the buffer with fds until there is no next one or no room
/// for it, and a number's entry takes at most 32 bytes), which spares the read that would
/// return nothing.
pub fn each_fd_entry(fd: i32, f: impl FnMut(&[u8]) -> Result<(), Errno>) -> Result<(), Errno> {
    entries(fd, true, f)
}

fn entries(fd: i32, fd_dir: bool, mut f: impl FnMut(&[u8]) -> Result<(), Errno>) -> Result<(), Errno> {
    /// The longest entry of a decimal fd number: 19 bytes of header, 10 digits, a NUL, aligned.
    const FD_RECLEN: usize = 32;
    const BIG: usize = 64 << 10;
    let mut small = [0u8; 320];
    let mut big: Option<usize> = None;
    let res = (|| {
        for reads in 0.. {
            if reads == 2 && big.is_none() {
                big = sys::mmap(
                    0,
                    BIG,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
                .ok();
            }
            let buf: &mut [u8] = match big {
                // SAFETY: our own fresh mapping of BIG bytes, unmapped only below.
                Some(addr) => unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, BIG) },
                None => &mut small,
            };
            let n = sys::getdents64(fd, buf)?;
            if n == 0 {
                return Ok(());
            }
            let mut off = 0;
            // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name (NUL-terminated).
            while off + 19 < n {
                let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
                if reclen == 0 || off + reclen > n {
                    return Err(libc::EIO);
                }
                let name = &buf[off + 19..off + reclen];
                let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
                if name != b"." && name != b".." {
                    f(name)?;
                }
                off += reclen;
            }
            if fd_dir && n + FD_RECLEN <= buf.len() {
                return Ok(());
            }
        }
        Ok(())
    })();
    if let Some(addr) = big {
        let _ = sys::munmap(addr, BIG);
    }
    res
}

/// A CLOCK_BOOTTIME (ns) by which the process `pid` (its digits) had started, from
/// `/proc/PID/stat`: an object born before it may have been inherited by it. None if it is gone.
pub fn started_by(proc_fd: i32, pid: &[u8]) -> Result<Option<u64>, Errno> {
    let mut path = [0u8; 16];
    path[..pid.len()].copy_from_slice(pid);
    path[pid.len()..pid.len() + 6].copy_from_slice(b"/stat\0");
    let fd = match sys::openat(proc_fd, &path[..pid.len() + 6], libc::O_RDONLY) {
        Ok(fd) => fd,
        Err(libc::ENOENT | libc::ESRCH) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = [0u8; crate::proc::STAT_PREFIX];
    let len = sys::read(fd, &mut buf);
    sys::close(fd);
    let buf = &buf[..len?];
    // Field 22, starttime, counting from the state after the comm's closing parenthesis.
    let after = buf.iter().rposition(|&c| c == b')').ok_or(libc::EIO)? + 2;
    let ticks = buf.get(after..).and_then(|f| f.split(|&c| c == b' ').nth(19)).and_then(parse_u64);
    // Start times have tick resolution: an object born in the same tick may be inherited.
    Ok(Some((ticks.ok_or(libc::EIO)? + 2) * NS_PER_TICK))
}

impl Scan<'_> {
    /// Scans every process, listing /proc until a listing shows no pid not yet scanned (or, at
    /// the last round, no shimmed process forked during it). Returns how many were scanned; None if one could
    /// not be read or they never settled.
    fn all_processes(&mut self) -> Option<u32> {
        let proc_fd = sys::open(b"/proc\0", libc::O_RDONLY | libc::O_DIRECTORY, 0).ok()?;
        let res = self.rounds(proc_fd);
        sys::close(proc_fd);
        let n = res.ok()?;
        self.flush().ok()?;
        Some(n)
    }

    fn rounds(&mut self, proc_fd: i32) -> Result<u32, Errno> {
        // The pids scanned, sorted, in memory of this process's own: not the region's, whose
        // file system may be full (a full tmpfs is when collections matter most).
        let len = PIDS_MAX * size_of::<u32>();
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        let addr = sys::mmap(0, len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0)?;
        // SAFETY: a fresh private mapping of PIDS_MAX u32s, unmapped below and used only here.
        let pids = unsafe { core::slice::from_raw_parts_mut(addr as *mut u32, PIDS_MAX) };
        let res = self.settle(proc_fd, pids);
        let _ = sys::munmap(addr, len);
        res
    }

    fn settle(&mut self, proc_fd: i32, pids: &mut [u32]) -> Result<u32, Errno> {
        let mut seen = 0usize;
        for round in 0..MAX_ROUNDS {
            // A child forked before this listing is in it; one forked after, in the next.
            let forks = ns(self.region).forks.load(Ordering::SeqCst);
            let mut total = seen;
            sys::lseek(proc_fd, 0, libc::SEEK_SET)?;
            each_entry(proc_fd, |name| {
                let Some(pid) = parse_u64(name).and_then(|p| u32::try_from(p).ok()) else { return Ok(()) };
                if pids[..seen].binary_search(&pid).is_ok() {
                    return Ok(());
                }
                if total == pids.len() {
                    return Err(libc::ENOSPC);
                }
                self.process(proc_fd, pid)?;
                pids[total] = pid;
                total += 1;
                Ok(())
            })?;
            // Settled: no new pid. On a busy machine (unrelated processes come and go), the
            // last round may settle instead by no shimmed fork since it began.
            if total == seen
                || round == MAX_ROUNDS - 1 && ns(self.region).forks.load(Ordering::SeqCst) == forks
            {
                return Ok(total as u32);
            }
            pids[..total].sort_unstable();
            seen = total;
        }
        Err(libc::EAGAIN)
    }

    /// Marks the objects behind the fds of `pid`. A process that is gone is fine (its fds are
    /// closed); one we may not look into is not. Not inlined: its directory scan nests in the
    /// caller's, and each has a buffer.
    #[inline(never)]
    fn process(&mut self, proc_fd: i32, pid: u32) -> Result<(), Errno> {
        let mut path = [0u8; 16];
        let mut digits = [0u8; 10];
        let n = itoa(pid, &mut digits);
        path[..n].copy_from_slice(&digits[..n]);
        path[n..n + 4].copy_from_slice(b"/fd\0");
        let dir = match sys::openat(proc_fd, &path[..n + 4], libc::O_RDONLY | libc::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(libc::ENOENT | libc::ESRCH) => return Ok(()),
            Err(libc::EACCES | libc::EPERM) => return self.unreadable(proc_fd, &mut path, n),
            Err(e) => return Err(e),
        };
        let res = each_fd_entry(dir, |name| {
            let mut cname = [0u8; 16];
            if name.len() >= cname.len() {
                return Ok(());
            }
            cname[..name.len()].copy_from_slice(name);
            let cname = &cname[..name.len() + 1];
            let mut link = [0u8; 64];
            let len = match sys::readlinkat(dir, cname, &mut link) {
                Ok(len) => len,
                Err(libc::ENOENT) => return Ok(()),
                Err(e) => return Err(e),
            };
            let link = &link[..len];
            if let Some(rest) = link.strip_prefix(b"pipe:[") {
                if let Some(ino) = rest.strip_suffix(b"]").and_then(parse_u64) {
                    self.mark(self.pipefs_dev, ino)?;
                }
            } else if let Some(rest) = link.strip_prefix(b"socket:[") {
                if let Some(ino) = rest.strip_suffix(b"]").and_then(parse_u64) {
                    if let Ok(i) = u32::try_from(ino).map(|ino| self.listeners.binary_search(&ino)) {
                        self.listeners_seen |= i.map_or(0, |i| 1 << i);
                    }
                    self.mark(self.sockfs_dev, ino)?;
                }
            } else if self.fifos && link.first() == Some(&b'/') {
                match sys::fstatat(dir, cname) {
                    Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFIFO => {
                        self.mark(st.st_dev, st.st_ino)?
                    }
                    Ok(_) | Err(libc::ENOENT) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        sys::close(dir);
        match res {
            Err(libc::ENOENT | libc::ESRCH) => Ok(()),
            Err(libc::EACCES | libc::EPERM) => self.unreadable(proc_fd, &mut path, n),
            r => r,
        }
    }

    /// A process whose fds we may not read: whatever existed when it started is kept. One
    /// that started before the namespace existed (a container's init, say) holds nothing of
    /// it but what an SCM_RIGHTS message gave it. `path` holds its pid's `n` digits.
    fn unreadable(&mut self, proc_fd: i32, path: &mut [u8; 16], n: usize) -> Result<(), Errno> {
        let Some(horizon) = started_by(proc_fd, &path[..n])? else { return Ok(()) };
        let age = (sys::real_seconds() - self.region.header().created).max(0) as u64 + 2;
        if horizon < pipe::boot_ns().saturating_sub(age * 1_000_000_000) {
            return Ok(());
        }
        self.keep_born_before = self.keep_born_before.max(horizon);
        self.unreadable += 1;
        Ok(())
    }

    fn mark(&mut self, dev: u64, ino: u64) -> Result<(), Errno> {
        self.marks[self.n] = (dev, ino);
        self.n += 1;
        if self.n == self.marks.len() { self.flush() } else { Ok(()) }
    }

    fn flush(&mut self) -> Result<(), Errno> {
        let _g = ns_lock(self.region)?;
        for &(dev, ino) in &self.marks[..self.n] {
            if let Some(idx) = pipe::lookup(self.region, dev, ino) {
                slot(self.region, idx).gc_seen.store(self.pass, Ordering::Relaxed);
                // A socket receives from its peer's object: what the peer sent before it
                // closed stays readable while this end is open.
                if let Some(peer) = pipe::peer_slot(self.region, idx) {
                    slot(self.region, peer).gc_seen.store(self.pass, Ordering::Relaxed);
                }
            }
        }
        self.n = 0;
        Ok(())
    }
}

/// Frees the objects of this pass's generation that nobody was seen holding.
fn sweep(region: &Region, pass: u32, seq_limit: u64, keep_born_before: u64) -> u32 {
    let Ok(_g) = ns_lock(region) else { return 0 };
    let now = coarse_secs();
    let mut freed = 0;
    for idx in 0..ns(region).hwm.load(Ordering::Relaxed).min(PIPE_MAX) {
        let p = slot(region, idx);
        if p.is_free() || p.create_seq.load(Ordering::Relaxed) > seq_limit {
            continue;
        }
        let seen = p.gc_seen.load(Ordering::Relaxed) == pass
            || p.born.load(Ordering::Relaxed) < keep_born_before
            || pipe::sock_queued(p)
            || now - p.in_flight.load(Ordering::Relaxed) < SUSPECT_SECS;
        if p.is_hashed() && seen {
            p.gc_suspect.store(0, Ordering::Relaxed);
            continue;
        }
        let mut force = false;
        if p.active.load(Ordering::SeqCst) != 0 {
            let since = p.gc_suspect.load(Ordering::Relaxed);
            if since == 0 {
                p.gc_suspect.store(now, Ordering::Relaxed);
                continue;
            }
            let beat = p.heartbeat.load(Ordering::Relaxed);
            if now - since < SUSPECT_SECS || now - beat < SUSPECT_SECS {
                continue;
            }
            force = true;
        }
        // SAFETY: namespace lock held.
        if unsafe { try_free(region, idx, force) } {
            freed += 1;
        }
    }
    freed
}
