//! The real libc functions behind our exports, resolved once with `dlsym(RTLD_NEXT)` in the
//! constructor (which makes no allocation on glibc 2.36, NOTES §3), or on first use if another
//! library's constructor calls us earlier.

use core::sync::atomic::{AtomicUsize, Ordering};

/// One of the functions below: its index in [`NAMES`] and [`ADDRS`].
pub struct Real(usize);

impl Real {
    pub fn get(&self) -> usize {
        match ADDRS[self.0].load(Ordering::Acquire) {
            0 => self.resolve(),
            a => a,
        }
    }

    fn resolve(&self) -> usize {
        self.resolve_named(NAMES.split(|&b| b == 0).nth(self.0).unwrap_or_default())
    }

    /// `name` is this function's entry of [`NAMES`].
    fn resolve_named(&self, name: &[u8]) -> usize {
        let mut buf = [0u8; 16];
        buf[..name.len()].copy_from_slice(name);
        // SAFETY: `buf` holds a NUL-terminated symbol name; dlsym has no other preconditions.
        let a = unsafe { libc::dlsym(libc::RTLD_NEXT, buf.as_ptr() as *const libc::c_char) } as usize;
        ADDRS[self.0].store(a, Ordering::Release);
        a
    }
}

macro_rules! reals {
    ($($id:ident = $name:literal,)*) => {
        /// The names, NUL-separated: one string, which needs no relocation at load.
        const NAMES: &[u8] = concat!($($name, "\0",)*).as_bytes();
        /// The addresses, side by side: resolving them writes one or two pages, not one per
        /// function scattered among other statics.
        static ADDRS: [AtomicUsize; [$($name,)*].len()] = [const { AtomicUsize::new(0) }; [$($name,)*].len()];
        reals!(@each 0usize, $($id,)*);
    };
    (@each $i:expr, $id:ident, $($rest:ident,)*) => {
        pub static $id: Real = Real($i);
        reals!(@each $i + 1, $($rest,)*);
    };
    (@each $i:expr,) => {};
}

reals! {
    SHMGET = "shmget",
    SHMAT = "shmat",
    SHMDT = "shmdt",
    SHMCTL = "shmctl",
    SEMGET = "semget",
    SEMOP = "semop",
    SEMTIMEDOP = "semtimedop",
    SEMCTL = "semctl",
    MSGGET = "msgget",
    MSGSND = "msgsnd",
    MSGRCV = "msgrcv",
    MSGCTL = "msgctl",
    SYSCALL = "syscall",
    FORK = "fork",
    READ = "read",
    WRITE = "write",
    READV = "readv",
    WRITEV = "writev",
    READ_CHK = "__read_chk",
    CLOSE = "close",
    PIPE = "pipe",
    PIPE2 = "pipe2",
    DUP = "dup",
    DUP2 = "dup2",
    DUP3 = "dup3",
    FCNTL = "fcntl",
    FCNTL64 = "fcntl64",
    IOCTL = "ioctl",
    POLL = "poll",
    POLL_CHK = "__poll_chk",
    PPOLL = "ppoll",
    SELECT = "select",
    SEND = "send",
    RECV = "recv",
    SENDTO = "sendto",
    RECVFROM = "recvfrom",
    SENDMSG = "sendmsg",
    RECVMSG = "recvmsg",
    PSELECT = "pselect",
    SOCKET = "socket",
    SOCKETPAIR = "socketpair",
    BIND = "bind",
    LISTEN = "listen",
    CONNECT = "connect",
    ACCEPT = "accept",
    ACCEPT4 = "accept4",
    SHUTDOWN = "shutdown",
    SETSOCKOPT = "setsockopt",
    GETSOCKOPT = "getsockopt",
    EPOLL_WAIT = "epoll_wait",
    EPOLL_PWAIT = "epoll_pwait",
    EPOLL_CTL = "epoll_ctl",
    EXECVE = "execve",
    EXECV = "execv",
    EXECVP = "execvp",
    EXECVPE = "execvpe",
}

/// glibc's `__libc_single_threaded` (0 before the constructor ran, or without one).
static SINGLE_THREADED: AtomicUsize = AtomicUsize::new(0);

/// Whether glibc still takes this process for single-threaded: its cancellable wrappers
/// (`read`, `close`…) are then the bare system call, with no cancellation handling around it.
pub fn single_threaded() -> bool {
    let p = SINGLE_THREADED.load(Ordering::Relaxed);
    // SAFETY: glibc's `char __libc_single_threaded`, which lives as long as libc.
    p != 0 && unsafe { (p as *const u8).read_volatile() } != 0
}

pub fn resolve_all() {
    // SAFETY: dlsym with a NUL-terminated name; RTLD_DEFAULT searches every loaded object.
    let single = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__libc_single_threaded".as_ptr()) };
    SINGLE_THREADED.store(single as usize, Ordering::Relaxed);
    // One pass over the names: finding each one's from the start (`resolve`) made the
    // constructor's look-ups quadratic, about 9 us of every process's start-up.
    for ((i, a), name) in ADDRS.iter().enumerate().zip(NAMES.split(|&b| b == 0)) {
        if a.load(Ordering::Acquire) == 0 {
            Real(i).resolve_named(name);
        }
    }
}

/// Calls the real libc function behind `$r` with the given signature and arguments.
macro_rules! real_call {
    ($r:expr, fn($($t:ty),* $(,)?) -> $ret:ty, $($a:expr),* $(,)?) => {{
        // SAFETY: the address is libc's function of exactly this signature, from dlsym.
        let f = unsafe { core::mem::transmute::<usize, unsafe extern "C" fn($($t),*) -> $ret>($r.get()) };
        // SAFETY: arguments are passed through unchanged from our caller.
        unsafe { f($($a),*) }
    }};
}
pub(crate) use real_call;
