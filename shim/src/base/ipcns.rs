//! IPC namespaces: `unshare(CLONE_NEWIPC)`, `clone`/`clone3` with `CLONE_NEWIPC` and `setns`
//! to an IPC namespace move the calling thread (and what it starts) to another set of System V
//! objects, as `copy_ipcs` and `ipcns_install` do.
//!
//! The kernel makes the call first, so its rights checks and errors are the kernel's, and its
//! namespace (the nsfs inode of `/proc/thread-self/ns/ipc`) names ours. A new namespace is a
//! fresh region of its own, in a memfd: empty, with the limits the kernel gives a new
//! namespace, gone with the last process holding it, as the kernel's is. Only System V calls
//! and their `/proc` views go there: pipes, FIFOs and sockets, which the kernel's IPC
//! namespace does not cover, stay in the process tree's region, so those already open keep
//! working and new ones still meet their peers. Attachments made before stay valid and
//! counted in their own namespace, as the kernel keeps their mappings.
//!
//! Which namespace a thread is in: its own [`Tls::ipc_ns`] when it moved, else the one its
//! image started in. A new thread gets its creator's (the kernel shares its nsproxy), a fork
//! child the forking thread's, an exec'd image the exec'ing thread's: the region's descriptors
//! stay open and their numbers go in `IPCSHIM_REGION_FD` after a ';', with the kernel
//! namespaces of the tree's own region and of this one.

use crate::base::thread;
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, Ordering};
use shared_state::Region;
use shared_state::proc;
use shared_state::region::RegionFiles;
use shared_state::sys::{self, Errno};

/// Namespace ids: the tree's own region is BASE; slot i is id i + 2.
const BASE: u32 = 1;
const SLOTS: usize = proc::MAX_REGIONS - 1;

const FREE: u8 = 0;
const BUSY: u8 = 1;
const READY: u8 = 2;

struct Slot {
    state: AtomicU8,
    region: UnsafeCell<MaybeUninit<Region>>,
    files: [AtomicI32; 2],
    dev: AtomicU64,
    ino: AtomicU64,
    /// The kernel namespace (nsfs inode) it stands for.
    kns: AtomicU64,
}

// SAFETY: `region` is written once by the thread that set the slot BUSY, before READY is
// published; afterwards it is only read.
unsafe impl Sync for Slot {}

static NS: [Slot; SLOTS] = [const {
    Slot {
        state: AtomicU8::new(FREE),
        region: UnsafeCell::new(MaybeUninit::uninit()),
        files: [AtomicI32::new(-1), AtomicI32::new(-1)],
        dev: AtomicU64::new(0),
        ino: AtomicU64::new(0),
        kns: AtomicU64::new(0),
    }
}; SLOTS];

/// The namespace of threads that did not move: the one this image started in.
static DEFAULT: AtomicU32 = AtomicU32::new(BASE);

/// The region of the process's own namespace (`crate::base::region` opens it and sets this).
static BASE_REGION: AtomicPtr<Region> = AtomicPtr::new(core::ptr::null_mut());

/// Called once the process's own region is mapped: a leaked box, never unmapped.
pub(crate) fn set_base_region(r: &'static Region) {
    BASE_REGION.store(r as *const Region as *mut Region, Ordering::Release);
}

/// The process's own region (`crate::base::region::active`).
#[inline]
pub(crate) fn base_region() -> Option<&'static Region> {
    let p = BASE_REGION.load(Ordering::Acquire);
    // SAFETY: set once to a region that stays mapped for the process's life.
    (!p.is_null()).then(|| unsafe { &*p })
}
/// The kernel namespace the tree's own region stands for, once known (0: not yet).
static BASE_KNS: AtomicU64 = AtomicU64::new(0);
/// A vfork child shares its parent's memory and thread state: the namespace it moved to is
/// kept here with its pid, so the parent's is untouched.
static VFORK_NS: AtomicU64 = AtomicU64::new(0);
/// Some thread of this process is, or was, in a namespace other than the tree's: until then
/// every System V call goes to the tree's region without looking further.
static MOVED: AtomicBool = AtomicBool::new(false);

fn slot(id: u32) -> Option<&'static Slot> {
    let i = id.checked_sub(2)? as usize;
    NS.get(i).filter(|s| s.state.load(Ordering::Acquire) == READY)
}

fn region_of(id: u32) -> Option<&'static Region> {
    if id == BASE {
        return base_region();
    }
    // SAFETY: a READY slot's region was written before READY was published, and stays.
    slot(id).map(|s| unsafe { (*s.region.get()).assume_init_ref() })
}

fn current_id() -> u32 {
    if thread::in_vfork_child() {
        let v = VFORK_NS.load(Ordering::Relaxed);
        if v != 0 && (v >> 32) as i32 == sys::getpid() {
            return v as u32;
        }
    }
    match thread::tls().ipc_ns.load(Ordering::Relaxed) {
        0 => DEFAULT.load(Ordering::Relaxed),
        id => id,
    }
}

fn set_current(id: u32) {
    MOVED.store(true, Ordering::Relaxed);
    if thread::in_vfork_child() {
        VFORK_NS.store((sys::getpid() as u32 as u64) << 32 | id as u64, Ordering::Relaxed);
    } else {
        thread::tls().ipc_ns.store(id, Ordering::Relaxed);
    }
}

/// The region of the calling thread's IPC namespace.
#[inline]
pub fn current() -> Option<&'static Region> {
    if !MOVED.load(Ordering::Relaxed) {
        return base_region();
    }
    region_of(current_id())
}

/// Every region this process maps (its tree's, and those of the IPC namespaces it was in),
/// for what concerns them all: exit, fork, unmapped attachments.
pub fn each_region(mut f: impl FnMut(&'static Region)) {
    if let Some(r) = base_region() {
        f(r);
    }
    for i in 0..SLOTS {
        if let Some(r) = region_of(i as u32 + 2) {
            f(r);
        }
    }
}

/// The descriptors of the namespaces' regions, which the program's closes go around.
pub fn files() -> [i32; 2 * SLOTS] {
    core::array::from_fn(|i| match NS[i / 2].state.load(Ordering::Acquire) {
        READY => NS[i / 2].files[i % 2].load(Ordering::Relaxed),
        _ => -1,
    })
}

/// Before the program closes or replaces `fd`: a namespace's descriptor there moves to the
/// number `dup` gives it first. Not in a vfork child, which shares our record of them.
pub fn keep_file(fd: i32, dup: impl Fn(i32) -> Option<i32>) {
    if fd < 0 || thread::in_vfork_child() {
        return;
    }
    for s in NS.iter().filter(|s| s.state.load(Ordering::Acquire) == READY) {
        for f in &s.files {
            if f.load(Ordering::Relaxed) == fd
                && let Some(n) = dup(fd)
            {
                f.store(n, Ordering::Relaxed);
            }
        }
    }
}

/// The nsfs inode of the calling thread's kernel IPC namespace (0 if unknown).
fn kns_now() -> u64 {
    sys::fstatat(libc::AT_FDCWD, b"/proc/thread-self/ns/ipc\0").map_or(0, |st| st.st_ino)
}

/// Records `kns` as what namespace `id` stands for, if that was not known yet.
fn note_kns(id: u32, kns: u64) {
    let word = if id == BASE { Some(&BASE_KNS) } else { slot(id).map(|s| &s.kns) };
    if let Some(w) = word {
        let _ = w.compare_exchange(0, kns, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// The namespace standing for kernel namespace `kns`, if this process knows one.
fn find_kns(kns: u64) -> Option<u32> {
    if kns == 0 {
        return None;
    }
    if BASE_KNS.load(Ordering::Relaxed) == kns {
        return Some(BASE);
    }
    (0..SLOTS as u32)
        .map(|i| i + 2)
        .find(|&id| slot(id).is_some_and(|s| s.kns.load(Ordering::Relaxed) == kns))
}

/// A free slot, marked BUSY.
fn claim() -> Option<usize> {
    NS.iter().position(|s| s.state.compare_exchange(FREE, BUSY, Ordering::AcqRel, Ordering::Acquire).is_ok())
}

/// Maps `files` into slot `i` (BUSY) and publishes it; the files are closed on failure.
fn install(i: usize, files: RegionFiles, kns: u64) -> Result<u32, Errno> {
    let s = &NS[i];
    // An empty name: nothing is allocated (see `fresh`).
    match Region::map(&files, "") {
        Ok(r) => {
            // SAFETY: the slot is BUSY, ours alone until READY is published below.
            unsafe { (*s.region.get()).write(r) };
            let (dev, ino) = files.identity().unwrap_or_default();
            s.dev.store(dev, Ordering::Relaxed);
            s.ino.store(ino, Ordering::Relaxed);
            s.files[0].store(files.rw, Ordering::Relaxed);
            s.files[1].store(files.ro, Ordering::Relaxed);
            s.kns.store(kns, Ordering::Relaxed);
            s.state.store(READY, Ordering::Release);
            Ok(i as u32 + 2)
        }
        Err(_) => {
            files.close();
            s.state.store(FREE, Ordering::Release);
            Err(libc::ENOMEM)
        }
    }
}

/// A new, empty namespace: a region in a memfd (its limits read from the kernel's namespace
/// of the caller, which is the new one once the kernel made it). Allocates nothing: it runs
/// in the SIGSYS handler, and in a clone child whose parent's other threads may have held
/// malloc's lock.
fn fresh(kns: u64) -> Result<u32, Errno> {
    let i = claim().ok_or(libc::ENOMEM)?;
    let made = (|| {
        let name = c"ipcshim-ipc-namespace".as_ptr() as usize;
        let fd = sys::syscall6(libc::SYS_memfd_create, name, libc::MFD_CLOEXEC as usize, 0, 0, 0, 0)? as i32;
        // The read-only view's file: the same memfd opened again read-only.
        let mut path = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0";
        let mut digits = [0u8; 10];
        let n = shared_state::pipe_gc::itoa(fd as u32, &mut digits);
        path[14..14 + n].copy_from_slice(&digits[..n]);
        let ro = match sys::open(&path[..14 + n + 1], libc::O_RDONLY | libc::O_CLOEXEC, 0) {
            Ok(ro) => ro,
            Err(e) => {
                sys::close(fd);
                return Err(e);
            }
        };
        Ok(crate::base::fd::keep_high(RegionFiles { rw: fd, ro }))
    })();
    match made {
        Ok(files) => install(i, files, kns),
        Err(e) => {
            NS[i].state.store(FREE, Ordering::Release);
            Err(e)
        }
    }
}

/// Threads of this process (`/proc/self/stat` field 20).
fn threads() -> u64 {
    let Ok(fd) = sys::open(b"/proc/self/stat\0", libc::O_RDONLY | libc::O_CLOEXEC, 0) else { return 0 };
    let mut buf = [0u8; 512];
    let n = sys::read(fd, &mut buf).unwrap_or(0);
    sys::close(fd);
    let text = &buf[..n];
    let Some(close) = text.iter().rposition(|&b| b == b')') else { return 0 };
    // After the state (field 3), num_threads is field 20: 17 fields further on.
    let mut fields = text[close + 1..].split(|&b| b == b' ').filter(|f| !f.is_empty());
    fields.nth(17).map_or(0, |f| {
        f.iter().take_while(|b| b.is_ascii_digit()).fold(0, |v, &b| v * 10 + (b - b'0') as u64)
    })
}

fn raw(nr: i64, a: [usize; 2]) -> i64 {
    match sys::syscall6(nr, a[0], a[1], 0, 0, 0, 0) {
        Ok(v) => v as i64,
        Err(e) => -(e as i64),
    }
}

/// `unshare(flags)` with CLONE_NEWIPC: the kernel's, then a new empty namespace for the
/// calling thread. The old one gets `ksys_unshare`'s `exit_sem` and `exit_shm` (undo applied,
/// segments orphaned) when no other thread shares them. None: no CLONE_NEWIPC.
pub fn unshare(flags: u64) -> Option<i64> {
    if flags & libc::CLONE_NEWIPC as u64 == 0 {
        // CLONE_SYSVSEM alone: `exit_sem`, in the namespace the thread stays in.
        if flags & libc::CLONE_SYSVSEM as u64 == 0 {
            return None;
        }
        let r = raw(libc::SYS_unshare, [flags as usize, 0]);
        if let (true, Some(region)) = (r == 0, current()) {
            proc::leave_ipc_ns(region, threads() == 1, false);
        }
        return Some(r);
    }
    let before = kns_now();
    // Made first: a failure leaves the caller where it was, with the kernel's own errno for
    // a namespace it could not allocate.
    let id = match fresh(0) {
        Ok(id) => id,
        Err(e) => return Some(-(e as i64)),
    };
    let r = raw(libc::SYS_unshare, [flags as usize, 0]);
    if r < 0 {
        drop_fresh(id);
        return Some(r);
    }
    if let (Some(s), Some(r)) = (slot(id), region_of(id)) {
        s.kns.store(kns_now(), Ordering::Relaxed);
        // Made before the kernel's namespace: its limits are the new one's (`shm_init_ns`…).
        // SAFETY: nobody else uses the region yet.
        unsafe { r.header_mut().limits = shared_state::region::kernel_limits() };
    }
    leave(before, true);
    set_current(id);
    Some(r)
}

/// Gives back a namespace made for a call that failed (nobody used it).
fn drop_fresh(id: u32) {
    let Some(s) = slot(id) else { return };
    // SAFETY: READY, used by nobody: it was made for this call alone.
    unsafe { (*s.region.get()).assume_init_drop() };
    sys::close(s.files[0].load(Ordering::Relaxed));
    sys::close(s.files[1].load(Ordering::Relaxed));
    s.state.store(FREE, Ordering::Release);
}

/// The calling thread leaves its namespace (which stood for kernel namespace `before`): its
/// undo is applied (`exit_sem`) and, for `unshare`, its segments orphaned (`exit_shm`), when
/// no other thread shares them.
fn leave(before: u64, orphan: bool) {
    let old = current_id();
    note_kns(old, before);
    let single = threads() == 1;
    if let Some(r) = region_of(old) {
        proc::leave_ipc_ns(r, single, orphan && single);
    }
}

/// `NS_GET_NSTYPE` (linux/nsfs.h).
const NS_GET_NSTYPE: usize = 0xb703;

/// `setns(fd, nstype)` into an IPC namespace (an nsfs fd, or a pidfd with CLONE_NEWIPC): the
/// kernel's, then the namespace that stands for the one joined (`commit_nsset`'s `exit_sem`
/// first). One this process never was in starts empty here (README: limitations). None:
/// another kind of namespace.
pub fn setns(fd: u64, nstype: u64) -> Option<i64> {
    let nstype = nstype as i32;
    if nstype != 0 && nstype & libc::CLONE_NEWIPC == 0 {
        return None;
    }
    let before = kns_now();
    let r = raw(libc::SYS_setns, [fd as usize, nstype as usize]);
    let ipc = nstype & libc::CLONE_NEWIPC != 0
        || raw(libc::SYS_ioctl, [fd as usize, NS_GET_NSTYPE]) == libc::CLONE_NEWIPC as i64;
    if r < 0 || !ipc {
        return Some(r);
    }
    let after = kns_now();
    leave(before, false);
    let id = match find_kns(after) {
        Some(id) => id,
        None => match fresh(after) {
            Ok(id) => id,
            Err(_) => return Some(r),
        },
    };
    set_current(id);
    Some(r)
}

/// In the parent, before a `clone` with CLONE_NEWIPC: what the namespace it leaves stands for
/// (the child's copy of our memory learns it too).
pub fn before_clone(flags: u64) {
    if flags & libc::CLONE_NEWIPC as u64 != 0 {
        note_kns(current_id(), kns_now());
    }
}

/// In a child cloned with CLONE_NEWIPC (a copy of the process): a new, empty namespace. It
/// has no undo list nor segments of its own yet (`copy_semundo`, `shm_init_task`).
pub fn clone_child(flags: u64) {
    if flags & libc::CLONE_NEWIPC as u64 == 0 {
        return;
    }
    proc::identify_self();
    if let Ok(id) = fresh(kns_now()) {
        set_current(id);
    }
}

/// A thread being created with thread pointer `tp` shares its creator's namespace.
pub fn to_new_thread(tp: u64) {
    let id = thread::tls().ipc_ns.load(Ordering::Relaxed);
    if id == 0 || tp == 0 {
        return;
    }
    let at = thread::tls_of(tp as usize) + core::mem::offset_of!(thread::Tls, ipc_ns);
    let _ = crate::base::copy::slice_out(at, &[id]);
}

/// At start-up: the namespace this image was passed (see the module comment), if its files
/// are still open as that namespace's region.
pub fn init(inherited: Option<&str>) {
    let Some(value) = inherited.and_then(|v| v.split_once(';')).map(|(_, ns)| ns) else { return };
    let nums: Vec<u64> = value.split(',').map_while(|w| w.parse().ok()).collect();
    if let Some(&base) = nums.first() {
        BASE_KNS.store(base, Ordering::Relaxed);
    }
    let (Some(files), Some(&kns)) = (RegionFiles::ipc_inherited(value), nums.get(5)) else { return };
    let Some(i) = claim() else { return };
    if let Ok(id) = install(i, files, kns) {
        if let Some(r) = region_of(id) {
            proc::exec_cleanup(r);
        }
        DEFAULT.store(id, Ordering::Relaxed);
        MOVED.store(true, Ordering::Relaxed);
    }
}

/// The `;BASE_KNS[,RW,RO,DEV,INO,KNS]` to append to `IPCSHIM_REGION_FD` for an image the
/// calling thread execs: `put` takes the pieces. Nothing while no namespace was left.
pub fn exec_suffix(put: &mut dyn FnMut(&[u8])) {
    let id = current_id();
    let base = BASE_KNS.load(Ordering::Relaxed);
    let s = slot(id);
    if base == 0 && s.is_none() {
        return;
    }
    let mut num = |n: u64, sep: &[u8]| {
        put(sep);
        let mut digits = [0u8; 20];
        let k = shared_state::pipe_gc::itoa64(n, &mut digits);
        put(&digits[..k]);
    };
    num(base, b";");
    if let Some(s) = s {
        for v in [
            s.files[0].load(Ordering::Relaxed) as u64,
            s.files[1].load(Ordering::Relaxed) as u64,
            s.dev.load(Ordering::Relaxed),
            s.ino.load(Ordering::Relaxed),
            s.kns.load(Ordering::Relaxed),
        ] {
            num(v, b",");
        }
    }
}

/// Just before an exec: the calling thread's namespace's descriptors are inherited (when the
/// image `stays` in our tree), the others' close with the exec.
pub fn prepare_exec(stays: bool) {
    let id = current_id();
    for (i, s) in NS.iter().enumerate() {
        if s.state.load(Ordering::Acquire) != READY {
            continue;
        }
        let keep = stays && id == i as u32 + 2;
        let flag = if keep { 0 } else { libc::FD_CLOEXEC };
        for f in &s.files {
            let fd = f.load(Ordering::Relaxed) as usize;
            let _ = sys::syscall6(libc::SYS_fcntl, fd, libc::F_SETFD as usize, flag as usize, 0, 0, 0);
        }
    }
}
