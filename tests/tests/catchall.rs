//! The syscall catch-all (Syscall User Dispatch) runs real programs unchanged: each command's
//! stdout and exit status under the shim equal those of the same command without it, and the
//! namespace's `catchall_traps` counter proves that their syscalls, also from threads, fork and
//! vfork children and exec'd grandchildren, went through the shim's SIGSYS handler.

use ipcshim_tests::{cli_bin, shim_lib, state_base};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Longest any one command may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A test's own IPCSHIM_DIR (also holding its compiled helpers) and namespace; removed on drop.
struct Scratch {
    dir: PathBuf,
    ns: String,
}

impl Scratch {
    fn new(tag: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = state_base().join(format!("ipcshim-catchall-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).expect("create scratch dir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod scratch dir");
        Scratch { dir, ns: format!("catchall-{tag}") }
    }

    /// Compiles `tests/catchall/NAME.c` into this scratch dir.
    fn helper(&self, name: &str) -> PathBuf {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("catchall").join(format!("{name}.c"));
        let exe = self.dir.join(name);
        let out = Command::new("cc")
            .args(["-O1", "-Wall", "-Werror", "-D_GNU_SOURCE", "-pthread", "-fexceptions", "-o"])
            .arg(&exe)
            .arg(&src)
            .output()
            .expect("run cc");
        assert!(out.status.success(), "cc {}:\n{}", src.display(), String::from_utf8_lossy(&out.stderr));
        exe
    }

    /// A counter of `ipcshim status`'s procs line for this namespace.
    fn counter(&self, name: &str) -> u64 {
        let out = Command::new(cli_bin())
            .args(["--ns", &self.ns, "status"])
            .env("IPCSHIM_DIR", &self.dir)
            .env_remove("LD_PRELOAD")
            .output()
            .expect("run ipcshim status");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "status failed: {text}{}", String::from_utf8_lossy(&out.stderr));
        let field = text.split_whitespace().find_map(|w| w.strip_prefix(name)?.strip_prefix('='));
        field.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no {name} in {text}"))
    }

    /// Syscalls trapped by the catch-all.
    fn traps(&self) -> u64 {
        self.counter("catchall_traps")
    }

    /// Syscalls made through call sites the catch-all rewrote.
    fn patched(&self) -> u64 {
        self.counter("patched_calls")
    }

    /// Syscalls that reached the catch-all, trapped or through a rewritten site.
    fn seen(&self) -> u64 {
        self.traps() + self.patched()
    }

    /// `argv` with the shim preloaded in this namespace, plus `env`.
    fn shimmed(&self, argv: &[&str], env: &[(&str, &str)]) -> (String, String, String) {
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..])
            .env("LD_PRELOAD", shim_lib())
            .env("IPCSHIM_DIR", &self.dir)
            .env("IPCSHIM_NS", &self.ns)
            .env_remove("IPCSHIM_CATCHALL")
            .env_remove("IPCSHIM_PATCH")
            .env_remove("IPCSHIM_DISABLE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd)
    }

    /// Runs `argv` without the shim, then with it (plus `env`); asserts the same stdout and
    /// exit status, and returns the stdout.
    fn same(&self, argv: &[&str], env: &[(&str, &str)]) -> String {
        let kernel = run(Command::new(argv[0]).args(&argv[1..]).env_remove("LD_PRELOAD"));
        let shim = self.shimmed(argv, env);
        assert_eq!(kernel.0, shim.0, "{argv:?}: status differs (shim stderr: {})", shim.2);
        assert_eq!(kernel.1, shim.1, "{argv:?}: stdout differs (shim stderr: {})", shim.2);
        shim.1
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// (`exit N` / `signal N`, stdout, stderr) of `cmd`, killed after [`TIMEOUT`].
fn run(cmd: &mut Command) -> (String, String, String) {
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} timed out");
        }
        thread::sleep(Duration::from_millis(5));
    };
    let status = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (_, Some(s)) => format!("signal {s}"),
        _ => unreachable!("a child either exits or is killed"),
    };
    (status, out.join().expect("stdout reader"), err.join().expect("stderr reader"))
}

#[test]
fn bash_pipeline() {
    let s = Scratch::new("bash");
    assert_eq!(s.same(&["bash", "-c", "echo hi | cat"], &[]), "hi\n");
    assert!(s.traps() > 0);
}

#[test]
fn dash_pipeline_and_command_substitution() {
    let s = Scratch::new("dash");
    let out = s.same(&["dash", "-c", "echo a b c | tr a-z A-Z | cat; x=$(echo sub); echo \"$x\""], &[]);
    assert_eq!(out, "A B C\nsub\n");
    assert!(s.traps() > 0);
}

#[test]
fn python_subprocess_and_thread_pool() {
    let s = Scratch::new("python");
    let code = "import subprocess, concurrent.futures as f\n\
                print(subprocess.run(['echo', 'x'], capture_output=True).stdout)\n\
                run = lambda i: len(subprocess.run(['cat', '/etc/os-release'], capture_output=True).stdout)\n\
                with f.ThreadPoolExecutor(4) as e: print(len(set(e.map(run, range(8)))))\n";
    assert_eq!(s.same(&["python3", "-c", code], &[]), "b'x\\n'\n1\n");
    assert!(s.traps() > 0);
}

#[test]
fn popen_system_posix_spawn_vfork() {
    let s = Scratch::new("spawn");
    let exe = s.helper("spawn");
    let out = s.same(&[exe.to_str().unwrap()], &[]);
    assert!(out.contains("from-vfork\nvfork child 5\n"), "{out}");
    assert!(s.traps() > 0);
}

#[test]
fn vfork_child_is_armed() {
    let s = Scratch::new("vforkwork");
    let exe = s.helper("spawn");
    s.same(&[exe.to_str().unwrap(), "vforkwork", "20000"], &[]);
    let seen = s.seen();
    assert!(seen >= 20000, "the vfork child's syscalls did not reach the catch-all: {seen}");
}

/// posix_spawn's child queries the disposition of every signal (rt_sigaction with no new
/// action) and resets them: the query site is rewritten in the vfork child, so a spawn no
/// longer pays a trap per signal for the queries (about 128 traps per spawn before).
#[test]
fn posix_spawn_queries_go_through_a_rewritten_site() {
    let s = Scratch::new("spawnloop");
    let exe = s.helper("spawn");
    let out = s.same(&[exe.to_str().unwrap(), "spawnloop", "100"], &[]);
    assert_eq!(out, "100 posix_spawn, 0 failed\n");
    // Per spawn: the resets (64), the exec and a few others still trap.
    let traps = s.traps();
    assert!(traps < 100 * 80, "{traps} traps for 100 spawns");
    assert!(s.patched() >= 100 * 60, "calls through rewritten sites: {}", s.patched());
}

/// The envp a vfork child's exec gets is built in the memory it shares with its parent, and
/// unmapped by the parent afterwards.
#[test]
fn vfork_exec_with_rebuilt_environment_leaks_nothing() {
    let s = Scratch::new("vforkexec");
    let exe = s.helper("spawn");
    let out = s.same(&[exe.to_str().unwrap(), "vforkexec", "200"], &[]);
    assert_eq!(out, "200 vfork+exec, 0 failed, grew by more than 64 KiB: 0\n");
}

#[test]
fn threads_are_armed() {
    let s = Scratch::new("threads");
    let exe = s.helper("threads");
    s.same(&[exe.to_str().unwrap(), "threads", "4", "5000"], &[]);
    let seen = s.seen();
    assert!(seen >= 20000, "the threads' syscalls did not reach the catch-all: {seen}");
}

#[test]
fn fork_in_a_thread_is_armed() {
    let s = Scratch::new("forkthread");
    let exe = s.helper("threads");
    s.same(&[exe.to_str().unwrap(), "forkthread", "20000"], &[]);
    let seen = s.seen();
    assert!(seen >= 20000, "the fork child's syscalls did not reach the catch-all: {seen}");
}

/// `env -i` drops LD_PRELOAD and our variables: the shim puts them back, so the grandchild
/// still traps, into this namespace.
#[test]
fn exec_with_scrubbed_environment_keeps_the_shim() {
    let s = Scratch::new("envi");
    let exe = s.helper("threads");
    let script = format!("env -i {} work 20000", exe.display());
    assert_eq!(s.same(&["bash", "-c", &script], &[]), "work done\n");
    let seen = s.seen();
    assert!(seen >= 20000, "the exec'd grandchild's syscalls did not reach the catch-all here: {seen}");

    // What the grandchild got: our library first in a LD_PRELOAD it set, our variables added,
    // a value it chose kept, and the namespace's open region file (descriptors, device, inode),
    // with the fds of ours that may be shim objects surviving the exec (its census).
    let (_, out, _) = s.shimmed(&["bash", "-c", "env -i LD_PRELOAD=libm.so.6 IPCSHIM_CATCHALL=1 env"], &[]);
    let lib = shim_lib();
    let mut env: Vec<&str> = out.lines().collect();
    env.sort();
    let uid = fs::metadata("/proc/self").expect("stat /proc/self").uid();
    let meta = fs::metadata(s.dir.join(format!("ipcshim-{uid}-{}", s.ns))).expect("stat the region file");
    let region = env.iter().find_map(|v| v.strip_prefix("IPCSHIM_REGION_FD=")).expect("IPCSHIM_REGION_FD");
    let fields: Vec<&str> = region.split(',').collect();
    assert_eq!(fields.len(), 5, "IPCSHIM_REGION_FD={region}");
    let ids: Vec<u64> = fields[2..4].iter().map(|f| f.parse().expect("a number")).collect();
    assert_eq!(ids, [meta.dev(), meta.ino()], "IPCSHIM_REGION_FD={region}");
    let census = fields[4];
    assert!(
        census == "-" || census.is_empty() || census.split('.').all(|f| f.parse::<u32>().is_ok()),
        "IPCSHIM_REGION_FD={region}"
    );
    let want = [
        "IPCSHIM_CATCHALL=1".to_string(),
        format!("IPCSHIM_DIR={}", s.dir.display()),
        format!("IPCSHIM_NS={}", s.ns),
        format!("IPCSHIM_REGION_FD={region}"),
        format!("LD_PRELOAD={}:libm.so.6", lib.display()),
    ];
    assert_eq!(env, want.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn sa_restart_restarts_a_blocking_read_and_its_absence_gives_eintr() {
    let s = Scratch::new("restart");
    let exe = s.helper("signals");
    let out = s.same(&[exe.to_str().unwrap(), "restart"], &[]);
    assert_eq!(out, "read returned 4, handler ran 1 time(s)\n");
    let out = s.same(&[exe.to_str().unwrap(), "norestart"], &[]);
    assert_eq!(out, "read returned -1 errno Interrupted system call, handler ran 1 time(s)\n");
    assert!(s.traps() > 0);
}

#[test]
fn blocking_every_signal_keeps_working() {
    let s = Scratch::new("mask");
    let exe = s.helper("signals");
    let out = s.same(&[exe.to_str().unwrap(), "mask"], &[]);
    assert!(out.contains("after unblock: handler ran 1\n"), "{out}");
    assert!(s.traps() > 0);
}

#[test]
fn segv_handler_and_default_segv() {
    let s = Scratch::new("segv");
    let exe = s.helper("signals");
    let out = s.same(&[exe.to_str().unwrap(), "segv-handler"], &[]);
    assert!(out.ends_with("recovered 1\n"), "{out}");
    let out = s.same(&[exe.to_str().unwrap(), "segv-default"], &[]);
    assert_eq!(out, "faulting\n");
    assert!(s.traps() > 0);
}

#[test]
fn sigaction_reports_what_the_application_set() {
    let s = Scratch::new("sigaction");
    let exe = s.helper("signals");
    let out = s.same(&[exe.to_str().unwrap(), "sigaction"], &[]);
    assert!(out.contains("SIGSYS default 1\nSIGSYS set 0\nSIGSYS ignored 1\n"), "{out}");
    assert!(out.ends_with("SIGSYS handler ran 2\n"), "{out}");
    assert!(s.traps() > 0);
}

/// A handler installed by a library whose constructor ran before the shim's is found and
/// wrapped at start-up (SIGSYS out of its mask), also when other libraries that set no
/// disposition (libm), which the shim does not ask about, are loaded too.
#[test]
fn handler_installed_before_the_shim_is_wrapped() {
    let s = Scratch::new("early");
    let exe = s.helper("signals");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("catchall/early.c");
    let lib = s.dir.join("libearly.so");
    let out = Command::new("cc")
        .args(["-O1", "-Wall", "-Werror", "-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .output()
        .expect("run cc");
    assert!(out.status.success(), "cc {}:\n{}", src.display(), String::from_utf8_lossy(&out.stderr));
    let argv = [exe.to_str().unwrap(), "alarm-spin"];
    let preload = format!("libm.so.6:{}", lib.display());
    let kernel = run(Command::new(argv[0]).arg(argv[1]).env("LD_PRELOAD", &preload));
    let want = "early handler: pid ok\nspun\n";
    assert_eq!((kernel.0.as_str(), kernel.1.as_str()), ("exit 0", want), "kernel: {}", kernel.2);
    let shimmed = format!("{}:{preload}", shim_lib().display());
    let shim = s.shimmed(&argv, &[("LD_PRELOAD", &shimmed)]);
    assert_eq!((shim.0.as_str(), shim.1.as_str()), ("exit 0", want), "shim: {}", shim.2);
    assert!(s.traps() > 0);
}

/// An exec'd image starts with the dispositions exec leaves (ignored ones kept, handlers back to
/// the default, flags and masks cleared): the shim reads those from the kernel only when the
/// application first asks for or sets one (the image loads nothing but libc), and sigaction
/// and the signals themselves behave as on the kernel.
#[test]
fn dispositions_inherited_across_exec() {
    let s = Scratch::new("inherited");
    let exe = s.helper("signals");
    let out = s.same(&[exe.to_str().unwrap(), "inherited"], &[]);
    assert_eq!(
        out,
        "SIGPIPE: ignored flags 0 mask-empty 1\nSIGUSR1: ignored flags 0 mask-empty 1\n\
         SIGINT: default flags 0 mask-empty 1\nSIGTERM: default flags 0 mask-empty 1\n\
         SIGRTMIN+5: default flags 0 mask-empty 1\nold SIGUSR1 ignored 1\n\
         old SIGRTMIN+5 default 1\nhandlers ran 2\n"
    );
    assert!(s.traps() > 0);
}

/// glibc cancels a thread blocked in read() by unwinding from its SIGCANCEL handler; under the
/// shim that unwind crosses our trampoline, two signal frames and the SIGSYS handler.
#[test]
fn pthread_cancel_of_a_blocked_read_runs_cleanups() {
    let s = Scratch::new("cancel");
    let exe = s.helper("signals");
    let out = s.same(&[exe.to_str().unwrap(), "cancel"], &[]);
    assert_eq!(out, "cleanup of the blocked frame ran\ncanceled 1\n");
    let out = s.same(&[exe.to_str().unwrap(), "setxid"], &[]);
    assert_eq!(out, "setgid 0, gid 0\n");
    assert!(s.traps() > 0);
}

/// Signals that arrive while the shim runs are held back and then delivered, each exactly once.
#[test]
fn queued_signals_during_shim_work_all_arrive() {
    let s = Scratch::new("rtstorm");
    let exe = s.helper("rtstorm");
    let out = s.same(&[exe.to_str().unwrap(), "20000"], &[]);
    assert!(out.starts_with("sent 20000 handled 20000 "), "{out}");
    assert!(s.traps() > 0);
}

#[test]
fn catchall_off_traps_nothing() {
    let s = Scratch::new("off");
    let exe = s.helper("threads");
    s.same(&[exe.to_str().unwrap(), "threads", "2", "1000"], &[("IPCSHIM_CATCHALL", "0")]);
    assert_eq!(s.seen(), 0);
}

/// After a site's first trap, its calls go through the rewritten site: the trap count stops
/// growing while the patched count grows. IPCSHIM_PATCH=0 keeps every call trapping.
#[test]
fn rewritten_sites_stop_trapping() {
    let s = Scratch::new("rewrite");
    let exe = s.helper("patch");
    s.same(&[exe.to_str().unwrap(), "work", "2000"], &[]);
    let (traps, patched, sites) = (s.traps(), s.patched(), s.counter("patched_sites"));
    // 9 sites of 2000 calls each (getppid's and the helper's 8; each traps twice before it is
    // rewritten), a few dozen others.
    assert!(patched >= 9 * 1998, "calls through rewritten sites: {patched}");
    assert!(traps < 1000, "the rewritten sites still trapped: {traps}");
    assert!(sites >= 9, "sites rewritten: {sites}");
    s.same(&[exe.to_str().unwrap(), "work", "20000"], &[]);
    assert!(s.traps() < traps + 1000, "trap count grew from {traps} to {}", s.traps());
    assert!(s.patched() >= patched + 9 * 19998);

    let off = Scratch::new("rewrite-off");
    off.same(&[exe.to_str().unwrap(), "work", "2000"], &[("IPCSHIM_PATCH", "0")]);
    assert!(off.traps() >= 9 * 2000, "traps without rewriting: {}", off.traps());
    assert_eq!(off.patched(), 0);
}

/// The shim's own code is the allowed range: an exported symbol passing a call on to the
/// kernel (write and fcntl on /dev/null) makes it with a `syscall` of the shim's, which
/// neither traps nor goes through a rewritten site, whatever the number of calls.
#[test]
fn exported_symbols_pass_calls_on_from_the_allowed_range() {
    let s = Scratch::new("exported");
    let exe = s.helper("patch");
    let exe = exe.to_str().unwrap();
    assert_eq!(s.same(&[exe, "exported", "10"], &[]), "exported calls done\n");
    let (traps, patched) = (s.traps(), s.patched());
    assert_eq!(s.same(&[exe, "exported", "20000"], &[]), "exported calls done\n");
    let (more_traps, more_patched) = (s.traps() - traps, s.patched() - patched);
    // The second run's start-up and exit, not its 40,000 calls.
    assert!(more_traps + more_patched < 1000, "{more_traps} traps, {more_patched} patched calls");
    assert!(more_traps > 0, "the second run was not under the catch-all");
}

/// The sites a process found are in its objects' files under IPCSHIM_DIR: a second process of
/// the same program rewrites them as it starts, and takes fewer traps.
#[test]
fn a_second_process_rewrites_known_sites_at_start() {
    let s = Scratch::new("sitecache");
    let exe = s.helper("patch");
    let exe = exe.to_str().unwrap();
    assert_eq!(s.same(&[exe, "work", "3"], &[]), "work done\n");
    let (first, sites) = (s.traps(), s.counter("patched_sites"));
    assert_eq!(s.same(&[exe, "work", "3"], &[]), "work done\n");
    let second = s.traps() - first;
    // The helper's 8 sites and glibc's getppid trapped twice each in the first run, not at all
    // in the second; glibc's start-up sites that trap once are known too.
    assert!(second + 18 <= first, "traps: {first} in the first run, {second} in the second");
    assert!(s.counter("patched_sites") >= 2 * sites, "sites: {sites}, then {}", s.counter("patched_sites"));
    // Without the cache, as the first run.
    let before = s.traps();
    s.same(&[exe, "work", "3"], &[("IPCSHIM_PATCH", "nocache")]);
    assert!(s.traps() - before >= second + 18, "traps without the cache: {}", s.traps() - before);
}

/// The helper's own site file: named by its build-id, twice (program and object).
fn site_file(s: &Scratch, exe: &Path) -> PathBuf {
    let elf = fs::read(exe).expect("read helper");
    let note = [4, 0, 0, 0, 20, 0, 0, 0, 3, 0, 0, 0, b'G', b'N', b'U', 0];
    let at = elf.windows(note.len()).position(|w| w == note).expect("helper has a GNU build-id") + note.len();
    let hex: String = elf[at..at + 20].iter().map(|b| format!("{b:02x}")).collect();
    let uid = fs::metadata("/proc/self").expect("stat /proc/self").uid();
    s.dir.join(format!("ipcshim-sites-{uid}")).join(format!("{hex}-{hex}"))
}

/// An entry with its check word, as the shim writes one (`sud/patch/cache.rs`).
fn site_entry(id_hex: &str, off: u32, nr: u16) -> [u8; 8] {
    let id: Vec<u8> =
        (0..id_hex.len()).step_by(2).map(|i| u8::from_str_radix(&id_hex[i..i + 2], 16).unwrap()).collect();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ 1;
    for &b in id.iter().chain(&off.to_le_bytes()).chain(&nr.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let check = (h ^ h >> 16 ^ h >> 32 ^ h >> 48) as u16;
    let mut e = [0u8; 8];
    e[..4].copy_from_slice(&off.to_le_bytes());
    e[4..6].copy_from_slice(&nr.to_le_bytes());
    e[6..].copy_from_slice(&check.to_le_bytes());
    e
}

/// Entries that do not name a real site of the object (well-formed, at every offset around
/// the real ones), garbage, a torn file, a file others may write: the program runs as on the
/// kernel and takes the traps it takes with no entries.
#[test]
fn wrong_or_foreign_site_files_are_not_used() {
    let s = Scratch::new("sitecache-bad");
    let exe = s.helper("patch");
    let argv = [exe.to_str().unwrap(), "work", "3"];
    s.same(&argv, &[]);
    let file = site_file(&s, &exe);
    let real = fs::read(&file).expect("the helper's sites were recorded");
    assert!(real.len() >= 8 * 8 && real.len().is_multiple_of(8), "entries: {}", real.len() / 8);
    let name = file.file_name().unwrap().to_str().unwrap();
    let id = name[name.len() / 2 + 1..].to_owned();
    // The traps of a run given `contents` as the helper's file, with `mode`.
    let traps_with = |contents: &[u8], mode: u32| {
        fs::write(&file, contents).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(mode)).unwrap();
        let before = s.traps();
        s.same(&argv, &[]);
        s.traps() - before
    };
    // The helper's sites unknown: each of the 8 traps twice, not at all when known (a few traps
    // of slack for start-up variations).
    let unknown = traps_with(&[], 0o600);
    let known = traps_with(&real, 0o600);
    assert!(known + 12 <= unknown, "the real entries were not used: {known} traps, {unknown} without");
    let unknown = unknown - 4;
    // Well-formed entries at every offset within 64 bytes of each real site, with its call, and
    // the real sites with another call: none matches the bytes in memory, and a wrong rewrite
    // would break the program.
    let mut wrong = Vec::new();
    for e in real.chunks(8) {
        let (off, nr) = (u32::from_le_bytes(e[..4].try_into().unwrap()), u16::from_le_bytes([e[4], e[5]]));
        for d in 1..64 {
            wrong.extend_from_slice(&site_entry(&id, off + d, nr));
            wrong.extend_from_slice(&site_entry(&id, off - d, nr));
        }
        wrong.extend_from_slice(&site_entry(&id, off, nr ^ 1));
    }
    assert!(traps_with(&wrong, 0o600) >= unknown, "wrong entries were used");
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    assert!(traps_with(&garbage, 0o600) >= unknown, "garbage entries were used");
    let mut torn = real.clone();
    torn.push(0);
    assert!(traps_with(&torn, 0o600) >= unknown, "a torn file was used");
    assert!(traps_with(&real, 0o666) >= unknown, "a file others may write was used");
}

/// Threads start together on fresh sites: each way of rewriting a site (one aligned store, or
/// `jmp .` while other threads run) happens under them, and every call's result is right.
#[test]
fn threads_racing_through_sites_being_rewritten() {
    let s = Scratch::new("race");
    let exe = s.helper("patch");
    // The first run records the sites, the last rewrites them at start-up from that record;
    // the runs between do not use it, so their threads race on fresh sites.
    for run in 0..6 {
        let cache = if run == 0 || run == 5 { &[][..] } else { &[("IPCSHIM_PATCH", "nocache")][..] };
        let out = s.same(&[exe.to_str().unwrap(), "race", "6", "3000"], cache);
        assert_eq!(out, "6 threads raced, all results right\n");
    }
    // Every call reached the catch-all (how many trapped while a site was being rewritten
    // depends on scheduling), and the sites were rewritten.
    assert!(s.seen() >= 6 * 6 * 9 * 3000, "calls seen: {}", s.seen());
    assert!(s.counter("patched_sites") >= 9 && s.patched() > 0);
}

/// A blocking call at a rewritten site interrupted by a handler: restarted under SA_RESTART,
/// EINTR without; a stop and continue restarts it through restart_syscall; pthread_cancel
/// unwinds from it.
#[test]
fn signals_at_rewritten_sites() {
    let s = Scratch::new("patchsig");
    let exe = s.helper("patch");
    let exe = exe.to_str().unwrap();
    assert_eq!(s.same(&[exe, "restart"], &[]), "futex wait returned 0, handler ran 1 time(s), word 1\n");
    assert_eq!(
        s.same(&[exe, "norestart"], &[]),
        "futex wait returned EINTR, handler ran 1 time(s), word 1\n"
    );
    assert_eq!(s.same(&[exe, "stopcont"], &[]), "nanosleep returned 0, slept the whole time 1\n");
    assert_eq!(s.same(&[exe, "cancel"], &[]), "cleanup of the sleeping thread ran\ncanceled 1\n");
    assert!(s.patched() > 0);
}

/// The handler of a signal that lands while its thread sleeps in a rewritten site makes pipe
/// calls, which the shim serves (the namespace's pipe counters), and rewritten-site calls.
#[test]
fn handler_ipc_while_asleep_in_a_rewritten_site() {
    let s = Scratch::new("patchipc");
    let exe = s.helper("patch");
    let out = s.same(&[exe.to_str().unwrap(), "handler-ipc"], &[]);
    assert_eq!(out, "futex wait returned 0, handler ran 1 time(s), word 1\n");
    assert_eq!(s.counter("bytes_in"), 64, "the handler's pipe write was not served");
    assert!(s.patched() >= 90);
}

/// A close site rewritten to its stub, closing fds the shim's table has not seen (the stub asks
/// the kernel about each with lseek before it closes), under a storm of signals whose handler
/// closes at the same site: every close succeeds once, and the site's registers and flags
/// are what the program left there.
#[test]
fn signals_in_the_close_stub() {
    let s = Scratch::new("closestorm");
    let exe = s.helper("patch");
    assert_eq!(
        s.same(&[exe.to_str().unwrap(), "closestorm", "100000"], &[]),
        "closes right: yes, handler ran: yes\n"
    );
    assert!(s.patched() >= 2 * 100_000, "calls through rewritten sites: {}", s.patched());
}

/// A call the shim never serves, at a rewritten site of the program's own, under a storm of
/// signals: every call right, and no handler ever sees its thread interrupted in the shim's
/// pass entry or a trampoline (`settle` puts it back at the site).
#[test]
fn signals_in_the_pass_entry() {
    let s = Scratch::new("passstorm");
    let exe = s.helper("patch");
    assert_eq!(
        s.same(&[exe.to_str().unwrap(), "passstorm", "1000000"], &[]),
        "pass calls right: yes, handler ran: yes\n"
    );
    assert!(s.patched() >= 1_000_000, "calls through rewritten sites: {}", s.patched());
}

/// Fork and vfork children inherit the rewritten sites; an exec'd image starts without them
/// and rewrites its own.
#[test]
fn fork_vfork_and_exec_after_rewriting() {
    let s = Scratch::new("patchfork");
    let exe = s.helper("patch");
    let exe = exe.to_str().unwrap();
    assert_eq!(s.same(&[exe, "fork", "5000"], &[]), "fork child 5\nvfork child 6\n");
    let traps = s.traps();
    assert!(traps < 1000, "the children's calls trapped: {traps}");
    assert!(s.patched() >= 2 * 9 * 5000, "calls through rewritten sites: {}", s.patched());
    let sites = s.counter("patched_sites");
    assert_eq!(s.same(&[exe, "exec", "3000"], &[]), "work done\n");
    // Both images rewrote the helper's 8 sites and glibc's getppid.
    assert!(s.counter("patched_sites") >= sites + 18, "sites: {sites}, then {}", s.counter("patched_sites"));
}

/// glibc's `read` sets its number with `xor %eax, %eax`, 2 bytes, too short for the `jmp` to a
/// trampoline: such a site becomes a `jmp rel8` to dead padding nearby that holds that `jmp`
/// (after the `ret` that follows the `syscall`, or after the end of its function). glibc's
/// and two of the helper's stop trapping, also when the sites are known from the site files
/// at start-up or rewritten while other threads read through them.
#[test]
fn xor_read_sites_are_rewritten() {
    let s = Scratch::new("xorread");
    let exe = s.helper("patch");
    let exe = exe.to_str().unwrap();
    assert_eq!(s.same(&[exe, "xorread", "20000", "1"], &[]), "xor reads right\n");
    let (traps, patched) = (s.traps(), s.patched());
    // 3 sites of 20000 reads each, each trapping twice before it is rewritten.
    assert!(patched >= 3 * 19998, "calls through rewritten sites: {patched}");
    assert!(traps < 1000, "the rewritten sites still trapped: {traps}");
    assert_eq!(s.same(&[exe, "xorread", "20000", "1"], &[]), "xor reads right\n");
    let second = s.traps() - traps;
    assert!(second + 6 <= traps, "traps: {traps} in the first run, {second} in the second");
    assert!(s.patched() >= patched + 3 * 20000);
    // Threads racing on fresh sites (glibc's read in a threaded process takes its other,
    // cancellable site, which keeps trapping; the helper's two are rewritten).
    // How many calls trap meanwhile is the scheduler's: a thread rewriting a site holds the
    // others to the trap until it is done, and may be preempted while it does (23037 of
    // 23984 calls went through the sites in one run on two CPUs). That the helper's two sites
    // were rewritten, and used, is what holds.
    let (before, sites) = (s.patched(), s.counter("patched_sites"));
    let out = s.same(&[exe, "xorread", "3000", "4"], &[("IPCSHIM_PATCH", "nocache")]);
    assert_eq!(out, "xor reads right\n");
    assert!(s.counter("patched_sites") >= sites + 2, "sites: {sites}, then {}", s.counter("patched_sites"));
    assert!(s.patched() > before, "no call went through a rewritten site");

    let off = Scratch::new("xorread-off");
    assert_eq!(off.same(&[exe, "xorread", "2000", "1"], &[("IPCSHIM_PATCH", "0")]), "xor reads right\n");
    assert!(off.traps() >= 3 * 2000, "traps without rewriting: {}", off.traps());
}

/// A read site's stub asks the kernel (lseek) about an fd the shim's table has not seen, such as
/// one opened through glibc's rewritten `open`: no pipe, FIFO or socket, it is the kernel's and
/// entered so, where it used to trap once per fresh fd.
#[test]
fn reads_of_fds_the_table_has_not_seen_do_not_trap() {
    let s = Scratch::new("fresh");
    let exe = s.helper("patch");
    assert_eq!(s.same(&[exe.to_str().unwrap(), "fresh", "20000"], &[]), "fresh reads right\n");
    assert!(s.traps() < 1000, "reads of fresh fds trapped: {}", s.traps());
    assert!(s.patched() >= 2 * 19998, "calls through rewritten sites: {}", s.patched());
}

/// A process its parent gave no census of its fds (one started by a program without the shim)
/// finds them at a fork (or its exit), by counting them (the size of /proc/self/fd) and
/// probing fds 0-63 with one poll, not by listing /proc/self/fd, which makes an inode and a
/// dentry per fd; with an fd beyond the probe (100) the counts differ and it lists them. Either
/// way its end of a FIFO the shim serves, written through the shim, is the only writer, and
/// the shim reader gets everything and then end of file.
#[test]
fn a_census_less_process_probes_its_fds() {
    let s = Scratch::new("probe");
    let fifo = s.dir.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    for fd in [5, 100] {
        // The reader, under the shim, opens the FIFO and waits for a writer.
        let mut reader = Command::new("cat")
            .arg(&fifo)
            .env("LD_PRELOAD", shim_lib())
            .env("IPCSHIM_DIR", &s.dir)
            .env("IPCSHIM_NS", &s.ns)
            .env_remove("IPCSHIM_REGION_FD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn cat");
        // The writer: bash without the shim opens the write end and execs strace, which runs
        // env, which execs bash with the shim: that bash is the only writer, census-less (it
        // forks for `sleep` too).
        let log = s.dir.join(format!("strace-{fd}"));
        // What the test harness leaves open beyond 2 (a jobserver's pipe...) is closed first.
        let script = format!(
            "for f in /proc/$$/fd/*; do n=${{f##*/}}; [ $n -gt 2 ] && eval \"exec $n>&-\"; done 2>/dev/null; \
             exec {fd}>'{}'; exec strace -f -qq -e trace=getdents64,poll -o '{}' env LD_PRELOAD='{}' \
             bash -c 'echo one >&{fd}; sleep 0.2; echo two >&{fd}'",
            fifo.display(),
            log.display(),
            shim_lib().display()
        );
        let (status, _, err) = run(Command::new("bash")
            .args(["-c", &script])
            .env_remove("LD_PRELOAD")
            .env_remove("IPCSHIM_REGION_FD")
            .env("IPCSHIM_DIR", &s.dir)
            .env("IPCSHIM_NS", &s.ns));
        assert_eq!(status, "exit 0", "writer with fd {fd}: {err}");
        let start = Instant::now();
        let out = loop {
            if let Some(st) = reader.try_wait().expect("wait cat") {
                assert!(st.success(), "cat: {st}");
                let mut out = String::new();
                reader.stdout.take().expect("stdout").read_to_string(&mut out).expect("read cat");
                break out;
            }
            assert!(start.elapsed() < TIMEOUT, "the reader got no end of file (writer fd {fd})");
            thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(out, "one\ntwo\n", "writer fd {fd}");
        let calls = fs::read_to_string(&log).expect("strace log");
        // The probe polls fds 0, 1, 2... (at the fork, whose census then serves the exit).
        let probes = calls.matches(" poll([{fd=0, events=0}, {fd=1, events=0}, {fd=2, events=0}").count();
        let listings = calls.matches(" getdents64(").count();
        if fd < 64 {
            assert!(probes >= 1 && listings == 0, "fd {fd}: {probes} probes, {listings} listings:\n{calls}");
        } else {
            assert!(listings >= 1, "fd {fd}: {probes} probes, {listings} listings:\n{calls}");
        }
    }
    assert!(s.counter("bytes_in") >= 2 * 8, "the FIFO was not served by the shim");
}
