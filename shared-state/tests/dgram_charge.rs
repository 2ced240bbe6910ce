//! Named datagram sockets' charges (`sk_wmem_alloc`): each datagram in a receive queue is
//! charged to its sender until it is taken. Senders and receivers SIGKILLed at random moments,
//! some while holding a receive queue's or a sender's charge lock: every datagram that stays
//! queued is whole and readable (a dead sender's too), and each sender's charge is exactly the
//! truesize of its datagrams still queued, then nothing once they are read.

mod common;
mod pipe_common;

use common::{TempDir, fork, kill_and_reap};
use pipe_common::{Env, KPipe};
use shared_state::Region;
use shared_state::pipe::{self, PipeHandle, UnixCb};
use shared_state::skb;
use std::time::{Duration, Instant};

const STATE: u32 = pipe::SOCK_LINKED | pipe::SOCK_RECORDS | pipe::SOCK_DGRAM | pipe::SOCK_RECV_QUEUE;

fn leak_region(dir: &TempDir) -> &'static Region {
    Box::leak(Box::new(dir.region("ns")))
}

/// A datagram socket's receive queue, named like a socket (a kernel pipe stands in).
fn socket(r: &Region) -> (PipeHandle, KPipe) {
    let k = KPipe::new();
    let (dev, ino) = k.key();
    let h = pipe::pipe_new(r, dev, ino).unwrap();
    pipe::sock_init(r, h, STATE);
    (h, k)
}

/// Sender number [`SMALL`] sends datagrams of at most this many bytes (its calls spend more of
/// their time under the locks).
const SMALL: usize = 3;

/// Datagram `seq` of sender `from`: its length varies (1 byte to 3 pages), every byte is
/// derived from (from, seq).
fn datagram(from: usize, seq: u32) -> Vec<u8> {
    let max = if from == SMALL { 100 } else { 12_000 };
    let len = 1 + (seq.wrapping_mul(2_654_435_761) >> 7) as usize % max;
    (0..len).map(|i| (seq as usize * 31 + i * 7 + from * 101) as u8).collect()
}

/// Sends datagrams of sender `from` (socket `s`) to `to` for ever, as the shim does:
/// `sock_alloc_send_pskb`'s check, then the record with its header.
fn send_forever(r: &Region, from: usize, s: PipeHandle, to: PipeHandle) -> ! {
    let env = Env::new(true);
    let cb = UnixCb { sender: s.to_bits() + 1, ..Default::default() };
    let mut seq = 0;
    loop {
        let d = datagram(from, seq);
        if pipe::dgram_alloc(r, s, &env).is_ok() {
            let mut c = cb;
            c.pid = seq;
            if pipe::dgram_write(r, to, &[(d.as_ptr() as usize, d.len())], Some(&c), &env, None)
                == Ok(d.len())
            {
                seq += 1;
            }
        }
    }
}

/// Takes every datagram queued in `to`, checking each; returns the truesize taken per sender.
fn drain(r: &Region, to: PipeHandle, senders: &[PipeHandle]) -> Vec<usize> {
    let env = Env::new(true);
    let mut buf = vec![0u8; 65536];
    let mut taken = vec![0; senders.len()];
    loop {
        let mut cb = UnixCb::default();
        match pipe::record_read(r, to, &[(buf.as_mut_ptr() as usize, buf.len())], &env, false, &mut cb) {
            Ok(Some((n, len))) => {
                assert_eq!(n, len);
                let from = senders.iter().position(|s| s.to_bits() + 1 == cb.sender).expect("a known sender");
                assert_eq!(
                    &buf[..n],
                    &datagram(from, cb.pid)[..],
                    "datagram {} of sender {from} whole",
                    cb.pid
                );
                taken[from] += skb::dgram_truesize(n);
            }
            Err(libc::EAGAIN) => return taken,
            other => panic!("record_read: {other:?}"),
        }
    }
}

fn outq(r: &Region, s: PipeHandle) -> usize {
    pipe::sock_outq(r, s).unwrap()
}

#[test]
fn senders_and_receivers_killed_at_random_moments_keep_charges_exact() {
    let dir = TempDir::new("dgram-charge-kill");
    let r = leak_region(&dir);
    let (to, _k) = socket(r);
    let socks: Vec<(PipeHandle, KPipe)> = (0..3).map(|_| socket(r)).collect();
    let senders: Vec<PipeHandle> = socks.iter().map(|s| s.0).collect();
    let mut rng = 0x2545_f491u32;
    for round in 0..60 {
        let pids: Vec<i32> =
            senders.iter().enumerate().map(|(from, &s)| fork(move || send_forever(r, from, s, to))).collect();
        let reader = fork(move || {
            let env = Env::new(true);
            let mut buf = vec![0u8; 65536];
            loop {
                let mut cb = UnixCb::default();
                let _ =
                    pipe::record_read(r, to, &[(buf.as_mut_ptr() as usize, buf.len())], &env, false, &mut cb);
            }
        });
        rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12345);
        std::thread::sleep(Duration::from_micros(200 + (rng >> 8) as u64 % 5000));
        // Killed one at a time, in a varying order, each at its own moment.
        let mut all: Vec<i32> = pids.iter().copied().chain([reader]).collect();
        all.rotate_left(round % (senders.len() + 1));
        for pid in all {
            kill_and_reap(pid);
        }
        let charged: Vec<usize> = senders.iter().map(|&s| outq(r, s)).collect();
        let taken = drain(r, to, &senders);
        assert_eq!(charged, taken, "round {round}: each sender charged for exactly its queued datagrams");
        for &s in &senders {
            assert_eq!(outq(r, s), 0, "round {round}: nothing charged once all is read");
        }
    }
}

#[test]
fn a_closed_senders_datagrams_stay_readable() {
    let dir = TempDir::new("dgram-charge-closed");
    let r = leak_region(&dir);
    let (to, _k) = socket(r);
    let (s, _ks) = socket(r);
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = fork(move || send_forever(r, 0, s, to));
    // The sender fills its send buffer, then is killed and its socket released.
    while outq(r, s) < skb::SNDBUF_DEFAULT as usize {
        assert!(Instant::now() < deadline, "the sender filled its buffer");
        std::thread::sleep(Duration::from_millis(1));
    }
    kill_and_reap(pid);
    let charged = outq(r, s);
    pipe::release(r, s);
    assert_eq!(drain(r, to, &[s]), [charged], "every datagram of the dead sender read");
}

/// Stops `pid` (a sender or a reader), and kills it if it was stopped holding sender `s`'s
/// charge lock; otherwise lets it go on. Whether it was killed so.
fn kill_if_holding(r: &Region, pid: i32, s: PipeHandle) -> bool {
    // SAFETY: plain syscalls on our own child.
    unsafe {
        assert_eq!(libc::kill(pid, libc::SIGSTOP), 0);
        let mut st = 0;
        assert_eq!(libc::waitpid(pid, &mut st, libc::WUNTRACED), pid);
        if pipe::charge_lock_holder(r, s) == pid {
            kill_and_reap(pid);
            return true;
        }
        assert_eq!(libc::kill(pid, libc::SIGCONT), 0);
    }
    // Runs a while before the next stop, even on a busy machine.
    std::thread::sleep(Duration::from_micros(30));
    false
}

/// Senders and readers stopped at random moments and killed only when they hold the
/// sender's charge lock: its next taker counts the charge again from the queue, exactly.
#[test]
fn killed_holding_the_charge_lock() {
    let dir = TempDir::new("dgram-charge-lock");
    let r = leak_region(&dir);
    let (to, _k) = socket(r);
    // Only the last sends; the others stand for the numbers before it.
    let socks: Vec<(PipeHandle, KPipe)> = (0..=SMALL).map(|_| socket(r)).collect();
    let senders: Vec<PipeHandle> = socks.iter().map(|s| s.0).collect();
    let s = senders[SMALL];
    // Killed holding it: [senders, readers].
    let mut killed = [0u32; 2];
    let mut rounds = 0;
    while killed.iter().any(|&k| k < 3) && rounds < 100 {
        rounds += 1;
        let sender = fork(move || send_forever(r, SMALL, s, to));
        let reader = fork(move || {
            let env = Env::new(true);
            let mut buf = vec![0u8; 65536];
            loop {
                let mut cb = UnixCb::default();
                let iov = [(buf.as_mut_ptr() as usize, buf.len())];
                let _ = pipe::record_read(r, to, &iov, &env, false, &mut cb);
            }
        });
        let which = (killed[1] < killed[0]) as usize;
        let target = [sender, reader][which];
        let caught = (0..1000).any(|_| kill_if_holding(r, target, s));
        killed[which] += caught as u32;
        for pid in [sender, reader] {
            if !(caught && pid == target) {
                kill_and_reap(pid);
            }
        }
        let charged = outq(r, s);
        assert_eq!(drain(r, to, &senders)[SMALL], charged, "charged for exactly what is queued");
        assert_eq!(outq(r, s), 0);
    }
    eprintln!("killed holding the charge lock in {rounds} rounds: {killed:?} (senders, readers)");
    assert!(killed.iter().all(|&k| k > 0), "caught holding the lock: {killed:?}");
}
