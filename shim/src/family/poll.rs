//! poll, ppoll, select and pselect6 over any mix of shim and kernel fds (fs/select.c).
//!
//! Readiness of a shim pipe comes from its ring (POLLIN, POLLOUT); POLLHUP and POLLERR come
//! from the placeholder, which the kernel polls alongside the real kernel fds. A wait on shim
//! pipes only sleeps on their futex words (through the thread's io_uring when there are more
//! than one futex_waitv takes); a wait that also involves kernel fds or a signal mask sleeps
//! on the words and the kernel fds at once through the io_uring, with the mask installed (in
//! the kernel's ppoll in short slices, re-checking the rings in between, where that cannot be
//! had).

use crate::base::copy::{slice_in as copy_slice_in, slice_out as copy_slice_out};
use crate::base::fd::{self, PipeFd};
use crate::base::thread;
use crate::base::{scratch, uring};
use core::sync::atomic::{AtomicU32, Ordering};
use shared_state::Region;
use shared_state::pipe;
use shared_state::sys::{self, Errno};
use shared_state::wait::{WaitOutcome, deadline_after};

/// The longest sleep between two looks at the rings when the kernel must be polled too and
/// no io_uring sleep can watch both.
const MIXED_SLICE_NS: i64 = 2_000_000;
const POLLIN_SET: i16 = libc::POLLRDNORM | libc::POLLRDBAND | libc::POLLIN | libc::POLLHUP | libc::POLLERR;
const POLLOUT_SET: i16 = libc::POLLWRBAND | libc::POLLWRNORM | libc::POLLOUT | libc::POLLERR;
const POLLEX_SET: i16 = libc::POLLPRI;

/// A shim object as pollers (poll, select, epoll) see it: the object and the directions of
/// the fd that names it, and whether it is a socket's send queue (which receives from its
/// peer's). An epoll interest keeps it, so a waiter needs no fd of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shim {
    pub pipe: pipe::PipeHandle,
    pub read: bool,
    pub write: bool,
    pub socket: bool,
}

const SHIM_READ: u64 = 1 << 62;
const SHIM_WRITE: u64 = 1 << 61;
const SHIM_SOCKET: u64 = 1 << 60;

impl Shim {
    pub fn of(p: &PipeFd) -> Shim {
        Shim { pipe: p.pipe, read: p.read, write: p.write, socket: p.socket }
    }

    pub fn to_bits(self) -> u64 {
        self.pipe.to_bits()
            | if self.read { SHIM_READ } else { 0 }
            | if self.write { SHIM_WRITE } else { 0 }
            | if self.socket { SHIM_SOCKET } else { 0 }
    }

    pub fn from_bits(b: u64) -> Shim {
        Shim {
            pipe: pipe::PipeHandle::from_bits(b & ((1 << 48) - 1)),
            read: b & SHIM_READ != 0,
            write: b & SHIM_WRITE != 0,
            socket: b & SHIM_SOCKET != 0,
        }
    }

    /// The objects it reads from and writes to: a pipe's own; a socket's peer's (none while
    /// a connection is pending) and its own (none once given back to the kernel).
    fn queues(&self, r: &Region) -> (Option<pipe::PipeHandle>, Option<pipe::PipeHandle>) {
        if !self.socket {
            return (Some(self.pipe), Some(self.pipe));
        }
        // A datagram socket's own queue is its receive queue; it sends into its peer's.
        if self.recv_queue(r) {
            return (Some(self.pipe), pipe::sock_peer(r, self.pipe));
        }
        (pipe::sock_peer(r, self.pipe), (!pipe::handed_back(r, self.pipe)).then_some(self.pipe))
    }

    fn recv_queue(&self, r: &Region) -> bool {
        self.socket && pipe::sock_flags(r, self.pipe) & pipe::SOCK_RECV_QUEUE != 0
    }
}

/// The readiness a shim object itself knows (POLLIN|POLLRDNORM, POLLOUT|POLLWRNORM, and a
/// socket's POLLWRBAND, for the fd's directions); POLLHUP and POLLERR come from its
/// placeholder, which the kernel polls (and so do a socket's end of file and, once it is
/// given back to the kernel, all of it).
pub fn readiness(r: &Region, s: &Shim) -> i16 {
    let (rx, tx) = s.queues(r);
    let mut m = 0;
    if s.read && rx.is_some_and(|h| pipe::pipe_poll(r, h).0) {
        m |= libc::POLLIN | libc::POLLRDNORM;
    }
    // An out-of-band byte to take (unix_poll's EPOLLPRI).
    if s.socket && s.read && rx.is_some_and(|h| pipe::sock_oob_pending(r, h)) {
        m |= libc::POLLPRI;
    }
    let writable = if s.recv_queue(r) {
        crate::family::dgram::writable(r, s.pipe)
    } else {
        tx.is_some_and(|h| pipe::pipe_poll(r, h).1)
    };
    if s.write && writable {
        m |= libc::POLLOUT | libc::POLLWRNORM;
        // sock_poll's writable set (unix_poll; tcp_poll has no POLLWRBAND).
        if s.socket && !pipe::sock_tcp(r, s.pipe) {
            m |= libc::POLLWRBAND;
        }
    }
    m
}

/// The placeholder's events a kernel poll or epoll interest must ask for: a pipe's none
/// (POLLHUP and POLLERR come anyway); a socket's end of file, and everything once the
/// kernel carries its data.
pub fn placeholder_events(r: &Region, s: &Shim, events: u32) -> u32 {
    if !s.socket {
        return 0;
    }
    if pipe::handed_back(r, s.pipe) {
        return events;
    }
    events & (libc::POLLIN | libc::POLLRDNORM | libc::POLLRDHUP | libc::POLLPRI) as u16 as u32
}

/// An epoll set watches the object from now on (a socket: both its queues). Its own first:
/// a pending socket's link, made meanwhile or later, passes it on to the peer's queue
/// (`pipe::sock_link`).
pub fn watched(r: &Region, s: &Shim) {
    pipe::set_ep_usage(r, s.pipe);
    // The mark before the look for the peer's queue (release stores by the linker, who
    // fences too).
    sys::full_fence();
    let (rx, tx) = s.queues(r);
    for h in [rx, tx].into_iter().flatten() {
        pipe::set_ep_usage(r, h);
    }
}

/// EPOLLERR for a hung-up socket `s` whose ECONNRESET is still to be read (see
/// `unix::pending_error`), when `fd` (the number an epoll interest was added with) still names
/// it here.
pub fn hangup_error(r: &Region, s: &Shim, fd: i32) -> u32 {
    match fd::lookup(r, fd) {
        Some(p) if s.socket && Shim::of(&p) == *s => crate::family::unix::pending_error(r, &p) as u16 as u32,
        _ => 0,
    }
}

/// Whether an exec in progress may close an end the object's sleepers wait for.
pub fn in_exec_window(r: &Region, s: &Shim) -> bool {
    let (rx, tx) = s.queues(r);
    [Some(s.pipe), rx, tx].into_iter().flatten().any(|h| pipe::exec_window(r, h).is_some())
}

/// A key that moves whenever an fd of the object may have been closed anywhere.
pub fn liveness(r: &Region, s: &Shim) -> u64 {
    pipe::liveness_gens(r, s.pipe)
}

/// What a sleeper waiting for the object passes to `pipe::poll_wait`: the futex words'
/// owners, and whether each is ready already for a wanted read or write. A socket waits on
/// its peer's queue to read and its own to write (its own also while pending: the link is
/// announced there).
pub fn wait_target(
    r: &Region,
    s: &Shim,
    want_read: bool,
    want_write: bool,
) -> [Option<(pipe::PipeHandle, bool, bool)>; 2] {
    if !s.socket {
        return [Some((s.pipe, s.read && want_read, s.write && want_write)), None];
    }
    let (rx, tx) = s.queues(r);
    if s.recv_queue(r) {
        // Writable by its own charge and its peer's queue length, which no one word says: a
        // sleeper is woken by either queue and looks again (see `dgram_writable`).
        return [rx.map(|h| (h, s.read && want_read, false)), tx.map(|h| (h, false, false))];
    }
    [rx.map(|h| (h, s.read && want_read, false)), Some((s.pipe, false, s.write && want_write))]
}

fn now() -> libc::timespec {
    sys::clock_gettime(libc::CLOCK_MONOTONIC)
}

pub fn ns_until(deadline: &libc::timespec) -> i64 {
    let n = now();
    (deadline.tv_sec - n.tv_sec).saturating_mul(1_000_000_000) + (deadline.tv_nsec - n.tv_nsec)
}

pub fn ts_from_ns(ns: i64) -> libc::timespec {
    let ns = ns.max(0);
    libc::timespec { tv_sec: ns / 1_000_000_000, tv_nsec: ns % 1_000_000_000 }
}

/// One poll over `fds` (already copied in); `shim[i]` says which entries are shim pipes.
/// Fills revents; returns how many are ready, or the wait's error.
fn poll_loop(
    r: &Region,
    g: &thread::Guard,
    fds: &mut [libc::pollfd],
    shim: &[Option<PipeFd>],
    deadline: Option<libc::timespec>,
    sigmask: Option<u64>,
    select: bool,
) -> Result<usize, Errno> {
    let kernel_fds = sigmask.is_some() || shim.iter().zip(fds.iter()).any(|(s, f)| s.is_none() && f.fd >= 0);
    let mut kfds = scratch::take(fds.len(), libc::pollfd { fd: -1, events: 0, revents: 0 })?;
    let kfds = &mut kfds[..];
    let mut wfiles = scratch::take(fds.len(), libc::pollfd { fd: -1, events: 0, revents: 0 })?;
    let mut shim_ready = scratch::take(fds.len(), 0i16)?;
    let mut quiet_gens = scratch::take(fds.len(), 0u64)?;
    let mut mask = sigmask.unwrap_or(0);
    thread::sanitize_mask(&mut mask);
    loop {
        // The rings first: when one is ready the signal mask must not let a handler run.
        let (mut any_shim_ready, mut shim_epoll) = (false, false);
        for ((f, s), m) in fds.iter().zip(shim).zip(shim_ready.iter_mut()) {
            *m = 0;
            if let Some(p) = s {
                if p.socket {
                    crate::family::unix::drain(r, p);
                }
                *m = readiness(r, &Shim::of(p)) & f.events;
            } else if f.fd >= 0 {
                // An epoll fd whose set has shim interests: readable when one is ready (its
                // kernel fds the kernel's poll below reports).
                if let Some(ready) = crate::family::epoll::poll_ready(r, f.fd) {
                    shim_epoll = true;
                    *m = ready & f.events;
                }
            }
            any_shim_ready |= *m != 0;
        }
        let remaining = deadline.map(|d| ns_until(&d));
        // Before the placeholders are asked: a close after this moves it (see the wait below).
        let gens = liveness_sum(r, shim);
        // With the caller's mask, as the kernel checks for signals with it installed.
        let maskp =
            if sigmask.is_some() && !any_shim_ready { &mask as *const u64 } else { core::ptr::null() };
        // Each shim entry's generations before the kernel is asked (see `QUIET`).
        for (q, s) in quiet_gens.iter_mut().zip(shim) {
            *q = s.map_or(0, |p| liveness(r, &Shim::of(&p)));
        }
        let skip = !kernel_fds
            && nfds_allowed(fds.len())
            && shim.iter().zip(quiet_gens.iter()).all(|(s, &q)| s.is_none_or(|p| quiet(r, &p, q)));
        if skip {
            for (k, f) in kfds.iter_mut().zip(fds.iter()) {
                *k = libc::pollfd { fd: f.fd, events: 0, revents: 0 };
            }
        } else {
            thread::clear_interrupt();
            let polled = kernel_poll(r, g, kfds, fds, shim, 0, maskp);
            match polled {
                Err(libc::EINTR) if thread::take_interrupt().is_some() => return Err(libc::EINTR),
                Err(libc::EINTR) => continue,
                Err(e) => return Err(e),
                Ok(_) => {}
            }
            note_nfds_allowed(fds.len());
            for ((s, k), &q) in shim.iter().zip(kfds.iter()).zip(quiet_gens.iter()) {
                if let Some(p) = s {
                    note_quiet(r, p, q, k.revents);
                }
            }
        }
        // select refuses a closed fd in any set before it waits.
        if select && kfds.iter().any(|k| k.revents & libc::POLLNVAL != 0) {
            return Err(libc::EBADF);
        }
        let mut ready = 0;
        for (((f, k), &m), s) in fds.iter_mut().zip(kfds.iter()).zip(shim_ready.iter()).zip(shim) {
            f.revents = k.revents | m;
            if let Some(p) = s.filter(|p| p.socket && k.revents & libc::POLLHUP != 0) {
                f.revents |= crate::family::unix::pending_error(r, &p);
            }
            if f.revents != 0 {
                ready += 1;
            }
        }
        if ready > 0 || remaining.is_some_and(|ns| ns <= 0) {
            return Ok(ready);
        }
        thread::clear_interrupt();
        // While an exec may close a peer's end, the kernel wakes us as it goes (pipe_exec).
        let exec = shim.iter().flatten().any(|p| in_exec_window(r, &Shim::of(p)));
        let mixed = kernel_fds || exec;
        let pipes = shim.iter().zip(fds.iter()).filter_map(|(s, f)| s.map(|p| (p, f))).flat_map(|(p, f)| {
            let rd = f.events & (libc::POLLIN | libc::POLLRDNORM) != 0;
            let wr = f.events & (libc::POLLOUT | libc::POLLWRNORM) != 0;
            wait_target(r, &Shim::of(&p), rd, wr).into_iter().flatten()
        });
        let word = thread::handled_word();
        // The handler word, then the poll word of each epoll fd with shim interests.
        let epolls = if shim_epoll { fds.len() } else { 0 };
        let mut extra = scratch::take(1 + epolls, (word, word.load(core::sync::atomic::Ordering::Relaxed)))?;
        let mut counted = scratch::take(epolls, None)?;
        let (mut nextra, mut look_again) = (1, false);
        for ((f, s), c) in fds.iter().zip(shim).filter(|_| shim_epoll).zip(counted.iter_mut()) {
            if s.is_some() || f.fd < 0 {
                continue;
            }
            match crate::family::epoll::poll_sleep(r, f.fd, f.events) {
                crate::family::epoll::PollSleep::Sleep(o, seq) => {
                    *c = Some(o);
                    extra[nextra] = (&o.poll_word, seq);
                    nextra += 1;
                }
                crate::family::epoll::PollSleep::Ready => look_again = true,
                crate::family::epoll::PollSleep::NotServed => {}
            }
        }
        let done = |counted: &[Option<&shared_state::epoll::EpInst>]| {
            counted.iter().flatten().for_each(|o| o.poll_done());
        };
        if look_again {
            done(&counted);
            continue;
        }
        // Two words per socket (its own queue and its peer's), and the extra words.
        let mut waiters =
            scratch::take(2 * shim.iter().flatten().count() + nextra, sys::FutexWaitv::default())?;
        // A close since the placeholders were asked woke nobody yet: look again.
        let closed = || liveness_sum(r, shim) != gens || dgram_writable(r, fds, shim);
        // Kernel files and shim words in one sleep, with the caller's mask. The placeholders
        // only while an exec may close a peer's end; otherwise a close moves a word.
        if mixed {
            for (w, (k, s)) in wfiles.iter_mut().zip(kfds.iter().zip(shim)) {
                *w = if s.is_none() || exec { *k } else { libc::pollfd { fd: -1, events: 0, revents: 0 } };
            }
        }
        let sleep_mask = sigmask.is_some().then_some(&mask);
        let mut in_slices = false;
        let files = if mixed { &wfiles[..] } else { &[][..] };
        pipe::poll_wait(
            r,
            pipes,
            deadline.as_ref(),
            &extra[..nextra],
            Some(&closed),
            &mut |w: &[sys::FutexWaitv], until: &libc::timespec| {
                if !mixed && w.len() <= pipe::POLL_WAIT_SLOTS {
                    return g.allow_signals(|| pipe::futex_waitv_sleep(w, until));
                }
                match uring::wait_any(g, files, w, until, sleep_mask) {
                    Some(out) => out,
                    None if mixed => {
                        in_slices = true;
                        WaitOutcome::Woken
                    }
                    None => g.allow_signals(|| pipe::futex_waitv_sleep(w, until)),
                }
            },
            &mut waiters,
        );
        // No io_uring, or too many files for one ring: the kernel's ppoll in short slices.
        if in_slices {
            let slice = remaining.map_or(MIXED_SLICE_NS, |ns| ns.min(MIXED_SLICE_NS));
            let maskp = if sigmask.is_some() { &mask as *const u64 } else { core::ptr::null() };
            let _ = kernel_poll(r, g, kfds, fds, shim, slice, maskp);
        }
        done(&counted);
        // poll is never restarted after a handler ran (even one with SA_RESTART).
        if thread::take_interrupt().is_some() {
            return Err(libc::EINTR);
        }
    }
}

const QUIET_MS: u32 = 10;

/// How many entries the last ppoll of this process took (so RLIMIT_NOFILE allowed them), at
/// `NFDS_AT` (ms): a skipped poll cannot give the kernel's EINVAL for more than the limit,
/// so a lower limit set since shows `QUIET_MS` later at most.
static NFDS_OK: AtomicU32 = AtomicU32::new(0);
static NFDS_AT: AtomicU32 = AtomicU32::new(0);

fn now_ms() -> u32 {
    (sys::monotonic_ns() / 1_000_000) as u32
}

fn fresh(at: &AtomicU32) -> bool {
    now_ms().wrapping_sub(at.load(Ordering::Relaxed)) < QUIET_MS
}

fn nfds_allowed(n: usize) -> bool {
    n <= NFDS_OK.load(Ordering::Relaxed) as usize && fresh(&NFDS_AT)
}

fn note_nfds_allowed(n: usize) {
    // The last one only: keeping a larger one fresh would trust it past `QUIET_MS`.
    NFDS_OK.store(n.min(u32::MAX as usize) as u32, Ordering::Relaxed);
    NFDS_AT.store(now_ms(), Ordering::Relaxed);
}

/// Whether the kernel found `p`'s placeholder without events at generations `gens` (now)
/// a moment ago, and what it could report since comes only through the region.
fn quiet(r: &Region, p: &PipeFd, gens: u64) -> bool {
    let i = p.fd as usize;
    let known =
        fd::QUIET.get(i).is_some_and(|q| q.load(Ordering::Relaxed) == !gens) && fresh(&fd::QUIET_AT[i]);
    known && !thread::in_vfork_child() && !pipe::handed_back(r, p.pipe) && !in_exec_window(r, &Shim::of(p))
}

/// Records what the kernel's poll found on `p`'s placeholder (`revents`) at generations
/// `gens`, read before it asked.
fn note_quiet(r: &Region, p: &PipeFd, gens: u64, revents: i16) {
    let Some(q) = fd::QUIET.get(p.fd as usize).filter(|_| !thread::in_vfork_child()) else { return };
    if revents == 0 {
        q.store(!gens, Ordering::Relaxed);
        fd::QUIET_AT[p.fd as usize].store(now_ms(), Ordering::Relaxed);
        return;
    }
    if revents & (libc::POLLHUP | libc::POLLERR | libc::POLLRDHUP) != 0 {
        hung_up(r, p.fd, gens);
    }
    // What the kernel reports now (a sender without the shim, say) must be asked for again.
    if q.load(Ordering::Relaxed) != 0 {
        q.store(0, Ordering::Relaxed);
    }
}

/// The kernel reports the placeholder `fd` names hung up, in error or shut down for reading,
/// with the object's generations `gens`: if a cache of this process took its peer for there
/// at these generations, no close told of its going, and every cache of the namespace (other
/// processes' too) must look again.
fn hung_up(r: &Region, fd: i32, gens: u64) {
    let quiet = fd::QUIET.get(fd as usize).is_some_and(|q| q.load(Ordering::Relaxed) == !gens);
    if quiet || crate::family::pipes::believed_present(fd, gens) {
        pipe::note_exit(r);
    }
}

/// [`hung_up`] for an epoll interest in `s`, added as `fd`, whose placeholder the kernel
/// reports with `kbits`.
pub fn kernel_events(r: &Region, s: &Shim, fd: i32, kbits: u32) {
    if kbits & (libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLRDHUP) as u32 != 0 {
        hung_up(r, fd, liveness(r, s));
    }
}

/// A key that moves whenever an fd of one of the shim objects may have been closed (each
/// generation only grows, so neither does a sum repeat).
/// Whether a datagram socket among `fds` that waits for POLLOUT is writable now (its
/// readiness may have changed before the sleeper was counted on its queues).
fn dgram_writable(r: &Region, fds: &[libc::pollfd], shim: &[Option<PipeFd>]) -> bool {
    shim.iter().zip(fds).any(|(s, f)| {
        s.is_some_and(|p| {
            let s = Shim::of(&p);
            f.events & (libc::POLLOUT | libc::POLLWRNORM) != 0
                && s.recv_queue(r)
                && readiness(r, &s) & libc::POLLOUT != 0
        })
    })
}

fn liveness_sum(r: &Region, shim: &[Option<PipeFd>]) -> u64 {
    shim.iter().flatten().fold(0u64, |k, p| k.wrapping_add(liveness(r, &Shim::of(p))))
}

/// The kernel's ppoll over `fds` as `kfds`: kernel fds with their events, shim pipes'
/// placeholders with none (for POLLHUP, POLLERR, POLLNVAL), for up to `ns`, under `mask`.
fn kernel_poll(
    r: &Region,
    g: &thread::Guard,
    kfds: &mut [libc::pollfd],
    fds: &[libc::pollfd],
    shim: &[Option<PipeFd>],
    ns: i64,
    mask: *const u64,
) -> Result<usize, Errno> {
    for (k, (f, s)) in kfds.iter_mut().zip(fds.iter().zip(shim)) {
        let events = match s {
            Some(p) => placeholder_events(r, &Shim::of(p), f.events as u16 as u32) as i16,
            None => f.events,
        };
        *k = libc::pollfd { fd: f.fd, events, revents: 0 };
    }
    let ts = ts_from_ns(ns);
    let (kp, n, tsp, mp) = (kfds.as_mut_ptr() as usize, kfds.len(), &ts as *const _ as usize, mask as usize);
    g.allow_signals(|| sys::syscall6(libc::SYS_ppoll, kp, n, tsp, mp, 8, 0))
}

/// Which entries are shim pipes; `None` when none is (the kernel then serves the call).
fn classify(r: &Region, fds: &[libc::pollfd], out: &mut [Option<PipeFd>]) -> Option<()> {
    let mut any = false;
    for (f, o) in fds.iter().zip(out.iter_mut()) {
        *o = if f.fd >= 0 { fd::lookup(r, f.fd) } else { None };
        any |= o.is_some() || f.fd >= 0 && crate::family::epoll::instance_of(f.fd).is_some();
    }
    any.then_some(())
}

fn nofile_limit() -> u64 {
    let mut lim = libc::rlimit64 { rlim_cur: 0, rlim_max: 0 };
    match sys::syscall6(
        libc::SYS_prlimit64,
        0,
        libc::RLIMIT_NOFILE as usize,
        0,
        &mut lim as *mut _ as usize,
        0,
        0,
    ) {
        Ok(_) => lim.rlim_cur,
        Err(_) => u64::MAX,
    }
}

/// Reads a user timespec; EFAULT or EINVAL as the kernel's poll_select_set_timeout.
pub fn user_timespec(addr: usize) -> Result<libc::timespec, Errno> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    copy_in(&mut ts, addr)?;
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(libc::EINVAL);
    }
    Ok(ts)
}

pub fn copy_in<T>(dst: &mut T, addr: usize) -> Result<(), Errno> {
    copy_slice_in(core::slice::from_mut(dst), addr)
}

pub fn copy_out<T>(addr: usize, src: &T) -> Result<(), Errno> {
    copy_slice_out(addr, core::slice::from_ref(src))
}

fn neg(e: Errno) -> i64 {
    -(e as i64)
}

/// `poll` (timeout in ms, negative = forever) and `ppoll` (timespec pointer, maybe a mask).
pub fn poll(
    r: &Region,
    g: &thread::Guard,
    ufds: usize,
    nfds: u64,
    timeout: Timeout,
    umask: usize,
) -> Option<i64> {
    let n = nfds as usize;
    // Beyond RLIMIT_NOFILE the kernel says EINVAL.
    if n == 0 || (n > 1024 && n as u64 > nofile_limit()) {
        return None;
    }
    let mut fds = match scratch::take(n, libc::pollfd { fd: -1, events: 0, revents: 0 }) {
        Ok(fds) => fds,
        Err(e) => return Some(neg(e)),
    };
    copy_slice_in(&mut fds, ufds).ok()?;
    let mut shim = match scratch::take(n, None) {
        Ok(shim) => shim,
        Err(e) => return Some(neg(e)),
    };
    // More entries than RLIMIT_NOFILE: the kernel's ppoll over the placeholders (the loop's
    // first call, after the timeout and the mask were read as the kernel reads them) says
    // EINVAL, so no call here asks for the limit.
    classify(r, &fds, &mut shim)?;
    let deadline = match timeout {
        Timeout::Millis(ms) if ms >= 0 => {
            Some(deadline_after(&libc::timespec { tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000 }))
        }
        Timeout::Millis(_) => None,
        Timeout::Spec(0) => None,
        Timeout::Spec(addr) => match user_timespec(addr) {
            Ok(ts) => Some(deadline_after(&ts)),
            Err(e) => return Some(neg(e)),
        },
    };
    let mut mask = 0u64;
    let sigmask = if umask != 0 {
        if let Err(e) = copy_in(&mut mask, umask) {
            return Some(neg(e));
        }
        Some(mask)
    } else {
        None
    };
    let res = poll_loop(r, g, &mut fds, &shim, deadline, sigmask, false);
    if let Ok(k) = res {
        // Only revents is written back, as the kernel does.
        for (i, f) in fds.iter().enumerate() {
            let at = ufds + i * size_of::<libc::pollfd>() + 6;
            if copy_out(at, &f.revents).is_err() {
                return Some(neg(libc::EFAULT));
            }
        }
        return Some(k as i64);
    }
    Some(neg(res.unwrap_err()))
}

/// How the caller gave its timeout.
#[derive(Clone, Copy)]
pub enum Timeout {
    /// poll(2): milliseconds, negative for none.
    Millis(i64),
    /// ppoll/pselect6: address of a timespec, 0 for none.
    Spec(usize),
}

/// The size of this process's fd table (`FDSize` in /proc/self/status): select looks at no
/// fd beyond it (core_sys_select's `max_fds`).
fn fd_table_size() -> Option<usize> {
    let fd = sys::open(b"/proc/self/status\0", libc::O_RDONLY | libc::O_CLOEXEC, 0).ok()?;
    let mut buf = scratch::take(4096, 0u8).ok()?;
    let n = sys::read(fd, &mut buf);
    sys::close(fd);
    let text = &buf[..n.ok()?];
    let at = text.windows(7).position(|w| w == b"FDSize:")? + 7;
    let mut digits =
        text[at..].iter().skip_while(|c| c.is_ascii_whitespace()).take_while(|c| c.is_ascii_digit());
    digits.try_fold(0usize, |v, &c| v.checked_mul(10)?.checked_add((c - b'0') as usize))
}

/// `select` (timeval) and `pselect6` (timespec + {mask pointer, size}).
pub fn select(r: &Region, g: &thread::Guard, a: &[u64; 6], pselect: bool) -> Option<i64> {
    let n = a[0] as i32;
    if n < 0 {
        return None;
    }
    // The kernel looks no further than its fd table (glibc's fd_set holds 1024: only a
    // program of its own may ask for more).
    let n = if n > 1024 { (n as usize).min(fd_table_size()?) } else { n as usize };
    let words = n.div_ceil(64);
    let Ok(mut sets) = scratch::take(3 * words, 0u64) else { return None };
    for (k, set) in sets.chunks_mut(words.max(1)).enumerate() {
        if a[k + 1] != 0 && words > 0 && copy_slice_in(set, a[k + 1] as usize).is_err() {
            return None;
        }
    }
    let bit = |k: usize, fd: usize| sets[k * words + fd / 64] >> (fd % 64) & 1 != 0;
    let events = |fd: usize| {
        (if bit(0, fd) { POLLIN_SET } else { 0 })
            | (if bit(1, fd) { POLLOUT_SET } else { 0 })
            | (if bit(2, fd) { POLLEX_SET } else { 0 })
    };
    let count = (0..n).filter(|&fd| events(fd) != 0).count();
    let (mut fds, mut shim) = match (
        scratch::take(count, libc::pollfd { fd: -1, events: 0, revents: 0 }),
        scratch::take(count, None),
    ) {
        (Ok(fds), Ok(shim)) => (fds, shim),
        (Err(e), _) | (_, Err(e)) => return Some(neg(e)),
    };
    for (f, fd) in fds.iter_mut().zip((0..n).filter(|&fd| events(fd) != 0)) {
        *f = libc::pollfd { fd: fd as i32, events: events(fd), revents: 0 };
    }
    classify(r, &fds, &mut shim)?;
    // Timeout: select's timeval or pselect6's timespec, updated with the time left on return.
    let tp = a[4] as usize;
    let mut deadline = None;
    if tp != 0 {
        let rel = if pselect {
            user_timespec(tp)
        } else {
            let mut tv = libc::timeval { tv_sec: 0, tv_usec: 0 };
            copy_in(&mut tv, tp).and_then(|_| {
                if tv.tv_sec < 0 || tv.tv_usec < 0 {
                    return Err(libc::EINVAL);
                }
                let ns = (tv.tv_usec % 1_000_000) * 1000;
                Ok(libc::timespec { tv_sec: tv.tv_sec + tv.tv_usec / 1_000_000, tv_nsec: ns })
            })
        };
        match rel {
            Ok(ts) => deadline = Some(deadline_after(&ts)),
            Err(e) => return Some(neg(e)),
        }
    }
    let mut sigmask = None;
    if pselect && a[5] != 0 {
        let mut data = [0u64; 2];
        if let Err(e) = copy_slice_in(&mut data, a[5] as usize) {
            return Some(neg(e));
        }
        if data[0] != 0 {
            if data[1] != 8 {
                return Some(neg(libc::EINVAL));
            }
            let mut m = 0u64;
            if let Err(e) = copy_in(&mut m, data[0] as usize) {
                return Some(neg(e));
            }
            sigmask = Some(m);
        }
    }
    let res = poll_loop(r, g, &mut fds, &shim, deadline, sigmask, true);
    if let Some(d) = deadline {
        // The time left is written back; like the kernel, a failure to do so is ignored.
        let left = ts_from_ns(ns_until(&d));
        let _ = if pselect {
            copy_out(tp, &left)
        } else {
            copy_out(tp, &libc::timeval { tv_sec: left.tv_sec, tv_usec: left.tv_nsec / 1000 })
        };
    }
    if let Err(e) = res {
        return Some(neg(e));
    }
    let mut out = match scratch::take(3 * words, 0u64) {
        Ok(out) => out,
        Err(e) => return Some(neg(e)),
    };
    let mut total = 0;
    for f in fds.iter() {
        let fd = f.fd as usize;
        for (k, set) in [POLLIN_SET, POLLOUT_SET, POLLEX_SET].iter().enumerate() {
            if bit(k, fd) && f.revents & set != 0 {
                out[k * words + fd / 64] |= 1 << (fd % 64);
                total += 1;
            }
        }
    }
    for (k, set) in out.chunks(words.max(1)).enumerate() {
        if a[k + 1] != 0 && words > 0 && copy_slice_out(a[k + 1] as usize, set).is_err() {
            return Some(neg(libc::EFAULT));
        }
    }
    Some(total)
}
