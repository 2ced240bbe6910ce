//! Randomised stress: workers do random multi-operation semops, with and without SEM_UNDO,
//! blocking, timed and non-blocking, while the parent SIGKILLs them at random moments and
//! starts new ones. At the end every value must be exactly what the completed operations
//! imply (every undo applied exactly once), nobody may be stuck, and nobody may still sleep.
//! Every other kill aims at the process holding the semaphore lock at that moment, so some
//! land inside a locked section and are rolled back by the next locker.
//!
//! Exactness: every operation that changes a value without SEM_UNDO also adds 1 to its
//! worker's own "witness" semaphore, in the same atomic semop. Each worker journals its
//! operations in shared memory (intent before the call, result after), so only its last entry
//! can be unknown, and the witness says whether that one happened. Operations with SEM_UNDO
//! only decrement (their adjustment can never be clamped), so they net to zero once undone.

mod common;

use common::{Env, Rng, TempDir, fork, map_shared, reap, stop_lock_holder};
use shared_state::Region;
use shared_state::ipc::IPC_PRIVATE;
use shared_state::sem::{self, IPC_NOWAIT, SEM_UNDO, Sembuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const NDATA: u16 = 4;
const INIT: u16 = 20;
const WORKERS: usize = 6;
const MAX_SPAWNS: usize = 400;
const MAX_OPS: usize = 20000;
const RUN: Duration = Duration::from_secs(6);

const INTENT: u32 = 1;
const OK: u32 = 2;
const FAILED: u32 = 3;

#[repr(C)]
struct Entry {
    state: AtomicU32,
    nsops: u32,
    sops: [Sembuf; 4],
}

#[repr(C)]
struct Log {
    n: AtomicU32,
    entries: [Entry; MAX_OPS],
}

/// One random operation for worker `w`: (sops, timeout in ms or 0 for none).
fn random_op(rng: &mut Rng, w: usize) -> ([Sembuf; 4], usize, i64) {
    let mut sops = [Sembuf::default(); 4];
    let witness = NDATA + w as u16;
    let kind = rng.below(100);
    let timeout = if rng.below(3) == 0 { 0 } else { 1 + rng.below(30) as i64 };
    let nowait = |rng: &mut Rng| if rng.below(3) == 0 { IPC_NOWAIT } else { 0 };
    if kind < 15 {
        // A simple decrement with undo: no witness needed, it nets to zero.
        sops[0] = Sembuf {
            sem_num: rng.below(NDATA as u64) as u16,
            sem_op: -1 - rng.below(2) as i16,
            sem_flg: SEM_UNDO | nowait(rng),
        };
        return (sops, 1, timeout.max(1));
    }
    if kind < 20 {
        sops[0] = Sembuf { sem_num: rng.below(NDATA as u64) as u16, sem_op: 0, sem_flg: nowait(rng) };
        return (sops, 1, timeout.max(1));
    }
    let ndata = 1 + rng.below(3) as usize;
    let at = rng.below(ndata as u64 + 1) as usize;
    let mut k = 0;
    for (i, slot) in sops.iter_mut().enumerate().take(ndata + 1) {
        if i == at {
            *slot = Sembuf { sem_num: witness, sem_op: 1, sem_flg: 0 };
            continue;
        }
        let num = rng.below(NDATA as u64) as u16;
        let undo = rng.below(10) < 3;
        // Waits for zero are rare: the values hover around INIT.
        let op =
            if undo { -1 - rng.below(2) as i16 } else { [-2, -1, 1, 2, -1, 1, 0][rng.below(7) as usize] };
        let op = if op == 0 && rng.below(4) != 0 { 1 } else { op };
        *slot = Sembuf { sem_num: num, sem_op: op, sem_flg: if undo { SEM_UNDO } else { 0 } | nowait(rng) };
        k += 1;
    }
    debug_assert_eq!(k, ndata);
    (sops, ndata + 1, timeout.max(1))
}

fn worker(r: &Region, id: i32, w: usize, log: &Log, stop: &AtomicU32, seed: u64) -> ! {
    shared_state::proc::identify_self();
    let mut rng = Rng(seed | 1);
    let budget = 200 + rng.below(MAX_OPS as u64 - 200) as usize;
    for i in 0..budget {
        if stop.load(Ordering::Relaxed) != 0 {
            break;
        }
        let (sops, n, ms) = random_op(&mut rng, w);
        let e = &log.entries[i];
        // SAFETY: only this worker writes its log; the parent reads it after we are gone.
        unsafe {
            let e = e as *const Entry as *mut Entry;
            (*e).nsops = n as u32;
            (*e).sops = sops;
        }
        e.state.store(INTENT, Ordering::Release);
        log.n.store(i as u32 + 1, Ordering::Release);
        let ts = libc::timespec { tv_sec: 0, tv_nsec: ms * 1_000_000 };
        let res = sem::semtimedop(r, id, sops.as_ptr() as usize, n, &ts as *const _ as usize, &Env);
        e.state.store(if res == Ok(0) { OK } else { FAILED }, Ordering::Release);
        if let Err(err) = res
            && !matches!(err, libc::EAGAIN)
        {
            eprintln!("worker {w}: unexpected errno {err}");
            // SAFETY: plain _exit.
            unsafe { libc::_exit(3) };
        }
    }
    if rng.below(2) == 0 {
        shared_state::proc::exit_cleanup(r);
    }
    // SAFETY: plain _exit; without exit_cleanup this is a death the others must notice.
    unsafe { libc::_exit(0) }
}

#[test]
fn random_semops_with_sigkills_stay_exact() {
    let dir = TempDir::new("sem-stress");
    let r = dir.region("t");
    let nsems = NDATA as usize + MAX_SPAWNS;
    assert!(nsems <= r.header().limits.semmsl as usize);
    let id = sem::semget(&r, IPC_PRIVATE, nsems as i32, 0o600).unwrap();
    let mut init = vec![0u16; nsems];
    init[..NDATA as usize].fill(INIT);
    sem::semctl(&r, id, 0, sem::SETALL, init.as_ptr() as usize).unwrap();
    let logs = map_shared(MAX_SPAWNS * size_of::<Log>());
    let log = |w: usize| {
        // SAFETY: `logs` holds MAX_SPAWNS zeroed logs, shared with the workers.
        unsafe { &*((logs + w * size_of::<Log>()) as *const Log) }
    };
    let stop_map = map_shared(4096);
    // SAFETY: a page of shared zeroed memory.
    let stop = unsafe { &*(stop_map as *const AtomicU32) };
    let seed = std::env::var("SEM_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| (std::process::id() as u64 * 0x9e37_79b9) ^ 0x5eed);
    eprintln!("SEM_STRESS_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let mut live: Vec<(i32, usize)> = Vec::new();
    let mut spawned = 0;
    let mut kills = 0;
    let r_ref = &r;
    let spawn = |rng: &mut Rng, spawned: &mut usize| -> Option<(i32, usize)> {
        if *spawned >= MAX_SPAWNS {
            return None;
        }
        let w = *spawned;
        *spawned += 1;
        let s = rng.next();
        Some((fork(|| worker(r_ref, id, w, log(w), stop, s)), w))
    };
    for _ in 0..WORKERS {
        live.extend(spawn(&mut rng, &mut spawned));
    }
    let start = Instant::now();
    let recovered = || r.header().counters.lock_recoveries.load(Ordering::Relaxed) > 0;
    // Past RUN (up to 4 times as long) until some kill has landed inside a locked section.
    while start.elapsed() < RUN || (!recovered() && start.elapsed() < 4 * RUN) {
        std::thread::sleep(Duration::from_micros(2000 + rng.below(25_000)));
        // Workers that finished on their own are replaced.
        live.retain(|&(pid, _)| reap(pid, true).is_none());
        if !live.is_empty() {
            // Every other kill aims at whoever holds the semaphore lock right now.
            let mut at = rng.below(live.len() as u64) as usize;
            if kills % 2 == 0 {
                let pids: Vec<i32> = live.iter().map(|l| l.0).collect();
                match stop_lock_holder(&pids, Duration::from_millis(20), || sem::lock_holder(&r, id)) {
                    Some(Ok(i)) => at = i,
                    Some(Err(ended)) => {
                        live.swap_remove(ended);
                        continue;
                    }
                    None => {}
                }
            }
            let (pid, _) = live.swap_remove(at);
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            reap(pid, false);
            kills += 1;
        }
        while live.len() < WORKERS {
            match spawn(&mut rng, &mut spawned) {
                Some(c) => live.push(c),
                None => break,
            }
        }
    }
    stop.store(1, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(5);
    for &(pid, w) in &live {
        loop {
            if let Some(st) = reap(pid, true) {
                assert!(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0, "worker {w} ended with {st:#x}");
                break;
            }
            assert!(Instant::now() < deadline, "worker {w} is stuck");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // A death seen through a life mutex whose holder thread had ended is confirmed at most
    // every 0.1 s (a worker ends that way between releasing it and exiting).
    std::thread::sleep(Duration::from_millis(150));
    let mut vals = vec![0u16; nsems];
    sem::semctl(&r, id, 0, sem::GETALL, vals.as_mut_ptr() as usize).unwrap();
    let mut expect: Vec<i64> = init.iter().map(|&v| v as i64).collect();
    let mut ops = 0;
    for w in 0..spawned {
        let l = log(w);
        let n = l.n.load(Ordering::Acquire) as usize;
        let witness = NDATA as usize + w;
        let oks = (0..n).filter(|&i| l.entries[i].state.load(Ordering::Acquire) == OK).filter(|&i| {
            let e = &l.entries[i];
            e.sops[..e.nsops as usize].iter().any(|s| s.sem_num as usize == witness)
        });
        let done_ok = oks.count() as i64;
        let w_val = vals[witness] as i64;
        let last_unknown = n > 0 && l.entries[n - 1].state.load(Ordering::Acquire) == INTENT;
        assert!(
            w_val == done_ok || (last_unknown && w_val == done_ok + 1),
            "worker {w}: witness {w_val}, {done_ok} completed operations journalled"
        );
        for i in 0..n {
            let e = &l.entries[i];
            let sops = &e.sops[..e.nsops as usize];
            let completed = match e.state.load(Ordering::Acquire) {
                OK => true,
                FAILED => false,
                _ => sops.iter().any(|s| s.sem_num as usize == witness) && w_val == done_ok + 1,
            };
            if completed {
                ops += 1;
                for s in sops.iter().filter(|s| s.sem_flg & SEM_UNDO == 0) {
                    expect[s.sem_num as usize] += s.sem_op as i64;
                }
            }
        }
        expect[witness] = w_val;
    }
    let recoveries = r.header().counters.lock_recoveries.load(Ordering::Relaxed);
    eprintln!(
        "{spawned} workers, {kills} killed ({recoveries} holding the lock), {ops} operations completed"
    );
    let got: Vec<i64> = vals.iter().map(|&v| v as i64).collect();
    assert_eq!(&got[..NDATA as usize], &expect[..NDATA as usize], "values differ from the journals");
    for n in 0..NDATA as i32 {
        assert_eq!(sem::semctl(&r, id, n, sem::GETNCNT, 0), Ok(0));
        assert_eq!(sem::semctl(&r, id, n, sem::GETZCNT, 0), Ok(0));
    }
    assert!(kills >= 50, "only {kills} kills");
    assert!(recoveries >= 1, "no kill landed inside a locked section");
    // SAFETY: unmapping our own mappings.
    unsafe {
        libc::munmap(logs as *mut libc::c_void, MAX_SPAWNS * size_of::<Log>());
        libc::munmap(stop_map as *mut libc::c_void, 4096);
    }
}

/// Lock-free SEM_UNDO semops killed at random instants, some between changing the value and
/// storing the adjustment: each death is settled exactly once, so the value ends where it began.
#[test]
fn lock_free_undo_semops_killed_midway_are_settled() {
    let dir = TempDir::new("sem-fast-kill");
    let r = dir.region("t");
    let id = sem::semget(&r, IPC_PRIVATE, 1, 0o600).unwrap();
    sem::semctl(&r, id, 0, sem::SETVAL, 100).unwrap();
    let r_ref = &r;
    let mut rng = Rng(0x5eed_f00d);
    let start = Instant::now();
    let mut kills = 0;
    let settled = || r.header().counters.sem_undo_settled.load(Ordering::Relaxed);
    // Until enough kills landed midway: under load the loopers run little between kills, so
    // the time this takes varies; the bound is only against a run that never lands one.
    while (settled() < 3 || kills < 20) && start.elapsed() < Duration::from_secs(60) {
        let pid = fork(|| {
            shared_state::proc::identify_self();
            let take = [Sembuf { sem_num: 0, sem_op: -1, sem_flg: SEM_UNDO }];
            let give = [Sembuf { sem_num: 0, sem_op: 1, sem_flg: SEM_UNDO }];
            loop {
                for sops in [&take, &give] {
                    if sem::semtimedop(r_ref, id, sops.as_ptr() as usize, 1, 0, &Env).is_err() {
                        return 3;
                    }
                }
            }
        });
        std::thread::sleep(Duration::from_micros(300 + rng.below(700)));
        // SAFETY: our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let st = reap(pid, false).unwrap();
        assert!(libc::WIFSIGNALED(st), "looper ended with {st:#x}");
        kills += 1;
    }
    eprintln!("{kills} loopers killed, {} settled midway", settled());
    assert!(settled() >= 1, "no kill landed between a value change and its adjustment");
    assert_eq!(sem::semctl(&r, id, 0, sem::GETVAL, 0), Ok(100));
}

const MUTEXES: u16 = 6;
const HOLDERS: u16 = 2;

/// Simple semops only, each on one of several semaphores of one set, so that they take only
/// their semaphore's lock (`sem_lock`): workers take a semaphore down with SEM_UNDO (sleeping
/// while it is 0) and give it back, the hand-over waking the next sleeper on it, while the
/// parent SIGKILLs them at random, every other kill aimed at a process holding a
/// semaphore's own lock at that instant. The undo of each killed worker gives back what it
/// held, so at the end every value must be its initial one: a count lost or duplicated by a
/// rollback, a wake-up or an undo shows as a different value.
#[test]
fn per_semaphore_locks_killed_at_random_lose_nothing() {
    let dir = TempDir::new("sem-one-kill");
    let r = dir.region("t");
    let id = sem::semget(&r, IPC_PRIVATE, MUTEXES as i32, 0o600).unwrap();
    let init = [HOLDERS; MUTEXES as usize];
    sem::semctl(&r, id, 0, sem::SETALL, init.as_ptr() as usize).unwrap();
    let seed = std::env::var("SEM_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| (std::process::id() as u64 * 0x9e37_79b9) ^ 0x0b1e);
    eprintln!("SEM_STRESS_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let r_ref = &r;
    let spawn = |rng: &mut Rng| {
        let s = rng.next();
        fork(move || {
            shared_state::proc::identify_self();
            let mut rng = Rng(s | 1);
            loop {
                let num = rng.below(MUTEXES as u64) as u16;
                let down = Sembuf { sem_num: num, sem_op: -1, sem_flg: SEM_UNDO };
                let ts = libc::timespec { tv_sec: 0, tv_nsec: (1 + rng.below(20) as i64) * 1_000_000 };
                let tsp = if rng.below(2) == 0 { 0 } else { &ts as *const _ as usize };
                match sem::semtimedop(r_ref, id, &down as *const _ as usize, 1, tsp, &Env) {
                    Ok(0) => {}
                    Err(libc::EAGAIN) => continue,
                    other => {
                        eprintln!("down: {other:?}");
                        // SAFETY: plain _exit.
                        unsafe { libc::_exit(3) };
                    }
                }
                for _ in 0..rng.below(50) {
                    core::hint::spin_loop();
                }
                let up = Sembuf { sem_num: num, sem_op: 1, sem_flg: SEM_UNDO };
                if let Err(e) = sem::semtimedop(r_ref, id, &up as *const _ as usize, 1, 0, &Env) {
                    eprintln!("up: {e}");
                    // SAFETY: plain _exit.
                    unsafe { libc::_exit(3) };
                }
            }
        })
    };
    // More workers than each semaphore admits: most downs sleep, most ups wake someone.
    let workers = (MUTEXES * (HOLDERS + 2)) as usize;
    let mut live: Vec<i32> = (0..workers).map(|_| spawn(&mut rng)).collect();
    let (mut kills, mut inside) = (0, 0);
    let start = Instant::now();
    // Longer under load, until enough kills (and enough inside a lock) have landed.
    let more = |kills: usize, inside: usize| {
        (kills < 100 || inside < 3) && start.elapsed() < Duration::from_secs(20)
    };
    while start.elapsed() < Duration::from_secs(4) || more(kills, inside) {
        std::thread::sleep(Duration::from_micros(1000 + rng.below(8000)));
        let mut at = rng.below(live.len() as u64) as usize;
        if kills % 2 == 0 {
            match stop_lock_holder(&live, Duration::from_millis(20), || sem::sem_lock_holder(&r, id)) {
                Some(Ok(i)) => {
                    at = i;
                    inside += 1;
                }
                Some(Err(ended)) => panic!("worker {} ended by itself", live[ended]),
                None => {}
            }
        }
        let pid = live.swap_remove(at);
        // SAFETY: our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        reap(pid, false);
        kills += 1;
        live.push(spawn(&mut rng));
    }
    for &pid in &live {
        // SAFETY: our own children.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        reap(pid, false);
    }
    // Deaths seen through life mutexes whose holder thread ended are confirmed at most every
    // 0.1 s.
    std::thread::sleep(Duration::from_millis(150));
    let mut vals = [0u16; MUTEXES as usize];
    sem::semctl(&r, id, 0, sem::GETALL, vals.as_mut_ptr() as usize).unwrap();
    let recoveries = r.header().counters.lock_recoveries.load(Ordering::Relaxed);
    eprintln!("{kills} killed, {inside} holding a semaphore's lock, {recoveries} recoveries");
    assert_eq!(vals, init, "counts lost or duplicated");
    for n in 0..MUTEXES as i32 {
        assert_eq!(sem::semctl(&r, id, n, sem::GETNCNT, 0), Ok(0));
    }
    assert!(kills >= 100, "only {kills} kills");
    assert!(inside >= 3, "only {inside} kills landed inside a semaphore's lock");
    assert!(recoveries >= inside as u64, "{recoveries} recoveries for {inside} kills inside a lock");
}
