//! An epoll echo server over AF_UNIX at scale (`bench/epoll_echo.c`): one server process with
//! a listener and every accepted connection in one level-triggered set, 4 client processes each
//! with its own set over its share of 10,000 connections, every message checked byte for byte
//! (the program fails on a lost, duplicated or corrupted byte). Under the shim every connection
//! and every byte must have gone through its socket queues: once a full epoll table gave
//! ENOSPC at 300 connections, and 1000 always failed.

use ipcshim_tests::{counter, diff, program, status};
use std::fs;

const CONNS: u64 = 10_000;
const ROUNDS: u64 = 5;
const SIZE: u64 = 64;

#[test]
fn echo_server_with_10000_connections() {
    let exe = diff::compile(&ipcshim_tests::workspace_root().join("bench/epoll_echo.c")).expect("compile");
    let ns = format!("epoll-scale-{}", std::process::id());
    let dir = ipcshim_tests::state_base().join(format!("ipcshim-{ns}"));
    fs::create_dir_all(&dir).expect("scratch dir");
    // CONNS CLIENTS ROUNDS SIZE RUNS SERVER_CPU CLIENT_CPU (unpinned).
    let args = [CONNS, 4, ROUNDS, SIZE, 1].map(|v| v.to_string());
    let out = program(&exe, &dir, Some(&ns)).args(&args).args(["-1", "-1"]).output().expect("run epoll_echo");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = status(&ns, &dir);
    let _ = fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && text.ends_with(" msgs/s\n"),
        "epoll_echo: {}\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("epoll_echo, {CONNS} connections under the shim: {text}");
    let field =
        |k: &str| counter(&status, "sockets", k).unwrap_or_else(|| panic!("no sockets {k} in {status}"));
    assert_eq!(field("connections"), CONNS, "{status}");
    assert!(field("bytes_out") >= 2 * CONNS * ROUNDS * SIZE, "messages not through the shim: {status}");
    assert_eq!(field("handed_back"), 0, "{status}");
}
