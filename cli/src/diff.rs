//! `ipcshim diff -- CMD…`: runs CMD once on the kernel under `strace -f` and once on ipcshim
//! with tracing, and compares the IPC calls of the two runs process by process.
//!
//! What is compared: System V calls; pipe/pipe2; read, write, readv, writev, close, dup*, the
//! fcntl and ioctl commands ipcshim serves, on pipes and FIFOs; poll/ppoll over sets holding
//! one; on AF_UNIX sockets, socketpair, listen, connect, accept*, send*/recv* (and read,
//! write, readv, writev), shutdown (strace -yy tells an AF_UNIX socket from others, and
//! ipcshim's trace names a socket's kind the same way). Processes are paired by their place
//! in the process tree (which child of which parent each is), not by pid order, which wraps
//! and follows the timing of forks.
//! What legitimately differs is normalised: ids (numbered in order of appearance), addresses,
//! pids, pipe inode numbers, and how a stream of bytes was split into reads and writes
//! (consecutive successful reads, or writes, of one fd count as one, compared by total and by
//! their first bytes). A process the kernel run shows killed by a signal is compared only as
//! far as both runs got.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

const SYSV: &[&str] = &[
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
];
const FD_CALLS: &[&str] =
    &["read", "write", "readv", "writev", "close", "dup", "dup2", "dup3", "fcntl", "ioctl"];
/// fcntl commands and ioctl requests ipcshim serves itself (others go to the kernel).
const SERVED_CMDS: &[&str] =
    &["F_DUPFD", "F_DUPFD_CLOEXEC", "F_SETFL", "F_GETPIPE_SZ", "F_SETPIPE_SZ", "FIONREAD", "FIONBIO"];
const STRACE_SET: &str = "semget,semop,semtimedop,semctl,shmget,shmat,shmdt,shmctl,msgget,msgsnd,msgrcv,msgctl,\
                          pipe,pipe2,read,write,readv,writev,close,dup,dup2,dup3,fcntl,ioctl,poll,ppoll,\
                          socketpair,listen,connect,accept,accept4,sendto,recvfrom,sendmsg,recvmsg,shutdown,\
                          clone,clone3,fork,vfork,mknod,mknodat,rt_sigreturn";
/// Divergences reported at most.
const MAX_REPORTED: usize = 10;

/// println! that ignores a closed stdout (`ipcshim diff … | head`).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

const DIFF_USAGE: &str = "usage: ipcshim diff [--keep DIR] -- CMD [ARGS…]";

pub fn main(args: &[String], exe: &Path) -> ExitCode {
    let mut keep: Option<PathBuf> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--keep" if i + 1 < args.len() => {
                keep = Some(PathBuf::from(&args[i + 1]));
                i += 2;
            }
            "--" => {
                i += 1;
                break;
            }
            a if a.starts_with('-') => {
                eprintln!("ipcshim diff: unknown option '{a}'\n{DIFF_USAGE}");
                return ExitCode::from(2);
            }
            _ => break,
        }
    }
    let cmd = &args[i..];
    if cmd.is_empty() {
        eprintln!("ipcshim diff: no command given\n{DIFF_USAGE}");
        return ExitCode::from(2);
    }
    let work = keep
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("ipcshim-diff-{}", std::process::id())));
    if let Err(e) = std::fs::create_dir_all(&work) {
        eprintln!("ipcshim diff: {}: {e}", work.display());
        return ExitCode::from(2);
    }
    let result = compare_runs(cmd, exe, &work);
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    match result {
        Ok(0) => {
            say!("ipcshim diff: no divergence");
            ExitCode::SUCCESS
        }
        Ok(n) => {
            say!("ipcshim diff: {n} divergence(s)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("ipcshim diff: {e}");
            ExitCode::from(2)
        }
    }
}

fn compare_runs(cmd: &[String], exe: &Path, work: &Path) -> Result<usize, String> {
    let klog = work.join("kernel.strace");
    let slog = work.join("ipcshim.trace");
    let out = |name: &str| std::fs::File::create(work.join(name)).map_err(|e| format!("{name}: {e}"));
    // A kernel run: in a fresh IPC namespace when we may make one, so that keys do not collide.
    let kernel_run_of =
        |prog: &str, args: &[String], name: &str| -> Result<std::process::ExitStatus, String> {
            let mut c = Command::new(prog);
            c.args(args)
                .args(cmd)
                .env_remove("LD_PRELOAD")
                .stdin(Stdio::null())
                .stdout(out(&format!("{name}.stdout"))?)
                .stderr(out(&format!("{name}.stderr"))?);
            // SAFETY: unshare is async-signal-safe; failure (no privilege) keeps the namespace.
            unsafe {
                c.pre_exec(|| {
                    libc::unshare(libc::CLONE_NEWIPC);
                    Ok(())
                });
            }
            c.status().map_err(|e| format!("{prog}: {e} (is it installed?)"))
        };
    let strace_args: Vec<String> = [
        // Signals stay on: without them strace does not say which processes a signal killed.
        "-f",
        "-q",
        // Sockets' kinds, ends and addresses: which ones ipcshim serves, and who writes to whom.
        "-yy",
        "-s",
        "32",
        "-e",
        &format!("trace={STRACE_SET}"),
        "-o",
        &klog.to_string_lossy(),
        "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let kst = kernel_run_of("strace", &strace_args, "kernel")?;
    let ns = format!("diff-{}", std::process::id());
    let sst = Command::new(exe)
        .args(["--ns", &ns, "trace", "-o"])
        .arg(&slog)
        .arg("--")
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(out("ipcshim.stdout")?)
        .stderr(out("ipcshim.stderr")?)
        .status()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    if let Ok(p) = shared_state::region::region_path(
        &std::env::var("IPCSHIM_DIR").unwrap_or_else(|_| "/dev/shm".into()),
        shared_state::sys::getuid(),
        &ns,
    ) {
        let _ = std::fs::remove_file(p);
    }
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let shim_run = parse_trace(&String::from_utf8_lossy(&read(&slog)?));
    let same = |a: std::process::ExitStatus, b: std::process::ExitStatus| {
        a.code() == b.code() && a.signal() == b.signal()
    };
    if !same(kst, sst) {
        // ptrace changes some kernel behaviour (an ignored signal interrupts a traced process's
        // blocked call): if the program ends otherwise without strace, strace's run is not the
        // kernel's. Then perf trace, which does not stop the program, is the witness, at the
        // level of each System V call and its result.
        let plain = kernel_run_of("env", &[], "kernel-untraced")?;
        if !same(plain, kst) {
            let plog = work.join("kernel.perf");
            // A larger buffer than perf's default, and another run when perf still says it lost
            // events, or its trace misses the start of the run (seen at load 25: the first
            // process's first calls and a fork, with no LOST line), both on a busy machine: a
            // missing call would read as a divergence.
            let perf_args: Vec<String> =
                ["trace", "-m", "1024", "-e", PERF_SET, "-o", &plog.to_string_lossy(), "--"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
            let mut pst = kernel_run_of("perf", &perf_args, "kernel-perf")?;
            for _ in 0..2 {
                if whole_perf_trace(&String::from_utf8_lossy(&read(&plog)?)) {
                    break;
                }
                pst = kernel_run_of("perf", &perf_args, "kernel-perf")?;
            }
            say!(
                "strace changed how the program ended ({kst} under strace, {plain} without it): \
                 System V calls compared against a perf trace run instead"
            );
            let mut n = 0;
            if !same(pst, sst) {
                say!("exit status differs: kernel {pst}, ipcshim {sst}");
                n += 1;
            }
            let perf_run = parse_perf(&String::from_utf8_lossy(&read(&plog)?));
            return Ok(n + compare_coarse(&perf_run, &shim_run));
        }
    }
    let mut kernel_run = parse_strace(&String::from_utf8_lossy(&read(&klog)?));
    kernel_run.fold_threads();
    let mut n = 0;
    if !same(kst, sst) {
        say!("exit status differs: kernel {kst}, ipcshim {sst}");
        n += 1;
    }
    Ok(n + compare(&kernel_run, &shim_run))
}

/// `perf trace`'s System V calls: ipcshim compares at this level only when strace changed
/// the program.
const PERF_SET: &str = "semget,semop,semtimedop,semctl,shmget,shmat,shmdt,shmctl,msgget,msgsnd,msgrcv,msgctl,clone,clone3,fork,vfork";

/// Whether a `perf trace` log holds the whole run: no events lost, and every process but the
/// first made by a fork it shows.
fn whole_perf_trace(text: &str) -> bool {
    !text.contains("LOST ") && tree(&parse_perf(text)).values().filter(|place| place.len() == 1).count() <= 1
}

/// `perf trace -o` output: `TIME ( DUR ms): COMM/TID name(args) = result`, a call that
/// blocked as `… name(args) ...` and later `… ... [continued]: name()) = result`. perf merges
/// its per-CPU buffers loosely: a process that moved to another CPU can have a call printed
/// after its next one, so calls are put in the order of their start times.
fn parse_perf(text: &str) -> Run {
    let mut calls: Vec<(f64, Call)> = Vec::new();
    let mut pending: HashMap<i32, (f64, Call)> = HashMap::new();
    for line in text.lines() {
        let Some((head, rest)) = line.split_once("): ") else { continue };
        let Some((who, body)) = rest.trim_start().split_once(' ') else { continue };
        let Some(pid) = who.rsplit_once('/').and_then(|(_, t)| t.parse::<i32>().ok()) else { continue };
        let body = body.trim_start();
        if let Some(cont) = body.strip_prefix("... [continued]: ") {
            if let (Some((at, mut c)), Some((_, res))) = (pending.remove(&pid), cont.rsplit_once(" = ")) {
                c.result = res.trim().to_string();
                c.line = line.to_string();
                calls.push((at, c));
            }
            continue;
        }
        let at = head.split_whitespace().next().and_then(|t| t.parse().ok()).unwrap_or(f64::MAX);
        let Some(open) = body.find('(') else { continue };
        let name = body[..open].to_string();
        // perf's arguments are numbers and names: the first `)` closes them.
        let close = body[open..].find(')').map_or(body.len(), |c| open + c);
        let args = body[open + 1..close].to_string();
        let c = Call { pid, name, args, result: String::new(), line: line.to_string() };
        match body.rsplit_once(" = ") {
            Some((_, res)) if !body.trim_end().ends_with("...") => {
                calls.push((at, Call { result: res.trim().to_string(), ..c }));
            }
            _ => {
                pending.insert(pid, (at, c));
            }
        }
    }
    calls.sort_by(|a, b| a.0.total_cmp(&b.0));
    Run { calls: calls.into_iter().map(|(_, c)| c).collect(), ..Run::default() }
}

/// A System V call reduced to its name and outcome (ids and addresses numbered by appearance):
/// what perf trace and ipcshim's trace both show.
fn coarse(c: &Call, names: &mut Names, pids: &HashSet<String>) -> Option<(String, Outcome)> {
    let mut name = c.name.as_str();
    if !SYSV.contains(&name) {
        return None;
    }
    // glibc's semop is semtimedop, and perf does not show the timeout: one name for both.
    if name == "semtimedop" {
        name = "semop";
    }
    let out = match outcome(&c.result) {
        Outcome::Ok(v) => {
            let v = v.split_whitespace().next().unwrap_or("").to_string();
            Outcome::Ok(match name {
                "semget" | "shmget" | "msgget" => names.id(&v),
                "shmat" => "ADDR".into(),
                // GETPID and the like: a pid of the run.
                _ if pids.contains(&v) => "PID".into(),
                _ => v,
            })
        }
        e => e,
    };
    let what = match ctl_cmd(name, &c.args) {
        Some(cmd) => format!("{name}({cmd})"),
        None => name.to_string(),
    };
    Some((what, out))
}

/// The command number of a *ctl call, from perf's `cmd: N` (left out when 0) or from the name
/// strace and ipcshim print.
fn ctl_cmd(name: &str, args: &str) -> Option<i64> {
    let at = match name {
        "semctl" => 2,
        "shmctl" | "msgctl" => 1,
        _ => return None,
    };
    if args.contains(": ") || args.is_empty() {
        let n = args.split("cmd: ").nth(1).map_or("0", |r| r.split(',').next().unwrap_or("0"));
        return n.trim().parse().ok();
    }
    let token = args.split(", ").nth(at)?.trim_start_matches("IPC_64|");
    let named = match (name, token) {
        (_, "IPC_RMID") => 0,
        (_, "IPC_SET") => 1,
        (_, "IPC_STAT") => 2,
        (_, "IPC_INFO") => 3,
        ("semctl", n) => match n {
            "GETPID" => 11,
            "GETVAL" => 12,
            "GETALL" => 13,
            "GETNCNT" => 14,
            "GETZCNT" => 15,
            "SETVAL" => 16,
            "SETALL" => 17,
            "SEM_STAT" => 18,
            "SEM_INFO" => 19,
            "SEM_STAT_ANY" => 20,
            _ => -1,
        },
        ("shmctl", n) => match n {
            "SHM_LOCK" => 11,
            "SHM_UNLOCK" => 12,
            "SHM_STAT" => 13,
            "SHM_INFO" => 14,
            "SHM_STAT_ANY" => 15,
            _ => -1,
        },
        (_, n) => match n {
            "MSG_STAT" => 11,
            "MSG_INFO" => 12,
            "MSG_STAT_ANY" => 13,
            _ => -1,
        },
    };
    if named >= 0 {
        return Some(named);
    }
    let hex = token.split_whitespace().next()?.strip_prefix("0x")?;
    i64::from_str_radix(hex, 16).ok()
}

/// Whether a coarse record is a query a program may repeat until a state arrives.
fn coarse_query(what: &str) -> bool {
    const QUERIES: &[&str] = &[
        "semctl(2)",
        "semctl(11)",
        "semctl(12)",
        "semctl(13)",
        "semctl(14)",
        "semctl(15)",
        "semctl(18)",
        "semctl(20)",
        "shmctl(2)",
        "shmctl(13)",
        "shmctl(15)",
        "msgctl(2)",
        "msgctl(11)",
        "msgctl(13)",
    ];
    QUERIES.contains(&what)
}

/// Compares each process's System V calls by name and outcome.
fn compare_coarse(kernel: &Run, shim: &Run) -> usize {
    type Recs = Vec<((String, Outcome), String)>;
    let by_place = |run: &Run, names: &mut Names| {
        let pids: HashSet<String> = run.calls.iter().map(|c| c.pid.to_string()).collect();
        let tree = tree(run);
        let mut procs: BTreeMap<(Place, i32), Recs> = BTreeMap::new();
        for c in &run.calls {
            if let Some(r) = coarse(c, names, &pids) {
                let recs = procs.entry((tree[&c.pid].clone(), c.pid)).or_default();
                // A run of one query counts as its last (polling loops).
                if let Some(last) = recs.last_mut()
                    && last.0.0 == r.0
                    && coarse_query(&r.0)
                {
                    *last = (r, c.line.clone());
                } else {
                    recs.push((r, c.line.clone()));
                }
            }
        }
        procs.into_iter().map(|((place, pid), recs)| (place, pid, recs)).collect::<Vec<_>>()
    };
    let (k, s) = (by_place(kernel, &mut Names::default()), by_place(shim, &mut Names::default()));
    let mut n = 0;
    for pair in pair_up(&k, &s) {
        let (kr, sr, head) = match pair {
            Paired::Both(k, s) => (&k.2, &s.2, describe(&k.0, k.1, s.1)),
            // A process killed just after its one call returned may have no line in ipcshim's
            // trace (it logs a call after it).
            Paired::Only(KERNEL_RUN, k) if k.2.len() == 1 => continue,
            Paired::Only(run, p) => {
                if n < MAX_REPORTED {
                    say!("{}", only_in(run, p, "with System V calls"));
                }
                n += 1;
                continue;
            }
        };
        let first = kr.iter().zip(sr).position(|(a, b)| a.0 != b.0);
        let diverged = first.or((kr.len() != sr.len()).then_some(kr.len().min(sr.len())));
        if let Some(j) = diverged {
            if n < MAX_REPORTED {
                say!(
                    "{head}, System V call {j}:\n  kernel:  {}\n  ipcshim: {}",
                    kr.get(j).map_or("(none)", |r| r.1.as_str()),
                    sr.get(j).map_or("(none)", |r| r.1.as_str())
                );
            }
            n += 1;
        }
    }
    n
}

/// A process's place in the process tree: its ancestors' and its own birth order among their
/// parent's children (for a first process, among the processes whose parent the run does not
/// show). Neither pid order (which wraps) nor the timing of forks in other processes moves it.
type Place = Vec<u32>;

/// The process `c` made, if it made one (not a thread): strace's clone, clone3, fork and vfork,
/// perf's clone, and the fork() and vfork() lines of ipcshim's trace.
fn child_of(c: &Call) -> Option<i32> {
    if !matches!(c.name.as_str(), "clone" | "clone3" | "fork" | "vfork") || c.args.contains("THREAD") {
        return None;
    }
    c.result.split_whitespace().next()?.parse().ok().filter(|&p: &i32| p > 0)
}

/// Every process of a run (every pid its calls show) and its place. A pid is taken to name one
/// process in a run (the kernel reuses one only after going round the whole pid space).
fn tree(run: &Run) -> HashMap<i32, Place> {
    let mut parent: HashMap<i32, i32> = HashMap::new();
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let mut seen: Vec<i32> = Vec::new();
    for c in &run.calls {
        seen.push(c.pid);
        if let Some(child) = child_of(c)
            && child != c.pid
            && !parent.contains_key(&child)
        {
            parent.insert(child, c.pid);
            children.entry(c.pid).or_default().push(child);
            seen.push(child);
        }
    }
    let mut place: HashMap<i32, Place> = HashMap::new();
    let mut roots = 0;
    // Processes whose parent the run does not show first; then any left (a reused pid could
    // make a loop of parents).
    let orphans = seen.iter().filter(|p| !parent.contains_key(p));
    for &pid in orphans.chain(&seen) {
        if place.contains_key(&pid) {
            continue;
        }
        let mut todo = vec![(pid, vec![roots])];
        roots += 1;
        while let Some((p, at)) = todo.pop() {
            if place.contains_key(&p) {
                continue;
            }
            for (i, &c) in children.get(&p).into_iter().flatten().enumerate() {
                let mut under = at.clone();
                under.push(i as u32);
                todo.push((c, under));
            }
            place.insert(p, at);
        }
    }
    place
}

/// `0.2.1`: the first process's third child's second child.
fn place_name(p: &Place) -> String {
    p.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}

fn describe(place: &Place, kpid: i32, spid: i32) -> String {
    format!("process {} (kernel pid {kpid}, ipcshim pid {spid})", place_name(place))
}

const KERNEL_RUN: &str = "kernel's";
const SHIM_RUN: &str = "ipcshim's";

/// A process of each run at the same place, or one at a place only one run (named) has.
enum Paired<'a, T> {
    Both(&'a (Place, i32, T), &'a (Place, i32, T)),
    Only(&'static str, &'a (Place, i32, T)),
}

fn only_in<T>(run: &str, p: &(Place, i32, T), what: &str) -> String {
    format!("process {} (pid {}) {what} only in the {run} run", place_name(&p.0), p.1)
}

/// Two runs' processes (each list in order of place) matched by place.
fn pair_up<'a, T>(k: &'a [(Place, i32, T)], s: &'a [(Place, i32, T)]) -> Vec<Paired<'a, T>> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    loop {
        match (k.get(i), s.get(j)) {
            (Some(a), Some(b)) if a.0 == b.0 => {
                out.push(Paired::Both(a, b));
                i += 1;
                j += 1;
            }
            (Some(a), b) if b.is_none_or(|b| a.0 < b.0) => {
                out.push(Paired::Only(KERNEL_RUN, a));
                i += 1;
            }
            (_, Some(b)) => {
                out.push(Paired::Only(SHIM_RUN, b));
                j += 1;
            }
            _ => return out,
        }
    }
}

use std::os::unix::process::ExitStatusExt;

/// One call as a trace line shows it.
#[derive(Clone, Debug)]
struct Call {
    pid: i32,
    name: String,
    args: String,
    result: String,
    line: String,
}

/// One run: calls in completion order, and the pids it saw killed by a signal.
#[derive(Default)]
struct Run {
    calls: Vec<Call>,
    killed: HashSet<i32>,
    /// Processes that had more than one thread.
    threaded: HashSet<i32>,
}

impl Run {
    /// A thread of a process with several, killed by a signal, was cut off in its last call,
    /// whatever strace shows for it (sometimes the call's number as its result). `threads`:
    /// thread -> process.
    fn drop_cut_off_calls(&mut self, threads: &HashMap<i32, i32>) {
        let threaded: HashSet<i32> = threads.keys().chain(threads.values()).copied().collect();
        let mut last: HashMap<i32, usize> = HashMap::new();
        for (i, c) in self.calls.iter().enumerate() {
            if self.killed.contains(&c.pid) && threaded.contains(&c.pid) {
                last.insert(c.pid, i);
            }
        }
        let cut: HashSet<usize> = last.into_values().collect();
        let mut i = 0;
        self.calls.retain(|_| {
            i += 1;
            !cut.contains(&(i - 1))
        });
    }

    /// strace names threads by tid: their calls are their process's (ipcshim logs by pid).
    fn fold_threads(&mut self) {
        let mut process: HashMap<i32, i32> = HashMap::new();
        for c in &self.calls {
            if (c.name == "clone" || c.name == "clone3")
                && c.args.contains("CLONE_THREAD")
                && let Ok(tid) = c.result.split_whitespace().next().unwrap_or("").parse::<i32>()
            {
                let owner = *process.get(&c.pid).unwrap_or(&c.pid);
                process.insert(tid, owner);
            }
        }
        self.drop_cut_off_calls(&process);
        for c in &mut self.calls {
            if let Some(&p) = process.get(&c.pid) {
                c.pid = p;
            }
        }
        let killed: HashSet<i32> = self.killed.iter().map(|t| *process.get(t).unwrap_or(t)).collect();
        self.killed = killed;
        self.threaded = process.values().copied().collect();
    }
}

/// `PID name(args) = result[ <dur>]`, with the call complete.
fn split_call(pid: i32, body: &str, line: &str) -> Option<Call> {
    let open = body.find('(')?;
    let name = &body[..open];
    if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
        return None;
    }
    // strace pads short calls with spaces before ` = `.
    let eq = body.rfind(" = ")?;
    let args_end = body[..eq].trim_end();
    let args = args_end.strip_suffix(')')?;
    let mut result = body[eq + 3..].trim().to_string();
    if let Some(t) = result.rfind(" <")
        && result.ends_with('>')
        && result[t + 2..result.len() - 1].bytes().all(|c| c.is_ascii_digit() || c == b'.')
    {
        result.truncate(t);
    }
    Some(Call {
        pid,
        name: name.to_string(),
        args: args[open + 1..].to_string(),
        result,
        line: line.to_string(),
    })
}

fn pid_and_body(line: &str) -> Option<(i32, &str)> {
    let (pid, body) = line.split_once(' ')?;
    Some((pid.parse().ok()?, body.trim_start()))
}

/// `strace -f -o` output, with `<unfinished ...>` / `<... resumed>` pairs joined.
///
/// A call a signal interrupted (`= ? ERESTART…`) is put after the calls its handler made, up
/// to the handler's `rt_sigreturn`: ipcshim logs a call when it returns, which is after the
/// handler ran inside it.
fn parse_strace(text: &str) -> Run {
    let mut run = Run::default();
    let mut pending: HashMap<i32, String> = HashMap::new();
    // Per thread: interrupted calls, each with whether its signal's handler is running.
    let mut held: HashMap<i32, Vec<(Call, bool)>> = HashMap::new();
    for line in text.lines() {
        let Some((pid, body)) = pid_and_body(line) else { continue };
        if body.starts_with("+++") {
            run.calls.extend(held.remove(&pid).unwrap_or_default().into_iter().map(|(c, _)| c));
            if body.strip_prefix("+++ killed by ").is_some_and(|r| !r.is_empty()) {
                run.killed.insert(pid);
            }
            continue;
        }
        if body.starts_with("---") {
            if let Some((_, in_handler)) = held.get_mut(&pid).and_then(|h| h.last_mut()) {
                *in_handler = true;
            }
            continue;
        }
        let full = if let Some(head) = body.strip_suffix(" <unfinished ...>") {
            pending.insert(pid, head.to_string());
            continue;
        } else if let Some(rest) = body.strip_prefix("<... ") {
            let Some(head) = pending.remove(&pid) else { continue };
            let Some(at) = rest.find(" resumed>") else { continue };
            format!("{head}{}", &rest[at + " resumed>".len()..])
        } else {
            body.to_string()
        };
        if let Some(c) = split_call(pid, &full, &format!("{pid} {full}")) {
            // Never returned: the process died in it.
            if c.result.starts_with('?') && !c.result.contains("ERESTART") {
                run.killed.insert(pid);
            }
            let h = held.entry(pid).or_default();
            // No signal came, or its handler returned: the interrupted call goes here.
            while h.last().is_some_and(|(_, in_handler)| !in_handler || c.name == "rt_sigreturn") {
                let Some((interrupted, in_handler)) = h.pop() else { break };
                run.calls.push(interrupted);
                if in_handler {
                    break;
                }
            }
            if c.result.contains("ERESTART") {
                h.push((c, false));
            } else {
                run.calls.push(c);
            }
        }
    }
    let mut left: Vec<_> = held.into_iter().collect();
    left.sort_by_key(|(pid, _)| *pid);
    run.calls.extend(left.into_iter().flat_map(|(_, h)| h.into_iter().map(|(c, _)| c)));
    run
}

/// ipcshim's own trace (one complete line per call).
fn parse_trace(text: &str) -> Run {
    let mut run = Run::default();
    for line in text.lines() {
        if let Some((pid, body)) = pid_and_body(line)
            && let Some(c) = split_call(pid, body, line)
        {
            run.calls.push(c);
        }
    }
    run
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Outcome {
    Ok(String),
    Err(String),
}

/// A call reduced to what must agree between the runs.
#[derive(Clone, Debug)]
struct Rec {
    what: String,
    outcome: Outcome,
    /// Bytes moved, for merged reads and writes.
    bytes: u64,
    data: Vec<u8>,
    line: String,
}

/// The length of the annotation `<…>` that `s` starts with, up to and with its closing `>`:
/// strace -yy nests them (`</dev/null<char 1:3>>`) and a socket's holds `->` and quoted names
/// (`<UNIX-STREAM:[12->13,"/tmp/s"]>`).
fn annotation_len(s: &str) -> usize {
    let b = s.as_bytes();
    let (mut depth, mut square, mut quoted, mut i) = (0, 0, false, 0);
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            _ if quoted => {}
            b'[' => square += 1,
            b']' if square > 0 => square -= 1,
            b'<' if square == 0 => depth += 1,
            b'>' if square == 0 => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// The annotation strace -y puts after an fd: `3<pipe:[12]>` gives `pipe:[12]`.
fn first_fd(args: &str) -> (String, Option<&str>) {
    let num: String = args.chars().take_while(|c| c.is_ascii_digit() || *c == '-').collect();
    let rest = &args[num.len()..];
    let path = rest.starts_with('<').then(|| &rest[1..annotation_len(rest).max(2) - 1]);
    (num, path)
}

/// Drops `<…>` fd annotations and numbers pipe inodes out: `3<pipe:[12]>` becomes `3`.
fn strip_annotations(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut prev_digit = false;
    while let Some(c) = rest.chars().next() {
        if c == '<' && prev_digit {
            rest = &rest[annotation_len(rest)..];
            continue;
        }
        prev_digit = c.is_ascii_digit();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// An AF_UNIX socket as an fd annotation shows it, with its own end and its peer's when the
/// kernel knows them: strace -yy's `UNIX-STREAM:[12->13,"/tmp/s"]`, ipcshim's
/// `UNIX-STREAM:[12]` (no peer). `None` for anything else: TCP and UDP calls are not compared.
fn socket_ends(path: &str) -> Option<(&str, Option<&str>)> {
    let (kind, body) = path.split_once(":[")?;
    if !matches!(kind, "UNIX" | "UNIX-STREAM" | "UNIX-DGRAM" | "UNIX-SEQPACKET") {
        return None;
    }
    let body = body.strip_suffix(']')?;
    // A bound name follows the ends: `12->13,"/tmp/s"` or `12,@"abstract"`.
    let ends = body.split_once(',').map_or(body, |(e, _)| e);
    Some(match ends.split_once("->") {
        Some((own, peer)) => (own, Some(peer)),
        None => (ends, None),
    })
}

/// The index of the `}` closing a struct whose body starts `s`, skipping quoted strings.
fn struct_end(s: &str) -> usize {
    let b = s.as_bytes();
    let (mut i, mut quoted) = (0, false);
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'}' if !quoted => return i,
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// A C string literal as strace prints it, back to bytes.
fn unquote(s: &str) -> Option<Vec<u8>> {
    let s = s.strip_prefix('"')?;
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => return Some(out),
            b'\\' if i + 1 < b.len() => {
                i += 1;
                let c = b[i];
                let simple = match c {
                    b'n' => Some(b'\n'),
                    b't' => Some(b'\t'),
                    b'r' => Some(b'\r'),
                    b'v' => Some(0x0b),
                    b'f' => Some(0x0c),
                    b'\\' | b'"' | b'\'' => Some(c),
                    _ => None,
                };
                if let Some(v) = simple {
                    out.push(v);
                    i += 1;
                } else if c == b'x' {
                    let hex = s.get(i + 1..i + 3)?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 3;
                } else {
                    let mut v = 0u32;
                    let mut n = 0;
                    while n < 3 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                        v = v * 8 + (b[i] - b'0') as u32;
                        i += 1;
                        n += 1;
                    }
                    out.push(v as u8);
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    None
}

/// Names ids, keys, addresses and pids by order of appearance, so that runs compare.
#[derive(Default)]
struct Names {
    ids: HashMap<String, String>,
    keys: HashMap<String, String>,
}

impl Names {
    fn id(&mut self, raw: &str) -> String {
        let n = self.ids.len();
        self.ids.entry(raw.to_string()).or_insert_with(|| format!("ID{n}")).clone()
    }

    /// A key other than IPC_PRIVATE may be chosen at random in each run (`ipcmk`): it is
    /// paired by first use, as ids are.
    fn key(&mut self, raw: &str) -> String {
        if matches!(raw, "IPC_PRIVATE" | "0" | "0x0") {
            return raw.to_string();
        }
        let n = self.keys.len();
        self.keys.entry(raw.to_string()).or_insert_with(|| format!("KEY{n}")).clone()
    }
}

/// Replaces hex numbers of 8 digits or more (addresses) by ADDR.
fn hide_addresses(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("0x") {
        out.push_str(&rest[..at]);
        let digits = rest[at + 2..].bytes().take_while(|c| c.is_ascii_hexdigit()).count();
        if digits >= 8 {
            out.push_str("ADDR");
        } else {
            out.push_str(&rest[at..at + 2 + digits]);
        }
        rest = &rest[at + 2 + digits..];
    }
    out.push_str(rest);
    out
}

fn outcome(result: &str) -> Outcome {
    let mut words = result.split_whitespace();
    let v = words.next().unwrap_or("?");
    // Interrupted: restarted (the call shows again) or EINTR once a handler ran.
    if v == "?"
        && let Some(e) = words.next()
        && e.starts_with("ERESTART")
    {
        return Outcome::Err("ERESTART".into());
    }
    if v == "-1"
        && let Some(e) = words.next()
        && e.starts_with('E')
    {
        return Outcome::Err(e.to_string());
    }
    // ppoll's "left {…}" is how much of the timeout remained: timing.
    let kept = match result.split_once(", left {") {
        Some((head, _)) => format!("{head})"),
        None => result.to_string(),
    };
    Outcome::Ok(strip_annotations(&kept))
}

/// Reduces one call to a record, or `None` when it is not one the runs are compared on.
/// What the records of one run are read against.
struct Ctx<'a> {
    /// Paths of FIFOs (from ipcshim's trace, which logs only its own objects).
    fifos: &'a HashSet<String>,
    /// Pipes (by path) and socket ends (by the end's name, see [`socket_ends`]) written by more
    /// than one process, and those read by more than one: what a read returns first depends on
    /// timing.
    shared: HashSet<String>,
    shared_read: HashSet<String>,
    /// Whether this is the kernel's run (strace names a socket's peer; ipcshim's trace does not).
    kernel: bool,
}

impl Ctx<'_> {
    /// Whether a read of `path` may return bytes in an order that timing decides, so that only
    /// their count is compared: a pipe or a peer written by several processes, or (in the
    /// kernel's run) a socket whose peer strace does not name (a named datagram socket, whose
    /// senders may be many). ipcshim's trace names no peers: the kernel's run decides.
    fn timing_ordered(&self, path: &str) -> bool {
        match socket_ends(path) {
            Some(_) if !self.kernel => false,
            Some((_, None)) => true,
            Some((own, Some(peer))) => self.shared.contains(peer) || self.shared_read.contains(own),
            None => self.shared.contains(path) || self.shared_read.contains(path),
        }
    }

    /// Whether `path` is a socket end several processes receive from: which of them gets what,
    /// and how often one finds nothing, is timing; their receives are not compared.
    fn received_by_many(&self, path: &str) -> bool {
        socket_ends(path).is_some_and(|(own, _)| self.shared_read.contains(own))
    }
}

/// Socket calls compared on the sockets ipcshim serves (read, write, readv and writev of them
/// too; close and the rest are not: ipcshim does not log a listener's).
const SOCKET_CALLS: &[&str] = &[
    "socketpair",
    "listen",
    "connect",
    "accept",
    "accept4",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "shutdown",
];

/// Whether a byte-moving call: consecutive successful ones on one fd join.
fn moves_bytes(what: &str) -> bool {
    ["read", "write", "send", "recv"].iter().any(|p| what.starts_with(p))
}

fn record(c: &Call, ctx: &Ctx, names: &mut Names) -> Option<Rec> {
    let fifos = ctx.fifos;
    // Never returned: the process died in it.
    if c.result.starts_with('?') && !c.result.contains("ERESTART") || c.result.contains("(errno ") {
        return None;
    }
    let mut name = c.name.as_str();
    let mut args = c.args.clone();
    // glibc's semop is semtimedop with no timeout.
    if name == "semtimedop" && args.ends_with(", NULL") {
        name = "semop";
        args.truncate(args.len() - ", NULL".len());
    }
    let ipc_path = |p: Option<&str>| p.is_some_and(|p| p.starts_with("pipe:[") || fifos.contains(p));
    let socket = |p: Option<&str>| p.and_then(socket_ends).is_some();
    let mut out = outcome(&c.result);
    let mut data = Vec::new();
    let mut bytes = 0;
    let what = if SYSV.contains(&name) {
        let (first, rest) = args.split_once(", ").unwrap_or((&args, ""));
        let first = match name {
            "semget" | "shmget" | "msgget" => names.key(first),
            "shmdt" => "ADDR".to_string(),
            _ => names.id(first),
        };
        // A message as {mtype, "text"}: compared as data, as far as both runs show it (strace
        // shows only the address when it cannot read the whole buffer it expects).
        let (msgbuf, rest) = match rest.strip_prefix('{').filter(|_| name == "msgsnd" || name == "msgrcv") {
            Some(body) => {
                let end = struct_end(body);
                (body.as_bytes()[..end].to_vec(), format!("BUF{}", &body[(end + 1).min(body.len())..]))
            }
            None => (Vec::new(), rest.to_string()),
        };
        data = msgbuf;
        // strace decodes the buffers of IPC_STAT and friends; ipcshim's trace shows the pointer.
        let mut rest = hide_addresses(&rest).replace("ADDR", "BUF");
        if let Some(brace) = rest.find(", {").or_else(|| rest.starts_with('{').then_some(0)) {
            rest.truncate(brace);
            rest.push_str(", BUF");
        }
        if let Outcome::Ok(v) = &out {
            let v = v.split_whitespace().next().unwrap_or("").to_string();
            out = Outcome::Ok(match name {
                "semget" | "shmget" | "msgget" => names.id(&v),
                "shmat" => "ADDR".into(),
                "semctl" if rest.contains("GETPID") => "PID".into(),
                _ if rest.contains("SEM_STAT") || rest.contains("SHM_STAT") || rest.contains("MSG_STAT") => {
                    names.id(&v)
                }
                _ => v,
            });
        }
        format!("{name}({first}, {rest})")
    } else if name == "pipe" || name == "pipe2" {
        let flags = args.rsplit_once("], ").map_or("", |(_, f)| f);
        format!("{name}({flags})")
    } else if FD_CALLS.contains(&name) {
        let (fd, path) = first_fd(&args);
        let socket_data = socket(path) && matches!(name, "read" | "write" | "readv" | "writev");
        if !ipc_path(path) && !socket_data {
            return None;
        }
        if name.starts_with("read") && path.is_some_and(|p| ctx.received_by_many(p)) {
            return None;
        }
        let cmd = args.split(", ").nth(1).unwrap_or("");
        if (name == "fcntl" || name == "ioctl") && !SERVED_CMDS.contains(&cmd) {
            return None;
        }
        match name {
            "read" | "write" => {
                if let Outcome::Ok(v) = &out {
                    bytes = v.parse().unwrap_or(0);
                    out = Outcome::Ok(String::new());
                    let buf = args.split_once(", ").map_or("", |(_, b)| b);
                    if !(name == "read" && path.is_some_and(|p| ctx.timing_ordered(p))) {
                        data = unquote(buf).unwrap_or_default();
                    }
                }
                format!("{name}({fd})")
            }
            "readv" | "writev" => {
                if let Outcome::Ok(v) = &out {
                    bytes = v.parse().unwrap_or(0);
                    out = Outcome::Ok(String::new());
                }
                format!("{name}({fd})")
            }
            "fcntl" | "ioctl" => format!("{name}({fd}, {cmd})"),
            "dup2" | "dup3" => {
                format!("{name}({fd}, {})", strip_annotations(args.split(", ").nth(1).unwrap_or("")))
            }
            _ => format!("{name}({fd})"),
        }
    } else if SOCKET_CALLS.contains(&name) {
        socket_record(name, &args, &mut out, &mut bytes, &mut data, ctx)?
    } else if name == "poll" || name == "ppoll" {
        // Both annotate each fd: a poll over sockets alone is not compared.
        if !args.split("fd=").skip(1).any(|p| ipc_path(first_fd(p).1)) {
            return None;
        }
        let nfds = args.split_once("], ").map_or("", |(_, r)| r.split(", ").next().unwrap_or(""));
        format!("{name}({nfds})")
    } else {
        return None;
    };
    Some(Rec { what, outcome: out, bytes, data, line: c.line.clone() })
}

/// A socket call's record (see [`record`]): what it was asked, with its data and byte count
/// for the calls that move bytes. Addresses and ports are left out: the kernel picks
/// ephemeral ports, and a receive's source address is the sender's.
fn socket_record(
    name: &str,
    args: &str,
    out: &mut Outcome,
    bytes: &mut u64,
    data: &mut Vec<u8>,
    ctx: &Ctx,
) -> Option<String> {
    // strace names no flag in `0x40000000 /* SOCK_??? */`; ipcshim prints the number alone.
    let args = match args.split_once(" /* ") {
        Some((head, tail)) => format!("{head}{}", tail.split_once(" */").map_or("", |(_, t)| t)),
        None => args.to_string(),
    };
    let args = args.as_str();
    if name == "socketpair" {
        // Domain, type and protocol; then the fds made, or the array's address.
        let head: Vec<&str> = args.splitn(4, ", ").take(3).collect();
        return args.starts_with("AF_UNIX").then(|| format!("socketpair({})", head.join(", ")));
    }
    let (fd, path) = first_fd(args);
    let path = path.filter(|p| socket_ends(p).is_some())?;
    if name.starts_with("recv") && ctx.received_by_many(path) {
        return None;
    }
    let rest = args.split_once(", ").map_or("", |(_, r)| r);
    let last = args.rsplit(", ").next().unwrap_or("");
    let moved = |out: &mut Outcome, bytes: &mut u64| {
        if let Outcome::Ok(v) = out {
            *bytes = v.parse().unwrap_or(0);
            *out = Outcome::Ok(String::new());
        }
    };
    Some(match name {
        "listen" => format!("listen({fd}, {rest})"),
        "shutdown" => format!("shutdown({fd}, {rest})"),
        "connect" => format!("connect({fd})"),
        "accept" => format!("accept({fd})"),
        "accept4" => format!("accept4({fd}, {last})"),
        "sendto" | "recvfrom" => {
            // fd, buf, len, flags, addr, addrlen.
            let mut parts = rest.splitn(4, ", ");
            let (buf, _, flags) = (parts.next()?, parts.next(), parts.next().unwrap_or(""));
            if matches!(out, Outcome::Ok(_)) && !(name == "recvfrom" && ctx.timing_ordered(path)) {
                *data = unquote(buf).unwrap_or_default();
            }
            moved(out, bytes);
            format!("{name}({fd}, {flags})")
        }
        _ => {
            // sendmsg, recvmsg: the first buffer of the message, and the call's flags.
            if matches!(out, Outcome::Ok(_))
                && !(name == "recvmsg" && ctx.timing_ordered(path))
                && let Some(at) = args.find("iov_base=")
            {
                *data = unquote(&args[at + "iov_base=".len()..]).unwrap_or_default();
            }
            moved(out, bytes);
            format!("{name}({fd}, {last})")
        }
    })
}

/// Calls a program repeats until the state it polls for arrives: how often depends on timing,
/// so a run of them counts as its last.
fn is_query(what: &str) -> bool {
    const QUERIES: &[&str] =
        &["GETVAL", "GETNCNT", "GETZCNT", "GETPID", "GETALL", "IPC_STAT", "SEM_STAT", "SHM_STAT", "FIONREAD"];
    what.starts_with("poll") || what.starts_with("ppoll") || QUERIES.iter().any(|q| what.contains(q))
}

/// Joins consecutive successful reads (or writes) of one fd: how a byte stream is split into
/// calls depends on scheduling. Repeated identical failures count once.
///
/// A call the kernel interrupted shows as ERESTART*: the EINTR the program saw, or a restart
/// (the call follows again, the kernel's own or the program's retry). With `shim`, the other
/// run's records already merged, it stands for an EINTR where ipcshim's run has one at its
/// place, and is left out otherwise, so that the calls around it join as ipcshim's do.
fn merge(recs: Vec<Rec>, shim: Option<&[Rec]>) -> Vec<Rec> {
    let restart = Outcome::Err("ERESTART".into());
    let eintr = Outcome::Err("EINTR".into());
    let mut out: Vec<Rec> = Vec::new();
    for r in recs {
        if r.outcome == restart
            && let Some(s) = shim
            && !s.get(out.len()).is_some_and(|s| s.what == r.what && s.outcome == eintr)
        {
            continue;
        }
        // A query repeated, or a call retried after EAGAIN (a non-blocking poll for data or
        // a connection): how often depends on timing, the last one counts.
        if let Some(last) = out.last_mut()
            && last.what == r.what
            && (is_query(&r.what) || last.outcome == Outcome::Err("EAGAIN".into()))
        {
            *last = r;
            continue;
        }
        if let Some(last) = out.last_mut()
            && last.what == r.what
        {
            let stream = moves_bytes(&r.what);
            if stream
                && last.outcome == Outcome::Ok(String::new())
                && r.outcome == last.outcome
                && r.bytes > 0
            {
                last.bytes += r.bytes;
                if last.data.len() < 32 {
                    last.data.extend_from_slice(&r.data);
                }
                continue;
            }
            if matches!(r.outcome, Outcome::Err(_)) && r.outcome == last.outcome {
                continue;
            }
        }
        out.push(r);
    }
    out
}

fn same(a: &Rec, b: &Rec) -> bool {
    let n = a.data.len().min(b.data.len()).min(32);
    a.what == b.what && a.outcome == b.outcome && a.bytes == b.bytes && a.data[..n] == b.data[..n]
}

/// Each process's records, not merged yet, in order of place (see [`tree`]); processes with
/// none are left out.
fn by_process(
    run: &Run,
    fifos: &HashSet<String>,
    kernel: bool,
    names: &mut Names,
) -> Vec<(Place, i32, Vec<Rec>)> {
    let tree = tree(run);
    let mut procs: BTreeMap<(Place, i32), Vec<&Call>> = BTreeMap::new();
    let mut writers: HashMap<String, HashSet<i32>> = HashMap::new();
    let mut readers: HashMap<String, HashSet<i32>> = HashMap::new();
    for c in &run.calls {
        procs.entry((tree[&c.pid].clone(), c.pid)).or_default().push(c);
        let who = if c.name.starts_with("write") || c.name.starts_with("send") {
            &mut writers
        } else if c.name.starts_with("read") || c.name.starts_with("recv") {
            &mut readers
        } else {
            continue;
        };
        if let Some(p) = first_fd(&c.args).1 {
            let end = socket_ends(p).map_or(p, |(own, _)| own);
            who.entry(end.to_string()).or_default().insert(c.pid);
        }
    }
    let several = |m: HashMap<String, HashSet<i32>>| {
        m.into_iter().filter(|(_, w)| w.len() > 1).map(|(p, _)| p).collect()
    };
    let ctx = Ctx { fifos, shared: several(writers), shared_read: several(readers), kernel };
    procs
        .into_iter()
        .map(|((place, pid), calls)| {
            (place, pid, calls.iter().filter_map(|c| record(c, &ctx, names)).collect())
        })
        .filter(|(_, _, recs): &(Place, i32, Vec<Rec>)| !recs.is_empty())
        .collect()
}

/// Whether ipcshim's run of a process shows the signs of several threads where the kernel's
/// pairs with it: its calls start in another order (ipcshim's trace names processes, not
/// threads).
fn shim_threaded(srecs: &[Rec], krecs: &[Rec]) -> bool {
    srecs.first().map(|r| &r.what) != krecs.first().map(|r| &r.what)
}

/// Prints the divergences; returns how many.
fn compare(kernel: &Run, shim: &Run) -> usize {
    // FIFOs by path: in ipcshim's trace, any fd named by a path (it logs pipes, FIFOs and
    // sockets only); in strace's, those the program made (mknod with S_IFIFO) or ipcshim saw.
    let shim_fifos: HashSet<String> = shim
        .calls
        .iter()
        .filter_map(|c| first_fd(&c.args).1.map(str::to_string))
        .filter(|p| p.starts_with('/'))
        .collect();
    let mut kernel_fifos = shim_fifos.clone();
    for c in kernel.calls.iter().filter(|c| c.name.starts_with("mknod") && c.args.contains("S_IFIFO")) {
        if let Some(q) = c.args.find('"')
            && let Some(path) = unquote(&c.args[q..])
        {
            kernel_fifos.insert(String::from_utf8_lossy(&path).into_owned());
        }
    }
    let k = by_process(kernel, &kernel_fifos, true, &mut Names::default());
    let s = by_process(shim, &shim_fifos, false, &mut Names::default());
    let mut n = 0;
    let mut report = |msg: String| {
        if n < MAX_REPORTED {
            say!("{msg}");
        }
        n += 1;
    };
    // The kernel run's process at each place, for the killed ones.
    let kernel_at: HashMap<Place, i32> = tree(kernel).into_iter().map(|(pid, place)| (place, pid)).collect();
    for pair in pair_up(&k, &s) {
        let (place, kpid, krecs, spid, srecs) = match pair {
            Paired::Both((place, kpid, krecs), (_, spid, srecs)) => (place, kpid, krecs, spid, srecs),
            Paired::Only(run, p) => {
                // A process killed before one run logged any of its IPC calls (ipcshim logs a
                // call after it; strace's last call of a killed thread is dropped): compared
                // as far as both runs got, that is not at all.
                if kernel_at.get(&p.0).is_some_and(|pid| kernel.killed.contains(pid)) {
                    continue;
                }
                report(only_in(run, p, "with IPC calls"));
                continue;
            }
        };
        let head = describe(place, *kpid, *spid);
        let srecs = merge(srecs.clone(), None);
        let krecs = merge(krecs.clone(), Some(&srecs));
        let killed = kernel.killed.contains(kpid);
        // Killed midway with several threads (in either run): how their calls interleaved
        // is anyone's guess. Each kind of call (and outcome) ipcshim's run made must be one
        // the kernel's made too (ipcshim logs a call after it, so a kill can take the line of
        // the last one, and the kernel run may be the one cut shorter).
        let kinds = |recs: &[Rec]| -> HashSet<(String, Outcome)> {
            recs.iter().map(|r| (r.what.clone(), r.outcome.clone())).collect()
        };
        if killed && (kernel.threaded.contains(kpid) || shim_threaded(&srecs, &krecs)) {
            let (kk, sk) = (kinds(&krecs), kinds(&srecs));
            let odd = sk.iter().find(|x| !kk.contains(*x) && krecs.len() >= srecs.len());
            if let Some((what, out)) = odd {
                report(format!("{head}: {what} = {out:?} in one run only"));
            }
            continue;
        }
        let restart = Outcome::Err("ERESTART".into());
        let eintr = Outcome::Err("EINTR".into());
        let mut diverged = false;
        let n = krecs.len().min(srecs.len());
        for (j, (a, b)) in krecs.iter().zip(&srecs).enumerate() {
            let a_out = if a.outcome == restart { &eintr } else { &a.outcome };
            // A process that a signal killed (SIGPIPE from a reader that left, say) moved as
            // many bytes as it had time for.
            // Its last call may have been cut off anyhow (strace can show a garbage result).
            let cut_short =
                killed && a.what == b.what && (j + 1 == n || (*a_out == b.outcome && a.bytes > 0));
            let restarted = a.outcome == restart && a.what == b.what && b.outcome == eintr;
            if !same(a, b) && !cut_short && !restarted {
                report(format!("{head}, IPC call {j}:\n  kernel:  {}\n  ipcshim: {}", a.line, b.line));
                diverged = true;
                break;
            }
        }
        if !diverged && krecs.len() != srecs.len() && !killed {
            let n = krecs.len().min(srecs.len());
            let (first, who) =
                if krecs.len() > srecs.len() { (&krecs[n], "kernel") } else { (&srecs[n], "ipcshim") };
            report(format!(
                "{head}: {} IPC calls on the kernel, {} on ipcshim; the first only on {who}:\n  {}",
                krecs.len(),
                srecs.len(),
                first.line
            ));
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// strace -yy's socket annotations hold `->` and quoted names, and nest inside file ones.
    #[test]
    fn socket_annotations_parse() {
        let (fd, path) = first_fd("7<UNIX-STREAM:[12->13,\"/tmp/a>b\"]>, \"x\", 1");
        assert_eq!((fd.as_str(), path), ("7", Some("UNIX-STREAM:[12->13,\"/tmp/a>b\"]")));
        assert_eq!(socket_ends(path.unwrap()), Some(("12", Some("13"))));
        assert_eq!(socket_ends("UNIX-DGRAM:[12,@\"n\"]"), Some(("12", None)));
        assert_eq!(socket_ends("TCP:[127.0.0.1:80->127.0.0.1:5000]"), None);
        assert_eq!(strip_annotations("5<UNIX-STREAM:[1->2]> 6</dev/null<char 1:3>>"), "5 6");
    }

    /// Socket calls on AF_UNIX sockets are compared, data included; TCP calls are not.
    #[test]
    fn unix_socket_calls_are_compared() {
        let kernel = |data: &str| {
            parse_strace(&format!(
                "10 socketpair(AF_UNIX, SOCK_SEQPACKET|SOCK_CLOEXEC, 0, [3<UNIX-SEQPACKET:[1->2]>, \
                 4<UNIX-SEQPACKET:[2->1]>]) = 0\n\
                 10 sendto(3<UNIX-SEQPACKET:[1->2]>, \"{data}\", 2, MSG_DONTWAIT, NULL, 0) = 2\n\
                 10 recvfrom(4<UNIX-SEQPACKET:[2->1]>, \"{data}\", 9, 0, NULL, NULL) = 2\n\
                 10 sendto(5<TCP:[127.0.0.1:1->127.0.0.1:2]>, \"t\", 1, 0, NULL, 0) = 1\n"
            ))
        };
        let shim = parse_trace(
            "20 socketpair(AF_UNIX, SOCK_SEQPACKET|SOCK_CLOEXEC, 0, [3, 4]) = 0 <0.000001>\n\
             20 sendto(3<UNIX-SEQPACKET:[8]>, \"ab\", 2, MSG_DONTWAIT, NULL, 0) = 2 <0.000001>\n\
             20 recvfrom(4<UNIX-SEQPACKET:[9]>, \"ab\", 9, 0, NULL, NULL) = 2 <0.000001>\n",
        );
        assert_eq!(compare(&kernel("ab"), &shim), 0);
        assert_eq!(compare(&kernel("ac"), &shim), 1);
    }

    /// A receive a signal interrupted: strace shows it before the handler's calls, ipcshim
    /// (which logs a call as it returns) after them.
    #[test]
    fn an_interrupted_call_follows_its_handler() {
        let kernel = parse_strace(
            "10 recvfrom(4<UNIX-STREAM:[2->1]>,  <unfinished ...>\n\
             10 <... recvfrom resumed>0x7ffe, 64, 0, NULL, NULL) = ? ERESTARTSYS (To be restarted if SA_RESTART is set)\n\
             10 --- SIGUSR1 {si_signo=SIGUSR1} ---\n\
             10 write(6<pipe:[7]>, \"n\", 1) = 1\n\
             10 rt_sigreturn({mask=[]}) = -1 EINTR (Interrupted system call)\n",
        );
        let shim = parse_trace(
            "20 write(6<pipe:[9]>, \"n\", 1) = 1 <0.000001>\n\
             20 recvfrom(4<UNIX-STREAM:[3]>, 0x7ffe, 64, 0, NULL, NULL) = -1 EINTR (Interrupted system call) <0.02>\n",
        );
        assert_eq!(compare(&kernel, &shim), 0);
    }

    /// Two processes receiving from one socket: who gets what is timing, not compared.
    #[test]
    fn receives_racing_on_one_socket_are_not_compared() {
        let run = |a: &str, b: &str| {
            format!(
                "10 clone(child_stack=NULL, flags=SIGCHLD) = 11\n\
                 10 recvfrom(4<UNIX-STREAM:[2->1]>, {a}, 9, MSG_DONTWAIT, NULL, NULL) = 1\n\
                 11 recvfrom(4<UNIX-STREAM:[2->1]>, {b}, 9, MSG_DONTWAIT, NULL, NULL) = 1\n"
            )
        };
        let shim = parse_trace(&run("\"x\"", "\"y\"").replace("[2->1]", "[5]"));
        assert_eq!(compare(&parse_strace(&run("\"y\"", "\"x\"")), &shim), 0);
    }

    /// A process that moved to another CPU: perf printed its IPC_RMID after the call that
    /// followed it (and a call that blocked, by its start time).
    #[test]
    fn perf_calls_in_start_time_order() {
        let text = "\
   669.100 ( 0.013 ms): t/7 semctl(cmd: 14)                                   = 2
   583.640 (         ): t/8 semtimedop(tsops: 0x7ffe, nsops: 1)             ...
   583.640 (105.752 ms): t/8  ... [continued]: semtimedop())                  = -1 EIDRM (Identifier removed)
   689.883 ( 0.013 ms): t/7 semctl(cmd: 14)                                   = -1 EINVAL (Invalid argument)
   689.318 ( 0.053 ms): t/7 semctl()                                          = 0
";
        let run = parse_perf(text);
        let seen: Vec<(i32, &str, &str)> =
            run.calls.iter().map(|c| (c.pid, c.args.as_str(), c.result.as_str())).collect();
        assert_eq!(
            seen,
            [
                (8, "tsops: 0x7ffe, nsops: 1", "-1 EIDRM (Identifier removed)"),
                (7, "cmd: 14", "2"),
                (7, "", "0"),
                (7, "cmd: 14", "-1 EINVAL (Invalid argument)"),
            ]
        );
    }

    /// A perf trace that missed the start of the run (seen at load 25: the first process's
    /// semget and fork gone, its child's first line a `[continued]` clone, no LOST line) is
    /// not whole, and is made again; one that shows every fork is.
    #[test]
    fn a_perf_trace_missing_the_start_is_not_whole() {
        let whole = "\
     0.000 ( 0.031 ms): t/10 semget(nsems: 3, semflg: 384)                      = 0
     0.045 ( 3.417 ms): t/10 clone(clone_flags: 0x11, child_tidptr: 0x7f47)     = 11 (t)
         ? (         ): t/11  ... [continued]: clone())                         =
     4.080 (         ): t/11 semtimedop(tsops: 0x7fff, nsops: 1)                ...
     5.097 ( 0.014 ms): t/10 semctl(cmd: 14)                                    = 1
     4.080 (23.550 ms): t/11  ... [continued]: semtimedop())                    = 0
";
        assert!(whole_perf_trace(whole));
        let late: String = whole.lines().skip(2).map(|l| format!("{l}\n")).collect();
        assert!(!whole_perf_trace(&late));
        assert!(!whole_perf_trace(&format!("{whole}LOST 3 events!\n")));
    }

    /// A child that a signal killed just after its one call shows it only in strace's run;
    /// one that exited must show its calls in both.
    #[test]
    fn a_process_killed_before_ipcshim_logged_a_call_is_no_divergence() {
        let kernel = |how: &str| {
            format!(
                "10 clone(child_stack=NULL, flags=SIGCHLD) = 11\n\
                 11 write(4<pipe:[7]>, \"s\", 1) = 1\n\
                 11 {how}\n\
                 10 read(3<pipe:[7]>, \"s\", 1) = 1\n"
            )
        };
        let shim = parse_trace("20 fork() = 21 <0.000000>\n20 read(3<pipe:[8]>, \"s\", 1) = 1 <0.000010>\n");
        assert_eq!(compare(&parse_strace(&kernel("+++ killed by SIGKILL +++")), &shim), 0);
        assert_eq!(compare(&parse_strace(&kernel("+++ exited with 0 +++")), &shim), 1);
    }
}
