//! Unmodified programs talking over AF_UNIX sockets under `ipcshim run`: Redis (`redis-cli`,
//! `redis-benchmark`), memcached (`-s`, asked by a Python client), PostgreSQL (`psql`,
//! `pgbench`; also started by root with `runuser -u postgres` and asked by root's `psql`),
//! Apache's mod_cgid running CGI scripts as www-data, `socat`, a Python asyncio server and
//! client, Python's multiprocessing with each start method, Node.js, D-Bus, GnuPG's agent,
//! nginx proxying to an upstream on a unix socket, Xvfb with an MIT-SHM client (`x11perf`), and shimmed and unshimmed processes
//! at the two ends of one socket. Over loopback TCP: redis-cli and redis-benchmark, psql and
//! pgbench, nginx serving curl and ab, curl against `python3 -m http.server`, the asyncio echo,
//! each also with a client (or server) without the shim.
//!
//! Each program runs on the kernel and under the shim; both runs must give what the test expects,
//! and the same where the output is deterministic; a shimmed run must show the catch-all's
//! traps, and one with every end shimmed its data in the `sockets:` counters of `ipcshim
//! status` with no connection given back to the kernel (`Scratch::trapped`). Every program runs in a process group of its own under a timeout; servers are
//! killed on drop, so a failing test leaves none behind.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipcshim_tests::{cli_bin, shim_lib, workspace_root};

/// Wall-clock limit for one client run, or for a server to get ready or to exit.
const TIMEOUT: Duration = Duration::from_secs(30);
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// How a process is started.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Plainly, without LD_PRELOAD.
    Kernel,
    /// Under `ipcshim run` in the test's namespace.
    Shim,
    /// Under `ipcshim run` with IPCSHIM_DISABLE=1: the library is loaded but leaves every call to
    /// the kernel.
    Disabled,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Kernel => "kernel",
            Mode::Shim => "shim",
            Mode::Disabled => "disabled",
        }
    }
}

/// A private IPCSHIM_DIR and IPCSHIM_NS for one test, holding its work files; on drop every
/// process still running with this IPCSHIM_DIR is killed and the directory removed.
struct Scratch {
    dir: PathBuf,
    ns: String,
}

impl Scratch {
    /// A scratch directory owned by `owner` (the user the programs run as), mode 0700.
    fn new(name: &str, owner: Option<&str>) -> Scratch {
        assert!(
            shim_lib().exists() && cli_bin().exists(),
            "{} or {} is missing: run `make build` first",
            shim_lib().display(),
            cli_bin().display()
        );
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").subsec_nanos();
        let ns = format!("sockprog-{name}-{}-{nanos}", std::process::id());
        let dir = ipcshim_tests::state_base().join(format!("ipcshim-{ns}"));
        fs::create_dir(&dir).expect("create scratch dir");
        if let Some(user) = owner {
            let chown = Command::new("chown").arg(format!("{user}:")).arg(&dir).status();
            assert!(chown.expect("run chown").success(), "chown the scratch dir to {user}");
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod scratch dir");
        Scratch { dir, ns }
    }

    /// A fresh subdirectory for one run, owned like the scratch dir.
    fn subdir(&self, name: &str) -> PathBuf {
        let sub = self.dir.join(name);
        fs::create_dir(&sub).expect("create run dir");
        let owner = fs::metadata(&self.dir).expect("stat scratch dir").uid();
        std::os::unix::fs::chown(&sub, Some(owner), None).expect("chown run dir");
        sub
    }

    /// PROG ARGS… started as `mode` says, as `user` if given, with stdin from /dev/null.
    fn cmd(&self, mode: Mode, user: Option<&str>, prog: impl AsRef<OsStr>, args: &[&str]) -> Command {
        let mut argv: Vec<OsString> = Vec::new();
        if let Some(u) = user {
            argv.extend(["runuser", "-u", u, "--"].map(OsString::from));
        }
        if mode != Mode::Kernel {
            argv.push(cli_bin().into());
            argv.extend(["run", "--ns", &self.ns, "--"].map(OsString::from));
        }
        argv.push(prog.as_ref().to_owned());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd.args(args)
            .current_dir(&self.dir)
            // Set for every mode, so that drop finds the kernel runs' processes too.
            .env("IPCSHIM_NS", &self.ns)
            .env("IPCSHIM_DIR", &self.dir)
            .env("LC_ALL", "C")
            .env_remove("LD_PRELOAD")
            .env_remove("IPCSHIM_DISABLE")
            .env_remove("IPCSHIM_CATCHALL")
            .env_remove("IPCSHIM_TRACE")
            .stdin(Stdio::null())
            .process_group(0);
        if mode == Mode::Disabled {
            cmd.env("IPCSHIM_DISABLE", "1");
        }
        cmd
    }

    /// Runs `cmd` to its end (at most TIMEOUT, then its process group is killed and the test
    /// fails), collecting stdout and stderr through files: a daemon it leaves behind cannot hold
    /// them open.
    fn run(&self, mut cmd: Command, what: &str) -> Out {
        let tag = what.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        let (out, err) = (self.dir.join(format!("{tag}.out")), self.dir.join(format!("{tag}.err")));
        cmd.stdout(fs::File::create(&out).expect("create output file"))
            .stderr(fs::File::create(&err).expect("create output file"));
        let start = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: spawn {cmd:?}: {e}"));
        let status = wait_until(&mut child, start + TIMEOUT);
        let stdout = fs::read(&out).unwrap_or_default();
        let stderr = String::from_utf8_lossy(&fs::read(&err).unwrap_or_default()).into_owned();
        let Some(status) = status else {
            let report = self.stuck_report();
            kill_group(&mut child);
            panic!(
                "{what}: still running after {TIMEOUT:?}; killed\n{cmd:?}\nstdout: {}\nstderr: {stderr}\n{report}",
                tail(&stdout)
            );
        };
        Out { what: what.to_owned(), status, stdout, stderr, elapsed: start.elapsed() }
    }

    /// `run`, which must succeed; its stdout as text.
    fn ok(&self, cmd: Command, what: &str) -> String {
        let out = self.run(cmd, what);
        out.assert_success();
        String::from_utf8(out.stdout).unwrap_or_else(|_| panic!("{what}: stdout is not UTF-8"))
    }

    /// Starts a server; its stdout and stderr go to one log file.
    fn spawn(&self, mut cmd: Command, what: &str) -> Server {
        let log = self.dir.join(format!("{}.log", what.replace(|c: char| !c.is_ascii_alphanumeric(), "_")));
        let file = fs::File::create(&log).expect("create server log");
        cmd.stdout(file.try_clone().expect("dup log fd")).stderr(file);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: spawn {cmd:?}: {e}"));
        Server { child, log, what: what.to_owned() }
    }

    /// `family -> key -> value` from the counter lines (`name: key=value …`) of
    /// `ipcshim status` for this namespace, as `user` (the region file is per user); empty
    /// before any shimmed process created the region.
    fn counters(&self, user: Option<&str>) -> HashMap<String, HashMap<String, u64>> {
        let cmd = self.cmd(Mode::Kernel, user, cli_bin(), &["--ns", &self.ns, "status"]);
        let status = self.ok(cmd, "ipcshim status");
        let mut all = HashMap::new();
        for line in status.lines() {
            let Some((family, rest)) = line.split_once(':') else { continue };
            let items: HashMap<String, u64> = rest
                .split_whitespace()
                .filter_map(|w| w.split_once('=').and_then(|(k, v)| Some((k.to_owned(), v.parse().ok()?))))
                .collect();
            if !items.is_empty() {
                all.insert(family.to_owned(), items);
            }
        }
        all
    }

    /// The `sockets:` counter `key` of this namespace (0 before the region exists).
    fn sockets(&self, user: Option<&str>, key: &str) -> u64 {
        self.counters(user).get("sockets").and_then(|c| c.get(key)).copied().unwrap_or(0)
    }

    /// The `tcp:` counter `key` of this namespace (0 before the region exists).
    fn tcp(&self, user: Option<&str>, key: &str) -> u64 {
        self.counters(user).get("tcp").and_then(|c| c.get(key)).copied().unwrap_or(0)
    }

    /// System calls the catch-all has trapped in this namespace's processes so far.
    fn traps(&self, user: Option<&str>) -> u64 {
        self.counters(user).get("procs").and_then(|p| p.get("catchall_traps")).copied().unwrap_or(0)
    }

    /// Runs `body`, which starts processes in `modes`; when one of them is shimmed, the catch-all
    /// must have trapped calls meanwhile: the comparison with the kernel is not the kernel's
    /// against itself. When all are, their data must have gone through the shim's socket
    /// queues and no connection to the kernel.
    fn trapped<T>(&self, user: Option<&str>, modes: &[Mode], what: &str, body: impl FnOnce() -> T) -> T {
        let before = self.traps(user);
        let (bytes, handed) = (self.sockets(user, "bytes_in"), self.sockets(user, "handed_back"));
        let result = body();
        if modes.contains(&Mode::Shim) {
            let after = self.traps(user);
            assert!(
                after > before,
                "{what}: the catch-all trapped nothing ({before} traps before, {after} after)"
            );
        }
        if modes.iter().all(|&m| m == Mode::Shim) {
            let moved = self.sockets(user, "bytes_in") - bytes;
            assert!(moved > 0, "{what}: no byte through the shim's socket queues");
            assert_eq!(self.sockets(user, "handed_back"), handed, "{what}: a connection went to the kernel");
        }
        result
    }
}

impl Scratch {
    /// The processes started here (server and clients alike): those with our IPCSHIM_DIR.
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

    /// What a run that did not end shows: for each thread of each process started here, its
    /// state, the CPU time it used over half a second (a spin or a sleep), its kernel wait
    /// channel and system call (number and arguments, or "running"), and the TCP sockets
    /// of those processes (`ss`), so that a timeout says what everyone was doing.
    fn stuck_report(&self) -> String {
        let cpu = |task: &Path| {
            let stat = fs::read_to_string(task.join("stat")).unwrap_or_default();
            // After the command's closing parenthesis: state, then utime and stime are the
            // 12th and 13th fields.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0);
            (f.first().copied().unwrap_or("?").to_owned(), ticks)
        };
        let tasks: Vec<(libc::pid_t, PathBuf)> = self
            .processes()
            .into_iter()
            .flat_map(|pid| {
                let dir = PathBuf::from(format!("/proc/{pid}/task"));
                fs::read_dir(dir).into_iter().flatten().flatten().map(move |t| (pid, t.path()))
            })
            .collect();
        let before: Vec<u64> = tasks.iter().map(|(_, t)| cpu(t).1).collect();
        thread::sleep(Duration::from_millis(500));
        let mut text = String::from(
            "processes started here (pid/tid comm: state, CPU ticks in 0.5 s, wchan, syscall):\n",
        );
        for ((pid, task), ticks) in tasks.iter().zip(before) {
            let read = |f: &str| fs::read_to_string(task.join(f)).unwrap_or_default().trim().to_owned();
            let (state, now) = cpu(task);
            let tid = task.file_name().and_then(|t| t.to_str()).unwrap_or("?");
            text += &format!(
                "  {pid}/{tid} {}: {state}, {} ticks, wchan {}, syscall {}\n",
                read("comm"),
                now.saturating_sub(ticks),
                read("wchan"),
                read("syscall")
            );
        }
        if let Ok(ss) = Command::new("ss").args(["-tanpi"]).output() {
            let out = String::from_utf8_lossy(&ss.stdout);
            let ours = |l: &str| tasks.iter().any(|(pid, _)| l.contains(&format!("pid={pid},")));
            text += "their TCP sockets (ss -tanpi):\n";
            for line in out.lines().filter(|l| ours(l)) {
                text += &format!("  {line}\n");
            }
        }
        text
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

/// What one finished run produced.
struct Out {
    what: String,
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
    elapsed: Duration,
}

impl Out {
    fn assert_success(&self) {
        assert!(
            self.status.success(),
            "{} failed ({}):\nstdout: {}\nstderr: {}",
            self.what,
            self.status,
            tail(&self.stdout),
            self.stderr
        );
    }
}

/// A server process in a process group of its own, killed (the whole group) on drop.
struct Server {
    child: Child,
    log: PathBuf,
    what: String,
}

impl Server {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the server's log says `needle`; fails if it exits first or takes too long.
    fn wait_for(&mut self, needle: &str) {
        self.wait_for_match(&format!("{needle:?}"), |log| log.contains(needle).then_some(()));
    }

    /// Waits until `find` finds what it looks for (`what`) in the server's log, and returns
    /// that; fails if the server exits first or takes too long.
    fn wait_for_match<T>(&mut self, what: &str, find: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(found) = find(&self.log()) {
                return found;
            }
            if let Some(st) = self.child.try_wait().expect("wait") {
                panic!("{}: exited ({st}) before saying {what}; log:\n{}", self.what, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{}: no {what} after {TIMEOUT:?}; log:\n{}",
                self.what,
                self.log()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends the server `sig`, then `finish`es it.
    fn stop(self, sig: libc::c_int) -> String {
        // SAFETY: kill takes no pointers; the pid is our child's, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        self.finish()
    }

    /// Waits for the server to exit by itself; it must exit 0. Returns its log.
    fn finish(mut self) -> String {
        let status = wait_until(&mut self.child, Instant::now() + TIMEOUT);
        let log = self.log();
        match status {
            Some(st) => assert!(st.success(), "{}: exited with {st}; log:\n{log}", self.what),
            None => panic!("{}: still running after {TIMEOUT:?}; log:\n{log}", self.what),
        }
        log
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// The child's exit status, or None if it is still running at `deadline`.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            return Some(st);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// SIGKILLs the process group `child` leads (every process it started, unless one moved away)
/// and reaps the child.
fn kill_group(child: &mut Child) {
    // SAFETY: kill takes no pointers; the group is the one the child leads.
    unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
    let _ = child.wait();
}

/// The last 4 KiB of `bytes`, as text.
fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(4096);
    let prefix = if start > 0 { format!("[… {start} bytes]") } else { String::new() };
    format!("{prefix}{}", String::from_utf8_lossy(&bytes[start..]))
}

/// xorshift64 bytes: a payload that does not repeat.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn fixture(name: &str) -> String {
    workspace_root().join("tests/socket_programs").join(name).display().to_string()
}

fn path_arg(p: &Path) -> String {
    p.display().to_string()
}

/// What a Redis session printed: redis-cli's answers, the tests redis-benchmark reported a rate
/// for, and the keys its traffic left.
#[derive(Debug, PartialEq)]
struct RedisRun {
    cli: String,
    benchmarked: Vec<String>,
    after: String,
}

/// redis-server on a unix socket only (port 0), or with `tcp` on that loopback address only (a
/// free port), without persistence, driven by redis-cli and a short redis-benchmark, then shut
/// down by redis-cli.
fn redis_session(s: &Scratch, mode: Mode, tcp: Option<&str>) -> RedisRun {
    let dir = s.subdir(&format!("redis-{}-{}", mode.name(), tcp.map_or(0, str::len)));
    let sock = path_arg(&dir.join("redis.sock"));
    let port = tcp.map(|host| free_port(host).to_string());
    let place: Vec<&str> = match (tcp, &port) {
        (Some(host), Some(port)) => vec!["--port", port, "--bind", host],
        _ => vec!["--port", "0", "--unixsocket", &sock],
    };
    let dir_arg = path_arg(&dir);
    let server_args = [&place[..], &["--save", "", "--appendonly", "no", "--dir", &dir_arg]].concat();
    let mut server =
        s.spawn(s.cmd(mode, None, "redis-server", &server_args), &format!("redis-server {mode:?}"));
    // "The server is now ready to accept connections at PATH", or "Ready to accept connections".
    server.wait_for("eady to accept connections");
    let to: Vec<&str> = match (tcp, &port) {
        (Some(host), Some(port)) => vec!["-h", host, "-p", port],
        _ => vec!["-s", &sock],
    };

    let cli = |args: &[&str]| {
        let what = format!("redis-cli {} ({mode:?})", args.first().unwrap_or(&""));
        s.ok(s.cmd(mode, None, "redis-cli", &[&to[..], args].concat()), &what)
    };
    // A value larger than redis-cli's 16 KiB reads, so its reply takes several.
    let big: String = (0..100_000).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    let mut text = String::new();
    for args in [
        &["SET", "greeting", "hello"][..],
        &["GET", "greeting"],
        &["-r", "3", "INCR", "counter"],
        &["LPUSH", "list", "a", "b", "c"],
        &["LRANGE", "list", "0", "-1"],
        &["SET", "big", &big],
        &["STRLEN", "big"],
    ] {
        text += &cli(args);
    }
    assert_eq!(cli(&["GET", "big"]), format!("{big}\n"), "GET big ({mode:?})");

    let bench = s.ok(
        s.cmd(
            mode,
            None,
            "redis-benchmark",
            &[&to[..], &["-n", "2000", "-q", "-t", "set,get,incr,lpush,lrange_100"]].concat(),
        ),
        &format!("redis-benchmark ({mode:?})"),
    );
    // -q prints "NAME: N requests per second, p50=…" per test (after \r-separated progress).
    let rates: Vec<&str> = bench.split(['\r', '\n']).filter(|l| l.contains(" requests per second")).collect();
    let mut benchmarked = Vec::new();
    for line in &rates {
        let (name, rest) = line.trim().rsplit_once(": ").unwrap_or_else(|| panic!("odd line {line:?}"));
        let rate: f64 = rest.split_whitespace().next().and_then(|r| r.parse().ok()).expect("a rate");
        assert!(rate > 0.0, "{name}: {rate} requests per second ({mode:?})");
        benchmarked.push(name.to_owned());
    }
    eprintln!("redis-benchmark ({mode:?}): {}", rates.join("; "));

    // redis-benchmark's keys: 2000 INCRs, and 2000 LPUSHes for its own test and 2000 for LRANGE's.
    let mut after = String::new();
    for args in [&["GET", "counter:__rand_int__"][..], &["LLEN", "mylist"], &["DBSIZE"]] {
        after += &cli(args);
    }
    // SHUTDOWN closes the connection without a reply, so redis-cli's output is not checked.
    let _ = s.run(
        s.cmd(mode, None, "redis-cli", &[&to[..], &["SHUTDOWN", "NOSAVE"]].concat()),
        "redis-cli SHUTDOWN",
    );
    let log = server.finish();
    assert!(log.contains("Redis is now ready to exit, bye bye"), "redis-server {mode:?} log:\n{log}");
    RedisRun { cli: text, benchmarked, after }
}

/// What [`redis_session`] prints on the kernel.
fn redis_want() -> RedisRun {
    RedisRun {
        cli: "OK\nhello\n1\n2\n3\n3\nc\nb\na\nOK\n100000\n".into(),
        benchmarked: [
            "SET",
            "GET",
            "INCR",
            "LPUSH",
            "LPUSH (needed to benchmark LRANGE)",
            "LRANGE_100 (first 100 elements)",
        ]
        .map(String::from)
        .into(),
        after: "2000\n4000\n7\n".into(),
    }
}

#[test]
fn redis_cli_and_benchmark_over_a_unix_socket() {
    let s = Scratch::new("redis", None);
    let want = redis_want();
    let start = Instant::now();
    let kernel = redis_session(&s, Mode::Kernel, None);
    assert_eq!(kernel, want, "redis on the kernel");
    let middle = Instant::now();
    let shim = s.trapped(None, &[Mode::Shim], "redis", || redis_session(&s, Mode::Shim, None));
    assert_eq!(shim, want, "redis under ipcshim");
    eprintln!("redis: kernel {:?}, ipcshim {:?}", middle - start, middle.elapsed());
}

/// The same session over loopback TCP (127.0.0.1 and ::1, `redis-benchmark -h`): under the shim
/// every connection is adopted by the shim server and none given back.
#[test]
fn redis_cli_and_benchmark_over_loopback_tcp() {
    let s = Scratch::new("redis-tcp", None);
    let tcp = |key: &str| s.tcp(None, key);
    for host in ["127.0.0.1", "::1"] {
        assert_eq!(redis_session(&s, Mode::Kernel, Some(host)), redis_want(), "redis on the kernel, {host}");
        let (conns, handed) = (tcp("connections"), tcp("handed_back"));
        let shim =
            s.trapped(None, &[Mode::Shim], "redis over TCP", || redis_session(&s, Mode::Shim, Some(host)));
        assert_eq!(shim, redis_want(), "redis under ipcshim, {host}");
        // redis-cli's sessions, and redis-benchmark's 50 clients for each of its tests.
        assert!(
            tcp("connections") - conns >= 50,
            "redis over TCP on {host}: {} connections",
            tcp("connections") - conns
        );
        assert_eq!(tcp("handed_back"), handed, "redis over TCP on {host}: a connection went to the kernel");
    }
}

/// redis-benchmark with 1, 50, 1000 and 5000 clients against one redis-server, all under the
/// shim: every run completes (5000 clients once left it 511 connections behind: EAGAIN from
/// connect; 200 never finished its GET phase; 300 spun on the same EPOLLOUT events) and every
/// request went through the shim's socket queues.
#[test]
fn redis_benchmark_with_up_to_5000_clients() {
    let s = Scratch::new("redis-clients", None);
    let dir = s.subdir("redis-clients");
    let sock = path_arg(&dir.join("redis.sock"));
    let server_args = [
        "--port",
        "0",
        "--unixsocket",
        &sock,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &path_arg(&dir),
        "--maxclients",
        "6000",
        // redis-benchmark connects 64 clients every 50 ms: a server that a loaded machine
        // leaves without a CPU for longer than the default backlog (511) lasts fails them
        // with EAGAIN, on the kernel too.
        "--tcp-backlog",
        "4096",
    ];
    // redis-server raises its own fd limit to --maxclients; redis-benchmark needs one per client.
    let nofile = |prog: &str, args: &[&str]| {
        s.cmd(Mode::Shim, None, "prlimit", &[&["--nofile=8192", prog], args].concat())
    };
    s.trapped(None, &[Mode::Shim], "redis-benchmark clients", || {
        let mut server = s.spawn(nofile("redis-server", &server_args), "redis-server clients");
        server.wait_for("ready to accept connections");
        for clients in ["1", "50", "1000", "5000"] {
            let what = format!("redis-benchmark -c {clients}");
            let out = s.ok(
                nofile(
                    "redis-benchmark",
                    &["-s", &sock, "-c", clients, "-n", "10000", "-q", "-t", "set,get"],
                ),
                &what,
            );
            let rates: Vec<&str> =
                out.split(['\r', '\n']).filter(|l| l.contains(" requests per second")).collect();
            assert_eq!(rates.len(), 2, "{what}: {out}");
            eprintln!("{what}: {}", rates.join("; "));
        }
        let _ = s.run(
            s.cmd(Mode::Shim, None, "redis-cli", &["-s", &sock, "SHUTDOWN", "NOSAVE"]),
            "redis-cli SHUTDOWN",
        );
        let log = server.finish();
        assert!(log.contains("Redis is now ready to exit, bye bye"), "redis-server log:\n{log}");
    });
    // Every connection the shim's: 1 + 50 + 1000 + 5000 clients, and redis-cli's.
    assert!(s.sockets(None, "connections") >= 6051, "connections: {}", s.sockets(None, "connections"));
}

/// A PostgreSQL cluster listening on a unix socket in its directory, and with `port` on
/// 127.0.0.1 too; stopped on drop.
struct Cluster<'a> {
    s: &'a Scratch,
    mode: Mode,
    dir: PathBuf,
    port: Option<u16>,
    running: bool,
    /// Its programs are started by root, in root's namespace, and `runuser -u postgres` makes
    /// them postgres (rather than `runuser` starting `ipcshim run` as postgres).
    via_runuser: bool,
}

impl Cluster<'_> {
    fn new<'a>(s: &'a Scratch, mode: Mode, name: &str, via_runuser: bool) -> Cluster<'a> {
        Cluster { s, mode, dir: s.subdir(name), port: None, running: false, via_runuser }
    }

    fn data(&self) -> String {
        path_arg(&self.dir.join("data"))
    }

    fn pg(&self, prog: &str, args: &[&str]) -> Command {
        let prog = Path::new(PG_BIN).join(prog);
        if self.via_runuser {
            let prog = path_arg(&prog);
            self.s.cmd(self.mode, None, "runuser", &[&["-u", "postgres", "--", &prog], args].concat())
        } else {
            self.s.cmd(self.mode, Some("postgres"), prog, args)
        }
    }

    /// initdb, then pg_ctl start with the socket in the cluster's directory (and on
    /// 127.0.0.1 with a port).
    fn start(&mut self) {
        let (data, sockdir, mode) = (self.data(), path_arg(&self.dir), self.mode);
        self.s.ok(self.pg("initdb", &["-A", "trust", "-N", "-D", &data]), &format!("initdb ({mode:?})"));
        let listen = self
            .port
            .map_or("listen_addresses=''".to_owned(), |p| format!("listen_addresses=127.0.0.1 -p {p}"));
        let opts = format!("-k {sockdir} -c {listen} -c fsync=off");
        let log = path_arg(&self.dir.join("server.log"));
        self.running = true; // a failed start may still leave a postmaster behind
        let started = self.s.run(
            self.pg("pg_ctl", &["-D", &data, "-o", &opts, "-l", &log, "start", "-w", "-t", "30"]),
            "pg_ctl start",
        );
        assert!(
            started.status.success(),
            "pg_ctl start ({mode:?}) failed: {}\nserver log:\n{}",
            started.stderr,
            fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn stop(&mut self, how: &str) -> Out {
        let out = self.s.run(
            self.pg("pg_ctl", &["-D", &self.data(), "stop", "-m", how, "-w", "-t", "20"]),
            "pg_ctl stop",
        );
        self.running = !out.status.success();
        out
    }
}

impl Drop for Cluster<'_> {
    fn drop(&mut self) {
        // pg_ctl starts the postmaster in a session of its own, and the postmaster overwrites its
        // environment with its process title: neither the group kill nor the scratch dir's sweep
        // would find it.
        if self.running && !self.stop("fast").status.success() && !self.stop("immediate").status.success() {
            let pid = fs::read_to_string(self.dir.join("data/postmaster.pid")).unwrap_or_default();
            if let Some(pid) = pid.lines().next().and_then(|l| l.trim().parse::<libc::pid_t>().ok()) {
                // SAFETY: kill takes no pointers.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// The queries psql runs, and what they print.
const PSQL_QUERIES: &str = "select 1 + 1;\
     create table t (id int primary key, v text);\
     insert into t select g, md5(g::text) from generate_series(1, 10000) g;\
     select count(*), sum(id), md5(string_agg(v, ',' order by id)) from t;\
     select length(repeat('ab', 500000));\
     select v from t order by id;";

/// A port nobody listens on at `host` now (the kernel's pick for a socket bound and closed).
fn free_port(host: &str) -> u16 {
    std::net::TcpListener::bind((host, 0)).and_then(|l| l.local_addr()).expect("a free port").port()
}

/// initdb, pg_ctl start with the socket in the run's directory (and with `tcp` on 127.0.0.1),
/// psql queries over it (over TCP with `tcp`), pgbench -i and a select-only pgbench run;
/// returns psql's output.
fn postgres_session(s: &Scratch, mode: Mode, tcp: bool) -> String {
    let mut pg =
        Cluster::new(s, mode, &format!("pg-{}-{}", mode.name(), if tcp { "tcp" } else { "unix" }), false);
    pg.port = tcp.then(|| free_port("127.0.0.1"));
    pg.start();
    let sockdir = path_arg(&pg.dir);
    let port = pg.port.map(|p| p.to_string());
    let to: Vec<&str> = match &port {
        Some(port) => vec!["-h", "127.0.0.1", "-p", port],
        None => vec!["-h", &sockdir],
    };

    let psql = s.ok(
        s.cmd(
            mode,
            Some("postgres"),
            "psql",
            &[
                &["-X", "-q", "-v", "ON_ERROR_STOP=1"],
                &to[..],
                &["-d", "postgres", "-At", "-c", PSQL_QUERIES],
            ]
            .concat(),
        ),
        &format!("psql ({mode:?})"),
    );
    let init = s.run(
        s.cmd(mode, Some("postgres"), "pgbench", &[&["-i"], &to[..], &["postgres"]].concat()),
        "pgbench -i",
    );
    init.assert_success();
    assert!(init.stderr.contains("done in"), "pgbench -i ({mode:?}): {}", init.stderr);
    let bench = s.ok(
        s.cmd(
            mode,
            Some("postgres"),
            "pgbench",
            &[&["-S", "-c", "4", "-j", "2", "-t", "200"], &to[..], &["postgres"]].concat(),
        ),
        &format!("pgbench -S ({mode:?})"),
    );
    for want in
        ["number of transactions actually processed: 800/800", "number of failed transactions: 0 (0.000%)"]
    {
        assert!(bench.contains(want), "pgbench -S ({mode:?}) does not say {want:?}:\n{bench}");
    }
    eprintln!(
        "pgbench -S ({mode:?}): {}",
        bench.lines().filter(|l| l.starts_with("tps")).collect::<String>()
    );
    let stopped = pg.stop("fast");
    stopped.assert_success();
    psql
}

#[test]
fn postgres_psql_and_pgbench_over_a_unix_socket() {
    let s = Scratch::new("postgres", Some("postgres"));
    let start = Instant::now();
    let kernel = postgres_session(&s, Mode::Kernel, false);
    let middle = Instant::now();
    let shim =
        s.trapped(Some("postgres"), &[Mode::Shim], "postgres", || postgres_session(&s, Mode::Shim, false));
    check_psql(&kernel, &shim);
    eprintln!("postgres: kernel {:?}, ipcshim {:?}", middle - start, middle.elapsed());
}

/// psql's output on the kernel is what PSQL_QUERIES print, and the shim's the same.
fn check_psql(kernel: &str, shim: &str) {
    let lines: Vec<&str> = kernel.lines().collect();
    assert_eq!(lines.len(), 3 + 10000, "psql on the kernel:\n{}", tail(kernel.as_bytes()));
    assert_eq!(lines[0], "2");
    assert!(lines[1].starts_with("10000|50005000|"), "count, sum, hash: {}", lines[1]);
    assert_eq!(lines[2], "1000000");
    assert_eq!(lines[3], "c4ca4238a0b923820dcc509a6f75849b", "md5('1')");
    assert!(
        shim == kernel,
        "psql's output under ipcshim differs from the kernel's:\n{}",
        tail(shim.as_bytes())
    );
}

/// The same over loopback TCP (`psql -h 127.0.0.1`, `pgbench -S -h 127.0.0.1`): under the shim
/// every connection (psql's, pgbench -i's, pgbench's 4 clients', pg_ctl's readiness probes)
/// is adopted by the postmaster's backends and none given back.
#[test]
fn postgres_psql_and_pgbench_over_loopback_tcp() {
    let s = Scratch::new("postgres-tcp", Some("postgres"));
    let user = Some("postgres");
    let kernel = postgres_session(&s, Mode::Kernel, true);
    let (conns, handed) = (s.tcp(user, "connections"), s.tcp(user, "handed_back"));
    let shim = s.trapped(user, &[Mode::Shim], "postgres over TCP", || postgres_session(&s, Mode::Shim, true));
    check_psql(&kernel, &shim);
    let adopted = s.tcp(user, "connections") - conns;
    assert!(adopted >= 6, "postgres over TCP: {adopted} connections adopted");
    assert_eq!(s.tcp(user, "handed_back"), handed, "postgres over TCP: a connection went to the kernel");
}

/// PostgreSQL started from root's shell under the shim with `runuser -u postgres` (its
/// processes become postgres, and stay in root's namespace) and queried by root's psql: the
/// connection's bytes go through the shim's queues.
#[test]
fn postgres_started_by_runuser_answers_roots_psql() {
    let s = Scratch::new("pgrunuser", Some("postgres"));
    let mut pg = Cluster::new(&s, Mode::Shim, "pg-runuser", true);
    pg.start();
    let sockdir = path_arg(&pg.dir);
    let query = "select 1 + 1; select count(*), sum(g) from generate_series(1, 100000) g; \
                 select repeat('ab', 100000);";
    let args =
        ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", &sockdir, "-U", "postgres", "-d", "postgres", "-At"];
    let psql = s.trapped(None, &[Mode::Shim], "psql as root", || {
        s.ok(s.cmd(Mode::Shim, None, "psql", &[&args[..], &["-c", query]].concat()), "psql as root")
    });
    let want = format!("2\n100000|5000050000\n{}\n", "ab".repeat(100_000));
    assert!(psql == want, "psql as root: {}", tail(psql.as_bytes()));
    pg.stop("fast").assert_success();
}

/// mod_cgid's configuration: the event MPM with one child whose threads run as www-data, CGI
/// scripts in `dir/cgi-bin` run by the CGI daemon (also www-data), which the handler threads
/// reach through its unix socket `dir/run/cgid.sock`; the error log to stderr.
fn apache_config(dir: &Path, port: u16) -> String {
    let dir = path_arg(dir);
    let module = |name: &str| format!("LoadModule {name}_module /usr/lib/apache2/modules/mod_{name}.so\n");
    let modules: String = ["mpm_event", "authz_core", "alias", "cgid"].map(module).concat();
    format!(
        "ServerRoot {dir}\nDefaultRuntimeDir {dir}/run\nPidFile {dir}/run/httpd.pid\n\
         ErrorLog /dev/stderr\nLogLevel notice\n{modules}ServerName localhost\n\
         Listen 127.0.0.1:{port}\nUser www-data\nGroup www-data\n\
         StartServers 1\nServerLimit 1\nThreadsPerChild 4\nMaxRequestWorkers 4\n\
         ScriptSock {dir}/run/cgid.sock\nScriptAlias /cgi-bin/ {dir}/cgi-bin/\n\
         <Directory {dir}/cgi-bin>\n  Require all granted\n</Directory>\n"
    )
}

/// A CGI script: who runs it, its query, the digest of what was posted, then 20000 lines.
const CGI_SCRIPT: &str = "#!/bin/sh\nposted=$(md5sum)\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
    echo \"user $(id -un) query $QUERY_STRING\"\necho \"posted $CONTENT_LENGTH bytes: $posted\"\nseq 1 20000\n";

/// Apache (as root, its children www-data) answering three requests to the CGI script: two
/// GETs and a POST of `payload`; returns each answer's status and body.
fn apache_session(s: &Scratch, mode: Mode, payload: &Path) -> Vec<String> {
    let dir = s.subdir(&format!("apache-{}", mode.name()));
    for sub in ["cgi-bin", "run"] {
        fs::create_dir(dir.join(sub)).expect("create apache dir");
    }
    let script = dir.join("cgi-bin/echo.sh");
    fs::write(&script, CGI_SCRIPT).expect("write the CGI script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod the CGI script");
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let conf = dir.join("httpd.conf");
    fs::write(&conf, apache_config(&dir, port)).expect("write httpd.conf");
    let mut server = s.spawn(
        s.cmd(mode, None, "apache2", &["-f", &path_arg(&conf), "-DFOREGROUND"]),
        &format!("apache2 {mode:?}"),
    );
    server.wait_for("resuming normal operations");
    let url = format!("http://127.0.0.1:{port}/cgi-bin/echo.sh");
    let post = format!("@{}", path_arg(payload));
    let mut answers = Vec::new();
    for (query, data) in [("first", None), ("post", Some(post.as_str())), ("last", None)] {
        let mut args = vec!["-sS", "-w", "%{http_code}\n"];
        if let Some(d) = data {
            args.extend(["--data-binary", d]);
        }
        let target = format!("{url}?{query}");
        args.push(&target);
        answers.push(s.ok(s.cmd(Mode::Kernel, None, "curl", &args), &format!("curl {query} ({mode:?})")));
    }
    // SAFETY: kill takes no pointers; SIGTERM is Apache's graceful stop.
    unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGTERM) };
    let log = server.finish();
    assert!(log.contains("caught SIGTERM, shutting down"), "apache2 {mode:?} log:\n{log}");
    answers
}

/// Apache's mod_cgid runs CGI scripts as www-data: their answers reach the client whole (on the
/// kernel, and under the shim with the bytes through its socket queues), where they were lost
/// when an exec'd script looked up www-data's namespace instead of its tree's.
#[test]
fn apache_mod_cgid_runs_cgi_scripts_as_www_data() {
    let s = Scratch::new("apache", Some("www-data"));
    let payload = s.dir.join("payload");
    let text: String = noise(75_000, 20).iter().map(|b| format!("{b:02x}")).collect();
    fs::write(&payload, &text[..100_000]).expect("write the payload");
    let md5 = Command::new("md5sum").stdin(fs::File::open(&payload).expect("open payload")).output();
    let md5 = String::from_utf8(md5.expect("run md5sum").stdout).expect("md5sum prints text");
    let start = Instant::now();
    let kernel = apache_session(&s, Mode::Kernel, &payload);
    let middle = Instant::now();
    let shim = s.trapped(None, &[Mode::Shim], "apache", || apache_session(&s, Mode::Shim, &payload));
    let lines: String = (1..=20000).map(|i| format!("{i}\n")).collect();
    for (answer, (query, posted)) in kernel.iter().zip([("first", 0), ("post", 100_000), ("last", 0)]) {
        let digest = if posted > 0 { md5.trim_end() } else { "d41d8cd98f00b204e9800998ecf8427e  -" };
        let len = if posted > 0 { posted.to_string() } else { String::new() };
        let want = format!("user www-data query {query}\nposted {len} bytes: {digest}\n{lines}200\n");
        assert!(*answer == want, "{query} on the kernel: {}", tail(answer.as_bytes()));
    }
    assert!(shim == kernel, "Apache under ipcshim answered otherwise: {}", tail(shim.concat().as_bytes()));
    eprintln!("apache: kernel {:?}, ipcshim {:?}", middle - start, middle.elapsed());
}

/// One socat echo: a socat server on UNIX-LISTEN with `cat` behind it (started as `server`), a
/// socat client on UNIX-CONNECT (started as `client`) sending `payload` and reading it back.
/// The server must exit 0 after its one connection; returns what the client read.
fn socat_echo(s: &Scratch, server: Mode, client: Mode, payload: &Path) -> Vec<u8> {
    let dir = s.subdir(&format!("socat-{}-{}", server.name(), client.name()));
    let sock = path_arg(&dir.join("echo.sock"));
    let mut srv = s.spawn(
        s.cmd(server, None, "socat", &["-d", "-d", &format!("UNIX-LISTEN:{sock}"), "EXEC:cat"]),
        &format!("socat server {server:?}"),
    );
    srv.wait_for("listening on");
    // -t 30: after its stdin's end the client waits that long at most for the echo's end.
    let mut cmd = s.cmd(client, None, "socat", &["-t", "30", "-", &format!("UNIX-CONNECT:{sock}")]);
    cmd.stdin(fs::File::open(payload).expect("open payload"));
    let out = s.run(cmd, &format!("socat client {client:?}"));
    out.assert_success();
    let log = srv.finish();
    assert!(
        log.contains("exiting with status 0"),
        "socat server ({server:?}, client {client:?}) log:\n{log}"
    );
    eprintln!("socat echo, server {server:?}, client {client:?}: {:?}", out.elapsed);
    out.stdout
}

/// 1 MiB through socat both ways (client to server and back): the bytes must come back whole.
#[test]
fn socat_echo_1mib_over_a_unix_socket() {
    let s = Scratch::new("socat", None);
    let payload = s.dir.join("payload");
    let data = noise(1 << 20, 3);
    fs::write(&payload, &data).expect("write payload");
    for mode in [Mode::Kernel, Mode::Shim] {
        let bytes = s.sockets(None, "bytes_in");
        let back = s.trapped(None, &[mode], "socat", || socat_echo(&s, mode, mode, &payload));
        assert!(back == data, "socat ({mode:?}): {} bytes back, want the {} sent", back.len(), data.len());
        let moved = s.sockets(None, "bytes_in") - bytes;
        assert!(
            mode == Mode::Kernel || moved >= 2 << 20,
            "socat under the shim: only {moved} bytes through its queues"
        );
    }
}

/// memcached listening on a unix socket only (`-s`, 4 worker threads, which it hands each
/// connection to through pipes), asked by memcached_client.py over 4 connections: 3000 sets of
/// values up to 200 KiB, each read back alone and in multi-gets, deletes, increments. Returns
/// what the client printed.
fn memcached_session(s: &Scratch, mode: Mode) -> String {
    let dir = s.subdir(&format!("memcached-{}", mode.name()));
    let sock = dir.join("memcached.sock");
    let mut args = vec!["-s", sock.to_str().expect("utf-8 path"), "-t", "4", "-m", "64"];
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        // memcached will not run as root unless told to.
        args.extend(["-u", "root"]);
    }
    let mut server = s.spawn(s.cmd(mode, None, "memcached", &args), &format!("memcached {mode:?}"));
    server.wait_for_match("its socket", |_| sock.exists().then_some(()));
    let out = s.ok(
        s.cmd(mode, None, "python3", &[&fixture("memcached_client.py"), &path_arg(&sock), "4", "3000"]),
        &format!("memcached client {mode:?}"),
    );
    server.stop(libc::SIGTERM);
    out
}

#[test]
fn memcached_over_its_unix_socket() {
    let s = Scratch::new("memcached", None);
    let want = "4 connections, 3000 keys, 0 bad, 1500 deleted, counter 1500, digest ce1863b902ba8834\n";
    for mode in [Mode::Kernel, Mode::Shim] {
        let bytes = s.sockets(None, "bytes_in");
        let out = s.trapped(None, &[mode], "memcached", || memcached_session(&s, mode));
        assert_eq!(out, want, "memcached ({mode:?})");
        let moved = s.sockets(None, "bytes_in") - bytes;
        // The values alone are 24 MB each way (sets, then gets).
        assert!(mode == Mode::Kernel || moved >= 40 << 20, "memcached under the shim: only {moved} bytes");
    }
}

/// mp.py with every start method: the same lines on the kernel and under the shim, where the
/// workers' queues and pipes and the Manager's and the forkserver's sockets are the shim's.
#[test]
fn python_multiprocessing_with_every_start_method() {
    let s = Scratch::new("multiprocessing", None);
    let part = |method: &str| {
        format!(
            "{method}: pool (2664667000, 41541750) queue (300, 8889350, 32551) pipe (20864000, 200, b'bye') \
             manager ([(0, 0), (1, 2), (2, 4), (3, 6), (4, 8), (5, 10), (6, 12), (7, 14)], [0, 1, 2, 3, 4, 5, 6, 7]) \
             executor 332833500 sync True\n"
        )
    };
    let want = ["fork", "forkserver", "spawn"].map(part).concat()
        + "asyncio (300000, 300000, b'done\\n')\nshell b'99999\\n99998\\n99997\\n'\n";
    for mode in [Mode::Kernel, Mode::Shim] {
        let pipe_bytes = |s: &Scratch| s.counters(None).get("pipes").and_then(|c| c.get("bytes_in")).copied();
        let before = pipe_bytes(&s).unwrap_or(0);
        let args = [fixture("mp.py"), "fork".into(), "forkserver".into(), "spawn".into()];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = s.trapped(None, &[mode], "multiprocessing", || {
            s.ok(s.cmd(mode, None, "python3", &args), &format!("multiprocessing {mode:?}"))
        });
        assert_eq!(out, want, "python multiprocessing ({mode:?})");
        // The queues' messages (8.9 MB each method) went through the shim's pipes.
        let moved = pipe_bytes(&s).unwrap_or(0) - before;
        assert!(
            mode == Mode::Kernel || moved >= 3 * 8_889_350,
            "multiprocessing under the shim: {moved} pipe bytes"
        );
    }
}

/// `PROG SCRIPT DIR` (a fixture, and a fresh run directory) started as `mode`, under
/// `Scratch::trapped`; what it printed.
fn in_run_dir(s: &Scratch, mode: Mode, what: &str, prog: &str, script: &str) -> String {
    let dir = s.subdir(&format!("{what}-{}", mode.name()));
    s.trapped(None, &[mode], what, || {
        s.ok(s.cmd(mode, None, prog, &[&fixture(script), &path_arg(&dir)]), &format!("{what} {mode:?}"))
    })
}

/// node_ipc.js: libuv's epoll loop with a forked child's IPC channel, a unix socket server
/// echoing 50 connections, a spawned pipeline and a worker thread; the same lines on the kernel
/// and under the shim, the echo's 14 MB through the shim's sockets.
#[test]
fn node_child_process_ipc_unix_server_and_workers() {
    let s = Scratch::new("node", None);
    let want = "ipc [14867450,300]\nunix [7093075,50]\nspawn [\"2000000\",\"20000\",0]\nexecSync HI\nworker 999000\n";
    for mode in [Mode::Kernel, Mode::Shim] {
        let bytes = s.sockets(None, "bytes_in");
        assert_eq!(in_run_dir(&s, mode, "node", "node", "node_ipc.js"), want, "node ({mode:?})");
        let moved = s.sockets(None, "bytes_in") - bytes;
        assert!(
            mode == Mode::Kernel || moved >= 2 * 7_093_075,
            "node under the shim: only {moved} socket bytes"
        );
    }
}

/// dbus_session.sh: a private session bus asked by dbus-send and by 300 Pings of a raw client
/// (dbus_ping.py), with the daemon's connections the shim's.
#[test]
fn dbus_daemon_session_bus() {
    let s = Scratch::new("dbus", None);
    for mode in [Mode::Kernel, Mode::Shim] {
        let out = in_run_dir(&s, mode, "dbus", "sh", "dbus_session.sh");
        assert_eq!(out, "2\n   boolean true\npings 300\ndone\n", "dbus ({mode:?})");
    }
}

/// gpg_agent.sh: gpg and the gpg-agent it starts make a key and a signature over the agent's
/// unix socket (Assuan).
#[test]
fn gpg_and_its_agent() {
    let s = Scratch::new("gpg", None);
    for mode in [Mode::Kernel, Mode::Shim] {
        assert_eq!(in_run_dir(&s, mode, "gpg", "sh", "gpg_agent.sh"), "1\n1\ndone\n", "gpg ({mode:?})");
    }
}

/// echo_server.py and echo_client.py: 8 concurrent connections of 250 requests each (the
/// first 1 MiB, then up to 20000 bytes); returns what the client and the server printed.
fn asyncio_echo(s: &Scratch, server: Mode, client: Mode) -> (String, String) {
    let dir = s.subdir(&format!("asyncio-{}-{}", server.name(), client.name()));
    let sock = path_arg(&dir.join("echo.sock"));
    let mut srv = s.spawn(
        s.cmd(server, None, "python3", &[&fixture("echo_server.py"), &sock, "8"]),
        &format!("asyncio server {server:?}"),
    );
    srv.wait_for("ready\n");
    let out = s.run(
        s.cmd(client, None, "python3", &[&fixture("echo_client.py"), &sock, "8", "250"]),
        &format!("asyncio client {client:?}"),
    );
    out.assert_success();
    let log = srv.finish();
    eprintln!("asyncio echo, server {server:?}, client {client:?}: {:?}", out.elapsed);
    (String::from_utf8_lossy(&out.stdout).into_owned(), log)
}

const ASYNCIO_CLIENT: &str =
    "8 connections, 2000 requests, 0 bad, 28324868 bytes back, digest 47518b09d40e90ba\n";
const ASYNCIO_SERVER: &str = "ready\nserved 2000 requests over 8 connections\n";

#[test]
fn python_asyncio_server_and_client() {
    let s = Scratch::new("asyncio", None);
    for mode in [Mode::Kernel, Mode::Shim] {
        let (client, server) = s.trapped(None, &[mode], "asyncio", || asyncio_echo(&s, mode, mode));
        assert_eq!(client, ASYNCIO_CLIENT, "asyncio client ({mode:?})");
        assert_eq!(server, ASYNCIO_SERVER, "asyncio server ({mode:?})");
    }
}

/// echo_server.py and echo_client.py over loopback TCP on `host` (127.0.0.1 or ::1), the
/// server's port passed in a file; returns what the client and the server printed.
fn asyncio_tcp_echo(s: &Scratch, server: Mode, client: Mode, host: &str) -> (String, String) {
    let dir = s.subdir(&format!("asyncio-tcp-{}-{}-{}", server.name(), client.name(), host.len()));
    let addr = format!("tcp:{host}:{}", path_arg(&dir.join("port")));
    let mut srv = s.spawn(
        s.cmd(server, None, "python3", &[&fixture("echo_server.py"), &addr, "8"]),
        &format!("asyncio TCP server {server:?}"),
    );
    srv.wait_for("ready\n");
    let out = s.run(
        s.cmd(client, None, "python3", &[&fixture("echo_client.py"), &addr, "8", "250"]),
        &format!("asyncio TCP client {client:?}"),
    );
    out.assert_success();
    let log = srv.finish();
    eprintln!("asyncio TCP echo on {host}, server {server:?}, client {client:?}: {:?}", out.elapsed);
    (String::from_utf8_lossy(&out.stdout).into_owned(), log)
}

/// The asyncio echo over loopback TCP (IPv4 and IPv6) on the kernel, under the shim (every
/// byte through the shim's socket queues, no connection given back), and with one end without
/// the shim (the kernel's connections, still correct).
#[test]
fn python_asyncio_over_loopback_tcp() {
    let s = Scratch::new("asyncio-tcp", None);
    for host in ["127.0.0.1", "::1"] {
        for mode in [Mode::Kernel, Mode::Shim] {
            let bytes = s.sockets(None, "bytes_in");
            let tcp = |key: &str| s.tcp(None, key);
            let (conns, handed) = (tcp("connections"), tcp("handed_back"));
            let (client, server) =
                s.trapped(None, &[mode], "asyncio TCP", || asyncio_tcp_echo(&s, mode, mode, host));
            if mode == Mode::Shim {
                assert_eq!(tcp("connections") - conns, 8, "asyncio TCP on {host}: connections adopted");
                assert_eq!(
                    tcp("handed_back"),
                    handed,
                    "asyncio TCP on {host}: a connection went to the kernel"
                );
            }
            assert_eq!(client, ASYNCIO_CLIENT, "asyncio TCP client on {host} ({mode:?})");
            assert_eq!(server, ASYNCIO_SERVER, "asyncio TCP server on {host} ({mode:?})");
            let moved = s.sockets(None, "bytes_in") - bytes;
            // The answers alone are 28 MB.
            assert!(
                mode == Mode::Kernel || moved >= 50 << 20,
                "asyncio TCP under the shim: only {moved} bytes"
            );
        }
        for (server, client) in [(Mode::Shim, Mode::Disabled), (Mode::Disabled, Mode::Shim)] {
            let (out, log) = s.trapped(None, &[server, client], "asyncio TCP", || {
                asyncio_tcp_echo(&s, server, client, host)
            });
            assert_eq!(out, ASYNCIO_CLIENT, "asyncio TCP client {client:?}, server {server:?} on {host}");
            assert_eq!(log, ASYNCIO_SERVER, "asyncio TCP server {server:?}, client {client:?} on {host}");
        }
    }
}

/// A shimmed process and one without the shim (not preloaded, or preloaded with
/// IPCSHIM_DISABLE=1) at the two ends of one socket, each way round: whatever the shim serves,
/// a program outside it must still reach it by path, and the other way round.
#[test]
fn shimmed_and_unshimmed_ends_of_one_socket() {
    let s = Scratch::new("mixed", None);
    let payload = s.dir.join("payload");
    let data = noise(1 << 20, 4);
    fs::write(&payload, &data).expect("write payload");
    for (server, client) in [(Mode::Shim, Mode::Kernel), (Mode::Kernel, Mode::Shim)] {
        let back = s.trapped(None, &[server, client], "socat", || socat_echo(&s, server, client, &payload));
        assert!(
            back == data,
            "socat (server {server:?}, client {client:?}): {} bytes back, want {}",
            back.len(),
            data.len()
        );
    }
    for (server, client) in [(Mode::Shim, Mode::Disabled), (Mode::Disabled, Mode::Shim)] {
        let (out, log) = s.trapped(None, &[server, client], "asyncio", || asyncio_echo(&s, server, client));
        assert_eq!(out, ASYNCIO_CLIENT, "asyncio client {client:?}, server {server:?}");
        assert_eq!(log, ASYNCIO_SERVER, "asyncio server {server:?}, client {client:?}");
    }
}

/// dgram_echo.py: a server and a client on named datagram sockets, 300 requests of up to
/// 6000 bytes; returns what the client and the server printed.
fn dgram_echo(s: &Scratch, server: Mode, client: Mode) -> (String, String) {
    let dir = s.subdir(&format!("dgram-{}-{}", server.name(), client.name()));
    let sock = path_arg(&dir.join("echo.sock"));
    let mut srv = s.spawn(
        s.cmd(server, None, "python3", &[&fixture("dgram_echo.py"), "serve", &sock, "300"]),
        &format!("datagram server {server:?}"),
    );
    srv.wait_for("ready\n");
    let out = s.run(
        s.cmd(client, None, "python3", &[&fixture("dgram_echo.py"), "ask", &sock, "300"]),
        &format!("datagram client {client:?}"),
    );
    out.assert_success();
    let log = srv.finish();
    eprintln!("datagram echo, server {server:?}, client {client:?}: {:?}", out.elapsed);
    (String::from_utf8_lossy(&out.stdout).into_owned(), log)
}

const DGRAM_CLIENT: &str = "300 datagrams, 0 bad, digest 8fade3dd1326ec95\n";
const DGRAM_SERVER: &str = "ready\nserved 300 datagrams\n";

/// Named datagram sockets, both shimmed and each end with or without the shim: a datagram
/// reaches its receiver whichever side serves its sender, with the sender's address.
#[test]
fn python_datagram_echo_with_and_without_the_shim() {
    let s = Scratch::new("dgram", None);
    let mixes = [
        (Mode::Shim, Mode::Shim),
        (Mode::Shim, Mode::Kernel),
        (Mode::Kernel, Mode::Shim),
        (Mode::Shim, Mode::Disabled),
        (Mode::Disabled, Mode::Shim),
    ];
    for (server, client) in mixes {
        let (out, log) =
            s.trapped(None, &[server, client], "datagram echo", || dgram_echo(&s, server, client));
        assert_eq!(out, DGRAM_CLIENT, "datagram client {client:?}, server {server:?}");
        assert_eq!(log, DGRAM_SERVER, "datagram server {server:?}, client {client:?}");
    }
}

/// nginx's configuration: a server on `front.sock` proxying (HTTP/1.1, kept-alive upstream
/// connections) to a second server on `back.sock` that serves `html/`, in `dir`. nginx adds
/// its upstream socket to epoll (edge-triggered) before it connects.
fn nginx_conf(dir: &Path) -> String {
    let d = path_arg(dir);
    format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\npid {d}/nginx.pid;\n\
         error_log stderr notice;\nevents {{ worker_connections 64; }}\nhttp {{\n\
         access_log off;\nclient_body_temp_path {d}/tmp;\nproxy_temp_path {d}/tmp;\n\
         fastcgi_temp_path {d}/tmp;\nuwsgi_temp_path {d}/tmp;\nscgi_temp_path {d}/tmp;\n\
         upstream back {{ server unix:{d}/back.sock; keepalive 4; }}\n\
         server {{ listen unix:{d}/front.sock; location / {{ proxy_pass http://back;\n\
         proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_read_timeout 5s; }} }}\n\
         server {{ listen unix:{d}/back.sock; root {d}/html; }}\n}}\n"
    )
}

/// The upstream's files, by name.
fn nginx_files() -> [(&'static str, Vec<u8>); 3] {
    [
        ("small.txt", b"hello from the upstream\n".to_vec()),
        ("mid.bin", noise(20_000, 5)),
        ("big.bin", noise(300_000, 6)),
    ]
}

/// nginx (master and one worker) proxying to its own upstream server on a unix socket; curl
/// fetches each file 12 times through it. Returns the bytes curl got, in order.
fn nginx_session(s: &Scratch, mode: Mode) -> Vec<u8> {
    let dir = s.subdir(&format!("nginx-{}", mode.name()));
    fs::create_dir(dir.join("tmp")).expect("mkdir tmp");
    fs::create_dir(dir.join("html")).expect("mkdir html");
    for (name, body) in nginx_files() {
        fs::write(dir.join("html").join(name), body).expect("write an upstream file");
    }
    let conf = dir.join("nginx.conf");
    fs::write(&conf, nginx_conf(&dir)).expect("write nginx.conf");
    let mut server = s.spawn(
        s.cmd(mode, None, "nginx", &["-c", &path_arg(&conf), "-p", &path_arg(&dir), "-e", "stderr"]),
        &format!("nginx {mode:?}"),
    );
    server.wait_for("start worker process");
    while !dir.join("front.sock").exists() {
        thread::sleep(Duration::from_millis(5));
    }
    let front = path_arg(&dir.join("front.sock"));
    let urls: Vec<String> =
        (0..12).flat_map(|_| nginx_files().map(|(name, _)| format!("http://upstream.test/{name}"))).collect();
    let mut args = vec!["-sS", "--fail", "-m", "20", "--unix-socket", &front];
    args.extend(urls.iter().map(String::as_str));
    let out = s.run(s.cmd(mode, None, "curl", &args), &format!("curl ({mode:?})"));
    out.assert_success();
    let log = server.stop(libc::SIGTERM);
    assert!(!log.contains("[error]"), "nginx {mode:?} log:\n{log}");
    eprintln!("nginx, 36 fetches ({mode:?}): {:?}", out.elapsed);
    out.stdout
}

/// nginx adds its upstream socket to epoll before connecting it: the interest must follow the
/// connection into the shim, or the upstream's replies wait unseen until nginx times out.
#[test]
fn nginx_proxies_to_a_unix_socket_upstream() {
    let s = Scratch::new("nginx", None);
    let want: Vec<u8> = (0..12).flat_map(|_| nginx_files().into_iter().flat_map(|(_, body)| body)).collect();
    for mode in [Mode::Kernel, Mode::Shim] {
        let bytes = s.sockets(None, "bytes_in");
        let got = s.trapped(None, &[mode], "nginx", || nginx_session(&s, mode));
        assert!(got == want, "curl through nginx ({mode:?}): {} bytes, want {}", got.len(), want.len());
        // The bodies crossed two connections, curl's to nginx and nginx's to its upstream.
        let moved = s.sockets(None, "bytes_in") - bytes;
        assert!(
            mode == Mode::Kernel || moved >= 2 * want.len() as u64,
            "nginx under the shim: only {moved} bytes through its queues"
        );
    }
}

/// nginx (master and one worker) serving `html/` in `dir` on 127.0.0.1 and ::1 at `port`.
fn nginx_tcp_conf(dir: &Path, port: u16) -> String {
    let d = path_arg(dir);
    format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\npid {d}/nginx.pid;\n\
         error_log stderr notice;\nevents {{ worker_connections 256; }}\nhttp {{\n\
         access_log off;\nclient_body_temp_path {d}/tmp;\nproxy_temp_path {d}/tmp;\n\
         fastcgi_temp_path {d}/tmp;\nuwsgi_temp_path {d}/tmp;\nscgi_temp_path {d}/tmp;\n\
         server {{ listen 127.0.0.1:{port}; listen [::1]:{port}; root {d}/html; }}\n}}\n"
    )
}

/// What ab's report says of a run: its counts of requests made, failed, answered with a
/// kept-alive connection, and the body bytes received.
fn ab_counts(report: &str) -> Vec<String> {
    let keys = ["Complete requests:", "Failed requests:", "Keep-Alive requests:", "HTML transferred:"];
    report
        .lines()
        .filter(|l| keys.iter().any(|k| l.starts_with(k)))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// nginx (`server`) serving [`nginx_files`] over loopback TCP (127.0.0.1 and ::1): curl
/// (`client`) fetches each file 4 times from each address, then ab (`client`) asks for the
/// middle one 3000 times over 64 connections at once, a connection per request, and 6000 times
/// over 128 kept-alive connections (made at once: 32 and more used to leave requests unread),
/// each request given up after 10 s. Returns the bytes curl got and what ab counted.
fn nginx_tcp_session(s: &Scratch, server: Mode, client: Mode) -> (Vec<u8>, Vec<String>) {
    let dir = s.subdir(&format!("nginx-tcp-{}-{}", server.name(), client.name()));
    fs::create_dir(dir.join("tmp")).expect("mkdir tmp");
    fs::create_dir(dir.join("html")).expect("mkdir html");
    for (name, body) in nginx_files() {
        fs::write(dir.join("html").join(name), body).expect("write a file to serve");
    }
    let port = free_port("127.0.0.1");
    let conf = dir.join("nginx.conf");
    fs::write(&conf, nginx_tcp_conf(&dir, port)).expect("write nginx.conf");
    let mut srv = s.spawn(
        s.cmd(server, None, "nginx", &["-c", &path_arg(&conf), "-p", &path_arg(&dir), "-e", "stderr"]),
        &format!("nginx TCP {server:?}"),
    );
    srv.wait_for("start worker process");
    let urls: Vec<String> = ["127.0.0.1", "[::1]"]
        .iter()
        .flat_map(|host| {
            (0..4).flat_map(move |_| nginx_files().map(|(name, _)| format!("http://{host}:{port}/{name}")))
        })
        .collect();
    // The worker listens once the master's log says it started it: curl retries a refused
    // connection for that moment.
    let mut args =
        vec!["-sS", "--fail", "-m", "20", "--retry", "20", "--retry-connrefused", "--retry-delay", "0"];
    args.extend(urls.iter().map(String::as_str));
    let out = s.run(s.cmd(client, None, "curl", &args), &format!("curl TCP ({client:?})"));
    out.assert_success();
    let url = format!("http://127.0.0.1:{port}/mid.bin");
    let mut counts = Vec::new();
    for ab in [&["-n", "3000", "-c", "64"][..], &["-k", "-n", "6000", "-c", "128"]] {
        let report = s.ok(
            s.cmd(client, None, "ab", &[ab, &["-q", "-s", "10", &url]].concat()),
            &format!("ab ({client:?})"),
        );
        let rate = report.lines().find(|l| l.starts_with("Requests per second:")).unwrap_or_default();
        eprintln!("ab {} ({client:?}, nginx {server:?}): {rate}", ab.join(" "));
        counts.extend(ab_counts(&report));
    }
    let log = srv.stop(libc::SIGTERM);
    assert!(!log.contains("[error]"), "nginx {server:?} log:\n{log}");
    eprintln!("nginx over TCP, 24 fetches (server {server:?}, client {client:?}): {:?}", out.elapsed);
    (out.stdout, counts)
}

/// nginx serving files over loopback TCP to curl and to ab (a connection per request, and
/// kept-alive connections), on the kernel, under the shim (every connection adopted, none
/// given back, every body byte through the shim's queues) and with a client without the shim
/// (the kernel's connections, still correct).
#[test]
fn nginx_serves_curl_and_ab_over_loopback_tcp() {
    let s = Scratch::new("nginx-tcp", None);
    let want: Vec<u8> = (0..8).flat_map(|_| nginx_files().into_iter().flat_map(|(_, body)| body)).collect();
    let mid = nginx_files()[1].1.len();
    let want_ab = [
        "Complete requests: 3000".to_owned(),
        "Failed requests: 0".into(),
        format!("HTML transferred: {} bytes", 3000 * mid),
        "Complete requests: 6000".into(),
        "Failed requests: 0".into(),
        "Keep-Alive requests: 6000".into(),
        format!("HTML transferred: {} bytes", 6000 * mid),
    ];
    for (server, client) in
        [(Mode::Kernel, Mode::Kernel), (Mode::Shim, Mode::Shim), (Mode::Shim, Mode::Kernel)]
    {
        let (bytes, conns, handed) =
            (s.sockets(None, "bytes_in"), s.tcp(None, "connections"), s.tcp(None, "handed_back"));
        let (got, ab) =
            s.trapped(None, &[server, client], "nginx over TCP", || nginx_tcp_session(&s, server, client));
        assert!(
            got == want,
            "curl from nginx ({server:?}, {client:?}): {} bytes, want {}",
            got.len(),
            want.len()
        );
        assert_eq!(ab, want_ab, "ab against nginx (server {server:?}, client {client:?})");
        let adopted = s.tcp(None, "connections") - conns;
        assert_eq!(
            s.tcp(None, "handed_back"),
            handed,
            "nginx over TCP ({server:?}, {client:?}): a connection given back"
        );
        if client == Mode::Shim {
            // curl's connections (one per address at least), ab's 3000 and 128.
            assert!(adopted >= 3130, "nginx over TCP: {adopted} connections adopted");
            let moved = s.sockets(None, "bytes_in") - bytes;
            assert!(
                moved >= (want.len() + 9000 * mid) as u64,
                "nginx over TCP: only {moved} bytes through the shim"
            );
        } else {
            assert_eq!(adopted, 0, "nginx over TCP with a client without the shim: connections adopted");
        }
    }
}

/// `python3 -m http.server` (`server`) on 127.0.0.1 at a port the kernel picks, serving a 2 MiB
/// file and a small one to curl (`client`), three fetches on one connection; returns what curl
/// got and the requests the server logged.
fn http_server_session(s: &Scratch, server: Mode, client: Mode) -> (Vec<u8>, usize) {
    let dir = s.subdir(&format!("http-server-{}-{}", server.name(), client.name()));
    fs::write(dir.join("big.bin"), noise(2 << 20, 7)).expect("write big.bin");
    fs::write(dir.join("small.txt"), b"served by python\n").expect("write small.txt");
    let mut srv = s.spawn(
        s.cmd(
            server,
            None,
            "python3",
            &["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", &path_arg(&dir)],
        ),
        &format!("python3 -m http.server {server:?}"),
    );
    // "Serving HTTP on 127.0.0.1 port N (http://127.0.0.1:N/) ..."
    let port: u16 = srv.wait_for_match("its port", |log| {
        log.split_once("Serving HTTP on 127.0.0.1 port ")?.1.split_whitespace().next()?.parse().ok()
    });
    let base = format!("http://127.0.0.1:{port}");
    let urls = [format!("{base}/big.bin"), format!("{base}/small.txt"), format!("{base}/big.bin")];
    let args =
        [&["-sS", "--fail", "-m", "20"][..], &urls.iter().map(String::as_str).collect::<Vec<_>>()].concat();
    let out = s.run(s.cmd(client, None, "curl", &args), &format!("curl ({client:?}) from http.server"));
    out.assert_success();
    // SIGINT: its KeyboardInterrupt handler says so and exits 0.
    let log = srv.stop(libc::SIGINT);
    eprintln!("http.server (server {server:?}, client {client:?}): {:?}", out.elapsed);
    (out.stdout, log.matches("\"GET /").count())
}

/// curl against `python3 -m http.server` over loopback TCP, on the kernel, under the shim
/// (the bodies through the shim's queues) and with either end without the shim.
#[test]
fn curl_against_python_http_server_over_loopback_tcp() {
    let s = Scratch::new("http-server", None);
    let big = noise(2 << 20, 7);
    let want = [&big[..], b"served by python\n", &big].concat();
    let mixes = [
        (Mode::Kernel, Mode::Kernel),
        (Mode::Shim, Mode::Shim),
        (Mode::Shim, Mode::Kernel),
        (Mode::Kernel, Mode::Shim),
    ];
    for (server, client) in mixes {
        let (bytes, conns) = (s.sockets(None, "bytes_in"), s.tcp(None, "connections"));
        let (got, requests) =
            s.trapped(None, &[server, client], "http.server", || http_server_session(&s, server, client));
        assert!(
            got == want,
            "curl from http.server ({server:?}, {client:?}): {} bytes, want {}",
            got.len(),
            want.len()
        );
        assert_eq!(requests, 3, "http.server ({server:?}, {client:?}): requests logged");
        let adopted = s.tcp(None, "connections") - conns;
        if (server, client) == (Mode::Shim, Mode::Shim) {
            assert!(adopted >= 1, "http.server under the shim: no connection adopted");
            let moved = s.sockets(None, "bytes_in") - bytes;
            assert!(moved >= want.len() as u64, "http.server under the shim: only {moved} bytes");
        } else {
            assert_eq!(adopted, 0, "http.server ({server:?}, {client:?}): a connection adopted");
        }
    }
}

/// Xvfb and an x11perf run of MIT-SHM puts and gets and property round trips; returns the
/// names of the tests x11perf reported, and how many shm calls the shim served meanwhile.
fn x11perf_session(s: &Scratch, mode: Mode) -> (Vec<String>, u64) {
    let shm_calls = || s.counters(None).get("shm").and_then(|c| c.get("calls")).copied().unwrap_or(0);
    let before = shm_calls();
    // -displayfd: Xvfb picks a free display and prints its number once it is ready.
    let mut server = s.spawn(
        s.cmd(mode, None, "Xvfb", &["-displayfd", "1", "-nolisten", "tcp", "-screen", "0", "1024x768x24"]),
        &format!("Xvfb {mode:?}"),
    );
    let display = server.wait_for_match("a display number", |log| {
        let line = log.lines().find(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))?;
        // A whole line: the number is followed by its newline.
        log.contains(&format!("{line}\n")).then(|| format!(":{line}"))
    });
    let out = s.ok(
        s.cmd(
            mode,
            None,
            "x11perf",
            &["-display", &display, "-repeat", "1", "-reps", "2000", "-shmput10", "-shmget10", "-prop"],
        ),
        &format!("x11perf ({mode:?})"),
    );
    server.stop(libc::SIGTERM);
    // "   8000 reps @   0.0021 msec (480000.0/sec): ShmPutImage 10x10 square"
    let tests =
        out.lines().filter_map(|l| l.split_once("/sec): ").map(|(_, name)| name.to_owned())).collect();
    (tests, shm_calls() - before)
}

/// X11 over a unix socket, with images in System V shared memory that the client creates and
/// the server attaches (MIT-SHM): both served by the shim.
#[test]
fn xvfb_with_an_mit_shm_client() {
    let s = Scratch::new("xvfb", None);
    let want = ["ShmPutImage 10x10 square", "ShmGetImage 10x10 square", "GetProperty"];
    for mode in [Mode::Kernel, Mode::Shim] {
        let (tests, shm_calls) = s.trapped(None, &[mode], "x11perf", || x11perf_session(&s, mode));
        assert_eq!(tests, want, "x11perf ({mode:?})");
        assert!(mode == Mode::Kernel || shm_calls > 0, "x11perf under the shim: no shm call served");
    }
}

/// One tmux session: a server started with `new -d` (it forks a child that execs the
/// set-gid utempter helper, which runs without the shim and inherits the listening socket),
/// a second client attached in control mode (`-C attach`, until its input ends), seen by a
/// third that lists the clients, keys sent by another and the pane captured by more until it
/// shows them.
fn tmux_session(s: &Scratch, mode: Mode) -> (String, String) {
    let sock = s.subdir(&format!("tmux-{}", mode.name())).join("sock");
    let sock = path_arg(&sock);
    let tmux = |args: &[&str]| {
        let mut all = vec!["-S", sock.as_str()];
        all.extend_from_slice(args);
        s.cmd(mode, None, "tmux", &all)
    };
    // Polls `args` until its output says `done`.
    let until = |args: &[&str], what: &str, done: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let out = s.ok(tmux(args), what);
            if done(&out) || Instant::now() > deadline {
                break out;
            }
            thread::sleep(Duration::from_millis(20));
        }
    };
    s.ok(tmux(&["new", "-d", "-x", "80", "-y", "24", "cat"]), "tmux new");
    let mut attach = tmux(&["-C", "attach"]);
    attach.stdin(Stdio::piped());
    let mut control = s.spawn(attach, &format!("tmux -C attach ({})", mode.name()));
    let format = "#{client_control_mode} #{client_flags}";
    let clients = until(&["list-clients", "-F", format], "tmux list-clients", &|l| l.starts_with("1 "));
    s.ok(tmux(&["send-keys", "-t", "0", "second client was here", "Enter"]), "tmux send-keys");
    // The line typed, and cat's copy of it.
    let pane = until(&["capture-pane", "-p", "-t", "0"], "tmux capture-pane", &|p| {
        p.matches("second client was here").count() >= 2
    });
    drop(control.child.stdin.take());
    let log = control.finish();
    assert!(log.contains("%begin"), "tmux -C attach: {log}");
    s.ok(tmux(&["kill-server"]), "tmux kill-server");
    (clients.trim().to_owned(), pane.lines().filter(|l| !l.is_empty()).collect::<Vec<_>>().join("\n"))
}

/// tmux's clients each reach the server through its listening socket: after the server's
/// child execs utempter (set-gid, no shim) with that socket inherited, the listener stays
/// the shim's, so every later client's connection is served, none given back.
#[test]
fn tmux_second_client_is_served_after_utempter() {
    assert!(
        Path::new("/usr/lib/x86_64-linux-gnu/utempter/utempter").exists(),
        "libutempter0 is missing: run scripts/deps.sh"
    );
    let s = Scratch::new("tmux", None);
    let kernel = tmux_session(&s, Mode::Kernel);
    let before = (s.sockets(None, "connections"), s.sockets(None, "bytes_in"), s.traps(None));
    let shim = tmux_session(&s, Mode::Shim);
    assert!(s.traps(None) > before.2, "tmux: the catch-all trapped nothing");
    assert_eq!(shim, kernel, "tmux under the shim differs from the kernel's");
    assert!(
        kernel.0.contains("attached") && kernel.1.matches("second client was here").count() >= 2,
        "{kernel:?}"
    );
    // The connection of the client that made the server run utempter (new, kill-server) is
    // inherited by it and goes to the kernel: 2 queues each time, no other.
    let (connections, bytes) = (s.sockets(None, "connections"), s.sockets(None, "bytes_in"));
    let handed = s.sockets(None, "handed_back");
    eprintln!(
        "tmux: {} connections served, {} bytes, {handed} queues handed back",
        connections - before.0,
        bytes - before.1
    );
    assert!(connections >= before.0 + 5, "tmux: later clients were not served ({connections} connections)");
    assert!(handed <= 4, "tmux: {handed} socket queues handed back, more than utempter inherited");
}

/// stress-ng's socketpair stressor: pairs made until the fd limit, written and read across a
/// fork, and for every read a pair that sends MSG_OOB each way and closes
/// (socket_pair_try_leak): every connection served, none given back to the kernel.
#[test]
fn stress_ng_sockpair_is_served() {
    let s = Scratch::new("stressng", None);
    // A count of operations, not a time: on a loaded machine 3 s may end while it is still
    // making its pairs, before a byte moved.
    let run =
        s.cmd(Mode::Shim, None, "stress-ng", &["--sockpair", "2", "--sockpair-ops", "40", "-t", "120s"]);
    let out = s.trapped(None, &[Mode::Shim], "stress-ng --sockpair", || s.ok(run, "stress-ng --sockpair"));
    let (connections, handed) = (s.sockets(None, "connections"), s.sockets(None, "handed_back"));
    eprintln!("stress-ng --sockpair: {connections} connections, {handed} handed back\n{out}");
    assert!(connections > 1000, "stress-ng --sockpair: only {connections} connections served");
    assert_eq!(handed, 0, "stress-ng --sockpair: connections given back to the kernel");
}
