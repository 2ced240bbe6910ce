//! AF_UNIX stream connections whose clients are SIGKILLed at random moments
//! (`tests/c/socket_stress.c`), on the kernel and under the shim: every client that finished
//! delivered all its bytes, a killed one a prefix of its stream, no connection twice, nobody
//! stuck. Under the shim the bytes must have gone through its socket queues.

use ipcshim_tests::{cli_bin, diff};
use std::fs;
use std::process::Command;

const CLIENTS: &str = "120";

fn stress(exe: &std::path::Path, dir: &std::path::Path, ns: &str, seed: u32, shim: bool) -> String {
    let mut cmd = if shim {
        let mut c = Command::new(cli_bin());
        c.args(["--ns", ns, "run", "--"]).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    let out = cmd
        .args([CLIENTS, &seed.to_string()])
        .current_dir(dir)
        .env("IPCSHIM_DIR", dir)
        .env_remove("LD_PRELOAD")
        .env_remove("IPCSHIM_DISABLE")
        .env_remove("IPCSHIM_CATCHALL")
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
    let status = Command::new(cli_bin()).args(["--ns", &ns, "status"]).env("IPCSHIM_DIR", &dir).output();
    let _ = fs::remove_dir_all(&dir);
    let status = String::from_utf8_lossy(&status.expect("ipcshim status").stdout).into_owned();
    assert!(killed > 0, "no client was killed: the test tested nothing");
    let sockets = status.lines().find(|l| l.starts_with("sockets:")).unwrap_or_else(|| panic!("{status}"));
    let field = |k: &str| {
        sockets
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")).and_then(|v| v.parse::<u64>().ok()))
            .unwrap_or_else(|| panic!("no {k} in {sockets}"))
    };
    assert!(field("connections") > 100, "connections not served by the shim: {sockets}");
    assert!(field("bytes_out") > 1 << 20, "bytes not through the shim's queues: {sockets}");
    assert_eq!(field("handed_back"), 0, "{sockets}");
}
