//! execve/execveat: the new image loads the shim again. SUD does not survive exec, so a child
//! started with a scrubbed environment (`env -i`, CGI) would run unshimmed; when the new
//! environment lacks our library in LD_PRELOAD, or an `IPCSHIM_DIR`/`IPCSHIM_NS`/
//! `IPCSHIM_CATCHALL`/`IPCSHIM_PATCH` this process started with, the exec gets a copy with them added. An
//! explicit different value is the caller's choice and is kept.
//!
//! The application's envp is read with process_vm_readv in page-bounded chunks (a bad pointer
//! gives the kernel's EFAULT), and the new envp is built in a raw mmap (no malloc).

use super::trap::raw;
use super::{Guard, tls};
use core::sync::atomic::{AtomicPtr, Ordering};
use shared_state::sys;

const PAGE: usize = 4096;
const PRELOAD: &[u8] = b"LD_PRELOAD=";
const VARS: [&str; 4] = ["IPCSHIM_DIR", "IPCSHIM_NS", "IPCSHIM_CATCHALL", "IPCSHIM_PATCH"];

/// What every exec'd image must inherit, captured at start-up.
struct ExecEnv {
    /// Our library's path, as the loader found it.
    lib: Box<[u8]>,
    /// "LD_PRELOAD=<lib>\0".
    preload: Box<[u8]>,
    /// "NAME=value\0" for each of VARS that was set, and the length of its "NAME=".
    vars: Vec<(Box<[u8]>, usize)>,
}

static ENV: AtomicPtr<ExecEnv> = AtomicPtr::new(core::ptr::null_mut());

/// At start-up (before anything traps).
pub(super) fn capture() {
    // SAFETY: an all-zero Dl_info is valid; dladdr fills it.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    // SAFETY: any address is accepted; this one is in our library.
    let found = unsafe { libc::dladdr(capture as *const () as *const libc::c_void, &mut info) } != 0;
    if !found || info.dli_fname.is_null() {
        return;
    }
    // SAFETY: dladdr returned the NUL-terminated name of a loaded object, which stays loaded.
    let lib = unsafe { core::ffi::CStr::from_ptr(info.dli_fname) }.to_bytes();
    if lib.is_empty() {
        return;
    }
    let entry = |name: &[u8], value: &[u8]| -> Box<[u8]> { [name, value, b"\0"].concat().into() };
    let vars = VARS
        .iter()
        .filter_map(|name| {
            let v = std::env::var_os(name)?;
            let head = [name.as_bytes(), b"="].concat();
            Some((entry(&head, std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str())), head.len()))
        })
        .collect();
    let env = ExecEnv { lib: lib.into(), preload: entry(PRELOAD, lib), vars };
    ENV.store(Box::into_raw(Box::new(env)), Ordering::Release);
}

fn env() -> Option<&'static ExecEnv> {
    let p = ENV.load(Ordering::Acquire);
    // SAFETY: set once to a leaked Box that is never freed.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Reads `buf.len()` bytes at `addr`, or fewer so as not to cross a page; None if unreadable.
fn read_chunk(addr: usize, buf: &mut [u8]) -> Option<usize> {
    let len = buf.len().min(PAGE - addr % PAGE);
    sys::copy_from_user(buf.as_mut_ptr(), addr, len).ok()?;
    Some(len)
}

/// Feeds the bytes of the C string at `addr` to `f` until the NUL or until `f` says stop.
fn each_byte(mut addr: usize, mut f: impl FnMut(u8) -> bool) -> Option<()> {
    let mut buf = [0u8; 256];
    loop {
        let n = read_chunk(addr, &mut buf)?;
        for &b in &buf[..n] {
            if b == 0 || !f(b) {
                return Some(());
            }
        }
        addr += n;
    }
}

/// Whether a ':'/' '-separated list (fed byte by byte) contains `lib` as one element.
struct ListMatch<'a> {
    lib: &'a [u8],
    at: usize,
    ok: bool,
    found: bool,
}

impl ListMatch<'_> {
    fn push(&mut self, b: u8) {
        if b == b':' || b == b' ' {
            self.end();
        } else if self.ok && self.lib.get(self.at) == Some(&b) {
            self.at += 1;
        } else {
            self.ok = false;
        }
    }

    fn end(&mut self) {
        self.found |= self.ok && self.at == self.lib.len();
        self.at = 0;
        self.ok = true;
    }
}

/// What the application's environment has.
struct Scan {
    /// Entries before the NULL.
    n: usize,
    /// The last LD_PRELOAD entry (the one the loader uses): index, value address and length,
    /// and whether it names our library.
    preload: Option<(usize, usize, usize, bool)>,
    /// Bit i: VARS-entry i of ExecEnv::vars is present.
    present: u32,
}

/// None if the array or a string is unreadable (the kernel will say EFAULT).
fn scan(env: &ExecEnv, envp: usize) -> Option<Scan> {
    let mut s = Scan { n: 0, preload: None, present: 0 };
    if envp == 0 {
        return Some(s);
    }
    if !envp.is_multiple_of(8) {
        return None;
    }
    let mut ptrs = [0u8; 256];
    loop {
        let got = read_chunk(envp + s.n * 8, &mut ptrs)?;
        for p in ptrs[..got].chunks_exact(8) {
            let p = usize::from_ne_bytes(p.try_into().ok()?);
            if p == 0 {
                return Some(s);
            }
            classify(env, &mut s, p)?;
            s.n += 1;
        }
    }
}

/// Looks at entry `s.n` (at `p`): our LD_PRELOAD or one of our variables?
fn classify(env: &ExecEnv, s: &mut Scan, p: usize) -> Option<()> {
    let mut at = 0;
    // Bit 0: "LD_PRELOAD=", bit i+1: env.vars[i]'s "NAME=".
    let mut alive: u32 = (1 << (env.vars.len() + 1)) - 1;
    let mut in_preload = false;
    let mut list = ListMatch { lib: &env.lib, at: 0, ok: true, found: false };
    let mut len = 0;
    each_byte(p, |b| {
        if in_preload {
            list.push(b);
            len += 1;
            return true;
        }
        if alive & 1 != 0 && PRELOAD.get(at) != Some(&b) {
            alive &= !1;
        }
        for (i, (entry, head)) in env.vars.iter().enumerate() {
            if alive & (2 << i) != 0 && (at >= *head || entry[at] != b) {
                alive &= !(2 << i);
            }
        }
        at += 1;
        if alive & 1 != 0 && at == PRELOAD.len() {
            in_preload = true;
        }
        for (i, (_, head)) in env.vars.iter().enumerate() {
            if alive & (2 << i) != 0 && at == *head {
                s.present |= 1 << i;
                return false;
            }
        }
        alive != 0
    })?;
    if in_preload {
        list.end();
        s.preload = Some((s.n, p + PRELOAD.len(), len, list.found));
    }
    Some(())
}

/// Unmaps an envp block that a vfork child built in our (shared) memory before its exec
/// succeeded; the parent sees it on its next trap.
pub(super) fn release_scratch() {
    let t = tls();
    let addr = t.scratch.load(Ordering::Relaxed);
    if addr != 0 {
        let _ = sys::munmap(addr, t.scratch_len.load(Ordering::Relaxed));
        t.scratch.store(0, Ordering::Relaxed);
    }
}

/// The new envp for `s` in a fresh mapping: (address, mapping length, envp).
fn build(env: &ExecEnv, envp: usize, s: &Scan) -> Option<(usize, usize)> {
    let replace = s.preload.filter(|p| !p.3);
    let missing = env.vars.iter().enumerate().filter(|(i, _)| s.present & (1 << i) == 0);
    let extra = usize::from(s.preload.is_none()) + missing.clone().count();
    let ptr_bytes = (s.n + extra + 1) * 8;
    let str_bytes = replace.map_or(0, |(_, _, len, _)| PRELOAD.len() + env.lib.len() + 1 + len + 1);
    let size = (ptr_bytes + str_bytes).div_ceil(PAGE) * PAGE;
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    let base = sys::mmap(0, size, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0).ok()?;
    let fill = || -> Option<()> {
        sys::copy_from_user(base as *mut u8, envp, s.n * 8).ok()?;
        // SAFETY: `base` is our fresh mapping of `size` >= ptr_bytes + str_bytes bytes.
        let ptrs = unsafe { core::slice::from_raw_parts_mut(base as *mut usize, s.n + extra + 1) };
        let mut k = s.n;
        if let Some((i, value, len, _)) = replace {
            // "LD_PRELOAD=<lib>:<old value>" (or without ':' if it was empty): ours first, the
            // application's list kept. The mapping is zero-filled, so the NUL is there.
            let at = base + ptr_bytes;
            // SAFETY: the string area after the pointers, `str_bytes` long, is in the mapping.
            let out = unsafe { core::slice::from_raw_parts_mut(at as *mut u8, str_bytes) };
            let head = PRELOAD.len() + env.lib.len();
            out[..PRELOAD.len()].copy_from_slice(PRELOAD);
            out[PRELOAD.len()..head].copy_from_slice(&env.lib);
            if len > 0 {
                out[head] = b':';
                sys::copy_from_user(out[head + 1..].as_mut_ptr(), value, len).ok()?;
            }
            ptrs[i] = at;
        }
        if s.preload.is_none() {
            ptrs[k] = env.preload.as_ptr() as usize;
            k += 1;
        }
        for (_, (entry, _)) in missing.clone() {
            ptrs[k] = entry.as_ptr() as usize;
            k += 1;
        }
        ptrs[k] = 0;
        Some(())
    };
    match fill() {
        Some(()) => Some((base, size)),
        None => {
            let _ = sys::munmap(base, size);
            None
        }
    }
}

/// execve(path, argv, envp) or execveat(dirfd, path, argv, envp, flags).
pub(super) fn exec(nr: i64, a: &[u64; 6], guard: &Guard) -> i64 {
    let i = if nr == libc::SYS_execve { 2 } else { 3 };
    let plan = env().and_then(|env| {
        let s = scan(env, a[i] as usize)?;
        let complete = s.preload.is_some_and(|p| p.3)
            && env.vars.iter().enumerate().all(|(i, _)| s.present & (1 << i) != 0);
        if complete { None } else { build(env, a[i] as usize, &s) }
    });
    let ign = crate::signals::exec_dispositions();
    let r = match plan {
        None => guard.allow_signals(|| raw(nr, a)),
        Some((base, size)) => {
            let mut b = *a;
            b[i] = base as u64;
            // If this is a vfork child, the mapping is in the parent's memory: let the parent
            // unmap it once we are gone. Here, a failed exec unmaps it at once.
            let t = tls();
            t.scratch_len.store(size, Ordering::Relaxed);
            t.scratch.store(base, Ordering::Relaxed);
            let r = guard.allow_signals(|| raw(nr, &b));
            release_scratch();
            r
        }
    };
    crate::signals::exec_failed(ign);
    r
}
