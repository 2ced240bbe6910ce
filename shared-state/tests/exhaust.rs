//! Each fixed table of the region filled to the last entry: the call that finds it full gets
//! the kernel's errno for an allocation that failed (ENOMEM), or, for pipes and socket queues,
//! the caller is told to leave the object to the kernel (NO_SPACE), and nothing hangs. The
//! shim's side (a full table under running programs) is `tests/tests/pressure.rs`.

mod common;

use common::{Env, TempDir, fork, wait_exit};
use shared_state::ipc::IPC_PRIVATE;
use shared_state::msg::{self, IPC_NOWAIT};
use shared_state::region::{MAX_PROCS, MSG_MSGS_MAX, PIPE_MAX, SEM_UNDO_MAX};
use shared_state::sem::{self, SEM_UNDO, Sembuf};
use shared_state::{pipe, proc};
use std::time::{Duration, Instant};

/// Fills the process table with records of pid 1 (always alive): the next process that needs
/// a record (a segment's creator, a SEM_UNDO semop) gets ENOMEM, after one pass of reaping
/// that finds nobody dead; one that needs none (pipes, plain semops) is served.
#[test]
fn full_process_table() {
    let dir = TempDir::new("full-procs");
    let r = dir.region("t");
    let mut n = 0;
    {
        let _g = r.lock().unwrap();
        // SAFETY: region lock held.
        while unsafe { proc::alloc_record(&r, proc::LIVE, 1, 0) }.is_some() {
            n += 1;
        }
    }
    assert_eq!(n, MAX_PROCS, "every record taken");
    let id = sem::semget(&r, IPC_PRIVATE, 1, 0o600).unwrap();
    let t = Instant::now();
    let kid = fork(|| {
        proc::identify_self();
        let undo = [Sembuf { sem_num: 0, sem_op: 1, sem_flg: SEM_UNDO }];
        let plain = [Sembuf { sem_num: 0, sem_op: 1, sem_flg: 0 }];
        let shm = shared_state::shm::shmget(&r, IPC_PRIVATE, 4096, 0o600);
        let with_undo = sem::semtimedop(&r, id, undo.as_ptr() as usize, 1, 0, &Env);
        let without = sem::semtimedop(&r, id, plain.as_ptr() as usize, 1, 0, &Env);
        (shm == Err(libc::ENOMEM) && with_undo == Err(libc::ENOMEM) && without == Ok(0)) as i32
    });
    assert_eq!(wait_exit(kid), 1, "ENOMEM for what needs a record, served otherwise");
    assert!(t.elapsed() < Duration::from_secs(20), "took {:?}", t.elapsed());
}

/// Fills the pipe table with objects whose kernel pipes a child holds (so that the collection
/// a full table runs frees none): the next creation says NO_SPACE, and the shim then leaves the
/// pipe to the kernel.
#[test]
fn full_pipe_table() {
    let dir = TempDir::new("full-pipes");
    let r = dir.region("t");
    // One read end per object, in children of at most 10000 fds each (RLIMIT_NOFILE).
    let mut holders = Vec::new();
    let made = common::map_shared(4096) as *const std::sync::atomic::AtomicU32;
    // SAFETY: a fresh shared page, used as one counter.
    let made = unsafe { &*made };
    let per_child = 10_000;
    for _ in 0..PIPE_MAX.div_ceil(per_child) {
        let (mut ready, go) = (common::Pipe::new(), common::Pipe::new());
        let (r, ready_w, go_r) = (&r, &ready, &go);
        let pid = fork(move || {
            let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: valid out-pointer; raising the soft limit up to the hard one.
            unsafe {
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
                rl.rlim_cur = rl.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
            }
            for _ in 0..per_child {
                let mut fds = [0; 2];
                // SAFETY: valid array of two ints.
                if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
                    break;
                }
                let st = shared_state::sys::fstat(fds[0]).unwrap();
                // SAFETY: our own fd.
                unsafe { libc::close(fds[1]) };
                match pipe::pipe_new(r, st.st_dev, st.st_ino) {
                    Ok(_) => {
                        made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Err(e) => {
                        // SAFETY: our own fd.
                        unsafe { libc::close(fds[0]) };
                        ready_w.send(if e == pipe::NO_SPACE { 1 } else { 2 });
                        go_r.recv();
                        return 0;
                    }
                }
            }
            ready_w.send(0);
            go_r.recv();
            0
        });
        ready.close_write();
        let said = ready.recv();
        holders.push((pid, go));
        assert_ne!(said, Some(2), "a creation failed with another error than NO_SPACE");
        if said == Some(1) {
            break;
        }
    }
    let n = made.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(n, PIPE_MAX, "the table holds {PIPE_MAX} objects");
    assert_eq!(pipe::pipe_new(&r, 1, 1), Err(pipe::NO_SPACE));
    for (pid, go) in holders {
        go.send(1);
        assert_eq!(wait_exit(pid), 0);
    }
    // Their holders gone, a collection makes room again.
    shared_state::pipe_gc::collect_garbage(&r);
    assert!(pipe::pipe_new(&r, 1, 2).is_ok());
}

/// Fills the (process, set) undo records: 16 processes with SEM_UNDO on 4096 sets each; the
/// next process's SEM_UNDO semop gets ENOMEM, its plain semop is served, and when the holders
/// exit their adjustments are applied and the records come back.
#[test]
fn full_undo_records() {
    let dir = TempDir::new("full-undo");
    let r = dir.region("t");
    let sets = 4096usize;
    let ids: Vec<i32> = (0..sets).map(|_| sem::semget(&r, IPC_PRIVATE, 1, 0o600).unwrap()).collect();
    let procs = (SEM_UNDO_MAX as usize).div_ceil(sets);
    let mut holders = Vec::new();
    for _ in 0..procs {
        let (mut ready, go) = (common::Pipe::new(), common::Pipe::new());
        let (r, ids, ready_w, go_r) = (&r, &ids, &ready, &go);
        let pid = fork(move || {
            proc::identify_self();
            let up = [Sembuf { sem_num: 0, sem_op: 1, sem_flg: SEM_UNDO }];
            let done =
                ids.iter().all(|&id| sem::semtimedop(r, id, up.as_ptr() as usize, 1, 0, &Env) == Ok(0));
            ready_w.send(done as u8);
            go_r.recv();
            proc::exit_cleanup(r);
            0
        });
        ready.close_write();
        assert_eq!(ready.recv(), Some(1), "a holder's SEM_UNDO semops were not all served");
        holders.push((pid, go));
    }
    let kid = fork(|| {
        proc::identify_self();
        let undo = [Sembuf { sem_num: 0, sem_op: 1, sem_flg: SEM_UNDO }];
        let plain = [Sembuf { sem_num: 0, sem_op: 1, sem_flg: 0 }];
        let a = sem::semtimedop(&r, ids[0], undo.as_ptr() as usize, 1, 0, &Env);
        let b = sem::semtimedop(&r, ids[0], plain.as_ptr() as usize, 1, 0, &Env);
        (a == Err(libc::ENOMEM) && b == Ok(0)) as i32
    });
    assert_eq!(wait_exit(kid), 1, "ENOMEM once every undo record is taken");
    for (pid, go) in holders {
        go.send(1);
        assert_eq!(wait_exit(pid), 0);
    }
    // Every holder's +1 undone; the plain +1 stays.
    assert_eq!(sem::semctl(&r, ids[0], 0, sem::GETVAL, 0), Ok(1));
    assert_eq!(sem::semctl(&r, ids[1], 0, sem::GETVAL, 0), Ok(0));
    let up = [Sembuf { sem_num: 0, sem_op: 1, sem_flg: SEM_UNDO }];
    assert_eq!(sem::semtimedop(&r, ids[1], up.as_ptr() as usize, 1, 0, &Env), Ok(0), "records back");
}

/// Fills the message headers with empty messages (which take no text chunks): the next
/// msgsnd that needs a header gets ENOMEM, blocking or not, at once; a receive frees one.
#[test]
fn full_message_headers() {
    let dir = TempDir::new("full-msgs");
    let r = dir.region("t");
    #[repr(C)]
    struct Buf {
        mtype: i64,
        text: [u8; 8],
    }
    let b = Buf { mtype: 1, text: [0; 8] };
    let send = |id: i32, flg: i32| msg::msgsnd(&r, id, &b as *const Buf as usize, 0, flg, &Env);
    let mut sent = 0u64;
    let last = loop {
        let id = msg::msgget(&r, IPC_PRIVATE, 0o600).unwrap();
        let res = loop {
            match send(id, IPC_NOWAIT) {
                Ok(_) => sent += 1,
                Err(e) => break e,
            }
        };
        match res {
            // This queue is full by its byte count: the next one.
            libc::EAGAIN => continue,
            e => {
                assert_eq!(e, libc::ENOMEM, "after {sent} messages");
                break id;
            }
        }
    };
    // Queues keep headers they freed for their own next messages (at most an eighth of the
    // pool in all, see journal::Pool::release): a queue's refused send left one on its list.
    let cached = MSG_MSGS_MAX as u64 / 8;
    assert!(sent + cached >= MSG_MSGS_MAX as u64, "{sent} messages held, fewer than the headers");
    let t = Instant::now();
    assert_eq!(send(last, 0), Err(libc::ENOMEM), "a blocking send fails too");
    assert!(t.elapsed() < Duration::from_secs(1), "and at once");
    // Emptied, the queue takes messages again: what it held (messages sent through its
    // lock-free ring wait there for a header) gave its headers back.
    let mut out = Buf { mtype: 0, text: [0; 8] };
    let mut got = 0;
    while msg::msgrcv(&r, last, &mut out as *mut Buf as usize, 8, 0, IPC_NOWAIT, &Env) == Ok(0) {
        got += 1;
    }
    assert!(got > 0, "the last queue held nothing");
    assert_eq!(send(last, IPC_NOWAIT), Ok(0), "received messages' headers are reused");
}
