//! `ipcshim status`'s per-family counters after a workload with known counts
//! (`tests/c/counters_workload.c`).

use ipcshim_tests::{cli_bin, diff};
use std::collections::HashMap;
use std::fs;
use std::process::Command;

/// `family -> key -> value` from the `name: key=value ...` lines of `ipcshim status`.
fn counters(status: &str) -> HashMap<String, HashMap<String, u64>> {
    let mut all = HashMap::new();
    for line in status.lines() {
        let Some((family, rest)) = line.split_once(':') else { continue };
        let items: HashMap<String, u64> = rest
            .split_whitespace()
            .filter_map(|w| w.split_once('=').and_then(|(k, v)| Some((k.to_string(), v.parse().ok()?))))
            .collect();
        if !items.is_empty() {
            all.insert(family.to_string(), items);
        }
    }
    all
}

/// Runs `args` of the `ipcshim` command in namespace `ns` with its files in `dir`; its stdout.
fn ipcshim(ns: &str, dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(cli_bin())
        .args(["--ns", ns])
        .args(args)
        .env("IPCSHIM_DIR", dir)
        .env_remove("LD_PRELOAD")
        .env_remove("IPCSHIM_DISABLE")
        .env_remove("IPCSHIM_CATCHALL")
        .output()
        .expect("run ipcshim");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// `ipcshim status` after `tests/c/SOURCE` ran under `ipcshim run` in a namespace of its own
/// with `args` (the namespace's directory first), printing "done".
fn status_after(source: &str, args: &[&str]) -> String {
    let exe = diff::compile(&ipcshim_tests::workspace_root().join("tests/c").join(source)).expect("compile");
    let ns = format!("counters-{}-{}", source.trim_end_matches(".c"), std::process::id());
    let dir = ipcshim_tests::state_base().join(format!("ipcshim-{ns}"));
    fs::create_dir_all(&dir).expect("scratch dir");
    let (exe, path) = (exe.to_str().expect("utf-8 path"), dir.to_str().expect("utf-8 path"));
    assert_eq!(ipcshim(&ns, &dir, &[&["run", "--", exe, path][..], args].concat()), "done\n");
    let status = ipcshim(&ns, &dir, &["status"]);
    let _ = fs::remove_dir_all(&dir);
    status
}

/// Counter `key` of `family` in `status`.
fn get(status: &str, family: &str, key: &str) -> u64 {
    *counters(status)
        .get(family)
        .and_then(|f| f.get(key))
        .unwrap_or_else(|| panic!("no {family} {key} in:\n{status}"))
}

#[test]
fn status_counts_a_known_workload() {
    let status = status_after("counters_workload.c", &[]);
    let get = |family: &str, key: &str| get(&status, family, key);
    let exact = [
        ("shm", "calls", 4),
        ("procs", "reaped", 1),
        ("sem", "waits", 1),
        ("sem", "wakeups", 1),
        ("pipes", "created", 1),
        ("pipes", "calls", 6),
        ("pipes", "bytes_in", 3000),
        ("pipes", "bytes_out", 3000),
    ];
    for (family, key, want) in exact {
        assert_eq!(get(family, key), want, "{family} {key}:\n{status}");
    }
    // semget, two semops (one of them locks again after its wake-up); the first read sleeps.
    assert!(get("sem", "calls") >= 3, "{status}");
    assert!(get("pipes", "waits") >= 1 && get("pipes", "wakeups") >= 1, "{status}");
    assert!(get("procs", "catchall_traps") > 0, "{status}");
}

/// A connection's queues go at its sockets' release, as the kernel frees a socket's buffers:
/// an accepted socket closed by the only fd that ever held it needs no collection (and making
/// ever more connections runs none), one closed after a dup is freed by the collection
/// `status` makes.
#[test]
fn connections_are_freed_at_their_last_close() {
    let (sole, shared) = (3000u64, 100u64);
    let status = status_after("connect_cycles.c", &[&sole.to_string(), &shared.to_string()]);
    let get = |family: &str, key: &str| get(&status, family, key);
    let cycles = sole + shared;
    assert_eq!(get("pipes", "created"), 2 * cycles, "{status}");
    assert_eq!(get("sockets", "connections"), cycles, "{status}");
    assert_eq!(get("sockets", "bytes_in"), 200 * cycles, "{status}");
    assert_eq!(get("sockets", "bytes_out"), 200 * cycles, "{status}");
    assert_eq!(get("sockets", "handed_back"), 0, "{status}");
    // Status's own collection is the only one, and finds only the dup'd connections' queues.
    let line = status.lines().find(|l| l.starts_with("pipes, FIFOs:")).expect("pipes line");
    assert!(line.contains(" 0 live,"), "{status}");
    assert!(line.ends_with(&format!("1 collections freed {}", 2 * shared)), "{status}");
}

/// The same over loopback TCP, each client's TCP_NODELAY set before its connect (a call on
/// the fresh socket once made the table forget it was its fd's alone, and every queue waited
/// for a collection).
#[test]
fn tcp_connections_are_freed_at_their_last_close() {
    let (sole, shared) = (1000u64, 50u64);
    let status = status_after("connect_cycles.c", &[&sole.to_string(), &shared.to_string(), "tcp"]);
    let get = |family: &str, key: &str| get(&status, family, key);
    let cycles = sole + shared;
    assert_eq!(get("tcp", "connections"), cycles, "{status}");
    assert_eq!(get("sockets", "bytes_in"), 200 * cycles, "{status}");
    // The TCP line has its own bytes (each process adds its tally at its exit at the latest).
    assert_eq!(get("tcp", "bytes_in"), 200 * cycles, "{status}");
    assert_eq!(get("tcp", "bytes_out"), 200 * cycles, "{status}");
    assert_eq!(get("tcp", "handed_back"), 0, "{status}");
    let line =
        |name: &str| status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{status}"));
    assert!(line("served:").ends_with("loopback TCP and UDP between shimmed processes"), "{status}");
    assert!(!line("kernel-served:").contains("other than AF_UNIX;"), "{status}");
    assert!(line("kernel-served:").contains("TCP and UDP with a peer without the shim"), "{status}");
    let line = status.lines().find(|l| l.starts_with("pipes, FIFOs:")).expect("pipes line");
    assert!(line.contains(" 0 live,"), "{status}");
    assert!(line.ends_with(&format!("1 collections freed {}", 2 * shared)), "{status}");
}

/// Loopback UDP datagrams have their own line: each one queued by the shim, with its bytes.
#[test]
fn udp_datagrams_are_counted() {
    let n = 500u64;
    let status = status_after("udp_counts.c", &[&n.to_string()]);
    assert_eq!(get(&status, "tcp", "connections"), 0, "{status}");
    let get = |key: &str| get(&status, "udp", key);
    assert_eq!((get("datagrams"), get("bytes"), get("drops")), (n, 100 * n, 0), "{status}");
}

/// Reaping a killed child runs a collection only when the namespace has something one could
/// free: a process of a namespace without pipes or sockets scans nobody's fds.
#[test]
fn reaping_killed_children_scans_nothing_without_pipes() {
    let status = status_after("reap_killed.c", &["5"]);
    // Status's own collection is the only one.
    let line = status.lines().find(|l| l.starts_with("pipes, FIFOs:")).expect("pipes line");
    assert!(line.ends_with("1 collections freed 0"), "{status}");
}
