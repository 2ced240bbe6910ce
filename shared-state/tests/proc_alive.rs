//! `proc::alive` from a process that cannot open `/proc/PID/stat` (out of fds): a process that
//! `kill` finds is alive, or a busy server at its fd limit would release every peer's record.

use shared_state::proc;

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
