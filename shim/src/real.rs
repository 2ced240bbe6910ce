//! The real libc functions behind our exports, resolved once with `dlsym(RTLD_NEXT)` in the
//! constructor (which makes no allocation on glibc 2.36, NOTES §3), or on first use if another
//! library's constructor calls us earlier.

use core::sync::atomic::{AtomicUsize, Ordering};

pub struct Real {
    name: &'static [u8],
    addr: AtomicUsize,
}

impl Real {
    const fn new(name: &'static [u8]) -> Real {
        Real { name, addr: AtomicUsize::new(0) }
    }

    pub fn get(&self) -> usize {
        match self.addr.load(Ordering::Acquire) {
            0 => self.resolve(),
            a => a,
        }
    }

    fn resolve(&self) -> usize {
        // SAFETY: `name` is a NUL-terminated symbol name; dlsym has no other preconditions.
        let a = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr() as *const libc::c_char) } as usize;
        self.addr.store(a, Ordering::Release);
        a
    }
}

pub static SHMGET: Real = Real::new(b"shmget\0");
pub static SHMAT: Real = Real::new(b"shmat\0");
pub static SHMDT: Real = Real::new(b"shmdt\0");
pub static SHMCTL: Real = Real::new(b"shmctl\0");
pub static SEMGET: Real = Real::new(b"semget\0");
pub static SEMOP: Real = Real::new(b"semop\0");
pub static SEMTIMEDOP: Real = Real::new(b"semtimedop\0");
pub static SEMCTL: Real = Real::new(b"semctl\0");
pub static MSGGET: Real = Real::new(b"msgget\0");
pub static MSGSND: Real = Real::new(b"msgsnd\0");
pub static MSGRCV: Real = Real::new(b"msgrcv\0");
pub static MSGCTL: Real = Real::new(b"msgctl\0");
pub static SYSCALL: Real = Real::new(b"syscall\0");
pub static FORK: Real = Real::new(b"fork\0");
pub static READ: Real = Real::new(b"read\0");
pub static WRITE: Real = Real::new(b"write\0");
pub static READV: Real = Real::new(b"readv\0");
pub static WRITEV: Real = Real::new(b"writev\0");
pub static READ_CHK: Real = Real::new(b"__read_chk\0");
pub static CLOSE: Real = Real::new(b"close\0");
pub static PIPE: Real = Real::new(b"pipe\0");
pub static PIPE2: Real = Real::new(b"pipe2\0");
pub static DUP: Real = Real::new(b"dup\0");
pub static DUP2: Real = Real::new(b"dup2\0");
pub static DUP3: Real = Real::new(b"dup3\0");
pub static FCNTL: Real = Real::new(b"fcntl\0");
pub static FCNTL64: Real = Real::new(b"fcntl64\0");
pub static IOCTL: Real = Real::new(b"ioctl\0");
pub static POLL: Real = Real::new(b"poll\0");
pub static POLL_CHK: Real = Real::new(b"__poll_chk\0");
pub static PPOLL: Real = Real::new(b"ppoll\0");
pub static SELECT: Real = Real::new(b"select\0");
pub static SEND: Real = Real::new(b"send\0");
pub static RECV: Real = Real::new(b"recv\0");
pub static SENDTO: Real = Real::new(b"sendto\0");
pub static RECVFROM: Real = Real::new(b"recvfrom\0");
pub static SENDMSG: Real = Real::new(b"sendmsg\0");
pub static RECVMSG: Real = Real::new(b"recvmsg\0");
pub static PSELECT: Real = Real::new(b"pselect\0");
pub static SOCKET: Real = Real::new(b"socket\0");
pub static SOCKETPAIR: Real = Real::new(b"socketpair\0");
pub static BIND: Real = Real::new(b"bind\0");
pub static LISTEN: Real = Real::new(b"listen\0");
pub static CONNECT: Real = Real::new(b"connect\0");
pub static ACCEPT: Real = Real::new(b"accept\0");
pub static ACCEPT4: Real = Real::new(b"accept4\0");
pub static SHUTDOWN: Real = Real::new(b"shutdown\0");
pub static SETSOCKOPT: Real = Real::new(b"setsockopt\0");
pub static GETSOCKOPT: Real = Real::new(b"getsockopt\0");
pub static EPOLL_WAIT: Real = Real::new(b"epoll_wait\0");
pub static EPOLL_PWAIT: Real = Real::new(b"epoll_pwait\0");
pub static EPOLL_CTL: Real = Real::new(b"epoll_ctl\0");

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
    for r in [
        &SHMGET,
        &SHMAT,
        &SHMDT,
        &SHMCTL,
        &SYSCALL,
        &FORK,
        &READ,
        &WRITE,
        &READV,
        &WRITEV,
        &READ_CHK,
        &CLOSE,
        &PIPE,
        &PIPE2,
        &DUP,
        &DUP2,
        &DUP3,
        &FCNTL,
        &FCNTL64,
        &IOCTL,
        &POLL,
        &POLL_CHK,
        &PPOLL,
        &SELECT,
        &PSELECT,
        &SEND,
        &RECV,
        &SENDTO,
        &RECVFROM,
        &SENDMSG,
        &RECVMSG,
        &SOCKET,
        &SOCKETPAIR,
        &BIND,
        &LISTEN,
        &CONNECT,
        &ACCEPT,
        &ACCEPT4,
        &SHUTDOWN,
        &SETSOCKOPT,
        &GETSOCKOPT,
        &EPOLL_WAIT,
        &EPOLL_PWAIT,
        &EPOLL_CTL,
        &SEMGET,
        &SEMOP,
        &SEMTIMEDOP,
        &SEMCTL,
        &MSGGET,
        &MSGSND,
        &MSGRCV,
        &MSGCTL,
    ] {
        r.get();
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
