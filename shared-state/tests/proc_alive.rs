//! Process records and liveness: `proc::alive` from a process that cannot open
//! `/proc/PID/stat` (out of fds) takes a process that `kill` finds for alive, or a busy server
//! at its fd limit would release every peer's record; a record whose claimer was killed half
//! way through claiming it is freed by the next reaper, not lost; a fork child's start time
//! read from the clock is the one /proc shows.

mod common;

use common::{TempDir, fork, wait_exit};
use shared_state::{Region, proc};
use std::sync::atomic::Ordering;

#[test]
fn a_process_out_of_fds_takes_its_peers_for_alive() {
    // SAFETY: plain fork; the child only makes system calls and exits.
    let peer = unsafe { libc::fork() };
    assert!(peer >= 0);
    if peer == 0 {
        // SAFETY: pause and _exit are async-signal-safe.
        unsafe {
            libc::pause();
            libc::_exit(0)
        }
    }
    let start = proc::stat_of(peer).expect("peer's stat").starttime;
    // SAFETY: plain fork; the child exits with its verdicts.
    let checker = unsafe { libc::fork() };
    assert!(checker >= 0);
    if checker == 0 {
        let seen = proc::alive(peer, start);
        // Every fd in use: the next open gives EMFILE.
        let rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: setrlimit with a valid struct.
        let lowered = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) } == 0;
        let emfile = matches!(proc::stat_of(peer), Err(libc::EMFILE));
        let out_of_fds = proc::alive(peer, start);
        // SAFETY: _exit ends the child at once.
        unsafe {
            libc::_exit(seen as i32 | (lowered as i32) << 1 | (emfile as i32) << 2 | (out_of_fds as i32) << 3)
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(checker, &mut status, 0) }, checker);
    // SAFETY: ending and reaping our own child.
    unsafe {
        libc::kill(peer, libc::SIGKILL);
        libc::waitpid(peer, core::ptr::null_mut(), 0);
    }
    assert!(libc::WIFEXITED(status), "checker status {status:#x}");
    let v = libc::WEXITSTATUS(status);
    assert_eq!(v & 7, 7, "alive at first, limit lowered, EMFILE from stat_of: {v:#x}");
    assert_eq!(v & 8, 8, "a live peer taken for dead when /proc could not be opened");
    // Gone is gone: a reaped pid is dead whatever the fds.
    assert!(!proc::alive(peer, start));
}

#[test]
fn a_record_claimed_half_way_by_a_dead_process_is_freed_by_the_next_reaper() {
    let dir = TempDir::new("claim");
    let region = Region::open(&dir.region_path("claim"), true).unwrap();
    let me = proc::ensure_record(&region).expect("our record");
    // A child claims a record and exits: its slot and pid tell us which one it was.
    let child = fork(|| proc::ensure_record(&region).map_or(255, |s| s as i32));
    let slot = wait_exit(child) as u32;
    assert!(slot < 255 && slot != me, "child's slot {slot}");
    // SAFETY: the child is gone; only the state word is changed, as a claimer would.
    let rec = unsafe { proc::record(&region, slot) };
    // As if it had been killed between its claim and the state it was filling in.
    rec.state.store(proc::CLAIMING | child as u32, Ordering::Release);
    // One of a live claimer (ourselves) must stay.
    // SAFETY: our own record, put back below.
    let ours = unsafe { proc::record(&region, me) };
    let our_state = ours.state.load(Ordering::Acquire);
    ours.state.store(proc::CLAIMING | std::process::id(), Ordering::Release);
    {
        let _g = region.lock().unwrap();
        // SAFETY: the region lock is held.
        unsafe { proc::reap(&region) };
    }
    assert_eq!(rec.state.load(Ordering::Acquire), proc::FREE, "the dead claimer's record is lost");
    assert_eq!(ours.state.load(Ordering::Acquire), proc::CLAIMING | std::process::id());
    ours.state.store(our_state, Ordering::Release);
}

#[test]
fn a_fork_child_learns_its_start_time_from_the_clock_exactly() {
    // Children that derive it (both clock reads inside one tick) must get what /proc says.
    // Most do, as a fork takes far less than a tick; on a loaded machine fewer, so children
    // are made until 50 did (or 10 s passed).
    let (mut derived, mut made) = (0, 0);
    let start = std::time::Instant::now();
    while derived < 50 && start.elapsed().as_secs() < 10 {
        proc::before_fork();
        let child = fork(|| {
            proc::identify_fork_child();
            let known = proc::known_start();
            let stat = proc::stat_of(proc::self_pid()).expect("own stat").starttime;
            match known {
                0 => 0,
                k if k == stat => 1,
                _ => 2,
            }
        });
        made += 1;
        match wait_exit(child) {
            0 => {}
            1 => derived += 1,
            v => panic!("a child derived a start time other than /proc's ({v})"),
        }
    }
    assert!(derived > 0, "none of {made} children derived its start time");
}
