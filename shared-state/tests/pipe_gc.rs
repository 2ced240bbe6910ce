//! Garbage collection of pipe objects: objects whose (dev, ino) no process has open are freed,
//! objects open anywhere (here, in a child, as a FIFO) or in use are kept.

mod common;
mod pipe_common;

use common::{Pipe, TempDir, fork, kill_and_reap, sleep_forever, wait_in_futex};
use pipe_common::{Env, KPipe, new_pipe, read, write};
use shared_state::Region;
use shared_state::pipe::{self, PipeHandle};
use shared_state::pipe_gc::{self, GC_EVERY, SUSPECT_SECS};
use std::time::Duration;

fn leak_region(dir: &TempDir) -> &'static Region {
    Box::leak(Box::new(dir.region("ns")))
}

fn alive(r: &Region, h: PipeHandle) -> bool {
    pipe::fionread(r, h).is_ok()
}

fn mkfifo(dir: &TempDir, name: &str) -> String {
    let path = format!("{}/{name}", dir.path);
    let c = std::ffi::CString::new(path.clone()).unwrap();
    // SAFETY: valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    path
}

fn open_fifo(path: &str) -> i32 {
    let c = std::ffi::CString::new(path).unwrap();
    // SAFETY: valid NUL-terminated path; O_RDWR never blocks on a FIFO.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    assert!(fd >= 0);
    fd
}

#[test]
fn frees_closed_pipes_and_keeps_open_ones() {
    let dir = TempDir::new("pipe-gc");
    let r = leak_region(&dir);
    let env = Env::new(true);
    let (closed, k_closed) = new_pipe(r);
    let key_closed = k_closed.key();
    write(r, closed, b"lost with its last fd", &env).unwrap();
    drop(k_closed);
    let (open, _k_open) = new_pipe(r);
    write(r, open, b"kept", &env).unwrap();
    // Open only in a child: the parent's copies are closed.
    let (in_child, k_child) = new_pipe(r);
    let mut ready = Pipe::new();
    let child = fork(|| {
        ready.send(1);
        sleep_forever()
    });
    ready.close_write();
    assert_eq!(ready.recv(), Some(1));
    drop(k_child);
    // FIFO files: one open, one closed again.
    let fifo_open = mkfifo(&dir, "open");
    let fd = open_fifo(&fifo_open);
    let st = shared_state::sys::fstat(fd).unwrap();
    let f_open = pipe::fifo_get(r, st.st_dev, st.st_ino).unwrap();
    let fifo_closed = mkfifo(&dir, "closed");
    let fd2 = open_fifo(&fifo_closed);
    let st2 = shared_state::sys::fstat(fd2).unwrap();
    let f_closed = pipe::fifo_get(r, st2.st_dev, st2.st_ino).unwrap();
    // SAFETY: closes our descriptor.
    unsafe { libc::close(fd2) };

    let report = pipe_gc::collect_garbage(r).expect("a complete scan");
    assert!(report.processes >= 2);
    let mut freed = report.freed;
    if freed < 2 {
        freed += collect_freeing(r);
    }
    assert_eq!(freed, 2);
    assert!(!alive(r, closed) && !alive(r, f_closed));
    assert_eq!(pipe::pipe_find(r, key_closed.0, key_closed.1), None);
    assert!(alive(r, open) && alive(r, in_child) && alive(r, f_open));
    assert_eq!(pipe::fionread(r, open), Ok(4));
    assert_eq!(pipe::fifo_get(r, st.st_dev, st.st_ino), Ok(f_open));
    let stats = pipe::stats(r).unwrap();
    assert_eq!((stats.live, stats.gc_freed), (3, 2));
    assert!(stats.gc_runs >= 1);

    kill_and_reap(child);
    assert_eq!(collect_freeing(r), 1);
    assert!(!alive(r, in_child) && alive(r, open));
    // SAFETY: closes our descriptor.
    unsafe { libc::close(fd) };
    assert_eq!(collect_freeing(r), 1);
    assert!(!alive(r, f_open));
    // Freed slots and pages are reused.
    let (again, _k) = new_pipe(r);
    write(r, again, b"fresh", &env).unwrap();
    assert_eq!(pipe::fionread(r, again), Ok(5));
}

/// An object with a sleeping reader is kept even when no fd is open any more.
#[test]
fn keeps_objects_with_an_operation_in_progress() {
    let dir = TempDir::new("pipe-gc-active");
    let r = leak_region(&dir);
    let (h, k) = new_pipe(r);
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        let mut buf = [0u8; 4];
        read(r, h, &mut buf, &Env::new(false))
    });
    wait_in_futex(&format!("self/task/{}", tid_rx.recv().unwrap()));
    drop(k);
    assert_eq!(pipe_gc::collect_garbage(r).map(|g| g.freed), Some(0));
    write(r, h, b"wake", &Env::new(true)).unwrap();
    assert_eq!(reader.join().unwrap(), Ok(4));
    assert_eq!(collect_freeing(r), 1);
}

/// A process killed while sleeping in an operation leaves the object's count of operations
/// raised forever; once nobody has the object open and no sleeper has shown life for a while,
/// the collector frees it anyway.
#[test]
fn frees_objects_whose_operation_died_with_its_process() {
    let dir = TempDir::new("pipe-gc-leak");
    let r = leak_region(&dir);
    let (h, k) = new_pipe(r);
    let child = fork(move || {
        let mut buf = [0u8; 4];
        let _ = read(r, h, &mut buf, &Env::new(false));
        0
    });
    wait_in_futex(&child.to_string());
    kill_and_reap(child);
    drop(k);
    assert_eq!(pipe_gc::collect_garbage(r).map(|g| g.freed), Some(0), "first seen unreferenced but active");
    std::thread::sleep(Duration::from_secs(SUSPECT_SECS as u64 + 1));
    assert_eq!(collect_freeing(r), 1);
    assert!(!alive(r, h));
}

/// pipe_new collects by itself every GC_EVERY creations.
#[test]
fn creation_triggers_collection() {
    let dir = TempDir::new("pipe-gc-auto");
    let r = leak_region(&dir);
    let (kept, _k) = new_pipe(r);
    for ino in 0..GC_EVERY as u64 + 10 {
        // Keys of no kernel object: unreferenced from the start.
        pipe::fifo_get(r, 0xdead, ino).unwrap();
    }
    let stats = pipe::stats(r).unwrap();
    assert!(stats.gc_runs >= 1);
    // The collection ran before the GC_EVERY-th creation (the kept pipe was the first).
    assert_eq!(stats.gc_freed, GC_EVERY as u64 - 2);
    assert!(stats.live < 20, "{} live", stats.live);
    assert!(alive(r, kept));
}

/// A pipe's (dev, ino) is found again after its kernel pipe is reused by inode number.
#[test]
fn lookups_during_a_collection_count_as_references() {
    let dir = TempDir::new("pipe-gc-lookup");
    let r = leak_region(&dir);
    let k = KPipe::new();
    let (dev, ino) = k.key();
    let h = pipe::pipe_new(r, dev, ino).unwrap();
    // Repeated collections while the fd stays open never free it.
    for _ in 0..3 {
        assert_eq!(pipe_gc::collect_garbage(r).map(|g| g.freed), Some(0));
        assert_eq!(pipe::pipe_find(r, dev, ino), Some(h));
    }
}

/// The number a collection freed, retried while it frees nothing: the collector keeps objects
/// younger than any process whose fds it may not read, and other programs on the machine
/// (running as another user) can be such processes for a moment. Retried for up to 20 passes
/// rather than a time: on a loaded machine one pass (every process's fds, listed until no new
/// pid appears) took more than the 3 s this once allowed in all.
fn collect_freeing(r: &Region) -> u32 {
    let until = std::time::Instant::now() + Duration::from_secs(120);
    for _ in 0..20 {
        let freed = pipe_gc::collect_garbage(r).map_or(0, |g| g.freed);
        if freed > 0 || std::time::Instant::now() > until {
            return freed;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    0
}
