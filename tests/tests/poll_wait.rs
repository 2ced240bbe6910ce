//! poll, ppoll and pselect over shim sockets and kernel fds, over more sockets than one
//! futex_waitv takes, or over an epoll fd whose set watches a socket, sleep once until something
//! is ready (`c-tests/poll_mixed.c` under strace): no 2 ms slices in the kernel's ppoll (a
//! wake-up took 2.2 ms instead of 14 us; a poller of an epoll fd never looked asleep), no
//! futex_waitv cut to 128 words with a 10 ms slice, and the bytes through the shim's queues.

use ipcshim_tests::{counter, diff, program, status};
use std::fs;
use std::process::Command;

const ROUNDS: usize = 100;

#[test]
fn mixed_and_wide_polls_sleep_once() {
    let exe = diff::compile(&ipcshim_tests::workspace_root().join("c-tests/poll_mixed.c")).expect("compile");
    let ns = format!("poll-wait-{}", std::process::id());
    let dir = ipcshim_tests::state_base().join(format!("ipcshim-{ns}"));
    fs::create_dir_all(&dir).expect("scratch dir");
    let log = dir.join("strace.log");
    let shimmed = program(&exe, &dir, Some(&ns));
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-e", "trace=ppoll,futex_waitv,io_uring_enter", "-o"]).arg(&log);
    cmd.arg(shimmed.get_program()).args(shimmed.get_args()).arg(ROUNDS.to_string()).arg("only-rings");
    for (k, v) in shimmed.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.current_dir(&dir);
    let out = cmd.output().expect("run strace");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let trace = fs::read_to_string(&log).expect("strace log");
    let status = status(&ns, &dir);
    let _ = fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}\n{stdout}{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches(" rounds ok, child ok").count(), 3, "{stdout}");
    let slices = trace.lines().filter(|l| l.contains("ppoll(") && l.contains("tv_nsec=2000000}")).count();
    assert_eq!(slices, 0, "ppoll slices:\n{trace}");
    let cut = trace.lines().filter(|l| l.contains("futex_waitv(") && l.contains("], 128,")).count();
    assert_eq!(cut, 0, "futex_waitv cut to 128 words:\n{trace}");
    // A round of the ping-pongs may find its reply already there (strace slows the poller);
    // the five waits of 20-30 ms cannot: each submits and then waits in the thread's io_uring.
    let sleeps = trace.lines().filter(|l| l.contains("io_uring_enter(")).count();
    assert!(sleeps >= 10, "{sleeps} io_uring_enter calls:\n{trace}");
    let bytes = counter(&status, "sockets", "bytes_out").unwrap_or_else(|| panic!("no counters: {status}"));
    assert!(bytes >= 3 * 2 * ROUNDS as u64, "socket bytes not through the shim: {status}");
}
