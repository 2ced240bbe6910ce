//! splice, tee and sendfile with a shim pipe or socket on either side: the kernel's checks in
//! its order (`fs/splice.c`'s `do_splice`, `do_tee`, `fs/read_write.c`'s `do_sendfile`), then
//! `shared_state::pipe_splice`, whose other end is here: a file, a kernel pipe or socket, or a
//! shim socket, reached with ordinary calls made straight from or into the ring's pages.
//!
//! What only the kernel can do stays a hand-back: a kernel pipe spliced to or from a shim
//! socket (its bytes cannot be put back once read, and only the kernel knows how many the
//! other side takes), and a tee out of a kernel pipe (only the kernel reads a pipe without
//! consuming it).

use crate::base::fd::{self, PipeFd};
use crate::base::thread;
use crate::family::pipes::{self, Env, Side};
use shared_state::Region;
use shared_state::pipe::{HANDED_BACK, PipeEnv};
use shared_state::pipe_splice::{self, PIECES, Piece, SpliceEnd};
use shared_state::sys::{self, Errno};
use shared_state::wait::WaitOutcome;

const SPLICE_F_ALL: u32 =
    libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MORE | libc::SPLICE_F_GIFT;
/// INT_MAX rounded down to a page, as `MAX_RW_COUNT`.
const MAX_RW_COUNT: usize = (i32::MAX as usize) & !4095;

fn neg(e: Errno) -> i64 {
    -(e as i64)
}

/// What the kernel's `struct file` says about an fd, as far as the checks need it.
#[derive(Clone, Copy)]
struct File {
    fd: i32,
    mode: u32,
    flags: i32,
}

impl File {
    /// EBADF for a closed fd, and for an O_PATH one (`fdget` does not take those).
    fn of(fd: i32) -> Result<File, Errno> {
        let flags = fd::getfl(fd)?;
        if flags & libc::O_PATH != 0 {
            return Err(libc::EBADF);
        }
        Ok(File { fd, mode: sys::fstat(fd)?.st_mode & libc::S_IFMT, flags })
    }

    fn readable(self) -> bool {
        self.flags & libc::O_ACCMODE != libc::O_WRONLY
    }

    fn writable(self) -> bool {
        self.flags & libc::O_ACCMODE != libc::O_RDONLY
    }

    fn pipe(self) -> bool {
        self.mode == libc::S_IFIFO
    }

    fn nonblock(self) -> bool {
        self.flags & libc::O_NONBLOCK != 0
    }

    /// FMODE_LSEEK, and with it FMODE_PREAD/FMODE_PWRITE: cleared together for stream files.
    fn seekable(self) -> bool {
        self.position().is_ok()
    }

    fn position(self) -> Result<i64, Errno> {
        sys::lseek(self.fd, 0, libc::SEEK_CUR).map(|p| p as i64)
    }
}

/// `rw_verify_area`'s checks of a position and a count.
fn verify_area(pos: i64, count: usize) -> Result<(), Errno> {
    if (count as isize) < 0 || pos < 0 || pos.checked_add(count as i64).is_none() {
        return Err(libc::EINVAL);
    }
    Ok(())
}

fn read_off(addr: usize) -> Result<i64, Errno> {
    let mut v = [0i64];
    crate::base::copy::slice_in(&mut v, addr)?;
    Ok(v[0])
}

fn iovecs(pieces: &[Piece], out: &mut [libc::iovec; PIECES]) -> usize {
    for (o, &(base, len)) in out.iter_mut().zip(pieces) {
        *o = libc::iovec { iov_base: base as *mut libc::c_void, iov_len: len };
    }
    pieces.len().min(PIECES)
}

/// One poll of `fd` for `events` with signals deliverable, until it is ready.
fn wait_fd(env: &dyn PipeEnv, fd: i32, events: i16) -> WaitOutcome {
    env.wait(&mut || {
        let mut pfd = libc::pollfd { fd, events, revents: 0 };
        let p = &mut pfd as *mut libc::pollfd as usize;
        match sys::syscall6(libc::SYS_ppoll, p, 1, 0, 0, 8, 0) {
            Err(libc::EINTR) => WaitOutcome::Interrupted,
            _ => WaitOutcome::Woken,
        }
    })
}

/// What a kernel fd on the other side of a splice is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// A regular file: read and written at a position; the kernel fills the pipe from it.
    File,
    Pipe,
    Socket,
    /// A device or anything else with splice support: read or written once, as the kernel's
    /// `copy_splice_read` and `iter_file_splice_write` do.
    Other,
}

/// A kernel fd as the other end: `off` is the position to use and advance (a splice's
/// offset, or a sendfile's), else the file's own.
struct KernelEnd {
    fd: i32,
    kind: Kernel,
    off: Option<i64>,
    /// The call does not wait for this end (EAGAIN).
    nonblock: bool,
    /// SPLICE_F_MORE: a socket gets MSG_MORE.
    more: bool,
    /// Out of the pipe into the fd (else into the pipe).
    write: bool,
}

impl SpliceEnd for KernelEnd {
    fn transfer(&mut self, pieces: &[Piece], more: bool) -> Result<usize, Errno> {
        let mut iov = [libc::iovec { iov_base: core::ptr::null_mut(), iov_len: 0 }; PIECES];
        let n = iovecs(pieces, &mut iov);
        let (fd, v) = (self.fd as usize, iov.as_ptr() as usize);
        let res = match (self.kind, self.write) {
            (Kernel::Socket, _) => {
                let mut m: libc::msghdr = unsafe_zeroed_msghdr();
                m.msg_iov = iov.as_mut_ptr();
                m.msg_iovlen = n;
                let mut flags = libc::MSG_DONTWAIT;
                if self.write && (more || self.more) {
                    flags |= libc::MSG_MORE;
                }
                let nr = if self.write { libc::SYS_sendmsg } else { libc::SYS_recvmsg };
                sys::syscall6(nr, fd, &mut m as *mut libc::msghdr as usize, flags as usize, 0, 0, 0)
            }
            // A pipe is asked not to wait; one that refuses RWF_NOWAIT (after a kernel splice
            // on it) waits in the call.
            (Kernel::Pipe, w) => {
                let nr = if w { libc::SYS_pwritev2 } else { libc::SYS_preadv2 };
                match sys::syscall6(nr, fd, v, n, usize::MAX, usize::MAX, libc::RWF_NOWAIT as usize) {
                    Err(libc::EOPNOTSUPP) => sys::syscall6(nr, fd, v, n, usize::MAX, usize::MAX, 0),
                    r => r,
                }
            }
            (_, w) => match self.off {
                Some(off) => {
                    let nr = if w { libc::SYS_pwritev } else { libc::SYS_preadv };
                    sys::syscall6(nr, fd, v, n, off as usize, (off as u64 >> 32) as usize, 0)
                }
                None => sys::syscall6(if w { libc::SYS_writev } else { libc::SYS_readv }, fd, v, n, 0, 0, 0),
            },
        };
        if let (Ok(k), Some(off)) = (res, self.off.as_mut()) {
            *off += k as i64;
        }
        res
    }

    fn wait(&mut self, env: &dyn PipeEnv) -> Option<WaitOutcome> {
        (!self.nonblock).then(|| wait_fd(env, self.fd, if self.write { libc::POLLOUT } else { libc::POLLIN }))
    }

    fn fill(&self) -> bool {
        self.kind == Kernel::File
    }

    fn first_offset(&self) -> usize {
        match (self.kind, self.off) {
            (Kernel::File, Some(off)) => off as usize,
            (Kernel::File, None) => sys::lseek(self.fd, 0, libc::SEEK_CUR).map_or(0, |p| p as usize),
            _ => 0,
        }
    }
}

fn unsafe_zeroed_msghdr() -> libc::msghdr {
    // SAFETY: an all-zero msghdr (null pointers, zero lengths) is valid.
    unsafe { core::mem::zeroed() }
}

/// A shim socket as the other end: its own send and receive paths, asked not to wait.
struct SockEnd<'a> {
    r: &'a Region,
    g: &'a thread::Guard,
    p: PipeFd,
    nonblock: bool,
    write: bool,
}

impl SpliceEnd for SockEnd<'_> {
    fn transfer(&mut self, pieces: &[Piece], _more: bool) -> Result<usize, Errno> {
        let flags = libc::MSG_DONTWAIT;
        let served = if self.write {
            crate::family::unix::send(self.r, self.g, &self.p, pieces, flags)
        } else {
            crate::family::unix::recv(
                self.r,
                self.g,
                &self.p,
                pieces,
                flags,
                &mut crate::family::scm::Ctl::none(),
            )
            .map(|res| res.map(|(n, _)| n))
        };
        // Given back to the kernel meanwhile: its queue.
        served.unwrap_or_else(|| {
            let mut end = KernelEnd {
                fd: self.p.fd,
                kind: Kernel::Socket,
                off: None,
                nonblock: true,
                more: false,
                write: self.write,
            };
            end.transfer(pieces, false)
        })
    }

    fn wait(&mut self, env: &dyn PipeEnv) -> Option<WaitOutcome> {
        if self.nonblock {
            return None;
        }
        let s = crate::family::poll::Shim::of(&self.p);
        let targets = crate::family::poll::wait_target(self.r, &s, !self.write, self.write);
        let word = thread::handled_word();
        let extra = [(word, word.load(core::sync::atomic::Ordering::Relaxed))];
        // Room for the object's queues and the handler word.
        let mut waiters = [sys::FutexWaitv::default(); 4];
        Some(env.wait(&mut || {
            let pipes = targets.iter().flatten().copied();
            let sleep = &mut shared_state::pipe::futex_waitv_sleep;
            if shared_state::pipe::poll_wait(self.r, pipes, None, &extra, None, sleep, &mut waiters) {
                WaitOutcome::Interrupted
            } else {
                WaitOutcome::Woken
            }
        }))
    }
}

/// The other end of a sendfile from a pipe: `do_splice_read` finds no `splice_read`.
struct NoSpliceRead;

impl SpliceEnd for NoSpliceRead {
    fn transfer(&mut self, _: &[Piece], _: bool) -> Result<usize, Errno> {
        Err(libc::EINVAL)
    }

    fn wait(&mut self, _: &dyn PipeEnv) -> Option<WaitOutcome> {
        None
    }
}

/// How a kernel fd that is not a pipe is read or written.
fn kernel_kind(f: File) -> Kernel {
    match f.mode {
        libc::S_IFREG if f.flags & libc::O_DIRECT == 0 => Kernel::File,
        libc::S_IFSOCK => Kernel::Socket,
        libc::S_IFIFO => Kernel::Pipe,
        _ => Kernel::Other,
    }
}

/// Whether `out` takes a splice at all, and every check `do_splice` makes of it before data
/// moves: a splice from an empty pipe of our own that must not wait says EAGAIN, or the
/// kernel's error for `out` (no `splice_write`, O_APPEND, an offset it cannot take…).
fn probe_out(out: i32, off: Option<i64>) -> Result<(), Errno> {
    let (rd, wr) = sys::pipe2(libc::O_CLOEXEC)?;
    let mut o = off.unwrap_or(0);
    let op = if off.is_some() { &mut o as *mut i64 as usize } else { 0 };
    let res = sys::syscall6(
        libc::SYS_splice,
        rd as usize,
        0,
        out as usize,
        op,
        1,
        libc::SPLICE_F_NONBLOCK as usize,
    );
    sys::close(rd);
    sys::close(wr);
    match res {
        Err(libc::EAGAIN) => Ok(()),
        Err(e) => Err(e),
        // Nothing can have moved from an empty pipe.
        Ok(_) => Ok(()),
    }
}

/// A pipe fd's env for a splice: `nowait` adds SPLICE_F_NONBLOCK and the other side's
/// O_NONBLOCK where the kernel counts them.
fn env<'a>(p: &'a PipeFd, r: &'a Region, g: &'a thread::Guard, nowait: bool) -> Env<'a> {
    Env::new(p, r, g, nowait, Side::Pipe)
}

fn shim_pipe(r: &Region, fd: i32) -> Option<PipeFd> {
    fd::lookup(r, fd).filter(|p| !p.socket)
}

fn shim_socket(r: &Region, fd: i32) -> Option<PipeFd> {
    fd::lookup(r, fd).filter(|p| p.socket)
}

/// The result of a pipe operation that found its pipe handed back meanwhile: the call is
/// made again, now seeing the kernel's pipe.
fn again(res: Result<usize, Errno>, redo: impl FnOnce() -> Option<i64>) -> Option<i64> {
    match res {
        Err(HANDED_BACK) => redo(),
        res => Some(crate::base::iov::ret(res)),
    }
}

/// EPIPE from a pipe with no reader comes with SIGPIPE (`send_sig(SIGPIPE, current, 0)`).
fn signal_if(broken: bool) {
    if broken {
        pipes::raise_sigpipe();
    }
}

/// An offset argument: None for a null pointer, EFAULT for a bad one.
fn offset_arg(uaddr: usize) -> Result<Option<i64>, Errno> {
    (uaddr != 0).then(|| read_off(uaddr)).transpose()
}

/// `splice(fd_in, off_in, fd_out, off_out, len, flags)`.
pub fn splice(r: &Region, g: &thread::Guard, a: &[u64; 6]) -> Option<i64> {
    let (fd_in, uoff_in, fd_out, uoff_out) = (a[0] as i32, a[1] as usize, a[2] as i32, a[3] as usize);
    let (len, flags) = (a[4] as usize, a[5] as u32);
    let (pin, pout) = (fd::lookup(r, fd_in), fd::lookup(r, fd_out));
    if pin.is_none() && pout.is_none() {
        return None;
    }
    if len == 0 {
        return Some(0);
    }
    if flags & !SPLICE_F_ALL != 0 {
        return Some(neg(libc::EINVAL));
    }
    let (fin, fout) = match (File::of(fd_in), File::of(fd_out)) {
        (Err(e), _) | (_, Err(e)) => return Some(neg(e)),
        (Ok(i), Ok(o)) => (i, o),
    };
    if (fin.pipe() && uoff_in != 0) || (fout.pipe() && uoff_out != 0) {
        return Some(neg(libc::ESPIPE));
    }
    // __do_splice copies off_out first.
    let (off_out, off_in) = match offset_arg(uoff_out).and_then(|o| Ok((o, offset_arg(uoff_in)?))) {
        Ok(o) => o,
        Err(e) => return Some(neg(e)),
    };
    if !fin.readable() || !fout.writable() {
        return Some(neg(libc::EBADF));
    }
    let nb = flags & libc::SPLICE_F_NONBLOCK != 0;
    let more = flags & libc::SPLICE_F_MORE != 0;
    let mut broken = false;
    // The result, and the offset argument to write back with its new value.
    let (res, off) = match (fin.pipe(), fout.pipe()) {
        (true, true) => {
            let nb = nb || fin.nonblock() || fout.nonblock();
            let res = match (shim_pipe(r, fd_in), shim_pipe(r, fd_out)) {
                (Some(i), Some(o)) if i.pipe == o.pipe => Err(libc::EINVAL),
                (Some(i), Some(o)) => {
                    let envs = (env(&i, r, g, nb), env(&o, r, g, nb));
                    pipe_splice::pipe_to_pipe(r, i.pipe, o.pipe, len, (&envs.0, &envs.1), true, &mut broken)
                }
                (Some(i), None) => {
                    let mut end = kernel_end(fd_out, Kernel::Pipe, None, nb, more, true);
                    pipe_splice::splice_from(r, i.pipe, len, &env(&i, r, g, nb), &mut end, true)
                }
                (None, Some(o)) => {
                    let mut end = kernel_end(fd_in, Kernel::Pipe, None, nb, more, false);
                    pipe_splice::splice_into(r, o.pipe, len, &env(&o, r, g, nb), &mut end, &mut broken)
                }
                (None, None) => return None,
            };
            (res, None)
        }
        (true, false) => {
            let Some(i) = shim_pipe(r, fd_in) else {
                // A kernel pipe into a shim socket.
                pipes::hand_back(r, fd_out);
                return None;
            };
            if let Err(e) = check_out(fout, off_out, len) {
                return Some(neg(e));
            }
            let env = env(&i, r, g, nb || fin.nonblock());
            match shim_socket(r, fd_out) {
                Some(p) => {
                    let mut end = SockEnd { r, g, p, nonblock: fout.nonblock(), write: true };
                    (pipe_splice::splice_from(r, i.pipe, len, &env, &mut end, true), None)
                }
                None => {
                    let kind = kernel_kind(fout);
                    if kind == Kernel::Other
                        && let Err(e) = probe_out(fd_out, off_out)
                    {
                        return Some(neg(e));
                    }
                    let mut end = kernel_end(fd_out, kind, off_out, fout.nonblock(), more, true);
                    let res = pipe_splice::splice_from(r, i.pipe, len, &env, &mut end, true);
                    (res, end.off.map(|o| (uoff_out, o)))
                }
            }
        }
        (false, true) => {
            let Some(o) = shim_pipe(r, fd_out) else {
                // A shim socket into a kernel pipe.
                pipes::hand_back(r, fd_in);
                return None;
            };
            if off_in.is_some() && !fin.seekable() {
                return Some(neg(libc::EINVAL));
            }
            if let Err(e) = verify_area(off_in.unwrap_or_else(|| fin.position().unwrap_or(0)), len) {
                return Some(neg(e));
            }
            let env = env(&o, r, g, nb || fout.nonblock());
            match shim_socket(r, fd_in) {
                Some(p) => {
                    let nonblock = nb || fout.nonblock() || fin.nonblock();
                    let mut end = SockEnd { r, g, p, nonblock, write: false };
                    (pipe_splice::splice_into(r, o.pipe, len, &env, &mut end, &mut broken), None)
                }
                None => {
                    let kind = kernel_kind(fin);
                    let nonblock = nb || fout.nonblock() || (kind == Kernel::Socket && fin.nonblock());
                    let mut end = kernel_end(fd_in, kind, off_in, nonblock, more, false);
                    let res = pipe_splice::splice_into(r, o.pipe, len, &env, &mut end, &mut broken);
                    (res, end.off.map(|o| (uoff_in, o)))
                }
            }
        }
        (false, false) => (Err(libc::EINVAL), None),
    };
    signal_if(broken);
    if let (Ok(_), Some((uaddr, o))) = (res, off)
        && crate::base::copy::slice_out(uaddr, &[o]).is_err()
    {
        return Some(neg(libc::EFAULT));
    }
    again(res, || splice(r, g, a))
}

/// `do_splice`'s checks of a file spliced to from a pipe: an offset it cannot take, O_APPEND,
/// and the position and count.
fn check_out(fout: File, off: Option<i64>, len: usize) -> Result<(), Errno> {
    if off.is_some() && !fout.seekable() {
        return Err(libc::EINVAL);
    }
    if fout.flags & libc::O_APPEND != 0 {
        return Err(libc::EINVAL);
    }
    verify_area(off.unwrap_or_else(|| fout.position().unwrap_or(0)), len)
}

fn kernel_end(fd: i32, kind: Kernel, off: Option<i64>, nonblock: bool, more: bool, write: bool) -> KernelEnd {
    KernelEnd { fd, kind, off, nonblock, more, write }
}

/// `tee(fd_in, fd_out, len, flags)`.
pub fn tee(r: &Region, g: &thread::Guard, a: &[u64; 6]) -> Option<i64> {
    let (fd_in, fd_out, len, flags) = (a[0] as i32, a[1] as i32, a[2] as usize, a[3] as u32);
    let (pin, pout) = (shim_pipe(r, fd_in), shim_pipe(r, fd_out));
    if pin.is_none() && pout.is_none() {
        return None;
    }
    if flags & !SPLICE_F_ALL != 0 {
        return Some(neg(libc::EINVAL));
    }
    if len == 0 {
        return Some(0);
    }
    let (fin, fout) = match (File::of(fd_in), File::of(fd_out)) {
        (Err(e), _) | (_, Err(e)) => return Some(neg(e)),
        (Ok(i), Ok(o)) => (i, o),
    };
    if !fin.readable() || !fout.writable() {
        return Some(neg(libc::EBADF));
    }
    if !fin.pipe() || !fout.pipe() || pin.zip(pout).is_some_and(|(i, o)| i.pipe == o.pipe) {
        return Some(neg(libc::EINVAL));
    }
    let nb = flags & libc::SPLICE_F_NONBLOCK != 0 || fin.nonblock() || fout.nonblock();
    let redo = || tee(r, g, a);
    let mut broken = false;
    match (pin, pout) {
        (Some(i), Some(o)) => {
            let envs = (env(&i, r, g, nb), env(&o, r, g, nb));
            let res =
                pipe_splice::pipe_to_pipe(r, i.pipe, o.pipe, len, (&envs.0, &envs.1), false, &mut broken);
            signal_if(broken);
            again(res, redo)
        }
        (Some(i), None) => {
            let mut end = KernelEnd {
                fd: fd_out,
                kind: Kernel::Pipe,
                off: None,
                nonblock: nb,
                more: false,
                write: true,
            };
            again(pipe_splice::splice_from(r, i.pipe, len, &env(&i, r, g, nb), &mut end, false), redo)
        }
        // Only the kernel reads its pipe without consuming it.
        _ => {
            pipes::hand_back(r, fd_out);
            None
        }
    }
}

/// `sendfile(out_fd, in_fd, offset, count)` (x86_64's is sendfile64). Served when it moves
/// data into a shim pipe, or from a file into a shim socket; with a shim pipe or socket as
/// the input and anything else as the output, the kernel fails it without moving data, on
/// the placeholders alike (no `splice_read` for a pipe, no seeking a socket), except a
/// socket into a kernel pipe, which it serves once the socket is its own.
pub fn sendfile(r: &Region, g: &thread::Guard, a: &[u64; 6]) -> Option<i64> {
    let (out_fd, in_fd, uoff, count) = (a[0] as i32, a[1] as i32, a[2] as usize, a[3] as usize);
    let (pout, pin) = (fd::lookup(r, out_fd), fd::lookup(r, in_fd));
    let served = pout.is_some_and(|p| !p.socket) || (pout.is_some() && pin.is_none());
    if !served {
        if pin.is_some_and(|p| p.socket) && File::of(out_fd).is_ok_and(|f| f.pipe()) {
            pipes::hand_back(r, in_fd);
        }
        return None;
    }
    let off = match offset_arg(uoff) {
        Ok(o) => o,
        Err(e) => return Some(neg(e)),
    };
    let res = send_file(r, g, out_fd, in_fd, off, count);
    // The offset goes back whatever happened (the sendfile64 syscall's put_user).
    if let Some(o) = off {
        let moved = *res.as_ref().unwrap_or(&0) as i64;
        if crate::base::copy::slice_out(uoff, &[o + moved]).is_err() {
            return Some(neg(libc::EFAULT));
        }
    }
    again(res, || sendfile(r, g, a))
}

/// `do_sendfile` into a shim pipe, or from a file into a shim socket.
fn send_file(
    r: &Region,
    g: &thread::Guard,
    out_fd: i32,
    in_fd: i32,
    off: Option<i64>,
    count: usize,
) -> Result<usize, Errno> {
    let fin = File::of(in_fd)?;
    if !fin.readable() {
        return Err(libc::EBADF);
    }
    if off.is_some() && !fin.seekable() {
        return Err(libc::ESPIPE);
    }
    let pos = match off {
        Some(o) => o,
        None => fin.position().unwrap_or(0),
    };
    verify_area(pos, count)?;
    let count = count.min(MAX_RW_COUNT);
    let fout = File::of(out_fd)?;
    if !fout.writable() {
        return Err(libc::EBADF);
    }
    if let Some(o) = shim_pipe(r, out_fd) {
        let env = env(&o, r, g, false);
        let mut broken = false;
        // SPLICE_F_NONBLOCK when the pipe is non-blocking, which a socket's read takes too.
        let nonblock = fout.nonblock() || fin.nonblock();
        let res = if fin.pipe() {
            pipe_splice::splice_into(r, o.pipe, count, &env, &mut NoSpliceRead, &mut broken)
        } else if let Some(p) = shim_socket(r, in_fd) {
            let mut end = SockEnd { r, g, p, nonblock, write: false };
            pipe_splice::splice_into(r, o.pipe, count, &env, &mut end, &mut broken)
        } else {
            let kind = kernel_kind(fin);
            let nonblock = kind == Kernel::Socket && nonblock;
            let mut end = kernel_end(in_fd, kind, off, nonblock, false, false);
            pipe_splice::splice_into(r, o.pipe, count, &env, &mut end, &mut broken)
        };
        signal_if(broken);
        return res;
    }
    let Some(p) = shim_socket(r, out_fd) else { return Err(HANDED_BACK) };
    verify_area(fout.position().unwrap_or(0), count)?;
    if fout.flags & libc::O_APPEND != 0 || !fin.seekable() {
        return Err(libc::EINVAL);
    }
    let res = file_to_socket(r, g, &p, fout.nonblock(), in_fd, pos, count);
    if let (Ok(k), None) = (res, off) {
        // The file's own position, as do_sendfile sets it.
        let _ = sys::lseek(in_fd, pos + k as i64, libc::SEEK_SET);
    }
    res
}

/// `do_splice_direct` from a file to a shim socket: the file read at `pos` a pipe's worth at a
/// time (64 KiB, through a scratch mapping) and sent, until `count`, the end of the file or a
/// short send; the file's position follows what was sent when no offset was given.
fn file_to_socket(
    r: &Region,
    g: &thread::Guard,
    p: &PipeFd,
    nonblock: bool,
    in_fd: i32,
    pos: i64,
    count: usize,
) -> Result<usize, Errno> {
    const CHUNK: usize = 65536;
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    let buf = sys::mmap(0, CHUNK, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)?;
    let flags = if nonblock { libc::MSG_DONTWAIT } else { 0 };
    let mut done = 0usize;
    let res = loop {
        if done == count {
            break Ok(done);
        }
        let want = (count - done).min(CHUNK);
        // SAFETY: `buf` is our fresh mapping of CHUNK bytes.
        let slice = unsafe { core::slice::from_raw_parts_mut(buf as *mut u8, want) };
        let got = match sys::pread(in_fd, slice, (pos + done as i64) as u64) {
            Ok(0) => break Ok(done),
            Ok(k) => k,
            Err(e) => break if done > 0 { Ok(done) } else { Err(e) },
        };
        let sent = match crate::family::unix::send(r, g, p, &[(buf, got)], flags) {
            Some(res) => res,
            None => {
                let mut end = KernelEnd {
                    fd: p.fd,
                    kind: Kernel::Socket,
                    off: None,
                    nonblock,
                    more: false,
                    write: true,
                };
                end.transfer(&[(buf, got)], false)
            }
        };
        match sent {
            Ok(k) => {
                done += k;
                if k < got {
                    break Ok(done);
                }
            }
            Err(e) => break if done > 0 { Ok(done) } else { Err(e) },
        }
    };
    let _ = sys::munmap(buf, CHUNK);
    res
}
