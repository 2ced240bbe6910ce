//! System V semaphores on the region: semget/semop/semctl semantics in one process, wake-up
//! order and undo across processes, SIGKILL of holders and sleepers, and the fast path.

mod common;

use common::{Pipe, TempDir, fork, kill_and_reap, sleep_forever, wait_exit, wait_in_futex};
use shared_state::Region;
use shared_state::ipc::{IPC_CREAT, IPC_EXCL, IPC_PRIVATE};
use shared_state::sem::{self, IPC_NOWAIT, SEM_UNDO, SemEnv, Sembuf};
use shared_state::wait::WaitOutcome;
use std::time::{Duration, Instant};

/// Trusted pointers and plain waits: what the shim's environment does minus signals.
struct Env;

impl SemEnv for Env {
    fn copy_from(&self, dst: *mut u8, src: usize, len: usize) -> Result<(), i32> {
        if src < 4096 {
            return Err(libc::EFAULT);
        }
        // SAFETY: tests pass valid buffers (or a null-page address, refused above).
        unsafe { core::ptr::copy_nonoverlapping(src as *const u8, dst, len) };
        Ok(())
    }

    fn wait(&self, f: &mut dyn FnMut() -> WaitOutcome) -> WaitOutcome {
        f()
    }
}

fn op(num: u16, op: i16, flg: i16) -> Sembuf {
    Sembuf { sem_num: num, sem_op: op, sem_flg: flg }
}

fn semop(r: &Region, id: i32, sops: &[Sembuf]) -> Result<i32, i32> {
    sem::semtimedop(r, id, sops.as_ptr() as usize, sops.len(), 0, &Env)
}

fn timed(r: &Region, id: i32, sops: &[Sembuf], ms: i64) -> Result<i32, i32> {
    let ts = libc::timespec { tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000 };
    sem::semtimedop(r, id, sops.as_ptr() as usize, sops.len(), &ts as *const _ as usize, &Env)
}

fn getval(r: &Region, id: i32, n: i32) -> i32 {
    sem::semctl(r, id, n, sem::GETVAL, 0).unwrap()
}

fn setval(r: &Region, id: i32, n: i32, v: i32) {
    sem::semctl(r, id, n, sem::SETVAL, v as usize).unwrap();
}

fn getall(r: &Region, id: i32) -> Vec<u16> {
    let mut ds = sem::Semid64Ds::default();
    sem::semctl(r, id, 0, sem::IPC_STAT, &mut ds as *mut _ as usize).unwrap();
    let mut v = vec![0u16; ds.nsems as usize];
    sem::semctl(r, id, 0, sem::GETALL, v.as_mut_ptr() as usize).unwrap();
    v
}

/// Waits until `cond` holds (another process is getting somewhere), at most 10 s.
fn until(mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(10), "condition never came true");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn child_setup() {
    shared_state::proc::identify_self();
}

#[test]
fn semget_rules() {
    let dir = TempDir::new("sem-get");
    let r = dir.region("t");
    let l = r.header().limits;
    assert_eq!(sem::semget(&r, IPC_PRIVATE, l.semmsl as i32 + 1, 0o600), Err(libc::EINVAL));
    assert_eq!(sem::semget(&r, IPC_PRIVATE, -1, 0o600), Err(libc::EINVAL));
    assert_eq!(sem::semget(&r, IPC_PRIVATE, 0, 0o600), Err(libc::EINVAL));
    assert_eq!(sem::semget(&r, 77, 2, 0o600), Err(libc::ENOENT));
    let id = sem::semget(&r, 77, 3, IPC_CREAT | 0o640).unwrap();
    assert_eq!(sem::semget(&r, 77, 0, 0), Ok(id), "nsems 0 looks up");
    assert_eq!(sem::semget(&r, 77, 3, 0o600), Ok(id));
    assert_eq!(sem::semget(&r, 77, 4, 0o600), Err(libc::EINVAL), "more than the set has");
    assert_eq!(sem::semget(&r, 77, 1, IPC_CREAT | IPC_EXCL | 0o600), Err(libc::EEXIST));
    let id2 = sem::semget(&r, IPC_PRIVATE, 1, 0o600).unwrap();
    assert_ne!(id, id2);
    let mut ds = sem::Semid64Ds::default();
    assert_eq!(sem::semctl(&r, id, 0, sem::IPC_STAT, &mut ds as *mut _ as usize), Ok(0));
    assert_eq!((ds.nsems, ds.perm.mode, ds.perm.key, ds.otime), (3, 0o640, 77, 0));
    let mut info = sem::Seminfo::default();
    assert_eq!(sem::semctl(&r, 0, 0, sem::SEM_INFO, &mut info as *mut _ as usize), Ok(1));
    assert_eq!((info.semusz, info.semaem), (2, 4));
    assert_eq!(sem::semctl(&r, 0, 0, sem::IPC_INFO, &mut info as *mut _ as usize), Ok(1));
    assert_eq!((info.semusz, info.semaem, info.semvmx), (20, 32767, 32767));
    assert_eq!(sem::semctl(&r, id & 0x7fff, 0, sem::SEM_STAT, &mut ds as *mut _ as usize), Ok(id));
    assert_eq!(sem::semctl(&r, id, 0, sem::IPC_RMID, 0), Ok(0));
    assert_eq!(sem::semctl(&r, id, 0, sem::GETVAL, 0), Err(libc::EINVAL));
    assert_eq!(sem::semget(&r, 77, 0, 0), Err(libc::ENOENT));
    assert_eq!(sem::semctl(&r, id2, 0, 99, 0), Err(libc::EINVAL));
    assert_eq!(sem::semctl(&r, -1, 0, sem::GETVAL, 0), Err(libc::EINVAL));
}

#[test]
fn semop_is_atomic_and_checks_in_order() {
    let dir = TempDir::new("sem-op");
    let r = dir.region("t");
    let id = sem::semget(&r, IPC_PRIVATE, 3, 0o600).unwrap();
    assert_eq!(semop(&r, id, &[op(0, 2, 0), op(1, 1, 0)]), Ok(0));
    // The second operation cannot proceed: nothing is applied.
    assert_eq!(semop(&r, id, &[op(0, -1, 0), op(2, -1, IPC_NOWAIT)]), Err(libc::EAGAIN));
    assert_eq!(getall(&r, id), vec![2, 1, 0]);
    assert_eq!(semop(&r, id, &[op(2, 0, IPC_NOWAIT)]), Ok(0), "wait-for-zero on 0");
    assert_eq!(semop(&r, id, &[op(1, 0, IPC_NOWAIT)]), Err(libc::EAGAIN));
    assert_eq!(semop(&r, id, &[op(0, 32767, 0)]), Err(libc::ERANGE));
    assert_eq!(semop(&r, id, &[op(3, 1, 0)]), Err(libc::EFBIG));
    assert_eq!(semop(&r, id, &[]), Err(libc::EINVAL));
    assert_eq!(semop(&r, -1, &[op(0, 1, 0)]), Err(libc::EINVAL));
    assert_eq!(semop(&r, id + 1, &[op(0, 1, 0)]), Err(libc::EINVAL));
    let many = vec![op(0, 0, IPC_NOWAIT); r.header().limits.semopm as usize + 1];
    assert_eq!(semop(&r, id, &many), Err(libc::E2BIG));
    assert_eq!(sem::semtimedop(&r, id, 8, 1, 0, &Env), Err(libc::EFAULT));
    // Several operations on one semaphore see each other's results (the kernel's dupsop).
    assert_eq!(semop(&r, id, &[op(0, -2, 0), op(0, 0, 0), op(0, 5, 0)]), Ok(0));
    assert_eq!(getval(&r, id, 0), 5);
    assert_eq!(semop(&r, id, &[op(0, -5, 0), op(0, -1, IPC_NOWAIT)]), Err(libc::EAGAIN));
    assert_eq!(getval(&r, id, 0), 5);
    // Undo range: the adjustment may not leave [-32768, 32767].
    setval(&r, id, 2, 0);
    assert_eq!(semop(&r, id, &[op(2, 32767, SEM_UNDO)]), Ok(0));
    assert_eq!(semop(&r, id, &[op(2, -32767, 0), op(2, 32767, SEM_UNDO)]), Err(libc::ERANGE));
    assert_eq!(getval(&r, id, 2), 32767);
    let pid = shared_state::proc::self_pid();
    assert_eq!(sem::semctl(&r, id, 0, sem::GETPID, 0), Ok(pid));
    let mut ds = sem::Semid64Ds::default();
    sem::semctl(&r, id, 0, sem::IPC_STAT, &mut ds as *mut _ as usize).unwrap();
    assert!(ds.otime > 0);
    assert_eq!(timed(&r, id, &[op(1, -2, 0)], 30), Err(libc::EAGAIN), "timed out");
    let bad = libc::timespec { tv_sec: 0, tv_nsec: 1_000_000_000 };
    let sops = [op(1, -2, 0)];
    assert_eq!(
        sem::semtimedop(&r, id, sops.as_ptr() as usize, 1, &bad as *const _ as usize, &Env),
        Err(libc::EINVAL)
    );
    assert_eq!(sem::semctl(&r, id, 0, sem::SETVAL, 32768), Err(libc::ERANGE));
    assert_eq!(sem::semctl(&r, id, 3, sem::SETVAL, 1), Err(libc::EINVAL));
    let vals = [40000u16, 1, 1];
    assert_eq!(sem::semctl(&r, id, 0, sem::SETALL, vals.as_ptr() as usize), Err(libc::ERANGE));
    let vals = [4u16, 5, 6];
    assert_eq!(sem::semctl(&r, id, 0, sem::SETALL, vals.as_ptr() as usize), Ok(0));
    assert_eq!(getall(&r, id), vec![4, 5, 6]);
}

/// Sleepers of one semaphore are served in arrival order; a wait-for-zero wakes when the value
/// reaches 0; GETNCNT/GETZCNT count them.
#[test]
fn wake_order_and_counts() {
    let dir = TempDir::new("sem-order");
    let r = dir.region("t");
    let id = sem::semget(&r, IPC_PRIVATE, 2, 0o600).unwrap();
    let mut done = Pipe::new();
    let mut kids = Vec::new();
    for i in 0..4u8 {
        let d = &done;
        kids.push(fork(|| {
            child_setup();
            let r = dir.region("t");
            if semop(&r, id, &[op(0, -1, 0)]) != Ok(0) {
                return 1;
            }
            d.send(i);
            0
        }));
        until(|| sem::semctl(&r, id, 0, sem::GETNCNT, 0) == Ok(i as i32 + 1));
    }
    // Non-zero before the wait-for-zero sleeper starts: set after its fork, a sleeper that ran
    // first would find 0 and return at once.
    setval(&r, id, 1, 1);
    let z = fork(|| {
        child_setup();
        let r = dir.region("t");
        if semop(&r, id, &[op(1, 0, 0)]) != Ok(0) {
            return 1;
        }
        done.send(9);
        0
    });
    until(|| sem::semctl(&r, id, 1, sem::GETZCNT, 0) == Ok(1));
    done.close_write();
    for i in 0..4u8 {
        assert_eq!(semop(&r, id, &[op(0, 1, 0)]), Ok(0));
        assert_eq!(done.recv(), Some(i), "woken in arrival order");
    }
    assert_eq!(semop(&r, id, &[op(1, -1, 0)]), Ok(0));
    assert_eq!(done.recv(), Some(9));
    for k in kids.into_iter().chain([z]) {
        assert_eq!(wait_exit(k), 0);
    }
    assert_eq!(sem::semctl(&r, id, 0, sem::GETNCNT, 0), Ok(0));
    assert_eq!(getval(&r, id, 0), 0);
}

/// A complex sleeper moves every simple one to the set's queue (merge_queues) and is served
/// first when it became possible first; an increment wakes several sleepers at once.
#[test]
fn complex_and_simple_sleepers() {
    let dir = TempDir::new("sem-complex");
    let r = dir.region("t");
    let id = sem::semget(&r, IPC_PRIVATE, 2, 0o600).unwrap();
    let mut done = Pipe::new();
    let d = &done;
    let a = fork(|| {
        child_setup();
        let r = dir.region("t");
        let ok = semop(&r, id, &[op(0, -1, 0), op(1, -1, 0)]) == Ok(0);
        d.send(if ok { 1 } else { 100 });
        0
    });
    until(|| sem::semctl(&r, id, 0, sem::GETNCNT, 0) == Ok(1));
    let b = fork(|| {
        child_setup();
        let r = dir.region("t");
        let ok = semop(&r, id, &[op(0, -1, 0)]) == Ok(0);
        d.send(if ok { 2 } else { 100 });
        0
    });
    until(|| sem::semctl(&r, id, 0, sem::GETNCNT, 0) == Ok(2));
    done.close_write();
    // Only semaphore 0 becomes available: the complex op still waits for 1, b proceeds.
    assert_eq!(semop(&r, id, &[op(0, 1, 0)]), Ok(0));
    assert_eq!(done.recv(), Some(2));
    assert_eq!(sem::semctl(&r, id, 1, sem::GETNCNT, 0), Ok(0), "a blocks on semaphore 0 again");
    assert_eq!(sem::semctl(&r, id, 0, sem::GETNCNT, 0), Ok(1));
    assert_eq!(semop(&r, id, &[op(1, 1, 0), op(0, 1, 0)]), Ok(0));
    assert_eq!(done.recv(), Some(1));
    assert_eq!(getall(&r, id), vec![0, 0]);
    assert_eq!((wait_exit(a), wait_exit(b)), (0, 0));
}

/// `sem_lock`'s modes: semctl and complex operations put the set in complex mode (every call
/// takes the set's lock), which ends after a few calls once no complex operation sleeps; a
/// simple operation then takes only its semaphore's lock, here one that sleeps and one that
/// wakes it, while another process holds the lock of a different semaphore of the set.
#[test]
fn simple_operations_take_the_semaphore_lock() {
    let dir = TempDir::new("sem-modes");
    let r = dir.region("t");
    let id = sem::semget(&r, IPC_PRIVATE, 2, 0o600).unwrap();
    let leave = |r: &Region| {
        for _ in 0..10 {
            assert_eq!(semop(r, id, &[op(0, -1, IPC_NOWAIT)]), Err(libc::EAGAIN));
        }
    };
    assert_eq!(sem::semctl(&r, id, 0, sem::SETVAL, 0), Ok(0));
    assert!(!sem::per_semaphore_locking(&r, id));
    leave(&r);
    assert!(sem::per_semaphore_locking(&r, id));
    let mut done = Pipe::new();
    let d = &done;
    let simple = fork(|| {
        child_setup();
        let r = dir.region("t");
        let ok = semop(&r, id, &[op(0, -1, 0)]) == Ok(0) && sem::per_semaphore_locking(&r, id);
        d.send(if ok { 1 } else { 100 });
        0
    });
    // Waits for the sleeper without a semctl (which would end the mode).
    wait_in_futex(&simple.to_string());
    assert!(sem::per_semaphore_locking(&r, id), "the sleeper queued under its semaphore's lock");
    assert_eq!(semop(&r, id, &[op(0, 1, 0)]), Ok(0));
    done.close_write();
    assert_eq!(done.recv(), Some(1));
    assert_eq!(wait_exit(simple), 0);
    assert!(sem::per_semaphore_locking(&r, id), "the wake-up took semaphore 0's lock only");
    // A complex sleeper keeps the set in complex mode however many simple calls follow.
    let mut done = Pipe::new();
    let d = &done;
    let complex = fork(|| {
        child_setup();
        let r = dir.region("t");
        let ok = semop(&r, id, &[op(0, -1, 0), op(1, -1, 0)]) == Ok(0);
        d.send(if ok { 2 } else { 100 });
        0
    });
    until(|| sem::semctl(&r, id, 0, sem::GETNCNT, 0) == Ok(1));
    leave(&r);
    leave(&r);
    assert!(!sem::per_semaphore_locking(&r, id));
    assert_eq!(semop(&r, id, &[op(0, 1, 0), op(1, 1, 0)]), Ok(0));
    done.close_write();
    assert_eq!(done.recv(), Some(2));
    assert_eq!(wait_exit(complex), 0);
    leave(&r);
    assert!(sem::per_semaphore_locking(&r, id));
    assert_eq!(getall(&r, id), vec![0, 0]);
}

#[test]
fn removal_and_timeout_end_sleepers() {
    let dir = TempDir::new("sem-rm");
    let r = dir.region("t");
    let id = sem::semget(&r, IPC_PRIVATE, 1, 0o600).unwrap();
    let kid = fork(|| {
        child_setup();
        let r = dir.region("t");
        match semop(&r, id, &[op(0, -1, 0)]) {
            Err(libc::EIDRM) => 0,
            _ => 1,
        }
    });
    until(|| sem::semctl(&r, id, 0, sem::GETNCNT, 0) == Ok(1));
    assert_eq!(sem::semctl(&r, id, 0, sem::IPC_RMID, 0), Ok(0));
    assert_eq!(wait_exit(kid), 0);
    let id = sem::semget(&r, IPC_PRIVATE, 1, 0o600).unwrap();
    let t = Instant::now();
    assert_eq!(timed(&r, id, &[op(0, 0, 0), op(0, -1, 0)], 150), Err(libc::EAGAIN));
    let ms = t.elapsed().as_millis();
    assert!((140..1000).contains(&ms), "timed out after {ms} ms");
    assert_eq!(sem::semctl(&r, id, 0, sem::GETNCNT, 0), Ok(0), "the timed-out sleeper left");
}

/// Undo is applied at exit, and for a SIGKILLed process by the next one touching the set;
/// exactly once, clamped like exit_sem; SETVAL forgets adjustments; fork does not inherit them.
#[test]
fn undo_at_exit_and_after_sigkill() {
    let dir = TempDir::new("sem-undo");
    let r = dir.region("t");
    let id = sem::semget(&r, IPC_PRIVATE, 3, 0o600).unwrap();
    setval(&r, id, 0, 5);
    // Normal exit.
    let kid = fork(|| {
        child_setup();
        let r = dir.region("t");
        let ok = semop(&r, id, &[op(0, -2, SEM_UNDO), op(1, 3, SEM_UNDO)]) == Ok(0)
            && semop(&r, id, &[op(0, -1, SEM_UNDO)]) == Ok(0);
        shared_state::proc::exit_cleanup(&r);
        if ok { 0 } else { 1 }
    });
    assert_eq!(wait_exit(kid), 0);
    assert_eq!(getall(&r, id), vec![5, 0, 0]);
    // SIGKILL while holding: the next touch applies it.
    let mut ready = Pipe::new();
    let rd = &ready;
    let kid = fork(|| {
        child_setup();
        let r = dir.region("t");
        if semop(&r, id, &[op(0, -5, SEM_UNDO), op(2, 2, SEM_UNDO)]) != Ok(0) {
            return 1;
        }
        // A fork child inherits no adjustments: its exit changes nothing.
        let grandchild = fork(|| {
            child_setup();
            let r = dir.region("t");
            shared_state::proc::exit_cleanup(&r);
            0
        });
        if wait_exit(grandchild) != 0 {
            return 1;
        }
        rd.send(1);
        sleep_forever()
    });
    ready.close_write();
    assert_eq!(ready.recv(), Some(1));
    assert_eq!(getall(&r, id), vec![0, 0, 2]);
    kill_and_reap(kid);
    // The set is touched: the dead holder's adjustments come back, once.
    assert_eq!(semop(&r, id, &[op(0, -1, IPC_NOWAIT)]), Ok(0));
    assert_eq!(getall(&r, id), vec![4, 0, 0]);
    assert_eq!(getall(&r, id), vec![4, 0, 0]);
    // Clamping: the value the adjustment would restore is already gone.
    let mut ready = Pipe::new();
    let rd = &ready;
    let kid = fork(|| {
        child_setup();
        let r = dir.region("t");
        if semop(&r, id, &[op(1, 3, SEM_UNDO)]) != Ok(0) {
            return 1;
        }
        rd.send(1);
        sleep_forever()
    });
    ready.close_write();
    assert_eq!(ready.recv(), Some(1));
    assert_eq!(semop(&r, id, &[op(1, -2, 0)]), Ok(0));
    kill_and_reap(kid);
    assert_eq!(getval(&r, id, 1), 0, "1 - 3 clamps to 0");
    // SETVAL clears the adjustments of that semaphore.
    let mut ready = Pipe::new();
    let rd = &ready;
    let kid = fork(|| {
        child_setup();
        let r = dir.region("t");
        if semop(&r, id, &[op(2, 4, SEM_UNDO), op(1, 1, SEM_UNDO)]) != Ok(0) {
            return 1;
        }
        rd.send(1);
        sleep_forever()
    });
    ready.close_write();
    assert_eq!(ready.recv(), Some(1));
    setval(&r, id, 2, 10);
    kill_and_reap(kid);
    assert_eq!(getall(&r, id), vec![4, 0, 10]);
}

/// A sleeper that is killed leaves the queue; a holder's death wakes the one waiting for it at
/// once.
#[test]
fn killed_sleeper_and_killed_holder() {
    let dir = TempDir::new("sem-kill");
    let r = dir.region("t");
    let id = sem::semget(&r, IPC_PRIVATE, 1, 0o600).unwrap();
    let sleeper = fork(|| {
        child_setup();
        let r = dir.region("t");
        let _ = semop(&r, id, &[op(0, -1, SEM_UNDO)]);
        1
    });
    until(|| sem::semctl(&r, id, 0, sem::GETNCNT, 0) == Ok(1));
    kill_and_reap(sleeper);
    assert_eq!(sem::semctl(&r, id, 0, sem::GETNCNT, 0), Ok(0));
    setval(&r, id, 0, 1);
    // A mutex: the holder dies, the waiter gets it through the undo.
    let mut ready = Pipe::new();
    let rd = &ready;
    let holder = fork(|| {
        child_setup();
        let r = dir.region("t");
        if semop(&r, id, &[op(0, -1, SEM_UNDO)]) != Ok(0) {
            return 1;
        }
        rd.send(1);
        sleep_forever()
    });
    ready.close_write();
    assert_eq!(ready.recv(), Some(1));
    let waiter = fork(|| {
        child_setup();
        let r = dir.region("t");
        if semop(&r, id, &[op(0, -1, 0)]) == Ok(0) { 0 } else { 1 }
    });
    until(|| sem::semctl(&r, id, 0, sem::GETNCNT, 0) == Ok(1));
    let t = Instant::now();
    kill_and_reap(holder);
    assert_eq!(wait_exit(waiter), 0);
    // The holder's death wakes the sleeper through its life mutex, not a sleep slice.
    assert!(t.elapsed() < Duration::from_millis(60), "woken after {:?}", t.elapsed());
    assert_eq!(getval(&r, id, 0), 0);
}

/// A process killed in the middle of SETALL on a large set (holding the lock, half the values
/// written) leaves either all old or all new values.
#[test]
fn killed_inside_the_lock_rolls_back() {
    let dir = TempDir::new("sem-crash");
    let r = dir.region("t");
    let n = 20000usize.min(r.header().limits.semmsl as usize);
    let id = sem::semget(&r, IPC_PRIVATE, n as i32, 0o600).unwrap();
    let a = vec![1u16; n];
    let b = vec![2u16; n];
    sem::semctl(&r, id, 0, sem::SETALL, a.as_ptr() as usize).unwrap();
    let before = r.header().counters.lock_recoveries.load(std::sync::atomic::Ordering::Relaxed);
    for round in 0..12u64 {
        let mut ready = Pipe::new();
        let rd = &ready;
        let kid = fork(|| {
            child_setup();
            let r = dir.region("t");
            rd.send(1);
            loop {
                for v in [&b, &a] {
                    let _ = sem::semctl(&r, id, 0, sem::SETALL, v.as_ptr() as usize);
                }
            }
        });
        ready.close_write();
        assert_eq!(ready.recv(), Some(1));
        std::thread::sleep(Duration::from_micros(2000 + round * 1300));
        kill_and_reap(kid);
        let vals = getall(&r, id);
        assert!(vals == a || vals == b, "torn SETALL: {:?}", &vals[..4]);
    }
    let after = r.header().counters.lock_recoveries.load(std::sync::atomic::Ordering::Relaxed);
    assert!(after > before, "no kill landed inside the lock in 12 tries");
}

/// An uncontended semop (with or without undo) makes no system call: checked in a child under
/// SECCOMP_MODE_STRICT, which kills on any call but read, write and exit.
#[test]
fn fast_path_makes_no_system_call() {
    let dir = TempDir::new("sem-nosys");
    let r = dir.region("t");
    let id = sem::semget(&r, IPC_PRIVATE, 2, 0o600).unwrap();
    shared_state::ipc::cache_creds(true);
    let kid = fork(|| {
        child_setup();
        // Warm up: record, credentials, undo entries, lazy symbols.
        let sops = [op(0, 1, SEM_UNDO), op(1, 1, 0)];
        let back = [op(0, -1, SEM_UNDO), op(1, -1, IPC_NOWAIT)];
        let _ = semop(&r, id, &sops);
        let _ = semop(&r, id, &back);
        let _ = sem::semctl(&r, id, 0, sem::GETVAL, 0);
        // SAFETY: plain prctl; after it only read, write, exit and sigreturn are allowed.
        unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_STRICT) };
        let mut ok = true;
        for _ in 0..1000 {
            ok &= semop(&r, id, &sops) == Ok(0);
            ok &= semop(&r, id, &back) == Ok(0);
            ok &= semop(&r, id, &[op(1, -1, IPC_NOWAIT)]) == Err(libc::EAGAIN);
        }
        // SAFETY: exit (not exit_group) is allowed in strict mode.
        unsafe { libc::syscall(libc::SYS_exit, if ok { 0 } else { 1 }) };
        unreachable!()
    });
    assert_eq!(wait_exit(kid), 0, "killed (137) means a system call was made");
}

/// The thread that made a process's record (and holds its life mutex) ends while the process
/// lives on: its adjustments stay; once the process is killed they are applied.
#[test]
fn holder_thread_exit_is_not_death() {
    let dir = TempDir::new("sem-thread");
    let r = dir.region("t");
    let id = sem::semget(&r, IPC_PRIVATE, 1, 0o600).unwrap();
    let mut ready = Pipe::new();
    let rd = &ready;
    let kid = fork(|| {
        child_setup();
        let r = dir.region("t");
        let ok = std::thread::scope(|s| s.spawn(|| semop(&r, id, &[op(0, 3, SEM_UNDO)]) == Ok(0)).join());
        if ok.ok() != Some(true) {
            return 1;
        }
        rd.send(1);
        sleep_forever()
    });
    ready.close_write();
    assert_eq!(ready.recv(), Some(1));
    for _ in 0..5 {
        assert_eq!(getval(&r, id, 0), 3, "a live process keeps its adjustments");
        std::thread::sleep(Duration::from_millis(30));
    }
    kill_and_reap(kid);
    until(|| getval(&r, id, 0) == 0);
}
