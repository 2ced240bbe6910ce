//! Pipes between processes: PIPE_BUF atomicity with several writers, blocking and waking across
//! processes, end of file and EPIPE through the kernel placeholder, signals during a wait.

mod common;
mod pipe_common;

use common::{Pipe, TempDir, fork, kill_and_reap, sleep_forever, wait_exit};
use pipe_common::{Env, KPipe, Peer, new_pipe, read, write};
use shared_state::Region;
use shared_state::pipe::{self, PipeHandle};
use std::time::{Duration, Instant};

fn leak_region(dir: &TempDir) -> &'static Region {
    Box::leak(Box::new(dir.region("ns")))
}

/// Record `seq` of writer `w`: a 4-byte header (length, writer, seq) and a payload that
/// depends on all three, `len` bytes in all.
fn record(w: u8, seq: u8, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    v[..2].copy_from_slice(&(len as u16).to_le_bytes());
    v[2] = w;
    v[3] = seq;
    for (i, b) in v[4..].iter_mut().enumerate() {
        *b = w.wrapping_mul(31).wrapping_add(seq).wrapping_add(i as u8);
    }
    v
}

fn record_len(w: u8, seq: u32) -> usize {
    // Sizes from 4 to PIPE_BUF, spread over the range.
    4 + ((seq as usize * 2_654_435_761 + w as usize * 97) % (4096 - 4 + 1))
}

/// Writes of at most PIPE_BUF bytes never interleave, whatever the number of writers, also
/// when they block on a full pipe.
#[test]
fn pipe_buf_writes_never_interleave() {
    for ring in [65536usize, 8192] {
        let dir = TempDir::new("pipe-atomic");
        let r = leak_region(&dir);
        let (h, _k) = new_pipe(r);
        assert_eq!(pipe::set_pipe_size(r, h, ring, false), Ok(ring));
        const WRITERS: u8 = 4;
        const RECORDS: u32 = 600;
        let mut expect_total = 0;
        let mut pids = Vec::new();
        for w in 0..WRITERS {
            expect_total += (0..RECORDS).map(|s| record_len(w, s)).sum::<usize>();
            pids.push(fork(move || {
                let env = Env::new(false);
                for s in 0..RECORDS {
                    let rec = record(w, s as u8, record_len(w, s));
                    if write(r, h, &rec, &env) != Ok(rec.len()) {
                        return 1;
                    }
                }
                0
            }));
        }
        let env = Env::new(false);
        let mut stream = Vec::with_capacity(expect_total);
        let mut buf = vec![0u8; 7000];
        let mut chunk = 1;
        while stream.len() < expect_total {
            // Odd read sizes, so records are split across reads.
            chunk = (chunk * 7 + 13) % buf.len() + 1;
            let n = read(r, h, &mut buf[..chunk], &env).unwrap();
            stream.extend_from_slice(&buf[..n]);
        }
        let mut next = [0u32; WRITERS as usize];
        let mut off = 0;
        while off < stream.len() {
            let len = u16::from_le_bytes([stream[off], stream[off + 1]]) as usize;
            let (w, seq) = (stream[off + 2], next[stream[off + 2] as usize]);
            assert_eq!(stream[off + 3], seq as u8, "writer {w}: records in order");
            assert_eq!(len, record_len(w, seq), "writer {w} record {seq}: length");
            assert_eq!(&stream[off..off + len], &record(w, seq as u8, len)[..], "record {seq} of {w} intact");
            next[w as usize] += 1;
            off += len;
        }
        assert!(next.iter().all(|&n| n == RECORDS));
        for pid in pids {
            assert_eq!(wait_exit(pid), 0);
        }
    }
}

#[test]
fn blocked_reader_is_woken_by_a_writer_in_another_process() {
    let dir = TempDir::new("pipe-wake-rd");
    let r = leak_region(&dir);
    let (h, _k) = new_pipe(r);
    let pid = fork(|| {
        std::thread::sleep(Duration::from_millis(50));
        let env = Env::new(false);
        if write(r, h, b"ping", &env) == Ok(4) { 0 } else { 1 }
    });
    let env = Env::new(false);
    let mut buf = [0u8; 16];
    let t = Instant::now();
    assert_eq!(read(r, h, &mut buf, &env), Ok(4));
    assert_eq!(&buf[..4], b"ping");
    assert!(env.waits.get() >= 1, "the reader slept");
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(wait_exit(pid), 0);
}

#[test]
fn writer_blocks_until_the_reader_drains() {
    let dir = TempDir::new("pipe-wake-wr");
    let r = leak_region(&dir);
    let (h, _k) = new_pipe(r);
    let mut done = Pipe::new();
    let pid = fork(|| {
        let env = Env::new(false);
        if write(r, h, &vec![1u8; 65536], &env) != Ok(65536) {
            return 1;
        }
        // The pipe is full: this blocks until the parent reads.
        if write(r, h, &[2u8; 100], &env) != Ok(100) {
            return 2;
        }
        done.send(1);
        0
    });
    done.close_write();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(pipe::fionread(r, h), Ok(65536));
    assert_eq!(pipe::pipe_poll(r, h), (true, false));
    let env = Env::new(false);
    let mut buf = vec![0u8; 4096];
    assert_eq!(read(r, h, &mut buf, &env), Ok(4096));
    assert_eq!(done.recv(), Some(1), "the writer finished once there was room");
    assert_eq!(pipe::fionread(r, h), Ok(65536 - 4096 + 100));
    assert_eq!(wait_exit(pid), 0);
}

/// A writer that exits (closing the placeholder's write end) ends the reader's wait with end
/// of file, even with nobody telling the object: the placeholder's POLLHUP is found by the
/// reader's periodic forced check.
#[test]
fn reader_sees_eof_when_the_writer_exits_or_is_killed() {
    for kill in [false, true] {
        let dir = TempDir::new("pipe-eof-mp");
        let r = leak_region(&dir);
        let (h, mut k) = new_pipe(r);
        let pid = fork(|| {
            let env = Env::new(false);
            if write(r, h, b"bye", &env) != Ok(3) {
                return 1;
            }
            if kill {
                sleep_forever();
            }
            std::thread::sleep(Duration::from_millis(50));
            0
        });
        k.close_wr();
        let env = Env::cached(r, h, false, Peer::ReadEnd(k.rd));
        let mut buf = [0u8; 16];
        assert_eq!(read(r, h, &mut buf, &env), Ok(3));
        let killer = kill.then(|| {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                kill_and_reap(pid);
            })
        });
        let t = Instant::now();
        assert_eq!(read(r, h, &mut buf, &env), Ok(0), "end of file");
        assert!(t.elapsed() < Duration::from_secs(2), "found within a few slices");
        assert!(env.forced.get() >= 1);
        match killer {
            Some(t) => t.join().unwrap(),
            None => assert_eq!(wait_exit(pid), 0),
        }
    }
}

/// With no reader left, a write fails with EPIPE: at once when the reader's close was noted,
/// after a slice when it was killed (blocking writer) or when the pipe is full (non-blocking).
#[test]
fn writer_gets_epipe_when_the_reader_is_gone() {
    for (noted, nonblock) in [(true, false), (false, false), (false, true)] {
        let dir = TempDir::new("pipe-epipe");
        let r = leak_region(&dir);
        let (h, mut k) = new_pipe(r);
        let (mut ready, go) = (Pipe::new(), Pipe::new());
        let pid = fork(|| {
            ready.send(1);
            if noted {
                // Exits (closing its read end) when told to.
                go.recv();
                return 0;
            }
            sleep_forever()
        });
        ready.close_write();
        assert_eq!(ready.recv(), Some(1));
        k.close_rd();
        let env = Env::cached(r, h, nonblock, Peer::WriteEnd(k.wr));
        assert_eq!(write(r, h, b"hello", &env), Ok(5), "the reader is still there");
        if noted {
            go.send(1);
            assert_eq!(wait_exit(pid), 0);
            pipe::note_close(r, h);
            assert_eq!(write(r, h, b"x", &env), Err(libc::EPIPE));
            continue;
        }
        kill_and_reap(pid);
        // Nothing told the object: the cache answers "alive" until a forced check.
        let big = vec![0u8; 100_000];
        let first = write(r, h, &big, &env);
        // 1696 bytes (100000 mod 4096) merge behind "hello", then 15 whole pages.
        assert_eq!(first, Ok(1696 + 15 * 4096), "what fit before the forced check");
        assert_eq!(write(r, h, b"x", &env), Err(libc::EPIPE));
    }
}

#[test]
fn interrupted_waits_restart_or_fail_with_eintr() {
    extern "C" fn nothing(_: i32) {}
    // SAFETY: installs a handler that does nothing, without SA_RESTART.
    unsafe { libc::signal(libc::SIGUSR1, nothing as *const () as usize) };
    for restart in [false, true] {
        let dir = TempDir::new("pipe-eintr");
        let r = leak_region(&dir);
        let (h, _k) = new_pipe(r);
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tx.send(unsafe { libc::pthread_self() }).unwrap();
            let mut env = Env::new(false);
            env.restart = restart;
            let mut buf = [0u8; 8];
            read(r, h, &mut buf, &env)
        });
        let tid = rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // SAFETY: the reader thread is alive (it joins below).
        unsafe { libc::pthread_kill(tid, libc::SIGUSR1) };
        std::thread::sleep(Duration::from_millis(50));
        if restart {
            write(r, h, b"late", &Env::new(true)).unwrap();
            assert_eq!(reader.join().unwrap(), Ok(4), "restarted, then read");
        } else {
            assert_eq!(reader.join().unwrap(), Err(libc::EINTR));
        }
    }
}

/// A blocked writer interrupted after writing part of a large write returns the partial
/// count, as the kernel's pipe_write does.
#[test]
fn interrupted_large_write_returns_what_was_written() {
    extern "C" fn nothing(_: i32) {}
    // SAFETY: installs a handler that does nothing, without SA_RESTART.
    unsafe { libc::signal(libc::SIGUSR2, nothing as *const () as usize) };
    let dir = TempDir::new("pipe-eintr-wr");
    let r = leak_region(&dir);
    let (h, _k) = new_pipe(r);
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        // SAFETY: pthread_self has no preconditions.
        tx.send(unsafe { libc::pthread_self() }).unwrap();
        let mut env = Env::new(false);
        env.restart = false;
        write(r, h, &vec![3u8; 100_000], &env)
    });
    let tid = rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // SAFETY: the writer thread is alive (it joins below).
    unsafe { libc::pthread_kill(tid, libc::SIGUSR2) };
    assert_eq!(writer.join().unwrap(), Ok(65536));
}

fn ping_pong(r: &'static Region, h: [PipeHandle; 2], rounds: u32, cpus: (usize, usize)) -> Duration {
    let pid = fork(move || {
        pipe_common::pin(cpus.1);
        let env = Env::new(false);
        let mut b = [0u8; 1];
        for _ in 0..rounds {
            if read(r, h[0], &mut b, &env) != Ok(1) || write(r, h[1], &b, &env) != Ok(1) {
                return 1;
            }
        }
        0
    });
    pipe_common::pin(cpus.0);
    let env = Env::new(false);
    let mut b = [7u8; 1];
    let t = Instant::now();
    for _ in 0..rounds {
        write(r, h[0], &b, &env).unwrap();
        assert_eq!(read(r, h[1], &mut b, &env), Ok(1));
    }
    let d = t.elapsed() / rounds;
    assert_eq!(wait_exit(pid), 0);
    d
}

fn kernel_ping_pong(rounds: u32, cpus: (usize, usize)) -> Duration {
    let (a, b) = (KPipe::new(), KPipe::new());
    let pid = fork(|| {
        pipe_common::pin(cpus.1);
        let mut c = [0u8; 1];
        for _ in 0..rounds {
            // SAFETY: one byte into/from valid buffers.
            unsafe {
                libc::read(a.rd, c.as_mut_ptr() as *mut libc::c_void, 1);
                libc::write(b.wr, c.as_ptr() as *const libc::c_void, 1);
            }
        }
        0
    });
    pipe_common::pin(cpus.0);
    let mut c = [7u8; 1];
    let t = Instant::now();
    for _ in 0..rounds {
        // SAFETY: as above.
        unsafe {
            libc::write(a.wr, c.as_ptr() as *const libc::c_void, 1);
            libc::read(b.rd, c.as_mut_ptr() as *mut libc::c_void, 1);
        }
    }
    let d = t.elapsed() / rounds;
    assert_eq!(wait_exit(pid), 0);
    d
}

/// One-byte ping-pong between two processes, on one CPU and on two, next to the kernel's
/// pipes. Timings are printed, not asserted (the machine is shared); correctness is.
#[test]
fn ping_pong_between_processes() {
    let dir = TempDir::new("pipe-pingpong");
    let r = leak_region(&dir);
    let h = [new_pipe(r), new_pipe(r)];
    let handles = [h[0].0, h[1].0];
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let placements: &[(usize, usize)] = if ncpu > 1 { &[(0, 0), (0, 1)] } else { &[(0, 0)] };
    // Run on a thread so pinning does not stick to the harness's thread.
    std::thread::spawn(move || {
        for &cpus in placements {
            let shim = ping_pong(r, handles, 5000, cpus);
            let kernel = kernel_ping_pong(5000, cpus);
            eprintln!(
                "ping-pong cpus {cpus:?}: shim {:?}, kernel {:?} per round trip ({:.1}x)",
                shim,
                kernel,
                kernel.as_secs_f64() / shim.as_secs_f64()
            );
        }
    })
    .join()
    .unwrap();
}
