//! Runs every `c-tests/*.c` program against the kernel and against the shim (see
//! `ipcshim_tests::diff`), and checks that the seccomp filter behind the shim run really blocks
//! System V IPC.

use ipcshim_tests::diff::{self, Mode};
use std::fs;

#[test]
fn shim_matches_kernel() {
    let mut programs = diff::programs().expect("list c-tests");
    // IPCSHIM_CTESTS=name,name… runs only those (while working on them).
    if let Ok(only) = std::env::var("IPCSHIM_CTESTS") {
        let only: Vec<&str> = only.split(',').collect();
        programs.retain(|p| p.file_stem().is_some_and(|s| only.contains(&&*s.to_string_lossy())));
    }
    assert!(!programs.is_empty(), "no c-tests/*.c found");
    let mut failures = Vec::new();
    let mut cases = 0;
    for src in &programs {
        let res = diff::check(src);
        match res {
            Ok(n) => {
                eprintln!("ok   {} ({n} cases)", src.display());
                cases += n;
            }
            Err(report) => {
                eprintln!("FAIL {}", src.display());
                failures.push(report);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} programs differ ({cases} cases passed in the rest):\n\n{}",
        failures.len(),
        programs.len(),
        failures.join("\n\n")
    );
}

/// Every SysV IPC syscall, through glibc and raw, with harmless arguments.
const PROBE: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>

#define P(name, expr) do { errno = 0; long r = (long)(expr); \
	printf("%s %ld %s\n", name, r, r == -1 && errno == 133 ? "EHWPOISON" : "other"); } while (0)

int main(void)
{
	P("glibc_shmget", shmget(IPC_PRIVATE, 4096, 0600));
	P("shmget", syscall(SYS_shmget, IPC_PRIVATE, 4096, 0600));
	P("shmat", syscall(SYS_shmat, -1, 0, 0));
	P("shmctl", syscall(SYS_shmctl, -1, IPC_STAT, 0));
	P("shmdt", syscall(SYS_shmdt, 1));
	P("semget", syscall(SYS_semget, IPC_PRIVATE, 1, 0600));
	P("semop", syscall(SYS_semop, -1, 0, 0));
	P("semctl", syscall(SYS_semctl, -1, 0, IPC_RMID, 0));
	P("semtimedop", syscall(SYS_semtimedop, -1, 0, 0, 0));
	P("msgget", syscall(SYS_msgget, IPC_PRIVATE, 0600));
	P("msgsnd", syscall(SYS_msgsnd, -1, 0, 0, 0));
	P("msgrcv", syscall(SYS_msgrcv, -1, 0, 0, 0, 0));
	P("msgctl", syscall(SYS_msgctl, -1, IPC_RMID, 0));
	P("getpid", syscall(SYS_getpid) > 0 ? 0 : -1);
	return 0;
}
"#;

#[test]
fn seccomp_filter_blocks_sysv_ipc() {
    let exe = probe("seccomp_probe", PROBE);

    let kernel = diff::run(&exe, Mode::Kernel).expect("kernel run");
    let filtered = diff::run(&exe, Mode::FilterOnly).expect("filtered run");
    for run in [&kernel, &filtered] {
        assert_eq!(run.status, "exit 0", "probe failed: {run:?}");
        assert_eq!(run.stdout.lines().count(), 14, "probe output: {run:?}");
    }
    assert!(!kernel.stdout.contains("EHWPOISON"), "kernel run shows EHWPOISON:\n{}", kernel.stdout);
    for line in filtered.stdout.lines() {
        let blocked = line.ends_with(" -1 EHWPOISON");
        assert_eq!(blocked, !line.starts_with("getpid "), "filtered run: {line}\n{}", filtered.stdout);
    }
}

/// Data through a kernel AF_UNIX socket of each type, a shim pipe passed in SCM_RIGHTS, and
/// out-of-band bytes.
const SOCKETS: &str = r#"
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int fail(void) { return 1; }

int main(void)
{
	int st[2], dg[2], sq[2], p[2];
	char buf[16];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, st) || socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sq) || pipe(p))
		return fail();
	if (write(st[0], "s", 1) != 1 || read(st[1], buf, sizeof buf) != 1)
		return fail();
	if (send(dg[0], "d", 1, 0) != 1 || recv(dg[1], buf, sizeof buf, 0) != 1)
		return fail();
	if (send(sq[0], "q", 1, 0) != 1 || recv(sq[1], buf, sizeof buf, 0) != 1)
		return fail();
	/* A named datagram socket's data goes through the shim. */
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	memcpy(a.sun_path, "\0probe-dgram", 12);
	socklen_t alen = sizeof(sa_family_t) + 12;
	int named = socket(AF_UNIX, SOCK_DGRAM, 0), from = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (named < 0 || from < 0 || bind(named, (struct sockaddr *)&a, alen))
		return fail();
	if (sendto(from, "n", 1, 0, (struct sockaddr *)&a, alen) != 1 || recv(named, buf, sizeof buf, 0) != 1)
		return fail();
	/* Empty and failed calls carry nothing. */
	if (send(st[0], "", 0, 0) != 0 || recv(dg[1], buf, 1, MSG_DONTWAIT) != -1)
		return fail();
	/* The pipe's own data goes through the shim; only the socket carries its fd. */
	if (write(p[1], "pipe", 4) != 4 || read(p[0], buf, 4) != 4)
		return fail();
	union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
	struct iovec io = { "f", 1 };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	memset(&u, 0, sizeof u);
	m.msg_iov = &io;
	m.msg_iovlen = 1;
	m.msg_control = u.b;
	m.msg_controllen = sizeof u.b;
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &p[0], sizeof(int));
	if (sendmsg(st[0], &m, 0) != 1)
		return fail();
	io.iov_base = buf;
	if (recvmsg(st[1], &m, 0) != 1)
		return fail();
	/* With an fd, it is the kernel's (its receiver takes it from the kernel's queue). */
	memcpy(CMSG_DATA(c), &p[0], sizeof(int));
	io.iov_base = "n";
	m.msg_name = &a;
	m.msg_namelen = alen;
	if (sendmsg(from, &m, 0) != 1 || recv(named, buf, sizeof buf, 0) != 1)
		return fail();
	/* An out-of-band byte goes through the shim; one carrying an fd gives the stream to
	 * the kernel. */
	if (send(st[0], "o", 1, MSG_OOB) != 1 || recv(st[1], buf, 1, MSG_OOB) != 1)
		return fail();
	memcpy(CMSG_DATA(c), &p[0], sizeof(int));
	io.iov_base = "b";
	m.msg_name = NULL;
	m.msg_namelen = 0;
	if (sendmsg(st[0], &m, MSG_OOB) != 1 || recv(st[1], buf, 1, MSG_OOB) != 1)
		return fail();
	return 0;
}
"#;

/// The proof check on a real shim run: strace -yy's rendering of AF_UNIX sockets is what
/// `kernel_socket_io` looks for, and a pipe fd carried by a message is not pipe traffic.
#[test]
fn shim_run_reports_kernel_socket_data() {
    let exe = probe("socket_probe", SOCKETS);
    let shim = diff::run(&exe, Mode::Shim).expect("shim run");
    assert_eq!(shim.status, "exit 0", "{shim:?}");
    let calls: Vec<&str> = shim.kernel_socket_io.iter().map(|l| l.split('(').next().unwrap_or("")).collect();
    // The pairs' and the named datagram socket's data, the stream message carrying an fd
    // (but for its token) and the plain out-of-band byte went through the shim; the datagram
    // carrying an fd and the out-of-band byte carrying one (its stream given to the kernel)
    // through the kernel.
    assert_eq!(calls, ["sendmsg", "recvfrom", "sendmsg", "recvfrom"], "{shim:?}");
    // strace -yy names a datagram socket UNIX:[…], a stream one UNIX-STREAM:[…].
    assert!(shim.kernel_socket_io[0].contains("<UNIX:["), "{:?}", shim.kernel_socket_io);
    assert!(shim.kernel_socket_io[2].contains("<UNIX-STREAM:["), "{:?}", shim.kernel_socket_io);
    assert!(shim.kernel_pipe_io.is_empty(), "{:?}", shim.kernel_pipe_io);
}

/// A parent that forks a child blocked in `semop` (as `sem_wait`'s helpers block) and is then
/// killed mid-run, as an alarm kills it on a machine too loaded for its timing.
const ORPHAN: &str = r#"
#include <signal.h>
#include <stdio.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <unistd.h>

int main(void)
{
	int id = semget(IPC_PRIVATE, 1, 0600);
	pid_t pid = fork();
	if (pid == 0) {
		struct sembuf op = { 0, -1, 0 };
		semop(id, &op, 1);
		_exit(1);
	}
	printf("%d %d\n", (int)pid, (int)getpgrp());
	fflush(stdout);
	kill(getpid(), SIGKILL);
	return 0;
}
"#;

/// The processes whose process group is `pgid` and that are not zombies.
fn live_members(pgid: i32) -> Vec<String> {
    let mut live = Vec::new();
    for entry in fs::read_dir("/proc").expect("list /proc").flatten() {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else { continue };
        // After the comm's closing parenthesis: state, ppid, pgrp.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            live.push(stat);
        }
    }
    live
}

/// A c-test run leaves no process behind: the runner runs it in a process group of its own and
/// kills the group when the run ends, so the child the killed parent left asleep goes too, on
/// the kernel and under `ipcshim run` alike.
#[test]
fn a_run_leaves_no_process_of_its_group() {
    let exe = probe("orphan_probe", ORPHAN);
    let state = tempdir_in_shm("orphan");
    let kernel = diff::run(&exe, Mode::Kernel).expect("kernel run");
    assert_eq!(kernel.status, "signal 9", "{kernel:?}");
    let out = state.join("shim.out");
    let mut shimmed = ipcshim_tests::program(&exe, &state, Some("orphan"));
    let file = fs::File::create(&out).expect("output file");
    shimmed.stdout(file.try_clone().expect("dup output file")).stderr(file);
    let status = ipcshim_tests::run_in_group(&mut shimmed, diff::TIMEOUT).expect("shim run");
    assert!(status.is_some(), "the shim run did not end");
    let shim_out = fs::read_to_string(&out).expect("shim output");
    for (what, stdout) in [("kernel", &kernel.stdout), ("shim", &shim_out)] {
        let ids: Vec<i32> = stdout.split_whitespace().map(|w| w.parse().expect("a pid")).collect();
        assert_eq!(ids.len(), 2, "{what} run printed {stdout:?}");
        let (child, pgid) = (ids[0], ids[1]);
        // SIGKILL is delivered before kill returns, but the exit takes a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut live = live_members(pgid);
        while !live.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
            live = live_members(pgid);
        }
        assert!(live.is_empty(), "{what} run: child {child} of group {pgid} still runs: {live:?}");
    }
    let _ = fs::remove_dir_all(&state);
}

/// A fresh directory on tmpfs (where a region must be) for one test.
fn tempdir_in_shm(name: &str) -> std::path::PathBuf {
    let dir = ipcshim_tests::state_base().join(format!("ipcshim-difftest-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("mkdir state dir");
    dir
}

/// `source` compiled as `target/c-tests/NAME`.
fn probe(name: &str, source: &str) -> std::path::PathBuf {
    let dir = diff::out_dir();
    fs::create_dir_all(&dir).expect("mkdir target/c-tests");
    let src = dir.join(format!("{name}.c"));
    fs::write(&src, source).expect("write probe source");
    diff::compile(&src).expect("compile probe")
}
