//! Helpers shared by the multi-process tests: private temp directories, fork, pipes.
// Each test binary compiles this module and uses its own subset of it.
#![allow(dead_code)]

use shared_state::Region;
use shared_state::wait::WaitOutcome;
use std::sync::atomic::{AtomicU32, Ordering};

/// A directory of its own per test (tests run in parallel threads), removed on drop.
pub struct TempDir {
    pub path: String,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // Regions must live on tmpfs (Region::open refuses disk), so not std::env::temp_dir().
        let dir =
            std::path::Path::new("/dev/shm").join(format!("ipcshim-test-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir { path: dir.to_str().unwrap().to_string() }
    }

    /// The region path of namespace `ns` in this directory.
    pub fn region_path(&self, ns: &str) -> String {
        shared_state::region::region_path(&self.path, shared_state::sys::getuid(), ns).unwrap()
    }

    /// Creates (or opens) namespace `ns` in this directory.
    pub fn region(&self, ns: &str) -> Region {
        Region::open(&self.region_path(ns), true).unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Forks; the child runs `f` and exits with its result (101 if it panicked). The child never
/// returns into the test harness, whose other threads do not exist in it.
pub fn fork(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `f` (shared_state calls and raw syscalls) and then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // A child left sleeping by a failed test dies with the test's thread, rather than
        // outliving the run and holding its output pipe open.
        // SAFETY: plain prctl; no pointers.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        // SAFETY: ends the child without running the harness's atexit handlers or destructors.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Reaps `pid`; returns its exit code, or 128 + signal number if it was killed.
pub fn wait_exit(pid: i32) -> i32 {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid, "waitpid failed");
    if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) }
}

/// Waits until the task at `/proc/<task>` (a pid, or `self/task/<tid>`) sleeps in a futex wait:
/// a pipe operation that got past its spin and queued itself as a sleeper. A fixed sleep is not
/// enough on a loaded machine, where the task may not have run yet.
pub fn wait_in_futex(task: &str) {
    let path = format!("/proc/{task}/wchan");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let wchan = std::fs::read_to_string(&path).unwrap_or_default();
        if wchan.starts_with("futex") {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{task} never slept in a futex wait ({wchan:?})");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// SIGKILLs `pid` and reaps it.
pub fn kill_and_reap(pid: i32) {
    // SAFETY: plain syscall on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    assert_eq!(wait_exit(pid), 128 + libc::SIGKILL);
}

/// A child sleeps here until it is killed.
pub fn sleep_forever() -> ! {
    loop {
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
    }
}

/// A pipe for one-byte messages between parent and child.
pub struct Pipe {
    rd: i32,
    wr: i32,
}

impl Pipe {
    pub fn new() -> Pipe {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        Pipe { rd: fds[0], wr: fds[1] }
    }

    /// Blocks for one byte; None at end of file (every writer closed or died).
    pub fn recv(&self) -> Option<u8> {
        let mut b = 0u8;
        loop {
            // SAFETY: reads one byte into `b`.
            let n = unsafe { libc::read(self.rd, &mut b as *mut u8 as *mut libc::c_void, 1) };
            match n {
                1 => return Some(b),
                -1 if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => continue,
                _ => return None,
            }
        }
    }

    pub fn send(&self, b: u8) {
        // SAFETY: writes one byte from `b`.
        unsafe { libc::write(self.wr, &b as *const u8 as *const libc::c_void, 1) };
    }

    /// In the parent after forking: keeps only the read end, so a dead child reads as EOF.
    pub fn close_write(&mut self) {
        // SAFETY: closes a descriptor this pipe owns; -1 marks it gone.
        unsafe { libc::close(self.wr) };
        self.wr = -1;
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        for fd in [self.rd, self.wr] {
            if fd >= 0 {
                // SAFETY: closes descriptors this pipe owns.
                unsafe { libc::close(fd) };
            }
        }
    }
}

/// A xorshift generator: the randomised tests print their seed, so a failure can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `len` bytes of zeroed memory shared with forked children.
pub fn map_shared(len: usize) -> usize {
    // SAFETY: anonymous shared mapping, checked below.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    p as usize
}

/// Waits for our child `pid` (not at all with `nohang`): its status, if it ended.
pub fn reap(pid: i32, nohang: bool) -> Option<i32> {
    let mut st = 0;
    // SAFETY: waiting for our own child.
    let rc = unsafe { libc::waitpid(pid, &mut st, if nohang { libc::WNOHANG } else { 0 }) };
    (rc == pid).then_some(st)
}

/// Which of the children `pids` holds a lock while stopped (`holder` says who holds it, 0 for
/// nobody), tried for at most `budget`: whenever one of them holds it, it is stopped by SIGSTOP
/// and, if it still holds the lock once stopped, left so, so that a SIGKILL lands inside its
/// locked section for sure; else continued, and the next holder is tried. (A kill sent to
/// whoever holds the lock while it runs mostly lands after its short section has ended.) A
/// child that ended meanwhile is reaped and reported as `Err(index)`.
pub fn stop_lock_holder(
    pids: &[i32],
    budget: std::time::Duration,
    holder: impl Fn() -> i32,
) -> Option<Result<usize, usize>> {
    let t = std::time::Instant::now();
    while t.elapsed() < budget {
        let pid = holder();
        let Some(at) = pids.iter().position(|&p| p == pid) else { continue };
        let mut st = 0;
        // SAFETY: signalling and waiting for our own child.
        let rc = unsafe {
            libc::kill(pid, libc::SIGSTOP);
            libc::waitpid(pid, &mut st, libc::WUNTRACED)
        };
        if rc == pid && !libc::WIFSTOPPED(st) {
            return Some(Err(at));
        }
        if holder() == pid {
            return Some(Ok(at));
        }
        // SAFETY: our own child.
        unsafe { libc::kill(pid, libc::SIGCONT) };
    }
    None
}

/// Trusted pointers and plain waits: what the shim's environment does minus signals and
/// faults, for semaphore and message queue calls.
pub struct Env;

fn trusted_copy(dst: *mut u8, src: *const u8, len: usize) -> Result<(), i32> {
    // SAFETY: tests pass valid buffers.
    unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
    Ok(())
}

impl shared_state::sem::SemEnv for Env {
    fn copy_from(&self, dst: *mut u8, src: usize, len: usize) -> Result<(), i32> {
        trusted_copy(dst, src as *const u8, len)
    }

    fn wait(&self, f: &mut dyn FnMut() -> WaitOutcome) -> WaitOutcome {
        f()
    }
}

impl shared_state::msg::MsgEnv for Env {
    fn copy_from(&self, dst: *mut u8, src: usize, len: usize) -> Result<(), i32> {
        trusted_copy(dst, src as *const u8, len)
    }

    fn copy_to(&self, dst: usize, src: *const u8, len: usize) -> Result<(), i32> {
        trusted_copy(dst as *mut u8, src, len)
    }

    fn wait(&self, f: &mut dyn FnMut() -> WaitOutcome) -> WaitOutcome {
        f()
    }
}
