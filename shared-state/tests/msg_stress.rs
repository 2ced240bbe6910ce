//! Randomised stress: senders and receivers with random types, sizes, search modes and
//! IPC_NOWAIT on one small queue (so both sides block), while the parent SIGKILLs them at
//! random moments (every other kill aimed at the holder of the message queue lock, so some land
//! inside a locked section and are rolled back) and starts new ones. At the end every message
//! must be received exactly once or still be in the queue, whole, and each receiver must have
//! got each sender's messages of one type in the order they were sent.
//!
//! Senders journal each message (intent before msgsnd, result after). Receivers receive
//! straight into shared memory, one slot per call, marked before and after the call: a slot
//! of a receiver killed inside msgrcv may hold a copy that was never committed ("maybe").

mod common;

use common::{Env, Rng, TempDir, fork, map_shared, reap, stop_lock_holder};
use shared_state::Region;
use shared_state::ipc::IPC_PRIVATE;
use shared_state::msg::{self, IPC_NOWAIT, MSG_EXCEPT};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const SENDERS: usize = 3;
const RECEIVERS: usize = 3;
const MAX_SPAWNS: usize = 900;
const MAX_OPS: usize = 3000;
const MAX_LEN: usize = 1200;
const TYPES: u64 = 4;
const QBYTES: u64 = 6000;
const RUN: Duration = Duration::from_secs(6);

const INTENT: u32 = 1;
const OK: u32 = 2;
const FAILED: u32 = 3;

#[repr(C)]
struct Sent {
    state: AtomicU32,
    mtype: u32,
    len: u32,
}

/// A receiver's slot: the call's state, then the `struct msgbuf` msgrcv fills.
#[repr(C)]
struct Slot {
    state: AtomicU32,
    len: u32,
    mtype: i64,
    text: [u8; MAX_LEN],
}

#[repr(C)]
struct Log {
    receiver: AtomicU32,
    n: AtomicU32,
    sent: [Sent; MAX_OPS],
    slots: [Slot; MAX_OPS],
}

fn byte(sender: u32, seq: u32, i: usize) -> u8 {
    (sender.wrapping_mul(7).wrapping_add(seq.wrapping_mul(13)) as usize + i) as u8
}

/// A message's text: sender, sequence number, length, then a pattern of both.
fn fill(buf: &mut [u8], sender: u32, seq: u32) {
    buf[..4].copy_from_slice(&sender.to_ne_bytes());
    buf[4..8].copy_from_slice(&seq.to_ne_bytes());
    let len = buf.len() as u32;
    buf[8..12].copy_from_slice(&len.to_ne_bytes());
    for (i, b) in buf.iter_mut().enumerate().skip(12) {
        *b = byte(sender, seq, i);
    }
}

/// (sender, seq) of a received text, if it is whole.
fn parse(text: &[u8], mtype: i64, log: impl Fn(u32) -> &'static Log) -> Option<(u32, u32)> {
    if text.len() < 12 {
        return None;
    }
    let word = |i: usize| u32::from_ne_bytes(text[i..i + 4].try_into().unwrap());
    let (sender, seq, len) = (word(0), word(4), word(8) as usize);
    if sender as usize >= MAX_SPAWNS || seq as usize >= MAX_OPS || len != text.len() {
        return None;
    }
    let s = &log(sender).sent[seq as usize];
    let whole = (12..len).all(|i| text[i] == byte(sender, seq, i));
    (whole && s.len as usize == len && s.mtype as i64 == mtype).then_some((sender, seq))
}

extern "C" fn on_usr1(_: i32) {}

/// Blocks or unblocks SIGUSR1 in this thread. The test thread blocks it before forking, so a
/// worker the stop loop signals before it installed its handler is not killed by it.
fn usr1_mask(how: i32) {
    // SAFETY: a sigset on our stack, for this thread's mask only.
    unsafe {
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::pthread_sigmask(how, &set, core::ptr::null_mut());
    }
}

fn worker(r: &Region, id: i32, w: usize, log: &Log, stop: &AtomicU32, seed: u64, receiver: bool) -> ! {
    shared_state::proc::identify_self();
    // SAFETY: a handler without SA_RESTART, so that the parent's SIGUSR1 ends a blocked call;
    // SIGUSR1 came blocked from the parent (see usr1_mask) and is let in once it is handled.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_usr1 as *const () as usize;
        libc::sigaction(libc::SIGUSR1, &sa, core::ptr::null_mut());
    }
    usr1_mask(libc::SIG_UNBLOCK);
    log.receiver.store(receiver as u32, Ordering::Relaxed);
    let mut rng = Rng(seed | 1);
    let mut buf = [0u8; 8 + MAX_LEN];
    for i in 0..MAX_OPS {
        if stop.load(Ordering::Relaxed) != 0 {
            break;
        }
        let nowait = if rng.below(10) < 3 { IPC_NOWAIT } else { 0 };
        let res = if receiver {
            let (typ, flg) = match rng.below(20) {
                0..=7 => (0, 0),
                8..=13 => (1 + rng.below(TYPES) as i64, 0),
                14..=16 => (-(1 + rng.below(TYPES) as i64), 0),
                _ => (1 + rng.below(TYPES) as i64, MSG_EXCEPT),
            };
            let slot = &log.slots[i];
            slot.state.store(INTENT, Ordering::Release);
            log.n.store(i as u32 + 1, Ordering::Release);
            let addr = &slot.mtype as *const i64 as usize;
            let res = msg::msgrcv(r, id, addr, MAX_LEN, typ, flg | nowait, &Env);
            if let Ok(n) = res {
                // SAFETY: only this worker writes its slots; the parent reads them afterwards.
                unsafe { (*(slot as *const Slot as *mut Slot)).len = n as u32 };
            }
            slot.state.store(if res.is_ok() { OK } else { FAILED }, Ordering::Release);
            res.map(|_| 0)
        } else {
            let len = 12 + rng.below((MAX_LEN - 12) as u64 + 1) as usize;
            let mtype = 1 + rng.below(TYPES);
            buf[..8].copy_from_slice(&(mtype as i64).to_ne_bytes());
            fill(&mut buf[8..8 + len], w as u32, i as u32);
            let e = &log.sent[i];
            // SAFETY: only this worker writes its log; the parent reads it afterwards.
            unsafe {
                let e = e as *const Sent as *mut Sent;
                (*e).mtype = mtype as u32;
                (*e).len = len as u32;
            }
            e.state.store(INTENT, Ordering::Release);
            log.n.store(i as u32 + 1, Ordering::Release);
            let res = msg::msgsnd(r, id, buf.as_ptr() as usize, len, nowait, &Env);
            e.state.store(if res.is_ok() { OK } else { FAILED }, Ordering::Release);
            res
        };
        if let Err(err) = res
            && !matches!(err, libc::EAGAIN | libc::ENOMSG | libc::EINTR)
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
fn random_messages_with_sigkills_lose_nothing() {
    let dir = TempDir::new("msg-stress");
    let r = dir.region("t");
    let id = msg::msgget(&r, IPC_PRIVATE, 0o600).unwrap();
    usr1_mask(libc::SIG_BLOCK);
    let mut ds = msg::Msqid64Ds::default();
    msg::msgctl(&r, id, msg::IPC_STAT, &mut ds as *mut _ as usize).unwrap();
    ds.qbytes = QBYTES;
    msg::msgctl(&r, id, msg::IPC_SET, &ds as *const _ as usize).unwrap();
    let logs = map_shared(MAX_SPAWNS * size_of::<Log>());
    let log = move |w: u32| -> &'static Log {
        // SAFETY: `logs` holds MAX_SPAWNS zeroed logs, shared with the workers, never unmapped.
        unsafe { &*((logs + w as usize * size_of::<Log>()) as *const Log) }
    };
    let stop_map = map_shared(4096);
    // SAFETY: a page of shared zeroed memory.
    let stop = unsafe { &*(stop_map as *const AtomicU32) };
    let seed = std::env::var("MSG_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| (std::process::id() as u64 * 0x9e37_79b9) ^ 0x5eed);
    eprintln!("MSG_STRESS_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let mut live: Vec<(i32, bool)> = Vec::new();
    let mut spawned = 0;
    let mut kills = 0;
    let r_ref = &r;
    let spawn = |rng: &mut Rng, spawned: &mut usize, receiver: bool| -> Option<(i32, bool)> {
        if *spawned >= MAX_SPAWNS {
            return None;
        }
        let w = *spawned;
        *spawned += 1;
        let s = rng.next();
        Some((fork(|| worker(r_ref, id, w, log(w as u32), stop, s, receiver)), receiver))
    };
    let top_up = |rng: &mut Rng, spawned: &mut usize, live: &mut Vec<(i32, bool)>| {
        for receiver in [false, true] {
            let want = if receiver { RECEIVERS } else { SENDERS };
            while live.iter().filter(|l| l.1 == receiver).count() < want {
                match spawn(rng, spawned, receiver) {
                    Some(c) => live.push(c),
                    None => return,
                }
            }
        }
    };
    top_up(&mut rng, &mut spawned, &mut live);
    let start = Instant::now();
    let recovered = || r.header().counters.lock_recoveries.load(Ordering::Relaxed) > 0;
    // Past RUN (up to 4 times as long) until some kill has landed inside a locked section.
    while start.elapsed() < RUN || (!recovered() && start.elapsed() < 4 * RUN) {
        std::thread::sleep(Duration::from_micros(2000 + rng.below(25_000)));
        live.retain(|&(pid, _)| reap(pid, true).is_none());
        if !live.is_empty() {
            let mut at = rng.below(live.len() as u64) as usize;
            if kills % 2 == 0 {
                let pids: Vec<i32> = live.iter().map(|l| l.0).collect();
                match stop_lock_holder(&pids, Duration::from_millis(20), || msg::lock_holder(&r, id)) {
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
        top_up(&mut rng, &mut spawned, &mut live);
    }
    // Blocked workers are told to stop by a signal (msgsnd/msgrcv fail with EINTR).
    stop.store(1, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(5);
    for &(pid, _) in &live {
        loop {
            if let Some(st) = reap(pid, true) {
                assert!(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0, "worker {pid} ended with {st:#x}");
                break;
            }
            assert!(Instant::now() < deadline, "worker {pid} is stuck");
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGUSR1) };
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // A death seen through a life mutex whose holder thread had ended is confirmed at most
    // every 0.1 s; IPC_STAT settles the dead.
    std::thread::sleep(Duration::from_millis(150));
    msg::msgctl(&r, id, msg::IPC_STAT, &mut ds as *mut _ as usize).unwrap();
    // Drain what is left, in queue order.
    let mut left = Vec::new();
    let mut buf = vec![0u8; 8 + MAX_LEN];
    let mut left_bytes = 0;
    while let Ok(n) = msg::msgrcv(&r, id, buf.as_mut_ptr() as usize, MAX_LEN, 0, IPC_NOWAIT, &Env) {
        let mtype = i64::from_ne_bytes(buf[..8].try_into().unwrap());
        left.push(parse(&buf[8..8 + n], mtype, log).expect("a queued message is not whole"));
        left_bytes += n as u64;
    }
    assert_eq!((ds.qnum, ds.cbytes), (left.len() as u64, left_bytes), "queue counts differ from its content");

    // Where every message ended: definitely received or queued, or maybe received.
    let mut definite: HashMap<(u32, u32), u32> = HashMap::new();
    let mut maybe: HashMap<(u32, u32), u32> = HashMap::new();
    let mut order_violations = 0;
    let mut received = 0;
    let check_order = |seqs: &mut HashMap<(u32, i64), u32>, key: (u32, u32), mtype: i64| -> bool {
        let last = seqs.entry((key.0, mtype)).or_insert(0);
        let ok = key.1 + 1 > *last;
        *last = (*last).max(key.1 + 1);
        ok
    };
    for w in 0..spawned as u32 {
        let l = log(w);
        if l.receiver.load(Ordering::Relaxed) == 0 {
            continue;
        }
        let mut seqs = HashMap::new();
        for i in 0..l.n.load(Ordering::Acquire) as usize {
            let s = &l.slots[i];
            match s.state.load(Ordering::Acquire) {
                OK => {
                    let key = parse(&s.text[..s.len as usize], s.mtype, log)
                        .unwrap_or_else(|| panic!("receiver {w} got a message that is not whole"));
                    *definite.entry(key).or_default() += 1;
                    received += 1;
                    order_violations += !check_order(&mut seqs, key, s.mtype) as u32;
                }
                INTENT if s.mtype != 0 => {
                    // Killed inside msgrcv: the copy may or may not have been committed. Its
                    // length is unknown: the text says it.
                    let len = u32::from_ne_bytes(s.text[8..12].try_into().unwrap()) as usize;
                    if let Some(key) = parse(&s.text[..len.min(MAX_LEN)], s.mtype, log) {
                        *maybe.entry(key).or_default() += 1;
                    }
                }
                _ => {}
            }
        }
    }
    let mut seqs = HashMap::new();
    for &key in &left {
        *definite.entry(key).or_default() += 1;
        let mtype = log(key.0).sent[key.1 as usize].mtype as i64;
        assert!(
            check_order(&mut seqs, key, mtype),
            "the queue is out of order for sender {} type {mtype}",
            key.0
        );
    }
    let (mut sent, mut lost_in_flight) = (0, 0);
    for w in 0..spawned as u32 {
        let l = log(w);
        if l.receiver.load(Ordering::Relaxed) != 0 {
            continue;
        }
        for seq in 0..l.n.load(Ordering::Acquire) {
            let key = (w, seq);
            let d = definite.get(&key).copied().unwrap_or(0);
            let m = maybe.get(&key).copied().unwrap_or(0);
            match l.sent[seq as usize].state.load(Ordering::Acquire) {
                OK => {
                    sent += 1;
                    assert!(
                        d == 1 || (d == 0 && m == 1),
                        "message {key:?}: {d} copies received or queued, {m} maybe"
                    );
                }
                FAILED => assert_eq!((d, m), (0, 0), "message {key:?} was refused yet arrived"),
                _ => {
                    assert!(d <= 1, "message {key:?} (send interrupted by a kill) arrived {d} times");
                    lost_in_flight += (d == 0) as u32;
                }
            }
        }
    }
    let recoveries = r.header().counters.lock_recoveries.load(Ordering::Relaxed);
    let requeued = r.header().counters.msgs_requeued.load(Ordering::Relaxed);
    eprintln!(
        "{spawned} workers, {kills} killed ({recoveries} holding the lock), {sent} messages sent, {received} \
         received, {} left queued, {requeued} put back after their receiver died, {lost_in_flight} sends cut short",
        left.len()
    );
    // A message handed to a receiver that died before taking it goes back to the queue, and
    // may then follow one sent after it: that alone can break a receiver's order.
    assert!(
        order_violations as u64 <= requeued,
        "{order_violations} out-of-order receipts, {requeued} put back"
    );
    let mut info = msg::Msginfo::default();
    msg::msgctl(&r, 0, msg::MSG_INFO, &mut info as *mut _ as usize).unwrap();
    assert_eq!((info.msgmap, info.msgtql), (0, 0), "the namespace still counts messages");
    assert!(kills >= 50, "only {kills} kills");
    assert!(sent >= 1000, "only {sent} messages sent");
    assert!(recoveries >= 1, "no kill landed inside a locked section");
}
