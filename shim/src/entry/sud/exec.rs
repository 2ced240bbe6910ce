//! execve/execveat: the new image loads the shim again. SUD does not survive exec, so a child
//! started with a scrubbed environment (`env -i`, CGI) would run unshimmed; when the new
//! environment lacks our library in LD_PRELOAD, or an `IPCSHIM_DIR`/`IPCSHIM_NS`/
//! `IPCSHIM_GROUP`/`IPCSHIM_CATCHALL`/`IPCSHIM_PATCH` this process started with, the exec gets a
//! copy with them added. An explicit different value is the caller's choice and is kept.
//!
//! The new image stays in our namespace (`IPCSHIM_REGION_FD` names the region's descriptors,
//! which it inherits) unless the new environment names another namespace: a different
//! `IPCSHIM_DIR`, `IPCSHIM_NS` or `IPCSHIM_GROUP`, which it then opens by name.
//!
//! The application's envp is read in page-bounded chunks (a bad pointer gives the kernel's
//! EFAULT; where each copy is a process_vm_readv, as in a vfork child, the first bytes of 8
//! entries come in one), and the new envp is built in a raw mmap (no malloc).

use super::trap::raw;
use crate::base::thread;
use crate::base::thread::{Guard, tls};
use crate::base::user::User;
use core::sync::atomic::{AtomicPtr, Ordering};
use shared_state::sys;

const PAGE: usize = 4096;
/// The bytes of an entry read first: enough to tell most from ours.
const HEAD: usize = 32;
const PRELOAD: &[u8] = b"LD_PRELOAD=";
/// The new image loads the shim but leaves every call to the kernel (`region::init`).
const DISABLE: &[u8] = b"IPCSHIM_DISABLE=1";
/// Our variables, with the value an unset one stands for, and whether it names the namespace.
const VARS: [(&str, &str, bool); 5] = [
    ("IPCSHIM_DIR", "/dev/shm", true),
    ("IPCSHIM_NS", "default", true),
    ("IPCSHIM_GROUP", "", true),
    ("IPCSHIM_CATCHALL", "", false),
    ("IPCSHIM_PATCH", "", false),
];
/// `Scan::present` and `Scan::differs` have a bit for each.
const _: () = assert!(VARS.len() <= 32);

/// One of VARS as this process has it.
struct Var {
    /// "NAME=value\0": our value, or for an unset variable the value it stands for.
    entry: Box<[u8]>,
    /// The length of "NAME=".
    head: usize,
    /// Set in our environment: added to a new environment that lacks it.
    set: bool,
    /// A different value in the new environment means another namespace.
    names_ns: bool,
}

/// What every exec'd image must inherit, captured at start-up.
struct ExecEnv {
    /// Our library's path, as the loader found it.
    lib: Box<[u8]>,
    /// "LD_PRELOAD=<lib>\0".
    preload: Box<[u8]>,
    vars: Vec<Var>,
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
        .map(|&(name, default, names_ns)| {
            let v = std::env::var_os(name);
            let value = v.as_deref().map_or(default.as_bytes(), std::os::unix::ffi::OsStrExt::as_bytes);
            let head = [name.as_bytes(), b"="].concat();
            Var { entry: entry(&head, value), head: head.len(), set: v.is_some(), names_ns }
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
fn read_chunk(user: User, addr: usize, buf: &mut [u8]) -> Option<usize> {
    let len = buf.len().min(PAGE - addr % PAGE);
    user.copy_in(&mut buf[..len], addr).then_some(len)
}

/// Feeds the bytes of the C string at `addr` to `f` until the NUL or until `f` says stop,
/// starting with `head`, its first bytes already read. The first read is short: most entries
/// are told apart from ours by their first bytes.
fn each_byte(user: User, mut addr: usize, head: &[u8], mut f: impl FnMut(u8) -> bool) -> Option<()> {
    for &b in head {
        if b == 0 || !f(b) {
            return Some(());
        }
    }
    addr += head.len();
    let mut buf = [0u8; 256];
    let mut want = if head.is_empty() { HEAD } else { buf.len() };
    loop {
        let n = read_chunk(user, addr, &mut buf[..want])?;
        want = buf.len();
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

/// Compares an environment entry, byte by byte, with "NAME=value".
struct EntryMatch<'a> {
    want: &'a [u8],
    head: usize,
    /// Leading bytes that matched, and whether all seen so far did.
    at: usize,
    ok: bool,
}

impl<'a> EntryMatch<'a> {
    fn new(want: &'a [u8], head: usize) -> Self {
        EntryMatch { want, head, at: 0, ok: true }
    }

    fn push(&mut self, b: u8) {
        if self.ok && self.want.get(self.at) == Some(&b) {
            self.at += 1;
        } else {
            self.ok = false;
        }
    }

    /// Still matching (more bytes are needed to tell).
    fn alive(&self) -> bool {
        self.ok
    }

    /// The entry has the name (looked at once the entry ended or stopped matching).
    fn named(&self) -> bool {
        self.at >= self.head
    }

    /// The entry is exactly "NAME=value" (once it ended).
    fn same(&self) -> bool {
        self.ok && self.at == self.want.len()
    }
}

/// What the application's environment has.
struct Scan {
    /// Entries before the NULL.
    n: usize,
    /// The last LD_PRELOAD entry (the one the loader uses): index, value address and length,
    /// and whether it names our library.
    preload: Option<(usize, usize, usize, bool)>,
    /// Bit i: VARS-entry i is present; and present with a value other than ours.
    present: u32,
    differs: u32,
    /// The first IPCSHIM_REGION_FD entry (the one getenv finds): its index, and whether it is
    /// ours exactly.
    region: Option<(usize, bool)>,
    /// The first IPCSHIM_DISABLE entry: whether it is `IPCSHIM_DISABLE=1`.
    disable: Option<bool>,
}

impl Scan {
    /// The new image opens another namespace by name.
    fn leaves(&self, env: &ExecEnv) -> bool {
        env.vars.iter().enumerate().any(|(i, v)| v.names_ns && self.differs & (1 << i) != 0)
    }
}

/// None if the array or a string is unreadable (the kernel will say EFAULT). `region` is our
/// "IPCSHIM_REGION_FD=…" entry, without its NUL.
#[inline(never)]
fn scan(user: User, env: &ExecEnv, envp: usize, region: &[u8]) -> Option<Scan> {
    let mut s = Scan { n: 0, preload: None, present: 0, differs: 0, region: None, disable: None };
    if envp == 0 {
        return Some(s);
    }
    if !envp.is_multiple_of(8) {
        return None;
    }
    // 8 entries at a time: where each copy is a system call (a vfork child), their first
    // bytes in one more.
    let mut ptrs = [0u8; 64];
    let mut heads = [[0u8; HEAD]; 8];
    loop {
        let got = read_chunk(user, envp + s.n * 8, &mut ptrs)?;
        let mut addrs = [0usize; 8];
        let mut k = 0;
        for p in ptrs[..got].chunks_exact(8) {
            addrs[k] = usize::from_ne_bytes(p.try_into().ok()?);
            if addrs[k] == 0 {
                break;
            }
            k += 1;
        }
        let read = user.read_heads(&addrs[..k], &mut heads);
        for (i, &p) in addrs[..k].iter().enumerate() {
            let head = if i < read { &heads[i][..HEAD.min(4096 - p % 4096)] } else { &[][..] };
            classify(user, env, &mut s, p, head, region)?;
            s.n += 1;
        }
        if k < got / 8 {
            return Some(s);
        }
    }
}

/// Looks at entry `s.n` (at `p`): our LD_PRELOAD, one of our variables, or the region's?
/// Not inlined: its matchers would make `scan`'s frame too large for a small signal stack.
#[inline(never)]
fn classify(user: User, env: &ExecEnv, s: &mut Scan, p: usize, head: &[u8], region: &[u8]) -> Option<()> {
    let region_head = shared_state::region::FD_VAR.len() + 1;
    let mut preload = EntryMatch::new(PRELOAD, PRELOAD.len());
    let mut ours = EntryMatch::new(region, region_head);
    let mut disable = EntryMatch::new(DISABLE, DISABLE.len() - 1);
    let mut vars: [EntryMatch<'_>; VARS.len()] = core::array::from_fn(|i| {
        let v = &env.vars[i];
        EntryMatch::new(&v.entry[..v.entry.len() - 1], v.head)
    });
    let mut in_preload = false;
    let mut list = ListMatch { lib: &env.lib, at: 0, ok: true, found: false };
    let mut len = 0;
    each_byte(user, p, head, |b| {
        if in_preload {
            list.push(b);
            len += 1;
            return true;
        }
        preload.push(b);
        ours.push(b);
        disable.push(b);
        vars.iter_mut().for_each(|m| m.push(b));
        if preload.same() {
            in_preload = true;
        }
        in_preload || preload.alive() || ours.alive() || disable.alive() || vars.iter().any(EntryMatch::alive)
    })?;
    if in_preload {
        list.end();
        s.preload = Some((s.n, p + PRELOAD.len(), len, list.found));
    }
    // The first of several counts, as getenv takes it.
    if ours.named() && s.region.is_none() {
        s.region = Some((s.n, ours.same()));
    }
    if disable.named() && s.disable.is_none() {
        s.disable = Some(disable.same());
    }
    for (i, m) in vars.iter().enumerate() {
        if m.named() && s.present & (1 << i) == 0 {
            s.present |= 1 << i;
            s.differs |= u32::from(!m.same()) << i;
        }
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

/// The new envp for `s` in a fresh mapping: (address, mapping length). `region` is the
/// region's entry to put in (replacing one there), or None to take one out.
fn build(env: &ExecEnv, envp: usize, s: &Scan, region: Option<&[u8]>) -> Option<(usize, usize)> {
    let replace = s.preload.filter(|p| !p.3);
    let missing = env.vars.iter().enumerate().filter(|(i, v)| v.set && s.present & (1 << i) == 0);
    let add_region = region.is_some() && s.region.is_none();
    let extra = usize::from(s.preload.is_none()) + missing.clone().count() + usize::from(add_region);
    let ptr_bytes = (s.n + extra + 1) * 8;
    let preload_bytes = replace.map_or(0, |(_, _, len, _)| PRELOAD.len() + env.lib.len() + 1 + len + 1);
    let str_bytes = preload_bytes + region.map_or(0, |r| r.len() + 1);
    let size = (ptr_bytes + str_bytes).div_ceil(PAGE) * PAGE;
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    let base = sys::mmap(0, size, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0).ok()?;
    let fill = || -> Option<()> {
        sys::copy_from_user(base as *mut u8, envp, s.n * 8).ok()?;
        // SAFETY: `base` is our fresh mapping of `size` >= ptr_bytes + str_bytes bytes.
        let ptrs = unsafe { core::slice::from_raw_parts_mut(base as *mut usize, s.n + extra + 1) };
        // SAFETY: the string area after the pointers, `str_bytes` long, is in the mapping (and
        // zero-filled, so every string there is NUL-terminated).
        let out = unsafe { core::slice::from_raw_parts_mut((base + ptr_bytes) as *mut u8, str_bytes) };
        let mut k = s.n;
        if let Some((i, value, len, _)) = replace {
            // "LD_PRELOAD=<lib>:<old value>" (or without ':' if it was empty): ours first, the
            // application's list kept.
            let head = PRELOAD.len() + env.lib.len();
            out[..PRELOAD.len()].copy_from_slice(PRELOAD);
            out[PRELOAD.len()..head].copy_from_slice(&env.lib);
            if len > 0 {
                out[head] = b':';
                sys::copy_from_user(out[head + 1..].as_mut_ptr(), value, len).ok()?;
            }
            ptrs[i] = out.as_ptr() as usize;
        }
        if s.preload.is_none() {
            ptrs[k] = env.preload.as_ptr() as usize;
            k += 1;
        }
        for (_, v) in missing.clone() {
            ptrs[k] = v.entry.as_ptr() as usize;
            k += 1;
        }
        match (region, s.region) {
            (Some(r), at) => {
                out[preload_bytes..preload_bytes + r.len()].copy_from_slice(r);
                let entry = out[preload_bytes..].as_ptr() as usize;
                match at {
                    Some((i, _)) => ptrs[i] = entry,
                    None => {
                        ptrs[k] = entry;
                        k += 1;
                    }
                }
            }
            (None, Some((i, _))) => {
                ptrs.copy_within(i + 1..k, i);
                k -= 1;
            }
            (None, None) => {}
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

/// What an exec passes on, worked out once for all the names a PATH search tries: the
/// environment (the application's, or a copy with ours added, mapped at `built`), and whether
/// the region's descriptors go with it (None: our environment was not captured, or the
/// application's cannot be read: nothing is changed).
struct Plan {
    envp: u64,
    built: Option<(usize, usize)>,
    keep: Option<bool>,
    /// The new environment says `IPCSHIM_DISABLE=1`: the image runs as one without the shim.
    disabled: bool,
}

fn plan(user: User, envp: usize) -> Plan {
    let mut p = Plan { envp: envp as u64, built: None, keep: None, disabled: false };
    // In scratch memory: with the scan's state it would make this frame too large.
    let Ok(mut entry) = crate::base::scratch::take(1, [0u8; 512]) else { return p };
    let entry = &mut entry[0];
    let len = crate::base::region::exec_entry(entry);
    let Some(env) = env() else { return p };
    let Some(s) = scan(user, env, envp, &entry[..len]) else { return p };
    p.disabled = s.disable == Some(true);
    let keep = crate::base::region::passes_on(!s.leaves(env));
    p.keep = Some(keep);
    let region = keep.then_some(&entry[..len]);
    let region_done = match (region, s.region) {
        (Some(_), Some((_, same))) => same,
        (None, None) => true,
        _ => false,
    };
    let complete = s.preload.is_some_and(|p| p.3)
        && env.vars.iter().enumerate().all(|(i, v)| !v.set || s.present & (1 << i) != 0)
        && region_done;
    if !complete && let Some((base, size)) = build(env, envp, &s, region) {
        p.envp = base as u64;
        p.built = Some((base, size));
    }
    p
}

/// One execve or execveat (`nr`, arguments `a`, the environment at `a[i]`) with `plan`: the
/// kernel-style result, if it returns.
fn attempt(nr: i64, a: &[u64; 6], i: usize, plan: &Plan, guard: &Guard) -> i64 {
    let (dirfd, path) = if nr == libc::SYS_execve { (libc::AT_FDCWD, a[0]) } else { (a[0] as i32, a[1]) };
    let found = crate::base::region::active()
        .is_none_or(|r| crate::family::foreign::before_exec(r, dirfd, path as usize, plan.disabled));
    if found && let Some(keep) = plan.keep {
        crate::base::region::prepare_exec(keep);
    }
    let ign = crate::entry::signals::exec_dispositions();
    let mut b = *a;
    b[i] = plan.envp;
    if let Some((base, size)) = plan.built {
        // If this is a vfork child, the mapping is in the parent's memory: let the parent
        // unmap it once we are gone (a failed exec unmaps it when the caller is done).
        let t = tls();
        t.scratch_len.store(size, Ordering::Relaxed);
        t.scratch.store(base, Ordering::Relaxed);
    }
    let r = guard.allow_signals(|| raw(nr, &b));
    crate::entry::signals::exec_failed(ign);
    if let Some(region) = crate::base::region::active().filter(|_| found) {
        crate::family::foreign::exec_failed(region);
    }
    r
}

/// execve(path, argv, envp) or execveat(dirfd, path, argv, envp, flags).
pub(super) fn exec(nr: i64, a: &[u64; 6], guard: &Guard, user: User) -> i64 {
    let i = if nr == libc::SYS_execve { 2 } else { 3 };
    let plan = plan(user, a[i] as usize);
    let r = attempt(nr, a, i, &plan, guard);
    release_scratch();
    r
}

/// A user copier for an exported symbol's arguments (as the trap's for the syscall's).
fn hook_user() -> User {
    let fault_blocked = tls().fault_blocked.load(Ordering::Relaxed) != 0;
    User::new(if fault_blocked { thread::sigbit(libc::SIGSEGV) } else { 0 })
}

/// The exported `execve` and `execv`: the exec the catch-all would make for the trapped call,
/// made from here. Returns the errno to fail with.
pub(crate) fn execve(path: usize, argv: usize, envp: usize) -> i32 {
    let guard = thread::enter();
    let plan = plan(hook_user(), envp);
    let r = attempt(libc::SYS_execve, &[path as u64, argv as u64, 0, 0, 0, 0], 2, &plan, &guard);
    release_scratch();
    -r as i32
}

/// `/bin/sh`, which runs a file the kernel does not know how to execute (ENOEXEC).
const SHELL: &[u8] = b"/bin/sh\0";

/// glibc's `__execvpe` (posix/execvpe.c) for the exported `execvp` and `execvpe`, making its
/// execve calls from here rather than through the catch-all: a PATH search's misses cost the
/// kernel's ENOENT, not a trap and a new plan each. The same names are tried in the same order
/// with the same outcome: a name with a '/' as it is, else each PATH entry (the current
/// directory for an empty one, `/bin:/usr/bin` without PATH), going on after EACCES (reported
/// at the end), ENOENT, ESTALE, ENOTDIR, ENODEV and ETIMEDOUT; a file the kernel cannot execute
/// (ENOEXEC) run by /bin/sh. Returns the errno to fail with.
pub(crate) fn execvpe(file: usize, argv: usize, envp: usize) -> i32 {
    let guard = thread::enter();
    let user = hook_user();
    let plan = plan(user, envp);
    let err = search(file, argv, &plan, &guard, user);
    release_scratch();
    err
}

/// The length of the C string at `addr`, at most `max`; None if unreadable.
fn strnlen(user: User, addr: usize, max: usize) -> Option<usize> {
    let mut n = 0;
    each_byte(user, addr, &[], |_| {
        n += 1;
        n < max
    })?;
    Some(n)
}

fn search(file: usize, argv: usize, plan: &Plan, guard: &Guard, user: User) -> i32 {
    const NAME_MAX: usize = 255;
    const PATH_MAX: usize = 4096;
    let try_one = |path: usize| -> i32 {
        let r = attempt(libc::SYS_execve, &[path as u64, argv as u64, 0, 0, 0, 0], 2, plan, guard);
        let mut e = -r as i32;
        if e == libc::ENOEXEC {
            e = script(path, argv, plan, guard, user).unwrap_or(e);
        }
        e
    };
    let Some(file_len) = strnlen(user, file, NAME_MAX + 1) else { return libc::EFAULT };
    if file_len == 0 {
        return libc::ENOENT;
    }
    let Ok(mut name) = crate::base::scratch::take(NAME_MAX + 1, 0u8) else { return libc::ENOMEM };
    if file_len <= NAME_MAX && !user.copy_in(&mut name[..file_len], file) {
        return libc::EFAULT;
    }
    let slash = if file_len <= NAME_MAX {
        name[..file_len].contains(&b'/')
    } else {
        // Longer than NAME_MAX: only a name with a '/' is executed (as it is).
        let mut found = false;
        if each_byte(user, file, &[], |b| {
            found |= b == b'/';
            !found
        })
        .is_none()
        {
            return libc::EFAULT;
        }
        found
    };
    if slash {
        return try_one(file);
    }
    if file_len > NAME_MAX {
        return libc::ENAMETOOLONG;
    }
    // SAFETY: getenv reads the environment without allocating; the result lives in it.
    let path = unsafe { libc::getenv(c"PATH".as_ptr()) };
    let path: &[u8] = if path.is_null() {
        b"/bin:/usr/bin"
    } else {
        // SAFETY: a NUL-terminated string of the environment.
        unsafe { core::ffi::CStr::from_ptr(path) }.to_bytes()
    };
    // glibc sizes its buffer by at most PATH_MAX - 1 bytes of PATH, and skips longer entries.
    let path_len = path.len().min(PATH_MAX - 1) + 1;
    let Ok(mut buf) = crate::base::scratch::take(path_len + file_len + 1, 0u8) else { return libc::ENOMEM };
    let (mut eacces, mut last) = (false, libc::ENOENT);
    for dir in path.split(|&c| c == b':').filter(|d| d.len() < path_len) {
        let mut n = dir.len();
        buf[..n].copy_from_slice(dir);
        if n > 0 {
            buf[n] = b'/';
            n += 1;
        }
        buf[n..n + file_len].copy_from_slice(&name[..file_len]);
        buf[n + file_len] = 0;
        last = try_one(buf.as_ptr() as usize);
        match last {
            libc::EACCES => eacces = true,
            libc::ENOENT | libc::ESTALE | libc::ENOTDIR | libc::ENODEV | libc::ETIMEDOUT => {}
            e => return e,
        }
    }
    if eacces { libc::EACCES } else { last }
}

/// glibc's `maybe_script_execute`: `/bin/sh path args...` (argv[0] replaced by the path); the
/// errno, or None when the arguments are too many to count.
fn script(path: usize, argv: usize, plan: &Plan, guard: &Guard, user: User) -> Option<i32> {
    let mut argc = 0usize;
    loop {
        let p: usize = user.read(argv + argc * 8)?;
        if p == 0 {
            break;
        }
        argc += 1;
        if argc == i32::MAX as usize - 1 {
            return Some(libc::E2BIG);
        }
    }
    let Ok(mut args) = crate::base::scratch::take((argc + 1).max(2) + 1, 0usize) else {
        return Some(libc::ENOMEM);
    };
    args[0] = SHELL.as_ptr() as usize;
    args[1] = path;
    for k in 1..argc {
        args[k + 1] = user.read(argv + k * 8)?;
    }
    let r =
        attempt(libc::SYS_execve, &[SHELL.as_ptr() as u64, args.as_ptr() as u64, 0, 0, 0, 0], 2, plan, guard);
    Some(-r as i32)
}
