//! Never worse than the kernel under resource pressure (issue 19).
//!
//! With `IPCSHIM_DIR` on a 16 MiB tmpfs mounted for the test (containers give `/dev/shm` 64 MiB),
//! programs whose pipes, sockets and segments need more than that room give the kernel's output
//! or a clean error (a segment the file system cannot hold is ENOMEM at shmget), never a
//! SIGBUS: the shim reserves a page before anything touches it and hands what cannot grow to
//! the kernel. A full file system before the namespace exists leaves the command to the kernel
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

#[test]
fn a_segment_beyond_a_small_tmpfs_is_enomem_at_shmget() {
    let fs16 = SmallTmpfs::mount("segment", "16m");
    let dir = &fs16.dir;
    let exe = diff::compile(&workspace_root().join("tests/c/segment.c")).expect("compile");
    let exe = exe.to_str().expect("path");
    let kernel = run(dir, "seg", false, exe, &["64"]);
    assert_clean("64 MiB on the kernel", &kernel);
    let shim = run(dir, "seg", true, exe, &["64"]);
    assert_eq!(shim.status.signal(), None, "killed: {}", text(&shim.stderr));
    assert_eq!(text(&shim.stdout), "shmget: Cannot allocate memory\n");
    // What fits is served, and goes with IPC_RMID.
    let small = run(dir, "seg", true, exe, &["4"]);
    assert_clean("4 MiB under the shim", &small);
    assert_eq!(text(&small.stdout), text(&run(dir, "seg", false, exe, &["4"]).stdout));
    let st = status("seg", dir);
    assert!(st.contains("shm segments:   0 (0 attachments, 0 pages)"), "{st}");
    assert!(counter(&st, "shm", "calls").unwrap_or(0) >= 4, "{st}");
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

#[test]
fn svsematest_mlockall_stays_near_the_kernels_resident_size() {
    let dir = ipcshim_tests::state_base().join(format!("ipcshim-pressure-mlock-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("scratch dir");
    let args = ["-f", "-l", "2000", "-i", "100", "-q"];
    let mut kernel = Command::new("svsematest");
    kernel.args(args).stdout(std::process::Stdio::null());
    let (ok, k_rss) = peak_rss(kernel);
    assert!(ok, "svsematest on the kernel failed");
    let mut shim = Command::new(cli_bin());
    shim.args(["run", "--ns", "mlock", "--", "svsematest"])
        .args(args)
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
