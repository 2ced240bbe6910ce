//! One sleep on several things: kernel files becoming ready (an epoll fd's events for a set
//! that also holds kernel fds, a poll set's kernel fds) or futex words moving (a shim object's
//! wake-up, which no kernel file carries). An io_uring does all at once: a POLL_ADD per file
//! and a FUTEX_WAIT (or FUTEX_WAITV per 128 words); whichever completes first ends the sleep
//! and the others are cancelled before returning.
//!
//! Each thread gets its own small ring the first time it needs one, made with
//! IORING_SETUP_REGISTERED_FD_ONLY and IORING_SETUP_NO_MMAP: no fd in the program's table
//! (fd numbering stays the kernel's) and no mapping but two pages of our own. The kernel frees
//! the ring when the thread exits; a fork child (another task) makes its own. Where io_uring
//! cannot be had (too old a kernel, a seccomp filter, `io_uring_disabled`), [`wait`] says so and
//! the caller sleeps in slices instead.

use crate::base::thread;
use crate::base::thread::tls;
use core::sync::atomic::{AtomicU32, Ordering::Relaxed, Ordering::SeqCst};
use shared_state::pipe::POLL_WAIT_SLOTS;
use shared_state::sys::{self, Errno};
use shared_state::wait::WaitOutcome;

const SYS_IO_URING_SETUP: i64 = 425;
const SYS_IO_URING_ENTER: i64 = 426;
const SETUP_SUBMIT_ALL: u32 = 1 << 7;
const SETUP_SINGLE_ISSUER: u32 = 1 << 12;
const SETUP_DEFER_TASKRUN: u32 = 1 << 13;
const SETUP_NO_MMAP: u32 = 1 << 14;
const SETUP_REGISTERED_FD_ONLY: u32 = 1 << 15;
const SETUP_NO_SQARRAY: u32 = 1 << 16;
const ENTER_GETEVENTS: usize = 1;
const ENTER_EXT_ARG: usize = 1 << 3;
const ENTER_REGISTERED_RING: usize = 1 << 4;
const OP_POLL_ADD: u8 = 6;
const OP_ASYNC_CANCEL: u8 = 14;
const OP_FUTEX_WAIT: u8 = 51;
const OP_FUTEX_WAITV: u8 = 53;
const ASYNC_CANCEL_ALL: u32 = 1 << 0;
const ASYNC_CANCEL_ANY: u32 = 1 << 2;
const FUTEX2_SIZE_U32: i32 = 2;
/// Submission entries: the most requests one sleep makes (the completion ring has twice as
/// many). The entries fill the second page of the ring memory exactly.
const ENTRIES: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Sqe {
    opcode: u8,
    flags: u8,
    ioprio: u16,
    fd: i32,
    off: u64,
    addr: u64,
    len: u32,
    op_flags: u32,
    user_data: u64,
    buf_index: u16,
    personality: u16,
    file_index: u32,
    addr3: u64,
    pad: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Cqe {
    user_data: u64,
    res: i32,
    flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct SqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    flags: u32,
    dropped: u32,
    array: u32,
    resv1: u32,
    user_addr: u64,
}

#[repr(C)]
#[derive(Default)]
struct CqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    overflow: u32,
    cqes: u32,
    flags: u32,
    resv1: u32,
    user_addr: u64,
}

#[repr(C)]
#[derive(Default)]
struct Params {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    sq_off: SqOffsets,
    cq_off: CqOffsets,
}

#[repr(C)]
struct GeteventsArg {
    sigmask: u64,
    sigmask_sz: u32,
    min_wait_usec: u32,
    ts: u64,
}

/// The rings' memory: the shared rings on the first page, the submission entries on the second.
const RING_BYTES: usize = 8192;

/// This thread's ring: where its parts are, as offsets into its memory.
struct Ring {
    base: usize,
    index: u32,
    sq_tail: usize,
    sq_mask: u32,
    cq_head: usize,
    cq_tail: usize,
    cq_mask: u32,
    cqes: usize,
}

/// Ring states in `Tls::uring_state`: none yet, or none to be had.
const NONE: u32 = 0;
const UNAVAILABLE: u32 = 1;

fn word_at(addr: usize) -> &'static AtomicU32 {
    // SAFETY: `addr` is a 4-aligned word of this thread's ring memory, mapped until the thread
    // exits (the kernel writes it concurrently: atomics only).
    unsafe { &*(addr as *const AtomicU32) }
}

/// The calling thread's ring, made on first use; None where io_uring cannot be had.
fn ring() -> Option<Ring> {
    let t = tls();
    let tid = sys::syscall6(libc::SYS_gettid, 0, 0, 0, 0, 0, 0).ok()? as u32;
    if t.uring_tid.load(Relaxed) == tid {
        return match t.uring_state.load(Relaxed) {
            NONE | UNAVAILABLE => None,
            state => Some(layout(
                t.uring_base.load(Relaxed),
                state - 2,
                &t.uring_offs.each_ref().map(|o| o.load(Relaxed)),
            )),
        };
    }
    // Another task's state (a fork child's copy of its parent's), or none yet: its memory, if
    // any, is ours to reuse (a copy, not the parent's pinned pages).
    t.uring_tid.store(tid, Relaxed);
    t.uring_state.store(UNAVAILABLE, Relaxed);
    let base = match t.uring_base.load(Relaxed) {
        0 => sys::mmap(
            0,
            RING_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
        .ok()?,
        b => b,
    };
    t.uring_base.store(base, Relaxed);
    // SAFETY: `base` is RING_BYTES of our own memory; the kernel fills the rings.
    unsafe { core::ptr::write_bytes(base as *mut u8, 0, RING_BYTES) };
    let mut p = Params {
        flags: SETUP_NO_MMAP
            | SETUP_SUBMIT_ALL
            | SETUP_REGISTERED_FD_ONLY
            | SETUP_NO_SQARRAY
            | SETUP_SINGLE_ISSUER
            | SETUP_DEFER_TASKRUN,
        ..Params::default()
    };
    p.cq_off.user_addr = base as u64;
    p.sq_off.user_addr = (base + RING_BYTES / 2) as u64;
    let index =
        sys::syscall6(SYS_IO_URING_SETUP, ENTRIES as usize, &mut p as *mut Params as usize, 0, 0, 0, 0)
            .ok()?;
    let offs =
        [p.sq_off.tail, p.sq_off.ring_mask, p.cq_off.head, p.cq_off.tail, p.cq_off.ring_mask, p.cq_off.cqes];
    let cq_end = p.cq_off.cqes as usize + p.cq_entries as usize * size_of::<Cqe>();
    if offs.iter().any(|&o| o as usize + 16 > RING_BYTES / 2) || cq_end > RING_BYTES / 2 {
        return None;
    }
    for (slot, o) in t.uring_offs.iter().zip(offs) {
        slot.store(o, Relaxed);
    }
    t.uring_state.store(index as u32 + 2, Relaxed);
    Some(layout(base, index as u32, &offs))
}

fn layout(base: usize, index: u32, offs: &[u32; 6]) -> Ring {
    Ring {
        base,
        index,
        sq_tail: base + offs[0] as usize,
        sq_mask: word_at(base + offs[1] as usize).load(Relaxed),
        cq_head: base + offs[2] as usize,
        cq_tail: base + offs[3] as usize,
        cq_mask: word_at(base + offs[4] as usize).load(Relaxed),
        cqes: base + offs[5] as usize,
    }
}

impl Ring {
    fn push(&self, sqe: Sqe) {
        let tail = word_at(self.sq_tail).load(Relaxed);
        let at = self.base + RING_BYTES / 2 + (tail & self.sq_mask) as usize * size_of::<Sqe>();
        // SAFETY: the entry slot lies in the second page of our ring memory; the kernel reads it
        // only once the tail below publishes it.
        unsafe { (at as *mut Sqe).write(sqe) };
        word_at(self.sq_tail).store(tail.wrapping_add(1), SeqCst);
    }

    fn enter(&self, submit: u32, wait: u32, arg: Option<&GeteventsArg>) -> Result<usize, Errno> {
        let flags = ENTER_REGISTERED_RING
            | if wait > 0 { ENTER_GETEVENTS } else { 0 }
            | if arg.is_some() { ENTER_EXT_ARG } else { 0 };
        let (argp, argsz) =
            arg.map_or((0, 0), |a| (a as *const GeteventsArg as usize, size_of::<GeteventsArg>()));
        sys::syscall6(
            SYS_IO_URING_ENTER,
            self.index as usize,
            submit as usize,
            wait as usize,
            flags,
            argp,
            argsz,
        )
    }

    /// Cancels the `outstanding` requests of a sleep that are still in flight and takes their
    /// completions (and the cancel's), before their words or files can be used by anyone
    /// else's wake-up or close.
    fn cancel_all(&self, outstanding: u32) {
        if outstanding == 0 {
            return;
        }
        self.push(Sqe {
            opcode: OP_ASYNC_CANCEL,
            op_flags: ASYNC_CANCEL_ANY | ASYNC_CANCEL_ALL,
            fd: -1,
            user_data: CANCEL,
            ..Sqe::default()
        });
        let outstanding = outstanding + 1;
        let (mut taken, mut submit) = (0, 1);
        while taken < outstanding {
            match self.enter(submit, outstanding - taken, None) {
                Ok(_) | Err(libc::EINTR) | Err(libc::EAGAIN) => {}
                Err(_) => break,
            }
            submit = 0;
            self.reap(|_, _| taken += 1);
        }
    }

    /// Takes the completions there are: calls `f` with each one's user data and result.
    fn reap(&self, mut f: impl FnMut(u64, i32)) {
        let (head, tail) = (word_at(self.cq_head), word_at(self.cq_tail));
        let mut h = head.load(Relaxed);
        while h != tail.load(SeqCst) {
            // SAFETY: the entry at `h` lies in our ring memory and was published by the tail.
            let c = unsafe {
                ((self.cqes + (h & self.cq_mask) as usize * size_of::<Cqe>()) as *const Cqe).read()
            };
            f(c.user_data, c.res);
            h = h.wrapping_add(1);
        }
        head.store(h, SeqCst);
    }
}

/// How a [`wait`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woken {
    /// The epoll fd became readable (the word may have moved too).
    Ready,
    /// The word moved, and the epoll fd did not become readable before the wake-up.
    Word,
    /// Neither: the time ran out, a signal came, or the wake-up was spurious.
    Other,
}

const POLL: u64 = 1;
const FUTEX: u64 = 2;
const CANCEL: u64 = 3;

/// Sleeps until `epfd` is readable, `word` no longer holds `val`, `timeout_ns` passes (None:
/// no limit) or a signal arrives. `g`'s signals are let through during the sleep only. None:
/// io_uring is not available (or this thread is already waiting in it, in a handler that
/// interrupted another wait): the caller sleeps in slices.
pub fn wait(
    g: &thread::Guard,
    epfd: i32,
    word: &AtomicU32,
    val: u32,
    timeout_ns: Option<i64>,
) -> Option<Woken> {
    with_ring(|ring| wait_in(ring, g, epfd, word, val, timeout_ns))
}

/// Runs `f` on this thread's ring. None where it has none, in a vfork child (whose task is
/// not the ring's), or while the thread already waits in it (a handler that interrupted that
/// wait).
fn with_ring<R>(f: impl FnOnce(&Ring) -> R) -> Option<R> {
    let t = tls();
    if thread::in_vfork_child() || t.uring_busy.swap(1, Relaxed) != 0 {
        return None;
    }
    let res = ring().map(|ring| f(&ring));
    t.uring_busy.store(0, Relaxed);
    res
}

fn wait_in(
    ring: &Ring,
    g: &thread::Guard,
    epfd: i32,
    word: &AtomicU32,
    val: u32,
    timeout_ns: Option<i64>,
) -> Woken {
    // Anything left from a wait a handler's longjmp abandoned.
    ring.reap(|_, _| {});
    ring.push(Sqe {
        opcode: OP_POLL_ADD,
        fd: epfd,
        op_flags: libc::POLLIN as u32,
        user_data: POLL,
        ..Sqe::default()
    });
    ring.push(Sqe {
        opcode: OP_FUTEX_WAIT,
        fd: FUTEX2_SIZE_U32,
        addr: word.as_ptr() as u64,
        off: val as u64,
        addr3: u32::MAX as u64,
        user_data: FUTEX,
        ..Sqe::default()
    });
    let ts = timeout_ns
        .map(|ns| libc::timespec { tv_sec: ns.max(0) / 1_000_000_000, tv_nsec: ns.max(0) % 1_000_000_000 });
    let arg = GeteventsArg {
        sigmask: 0,
        sigmask_sz: 0,
        min_wait_usec: 0,
        ts: ts.as_ref().map_or(0, |t| t as *const libc::timespec as u64),
    };
    let mut done = 0u64;
    // Submitted first, so that the wait below reports a signal or the timeout.
    if ring.enter(2, 0, None).is_err() {
        ring.reap(|_, _| {});
        return Woken::Other;
    }
    let _ = g.allow_signals(|| ring.enter(0, 1, Some(&arg)));
    ring.reap(|ud, _| done |= 1 << ud);
    ring.cancel_all([POLL, FUTEX].iter().filter(|&&k| done & 1 << k == 0).count() as u32);
    match done {
        d if d & 1 << POLL != 0 => Woken::Ready,
        d if d & 1 << FUTEX != 0 => Woken::Word,
        _ => Woken::Other,
    }
}

/// What a [`wait_any`] request's completion is.
const WAKE: u64 = 4;

/// Sleeps until one of `files` (kernel fds with the events to wait for; negative fds are
/// skipped) is ready, one of `words` no longer holds its value, the absolute CLOCK_MONOTONIC
/// `until` passes, or a signal arrives, with `sigmask` installed meanwhile as ppoll does:
/// poll's sleep on shim objects and kernel files at once, and on more words than one
/// futex_waitv takes. None: io_uring is not available, this thread is already waiting in it,
/// or one ring cannot hold that many requests (the caller sleeps in slices).
pub fn wait_any(
    g: &thread::Guard,
    files: &[libc::pollfd],
    words: &[sys::FutexWaitv],
    until: &libc::timespec,
    sigmask: Option<&u64>,
) -> Option<WaitOutcome> {
    let requests = files.iter().filter(|f| f.fd >= 0).count() + words.len().div_ceil(POLL_WAIT_SLOTS);
    if requests == 0 || requests > ENTRIES as usize {
        return None;
    }
    with_ring(|ring| wait_any_in(ring, g, files, words, until, sigmask, requests as u32))
}

fn wait_any_in(
    ring: &Ring,
    g: &thread::Guard,
    files: &[libc::pollfd],
    words: &[sys::FutexWaitv],
    until: &libc::timespec,
    sigmask: Option<&u64>,
    requests: u32,
) -> WaitOutcome {
    // Anything left from a wait a handler's longjmp abandoned.
    ring.reap(|_, _| {});
    for f in files.iter().filter(|f| f.fd >= 0) {
        ring.push(Sqe {
            opcode: OP_POLL_ADD,
            fd: f.fd,
            op_flags: f.events as u16 as u32,
            user_data: WAKE,
            ..Sqe::default()
        });
    }
    for chunk in words.chunks(POLL_WAIT_SLOTS) {
        ring.push(Sqe {
            opcode: OP_FUTEX_WAITV,
            addr: chunk.as_ptr() as u64,
            len: chunk.len() as u32,
            user_data: WAKE,
            ..Sqe::default()
        });
    }
    let now = sys::clock_gettime(libc::CLOCK_MONOTONIC);
    let left =
        ((until.tv_sec - now.tv_sec).saturating_mul(1_000_000_000) + (until.tv_nsec - now.tv_nsec)).max(0);
    let ts = libc::timespec { tv_sec: left / 1_000_000_000, tv_nsec: left % 1_000_000_000 };
    let arg = GeteventsArg {
        sigmask: sigmask.map_or(0, |m| m as *const u64 as u64),
        sigmask_sz: if sigmask.is_some() { 8 } else { 0 },
        min_wait_usec: 0,
        ts: &ts as *const libc::timespec as u64,
    };
    // Submitted first (all of them: SUBMIT_ALL), so that the wait below reports a signal or
    // the timeout; a request that fails at once (a closed fd, a word that moved) completes.
    if ring.enter(requests, 0, None).is_err() {
        ring.reap(|_, _| {});
        return WaitOutcome::Woken;
    }
    let waited = g.allow_signals(|| ring.enter(0, 1, Some(&arg)));
    let mut done = 0u32;
    ring.reap(|_, _| done += 1);
    ring.cancel_all(requests - done);
    match waited {
        Err(libc::EINTR) => WaitOutcome::Interrupted,
        _ if done > 0 => WaitOutcome::Woken,
        _ => WaitOutcome::TimedOut,
    }
}

/// The thread is exiting: its ring memory goes (the kernel frees the ring with the task).
pub fn thread_exit() {
    let t = tls();
    if thread::in_vfork_child() {
        return;
    }
    let base = t.uring_base.swap(0, Relaxed);
    t.uring_state.store(NONE, Relaxed);
    t.uring_tid.store(0, Relaxed);
    if base != 0 {
        let _ = sys::munmap(base, RING_BYTES);
    }
}
