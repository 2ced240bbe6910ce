//! `ipcshim`: run programs on ipcshim, and look at or clean up a namespace.
//!
//! `run` sets up the preload and namespace; `ipcs` and `ipcrm` behave as util-linux's tools
//! do on the kernel, but for the namespace's objects; `status` summarises the namespace.

mod diff;
mod ipcrm;
mod ipcs;

use shared_state::region::{self, Region, RegionError, RegionErrorKind, RegionFiles};
use shared_state::{msg, proc, sem, shm};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};

const USAGE: &str = "\
usage: ipcshim [--ns NAME] [--group GROUP] COMMAND …   (both also stand among a command's options)
  run [--ns NAME] [--group GROUP] -- CMD [ARGS…]
                                   run CMD with its IPC served by ipcshim; --group shares
                                   the namespace with GROUP's members (who then trust each
                                   other's processes with every object in it)
  trace [-o FILE] [--ns NAME] -- CMD [ARGS…]
                                   run it, logging every call ipcshim serves, strace-style
                                   (to FILE, else to each process's stderr)
  diff [--keep DIR] -- CMD [ARGS…]  run CMD on the kernel (under strace) and on ipcshim
                                   (traced); report where their IPC calls diverge (exit 1)
  ipcs [--ns NAME] [OPTIONS]       list the namespace's objects (util-linux ipcs options)
  ipcrm [--ns NAME] [OPTIONS]      remove objects (util-linux ipcrm options)
  status [--ns NAME]               namespace, region use, processes, objects
environment: IPCSHIM_NS (namespace, default \"default\"), IPCSHIM_DIR (default /dev/shm),
             IPCSHIM_GROUP (a group id: that group's namespace),
             IPCSHIM_DISABLE=1 (leave every call to the kernel), IPCSHIM_TRACE=FILE
Inside a namespace (a process started by `ipcshim run`, and its descendants whatever user they
became) every command works on that namespace unless --ns or --group names another.";

/// `--ns` or `--group` was given: the namespace is looked up by name, not inherited.
static NAMED: AtomicBool = AtomicBool::new(false);

/// `--ns NAME`, `--group GROUP` (or `--ns=NAME`, `--group=GROUP`) at `args[i]`: puts it into the
/// environment (for this process and the command it runs) and says how many arguments it took;
/// `None` when `args[i]` is something else.
fn namespace_option(args: &[String], i: usize) -> Result<Option<usize>, String> {
    let split = |opt: &str| -> Result<Option<(String, usize)>, String> {
        if args[i] == opt {
            return match args.get(i + 1) {
                Some(v) => Ok(Some((v.clone(), 2))),
                None => Err(format!("option '{opt}' requires an argument")),
            };
        }
        Ok(args[i].strip_prefix(opt).and_then(|r| r.strip_prefix('=')).map(|v| (v.to_string(), 1)))
    };
    let (var, value, n) = if let Some((v, n)) = split("--ns")? {
        ("IPCSHIM_NS", v, n)
    } else if let Some((g, n)) = split("--group")? {
        match group_id(&g) {
            Some(gid) => ("IPCSHIM_GROUP", gid.to_string(), n),
            None => return Err(format!("no such group: {g}")),
        }
    } else {
        return Ok(None);
    };
    // SAFETY: single-threaded; the variable is for this process and the command it runs.
    unsafe { std::env::set_var(var, value) };
    NAMED.store(true, Ordering::Relaxed);
    Ok(Some(n))
}

/// Prints `msg` and the usage; the exit status of a command line ipcshim does not take.
fn usage_error(msg: &str) -> ExitCode {
    eprintln!("ipcshim: {msg}\n{USAGE}");
    ExitCode::from(2)
}

/// A group's id, from its name or number.
fn group_id(group: &str) -> Option<u32> {
    if let Ok(gid) = group.parse() {
        return Some(gid);
    }
    let name = std::ffi::CString::new(group).ok()?;
    // SAFETY: `name` is NUL-terminated; getgrnam's result is read before any other call.
    let gr = unsafe { libc::getgrnam(name.as_ptr()) };
    // SAFETY: a non-null result points to a valid group entry.
    (!gr.is_null()).then(|| unsafe { (*gr).gr_gid })
}

/// The namespace a command works on: the one this process was started in (the region's
/// descriptors inherited), unless `--ns`/`--group` named one or there is none.
enum Ns {
    Inherited(RegionFiles),
    Named(region::NsName),
}

impl Ns {
    fn current() -> Result<Ns, RegionError> {
        // Inside an IPC namespace a process moved to, its objects are that namespace's.
        let inherited = RegionFiles::ipc_from_env().or_else(RegionFiles::from_env);
        match inherited.filter(|_| !NAMED.load(Ordering::Relaxed)) {
            Some(files) => Ok(Ns::Inherited(files)),
            None => region::name_from_env().map(Ns::Named),
        }
    }

    fn open(&self, create: bool) -> Result<Region, RegionError> {
        match self {
            Ns::Inherited(files) => Region::map(files, &files.path()),
            Ns::Named(name) => Region::open_named(name, create),
        }
    }
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // Options before the subcommand: `--ns NAME` and `--group GROUP`, which every subcommand
    // also takes.
    while args.first().is_some_and(|a| a.starts_with('-') && !matches!(a.as_str(), "-h" | "--help")) {
        match namespace_option(&args, 0) {
            Ok(Some(n)) => drop(args.drain(..n)),
            Ok(None) => return usage_error(&format!("unknown option '{}'", args[0])),
            Err(e) => return usage_error(&e),
        }
    }
    let Some(cmd) = args.first().cloned() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let mut rest = args[1..].to_vec();
    match cmd.as_str() {
        "run" => run(&rest),
        "trace" => trace(&rest),
        "diff" => match std::env::current_exe() {
            Ok(exe) => diff::main(&rest, &exe),
            Err(e) => {
                eprintln!("ipcshim diff: cannot locate myself: {e}");
                ExitCode::FAILURE
            }
        },
        // util-linux's options may come in any order: the namespace's may stand among them.
        "ipcs" | "ipcrm" | "status" => {
            let mut i = 0;
            while i < rest.len() && rest[i] != "--" {
                match namespace_option(&rest, i) {
                    Ok(Some(n)) => drop(rest.drain(i..i + n)),
                    Ok(None) => i += 1,
                    Err(e) => return usage_error(&format!("{cmd}: {e}")),
                }
            }
            match cmd.as_str() {
                "ipcs" => ipcs_cmd(&rest),
                "ipcrm" => ipcrm_cmd(&rest),
                _ if !rest.is_empty() => usage_error(&format!("status: unexpected argument '{}'", rest[0])),
                _ => status(),
            }
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => usage_error(&format!("unknown command '{other}'")),
    }
}

/// The namespace's region; `None` (and nothing printed) when it does not exist yet.
fn open_existing() -> Result<Option<Region>, ExitCode> {
    let opened = Ns::current().and_then(|ns| ns.open(false));
    match opened {
        Ok(r) => Ok(Some(r)),
        Err(e) if matches!(e.kind, RegionErrorKind::Missing) => Ok(None),
        Err(e) => {
            eprintln!("{e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// Parsed arguments (or their error printed) and the namespace, for `ipcs` and `ipcrm`.
fn with_region<T>(parsed: Result<T, String>) -> Result<(T, Option<Region>), ExitCode> {
    let parsed = parsed.map_err(|msg| {
        eprintln!("{msg}");
        ExitCode::FAILURE
    })?;
    Ok((parsed, open_existing()?))
}

fn run(args: &[String]) -> ExitCode {
    let mut i = 0;
    while i < args.len() {
        match namespace_option(args, i) {
            Ok(Some(n)) => i += n,
            Err(e) => return usage_error(&format!("run: {e}")),
            Ok(None) if args[i] == "--" => {
                i += 1;
                break;
            }
            Ok(None) if args[i].starts_with('-') => {
                return usage_error(&format!("run: unknown option '{}'", args[i]));
            }
            Ok(None) => break,
        }
    }
    let Some(prog) = args.get(i) else {
        return usage_error("run: no command given");
    };
    let lib = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name("libipcshim.so"),
        Err(e) => {
            eprintln!("ipcshim run: cannot locate myself: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !lib.exists() {
        eprintln!("ipcshim run: {} not found (run `make`)", lib.display());
        return ExitCode::FAILURE;
    }
    // Refuse a broken namespace here, once, rather than in every process of the command;
    // one that has no room to be made leaves the command to the kernel, said once.
    let ns = match Ns::current() {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut cmd = Command::new(prog);
    match ns.open(true) {
        Ok(_) => {
            let preload = match std::env::var("LD_PRELOAD") {
                Ok(old) if !old.is_empty() => format!("{} {old}", lib.display()),
                _ => lib.display().to_string(),
            };
            cmd.env("LD_PRELOAD", preload);
        }
        Err(e) if matches!(e.kind, RegionErrorKind::NoSpace(_)) => eprintln!("{e}"),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    }
    if let Ns::Named(_) = ns {
        // The command's first process opens the named namespace itself.
        cmd.env_remove(region::FD_VAR);
    }
    let err = cmd.args(&args[i + 1..]).exec();
    eprintln!("ipcshim run: {prog}: {err}");
    ExitCode::from(if err.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 })
}

/// `trace [-o FILE] …`: `run` with IPCSHIM_TRACE set; FILE starts empty, as strace's does, and
/// writable by every user: each line is appended by opening the file, also in processes of
/// the command that switched to another user.
fn trace(args: &[String]) -> ExitCode {
    use std::os::unix::fs::PermissionsExt;
    // `-o FILE` may stand anywhere among run's options.
    let mut rest = args.to_vec();
    let mut file = None;
    let mut i = 0;
    while i < rest.len() && rest[i] != "--" && rest[i].starts_with('-') {
        match rest[i].as_str() {
            "-o" if i + 1 < rest.len() => file = Some(rest.drain(i..i + 2).nth(1).unwrap_or_default()),
            "-o" => return usage_error("trace: option '-o' requires an argument"),
            "--ns" | "--group" => i += 2,
            _ => i += 1,
        }
    }
    let target = match file {
        Some(file) => {
            let path = std::path::absolute(&file).unwrap_or_else(|_| file.into());
            let made = std::fs::File::create(&path)
                .and_then(|f| f.set_permissions(std::fs::Permissions::from_mode(0o666)));
            if let Err(e) = made {
                eprintln!("ipcshim trace: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            path.into_os_string()
        }
        None => "/dev/stderr".into(),
    };
    // SAFETY: single-threaded; the variable is for the child we exec.
    unsafe { std::env::set_var("IPCSHIM_TRACE", target) };
    run(&rest)
}

fn shm_rows(region: &Region) -> Vec<ipcs::ShmRow> {
    shm::snapshot(region)
        .unwrap_or_default()
        .into_iter()
        .map(|(id, d)| ipcs::ShmRow {
            key: d.perm.key,
            id,
            uid: d.perm.uid,
            gid: d.perm.gid,
            cuid: d.perm.cuid,
            cgid: d.perm.cgid,
            mode: d.perm.mode as u32,
            segsz: d.segsz,
            nattch: d.nattch,
            cpid: d.cpid,
            lpid: d.lpid,
            atime: d.atime,
            dtime: d.dtime,
            ctime: d.ctime,
        })
        .collect()
}

fn sem_rows(region: &Region) -> Vec<ipcs::SemRow> {
    sem::snapshot(region)
        .unwrap_or_default()
        .into_iter()
        .map(|s| ipcs::SemRow {
            key: s.ds.perm.key,
            id: s.id,
            uid: s.ds.perm.uid,
            gid: s.ds.perm.gid,
            cuid: s.ds.perm.cuid,
            cgid: s.ds.perm.cgid,
            mode: s.ds.perm.mode as u32,
            nsems: s.ds.nsems,
            otime: s.ds.otime,
            ctime: s.ds.ctime,
            values: s
                .sems
                .iter()
                .map(|&(value, ncnt, zcnt, pid)| ipcs::SemValue {
                    value,
                    ncnt: ncnt as u32,
                    zcnt: zcnt as u32,
                    pid,
                })
                .collect(),
        })
        .collect()
}

fn msg_rows(region: &Region) -> Vec<ipcs::MsgRow> {
    msg::snapshot(region)
        .unwrap_or_default()
        .into_iter()
        .map(|q| ipcs::MsgRow {
            key: q.ds.perm.key,
            id: q.id,
            uid: q.ds.perm.uid,
            gid: q.ds.perm.gid,
            cuid: q.ds.perm.cuid,
            cgid: q.ds.perm.cgid,
            mode: q.ds.perm.mode as u32,
            cbytes: q.ds.cbytes,
            qnum: q.ds.qnum,
            qbytes: q.ds.qbytes,
            lspid: q.ds.lspid,
            lrpid: q.ds.lrpid,
            stime: q.ds.stime,
            rtime: q.ds.rtime,
            ctime: q.ds.ctime,
        })
        .collect()
}

fn ipcs_cmd(args: &[String]) -> ExitCode {
    let (req, region) = match with_region(ipcs::parse_ipcs_args(args)) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let l = match &region {
        Some(r) => r.header().limits,
        None => region::kernel_limits(),
    };
    let limits = ipcs::Limits {
        shmmax: l.shmmax,
        shmall: l.shmall,
        shmmni: l.shmmni as u64,
        shmmin: shm::SHMMIN,
        semmsl: l.semmsl as i32,
        semmns: l.semmns as i32,
        semopm: l.semopm as i32,
        semmni: l.semmni as i32,
        msgmax: l.msgmax as u64,
        msgmnb: l.msgmnb as i32,
        msgmni: l.msgmni as i32,
    };
    let mut summary = ipcs::Summary::default();
    let mut sems = Vec::new();
    let mut msgs = Vec::new();
    let rows = match &region {
        Some(r) => {
            let mut mi = msg::Msginfo::default();
            if msg::msgctl(r, 0, msg::MSG_INFO, &mut mi as *mut msg::Msginfo as usize).is_ok() {
                summary.msg_pool = mi.msgpool;
                summary.msg_map = mi.msgmap;
                summary.msg_tql = mi.msgtql as u64;
            }
            msgs = msg_rows(r);
            let mut si = sem::Seminfo::default();
            if sem::semctl(r, 0, 0, sem::SEM_INFO, &mut si as *mut sem::Seminfo as usize).is_ok() {
                summary.sem_usz = si.semusz;
                summary.sem_aem = si.semaem;
            }
            sems = sem_rows(r);
            let mut info = shm::ShmInfo::default();
            if shm::shmctl(r, 0, shm::SHM_INFO, &mut info as *mut shm::ShmInfo as usize).is_ok() {
                summary.shm_used_ids = info.used_ids;
                summary.shm_tot = info.shm_tot;
                summary.shm_rss = info.shm_rss;
                summary.shm_swp = info.shm_swp;
            }
            shm_rows(r)
        }
        None => Vec::new(),
    };
    let out = ipcs::render_ipcs(&req, &rows, &sems, &msgs, &limits, &summary);
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    ExitCode::SUCCESS
}

fn ipcrm_cmd(args: &[String]) -> ExitCode {
    let (requests, region) = match with_region(ipcrm::parse_ipcrm_args(args)) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let mut failures = 0;
    let mut verbose = false;
    // Without a region nothing exists: every id is invalid and every key unknown.
    let remove_id = |kind: ipcrm::IpcKind, id: i32| -> Result<(), i32> {
        match (&region, kind) {
            (Some(r), ipcrm::IpcKind::Shm) => shm::shmctl(r, id, shm::IPC_RMID, 0).map(|_| ()),
            (Some(r), ipcrm::IpcKind::Sem) => sem::semctl(r, id, 0, sem::IPC_RMID, 0).map(|_| ()),
            (Some(r), ipcrm::IpcKind::Msg) => msg::msgctl(r, id, msg::IPC_RMID, 0).map(|_| ()),
            _ => Err(libc::EINVAL),
        }
    };
    let lookup_key = |kind: ipcrm::IpcKind, key: i32| -> Result<i32, i32> {
        match (&region, kind) {
            (Some(r), ipcrm::IpcKind::Shm) => shm::shmget(r, key, 0, 0),
            (Some(r), ipcrm::IpcKind::Sem) => sem::semget(r, key, 0, 0),
            (Some(r), ipcrm::IpcKind::Msg) => msg::msgget(r, key, 0),
            _ => Err(libc::ENOENT),
        }
    };
    // Prints a failure; true when ipcrm would stop there.
    let report = |f: &ipcrm::RemoveFailure| {
        eprintln!("{}", f.message);
        f.fatal
    };
    for req in requests {
        let remove = |kind, id, by_key| {
            if verbose {
                println!("{}", ipcrm::verbose_line(kind, id));
            }
            remove_id(kind, id).map_err(|e| ipcrm::remove_failure(by_key, id, e))
        };
        match req {
            ipcrm::RemoveRequest::Verbose => verbose = true,
            ipcrm::RemoveRequest::Warn(msg) => {
                eprintln!("{msg}");
                failures += 1;
            }
            ipcrm::RemoveRequest::Fatal(msg) => {
                eprintln!("{msg}");
                return ExitCode::FAILURE;
            }
            ipcrm::RemoveRequest::Id { kind, id } => {
                if let Err(f) = remove(kind, id, false) {
                    if report(&f) {
                        return ExitCode::FAILURE;
                    }
                    failures += 1;
                }
            }
            ipcrm::RemoveRequest::Key { kind, key, text } => {
                let done = lookup_key(kind, key)
                    .map_err(|e| ipcrm::key_lookup_failure(&text, e))
                    .and_then(|id| remove(kind, id, true));
                if let Err(f) = done {
                    if report(&f) {
                        return ExitCode::FAILURE;
                    }
                    failures += 1;
                }
            }
            ipcrm::RemoveRequest::All(kind) => {
                let Some(r) = &region else { continue };
                // ipcrm -a removes segments first, then semaphore sets (util-linux order).
                if kind.is_none_or(|k| k == ipcrm::IpcKind::Shm) {
                    let mut failed = false;
                    for row in shm_rows(r) {
                        // As ipcrm -a: only objects the caller may stat.
                        let mut ds = shm::Shmid64Ds::default();
                        if shm::shmctl(r, row.id & 0x7fff, shm::SHM_STAT, &mut ds as *mut _ as usize).is_err()
                        {
                            continue;
                        }
                        if let Err(f) = remove(ipcrm::IpcKind::Shm, row.id, false) {
                            report(&f);
                            failed = true;
                        }
                    }
                    failures += failed as usize;
                }
                if kind.is_none_or(|k| k == ipcrm::IpcKind::Sem) {
                    let mut failed = false;
                    for row in sem_rows(r) {
                        let mut ds = sem::Semid64Ds::default();
                        if sem::semctl(r, row.id & 0x7fff, 0, sem::SEM_STAT, &mut ds as *mut _ as usize)
                            .is_err()
                        {
                            continue;
                        }
                        if let Err(f) = remove(ipcrm::IpcKind::Sem, row.id, false) {
                            report(&f);
                            failed = true;
                        }
                    }
                    failures += failed as usize;
                }
                if kind.is_none_or(|k| k == ipcrm::IpcKind::Msg) {
                    let mut failed = false;
                    for row in msg_rows(r) {
                        let mut ds = msg::Msqid64Ds::default();
                        if msg::msgctl(r, row.id & 0x7fff, msg::MSG_STAT, &mut ds as *mut _ as usize).is_err()
                        {
                            continue;
                        }
                        if let Err(f) = remove(ipcrm::IpcKind::Msg, row.id, false) {
                            report(&f);
                            failed = true;
                        }
                    }
                    failures += failed as usize;
                }
            }
        }
    }
    let (tail, status) = ipcrm::ipcrm_finish(args, failures);
    print!("{tail}");
    ExitCode::from(status as u8)
}

/// From linux/prctl.h (the libc crate has them only for Android).
const PR_SET_SYSCALL_USER_DISPATCH: libc::c_int = 59;
const PR_SYS_DISPATCH_ON: libc::c_ulong = 1;

/// Whether this kernel lets a process arm Syscall User Dispatch (tried in a child).
fn sud_available() -> bool {
    // SAFETY: the child only calls prctl and _exit, both async-signal-safe.
    match unsafe { libc::fork() } {
        0 => {
            let selector = 0u8;
            // SAFETY: arming with an empty allowed range and a selector that allows everything.
            let rc =
                unsafe { libc::prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON, 0, 0, &selector) };
            // SAFETY: _exit in the forked child.
            unsafe { libc::_exit(if rc == 0 { 0 } else { 1 }) }
        }
        -1 => false,
        pid => {
            let mut st = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(pid, &mut st, 0) };
            libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0
        }
    }
}

fn status() -> ExitCode {
    let path = match Ns::current() {
        Ok(Ns::Inherited(files)) => format!("{} (inherited)", files.path()),
        Ok(Ns::Named(name)) => name.path,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let ns = std::env::var("IPCSHIM_NS").unwrap_or_else(|_| "default".into());
    println!("namespace:      {ns}");
    println!("region:         {path}");
    let disabled = std::env::var("IPCSHIM_DISABLE").is_ok_and(|v| v == "1");
    let catchall_off = std::env::var("IPCSHIM_CATCHALL").is_ok_and(|v| v == "0");
    let (catchall, pipes) = match (disabled, catchall_off, sud_available()) {
        (true, _, _) => ("off (IPCSHIM_DISABLE=1)", false),
        (_, true, _) => ("off (IPCSHIM_CATCHALL=0): pipes, FIFOs and sockets left to the kernel", false),
        (_, _, false) => (
            "unavailable (this kernel refuses Syscall User Dispatch): pipes, FIFOs and sockets left to the kernel",
            false,
        ),
        _ => ("on (Syscall User Dispatch in every shimmed process)", true),
    };
    println!(
        "served:         {}",
        match (disabled, pipes) {
            (true, _) => "nothing (IPCSHIM_DISABLE=1)",
            (_, true) => {
                "System V shared memory, semaphores and message queues (and their /proc views), pipes, FIFOs, AF_UNIX stream, seqpacket and datagram sockets, loopback TCP and UDP between shimmed processes"
            }
            _ => "System V shared memory, semaphores and message queues",
        }
    );
    println!("catch-all:      {catchall}");
    println!(
        "kernel-served:  {}",
        if pipes {
            "socket families other than AF_UNIX, AF_INET and AF_INET6; TCP and UDP with a peer without the shim or on another host"
        } else {
            "pipes, FIFOs, /proc views, sockets"
        }
    );
    let region = match open_existing() {
        Ok(Some(r)) => r,
        Ok(None) => {
            println!("state:          not created yet (no process has used this namespace)");
            return ExitCode::SUCCESS;
        }
        Err(code) => return code,
    };
    let hdr = region.header();
    println!("layout version: {}", region::LAYOUT_VERSION);
    println!(
        "region size:    {} MiB reserved (sparse), {} KiB in use",
        region::TOTAL_SIZE >> 20,
        region.resident_bytes() >> 10
    );
    println!(
        "heap:           {} bytes reserved, {} in live blocks",
        hdr.heap.used_bytes(),
        hdr.heap.allocated_bytes
    );
    let pids = proc::live_pids(&region);
    let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    println!(
        "processes:      {} live{}{}",
        pids.len(),
        if list.is_empty() { "" } else { ": " },
        list.join(" ")
    );
    let segs = shm::snapshot(&region).unwrap_or_default();
    let attached: u64 = segs.iter().map(|(_, s)| s.nattch).sum();
    println!("shm segments:   {} ({} attachments, {} pages)", segs.len(), attached, hdr.shm.shm_tot);
    let (arrays, nsems) = sem::counts(&region);
    println!("sem arrays:     {arrays} ({nsems} semaphores)");
    let (queues, messages) = msg::counts(&region);
    println!("msg queues:     {queues} ({messages} messages)");
    // An exact view, as `live_pids` reaps the dead: objects nobody holds any more (their
    // holders were killed, or their last fd was dropped in flight) are collected first.
    shared_state::pipe_gc::collect_garbage(&region);
    if let Ok(p) = shared_state::pipe::stats(&region) {
        println!(
            "pipes, FIFOs:   {} live, {} bytes queued, {} ring pages; {} collections freed {}",
            p.live, p.queued_bytes, p.ring_pages, p.gc_runs, p.gc_freed
        );
    }
    // One line per family, `name: key=value ...`, for tests and benchmarks to parse.
    let c = &hdr.counters;
    use std::sync::atomic::Ordering::Relaxed;
    println!("shm:            calls={} backed={}", c.shm_calls.load(Relaxed), c.shm_backed.load(Relaxed));
    println!(
        "sem:            calls={} waits={} wakeups={} undo_settled={}",
        c.sem_calls.load(Relaxed),
        c.sem_waits.load(Relaxed),
        c.sem_wakeups.load(Relaxed),
        c.sem_undo_settled.load(Relaxed)
    );
    println!(
        "msg:            calls={} requeued={}",
        c.msg_calls.load(Relaxed),
        c.msgs_requeued.load(Relaxed)
    );
    println!(
        "pipes:          created={} calls={} bytes_in={} bytes_out={} waits={} wakeups={}",
        c.pipes_created.load(Relaxed),
        c.pipe_calls.load(Relaxed),
        c.pipe_bytes_in.load(Relaxed),
        c.pipe_bytes_out.load(Relaxed),
        c.pipe_waits.load(Relaxed),
        c.pipe_wakeups.load(Relaxed)
    );
    println!(
        "sockets:        connections={} calls={} bytes_in={} bytes_out={} handed_back={}",
        c.unix_connections.load(Relaxed),
        c.unix_calls.load(Relaxed),
        c.unix_bytes_in.load(Relaxed),
        c.unix_bytes_out.load(Relaxed),
        c.unix_handbacks.load(Relaxed)
    );
    println!(
        "tcp:            connections={} bytes_in={} bytes_out={} handed_back={}",
        c.tcp_connections.load(Relaxed),
        c.tcp_bytes_in.load(Relaxed),
        c.tcp_bytes_out.load(Relaxed),
        c.tcp_handbacks.load(Relaxed)
    );
    println!(
        "udp:            datagrams={} bytes={} drops={}",
        c.udp_datagrams.load(Relaxed),
        c.udp_bytes.load(Relaxed),
        c.udp_drops.load(Relaxed)
    );
    println!(
        "procs:          reaped={} lock_recoveries={} catchall_traps={} patched_calls={} patched_sites={}",
        c.procs_reaped.load(Relaxed),
        c.lock_recoveries.load(Relaxed),
        c.sud_traps.load(Relaxed),
        c.sud_patched_calls.load(Relaxed),
        c.sud_patched_sites.load(Relaxed)
    );
    ExitCode::SUCCESS
}
