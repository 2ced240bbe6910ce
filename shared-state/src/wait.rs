//! Cross-process waits on a 32-bit word in the shared region (shared, not private, futexes).
//!
//! Deadlines are absolute CLOCK_MONOTONIC times, so a wait restarted after a signal does not
//! wait longer than asked. The kernel's restart rules differ per call (NOTES §5): a timed futex
//! wait always returns EINTR when a handler ran, an untimed one is restarted under SA_RESTART.
//! [`Restart`] chooses which of the two a call gets.

use crate::sys;
use core::sync::atomic::{AtomicU32, Ordering};

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

/// What a sleeper that waits on `word`'s value `seq` stores in its `sleeping` flag before its
/// futex wait (never 0, which means awake), for [`wake_sleeper`].
pub fn asleep_on(seq: u32) -> u32 {
    seq | 1 << 31
}

/// Wakes the sleeper whose flag is `sleeping` and whose word `word` its waker bumped already,
/// if it is in its futex wait: only the first waker makes the call (a sleeper not yet back on
/// a CPU would otherwise be woken again by each later one). A sleeper waiting on the word's
/// present value went to sleep again after that bump (its entry reused, or a spurious wake-up):
/// it waits for a later waker, and its flag is left alone, since that waker makes the call
/// only if it finds the flag set (taken, it slept a whole slice).
pub fn wake_sleeper(sleeping: &AtomicU32, word: &AtomicU32) {
    let s = sleeping.load(Ordering::SeqCst);
    if s != 0
        && s != asleep_on(word.load(Ordering::SeqCst))
        && sleeping.compare_exchange(s, 0, Ordering::SeqCst, Ordering::Relaxed).is_ok()
    {
        wake(word, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// A waker late to wake a sleeper (its entry's last user, say) that meanwhile went back to
    /// sleep on the bumped word leaves the new sleep's flag set: the next waker, which bumps
    /// the word, finds it and wakes the sleeper at once, not at its deadline.
    #[test]
    fn a_late_waker_leaves_a_new_sleep_to_its_own_waker() {
        let words = Arc::new((AtomicU32::new(7), AtomicU32::new(0)));
        // The earlier sleep on 7 was woken by a bump to 8; the sleeper sleeps again on 8.
        words.0.store(8, Ordering::SeqCst);
        let sleeper = {
            let words = words.clone();
            std::thread::spawn(move || {
                let (word, sleeping) = (&words.0, &words.1);
                let start = Instant::now();
                sleeping.store(asleep_on(8), Ordering::SeqCst);
                let deadline = deadline_after(&libc::timespec { tv_sec: 10, tv_nsec: 0 });
                while word.load(Ordering::SeqCst) == 8 && start.elapsed() < Duration::from_secs(10) {
                    wait(word, 8, Some(&deadline), Restart::Never);
                }
                start.elapsed()
            })
        };
        while words.1.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(50));
        // The late waker of the sleep on 7.
        wake_sleeper(&words.1, &words.0);
        assert_eq!(words.1.load(Ordering::SeqCst), asleep_on(8), "the late waker took the flag");
        // The sleep's own waker.
        words.0.fetch_add(1, Ordering::SeqCst);
        wake_sleeper(&words.1, &words.0);
        let slept = sleeper.join().unwrap();
        assert!(slept < Duration::from_secs(5), "the sleeper was not woken: it slept {slept:?}");
    }
}
