//! rt-tests' `hackbench -T` under `ipcshim run`: its threads get PTHREAD_STACK_MIN (16 KiB)
//! stacks, and every served call they make (pipe and socket reads and writes through the
//! catch-all, `poll`) must fit the shim's stack budget there (issue 20: it crashed with SIGSEGV
//! in `poll`). Pipe mode (`-p`) and socket mode (socketpairs), with their traffic in the
//! namespace's counters.

use ipcshim_tests::cli_bin;
use std::fs;
use std::process::Command;
use std::time::Instant;

/// 4 groups of 20 senders each writing 200 messages of 100 bytes to each of 20 receivers.
const ARGS: [&str; 5] = ["-g", "4", "-l", "200", "-T"];
const BYTES: u64 = 4 * 20 * 20 * 200 * 100;

/// `key=value` of line `family:` of `ipcshim status`.
fn counter(status: &str, family: &str, key: &str) -> u64 {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(family)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {family}: line in ipcshim status:\n{status}"));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} on the {family}: line:\n{status}"))
}

/// Runs hackbench with `extra` arguments under the shim (killed after 60 s); the status text.
fn shimmed(name: &str, extra: &[&str]) -> String {
    let ns = format!("hackbench-{name}-{}", std::process::id());
    let dir = ipcshim_tests::state_base().join(format!("ipcshim-{ns}"));
    fs::create_dir_all(&dir).expect("scratch dir");
    let start = Instant::now();
    let out = Command::new("timeout")
        .args(["-s", "KILL", "60"])
        .arg(cli_bin())
        .args(["run", "--ns", &ns, "--", "hackbench"])
        .args(ARGS)
        .args(extra)
        .env("IPCSHIM_DIR", &dir)
        .env_remove("LD_PRELOAD")
        .env_remove("IPCSHIM_DISABLE")
        .env_remove("IPCSHIM_CATCHALL")
        .output()
        .expect("run hackbench (rt-tests, scripts/deps.sh)");
    let elapsed = start.elapsed();
    let status = Command::new(cli_bin())
        .args(["--ns", &ns, "status"])
        .env("IPCSHIM_DIR", &dir)
        .env_remove("LD_PRELOAD")
        .output()
        .expect("ipcshim status");
    let _ = fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("Time:"),
        "hackbench {extra:?} under the shim: {} after {elapsed:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("hackbench {extra:?} under the shim: {elapsed:?}");
    String::from_utf8_lossy(&status.stdout).into_owned()
}

#[test]
fn hackbench_threads_over_pipes() {
    let status = shimmed("pipes", &["-p"]);
    let served = counter(&status, "pipes", "bytes_in");
    assert!(served >= BYTES, "the shim's pipes carried {served} bytes, not {BYTES}:\n{status}");
}

#[test]
fn hackbench_threads_over_sockets() {
    let status = shimmed("sockets", &[]);
    let served = counter(&status, "sockets", "bytes_in");
    assert!(served >= BYTES, "the shim's sockets carried {served} bytes, not {BYTES}:\n{status}");
    assert_eq!(counter(&status, "sockets", "handed_back"), 0, "connections given back:\n{status}");
}
