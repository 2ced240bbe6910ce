//! `IPCSHIM_TRACE=FILE`: one line per call the shim served, in the format of `strace -f -T`
//! (`TID call(args) = result <seconds>`), so that a trace reads, and compares, like strace's.
//!
//! Off, it costs one load of `ON` per served call. On, each line is formatted in a stack buffer
//! and appended with one write to the file, opened and closed around it: the program never sees
//! a descriptor of ours (no fd number taken, none for it to close), and lines of processes
//! sharing the file never interleave. Each image reads IPCSHIM_TRACE itself, so exec'd programs
//! trace too.

use crate::base::scratch;
use crate::base::thread;
use core::sync::atomic::{AtomicBool, Ordering};
use shared_state::sys;
use std::sync::OnceLock;

static ON: AtomicBool = AtomicBool::new(false);
/// The trace file's absolute path, NUL-terminated (set once, before any call is served).
static PATH: OnceLock<Vec<u8>> = OnceLock::new();

/// Reads IPCSHIM_TRACE (at start-up) and creates the file if need be.
pub fn init() {
    let Some(path) = std::env::var_os("IPCSHIM_TRACE").filter(|p| !p.is_empty()) else { return };
    // A relative name must not follow the program's chdir.
    let Ok(abs) = std::path::absolute(&path) else { return };
    let mut c = std::os::unix::ffi::OsStrExt::as_bytes(abs.as_os_str()).to_vec();
    c.push(0);
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC;
    match sys::open(&c, flags, 0o644) {
        Ok(fd) => sys::close(fd),
        Err(_) => {
            let _ = sys::write(2, b"ipcshim: cannot open the IPCSHIM_TRACE file; not tracing\n");
            return;
        }
    }
    if PATH.set(c).is_ok() {
        ON.store(true, Ordering::Relaxed);
    }
}

/// Whether calls are traced.
#[inline]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The monotonic clock, in ns, when tracing (0 otherwise): a served call's start.
#[inline]
pub fn start() -> i64 {
    if on() { sys::monotonic_ns() } else { 0 }
}

/// Appends one finished line, `buf[1..len]` (see [`Line::new`]), with one write and no lock: a
/// lock that every traced call takes starved a process among threads looping on calls (its
/// `read` waited seconds for them). A write is cut between two pages of the file when its
/// writer is SIGKILLed, which leaves a half line without its newline; a line that finds the file
/// ending so starts with a newline of its own (`buf[0]`), so that it does not continue the half
/// line (a SIGKILLed looper's once swallowed the next line of its parent).
fn emit(buf: &[u8], len: usize) {
    let Some(path) = PATH.get() else { return };
    let fd = match sys::open(path, libc::O_RDWR | libc::O_APPEND | libc::O_CLOEXEC, 0) {
        Ok(fd) => fd,
        // Not readable (stderr as a write-only file): no look at its end.
        Err(_) => match sys::open(path, libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC, 0) {
            Ok(fd) => fd,
            Err(_) => return,
        },
    };
    let mut last = [b'\n'];
    if let Ok(st) = sys::fstat(fd)
        && st.st_mode & libc::S_IFMT == libc::S_IFREG
        && st.st_size > 0
    {
        let _ = sys::pread(fd, &mut last, st.st_size as u64 - 1);
    }
    let from = if last[0] == b'\n' { 1 } else { 0 };
    let _ = sys::write(fd, &buf[from..len]);
    sys::close(fd);
}

/// What fd N is, as strace -y shows it (`pipe:[123]`, a FIFO's path), read before the call.
pub struct FdPath {
    buf: [u8; 128],
    len: usize,
}

pub const NO_PATH: FdPath = FdPath { buf: [0; 128], len: 0 };

impl FdPath {
    /// Whether it names a socket (`socket:[123]`).
    pub fn is_socket(&self) -> bool {
        self.buf[..self.len].starts_with(b"socket:[")
    }

    /// Names a socket as strace -yy does: its kind, and for a TCP or UDP socket with an
    /// address its ends (`UNIX-STREAM:[123]`, `TCP:[127.0.0.1:80->127.0.0.1:5000]`), so that
    /// `ipcshim diff` tells which calls to compare. `local` and `peer` are socket addresses
    /// (getsockname, getpeername); an AF_UNIX socket's ends are not shown.
    pub fn name_socket(&mut self, kind: &str, local: Option<&[u8]>, peer: Option<&[u8]>) {
        if !self.is_socket() {
            return;
        }
        let Ok(mut l) = Line::new() else { return };
        l.s(kind).s(":[");
        match local.filter(|sa| sa.len() >= 4 && sa[2..4] != [0, 0]) {
            Some(sa) => {
                endpoint(&mut l, sa);
                if let Some(p) = peer {
                    l.s("->");
                    endpoint(&mut l, p);
                }
            }
            // "socket:[123]": the inode.
            None => {
                l.bytes(&self.buf["socket:[".len()..self.len - 1]);
            }
        }
        l.s("]");
        let text = &l.buf[1..l.len];
        if text.len() <= self.buf.len() {
            self.buf[..text.len()].copy_from_slice(text);
            self.len = text.len();
        }
    }
}

/// An AF_INET or AF_INET6 address as strace -yy shows a socket's end: `127.0.0.1:80`,
/// `[::1]:80`.
fn endpoint(l: &mut Line<'_>, sa: &[u8]) {
    let port = u16::from_be_bytes([sa[2], sa[3]]) as u64;
    match u16::from_ne_bytes([sa[0], sa[1]]) as i32 {
        libc::AF_INET if sa.len() >= 8 => {
            ipv4(l, &sa[4..8]);
            l.s(":").unum(port);
        }
        libc::AF_INET6 if sa.len() >= 24 => {
            l.s("[");
            ipv6(l, &sa[8..24]);
            l.s("]:").unum(port);
        }
        _ => {
            l.s("?");
        }
    }
}

pub fn fd_path(fd: i32) -> FdPath {
    let mut path = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0";
    let mut digits = [0u8; 10];
    let n = shared_state::pipe_gc::itoa(fd as u32, &mut digits);
    path[14..14 + n].copy_from_slice(&digits[..n]);
    let mut p = NO_PATH;
    if fd >= 0 {
        p.len = sys::readlinkat(libc::AT_FDCWD, &path[..14 + n + 1], &mut p.buf).unwrap_or(0);
    }
    p
}

/// The longest line: what is longer is cut (32 poll entries with their fds' names fit).
const LINE_MAX: usize = 4096;
/// How many elements of an array strace shows before `...` (its default `-s 32`).
const STRACE_MAX_ELEMS: usize = 32;

/// A line under construction, in scratch memory (no allocation, and little stack: this runs
/// on hot paths and in signal handlers).
struct Line<'p> {
    buf: scratch::Slice<u8>,
    len: usize,
    /// Shown after the first fd printed, once.
    path: &'p FdPath,
}

impl Line<'_> {
    /// An empty line, after the newline that [`emit`] may put before it.
    fn new() -> Result<Line<'static>, libc::c_int> {
        let mut buf = scratch::take(LINE_MAX + 1, 0)?;
        buf[0] = b'\n';
        Ok(Line { buf, len: 1, path: &NO_PATH })
    }

    fn s(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let n = b.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        self
    }

    fn num(&mut self, v: i64) -> &mut Self {
        if v < 0 {
            self.s("-");
        }
        self.unum(v.unsigned_abs())
    }

    fn unum(&mut self, mut v: u64) -> &mut Self {
        let mut d = [0u8; 20];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.bytes(&d[i..])
    }

    fn hex(&mut self, mut v: u64) -> &mut Self {
        let mut d = [0u8; 16];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b"0123456789abcdef"[(v & 15) as usize];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        self.s("0x").bytes(&d[i..])
    }

    fn ptr(&mut self, v: u64) -> &mut Self {
        if v == 0 { self.s("NULL") } else { self.hex(v) }
    }

    fn octal(&mut self, v: u32) -> &mut Self {
        self.s("0");
        for shift in [6, 3, 0] {
            let digit = (v >> shift) & 7;
            if shift != 6 || digit != 0 {
                self.bytes(&[b'0' + digit as u8]);
            }
        }
        self
    }

    /// `names` as strace joins set bits with `|`; leftover bits in hex; `zero` for none.
    fn flags(&mut self, v: u64, names: &[(u64, &str)], zero: &str) -> &mut Self {
        let mut left = v;
        let mut first = true;
        for &(bit, name) in names {
            if bit != 0 && left & bit == bit {
                if !first {
                    self.s("|");
                }
                self.s(name);
                first = false;
                left &= !bit;
            }
        }
        if left != 0 || first {
            if !first {
                self.s("|");
            }
            if left == 0 {
                self.s(zero)
            } else {
                self.hex(left)
            };
        }
        self
    }

    /// A caller's buffer as strace quotes it: at most 32 bytes, then `...`.
    fn data(&mut self, addr: u64, len: usize) -> &mut Self {
        let mut b = [0u8; 32];
        let n = len.min(b.len());
        if !peek(&mut b[..n], addr) {
            return self.hex(addr);
        }
        self.s("\"");
        for (i, &c) in b[..n].iter().enumerate() {
            match c {
                b'"' => self.s("\\\""),
                b'\\' => self.s("\\\\"),
                b'\n' => self.s("\\n"),
                b'\t' => self.s("\\t"),
                b'\r' => self.s("\\r"),
                b'\x0b' => self.s("\\v"),
                b'\x0c' => self.s("\\f"),
                0x20..=0x7e => self.bytes(&[c]),
                _ => {
                    // Octal, as short as the next character allows.
                    let next_digit = b.get(i + 1).is_some_and(|d| d.is_ascii_digit()) && i + 1 < n;
                    self.s("\\");
                    if next_digit || c >= 0o100 {
                        self.bytes(&[b'0' + (c >> 6), b'0' + ((c >> 3) & 7), b'0' + (c & 7)])
                    } else if c >= 0o10 {
                        self.bytes(&[b'0' + (c >> 3), b'0' + (c & 7)])
                    } else {
                        self.bytes(&[b'0' + c])
                    }
                }
            };
        }
        self.s("\"");
        if len > n {
            self.s("...");
        }
        self
    }

    fn fd(&mut self, fd: u64) -> &mut Self {
        self.num(fd as i32 as i64);
        if self.path.len > 0 {
            let path = self.path;
            self.path = &NO_PATH;
            self.s("<").bytes(&path.buf[..path.len]).s(">");
        }
        self
    }
}

/// Reads the caller's memory without risking a crash.
fn peek<T>(dst: &mut [T], addr: u64) -> bool {
    if thread::fault_fixups_active() {
        crate::base::copy::slice_in(dst, addr as usize).is_ok()
    } else {
        sys::copy_from_user(dst.as_mut_ptr() as *mut u8, addr as usize, size_of_val(dst)).is_ok()
    }
}

const SEMGET_FLAGS: &[(u64, &str)] = &[(0o1000, "IPC_CREAT"), (0o2000, "IPC_EXCL"), (0o4000, "IPC_NOWAIT")];
const SHMGET_FLAGS: &[(u64, &str)] =
    &[(0o1000, "IPC_CREAT"), (0o2000, "IPC_EXCL"), (0o4000, "SHM_HUGETLB"), (0o10000, "SHM_NORESERVE")];
const O_FLAGS: &[(u64, &str)] = &[
    (libc::O_WRONLY as u64, "O_WRONLY"),
    (libc::O_RDWR as u64, "O_RDWR"),
    (libc::O_NONBLOCK as u64, "O_NONBLOCK"),
    (libc::O_DIRECT as u64, "O_DIRECT"),
    (libc::O_CLOEXEC as u64, "O_CLOEXEC"),
    (libc::O_APPEND as u64, "O_APPEND"),
];

const SEND_RECV_FLAGS: &[(u64, &str)] = &[
    (libc::MSG_OOB as u64, "MSG_OOB"),
    (libc::MSG_PEEK as u64, "MSG_PEEK"),
    (libc::MSG_DONTROUTE as u64, "MSG_DONTROUTE"),
    (libc::MSG_CTRUNC as u64, "MSG_CTRUNC"),
    (libc::MSG_TRUNC as u64, "MSG_TRUNC"),
    (libc::MSG_DONTWAIT as u64, "MSG_DONTWAIT"),
    (libc::MSG_EOR as u64, "MSG_EOR"),
    (libc::MSG_WAITALL as u64, "MSG_WAITALL"),
    (libc::MSG_CONFIRM as u64, "MSG_CONFIRM"),
    (libc::MSG_ERRQUEUE as u64, "MSG_ERRQUEUE"),
    (libc::MSG_NOSIGNAL as u64, "MSG_NOSIGNAL"),
    (libc::MSG_MORE as u64, "MSG_MORE"),
    (libc::MSG_WAITFORONE as u64, "MSG_WAITFORONE"),
    (libc::MSG_CMSG_CLOEXEC as u64, "MSG_CMSG_CLOEXEC"),
];

/// A socket's type is a value in the low bits, not a flag (SOCK_SEQPACKET is 5).
const SOCK_TYPES: &[(u64, &str)] = &[
    (libc::SOCK_STREAM as u64, "SOCK_STREAM"),
    (libc::SOCK_DGRAM as u64, "SOCK_DGRAM"),
    (libc::SOCK_RAW as u64, "SOCK_RAW"),
    (libc::SOCK_RDM as u64, "SOCK_RDM"),
    (libc::SOCK_SEQPACKET as u64, "SOCK_SEQPACKET"),
];

/// In strace's order.
const SOCK_FLAGS: &[(u64, &str)] =
    &[(libc::SOCK_CLOEXEC as u64, "SOCK_CLOEXEC"), (libc::SOCK_NONBLOCK as u64, "SOCK_NONBLOCK")];

const MSG_FLAGS: &[(u64, &str)] =
    &[(0o10000, "MSG_NOERROR"), (0o20000, "MSG_EXCEPT"), (0o40000, "MSG_COPY"), (0o4000, "IPC_NOWAIT")];

fn msg_cmd(cmd: i64) -> Option<&'static str> {
    Some(match cmd & !0x100 {
        0 => "IPC_RMID",
        1 => "IPC_SET",
        2 => "IPC_STAT",
        3 => "IPC_INFO",
        11 => "MSG_STAT",
        12 => "MSG_INFO",
        13 => "MSG_STAT_ANY",
        _ => return None,
    })
}

fn ipc_cmd(cmd: i64) -> Option<&'static str> {
    Some(match cmd & !0x100 {
        0 => "IPC_RMID",
        1 => "IPC_SET",
        2 => "IPC_STAT",
        3 => "IPC_INFO",
        11 => "GETPID",
        12 => "GETVAL",
        13 => "GETALL",
        14 => "GETNCNT",
        15 => "GETZCNT",
        16 => "SETVAL",
        17 => "SETALL",
        18 => "SEM_STAT",
        19 => "SEM_INFO",
        20 => "SEM_STAT_ANY",
        _ => return None,
    })
}

fn shm_cmd(cmd: i64) -> Option<&'static str> {
    Some(match cmd & !0x100 {
        0 => "IPC_RMID",
        1 => "IPC_SET",
        2 => "IPC_STAT",
        3 => "IPC_INFO",
        11 => "SHM_LOCK",
        12 => "SHM_UNLOCK",
        13 => "SHM_STAT",
        14 => "SHM_INFO",
        15 => "SHM_STAT_ANY",
        _ => return None,
    })
}

fn fcntl_cmd(cmd: i64) -> Option<&'static str> {
    Some(match cmd as i32 {
        libc::F_DUPFD => "F_DUPFD",
        libc::F_GETFD => "F_GETFD",
        libc::F_SETFD => "F_SETFD",
        libc::F_GETFL => "F_GETFL",
        libc::F_SETFL => "F_SETFL",
        libc::F_DUPFD_CLOEXEC => "F_DUPFD_CLOEXEC",
        libc::F_SETPIPE_SZ => "F_SETPIPE_SZ",
        libc::F_GETPIPE_SZ => "F_GETPIPE_SZ",
        _ => return None,
    })
}

const POLL_FLAGS: &[(u64, &str)] = &[
    (libc::POLLIN as u64, "POLLIN"),
    (libc::POLLPRI as u64, "POLLPRI"),
    (libc::POLLOUT as u64, "POLLOUT"),
    (libc::POLLERR as u64, "POLLERR"),
    (libc::POLLHUP as u64, "POLLHUP"),
    (libc::POLLNVAL as u64, "POLLNVAL"),
    (libc::POLLRDNORM as u64, "POLLRDNORM"),
    (libc::POLLRDBAND as u64, "POLLRDBAND"),
    (libc::POLLWRNORM as u64, "POLLWRNORM"),
    (libc::POLLWRBAND as u64, "POLLWRBAND"),
    (0x400, "POLLMSG"),
    (0x1000, "POLLREMOVE"),
    (libc::POLLRDHUP as u64, "POLLRDHUP"),
];

/// The call's name, as strace prints it.
fn name(nr: i64) -> Option<&'static str> {
    Some(match nr {
        libc::SYS_read => "read",
        libc::SYS_write => "write",
        libc::SYS_readv => "readv",
        libc::SYS_writev => "writev",
        libc::SYS_preadv2 => "preadv2",
        libc::SYS_pwritev2 => "pwritev2",
        libc::SYS_vmsplice => "vmsplice",
        libc::SYS_pipe => "pipe",
        libc::SYS_pipe2 => "pipe2",
        libc::SYS_close => "close",
        libc::SYS_close_range => "close_range",
        libc::SYS_dup => "dup",
        libc::SYS_dup2 => "dup2",
        libc::SYS_dup3 => "dup3",
        libc::SYS_fcntl => "fcntl",
        libc::SYS_ioctl => "ioctl",
        libc::SYS_poll => "poll",
        libc::SYS_ppoll => "ppoll",
        libc::SYS_select => "select",
        libc::SYS_pselect6 => "pselect6",
        libc::SYS_semget => "semget",
        libc::SYS_semop => "semop",
        libc::SYS_semtimedop => "semtimedop",
        libc::SYS_semctl => "semctl",
        libc::SYS_shmget => "shmget",
        libc::SYS_shmat => "shmat",
        libc::SYS_shmdt => "shmdt",
        libc::SYS_shmctl => "shmctl",
        libc::SYS_msgget => "msgget",
        libc::SYS_msgsnd => "msgsnd",
        libc::SYS_msgrcv => "msgrcv",
        libc::SYS_msgctl => "msgctl",
        libc::SYS_socketpair => "socketpair",
        libc::SYS_listen => "listen",
        libc::SYS_connect => "connect",
        libc::SYS_accept => "accept",
        libc::SYS_accept4 => "accept4",
        libc::SYS_sendto => "sendto",
        libc::SYS_recvfrom => "recvfrom",
        libc::SYS_sendmsg => "sendmsg",
        libc::SYS_recvmsg => "recvmsg",
        libc::SYS_sendmmsg => "sendmmsg",
        libc::SYS_recvmmsg => "recvmmsg",
        libc::SYS_shutdown => "shutdown",
        libc::SYS_getsockopt => "getsockopt",
        libc::SYS_setsockopt => "setsockopt",
        _ => return None,
    })
}

unsafe extern "C" {
    /// glibc 2.32+: "EAGAIN" and "Resource temporarily unavailable", untranslated and static.
    fn strerrorname_np(e: libc::c_int) -> *const libc::c_char;
    fn strerrordesc_np(e: libc::c_int) -> *const libc::c_char;
}

/// Logs a served call: `a` its arguments, `res` its kernel-style result (-errno on failure),
/// `t0` from [`start`].
pub fn served(nr: i64, a: &[u64; 6], res: i64, t0: i64, path: &FdPath) {
    let Some(call) = name(nr).filter(|_| on()) else { return };
    let dur = sys::monotonic_ns() - t0;
    // The process, not the thread: `ipcshim diff` compares processes.
    let pid = outer_pid();
    let Ok(mut l) = Line::new() else { return };
    l.unum(pid as u64).s(" ").s(call).s("(");
    l.path = path;
    args(&mut l, nr, a, res);
    l.s(") = ");
    if res < 0 && res > -4096 {
        let e = -res as i32;
        l.s("-1 ");
        // SAFETY: glibc returns a static string (or NULL) for any value, without allocating.
        let (ename, desc) = unsafe { (strerrorname_np(e), strerrordesc_np(e)) };
        if ename.is_null() {
            l.num(e as i64);
        } else {
            // SAFETY: non-null, NUL-terminated static string.
            l.bytes(unsafe { core::ffi::CStr::from_ptr(ename) }.to_bytes());
        }
        if !desc.is_null() {
            // SAFETY: as above.
            l.s(" (").bytes(unsafe { core::ffi::CStr::from_ptr(desc) }.to_bytes()).s(")");
        }
    } else if nr == libc::SYS_shmat || (nr == libc::SYS_fcntl && a[1] as i32 == libc::F_GETFL) {
        l.hex(res as u64);
    } else {
        l.num(res);
    }
    results(&mut l, nr, a, res);
    l.s(" <").unum(dur as u64 / 1_000_000_000).s(".");
    let us = (dur as u64 / 1000) % 1_000_000;
    let mut digits = [b'0'; 6];
    let mut v = us;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    l.bytes(&digits).s(">\n");
    emit(&l.buf, l.len);
}

/// This process's pid as the traced program's first process sees it (strace's view): in a PID
/// namespace of its own, getpid says 1 where its parent logged another number for it. Read from
/// /proc/self/status's NSpid once per process (a vfork child, which shares our memory, and a
/// fork child have another getpid, so they read it again).
pub fn outer_pid() -> i32 {
    use core::sync::atomic::AtomicU64;
    static CACHE: AtomicU64 = AtomicU64::new(0);
    let own = sys::getpid();
    let cached = CACHE.load(Ordering::Relaxed);
    if cached != 0 && cached as u32 as i32 == own {
        return (cached >> 32) as i32;
    }
    let mut buf = [0u8; 1024];
    let n = match sys::open(b"/proc/self/status\0", libc::O_RDONLY | libc::O_CLOEXEC, 0) {
        Ok(fd) => {
            let n = sys::read(fd, &mut buf).unwrap_or(0);
            sys::close(fd);
            n
        }
        Err(_) => 0,
    };
    // "NSpid:\t<outermost>\t…\t<own>": the first is /proc's namespace's, the program's.
    let outer = buf[..n]
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"NSpid:"))
        .and_then(|rest| {
            let digits = rest.iter().skip_while(|b| !b.is_ascii_digit()).take_while(|b| b.is_ascii_digit());
            digits.fold(None, |v: Option<i32>, d| Some(v.unwrap_or(0) * 10 + (d - b'0') as i32))
        })
        .unwrap_or(own);
    CACHE.store((outer as u32 as u64) << 32 | own as u32 as u64, Ordering::Relaxed);
    outer
}

/// Logs that process `parent` made process `child` by `call` (`fork()`, `vfork()`), as strace
/// -f shows a clone, so that `ipcshim diff` can pair processes by their place in the process
/// tree rather than by pid. Threads are not logged.
pub fn created(parent: i32, call: &str, child: i32) {
    if !on() {
        return;
    }
    let Ok(mut l) = Line::new() else { return };
    l.unum(parent as u64).s(" ").s(call);
    l.s(" = ").num(child as i64).s(" <0.000000>\n");
    emit(&l.buf, l.len);
}

fn args(l: &mut Line<'_>, nr: i64, a: &[u64; 6], res: i64) {
    match nr {
        libc::SYS_read => {
            l.fd(a[0]).s(", ");
            if res >= 0 {
                l.data(a[1], res as usize)
            } else {
                l.hex(a[1])
            };
            l.s(", ").unum(a[2]);
        }
        libc::SYS_write => {
            l.fd(a[0]).s(", ").data(a[1], a[2] as usize).s(", ").unum(a[2]);
        }
        libc::SYS_readv | libc::SYS_writev | libc::SYS_preadv2 | libc::SYS_pwritev2 | libc::SYS_vmsplice => {
            l.fd(a[0]).s(", ");
            let reading = matches!(nr, libc::SYS_readv | libc::SYS_preadv2);
            iovecs(l, a[1], a[2], if reading { res.max(0) as usize } else { usize::MAX });
            l.s(", ").unum(a[2]);
            match nr {
                libc::SYS_preadv2 | libc::SYS_pwritev2 => {
                    l.s(", ").num(a[3] as i64).s(", ").hex(a[5]);
                }
                libc::SYS_vmsplice => {
                    l.s(", ").hex(a[3]);
                }
                _ => {}
            }
        }
        libc::SYS_pipe | libc::SYS_pipe2 => {
            let mut fds = [0i32; 2];
            if res == 0 && peek(&mut fds, a[0]) {
                l.s("[").num(fds[0] as i64).s(", ").num(fds[1] as i64).s("]");
            } else {
                l.ptr(a[0]);
            }
            if nr == libc::SYS_pipe2 {
                l.s(", ").flags(a[1], O_FLAGS, "0");
            }
        }
        libc::SYS_close | libc::SYS_dup => {
            l.fd(a[0]);
        }
        libc::SYS_socketpair => {
            l.s(if a[0] as i32 == libc::AF_UNIX { "AF_UNIX" } else { "?" }).s(", ");
            let ty = a[1] & 0xf;
            match SOCK_TYPES.iter().find(|t| t.0 == ty) {
                Some(t) => l.s(t.1),
                None => l.num(ty as i64),
            };
            if a[1] & !0xf != 0 {
                l.s("|").flags(a[1] & !0xf, SOCK_FLAGS, "0");
            }
            l.s(", ").num(a[2] as i64).s(", ");
            let mut fds = [0i32; 2];
            if res == 0 && peek(&mut fds, a[3]) {
                l.s("[").num(fds[0] as i64).s(", ").num(fds[1] as i64).s("]");
            } else {
                l.ptr(a[3]);
            }
        }
        libc::SYS_listen => {
            l.fd(a[0]).s(", ").num(a[1] as i32 as i64);
        }
        libc::SYS_shutdown => {
            l.fd(a[0]).s(", ");
            match a[1] as i32 {
                libc::SHUT_RD => l.s("SHUT_RD"),
                libc::SHUT_WR => l.s("SHUT_WR"),
                libc::SHUT_RDWR => l.s("SHUT_RDWR"),
                // As strace prints it.
                v => l.hex(v as u32 as u64).s(" /* SHUT_??? */"),
            };
        }
        libc::SYS_connect => {
            l.fd(a[0]).s(", ");
            sockaddr(l, a[1], a[2] as usize);
            l.s(", ").unum(a[2]);
        }
        libc::SYS_accept | libc::SYS_accept4 => {
            l.fd(a[0]).s(", ").ptr(a[1]).s(", ").ptr(a[2]);
            if nr == libc::SYS_accept4 {
                l.s(", ").flags(a[3], SOCK_FLAGS, "0");
            }
        }
        libc::SYS_sendto | libc::SYS_recvfrom => {
            l.fd(a[0]).s(", ");
            if nr == libc::SYS_sendto {
                l.data(a[1], a[2] as usize)
            } else if res >= 0 {
                l.data(a[1], res as usize)
            } else {
                l.ptr(a[1])
            };
            l.s(", ").unum(a[2]).s(", ").flags(a[3], SEND_RECV_FLAGS, "0").s(", ");
            // The destination, or the source a receive filled in, with its length.
            let mut got = [0u32; 1];
            if nr == libc::SYS_sendto {
                if a[4] == 0 {
                    l.s("NULL");
                } else {
                    sockaddr(l, a[4], a[5] as usize);
                }
                l.s(", ").unum(a[5]);
            } else if a[4] != 0 && a[5] != 0 && res >= 0 && peek(&mut got, a[5]) {
                sockaddr(l, a[4], got[0] as usize);
                l.s(", [").unum(got[0] as u64).s("]");
            } else {
                l.ptr(a[4]).s(", ").ptr(a[5]);
            }
        }
        libc::SYS_sendmsg | libc::SYS_recvmsg => {
            l.fd(a[0]).s(", ");
            let mut m = [0u64; 7];
            if peek(&mut m, a[1]) {
                // struct msghdr: name, namelen, iov, iovlen, control, controllen, flags.
                l.s("{msg_name=").ptr(m[0]).s(", msg_namelen=").unum(m[1] & 0xffff_ffff).s(", msg_iov=");
                let budget = if nr == libc::SYS_recvmsg { res.max(0) as usize } else { usize::MAX };
                iovecs(l, m[2], m[3], budget);
                l.s(", msg_iovlen=").unum(m[3]).s(", msg_controllen=").unum(m[5]);
                l.s(", msg_flags=").flags(m[6] & 0xffff_ffff, SEND_RECV_FLAGS, "0").s("}");
            } else {
                l.ptr(a[1]);
            }
            l.s(", ").flags(a[2], SEND_RECV_FLAGS, "0");
        }
        libc::SYS_sendmmsg | libc::SYS_recvmmsg => {
            l.fd(a[0]).s(", ").ptr(a[1]).s(", ").unum(a[2]).s(", ").flags(a[3], SEND_RECV_FLAGS, "0");
            if nr == libc::SYS_recvmmsg {
                l.s(", ");
                timespec(l, a[4]);
            }
        }
        libc::SYS_getsockopt | libc::SYS_setsockopt => {
            l.fd(a[0]).s(", ").num(a[1] as i32 as i64).s(", ").num(a[2] as i32 as i64).s(", ");
            l.ptr(a[3]).s(", ").ptr(a[4]);
        }
        libc::SYS_dup2 => {
            l.fd(a[0]).s(", ").fd(a[1]);
        }
        libc::SYS_dup3 => {
            l.fd(a[0]).s(", ").fd(a[1]).s(", ").flags(a[2], O_FLAGS, "0");
        }
        libc::SYS_close_range => {
            l.unum(a[0]).s(", ").unum(a[1]).s(", ").unum(a[2]);
        }
        libc::SYS_fcntl => {
            l.fd(a[0]).s(", ");
            match fcntl_cmd(a[1] as i64) {
                Some(c) => l.s(c),
                None => l.num(a[1] as i32 as i64),
            };
            match a[1] as i32 {
                libc::F_GETFD | libc::F_GETFL | libc::F_GETPIPE_SZ => {}
                libc::F_SETFL => {
                    l.s(", ").flags(a[2], O_FLAGS, "0");
                }
                libc::F_SETFD => {
                    l.s(", ").s(if a[2] & 1 != 0 { "FD_CLOEXEC" } else { "0" });
                }
                _ => {
                    l.s(", ").num(a[2] as i64);
                }
            }
        }
        libc::SYS_ioctl => {
            l.fd(a[0]).s(", ");
            if a[1] == libc::FIONREAD || a[1] == libc::FIONBIO {
                l.s(if a[1] == libc::FIONREAD { "FIONREAD, " } else { "FIONBIO, " });
                let mut n = [0i32];
                if (res == 0 || a[1] == libc::FIONBIO) && peek(&mut n, a[2]) {
                    l.s("[").num(n[0] as i64).s("]");
                } else {
                    l.ptr(a[2]);
                }
            } else {
                l.hex(a[1]).s(", ").hex(a[2]);
            }
        }
        libc::SYS_poll | libc::SYS_ppoll => {
            pollfds(l, a[0], a[1], false);
            l.s(", ").unum(a[1]).s(", ");
            if nr == libc::SYS_poll {
                l.num(a[2] as i32 as i64);
            } else {
                timespec(l, a[2]);
                l.s(", ").ptr(a[3]).s(", ").unum(a[4]);
            }
        }
        libc::SYS_select | libc::SYS_pselect6 => {
            l.num(a[0] as i32 as i64);
            for &set in &a[1..4] {
                l.s(", ");
                fdset(l, set, a[0] as i32);
            }
            l.s(", ");
            if nr == libc::SYS_select {
                let mut tv = [0i64; 2];
                if a[4] != 0 && peek(&mut tv, a[4]) {
                    l.s("{tv_sec=").num(tv[0]).s(", tv_usec=").num(tv[1]).s("}");
                } else {
                    l.ptr(a[4]);
                }
            } else {
                timespec(l, a[4]);
                l.s(", ").ptr(a[5]);
            }
        }
        libc::SYS_msgget => {
            if a[0] as i32 == 0 {
                l.s("IPC_PRIVATE")
            } else {
                l.hex(a[0] as u32 as u64)
            };
            l.s(", ");
            let fl = a[1] as u32 as u64;
            if fl & !0o777 != 0 {
                l.flags(fl & !0o777, SEMGET_FLAGS, "0").s("|");
            }
            l.octal(fl as u32 & 0o777);
        }
        libc::SYS_msgsnd => {
            l.num(a[0] as i32 as i64).s(", ");
            msgbuf(l, a[1], a[2] as usize);
            l.s(", ").unum(a[2]).s(", ").flags(a[3] as u32 as u64, MSG_FLAGS, "0");
        }
        libc::SYS_msgrcv => {
            l.num(a[0] as i32 as i64).s(", ");
            // strace shows the whole buffer asked for, not only the message received.
            if res >= 0 {
                msgbuf(l, a[1], a[2] as usize);
            } else {
                l.ptr(a[1]);
            }
            l.s(", ").unum(a[2]).s(", ").num(a[3] as i64).s(", ");
            l.flags(a[4] as u32 as u64, MSG_FLAGS, "0");
        }
        libc::SYS_msgctl => {
            l.num(a[0] as i32 as i64).s(", ");
            let cmd = a[1] as i32 as i64;
            cmd_name(l, cmd, msg_cmd(cmd), "MSG_???");
            l.s(", ").ptr(if cmd & !0x100 == 0 { 0 } else { a[2] });
        }
        libc::SYS_semget | libc::SYS_shmget => {
            if a[0] as i32 == 0 {
                l.s("IPC_PRIVATE")
            } else {
                l.hex(a[0] as u32 as u64)
            };
            l.s(", ");
            if nr == libc::SYS_semget {
                l.num(a[1] as i32 as i64)
            } else {
                l.unum(a[1])
            };
            l.s(", ");
            let fl = a[2] as u32 as u64;
            // shmget's huge page size, log2 in bits 26..31, as strace shows it.
            let huge = if nr == libc::SYS_shmget { (fl >> 26) & 0x3f } else { 0 };
            let fl = if huge != 0 { fl & !(0x3f << 26) } else { fl };
            if fl & !0o777 != 0 {
                let names = if nr == libc::SYS_semget { SEMGET_FLAGS } else { SHMGET_FLAGS };
                l.flags(fl & !0o777, names, "0").s("|");
            }
            if huge != 0 {
                l.unum(huge).s("<<SHM_HUGE_SHIFT|");
            }
            l.octal(fl as u32 & 0o777);
        }
        libc::SYS_semop | libc::SYS_semtimedop => {
            l.num(a[0] as i32 as i64).s(", ");
            sembufs(l, a[1], a[2]);
            l.s(", ").unum(a[2]);
            if nr == libc::SYS_semtimedop {
                l.s(", ");
                timespec(l, a[3]);
            }
        }
        libc::SYS_semctl => {
            l.num(a[0] as i32 as i64).s(", ").num(a[1] as i32 as i64).s(", ");
            let cmd = a[2] as i32 as i64;
            cmd_name(l, cmd, ipc_cmd(cmd), "SEM_???");
            // Commands without an argument show NULL whatever the register held, as in strace.
            let none = matches!(cmd & !0x100, 0 | 11 | 12 | 14 | 15);
            l.s(", ").ptr(if none { 0 } else { a[3] });
        }
        libc::SYS_shmat => {
            l.num(a[0] as i32 as i64).s(", ").ptr(a[1]).s(", ");
            l.flags(
                a[2] as u32 as u64,
                &[
                    (0o10000, "SHM_RDONLY"),
                    (0o20000, "SHM_RND"),
                    (0o40000, "SHM_REMAP"),
                    (0o100000, "SHM_EXEC"),
                ],
                "0",
            );
        }
        libc::SYS_shmdt => {
            l.ptr(a[0]);
        }
        libc::SYS_shmctl => {
            l.num(a[0] as i32 as i64).s(", ");
            cmd_name(l, a[1] as i32 as i64, shm_cmd(a[1] as i32 as i64), "SHM_???");
            l.s(", ").ptr(a[2]);
        }
        _ => {}
    }
}

fn cmd_name(l: &mut Line<'_>, cmd: i64, name: Option<&str>, unknown: &str) {
    match name {
        Some(n) => {
            if cmd & 0x100 != 0 {
                l.s("IPC_64|");
            }
            l.s(n)
        }
        None => {
            if cmd & 0x100 != 0 {
                l.s("IPC_64|");
            }
            l.hex(cmd as u32 as u64 & !0x100).s(" /* ").s(unknown).s(" */")
        }
    };
}

/// What strace appends after the result: poll's revents, select's ready sets.
fn results(l: &mut Line<'_>, nr: i64, a: &[u64; 6], res: i64) {
    match nr {
        libc::SYS_poll | libc::SYS_ppoll if res > 0 => {
            l.s(" (");
            pollfds(l, a[0], a[1], true);
            l.s(")");
        }
        libc::SYS_poll | libc::SYS_ppoll | libc::SYS_select | libc::SYS_pselect6 if res == 0 => {
            l.s(" (Timeout)");
        }
        _ => {}
    }
}

/// A `struct msgbuf` as strace shows it: `{mtype, "text"}`.
/// `struct msgbuf` as strace shows it: the address alone unless mtype and the text shown
/// (up to 32 bytes) can both be read.
fn msgbuf(l: &mut Line<'_>, addr: u64, len: usize) {
    let mut head = [0u8; 40];
    let n = 8 + len.min(32);
    if !peek(&mut head[..n], addr) {
        l.ptr(addr);
        return;
    }
    let mtype = i64::from_ne_bytes(head[..8].try_into().unwrap_or_default());
    l.s("{mtype=").num(mtype).s(", mtext=").data(addr + 8, len).s("}");
}

/// A socket address as strace shows it: `{sa_family=AF_UNIX, sun_path="x"}` (an abstract
/// name with its leading NUL as `@`), `{sa_family=AF_INET, sin_port=htons(80),
/// sin_addr=inet_addr("127.0.0.1")}`, or AF_INET6's `sin6_*` fields.
fn sockaddr(l: &mut Line<'_>, addr: u64, len: usize) {
    let mut sa = [0u8; 110];
    let len = len.min(sa.len());
    if len < 2 || !peek(&mut sa[..len], addr) {
        l.ptr(addr);
        return;
    }
    let family = u16::from_ne_bytes([sa[0], sa[1]]) as i32;
    let port = u16::from_be_bytes([sa[2], sa[3]]);
    if family == libc::AF_INET && len >= 8 {
        l.s("{sa_family=AF_INET, sin_port=htons(").unum(port as u64).s("), sin_addr=inet_addr(\"");
        ipv4(l, &sa[4..8]);
        l.s("\")}");
        return;
    }
    if family == libc::AF_INET6 && len >= 24 {
        let flow = u32::from_be_bytes([sa[4], sa[5], sa[6], sa[7]]);
        l.s("{sa_family=AF_INET6, sin6_port=htons(").unum(port as u64).s("), sin6_flowinfo=htonl(");
        l.unum(flow as u64).s("), inet_pton(AF_INET6, \"");
        ipv6(l, &sa[8..24]);
        l.s("\", &sin6_addr)");
        if len >= 28 {
            l.s(", sin6_scope_id=").unum(u32::from_ne_bytes([sa[24], sa[25], sa[26], sa[27]]) as u64);
        }
        l.s("}");
        return;
    }
    if family != libc::AF_UNIX {
        l.s("{sa_family=").unum(u16::from_ne_bytes([sa[0], sa[1]]) as u64).s("}");
        return;
    }
    let path = &sa[2..len];
    l.s("{sa_family=AF_UNIX");
    if let Some(&first) = path.first() {
        let (at, skip) = if first == 0 { ("@", 1) } else { ("", 0) };
        let name = &path[skip..];
        let end =
            if skip == 0 { name.iter().position(|&b| b == 0).unwrap_or(name.len()) } else { name.len() };
        l.s(", sun_path=").s(at).data(addr + 2 + skip as u64, end);
    }
    l.s("}");
}

fn ipv4(l: &mut Line<'_>, a: &[u8]) {
    for (i, b) in a.iter().enumerate() {
        if i > 0 {
            l.s(".");
        }
        l.unum(*b as u64);
    }
}

/// An IPv6 address as inet_ntop writes it: the longest run of two or more zero groups as
/// `::`, an IPv4-mapped one as `::ffff:a.b.c.d`.
fn ipv6(l: &mut Line<'_>, a: &[u8]) {
    if a[..10] == [0; 10] && a[10..12] == [0xff, 0xff] {
        l.s("::ffff:");
        ipv4(l, &a[12..16]);
        return;
    }
    let group = |i: usize| u16::from_be_bytes([a[2 * i], a[2 * i + 1]]);
    let (mut best, mut best_len, mut run) = (8, 0, 0);
    for i in 0..8 {
        run = if group(i) == 0 { run + 1 } else { 0 };
        if run > best_len {
            (best, best_len) = (i + 1 - run, run);
        }
    }
    if best_len < 2 {
        best = 8;
    }
    let mut i = 0;
    while i < 8 {
        if i == best {
            l.s("::");
            i += best_len;
            continue;
        }
        if i > 0 && i != best + best_len {
            l.s(":");
        }
        let g = group(i);
        let mut d = [0u8; 4];
        let mut n = 0;
        for shift in [12, 8, 4, 0] {
            let nib = (g >> shift) & 15;
            if n > 0 || nib != 0 || shift == 0 {
                d[n] = b"0123456789abcdef"[nib as usize];
                n += 1;
            }
        }
        l.bytes(&d[..n]);
        i += 1;
    }
}

fn timespec(l: &mut Line<'_>, addr: u64) {
    let mut ts = [0i64; 2];
    if addr != 0 && peek(&mut ts, addr) {
        l.s("{tv_sec=").num(ts[0]).s(", tv_nsec=").num(ts[1]).s("}");
    } else {
        l.ptr(addr);
    }
}

fn iovecs(l: &mut Line<'_>, addr: u64, cnt: u64, mut budget: usize) {
    l.s("[");
    for i in 0..cnt.min(4) {
        let mut iov = [0u64; 2];
        if !peek(&mut iov, addr + i * 16) {
            l.hex(addr);
            break;
        }
        if i > 0 {
            l.s(", ");
        }
        let shown = (iov[1] as usize).min(budget);
        budget -= shown;
        l.s("{iov_base=").data(iov[0], shown).s(", iov_len=").unum(iov[1]).s("}");
    }
    if cnt > 4 {
        l.s(", ...");
    }
    l.s("]");
}

fn pollfds(l: &mut Line<'_>, addr: u64, n: u64, revents: bool) {
    let start = l.len;
    l.s("[");
    // As strace abbreviates: the first 32 entries; for revents, the first 32 that have any,
    // as long as they fit its 1024-byte buffer (less room for the end).
    let mut shown = 0;
    for i in 0..n {
        let mut p = [libc::pollfd { fd: 0, events: 0, revents: 0 }];
        if !peek(&mut p, addr + i * 8) {
            break;
        }
        if revents && p[0].revents == 0 {
            continue;
        }
        if shown > 0 {
            l.s(", ");
        }
        if shown == STRACE_MAX_ELEMS {
            l.s("...");
            break;
        }
        shown += 1;
        let entry = l.len;
        l.s("{fd=").num(p[0].fd as i64);
        // Annotated as strace -y does (the first time only), so a reader tells pipes from sockets.
        let path = if revents { NO_PATH } else { fd_path(p[0].fd) };
        if path.len > 0 {
            l.s("<").bytes(&path.buf[..path.len]).s(">");
        }
        // A negative fd is ignored by poll: strace shows no events for it.
        if p[0].fd >= 0 {
            l.s(if revents { ", revents=" } else { ", events=" });
            let ev = if revents { p[0].revents } else { p[0].events } as u16 as u64;
            l.flags(ev, POLL_FLAGS, "0");
        }
        l.s("}");
        if revents && l.len - start >= 1024 - 27 {
            l.len = entry;
            l.s("...");
            break;
        }
    }
    l.s("]");
}

fn fdset(l: &mut Line<'_>, addr: u64, nfds: i32) {
    let mut set = [0u64; 16];
    let words = (nfds.clamp(0, 1024) as usize).div_ceil(64);
    if addr == 0 || !peek(&mut set[..words], addr) {
        l.ptr(addr);
        return;
    }
    l.s("[");
    let mut first = true;
    for fd in 0..nfds.clamp(0, 1024) as usize {
        if set[fd / 64] & (1 << (fd % 64)) != 0 {
            if !first {
                l.s(" ");
            }
            first = false;
            l.unum(fd as u64);
        }
    }
    l.s("]");
}

fn sembufs(l: &mut Line<'_>, addr: u64, n: u64) {
    if addr == 0 {
        l.s("NULL");
        return;
    }
    if !peek(&mut [0u16; 3], addr) {
        l.hex(addr);
        return;
    }
    l.s("[");
    for i in 0..n.min(8) {
        let mut b = [0u16; 3];
        if !peek(&mut b, addr + i * 6) {
            l.s(", ... /* ").hex(addr + i * 6).s(" */");
            break;
        }
        if i > 0 {
            l.s(", ");
        }
        l.s("{sem_num=").unum(b[0] as u64).s(", sem_op=").num(b[1] as i16 as i64).s(", sem_flg=");
        l.flags(b[2] as u64, &[(0x1000, "SEM_UNDO"), (0o4000, "IPC_NOWAIT")], "0").s("}");
    }
    if n > 8 {
        l.s(", ...");
    }
    l.s("]");
}
