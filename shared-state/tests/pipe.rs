//! Pipe semantics in one process, checked against fs/pipe.c's rules and, where the kernel can
//! be asked directly, against a real kernel pipe doing the same thing.

mod common;
mod pipe_common;

use common::TempDir;
use pipe_common::{Env, KPipe, before_guard, install_fault_handler, new_pipe, read, write, write_packet};
use shared_state::pipe::{self, PipeHandle};
use shared_state::{Region, sys};
use std::sync::atomic::Ordering;

fn region(dir: &TempDir) -> Region {
    dir.region("ns")
}

fn fionread(r: &Region, h: PipeHandle) -> usize {
    pipe::fionread(r, h).unwrap()
}

/// The kernel's answer for the same call on a kernel pipe (Ok(n) or Err(errno)).
fn kernel(rc: isize) -> Result<usize, i32> {
    if rc < 0 { Err(std::io::Error::last_os_error().raw_os_error().unwrap()) } else { Ok(rc as usize) }
}

fn kernel_fionread(fd: i32) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD stores an int.
    assert_eq!(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) }, 0);
    n as usize
}

fn set_nonblock(fd: i32) {
    // SAFETY: plain fcntl.
    unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
}

#[test]
fn write_then_read_round_trips() {
    let dir = TempDir::new("pipe-rw");
    let r = region(&dir);
    let (h, _k) = new_pipe(&r);
    let env = Env::new(true);
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    assert_eq!(write(&r, h, &data, &env), Ok(10_000));
    assert_eq!(fionread(&r, h), 10_000);
    let mut buf = vec![0u8; 20_000];
    assert_eq!(read(&r, h, &mut buf[..3], &env), Ok(3));
    assert_eq!(read(&r, h, &mut buf[3..], &env), Ok(9_997));
    assert_eq!(&buf[..10_000], &data[..]);
    assert_eq!(read(&r, h, &mut buf, &env), Err(libc::EAGAIN));
    assert_eq!(write(&r, h, &[], &env), Ok(0), "null write succeeds");
    assert_eq!(read(&r, h, &mut [], &env), Ok(0), "null read succeeds");
    let c = &r.header().counters;
    assert_eq!(c.pipes_created.load(Ordering::Relaxed), 1);
    assert_eq!(c.pipe_bytes_in.load(Ordering::Relaxed), 10_000);
    assert_eq!(c.pipe_bytes_out.load(Ordering::Relaxed), 10_000);
}

#[test]
fn readv_and_writev_cross_segments() {
    let dir = TempDir::new("pipe-iov");
    let r = region(&dir);
    let (h, _k) = new_pipe(&r);
    let env = Env::new(true);
    let (a, b, c) = ([1u8; 3000], [2u8; 3000], [3u8; 3000]);
    let iov = [(a.as_ptr() as usize, 3000), (0, 0), (b.as_ptr() as usize, 3000), (c.as_ptr() as usize, 3000)];
    assert_eq!(pipe::pipe_write(&r, h, &iov, false, &env), Ok(9000));
    let (mut x, mut y) = ([0u8; 5000], [0u8; 5000]);
    let out = [(x.as_mut_ptr() as usize, 5000), (y.as_mut_ptr() as usize, 5000)];
    assert_eq!(pipe::pipe_read(&r, h, &out, &env), Ok(9000));
    assert!(x[..3000].iter().all(|&v| v == 1) && x[3000..].iter().all(|&v| v == 2));
    assert!(y[..1000].iter().all(|&v| v == 2) && y[1000..4000].iter().all(|&v| v == 3));
}

/// Small writes are merged into the last buffer, so they take one ring slot, as on the kernel.
#[test]
fn small_writes_merge_into_one_buffer() {
    let dir = TempDir::new("pipe-merge");
    let r = region(&dir);
    let (h, _k) = new_pipe(&r);
    let k = KPipe::new();
    set_nonblock(k.wr);
    let env = Env::new(true);
    for _ in 0..3 {
        assert_eq!(write(&r, h, &[9u8; 10], &env), Ok(10));
        // SAFETY: writes 10 bytes from a valid buffer.
        assert_eq!(unsafe { libc::write(k.wr, [9u8; 10].as_ptr() as *const libc::c_void, 10) }, 10);
    }
    let big = vec![5u8; 65536];
    // SAFETY: writes from a valid 64 KiB buffer.
    let kernel_n = kernel(unsafe { libc::write(k.wr, big.as_ptr() as *const libc::c_void, big.len()) });
    assert_eq!(kernel_n, Ok(15 * 4096), "the kernel: 15 free slots after three merged writes");
    assert_eq!(write(&r, h, &big, &env), kernel_n);
    assert_eq!(fionread(&r, h), kernel_fionread(k.rd));
}

#[test]
fn packet_mode_reads_one_packet_per_read_and_drops_the_rest() {
    let dir = TempDir::new("pipe-packet");
    let r = region(&dir);
    let (h, _k) = new_pipe(&r);
    let env = Env::new(true);
    assert_eq!(write_packet(&r, h, b"abc", &env), Ok(3));
    assert_eq!(write_packet(&r, h, b"defg", &env), Ok(4));
    assert_eq!(write_packet(&r, h, b"hello world", &env), Ok(11));
    assert_eq!(fionread(&r, h), 18);
    let mut buf = [0u8; 100];
    assert_eq!(read(&r, h, &mut buf, &env), Ok(3));
    assert_eq!(&buf[..3], b"abc");
    assert_eq!(read(&r, h, &mut buf, &env), Ok(4));
    assert_eq!(&buf[..4], b"defg");
    assert_eq!(read(&r, h, &mut buf[..5], &env), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(read(&r, h, &mut buf, &env), Err(libc::EAGAIN), "the rest of the packet is gone");
    // A plain write after a packet does not merge into it.
    assert_eq!(write_packet(&r, h, b"p", &env), Ok(1));
    assert_eq!(write(&r, h, b"q", &env), Ok(1));
    assert_eq!(read(&r, h, &mut buf, &env), Ok(1));
    assert_eq!(read(&r, h, &mut buf, &env), Ok(1));
    assert_eq!(buf[0], b'q');
}

#[test]
fn packet_mode_matches_the_kernel() {
    let dir = TempDir::new("pipe-packet-k");
    let r = region(&dir);
    let (h, _k) = new_pipe(&r);
    let env = Env::new(true);
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    assert_eq!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_DIRECT | libc::O_NONBLOCK | libc::O_CLOEXEC) },
        0
    );
    let sizes = [1usize, 4095, 4096, 5000, 9000, 3];
    for &n in &sizes {
        let data = vec![n as u8; n];
        // SAFETY: writes from a valid buffer.
        let k = kernel(unsafe { libc::write(fds[1], data.as_ptr() as *const libc::c_void, n) });
        assert_eq!(write_packet(&r, h, &data, &env), k, "write of {n}");
    }
    assert_eq!(fionread(&r, h), kernel_fionread(fds[0]));
    for want in [10usize, 5000, 4096, 100, 100, 100, 100] {
        let (mut a, mut b) = (vec![0u8; want], vec![0u8; want]);
        // SAFETY: reads into a valid buffer.
        let k = kernel(unsafe { libc::read(fds[0], a.as_mut_ptr() as *mut libc::c_void, want) });
        assert_eq!(read(&r, h, &mut b, &env), k, "read of {want}");
        assert_eq!(a, b);
    }
    // SAFETY: closes our descriptors.
    unsafe { libc::close(fds[0]) };
    // SAFETY: as above.
    unsafe { libc::close(fds[1]) };
}

#[test]
fn nonblocking_writes_partial_above_pipe_buf_eagain_when_full() {
    let dir = TempDir::new("pipe-eagain");
    let r = region(&dir);
    let (h, _k) = new_pipe(&r);
    let env = Env::new(true);
    let page = [1u8; 4096];
    for _ in 0..15 {
        assert_eq!(write(&r, h, &page, &env), Ok(4096));
    }
    // One free slot: a write above PIPE_BUF writes what fits.
    assert_eq!(write(&r, h, &[2u8; 10_000], &env), Ok(4096));
    assert_eq!(write(&r, h, &[3u8; 10], &env), Err(libc::EAGAIN), "full");
    assert_eq!(write(&r, h, &[3u8; 10_000], &env), Err(libc::EAGAIN));
    assert_eq!(fionread(&r, h), 65536);
    assert_eq!(pipe::pipe_poll(&r, h), (true, false));
    let mut buf = [0u8; 100];
    assert_eq!(read(&r, h, &mut buf, &env), Ok(100));
    assert_eq!(pipe::pipe_poll(&r, h), (true, false), "a partly read buffer still holds its slot");
    let mut rest = vec![0u8; 4096 - 100];
    assert_eq!(read(&r, h, &mut rest, &env), Ok(3996));
    assert_eq!(pipe::pipe_poll(&r, h), (true, true));
    // A write of at most PIPE_BUF needs only one free slot, and goes in whole.
    assert_eq!(write(&r, h, &[4u8; 4096], &env), Ok(4096));
}

#[test]
fn empty_pipe_is_eagain_or_eof() {
    let dir = TempDir::new("pipe-eof");
    let r = region(&dir);
    let (h, _k) = new_pipe(&r);
    let env = Env::new(true);
    let mut buf = [0u8; 10];
    assert_eq!(read(&r, h, &mut buf, &env), Err(libc::EAGAIN));
    assert_eq!(pipe::pipe_poll(&r, h), (false, true));
    assert_eq!(write(&r, h, b"last", &env), Ok(4));
    env.gone.set(true);
    assert_eq!(read(&r, h, &mut buf, &env), Ok(4), "data first");
    assert_eq!(read(&r, h, &mut buf, &env), Ok(0), "then end of file");
    let blocking = Env::new(false);
    blocking.gone.set(true);
    assert_eq!(read(&r, h, &mut buf, &blocking), Ok(0), "no wait without writers");
    assert_eq!(write(&r, h, b"x", &env), Err(libc::EPIPE), "no readers");
    assert_eq!(blocking.waits.get(), 0);
}

#[test]
fn resize_keeps_data_and_follows_pipe_set_size() {
    let dir = TempDir::new("pipe-resize");
    let r = region(&dir);
    let (h, _k) = new_pipe(&r);
    let env = Env::new(true);
    assert_eq!(pipe::get_pipe_size(&r, h), Ok(65536));
    // Move head and tail away from slot 0 so the queued buffers wrap around the ring.
    let mut sink = vec![0u8; 65536];
    for _ in 0..13 {
        write(&r, h, &[0u8; 4096], &env).unwrap();
    }
    assert_eq!(read(&r, h, &mut sink[..13 * 4096], &env), Ok(13 * 4096));
    let data: Vec<u8> = (0..5 * 4096 + 123).map(|i| (i % 251) as u8).collect();
    assert_eq!(write(&r, h, &data, &env), Ok(data.len()));
    // 6 buffers queued: shrinking below that is EBUSY.
    assert_eq!(pipe::set_pipe_size(&r, h, 4 * 4096, false), Err(libc::EBUSY));
    assert_eq!(pipe::set_pipe_size(&r, h, 5 * 4096 + 1, false), Ok(8 * 4096), "rounded up to a power of two");
    assert_eq!(pipe::get_pipe_size(&r, h), Ok(8 * 4096));
    assert_eq!(pipe::set_pipe_size(&r, h, 300 * 1024, false), Ok(512 * 1024));
    assert_eq!(fionread(&r, h), data.len());
    // Merging still works after the move.
    assert_eq!(write(&r, h, b"tail", &env), Ok(4));
    let got = pipe_common::read_exact(&r, h, data.len() + 4, &env);
    assert_eq!(&got[..data.len()], &data[..]);
    assert_eq!(&got[data.len()..], b"tail");
    assert_eq!(pipe::set_pipe_size(&r, h, 0, false), Ok(4096), "round_pipe_size: at least a page");
    assert_eq!(pipe::set_pipe_size(&r, h, (1 << 31) + 1, true), Err(libc::EINVAL));
    assert_eq!(pipe::set_pipe_size(&r, h, (1 << 32) + 8192, false), Ok(8192), "fcntl's argument is an int");
    let max = r.header().limits.pipe_max_size as usize;
    assert_eq!(pipe::set_pipe_size(&r, h, max * 2, false), Err(libc::EPERM));
    assert_eq!(pipe::set_pipe_size(&r, h, max * 2, true), Ok(max * 2));
    assert_eq!(pipe::set_pipe_size(&r, h, 4096, false), Ok(4096), "shrinking needs no privilege");
    let one = [7u8; 4096];
    assert_eq!(write(&r, h, &one, &env), Ok(4096));
    assert_eq!(write(&r, h, b"x", &env), Err(libc::EAGAIN), "one slot now");
}

/// The kernel's pipe-max-size rule, against the kernel itself (as root, CAP_SYS_RESOURCE lets
/// both grow beyond it).
#[test]
fn set_pipe_size_matches_the_kernel() {
    let dir = TempDir::new("pipe-setsz-k");
    let r = region(&dir);
    let (h, k) = new_pipe(&r);
    let env = Env::new(true);
    let privileged = sys::effective_caps() & (1 << 24) != 0;
    set_nonblock(k.wr);
    for arg in [0usize, 1, 4095, 4096, 4097, 65536, 100_000, 1 << 20, (1 << 20) + 1, 8192] {
        // SAFETY: plain fcntl on our kernel pipe.
        let want = kernel(unsafe { libc::fcntl(k.wr, libc::F_SETPIPE_SZ, arg as libc::c_int) } as isize);
        assert_eq!(pipe::set_pipe_size(&r, h, arg, privileged), want, "F_SETPIPE_SZ {arg}");
    }
    // SAFETY: writes from valid buffers into the kernel pipe; then the same into ours.
    unsafe {
        libc::write(k.wr, [1u8; 4096].as_ptr() as *const libc::c_void, 4096);
        libc::write(k.wr, [1u8; 10].as_ptr() as *const libc::c_void, 10);
    }
    write(&r, h, &[1u8; 4096], &env).unwrap();
    write(&r, h, &[1u8; 10], &env).unwrap();
    // SAFETY: plain fcntl.
    let want = kernel(unsafe { libc::fcntl(k.wr, libc::F_SETPIPE_SZ, 4096) } as isize);
    assert_eq!(want, Err(libc::EBUSY));
    assert_eq!(pipe::set_pipe_size(&r, h, 4096, privileged), want);
}

/// NOTES §6: EFAULT and partial counts exactly as the kernel's pipe_write and pipe_read.
#[test]
fn efault_partial_counts_match_the_kernel() {
    install_fault_handler();
    let dir = TempDir::new("pipe-efault");
    let r = region(&dir);
    let env = Env::new(true);
    let k = KPipe::new();
    set_nonblock(k.rd);
    set_nonblock(k.wr);
    let (h, _p) = new_pipe(&r);
    let drain = |h: PipeHandle| {
        let mut sink = vec![0u8; 1 << 17];
        while read(&r, h, &mut sink, &env).is_ok() {}
        // SAFETY: reads into a valid buffer.
        while unsafe { libc::read(k.rd, sink.as_mut_ptr() as *mut libc::c_void, sink.len()) } > 0 {}
    };
    // Writes: (bytes queued first, valid bytes before the guard page, total length).
    let cases = [
        (0, 100, 300),
        (0, 4196, 4396),
        (0, 0, 10),
        (0, 8192, 8292),
        (50, 100, 300),
        (50, 4096 + 10, 4096 + 500),
    ];
    for (queued, valid, total) in cases {
        drain(h);
        let pre = vec![1u8; queued];
        if queued > 0 {
            write(&r, h, &pre, &env).unwrap();
            // SAFETY: valid buffer.
            unsafe { libc::write(k.wr, pre.as_ptr() as *const libc::c_void, queued) };
        }
        let src = before_guard(valid);
        // SAFETY: the kernel reports the fault as EFAULT or a short count.
        let want = kernel(unsafe { libc::write(k.wr, src as *const libc::c_void, total) });
        let got = pipe::pipe_write(&r, h, &[(src, total)], false, &env);
        assert_eq!(got, want, "write of {valid} valid + {} bad bytes after {queued}", total - valid);
        assert_eq!(fionread(&r, h), kernel_fionread(k.rd), "queued after that write");
        // What is queued is the same bytes.
        let mut a = vec![0u8; 1 << 16];
        let mut b = vec![0u8; 1 << 16];
        // SAFETY: valid buffer.
        let ka = kernel(unsafe { libc::read(k.rd, a.as_mut_ptr() as *mut libc::c_void, a.len()) });
        let kb = read(&r, h, &mut b, &env);
        assert_eq!(kb, ka);
        assert_eq!(a, b);
    }
    // Reads: (bytes queued in writes of this size, valid bytes of the destination, read length).
    for (writes, valid, total) in [([300usize, 0], 100, 300), ([4096, 4096], 4096, 8192), ([10, 10], 15, 20)]
    {
        drain(h);
        for n in writes.into_iter().filter(|&n| n > 0) {
            let data: Vec<u8> = (0..n).map(|i| i as u8).collect();
            write(&r, h, &data, &env).unwrap();
            // SAFETY: valid buffer.
            unsafe { libc::write(k.wr, data.as_ptr() as *const libc::c_void, n) };
        }
        let dst = before_guard(valid);
        // SAFETY: the kernel reports the fault as EFAULT or a short count.
        let want = kernel(unsafe { libc::read(k.rd, dst as *mut libc::c_void, total) });
        let dst2 = before_guard(valid);
        let got = pipe::pipe_read(&r, h, &[(dst2, total)], &env);
        assert_eq!(got, want, "read of {total} into {valid} valid bytes, queued {writes:?}");
        assert_eq!(fionread(&r, h), kernel_fionread(k.rd), "the uncopied data stays queued");
    }
    // A wholly bad pointer.
    drain(h);
    assert_eq!(pipe::pipe_write(&r, h, &[(16, 64)], false, &env), Err(libc::EFAULT));
    write(&r, h, b"abc", &env).unwrap();
    assert_eq!(pipe::pipe_read(&r, h, &[(16, 64)], &env), Err(libc::EFAULT));
    assert_eq!(fionread(&r, h), 3);
}

#[test]
fn handles_lookup_and_staleness() {
    let dir = TempDir::new("pipe-handles");
    let r = region(&dir);
    let env = Env::new(true);
    let (h, k) = new_pipe(&r);
    let (dev, ino) = k.key();
    assert_eq!(pipe::pipe_find(&r, dev, ino), Some(h));
    assert_eq!(pipe::PipeHandle::from_bits(h.to_bits()), h);
    assert!(h.to_bits() < 1 << 60);
    write(&r, h, b"old", &env).unwrap();
    // The same (dev, ino) again means the kernel reused the inode number: a fresh object.
    let h2 = pipe::pipe_new(&r, dev, ino).unwrap();
    assert_ne!(h2, h);
    assert_eq!(pipe::pipe_find(&r, dev, ino), Some(h2));
    assert_eq!(write(&r, h, b"x", &env), Err(libc::EBADF), "the old handle is stale");
    assert_eq!(pipe::fionread(&r, h), Err(libc::EBADF));
    assert_eq!(pipe::pipe_poll(&r, h), (false, false));
    assert_eq!(fionread(&r, h2), 0);
    // FIFOs: the first opener creates, later ones find.
    let f = pipe::fifo_get(&r, 77, 1234).unwrap();
    assert_eq!(pipe::fifo_get(&r, 77, 1234), Ok(f));
    assert_eq!(pipe::pipe_find(&r, 77, 1235), None);
    let st = pipe::stats(&r).unwrap();
    assert_eq!(st.live, 2);
    assert_eq!(pipe::snapshot(&r).unwrap().len(), 2);
    assert_eq!(
        pipe::pipe_write(&r, PipeHandle { idx: 40_000, generation: 0 }, &[(1, 1)], false, &env),
        Err(libc::EBADF)
    );
}

#[test]
fn liveness_generations_move_on_close_and_exit() {
    let dir = TempDir::new("pipe-gens");
    let r = region(&dir);
    let (h, _k) = new_pipe(&r);
    let g0 = pipe::liveness_gens(&r, h);
    assert_eq!(pipe::liveness_gens(&r, h), g0);
    pipe::note_close(&r, h);
    let g1 = pipe::liveness_gens(&r, h);
    assert_ne!(g1, g0);
    pipe::note_exit(&r);
    assert_ne!(pipe::liveness_gens(&r, h), g1);
}

#[test]
fn poll_wait_returns_at_once_when_ready_and_sleeps_otherwise() {
    let dir = TempDir::new("pipe-pollwait");
    let r = region(&dir);
    let (h, _k) = new_pipe(&r);
    let env = Env::new(true);
    let run = &mut pipe::futex_waitv_sleep;
    let word = std::sync::atomic::AtomicU32::new(0);
    let extra = (&word, 0);
    let w = &mut [shared_state::sys::FutexWaitv::default(); pipe::POLL_WAIT_SLOTS];
    let t = std::time::Instant::now();
    assert!(!pipe::poll_wait(&r, [(h, false, true)], None, &[extra], None, run, w));
    assert!(t.elapsed().as_millis() < 50, "writable already");
    let soon = shared_state::wait::deadline_after(&libc::timespec { tv_sec: 0, tv_nsec: 20_000_000 });
    let t = std::time::Instant::now();
    assert!(!pipe::poll_wait(&r, [(h, true, false)], Some(&soon), &[extra], None, run, w));
    let waited = t.elapsed().as_millis();
    assert!((15..90).contains(&waited), "slept until the deadline, {waited} ms");
    write(&r, h, b"x", &env).unwrap();
    let t = std::time::Instant::now();
    assert!(!pipe::poll_wait(&r, [(h, true, false)], None, &[extra], None, run, w));
    assert!(t.elapsed().as_millis() < 50, "readable already");
}

/// The fast path (data or room available, nobody asleep) makes no system call at all: run in
/// a child under SECCOMP_MODE_STRICT, which kills on any call but read, write and exit.
#[test]
fn fast_path_makes_no_system_call() {
    let dir = TempDir::new("pipe-nosys");
    let r = region(&dir);
    let (h, _k) = new_pipe(&r);
    let env = Env::new(true);
    let data = [5u8; 3000];
    let mut buf = [0u8; 8192];
    // Warm up: a lap of the ring (its pages get their memory with a system call as writers
    // first reach them) and glibc's lazy symbols, before the filter.
    for _ in 0..16 {
        write(&r, h, &data, &env).unwrap();
        read(&r, h, &mut buf, &env).unwrap();
    }
    let pid = common::fork(|| {
        // As the shim does in every process: the pid that tags per-process counts is cached.
        shared_state::proc::identify_self();
        // SAFETY: plain prctl; after it only read, write, exit and sigreturn are allowed.
        unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_STRICT) };
        let mut ok = true;
        for _ in 0..100 {
            ok &= write(&r, h, &data, &env) == Ok(3000);
            ok &= write(&r, h, &data[..10], &env) == Ok(10);
            ok &= read(&r, h, &mut buf, &env) == Ok(3010);
            ok &= pipe::pipe_poll(&r, h) == (false, true);
        }
        // SAFETY: exit (not exit_group) is allowed in strict mode.
        unsafe { libc::syscall(libc::SYS_exit, if ok { 0 } else { 1 }) };
        unreachable!()
    });
    assert_eq!(common::wait_exit(pid), 0, "killed (137) means a system call was made");
}

/// A tmpfs of its own for one test (tests run as root), unmounted on drop.
struct SmallTmpfs(String);

impl SmallTmpfs {
    fn mount(name: &str, size: &str) -> SmallTmpfs {
        let dir = format!("/dev/shm/ipcshim-test-{name}-{}", std::process::id());
        std::fs::create_dir_all(&dir).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &dir])
            .status()
            .unwrap();
        assert!(st.success(), "mount -t tmpfs {dir}");
        SmallTmpfs(dir)
    }

    /// Bytes in use on it.
    fn used(&self) -> u64 {
        // SAFETY: an all-zero statvfs is a valid value; the kernel fills it.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let path = std::ffi::CString::new(self.0.as_str()).unwrap();
        // SAFETY: a NUL-terminated path and a statvfs to fill.
        assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut st) }, 0);
        (st.f_blocks - st.f_bfree) * st.f_frsize
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A freed ring keeps the memory of its pages (within the pool's budget: a 32nd of the file
/// system), so the next ring of its size populates nothing; once the file system is full, a
/// ring that needs memory first takes back what freed rings kept, rather than going to the
/// kernel.
#[test]
fn freed_rings_keep_their_memory_until_the_file_system_is_full() {
    let fs = SmallTmpfs::mount("keep", "16m");
    let r =
        Region::open(&shared_state::region::region_path(&fs.0, sys::getuid(), "ns").unwrap(), true).unwrap();
    let env = Env::new(true);
    let page = [5u8; 4096];
    let (h, _k) = new_pipe(&r);
    assert_eq!(pipe::set_pipe_size(&r, h, 64 * 4096, false), Ok(64 * 4096));
    for _ in 0..64 {
        assert_eq!(write(&r, h, &page, &env), Ok(4096));
    }
    assert_eq!(pipe_common::read_exact(&r, h, 64 * 4096, &env).len(), 64 * 4096);
    let before = fs.used();
    assert!(pipe::release(&r, h), "freed at its release");
    assert_eq!(fs.used(), before, "its pages kept their memory");
    // The same size again: its pages are there already.
    let (h, _k2) = new_pipe(&r);
    assert_eq!(pipe::set_pipe_size(&r, h, 64 * 4096, false), Ok(64 * 4096));
    for _ in 0..64 {
        assert_eq!(write(&r, h, &page, &env), Ok(4096));
    }
    assert_eq!(fs.used(), before, "the next ring of its size populated nothing");
    pipe_common::read_exact(&r, h, 64 * 4096, &env);
    assert!(pipe::release(&r, h));
    // Fill the file system to the last page.
    {
        use std::io::Write;
        let mut f = std::fs::File::create(format!("{}/fill", fs.0)).unwrap();
        while f.write_all(&page).is_ok() {}
    }
    // A ring of another size needs memory for its table and pages: it gets what the freed
    // ring kept.
    let (h, _k3) = new_pipe(&r);
    for i in 0..16u8 {
        assert_eq!(
            write(&r, h, &[i; 4096], &env),
            Ok(4096),
            "page {i} of a fresh ring on a full file system"
        );
    }
    let got = pipe_common::read_exact(&r, h, 16 * 4096, &env);
    assert!(got.chunks(4096).enumerate().all(|(i, c)| c.iter().all(|&b| b == i as u8)));
    assert!(pipe::release(&r, h));
    drop(r);
}
