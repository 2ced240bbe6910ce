//! The per-process fd table: which fds are shim pipes or AF_UNIX sockets, which are `/proc`
//! sysctl views open for writing (see `procfs`), and which are epoll fds and with what shim
//! object (see `epoll`).
//!
//! Every shim object sits behind a real kernel object of the same type (a placeholder pipe, or
//! the FIFO itself), so fd numbers, dup, fork, exec, O_CLOEXEC and per-open-file flags stay
//! the kernel's own, even in code the shim never sees (NOTES §4). This table only caches what
//! an fd is; an unknown fd is looked up once with `fstat` (the placeholder's inode names the
//! object), which is how a new image finds the objects behind its inherited fds.
//!
//! A cached entry stays right because every way an fd number is freed (close, close_range,
//! dup2/dup3 onto it, exec) is seen by the dispatcher and clears it; a number can only be
//! reused after it was freed. A vfork child shares this memory but not the fd table, so it
//! neither reads nor writes the cache.

use crate::base::thread;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use shared_state::Region;
use shared_state::pipe::PipeHandle;
use shared_state::pipe_gc;
use shared_state::region::RegionFiles;
use shared_state::sys::{self, Errno};

/// fds below this are cached; higher ones are looked up on every call. The tables are
/// zero-initialised statics: a page of them costs memory only once an fd in its range is used.
pub(crate) const CACHED: usize = 1 << 16;

// The rewritten call sites' stubs (`sud::stubs`) read the table too: an fd whose entry is
// KERNEL or PLAIN goes straight to the kernel, and a close of one that is UNKNOWN, KERNEL or
// PLAIN only resets its entry to UNKNOWN, as `crate::family::file::close` does.
pub(crate) const UNKNOWN: u64 = 0;
pub(crate) const KERNEL: u64 = 1;
/// A kernel fd: a listening AF_UNIX socket whose name leads to the shim (see `crate::family::unix`).
pub(crate) const LISTENER: u64 = 2;
const SHIM: u64 = 1 << 63;
const READ: u64 = 1 << 62;
const WRITE: u64 = 1 << 61;
const PACKET: u64 = 1 << 60;
const FIFO: u64 = 1 << 59;
/// A sysctl view open for writing; the low bits are its index in `shared_state::procfs::VIEWS`.
const SYSCTL: u64 = 1 << 58;
/// An epoll fd: EPOLL_OBJ | its object's handle, or the namespace's epoll creation count when
/// it had none (looked at again once the count moves).
const EPOLL: u64 = 1 << 57;
const EPOLL_OBJ: u64 = 1 << 56;
/// KERNEL, and known not to be an epoll fd either.
pub(crate) const PLAIN: u64 = 3;
/// A kernel fd: an AF_UNIX stream socket this image made with `socket` and has not connected
/// through the shim yet (FRESH_RECORDS: a seqpacket one). What `connect` and `listen` would
/// ask the kernel about it is known (see [`fresh`]).
pub(crate) const FRESH: u64 = 4;
pub(crate) const FRESH_RECORDS: u64 = 5;
/// A kernel fd: a TCP socket this image made with `socket` and has not connected, listened or
/// sent on through the shim (see [`fresh_tcp`]); FRESH_TCP_ASK: one on which an option that
/// changes receives (`SO_RCVLOWAT`…) was set here.
pub(crate) const FRESH_TCP: u64 = 6;
pub(crate) const FRESH_TCP_ASK: u64 = 7;
/// An AF_UNIX stream or seqpacket socket: the handle is its own send queue (`crate::family::unix`).
const SOCKET: u64 = 1 << 55;
/// PipeHandle::to_bits uses 48 bits.
const HANDLE_MASK: u64 = (1 << 48) - 1;

pub(crate) static TABLE: [AtomicU64; CACHED] = [const { AtomicU64::new(UNKNOWN) }; CACHED];

/// One bit per fd: added to an epoll set while a kernel fd (an AF_UNIX socket that may become
/// the shim's at connect, see `epoll::connected`). Cleared when the number is freed.
static EP_WATCHED: [AtomicU64; CACHED / 64] = [const { AtomicU64::new(0) }; CACHED / 64];

/// What one fd is, for a shim pipe.
#[derive(Clone, Copy, Debug)]
pub struct PipeFd {
    pub fd: i32,
    pub pipe: PipeHandle,
    pub read: bool,
    pub write: bool,
    /// O_DIRECT: packet mode (follows F_SETFL).
    pub packet: bool,
    /// A FIFO file rather than an anonymous pipe.
    pub fifo: bool,
    /// An AF_UNIX stream socket: writes go to `pipe`, reads come from its peer's object.
    pub socket: bool,
    /// As the table knew it (see [`Sole`]): nothing but this fd holds the socket's file.
    pub sole: Sole,
}

impl PipeFd {
    fn encode(&self) -> u64 {
        let mut e = SHIM | (self.pipe.to_bits() & HANDLE_MASK);
        if self.read {
            e |= READ;
        }
        if self.write {
            e |= WRITE;
        }
        if self.packet {
            e |= PACKET;
        }
        if self.fifo {
            e |= FIFO;
        }
        if self.socket {
            e |= SOCKET;
        }
        e
    }

    fn decode(fd: i32, e: u64) -> PipeFd {
        let socket = e & SOCKET != 0;
        PipeFd {
            fd,
            pipe: PipeHandle::from_bits(e & HANDLE_MASK),
            read: e & READ != 0,
            write: e & WRITE != 0,
            packet: e & PACKET != 0,
            fifo: e & FIFO != 0,
            socket,
            sole: if socket { sole_mark(fd) } else { Sole::NO },
        }
    }
}

fn slot(fd: i32) -> Option<&'static AtomicU64> {
    if thread::in_vfork_child() {
        return None;
    }
    usize::try_from(fd).ok().and_then(|i| TABLE.get(i))
}

/// Stores a new entry for `fd`; what was cached about the old one goes (a socket that stays
/// this fd's alone is marked so again by the caller).
fn store(fd: i32, s: &AtomicU64, e: u64) {
    forget_caches(fd as usize);
    SOLE[fd as usize].store(0, Ordering::Relaxed);
    if fd as usize >= HIGHEST.load(Ordering::Relaxed) {
        HIGHEST.fetch_max(fd as usize + 1, Ordering::Relaxed);
    }
    s.store(e, Ordering::Release);
    census_mark(fd as usize, e & (SHIM | EPOLL_OBJ) != 0 || e == LISTENER);
}

/// The census: the fds whose going matters to other processes (shim pipes and sockets, the
/// shim's listeners and epoll instances, and the fds an exec handed down that may be any of
/// those), so that an exec or an exit need not list /proc/self/fd to find them: the first
/// look at a process's /proc directory costs more than the rest of a short process's
/// start-up. Kept by every change of the table; fds opened by path through a rewritten call
/// site (a FIFO) and never used through the shim are not in it.
static INTEREST: [AtomicU64; CACHED / 64] = [const { AtomicU64::new(0) }; CACHED / 64];
/// Whether [`INTEREST`] holds every such fd of the process (not in a vfork child), and one
/// past the last word of it ever set: a scan stops there, so that a fork child does not fault
/// in pages of it that nobody wrote (both on one page: the first is read at each exit).
struct Census {
    whole: AtomicBool,
    words: core::sync::atomic::AtomicUsize,
}
static CENSUS: Census =
    Census { whole: AtomicBool::new(false), words: core::sync::atomic::AtomicUsize::new(0) };

fn census_mark(fd: usize, on: bool) {
    let (w, bit) = (&INTEREST[fd / 64], 1u64 << (fd % 64));
    // Stored only when it changes: a store to a page a fork child shares copies it.
    if (w.load(Ordering::Relaxed) & bit != 0) != on {
        if on {
            CENSUS.words.fetch_max(fd / 64 + 1, Ordering::Relaxed);
            w.fetch_or(bit, Ordering::Relaxed);
        } else {
            w.fetch_and(!bit, Ordering::Relaxed);
        }
    }
}

/// A shim object at `fd` the table cannot hold (65536 and above): the census is not whole.
fn census_miss(fd: i32) {
    if fd >= CACHED as i32 && !thread::in_vfork_child() {
        CENSUS.whole.store(false, Ordering::Relaxed);
    }
}

/// At start-up: the census an exec handed down (`RW,RO,DEV,INO,CENSUS` in IPCSHIM_REGION_FD:
/// fd numbers separated by '.', or '-' for none known).
pub fn census_start(handed: Option<&str>) {
    let Some(list) = handed.filter(|l| *l != "-") else { return };
    for n in list.split('.').filter(|n| !n.is_empty()) {
        match n.parse::<usize>() {
            Ok(fd) if fd < CACHED => census_mark(fd, true),
            _ => return,
        }
    }
    CENSUS.whole.store(true, Ordering::Relaxed);
}

/// Calls `f` for every fd the census holds; false (and nothing called) when it is not whole,
/// or in a vfork child, whose fds are its own.
pub fn each_in_census(mut f: impl FnMut(i32)) -> bool {
    if !CENSUS.whole.load(Ordering::Relaxed) || thread::in_vfork_child() {
        return false;
    }
    for (i, w) in INTEREST.iter().enumerate().take(CENSUS.words.load(Ordering::Relaxed)) {
        let mut bits = w.load(Ordering::Relaxed);
        while bits != 0 {
            f((i * 64) as i32 + bits.trailing_zeros() as i32);
            bits &= bits - 1;
        }
    }
    true
}

/// Takes the census from /proc/self/fd (once a process needs it whole and it is not): every
/// fd the table does not know to be something else goes in, except the region descriptors
/// (`is_own_fd`). Not in a vfork child.
pub fn census_from_listing(r: Option<&Region>, is_own_fd: impl Fn(i32) -> bool) {
    if thread::in_vfork_child() || CENSUS.whole.load(Ordering::Relaxed) {
        return;
    }
    let mut whole = true;
    each_open_fd(|fd| {
        if is_own_fd(fd) || known_other(fd) {
            return;
        }
        // Only a pipe, a FIFO or a socket can be a shim object: anything else is cached as
        // the kernel's, as a look-up would.
        let Ok(st) = sys::fstat(fd) else { return };
        // An anonymous pipe the shim did not make is the kernel's for good: cached so, our
        // fork children need not look it up at their exit.
        let never_ours = |st: &libc::stat| r.is_some_and(|r| crate::base::inode::never_ours(r, st));
        if !matches!(st.st_mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFSOCK) || never_ours(&st) {
            if let Some(s) = slot(fd) {
                store(fd, s, KERNEL);
            }
            return;
        }
        match usize::try_from(fd) {
            Ok(i) if i < CACHED => census_mark(i, true),
            _ => whole = false,
        }
    });
    CENSUS.whole.store(whole, Ordering::Relaxed);
}

/// For an exec's IPCSHIM_REGION_FD: the census the new image starts with, the fds of ours
/// that survive it (not close-on-exec), or '-' when ours is not whole (a vfork child's) or
/// they are too many to pass.
pub fn census_for_exec(r: Option<&Region>, is_own_fd: impl Fn(i32) -> bool, put: &mut dyn FnMut(&[u8])) {
    const MAX: usize = 16;
    census_from_listing(r, is_own_fd);
    let mut list = [0u8; MAX * 11];
    let (mut len, mut n) = (0, 0);
    let whole = each_in_census(|fd| {
        let fl = sys::syscall6(libc::SYS_fcntl, fd as usize, libc::F_GETFD as usize, 0, 0, 0, 0);
        if !fl.is_ok_and(|f| f as i32 & libc::FD_CLOEXEC == 0) {
            return;
        }
        n += 1;
        if n <= MAX {
            if len > 0 {
                list[len] = b'.';
                len += 1;
            }
            let mut digits = [0u8; 10];
            let k = shared_state::pipe_gc::itoa(fd as u32, &mut digits);
            list[len..len + k].copy_from_slice(&digits[..k]);
            len += k;
        }
    });
    if whole && n <= MAX {
        put(&list[..len]);
    } else {
        put(b"-");
    }
}

/// One past the highest fd an entry was ever stored for: scans of the table stop there (also
/// raised by the rewritten sites' fd stub, `sud::stubs`).
pub(crate) static HIGHEST: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// One past the highest fd the table may know anything about.
pub fn highest() -> usize {
    HIGHEST.load(Ordering::Relaxed)
}

/// The shim pipe behind `fd`, if it is one. Fast path: one atomic load.
pub fn lookup(r: &Region, fd: i32) -> Option<PipeFd> {
    let s = slot(fd);
    match s.map(|s| s.load(Ordering::Acquire)) {
        Some(KERNEL | PLAIN | LISTENER | FRESH | FRESH_RECORDS | FRESH_TCP | FRESH_TCP_ASK) => None,
        Some(e) if e & (SYSCTL | EPOLL) != 0 => None,
        Some(e) if e & SHIM != 0 && shared_state::pipe::is_live(r, PipeFd::decode(fd, e).pipe) => {
            let p = PipeFd::decode(fd, e);
            // A socket handed back still has queued data to read first (crate::family::unix).
            if p.socket || !shared_state::pipe::handed_back(r, p.pipe) {
                return Some(p);
            }
            // The kernel serves this pipe now, for every process.
            if let Some(s) = s {
                store(fd, s, KERNEL);
            }
            None
        }
        // Unknown, or an object freed since (nobody could read it any more: the placeholder
        // now answers, EPIPE to a writer, as the kernel's pipe does): looked up afresh.
        _ => {
            let found = discover(r, fd, true);
            match (s, &found) {
                (Some(s), Ok(v)) => store(fd, s, v.map_or(KERNEL, |p| p.encode())),
                (None, Ok(Some(_))) => census_miss(fd),
                _ => {}
            }
            found.ok().flatten()
        }
    }
}

/// Whether the table knows `fd` as a kernel fd with nothing of the shim's behind it (what the
/// rewritten sites' `Fd` stub decides): its reads and writes are the kernel's alone.
pub fn is_kernel(fd: i32) -> bool {
    matches!(slot(fd).map(|s| s.load(Ordering::Acquire)), Some(KERNEL | PLAIN))
}

/// For a close: Some(true) if the table knows `fd` as a kernel fd, Some(false) if as anything
/// else (or it cannot say: a vfork child, fd 65536 and above), None if it has not seen it.
pub fn entry_known(fd: i32) -> Option<bool> {
    match slot(fd).map(|s| s.load(Ordering::Acquire)) {
        Some(UNKNOWN) => None,
        e => Some(matches!(e, Some(KERNEL | PLAIN))),
    }
}

/// The shim socket or pipe the table knows `fd` for, without looking at an fd it has not seen.
pub fn cached(r: &Region, fd: i32) -> Option<PipeFd> {
    let e = slot(fd)?.load(Ordering::Acquire);
    if e & SHIM == 0 || e & (SYSCTL | EPOLL) != 0 {
        return None;
    }
    Some(PipeFd::decode(fd, e)).filter(|p| shared_state::pipe::is_live(r, p.pipe))
}

/// The shim object behind `fd` if one exists, for a process about to lose its fds (exit,
/// exec): as [`lookup`], but an fd the table has not seen is neither cached nor given an object
/// (a FIFO nobody used through the shim has none, and needs none to be woken).
pub fn find(r: &Region, fd: i32) -> Option<PipeFd> {
    match slot(fd).map(|s| s.load(Ordering::Acquire)) {
        Some(UNKNOWN) | None => discover(r, fd, false).ok().flatten(),
        Some(_) => lookup(r, fd),
    }
}

/// Finds out what an fd we have not seen yet is (`create`: a FIFO's first user makes its
/// object). Err: not open (nothing to cache).
fn discover(r: &Region, fd: i32, create: bool) -> Result<Option<PipeFd>, Errno> {
    let st = sys::fstat(fd)?;
    if st.st_mode & libc::S_IFMT == libc::S_IFSOCK {
        return Ok(crate::base::inode::socket_object(r, &st).map(|pipe| socket_entry(r, fd, pipe)));
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return Ok(None);
    }
    let flags = getfl(fd)?;
    // An O_PATH fd names the FIFO without opening it: the kernel answers everything on it.
    if flags & libc::O_PATH != 0 {
        return Ok(None);
    }
    let Some((handle, fifo)) = crate::base::inode::object_for(r, st.st_dev, st.st_ino, fd, create) else {
        return Ok(None);
    };
    if shared_state::pipe::handed_back(r, handle) {
        return Ok(None);
    }
    let acc = flags & libc::O_ACCMODE;
    Ok(Some(PipeFd {
        fd,
        pipe: handle,
        read: acc == libc::O_RDONLY || acc == libc::O_RDWR,
        write: acc == libc::O_WRONLY || acc == libc::O_RDWR,
        packet: flags & libc::O_DIRECT != 0,
        fifo,
        socket: false,
        sole: Sole::NO,
    }))
}

/// Records a freshly created shim fd.
pub fn insert(p: &PipeFd) {
    match slot(p.fd) {
        Some(s) => store(p.fd, s, p.encode()),
        None => census_miss(p.fd),
    }
}

/// `fd` was closed (or is about to be reused): forget it. Returns what it was.
pub fn forget(fd: i32) -> Option<PipeFd> {
    let e = slot(fd)?.swap(UNKNOWN, Ordering::AcqRel);
    SOLE[fd as usize].store(0, Ordering::Relaxed);
    census_mark(fd as usize, false);
    EP_WATCHED[fd as usize / 64].fetch_and(!(1 << (fd % 64)), Ordering::Relaxed);
    forget_caches(fd as usize);
    (e & SHIM != 0).then(|| PipeFd::decode(fd, e))
}

/// `fd` is about to be closed: forgets it, and returns the shim object it names (with
/// whether the fd was its socket's only holder). An fd the table has not seen is looked up
/// (see [`find`]): it may be an object's last end.
pub fn take(r: &Region, fd: i32) -> Option<PipeFd> {
    let old = slot(fd).map(|s| {
        forget_caches(fd as usize);
        census_mark(fd as usize, false);
        s.swap(UNKNOWN, Ordering::AcqRel)
    });
    let p = match old {
        Some(UNKNOWN) | None => discover(r, fd, false).ok().flatten(),
        Some(e) => (e & SHIM != 0).then(|| PipeFd::decode(fd, e)),
    };
    if old.is_some() {
        SOLE[fd as usize].store(0, Ordering::Relaxed);
    }
    p
}

/// `new` now refers to what `old` refers to (dup family).
pub fn copy(r: &Region, old: i32, new: i32) {
    share(old);
    if let Some(v) = sysctl_of(old) {
        mark_sysctl(new, v);
        return;
    }
    if let Some(e) = slot(old).map(|s| s.load(Ordering::Acquire)).filter(|&e| e & EPOLL != 0 || e == PLAIN) {
        if let Some(s) = slot(new) {
            store(new, s, e);
        }
        return;
    }
    let what = lookup(r, old);
    if let Some(s) = slot(new) {
        let e = what.map_or(UNKNOWN, |p| PipeFd { fd: new, ..p }.encode());
        store(new, s, e);
    }
}

/// Records that kernel fd `fd` was added to an epoll set.
pub fn mark_ep_watched(fd: i32) {
    if slot(fd).is_some() {
        EP_WATCHED[fd as usize / 64].fetch_or(1 << (fd % 64), Ordering::Relaxed);
    }
}

/// Whether `fd` was added to an epoll set while a kernel fd (one atomic load).
pub fn ep_watched(fd: i32) -> bool {
    slot(fd).is_some() && EP_WATCHED[fd as usize / 64].load(Ordering::Relaxed) & 1 << (fd % 64) != 0
}

/// Every fd the table knows as an epoll fd.
pub fn each_epoll(mut f: impl FnMut(i32)) {
    if thread::in_vfork_child() {
        return;
    }
    for (i, s) in TABLE.iter().enumerate().take(highest()) {
        if s.load(Ordering::Acquire) & EPOLL != 0 {
            f(i as i32);
        }
    }
}

/// Whether the table knows `fd` is not a shim pipe or socket (a look-up would find nothing).
pub fn known_other(fd: i32) -> bool {
    slot(fd).map(|s| s.load(Ordering::Acquire)).is_some_and(|e| e != UNKNOWN && e & SHIM == 0)
}

/// The socket inodes of the LISTENER entries (read only while the entry is one), and their
/// places in the names table (`shared_state::unix::register`).
static SOCK_INO: [AtomicU32; CACHED] = [const { AtomicU32::new(0) }; CACHED];
static NAME_SLOT: [AtomicU32; CACHED] = [const { AtomicU32::new(0) }; CACHED];

/// A listening socket the shim announced: its inode, its name's slot, and whether this fd is
/// its only holder.
#[derive(Clone, Copy, Debug)]
pub struct Listening {
    pub ino: u32,
    pub name_slot: u32,
    pub sole: Sole,
}

/// Records that `fd` is a listening socket the shim announced (see [`Listening`]).
pub fn mark_listener(fd: i32, l: Listening) {
    match slot(fd) {
        Some(s) => {
            SOCK_INO[fd as usize].store(l.ino, Ordering::Relaxed);
            NAME_SLOT[fd as usize].store(l.name_slot, Ordering::Relaxed);
            store(fd, s, LISTENER);
            SOLE[fd as usize].store(l.sole.0, Ordering::Relaxed);
        }
        None => census_miss(fd),
    }
}

/// What the table knows of `fd` if it is a listening socket the shim announced.
pub fn listener(fd: i32) -> Option<Listening> {
    is_listener(fd).then(|| {
        let i = fd as usize;
        Listening {
            ino: SOCK_INO[i].load(Ordering::Relaxed),
            name_slot: NAME_SLOT[i].load(Ordering::Relaxed),
            sole: sole_mark(fd),
        }
    })
}

/// An AF_UNIX stream or seqpacket socket this image made and has not connected through the
/// shim: whether it holds records, and whether this fd is its only holder (then nobody else
/// can have set its SO_PASSCRED, which `setsockopt` here would have seen).
#[derive(Clone, Copy, Debug)]
pub struct Fresh {
    pub records: bool,
    pub sole: Sole,
}

/// Records that `fd` is a socket `socket` just made (see [`Fresh`]).
pub fn mark_fresh(fd: i32, f: Fresh) {
    if let Some(s) = slot(fd) {
        store(fd, s, if f.records { FRESH_RECORDS } else { FRESH });
        SOLE[fd as usize].store(f.sole.0, Ordering::Relaxed);
    }
}

/// What the table knows of `fd` if it is such a socket.
pub fn fresh(fd: i32) -> Option<Fresh> {
    let e = slot(fd)?.load(Ordering::Acquire);
    matches!(e, FRESH | FRESH_RECORDS).then(|| Fresh { records: e == FRESH_RECORDS, sole: sole_mark(fd) })
}

/// A TCP socket this image made and has not connected, listened or sent on through the shim
/// (none of which a call of another holder can do while this fd is its only holder): its
/// connect need not ask the kernel its protocol nor its state, nor, unless `ask_lowat`, its
/// SO_RCVLOWAT (the default 1, or `setsockopt` here would have seen it).
#[derive(Clone, Copy, Debug)]
pub struct FreshTcp {
    pub ask_lowat: bool,
    pub sole: Sole,
}

/// Records that `fd` is a TCP socket `socket` just made, held by `fd` alone since `sole`.
pub fn mark_fresh_tcp(fd: i32, sole: Sole) {
    if let Some(s) = slot(fd) {
        store(fd, s, FRESH_TCP);
        SOLE[fd as usize].store(sole.0, Ordering::Relaxed);
    }
}

/// What the table knows of `fd` if it is such a socket (see [`FreshTcp`]).
pub fn fresh_tcp(fd: i32) -> Option<FreshTcp> {
    let e = slot(fd)?.load(Ordering::Acquire);
    matches!(e, FRESH_TCP | FRESH_TCP_ASK)
        .then(|| FreshTcp { ask_lowat: e == FRESH_TCP_ASK, sole: sole_mark(fd) })
}

/// An option that changes receives was set on fresh TCP socket `fd`: its connect asks.
pub fn fresh_tcp_option(fd: i32) {
    if let Some(s) = slot(fd) {
        let _ = s.compare_exchange(FRESH_TCP, FRESH_TCP_ASK, Ordering::AcqRel, Ordering::Relaxed);
    }
}

/// A FRESH or LISTENER `fd` is a plain kernel fd from now on (connected by the kernel, say).
pub fn unfresh(fd: i32) {
    if let Some(s) = slot(fd)
        && matches!(s.load(Ordering::Acquire), FRESH | FRESH_RECORDS | FRESH_TCP | FRESH_TCP_ASK)
    {
        store(fd, s, KERNEL);
    }
}

/// Processes this one started (fork, vfork, clone without CLONE_FILES), counted before each
/// is made: an fd opened before the last of them may be held by a child too.
static FORKS: AtomicU32 = AtomicU32::new(0);

/// A process is about to be started with a copy of our fd table.
pub fn forking() {
    FORKS.fetch_add(1, Ordering::SeqCst);
}

/// See [`FORKS`].
pub fn forks() -> u32 {
    FORKS.load(Ordering::SeqCst)
}

/// This process's pid, asked once per process (a fork child, whose count of forks differs,
/// asks again).
pub fn own_pid() -> u32 {
    static PID: AtomicU64 = AtomicU64::new(0);
    if thread::in_vfork_child() {
        return sys::getpid() as u32;
    }
    let forks = forks();
    let v = PID.load(Ordering::Relaxed);
    if v != 0 && (v >> 32) as u32 == forks {
        return v as u32;
    }
    let pid = sys::getpid() as u32;
    PID.store((forks as u64) << 32 | pid as u64, Ordering::Relaxed);
    pid
}

/// Whether an fd is its socket's only holder: the count of processes started + 1 when the
/// socket was made here (0: maybe not). It stays so while no process is started (which
/// would inherit it), the fd is not duplicated nor passed in a message, and no call of ours
/// holds a descriptor of its own for it: then this fd's close is the socket's release, as
/// the kernel's last `fput`, with no need to ask the kernel (see `crate::family::unix::dropping`).
/// A thread of the program still inside a kernel call on the fd when another closes it, and
/// a process that takes it with `pidfd_getfd`, are not seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sole(u32);

impl Sole {
    pub const NO: Sole = Sole(0);

    /// Taken before the call that makes a socket: a process started meanwhile may hold it.
    pub fn before_create() -> Sole {
        Sole(forks().wrapping_add(1))
    }

    /// Whether it still holds: no process started since it was taken.
    pub fn holds(self) -> bool {
        self.0 != 0 && self.0 == forks().wrapping_add(1)
    }
}

/// Per fd: its [`Sole`] mark, and the calls of ours holding a descriptor of its own for it.
static SOLE: [AtomicU32; CACHED] = [const { AtomicU32::new(0) }; CACHED];
static HOLDS: [AtomicU32; CACHED] = [const { AtomicU32::new(0) }; CACHED];

fn sole_mark(fd: i32) -> Sole {
    match usize::try_from(fd).ok().filter(|_| !thread::in_vfork_child()).and_then(|i| SOLE.get(i)) {
        Some(m) => Sole(m.load(Ordering::Relaxed)).filter_holds(),
        None => Sole::NO,
    }
}

impl Sole {
    fn filter_holds(self) -> Sole {
        if self.holds() { self } else { Sole::NO }
    }
}

/// Marks the socket just put in `fd`'s entry as held by `fd` alone since `sole`.
pub fn set_sole(fd: i32, sole: Sole) {
    if slot(fd).is_some() {
        SOLE[fd as usize].store(sole.0, Ordering::Relaxed);
    }
}

/// `fd`'s file may have another holder from now on (a dup, a message carrying it, an
/// SO_PASSCRED set that a fresh socket's connect must ask about).
pub fn share(fd: i32) {
    if slot(fd).is_some() {
        SOLE[fd as usize].store(0, Ordering::Relaxed);
    }
}

/// No fd is known to be its file's only holder any more (counted as a process started).
pub fn share_all() {
    forking();
}

/// A call of ours takes (`true`) or lets go of a descriptor of its own for `fd`'s file.
pub fn hold(fd: i32, taking: bool) {
    if let Some(h) = slot(fd).and_then(|_| HOLDS.get(fd as usize)) {
        if taking {
            h.fetch_add(1, Ordering::SeqCst);
        } else {
            h.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// After the kernel closed `fd`, which was its socket's only holder when `sole` was read:
/// whether that close released the socket (no process was started and no call of ours took
/// a descriptor for it in between).
pub fn released_by_close(fd: i32, sole: Sole) -> bool {
    // The close before the looks at the holds, which takers count before they duplicate.
    sys::full_fence();
    sole.holds()
        && usize::try_from(fd).ok().and_then(|i| HOLDS.get(i)).is_some_and(|h| h.load(Ordering::SeqCst) == 0)
}

/// Whether `fd` is a listening socket the shim announced (one atomic load).
pub fn is_listener(fd: i32) -> bool {
    slot(fd).is_some_and(|s| s.load(Ordering::Acquire) == LISTENER)
}

/// Records that `fd` is a freshly opened sysctl view (index `view`) that may be written.
pub fn mark_sysctl(fd: i32, view: usize) {
    if let Some(s) = slot(fd) {
        store(fd, s, SYSCTL | view as u64);
    }
}

/// The sysctl view open for writing at `fd`, if it is one. One atomic load.
pub fn sysctl_of(fd: i32) -> Option<usize> {
    let e = slot(fd)?.load(Ordering::Acquire);
    (e & SYSCTL != 0).then_some((e & !SYSCTL) as usize)
}

/// What the table knows of an fd as an epoll fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpollFd {
    /// An epoll fd with this shim object (`EpHandle::to_bits`).
    Obj(u64),
    /// An epoll fd that had no object when the namespace's creation count was this (first),
    /// made by this process when it had started the second's processes less one (0: made
    /// elsewhere, or not known).
    NoObj(u32, u32),
    /// Not an epoll fd (nor a shim pipe).
    NotEpoll,
    /// Not looked at yet.
    Unknown,
}

pub fn epoll_of(fd: i32) -> EpollFd {
    let Some(e) = slot(fd).map(|s| s.load(Ordering::Acquire)) else { return EpollFd::Unknown };
    match e {
        PLAIN | FRESH | FRESH_RECORDS | FRESH_TCP | FRESH_TCP_ASK => EpollFd::NotEpoll,
        e if e & EPOLL != 0 && e & EPOLL_OBJ != 0 => EpollFd::Obj(e & HANDLE_MASK),
        e if e & EPOLL != 0 => EpollFd::NoObj(e as u32, (e >> 32) as u32 & 0xffff),
        e if e & (SHIM | SYSCTL) != 0 => EpollFd::NotEpoll,
        _ => EpollFd::Unknown,
    }
}

/// Records what `fd` is as an epoll fd. NotEpoll is only recorded over a plain kernel entry.
pub fn set_epoll(fd: i32, what: EpollFd) {
    let Some(s) = slot(fd) else {
        if matches!(what, EpollFd::Obj(_)) {
            census_miss(fd);
        }
        return;
    };
    match what {
        EpollFd::Obj(bits) => store(fd, s, EPOLL | EPOLL_OBJ | bits & HANDLE_MASK),
        EpollFd::NoObj(created, made) => store(fd, s, EPOLL | (made as u64 & 0xffff) << 32 | created as u64),
        EpollFd::NotEpoll => {
            let _ = s.compare_exchange(KERNEL, PLAIN, Ordering::AcqRel, Ordering::Relaxed);
        }
        EpollFd::Unknown => {}
    }
}

/// The region's descriptors moved to inheritable numbers at the top of what programs number
/// (the originals are close-on-exec and low): the last two below the soft limit, or below 4096
/// if that is higher (the kernel sizes a process's fd table, and copies it at fork, up to its
/// highest open fd: 32 KiB there, 8 MiB below a limit of 2^20). A program numbers its own fds
/// as on the kernel until it fills its table to there.
pub(crate) fn keep_high(files: RegionFiles) -> RegionFiles {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    let soft =
        sys::syscall6(libc::SYS_getrlimit, libc::RLIMIT_NOFILE as usize, &raw mut lim as usize, 0, 0, 0, 0)
            .map_or(1024, |_| lim.rlim_cur.min(4096) as usize);
    let base = soft.saturating_sub(2).max(3);
    let high = |fd: i32| match dupfd(fd, base) {
        Ok(h) => {
            sys::close(fd);
            h
        }
        // No room up there: the descriptor stays, made inheritable.
        Err(_) => {
            let _ = sys::syscall6(libc::SYS_fcntl, fd as usize, libc::F_SETFD as usize, 0, 0, 0, 0);
            fd
        }
    };
    RegionFiles { rw: high(files.rw), ro: high(files.ro) }
}

/// `fcntl(fd, F_DUPFD, from)`: an inheritable copy at the lowest free number from `from` up.
pub(crate) fn dupfd(fd: i32, from: usize) -> Result<i32, Errno> {
    sys::syscall6(libc::SYS_fcntl, fd as usize, libc::F_DUPFD as usize, from, 0, 0, 0).map(|n| n as i32)
}

/// The shim fd entry of socket `fd` with queue `pipe` (a seqpacket socket's is in packet mode).
pub fn socket_entry(r: &Region, fd: i32, pipe: PipeHandle) -> PipeFd {
    let packet = shared_state::pipe::sock_records(r, pipe);
    PipeFd { fd, pipe, read: true, write: true, packet, fifo: false, socket: true, sole: Sole::NO }
}

/// The open file's status flags (F_GETFL) of `fd`.
pub fn getfl(fd: i32) -> Result<i32, Errno> {
    sys::syscall6(libc::SYS_fcntl, fd as usize, libc::F_GETFL as usize, 0, 0, 0, 0).map(|fl| fl as i32)
}

/// When (CLOCK_MONOTONIC ms, wrapping) each entry of the two tables above was last stored.
pub(crate) static VERIFIED_MS: [AtomicU32; CACHED] = [const { AtomicU32::new(0) }; CACHED];
pub(crate) static VERIFIED_SEND_MS: [AtomicU32; CACHED] = [const { AtomicU32::new(0) }; CACHED];

/// Per fd: the object's liveness generations (inverted, 0 for none) at which the kernel last
/// found the placeholder without events, and when (CLOCK_MONOTONIC ms, wrapping). A poll of
/// shim fds alone skips asking the kernel again for `poll::QUIET_MS` while they hold: what only the
/// placeholder tells (a peer killed without a close the shim saw, data of a sender without
/// the shim) then shows that much later, as it does to a poller between its sleep slices.
/// A close through the shim moves the generations, and any placeholder found hung up by
/// someone who took it for alive moves them all (`poll::note_quiet`, `pipes::Env::peer_gone`).
pub(crate) static QUIET: [AtomicU64; CACHED] = [const { AtomicU64::new(0) }; CACHED];
pub(crate) static QUIET_AT: [AtomicU32; CACHED] = [const { AtomicU32::new(0) }; CACHED];

/// `fd` names another object now (or none).
pub fn forget_quiet(fd: usize) {
    // Stored only when set: a fork child shares the table's pages until it writes them.
    if let Some(q) = QUIET.get(fd).filter(|q| q.load(Ordering::Relaxed) != 0) {
        q.store(0, Ordering::Relaxed);
    }
}

/// The region's descriptors in this process (read-write, read-only); -1 when there are none.
/// Kept by `crate::base::region`; the close stub of rewritten call sites reads them too
/// (`sud::stubs`): a close of one always reaches `region::keep_fds`.
pub(crate) static REGION_FDS: [AtomicI32; 2] = [AtomicI32::new(-1), AtomicI32::new(-1)];

/// Caches a family keeps per fd, forgotten with the entry (see [`forget_caches`]).
/// Per fd: the (closes, exits) generations at which the other side was last seen alive (a
/// socket's receiving side; its sending side has the second table), inverted so that 0 (a
/// page never written) means not known.
pub(crate) static VERIFIED: [AtomicU64; CACHED] = [const { AtomicU64::new(0) }; CACHED];

pub(crate) static VERIFIED_SEND: [AtomicU64; CACHED] = [const { AtomicU64::new(0) }; CACHED];

/// Forgets what was cached about `fd`: it now names another object (or none).
pub fn forget_caches(fd: usize) {
    forget_quiet(fd);
    if let (Some(v), Some(w), Some(n)) = (VERIFIED.get(fd), VERIFIED_SEND.get(fd), NB_GENS.get(fd)) {
        // Stored only when set: a store to a page a fork child shares copies it (or gives a
        // page of the table memory).
        for c in [v, w, n] {
            if c.load(Ordering::Relaxed) != 0 {
                c.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// Per fd: O_NONBLOCK, and the generations at which it was read (inverted, as `VERIFIED`).
pub(crate) static NB_GENS: [AtomicU64; CACHED] = [const { AtomicU64::new(0) }; CACHED];

pub(crate) static NB_FLAG: [AtomicBool; CACHED] = [const { AtomicBool::new(false) }; CACHED];

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
    for (p, own) in fds[PROBED..].iter_mut().zip(&REGION_FDS) {
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

/// The kernel's poll events of `fd` (0 when it cannot say).
pub fn revents(fd: i32, events: i16) -> i16 {
    let mut pfd = libc::pollfd { fd, events, revents: 0 };
    match sys::syscall6(libc::SYS_poll, &mut pfd as *mut libc::pollfd as usize, 1, 0, 0, 0, 0) {
        Ok(1) => pfd.revents,
        _ => 0,
    }
}
