//! epoll_create(1), epoll_ctl, epoll_wait, epoll_pwait and epoll_pwait2 over any mix of shim
//! and kernel fds (fs/eventpoll.c).
//!
//! The epoll fd stays the kernel's instance, and every interest is in it: a kernel fd's as the
//! application asked, a shim fd's as its placeholder without EPOLLIN/EPOLLOUT (which come from
//! the shim object) and with a token naming its item in `shared_state::epoll` as its data. So
//! the kernel keeps membership ((file, fd) keys, removal when the file's last reference goes),
//! every errno of epoll_ctl (ELOOP and EINVAL for nested sets too) and the placeholders'
//! HUP/ERR; an epoll fd inherited by exec finds its instance from the tokens in
//! `/proc/self/fdinfo/N`, once (cached in `fd`).
//!
//! The shim's instance has the kernel's ready list: writers, readers and closers of a shim
//! object put the items watching it there and wake a sleeper (`shared_state::epoll_wq`). A
//! wait takes the kernel's events (when the set has kernel fds, or something only the kernel
//! shows may have changed: a close, a shutdown, an ADD), merges those of placeholders into
//! their items, and reports the ready list's items that are ready (`ep_send_events`): its cost
//! is what is ready, not what is watched. It sleeps on the instance's futex word, and when the
//! set has kernel fds also on the kernel's epoll fd, both at once through an io_uring
//! (`crate::base::uring`; in short slices where there is none). An fd whose object was closed has
//! its item checked against the kernel's instance (`kcmp`'s KCMP_EPOLL_TFD), which drops the
//! interest with the file's last reference.

use crate::base::fd::{self, EpollFd, PipeFd};
use crate::base::thread;
use crate::base::{scratch, uring};
use crate::family::poll::{self, Shim, Timeout, copy_in, copy_out};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use shared_state::Region;
use shared_state::epoll::{self as ep, Ctl, DISABLED, InstRef, ItemRef, ItemView, TABLE_FULL};
use shared_state::epoll_wq::{self as wq, Wq};
use shared_state::pipe_gc;
use shared_state::sys::{self, Errno};
use shared_state::wait::deadline_after;

const EP_MAX_EVENTS: i64 = i32::MAX as i64 / size_of::<libc::epoll_event>() as i64;
/// Kernel events one look takes at most (the rest come with the next).
const KBUF: usize = 1024;
/// Where io_uring cannot be had: the longest sleep of a set with kernel fds between two looks
/// at its shim objects.
const MIXED_SLICE_NS: i64 = 2_000_000;
/// The longest kernel sleep of a wait on a set without shim interests, between two looks at
/// whether one was added meanwhile.
const KERNEL_SLICE_NS: i64 = 50_000_000;
/// A shim-only set asks the kernel about its placeholders (a peer killed, which no shim code
/// reports) after a sleep this long.
const SHIM_SLICE_NS: i64 = 100_000_000;
/// What a placeholder's kernel interest leaves to the shim object.
const RING_BITS: u32 = (libc::EPOLLIN | libc::EPOLLRDNORM | libc::EPOLLOUT | libc::EPOLLWRNORM) as u32;
const ALWAYS: u32 = (libc::EPOLLERR | libc::EPOLLHUP) as u32;
const ET: u32 = libc::EPOLLET as u32;
const ONESHOT: u32 = libc::EPOLLONESHOT as u32;
/// What a fired ONESHOT interest keeps (fs/eventpoll.c's EP_PRIVATE_BITS).
const PRIVATE_BITS: u32 =
    (libc::EPOLLWAKEUP | libc::EPOLLONESHOT | libc::EPOLLET | libc::EPOLLEXCLUSIVE) as u32;
/// An item's target that is an epoll instance (nested sets), above its `InstRef` bits; other
/// targets are `Shim` bits.
const EPOLL_TARGET: u64 = 1 << 59;
/// How deep nested sets are polled (the kernel allows 5 levels).
const MAX_NESTS: u32 = 5;

fn neg(e: Errno) -> i64 {
    -(e as i64)
}

fn ret(r: Result<usize, Errno>) -> i64 {
    r.map_or_else(neg, |n| n as i64)
}

/// What an fd is, as an epoll fd.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lookup {
    NotEpoll,
    NoObj,
    Obj(InstRef),
}

/// epoll_create and epoll_create1: the kernel's instance, known to have no shim instance yet.
pub fn create(r: &Region, nr: i64, a: &[u64; 6]) -> Option<i64> {
    let res = sys::syscall6(nr, a[0] as usize, 0, 0, 0, 0, 0);
    if let Ok(fd) = res {
        let made = (fd::forks() & 0x7fff) + 1;
        fd::set_epoll(fd as i32, EpollFd::NoObj(ep::ns(r).created.load(SeqCst), made));
    }
    Some(ret(res))
}

/// The instance behind epoll fd `epfd`, from the fd table or found again.
fn object_of(r: &Region, epfd: i32) -> Lookup {
    let created = ep::ns(r).created.load(SeqCst);
    match fd::epoll_of(epfd) {
        EpollFd::Obj(bits) if ep::inst(r, InstRef::from_bits(bits)).is_some() => {
            return Lookup::Obj(InstRef::from_bits(bits));
        }
        EpollFd::NoObj(c, _) if c == created => return Lookup::NoObj,
        EpollFd::NotEpoll => return Lookup::NotEpoll,
        _ => {}
    }
    // Not a shim pipe: a cached kernel entry to refine.
    if fd::lookup(r, epfd).is_some() {
        return Lookup::NotEpoll;
    }
    let mut link = [0u8; 32];
    let n = with_path(b"/proc/self/fd/", epfd, |p| sys::readlinkat(libc::AT_FDCWD, p, &mut link));
    match n {
        Ok(n) if &link[..n] == b"anon_inode:[eventpoll]" => {}
        Ok(_) => {
            fd::set_epoll(epfd, EpollFd::NotEpoll);
            return Lookup::NotEpoll;
        }
        Err(_) => return Lookup::NotEpoll,
    }
    let mut found = None;
    let _ = each_interest(epfd, |k| {
        if found.is_none() {
            found = ItemRef::from_token(k.data).and_then(|i| ep::inst_of(r, i));
        }
        found.is_some()
    });
    match found {
        Some(h) => {
            // Found through the kernel: another process (or image) holds it too.
            if let Some(o) = ep::inst(r, h) {
                o.set_shared();
            }
            fd::set_epoll(epfd, EpollFd::Obj(h.to_bits()));
            Lookup::Obj(h)
        }
        None => {
            let made = match fd::epoll_of(epfd) {
                EpollFd::NoObj(_, made) => made,
                _ => 0,
            };
            fd::set_epoll(epfd, EpollFd::NoObj(created, made));
            Lookup::NoObj
        }
    }
}

/// The instance of epoll fd `epfd` (`obj`), made now if it has none, with as many kernel
/// interests as the kernel instance holds so far.
fn instance_for(r: &Region, epfd: i32, obj: Lookup) -> Result<InstRef, Errno> {
    match obj {
        Lookup::Obj(h) => Ok(h),
        Lookup::NotEpoll => Err(libc::EINVAL),
        Lookup::NoObj => {
            let h = match ep::create(r, fd::forks()) {
                Ok(h) => h,
                Err(_) => {
                    // Full: instances whose epoll fds are all gone are freed first.
                    collect_unheld(r);
                    ep::create(r, fd::forks())?
                }
            };
            let mut kernel = 0;
            let _ = each_interest(epfd, |_| {
                kernel += 1;
                false
            });
            if let Some(o) = ep::inst(r, h) {
                o.kernel_items.store(kernel, SeqCst);
                // An epoll fd made before this process's last fork (or elsewhere) may be held
                // by another process too.
                let made = match fd::epoll_of(epfd) {
                    EpollFd::NoObj(_, made) => made,
                    _ => 0,
                };
                if made != (fd::forks() & 0x7fff) + 1 {
                    o.set_shared();
                }
            }
            fd::set_epoll(epfd, EpollFd::Obj(h.to_bits()));
            Ok(h)
        }
    }
}

/// Runs `f` with the NUL-terminated path `prefix` + `fd`.
fn with_path<R>(prefix: &[u8], fd: i32, f: impl FnOnce(&[u8]) -> R) -> R {
    let mut path = [0u8; 40];
    let mut digits = [0u8; 10];
    let n = pipe_gc::itoa(fd as u32, &mut digits);
    path[..prefix.len()].copy_from_slice(prefix);
    path[prefix.len()..prefix.len() + n].copy_from_slice(&digits[..n]);
    f(&path[..prefix.len() + n + 1])
}

/// One interest as the kernel lists it (`ep_show_fdinfo`).
#[derive(Clone, Copy, Default)]
struct Interest {
    tfd: i32,
    events: u32,
    data: u64,
    /// The target file's inode.
    ino: u64,
}

/// Calls `f` with every interest the kernel lists for epoll fd `epfd`, until it returns true.
fn each_interest(epfd: i32, f: impl FnMut(&Interest) -> bool) -> Result<(), Errno> {
    with_path(b"/proc/self/fdinfo/", epfd, |p| interests_at(p, f))
}

/// The same for the fdinfo file at `path` (its `tfd: N events: X data: D pos:P ino:I ...`
/// lines).
fn interests_at(path: &[u8], mut f: impl FnMut(&Interest) -> bool) -> Result<(), Errno> {
    let mut buf = scratch::take(4096, 0u8)?;
    let fdi = sys::open(path, libc::O_RDONLY | libc::O_CLOEXEC, 0)?;
    let mut line = [0u8; 192];
    let mut len = 0;
    let res = 'read: loop {
        let n = match sys::read(fdi, &mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) => break Err(e),
        };
        for &c in &buf[..n] {
            if c != b'\n' {
                if len < line.len() {
                    line[len] = c;
                    len += 1;
                }
                continue;
            }
            if let Some(i) = interest(&line[..len])
                && f(&i)
            {
                break 'read Ok(());
            }
            len = 0;
        }
    };
    sys::close(fdi);
    res
}

fn interest(line: &[u8]) -> Option<Interest> {
    if !line.starts_with(b"tfd:") {
        return None;
    }
    // The number after `key`, in `radix`.
    let field = |key: &[u8], radix: u32| {
        let at = line.windows(key.len()).position(|w| w == key)? + key.len();
        let mut digits = line[at..].iter().skip_while(|c| **c == b' ').take_while(|c| c.is_ascii_hexdigit());
        digits.try_fold(0u64, |v, &c| {
            v.checked_mul(radix as u64)?.checked_add((c as char).to_digit(radix)? as u64)
        })
    };
    Some(Interest {
        tfd: field(b"tfd:", 10)? as i32,
        events: field(b"events:", 16)? as u32,
        data: field(b"data:", 16)?,
        ino: field(b" ino:", 16)?,
    })
}

fn kernel_ctl(epfd: i32, op: i32, fd: i32, ev: usize) -> Result<usize, Errno> {
    sys::syscall6(libc::SYS_epoll_ctl, epfd as usize, op as usize, fd as usize, ev, 0, 0)
}

/// What an epoll_ctl's fd is to the shim.
#[derive(Clone, Copy)]
enum Target {
    /// A shim pipe or socket.
    Shim(PipeFd),
    /// An epoll fd with (or given now) a shim instance: a nested set.
    Epoll(InstRef),
    /// Anything else: the kernel's alone.
    Kernel,
}

impl Target {
    /// Which of its object's wake-ups an item waits for: a pipe end's own direction, both for
    /// a socket or a nested set.
    fn sides(&self) -> u32 {
        use shared_state::pipe::{READERS, WRITERS};
        match self {
            Target::Shim(p) if !p.socket => {
                (if p.read { READERS } else { 0 }) | (if p.write { WRITERS } else { 0 })
            }
            _ => READERS | WRITERS,
        }
    }

    /// Its wait queue and the item's target bits.
    fn queue(&self) -> (Wq, u64) {
        match self {
            Target::Shim(p) => (Wq::Pipe(p.pipe.idx), Shim::of(p).to_bits()),
            Target::Epoll(h) => (Wq::Inst(h.idx), EPOLL_TARGET | h.to_bits()),
            Target::Kernel => unreachable!("a kernel target has no queue"),
        }
    }
}

/// A DEL of a socket's interest that the kernel has not made yet: (epfd + 1) << 32 | (fd + 1),
/// 0 for none, and the item's token. See [`defer_del`].
static DEFERRED: AtomicU64 = AtomicU64::new(0);
static DEFERRED_ITEM: AtomicU64 = AtomicU64::new(0);

/// A socket's DEL waits for this process's next system call, which makes it first (the
/// kernel's DEL, and the item freed), unless that call ADDs the same fd to the same set again:
/// the item and the kernel's interest then stay, with the new events (see [`readd`]). Event
/// loops do that at every request (redis-benchmark's clients: DEL of EPOLLIN, ADD of
/// EPOLLOUT, and back). The item is disabled meanwhile, so the set shows no interest, and
/// nobody else can look at the set before the next call: only where this process alone holds
/// the set and has one thread.
fn defer_del(epfd: i32, fd: i32, it: ItemRef) {
    DEFERRED_ITEM.store(it.token(), Relaxed);
    DEFERRED.store(((epfd as u32 as u64) + 1) << 32 | ((fd as u32 as u64) + 1), Relaxed);
}

/// A deferred DEL taken: (epfd, fd, item).
fn take_deferred() -> Option<(i32, i32, ItemRef)> {
    if DEFERRED.load(Relaxed) == 0 {
        return None;
    }
    let v = DEFERRED.swap(0, Relaxed);
    let it = ItemRef::from_token(DEFERRED_ITEM.load(Relaxed))?;
    (v != 0).then(|| (((v >> 32) - 1) as i32, ((v & 0xffff_ffff) - 1) as i32, it))
}

/// Makes a deferred DEL: the kernel's, and the item freed.
fn finish_del(r: Option<&Region>, epfd: i32, fd: i32, it: ItemRef) {
    let _ = kernel_ctl(epfd, libc::EPOLL_CTL_DEL, fd, 0);
    if let Some(r) = r
        && let Some(h) = ep::inst_of(r, it)
        && let Ok(c) = ep::ctl(r, h)
    {
        c.remove(it);
    }
}

/// Makes the deferred DEL, if any (before every call but an epoll_ctl, which decides itself).
pub fn flush_deferred() {
    if let Some((epfd, fd, it)) = take_deferred() {
        finish_del(crate::base::region::active(), epfd, fd, it);
    }
}

/// Whether a DEL of item `cfg` of socket target `target` in instance `h` may wait (see
/// [`defer_del`]).
fn may_defer_del(r: &Region, h: InstRef, target: &Target, cfg: u64) -> bool {
    matches!(target, Target::Shim(p) if p.socket)
        && cfg as u32 & libc::EPOLLEXCLUSIVE as u32 == 0
        && !thread::may_have_threads()
        && !thread::in_vfork_child()
        && ep::inst(r, h).is_some_and(|o| o.exclusive_to(fd::own_pid(), fd::forks()) && !o.has_sleepers())
}

/// Event bits whose change the kernel's half must be told of (re-armed, or polled again).
const KERNEL_ONLY: u32 = ET | ONESHOT | libc::EPOLLEXCLUSIVE as u32;

/// An ADD of the fd whose DEL was deferred (item `it`), to the same set: the item comes back
/// with the new events and data, as a new one (`ep_insert`: queued now if ready), and the
/// kernel's interest keeps its token. The kernel is not asked when its half stays as it is
/// and is level-triggered (the kernel keeps a ready level-triggered interest queued, so what
/// it reported of the placeholder stays true); else it takes the new half with a MOD. None
/// when the item cannot come back (the caller makes the DEL and adds as usual).
fn readd(
    r: &Region,
    epfd: i32,
    fd: i32,
    h: InstRef,
    target: &Target,
    ev: libc::epoll_event,
    it: ItemRef,
) -> Option<Result<usize, Errno>> {
    if ev.events & libc::EPOLLEXCLUSIVE as u32 != 0 {
        return None;
    }
    let c = ep::ctl(r, h).ok()?;
    let v = ep::view(r, it).filter(|v| v.fd == fd && v.target == target.queue().1)?;
    let narrowed = v.registered().is_some_and(|(_, n)| n);
    let kev = kernel_half(r, target, ev.events, it.token(), narrowed);
    let kept = ev.events & KERNEL_ONLY == 0 && v.registered() == Some((kev.events, narrowed));
    if !kept {
        kernel_ctl(epfd, libc::EPOLL_CTL_MOD, fd, &raw const kev as usize).ok()?;
        c.set_registered(it, kev.events, narrowed);
    }
    c.revive(it, ev.events | ALWAYS, ev.u64, !kept, |v| {
        let kbits = if kept { v.kernel_bits(c.inst) } else { 0 };
        (target_events(r, v, 1) | kbits) & v.cfg as u32 != 0
    });
    Some(Ok(0))
}

/// epoll_ctl. A shim target is served; a kernel target goes to the kernel (counted in the
/// instance, so that waits know the kernel has fds too).
pub fn ctl(r: &Region, a: &[u64; 6]) -> Option<i64> {
    let (epfd, op, fd, uev) = (a[0] as i32, a[1] as i32, a[2] as i32, a[3] as usize);
    // A deferred DEL is made now unless this ADDs its fd to its set again.
    let mut deferred = match take_deferred() {
        Some((e, f, it)) if op == libc::EPOLL_CTL_ADD && e == epfd && f == fd => Some(it),
        Some((e, f, it)) => {
            finish_del(Some(r), e, f, it);
            None
        }
        None => None,
    };
    let res = ctl_served(r, epfd, op, fd, uev, &mut deferred);
    // Not taken up by an ADD: made now (before the kernel makes the call, when it is left to
    // it).
    flush(r, epfd, fd, &mut deferred);
    res
}

/// Makes the deferred DEL of `fd` in `epfd`, if `deferred` still holds it.
fn flush(r: &Region, epfd: i32, fd: i32, deferred: &mut Option<ItemRef>) {
    if let Some(it) = deferred.take() {
        finish_del(Some(r), epfd, fd, it);
    }
}

fn ctl_served(
    r: &Region,
    epfd: i32,
    op: i32,
    fd: i32,
    uev: usize,
    deferred: &mut Option<ItemRef>,
) -> Option<i64> {
    if !matches!(op, libc::EPOLL_CTL_ADD | libc::EPOLL_CTL_MOD | libc::EPOLL_CTL_DEL) {
        return None;
    }
    let outer = object_of(r, epfd);
    // The kernel says EBADF or EINVAL.
    if outer == Lookup::NotEpoll {
        return None;
    }
    let target = match fd::lookup(r, fd) {
        Some(p) => Target::Shim(p),
        None if fd == epfd => Target::Kernel,
        None => match object_of(r, fd) {
            Lookup::Obj(h) => Target::Epoll(h),
            // An epoll fd added to another set gets an instance: it may get shim interests
            // later, which the outer set must see.
            Lookup::NoObj if op == libc::EPOLL_CTL_ADD => match instance_for(r, fd, Lookup::NoObj) {
                Ok(h) => Target::Epoll(h),
                Err(_) => Target::Kernel,
            },
            _ => Target::Kernel,
        },
    };
    if let Target::Kernel = target {
        return kernel_target(r, epfd, op, fd, uev, outer);
    }
    let mut ev = libc::epoll_event { events: 0, u64: 0 };
    if op != libc::EPOLL_CTL_DEL && copy_in(&mut ev, uev).is_err() {
        return Some(neg(libc::EFAULT));
    }
    let res = match op {
        libc::EPOLL_CTL_ADD => {
            if let (Some(it), Lookup::Obj(h)) = (*deferred, outer)
                && let Some(res) = readd(r, epfd, fd, h, &target, ev, it)
            {
                *deferred = None;
                return Some(ret(res));
            }
            flush(r, epfd, fd, deferred);
            add(r, epfd, fd, outer, target, ev)
        }
        _ => {
            // Not in a shim instance: the kernel answers ENOENT (or has its own interest).
            let Lookup::Obj(h) = outer else { return None };
            let Ok(c) = ep::ctl(r, h) else { return None };
            let (w, bits) = target.queue();
            let (mut first, mut several, mut cfg, mut reg) = (None::<ItemRef>, false, 0, None);
            ep::each_on(r, h, w, |v| {
                if v.fd == fd && v.target == bits {
                    several |= first.is_some();
                    if first.is_none() {
                        (first, cfg, reg) = (Some(v.at), v.cfg, v.registered());
                    }
                }
            });
            // Several files of one object under one fd number (opened in different processes
            // of a shared set): the first is modified.
            let first = first?;
            if op == libc::EPOLL_CTL_MOD {
                let it = first;
                let narrowed = reg.is_some_and(|(_, n)| n);
                let kev = kernel_half(r, &target, ev.events, it.token(), narrowed);
                if !several && kernel_half_kept(&target, cfg, reg, kev.events, ev.events) {
                    c.modify_served(it, ev.events | ALWAYS, ev.u64, |v| ready_now(r, v));
                    return Some(0);
                }
                kernel_ctl(epfd, op, fd, &raw const kev as usize).map(|_| {
                    c.set_registered(it, kev.events, narrowed);
                    c.modify(it, ev.events | ALWAYS, ev.u64, |v| ready_now(r, v));
                    0
                })
            } else if !several && may_defer_del(r, h, &target, cfg) {
                if let Some(v) = ep::view(r, first) {
                    v.disable();
                }
                defer_del(epfd, fd, first);
                Ok(0)
            } else {
                kernel_ctl(epfd, op, fd, 0).map(|_| {
                    if let Target::Epoll(_) = target {
                        forget_kernel_item(c.inst);
                    }
                    if several {
                        // Only the kernel knows which file went: the others are kept.
                        drop_absent(r, &c, epfd, w, fd, bits);
                    } else {
                        c.remove(first);
                    }
                    0
                })
            }
        }
    };
    Some(ret(res))
}

/// EPOLL_CTL_ADD of a shim object or a nested set: an item reserved, its kernel half given to
/// the kernel (which decides EEXIST, ELOOP, EINVAL, EPERM, ENOSPC…), then published. When the
/// shim's tables (or the region's room) are full, a shim object is given back to the kernel,
/// which then serves it.
fn add(
    r: &Region,
    epfd: i32,
    fd: i32,
    outer: Lookup,
    target: Target,
    ev: libc::epoll_event,
) -> Result<usize, Errno> {
    let h = match instance_for(r, epfd, outer) {
        Ok(h) => h,
        // No room for an instance: the set stays the kernel's alone, and so does the fd.
        Err(TABLE_FULL) => {
            if let Target::Shim(_) = target {
                crate::family::pipes::hand_back(r, fd);
            }
            return kernel_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &raw const ev as usize);
        }
        Err(e) => return Err(e),
    };
    let c = ep::ctl(r, h)?;
    let (w, bits) = target.queue();
    let it = match c.reserve(bits, fd, w, target.sides()) {
        Ok(it) => it,
        Err(TABLE_FULL) => {
            drop(c);
            if let Target::Shim(_) = target {
                crate::family::pipes::hand_back(r, fd);
            }
            let res = kernel_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &raw const ev as usize);
            if res.is_ok()
                && let Some(o) = ep::inst(r, h)
            {
                o.kernel_items.fetch_add(1, SeqCst);
            }
            return res;
        }
        Err(e) => return Err(e),
    };
    let kev = kernel_half(r, &target, ev.events, it.token(), false);
    if let Err(e) = kernel_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &raw const kev as usize) {
        c.remove(it);
        return Err(e);
    }
    c.set_registered(it, kev.events, false);
    ep::note_findable(r, c.inst);
    match target {
        Target::Shim(p) => poll::watched(r, &Shim::of(&p)),
        // The kernel reports its kernel fds: the outer set asks the kernel at every wait.
        _ => {
            c.inst.kernel_items.fetch_add(1, SeqCst);
        }
    }
    c.publish(it, ev.events | ALWAYS, ev.u64, |v| ready_now(r, v));
    Ok(0)
}

/// The kernel's half of a shim interest in `events`: its placeholder without EPOLLIN/EPOLLOUT
/// (the shim object's), a socket's end of file excepted (see poll::placeholder_events), with
/// the item's token as its data. A socket's level-triggered half asks for EPOLLIN whatever
/// the interest wants unless `narrowed` (see `ItemView::registered`): the end of file it shows
/// is the shim's to mask, and an interest switched between EPOLLIN and EPOLLOUT keeps one
/// kernel half. A nested set's half is the set itself, as asked: the kernel reports its
/// kernel fds.
fn kernel_half(r: &Region, target: &Target, events: u32, token: u64, narrowed: bool) -> libc::epoll_event {
    let events = match target {
        Target::Shim(p) => {
            let s = Shim::of(p);
            let wide = p.socket
                && !narrowed
                && events & KERNEL_ONLY == 0
                && !shared_state::pipe::handed_back(r, p.pipe);
            let ring = if wide { events & RING_BITS | libc::EPOLLIN as u32 } else { events & RING_BITS };
            events & !RING_BITS | poll::placeholder_events(r, &s, ring)
        }
        _ => events,
    };
    libc::epoll_event { events, u64: token }
}

/// Whether a MOD of a socket's level-triggered interest from `cfg` (the item's events, its
/// kernel half registered as `reg`) to `events`, whose kernel half is `kevents`, leaves the
/// kernel's half as it is, so that the kernel need not be asked: its `ep_modify` would answer
/// 0 (the socket's one file is in the set under this fd, and neither interest is
/// EPOLLEXCLUSIVE), re-arm no ONESHOT, and queue the placeholder only if it is ready, where a
/// level-triggered item is already (redis-benchmark's clients MOD EPOLLIN to EPOLLIN once per
/// request, redis switches EPOLLOUT on and off).
fn kernel_half_kept(target: &Target, cfg: u64, reg: Option<(u32, bool)>, kevents: u32, events: u32) -> bool {
    let Target::Shim(p) = target else { return false };
    p.socket
        && cfg & DISABLED == 0
        && (cfg as u32 | events) & KERNEL_ONLY == 0
        && reg.is_some_and(|(k, _)| k == kevents)
}

/// After a DEL the kernel made for one of several items of (object, fd): those whose interest
/// the kernel no longer holds go.
fn drop_absent(r: &Region, c: &Ctl, epfd: i32, w: Wq, fd: i32, bits: u64) {
    let mut doomed = [None::<ItemRef>; 8];
    let mut n = 0;
    ep::each_on(r, c.h, w, |v| {
        if v.fd == fd && v.target == bits && n < doomed.len() && present(r, epfd, &v) == Presence::No {
            doomed[n] = Some(v.at);
            n += 1;
        }
    });
    for i in doomed[..n].iter().flatten() {
        c.remove(*i);
    }
}

/// epoll_ctl of a kernel fd. One added to a set with a shim instance is counted there.
fn kernel_target(r: &Region, epfd: i32, op: i32, fd: i32, uev: usize, outer: Lookup) -> Option<i64> {
    if op == libc::EPOLL_CTL_ADD {
        // A socket may become the shim's at its connect (see `connected`).
        fd::mark_ep_watched(fd);
    }
    let Lookup::Obj(h) = outer else { return None };
    let res = kernel_ctl(epfd, op, fd, uev);
    if let (Ok(_), Some(o)) = (res, ep::inst(r, h)) {
        match op {
            libc::EPOLL_CTL_ADD => {
                o.kernel_items.fetch_add(1, SeqCst);
            }
            libc::EPOLL_CTL_DEL => forget_kernel_item(o),
            _ => {}
        }
    }
    Some(ret(res))
}

/// One interest in a kernel fd fewer in `o`.
fn forget_kernel_item(o: &ep::EpInst) {
    let _ = o.kernel_items.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1));
}

/// Whether the kernel's instance still holds an item's interest.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Presence {
    Yes,
    No,
}

/// kcmp(KCMP_EPOLL_TFD): the target file of epoll fd `epfd`'s `toff`-th interest with fd number
/// `tfd` compared with our fd `fd`'s file: Ok(0) the same file, Ok(1 or 2) another, ENOENT no
/// such interest.
fn kcmp_tfd(fd: i32, epfd: i32, tfd: i32, toff: u32) -> Result<usize, Errno> {
    #[repr(C)]
    struct Slot {
        efd: u32,
        tfd: u32,
        toff: u32,
    }
    const KCMP_EPOLL_TFD: usize = 7;
    let slot = Slot { efd: epfd as u32, tfd: tfd as u32, toff };
    let pid = sys::getpid() as usize;
    sys::syscall6(libc::SYS_kcmp, pid, pid, KCMP_EPOLL_TFD, fd as usize, &slot as *const Slot as usize, 0)
}

/// Whether the kernel's instance behind `epfd` still has item `v`'s interest (an fd of its object
/// was closed: the kernel drops the interest with its file's last reference). Asked by fd
/// number: none with it means gone; one that is our own fd's file when that fd names the item's
/// object means there; our fd naming another object and being the only one means gone; anything
/// else is settled by the interest's token in the kernel's list.
fn present(r: &Region, epfd: i32, v: &ItemView<'_>) -> Presence {
    let ours = match Target::of(r, v.fd) {
        Some(t) if t.queue().1 == v.target => Some(true),
        Some(_) => Some(false),
        None => None,
    };
    let probe = if ours.is_some() { v.fd } else { epfd };
    let (mut entries, mut same) = (0, false);
    for toff in 0..64 {
        match kcmp_tfd(probe, epfd, v.fd, toff) {
            Ok(k) => {
                entries += 1;
                same |= k == 0 && ours.is_some();
            }
            Err(libc::ENOENT) => break,
            // kcmp unavailable (or the fd just closed): the kernel's list says.
            Err(_) => return by_token(epfd, v.at),
        }
    }
    match (entries, ours, same) {
        (0, _, _) => Presence::No,
        (_, Some(true), true) => Presence::Yes,
        (1, Some(false), true) => Presence::No,
        _ => by_token(epfd, v.at),
    }
}

fn by_token(epfd: i32, i: ItemRef) -> Presence {
    let mut found = false;
    let res = each_interest(epfd, |k| {
        found |= k.data == i.token();
        found
    });
    if found || res.is_err() { Presence::Yes } else { Presence::No }
}

impl Target {
    /// What `fd` is in this process, as a target (None: closed, or the kernel's).
    fn of(r: &Region, fd: i32) -> Option<Target> {
        if let Some(p) = fd::lookup(r, fd) {
            return Some(Target::Shim(p));
        }
        match fd::epoll_of(fd) {
            EpollFd::Obj(bits) => Some(Target::Epoll(InstRef::from_bits(bits))),
            _ => None,
        }
    }
}

/// `fd` was connected, and if the connection is the shim's, the interests this process's
/// epoll sets took in it while it was a kernel socket (added before connect, as nginx does
/// with its upstreams) become shim interests, as if added now with the events and data the
/// kernel holds for them: the kernel's own interest (its (file, fd) key) takes the
/// placeholder's half. A connection left to the kernel keeps the kernel's interests.
pub fn connected(r: &Region, fd: i32) {
    if !fd::ep_watched(fd) {
        return;
    }
    let Some(p) = fd::lookup(r, fd).filter(|p| p.socket) else { return };
    let Ok(st) = sys::fstat(fd) else { return };
    let target = Target::Shim(p);
    fd::each_epoll(|epfd| {
        let mut found = [Interest::default(); 8];
        let mut n = 0;
        let _ = each_interest(epfd, |k| {
            if k.ino == st.st_ino && ItemRef::from_token(k.data).is_none() && n < found.len() {
                found[n] = *k;
                n += 1;
            }
            false
        });
        if n == 0 {
            return;
        }
        let obj = object_of(r, epfd);
        if obj == Lookup::NotEpoll {
            return;
        }
        let Ok(h) = instance_for(r, epfd, obj) else { return };
        let Ok(c) = ep::ctl(r, h) else { return };
        for k in &found[..n] {
            // The interest's fd number must still be this socket (a dup of it may be).
            let same = |t: libc::stat| t.st_ino == st.st_ino && t.st_dev == st.st_dev;
            if k.tfd != fd && !sys::fstat(k.tfd).is_ok_and(same) {
                continue;
            }
            let (w, bits) = target.queue();
            let Ok(it) = c.reserve(bits, k.tfd, w, target.sides()) else { continue };
            let kev = kernel_half(r, &target, k.events, it.token(), false);
            let registered = kev.events;
            let kev = &raw const kev as usize;
            // An EPOLLEXCLUSIVE interest cannot be modified: it is made again.
            let swapped = if k.events & libc::EPOLLEXCLUSIVE as u32 != 0 {
                kernel_ctl(epfd, libc::EPOLL_CTL_DEL, k.tfd, 0)
                    .and_then(|_| kernel_ctl(epfd, libc::EPOLL_CTL_ADD, k.tfd, kev))
            } else {
                kernel_ctl(epfd, libc::EPOLL_CTL_MOD, k.tfd, kev)
            };
            if swapped.is_err() {
                c.remove(it);
                continue;
            }
            c.set_registered(it, registered, false);
            poll::watched(r, &Shim::of(&p));
            c.publish(it, k.events | ALWAYS, k.data, |_| true);
            // A ONESHOT interest that fired keeps only its private bits (ep_send_events).
            if k.events & ONESHOT != 0
                && k.events & !PRIVATE_BITS == 0
                && let Some(v) = ep::view(r, it)
            {
                v.disable();
            }
            if k.tfd != fd {
                fd::insert(&PipeFd { fd: k.tfd, ..p });
            }
            forget_kernel_item(c.inst);
        }
    });
}

/// An fd of shim object `p` was closed (or its file's flags changed): the items watching it
/// are checked with the kernel, and a socket's peer's polled again (its placeholder may show
/// the end of the connection). A TCP peer's are woken too: its end of file is the kernel's
/// FIN alone, which a set of shim fds only (asleep on its futex, not on the kernel's set)
/// would not see before its next look at the kernel.
pub fn object_closed(r: &Region, p: &PipeFd) {
    wq::closed(r, Wq::Pipe(p.pipe.idx));
    if p.socket
        && let Some(peer) = shared_state::pipe::sock_peer(r, p.pipe)
    {
        if shared_state::pipe::sock_tcp(r, peer) {
            wq::state_changed(r, Wq::Pipe(peer.idx));
        } else {
            wq::changed(r, Wq::Pipe(peer.idx));
        }
    }
}

/// Socket `p`'s connection was shut down: as `unix_shutdown` runs `sk_state_change` on both
/// sockets, the items watching either end take it as a wake-up (an edge-triggered one reports
/// its events again, whether or not they changed), and their sets ask the kernel for what only
/// the placeholders show.
pub fn object_changed(r: &Region, p: &PipeFd) {
    wq::state_changed(r, Wq::Pipe(p.pipe.idx));
    if let Some(peer) = shared_state::pipe::sock_peer(r, p.pipe) {
        wq::state_changed(r, Wq::Pipe(peer.idx));
    }
}

/// The shim instance of epoll fd `fd`, if the table knows one.
pub fn instance_of(fd: i32) -> Option<InstRef> {
    match fd::epoll_of(fd) {
        EpollFd::Obj(bits) => Some(InstRef::from_bits(bits)),
        _ => None,
    }
}

/// An epoll fd of instance `h` was closed: the instance goes with it when nothing else can
/// hold it (no other fd of it here, no process started since it was made, never found by
/// another process or passed in a message, nobody waiting on it); otherwise the collector
/// frees it once no process has it.
pub fn closed(r: &Region, h: InstRef) {
    let Some(o) = ep::inst(r, h) else { return };
    if !o.exclusive_to(sys::getpid() as u32, fd::forks()) || o.has_sleepers() {
        return;
    }
    let mut other = false;
    fd::each_epoll(|f| other |= fd::epoll_of(f) == EpollFd::Obj(h.to_bits()));
    if !other && let Ok(c) = ep::ctl(r, h) {
        c.free();
    }
}

/// A sendmsg with the msghdr at `umsg`: an epoll fd its SCM_RIGHTS carry may be held by the
/// receiver from now on (on any socket: the kernel's own ones too).
pub fn passing(r: &Region, umsg: usize) {
    if ep::ns(r).live.load(SeqCst) == 0 {
        return;
    }
    // SAFETY: an all-zero msghdr is a valid value (null pointers, zero lengths).
    let mut m: libc::msghdr = unsafe { core::mem::zeroed() };
    if copy_in(&mut m, umsg).is_err() || m.msg_control.is_null() || m.msg_controllen < 16 {
        return;
    }
    let len = m.msg_controllen.min(4096);
    let Ok(mut buf) = scratch::take(len.div_ceil(8), 0u64) else { return };
    // SAFETY: the u64s are plain bytes to fill and look at.
    let bytes = unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, len) };
    if crate::base::copy::slice_in(bytes, m.msg_control as usize).is_err() {
        return;
    }
    let mut off = 0;
    while off + 16 <= len {
        let word = |i: usize| u32::from_ne_bytes(bytes[off + i..off + i + 4].try_into().unwrap_or_default());
        let cmlen = usize::from_ne_bytes(bytes[off..off + 8].try_into().unwrap_or_default());
        if cmlen < 16 || off + cmlen > len {
            break;
        }
        if word(8) as i32 == libc::SOL_SOCKET && word(12) as i32 == libc::SCM_RIGHTS {
            for i in (16..cmlen).step_by(4).filter(|i| i + 4 <= cmlen) {
                if let Some(o) = instance_of(word(i) as i32).and_then(|h| ep::inst(r, h)) {
                    o.set_shared();
                }
            }
        }
        off += cmlen.next_multiple_of(8);
    }
}

/// Frees the instances of epoll fds no process holds any more: the epoll fds of every process
/// of this namespace are looked at, as the pipe collector looks at pipes. A process whose fds
/// we may not read can only hold instances older than itself: those are kept.
fn collect_unheld(r: &Region) {
    let Ok(mut held) = scratch::take(ep::EP_INSTS as usize, 0u32) else { return };
    let Ok(mut region) = scratch::take(LINK_MAX, 0u8) else { return };
    let mut self_fd = [0u8; 24];
    self_fd[..14].copy_from_slice(b"/proc/self/fd/");
    let mut digits = [0u8; 10];
    let k = pipe_gc::itoa(crate::base::region::rw_fd() as u32, &mut digits);
    self_fd[14..14 + k].copy_from_slice(&digits[..k]);
    let Ok(region_len) = sys::readlinkat(libc::AT_FDCWD, &self_fd[..14 + k + 1], &mut region) else { return };
    let mut keep_born_before = 0;
    let Ok(proc_fd) = sys::open(b"/proc\0", libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC, 0) else {
        return;
    };
    let res = pipe_gc::each_entry(proc_fd, |name| {
        let Some(pid) = pipe_gc::parse_u64(name) else { return Ok(()) };
        match held_by(r, proc_fd, pid as u32, &region[..region_len], &mut held) {
            Err(libc::EACCES | libc::EPERM) => {
                let horizon = pipe_gc::started_by(proc_fd, name)?.unwrap_or(0);
                keep_born_before = keep_born_before.max(horizon);
                Ok(())
            }
            r => r,
        }
    });
    sys::close(proc_fd);
    if res.is_ok() {
        ep::free_unheld(r, keep_born_before, &|h| held[h.idx as usize] == h.generation.wrapping_add(1));
    }
}

/// Room for a link read from /proc/PID/fd: the region file's path.
const LINK_MAX: usize = 256;

/// Marks in `held` (generation + 1 per instance) the instances named by the epoll fds of
/// `pid`, if it is one of this namespace's processes: it holds our region file (`region`, as
/// /proc names it) open. Another namespace's items have the same indices and generations: a
/// process of one, holding many, would keep instances of ours.
fn held_by(r: &Region, proc_fd: i32, pid: u32, region: &[u8], held: &mut [u32]) -> Result<(), Errno> {
    // "/proc/" PID "/fdinfo/" FD NUL; the part after "/proc/" opens the fd directory.
    let mut path = [0u8; 64];
    let mut digits = [0u8; 10];
    let n = pipe_gc::itoa(pid, &mut digits);
    path[..6].copy_from_slice(b"/proc/");
    path[6..6 + n].copy_from_slice(&digits[..n]);
    path[6 + n..6 + n + 4].copy_from_slice(b"/fd\0");
    let (Ok(mut mine), Ok(mut link)) = (scratch::take(held.len(), 0u32), scratch::take(LINK_MAX, 0u8)) else {
        return Err(libc::ENOMEM);
    };
    let dir = match sys::openat(proc_fd, &path[6..6 + n + 4], libc::O_RDONLY | libc::O_DIRECTORY) {
        Ok(fd) => fd,
        Err(libc::ENOENT | libc::ESRCH) => return Ok(()),
        Err(e) => return Err(e),
    };
    path[6 + n..6 + n + 8].copy_from_slice(b"/fdinfo/");
    let mut ours = false;
    let res = pipe_gc::each_fd_entry(dir, |name| {
        let end = 6 + n + 8 + name.len();
        if end >= path.len() {
            return Ok(());
        }
        path[6 + n + 8..end].copy_from_slice(name);
        path[end] = 0;
        match sys::readlinkat(dir, &path[6 + n + 8..end + 1], &mut link) {
            Ok(k) if &link[..k] == b"anon_inode:[eventpoll]" => {}
            Ok(k) => {
                ours |= &link[..k] == region;
                return Ok(());
            }
            Err(libc::ENOENT) => return Ok(()),
            Err(e) => return Err(e),
        }
        // One token names the instance.
        match interests_at(&path[..end + 1], |k| {
            let h = ItemRef::from_token(k.data).and_then(|i| ep::inst_of(r, i));
            if let Some(h) = h {
                mine[h.idx as usize] = h.generation.wrapping_add(1);
            }
            h.is_some()
        }) {
            Ok(()) | Err(libc::ENOENT) => Ok(()),
            Err(e) => Err(e),
        }
    });
    sys::close(dir);
    if ours {
        for (h, m) in held.iter_mut().zip(mine.iter()).filter(|(_, m)| **m != 0) {
            *h = *m;
        }
    }
    match res {
        Err(libc::ENOENT | libc::ESRCH) => Ok(()),
        r => r,
    }
}

/// An interest's readiness from its target: a shim object's rings, or a nested set's ready
/// items (`ep_eventpoll_poll`).
fn target_events(r: &Region, v: &ItemView<'_>, depth: u32) -> u32 {
    if v.target & EPOLL_TARGET == 0 {
        return poll::readiness(r, &Shim::from_bits(v.target)) as u16 as u32;
    }
    let h = InstRef::from_bits(v.target & !EPOLL_TARGET);
    if depth >= MAX_NESTS {
        return 0;
    }
    let Ok(c) = ep::ctl(r, h) else { return 0 };
    let ready = c.any_queued(|inner| {
        let events = inner.cfg as u32;
        inner.cfg & DISABLED == 0
            && (target_events(r, &inner, depth + 1) | inner.kernel_bits(c.inst)) & events != 0
    });
    if ready { (libc::EPOLLIN | libc::EPOLLRDNORM) as u32 } else { 0 }
}

/// Whether a new or modified interest's shim target has an event it wants: it goes on the
/// ready list now, as `ep_insert`/`ep_modify` do (its kernel half the next wait asks).
fn ready_now(r: &Region, v: &ItemView<'_>) -> bool {
    target_events(r, v, 1) & v.cfg as u32 != 0
}

/// poll/select on `fd`: None unless it is an epoll fd with a shim instance; else POLLIN when a
/// shim interest of its set is ready (`ep_eventpoll_poll`; its kernel fds are the kernel's).
pub fn poll_ready(r: &Region, fd: i32) -> Option<i16> {
    let EpollFd::Obj(bits) = fd::epoll_of(fd) else { return None };
    let h = InstRef::from_bits(bits);
    let c = ep::ctl(r, h).ok()?;
    let ready = c.any_queued(|v| {
        let events = v.cfg as u32;
        v.cfg & DISABLED == 0 && (target_events(r, &v, 1) | v.kernel_bits(c.inst)) & events != 0
    });
    Some(if ready { libc::POLLIN | libc::POLLRDNORM } else { 0 })
}

/// How a poller of an epoll fd may sleep on its set.
pub enum PollSleep<'r> {
    /// No shim instance: the kernel's poll of the fd says all.
    NotServed,
    /// An interest wanted by `events` is ready now: the poller looks again.
    Ready,
    /// Counted on the instance (`ep->poll_wait`): sleep while its poll word holds the value,
    /// then [`ep::EpInst::poll_done`].
    Sleep(&'r ep::EpInst, u32),
}

/// A poller of epoll fd `fd` for `events` is about to sleep (`ep_eventpoll_poll`'s poll_wait):
/// counted on the instance first, then the word read, then the set looked at again, so that a
/// waker queueing an item after that look finds the poller counted and moves the word.
pub fn poll_sleep(r: &Region, fd: i32, events: i16) -> PollSleep<'_> {
    let EpollFd::Obj(bits) = fd::epoll_of(fd) else { return PollSleep::NotServed };
    let Some(o) = ep::inst(r, InstRef::from_bits(bits)) else { return PollSleep::NotServed };
    let seq = o.poll_prepare();
    // Gone meanwhile (None) too: the next look finds out.
    if poll_ready(r, fd).is_none_or(|m| m & events != 0) {
        o.poll_done();
        return PollSleep::Ready;
    }
    PollSleep::Sleep(o, seq)
}

/// Whether an exec in progress may close an end a shim target's sleepers wait for (until when).
fn exec_window(r: &Region, v: &ItemView<'_>) -> bool {
    v.target & EPOLL_TARGET == 0 && poll::in_exec_window(r, &Shim::from_bits(v.target))
}

/// epoll_wait, epoll_pwait and epoll_pwait2 on an epoll fd with a shim instance; `None` for
/// the others (the kernel serves them).
pub fn wait(r: &Region, g: &thread::Guard, nr: i64, a: &[u64; 6]) -> Option<i64> {
    let (epfd, uev, maxevents) = (a[0] as i32, a[1] as usize, a[2] as i32 as i64);
    let served = match object_of(r, epfd) {
        Lookup::NotEpoll => return None,
        Lookup::Obj(_) => true,
        // Even while the namespace has no instance: another thread or process adding a shim
        // interest to this set meanwhile makes one, which only a look between slices sees.
        Lookup::NoObj => false,
    };
    // Argument errors of a set without shim interests are the kernel's to report.
    let fail = |e: Errno| served.then_some(neg(e));
    let timeout = match nr {
        libc::SYS_epoll_pwait2 => Timeout::Spec(a[3] as usize),
        _ => Timeout::Millis(a[3] as i32 as i64),
    };
    let deadline = match timeout {
        Timeout::Millis(ms) if ms >= 0 => {
            Some(deadline_after(&libc::timespec { tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000 }))
        }
        Timeout::Millis(_) | Timeout::Spec(0) => None,
        Timeout::Spec(addr) => match poll::user_timespec(addr) {
            Ok(ts) if !served && ts.tv_sec == 0 && ts.tv_nsec == 0 => return None,
            Ok(ts) => Some(deadline_after(&ts)),
            Err(e) => return fail(e),
        },
    };
    if !served && matches!(timeout, Timeout::Millis(0)) {
        return None;
    }
    // set_user_sigmask, then do_epoll_wait's checks.
    let mut sigmask = None;
    if nr != libc::SYS_epoll_wait && a[4] != 0 {
        if a[5] != 8 {
            return fail(libc::EINVAL);
        }
        let mut m = 0u64;
        if let Err(e) = copy_in(&mut m, a[4] as usize) {
            return fail(e);
        }
        thread::sanitize_mask(&mut m);
        sigmask = Some(m);
    }
    if maxevents <= 0 || maxevents > EP_MAX_EVENTS {
        return fail(libc::EINVAL);
    }
    if !crate::base::copy::access_ok(uev, maxevents as usize * size_of::<libc::epoll_event>()) {
        return fail(libc::EFAULT);
    }
    let w = Wait { epfd, uev, maxevents: maxevents as usize, deadline, sigmask };
    loop {
        let res = match object_of(r, epfd) {
            Lookup::Obj(h) => served_wait(r, g, &w, h),
            _ => kernel_slice(g, &w),
        };
        if let Some(res) = res {
            return Some(res);
        }
    }
}

/// One epoll_wait, its arguments checked.
struct Wait {
    epfd: i32,
    uev: usize,
    maxevents: usize,
    deadline: Option<libc::timespec>,
    sigmask: Option<u64>,
}

impl Wait {
    fn maskp(&self) -> usize {
        self.sigmask.as_ref().map_or(0, |m| m as *const u64 as usize)
    }
}

/// One slice of a wait on a set without shim interests, in the kernel, so that one another
/// thread or process adds meanwhile is seen. `None`: look again.
fn kernel_slice(g: &thread::Guard, w: &Wait) -> Option<i64> {
    let remaining = w.deadline.map(|d| poll::ns_until(&d));
    if remaining.is_some_and(|ns| ns <= 0) {
        return Some(0);
    }
    let ts = poll::ts_from_ns(remaining.map_or(KERNEL_SLICE_NS, |ns| ns.min(KERNEL_SLICE_NS)));
    let tsp = &ts as *const _ as usize;
    thread::clear_interrupt();
    let res = g.allow_signals(|| {
        sys::syscall6(libc::SYS_epoll_pwait2, w.epfd as usize, w.uev, w.maxevents, tsp, w.maskp(), 8)
    });
    match res {
        Ok(0) => None,
        // Only a handler interrupts: a tracer's stops (ptrace) do not make EINTR here either.
        Err(libc::EINTR) if thread::take_interrupt().is_none() => None,
        res => Some(ret(res)),
    }
}

/// epoll_pwait's mask, installed for the whole of a served wait (set_user_sigmask) and put
/// back on drop: a signal it blocks stays pending between the wait's sleeps instead of being
/// delivered there. The synchronous SIGSEGV and SIGBUS are never blocked by it (the shim's
/// copies rely on them).
struct CallerMask(Option<u64>);

impl CallerMask {
    fn install(mask: Option<u64>) -> CallerMask {
        let Some(mut m) = mask else { return CallerMask(None) };
        m &= !(1u64 << (libc::SIGSEGV - 1) | 1u64 << (libc::SIGBUS - 1));
        let mut old = 0u64;
        let set = sys::syscall6(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK as usize,
            &m as *const u64 as usize,
            &mut old as *mut u64 as usize,
            8,
            0,
            0,
        );
        CallerMask(set.ok().map(|_| old))
    }
}

impl Drop for CallerMask {
    fn drop(&mut self) {
        if let Some(old) = self.0 {
            let _ = sys::syscall6(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK as usize,
                &old as *const u64 as usize,
                0,
                8,
                0,
                0,
            );
        }
    }
}

/// A waiter counted among an instance's sleepers (on `ep->wq`); uncounted when dropped.
struct OnWq<'r>(Option<&'r ep::EpInst>);

impl OnWq<'_> {
    fn leave(&mut self) {
        if let Some(o) = self.0.take() {
            o.sleep_done();
        }
    }
}

impl Drop for OnWq<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}

/// The wait on a set with a shim instance; `None` once the instance is gone.
fn served_wait(r: &Region, g: &thread::Guard, w: &Wait, h: InstRef) -> Option<i64> {
    let _mask = CallerMask::install(w.sigmask);
    // Filled by the kernel: not cleared first (a set of 10,000 would clear 12 KB per wait).
    let Ok(mut kbuf) = scratch::take_any::<libc::epoll_event>(KBUF.min(w.maxevents)) else {
        return Some(neg(libc::ENOMEM));
    };
    // Set after a sleep that only the shim's word ended: the kernel's set had nothing ready
    // when last asked nor during the sleep (its fd was polled), so it is not asked again.
    let mut kernel_quiet = false;
    // From its first sleep until a wake-up the waiter stays counted, through the looks at the
    // set between slices that ran out: the kernel's waiter is on `ep->wq` for all of one sleep,
    // and an EPOLLEXCLUSIVE wake-up that came during such a look went on to the next set's.
    let mut on_wq = OnWq(None);
    loop {
        let o = ep::inst(r, h)?;
        let n = match ep::ctl(r, h) {
            Ok(c) => collect(r, w, &c, &mut kbuf, core::mem::take(&mut kernel_quiet)),
            Err(_) => return None,
        };
        match n {
            Ok(0) => {}
            Ok(n) => return Some(n as i64),
            Err(e) => return Some(neg(e)),
        }
        let remaining = w.deadline.map(|d| poll::ns_until(&d));
        if remaining.is_some_and(|ns| ns <= 0) {
            return Some(0);
        }
        thread::clear_interrupt();
        let seq = match on_wq.0 {
            Some(_) => o.word.load(SeqCst),
            None => {
                on_wq.0 = Some(o);
                o.sleep_prepare(fd::own_pid())
            }
        };
        if o.events_available() {
            on_wq.leave();
            continue;
        }
        // While an exec may close an end an item watches, the kernel shows it as it goes.
        let exec = o.exec_until.load(SeqCst) as i64 > sys::monotonic_ns();
        let mut slice_ran_out = false;
        if o.kernel_items.load(SeqCst) != 0 || exec {
            match uring::wait(g, w.epfd, &o.word, seq, remaining) {
                Some(uring::Woken::Ready) if exec => o.set_kcheck(),
                Some(uring::Woken::Word) => kernel_quiet = !exec,
                Some(_) => {}
                None => {
                    // No io_uring: the kernel's fds are looked at between short sleeps.
                    let slice = remaining.map_or(MIXED_SLICE_NS, |ns| ns.min(MIXED_SLICE_NS));
                    let word = thread::handled_word();
                    let handled = word.load(Relaxed);
                    slice_ran_out =
                        futex_sleep(g, &o.word, seq, word, handled, Some(&poll::ts_from_ns(slice)));
                    o.set_kcheck();
                }
            }
        } else {
            let slice = remaining.map_or(SHIM_SLICE_NS, |ns| ns.min(SHIM_SLICE_NS));
            let word = thread::handled_word();
            let handled = word.load(Relaxed);
            // A sleep that lasted a whole slice: a peer may have died meanwhile, which only
            // the kernel's placeholders show.
            slice_ran_out = futex_sleep(g, &o.word, seq, word, handled, Some(&poll::ts_from_ns(slice)));
            if slice_ran_out {
                o.set_kcheck();
            }
        }
        if !slice_ran_out {
            on_wq.leave();
        }
        // epoll_wait is never restarted after a handler ran (even one with SA_RESTART).
        if thread::take_interrupt().is_some() {
            return Some(neg(libc::EINTR));
        }
    }
}

/// Sleeps while `word` holds `val` (and the thread's handled-signals word `handled` holds
/// `hval`), for up to `rel`; true when the time ran out.
fn futex_sleep(
    g: &thread::Guard,
    word: &AtomicU32,
    val: u32,
    handled: &AtomicU32,
    hval: u32,
    rel: Option<&libc::timespec>,
) -> bool {
    let waiters = [
        sys::FutexWaitv {
            val: val as u64,
            uaddr: word.as_ptr() as u64,
            flags: sys::FUTEX2_SIZE_U32,
            reserved: 0,
        },
        sys::FutexWaitv {
            val: hval as u64,
            uaddr: handled.as_ptr() as u64,
            flags: sys::FUTEX2_SIZE_U32,
            reserved: 0,
        },
    ];
    let until = deadline_after(rel.unwrap_or(&libc::timespec { tv_sec: i64::MAX / 4, tv_nsec: 0 }));
    g.allow_signals(|| sys::futex_waitv(&waiters, &until)) == Err(libc::ETIMEDOUT)
}

/// Looks at the set once (`ep_poll`'s collection): the kernel's events when the set has
/// kernel fds or something only the kernel shows may have changed (first, so that what it
/// says of placeholders joins their items before they are polled), and the ready list; when
/// there is not room for all, the kernel's and the shim's take turns at coming first. Writes
/// the events to the caller's buffer; returns how many. `kernel_quiet`: the kernel's set is
/// known to have nothing (see `served_wait`), only a pending check asks it.
fn collect(
    r: &Region,
    w: &Wait,
    c: &Ctl,
    kbuf: &mut [libc::epoll_event],
    kernel_quiet: bool,
) -> Result<usize, Errno> {
    let o = c.inst;
    let room = w.maxevents;
    let kernel_first = o.turn.fetch_add(1, Relaxed) & 1 == 0;
    let wanted = || !kernel_quiet && o.kernel_items.load(SeqCst) != 0 || o.take_kcheck();
    // On the shim's turn the kernel leaves it one place at least. A look that has no room
    // for the kernel now leaves a pending check for after the shim's turn (with maxevents 1,
    // taking it here lost it: a TCP peer's end of file, the kernel's alone, waited for the
    // next slice).
    let kmax = if kernel_first { room } else { room - 1 };
    let fetch = kmax > 0 && wanted();
    let (k, all) = if fetch { fetch_kernel(r, w, c, kbuf, kmax)? } else { (0, false) };
    if kernel_first {
        let n = deliver(w, &kbuf[..k], 0)?;
        return scan(r, w, c, n, room);
    }
    let n = scan(r, w, c, 0, room - k)?;
    let n = deliver(w, &kbuf[..k], n)?;
    if all || n == room || !fetch && !wanted() {
        return Ok(n);
    }
    // The kernel may have more, and the shim left room for it.
    let (k, _) = fetch_kernel(r, w, c, kbuf, room - n)?;
    deliver(w, &kbuf[..k], n)
}

/// Takes up to `kmax` of the kernel's ready events without blocking: placeholders' and nested
/// sets' go to their items, the others are left at the front of `kbuf`; how many, and whether
/// that was all the kernel had.
fn fetch_kernel(
    r: &Region,
    w: &Wait,
    c: &Ctl,
    kbuf: &mut [libc::epoll_event],
    kmax: usize,
) -> Result<(usize, bool), Errno> {
    let o = c.inst;
    let kmax = kmax.min(kbuf.len());
    let kn = sys::syscall6(libc::SYS_epoll_wait, w.epfd as usize, kbuf.as_mut_ptr() as usize, kmax, 0, 0, 0)?;
    let all = kn < kmax;
    if all {
        // Everything the kernel had: a placeholder it did not report has nothing to say.
        o.fetch_epoch.fetch_add(1, SeqCst);
    }
    let mut k = 0;
    for i in 0..kn {
        let e = kbuf[i];
        match ItemRef::from_token(e.u64) {
            Some(it) => {
                // (A departed interest's kernel half: nothing to report.)
                if ep::inst_of(r, it) == Some(c.h) {
                    ep::kernel_report(r, o, it, e.events);
                    if e.events & libc::EPOLLIN as u32 != 0 {
                        narrow(r, w.epfd, c, it);
                    }
                }
            }
            None => {
                kbuf[k] = e;
                k += 1;
            }
        }
    }
    Ok((k, all))
}

/// The placeholder of item `it` showed an EPOLLIN (its end of file) that its interest does
/// not want, because its kernel half asks for EPOLLIN anyway (see `kernel_half`): the half
/// becomes the interest's own, for good, so that a level-triggered end of file does not keep
/// the kernel's set ready for nothing.
fn narrow(r: &Region, epfd: i32, c: &Ctl, it: ItemRef) {
    let Some(v) = ep::view(r, it) else { return };
    let Some((kevents, false)) = v.registered() else { return };
    let events = v.cfg as u32 & !ALWAYS;
    if events & libc::EPOLLIN as u32 != 0 || kevents & libc::EPOLLIN as u32 == 0 {
        return;
    }
    let Some(target) = Target::of(r, v.fd).filter(|t| t.queue().1 == v.target) else { return };
    let kev = kernel_half(r, &target, events, it.token(), true);
    let _ = kernel_ctl(epfd, libc::EPOLL_CTL_MOD, v.fd, &raw const kev as usize);
    c.set_registered(it, kev.events, true);
}

/// Copies kernel events to the caller's buffer from index `n` on, as ep_send_events: EFAULT
/// only if the first one of the call cannot be. Returns the new count.
fn deliver(w: &Wait, events: &[libc::epoll_event], n: usize) -> Result<usize, Errno> {
    for (i, e) in events.iter().enumerate() {
        if copy_out(w.uev + (n + i) * size_of::<libc::epoll_event>(), e).is_err() {
            return if n + i == 0 { Err(libc::EFAULT) } else { Ok(n + i) };
        }
    }
    Ok(n + events.len())
}

/// Reports the ready list's items that are ready, from index `n` of the caller's buffer on,
/// as `ep_send_events`: polled, reported, then back at the list's tail (level-triggered),
/// off it until the next wake-up (edge-triggered) or disabled (ONESHOT), until `limit`.
/// Returns the new count.
fn scan(r: &Region, w: &Wait, c: &Ctl, mut n: usize, limit: usize) -> Result<usize, Errno> {
    let o = c.inst;
    let mut s = c.scan();
    while n < limit {
        let Some(v) = s.take() else { break };
        if v.take_verify() && present(r, w.epfd, &v) == Presence::No {
            if v.target & EPOLL_TARGET != 0 {
                forget_kernel_item(o);
            }
            s.remove(v.at);
            continue;
        }
        // Queued only to be verified: no wake-up came, nothing to report.
        if v.cfg & DISABLED != 0 || !v.woken {
            continue;
        }
        let events = v.cfg as u32;
        let kbits = v.kernel_bits(o);
        let mut bits = (target_events(r, &v, 0) | kbits) & events;
        if kbits != 0 && v.target & EPOLL_TARGET == 0 {
            poll::kernel_events(r, &Shim::from_bits(v.target), v.fd, kbits);
        }
        if kbits & libc::EPOLLHUP as u32 != 0 && v.target & EPOLL_TARGET == 0 {
            bits |= poll::hangup_error(r, &Shim::from_bits(v.target), v.fd) & events;
        }
        if exec_window(r, &v) {
            o.exec_until.store(sys::monotonic_ns() as u64 + 1_000_000_000, SeqCst);
        }
        if bits == 0 {
            continue;
        }
        let e = libc::epoll_event { events: bits, u64: v.data };
        if copy_out(w.uev + n * size_of::<libc::epoll_event>(), &e).is_err() {
            s.put_back(v.at);
            if n == 0 {
                return Err(libc::EFAULT);
            }
            break;
        }
        n += 1;
        if events & ONESHOT != 0 {
            v.disable();
            v.clear_kernel_bits();
        } else if events & ET != 0 {
            v.clear_kernel_bits();
        } else {
            // Level-triggered: back on the list, at its tail; a placeholder's condition is
            // asked of the kernel again next time.
            s.requeue(v.at);
            if kbits != 0 {
                o.set_kcheck();
            }
        }
    }
    Ok(n)
}
