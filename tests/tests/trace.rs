//! `ipcshim trace` and `ipcshim diff` on unmodified programs: a traced pipeline logs every
//! pipe call it made, in order per process, with the bytes each moved; a traced semaphore
//! session logs each call with strace's decoding; `diff` finds no divergence where the kernel
//! and ipcshim agree, and reports one where a program's IPC calls differ between the runs.

use ipcshim_tests::cli_bin;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// How long one `ipcshim diff` of a c-test may take: a net for a hang (one takes 2-60 s, loaded).
const GROUP_TIMEOUT: Duration = Duration::from_secs(600);

/// A private IPCSHIM_DIR (and work directory), removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = PathBuf::from(format!("/dev/shm/ipcshim-trace-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn ipcshim(&self, args: &[&str]) -> std::process::Output {
        // In the scratch directory: some programs leave files where they run.
        Command::new(cli_bin()).args(args).env("IPCSHIM_DIR", &self.0).current_dir(&self.0).output().unwrap()
    }

    /// `ipcshim ARGS` as [`Scratch::ipcshim`], in a process group of its own that is killed
    /// when it exits or after [`GROUP_TIMEOUT`] (None then): what the program it runs forked
    /// does not outlive it. Its stdout and stderr, together.
    fn ipcshim_in_group(&self, args: &[&str]) -> (Option<ExitStatus>, String) {
        let out_path = self.0.join("ipcshim.out");
        let out = File::create(&out_path).unwrap();
        let mut cmd = Command::new(cli_bin());
        cmd.args(args).env("IPCSHIM_DIR", &self.0).current_dir(&self.0);
        cmd.stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out);
        let status = ipcshim_tests::run_in_group(&mut cmd, GROUP_TIMEOUT).unwrap();
        (status, String::from_utf8_lossy(&std::fs::read(&out_path).unwrap()).into_owned())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `PID name(args) = result <s.uuuuuu>` → (pid, name, args, result).
fn parse(line: &str) -> (i32, String, String, String) {
    let (pid, body) = line.split_once(' ').unwrap_or_else(|| panic!("no pid: {line}"));
    let open = body.find('(').unwrap_or_else(|| panic!("no call: {line}"));
    let eq = body.rfind(") = ").unwrap_or_else(|| panic!("no result: {line}"));
    let (result, dur) = body[eq + 4..].rsplit_once(" <").unwrap_or_else(|| panic!("no duration: {line}"));
    assert!(dur.ends_with('>') && dur[..dur.len() - 1].parse::<f64>().is_ok(), "duration: {line}");
    (pid.parse().unwrap(), body[..open].into(), body[open + 1..eq].into(), result.into())
}

#[test]
fn trace_of_a_pipeline_shows_every_byte_moved() {
    let s = Scratch::new("pipeline");
    let log = s.0.join("t.log");
    let out = s.ipcshim(&[
        "trace",
        "-o",
        log.to_str().unwrap(),
        "--",
        "bash",
        "-c",
        "seq 1 100000 | sort | tail -1",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "99999\n");
    let text = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<_> = text.lines().filter(|l| !l.trim().is_empty()).map(parse).collect();
    // Per process, bytes written to and read from pipes: seq writes 588895 bytes that sort
    // reads; sort writes the same bytes again for tail.
    let mut written: BTreeMap<i32, i64> = BTreeMap::new();
    let mut read: BTreeMap<i32, i64> = BTreeMap::new();
    for (pid, name, args, result) in &calls {
        let n: i64 = result.split_whitespace().next().unwrap().parse().unwrap_or(-1);
        match name.as_str() {
            "write" => *written.entry(*pid).or_default() += n.max(0),
            "read" => *read.entry(*pid).or_default() += n.max(0),
            _ => {}
        }
        if name == "write" || name == "read" {
            assert!(args.contains("<pipe:["), "not a pipe: {pid} {name}({args})");
        }
    }
    let total = 588_895;
    // tail's "99999\n" goes to our capture pipe: a kernel pipe, traced as strace -y shows it.
    assert_eq!(written.values().sum::<i64>(), 2 * total + 6, "written: {written:?}");
    assert_eq!(read.values().sum::<i64>(), 2 * total, "read: {read:?}");
    assert!(written.len() >= 2 && read.len() >= 2, "writers {written:?} readers {read:?}");
    assert_eq!(calls.iter().filter(|c| c.1 == "pipe2").count(), 2, "{text}");
    // seq's first write starts with its first lines, as strace would show them.
    let first = calls.iter().find(|c| c.1 == "write").unwrap();
    assert!(first.2.contains("\"1\\n2\\n3\\n"), "{first:?}");
}

#[test]
fn trace_of_semaphores_decodes_like_strace() {
    let s = Scratch::new("sem");
    let log = s.0.join("t.log");
    let py = "import sysv_ipc\n\
              s = sysv_ipc.Semaphore(None, sysv_ipc.IPC_CREX, initial_value=1)\n\
              s.acquire(); s.release(); s.remove()\n";
    let out = s.ipcshim(&["trace", "-o", log.to_str().unwrap(), "--", "python3", "-c", py]);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    // Python's start-up runs helper programs over pipes; those are traced too.
    let calls: Vec<_> =
        text.lines().filter(|l| !l.trim().is_empty()).map(parse).filter(|c| c.1.starts_with("sem")).collect();
    let names: Vec<&str> = calls.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(names, ["semget", "semctl", "semop", "semop", "semctl"], "{text}");
    let id = calls[0].3.clone();
    assert_eq!(calls[1].2, format!("{id}, 0, SETVAL, 0x1"));
    assert_eq!(calls[2].2, format!("{id}, [{{sem_num=0, sem_op=-1, sem_flg=0}}], 1"));
    assert_eq!(calls[4].2, format!("{id}, 0, IPC_RMID, NULL"));
    assert!(calls.iter().all(|c| c.3 == "0" || c == &calls[0]), "{text}");
}

#[test]
fn diff_agrees_with_the_kernel_and_finds_a_divergence() {
    let s = Scratch::new("diff");
    // The same calls on both: no divergence, exit 0.
    let same = "import sysv_ipc, os\n\
                s = sysv_ipc.Semaphore(0x4242, sysv_ipc.IPC_CREX, initial_value=2)\n\
                s.acquire(); r, w = os.pipe(); os.write(w, b'hello'); os.read(r, 5)\n\
                try:\n    s.acquire(0); s.acquire(0)\nexcept sysv_ipc.BusyError:\n    pass\n\
                s.remove()\n";
    let out = s.ipcshim(&["diff", "--", "python3", "-c", same]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("no divergence"), "{stdout}");
    // A program whose IPC differs between the runs (it asks for a different semaphore value
    // when it sees the shim): reported, exit 1.
    let differs = "import sysv_ipc, os\n\
                   v = 3 if 'ipcshim' in os.environ.get('LD_PRELOAD', '') else 4\n\
                   s = sysv_ipc.Semaphore(0x4243, sysv_ipc.IPC_CREX, initial_value=v)\n\
                   s.remove()\n";
    let out = s.ipcshim(&["diff", "--", "python3", "-c", differs]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("SETVAL, 0x4") && stdout.contains("SETVAL, 0x3"), "{stdout}");
}

/// AF_UNIX socket calls are compared, those the kernel answers in the shim's run included (a
/// connect to a name nobody bound): alike when they are, a changed byte reported.
#[test]
fn diff_compares_unix_socket_calls() {
    let s = Scratch::new("sockets");
    let program = |payload: &str| {
        format!(
            "import socket, os\n\
             shim = 'ipcshim' in os.environ.get('LD_PRELOAD', '')\n\
             c = socket.socket(socket.AF_UNIX)\n\
             try:\n    c.connect('\\0ipcshim-diff-nobody')\nexcept ConnectionRefusedError:\n    pass\n\
             a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n\
             a.send({payload}); b.recv(10); a.shutdown(socket.SHUT_WR)\n"
        )
    };
    let out = s.ipcshim(&["diff", "--", "python3", "-c", &program("b'hello'")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let out = s.ipcshim(&["diff", "--", "python3", "-c", &program("b'hellp' if shim else b'hello'")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("\"hello\"") && stdout.contains("\"hellp\""), "{stdout}");
}

/// `ipcmk` picks a random key in each run: keys are paired by first use, as ids are.
#[test]
fn diff_pairs_random_keys() {
    let s = Scratch::new("keys");
    for args in [&["ipcmk", "-Q"][..], &["ipcmk", "-S", "2"], &["ipcmk", "-M", "4096"]] {
        let out = s.ipcshim(&[&["diff", "--"][..], args].concat());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("no divergence"), "{args:?}: {stdout}");
    }
}

#[test]
fn diff_finds_no_divergence_in_the_c_tests() {
    let programs = ipcshim_tests::diff::programs().expect("list c-tests");
    // sem_wait included: strace changes its kernel run (an ignored signal interrupts a traced
    // process's semop), which diff sees and answers with a perf trace run.
    let todo: Vec<_> = programs.iter().collect();
    assert!(todo.len() >= 25, "{} programs", todo.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..2 {
            let (next, failures, todo) = (&next, &failures, &todo);
            scope.spawn(move || {
                let s = Scratch::new(&format!("ctests-{t}"));
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(src) = todo.get(i) else { break };
                    let exe = ipcshim_tests::diff::compile(src).unwrap();
                    let (status, out) = s.ipcshim_in_group(&["diff", "--", exe.to_str().unwrap()]);
                    if status.and_then(|st| st.code()) != Some(0) {
                        let how =
                            status.map_or(format!("killed after {GROUP_TIMEOUT:?}"), |st| st.to_string());
                        failures.lock().unwrap().push(format!("{} ({how}):\n{out}", src.display()));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} programs diverge:\n{}",
        failures.len(),
        todo.len(),
        failures.join("\n")
    );
}

/// Loopers each making traced semops of 32 operations (lines of about 1.4 KiB) as fast as they
/// can, three at a time, SIGKILLed at random moments; the parent makes one traced semctl after
/// each kill. A write to the trace that crosses a page of the file can be cut short by a kill,
/// and the next line would continue the half line: every line parses but for half lines cut at
/// a page, and every one of the parent's lines is there.
const KILLED_WRITERS: &str = r#"
#include <signal.h>
#include <stdlib.h>
#include <sys/sem.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int rounds = atoi(argv[1]);
	int id = semget(IPC_PRIVATE, 32, 0600);
	if (id < 0)
		return 2;
	struct sembuf ops[32];
	for (int i = 0; i < 32; i++)
		ops[i] = (struct sembuf){ i, 0, IPC_NOWAIT };
	pid_t live[3] = { 0, 0, 0 };
	srand(getpid());
	for (int r = 0; r < rounds; r++) {
		pid_t pid = fork();
		if (pid < 0)
			return 2;
		if (pid == 0)
			for (;;)
				semop(id, ops, 32);
		struct timespec t = { 0, rand() % 1000000 };
		nanosleep(&t, NULL);
		if (live[r % 3]) {
			kill(live[r % 3], SIGKILL);
			waitpid(live[r % 3], NULL, 0);
		}
		live[r % 3] = pid;
		semctl(id, 0, GETVAL);
	}
	for (int i = 0; i < 3; i++) {
		kill(live[i], SIGKILL);
		waitpid(live[i], NULL, 0);
	}
	semctl(id, 0, IPC_RMID);
	return 0;
}
"#;

#[test]
fn trace_lines_survive_writers_killed_mid_line() {
    let s = Scratch::new("killed");
    let src = s.0.join("killed_writers.c");
    std::fs::write(&src, KILLED_WRITERS).unwrap();
    let exe = ipcshim_tests::diff::compile(&src).unwrap();
    let log = s.0.join("t.log");
    let rounds = 300;
    let out =
        s.ipcshim(&["trace", "-o", log.to_str().unwrap(), "--", exe.to_str().unwrap(), &rounds.to_string()]);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut at = 0;
    let (mut torn, mut lines) = (0, Vec::new());
    for l in text.split_inclusive('\n') {
        let line = l.trim_end_matches('\n');
        // A writer killed in its write leaves a half line cut at a page of the file, which the
        // next line's own newline ends: anything else must be one whole call.
        if !well_formed(line) && !line.is_empty() {
            assert_eq!((at + line.len()) % 4096, 0, "a malformed line not cut at a page: {line:.300}");
            torn += 1;
        } else if !line.is_empty() {
            lines.push(line);
        }
        at += l.len();
    }
    let parent = lines.iter().map(|l| parse(l)).find(|c| c.1 == "semget").unwrap().0;
    let getval = lines.iter().map(|l| parse(l)).filter(|c| c.0 == parent && c.2.contains("GETVAL")).count();
    assert_eq!(getval, rounds, "the parent's semctl lines ({torn} half lines of killed writers)");
}

/// A TCP echo over 127.0.0.1 and ::1 and a UDP exchange over 127.0.0.1 between two processes.
const INET_ECHO: &str = r#"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int tcp(int fam)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr *a = fam == AF_INET ? (struct sockaddr *)&a4 : (struct sockaddr *)&a6;
	socklen_t len = fam == AF_INET ? sizeof a4 : sizeof a6;
	int l = socket(fam, SOCK_STREAM, 0);
	if (l < 0 || bind(l, a, len) || listen(l, 4) || getsockname(l, a, &len))
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		char b[8];
		int c = socket(fam, SOCK_STREAM, 0);
		_exit(c < 0 || connect(c, a, len) || send(c, "ping", 4, 0) != 4 || recv(c, b, 4, MSG_WAITALL) != 4);
	}
	char b[8];
	int s = accept(l, NULL, NULL), st;
	if (s < 0 || recv(s, b, 4, MSG_WAITALL) != 4 || memcmp(b, "ping", 4) || send(s, "pong", 4, 0) != 4)
		return 1;
	waitpid(pid, &st, 0);
	close(s);
	close(l);
	return st != 0;
}

static int udp(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) }, from;
	socklen_t len = sizeof a;
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	if (u < 0 || bind(u, (struct sockaddr *)&a, len) || getsockname(u, (struct sockaddr *)&a, &len))
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		int c = socket(AF_INET, SOCK_DGRAM, 0);
		_exit(c < 0 || sendto(c, "dgram", 5, 0, (struct sockaddr *)&a, sizeof a) != 5);
	}
	char b[8];
	int st;
	if (recvfrom(u, b, sizeof b, 0, (struct sockaddr *)&from, &len) != 5 || memcmp(b, "dgram", 5))
		return 1;
	waitpid(pid, &st, 0);
	return st != 0;
}

int main(void)
{
	return tcp(AF_INET) || tcp(AF_INET6) || udp();
}
"#;

/// `ipcshim trace` logs the TCP and UDP calls the shim serves, with their addresses decoded as
/// strace decodes them and the bytes they moved; `ipcshim diff` finds the program's runs alike.
#[test]
fn trace_and_diff_cover_loopback_tcp_and_udp() {
    let s = Scratch::new("inet");
    let src = s.0.join("inet_echo.c");
    std::fs::write(&src, INET_ECHO).unwrap();
    let exe = ipcshim_tests::diff::compile(&src).unwrap();
    let log = s.0.join("t.log");
    let out = s.ipcshim(&["trace", "-o", log.to_str().unwrap(), "--", exe.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<_> = text.lines().filter(|l| !l.trim().is_empty()).map(parse).collect();
    // Each socket named by its kind, as strace -yy names it.
    let has = |name: &str, args: &[&str], result: &str| {
        calls.iter().any(|(_, n, a, r)| n == name && args.iter().all(|w| a.contains(w)) && r == result)
    };
    for (family, addr, kind) in [
        ("AF_INET, sin_port=htons(", "inet_addr(\"127.0.0.1\")", "<TCP:["),
        ("AF_INET6, ", "\"::1\"", "<TCPv6:["),
    ] {
        assert!(has("connect", &[kind, family, addr], "0"), "no {family} connect in:\n{text}");
    }
    for (name, data, n) in [("sendto", "\"ping\"", 2), ("recvfrom", "\"ping\"", 2), ("sendto", "\"pong\"", 2)]
    {
        let found = calls.iter().filter(|(_, c, a, r)| c == name && a.contains(data) && r == "4").count();
        assert_eq!(found, n, "{name} {data} over IPv4 and IPv6 in:\n{text}");
    }
    assert_eq!(
        calls.iter().filter(|(_, c, _, r)| c == "accept" && r.parse::<i32>().is_ok()).count(),
        2,
        "{text}"
    );
    assert!(has("sendto", &["<UDP:[", "\"dgram\"", "{sa_family=AF_INET, sin_port=htons("], "5"), "{text}");
    assert!(has("recvfrom", &["<UDP:[", "\"dgram\"", "inet_addr(\"127.0.0.1\")}, [16]"], "5"), "{text}");
    let out = s.ipcshim(&["diff", "--", exe.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("no divergence"), "{stdout}");
}

/// What `parse` accepts, with one call per line.
fn well_formed(line: &str) -> bool {
    let Some((pid, body)) = line.split_once(' ') else { return false };
    let Some((call, rest)) = body.split_once(") = ") else { return false };
    let Some((_, dur)) = rest.rsplit_once(" <") else { return false };
    pid.parse::<i32>().is_ok()
        && call.contains('(')
        && !rest.contains(") = ")
        && dur.strip_suffix('>').is_some_and(|d| d.parse::<f64>().is_ok())
}

/// Processes are paired by their place in the process tree, not by pid: in the shim's run the
/// program's second child gets a pid below its first child's (and maybe below its own), as
/// after the pid counter wrapped, and still each child is compared with its counterpart.
#[test]
fn diff_pairs_processes_by_their_place_in_the_tree() {
    let s = Scratch::new("tree");
    let prog = "import os, sysv_ipc\n\
                r, w = os.pipe()\n\
                a = os.fork()\n\
                if a == 0:\n    s = sysv_ipc.Semaphore(None, sysv_ipc.IPC_CREX, initial_value=3)\n    \
                s.remove()\n    os._exit(0)\n\
                os.waitpid(a, 0)\n\
                if 'ipcshim' in os.environ.get('LD_PRELOAD', ''):\n    \
                open('/proc/sys/kernel/ns_last_pid', 'w').write(str(max(a - 2000, 300)))\n\
                b = os.fork()\n\
                if b == 0:\n    os.write(w, b'from the second child')\n    os._exit(0)\n\
                os.waitpid(b, 0)\n\
                print(os.read(r, 64).decode(), b < a)\n";
    let out = s.ipcshim(&["diff", "--keep", s.0.join("keep").to_str().unwrap(), "--", "python3", "-c", prog]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let shim_out = std::fs::read_to_string(s.0.join("keep/ipcshim.stdout")).unwrap();
    assert_eq!(shim_out, "from the second child True\n", "the second child's pid was not below the first's");
}

/// `make planted` builds ipcshim with one deliberately wrong errno (EPERM instead of EINVAL for
/// semctl IPC_RMID of a set that does not exist): `ipcshim diff` must catch it in the c-tests.
#[test]
fn diff_reports_a_planted_fault() {
    let planted = ipcshim_tests::workspace_root().join("target/planted/release/ipcshim");
    assert!(planted.exists(), "{} is missing: run `make planted` (make test does)", planted.display());
    let s = Scratch::new("planted");
    let src = ipcshim_tests::workspace_root().join("c-tests/sem_ctl.c");
    let exe = ipcshim_tests::diff::compile(&src).unwrap();
    let out = Command::new(&planted)
        .args(["diff", "--", exe.to_str().unwrap()])
        .env("IPCSHIM_DIR", &s.0)
        .current_dir(&s.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let report =
        stdout.lines().skip_while(|l| !l.contains("IPC call")).take(3).collect::<Vec<_>>().join("\n");
    assert!(report.contains("IPC_RMID") && report.contains("EINVAL") && report.contains("EPERM"), "{stdout}");
}

/// A fakeroot-sysv session traced: faked and its clients talk by message queue (and lock a
/// semaphore). On each queue, every message sent shows up received, whole, by another process.
#[test]
fn trace_of_a_fakeroot_session_pairs_every_message() {
    let s = Scratch::new("fakeroot");
    let log = s.0.join("t.log");
    let out = s.ipcshim(&[
        "trace",
        "-o",
        log.to_str().unwrap(),
        "--",
        "fakeroot-sysv",
        "sh",
        "-c",
        "touch f; chown 0:0 f; chown 0:0 f; ls -ln f",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(" 0 0 "), "{out:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<_> = text.lines().filter(|l| !l.trim().is_empty()).map(parse).collect();
    // (queue, size) of each message sent, and of each received; and who did which.
    let queue = |c: &(i32, String, String, String)| c.2.split(", ").next().unwrap().to_string();
    let mut sent = Vec::new();
    let mut received = Vec::new();
    let (mut senders, mut receivers) = (BTreeMap::new(), BTreeMap::new());
    for c in &calls {
        let res: i64 = c.3.split_whitespace().next().unwrap().parse().unwrap_or(-1);
        if c.1 == "msgsnd" && res == 0 {
            let size: i64 = c.2.rsplit_once("}, ").unwrap().1.split(", ").next().unwrap().parse().unwrap();
            sent.push((queue(c), size));
            senders.entry(queue(c)).or_insert_with(Vec::new).push(c.0);
        } else if c.1 == "msgrcv" && res >= 0 {
            received.push((queue(c), res));
            receivers.entry(queue(c)).or_insert_with(Vec::new).push(c.0);
        }
    }
    assert!(sent.len() >= 4 && senders.len() == 2, "{text}");
    sent.sort();
    received.sort();
    assert_eq!(sent, received, "every message sent is received, whole:\n{text}");
    for (q, pids) in &senders {
        assert!(pids.iter().all(|p| !receivers[q].contains(p)), "queue {q} sent and received by one process");
    }
    assert!(calls.iter().any(|c| c.1 == "semop"), "faked's lock semaphore:\n{text}");
}
