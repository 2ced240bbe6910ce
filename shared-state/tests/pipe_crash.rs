//! Processes SIGKILLed in the middle of a pipe operation: holding the pipe's lock mid-copy
//! (made deterministic with userfaultfd: the copy blocks on a page nobody will ever supply),
//! or at random moments. The pipe stays usable, nothing a write returned for is lost, and
//! nothing of a write that did not return is visible unless it was whole pages.

mod common;
mod pipe_common;

use common::{TempDir, fork, kill_and_reap, wait_exit};
use pipe_common::{Env, new_pipe, read, write};
use shared_state::Region;
use shared_state::pipe::{self, PipeHandle};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn leak_region(dir: &TempDir) -> &'static Region {
    Box::leak(Box::new(dir.region("ns")))
}

const UFFD_API: u64 = 0xaa;
/// _IOWR(0xAA, 0x3F, struct uffdio_api) and _IOWR(0xAA, 0x00, struct uffdio_register).
const UFFDIO_API: u64 = 0xc018_aa3f;
const UFFDIO_REGISTER: u64 = 0xc020_aa00;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;

/// `len` bytes of memory whose first touch blocks forever (a userfaultfd nobody serves).
/// Called in the child that will touch it.
fn stuck_memory(len: usize) -> usize {
    // SAFETY: plain syscalls on fresh objects; the ioctl arguments are the documented structs.
    unsafe {
        let uffd = libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC) as i32;
        assert!(uffd >= 0, "userfaultfd: {}", std::io::Error::last_os_error());
        let mut api = [UFFD_API, 0, 0];
        assert_eq!(libc::ioctl(uffd, UFFDIO_API, api.as_mut_ptr()), 0);
        let addr = libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(addr, libc::MAP_FAILED);
        let mut reg = [addr as u64, len as u64, UFFDIO_REGISTER_MODE_MISSING, 0];
        assert_eq!(libc::ioctl(uffd, UFFDIO_REGISTER, reg.as_mut_ptr()), 0);
        addr as usize
    }
}

/// Waits until `pid` sleeps in a userfault (inside our copy, holding the pipe lock).
fn wait_until_stuck(pid: i32) {
    let t = Instant::now();
    loop {
        let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        if wchan.contains("userfault") {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "child never reached the copy (wchan {wchan:?})");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn recoveries(r: &Region) -> u64 {
    r.header().counters.lock_recoveries.load(Ordering::Relaxed)
}

/// A writer killed while copying in, holding the lock: a write of at most PIPE_BUF leaves no
/// trace (merge or new page alike); a larger one may leave the whole buffers it published.
#[test]
fn writer_killed_mid_copy_holding_the_lock() {
    // (valid bytes before the stuck ones, stuck bytes, bytes that become visible)
    for (valid, stuck, visible) in [(0usize, 3000usize, 0usize), (0, 4096, 0), (50, 4096, 50)] {
        let dir = TempDir::new("pipe-kill-wr");
        let r = leak_region(&dir);
        let (h, _k) = new_pipe(r);
        let env = Env::new(true);
        let before: Vec<u8> = (0..1000).map(|i| i as u8).collect();
        write(r, h, &before, &env).unwrap();
        let pid = fork(move || {
            let mem = stuck_memory(8192);
            let head = vec![0xeeu8; valid];
            let iov = [(head.as_ptr() as usize, valid), (mem, stuck)];
            let _ = pipe::pipe_write(r, h, &iov, false, &Env::new(false));
            2
        });
        wait_until_stuck(pid);
        let rec = recoveries(r);
        kill_and_reap(pid);
        assert_eq!(pipe::fionread(r, h), Ok(1000 + visible), "valid {valid} + stuck {stuck}");
        assert_eq!(recoveries(r), rec + 1, "the next locker found the holder dead");
        assert_eq!(write(r, h, b"after", &env), Ok(5));
        let got = pipe_common::read_exact(r, h, 1000 + visible + 5, &env);
        assert_eq!(&got[..1000], &before[..]);
        assert!(got[1000..1000 + visible].iter().all(|&b| b == 0xee));
        assert_eq!(&got[1000 + visible..], b"after");
        assert_eq!(read(r, h, &mut [0u8; 8], &env), Err(libc::EAGAIN));
    }
}

/// A reader killed while copying out leaves every byte queued.
#[test]
fn reader_killed_mid_copy_holding_the_lock() {
    let dir = TempDir::new("pipe-kill-rd");
    let r = leak_region(&dir);
    let (h, _k) = new_pipe(r);
    let env = Env::new(true);
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
    write(r, h, &data, &env).unwrap();
    let pid = fork(move || {
        let mem = stuck_memory(8192);
        let mut head = [0u8; 100];
        let iov = [(head.as_mut_ptr() as usize, 100), (mem, 4900)];
        let _ = pipe::pipe_read(r, h, &iov, &Env::new(false));
        2
    });
    wait_until_stuck(pid);
    kill_and_reap(pid);
    assert_eq!(pipe::fionread(r, h), Ok(5000));
    assert_eq!(pipe_common::read_exact(r, h, 5000, &env), data);
}

fn page_record(seq: u32) -> Vec<u8> {
    let mut v = vec![0u8; 4096];
    for (i, c) in v.chunks_mut(4).enumerate() {
        c.copy_from_slice(&(seq.wrapping_mul(2_654_435_761) ^ i as u32).to_le_bytes());
    }
    v
}

fn check_records(got: &[u8], first: u32) -> u32 {
    assert_eq!(got.len() % 4096, 0, "only whole records");
    for (k, rec) in got.chunks(4096).enumerate() {
        assert_eq!(
            rec,
            &page_record(first + k as u32)[..],
            "record {} intact and in order",
            first + k as u32
        );
    }
    first + (got.len() / 4096) as u32
}

fn drain(r: &Region, h: PipeHandle) -> Vec<u8> {
    let env = Env::new(true);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = read(r, h, &mut buf, &env) {
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Writers killed at random moments, with readers draining concurrently: every record that is
/// queued is whole and they follow one another.
#[test]
fn writers_killed_at_random_moments_leave_whole_records() {
    let dir = TempDir::new("pipe-kill-rand-wr");
    let r = leak_region(&dir);
    let mut rng = 0x1234_5678u32;
    for round in 0..30 {
        let (h, _k) = new_pipe(r);
        let pid = fork(move || {
            let env = Env::new(false);
            let mut seq = 0;
            loop {
                if write(r, h, &page_record(seq), &env) != Ok(4096) {
                    return 1;
                }
                seq += 1;
            }
        });
        rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let env = Env::new(true);
        let mut next = 0;
        let deadline = Instant::now() + Duration::from_micros((rng >> 8) as u64 % 3000);
        let mut buf = vec![0u8; 4096];
        while Instant::now() < deadline {
            if read(r, h, &mut buf, &env) == Ok(4096) {
                next = check_records(&buf, next);
            }
        }
        kill_and_reap(pid);
        let rest = drain(r, h);
        check_records(&rest, next);
        assert_eq!(write(r, h, b"ok", &env), Ok(2), "round {round}: usable");
    }
}

/// Readers killed at random moments: what stays queued is whole records, in order.
#[test]
fn readers_killed_at_random_moments_leave_whole_records() {
    let dir = TempDir::new("pipe-kill-rand-rd");
    let r = leak_region(&dir);
    let mut rng = 0x8765_4321u32;
    for _ in 0..30 {
        let (h, _k) = new_pipe(r);
        let env = Env::new(true);
        let mut seq = 0;
        let pid = fork(move || {
            let env = Env::new(false);
            let mut buf = vec![0u8; 4096];
            loop {
                if read(r, h, &mut buf, &env) != Ok(4096) {
                    return 1;
                }
            }
        });
        rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let deadline = Instant::now() + Duration::from_micros((rng >> 8) as u64 % 3000);
        while Instant::now() < deadline {
            if write(r, h, &page_record(seq), &env) == Ok(4096) {
                seq += 1;
            }
        }
        kill_and_reap(pid);
        let rest = drain(r, h);
        let queued = (rest.len() / 4096) as u32;
        assert!(queued <= seq);
        check_records(&rest, seq - queued);
    }
}

/// After lock holders died, a resize and a blocking exchange still work.
#[test]
fn pipe_works_after_recoveries() {
    let dir = TempDir::new("pipe-kill-after");
    let r = leak_region(&dir);
    let (h, _k) = new_pipe(r);
    for _ in 0..3 {
        let pid = fork(move || {
            let mem = stuck_memory(4096);
            let _ = pipe::pipe_write(r, h, &[(mem, 4096)], false, &Env::new(false));
            2
        });
        wait_until_stuck(pid);
        kill_and_reap(pid);
    }
    assert_eq!(pipe::set_pipe_size(r, h, 8192, false), Ok(8192));
    let pid = fork(move || {
        let env = Env::new(false);
        if write(r, h, &[9u8; 20_000], &env) == Ok(20_000) { 0 } else { 1 }
    });
    let got = pipe_common::read_exact(r, h, 20_000, &Env::new(false));
    assert!(got.iter().all(|&b| b == 9));
    assert_eq!(wait_exit(pid), 0);
}
