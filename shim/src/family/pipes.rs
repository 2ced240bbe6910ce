//! Pipe syscalls on shim fds: argument checks in the kernel's order (fs/read_write.c,
//! lib/iov_iter.c), then `shared_state::pipe`. Each function returns `None` when the fd is not
//! a shim pipe opened for that direction: the kernel's placeholder then gives the kernel's
//! answer (EBADF, ESPIPE, ...).

use crate::base::fd::{self, PipeFd};
use crate::base::inode;
use crate::base::iov::{Iov, ret, skip_iov};
use crate::base::thread;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use shared_state::Region;
use shared_state::pipe::{self, PipeEnv};
use shared_state::pipe_gc;
use shared_state::sys::{self, Errno};
use shared_state::wait::WaitOutcome;

/// Which side of which object a call is on, for what "the peer is gone" means.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Pipe,
    /// An AF_UNIX stream socket receiving: EOF once the placeholder has RCV_SHUTDOWN.
    SockRead,
    /// … sending: EPIPE once it has SEND_SHUTDOWN.
    SockWrite,
    /// A loopback TCP socket sending (`crate::family::tcp`): its peer is gone, or going, once the
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
    guard: &'a thread::Guard,
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
    pub fn new(p: &'a PipeFd, r: &'a Region, guard: &'a thread::Guard, nowait: bool, side: Side) -> Env<'a> {
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
        self.held.get() == -1 && !thread::in_vfork_child()
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
    let ms = if core::ptr::eq(table, &fd::VERIFIED_SEND) { &fd::VERIFIED_SEND_MS } else { &fd::VERIFIED_MS };
    &ms[fd as usize]
}
/// The peer of socket `fd` (object `h`) is known to be there now: its liveness is cached as
/// checked.
pub fn peer_present(r: &Region, fd: i32, h: pipe::PipeHandle) {
    if thread::in_vfork_child() {
        return;
    }
    let gens = pipe::liveness_gens(r, h);
    for table in [&fd::VERIFIED, &fd::VERIFIED_SEND] {
        if let Some(c) = table.get(fd as usize) {
            c.store(!gens, Ordering::Relaxed);
            verified_at(table, fd).store(now_ms(), Ordering::Relaxed);
        }
    }
}

/// Whether a cache of `fd` takes its peer for there at generations `gens`.
pub fn believed_present(fd: i32, gens: u64) -> bool {
    [&fd::VERIFIED, &fd::VERIFIED_SEND]
        .iter()
        .any(|t| t.get(fd as usize).is_some_and(|c| c.load(Ordering::Relaxed) == !gens))
}

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
        let cached = self.cacheable().then(|| fd::NB_GENS.get(self.p.fd as usize)).flatten();
        if let Some(c) = cached
            && c.load(Ordering::Acquire) == !gens
        {
            return fd::NB_FLAG[self.p.fd as usize].load(Ordering::Relaxed);
        }
        let nb = fd::getfl(self.fd()).is_ok_and(|fl| fl & libc::O_NONBLOCK != 0);
        if let Some(c) = cached {
            fd::NB_FLAG[self.p.fd as usize].store(nb, Ordering::Relaxed);
            c.store(!gens, Ordering::Release);
        }
        nb
    }

    fn peer_gone(&self, force: bool) -> bool {
        match self.side {
            Side::DgramRecv => return crate::family::dgram::kernel_has_more(self.r, self.p),
            Side::DgramSend(to) => return !crate::family::dgram::can_receive(self.r, to, force),
            _ => {}
        }
        let gens = pipe::liveness_gens(self.r, self.p.pipe);
        let table = if matches!(self.side, Side::SockWrite | Side::TcpSend) {
            &fd::VERIFIED_SEND
        } else {
            &fd::VERIFIED
        };
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
            (Side::SockWrite, ..) if self.p.packet => crate::family::unix::send_shut_down(fd),
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
        let table = if matches!(self.side, Side::SockWrite | Side::TcpSend) {
            &fd::VERIFIED_SEND
        } else {
            &fd::VERIFIED
        };
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
            thread::clear_interrupt();
            self.hold();
        }
        self.guard.testcancel();
        let mut r = self
            .guard
            .allow_signals(|| if thread::interrupt_pending() { WaitOutcome::Interrupted } else { f() });
        // A handler that ran as the slice ran out still interrupted the wait.
        if r == WaitOutcome::TimedOut && thread::interrupt_pending() {
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
        self.side == Side::SockRead
            && crate::family::unix::getsockopt_int(self.fd(), libc::SO_OOBINLINE) == Ok(1)
    }

    fn restart_after_signal(&self) -> bool {
        // A socket call with a timeout is never restarted (sock_intr_errno).
        thread::take_interrupt() != Some(false) && self.deadline().is_none()
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
    let nonblocking = fd::getfl(fd).is_ok_and(|fl| fl & libc::O_NONBLOCK != 0);
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
    if crate::base::trace::on() {
        thread::tls().sigpipe_owed.store(1, core::sync::atomic::Ordering::Relaxed);
    } else {
        sigpipe();
    }
}

/// A read of shim pipe `p` (open for reading).
pub fn readv(r: &Region, g: &thread::Guard, p: &PipeFd, iov: &[Iov], nowait: bool) -> Option<i64> {
    let env = Env::new(p, r, g, nowait, Side::Pipe);
    match pipe::pipe_read(r, p.pipe, iov, &env) {
        Err(pipe::HANDED_BACK) => None,
        // Freed since we looked it up (see `fd::lookup`): the placeholder answers.
        Err(libc::EBADF) if !pipe::is_live(r, p.pipe) => None,
        res => Some(ret(res)),
    }
}

/// A write to shim pipe `p` (open for writing).
pub fn writev(r: &Region, g: &thread::Guard, p: &PipeFd, iov: &[Iov], nowait: bool) -> Option<i64> {
    let env = Env::new(p, r, g, nowait, Side::Pipe);
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
        let Ok(mut rest) = crate::base::scratch::take(iov.len(), (0usize, 0usize)) else {
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

/// An fd of `p` was closed, or its file's flags changed: whoever waits on its object, or a
/// socket's peer, looks again.
pub fn note_closed(r: &Region, p: &PipeFd) {
    if p.socket {
        crate::family::unix::note_change(r, p);
    } else {
        pipe::note_close(r, p.pipe);
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
            if crate::base::copy::slice_out(ufds, &fds).is_err() {
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
    crate::base::inode::set_pipefs_dev(dev);
    if crate::base::copy::slice_out(ufds, &fds).is_err() {
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

/// `/proc/self/fd/N` of `fd`, NUL-terminated, into `path`; its length with the NUL.
fn self_fd_path(fd: i32, path: &mut [u8; 32]) -> usize {
    path[..14].copy_from_slice(b"/proc/self/fd/");
    let mut digits = [0u8; 10];
    let n = pipe_gc::itoa(fd as u32, &mut digits);
    path[14..14 + n].copy_from_slice(&digits[..n]);
    path[14 + n] = 0;
    15 + n
}

/// Runs `drop_fd`, the kernel call that drops the shim pipe fd `p` (a close, or a dup onto
/// it), and frees its object if that was the last end of it anywhere, as the kernel frees a
/// pipe at its last release (FIFOs, which the kernel's open may be waiting on, see
/// [`fifo_dropped`]). Returns `drop_fd`'s result; the caller (`crate::family::file::dropping`)
/// then wakes whoever waits on the object.
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
    if p.fifo || p.read == p.write {
        let other_gone = fd::revents(p.fd, 0) & if p.read { libc::POLLHUP } else { libc::POLLERR } != 0;
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
            let probe = (fd::revents(p.fd, 0) & gone != 0).then(|| {
                let mut path = [0u8; 32];
                let n = self_fd_path(p.fd, &mut path);
                sys::open(&path[..n], probe_mode | libc::O_NONBLOCK | libc::O_CLOEXEC, 0)
            });
            (probe, drop_fd())
        });
        if let Some(Ok(end)) = probe {
            if fd::revents(end, 0) & ours_gone != 0 {
                pipe::release(r, p.pipe);
            }
            sys::close(end);
        }
        res
    }
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
    if !matches!(size, Ok(inode::FIFO_MARK | inode::FIFO_KERNEL_MARK)) {
        pipe::release(r, p.pipe);
    }
    sys::close(probe);
}

/// Gives the pipe behind `fd` back to the kernel (see `pipe::hand_back`), for a use the shim
/// does not serve; the caller then passes the call through. The queued bytes go into the
/// kernel's pipe, grown to the size the application set, through a write end of our own.
pub fn hand_back(r: &Region, fd: i32) {
    let Some(p) = fd::lookup(r, fd) else { return };
    if p.socket {
        crate::family::unix::hand_back(r, &p);
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
