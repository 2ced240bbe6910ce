//! Pipe syscalls on shim fds: argument checks in the kernel's order (fs/read_write.c,
//! lib/iov_iter.c), then `shared_state::pipe`. Each function returns `None` when the fd is not
//! a shim pipe opened for that direction: the kernel's placeholder then gives the kernel's
//! answer (EBADF, ESPIPE, ...).

use crate::fd::{self, PipeFd};
use crate::{scratch, signals, sud};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use shared_state::Region;
use shared_state::pipe::{self, PipeEnv};
use shared_state::pipe_gc;
use shared_state::sys::{self, Errno};
use shared_state::wait::WaitOutcome;

/// The kernel's UIO_MAXIOV and MAX_RW_COUNT (INT_MAX rounded down to a page).
pub const IOV_MAX: usize = 1024;
const MAX_RW_COUNT: usize = (i32::MAX as usize) & !4095;

/// One user iovec: (address, length); the address may be bad.
pub type Iov = (usize, usize);

pub fn ret(r: Result<usize, Errno>) -> i64 {
    match r {
        Ok(n) => n as i64,
        Err(e) => -(e as i64),
    }
}

/// The open file's status flags (F_GETFL) of `fd`.
pub fn getfl(fd: i32) -> Result<i32, Errno> {
    sys::syscall6(libc::SYS_fcntl, fd as usize, libc::F_GETFL as usize, 0, 0, 0, 0).map(|fl| fl as i32)
}

/// `read`/`write`'s single buffer, checked as `vfs_read`/`vfs_write` do.
pub fn single(addr: usize, len: usize) -> Result<Iov, Errno> {
    if !crate::copy::access_ok(addr, len) {
        return Err(libc::EFAULT);
    }
    if (len as isize) < 0 {
        return Err(libc::EINVAL);
    }
    Ok((addr, len.min(MAX_RW_COUNT)))
}

/// Copies in and checks a user iovec array as `import_iovec` does (`copy_iovec_from_user`'s
/// per-entry order of EFAULT and EINVAL, then `access_ok` and the MAX_RW_COUNT cut), into
/// scratch memory.
pub fn import_iovec(uiov: usize, cnt: u64) -> Result<scratch::Slice<Iov>, Errno> {
    let cnt = cnt as i64;
    if !(0..=IOV_MAX as i64).contains(&cnt) {
        return Err(libc::EINVAL);
    }
    let mut out = scratch::take(cnt as usize, (0usize, 0usize))?;
    const CHUNK: usize = 32;
    let mut raw = [libc::iovec { iov_base: core::ptr::null_mut(), iov_len: 0 }; CHUNK];
    let entry = size_of::<libc::iovec>();
    for (k, dst) in out.chunks_mut(CHUNK).enumerate() {
        let raw = &mut raw[..dst.len()];
        let at = uiov + k * CHUNK * entry;
        if crate::copy::slice_in(raw, at).is_err() {
            // Which comes first, a bad entry or a negative length, is decided entry by entry.
            for (i, v) in raw.iter_mut().enumerate() {
                crate::copy::slice_in(core::slice::from_mut(v), at + i * entry)?;
                if (v.iov_len as isize) < 0 {
                    return Err(libc::EINVAL);
                }
            }
        }
        if raw.iter().any(|v| (v.iov_len as isize) < 0) {
            return Err(libc::EINVAL);
        }
        for (d, v) in dst.iter_mut().zip(raw.iter()) {
            *d = (v.iov_base as usize, v.iov_len);
        }
    }
    let mut total = 0usize;
    for v in out.iter_mut() {
        if !crate::copy::access_ok(v.0, v.1) {
            return Err(libc::EFAULT);
        }
        v.1 = v.1.min(MAX_RW_COUNT - total);
        total += v.1;
    }
    Ok(out)
}

/// Which side of which object a call is on, for what "the peer is gone" means.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Pipe,
    /// An AF_UNIX stream socket receiving: EOF once the placeholder has RCV_SHUTDOWN.
    SockRead,
    /// … sending: EPIPE once it has SEND_SHUTDOWN.
    SockWrite,
    /// A loopback TCP socket sending (`crate::tcp`): its peer is gone, or going, once the
    /// placeholder has a FIN (RCV_SHUTDOWN), a reset or a hang-up; the kernel answers then.
    TcpSend,
    /// A datagram socket receiving into its own queue: the kernel must answer once the
    /// placeholder has something (datagrams from senders without the shim, or RCV_SHUTDOWN).
    DgramRecv,
    /// … sending into that receive queue: its socket is gone or shut down for reading.
    DgramSend(pipe::PipeHandle),
}

/// The process-side knowledge `shared_state::pipe` needs while serving one call.
pub struct Env<'a> {
    p: &'a PipeFd,
    r: &'a Region,
    guard: &'a sud::Guard,
    /// RWF_NOWAIT / SPLICE_F_NONBLOCK / MSG_DONTWAIT: non-blocking whatever the file's flags.
    nowait: bool,
    /// This call has waited before: a handler that ran then must not be forgotten.
    waited: core::cell::Cell<bool>,
    side: Side,
    /// A socket's SO_RCVTIMEO/SO_SNDTIMEO as a deadline, once asked (the call's first wait).
    timeout: core::cell::Cell<Option<Option<libc::timespec>>>,
    /// From the call's first sleep, a descriptor of its own for the placeholder (-1: none):
    /// as the kernel's fdget, it keeps the file, and so the object, open if another thread
    /// closes the fd meanwhile, and the placeholder is asked through it.
    held: core::cell::Cell<i32>,
    /// The write stopped for want of memory for the ring (see `PipeEnv::out_of_space`).
    space_out: core::cell::Cell<bool>,
    /// A socket receive's taker of fds' tokens (see [`PipeEnv::took_fds`]).
    fds: Option<&'a dyn Fn(u64)>,
}

impl<'a> Env<'a> {
    pub fn new(p: &'a PipeFd, r: &'a Region, guard: &'a sud::Guard, nowait: bool, side: Side) -> Env<'a> {
        Env {
            p,
            r,
            guard,
            nowait,
            waited: Default::default(),
            side,
            timeout: Default::default(),
            held: core::cell::Cell::new(-1),
            space_out: Default::default(),
            fds: None,
        }
    }

    /// Whether what is learnt may be cached under the caller's fd number, which names the
    /// object for sure only while the call holds no reference of its own (another thread may
    /// have closed it) and outside a vfork child.
    fn cacheable(&self) -> bool {
        self.held.get() == -1 && !sud::in_vfork_child()
    }

    /// The placeholder's descriptor: the call's own once it slept, else the caller's fd.
    fn fd(&self) -> i32 {
        match self.held.get() {
            -1 => self.p.fd,
            h => h,
        }
    }

    /// Takes the call's reference to the placeholder (see `held`) at a number above those
    /// programs use, below the region's descriptors' limit.
    fn hold(&self) {
        if self.held.get() != -1 {
            return;
        }
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        let limp = &raw mut lim as usize;
        let soft = sys::syscall6(libc::SYS_getrlimit, libc::RLIMIT_NOFILE as usize, limp, 0, 0, 0, 0)
            .map_or(1024, |_| lim.rlim_cur.min(1 << 20) as usize);
        let from = soft.saturating_sub(64).max(3);
        let dup = |at: usize| {
            sys::syscall6(libc::SYS_fcntl, self.p.fd as usize, libc::F_DUPFD_CLOEXEC as usize, at, 0, 0, 0)
        };
        // Counted first: a close another thread makes once our copy exists sees it counted.
        fd::hold(self.p.fd, true);
        match dup(from).or_else(|_| dup(3)) {
            Ok(h) => self.held.set(h as i32),
            Err(_) => fd::hold(self.p.fd, false),
        }
    }

    /// Whether the call stopped for want of memory for the ring: the object must go to the
    /// kernel, which takes the rest.
    pub fn ran_out_of_space(&self) -> bool {
        self.space_out.get()
    }

    /// A timeout of 0 for this direction (a negative SO_RCVTIMEO/SO_SNDTIMEO): the kernel's
    /// `sock_rcvtimeo`/`sock_sndtimeo` is then 0 as for MSG_DONTWAIT.
    fn zero_timeout(&self) -> bool {
        let bit = match self.side {
            Side::Pipe => return false,
            Side::SockRead | Side::DgramRecv => pipe::SOCK_RCVTIMEO_ZERO,
            Side::SockWrite | Side::TcpSend | Side::DgramSend(_) => pipe::SOCK_SNDTIMEO_ZERO,
        };
        pipe::sock_flags(self.r, self.p.pipe) & bit != 0
    }

    /// The receive takes the fds' token of a message it reads with `take`, queue locked.
    pub fn taking_fds(mut self, take: &'a dyn Fn(u64)) -> Env<'a> {
        self.fds = Some(take);
        self
    }

    /// The socket's timeout for this direction, from now; None without one.
    fn socket_deadline(&self) -> Option<libc::timespec> {
        let opt = match self.side {
            Side::Pipe => return None,
            Side::SockRead | Side::DgramRecv => libc::SO_RCVTIMEO,
            Side::SockWrite | Side::TcpSend | Side::DgramSend(_) => libc::SO_SNDTIMEO,
        };
        let mut tv = libc::timeval { tv_sec: 0, tv_usec: 0 };
        let mut len = size_of::<libc::timeval>() as u32;
        sys::syscall6(
            libc::SYS_getsockopt,
            self.fd() as usize,
            libc::SOL_SOCKET as usize,
            opt as usize,
            &mut tv as *mut libc::timeval as usize,
            &mut len as *mut u32 as usize,
            0,
        )
        .ok()?;
        (tv.tv_sec != 0 || tv.tv_usec != 0).then(|| {
            shared_state::wait::deadline_after(&libc::timespec {
                tv_sec: tv.tv_sec,
                tv_nsec: tv.tv_usec * 1000,
            })
        })
    }
}

impl Drop for Env<'_> {
    /// The call's reference goes: if another thread closed the fd while it slept, it may have
    /// been the last one, so peers look again, as after any close.
    fn drop(&mut self) {
        if self.held.get() != -1 {
            sys::close(self.held.get());
            fd::hold(self.p.fd, false);
            // `find`, not `lookup`: the number may now be anyone's (another thread's, the
            // shim's own for a moment), and what it names must not be cached for it.
            if fd::find(self.r, self.p.fd).is_none_or(|now| now.pipe != self.p.pipe) {
                note_closed(self.r, self.p);
            }
        }
    }
}

/// Per fd: the (closes, exits) generations at which the other side was last seen alive (a
/// socket's receiving side; its sending side has the second table), inverted so that 0 (a
/// page never written) means not known.
static VERIFIED: [AtomicU64; fd::CACHED] = [const { AtomicU64::new(0) }; fd::CACHED];
static VERIFIED_SEND: [AtomicU64; fd::CACHED] = [const { AtomicU64::new(0) }; fd::CACHED];
/// When (CLOCK_MONOTONIC ms, wrapping) each entry of the two tables above was last stored.
static VERIFIED_MS: [AtomicU32; fd::CACHED] = [const { AtomicU32::new(0) }; fd::CACHED];
static VERIFIED_SEND_MS: [AtomicU32; fd::CACHED] = [const { AtomicU32::new(0) }; fd::CACHED];
/// How long a non-blocking call that finds nothing trusts a look at the placeholder
/// (`peer_gone_now`): a program that retries at once makes one system call per this, not
/// one per try, and sees a killed peer at most this late.
const FRESH_MS: u32 = 10;

fn now_ms() -> u32 {
    (sys::monotonic_ns() / 1_000_000) as u32
}

/// The time entry of `fd` in `table`'s companion; `fd` is below `fd::CACHED`, as the caller
/// found it in `table`.
fn verified_at(table: &[AtomicU64; fd::CACHED], fd: i32) -> &'static AtomicU32 {
    let ms = if core::ptr::eq(table, &VERIFIED_SEND) { &VERIFIED_SEND_MS } else { &VERIFIED_MS };
    &ms[fd as usize]
}
/// The peer of socket `fd` (object `h`) is known to be there now: its liveness is cached as
/// checked.
pub fn peer_present(r: &Region, fd: i32, h: pipe::PipeHandle) {
    if sud::in_vfork_child() {
        return;
    }
    let gens = pipe::liveness_gens(r, h);
    for table in [&VERIFIED, &VERIFIED_SEND] {
        if let Some(c) = table.get(fd as usize) {
            c.store(!gens, Ordering::Relaxed);
            verified_at(table, fd).store(now_ms(), Ordering::Relaxed);
        }
    }
}

/// Whether a cache of `fd` takes its peer for there at generations `gens`.
pub fn believed_present(fd: i32, gens: u64) -> bool {
    [&VERIFIED, &VERIFIED_SEND]
        .iter()
        .any(|t| t.get(fd as usize).is_some_and(|c| c.load(Ordering::Relaxed) == !gens))
}

/// Forgets what was cached about `fd`: it now names another object (or none).
pub fn forget_caches(fd: usize) {
    crate::poll::forget_quiet(fd);
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
static NB_GENS: [AtomicU64; fd::CACHED] = [const { AtomicU64::new(0) }; fd::CACHED];
static NB_FLAG: [AtomicBool; fd::CACHED] = [const { AtomicBool::new(false) }; fd::CACHED];

/// How often a blocked datagram receiver that has had datagrams from senders without the shim
/// looks at its kernel queue.
const KERNEL_SEEN_SLICE_NS: i64 = 2_000_000;

impl PipeEnv for Env<'_> {
    fn took_fds(&self, fp: u64) {
        if let Some(take) = self.fds {
            take(fp);
        }
    }

    fn max_slice_ns(&self) -> i64 {
        let seen = self.side == Side::DgramRecv
            && pipe::sock_flags(self.r, self.p.pipe) & pipe::SOCK_KERNEL_SEEN != 0;
        if seen { KERNEL_SEEN_SLICE_NS } else { i64::MAX }
    }

    fn nonblocking(&self) -> bool {
        if self.nowait || self.zero_timeout() {
            return true;
        }
        // O_NONBLOCK lives in the placeholder's open file description (shared with dups and
        // forks); its value is cached until the pipe's generations move, which every F_SETFL
        // and FIONBIO made through the shim does (note_close).
        let gens = pipe::liveness_gens(self.r, self.p.pipe);
        let cached = self.cacheable().then(|| NB_GENS.get(self.p.fd as usize)).flatten();
        if let Some(c) = cached
            && c.load(Ordering::Acquire) == !gens
        {
            return NB_FLAG[self.p.fd as usize].load(Ordering::Relaxed);
        }
        let nb = getfl(self.fd()).is_ok_and(|fl| fl & libc::O_NONBLOCK != 0);
        if let Some(c) = cached {
            NB_FLAG[self.p.fd as usize].store(nb, Ordering::Relaxed);
            c.store(!gens, Ordering::Release);
        }
        nb
    }

    fn peer_gone(&self, force: bool) -> bool {
        match self.side {
            Side::DgramRecv => return crate::dgram::kernel_has_more(self.r, self.p),
            Side::DgramSend(to) => return !crate::dgram::can_receive(self.r, to, force),
            _ => {}
        }
        let gens = pipe::liveness_gens(self.r, self.p.pipe);
        let table =
            if matches!(self.side, Side::SockWrite | Side::TcpSend) { &VERIFIED_SEND } else { &VERIFIED };
        let cache = self.cacheable().then(|| table.get(self.p.fd as usize)).flatten();
        let believed = cache.is_some_and(|c| c.load(Ordering::Relaxed) == !gens);
        if !force && believed {
            return false;
        }

        // The placeholder knows: a read end reports POLLHUP once no write end is open anywhere,
        // a write end POLLERR once no read end is; a socket, POLLRDHUP once it cannot receive
        // more, and EPIPE to a send (of nothing, which moves no data) once it cannot send.
        let fd = self.fd();
        let events = if matches!(self.side, Side::SockRead | Side::TcpSend) { libc::POLLRDHUP } else { 0 };
        let mut pfd = libc::pollfd { fd, events, revents: 0 };
        let polled = sys::syscall6(libc::SYS_poll, &mut pfd as *mut libc::pollfd as usize, 1, 0, 0, 0, 0);
        let nothing = [0u8; 1];
        let flags = (libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) as usize;
        let gone = match (self.side, self.p.read, self.p.write) {
            (Side::SockRead, ..) => polled.is_ok_and(|n| n == 1) && pfd.revents & libc::POLLRDHUP != 0,
            // No send of nothing: it would take a reset's error, which is the user's to read.
            // The FIN of a peer that only shut down sending leaves it receiving.
            (Side::TcpSend, ..) => {
                polled.is_ok_and(|n| n == 1)
                    && match pfd.revents & (libc::POLLRDHUP | libc::POLLERR | libc::POLLHUP) {
                        0 => false,
                        libc::POLLRDHUP => !pipe::sock_peer_half_closed(self.r, self.p.pipe),
                        _ => true,
                    }
            }
            // A seqpacket socket's send of nothing is a record: ask the diagnostics instead.
            (Side::SockWrite, ..) if self.p.packet => crate::unix::send_shut_down(fd),
            (Side::SockWrite, ..) => {
                sys::syscall6(libc::SYS_sendto, fd as usize, nothing.as_ptr() as usize, 0, flags, 0, 0)
                    == Err(libc::EPIPE)
            }
            // An O_RDWR file is both sides: its peer never goes.
            (_, true, true) => false,
            (_, false, _) => polled.is_ok_and(|n| n == 1) && pfd.revents & libc::POLLERR != 0,
            (_, true, false) => {
                polled.is_ok_and(|n| n == 1) && pfd.revents & libc::POLLHUP != 0
                    || force && self.p.fifo && fifo_eof(fd)
            }
        };
        if let (false, Some(c)) = (gone, cache) {
            c.store(!gens, Ordering::Relaxed);
            verified_at(table, self.p.fd).store(now_ms(), Ordering::Relaxed);
        }
        // A peer that went without a close the shim saw (killed): every cache of the
        // namespace that still takes it for alive must look again (`peer_gone_now`).
        if gone && believed {
            pipe::note_exit(self.r);
        }
        gone
    }

    fn peer_gone_now(&self) -> bool {
        // A FIFO's end of file without a writer ever seen is in no cache (`fifo_eof`).
        if matches!(self.side, Side::DgramRecv | Side::DgramSend(_)) || self.p.fifo || !self.cacheable() {
            return self.peer_gone(true);
        }
        let gens = pipe::liveness_gens(self.r, self.p.pipe);
        let table =
            if matches!(self.side, Side::SockWrite | Side::TcpSend) { &VERIFIED_SEND } else { &VERIFIED };
        let fresh = table.get(self.p.fd as usize).is_some_and(|c| c.load(Ordering::Relaxed) == !gens)
            && now_ms().wrapping_sub(verified_at(table, self.p.fd).load(Ordering::Relaxed)) < FRESH_MS;
        !fresh && self.peer_gone(true)
    }

    fn wait(&self, f: &mut dyn FnMut() -> WaitOutcome) -> WaitOutcome {
        // Only before the call's first wait: a handler that ran during an earlier one (which
        // then returned for another reason, with room to write, say) still interrupts this one.
        // And before the cancellation point, which lets in the signals held back while the
        // call copied: one that came then interrupts the wait (the kernel looks for signals
        // when the pipe is full), and was lost when forgotten after it had run.
        if !self.waited.replace(true) {
            signals::clear_interrupt();
            self.hold();
        }
        self.guard.testcancel();
        let mut r = self
            .guard
            .allow_signals(|| if signals::interrupt_pending() { WaitOutcome::Interrupted } else { f() });
        // A handler that ran as the slice ran out still interrupted the wait.
        if r == WaitOutcome::TimedOut && signals::interrupt_pending() {
            r = WaitOutcome::Interrupted;
        }
        if r == WaitOutcome::Interrupted {
            self.guard.testcancel();
        }
        r
    }

    fn watch_placeholder(&self, ns: i64) -> Option<WaitOutcome> {
        // What says the other side went: a read end's POLLHUP, a write end's POLLERR (both
        // always reported), a socket's POLLRDHUP or POLLHUP.
        let events = match self.side {
            Side::Pipe => 0,
            // A peer that shut down sending only still receives: its FIN ends no send.
            Side::TcpSend if pipe::sock_peer_half_closed(self.r, self.p.pipe) => 0,
            Side::SockRead | Side::SockWrite | Side::TcpSend => libc::POLLRDHUP,
            Side::DgramRecv | Side::DgramSend(_) => return None,
        };
        self.hold();
        let mut pfd = libc::pollfd { fd: self.fd(), events, revents: 0 };
        let ts = libc::timespec { tv_sec: ns / 1_000_000_000, tv_nsec: ns % 1_000_000_000 };
        Some(self.wait(&mut || {
            let pfdp = &mut pfd as *mut libc::pollfd as usize;
            let tsp = &ts as *const libc::timespec as usize;
            match sys::syscall6(libc::SYS_ppoll, pfdp, 1, tsp, 0, 8, 0) {
                Err(libc::EINTR) => WaitOutcome::Interrupted,
                Ok(0) => WaitOutcome::TimedOut,
                _ => WaitOutcome::Woken,
            }
        }))
    }

    fn oob_inline(&self) -> bool {
        self.side == Side::SockRead && crate::unix::getsockopt_int(self.fd(), libc::SO_OOBINLINE) == Ok(1)
    }

    fn restart_after_signal(&self) -> bool {
        // A socket call with a timeout is never restarted (sock_intr_errno).
        signals::take_interrupt() != Some(false) && self.deadline().is_none()
    }

    fn deadline(&self) -> Option<libc::timespec> {
        if let Some(d) = self.timeout.get() {
            return d;
        }
        let d = self.socket_deadline();
        self.timeout.set(Some(d));
        d
    }

    fn out_of_space(&self) {
        self.space_out.set(true);
    }
}

/// A non-blocking FIFO reader that opened while no writer had come yet gets no POLLHUP, yet
/// reads EOF: ask the placeholder itself, with a read that cannot block and, the placeholder
/// being empty, cannot take anything.
fn fifo_eof(fd: i32) -> bool {
    let nonblocking = getfl(fd).is_ok_and(|fl| fl & libc::O_NONBLOCK != 0);
    let mut queued = 0i32;
    let mut empty = || {
        sys::syscall6(
            libc::SYS_ioctl,
            fd as usize,
            libc::FIONREAD as usize,
            &mut queued as *mut i32 as usize,
            0,
            0,
            0,
        )
        .is_ok_and(|_| queued == 0)
    };
    let mut byte = 0u8;
    nonblocking
        && empty()
        && sys::syscall6(libc::SYS_read, fd as usize, &mut byte as *mut u8 as usize, 1, 0, 0, 0) == Ok(0)
}

/// SIGPIPE as `pipe_write` sends it (`send_sig(SIGPIPE, current, 0)`): SI_USER from ourselves.
pub fn sigpipe() {
    let tid = sys::syscall6(libc::SYS_gettid, 0, 0, 0, 0, 0, 0).unwrap_or(0);
    let pid = sys::getpid();
    // siginfo_t: signo, errno, code, padding, then the kill fields pid and uid; 128 bytes.
    let mut info = [0u32; 32];
    info[0] = libc::SIGPIPE as u32;
    info[2] = libc::SI_USER as u32;
    info[4] = pid as u32;
    info[5] = sys::getuid();
    let _ = sys::syscall6(
        libc::SYS_rt_tgsigqueueinfo,
        pid as usize,
        tid,
        libc::SIGPIPE as usize,
        info.as_ptr() as usize,
        0,
        0,
    );
}

/// SIGPIPE for a failed write, after its trace line when tracing.
pub fn raise_sigpipe() {
    if crate::trace::on() {
        sud::tls().sigpipe_owed.store(1, core::sync::atomic::Ordering::Relaxed);
    } else {
        sigpipe();
    }
}

pub fn readv(r: &Region, g: &sud::Guard, fd: i32, iov: &[Iov], nowait: bool) -> Option<i64> {
    let p = fd::lookup(r, fd).filter(|p| p.read)?;
    if p.socket {
        // sock_read_iter returns at once for nothing; recv of nothing waits (crate::unix).
        if iov.iter().all(|v| v.1 == 0) {
            return Some(0);
        }
        let flags = if nowait { libc::MSG_DONTWAIT } else { 0 };
        return crate::unix::recv(r, g, &p, iov, flags, &mut crate::scm::Ctl::none())
            .map(|res| ret(res.map(|(n, _)| n)));
    }
    let env = Env::new(&p, r, g, nowait, Side::Pipe);
    match pipe::pipe_read(r, p.pipe, iov, &env) {
        Err(pipe::HANDED_BACK) => None,
        // Freed since we looked it up (see `fd::lookup`): the placeholder answers.
        Err(libc::EBADF) if !pipe::is_live(r, p.pipe) => None,
        res => Some(ret(res)),
    }
}

pub fn writev(r: &Region, g: &sud::Guard, fd: i32, iov: &[Iov], nowait: bool) -> Option<i64> {
    let p = fd::lookup(r, fd).filter(|p| p.write)?;
    if p.socket {
        let flags = if nowait { libc::MSG_DONTWAIT } else { 0 };
        return crate::unix::send(r, g, &p, iov, flags).map(ret);
    }
    let env = Env::new(&p, r, g, nowait, Side::Pipe);
    let res = pipe::pipe_write(r, p.pipe, iov, p.packet, &env);
    if res == Err(pipe::HANDED_BACK) || res == Err(libc::EBADF) && !pipe::is_live(r, p.pipe) {
        return None;
    }
    // No memory for the ring's next page: the kernel's pipe takes over, queued bytes first,
    // and writes what is left (all of it, or the rest after what went into the ring).
    if env.ran_out_of_space() {
        hand_back(r, p.fd);
        let done = res.unwrap_or(0);
        if done == 0 {
            return None;
        }
        // In scratch memory: an iovec array is too large for a small stack.
        let Ok(mut rest) = crate::scratch::take(iov.len(), (0usize, 0usize)) else {
            return Some(done as i64);
        };
        let n = skip_iov(iov, done, &mut rest);
        let more = g.allow_signals(|| {
            sys::syscall6(libc::SYS_writev, p.fd as usize, rest.as_ptr() as usize, n, 0, 0, 0)
        });
        return Some((done + more.unwrap_or(0)) as i64);
    }
    // EPIPE, or a write cut short because the last reader left: SIGPIPE either way.
    let total: usize = iov.iter().map(|v| v.1).sum();
    if res == Err(libc::EPIPE) || res.is_ok_and(|n| n > 0 && n < total && env.peer_gone(true)) {
        raise_sigpipe();
    }
    Some(ret(res))
}

/// `iov` without its first `skip` bytes, into `out` (as long as `iov`, laid out as the kernel's
/// `struct iovec`s); returns how many entries.
pub fn skip_iov(iov: &[Iov], mut skip: usize, out: &mut [Iov]) -> usize {
    let mut n = 0;
    for &(base, len) in iov {
        if skip >= len {
            skip -= len;
            continue;
        }
        out[n] = (base + skip, len - skip);
        skip = 0;
        n += 1;
    }
    n
}

/// What is left of `iov` after the first `got` bytes a receive took (`iov` itself for none),
/// in `rest`, scratch memory taken at the first call (an iovec array is too large for a
/// small stack); None without scratch memory.
pub fn iov_after<'a>(
    iov: &'a [Iov],
    got: usize,
    rest: &'a mut Option<scratch::Slice<Iov>>,
) -> Option<&'a [Iov]> {
    if got == 0 {
        return Some(iov);
    }
    let rest = match rest {
        Some(rest) => rest,
        None => rest.insert(scratch::take(iov.len(), (0usize, 0usize)).ok()?),
    };
    let n = skip_iov(iov, got, rest);
    Some(&rest[..n])
}

pub fn read(r: &Region, g: &sud::Guard, fd: i32, buf: usize, len: usize) -> Option<i64> {
    let p = fd::lookup(r, fd).filter(|p| p.read)?;
    match single(buf, len) {
        Ok(iov) => readv(r, g, p.fd, &[iov], false),
        Err(e) => Some(-(e as i64)),
    }
}

pub fn write(r: &Region, g: &sud::Guard, fd: i32, buf: usize, len: usize) -> Option<i64> {
    let p = fd::lookup(r, fd).filter(|p| p.write)?;
    match single(buf, len) {
        Ok(iov) => writev(r, g, p.fd, &[iov], false),
        Err(e) => Some(-(e as i64)),
    }
}

/// readv/writev/preadv2/pwritev2 with a user iovec array.
pub fn vector(
    r: &Region,
    g: &sud::Guard,
    write: bool,
    fd: i32,
    uiov: usize,
    cnt: u64,
    nowait: bool,
) -> Option<i64> {
    let p = fd::lookup(r, fd).filter(|p| if write { p.write } else { p.read })?;
    match import_iovec(uiov, cnt) {
        Ok(iov) if write => writev(r, g, p.fd, &iov, nowait),
        Ok(iov) => readv(r, g, p.fd, &iov, nowait),
        Err(e) => Some(-(e as i64)),
    }
}

/// `pipe2`: a kernel pipe as the placeholder, a shim pipe behind it.
pub fn pipe2(r: &Region, ufds: usize, flags: u64) -> Option<i64> {
    let flags = flags as i32;
    // O_NOTIFICATION_PIPE (O_EXCL) makes a watch queue, which stays the kernel's.
    if flags & libc::O_EXCL != 0 {
        return None;
    }
    let fds = match sys::pipe2(flags) {
        Ok((rd, wr)) => [rd, wr],
        Err(e) => return Some(-(e as i64)),
    };
    let closeboth = || {
        sys::close(fds[0]);
        sys::close(fds[1]);
    };
    let made = sys::fstat(fds[0]).and_then(|st| Ok((st.st_dev, pipe::pipe_new(r, st.st_dev, st.st_ino)?)));
    let (dev, handle) = match made {
        Ok(m) => m,
        // No room in the region: the kernel's pipe serves, as it would without us.
        Err(pipe::NO_SPACE) => {
            if crate::copy::slice_out(ufds, &fds).is_err() {
                closeboth();
                return Some(-(libc::EFAULT as i64));
            }
            return Some(0);
        }
        Err(e) => {
            closeboth();
            return Some(-(e as i64));
        }
    };
    set_pipefs_dev(dev);
    if crate::copy::slice_out(ufds, &fds).is_err() {
        closeboth();
        return Some(-(libc::EFAULT as i64));
    }
    let packet = flags & libc::O_DIRECT != 0;
    fd::insert(&PipeFd {
        fd: fds[0],
        pipe: handle,
        read: true,
        write: false,
        packet,
        fifo: false,
        socket: false,
        sole: fd::Sole::NO,
    });
    fd::insert(&PipeFd {
        fd: fds[1],
        pipe: handle,
        read: false,
        write: true,
        packet,
        fifo: false,
        socket: false,
        sole: fd::Sole::NO,
    });
    Some(0)
}

static PIPEFS_DEV: AtomicU64 = AtomicU64::new(u64::MAX);

fn set_pipefs_dev(dev: u64) {
    PIPEFS_DEV.store(dev, Ordering::Relaxed);
}

/// The device of anonymous pipes (pipefs), learnt from a pipe of our own or from another
/// process of the namespace.
fn pipefs_dev(r: &Region) -> u64 {
    match PIPEFS_DEV.load(Ordering::Relaxed) {
        u64::MAX => {
            if let Some(dev) = pipe::pipefs_dev(r) {
                PIPEFS_DEV.store(dev, Ordering::Relaxed);
                return dev;
            }
            let Ok((rd, wr)) = sys::pipe2(libc::O_CLOEXEC) else { return u64::MAX };
            let st = sys::fstat(rd);
            sys::close(rd);
            sys::close(wr);
            let Ok(st) = st else { return u64::MAX };
            set_pipefs_dev(st.st_dev);
            pipe::set_pipefs_dev(r, st.st_dev);
            st.st_dev
        }
        d => d,
    }
}

/// Whether `st` (a file's) is an anonymous pipe with no shim object: one the shim did not
/// make, which never gets one (only a FIFO gets an object at a later open).
pub fn never_ours(r: &Region, st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFIFO
        && st.st_dev == pipefs_dev(r)
        && pipe::pipe_find(r, st.st_dev, st.st_ino).is_none()
}

/// The placeholder size that marks a FIFO's kernel pipe as known to the shim. A kernel pipe
/// starts at 16 pages (2 when the user is over pipe-user-pages-soft); the shim never uses the
/// placeholder's own buffer, so its size is free to carry this mark.
const FIFO_MARK: usize = 4 * 4096;
/// … and the size that marks it as the kernel's: the region had no room for its object when
/// it was first opened, so every opener leaves it to the kernel until every end is closed.
const FIFO_KERNEL_MARK: usize = 8 * 4096;

/// The shim object behind a FIFO-typed kernel object, and whether it is a FIFO file: an
/// anonymous pipe is ours only if we made it; a FIFO file is served by us from its first open.
/// The kernel frees a FIFO's pipe when its last file closes, and the next open gets a fresh
/// one: a kernel pipe without our mark means that whatever the object still holds is left
/// over from before, so the object starts afresh, as the kernel's pipe did. Without `create`,
/// such a FIFO has no object (nobody used it through the shim yet).
pub fn object_for(r: &Region, dev: u64, ino: u64, fd: i32, create: bool) -> Option<(pipe::PipeHandle, bool)> {
    if dev == pipefs_dev(r) {
        return pipe::pipe_find(r, dev, ino).map(|h| (h, false));
    }
    let fcntl =
        |cmd: i32, arg: usize| sys::syscall6(libc::SYS_fcntl, fd as usize, cmd as usize, arg, 0, 0, 0);
    match fcntl(libc::F_GETPIPE_SZ, 0) {
        Ok(FIFO_MARK) => return pipe::fifo_get(r, dev, ino).ok().map(|h| (h, true)),
        Ok(FIFO_KERNEL_MARK) => return None,
        _ => {}
    }
    if !create {
        return None;
    }
    // Two first openers must not both start afresh: the FIFO's flock orders them.
    let _ = sys::flock(fd, libc::LOCK_EX);
    let h = match fcntl(libc::F_GETPIPE_SZ, 0) {
        Ok(FIFO_MARK) => pipe::fifo_get(r, dev, ino),
        Ok(FIFO_KERNEL_MARK) => Err(pipe::NO_SPACE),
        _ => {
            let h = pipe::pipe_new(r, dev, ino);
            let _ = fcntl(libc::F_SETPIPE_SZ, if h.is_ok() { FIFO_MARK } else { FIFO_KERNEL_MARK });
            h
        }
    };
    let _ = sys::flock(fd, libc::LOCK_UN);
    h.ok().map(|h| (h, true))
}

/// `fd` is being closed: after the kernel close, peers re-check whether we were the last.
pub fn close(r: &Region, fd: i32) -> Option<i64> {
    crate::tcp::closing(r, fd);
    // A listener's close resets the connections still waiting in its queue: their clients'
    // cached view of their peer must go. Held by this fd alone, no program without the shim
    // holds it too.
    let listener = fd::listener(fd).filter(|l| !crate::tcp::is_listener(l));
    if let Some(l) = listener.filter(|l| !l.sole.holds()) {
        crate::unix::listener_released(r, &l);
    }
    let epoll = crate::epoll::instance_of(fd);
    let close = || sys::syscall6(libc::SYS_close, fd as usize, 0, 0, 0, 0, 0);
    let res = match fd::take(r, fd) {
        Some(p) => dropping(r, &p, close),
        None => close(),
    };
    if let (Some(h), Ok(_)) = (epoll, res) {
        crate::epoll::closed(r, h);
    }
    if let (Some(l), Ok(_)) = (listener, res) {
        pipe::note_exit(r);
        // Its last holder: the connects waiting for it are reset, their queues freed. Only
        // when the fd may not have been the only one does the kernel say.
        if fd::released_by_close(fd, l.sole) {
            shared_state::unix::listener_gone(r, l.ino, Some(l.name_slot));
        } else if crate::unix::diag::released(l.ino as u64) {
            shared_state::unix::listener_gone(r, l.ino, None);
        }
    }
    Some(ret(res))
}

/// The kernel's poll events of `fd` (0 when it cannot say).
pub fn revents(fd: i32, events: i16) -> i16 {
    let mut pfd = libc::pollfd { fd, events, revents: 0 };
    match sys::syscall6(libc::SYS_poll, &mut pfd as *mut libc::pollfd as usize, 1, 0, 0, 0, 0) {
        Ok(1) => pfd.revents,
        _ => 0,
    }
}

/// `/proc/self/fd/N` of `fd`, NUL-terminated, into `path`; its length with the NUL.
fn self_fd_path(fd: i32, path: &mut [u8; 32]) -> usize {
    path[..14].copy_from_slice(b"/proc/self/fd/");
    let mut digits = [0u8; 10];
    let n = pipe_gc::itoa(fd as u32, &mut digits);
    path[14..14 + n].copy_from_slice(&digits[..n]);
    path[14 + n] = 0;
    15 + n
}

/// Runs `drop_fd`, the kernel call that drops the shim fd `p` (a close, or a dup onto it),
/// and frees its object if that was the last end of it anywhere, as the kernel frees a pipe
/// at its last release (sockets: `crate::unix::dropping`; FIFOs, which the kernel's open may
/// be waiting on, see [`fifo_dropped`]). Then whoever waits on the object looks again,
/// and epoll sets drop their interests in it if this was its file's last reference.
/// Returns `drop_fd`'s result.
///
/// The placeholder says who is left: a read end polls POLLHUP once no write end is open
/// anywhere, a write end POLLERR once no read end is. So when the other side is gone already,
/// an end of that other side, opened through /proc just before the drop, tells whether ours
/// was the last too. The look and the drop are made under the pipe namespace's lock, so that
/// of the last reader and the last writer closing at once, the second sees the first gone.
pub fn dropping(
    r: &Region,
    p: &PipeFd,
    drop_fd: impl FnOnce() -> Result<usize, Errno>,
) -> Result<usize, Errno> {
    if p.socket {
        let (res, both_gone) = crate::unix::dropping(r, p, drop_fd);
        crate::epoll::object_closed(r, p);
        // Last, once nothing more is done to them: their slots may be reused from here on.
        if let Some(peer) = both_gone {
            pipe::release(r, peer);
            pipe::release(r, p.pipe);
        }
        return res;
    }
    let res = if p.fifo || p.read == p.write {
        let other_gone = revents(p.fd, 0) & if p.read { libc::POLLHUP } else { libc::POLLERR } != 0;
        // A FIFO's reading end with no writer left (or one that writes too) may be its last
        // end: its inode, kept by a path-only fd, tells after the drop.
        let inode = (p.fifo && p.read && (other_gone || p.write)).then(|| {
            let mut path = [0u8; 32];
            let n = self_fd_path(p.fd, &mut path);
            sys::open(&path[..n], libc::O_PATH | libc::O_CLOEXEC, 0)
        });
        let res = drop_fd();
        if let Some(Ok(inode)) = inode {
            if res.is_ok() {
                fifo_dropped(r, p, inode);
            }
            sys::close(inode);
        }
        res
    } else {
        let (gone, probe_mode, ours_gone) = if p.read {
            (libc::POLLHUP, libc::O_WRONLY, libc::POLLERR)
        } else {
            (libc::POLLERR, libc::O_RDONLY, libc::POLLHUP)
        };
        let (probe, res) = pipe::closing(r, || {
            let probe = (revents(p.fd, 0) & gone != 0).then(|| {
                let mut path = [0u8; 32];
                let n = self_fd_path(p.fd, &mut path);
                sys::open(&path[..n], probe_mode | libc::O_NONBLOCK | libc::O_CLOEXEC, 0)
            });
            (probe, drop_fd())
        });
        if let Some(Ok(end)) = probe {
            if revents(end, 0) & ours_gone != 0 {
                pipe::release(r, p.pipe);
            }
            sys::close(end);
        }
        res
    };
    closed(r, p);
    res
}

/// A reading end of the FIFO `p` was dropped with no writer left: frees its object if that
/// was the FIFO's last end anywhere, as `pipe_release` frees the kernel's pipe at its last
/// release, which it shows: a reader opened now (through `inode`, a path-only fd of it) finds
/// the kernel's pipe still marked as ours, or a fresh one. No process's fds are scanned.
///
/// That reader wakes no opener the kernel would not have woken: while our end was open no
/// writer waited in `open` (a reader was there) and no reader did (the kernel wakes readers
/// only for a writer), so a writer that waits now came after our drop, and sees our reader as
/// if our end had been dropped a moment later. A writer dropped last, whose reader could wake
/// writers waiting in `open` for one, leaves the object to the FIFO's next open (which finds
/// the kernel's pipe fresh, see [`object_for`]) or to a collection.
fn fifo_dropped(r: &Region, p: &PipeFd, inode: i32) {
    let mut path = [0u8; 32];
    let n = self_fd_path(inode, &mut path);
    let Ok(probe) = sys::open(&path[..n], libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC, 0) else {
        return;
    };
    // No flock (an application's could hold the close up): an opener meanwhile that found the
    // pipe fresh replaces the object itself (`pipe_new`), and the release of ours, checked by
    // its generation, then frees nothing.
    let size = sys::syscall6(libc::SYS_fcntl, probe as usize, libc::F_GETPIPE_SZ as usize, 0, 0, 0, 0);
    if !matches!(size, Ok(FIFO_MARK | FIFO_KERNEL_MARK)) {
        pipe::release(r, p.pipe);
    }
    sys::close(probe);
}

/// An fd of `p` was closed, or its file's flags changed: whoever waits on its object, or a
/// socket's peer, looks again.
pub fn note_closed(r: &Region, p: &PipeFd) {
    if p.socket {
        crate::unix::note_change(r, p);
    } else {
        pipe::note_close(r, p.pipe);
    }
}

/// An fd of `p` was closed: its other side's sleepers look again (or a socket's peer), and
/// epoll sets check whether their interests in it went with the file (its last reference), as
/// the kernel's release wakes its peers.
pub fn closed(r: &Region, p: &PipeFd) {
    if p.socket {
        crate::unix::note_change(r, p);
    } else {
        pipe::note_end_closed(r, p.pipe, p.read, p.write);
    }
    crate::epoll::object_closed(r, p);
}

/// Gives the pipe behind `fd` back to the kernel (see `pipe::hand_back`), for a use the shim
/// does not serve; the caller then passes the call through. The queued bytes go into the
/// kernel's pipe, grown to the size the application set, through a write end of our own.
pub fn hand_back(r: &Region, fd: i32) {
    let Some(p) = fd::lookup(r, fd) else { return };
    if p.socket {
        crate::unix::hand_back(r, &p);
        return;
    }
    let size = pipe::get_pipe_size(r, p.pipe).unwrap_or(65536);
    let fcntl = |fd: i32, cmd: i32, arg: usize| {
        sys::syscall6(libc::SYS_fcntl, fd as usize, cmd as usize, arg, 0, 0, 0)
    };
    let _ = fcntl(fd, libc::F_SETPIPE_SZ, size);
    // /proc/self/fd/N opened for writing is a new write end of the same pipe or FIFO.
    let mut path = [0u8; 32];
    let n = self_fd_path(fd, &mut path);
    let wfd = sys::open(&path[..n], libc::O_WRONLY | libc::O_NONBLOCK, 0);
    let mut drain = |mut bytes: &[u8]| -> Result<(), Errno> {
        let w = *wfd.as_ref().map_err(|e| *e)?;
        while !bytes.is_empty() {
            let k = sys::write(w, bytes)?;
            bytes = &bytes[k..];
        }
        Ok(())
    };
    let moved = pipe::hand_back(r, p.pipe, &mut drain);
    if let Ok(w) = wfd {
        sys::close(w);
    }
    // The kernel's pipe holds it all now: the object goes (a process that still has it in its
    // table finds it gone, and the kernel's pipe). A FIFO's stays, marked, so that its later
    // openers leave it to the kernel too.
    if moved.is_ok() && !p.fifo {
        pipe::release(r, p.pipe);
    }
}

/// `close_range`: the shim fds in the range are closed one by one first, each waking its
/// peers (it may be the last end), then the kernel closes the rest (around the region's
/// descriptors).
pub fn close_range(r: &Region, first: u64, last: u64, flags: u64) -> Option<i64> {
    // The kernel takes unsigned ints.
    let (first, last, mut flags) = (first as u32 as u64, last as u32 as u64, flags as u32 as u64);
    let known = (libc::CLOSE_RANGE_UNSHARE | libc::CLOSE_RANGE_CLOEXEC) as u64;
    // The kernel's own checks, before anything is closed.
    if flags & !known != 0 || first > last {
        return Some(-(libc::EINVAL as i64));
    }
    let closing = flags & libc::CLOSE_RANGE_CLOEXEC as u64 == 0;
    if closing {
        // What CLOSE_RANGE_UNSHARE does first: the closes below must not reach a table
        // another process shares.
        if flags & libc::CLOSE_RANGE_UNSHARE as u64 != 0 {
            if let Err(e) = sys::syscall6(libc::SYS_unshare, libc::CLONE_FILES as usize, 0, 0, 0, 0, 0) {
                return Some(-(e as i64));
            }
            flags &= !(libc::CLOSE_RANGE_UNSHARE as u64);
        }
        crate::foreign::each_open_fd(|fd| {
            if !(first..=last).contains(&(fd as u64)) {
                return;
            }
            crate::tcp::closing(r, fd);
            if let Some(h) = crate::epoll::instance_of(fd) {
                fd::forget(fd);
                sys::close(fd);
                crate::epoll::closed(r, h);
            } else if let Some(p) = fd::take(r, fd) {
                let _ = dropping(r, &p, || sys::syscall6(libc::SYS_close, fd as usize, 0, 0, 0, 0, 0));
            }
        });
    }
    let res = crate::region::close_range(first, last, flags);
    if res.is_ok() && closing {
        for fd in first..=last.min(fd::highest() as u64) {
            fd::forget(fd as i32);
        }
    }
    Some(ret(res))
}

/// dup, dup2, dup3, F_DUPFD(_CLOEXEC): the kernel duplicates the placeholder; we copy the
/// entry (and dup2/dup3 close the target first).
pub fn dup(r: &Region, nr: i64, a: &[u64; 6]) -> Option<i64> {
    let old = a[0] as i32;
    let target = (nr != libc::SYS_dup && nr != libc::SYS_fcntl).then_some(a[1] as i32);
    let call = || sys::syscall6(nr, a[0] as usize, a[1] as usize, a[2] as usize, 0, 0, 0);
    // The target, if open, is closed by the call: its object is found while it is open, and
    // may go with it.
    let epoll = target.filter(|&t| t != old).and_then(crate::epoll::instance_of);
    if let Some(t) = target.filter(|&t| t != old) {
        crate::tcp::closing(r, t);
    }
    let res = match target.filter(|&t| t != old).and_then(|t| fd::take(r, t)) {
        Some(p) => dropping(r, &p, call),
        None => call(),
    };
    if let Ok(new) = res {
        let new = new as i32;
        if new != old {
            fd::copy(r, old, new);
            if let Some(h) = epoll {
                crate::epoll::closed(r, h);
            }
        }
    }
    Some(ret(res))
}

/// The fcntl commands and ioctl requests that may mean something for a shim object (`fcntl`,
/// `ioctl`, `unix::ioctl`): any other goes to the kernel whatever the fd. The rewritten
/// sites' stubs and the exported symbols decide by these lists.
pub(crate) const FD_FCNTLS: [i32; 7] = [
    libc::F_DUPFD,
    libc::F_DUPFD_CLOEXEC,
    libc::F_SETFL,
    libc::F_GETPIPE_SZ,
    libc::F_SETOWN,
    crate::unix::F_SETOWN_EX,
    libc::F_SETPIPE_SZ,
];
pub(crate) const FD_IOCTLS: [u32; 6] = [
    libc::FIONBIO as u32,
    libc::FIONREAD as u32,
    crate::unix::FIOSETOWN as u32,
    crate::unix::SIOCSPGRP as u32,
    crate::unix::SIOCATMARK as u32,
    libc::TIOCOUTQ as u32,
];

/// fcntl commands that mean something different for a shim pipe.
pub fn fcntl(r: &Region, fd: i32, cmd: i32, arg: u64) -> Option<i64> {
    match cmd {
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
            dup(r, libc::SYS_fcntl, &[fd as u64, cmd as u64, arg, 0, 0, 0])
        }
        // O_DIRECT can be switched on a pipe: packet mode follows the file's flag.
        libc::F_SETFL => {
            let p = fd::lookup(r, fd)?;
            let res = sys::syscall6(libc::SYS_fcntl, fd as usize, cmd as usize, arg as usize, 0, 0, 0);
            if let (Ok(fl), false) = (getfl(fd), p.socket) {
                fd::insert(&PipeFd { packet: fl & libc::O_DIRECT != 0, ..p });
            }
            // Every process caching this description's O_NONBLOCK reads it again.
            note_closed(r, &p);
            Some(ret(res))
        }
        cmd if crate::unix::sets_owner(cmd) => {
            let p = fd::lookup(r, fd).filter(|p| p.socket)?;
            let res = sys::syscall6(libc::SYS_fcntl, fd as usize, cmd as usize, arg as usize, 0, 0, 0);
            if res.is_ok() {
                crate::unix::owner_changed(r, &p);
            }
            Some(ret(res))
        }
        libc::F_GETPIPE_SZ => {
            let p = fd::lookup(r, fd).filter(|p| !p.socket)?;
            Some(ret(pipe::get_pipe_size(r, p.pipe)))
        }
        libc::F_SETPIPE_SZ => {
            let p = fd::lookup(r, fd).filter(|p| !p.socket)?;
            Some(ret(pipe::set_pipe_size(r, p.pipe, arg as usize, sys::effective_caps() & (1 << 24) != 0)))
        }
        _ => None,
    }
}

/// `ioctl(FIONREAD)`: bytes queued, stored as an int.
pub fn ioctl(r: &Region, fd: i32, req: u64, arg: usize) -> Option<i64> {
    if req == libc::FIONBIO {
        let p = fd::lookup(r, fd)?;
        let res = sys::syscall6(libc::SYS_ioctl, fd as usize, req as usize, arg, 0, 0, 0);
        note_closed(r, &p);
        return Some(ret(res));
    }
    let p = fd::lookup(r, fd)?;
    if p.socket {
        return crate::unix::ioctl(r, &p, req, arg);
    }
    if req != libc::FIONREAD {
        return None;
    }
    let n = match pipe::fionread(r, p.pipe) {
        Ok(n) => n as i32,
        Err(e) => return Some(-(e as i64)),
    };
    Some(ret(crate::copy::slice_out(arg, &[n]).map(|_| 0)))
}

/// Process exit: close our shim fds now, freeing the objects we were the last to hold, and
/// wake their peers, so that they see EOF or EPIPE at once instead of at their next liveness
/// check. That includes the fds the table has not seen (inherited by an image that never used
/// them).
pub fn exiting(r: &Region) {
    crate::foreign::each_fd_that_matters(true, |fd| {
        if crate::region::is_own_fd(fd) {
            return;
        }
        if fd::is_listener(fd) {
            let _ = close(r, fd);
        } else if let Some(h) = crate::epoll::instance_of(fd) {
            fd::forget(fd);
            sys::close(fd);
            crate::epoll::closed(r, h);
        } else if let Some(p) = fd::take(r, fd) {
            let _ = dropping(r, &p, || sys::syscall6(libc::SYS_close, fd as usize, 0, 0, 0, 0, 0));
        }
    });
}
