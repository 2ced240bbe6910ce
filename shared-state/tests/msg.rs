//! Message queues across processes, where the C differential tests cannot reach: the
//! uncontended calls make no system call, a receiver killed after a message was handed to it
//! does not take the message with it, sends and receives killed inside the lock are rolled
//! back whole, and those killed inside the lock-free ring calls leave each message once.

mod common;

use common::{Env, Pipe, Rng, TempDir, fork, kill_and_reap, map_shared, wait_exit};
use shared_state::Region;
use shared_state::ipc::IPC_PRIVATE;
use shared_state::msg::{self, IPC_NOWAIT};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

/// A `struct msgbuf` with room for 8 KiB of text.
#[repr(C)]
struct Buf {
    mtype: i64,
    text: [u8; 8192],
}

impl Buf {
    fn new(mtype: i64, fill: u8) -> Box<Buf> {
        Box::new(Buf { mtype, text: [fill; 8192] })
    }
}

fn send(r: &Region, id: i32, b: &Buf, len: usize, flg: i32) -> Result<i32, i32> {
    msg::msgsnd(r, id, b as *const Buf as usize, len, flg, &Env)
}

fn recv(r: &Region, id: i32, b: &mut Buf, typ: i64, flg: i32) -> Result<usize, i32> {
    msg::msgrcv(r, id, b as *mut Buf as usize, 8192, typ, flg, &Env)
}

fn stat(r: &Region, id: i32) -> msg::Msqid64Ds {
    let mut ds = msg::Msqid64Ds::default();
    msg::msgctl(r, id, msg::IPC_STAT, &mut ds as *mut _ as usize).unwrap();
    ds
}

/// Process state letter of `pid` (S: asleep).
fn state(pid: i32) -> u8 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    s.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().bytes().next()).unwrap_or(b'?')
}

fn wait_asleep(pid: i32) {
    let t = Instant::now();
    while state(pid) != b'S' {
        assert!(t.elapsed() < Duration::from_secs(5), "{pid} never slept");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Uncontended msgsnd and msgrcv (64 bytes and 4 KiB, blocking flags, ENOMSG) make no system
/// call: checked in a child under SECCOMP_MODE_STRICT, which kills on any call but read,
/// write and exit.
#[test]
fn fast_path_makes_no_system_call() {
    let dir = TempDir::new("msg-nosys");
    let r = dir.region("t");
    let id = msg::msgget(&r, IPC_PRIVATE, 0o600).unwrap();
    shared_state::ipc::cache_creds(true);
    let kid = fork(|| {
        shared_state::proc::identify_self();
        let out = Buf::new(3, b'x');
        let mut b = Buf::new(0, 0);
        // Warm up: record, credentials, chunks (as many as the loop holds at once: a page
        // of the region is reserved with a system call when first used), lazy symbols.
        let _ = send(&r, id, &out, 64, 0);
        let _ = send(&r, id, &out, 4096, 0);
        let _ = recv(&r, id, &mut b, 0, 0);
        let _ = recv(&r, id, &mut b, 0, 0);
        // SAFETY: plain prctl; after it only read, write, exit and sigreturn are allowed.
        unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_STRICT) };
        let mut ok = true;
        for _ in 0..1000 {
            ok &= send(&r, id, &out, 64, 0) == Ok(0);
            ok &= send(&r, id, &out, 4096, IPC_NOWAIT) == Ok(0);
            ok &= recv(&r, id, &mut b, 3, 0) == Ok(64);
            ok &= recv(&r, id, &mut b, -3, 0) == Ok(4096) && b.mtype == 3 && b.text[4095] == b'x';
            ok &= recv(&r, id, &mut b, 0, IPC_NOWAIT) == Err(libc::ENOMSG);
        }
        // SAFETY: exit (not exit_group) is allowed in strict mode.
        unsafe { libc::syscall(libc::SYS_exit, if ok { 0 } else { 1 }) };
        unreachable!()
    });
    assert_eq!(wait_exit(kid), 0, "killed (137) means a system call was made");
}

/// A message handed to a sleeping receiver that is killed before it takes the message goes
/// back to the queue, where it was, and counts again.
#[test]
fn message_handed_to_a_killed_receiver_is_put_back() {
    let dir = TempDir::new("msg-handed");
    let r = dir.region("t");
    let id = msg::msgget(&r, IPC_PRIVATE, 0o600).unwrap();
    let rid = &r;
    let kid = fork(|| {
        shared_state::proc::identify_self();
        let mut b = Buf::new(0, 0);
        recv(rid, id, &mut b, 2, 0).map_or(1, |_| 0)
    });
    wait_asleep(kid);
    // Stopped, it cannot take what it is handed.
    // SAFETY: our own child.
    unsafe { libc::kill(kid, libc::SIGSTOP) };
    send(&r, id, &Buf::new(1, b'a'), 10, 0).unwrap();
    send(&r, id, &Buf::new(2, b'b'), 20, 0).unwrap();
    send(&r, id, &Buf::new(2, b'c'), 30, 0).unwrap();
    let ds = stat(&r, id);
    assert_eq!((ds.qnum, ds.cbytes, ds.lrpid), (2, 40, kid), "the first type 2 message was handed over");
    kill_and_reap(kid);
    let ds = stat(&r, id);
    assert_eq!((ds.qnum, ds.cbytes), (3, 60), "the handed message is back");
    let mut b = Buf::new(0, 0);
    let got: Vec<(i64, usize, u8)> = (0..3)
        .map(|_| recv(&r, id, &mut b, 0, IPC_NOWAIT).map(|n| (b.mtype, n, b.text[0])).unwrap())
        .collect();
    assert_eq!(got, [(1, 10, b'a'), (2, 20, b'b'), (2, 30, b'c')], "not in send order");
    assert!(r.header().counters.msgs_requeued.load(std::sync::atomic::Ordering::Relaxed) >= 1);
}

/// A sender and a receiver killed at random, often inside the lock: every message in the
/// queue afterwards is whole, and its counts match its content.
#[test]
fn kills_inside_the_lock_leave_whole_messages() {
    let dir = TempDir::new("msg-kill");
    let r = dir.region("t");
    let id = msg::msgget(&r, IPC_PRIVATE, 0o600).unwrap();
    let before = r.header().counters.lock_recoveries.load(std::sync::atomic::Ordering::Relaxed);
    for round in 0..16u64 {
        let mut ready = Pipe::new();
        let rd = &ready;
        let rr = &r;
        let kid = fork(|| {
            shared_state::proc::identify_self();
            rd.send(1);
            let mut b = Buf::new(0, 0);
            for i in 0u64.. {
                let len = 1 + (i * 997 % 8000) as usize;
                let fill = (len % 251) as u8;
                let _ = send(rr, id, &Buf::new(1 + (i % 3) as i64, fill), len, IPC_NOWAIT);
                let _ = recv(rr, id, &mut b, 0, IPC_NOWAIT);
            }
            0
        });
        ready.close_write();
        assert_eq!(ready.recv(), Some(1));
        std::thread::sleep(Duration::from_micros(1500 + round * 700));
        kill_and_reap(kid);
        let ds = stat(&r, id);
        let mut b = Buf::new(0, 0);
        let (mut n, mut bytes) = (0, 0);
        while let Ok(len) = recv(&r, id, &mut b, 0, IPC_NOWAIT) {
            assert!(b.text[..len].iter().all(|&c| c == (len % 251) as u8), "a torn message of {len} bytes");
            n += 1;
            bytes += len as u64;
        }
        assert_eq!((ds.qnum, ds.cbytes), (n, bytes));
    }
    let after = r.header().counters.lock_recoveries.load(std::sync::atomic::Ordering::Relaxed);
    assert!(after > before, "no kill landed inside the lock in 16 tries");
}

/// What the ring test's children record: the last message sent, the highest received, and
/// every message received (a bit per sequence number).
#[repr(C)]
struct Log {
    sent: AtomicU64,
    received: AtomicU64,
    /// Messages received out of order (each must be one put back after its receiver died).
    late: AtomicU64,
    /// A receiver got a torn or duplicated message: its sequence number << 20 | the last one.
    bad: AtomicU64,
    got: [AtomicU64; RING_TEST_MAX as usize / 64],
}

const RING_TEST_MAX: u64 = 1 << 24;

impl Log {
    /// Marks `seq` received; false if it already was.
    fn take(&self, seq: u64) -> bool {
        let bit = 1 << (seq % 64);
        self.got[(seq / 64) as usize].fetch_or(bit, SeqCst) & bit == 0
    }
}

fn seq_msg(seq: u64) -> Box<Buf> {
    let mut b = Buf::new(1, (seq % 251) as u8);
    b.text[..8].copy_from_slice(&seq.to_ne_bytes());
    b
}

/// The sequence number of a 64-byte message, if it is whole.
fn seq_of(b: &Buf, len: usize) -> Option<u64> {
    let seq = u64::from_ne_bytes(b.text[..8].try_into().unwrap());
    (len == 64 && seq < RING_TEST_MAX && b.text[8..64].iter().all(|&c| c == (seq % 251) as u8)).then_some(seq)
}

/// A sender and a receiver of 64-byte messages, which go through the queue's lock-free ring,
/// both SIGKILLed at random moments, round after round: no message is torn or received twice,
/// they arrive in order but for those put back after their receiver died, and what is left
/// queued is in order and counted right. Each round's receiver may have taken one message
/// unnoted (killed after its swap); at the end nothing else is missing.
#[test]
fn kills_inside_ring_calls_leave_each_message_once() {
    const ROUNDS: u64 = 100;
    let dir = TempDir::new("msg-ring-kill");
    let r = dir.region("t");
    let id = msg::msgget(&r, IPC_PRIVATE, 0o600).unwrap();
    // SAFETY: a fresh zeroed shared mapping, big enough for a Log.
    let log = unsafe { &*(map_shared(size_of::<Log>()) as *const Log) };
    let requeued = || r.header().counters.msgs_requeued.load(SeqCst);
    let mut rng = Rng(0x5eed_0f1a_9e00);
    let (rr, lg) = (&r, log);
    for round in 0..ROUNDS {
        let sender = fork(|| {
            shared_state::proc::identify_self();
            for seq in lg.sent.load(SeqCst) + 1..RING_TEST_MAX {
                if send(rr, id, &seq_msg(seq), 64, 0).is_ok() {
                    lg.sent.store(seq, SeqCst);
                }
            }
            0
        });
        let receiver = fork(|| {
            shared_state::proc::identify_self();
            let mut b = Buf::new(0, 0);
            loop {
                let Ok(len) = recv(rr, id, &mut b, 1, 0) else { continue };
                let last = lg.received.load(SeqCst);
                match seq_of(&b, len) {
                    Some(seq) if lg.take(seq) => {
                        if seq < last {
                            lg.late.fetch_add(1, SeqCst);
                        }
                        lg.received.store(seq.max(last), SeqCst);
                    }
                    got => lg.bad.store(got.map_or(u64::MAX, |g| g << 20 | last), SeqCst),
                }
            }
        });
        std::thread::sleep(Duration::from_micros(500 + rng.below(4000)));
        let (first, second) = if round % 2 == 0 { (sender, receiver) } else { (receiver, sender) };
        kill_and_reap(first);
        std::thread::sleep(Duration::from_micros(rng.below(300)));
        kill_and_reap(second);
        let bad = log.bad.load(SeqCst);
        assert_eq!(bad, 0, "round {round}: got {} after {}", bad >> 20, bad & 0xfffff);
        let ds = stat(&r, id);
        // A receiver killed holding a handed message whose death was not yet confirmed at the
        // stat (a process seen alive while it exited is not asked again for 0.1 s, and the
        // drain may take that long on a loaded machine) has it put back during the drain.
        let requeued_before = requeued();
        let mut b = Buf::new(0, 0);
        let mut left = Vec::new();
        while let Ok(len) = recv(&r, id, &mut b, 0, IPC_NOWAIT) {
            let seq = seq_of(&b, len).unwrap_or_else(|| panic!("round {round}: a torn message"));
            assert!(log.take(seq), "round {round}: {seq} received twice");
            left.push(seq);
        }
        let late_puts = requeued() - requeued_before;
        assert_eq!(
            (ds.qnum + late_puts, ds.cbytes + 64 * late_puts),
            (left.len() as u64, 64 * left.len() as u64),
            "round {round}: counts"
        );
        assert!(late_puts > 0 || left.is_sorted(), "round {round}: not in order: {left:?}");
        let late = log.late.load(SeqCst);
        assert!(late <= requeued(), "round {round}: {late} out of order, {} put back", requeued());
        // The next round goes on from here.
        let top = left.last().copied().unwrap_or(0).max(log.received.load(SeqCst)).max(log.sent.load(SeqCst));
        log.sent.store(top, SeqCst);
        log.received.store(top, SeqCst);
    }
    // A message handed to a killed receiver may still wait for its death to be confirmed.
    std::thread::sleep(Duration::from_millis(150));
    let mut b = Buf::new(0, 0);
    while let Ok(len) = recv(&r, id, &mut b, 0, IPC_NOWAIT) {
        assert!(seq_of(&b, len).is_some_and(|seq| log.take(seq)), "a torn or twice received message");
    }
    let top = log.sent.load(SeqCst);
    let missing =
        (1..=top).filter(|&seq| log.got[(seq / 64) as usize].load(SeqCst) & 1 << (seq % 64) == 0).count();
    assert!(missing as u64 <= ROUNDS, "{missing} of {top} messages lost");
    assert!(top > 1000, "only {top} messages went through");
}
