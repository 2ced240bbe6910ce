//! epoll_create(1), epoll_ctl, epoll_wait, epoll_pwait and epoll_pwait2 over any mix of shim
//! and kernel fds (fs/eventpoll.c).
//!
//! The epoll fd stays the kernel's instance, and every interest is in it: a kernel fd's as the
//! application asked, a shim fd's as its placeholder without EPOLLIN/EPOLLOUT (which come from
//! the shim object) and with a token naming its item in `shared_state::epoll` as its data. So
//! the kernel keeps membership ((file, fd) keys, removal when the file's last reference goes),
//! every errno of epoll_ctl and the placeholders' HUP/ERR; an epoll fd inherited by fork or
//! exec finds its object from the tokens in `/proc/self/fdinfo/N`, once (cached in `fd`).
//!
//! A wait takes the kernel's ready events without blocking, merges those of placeholders into
//! their items, and adds the items the shim objects make ready, level- or edge-triggered
//! (`poll::edges`: the wake-ups the kernel's pipe would make). It sleeps on the objects' futex
//! words when the set holds only shim fds, otherwise in the kernel's epoll_pwait2 in short
//! slices, looking at the objects in between.

use crate::fd::{self, EpollFd, PipeFd};
use crate::poll::{self, Shim, Timeout, copy_in, copy_out};
use crate::{scratch, signals, sud};
use shared_state::Region;
use shared_state::epoll::{self as ep, DISABLED, EP_ITEMS, EpHandle, EpLock, ItemRef, PENDING};
use shared_state::pipe_gc;
use shared_state::sys::{self, Errno};
use shared_state::wait::deadline_after;

const EP_MAX_EVENTS: i64 = i32::MAX as i64 / size_of::<libc::epoll_event>() as i64;
/// Events one call returns at most: the rest are returned by the next.
const MAX_OUT: usize = 256;
/// The longest sleep between two looks at the shim objects when the kernel has fds too.
const MIXED_SLICE_NS: i64 = 2_000_000;
/// The longest kernel sleep of a wait on a set without shim interests (while the namespace has
/// some elsewhere), between two looks at whether one was added meanwhile.
const KERNEL_SLICE_NS: i64 = 50_000_000;
/// A shim-only wait asks the kernel about its placeholders again after a sleep this long.
const KERNEL_RECHECK_NS: i64 = 50_000_000;
/// What a placeholder's kernel interest leaves to the shim object.
const RING_BITS: u32 = (libc::EPOLLIN | libc::EPOLLRDNORM | libc::EPOLLOUT | libc::EPOLLWRNORM) as u32;
const ALWAYS: u32 = (libc::EPOLLERR | libc::EPOLLHUP) as u32;
const ET: u32 = libc::EPOLLET as u32;
const ONESHOT: u32 = libc::EPOLLONESHOT as u32;
/// What a fired ONESHOT interest keeps (fs/eventpoll.c's EP_PRIVATE_BITS).
const PRIVATE_BITS: u32 =
    (libc::EPOLLWAKEUP | libc::EPOLLONESHOT | libc::EPOLLET | libc::EPOLLEXCLUSIVE) as u32;

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
    Obj(EpHandle),
}

/// epoll_create and epoll_create1: the kernel's instance, known to have no object yet.
pub fn create(r: &Region, nr: i64, a: &[u64; 6]) -> Option<i64> {
    let res = sys::syscall6(nr, a[0] as usize, 0, 0, 0, 0, 0);
    if let Ok(fd) = res {
        fd::set_epoll(
            fd as i32,
            EpollFd::NoObj(ep::ns(r).created.load(core::sync::atomic::Ordering::Acquire)),
        );
    }
    Some(ret(res))
}

/// The object behind epoll fd `epfd`, from the fd table or found again.
fn object_of(r: &Region, epfd: i32) -> Lookup {
    let created = ep::ns(r).created.load(core::sync::atomic::Ordering::Acquire);
    match fd::epoll_of(epfd) {
        EpollFd::Obj(bits) if ep::obj(r, EpHandle::from_bits(bits)).is_some() => {
            return Lookup::Obj(EpHandle::from_bits(bits));
        }
        EpollFd::NoObj(c) if c == created => return Lookup::NoObj,
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
        if let Some(i) = ItemRef::from_token(k.data)
            && found.is_none()
            && ep::obj(r, i.obj).is_some()
        {
            found = Some(i.obj);
        }
    });
    match found {
        Some(h) => {
            fd::set_epoll(epfd, EpollFd::Obj(h.to_bits()));
            Lookup::Obj(h)
        }
        None => {
            fd::set_epoll(epfd, EpollFd::NoObj(created));
            Lookup::NoObj
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

/// Calls `f` with every interest the kernel lists for epoll fd `epfd`.
fn each_interest(epfd: i32, f: impl FnMut(&Interest)) -> Result<(), Errno> {
    with_path(b"/proc/self/fdinfo/", epfd, |p| interests_at(p, f))
}

/// The same for the fdinfo file at `path` (its `tfd: N events: X data: D pos:P ino:I ...`
/// lines).
fn interests_at(path: &[u8], mut f: impl FnMut(&Interest)) -> Result<(), Errno> {
    let mut buf = scratch::take(4096, 0u8)?;
    let fdi = sys::open(path, libc::O_RDONLY | libc::O_CLOEXEC, 0)?;
    let mut line = [0u8; 192];
    let mut len = 0;
    let res = loop {
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
            if let Some(i) = interest(&line[..len]) {
                f(&i);
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

/// Room for the tokens an instance holds ([`tokens`]).
const TOKENS: usize = EP_ITEMS as usize * 2;

/// Every token the kernel instance holds, sorted; how many (at most `out`'s length).
fn tokens(epfd: i32, out: &mut [u64]) -> Result<usize, Errno> {
    let mut n = 0;
    each_interest(epfd, |k| {
        if ItemRef::from_token(k.data).is_some() && n < out.len() {
            out[n] = k.data;
            n += 1;
        }
    })?;
    out[..n].sort_unstable();
    Ok(n)
}

fn kernel_ctl(epfd: i32, op: i32, fd: i32, ev: usize) -> Result<usize, Errno> {
    sys::syscall6(libc::SYS_epoll_ctl, epfd as usize, op as usize, fd as usize, ev, 0, 0)
}

/// epoll_ctl. A shim target is served; a kernel target goes to the kernel (counted in the
/// object, so that waits know the kernel has fds too).
/// No room for the interest in the region (the set's items, or the namespace's objects, are
/// all taken): the fd's pipe or connection goes to the kernel, whose epoll then takes it as it
/// takes any kernel fd.
fn table_full(r: &Region, l: ep::EpLock, fd: i32) -> Option<i64> {
    drop(l);
    crate::pipes::hand_back(r, fd);
    None
}

pub fn ctl(r: &Region, a: &[u64; 6]) -> Option<i64> {
    let (epfd, op, fd, uev) = (a[0] as i32, a[1] as i32, a[2] as i32, a[3] as usize);
    if !matches!(op, libc::EPOLL_CTL_ADD | libc::EPOLL_CTL_MOD | libc::EPOLL_CTL_DEL) {
        return None;
    }
    let Some(p) = fd::lookup(r, fd) else { return kernel_target(r, epfd, op, fd, uev) };
    let mut ev = libc::epoll_event { events: 0, u64: 0 };
    if op != libc::EPOLL_CTL_DEL && copy_in(&mut ev, uev).is_err() {
        return Some(neg(libc::EFAULT));
    }
    let l = match ep::lock(r) {
        Ok(l) => l,
        Err(e) => return Some(neg(e)),
    };
    let obj = match object_of(r, epfd) {
        // The kernel says EBADF or EINVAL.
        Lookup::NotEpoll => return None,
        Lookup::NoObj => None,
        Lookup::Obj(h) => Some(h),
    };
    let shim = Shim::of(&p);
    let events = ev.events | ALWAYS;
    // The interest the kernel has for (file, fd): ours when exactly one item matches.
    let candidates = |h: EpHandle| {
        ep::items(r, h).filter(move |v| {
            v.item.target.load(core::sync::atomic::Ordering::Relaxed) == shim.to_bits()
                && v.item.fd.load(core::sync::atomic::Ordering::Relaxed) == fd as u32
        })
    };
    let res = match (op, obj) {
        (libc::EPOLL_CTL_ADD, _) => {
            let h = match object_for_add(r, &l, epfd, obj) {
                Ok(h) => h,
                Err(_) => return table_full(r, l, fd),
            };
            let add =
                add_item(r, &l, h, &shim, fd, ev, |kev| kernel_ctl(epfd, op, fd, kev as *const _ as usize));
            match add {
                Ok(_) => {
                    fd::set_epoll(epfd, EpollFd::Obj(h.to_bits()));
                    Ok(0)
                }
                // The set's items are all taken (or the kernel's max_user_watches, which it
                // then says again).
                Err(libc::ENOSPC) => return table_full(r, l, fd),
                Err(e) => Err(e),
            }
        }
        // Not in our object: the kernel answers ENOENT (or has its own interest).
        (_, None) => return None,
        (libc::EPOLL_CTL_MOD, Some(h)) => {
            let mut c = candidates(h);
            match (c.next(), c.next()) {
                (Some(v), None) => {
                    let kev = kernel_half(r, &shim, ev.events, v.at.token());
                    kernel_ctl(epfd, op, fd, &raw const kev as usize).map(|_| {
                        ep::modify(r, &l, v.at, events, ev.u64, poll::edges(r, &shim, events));
                        0
                    })
                }
                // Several files of one object under one fd number (in different processes):
                // a new item replaces whichever the kernel had.
                _ => add_item(r, &l, h, &shim, fd, ev, |kev| {
                    let res = kernel_ctl(epfd, op, fd, kev as *const _ as usize);
                    if res.is_ok() {
                        drop_vanished(r, &l, epfd, h, fd, &shim);
                    }
                    res
                })
                .map(|_| 0),
            }
        }
        (_, Some(h)) => kernel_ctl(epfd, op, fd, 0).map(|_| {
            let mut c = candidates(h);
            match (c.next(), c.next()) {
                (Some(v), None) => ep::remove(r, &l, v.at),
                (None, _) => {}
                _ => drop_vanished(r, &l, epfd, h, fd, &shim),
            }
            0
        }),
    };
    Some(ret(res))
}

/// The object of epoll fd `epfd` (`obj`), made now if it has none, with as many kernel
/// interests as the kernel instance holds so far.
fn object_for_add(r: &Region, l: &EpLock, epfd: i32, obj: Option<EpHandle>) -> Result<EpHandle, Errno> {
    if let Some(h) = obj {
        return Ok(h);
    }
    let mut kernel = 0;
    let _ = each_interest(epfd, |_| kernel += 1);
    let alive = |t| poll::alive(r, &Shim::from_bits(t));
    ep::create(r, l, kernel, &alive, &|l| collect_unheld(r, l))
}

/// The kernel's half of a shim interest in `events`: its placeholder without EPOLLIN/EPOLLOUT
/// (the shim object's), a socket's end of file excepted (see poll::placeholder_events), with
/// the item's token as its data.
fn kernel_half(r: &Region, shim: &Shim, events: u32, token: u64) -> libc::epoll_event {
    let kernel_bits = poll::placeholder_events(r, shim, events & RING_BITS);
    libc::epoll_event { events: events & !RING_BITS | kernel_bits, u64: token }
}

/// A new item of `h` for `shim` as `fd`, with the user's events and data `ev`: reserved,
/// its kernel half given to the kernel by `kernel` (an ADD, or a change of the kernel's own
/// interest), then published, to be polled once by the next wait.
fn add_item(
    r: &Region,
    l: &EpLock,
    h: EpHandle,
    shim: &Shim,
    fd: i32,
    ev: libc::epoll_event,
    kernel: impl FnOnce(&libc::epoll_event) -> Result<usize, Errno>,
) -> Result<ItemRef, Errno> {
    let it = ep::reserve(r, l, h, shim.to_bits(), fd)?;
    if let Err(e) = kernel(&kernel_half(r, shim, ev.events, it.token())) {
        ep::remove(r, l, it);
        return Err(e);
    }
    poll::watched(r, shim);
    let events = ev.events | ALWAYS;
    ep::publish(r, l, it, events, ev.u64, poll::edges(r, shim, events), poll::liveness(r, shim));
    Ok(it)
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
    let shim = Shim::of(&p);
    fd::each_epoll(|epfd| {
        let mut found = [Interest::default(); 8];
        let mut n = 0;
        let _ = each_interest(epfd, |k| {
            if k.ino == st.st_ino && ItemRef::from_token(k.data).is_none() && n < found.len() {
                found[n] = *k;
                n += 1;
            }
        });
        if n == 0 {
            return;
        }
        let Ok(l) = ep::lock(r) else { return };
        let obj = match object_of(r, epfd) {
            Lookup::Obj(h) => Some(h),
            Lookup::NoObj => None,
            Lookup::NotEpoll => return,
        };
        let Ok(h) = object_for_add(r, &l, epfd, obj) else { return };
        for k in &found[..n] {
            // The interest's fd number must still be this socket (a dup of it may be).
            let same = |t: libc::stat| t.st_ino == st.st_ino && t.st_dev == st.st_dev;
            if k.tfd != fd && !sys::fstat(k.tfd).is_ok_and(same) {
                continue;
            }
            let ev = libc::epoll_event { events: k.events, u64: k.data };
            // An EPOLLEXCLUSIVE interest cannot be modified: it is made again.
            let swap = |kev: &libc::epoll_event| {
                let kev = kev as *const _ as usize;
                if k.events & libc::EPOLLEXCLUSIVE as u32 != 0 {
                    kernel_ctl(epfd, libc::EPOLL_CTL_DEL, k.tfd, 0)?;
                    kernel_ctl(epfd, libc::EPOLL_CTL_ADD, k.tfd, kev)
                } else {
                    kernel_ctl(epfd, libc::EPOLL_CTL_MOD, k.tfd, kev)
                }
            };
            let Ok(it) = add_item(r, &l, h, &shim, k.tfd, ev, swap) else { continue };
            // A ONESHOT interest that fired keeps only its private bits (ep_send_events).
            if k.events & ONESHOT != 0
                && k.events & !PRIVATE_BITS == 0
                && let Some(v) = ep::items(r, h).find(|v| v.at == it)
            {
                v.item.set_flags(&l, DISABLED, PENDING);
            }
            if k.tfd != fd {
                fd::insert(&PipeFd { fd: k.tfd, ..p });
            }
            if let Some(o) = ep::obj(r, h) {
                forget_kernel_item(o);
            }
        }
        fd::set_epoll(epfd, EpollFd::Obj(h.to_bits()));
    });
}

/// One interest in a kernel fd fewer in `o`.
fn forget_kernel_item(o: &ep::EpObj) {
    use core::sync::atomic::Ordering::{AcqRel, Acquire};
    let _ = o.kernel_items.fetch_update(AcqRel, Acquire, |n| n.checked_sub(1));
}

/// Frees the objects of epoll instances no process holds any more (the table is full): the
/// epoll fds of every process of this namespace are looked at, as the pipe collector looks at
/// pipes. A process whose fds we may not read can only hold instances older than itself:
/// those are kept.
fn collect_unheld(r: &Region, l: &EpLock) {
    let Ok(mut held) = scratch::take(ep::EP_OBJS as usize, 0u32) else { return };
    let Ok(mut region) = scratch::take(LINK_MAX, 0u8) else { return };
    let region_fd = crate::region::rw_fd();
    let mut self_fd = [0u8; 24];
    self_fd[..14].copy_from_slice(b"/proc/self/fd/");
    let mut digits = [0u8; 10];
    let k = pipe_gc::itoa(region_fd as u32, &mut digits);
    self_fd[14..14 + k].copy_from_slice(&digits[..k]);
    let Ok(region_len) = sys::readlinkat(libc::AT_FDCWD, &self_fd[..14 + k + 1], &mut region) else { return };
    let mut keep_born_before = 0;
    let Ok(proc_fd) = sys::open(b"/proc\0", libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC, 0) else {
        return;
    };
    let res = pipe_gc::each_entry(proc_fd, |name| {
        let Some(pid) = pipe_gc::parse_u64(name) else { return Ok(()) };
        match held_by(proc_fd, pid as u32, &region[..region_len], &mut held) {
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
        ep::free_unheld(r, l, keep_born_before, &|h| held[h.idx as usize] == h.generation + 1);
    }
}

/// Room for a link read from /proc/PID/fd: the region file's path.
const LINK_MAX: usize = 256;

/// Marks in `held` (generation + 1 per object) the objects named by the epoll fds of `pid`,
/// if it is one of this namespace's processes: it holds our region file (`region`, as /proc
/// names it) open. Another namespace's objects have the same indices and generations: a
/// process of one, holding many, kept every object of ours (stack_small's collectors).
fn held_by(proc_fd: i32, pid: u32, region: &[u8], held: &mut [u32]) -> Result<(), Errno> {
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
    let res = pipe_gc::each_entry(dir, |name| {
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
        match interests_at(&path[..end + 1], |k| {
            if let Some(i) = ItemRef::from_token(k.data) {
                mine[i.obj.idx as usize] = i.obj.generation + 1;
            }
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

/// Frees the items for (object, fd) whose tokens the kernel no longer holds.
fn drop_vanished(r: &Region, l: &EpLock, epfd: i32, h: EpHandle, fd: i32, shim: &Shim) {
    let (Ok(mut held), Ok(mut doomed)) =
        (scratch::take(TOKENS, 0u64), scratch::take(EP_ITEMS as usize, None))
    else {
        return;
    };
    let Ok(n) = tokens(epfd, &mut held) else { return };
    let gone = |t: u64| held[..n].binary_search(&t).is_err();
    for (k, v) in ep::items(r, h).enumerate() {
        let t = v.item.target.load(core::sync::atomic::Ordering::Relaxed);
        if t == shim.to_bits()
            && v.item.fd.load(core::sync::atomic::Ordering::Relaxed) == fd as u32
            && gone(v.at.token())
        {
            doomed[k] = Some(v.at);
        }
    }
    for &i in doomed.iter().flatten() {
        ep::remove(r, l, i);
    }
}

/// epoll_ctl of a kernel fd. An epoll fd with shim interests cannot be nested: the outer set
/// would see only the kernel's half of its readiness.
fn kernel_target(r: &Region, epfd: i32, op: i32, fd: i32, uev: usize) -> Option<i64> {
    let outer = object_of(r, epfd);
    if outer == Lookup::NotEpoll {
        return None;
    }
    if op == libc::EPOLL_CTL_ADD && fd != epfd && matches!(object_of(r, fd), Lookup::Obj(_)) {
        return Some(neg(libc::EPERM));
    }
    if op == libc::EPOLL_CTL_ADD {
        // A socket may become the shim's at its connect (see `connected`).
        fd::mark_ep_watched(fd);
    }
    let Lookup::Obj(h) = outer else { return None };
    let res = kernel_ctl(epfd, op, fd, uev);
    if let (Ok(_), Some(o)) = (res, ep::obj(r, h)) {
        match op {
            libc::EPOLL_CTL_ADD => {
                o.kernel_items.fetch_add(1, core::sync::atomic::Ordering::AcqRel);
            }
            libc::EPOLL_CTL_DEL => forget_kernel_item(o),
            _ => {}
        }
    }
    Some(ret(res))
}

/// One interest's state in a look at the set.
#[derive(Clone, Copy)]
struct Cand {
    at: ItemRef,
    /// What it watches (`Shim` bits) and the fd number it was added with.
    target: u64,
    fd: i32,
    bits: u32,
    data: u64,
    cfg: u64,
    order: u64,
    edges: u64,
    /// Ready by the shim object (to be reported if there is room).
    fires: bool,
    /// Reported by the kernel (its placeholder): must be reported now.
    forced: bool,
}

/// An interest's ready bits from its shim object, whether it is on the ready list (always when
/// level-triggered; edge-triggered, after a wake-up since it last left it), and the edges.
fn examine(r: &Region, v: &ep::ItemView<'_>) -> (u32, bool, u64) {
    let shim = Shim::from_bits(v.item.target.load(core::sync::atomic::Ordering::Relaxed));
    let events = v.cfg as u32;
    // The edges before the state they announce: a wake-up after this look is still news to
    // the next one, where read the other way round its data could be missed and its edge
    // taken as seen (a lost wake-up).
    let edges = poll::edges(r, &shim, events);
    let bits = poll::readiness(r, &shim) as u16 as u32 & events;
    let listed = if events & ET != 0 {
        v.cfg & PENDING != 0 || edges != v.item.seen.load(core::sync::atomic::Ordering::Relaxed)
    } else {
        true
    };
    (bits, listed, edges)
}

/// Looks at the set once: the kernel's ready events (`pre`: already taken by a sleep, else
/// taken now without blocking) and the shim interests'. Fills `out`; returns how many.
fn collect(
    r: &Region,
    epfd: i32,
    h: EpHandle,
    room: usize,
    pre: Option<usize>,
    kbuf: &mut [libc::epoll_event],
    out: &mut [libc::epoll_event],
) -> Result<usize, Errno> {
    use core::sync::atomic::Ordering::Relaxed;
    let Some(o) = ep::obj(r, h) else { return Ok(kernel_only(kbuf, pre, out)) };
    // The kernel's events first, outside the lock (which a waiter in every process sharing
    // the namespace takes): whose turn it is to come first when there is not room for all.
    let shim_first = o.turn.fetch_add(1, Relaxed) & 1 == 1;
    let kn = match pre {
        Some(n) => n,
        None => {
            let firing = ep::items(r, h).filter(|v| {
                v.cfg & DISABLED == 0 && {
                    let (bits, listed, _) = examine(r, v);
                    listed && bits != 0
                }
            });
            let kmax = if shim_first { room.saturating_sub(firing.count()) } else { room };
            if kmax == 0 {
                0
            } else {
                sys::syscall6(libc::SYS_epoll_wait, epfd as usize, kbuf.as_mut_ptr() as usize, kmax, 0, 0, 0)?
            }
        }
    };
    let pre = Some(kn);
    let l = ep::lock(r)?;
    let Some(o) = ep::obj(r, h) else { return Ok(kernel_only(kbuf, pre, out)) };
    // An interest whose fd may have been closed somewhere: does the kernel still have it?
    let stale = ep::items(r, h).any(|v| {
        let s = Shim::from_bits(v.item.target.load(Relaxed));
        !poll::alive(r, &s) || poll::liveness(r, &s) != v.item.verified.load(Relaxed)
    });
    if stale {
        let mut held = scratch::take(TOKENS, 0u64)?;
        let mut doomed = scratch::take(EP_ITEMS as usize, None)?;
        if let Ok(n) = tokens(epfd, &mut held) {
            for (k, v) in ep::items(r, h).enumerate() {
                let s = Shim::from_bits(v.item.target.load(Relaxed));
                if held[..n].binary_search(&v.at.token()).is_err() || !poll::alive(r, &s) {
                    doomed[k] = Some(v.at);
                } else {
                    v.item.verified.store(poll::liveness(r, &s), Relaxed);
                }
            }
            for &i in doomed.iter().flatten() {
                ep::remove(r, &l, i);
            }
        }
        if ep::obj(r, h).is_none() {
            return Ok(kernel_only(kbuf, pre, out));
        }
    }
    let mut cands = scratch::take(EP_ITEMS as usize, None::<Cand>)?;
    for (k, v) in ep::items(r, h).enumerate() {
        if v.cfg & DISABLED != 0 {
            continue;
        }
        let (bits, listed, edges) = examine(r, &v);
        let fires = listed && bits != 0;
        if listed && !fires && (v.cfg & PENDING != 0 || edges != v.item.seen.load(Relaxed)) {
            // Polled and found not ready: off the list until the next wake-up.
            v.item.seen.store(edges, Relaxed);
            v.item.set_flags(&l, 0, PENDING);
        }
        let (order, target, fd) =
            (v.item.order.load(Relaxed), v.item.target.load(Relaxed), v.item.fd.load(Relaxed) as i32);
        let (data, cfg) = (v.data, v.cfg);
        cands[k] = Some(Cand { at: v.at, target, fd, bits, data, cfg, order, edges, fires, forced: false });
    }
    let mut n = 0;
    let mut kernel_real = 0;
    for e in &kbuf[..kn] {
        let data = e.u64;
        if let Some(i) = ItemRef::from_token(data) {
            if i.obj == h
                && let Some(c) = cands.iter_mut().flatten().find(|c| c.at == i)
            {
                c.bits |= e.events & c.cfg as u32;
                if e.events & libc::EPOLLHUP as u32 != 0 {
                    c.bits |= poll::hangup_error(r, &Shim::from_bits(c.target), c.fd) & c.cfg as u32;
                }
                c.forced = true;
            }
            // (A disabled or departed interest's kernel half: nothing to report.)
            continue;
        }
        kernel_real += 1;
        if !shim_first {
            out[n] = *e;
            n += 1;
        }
    }
    // The forced ones first (the kernel's half is taken), then by place on the ready list.
    let mut order = scratch::take(EP_ITEMS as usize, 0usize)?;
    let mut m = 0;
    for (k, c) in cands.iter().enumerate() {
        if c.is_some_and(|c| c.forced || c.fires) {
            order[m] = k;
            m += 1;
        }
    }
    order[..m].sort_unstable_by_key(|&k| {
        let c = cands[k].unwrap();
        (!c.forced, c.order)
    });
    let shim_room = room - kernel_real.min(room);
    let mut taken = 0;
    for &k in &order[..m] {
        let c = cands[k].unwrap();
        if !c.forced && taken >= shim_room {
            continue;
        }
        taken += 1;
        out[n] = libc::epoll_event { events: c.bits, u64: c.data };
        n += 1;
        let Some(v) = ep::items(r, h).find(|v| v.at == c.at) else { continue };
        if c.cfg as u32 & ONESHOT != 0 {
            v.item.set_flags(&l, DISABLED, PENDING);
        } else {
            v.item.set_flags(&l, 0, PENDING);
            // Level-triggered: back on the list, at its tail.
            v.item.requeue(o);
        }
        v.item.seen.store(c.edges, Relaxed);
    }
    if shim_first {
        for e in &kbuf[..kn] {
            if ItemRef::from_token(e.u64).is_none() {
                out[n] = *e;
                n += 1;
            }
        }
    }
    // Where this thread's next mixed wait sleeps: on the objects while only they report.
    if n > 0 {
        sud::tls().epoll_shim_first.store((kernel_real == 0) as u8, core::sync::atomic::Ordering::Relaxed);
    }
    Ok(n)
}

/// Every shim interest went meanwhile: the kernel's own events are all there is.
fn kernel_only(kbuf: &[libc::epoll_event], pre: Option<usize>, out: &mut [libc::epoll_event]) -> usize {
    let mut n = 0;
    for e in kbuf[..pre.unwrap_or(0)].iter().filter(|e| ItemRef::from_token(e.u64).is_none()) {
        out[n] = *e;
        n += 1;
    }
    n
}

/// Whether something may be ready without any wake-up left to come (checked by a sleeper
/// once it is counted as one).
fn any_listed(r: &Region, h: EpHandle) -> bool {
    ep::items(r, h).any(|v| {
        if v.cfg & DISABLED != 0 {
            return false;
        }
        let (bits, listed, _) = examine(r, &v);
        listed && (bits != 0 || v.cfg & PENDING != 0)
    })
}

/// epoll_wait, epoll_pwait and epoll_pwait2 on an epoll fd with shim interests; `None` for
/// the others (the kernel serves them).
pub fn wait(r: &Region, g: &sud::Guard, nr: i64, a: &[u64; 6]) -> Option<i64> {
    let (epfd, uev, maxevents) = (a[0] as i32, a[1] as usize, a[2] as i32 as i64);
    let served = match object_of(r, epfd) {
        Lookup::NotEpoll => return None,
        Lookup::Obj(_) => true,
        // While the namespace has none, no shim interest can appear without a new object.
        Lookup::NoObj if ep::ns(r).live.load(core::sync::atomic::Ordering::Acquire) == 0 => return None,
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
        signals::sanitize_mask(&mut m);
        sigmask = Some(m);
    }
    if maxevents <= 0 || maxevents > EP_MAX_EVENTS {
        return fail(libc::EINVAL);
    }
    if !crate::copy::access_ok(uev, maxevents as usize * size_of::<libc::epoll_event>()) {
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
fn kernel_slice(g: &sud::Guard, w: &Wait) -> Option<i64> {
    let remaining = w.deadline.map(|d| poll::ns_until(&d));
    if remaining.is_some_and(|ns| ns <= 0) {
        return Some(0);
    }
    let ts = poll::ts_from_ns(remaining.map_or(KERNEL_SLICE_NS, |ns| ns.min(KERNEL_SLICE_NS)));
    let tsp = &ts as *const _ as usize;
    signals::clear_interrupt();
    let res = g.allow_signals(|| {
        sys::syscall6(libc::SYS_epoll_pwait2, w.epfd as usize, w.uev, w.maxevents, tsp, w.maskp(), 8)
    });
    match res {
        Ok(0) => None,
        // Only a handler interrupts: a tracer's stops (ptrace) do not make EINTR here either.
        Err(libc::EINTR) if signals::take_interrupt().is_none() => None,
        res => Some(ret(res)),
    }
}

/// epoll_pwait's mask, installed for the whole of a served wait (set_user_sigmask) and put
/// back on drop: a signal it blocks stays pending between the wait's slices instead of being
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

/// The wait on a set with shim interests; `None` once it has none left.
fn served_wait(r: &Region, g: &sud::Guard, w: &Wait, h: EpHandle) -> Option<i64> {
    let (epfd, uev, deadline, sigmask) = (w.epfd, w.uev, w.deadline, w.sigmask);
    let _mask = CallerMask::install(sigmask);
    let room = w.maxevents.min(MAX_OUT);
    let none = libc::epoll_event { events: 0, u64: 0 };
    let (Ok(mut kbuf), Ok(mut out)) = (scratch::take(MAX_OUT, none), scratch::take(MAX_OUT, none)) else {
        return Some(neg(libc::ENOMEM));
    };
    let mut pre = None;
    loop {
        let ctl_seen = ep::obj(r, h).map_or(0, |o| o.ctl_word.load(core::sync::atomic::Ordering::SeqCst));
        // Before the placeholders are asked: a close after this moves it.
        let key = liveness_key(r, h);
        if ep::obj(r, h).is_none() && pre.is_none() {
            return None;
        }
        let n = match collect(r, epfd, h, room, pre.take(), &mut kbuf, &mut out) {
            Ok(n) => n,
            Err(e) => return Some(neg(e)),
        };
        if n > 0 {
            return Some(deliver(uev, &out[..n]));
        }
        let remaining = deadline.map(|d| poll::ns_until(&d));
        if remaining.is_some_and(|ns| ns <= 0) {
            return Some(0);
        }
        // No shim interest left: the kernel's wait.
        let o = ep::obj(r, h)?;
        signals::clear_interrupt();
        let mixed = sigmask.is_some() || o.kernel_items.load(core::sync::atomic::Ordering::Acquire) != 0;
        // A set whose events came from shim objects last time sleeps on their words and looks
        // at the kernel's fds between short slices (a server's listener beside its clients);
        // one whose came from the kernel sleeps in the kernel and looks at the objects so.
        // While an exec may close a peer's end, the kernel wakes us as it goes (pipe_exec).
        let exec = || {
            ep::items(r, h).any(|v| {
                poll::in_exec_window(
                    r,
                    &Shim::from_bits(v.item.target.load(core::sync::atomic::Ordering::Relaxed)),
                )
            })
        };
        if mixed && sud::tls().epoll_shim_first.load(core::sync::atomic::Ordering::Relaxed) == 0 || exec() {
            let slice = remaining.map_or(MIXED_SLICE_NS, |ns| ns.min(MIXED_SLICE_NS));
            let ts = poll::ts_from_ns(slice);
            let (kp, tsp, maskp) = (kbuf.as_mut_ptr() as usize, &ts as *const _ as usize, w.maskp());
            let res = g.allow_signals(|| {
                sys::syscall6(libc::SYS_epoll_pwait2, epfd as usize, kp, room, tsp, maskp, 8)
            });
            match res {
                Ok(k) if k > 0 => {
                    pre = Some(k);
                    continue;
                }
                Ok(_) | Err(libc::EINTR) => {}
                Err(e) => return Some(neg(e)),
            }
        } else {
            let (Ok(mut targets), Ok(mut waiters)) = (
                scratch::take(EP_ITEMS as usize, None),
                scratch::take(shared_state::pipe::POLL_WAIT_SLOTS, sys::FutexWaitv::default()),
            ) else {
                return Some(neg(libc::ENOMEM));
            };
            for (k, v) in ep::items(r, h).enumerate() {
                targets[k] = Some(poll::wait_target(
                    r,
                    &Shim::from_bits(v.item.target.load(core::sync::atomic::Ordering::Relaxed)),
                    false,
                    false,
                ));
            }
            let word = signals::handled_word();
            let extra = [(word, word.load(core::sync::atomic::Ordering::Relaxed)), (&o.ctl_word, ctl_seen)];
            // A close since the placeholders were asked woke nobody yet: look again.
            let recheck = || any_listed(r, h) || liveness_key(r, h) != key;
            let slept = sys::monotonic_ns();
            let slice = mixed.then(|| deadline_after(&poll::ts_from_ns(MIXED_SLICE_NS)));
            let until = match (deadline, slice) {
                (Some(d), Some(s)) => Some(if (d.tv_sec, d.tv_nsec) < (s.tv_sec, s.tv_nsec) { d } else { s }),
                (d, s) => d.or(s),
            };
            shared_state::pipe::poll_wait(
                r,
                targets.iter().flatten().flatten().flatten().copied(),
                until.as_ref(),
                &extra,
                Some(&recheck),
                &mut |f| g.allow_signals(f),
                &mut waiters,
            );
            // A placeholder's HUP/ERR follows a close (or a death, noticed at the slice's end):
            // after a short sleep with none, the kernel has nothing new to say.
            if !mixed && liveness_key(r, h) == key && sys::monotonic_ns() - slept < KERNEL_RECHECK_NS {
                pre = Some(0);
            }
        }
        // epoll_wait is never restarted after a handler ran (even one with SA_RESTART).
        if signals::take_interrupt().is_some() {
            return Some(neg(libc::EINTR));
        }
    }
}

/// A key that moves when an fd of any of the set's shim objects may have been closed.
fn liveness_key(r: &Region, h: EpHandle) -> u64 {
    ep::items(r, h).fold(0u64, |k, v| {
        let s = Shim::from_bits(v.item.target.load(core::sync::atomic::Ordering::Relaxed));
        k.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(poll::liveness(r, &s))
    })
}

/// Copies the events out as ep_send_events does: EFAULT only if the first one fails.
fn deliver(uev: usize, out: &[libc::epoll_event]) -> i64 {
    for (i, e) in out.iter().enumerate() {
        if copy_out(uev + i * size_of::<libc::epoll_event>(), e).is_err() {
            return if i == 0 { neg(libc::EFAULT) } else { i as i64 };
        }
    }
    out.len() as i64
}
