//! Unmodified programs (util-linux `ipcmk`, Python's `sysv_ipc`, PostgreSQL) under `ipcshim run`.
//!
//! Each test moves its thread into a fresh, empty kernel IPC namespace first; every process it
//! starts inherits that namespace. The kernel's `ipcs -m` staying empty while `ipcshim ipcs -m`
//! lists the segment proves the shim, not the kernel, served the calls.

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use ipcshim_tests::{cli_bin, shim_lib};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A fresh IPCSHIM_DIR and IPCSHIM_NS for one test; the directory goes away on drop.
struct Scratch {
    dir: PathBuf,
    ns: String,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        assert!(
            shim_lib().exists() && cli_bin().exists(),
            "{} or {} is missing: run `make build` first",
            shim_lib().display(),
            cli_bin().display()
        );
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").subsec_nanos();
        let ns = format!("prog-{name}-{}-{nanos}", std::process::id());
        let dir = ipcshim_tests::state_base().join(format!("ipcshim-{ns}"));
        fs::create_dir(&dir).expect("create scratch dir");
        Scratch { dir, ns }
    }

    /// `ipcshim run --ns NS -- PROG ARGS…`, optionally as another user.
    fn shimmed(&self, user: Option<&str>, prog: &str, args: &[&str]) -> Command {
        let mut cmd = self.as_user(user, cli_bin().as_os_str());
        cmd.args(["run", "--ns", &self.ns, "--", prog]).args(args);
        cmd
    }

    /// `ipcshim ipcs -m` of this namespace, seen by `user` (the region file is per user).
    fn shim_segments(&self, user: Option<&str>) -> Vec<Segment> {
        let mut cmd = self.as_user(user, cli_bin().as_os_str());
        segments(&stdout_of(cmd.args(["ipcs", "-m"])))
    }

    /// PROG with this namespace's environment, optionally through `runuser -u USER`. A minute's
    /// timeout turns a hang (say, a deadlocked shim) into a failure.
    fn as_user(&self, user: Option<&str>, prog: &OsStr) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.args(["-k", "5", "60"]);
        if let Some(user) = user {
            cmd.args(["runuser", "-u", user, "--"]);
        }
        cmd.arg(prog);
        cmd.env("IPCSHIM_NS", &self.ns)
            .env("IPCSHIM_DIR", &self.dir)
            .env_remove("IPCSHIM_DISABLE")
            .env_remove("LD_PRELOAD");
        cmd
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// One row of util-linux `ipcs -m` output.
#[derive(Debug)]
struct Segment {
    key: String,
    shmid: String,
    owner: String,
    perms: String,
    bytes: u64,
    nattch: u64,
}

/// The segment rows of `ipcs -m` output (rows start with the hex key).
fn segments(ipcs_out: &str) -> Vec<Segment> {
    ipcs_out
        .lines()
        .filter(|line| line.starts_with("0x"))
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            assert!(f.len() >= 6, "short ipcs row: {line:?}");
            Segment {
                key: f[0].to_owned(),
                shmid: f[1].to_owned(),
                owner: f[2].to_owned(),
                perms: f[3].to_owned(),
                bytes: f[4].parse().expect("bytes column"),
                nattch: f[5].parse().expect("nattch column"),
            }
        })
        .collect()
}

/// Puts the calling thread (and so every process it starts) in a new, empty IPC namespace.
fn enter_fresh_ipc_namespace() {
    // SAFETY: unshare takes no pointers; CLONE_NEWIPC changes only this thread's namespace.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWIPC) };
    assert_eq!(rc, 0, "unshare(CLONE_NEWIPC) needs root: {}", std::io::Error::last_os_error());
    assert!(kernel_segments().is_empty(), "fresh IPC namespace not empty");
}

/// The kernel's own segments in this thread's IPC namespace.
fn kernel_segments() -> Vec<Segment> {
    segments(&stdout_of(Command::new("ipcs").arg("-m").env_remove("LD_PRELOAD")))
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn ipcmk_segment_lives_in_the_shim() {
    enter_fresh_ipc_namespace();
    let s = Scratch::new("ipcmk");

    let out = stdout_of(&mut s.shimmed(None, "ipcmk", &["-M", "65536"]));
    let shmid = out
        .trim()
        .strip_prefix("Shared memory id: ")
        .unwrap_or_else(|| panic!("unexpected ipcmk output {out:?}"));

    let shim = s.shim_segments(None);
    let seg = shim
        .iter()
        .find(|seg| seg.shmid == shmid)
        .unwrap_or_else(|| panic!("shmid {shmid} not in ipcshim ipcs: {shim:?}"));
    assert_eq!(seg.bytes, 65536);
    assert_eq!(seg.perms, "644", "ipcmk's default mode");
    assert_eq!(seg.owner, "root");
    assert_eq!(seg.nattch, 0);

    let kernel = kernel_segments();
    assert!(kernel.is_empty(), "the kernel holds segments: {kernel:?}");
}

/// Creates a segment, writes a marker, waits for a line on stdin, then prints what is at 64.
const PY_CREATOR: &str = r#"
import sys, sysv_ipc
shm = sysv_ipc.SharedMemory(int(sys.argv[1]), sysv_ipc.IPC_CREX, 0o600, 4096)
shm.write(b"hello from A")
print("ready", flush=True)
sys.stdin.readline()
print(shm.read(12, 64).decode(), flush=True)
"#;

/// Attaches by key, prints the marker, answers at offset 64.
const PY_READER: &str = r#"
import sys, sysv_ipc
shm = sysv_ipc.SharedMemory(int(sys.argv[1]))
print(shm.read(12).decode())
shm.write(b"reply from B", 64)
"#;

#[test]
fn python_sysv_ipc_processes_share_a_segment() {
    enter_fresh_ipc_namespace();
    let s = Scratch::new("python");
    let key = 0x1e55_0000 + (std::process::id() & 0xffff);
    let key_arg = key.to_string();

    let mut creator = s
        .shimmed(None, "python3", &["-c", PY_CREATOR, &key_arg])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python3 creator");
    let mut creator_out = BufReader::new(creator.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    creator_out.read_line(&mut line).expect("read creator");
    assert_eq!(line.trim(), "ready", "creator did not get its segment");

    let read = stdout_of(&mut s.shimmed(None, "python3", &["-c", PY_READER, &key_arg]));
    assert_eq!(read.trim(), "hello from A");

    // The creator is still attached; the reader has exited and detached.
    let key_hex = format!("{key:#010x}");
    let shim = s.shim_segments(None);
    let seg = shim
        .iter()
        .find(|seg| seg.key == key_hex)
        .unwrap_or_else(|| panic!("key {key_hex} not in ipcshim ipcs: {shim:?}"));
    assert_eq!((seg.bytes, seg.nattch), (4096, 1));
    assert_eq!(seg.perms, "600");

    let kernel = kernel_segments();
    assert!(kernel.is_empty(), "the kernel holds segments: {kernel:?}");

    let mut stdin = creator.stdin.take().expect("piped stdin");
    writeln!(stdin).expect("wake creator");
    line.clear();
    creator_out.read_line(&mut line).expect("read creator");
    assert_eq!(line.trim(), "reply from B", "creator did not see the reply");
    assert!(creator.wait().expect("wait creator").success());
}

/// A PostgreSQL cluster in a scratch dir owned by `postgres`; stopped and removed on drop.
struct Cluster {
    scratch: Scratch,
    running: bool,
}

impl Cluster {
    fn data(&self) -> PathBuf {
        self.scratch.dir.join("data")
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut cmd = self.scratch.as_user(Some("postgres"), Path::new(PG_BIN).join("pg_ctl").as_os_str());
        cmd.arg("-D").arg(self.data()).args(args);
        cmd
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let fast = self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "20"]).output();
            if !fast.is_ok_and(|out| out.status.success()) {
                let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]).output();
            }
        }
    }
}

#[test]
fn postgres_runs_on_shim_shared_memory() {
    enter_fresh_ipc_namespace();
    let scratch = Scratch::new("postgres");
    let chown = Command::new("chown").arg("postgres:postgres").arg(&scratch.dir).status().expect("run chown");
    assert!(chown.success(), "chown to postgres (does the user exist?)");
    fs::set_permissions(&scratch.dir, fs::Permissions::from_mode(0o700)).expect("chmod");
    let mut pg = Cluster { scratch, running: false };
    let dir = pg.scratch.dir.clone();
    let pg_bin = |name: &str| Path::new(PG_BIN).join(name).display().to_string();

    let data = pg.data().display().to_string();
    stdout_of(&mut pg.scratch.shimmed(Some("postgres"), &pg_bin("initdb"), &["-D", &data]));

    let opts = format!("-k {} -c listen_addresses=''", dir.display());
    let log = dir.join("server.log").display().to_string();
    let start = ["-D", &data, "-o", &opts, "-l", &log, "start", "-w", "-t", "30"];
    let mut start_cmd = pg.scratch.shimmed(Some("postgres"), &pg_bin("pg_ctl"), &start);
    pg.running = true; // a failed start may still leave a postmaster behind
    let started = start_cmd.output().expect("run pg_ctl start");
    assert!(
        started.status.success(),
        "{start_cmd:?} failed: {}\nserver log:\n{}",
        String::from_utf8_lossy(&started.stderr),
        fs::read_to_string(&log).unwrap_or_default()
    );

    let mut psql = pg.scratch.as_user(Some("postgres"), OsStr::new("psql"));
    psql.arg("-X").arg("-h").arg(&dir).args(["-d", "postgres", "-Atc", "select 1"]);
    assert_eq!(stdout_of(&mut psql).trim(), "1");

    let shim = pg.scratch.shim_segments(Some("postgres"));
    assert!(
        shim.iter().any(|seg| seg.owner == "postgres" && seg.nattch >= 1),
        "no attached postgres segment in ipcshim ipcs: {shim:?}"
    );
    let kernel = kernel_segments();
    assert!(kernel.is_empty(), "the kernel holds segments: {kernel:?}");

    stdout_of(&mut pg.pg_ctl(&["stop", "-m", "fast", "-w"]));
    pg.running = false;
    // A clean shutdown removes the segment (IPC_RMID), as on the kernel.
    let left = pg.scratch.shim_segments(Some("postgres"));
    assert!(left.is_empty(), "segments left after stop: {left:?}");
}
