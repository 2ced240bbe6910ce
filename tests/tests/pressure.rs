//! Never worse than the kernel under resource pressure (issue 19).
//!
//! With `IPCSHIM_DIR` on a 16 MiB tmpfs mounted for the test (containers give `/dev/shm` 64 MiB),
//! programs whose pipes, sockets and segments need more than that room give the kernel's output
//! or a clean error, never a SIGBUS: the shim reserves a page before anything touches it and
//! hands what cannot grow to the kernel; a segment the file system cannot hold lives in a
//! kernel segment (ENOMEM at shmget where System V calls are denied), and no kernel segment
//! outlives its process when it is killed. A full file system before the namespace exists leaves the command to the kernel
//! with a one-line message. `mlockall` in `svsematest` keeps its resident size near the
//! kernel's. And once everything exited, `ipcshim status` shows an idle namespace: no live pipe
//! or socket queue, no ring pages, no process records.

use ipcshim_tests::{cli_bin, counter, diff, status, workspace_root};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A tmpfs of `size` mounted for one test, unmounted on drop.
struct SmallTmpfs {
    dir: PathBuf,
}

impl SmallTmpfs {
    fn mount(name: &str, size: &str) -> SmallTmpfs {
        let dir = std::env::temp_dir().join(format!("ipcshim-pressure-{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("mount point");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=1777"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount");
        assert!(st.success(), "mount -t tmpfs -o size={size} failed (tests run as root)");
        SmallTmpfs { dir }
    }

    /// A file that takes all the room left.
    fn fill(&self) {
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=1M", "count=1000"])
            .arg(format!("of={}", self.dir.join("filler").display()))
            .output();
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = fs::remove_dir(&self.dir);
    }
}

/// `prog args` on the kernel, or under `ipcshim run` in namespace `ns` of `dir`.
fn run(dir: &Path, ns: &str, shim: bool, prog: &str, args: &[&str]) -> Output {
    let mut cmd = if shim {
        let mut c = Command::new(cli_bin());
        c.args(["run", "--ns", ns, "--", prog]);
        c
    } else {
        Command::new(prog)
    };
    cmd.args(args)
        .env("IPCSHIM_DIR", dir)
        .env_remove("LD_PRELOAD")
        .env_remove("IPCSHIM_DISABLE")
        .env_remove("IPCSHIM_CATCHALL")
        .output()
        .expect("run")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts the run was not killed (a SIGBUS above all) and exited 0.
fn assert_clean(what: &str, out: &Output) {
    assert!(
        out.status.signal().is_none() && out.status.success(),
        "{what}: {} (signal {:?})\nstdout: {}\nstderr: {}",
        out.status,
        out.status.signal(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Asserts the namespace holds no live pipe or socket queue, no ring pages, no process record.
fn assert_idle(what: &str, status: &str) {
    let pipes = status.lines().find(|l| l.starts_with("pipes, FIFOs:")).unwrap_or_else(|| panic!("{status}"));
    assert!(
        pipes.contains(" 0 live,") && pipes.contains(" 0 ring pages"),
        "{what}: the namespace is not idle: {pipes}\n{status}"
    );
    assert!(status.contains("processes:      0 live"), "{what}: process records left\n{status}");
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, body).expect("write script");
    path.display().to_string()
}

/// 300 pipes of 64 KiB each (19 MiB, more than the tmpfs holds), then all read back.
const PIPES: &str = r#"
import os
ps = []
for i in range(300):
    r, w = os.pipe()
    n = 0
    while n < 65536:
        n += os.write(w, bytes([i % 251]) * (65536 - n))
    ps.append((r, w))
total = 0
for i, (r, w) in enumerate(ps):
    got = b""
    while len(got) < 65536:
        got += os.read(r, 65536 - len(got))
    assert got == bytes([i % 251]) * 65536, i
    total += len(got)
print("pipes", len(ps), "bytes", total)
"#;

/// 250 stream socketpairs holding 64 KiB each, 100 seqpacket pairs holding 8 records each.
const SOCKETS: &str = r#"
import hashlib, socket
h = hashlib.sha256()
streams, records = [], []
for i in range(250):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    a.sendall(bytes([i % 251]) * 65536)
    streams.append((a, b))
for i in range(100):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for k in range(8):
        a.send(bytes([(i + k) % 251]) * (4000 + k))
    records.append((a, b))
total = 0
for a, b in streams:
    got = 0
    while got < 65536:
        d = b.recv(65536 - got)
        h.update(d)
        got += len(d)
    total += got
for a, b in records:
    for k in range(8):
        d = b.recv(8000)
        assert len(d) == 4000 + k
        h.update(d)
        total += len(d)
print(total, h.hexdigest())
"#;

#[test]
fn pipes_and_sockets_beyond_a_small_tmpfs_go_to_the_kernel() {
    let fs16 = SmallTmpfs::mount("fill", "16m");
    let dir = &fs16.dir;
    for (name, body) in [("pipes", PIPES), ("sockets", SOCKETS)] {
        let py = script(dir, &format!("{name}.py"), body);
        let kernel = run(dir, name, false, "python3", &[&py]);
        assert_clean(&format!("{name} on the kernel"), &kernel);
        let shim = run(dir, name, true, "python3", &[&py]);
        assert_clean(&format!("{name} under the shim"), &shim);
        assert_eq!(text(&shim.stdout), text(&kernel.stdout), "{name}: output differs from the kernel's");
        let st = status(name, dir);
        let line = if name == "pipes" { "pipes" } else { "sockets" };
        assert!(
            counter(&st, line, "bytes_in").unwrap_or(0) > 1 << 20,
            "{name}: the shim carried nothing\n{st}"
        );
        // What did not fit went to the kernel: pipes handed back with bytes queued, or socket
        // pairs left to it from the start, or connections handed back.
        let spilled = if name == "pipes" {
            counter(&st, line, "bytes_in").unwrap_or(0) > counter(&st, line, "bytes_out").unwrap_or(0)
        } else {
            counter(&st, line, "connections").unwrap_or(0) < 350
                || counter(&st, line, "handed_back").unwrap_or(0) > 0
        };
        assert!(spilled, "{name}: nothing went to the kernel: the tmpfs was not filled\n{st}");
        assert_idle(name, &st);
        eprintln!("{name}: {}", st.lines().filter(|l| l.starts_with(line)).collect::<String>());
    }
}

/// A kernel IPC namespace of our own (held by a sleeping process), so that every kernel segment
/// in it is one the test made: those the shim uses as backing, or the kernel run's own.
struct KernelIpcNs {
    holder: std::process::Child,
}

impl KernelIpcNs {
    fn new() -> KernelIpcNs {
        let mine = fs::read_link("/proc/self/ns/ipc").expect("own ipc ns");
        let holder = Command::new("unshare").args(["-i", "sleep", "600"]).spawn().expect("unshare -i");
        let ns = KernelIpcNs { holder };
        let path = format!("/proc/{}/ns/ipc", ns.holder.id());
        // unshare execs sleep once the namespace is made.
        wait_for("the new IPC namespace", || fs::read_link(&path).is_ok_and(|l| l != mine));
        ns
    }

    /// `prog` run in the namespace.
    fn cmd(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.holder.id().to_string(), "-i", "--"]).arg(prog);
        c.env_remove("LD_PRELOAD").env_remove("IPCSHIM_DISABLE").env_remove("IPCSHIM_CATCHALL");
        c
    }

    /// The kernel's own segments there: the lines of its `/proc/sysvipc/shm`, split in fields.
    fn segments(&self) -> Vec<Vec<String>> {
        let out = self.cmd("cat").arg("/proc/sysvipc/shm").output().expect("cat");
        shm_lines(&text(&out.stdout))
    }
}

impl Drop for KernelIpcNs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// The segment lines of a `/proc/sysvipc/shm` text, split in fields (key shmid perms size cpid
/// lpid nattch …).
fn shm_lines(t: &str) -> Vec<Vec<String>> {
    t.lines().skip(1).map(|l| l.split_whitespace().map(String::from).collect()).collect()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn compiled(name: &str) -> String {
    let exe = diff::compile(&workspace_root().join("tests/c").join(name)).expect("compile");
    exe.to_str().expect("path").to_string()
}

/// The key `segment_shared.c` uses, as `/proc/sysvipc/shm` prints it.
const SHARED_KEY: &str = "1592590337";
const MIB64: &str = "67108864";

/// A 64 MiB segment on a 16 MiB tmpfs: two processes attach it, write and read every page, and
/// detach and remove it, with the kernel's output. The region has no room for it, so its pages
/// are a private kernel segment; the shim served every call the program made. Told apart by
/// strace of the shim run: the kernel saw one `shmget(IPC_PRIVATE, 64 MiB)` (the program asks
/// for key 0x5eed0001, which no kernel call carries), an `shmat` of it per process, and its
/// IPC_RMID, but none of the program's IPC_STATs, shmdts or its shmget by key; and by the
/// snapshots taken while both are attached, in a kernel IPC namespace of the test's own: the
/// kernel holds one keyless 64 MiB segment attached twice, the namespace's view the program's.
#[test]
fn a_segment_beyond_a_small_tmpfs_lives_in_the_kernels_memory() {
    let fs16 = SmallTmpfs::mount("shared", "16m");
    let dir = &fs16.dir;
    let exe = compiled("segment_shared.c");
    let (k_kernel, k_view) = (dir.join("kernel-kernel"), dir.join("kernel-view"));
    let (s_kernel, s_view) = (dir.join("shim-kernel"), dir.join("shim-view"));
    // The kernel's own file (cat without the shim), and the one the program sees.
    let snapshot = |kernel: &Path, view: &Path| {
        format!(
            "IPCSHIM_DISABLE=1 cat /proc/sysvipc/shm > {}; cat /proc/sysvipc/shm > {}",
            kernel.display(),
            view.display()
        )
    };
    let ns = KernelIpcNs::new();
    let kernel = ns.cmd(&exe).args(["64", &snapshot(&k_kernel, &k_view)]).output().expect("run");
    assert_clean("64 MiB shared on the kernel", &kernel);
    let trace = dir.join("strace");
    // Also `ipcshim ipcs` from inside the namespace, which runs shared-state's code (and its
    // kernel calls) under the preload.
    let ipcs = dir.join("ipcs");
    let shim_snapshot =
        format!("{}; {} ipcs -m -u > {}", snapshot(&s_kernel, &s_view), cli_bin().display(), ipcs.display());
    let shim = ns
        .cmd("timeout")
        .args(["120", "strace", "-f", "-qq", "-e", "trace=shmget,shmat,shmdt,shmctl", "-o"])
        .arg(&trace)
        .arg(cli_bin())
        .args(["run", "--ns", "shared", "--", &exe, "64", &shim_snapshot])
        .env("IPCSHIM_DIR", dir)
        .output()
        .expect("run");
    assert_clean("64 MiB shared under the shim", &shim);
    assert_eq!(text(&shim.stdout), text(&kernel.stdout), "output differs from the kernel's");
    assert!(text(&kernel.stdout).contains(" 0 not as the child wrote them"), "{}", text(&kernel.stdout));
    let read = |p: &Path| shm_lines(&fs::read_to_string(p).expect("snapshot"));
    // On the kernel: the program's segment, by its key, attached twice.
    let k = read(&k_kernel);
    assert!(k.len() == 1 && k[0][0] == SHARED_KEY && k[0][3] == MIB64 && k[0][6] == "2", "{k:?}");
    // Under the shim: the kernel holds a keyless 64 MiB segment attached twice (the backing);
    // the program sees its own segment, as on the kernel, resident.
    let b = read(&s_kernel);
    assert!(b.len() == 1 && b[0][0] == "0" && b[0][3] == MIB64 && b[0][6] == "2", "backing: {b:?}");
    let v = read(&s_view);
    assert!(v.len() == 1 && v[0][0] == SHARED_KEY && v[0][3] == MIB64 && v[0][6] == "2", "view: {v:?}");
    assert_eq!(v[0][14], MIB64, "the view's rss: {v:?}");
    let listed = fs::read_to_string(&ipcs).expect("ipcs output");
    assert!(listed.contains("pages resident  16384"), "ipcs -u: {listed}");
    // What reached the kernel: only the backing's calls.
    let calls = fs::read_to_string(&trace).expect("strace output");
    let lines: Vec<&str> = calls.lines().filter(|l| l.contains("shm")).collect();
    let count = |what: &str| lines.iter().filter(|l| l.contains(what)).count();
    assert_eq!(count("shmget(IPC_PRIVATE, 67108864, IPC_CREAT|0640)"), 1, "{calls}");
    assert_eq!(count("shmget("), 1, "{calls}");
    assert_eq!(count("shmat("), 2, "{calls}");
    assert_eq!(count("shmctl("), 1, "{calls}");
    assert_eq!(count("IPC_RMID"), 1, "{calls}");
    assert_eq!(count("shmdt(") + count("0x5eed0001") + count("IPC_STAT"), 0, "{calls}");
    // The program's calls were served: 2 shmget, 2 shmat, 2 shmdt, 6 IPC_STAT, 1 IPC_RMID
    // (and ipcs's SHM_INFO).
    let st = status("shared", dir);
    assert_eq!(counter(&st, "shm", "calls"), Some(14), "{st}");
    assert_eq!(counter(&st, "shm", "backed"), Some(1), "{st}");
    assert!(st.contains("shm segments:   0 (0 attachments, 0 pages)"), "{st}");
    assert_eq!(ns.segments(), Vec::<Vec<String>>::new(), "a kernel segment was left behind");
}

/// Where System V calls are denied to the process (the c-tests' seccomp filter), a segment the
/// region has no room for fails as the kernel's allocation would, with ENOMEM; one that fits is
/// served.
#[test]
fn without_kernel_system_v_a_segment_beyond_a_small_tmpfs_is_enomem() {
    use std::os::unix::process::CommandExt;
    let fs16 = SmallTmpfs::mount("segment", "16m");
    let dir = &fs16.dir;
    let exe = compiled("segment.c");
    let kernel = run(dir, "seg", false, &exe, &["64"]);
    assert_clean("64 MiB on the kernel", &kernel);
    let denied = |mb: &str| {
        let filter = diff::seccomp_program();
        let mut cmd = Command::new(cli_bin());
        cmd.args(["run", "--ns", "seg", "--", &exe, mb]).env("IPCSHIM_DIR", dir).env_remove("LD_PRELOAD");
        // SAFETY: prctl and seccomp on a filter built before the fork; nothing is allocated.
        unsafe {
            cmd.pre_exec(move || {
                let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut _ };
                let on = libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
                    && libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog) == 0;
                if on { Ok(()) } else { Err(std::io::Error::last_os_error()) }
            });
        }
        cmd.output().expect("run")
    };
    let shim = denied("64");
    assert_eq!(shim.status.signal(), None, "killed: {}", text(&shim.stderr));
    assert_eq!(text(&shim.stdout), "shmget: Cannot allocate memory\n");
    // What fits is served, and goes with IPC_RMID.
    let small = denied("4");
    assert_clean("4 MiB under the shim", &small);
    assert_eq!(text(&small.stdout), text(&run(dir, "seg", false, &exe, &["4"]).stdout));
    let st = status("seg", dir);
    assert!(st.contains("shm segments:   0 (0 attachments, 0 pages)"), "{st}");
    assert!(counter(&st, "shm", "calls").unwrap_or(0) >= 5, "{st}");
    assert_eq!(counter(&st, "shm", "backed"), Some(0), "{st}");
}

fn sigkill(pid: i32) {
    // SAFETY: kill(2) of a process this test started.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill {pid}: {}", std::io::Error::last_os_error());
}

/// Processes killed at the worst instants leave no kernel segment behind: after the kernel made
/// the backing and before its id was recorded (strace stops the process as the kernel's
/// `shmget` returns), and in the removal before the kernel's IPC_RMID (stopped as it enters
/// it); the next lock holder (here `ipcshim status`) removes it. One killed attached after IPC_RMID needs
/// nobody: the kernel frees the backing at the death. One killed attached without IPC_RMID
/// leaves the segment, as the kernel would, until `ipcshim ipcrm` removes it with its backing.
#[test]
fn a_killed_process_leaks_no_kernel_segment() {
    let fs16 = SmallTmpfs::mount("killed", "16m");
    let dir = &fs16.dir;
    let exe = compiled("segment.c");
    let ns = KernelIpcNs::new();
    // strace stops the program with SIGSTOP at the instant `inject` names, and it is killed there
    // (strace says when the stop took effect, and whose it is).
    let held = |inject: &str, name: &str| {
        let trace = dir.join(format!("{name}.strace"));
        let mut strace = ns
            .cmd("strace")
            .args(["-f", "-e", "trace=shmget,shmctl", "-e", "signal=SIGSTOP", "-e", inject, "-o"])
            .arg(&trace)
            .arg(cli_bin())
            .args(["run", "--ns", "killed", "--", &exe, "64"])
            .env("IPCSHIM_DIR", dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("strace");
        let mut stopped = 0;
        wait_for(name, || {
            let t = fs::read_to_string(&trace).unwrap_or_default();
            let line = t.lines().find(|l| l.ends_with("--- stopped by SIGSTOP ---"));
            stopped = line.and_then(|l| l.split_whitespace().next()?.parse().ok()).unwrap_or(0);
            stopped != 0
        });
        sigkill(stopped);
        // strace ends as its tracee did.
        let _ = strace.wait();
    };
    // `ipcshim status` and `ipcrm` in that namespace: a kernel segment id means nothing elsewhere.
    let cli = |args: &[&str]| {
        let out = ns.cmd(cli_bin()).args(["--ns", "killed"]).args(args).env("IPCSHIM_DIR", dir).output();
        let out = out.expect("ipcshim");
        assert_clean(&args.join(" "), &out);
        text(&out.stdout)
    };
    // Stopped as the kernel's shmget returns (its segment is made), before the shim recorded it.
    held("inject=shmget:signal=SIGSTOP", "in-shmget");
    assert_eq!(ns.segments().len(), 1, "the kernel's shmget did not run");
    let st = cli(&["status"]);
    assert_eq!(counter(&st, "procs", "lock_recoveries"), Some(1), "{st}");
    assert!(st.contains("shm segments:   0 (0 attachments, 0 pages)"), "{st}");
    assert_eq!(ns.segments(), Vec::<Vec<String>>::new(), "killed in shmget: the kernel segment leaked");
    // The program's IPC_RMID destroyed the segment; stopped entering the kernel's IPC_RMID,
    // which does not run (the injected ERESTARTNOINTR would restart it after the stop).
    held("inject=shmctl:signal=SIGSTOP:error=ERESTARTNOINTR", "in-rmid");
    assert_eq!(ns.segments().len(), 1, "the kernel's IPC_RMID ran");
    let st = cli(&["status"]);
    assert_eq!(counter(&st, "procs", "lock_recoveries"), Some(2), "{st}");
    assert_eq!(ns.segments(), Vec::<Vec<String>>::new(), "killed in IPC_RMID: the kernel segment leaked");
    // Killed while attached.
    let hold = |how: &str| {
        let out = dir.join(format!("{how}.out"));
        let mut prog = ns
            .cmd(cli_bin())
            .args(["run", "--ns", "killed", "--", &exe, "64", how])
            .env("IPCSHIM_DIR", dir)
            .stdout(fs::File::create(&out).expect("output file"))
            .spawn()
            .expect("run");
        wait_for(how, || fs::read_to_string(&out).is_ok_and(|t| t.ends_with("held\n")));
        sigkill(prog.id() as i32);
        let _ = prog.wait();
    };
    hold("hold-removed");
    assert_eq!(
        ns.segments(),
        Vec::<Vec<String>>::new(),
        "removed, then killed attached: still in the kernel"
    );
    assert!(cli(&["status"]).contains("shm segments:   0 (0 attachments, 0 pages)"));
    hold("hold");
    let left = ns.segments();
    assert!(left.len() == 1 && left[0][3] == MIB64 && left[0][6] == "0", "{left:?}");
    assert!(cli(&["status"]).contains("shm segments:   1 (0 attachments, 16384 pages)"));
    cli(&["ipcrm", "-a"]);
    assert_eq!(ns.segments(), Vec::<Vec<String>>::new(), "ipcrm left the kernel segment");
}

#[test]
fn no_room_for_the_region_leaves_the_command_to_the_kernel() {
    let fs = SmallTmpfs::mount("full", "1m");
    fs.fill();
    let out = run(&fs.dir, "full", true, "bash", &["-c", "echo hi | cat; seq 1 20000 | sort -n | tail -1"]);
    assert_clean("a pipeline with no room", &out);
    assert_eq!(text(&out.stdout), "hi\n20000\n");
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("no room for a new region") && err.contains("left to the kernel"), "{err}");
}

#[test]
fn a_full_tmpfs_under_a_live_region_is_no_sigbus() {
    let fs16 = SmallTmpfs::mount("later", "16m");
    let dir = &fs16.dir;
    assert_clean("make the region", &run(dir, "later", true, "true", &[]));
    fs16.fill();
    let out = run(
        dir,
        "later",
        true,
        "bash",
        &["-c", "for i in $(seq 1 50); do echo $i; done | sort -n | tail -1; yes | head -c 1000000 | wc -c"],
    );
    assert_clean("pipelines on a full tmpfs", &out);
    assert_eq!(text(&out.stdout), "50\n1000000\n");
    assert_idle("after the pipelines", &status("later", dir));
}

/// Runs `prog` and waits for it with its resource usage: (exited 0, its peak resident KiB, with
/// its waited-for descendants').
fn peak_rss(mut cmd: Command) -> (bool, i64) {
    // Reaped below with wait4, for its resource usage.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("spawn");
    let mut st = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut ru: libc::rusage = unsafe { core::mem::zeroed() };
    // SAFETY: valid pointers for the call; the pid is our child's.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut st, 0, &mut ru) };
    assert_eq!(pid, child.id() as i32);
    (libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0, ru.ru_maxrss)
}

/// svsematest's fork mode (`-f`), run at SCHED_FIFO priority 1 (`chrt -f 1`): its sender child
/// checks a word of shared memory that the receiver child stores between its fork and its exec,
/// and the parent forks the sender only 10 ms after the receiver. A receiver child that a loaded
/// machine has not run within those 10 ms leaves the word 0: the sender exits ("Memory size
/// problem (expected 0, found 304)") and the receiver and the parent wait for it for ever, on
/// the kernel as under the shim (whose fork children start later, which made it likelier). At
/// real-time priority the receiver child runs as soon as the parent sleeps.
const SVSEMATEST: [&str; 10] = ["chrt", "-f", "1", "svsematest", "-f", "-l", "2000", "-i", "100", "-q"];

#[test]
fn svsematest_mlockall_stays_near_the_kernels_resident_size() {
    let dir = ipcshim_tests::state_base().join(format!("ipcshim-pressure-mlock-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("scratch dir");
    let rt = Command::new("chrt").args(["-f", "1", "true"]).status();
    assert!(rt.as_ref().is_ok_and(|s| s.success()), "chrt -f 1 (SCHED_FIFO) is not allowed here: {rt:?}");
    let mut kernel = Command::new(SVSEMATEST[0]);
    kernel.args(&SVSEMATEST[1..]).stdout(std::process::Stdio::null());
    let (ok, k_rss) = peak_rss(kernel);
    assert!(ok, "svsematest on the kernel failed");
    let mut shim = Command::new(cli_bin());
    shim.args(["run", "--ns", "mlock", "--"])
        .args(SVSEMATEST)
        .env("IPCSHIM_DIR", &dir)
        .env_remove("LD_PRELOAD")
        .stdout(std::process::Stdio::null());
    let (ok, s_rss) = peak_rss(shim);
    let st = status("mlock", &dir);
    let _ = fs::remove_dir_all(&dir);
    assert!(ok, "svsematest under the shim failed\n{st}");
    eprintln!("svsematest peak resident: kernel {k_rss} KiB, shim {s_rss} KiB");
    assert!(s_rss <= k_rss + 64 * 1024, "{s_rss} KiB resident under the shim, {k_rss} KiB on the kernel");
    assert!(counter(&st, "sem", "calls").unwrap_or(0) >= 2000, "the semaphores were not the shim's\n{st}");
}

/// An epoll echo server and 100 clients (all connections, served ones and those the pending
/// table leaves to the kernel, closed as the clients exit).
const ECHO: &str = r#"
import os, select, socket, sys
path = sys.argv[1]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(128)
pid = os.fork()
if pid == 0:
    srv.close()
    cs = []
    for i in range(100):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(path)
        cs.append(c)
    for i, c in enumerate(cs):
        c.sendall(b"msg%d" % i)
    ok = sum(c.recv(100) == b"msg%d" % i for i, c in enumerate(cs))
    print("clients ok", ok, flush=True)
    os._exit(0)
ep = select.epoll()
ep.register(srv.fileno(), select.EPOLLIN)
conns, done = {}, 0
while done < 100:
    for fd, ev in ep.poll():
        if fd == srv.fileno():
            c, _ = srv.accept()
            conns[c.fileno()] = c
            ep.register(c.fileno(), select.EPOLLIN)
        else:
            c = conns[fd]
            d = c.recv(100)
            if d:
                c.sendall(d)
            else:
                ep.unregister(fd)
                c.close()
                del conns[fd]
                done += 1
os.waitpid(pid, 0)
print("server done", done)
"#;

#[test]
fn an_idle_namespace_holds_no_queues_after_programs_exit() {
    let dir = ipcshim_tests::state_base().join(format!("ipcshim-pressure-idle-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("scratch dir");
    let echo = script(&dir, "echo.py", ECHO);
    let sock = dir.join("sock").display().to_string();
    let out = run(&dir, "idle", true, "python3", &[&echo, &sock]);
    assert_clean("echo server", &out);
    assert_eq!(text(&out.stdout), "clients ok 100\nserver done 100\n");
    let st = status("idle", &dir);
    assert!(counter(&st, "sockets", "connections").unwrap_or(0) > 0, "no connection was served\n{st}");
    assert_idle("after the echo server", &st);
    let fifo = dir.join("fifo").display().to_string();
    let shell = format!(
        "for i in 1 2 3; do echo hi | cat | wc -c; done; seq 1 100000 | sort -n | tail -1; \
         mkfifo {fifo}; cat {fifo} & echo through > {fifo}; wait; \
         python3 -c 'import subprocess; [subprocess.run([\"true\"]) for _ in range(20)]; print(\"spawned\")'"
    );
    let out = run(&dir, "idle", true, "bash", &["-c", &shell]);
    assert_clean("pipelines", &out);
    assert_eq!(text(&out.stdout), "3\n3\n3\n100000\nthrough\nspawned\n");
    let st = status("idle", &dir);
    let _ = fs::remove_dir_all(&dir);
    assert_idle("after pipelines, a FIFO and spawns", &st);
}
