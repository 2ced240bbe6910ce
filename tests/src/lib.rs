//! Helpers shared by the integration tests: where the built artefacts are.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub mod diff;

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// `target/release`, where `make build` puts `libipcshim.so` and `ipcshim`.
pub fn release_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("release"),
        None => workspace_root().join("target").join("release"),
    }
}

/// The preload library.
pub fn shim_lib() -> PathBuf {
    release_dir().join("libipcshim.so")
}

/// The `ipcshim` command.
pub fn cli_bin() -> PathBuf {
    release_dir().join("ipcshim")
}

/// Where tests put IPCSHIM_DIRs: the region must live on tmpfs.
pub fn state_base() -> PathBuf {
    PathBuf::from("/dev/shm")
}

/// `exe` run in `dir`, which is also its IPCSHIM_DIR: under `ipcshim run` in namespace `ns`,
/// or plainly without it; none of the shim's variables the test itself may have.
pub fn program(exe: &Path, dir: &Path, ns: Option<&str>) -> Command {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new(cli_bin());
            c.args(["--ns", ns, "run", "--"]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.current_dir(dir)
        .env("IPCSHIM_DIR", dir)
        .env_remove("LD_PRELOAD")
        .env_remove("IPCSHIM_DISABLE")
        .env_remove("IPCSHIM_CATCHALL");
    cmd
}

/// The counter `key` of the `family:` line of `ipcshim status` output.
pub fn counter(status: &str, family: &str, key: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix(family)?.strip_prefix(':'))?;
    line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// `ipcshim status` of namespace `ns` in region directory `dir`.
pub fn status(ns: &str, dir: &Path) -> String {
    let out = Command::new(cli_bin()).args(["--ns", ns, "status"]).env("IPCSHIM_DIR", dir).output();
    String::from_utf8_lossy(&out.expect("ipcshim status").stdout).into_owned()
}

/// Runs `cmd` in a process group of its own and, once it exited or `timeout` passed (None
/// then), kills the whole group: nothing it forked outlives the run (a child left asleep by a
/// parent killed mid-run, say). The group is killed while its leader is still unreaped, so
/// its id cannot name another group yet.
pub fn run_in_group(cmd: &mut Command, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let mut child = cmd.process_group(0).spawn()?;
    let deadline = Instant::now() + timeout;
    let exited = loop {
        if exited_unreaped(&child)? {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        sleep(Duration::from_millis(10));
    };
    // Until the group is empty: a process forked while the first kill went round is not
    // killed by it. The leader is still unreaped, and a group id stays taken while any member
    // lives, so the id names this run's group all along.
    let deadline = Instant::now() + Duration::from_secs(10);
    // SAFETY: kill(2) on the group our own child leads; it holds only processes this run
    // started, and an empty one gives ESRCH.
    while unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) } == 0 && Instant::now() < deadline
    {
        if exited_unreaped(&child)? && group_gone(child.id()) {
            break;
        }
        sleep(Duration::from_millis(10));
    }
    let status = child.wait()?;
    Ok(exited.then_some(status))
}

/// Whether no process but the (exited, unreaped) leader is left in group `pgid`.
fn group_gone(pgid: u32) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else { return true };
    !procs.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).any(|pid| {
        pid != pgid
            && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
                // pgrp is the 3rd field after the command's closing parenthesis.
                st.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(2)?.parse::<u32>().ok())
                    == Some(pgid)
            })
    })
}

/// Whether `child` exited, leaving it unreaped (`waitid` with WNOWAIT).
fn exited_unreaped(child: &Child) -> io::Result<bool> {
    // SAFETY: an all-zero siginfo_t is valid; waitid fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: `info` is a valid, writable siginfo_t; the pid is our own unreaped child.
    if unsafe { libc::waitid(libc::P_PID, child.id(), &mut info, flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: waitid filled `info` (si_pid stays 0 when no child changed state).
    Ok(unsafe { info.si_pid() } != 0)
}
