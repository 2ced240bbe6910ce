//! Differential runner: every `c-tests/*.c` program runs once against the kernel and once
//! against the shim, each in a fresh IPC namespace; exit status and stdout must match exactly.
//! The shim run is under a seccomp filter that makes every System V IPC syscall fail with
//! EHWPOISON, so a call the shim did not serve cannot be answered by the kernel unnoticed.
//!
//! A program may carry `// sysctl: NAME=VALUE [NAME=VALUE...]` lines: both runs write VALUE to
//! `/proc/sys/kernel/NAME` inside their fresh IPC namespace before exec. The shim run is traced
//! and fails if data went through a kernel pipe or FIFO, unless the program says
//! `kernel-pipes: allowed` (it tests the pipes the shim hands back to the kernel), or through a
//! kernel AF_UNIX socket, unless it says `kernel-sockets: allowed` (the shim does not serve its
//! sockets yet, or it tests a socket handed back to the kernel), or through a kernel TCP socket,
//! unless it says `kernel-tcp: allowed` (it tests connections the kernel serves or was given),
//! or through a kernel UDP socket, unless it says `kernel-udp: allowed`.

use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Wall-clock limit for one run of one program.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// x86-64 syscall numbers of System V IPC: shmget, shmat, shmctl, semget, semop, semctl, shmdt,
/// msgget, msgsnd, msgrcv, msgctl, semtimedop.
pub const SYSV_IPC_SYSCALLS: [u32; 12] = [29, 30, 31, 64, 65, 66, 67, 68, 69, 70, 71, 220];

/// `AUDIT_ARCH_X86_64` from linux/audit.h (EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE).
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// Syscall numbers at or above this are the x32 ABI, which also reports AUDIT_ARCH_X86_64.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// Offsets of `nr` and `arch` in `struct seccomp_data`.
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;

/// How a program is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// New IPC namespace, no preload: the reference.
    Kernel,
    /// New IPC namespace, the shim preloaded, SysV syscalls blocked by seccomp.
    Shim,
    /// New IPC namespace, SysV syscalls blocked, no shim: proves the filter works.
    FilterOnly,
}

/// What one run produced.
#[derive(Debug)]
pub struct Run {
    /// `exit N`, `signal N` or `timeout`.
    pub status: String,
    pub stdout: String,
    pub stderr: String,
    /// Shim runs: the data-carrying syscalls strace saw on kernel pipes and FIFOs. Any at all
    /// means data travelled through a kernel pipe instead of the shim's.
    pub kernel_pipe_io: Vec<String>,
    /// Shim runs: the data-carrying syscalls strace saw on kernel AF_UNIX sockets.
    pub kernel_socket_io: Vec<String>,
    /// Shim runs: the data-carrying syscalls strace saw on kernel TCP sockets (IPv4 or IPv6).
    pub kernel_tcp_io: Vec<String>,
    /// Shim runs: the data-carrying syscalls strace saw on kernel UDP sockets (IPv4 or IPv6).
    pub kernel_udp_io: Vec<String>,
}

/// Syscalls that move data through an fd; the shim run is traced for these.
const DATA_SYSCALLS: &str = "read,write,readv,writev,preadv,pwritev,preadv2,pwritev2,splice,tee,vmsplice,\
                             sendfile,sendto,recvfrom,sendmsg,recvmsg,sendmmsg,recvmmsg";

/// For one strace line of a data syscall that moved something: the annotations (`-yy`'s text
/// between `<` and `>`) of the fds among its top-level arguments. An fd inside a
/// structure (the `SCM_RIGHTS` payload of `sendmsg`/`recvmsg`, `cmsg_data=[5<pipe:[7]>]`) or
/// inside a data string is not an argument of the call and is not returned.
fn moved_through(line: &str) -> Option<Vec<&str>> {
    let (call, args) = line.split_once('(')?;
    if !DATA_SYSCALLS.split(',').any(|c| c == call) {
        return None;
    }
    // Failed (-1), empty (0) and unfinished (?) calls carry no data: the shim leaves wrong-end
    // and bad-fd calls to the kernel's placeholder, which gives the kernel's errno.
    let moved = line.rsplit_once(" = ").and_then(|(_, r)| r.split_whitespace().next()?.parse::<i64>().ok());
    if moved.is_none_or(|n| n <= 0) {
        return None;
    }
    let b = args.as_bytes();
    let mut fds = Vec::new();
    let (mut i, mut depth, mut arg_start) = (0, 0usize, true);
    while i < b.len() {
        match b[i] {
            b'"' => {
                // A string: skip to its closing quote (strace escapes quotes inside as \").
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b')' if depth == 0 => break,
            b',' if depth == 0 => arg_start = true,
            b' ' => {}
            c if arg_start && depth == 0 && c.is_ascii_digit() => {
                arg_start = false;
                let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                if b.get(i + digits) == Some(&b'<') {
                    // The annotation ends at the first '>' outside its own brackets and quotes
                    // (`UNIX-STREAM:[7->8,"/x"]` has a '>' inside).
                    let start = i + digits + 1;
                    let (mut j, mut inner, mut quoted) = (start, 0usize, false);
                    while j < b.len() && (quoted || inner > 0 || b[j] != b'>') {
                        match b[j] {
                            b'\\' if quoted => j += 1,
                            b'"' => quoted = !quoted,
                            b'[' if !quoted => inner += 1,
                            b']' if !quoted => inner = inner.saturating_sub(1),
                            _ => {}
                        }
                        j += 1;
                    }
                    fds.push(&args[start..j.min(b.len())]);
                    i = j;
                }
            }
            _ => arg_start = false,
        }
        i += 1;
    }
    Some(fds)
}

/// The strace lines (from `strace -yy`) where a data syscall moved bytes (returned more than
/// 0) through a kernel pipe or a FIFO (the tests make their FIFOs in directories named
/// `fifo-*`).
pub fn kernel_pipe_io(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            moved_through(l).is_some_and(|fds| {
                fds.iter().any(|a| a.starts_with("pipe:[") || (a.starts_with('/') && a.contains("/fifo-")))
            })
        })
        .map(str::to_string)
        .collect()
}

/// The strace lines (from `strace -yy`) where a data syscall moved bytes (returned more than 0,
/// or for sendmmsg/recvmmsg at least one message) through a kernel AF_UNIX socket. `-yy` names
/// a socket by the protocol the kernel gives it (the `system.sockprotoname` of its fd):
/// `UNIX-STREAM:[ino->peer]` for SOCK_STREAM and `UNIX:[ino...]` for SOCK_DGRAM and
/// SOCK_SEQPACKET, where any other family shows as `UDP:[`, `TCP:[`, `NETLINK:[` or the bare
/// `socket:[`. Only the traced processes' own calls are in the logs: the netlink queries strace
/// makes for `-yy` are its own, and a socket fd that a call only carries (SCM_RIGHTS) does not
/// count.
pub fn kernel_socket_io(log: &str) -> Vec<String> {
    socket_io(log, |proto| proto == "UNIX" || proto.starts_with("UNIX-"))
}

/// As [`kernel_socket_io`], through a kernel TCP socket (`TCP:[` or `TCPv6:[` under `-yy`).
pub fn kernel_tcp_io(log: &str) -> Vec<String> {
    socket_io(log, |proto| proto == "TCP" || proto == "TCPv6")
}

/// As [`kernel_socket_io`], through a kernel UDP socket (`UDP:[` or `UDPv6:[` under `-yy`).
pub fn kernel_udp_io(log: &str) -> Vec<String> {
    socket_io(log, |proto| proto == "UDP" || proto == "UDPv6")
}

/// The data lines moving bytes through a socket whose protocol `-yy` names as `proto` says.
fn socket_io(log: &str, proto: impl Fn(&str) -> bool) -> Vec<String> {
    log.lines()
        .filter(|l| !is_scm_token(l))
        .filter(|l| {
            moved_through(l)
                .is_some_and(|fds| fds.iter().any(|a| a.split_once(":[").is_some_and(|(p, _)| proto(p))))
        })
        .map(str::to_string)
        .collect()
}

/// A token of the shim's ancillary data (shim/src/family/scm.rs): a `sendmsg`/`recvmsg` of exactly
/// 16 bytes starting `ipcshim:`, which carries the fds or credentials the kernel must pass,
/// and no user data.
fn is_scm_token(line: &str) -> bool {
    (line.starts_with("sendmsg(") || line.starts_with("recvmsg("))
        && line.contains("msg_iov=[{iov_base=\"ipcshim:")
        && line.contains("iov_len=16}], msg_iovlen=1,")
        && line.rsplit_once(" = ").is_some_and(|(_, r)| r.trim() == "16")
}

/// Every per-process log `strace -ff -o PREFIX` wrote, concatenated.
fn read_traces(prefix: &Path) -> String {
    let (Some(dir), Some(stem)) = (prefix.parent(), prefix.file_name()) else { return String::new() };
    let stem = stem.to_string_lossy();
    let mut all = String::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&*stem) {
            all += &read_lossy(&entry.path());
        }
    }
    all
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> io::Result<TempDir> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = crate::state_base().join(format!("ipcshim-{tag}-{}-{n}", std::process::id()));
        fs::create_dir(&path)?;
        // Test programs drop to uid 65534 in children, which must still reach the shim's files.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o777))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The directory holding the C test programs.
pub fn c_tests_dir() -> PathBuf {
    crate::workspace_root().join("c-tests")
}

/// `target/c-tests`, where the programs are compiled to.
pub fn out_dir() -> PathBuf {
    crate::release_dir().parent().expect("release dir has a parent").join("c-tests")
}

/// Every `c-tests/*.c`, sorted.
pub fn programs() -> io::Result<Vec<PathBuf>> {
    let mut progs = Vec::new();
    for entry in fs::read_dir(c_tests_dir())? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "c") {
            progs.push(path);
        }
    }
    progs.sort();
    Ok(progs)
}

/// One `/proc/sys/kernel` setting from a `// sysctl:` directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sysctl {
    pub name: String,
    pub value: String,
}

/// The settings of every `// sysctl: NAME=VALUE ...` line in `text`, in order.
pub fn parse_sysctls(text: &str) -> Result<Vec<Sysctl>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix("// sysctl:") else { continue };
        for item in rest.split_whitespace() {
            let (name, value) =
                item.split_once('=').ok_or_else(|| format!("bad sysctl directive {item:?}"))?;
            let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !name_ok || value.is_empty() {
                return Err(format!("bad sysctl directive {item:?}"));
            }
            out.push(Sysctl { name: name.into(), value: value.into() });
        }
    }
    Ok(out)
}

/// The `// sysctl:` settings of the program `src`.
pub fn sysctls_of(src: &Path) -> Result<Vec<Sysctl>, String> {
    let text = fs::read_to_string(src).map_err(|e| format!("read {}: {e}", src.display()))?;
    parse_sysctls(&text).map_err(|e| format!("{}: {e}", src.display()))
}

fn stem(src: &Path) -> String {
    src.file_stem().expect("source has a file name").to_string_lossy().into_owned()
}

/// Compile `src` into `target/c-tests/NAME`; returns the executable.
pub fn compile(src: &Path) -> Result<PathBuf, String> {
    let dir = out_dir();
    fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let exe = dir.join(stem(src));
    // Build under a private name and rename, so concurrent test binaries never run a half-written file.
    let tmp = dir.join(format!(".{}.{}", stem(src), std::process::id()));
    let out = Command::new("cc")
        .args(["-O1", "-Wall", "-Werror", "-D_GNU_SOURCE", "-o"])
        .arg(&tmp)
        .arg(src)
        .output()
        .map_err(|e| format!("cc: {e}"))?;
    if !out.status.success() {
        return Err(format!("cc {} failed:\n{}", src.display(), String::from_utf8_lossy(&out.stderr)));
    }
    fs::rename(&tmp, &exe).map_err(|e| format!("rename to {}: {e}", exe.display()))?;
    Ok(exe)
}

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt: 0, jf: 0, k }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt, jf, k }
}

/// The seccomp BPF program: wrong architecture kills, x32 and SysV IPC syscalls fail with
/// EHWPOISON, everything else is allowed.
pub fn seccomp_program() -> Vec<libc::sock_filter> {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    let n = SYSV_IPC_SYSCALLS.len();
    // Layout: 0 load arch, 1 check arch, 2 load nr, 3 x32 check, 4.. one jeq per syscall,
    // then ALLOW, DENY, KILL.
    let allow = 4 + n;
    let deny = allow + 1;
    let kill = deny + 1;
    // A jump offset is relative to the instruction after the jump.
    let to = |from: usize, target: usize| (target - from - 1) as u8;
    let mut prog = vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_ARCH),
        jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, to(1, kill)),
        stmt(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_NR),
        jump(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, to(3, deny), 0),
    ];
    for (i, nr) in SYSV_IPC_SYSCALLS.iter().enumerate() {
        prog.push(jump(BPF_JMP | BPF_JEQ | BPF_K, *nr, to(4 + i, deny), 0));
    }
    prog.push(stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW));
    prog.push(stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ERRNO | libc::EHWPOISON as u32));
    prog.push(stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_KILL_PROCESS));
    prog
}

/// Run `exe` in a fresh IPC namespace and temp cwd, in `mode`, with [`TIMEOUT`].
pub fn run(exe: &Path, mode: Mode) -> Result<Run, String> {
    run_with(exe, mode, &[])
}

/// [`run`], with `sysctls` written in the new IPC namespace before exec.
pub fn run_with(exe: &Path, mode: Mode, sysctls: &[Sysctl]) -> Result<Run, String> {
    let err = |what: &str, e: io::Error| format!("{what}: {e}");
    // Built here: pre_exec must not allocate.
    let mut writes = Vec::new();
    for s in sysctls {
        let path = format!("/proc/sys/kernel/{}", s.name);
        if !Path::new(&path).exists() {
            return Err(format!("sysctl {}: {path} does not exist", s.name));
        }
        let path = CString::new(path).map_err(|e| format!("sysctl {}: {e}", s.name))?;
        writes.push((path, s.value.clone().into_bytes()));
    }
    let files = TempDir::new("out").map_err(|e| err("temp dir", e))?;
    let cwd = TempDir::new("cwd").map_err(|e| err("temp dir", e))?;
    let shim_dir = TempDir::new("state").map_err(|e| err("temp dir", e))?;
    let out_path = files.0.join("stdout");
    let err_path = files.0.join("stderr");
    let stdout = File::create(&out_path).map_err(|e| err("stdout file", e))?;
    let stderr = File::create(&err_path).map_err(|e| err("stderr file", e))?;

    let trace_path = files.0.join("strace");
    // The shim run is traced; strace itself must not load the shim, so the preload goes in
    // through its -E.
    let mut cmd = if mode == Mode::Shim {
        let name = exe.file_name().expect("exe has a name");
        let mut c = Command::new("strace");
        // -yy: sockets are shown with their protocol (UNIX-STREAM:[ino->peer]), not as socket:[ino].
        c.args(["-ff", "-qq", "-yy", "-e", "signal=none", "-e"])
            .arg(format!("trace={DATA_SYSCALLS}"))
            .arg("-o")
            .arg(&trace_path)
            .arg("-E")
            .arg(format!("LD_PRELOAD={}", crate::shim_lib().display()))
            .arg("-E")
            .arg(format!("IPCSHIM_DIR={}", shim_dir.0.display()))
            .arg("-E")
            .arg(format!("IPCSHIM_NS={}", name.to_string_lossy()))
            .arg("--")
            .arg(exe);
        c
    } else {
        Command::new(exe)
    };
    cmd.current_dir(&cwd.0).stdin(Stdio::null()).stdout(stdout).stderr(stderr).env_remove("LD_PRELOAD");
    let filter = if mode == Mode::Kernel { None } else { Some(seccomp_program()) };
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // system calls (unshare, open, write, close, prctl, seccomp) on data built before the fork;
    // it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWIPC) != 0 {
                return Err(io::Error::last_os_error());
            }
            for (path, value) in &writes {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let n = libc::write(fd, value.as_ptr().cast(), value.len());
                let write_err = io::Error::last_os_error();
                libc::close(fd);
                if n != value.len() as isize {
                    return Err(if n < 0 { write_err } else { io::Error::from_raw_os_error(libc::EIO) });
                }
            }
            if let Some(prog) = &filter {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                let fprog = libc::sock_fprog {
                    len: prog.len() as u16,
                    filter: prog.as_ptr() as *mut libc::sock_filter,
                };
                let flags: libc::c_uint = 0;
                if libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    flags,
                    &fprog as *const libc::sock_fprog,
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }

    let status = crate::run_in_group(&mut cmd, TIMEOUT).map_err(|e| format!("run {}: {e}", exe.display()))?;
    let status = match status {
        Some(st) => st,
        None => {
            let traces = read_traces(&trace_path);
            return Ok(Run {
                status: "timeout".into(),
                stdout: read_lossy(&out_path),
                stderr: read_lossy(&err_path),
                kernel_pipe_io: kernel_pipe_io(&traces),
                kernel_socket_io: kernel_socket_io(&traces),
                kernel_tcp_io: kernel_tcp_io(&traces),
                kernel_udp_io: kernel_udp_io(&traces),
            });
        }
    };
    let status = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => format!("{status:?}"),
    };
    let traces = read_traces(&trace_path);
    Ok(Run {
        status,
        stdout: read_lossy(&out_path),
        stderr: read_lossy(&err_path),
        kernel_pipe_io: kernel_pipe_io(&traces),
        kernel_socket_io: kernel_socket_io(&traces),
        kernel_tcp_io: kernel_tcp_io(&traces),
        kernel_udp_io: kernel_udp_io(&traces),
    })
}

fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned()
}

/// Number of cases in a program's output: its `case ` lines.
pub fn count_cases(stdout: &str) -> usize {
    stdout.lines().filter(|l| l.starts_with("case ")).count()
}

/// The case containing line `idx` of `out`.
fn case_at(out: &str, idx: usize) -> String {
    out.lines()
        .take(idx + 1)
        .filter_map(|l| l.strip_prefix("case "))
        .last()
        .unwrap_or("(before the first case)")
        .to_string()
}

/// A unified-ish diff: a little common context, then the differing tails.
fn diff_text(kernel: &str, shim: &str) -> (usize, String) {
    const CONTEXT: usize = 3;
    const MAX_TAIL: usize = 40;
    let k: Vec<&str> = kernel.lines().collect();
    let s: Vec<&str> = shim.lines().collect();
    let first = k.iter().zip(&s).take_while(|(a, b)| a == b).count();
    let mut text = String::from("--- kernel\n+++ shim\n");
    for line in &k[first.saturating_sub(CONTEXT)..first] {
        text += &format!(" {line}\n");
    }
    for (sign, lines) in [('-', &k), ('+', &s)] {
        let tail = &lines[first.min(lines.len())..];
        for line in tail.iter().take(MAX_TAIL) {
            text += &format!("{sign}{line}\n");
        }
        if tail.len() > MAX_TAIL {
            text += &format!("{sign}... {} more lines\n", tail.len() - MAX_TAIL);
        }
    }
    (first, text)
}

/// Compile and run one program both ways. Ok(number of cases) when the shim run matches the
/// kernel run; otherwise a report naming the program and the first differing case.
pub fn check(src: &Path) -> Result<usize, String> {
    let name = stem(src);
    let sysctls = sysctls_of(src)?;
    let exe = compile(src)?;
    let kernel = run_with(&exe, Mode::Kernel, &sysctls)?;
    if kernel.status != "exit 0" {
        return Err(format!(
            "{name}: the kernel run itself failed ({}); the test is broken\nstdout:\n{}\nstderr:\n{}",
            kernel.status, kernel.stdout, kernel.stderr
        ));
    }
    let shim = run_with(&exe, Mode::Shim, &sysctls)?;
    let mut problems = Vec::new();
    if shim.stdout.contains("EHWPOISON") {
        problems.push("a SysV IPC syscall reached the kernel (EHWPOISON in the shim run)".into());
    }
    let text = fs::read_to_string(src).map_err(|e| format!("read {}: {e}", src.display()))?;
    let allowed = |what: &str| text.lines().any(|l| l.contains(&format!("kernel-{what}: allowed")));
    if let (Some(first), false) = (shim.kernel_pipe_io.first(), allowed("pipes")) {
        problems.push(format!(
            "{} data syscalls went through kernel pipes or FIFOs in the shim run, first: {first}",
            shim.kernel_pipe_io.len()
        ));
    }
    if let (Some(first), false) = (shim.kernel_socket_io.first(), allowed("sockets")) {
        problems.push(format!(
            "{} data syscalls went through kernel AF_UNIX sockets in the shim run, first: {first}",
            shim.kernel_socket_io.len()
        ));
    }
    if let (Some(first), false) = (shim.kernel_tcp_io.first(), allowed("tcp")) {
        problems.push(format!(
            "{} data syscalls went through kernel TCP sockets in the shim run, first: {first}",
            shim.kernel_tcp_io.len()
        ));
    }
    if let (Some(first), false) = (shim.kernel_udp_io.first(), allowed("udp")) {
        problems.push(format!(
            "{} data syscalls went through kernel UDP sockets in the shim run, first: {first}",
            shim.kernel_udp_io.len()
        ));
    }
    if shim.status != kernel.status {
        problems.push(format!("status: kernel {}, shim {}", kernel.status, shim.status));
    }
    if problems.is_empty() && shim.stdout == kernel.stdout {
        return Ok(count_cases(&kernel.stdout));
    }
    let (first, diff) = diff_text(&kernel.stdout, &shim.stdout);
    let case = if shim.stdout == kernel.stdout {
        "(stdout identical)".to_string()
    } else {
        case_at(&kernel.stdout, first)
    };
    Err(format!(
        "{name}: first differing case: {case}\n{}\n{diff}shim stderr:\n{}",
        problems.join("\n"),
        shim.stderr
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_pipe_io_lines() {
        let log = "write(3<pipe:[123]>, \"x\", 1) = 1\n\
                   write(1</dev/shm/out/stdout>, \"ok\\n\", 3) = 3\n\
                   read(4</dev/shm/fifo-ab/f>, \"y\", 1) = 1\n\
                   read(4</dev/shm/fifo-ab/f>, \"\", 1) = 0\n\
                   read(5<pipe:[124]>, 0x7ffd, 1) = -1 EBADF (Bad file descriptor)\n\
                   readlink(\"/proc/self/fd/3\", \"pipe:[123]\", 64) = 10\n";
        let got = kernel_pipe_io(log);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].contains("write(3<pipe:["));
        assert!(got[1].contains("fifo-ab"));
    }

    #[test]
    fn kernel_pipe_io_ignores_fds_a_message_carries() {
        // The pipe travels in SCM_RIGHTS over a socket: the call's data went through the socket.
        let log = "sendmsg(3<UNIX-STREAM:[10->11]>, {msg_name=NULL, msg_namelen=0, \
                   msg_iov=[{iov_base=\"d\", iov_len=1}], msg_iovlen=1, msg_control=[{cmsg_len=20, \
                   cmsg_level=SOL_SOCKET, cmsg_type=SCM_RIGHTS, cmsg_data=[5<pipe:[12]>]}], \
                   msg_controllen=24, msg_flags=0}, 0) = 1\n\
                   write(4<socket:[9]>, \"6<pipe:[12]>, fake\", 17) = 17\n\
                   splice(5<pipe:[12]>, NULL, 7</tmp/x/out>, NULL, 4, 0) = 4\n\
                   write(7</tmp/fifo-zz/f>, \"q\", 1) = 1\n";
        let got = kernel_pipe_io(log);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("splice(5<pipe:"), "{got:?}");
        assert!(got[1].contains("/fifo-zz/"), "{got:?}");
    }

    #[test]
    fn kernel_socket_io_lines() {
        let log = "write(3<UNIX-STREAM:[30666->30667]>, \"hi\", 2) = 2\n\
                   read(12<UNIX-STREAM:[30674->30673,\"/tmp/a>b\"]>, \"ab\", 4) = 2\n\
                   sendto(5<UNIX:[30668->30669]>, \"x\", 1, 0, NULL, 0) = 1\n\
                   recvfrom(6<UNIX:[30669,@\"00d10\"]>, \"\", 4, 0, NULL, NULL) = 0\n\
                   recvmsg(8<UNIX:[30671->30670]>, {msg_namelen=0}, 0) = -1 EAGAIN (Resource temporarily unavailable)\n\
                   sendmmsg(9<UNIX:[1->2]>, [{msg_hdr={msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base=\"m1\", iov_len=2}], msg_iovlen=1, msg_controllen=0, msg_flags=0}, msg_len=2}], 3, 0) = 3\n\
                   read(4<UNIX-STREAM:[1->2]>, 0x7ffd, 4) = ? ERESTARTSYS (To be restarted if SA_RESTART is set)\n\
                   sendto(13<UDP:[30675]>, \"z\", 1, 0, {sa_family=AF_INET, sin_port=htons(9)}, 16) = 1\n\
                   write(14<socket:[30680]>, \"w\", 1) = 1\n\
                   sendmsg(15<NETLINK:[30690]>, {msg_name={sa_family=AF_NETLINK}, msg_namelen=12}, 0) = 20\n\
                   write(1</tmp/out/stdout>, \"3<UNIX:[1]> is text\\n\", 20) = 20\n\
                   write(6<pipe:[124]>, \"p\", 1) = 1\n\
                   recvmsg(7<pipe:[125]>, 0x1, 0) = -1 ENOTSOCK (Socket operation on non-socket)\n\
                   getsockopt(3<UNIX-STREAM:[30666->30667]>, SOL_SOCKET, SO_TYPE, [1], [4]) = 0\n\
                   sendmsg(3<UNIX-STREAM:[1->2]>, {msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base=\"ipcshim:\\1\\0\\0\\0\\0\\0\\0\\0\", iov_len=16}], msg_iovlen=1, msg_control=[{cmsg_len=20, cmsg_level=SOL_SOCKET, cmsg_type=SCM_RIGHTS, cmsg_data=[5<pipe:[7]>]}], msg_controllen=24, msg_flags=0}, MSG_NOSIGNAL) = 16\n\
                   recvmsg(4<UNIX-STREAM:[2->1]>, {msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base=\"ipcshim:\\1\\0\\0\\0\\0\\0\\0\\0\", iov_len=16}], msg_iovlen=1, msg_controllen=0, msg_flags=MSG_CTRUNC}, MSG_DONTWAIT) = 16\n\
                   sendmsg(3<UNIX-STREAM:[1->2]>, {msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base=\"ipcshim:data\", iov_len=12}], msg_iovlen=1, msg_controllen=0, msg_flags=0}, 0) = 12\n";
        let got = kernel_socket_io(log);
        assert_eq!(got.len(), 5, "{got:?}");
        assert!(got[0].starts_with("write(3<UNIX-STREAM:"), "{got:?}");
        assert!(got[1].starts_with("read(12<UNIX-STREAM:"), "{got:?}");
        assert!(got[2].starts_with("sendto(5<UNIX:"), "{got:?}");
        assert!(got[3].starts_with("sendmmsg(9<UNIX:"), "{got:?}");
        assert!(got[4].contains("ipcshim:data"), "{got:?}");
        assert_eq!(kernel_pipe_io(log).len(), 1, "{:?}", kernel_pipe_io(log));
        assert!(kernel_tcp_io(log).is_empty(), "{:?}", kernel_tcp_io(log));
    }

    #[test]
    fn kernel_tcp_io_lines() {
        let log = "write(3<TCP:[127.0.0.1:5000->127.0.0.1:41000]>, \"hi\", 2) = 2\n\
                   recvfrom(4<TCPv6:[[::1]:5000->[::1]:41002]>, \"ab\", 4, 0, NULL, NULL) = 2\n\
                   read(5<TCP:[127.0.0.1:5000->127.0.0.1:41004]>, \"\", 4) = 0\n\
                   sendto(6<TCP:[7]>, \"x\", 1, MSG_NOSIGNAL, NULL, 0) = -1 EPIPE (Broken pipe)\n\
                   write(7<UNIX-STREAM:[1->2]>, \"u\", 1) = 1\n\
                   sendto(8<UDP:[30675]>, \"z\", 1, 0, {sa_family=AF_INET, sin_port=htons(9)}, 16) = 1\n";
        let got = kernel_tcp_io(log);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("write(3<TCP:"), "{got:?}");
        assert!(got[1].starts_with("recvfrom(4<TCPv6:"), "{got:?}");
        let udp = kernel_udp_io(log);
        assert_eq!(udp.len(), 1, "{udp:?}");
        assert!(udp[0].starts_with("sendto(8<UDP:"), "{udp:?}");
    }

    #[test]
    fn sysctl_directives() {
        let src = "/* x */\n// sysctl: shmmax=8192 shm_rmid_forced=1\nint a; // sysctl: no\n";
        let got = parse_sysctls(src).expect("parse");
        let want = |n: &str, v: &str| Sysctl { name: n.into(), value: v.into() };
        assert_eq!(got, vec![want("shmmax", "8192"), want("shm_rmid_forced", "1")]);
        assert!(parse_sysctls("// sysctl: ../x=1").is_err());
        assert!(parse_sysctls("// sysctl: shmmax").is_err());
        assert!(parse_sysctls("// sysctl: shmmax=").is_err());
    }
}
