//! Proof tests: build rows from real kernel SysV objects and compare our rendering with
//! /usr/bin/ipcs byte for byte; run /usr/bin/ipcrm and our ipcrm request handling on identical
//! kernel state and compare stdout, stderr and exit status. Needs root (unshare(CLONE_NEWIPC));
//! each case runs on its own thread whose IPC namespace is private, so the host is untouched.

#[path = "../src/ipcrm.rs"]
mod ipcrm;
#[path = "../src/ipcs.rs"]
mod ipcs;

use ipcrm::{IpcKind, RemoveRequest};
use ipcs::{Limits, MsgRow, SemRow, SemValue, ShmRow, Summary};
use std::os::unix::process::CommandExt;
use std::process::Command;

const SHM_STAT_ANY: i32 = 15;
const SHM_INFO: i32 = 14;
const SHM_LOCK: i32 = 11;
const MSG_STAT_ANY: i32 = 13;

/// struct shm_info on 64-bit Linux (its counters are unsigned long).
#[repr(C)]
#[derive(Default)]
struct ShmInfo {
    used_ids: libc::c_int,
    shm_tot: u64,
    shm_rss: u64,
    shm_swp: u64,
    swap_attempts: u64,
    swap_successes: u64,
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Runs `f` on a fresh thread inside a new IPC namespace (unshare only affects that thread).
fn in_private_ipc_ns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: plain syscall; CLONE_NEWIPC only changes this thread's namespace.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWIPC) };
        assert_eq!(rc, 0, "unshare(CLONE_NEWIPC) failed (tests must run as root)");
        f()
    })
    .join()
    .unwrap()
}

fn run(prog: &str, args: &[&str]) -> (String, String, i32) {
    // argv[0] as a user types it: getopt prefixes its messages with argv[0].
    let name = prog.rsplit('/').next().unwrap();
    let o = Command::new(prog).arg0(name).args(args).env("LC_ALL", "C").output().unwrap();
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.code().unwrap_or(-1),
    )
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---- reading kernel state -------------------------------------------------------------

fn read_shm() -> Vec<ShmRow> {
    let mut info = ShmInfo::default();
    // SAFETY: SHM_INFO writes a struct shm_info, which ShmInfo mirrors.
    let maxid = unsafe { libc::shmctl(0, SHM_INFO, (&mut info as *mut ShmInfo).cast()) };
    let mut rows = Vec::new();
    for idx in 0..=maxid {
        // SAFETY: zeroed shmid_ds is a valid out-struct.
        let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: ds is a valid shmid_ds for SHM_STAT_ANY to fill.
        let id = unsafe { libc::shmctl(idx, SHM_STAT_ANY, &mut ds) };
        if id < 0 {
            continue;
        }
        let p = &ds.shm_perm;
        rows.push(ShmRow {
            key: p.__key,
            id,
            uid: p.uid,
            gid: p.gid,
            cuid: p.cuid,
            cgid: p.cgid,
            mode: u32::from(p.mode),
            segsz: ds.shm_segsz as u64,
            nattch: ds.shm_nattch,
            cpid: ds.shm_cpid,
            lpid: ds.shm_lpid,
            atime: ds.shm_atime,
            dtime: ds.shm_dtime,
            ctime: ds.shm_ctime,
        });
    }
    rows
}

fn semctl_int(id: i32, num: i32, cmd: i32) -> i32 {
    // SAFETY: GETVAL/GETNCNT/GETZCNT/GETPID take no pointer argument.
    unsafe { libc::semctl(id, num, cmd, 0) }
}

fn read_sem() -> Vec<SemRow> {
    // SAFETY: zeroed seminfo is a valid out-struct.
    let mut si: libc::seminfo = unsafe { std::mem::zeroed() };
    // SAFETY: SEM_INFO writes a struct seminfo through the semun pointer.
    let maxid = unsafe { libc::semctl(0, 0, libc::SEM_INFO, &mut si as *mut libc::seminfo) };
    let mut rows = Vec::new();
    for idx in 0..=maxid {
        // SAFETY: zeroed semid_ds is a valid out-struct.
        let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: SEM_STAT_ANY writes a semid_ds through the semun pointer.
        let id = unsafe { libc::semctl(idx, 0, libc::SEM_STAT_ANY, &mut ds as *mut libc::semid_ds) };
        if id < 0 {
            continue;
        }
        let p = &ds.sem_perm;
        let values = (0..ds.sem_nsems as i32)
            .map(|i| SemValue {
                value: semctl_int(id, i, libc::GETVAL),
                ncnt: semctl_int(id, i, libc::GETNCNT) as u32,
                zcnt: semctl_int(id, i, libc::GETZCNT) as u32,
                pid: semctl_int(id, i, libc::GETPID),
            })
            .collect();
        rows.push(SemRow {
            key: p.__key,
            id,
            uid: p.uid,
            gid: p.gid,
            cuid: p.cuid,
            cgid: p.cgid,
            mode: u32::from(p.mode),
            nsems: ds.sem_nsems as u64,
            otime: ds.sem_otime,
            ctime: ds.sem_ctime,
            values,
        });
    }
    rows
}

fn read_msg() -> Vec<MsgRow> {
    // SAFETY: zeroed msginfo is a valid out-struct.
    let mut mi: libc::msginfo = unsafe { std::mem::zeroed() };
    // SAFETY: MSG_INFO writes a struct msginfo.
    let maxid = unsafe { libc::msgctl(0, libc::MSG_INFO, (&mut mi as *mut libc::msginfo).cast()) };
    let mut rows = Vec::new();
    for idx in 0..=maxid {
        // SAFETY: zeroed msqid_ds is a valid out-struct.
        let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: ds is a valid msqid_ds for MSG_STAT_ANY to fill.
        let id = unsafe { libc::msgctl(idx, MSG_STAT_ANY, &mut ds) };
        if id < 0 {
            continue;
        }
        let p = &ds.msg_perm;
        rows.push(MsgRow {
            key: p.__key,
            id,
            uid: p.uid,
            gid: p.gid,
            cuid: p.cuid,
            cgid: p.cgid,
            mode: u32::from(p.mode),
            cbytes: ds.__msg_cbytes,
            qnum: ds.msg_qnum,
            qbytes: ds.msg_qbytes,
            lspid: ds.msg_lspid,
            lrpid: ds.msg_lrpid,
            stime: ds.msg_stime,
            rtime: ds.msg_rtime,
            ctime: ds.msg_ctime,
        });
    }
    rows
}

fn proc_u64(name: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/sys/kernel/{name}")).unwrap();
    s.trim().parse().unwrap()
}

fn read_limits() -> Limits {
    let sem = std::fs::read_to_string("/proc/sys/kernel/sem").unwrap();
    let v: Vec<i32> = sem.split_whitespace().map(|x| x.parse().unwrap()).collect();
    Limits {
        shmmax: proc_u64("shmmax"),
        shmall: proc_u64("shmall"),
        shmmni: proc_u64("shmmni"),
        shmmin: 1,
        semmsl: v[0],
        semmns: v[1],
        semopm: v[2],
        semmni: v[3],
        msgmax: proc_u64("msgmax"),
        msgmnb: proc_u64("msgmnb") as i32,
        msgmni: proc_u64("msgmni") as i32,
    }
}

fn read_summary() -> Summary {
    let mut shm = ShmInfo::default();
    // SAFETY: zeroed seminfo/msginfo are valid out-structs.
    let mut si: libc::seminfo = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut mi: libc::msginfo = unsafe { std::mem::zeroed() };
    // SAFETY: each *_INFO call writes exactly the struct passed.
    unsafe {
        libc::shmctl(0, SHM_INFO, (&mut shm as *mut ShmInfo).cast());
        libc::semctl(0, 0, libc::SEM_INFO, &mut si as *mut libc::seminfo);
        libc::msgctl(0, libc::MSG_INFO, (&mut mi as *mut libc::msginfo).cast());
    }
    Summary {
        shm_used_ids: shm.used_ids,
        shm_tot: shm.shm_tot,
        shm_rss: shm.shm_rss,
        shm_swp: shm.shm_swp,
        shm_swap_attempts: shm.swap_attempts,
        shm_swap_successes: shm.swap_successes,
        sem_usz: si.semusz,
        sem_aem: si.semaem,
        msg_pool: mi.msgpool,
        msg_map: mi.msgmap,
        msg_tql: mi.msgtql as u64,
    }
}

// ---- creating kernel objects -----------------------------------------------------------

fn set_owner_shm(id: i32, uid: u32, gid: u32, mode: u16) {
    // SAFETY: zeroed shmid_ds is a valid out-struct; IPC_STAT/IPC_SET take a shmid_ds.
    unsafe {
        let mut ds: libc::shmid_ds = std::mem::zeroed();
        assert_eq!(libc::shmctl(id, libc::IPC_STAT, &mut ds), 0);
        ds.shm_perm.uid = uid;
        ds.shm_perm.gid = gid;
        ds.shm_perm.mode = mode;
        assert_eq!(libc::shmctl(id, libc::IPC_SET, &mut ds), 0);
    }
}

/// A varied set of objects: owners with and without passwd entries, attached, locked and
/// destroyed segments, semaphores with values, queues with messages.
fn populate() -> Vec<usize> {
    let mut maps = Vec::new();
    // SAFETY: plain SysV calls on objects this thread just created; shmat results are checked.
    unsafe {
        let a = libc::shmget(libc::IPC_PRIVATE, 4096, 0o644 | libc::IPC_CREAT);
        assert!(a >= 0);
        let b = libc::shmget(0x1234, 1500, 0o600 | libc::IPC_CREAT);
        assert!(b >= 0);
        let p = libc::shmat(b, std::ptr::null(), 0);
        assert_ne!(p as isize, -1);
        maps.push(p as usize);
        assert_eq!(libc::shmctl(b, SHM_LOCK, std::ptr::null_mut()), 0);
        let c = libc::shmget(0x7fff_0001, 3 * 1024 * 1024 + 12345, 0o666 | libc::IPC_CREAT);
        let p = libc::shmat(c, std::ptr::null(), 0);
        assert_ne!(p as isize, -1);
        maps.push(p as usize);
        // Attached and removed: shows "dest" and key 0.
        assert_eq!(libc::shmctl(c, libc::IPC_RMID, std::ptr::null_mut()), 0);
        let d = libc::shmget(-2, 5 << 30, 0o640 | libc::IPC_CREAT | libc::SHM_NORESERVE);
        assert!(d >= 0, "shmget d: {}", errno());
        set_owner_shm(d, 65534, 12345, 0o640);
        let e = libc::shmget(libc::IPC_PRIVATE, 8192, 0o600);
        let p = libc::shmat(e, std::ptr::null(), 0);
        assert_ne!(p as isize, -1);
        assert_eq!(libc::shmdt(p), 0); // sets dtime and lpid

        let s1 = libc::semget(libc::IPC_PRIVATE, 3, 0o644);
        assert!(s1 >= 0);
        let mut ops = [
            libc::sembuf { sem_num: 0, sem_op: 5, sem_flg: 0 },
            libc::sembuf { sem_num: 2, sem_op: 32767, sem_flg: 0 },
        ];
        assert_eq!(libc::semop(s1, ops.as_mut_ptr(), 2), 0);
        let s2 = libc::semget(0x4321, 1, 0o600 | libc::IPC_CREAT);
        let mut ds: libc::semid_ds = std::mem::zeroed();
        assert_eq!(libc::semctl(s2, 0, libc::IPC_STAT, &mut ds as *mut libc::semid_ds), 0);
        ds.sem_perm.uid = 12345;
        ds.sem_perm.gid = 65534;
        assert_eq!(libc::semctl(s2, 0, libc::IPC_SET, &mut ds as *mut libc::semid_ds), 0);

        let q1 = libc::msgget(libc::IPC_PRIVATE, 0o620);
        assert!(q1 >= 0);
        #[repr(C)]
        struct Msg {
            mtype: libc::c_long,
            text: [u8; 100],
        }
        let m = Msg { mtype: 1, text: [b'x'; 100] };
        for len in [100usize, 37, 2] {
            let p = (&m as *const Msg).cast();
            assert_eq!(libc::msgsnd(q1, p, len, 0), 0);
        }
        let mut r = Msg { mtype: 0, text: [0; 100] };
        assert!(libc::msgrcv(q1, (&mut r as *mut Msg).cast(), 100, 0, 0) >= 0);
        let q2 = libc::msgget(0x777, 0o666 | libc::IPC_CREAT);
        let mut md: libc::msqid_ds = std::mem::zeroed();
        assert_eq!(libc::msgctl(q2, libc::IPC_STAT, &mut md), 0);
        md.msg_perm.uid = 65534;
        md.msg_qbytes = 4096;
        assert_eq!(libc::msgctl(q2, libc::IPC_SET, &mut md), 0);
    }
    maps
}

fn compare_ipcs(args: &[&str]) {
    let (out, err, code) = run("/usr/bin/ipcs", args);
    let req = ipcs::parse_ipcs_args(&strings(args));
    if code != 0 {
        assert_eq!(req.map(|_| ()).unwrap_err() + "\n", err, "ipcs {args:?}");
        return;
    }
    let req = req.unwrap_or_else(|e| panic!("ipcs {args:?}: {e}"));
    let mine =
        ipcs::render_ipcs(&req, &read_shm(), &read_sem(), &read_msg(), &read_limits(), &read_summary());
    assert_eq!(mine.stdout, out, "stdout of ipcs {args:?}");
    assert_eq!(mine.stderr, err, "stderr of ipcs {args:?}");
}

#[test]
fn ipcs_output_matches_util_linux() {
    in_private_ipc_ns(|| {
        let empty: &[&[&str]] = &[&[], &["-t"], &["-p"], &["-c"], &["-u"], &["--human"]];
        for a in empty {
            compare_ipcs(a);
        }
        let _maps = populate();
        let formats: &[&[&str]] = &[&[], &["-t"], &["-p"], &["-c"], &["-l"], &["-u"], &["-b"], &["--human"]];
        let resources: &[&[&str]] = &[&[], &["-a"], &["-m"], &["-s"], &["-q"], &["-m", "-q"], &["-s", "-m"]];
        for f in formats {
            for r in resources {
                compare_ipcs(&[r, *f].concat());
            }
        }
        for extra in [&["-l", "-b"][..], &["-l", "--human"], &["-u", "-b"], &["-u", "--human"], &["-p", "-t"]]
        {
            compare_ipcs(extra);
        }
        let ids: Vec<String> = read_shm()
            .iter()
            .map(|r| r.id)
            .chain(read_sem().iter().map(|r| r.id))
            .chain(read_msg().iter().map(|r| r.id))
            .chain([424242])
            .map(|i| i.to_string())
            .collect();
        for id in &ids {
            for r in ["-m", "-s", "-q"] {
                compare_ipcs(&[r, "-i", id]);
                compare_ipcs(&["--id", id, r, "--human"]);
                compare_ipcs(&[r, "-b", "-i", id, "-t"]);
            }
        }
        // Argument errors and odd-but-accepted command lines.
        let odd: &[&[&str]] = &[
            &["-i", "0"],
            &["-m", "-s", "-i", "0"],
            &["-x"],
            &["-m", "-i", "abc"],
            &["-m", "-i", "99999999999"],
            &["-m", "-i"],
            &["--bogus"],
            &["--s"],
            &["--shmems=1"],
            &["-m", "stray"],
            &["--", "-m"],
            &["-mst"],
            &["-q", "-i", " +0"],
        ];
        for a in odd {
            compare_ipcs(a);
        }
    });
}

// ---- ipcrm -------------------------------------------------------------------------------

fn simple_objects() {
    // SAFETY: plain SysV creation calls.
    unsafe {
        assert_eq!(libc::shmget(0x1234, 4096, 0o600 | libc::IPC_CREAT), 0);
        assert_eq!(libc::shmget(libc::IPC_PRIVATE, 4096, 0o644), 1);
        assert_eq!(libc::semget(0x2345, 2, 0o600 | libc::IPC_CREAT), 0);
        assert_eq!(libc::msgget(0x3456, 0o600 | libc::IPC_CREAT), 0);
        assert_eq!(libc::msgget(libc::IPC_PRIVATE, 0o600), 1);
    }
}

fn rmid(kind: IpcKind, id: i32) -> Result<(), i32> {
    // SAFETY: IPC_RMID takes no buffer.
    let rc = unsafe {
        match kind {
            IpcKind::Shm => libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()),
            IpcKind::Msg => libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()),
            IpcKind::Sem => libc::semctl(id, 0, libc::IPC_RMID, 0),
        }
    };
    if rc < 0 { Err(errno()) } else { Ok(()) }
}

fn key_to_id(kind: IpcKind, key: i32) -> Result<i32, i32> {
    // SAFETY: lookup-only get calls.
    let id = unsafe {
        match kind {
            IpcKind::Shm => libc::shmget(key, 0, 0),
            IpcKind::Msg => libc::msgget(key, 0),
            IpcKind::Sem => libc::semget(key, 0, 0),
        }
    };
    if id < 0 { Err(errno()) } else { Ok(id) }
}

/// What main.rs is expected to do with the requests, against the kernel instead of the region.
fn my_ipcrm(args: &[String]) -> (String, String, i32) {
    let (mut out, mut err) = (String::new(), String::new());
    let reqs = match ipcrm::parse_ipcrm_args(args) {
        Ok(r) => r,
        Err(e) => return (out, e + "\n", 1),
    };
    let verbose = std::cell::Cell::new(false);
    let mut failures = 0;
    let remove = |kind, id, by_key: bool, out: &mut String, err: &mut String| -> Result<bool, ()> {
        if verbose.get() {
            out.push_str(&ipcrm::verbose_line(kind, id));
            out.push('\n');
        }
        match rmid(kind, id) {
            Ok(()) => Ok(true),
            Err(e) => {
                let f = ipcrm::remove_failure(by_key, id, e);
                err.push_str(&(f.message + "\n"));
                if f.fatal { Err(()) } else { Ok(false) }
            }
        }
    };
    for r in reqs {
        match r {
            RemoveRequest::Verbose => verbose.set(true),
            RemoveRequest::Warn(m) => {
                err.push_str(&(m + "\n"));
                failures += 1;
            }
            RemoveRequest::Fatal(m) => return (out, err + &m + "\n", 1),
            RemoveRequest::Id { kind, id } => match remove(kind, id, false, &mut out, &mut err) {
                Ok(ok) => failures += usize::from(!ok),
                Err(()) => return (out, err, 1),
            },
            RemoveRequest::Key { kind, key, text } => match key_to_id(kind, key) {
                Ok(id) => match remove(kind, id, true, &mut out, &mut err) {
                    Ok(ok) => failures += usize::from(!ok),
                    Err(()) => return (out, err, 1),
                },
                Err(e) => {
                    let f = ipcrm::key_lookup_failure(&text, e);
                    err.push_str(&(f.message + "\n"));
                    if f.fatal {
                        return (out, err, 1);
                    }
                    failures += 1;
                }
            },
            RemoveRequest::All(which) => {
                let mut any_failed = false;
                for kind in [IpcKind::Shm, IpcKind::Sem, IpcKind::Msg] {
                    if which.is_some_and(|w| w != kind) {
                        continue;
                    }
                    let ids: Vec<i32> = match kind {
                        IpcKind::Shm => read_shm().iter().map(|r| r.id).collect(),
                        IpcKind::Sem => read_sem().iter().map(|r| r.id).collect(),
                        IpcKind::Msg => read_msg().iter().map(|r| r.id).collect(),
                    };
                    for id in ids {
                        match remove(kind, id, false, &mut out, &mut err) {
                            Ok(ok) => any_failed |= !ok,
                            Err(()) => return (out, err, 1),
                        }
                    }
                }
                failures += usize::from(any_failed);
            }
        }
    }
    let (tail, code) = ipcrm::ipcrm_finish(args, failures);
    (out + tail, err, code)
}

/// Kernel state as a comparable snapshot (ids and keys of what is left).
fn snapshot() -> String {
    format!(
        "{:?}",
        (
            read_shm().iter().map(|r| (r.id, r.key)).collect::<Vec<_>>(),
            read_sem().iter().map(|r| (r.id, r.key)).collect::<Vec<_>>(),
            read_msg().iter().map(|r| (r.id, r.key)).collect::<Vec<_>>(),
        )
    )
}

fn compare_ipcrm(args: &[&str]) {
    compare_ipcrm_as(args, None);
}

/// `uid`: run both sides unprivileged (real ipcrm via setpriv, ours after a per-thread setresuid).
fn compare_ipcrm_as(args: &[&str], uid: Option<u32>) {
    let owned = strings(args);
    let real = {
        let a = owned.clone();
        in_private_ipc_ns(move || {
            simple_objects();
            let mut r: Vec<String> = Vec::new();
            let prog = match uid {
                Some(u) => {
                    let ids = [format!("--reuid={u}"), format!("--regid={u}"), "--clear-groups".into()];
                    r.extend(ids);
                    r.push("/usr/bin/ipcrm".into());
                    "/usr/bin/setpriv"
                }
                None => "/usr/bin/ipcrm",
            };
            r.extend(a.iter().cloned());
            let r: Vec<&str> = r.iter().map(String::as_str).collect();
            let mut res = run(prog, &r);
            // setpriv exec()s ipcrm with argv[0] "/usr/bin/ipcrm"; getopt messages would show it.
            res.1 = res.1.replace("/usr/bin/ipcrm:", "ipcrm:");
            (res, snapshot())
        })
    };
    let mine = in_private_ipc_ns(move || {
        simple_objects();
        if let Some(u) = uid {
            // SAFETY: the raw syscall (unlike glibc's setresuid) changes only this thread's ids.
            let rc = unsafe { libc::syscall(libc::SYS_setresuid, u, u, u) };
            assert_eq!(rc, 0);
        }
        let res = my_ipcrm(&owned);
        (res, snapshot())
    });
    assert_eq!(mine, real, "ipcrm {args:?}");
}

#[test]
fn ipcrm_behaviour_matches_util_linux() {
    let cases: &[&[&str]] = &[
        &[],
        &["-m", "0"],
        &["-m", "5"],
        &["-m", "1", "-m", "0"],
        &["-M", "0x1234"],
        &["-M", "4660"],
        &["-M", "011064"],
        &["-M", "0x9999"],
        &["-M", "0"],
        &["-M", "0x100000000"],
        &["-M", "abc"],
        &["-M", "99999999999999999999999"],
        &["-M", ""],
        &["-S", "0x2345", "-Q", "0x3456"],
        &["--semaphore-key=0x2345", "--queue-id", "1", "--shmem-key", "0x1234"],
        &["-s", "0", "-s", "0"],
        &["-q", "1", "-m", "abc", "-q", "0"],
        &["-m", "99999999999"],
        &["-m", "-1"],
        &["-m", " +1"],
        &["-a"],
        &["--all"],
        &["-ashm"],
        &["--all=sem"],
        &["--all=msg", "-m", "1"],
        &["-ax"],
        &["--all="],
        &["-a", "shm"],
        &["-m", "1", "stray"],
        &["-v", "-m", "0", "-M", "0x1234", "-a"],
        &["-m", "0", "-v", "-q", "1"],
        &["-z"],
        &["-m"],
        &["--shm", "1"],
        &["--shmem-id=0", "--bogus"],
        &["-m1", "-s0"],
        &["shm", "0", "x", "1"],
        &["shm", "1"],
        &["sem", "0"],
        &["msg", "0", "1"],
        &["msg", "abc"],
        &["msg", ""],
        &["sem"],
        &["shm", "99999999999999999999"],
    ];
    for c in cases {
        compare_ipcrm(c);
    }
}

#[test]
fn ipcrm_permission_errors_match_util_linux() {
    let cases: &[&[&str]] = &[
        &["-m", "0"],
        &["-M", "0x1234"],
        &["-s", "0", "-q", "1"],
        &["-S", "0x2345", "--queue-key", "0x3456"],
        &["shm", "0", "1"],
    ];
    for c in cases {
        compare_ipcrm_as(c, Some(65534));
    }
}
