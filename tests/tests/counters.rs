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

#[test]
fn status_counts_a_known_workload() {
    let exe =
        diff::compile(&ipcshim_tests::workspace_root().join("tests/c/counters_workload.c")).expect("compile");
    let ns = format!("counters-{}", std::process::id());
    let dir = ipcshim_tests::state_base().join(format!("ipcshim-{ns}"));
    fs::create_dir_all(&dir).expect("scratch dir");
    let run = |args: &[&str]| {
        let out = Command::new(cli_bin())
            .args(["--ns", &ns])
            .args(args)
            .env("IPCSHIM_DIR", &dir)
            .env_remove("LD_PRELOAD")
            .env_remove("IPCSHIM_DISABLE")
            .env_remove("IPCSHIM_CATCHALL")
            .output()
            .expect("run ipcshim");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
        text
    };
    assert_eq!(run(&["run", "--", exe.to_str().expect("utf-8 path")]), "done\n");
    let status = run(&["status"]);
    let _ = fs::remove_dir_all(&dir);
    let c = counters(&status);
    let get = |family: &str, key: &str| {
        *c.get(family).and_then(|f| f.get(key)).unwrap_or_else(|| panic!("no {family} {key} in:\n{status}"))
    };
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
