//! Unmodified programs on ipcshim's System V message queues: fakeroot-sysv (every request of
//! its clients to `faked` and every answer travels by message queue), Python's `sysv_ipc`
//! MessageQueue and Perl's `IPC::Msg`.
//!
//! Each program runs twice from a thread moved into a fresh kernel IPC namespace: on the
//! kernel, then under `ipcshim run` with the differential tests' seccomp filter, which makes
//! every System V system call the kernel would see fail with EHWPOISON. Both runs must print
//! the same, and what the test expects; the shim run's namespace must show the message queue
//! calls it served, and the kernel's namespace no queue at all.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipcshim_tests::{cli_bin, diff, shim_lib, workspace_root};

const TIMEOUT: Duration = Duration::from_secs(60);
const NOBODY: &str = "nobody";
const NOBODY_UID: u32 = 65534;

/// A private IPCSHIM_DIR with a work directory, removed (with any process still using it) on
/// drop.
struct Scratch {
    dir: PathBuf,
    ns: String,
}

impl Scratch {
    fn new(name: &str, owner: Option<&str>) -> Scratch {
        assert!(shim_lib().exists() && cli_bin().exists(), "run `make build` first");
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").subsec_nanos();
        let ns = format!("msgprog-{name}-{}-{nanos}", std::process::id());
        let dir = ipcshim_tests::state_base().join(format!("ipcshim-{ns}"));
        fs::create_dir_all(dir.join("kernel")).expect("create work dir");
        fs::create_dir_all(dir.join("shim")).expect("create work dir");
        if let Some(user) = owner {
            let chown = Command::new("chown").arg("-R").arg(format!("{user}:")).arg(&dir).status();
            assert!(chown.expect("run chown").success(), "chown the scratch dir to {user}");
        }
        Scratch { dir, ns }
    }

    fn work(&self, shim: bool) -> PathBuf {
        self.dir.join(if shim { "shim" } else { "kernel" })
    }

    /// `ipcshim --ns NS status` as `user` (the region file is per user).
    fn status(&self, user: Option<&str>) -> String {
        let mut cmd = as_user(user, cli_bin().as_os_str());
        cmd.args(["--ns", &self.ns, "status"]).env("IPCSHIM_DIR", &self.dir);
        let out = cmd.output().expect("run ipcshim status");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs PROG ARGS… on the kernel, or under `ipcshim run` with SysV syscalls blocked by
    /// seccomp; returns stdout (stderr appended after a marker when the run failed).
    fn run(&self, shim: bool, user: Option<&str>, prog: &str, args: &[&str]) -> String {
        let mut cmd = if shim {
            let mut c = as_user(user, cli_bin().as_os_str());
            c.args(["run", "--ns", &self.ns, "--", prog]);
            c
        } else {
            as_user(user, prog.as_ref())
        };
        let out = self.dir.join(if shim { "shim.out" } else { "kernel.out" });
        let err = self.dir.join(if shim { "shim.err" } else { "kernel.err" });
        cmd.args(args)
            .current_dir(self.work(shim))
            .env("IPCSHIM_NS", &self.ns)
            .env("IPCSHIM_DIR", &self.dir)
            .env("LC_ALL", "C")
            .env_remove("LD_PRELOAD")
            .env_remove("FAKEROOTKEY")
            .env_remove("IPCSHIM_DISABLE")
            .env_remove("IPCSHIM_CATCHALL")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).expect("create output file"))
            .stderr(fs::File::create(&err).expect("create output file"))
            .process_group(0);
        if shim {
            let prog = diff::seccomp_program();
            // SAFETY: runs in the child before exec: prctl and seccomp on data built before the
            // fork, no allocation.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let fprog = libc::sock_fprog {
                        len: prog.len() as u16,
                        filter: prog.as_ptr() as *mut libc::sock_filter,
                    };
                    let flags: libc::c_uint = 0;
                    if libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, flags, &fprog) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn");
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break Some(st);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // SAFETY: kill(2) on the run's own process group.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.wait();
        self.await_daemons();
        let stdout = fs::read_to_string(&out).unwrap_or_default();
        let stderr = fs::read_to_string(&err).unwrap_or_default();
        match status {
            Some(st) if st.success() => stdout,
            st => format!("{stdout}--- {} ({st:?}), stderr:\n{stderr}", if shim { "shim" } else { "kernel" }),
        }
    }

    /// The processes still running with this scratch's IPCSHIM_DIR (every process a run
    /// started has it, daemons included).
    fn processes(&self) -> Vec<libc::pid_t> {
        let needle = format!("IPCSHIM_DIR={}", self.dir.display()).into_bytes();
        let mut pids = Vec::new();
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<libc::pid_t>().ok()) else {
                continue;
            };
            let Ok(env) = fs::read(entry.path().join("environ")) else { continue };
            if env.split(|&b| b == 0).any(|var| var == needle.as_slice()) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Waits for daemons a run left behind to exit: fakeroot sends faked TERM without waiting,
    /// and faked removes its queues on the way out. A zombie's environ reads empty, so it
    /// counts as gone (it removed them before exiting).
    fn await_daemons(&self) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = self.processes();
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "processes {left:?} of the run still alive after {TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for pid in self.processes() {
            // SAFETY: kill takes no pointers.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn as_user(user: Option<&str>, prog: &std::ffi::OsStr) -> Command {
    match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(prog);
            c
        }
        None => Command::new(prog),
    }
}

fn fixture(name: &str) -> String {
    workspace_root().join("tests/msg_programs").join(name).display().to_string()
}

fn enter_fresh_ipc_namespace() {
    // SAFETY: unshare takes no pointers; CLONE_NEWIPC changes only this thread's namespace.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWIPC) };
    assert_eq!(rc, 0, "unshare(CLONE_NEWIPC) needs root: {}", std::io::Error::last_os_error());
}

/// The kernel's message queues in this thread's IPC namespace (lines of /proc/sysvipc/msg).
fn kernel_queues() -> usize {
    fs::read_to_string("/proc/sysvipc/msg").unwrap_or_default().lines().count() - 1
}

/// `calls=N` on the `msg:` line of `ipcshim status`.
fn msg_calls(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("msg:"))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("calls=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no msg_calls in status:\n{status}"))
}

/// Runs a program both ways and checks both outputs; returns the shim namespace's msg_calls.
fn both_ways(s: &Scratch, user: Option<&str>, prog: &str, args: &[&str], want: &str) -> u64 {
    let kernel = s.run(false, user, prog, args);
    assert_eq!(kernel, want, "{prog} on the kernel");
    assert_eq!(kernel_queues(), 0, "{prog} left queues on the kernel");
    let shim = s.run(true, user, prog, args);
    assert_eq!(shim, want, "{prog} under ipcshim (SysV syscalls to the kernel fail with EHWPOISON)");
    assert_eq!(kernel_queues(), 0, "the shim run made kernel queues");
    msg_calls(&s.status(user))
}

/// What `fakeroot.sh` prints under fakeroot.
fn fakeroot_output() -> String {
    let gids: u32 = (1..=200).map(|i| i % 7).sum();
    format!("201 entries, uids 20100, gids {gids}\n1:1 644 f1\n5:5 4755 f5\n200:4 644 f200\n0:0 755 d\n200\n")
}

/// fakeroot-sysv as nobody creates, chowns and lists 200 files: every chown and stat is a
/// round trip to faked by message queue, so the owners it reports come through the shim.
#[test]
fn fakeroot_sysv_sessions_over_shim_message_queues() {
    enter_fresh_ipc_namespace();
    let s = Scratch::new("fakeroot", Some(NOBODY));
    let want = fakeroot_output();
    let calls = both_ways(&s, Some(NOBODY), "fakeroot-sysv", &["sh", &fixture("fakeroot.sh")], &want);
    assert!(calls >= 1000, "only {calls} message queue calls served");
    eprintln!("fakeroot-sysv: {calls} message queue calls served by ipcshim");
    // Outside fakeroot the files are nobody's: the chowns were faked.
    for shim in [false, true] {
        let meta = fs::metadata(s.work(shim).join("f1")).expect("stat f1");
        assert_eq!(meta.uid(), NOBODY_UID, "real owner of f1");
    }
    // A second session in the same namespace finds nothing left of the first.
    let again = s.run(true, Some(NOBODY), "fakeroot-sysv", &["sh", "-c", "chown 7:8 f1; stat -c %u:%g f1"]);
    assert_eq!(again, "7:8\n");
    assert!(s.status(Some(NOBODY)).contains("msg queues:     0 (0 messages)"), "faked's queues outlived it");
}

/// The same sessions started as root under `setpriv --reuid=nobody`: faked and its clients run
/// as nobody in root's namespace (the one `ipcshim run` opened), which serves their queues.
#[test]
fn fakeroot_sysv_under_setpriv_stays_in_the_namespace() {
    enter_fresh_ipc_namespace();
    let s = Scratch::new("fakesetpriv", Some(NOBODY));
    let want = fakeroot_output();
    let args = [
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "fakeroot-sysv",
        "sh",
        &fixture("fakeroot.sh"),
    ];
    let calls = both_ways(&s, None, "setpriv", &args, &want);
    assert!(calls >= 1000, "only {calls} message queue calls served in root's namespace");
    eprintln!("fakeroot-sysv under setpriv: {calls} message queue calls served by ipcshim");
    let meta = fs::metadata(s.work(true).join("f1")).expect("stat f1");
    assert_eq!(meta.uid(), NOBODY_UID, "real owner of f1");
}

#[test]
fn python_sysv_ipc_message_queue() {
    enter_fresh_ipc_namespace();
    let s = Scratch::new("python", None);
    let want = "max_size 16384 current 0\n\
                current 4 lspid is me True\n\
                (b'one', 1)\n\
                (b'uno', 1)\n\
                (b'three', 3)\n\
                (b'two', 2)\n\
                empty: BusyError\n\
                child got 7 for the child\n\
                current 1 lrpid is the child True\n\
                2000 8 True\n\
                full: BusyError\n\
                True\n\
                same queue by key True max_size 100\n\
                removed: Invalid argument\n";
    let calls = both_ways(&s, None, "python3", &[&fixture("mq.py")], want);
    assert!(calls >= 15, "only {calls} message queue calls served");
}

#[test]
fn perl_ipc_msg() {
    enter_fresh_ipc_namespace();
    let s = Scratch::new("perl", None);
    let want = "qnum 3 qbytes 16384 mode 600\n\
                type 1 'one'\n\
                type 2 'tw'\n\
                too big: Argument list too long\n\
                type 2 'deux'\n\
                empty: No message of desired type\n\
                qbytes 10\n\
                full: Resource temporarily unavailable\n\
                child: type 5 'hi child'\n\
                after: qnum 0 lrpid is the child yes\n\
                removed: Invalid argument\n";
    let calls = both_ways(&s, None, "perl", &[&fixture("msg.pl")], want);
    assert!(calls >= 10, "only {calls} message queue calls served");
}
