//! Helpers for the pipe tests: a PipeEnv, kernel placeholder pipes, a fault handler for
//! `uaccess::copy_user`, guard pages.
// Each test binary compiles this module and uses its own subset of it.
#![allow(dead_code)]

use shared_state::Region;
use shared_state::pipe::{self, PipeEnv, PipeHandle};
use shared_state::uaccess::fixup_target;
use shared_state::wait::WaitOutcome;
use std::cell::Cell;
use std::sync::Once;

extern "C" fn on_fault(_sig: i32, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid ucontext to an SA_SIGINFO handler.
    let uc = unsafe { &mut *(ctx as *mut libc::ucontext_t) };
    let rip = uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize;
    match fixup_target(rip) {
        Some(fix) => uc.uc_mcontext.gregs[libc::REG_RIP as usize] = fix as i64,
        // SAFETY: not a copy fault: a real crash, ended as one.
        None => unsafe { libc::abort() },
    }
}

/// What the shim's SIGSEGV/SIGBUS trampoline does: a fault in copy_user resumes at its fixup.
pub fn install_fault_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for sig in [libc::SIGSEGV, libc::SIGBUS] {
            // SAFETY: a zeroed sigaction plus handler and flags is a valid argument.
            unsafe {
                let mut sa: libc::sigaction = core::mem::zeroed();
                sa.sa_sigaction = on_fault as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
                assert_eq!(libc::sigaction(sig, &sa, core::ptr::null_mut()), 0);
            }
        }
    });
}

/// `valid` readable and writable bytes followed by a PROT_NONE page; returns the address of
/// the first valid byte (the mapping is leaked).
pub fn before_guard(valid: usize) -> usize {
    let pages = valid.div_ceil(4096);
    // SAFETY: fresh anonymous mapping; the guard page is ours to protect.
    unsafe {
        let p = libc::mmap(
            core::ptr::null_mut(),
            (pages + 1) * 4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        let guard = p as usize + pages * 4096;
        assert_eq!(libc::mprotect(guard as *mut libc::c_void, 4096, libc::PROT_NONE), 0);
        guard - valid
    }
}

/// A kernel pipe: the placeholder behind a shim pipe, and its (dev, ino).
pub struct KPipe {
    pub rd: i32,
    pub wr: i32,
}

impl KPipe {
    pub fn new() -> KPipe {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for two descriptors.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        KPipe { rd: fds[0], wr: fds[1] }
    }

    pub fn key(&self) -> (u64, u64) {
        let fd = if self.rd >= 0 { self.rd } else { self.wr };
        let st = shared_state::sys::fstat(fd).unwrap();
        (st.st_dev, st.st_ino)
    }

    pub fn close_rd(&mut self) {
        if self.rd >= 0 {
            // SAFETY: closes a descriptor we own.
            unsafe { libc::close(self.rd) };
            self.rd = -1;
        }
    }

    pub fn close_wr(&mut self) {
        if self.wr >= 0 {
            // SAFETY: closes a descriptor we own.
            unsafe { libc::close(self.wr) };
            self.wr = -1;
        }
    }
}

impl Drop for KPipe {
    fn drop(&mut self) {
        self.close_rd();
        self.close_wr();
    }
}

/// A placeholder pipe and the shim object behind it.
pub fn new_pipe(region: &Region) -> (PipeHandle, KPipe) {
    let k = KPipe::new();
    let (dev, ino) = k.key();
    (pipe::pipe_new(region, dev, ino).unwrap(), k)
}

/// Which end of the placeholder tells whether the other side is gone.
#[derive(Clone, Copy)]
pub enum Peer {
    /// A flag the test sets.
    Flag,
    /// A read end of the placeholder: POLLHUP once no write end is open anywhere.
    ReadEnd(i32),
    /// A write end: POLLERR once no read end is open anywhere.
    WriteEnd(i32),
}

pub struct Env {
    pub nonblock: Cell<bool>,
    pub gone: Cell<bool>,
    pub peer: Peer,
    /// Answer to restart_after_signal.
    pub restart: bool,
    /// Waits run, forced liveness checks made.
    pub waits: Cell<u32>,
    pub forced: Cell<u32>,
    /// Like the shim: the liveness generations at which the peer was last seen alive; while
    /// they do not move, an unforced check answers "alive" without a syscall.
    pub gens: Option<Box<dyn Fn() -> u64>>,
    verified: Cell<u64>,
}

impl Env {
    pub fn new(nonblock: bool) -> Env {
        Env::with_peer(nonblock, Peer::Flag)
    }

    pub fn with_peer(nonblock: bool, peer: Peer) -> Env {
        Env {
            nonblock: Cell::new(nonblock),
            gone: Cell::new(false),
            peer,
            restart: true,
            waits: Cell::new(0),
            forced: Cell::new(0),
            gens: None,
            verified: Cell::new(u64::MAX),
        }
    }

    /// A placeholder-backed env whose unforced checks are cached on the object's generations.
    pub fn cached(region: &'static Region, h: PipeHandle, nonblock: bool, peer: Peer) -> Env {
        Env { gens: Some(Box::new(move || pipe::liveness_gens(region, h))), ..Env::with_peer(nonblock, peer) }
    }
}

fn polled(fd: i32) -> i16 {
    let mut pfd = libc::pollfd { fd, events: 0, revents: 0 };
    // SAFETY: one valid pollfd, no timeout.
    unsafe { libc::poll(&mut pfd, 1, 0) };
    pfd.revents
}

impl PipeEnv for Env {
    fn nonblocking(&self) -> bool {
        self.nonblock.get()
    }

    fn peer_gone(&self, force: bool) -> bool {
        if force {
            self.forced.set(self.forced.get() + 1);
        }
        let gens = self.gens.as_ref().map(|g| g());
        if !force && (gens.is_none() || gens == Some(self.verified.get())) {
            return match self.peer {
                Peer::Flag => self.gone.get(),
                // Never a syscall unless forced or the generations moved, as in the shim.
                _ => false,
            };
        }
        let gone = match self.peer {
            Peer::Flag => self.gone.get(),
            Peer::ReadEnd(fd) => polled(fd) & libc::POLLHUP != 0,
            Peer::WriteEnd(fd) => polled(fd) & libc::POLLERR != 0,
        };
        if let (false, Some(g)) = (gone, gens) {
            self.verified.set(g);
        }
        gone
    }

    fn wait(&self, f: &mut dyn FnMut() -> WaitOutcome) -> WaitOutcome {
        self.waits.set(self.waits.get() + 1);
        f()
    }

    fn restart_after_signal(&self) -> bool {
        self.restart
    }
}

pub fn write(region: &Region, h: PipeHandle, data: &[u8], env: &Env) -> Result<usize, i32> {
    pipe::pipe_write(region, h, &[(data.as_ptr() as usize, data.len())], false, env)
}

pub fn write_packet(region: &Region, h: PipeHandle, data: &[u8], env: &Env) -> Result<usize, i32> {
    pipe::pipe_write(region, h, &[(data.as_ptr() as usize, data.len())], true, env)
}

pub fn read(region: &Region, h: PipeHandle, buf: &mut [u8], env: &Env) -> Result<usize, i32> {
    pipe::pipe_read(region, h, &[(buf.as_mut_ptr() as usize, buf.len())], env)
}

/// Reads until `n` bytes arrived (blocking env).
pub fn read_exact(region: &Region, h: PipeHandle, n: usize, env: &Env) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut got = 0;
    while got < n {
        got += read(region, h, &mut out[got..], env).unwrap();
    }
    out
}

/// Pins the calling thread to `cpu`; false if it does not exist.
pub fn pin(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET and sched_setaffinity take valid pointers.
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) == 0
    }
}
