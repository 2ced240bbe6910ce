//! Cross-process waits on a 32-bit word in the shared region (shared, not private, futexes).
//!
//! Deadlines are absolute CLOCK_MONOTONIC times, so a wait restarted after a signal does not
//! wait longer than asked. The kernel's restart rules differ per call (NOTES §5): a timed futex
//! wait always returns EINTR when a handler ran, an untimed one is restarted under SA_RESTART.
//! [`Restart`] chooses which of the two a call gets.

use crate::sys;
use core::sync::atomic::AtomicU32;

/// How a wait reacts to a signal handler running in the waiting thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// As semop, msgsnd, msgrcv, poll: EINTR whatever the handler's SA_RESTART.
    Never,
    /// As read/write on pipes: restarted when the handler has SA_RESTART, else EINTR.
    BySaRestart,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Woken, or the word no longer held the expected value: re-check the condition.
    Woken,
    TimedOut,
    Interrupted,
}

/// Absolute CLOCK_MONOTONIC deadline `rel` from now.
pub fn deadline_after(rel: &libc::timespec) -> libc::timespec {
    let now = sys::clock_gettime(libc::CLOCK_MONOTONIC);
    let mut sec = now.tv_sec.saturating_add(rel.tv_sec);
    let mut nsec = now.tv_nsec + rel.tv_nsec;
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    libc::timespec { tv_sec: sec, tv_nsec: nsec }
}

/// Sleeps while `word` holds `expected`, until woken, `deadline` passes, or a signal arrives.
pub fn wait(
    word: &AtomicU32,
    expected: u32,
    deadline: Option<&libc::timespec>,
    restart: Restart,
) -> WaitOutcome {
    // A far deadline makes the kernel return EINTR rather than restart (see module comment).
    let far = libc::timespec { tv_sec: i64::MAX / 4, tv_nsec: 0 };
    let ts: *const libc::timespec = match (deadline, restart) {
        (Some(d), _) => d,
        (None, Restart::Never) => &far,
        (None, Restart::BySaRestart) => core::ptr::null(),
    };
    let rc = sys::futex(
        word.as_ptr(),
        libc::FUTEX_WAIT_BITSET,
        expected,
        ts,
        0,
        libc::FUTEX_BITSET_MATCH_ANY as u32,
    );
    match rc {
        Ok(_) | Err(libc::EAGAIN) => WaitOutcome::Woken,
        Err(libc::ETIMEDOUT) => WaitOutcome::TimedOut,
        Err(libc::EINTR) => WaitOutcome::Interrupted,
        Err(_) => WaitOutcome::Woken,
    }
}

/// Wakes up to `n` waiters on `word`; returns how many were woken.
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    sys::futex(word.as_ptr(), libc::FUTEX_WAKE, n, core::ptr::null(), 0, 0).unwrap_or(0)
}
