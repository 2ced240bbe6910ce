//! An edge-triggered epoll ping-pong over an AF_UNIX stream connection
//! (`tests/c/epoll_pingpong.c`), run 20 times in a row under the shim: a socketpair and a
//! named connection whose client took its interest before connecting, with EPOLLIN alone and
//! with EPOLLOUT too, each side spinning a random while before it waits so that replies arrive
//! at every point of a waiter's look at its set. A lost wake-up stalls both sides (the program
//! gives up after 10 s); the bytes must have gone through the shim's socket queues.

use ipcshim_tests::{counter, diff, program, status};
use std::fs;

/// Round trips per run: 20 runs of 100,000 took about 80 s on this (loaded, 2-CPU) machine, too
/// long for the suite (they passed when the test was written); a tenth of that still lost a
/// wake-up within a few hundred round trips before the fix.
const ROUNDS: u32 = 10_000;
const RUNS: u32 = 20;

fn pingpong(exe: &std::path::Path, dir: &std::path::Path, ns: Option<&str>, args: [&str; 3]) {
    let out = program(exe, dir, ns).arg(ROUNDS.to_string()).args(args).output().expect("run epoll_pingpong");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text == format!("ok {ROUNDS}\n"),
        "epoll_pingpong {args:?} (shim: {}): {}\n{text}{}",
        ns.is_some(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn edge_triggered_pingpong_never_loses_a_wakeup() {
    let exe =
        diff::compile(&ipcshim_tests::workspace_root().join("tests/c/epoll_pingpong.c")).expect("compile");
    let ns = format!("epoll-stress-{}", std::process::id());
    let dir = ipcshim_tests::state_base().join(format!("ipcshim-{ns}"));
    fs::create_dir_all(&dir).expect("scratch dir");
    // EPOLLIN alone mostly: an interest that reports EPOLLOUT whenever it is looked at hides
    // a lost EPOLLIN edge.
    let configs = [
        ["pair", "in", "20000"],
        ["named", "in", "20000"],
        ["pair", "in", "5000"],
        ["named", "in", "5000"],
        ["named", "inout", "20000"],
    ];
    pingpong(&exe, &dir, None, configs[1]);
    for run in 0..RUNS {
        pingpong(&exe, &dir, Some(&ns), configs[run as usize % configs.len()]);
    }
    let status = status(&ns, &dir);
    let _ = fs::remove_dir_all(&dir);
    let field =
        |k: &str| counter(&status, "sockets", k).unwrap_or_else(|| panic!("no sockets {k} in {status}"));
    // Every run's messages, both ways, through the shim's queues.
    let bytes = u64::from(RUNS) * u64::from(ROUNDS) * 2 * 20;
    assert_eq!(field("connections"), u64::from(RUNS), "{status}");
    assert!(field("bytes_out") >= bytes, "messages not through the shim's queues: {status}");
    assert_eq!(field("handed_back"), 0, "{status}");
}
