//! Futex waits on words of the region: across processes, deadlines, and signal restart rules.

mod common;

use common::{TempDir, fork, wait_exit};
use core::sync::atomic::{AtomicU32, Ordering};
use shared_state::Region;
use shared_state::wait::{Restart, WaitOutcome, deadline_after, wait, wake};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A fresh zeroed word from the region's heap; returns its offset.
fn alloc_word(region: &Region) -> u64 {
    let _guard = region.lock().unwrap();
    // SAFETY: we hold the region lock, which guards the heap.
    unsafe { region.header_mut().heap.alloc(region, 4) }.expect("heap full")
}

fn word(region: &Region, off: u64) -> &AtomicU32 {
    // SAFETY: `off` came from the region's heap (in range, 16-aligned); the word is only ever
    // used atomically, so no lock is needed.
    unsafe { region.at::<AtomicU32>(off) }
}

fn ts(d: Duration) -> libc::timespec {
    libc::timespec { tv_sec: d.as_secs() as i64, tv_nsec: d.subsec_nanos() as i64 }
}

#[test]
fn another_process_wakes_a_waiter() {
    let dir = TempDir::new("xwake");
    let path = dir.region_path("ns");
    let region = Region::open(&path, true).unwrap();
    let off = alloc_word(&region);
    let w = word(&region, off);
    let pid = fork(|| {
        // A second mapping, as an unrelated process has: the word is at another address.
        let Ok(other) = Region::open(&path, false) else { return 2 };
        if other.base() == region.base() {
            return 3;
        }
        // Retry until the parent is really asleep on the word, so the wake is what ends its wait.
        for _ in 0..5000 {
            if wake(word(&other, off), 1) == 1 {
                return 0;
            }
            // SAFETY: plain libc sleep.
            unsafe { libc::usleep(1000) };
        }
        1
    });
    let deadline = deadline_after(&ts(Duration::from_secs(5)));
    assert_eq!(wait(w, 0, Some(&deadline), Restart::Never), WaitOutcome::Woken);
    assert_eq!(wait_exit(pid), 0, "the child never found the parent waiting");
}

#[test]
fn deadlines_time_out() {
    let dir = TempDir::new("deadline");
    let region = dir.region("ns");
    let w = word(&region, alloc_word(&region));
    let now = shared_state::sys::clock_gettime(libc::CLOCK_MONOTONIC);
    let past = libc::timespec { tv_sec: now.tv_sec - 1, tv_nsec: now.tv_nsec };
    for restart in [Restart::Never, Restart::BySaRestart] {
        assert_eq!(wait(w, 0, Some(&past), restart), WaitOutcome::TimedOut);
        let start = Instant::now();
        let near = deadline_after(&ts(Duration::from_millis(50)));
        assert_eq!(wait(w, 0, Some(&near), restart), WaitOutcome::TimedOut);
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(50), "returned early: {waited:?}");
        assert!(waited < Duration::from_secs(2), "overslept: {waited:?}");
        // A word that no longer holds the expected value does not wait at all.
        assert_eq!(wait(w, 1, Some(&near), restart), WaitOutcome::Woken);
    }
}

/// Handler runs per signal number, so each test can see its own signal arrive.
static HITS: [AtomicU32; 32] = [const { AtomicU32::new(0) }; 32];

extern "C" fn count_signal(sig: libc::c_int) {
    HITS[sig as usize].fetch_add(1, Ordering::Relaxed);
}

/// Installs the counting handler for `sig` with SA_RESTART.
fn install_restart_handler(sig: libc::c_int) {
    // SAFETY: an all-zero sigaction is valid (empty mask); the handler is async-signal-safe
    // (one atomic add).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = count_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        assert_eq!(libc::sigaction(sig, &sa, std::ptr::null_mut()), 0);
    }
}

/// A thread waiting on `w` (which holds 0): its pthread id, and where its outcome arrives.
fn spawn_waiter(
    w: &'static AtomicU32,
    deadline: Option<libc::timespec>,
    restart: Restart,
) -> (std::thread::JoinHandle<()>, libc::pthread_t, mpsc::Receiver<WaitOutcome>) {
    let (id_tx, id_rx) = mpsc::channel();
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        // SAFETY: plain syscalls about the calling thread.
        let (me, tid) = unsafe { (libc::pthread_self(), libc::syscall(libc::SYS_gettid) as i32) };
        id_tx.send((me, tid)).unwrap();
        let _ = tx.send(wait(w, 0, deadline.as_ref(), restart));
    });
    let (me, tid) = id_rx.recv().unwrap();
    // Signal only once it sleeps (state S), so the signal lands inside the futex wait.
    let stat = format!("/proc/self/task/{tid}/stat");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        let s = std::fs::read_to_string(&stat).unwrap_or_default();
        if s.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('S')) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    (handle, me, rx)
}

/// The region is leaked: a waiter left blocked by a failing test must not see it unmapped.
fn leaked_word(dir: &TempDir) -> &'static AtomicU32 {
    let region: &'static Region = Box::leak(Box::new(dir.region("ns")));
    word(region, alloc_word(region))
}

#[test]
fn signal_interrupts_never_restart_waits() {
    let sig = libc::SIGUSR1;
    install_restart_handler(sig);
    let dir = TempDir::new("sigint");
    let w = leaked_word(&dir);
    // Untimed Restart::Never, and any timed wait: EINTR despite SA_RESTART.
    let far = deadline_after(&ts(Duration::from_secs(30)));
    for (deadline, restart) in [(None, Restart::Never), (Some(far), Restart::BySaRestart)] {
        let hits = HITS[sig as usize].load(Ordering::Relaxed);
        let (handle, thread, rx) = spawn_waiter(w, deadline, restart);
        let mut outcome = None;
        for _ in 0..50 {
            // SAFETY: `thread` is alive: it is joined only below.
            assert_eq!(unsafe { libc::pthread_kill(thread, sig) }, 0);
            if let Ok(o) = rx.recv_timeout(Duration::from_millis(100)) {
                outcome = Some(o);
                break;
            }
        }
        assert_eq!(outcome, Some(WaitOutcome::Interrupted), "{restart:?} deadline {:?}", deadline.is_some());
        assert!(HITS[sig as usize].load(Ordering::Relaxed) > hits, "handler never ran");
        handle.join().unwrap();
    }
}

#[test]
fn signal_restarts_untimed_by_sa_restart_wait() {
    let sig = libc::SIGUSR2;
    install_restart_handler(sig);
    let dir = TempDir::new("sigrestart");
    let w = leaked_word(&dir);
    let (handle, thread, rx) = spawn_waiter(w, None, Restart::BySaRestart);
    for _ in 0..3 {
        // SAFETY: `thread` is alive: it is joined only below.
        assert_eq!(unsafe { libc::pthread_kill(thread, sig) }, 0);
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err(), "the wait was not restarted");
    }
    assert!(HITS[sig as usize].load(Ordering::Relaxed) >= 3, "handler never ran");
    let start = Instant::now();
    while wake(w, 1) == 0 {
        assert!(start.elapsed() < Duration::from_secs(5), "waiter not asleep on the word");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(WaitOutcome::Woken));
    handle.join().unwrap();
}
