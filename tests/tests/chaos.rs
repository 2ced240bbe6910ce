//! Chaos over every served family at once (`tests/c/chaos.c`): about 50 processes moving
//! records through pipes, FIFOs, AF_UNIX stream, seqpacket (passing pipes with SCM_RIGHTS) and
//! datagram sockets, epoll, message queues, semaphores with SEM_UNDO and shared memory, while
//! a random worker is SIGKILLed, SIGSTOPped or asked to exit every few milliseconds (but
//! for one message queue pair, whose channel outlives hundreds of newer ones). The
//! program checks that no acknowledged record was lost, duplicated or torn, that semaphores
//! add up with their undos, that no survivor was held up a second by a dead peer, and that
//! everything finishes when told to; this test then checks that the namespace is idle: no
//! live pipe or socket queue, no ring pages, no process records, no object left.
//!
//! It runs on the kernel for a few seconds (to check the checker) and under the shim for 30 s,
//! or for `IPCSHIM_CHAOS_SECS` seconds (seed `IPCSHIM_CHAOS_SEED`, default 1).

use ipcshim_tests::{cli_bin, counter, diff, status, workspace_root};
use std::fs;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The `key=value` counts of chaos's `ok` line.
fn count(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")).and_then(|v| v.parse().ok()))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

fn chaos(exe: &str, dir: &std::path::Path, secs: u64, seed: u64, shim: bool) -> String {
    let work = dir.join(if shim { "shim" } else { "kernel" });
    fs::create_dir_all(&work).expect("work dir");
    let mut cmd = if shim {
        let mut c = Command::new(cli_bin());
        c.args(["run", "--ns", "chaos", "--", exe]);
        c
    } else {
        Command::new(exe)
    };
    let mut child = cmd
        .args([&secs.to_string(), &seed.to_string()])
        .arg(&work)
        .env("IPCSHIM_DIR", dir)
        .env_remove("LD_PRELOAD")
        .env_remove("IPCSHIM_DISABLE")
        .env_remove("IPCSHIM_CATCHALL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("run chaos");
    // A hang is a failure, not a stuck `make test`: the whole group goes after a while.
    let deadline = Instant::now() + Duration::from_secs(secs + 120);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            // SAFETY: our own child's process group.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!("chaos (shim: {shim}, seed {seed}) still running {} s after its end", 120);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("chaos output");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.starts_with("ok "),
        "chaos (shim: {shim}, seed {seed}): {}\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("chaos {} {secs} s seed {seed}: {}", if shim { "shim" } else { "kernel" }, text.trim());
    text
}

#[test]
fn chaos_loses_nothing_and_leaves_the_namespace_idle() {
    let secs = env_num("IPCSHIM_CHAOS_SECS", 30);
    let seed = env_num("IPCSHIM_CHAOS_SEED", 1);
    let exe = diff::compile(&workspace_root().join("tests/c/chaos.c")).expect("compile");
    let exe = exe.to_str().expect("path");
    let dir = ipcshim_tests::state_base().join(format!("ipcshim-chaos-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("scratch dir");
    chaos(exe, &dir, 3, seed, false);
    let out = chaos(exe, &dir, secs, seed, true);
    for key in ["channels", "records", "scm_fds", "sem_ops", "mutex", "shm", "kills", "stops", "exits"] {
        assert!(count(&out, key) > 0, "nothing of {key} happened: {out}");
    }
    // Served by the shim, not the kernel.
    let st = status("chaos", &dir);
    for (line, key) in [
        ("pipes", "bytes_in"),
        ("sockets", "bytes_in"),
        ("sem", "calls"),
        ("msg", "calls"),
        ("shm", "calls"),
        ("procs", "reaped"),
    ] {
        assert!(counter(&st, line, key).unwrap_or(0) > 0, "no {key} on the {line} line\n{st}");
    }
    // Kept by collections for a while, as they cannot tell it from one in use: a pipe whose
    // last fd was dropped in flight (an SCM_RIGHTS message its receiver never took), for 10 s
    // after it was sent, and an object whose last holder was killed inside a call on it, for
    // 10 s after a collection (the one status just ran) first found it unheld. Past those,
    // nothing may be left.
    // A collection that could not see every process (on a busy machine, one listing /proc
    // while processes come and go) frees nothing, and the 10 s count only begins with one
    // that did: status is asked again, for up to 20 s more.
    std::thread::sleep(Duration::from_secs(11));
    let idle = |st: &str| st.contains(" 0 live, 0 bytes queued, 0 ring pages;");
    let mut st = status("chaos", &dir);
    for _ in 0..20 {
        if idle(&st) {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
        st = status("chaos", &dir);
    }
    let _ = fs::remove_dir_all(&dir);
    let pipes = st.lines().find(|l| l.starts_with("pipes, FIFOs:")).unwrap_or_else(|| panic!("{st}"));
    assert!(idle(&st), "not idle: {pipes}\n{st}");
    for idle in [
        "processes:      0 live",
        "shm segments:   0 (0 attachments, 0 pages)",
        "sem arrays:     0 (0 semaphores)",
        "msg queues:     0 (0 messages)",
    ] {
        assert!(st.contains(idle), "not idle: no `{idle}`\n{st}");
    }
}
