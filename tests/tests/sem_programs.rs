//! Unmodified programs on ipcshim's System V semaphores: fakeroot-sysv (whose clients serialise
//! their requests to `faked` with a SEM_UNDO semaphore), a fakeroot client SIGKILLed while it
//! holds that semaphore, Python's `sysv_ipc` and Perl's `IPC::Semaphore`.
//!
//! Each test moves its thread into a fresh, empty kernel IPC namespace first; every process it
//! starts inherits it. The programs run under `ipcshim run` in a namespace of their own (a
//! private IPCSHIM_DIR under /dev/shm, removed afterwards), print exact lines that the test
//! compares, and stop once at a "CHECK" line while the test reads `ipcshim --ns NS ipcs -s`
//! (the set, its values, waiters and last pid, all as the program expects) and the kernel's
//! `ipcs -s` (empty): the shim, not the kernel, holds the semaphores. Every run has a deadline
//! ([`TIMEOUT`]): a hang kills its process group and anything else left in the namespace, and
//! fails the test with the output so far.
//!
//! fakeroot-sysv also uses two System V message queues (keys FAKEROOTKEY and FAKEROOTKEY + 1;
//! the semaphore is FAKEROOTKEY + 2): the fakeroot test asserts they are the shim's too.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipcshim_tests::{cli_bin, shim_lib, workspace_root};

/// Wall-clock limit for one program run, CHECK pause included.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The unprivileged user the fakeroot tests run as (so a faked chown cannot be a real one).
const NOBODY: &str = "nobody";
const NOBODY_UID: u32 = 65534;

/// A private IPCSHIM_DIR (with a work directory inside) and IPCSHIM_NS for one test, used as
/// `user` (root when `None`). On drop, processes still running with this IPCSHIM_DIR (a
/// daemonised `faked` after a failure) are killed and the directory is removed.
struct Scratch {
    dir: PathBuf,
    ns: String,
    user: Option<&'static str>,
}

impl Scratch {
    fn new(name: &str, user: Option<&'static str>) -> Scratch {
        assert!(
            shim_lib().exists() && cli_bin().exists(),
            "{} or {} is missing: run `make build` first",
            shim_lib().display(),
            cli_bin().display()
        );
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").subsec_nanos();
        let ns = format!("semprog-{name}-{}-{nanos}", std::process::id());
        let dir = ipcshim_tests::state_base().join(format!("ipcshim-{ns}"));
        fs::create_dir(&dir).expect("create scratch dir");
        fs::create_dir(dir.join("work")).expect("create work dir");
        let s = Scratch { dir, ns, user };
        if let Some(user) = user {
            let chown = Command::new("chown").arg("-R").arg(format!("{user}:")).arg(&s.dir).status();
            assert!(chown.expect("run chown").success(), "chown the scratch dir to {user}");
        }
        s
    }

    fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// PROG ARGS… as this test's user, with this namespace's environment, in the work dir.
    fn command(&self, prog: &OsStr, args: &[&str]) -> Command {
        let mut cmd;
        if let Some(user) = self.user {
            cmd = Command::new("runuser");
            cmd.args(["-u", user, "--"]).arg(prog);
        } else {
            cmd = Command::new(prog);
        }
        cmd.args(args)
            .current_dir(self.work())
            .env("IPCSHIM_NS", &self.ns)
            .env("IPCSHIM_DIR", &self.dir)
            .env_remove("IPCSHIM_DISABLE")
            .env_remove("IPCSHIM_CATCHALL")
            .env_remove("LD_PRELOAD")
            .env_remove("FAKEROOTKEY")
            .env("LC_ALL", "C");
        cmd
    }

    /// `ipcshim run --ns NS -- PROG ARGS…`.
    fn shimmed(&self, prog: &str, args: &[&str]) -> Command {
        let mut all = vec!["run", "--ns", &self.ns, "--", prog];
        all.extend_from_slice(args);
        self.command(cli_bin().as_os_str(), &all)
    }

    /// `ipcshim --ns NS ARGS…` (as this test's user: the region file is per user).
    fn cli(&self, args: &[&str]) -> String {
        let mut all = vec!["--ns", &self.ns];
        all.extend_from_slice(args);
        let mut cmd = self.command(cli_bin().as_os_str(), &all);
        run_to_end(&mut cmd)
    }

    /// The shim's semaphore sets (`ipcshim --ns NS ipcs -s`).
    fn shim_sets(&self) -> Vec<SemSet> {
        sem_sets(&self.cli(&["ipcs", "-s"]))
    }

    /// The values of one of the shim's sets (`ipcshim --ns NS ipcs -s -i ID`).
    fn shim_values(&self, semid: &str) -> Vec<SemValue> {
        sem_values(&self.cli(&["ipcs", "-s", "-i", semid]))
    }

    /// The shim's message queues (`ipcshim --ns NS ipcs -q`).
    fn shim_queues(&self) -> Vec<String> {
        queue_keys(&self.cli(&["ipcs", "-q"]))
    }

    /// Asserts the shim holds exactly `want` semaphore sets (and the kernel none), returning
    /// the rows; polls for up to 10 s, for sets a daemon removes after its client is done.
    fn assert_sets(&self, want: usize) -> Vec<SemSet> {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let shim = self.shim_sets();
            let kernel = kernel_sets();
            assert!(kernel.is_empty(), "the kernel holds semaphore sets: {kernel:?} (ipcshim: {shim:?})");
            if shim.len() == want {
                return shim;
            }
            assert!(Instant::now() < end, "ipcshim ipcs -s: want {want} sets, have {shim:?}");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        kill_processes_using(&self.dir);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// SIGKILLs every process whose environment has IPCSHIM_DIR=`dir` (only this test's processes
/// have it: the directory name is unique).
fn kill_processes_using(dir: &Path) {
    let needle = format!("IPCSHIM_DIR={}", dir.display()).into_bytes();
    let Ok(procs) = fs::read_dir("/proc") else { return };
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<libc::pid_t>().ok()) else {
            continue;
        };
        let Ok(env) = fs::read(entry.path().join("environ")) else { continue };
        if env.split(|&b| b == 0).any(|var| var == needle.as_slice()) {
            // SAFETY: kill takes no pointers.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// One row of util-linux `ipcs -s`.
#[derive(Debug, Clone)]
struct SemSet {
    key: String,
    semid: String,
    owner: String,
    perms: String,
    nsems: u32,
}

/// The set rows of `ipcs -s` output (rows start with the hex key).
fn sem_sets(ipcs_out: &str) -> Vec<SemSet> {
    ipcs_out
        .lines()
        .filter(|line| line.starts_with("0x"))
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            assert!(f.len() == 5, "unexpected ipcs -s row: {line:?}");
            SemSet {
                key: f[0].to_owned(),
                semid: f[1].to_owned(),
                owner: f[2].to_owned(),
                perms: f[3].to_owned(),
                nsems: f[4].parse().expect("nsems column"),
            }
        })
        .collect()
}

/// One semaphore of `ipcs -s -i ID`: semnum, value, ncount, zcount, pid.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct SemValue {
    value: i64,
    ncount: i64,
    zcount: i64,
    pid: i64,
}

fn sem_values(ipcs_out: &str) -> Vec<SemValue> {
    let mut lines = ipcs_out.lines().skip_while(|line| !line.starts_with("semnum"));
    assert!(lines.next().is_some(), "no semnum table in ipcs -s -i output:\n{ipcs_out}");
    lines
        .take_while(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let f: Vec<i64> = line
                .split_whitespace()
                .map(|v| v.parse().unwrap_or_else(|_| panic!("bad ipcs -s -i row {line:?}")))
                .collect();
            assert!(f.len() == 5 && f[0] == i as i64, "unexpected ipcs -s -i row {line:?}:\n{ipcs_out}");
            SemValue { value: f[1], ncount: f[2], zcount: f[3], pid: f[4] }
        })
        .collect()
}

/// The keys of `ipcs -q` rows.
fn queue_keys(ipcs_out: &str) -> Vec<String> {
    ipcs_out
        .lines()
        .filter(|line| line.starts_with("0x"))
        .map(|line| line.split_whitespace().next().expect("key column").to_owned())
        .collect()
}

/// util-linux's spelling of a key.
fn key_hex(key: i64) -> String {
    format!("{:#010x}", key as u32)
}

/// Puts the calling thread (and so every process it starts) in a new, empty IPC namespace.
fn enter_fresh_ipc_namespace() {
    // SAFETY: unshare takes no pointers; CLONE_NEWIPC changes only this thread's namespace.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWIPC) };
    assert_eq!(rc, 0, "unshare(CLONE_NEWIPC) needs root: {}", std::io::Error::last_os_error());
    assert!(kernel_sets().is_empty() && kernel_queues().is_empty(), "fresh IPC namespace not empty");
}

/// The kernel's semaphore sets in this thread's IPC namespace.
fn kernel_sets() -> Vec<SemSet> {
    sem_sets(&run_to_end(Command::new("ipcs").arg("-s").env_remove("LD_PRELOAD")))
}

/// The kernel's message queue keys in this thread's IPC namespace.
fn kernel_queues() -> Vec<String> {
    queue_keys(&run_to_end(Command::new("ipcs").arg("-q").env_remove("LD_PRELOAD")))
}

/// Runs a short command to its end (under the deadline) and returns its stdout; it must succeed.
fn run_to_end(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    let cmd = std::mem::replace(cmd, Command::new("true"));
    let mut session = Session::start(cmd, &what);
    session.finish().join("\n")
}

/// A program under test, in a process group of its own, read line by line under a deadline.
struct Session {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    seen: Vec<String>,
    deadline: Instant,
    done: bool,
}

impl Session {
    fn start(mut cmd: Command, what: &str) -> Session {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: spawn {cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        let mut err_pipe = child.stderr.take().expect("piped stderr");
        thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = err_pipe.read(&mut chunk) {
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Session {
            what: what.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
            seen: Vec::new(),
            deadline: Instant::now() + TIMEOUT,
            done: false,
        }
    }

    /// What the program said so far, for failure messages.
    fn transcript(&self) -> String {
        format!(
            "{}\nstdout so far:\n{}\nstderr so far:\n{}",
            self.what,
            self.seen.join("\n"),
            String::from_utf8_lossy(&self.stderr.lock().unwrap())
        )
    }

    /// The next line of stdout; `None` at end of file. A hang past the deadline fails the test.
    fn next_line(&mut self) -> Option<String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                panic!("hung: no output for {TIMEOUT:?} in all; process group killed\n{}", self.transcript())
            }
        }
    }

    /// The lines before the "CHECK …" line, and the CHECK line's fields after "CHECK".
    fn until_check(&mut self) -> (Vec<String>, Vec<String>) {
        let mut before = Vec::new();
        loop {
            let Some(line) = self.next_line() else {
                panic!("ended before its CHECK line\n{}", self.transcript());
            };
            if let Some(rest) = line.strip_prefix("CHECK ") {
                return (before, rest.split_whitespace().map(str::to_owned).collect());
            }
            before.push(line);
        }
    }

    /// Lets a program waiting at its CHECK line go on.
    fn go(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(b"go\n").and_then(|()| stdin.flush()).expect("write the go-ahead");
    }

    /// Closes stdin, reads the rest of stdout and waits for the exit, which must be a success
    /// within the deadline. Returns the lines read since the last call.
    fn finish(&mut self) -> Vec<String> {
        self.stdin = None;
        let from = self.seen.len();
        while self.next_line().is_some() {}
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.done = true;
                    assert!(status.success(), "failed ({status})\n{}", self.transcript());
                    return self.seen[from..].to_vec();
                }
                Ok(None) if Instant::now() < self.deadline => thread::sleep(Duration::from_millis(5)),
                Ok(None) => {
                    panic!("did not exit within {TIMEOUT:?}; process group killed\n{}", self.transcript())
                }
                Err(e) => panic!("wait: {e}\n{}", self.transcript()),
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.done {
            // SAFETY: kill takes no pointers; the group is the one the child leads.
            unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

/// Asserts that `have` equals `want` line by line, with the transcript on failure.
fn assert_lines(what: &str, have: &[String], want: &[&str]) {
    assert!(
        have.iter().map(String::as_str).eq(want.iter().copied()),
        "{what}: output differs\nhave:\n{}\nwant:\n{}",
        have.join("\n"),
        want.join("\n")
    );
}

/// The one set of `sets` with `key`, which must look as given.
fn the_set(sets: &[SemSet], key: &str, owner: &str, perms: &str, nsems: u32) -> SemSet {
    let matching: Vec<&SemSet> = sets.iter().filter(|set| set.key == key).collect();
    assert!(matching.len() == 1, "want one set with key {key} in ipcshim ipcs -s, have {sets:?}");
    let set = matching[0].clone();
    assert_eq!(
        (set.owner.as_str(), set.perms.as_str(), set.nsems),
        (owner, perms, nsems),
        "set {key}: owner, perms, nsems"
    );
    set
}

/// fakeroot-sysv runs `faked`, whose clients take its lock semaphore with SEM_UNDO around every
/// request. As `nobody`, a chown to 0:0 can only have been faked: the owner fakeroot reports
/// comes from faked, through the message queues and under the semaphore.
#[test]
fn fakeroot_sysv_fakes_chown_with_a_shim_semaphore() {
    enter_fresh_ipc_namespace();
    let s = Scratch::new("fakeroot", Some(NOBODY));
    let script = r#"umask 022; touch f; chown 0:0 f; ls -ln f; stat -c '%u:%g %a %n' f; id -u
echo "CHECK $FAKEROOTKEY"; read go
touch g; chown 12:34 g; stat -c '%u:%g %n' g f"#;
    let mut fr = Session::start(s.shimmed("fakeroot-sysv", &["sh", "-c", script]), "fakeroot-sysv sh -c …");
    let (before, check) = fr.until_check();
    assert_eq!(before.len(), 3, "fakeroot's output before the check: {before:?}");
    let ls: Vec<&str> = before[0].split_whitespace().collect();
    assert_eq!(
        (ls.first().copied(), ls.get(2).copied(), ls.get(3).copied(), ls.last().copied()),
        (Some("-rw-r--r--"), Some("0"), Some("0"), Some("f")),
        "ls -ln f under fakeroot: {:?}",
        before[0]
    );
    assert_lines("fakeroot-sysv", &before[1..], &["0:0 644 f", "0"]);

    // The lock semaphore is the shim's, idle (value 1, nobody waiting); the kernel has none.
    let key: i64 = check[0].parse().expect("FAKEROOTKEY is a number");
    let sets = s.assert_sets(1);
    let set = the_set(&sets, &key_hex(key + 2), NOBODY, "600", 1);
    let values = s.shim_values(&set.semid);
    assert_eq!(values.len(), 1);
    assert_eq!((values[0].value, values[0].ncount, values[0].zcount), (1, 0, 0), "idle lock: {values:?}");
    assert!(values[0].pid > 0, "a client has operated on the lock: {values:?}");

    // faked's request and answer queues are the shim's too; the kernel has none.
    let (kernel_q, shim_q) = (kernel_queues(), s.shim_queues());
    let want: BTreeSet<String> = [key_hex(key), key_hex(key + 1)].into();
    assert!(
        kernel_q.is_empty() && shim_q.len() == 2 && shim_q.iter().cloned().collect::<BTreeSet<_>>() == want,
        "want queues {want:?} in ipcshim only; kernel has {kernel_q:?}, ipcshim has {shim_q:?}"
    );

    fr.go();
    let after = fr.finish();
    assert_lines("fakeroot-sysv after the check", &after, &["12:34 g", "0:0 f"]);

    // On exit fakeroot stops faked, which removes its queues and semaphore.
    s.assert_sets(0);
    let end = Instant::now() + Duration::from_secs(10);
    while !(kernel_queues().is_empty() && s.shim_queues().is_empty()) {
        assert!(Instant::now() < end, "faked's queues outlived it: kernel {:?}", kernel_queues());
        thread::sleep(Duration::from_millis(20));
    }
    // Outside fakeroot the files are nobody's: the chowns were faked.
    for name in ["f", "g"] {
        let meta = fs::metadata(s.work().join(name)).expect("stat the file");
        assert_eq!((meta.uid(), meta.gid() > 0), (NOBODY_UID, true), "real owner of {name}");
    }
}

/// A fakeroot client SIGKILLed while it holds faked's lock (taken with SEM_UNDO, as every client
/// takes it) must not block the client queued behind it: the undo on death gives the lock back.
#[test]
fn fakeroot_client_killed_holding_the_lock_does_not_block_the_next() {
    enter_fresh_ipc_namespace();
    let s = Scratch::new("fakekill", Some(NOBODY));
    let exe = s.work().join("semhold");
    let src = workspace_root().join("tests/sem_programs/semhold.c");
    let cc =
        Command::new("cc").args(["-O1", "-Wall", "-Wextra", "-Werror", "-o"]).arg(&exe).arg(&src).output();
    let cc = cc.expect("run cc");
    assert!(cc.status.success(), "cc semhold.c: {}", String::from_utf8_lossy(&cc.stderr));

    let script = "touch g && ./semhold g && stat -c '%u:%g %n' g";
    let mut fr = Session::start(s.shimmed("fakeroot-sysv", &["sh", "-c", script]), "fakeroot-sysv semhold");
    let (before, check) = fr.until_check();
    assert_lines(
        "semhold",
        &before,
        &["idle: value 1 ncount 0", "held: value 0 ncount 1 zcount 0 pid holder"],
    );
    // The shim shows the same: held by the holder, the chown queued; the kernel has nothing.
    let (semid, holder) = (&check[0], check[1].parse::<i64>().expect("holder pid"));
    let sets = s.assert_sets(1);
    assert!(sets[0].semid == *semid && sets[0].owner == NOBODY, "the lock in ipcshim ipcs -s: {sets:?}");
    assert_eq!(s.shim_values(semid), [SemValue { value: 0, ncount: 1, zcount: 0, pid: holder }]);

    let killed = Instant::now();
    fr.go();
    let after = fr.finish();
    assert_lines(
        "semhold after the kill",
        &after,
        &[
            "holder: killed by signal 9",
            "waiter: exited with status 0",
            "after: value 1 ncount 0 zcount 0 pid waiter",
            "0:0 g",
        ],
    );
    eprintln!("fakeroot: the queued client finished {:?} after the holder's SIGKILL", killed.elapsed());
    s.assert_sets(0);
    let meta = fs::metadata(s.work().join("g")).expect("stat g");
    assert_eq!(meta.uid(), NOBODY_UID, "g's real owner: the chown was faked");
}

/// Python's `sysv_ipc.Semaphore` across processes: timed and non-blocking acquires, release and
/// acquire by more than one, SEM_UNDO on a process SIGKILLed while holding it, a blocked acquire
/// woken from another process, a wait for zero, and a waiter woken by the removal.
#[test]
fn python_sysv_ipc_semaphores_across_processes() {
    enter_fresh_ipc_namespace();
    let s = Scratch::new("python", None);
    let key = 0x5e4a_0000 + i64::from(std::process::id() & 0xffff);
    let script = workspace_root().join("tests/sem_programs/sysv_ipc_sem.py");
    let script = script.to_str().expect("utf-8 path");
    let mut py =
        Session::start(s.shimmed("python3", &[script, "main", &key.to_string()]), "python3 sysv_ipc_sem.py");
    let (before, check) = py.until_check();
    assert_lines(
        "sysv_ipc",
        &before,
        &[
            "timeouts supported: True",
            "created: value 0 mode 0o600",
            "second IPC_CREX: ExistentialError",
            "timed acquire: BusyError after 0.3 s",
            "non-blocking acquire: BusyError",
            "after release 1 and 3: value 4",
            "after acquire 2: value 2 last_pid is self True",
            "undo child: holding, value 0 | returncode -9",
            "after its death: value 1 last_pid is child True",
            "plain child: took it, value 0 | returncode 0",
            "after its exit: value 0",
            "waiting for nonzero: 1 value 0",
        ],
    );
    let (semid, last_pid) = (&check[0], check[1].parse::<i64>().expect("last pid"));
    let sets = s.assert_sets(1);
    let set = the_set(&sets, &key_hex(key), "root", "600", 1);
    assert_eq!(&set.semid, semid);
    assert_eq!(s.shim_values(semid), [SemValue { value: 0, ncount: 1, zcount: 0, pid: last_pid }]);

    py.go();
    let after = py.finish();
    assert_lines(
        "sysv_ipc after the check",
        &after,
        &[
            "waiter: acquired, value 0 | returncode 0",
            "after the waiter: value 0 last_pid is waiter True",
            "waiting for zero: 1",
            "zero waiter: zero reached, value 0 | returncode 0",
            "waiter at removal: ExistentialError | returncode 0",
            "after remove: ExistentialError",
        ],
    );
    s.assert_sets(0);
}

/// Perl's `IPC::Semaphore` (perl core): create, setall/getall, an all-or-nothing operation list,
/// SEM_UNDO undone at a child's exit, setval/getval, remove.
#[test]
fn perl_ipc_semaphore_set() {
    enter_fresh_ipc_namespace();
    let s = Scratch::new("perl", None);
    let key = 0x5e4b_0000 + i64::from(std::process::id() & 0xffff);
    let script = workspace_root().join("tests/sem_programs/ipc_semaphore.pl");
    let script = script.to_str().expect("utf-8 path");
    let mut pl = Session::start(s.shimmed("perl", &[script, &key.to_string()]), "perl ipc_semaphore.pl");
    let (before, check) = pl.until_check();
    assert_lines(
        "IPC::Semaphore",
        &before,
        &[
            "new set: getall 0,0,0",
            "second IPC_EXCL: EEXIST",
            "open with nsems 4: EINVAL",
            "setall 3,0,7: getall 3,0,7",
            "stat: nsems 3 mode 600 uid is euid 1",
            "take 0 and 1 without waiting: EAGAIN, getall 3,0,7",
            "child after op: getall 2,2,2",
            "child exit status 0",
            "after the child: getall 3,0,7 last pid is child 1",
            "after a child without SEM_UNDO: getall 3,4,7",
            "held: getall 3,0,0 ncnt 0 zcnt 0 last pid is self 1,1,1",
        ],
    );
    let (semid, pid) = (&check[0], check[1].parse::<i64>().expect("perl's pid"));
    let sets = s.assert_sets(1);
    let set = the_set(&sets, &key_hex(key), "root", "600", 3);
    assert_eq!(&set.semid, semid);
    let held = |value| SemValue { value, ncount: 0, zcount: 0, pid };
    assert_eq!(s.shim_values(semid), [held(3), held(0), held(0)]);

    pl.go();
    let after = pl.finish();
    assert_lines(
        "IPC::Semaphore after the check",
        &after,
        &[
            "setval 1 5: getval 5 getall 3,5,0",
            "removed",
            "open after remove: ENOENT",
            "getall on the removed id: EINVAL",
        ],
    );
    s.assert_sets(0);
}
