//! AF_UNIX stream connections whose clients are SIGKILLed at random moments
//! (`tests/c/socket_stress.c`), on the kernel and under the shim: every client that finished
//! delivered all its bytes, a killed one a prefix of its stream, no connection twice, nobody
//! stuck. Under the shim the bytes must have gone through its socket queues.

use ipcshim_tests::{counter, diff, program, status};
use std::fs;

const CLIENTS: &str = "120";

fn stress(exe: &std::path::Path, dir: &std::path::Path, ns: &str, seed: u32, shim: bool) -> String {
    let out = program(exe, dir, shim.then_some(ns))
        .args([CLIENTS, &seed.to_string()])
        .output()
        .expect("run socket_stress");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.starts_with("ok "),
        "socket_stress seed {seed} (shim: {shim}): {}\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn killed_clients_lose_nothing_they_were_told_was_sent() {
    let exe =
        diff::compile(&ipcshim_tests::workspace_root().join("tests/c/socket_stress.c")).expect("compile");
    let ns = format!("socket-stress-{}", std::process::id());
    let dir = ipcshim_tests::state_base().join(format!("ipcshim-{ns}"));
    fs::create_dir_all(&dir).expect("scratch dir");
    stress(&exe, &dir, &ns, 1, false);
    let mut killed = 0;
    for seed in 1..=6 {
        let out = stress(&exe, &dir, &ns, seed, true);
        killed += out.split_whitespace().nth(3).and_then(|k| k.parse::<u32>().ok()).unwrap_or(0);
    }
    let status = status(&ns, &dir);
    let _ = fs::remove_dir_all(&dir);
    assert!(killed > 0, "no client was killed: the test tested nothing");
    let field =
        |k: &str| counter(&status, "sockets", k).unwrap_or_else(|| panic!("no sockets {k} in {status}"));
    assert!(field("connections") > 100, "connections not served by the shim: {status}");
    assert!(field("bytes_out") > 1 << 20, "bytes not through the shim's queues: {status}");
    assert_eq!(field("handed_back"), 0, "{status}");
}

/// Threads of one and of three client processes connecting to one listener at once
/// (`tests/c/connect_threads.c`), 12 runs under the shim: each connection must pair the
/// client's socket with the one the kernel connected it to (the server checks the peer's bound
/// name against what it read) and lose no byte.
#[test]
fn threads_connecting_at_once_pair_each_connection_with_its_own() {
    let exe =
        diff::compile(&ipcshim_tests::workspace_root().join("tests/c/connect_threads.c")).expect("compile");
    let ns = format!("connect-threads-{}", std::process::id());
    let dir = ipcshim_tests::state_base().join(format!("ipcshim-{ns}"));
    fs::create_dir_all(&dir).expect("scratch dir");
    const RUNS: usize = 12;
    for run in 0..RUNS {
        let out = program(&exe, &dir, Some(&ns)).output().expect("run connect_threads");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let ok = text.lines().filter(|l| l.ends_with(" connections, 0 answered wrong")).count();
        assert!(
            out.status.success() && ok == 2,
            "run {run}: {}\n{text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let status = status(&ns, &dir);
    let _ = fs::remove_dir_all(&dir);
    let field =
        |k: &str| counter(&status, "sockets", k).unwrap_or_else(|| panic!("no sockets {k} in {status}"));
    assert!(field("connections") >= (RUNS * 3600) as u64, "connections not served by the shim: {status}");
    assert_eq!(field("handed_back"), 0, "{status}");
}
