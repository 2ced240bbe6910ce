//! AF_UNIX stream and seqpacket sockets, and datagram socketpairs (named datagram sockets are
//! `crate::family::dgram`'s), on shim fds
//! (net/unix/af_unix.c). Every such socket is a real kernel
//! socket, connected to its real peer: names, bind, listen's backlog, connect's and accept's
//! blocking and errors, getsockname/getpeername, shutdown's state, fstat and fd numbering stay
//! the kernel's. Only the data moves through the region: each end's send queue is a pipe
//! object named by its socket inode (`shared_state::unix` explains how a connection becomes a
//! shim one at connect and accept). The placeholder's kernel state answers liveness:
//! RCV_SHUTDOWN (peer closed or shut down writing, or we shut down reading) shows as POLLRDHUP,
//! SEND_SHUTDOWN as EPIPE from a zero-length send, which moves no data (for record sockets,
//! where that would be a record, from `unix_diag`'s shutdown bits). Seqpacket and datagram
//! queues hold records (`shared_state::pipe::record_write`).
//!
//! Ancillary data is served too (`crate::family::scm`). What the shim does not serve (MSG_OOB, a
//! named datagram socket…) gives
//! the connection back to the kernel: sends go to the kernel from then on, and a receiver reads
//! what is still queued here before the kernel's queue, so the byte order is kept.

use crate::base::fd::{self, PipeFd};
use crate::base::iov::{IOV_MAX, Iov};
use crate::base::scratch;
use crate::base::thread;
use crate::family::dgram;
use crate::family::pipes;
use crate::family::scm::{self, Ctl};
use crate::family::udp;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, Ordering::SeqCst};
use shared_state::Region;
use shared_state::pipe::{self, PipeHandle, RecvMode};
use shared_state::sys::{self, Errno};
use shared_state::unix::{self as names, Name};

const SOL_SOCKET: i32 = libc::SOL_SOCKET;
/// The one flag whose meaning the shim leaves to the kernel: the stream's out-of-band byte
/// (the connection is given back first). AF_UNIX ignores the flags it does not use.
/// SIOCOUTQ (TIOCOUTQ): what the skbs sent and not yet read by the peer charge.
const SIOCOUTQ: u64 = 0x5411;
/// Whether the next byte to read is the out-of-band mark.
pub(crate) const SIOCATMARK: u64 = 0x8905;
/// The socket's owner as ioctls set it (FIOSETOWN, SIOCSPGRP), and fcntl's F_OWNER_* kinds.
pub(crate) const FIOSETOWN: u64 = 0x8901;
pub(crate) const SIOCSPGRP: u64 = 0x8902;
pub(crate) const F_SETOWN_EX: i32 = 15;
const F_GETOWN_EX: i32 = 16;
const F_OWNER_TID: u32 = 0;
const F_OWNER_PGRP: u32 = 2;

pub(crate) fn getsockopt_int(fd: i32, opt: i32) -> Result<i32, Errno> {
    let mut v = 0i32;
    getsockopt_into(fd, opt, &mut v)?;
    Ok(v)
}

/// A SOL_SOCKET option of `fd` into `v` (an int, or a struct such as SO_PEERCRED's).
pub fn getsockopt_into<T>(fd: i32, opt: i32, v: &mut T) -> Result<(), Errno> {
    let mut len = core::mem::size_of::<T>() as u32;
    sys::syscall6(
        libc::SYS_getsockopt,
        fd as usize,
        SOL_SOCKET as usize,
        opt as usize,
        v as *mut T as usize,
        &mut len as *mut u32 as usize,
        0,
    )
    .map(|_| ())
}

/// A socket the shim may serve: AF_UNIX, SOCK_STREAM or SOCK_SEQPACKET.
fn is_served(fd: i32) -> bool {
    getsockopt_int(fd, libc::SO_DOMAIN) == Ok(libc::AF_UNIX)
        && getsockopt_int(fd, libc::SO_TYPE).is_ok_and(|t| served_type(t).is_some())
}

/// SO_PASSCRED. The shim marks the receive queue of a linked connection (senders then add
/// their credentials); a listener's or an unconnected client's stays the kernel's.
fn passcred(fd: i32) -> bool {
    getsockopt_int(fd, libc::SO_PASSCRED) != Ok(0)
}

/// The connection-oriented types the shim serves: byte streams and records.
fn served_type(ty: i32) -> Option<u32> {
    match ty {
        libc::SOCK_STREAM => Some(0),
        libc::SOCK_SEQPACKET => Some(pipe::SOCK_RECORDS),
        _ => None,
    }
}

/// A queue's first slots (pages): what its skbs charge, not the slots, limits it, and the ring
/// grows when that allows more buffers than it has (`shared_state::skb`).
pub(crate) const QUEUE_SLOTS: u32 = 64;

/// A send queue for the socket with inode `ino`, in connection state `state` (with its
/// type's flag).
pub(crate) fn new_queue(r: &Region, ino: u64, state: u32) -> Result<PipeHandle, Errno> {
    let h = pipe::sock_new(r, sys::sockfs_dev(), ino, QUEUE_SLOTS)?;
    pipe::sock_init(r, h, state);
    Ok(h)
}

/// `socket(AF_UNIX, …)`: the kernel's. A stream or seqpacket socket is noted as fresh (see
/// `fd::Fresh`): its connect or listen need not ask the kernel what it is. Datagram sockets
/// are `crate::family::dgram`'s.
pub fn socket(r: &Region, domain: u64, ty: u64, proto: u64) -> Option<i64> {
    if domain as i32 != libc::AF_UNIX {
        return None;
    }
    let records = match ty as i32 & 0xf {
        libc::SOCK_STREAM => false,
        libc::SOCK_SEQPACKET => true,
        _ => return dgram::socket(r, domain, ty, proto),
    };
    let sole = fd::Sole::before_create();
    let res = sys::syscall6(libc::SYS_socket, domain as usize, ty as usize, proto as usize, 0, 0, 0);
    let Ok(fd) = res else { return Some(crate::base::iov::ret(res)) };
    fd::mark_fresh(fd as i32, fd::Fresh { records, sole });
    Some(fd as i64)
}

pub(crate) fn insert(r: &Region, fd: i32, pipe: PipeHandle) {
    fd::insert(&fd::socket_entry(r, fd, pipe));
}

/// A connection just made (socketpair, connect, accept) through `fd`, its socket's only
/// holder since `sole`: its peer is there (the kernel just said so), which its first send and
/// receive need not ask the kernel again.
pub(crate) fn insert_connected(r: &Region, fd: i32, pipe: PipeHandle, sole: fd::Sole) {
    insert(r, fd, pipe);
    fd::set_sole(fd, sole);
    pipes::peer_present(r, fd, pipe);
}

/// `socketpair(AF_UNIX, …)`: the kernel's pair as the placeholder, two linked queues behind
/// it. Other families stay the kernel's.
pub fn socketpair(r: &Region, domain: u64, ty: u64, proto: u64, usv: usize) -> Option<i64> {
    let ty = ty as i32;
    if domain as i32 != libc::AF_UNIX {
        return None;
    }
    // A datagram pair is connected and unnamed: records, as seqpacket's, with its own rules.
    let kind = match ty & 0xf {
        libc::SOCK_DGRAM => pipe::SOCK_RECORDS | pipe::SOCK_DGRAM,
        t => served_type(t)?,
    };
    let mut fds = [0i32; 2];
    let sole = fd::Sole::before_create();
    let res = sys::syscall6(
        libc::SYS_socketpair,
        domain as usize,
        ty as usize,
        proto as usize,
        fds.as_mut_ptr() as usize,
        0,
        0,
    );
    if let Err(e) = res {
        return Some(-(e as i64));
    }
    if crate::base::copy::slice_out(usv, &fds).is_err() {
        sys::close(fds[0]);
        sys::close(fds[1]);
        return Some(-(libc::EFAULT as i64));
    }
    let queue = |fd: i32| sys::fstat(fd).and_then(|st| new_queue(r, st.st_ino, pipe::SOCK_LINKED | kind));
    // Without queues (the table is full) the pair is simply the kernel's.
    if let (Ok(a), Ok(b)) = (queue(fds[0]), queue(fds[1])) {
        pipe::sock_link(r, a, b);
        insert_connected(r, fds[0], a, sole);
        insert_connected(r, fds[1], b, sole);
    }
    Some(0)
}

/// What the `sockaddr_un` `addr` names, for the table: an abstract name's bytes, or the socket
/// file's identity. None when it names nothing we could serve.
pub(crate) fn name_of(addr: &[u8]) -> Option<Name<'_>> {
    name_and_owner(addr).map(|(name, _)| name)
}

/// [`name_of`], with a socket file's owner and mode (None for an abstract name).
pub(crate) fn name_and_owner(addr: &[u8]) -> Option<(Name<'_>, Option<(u32, u32)>)> {
    let path = addr.get(2..)?;
    if path.first() == Some(&0) {
        return Some((Name::Abstract(path), None));
    }
    let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
    let mut z = [0u8; names::UNIX_PATH_MAX + 1];
    z.get_mut(..end)?.copy_from_slice(&path[..end]);
    let st = sys::fstatat(libc::AT_FDCWD, &z[..end + 1]).ok()?;
    (st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
        .then_some((Name::Path { dev: st.st_dev, ino: st.st_ino }, Some((st.st_uid, st.st_mode))))
}

/// `bind` of a datagram socket (`crate::family::dgram`); of a datagram pair end: others may then
/// send to it by name, which the kernel delivers, so the pair goes to the kernel. The bind
/// itself is the kernel's.
pub fn bind(r: &Region, fd: i32, uaddr: u64, alen: u64) -> Option<i64> {
    let p = fd::lookup(r, fd).filter(|p| pipe::sock_dgram(r, p.pipe))?;
    if udp::is_udp(r, &p) {
        return Some(udp::bind(r, &p, uaddr, alen));
    }
    if dgram::is_recv_queue(r, &p) {
        return Some(dgram::bind(r, &p, uaddr, alen));
    }
    hand_back(r, &p);
    None
}

/// `listen`: the kernel's, then connections to the socket's name are announced as the shim's.
pub fn listen(r: &Region, fd: i32, backlog: u64) -> Option<i64> {
    // A socket made here (or a listener announced here) held by this fd alone has no
    // SO_PASSCRED that setsockopt here did not see: only its inode is left to learn.
    let known = match (fd::fresh(fd), fd::listener(fd)) {
        (Some(f), _) if f.sole.holds() => Some((None, f.sole)),
        (_, Some(l)) if l.sole.holds() && !crate::family::tcp::is_listener(&l) => {
            Some((Some(l.ino as u64), l.sole))
        }
        _ => None,
    };
    let res = sys::syscall6(libc::SYS_listen, fd as usize, backlog as usize, 0, 0, 0, 0);
    if res.is_err() {
        return Some(crate::base::iov::ret(res));
    }
    let ino = |known: Option<u64>| known.or_else(|| sys::fstat(fd).ok().map(|st| st.st_ino));
    let this = match known {
        Some((k, sole)) => ino(k).map(|i| (i, sole)),
        None if is_served(fd) && !passcred(fd) => ino(None).map(|i| (i, fd::Sole::NO)),
        None => None,
    };
    let mut addr = [0u8; 2 + names::UNIX_PATH_MAX];
    let mut len = addr.len() as u32;
    let named = this.is_some()
        && sys::syscall6(
            libc::SYS_getsockname,
            fd as usize,
            addr.as_mut_ptr() as usize,
            &mut len as *mut u32 as usize,
            0,
            0,
            0,
        )
        .is_ok();
    if let Some((ino, sole)) = this.filter(|_| named)
        && let Some(name) = name_of(&addr[..(len as usize).min(addr.len())])
    {
        let listener = names::Listener { ino: ino as u32, pid: fd::own_pid() };
        if let Some(name_slot) = names::register(r, name, listener) {
            fd::mark_listener(fd, fd::Listening { ino: listener.ino, name_slot, sole });
        }
    }
    // Listening, announced or not: not a socket to connect any more.
    fd::unfresh(fd);
    Some(crate::base::iov::ret(res))
}

/// The socket inode of `fd` if it is a listening socket.
fn listening_ino(fd: i32) -> Option<u32> {
    let st = sys::fstat(fd).ok().filter(|st| st.st_dev == sys::sockfs_dev())?;
    (getsockopt_int(fd, libc::SO_ACCEPTCONN) == Ok(1)).then_some(st.st_ino as u32)
}

/// A listening socket is inherited by a program without the shim, which may accept on it:
/// connections to it go to the kernel, unless the shim process that listened still holds it
/// (a server whose child execs a set-id helper): then its name stays announced until that
/// process lets go of it (see [`listener_released`]).
pub fn listener_to_foreign(r: &Region, fd: i32) {
    let Some(ino) = listening_ino(fd) else { return };
    match names::registrant(r, ino) {
        Some(pid) if pid != sys::getpid() as u32 && holds(pid, ino) => names::mark_foreign_held(r, ino),
        Some(_) => names::unregister(r, |l| l.ino == ino),
        None => {}
    }
}

/// A shim process closes a listening socket it announced (not as its only holder, which no
/// program without the shim can then hold too).
pub fn listener_released(r: &Region, l: &fd::Listening) {
    names::release_listener(r, l.ino);
}

/// Whether process `pid` has an fd of the socket with inode `ino` (as /proc shows it).
fn holds(pid: u32, ino: u32) -> bool {
    let mut path = *b"/proc/\0\0\0\0\0\0\0\0\0\0/fd\0";
    let mut digits = [0u8; 10];
    let n = shared_state::pipe_gc::itoa(pid, &mut digits);
    path[6..6 + n].copy_from_slice(&digits[..n]);
    path[6 + n..6 + n + 4].copy_from_slice(b"/fd\0");
    let Ok(dir) = sys::open(&path[..6 + n + 4], libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
    else {
        return false;
    };
    let mut want = [0u8; 20];
    let k = shared_state::pipe_gc::itoa(ino, &mut digits);
    want[..8].copy_from_slice(b"socket:[");
    want[8..8 + k].copy_from_slice(&digits[..k]);
    want[8 + k] = b']';
    let want = &want[..9 + k];
    let mut found = false;
    let _ = shared_state::pipe_gc::each_fd_entry(dir, |name| {
        let mut z = [0u8; 24];
        let mut link = [0u8; 32];
        if let Some(dst) = z.get_mut(..name.len()) {
            dst.copy_from_slice(name);
            found |= sys::readlinkat(dir, &z[..name.len() + 1], &mut link).is_ok_and(|l| &link[..l] == want);
        }
        if found { Err(libc::EEXIST) } else { Ok(()) }
    });
    sys::close(dir);
    found
}

/// This process becomes a program without the shim: a client would take the credentials
/// of a listener it makes for ours.
pub fn forget_own_listeners(r: &Region) {
    let pid = sys::getpid() as u32;
    names::unregister(r, |l| l.pid == pid);
}

/// The pid in the credentials the kernel gave `fd` for its peer.
fn peer_pid(fd: i32) -> Option<u32> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = size_of::<libc::ucred>() as u32;
    sys::syscall6(
        libc::SYS_getsockopt,
        fd as usize,
        SOL_SOCKET as usize,
        libc::SO_PEERCRED as usize,
        &mut cred as *mut libc::ucred as usize,
        &mut len as *mut u32 as usize,
        0,
    )
    .ok()?;
    Some(cred.pid as u32)
}

/// Connects of this process to announced listeners whose outcome is not settled yet (from
/// before their ticket until the kernel's connect returned and a failed or stray one's entry
/// is gone): one that begins while another is counted may reach the kernel's accept queue in
/// another order than their tickets (see `shared_state::unix::pending_add`).
static CONNECTING: AtomicU32 = AtomicU32::new(0);

/// One connect counted in [`CONNECTING`] until dropped.
struct Connecting;

impl Connecting {
    /// Counts a connect; whether another was counted already.
    fn begin() -> (Connecting, bool) {
        (Connecting, CONNECTING.fetch_add(1, SeqCst) > 0)
    }
}

impl Drop for Connecting {
    fn drop(&mut self) {
        CONNECTING.fetch_sub(1, SeqCst);
    }
}

/// In a fork child: the connects other threads had in progress are not the child's (left
/// counted, every later connect of the child would be taken as overlapping one and matched
/// through `unix_diag`).
pub fn forked() {
    CONNECTING.store(0, SeqCst);
}

/// `connect` of an AF_UNIX stream or seqpacket socket to a name a shim process listens on: the
/// queue is made (pending) before the kernel connects, with a ticket in this process's
/// connects to the listener, and kept if a shim server already took it, or the kernel shows
/// the connection reached that listener: its peer's credentials are those of the process that
/// listened, or (asked only when they are not) the diagnostics show it waiting in the
/// listener's queue.
pub fn connect(r: &Region, g: &thread::Guard, fd: i32, uaddr: usize, alen: u64) -> Option<i64> {
    if let Some(p) = fd::lookup(r, fd) {
        if udp::is_udp(r, &p) {
            return Some(udp::connect(r, &p, uaddr, alen));
        }
        if dgram::is_recv_queue(r, &p) {
            return Some(dgram::connect(r, &p, uaddr, alen));
        }
        // A datagram pair end connected elsewhere receives from others: the kernel's.
        if pipe::sock_dgram(r, p.pipe) {
            hand_back(r, &p);
        }
        return None;
    }
    if !(3..=110).contains(&alen) {
        return None;
    }
    let mut addr = [0u8; 110];
    let addr = &mut addr[..alen as usize];
    crate::base::copy::slice_in(addr, uaddr).ok()?;
    // The address's family, not the socket's: another family's socket fails the kernel's
    // connect, and the queue is then refused.
    if u16::from_ne_bytes([addr[0], addr[1]]) != libc::AF_UNIX as u16 {
        return None;
    }
    // A socket made here is known (see `fd::Fresh`); once connected, by us or the kernel, it is
    // a shim fd or a plain kernel one.
    let fresh = fd::fresh(fd);
    let res = connect_unix(r, g, fd, uaddr, addr, fresh);
    if fresh.is_some() && res.is_none_or(|v| v == 0) {
        fd::unfresh(fd);
    }
    res
}

/// [`connect`] of a socket that is not the shim's yet, to the AF_UNIX address `addr` (the
/// user's at `uaddr`).
fn connect_unix(
    r: &Region,
    g: &thread::Guard,
    fd: i32,
    uaddr: usize,
    addr: &[u8],
    fresh: Option<fd::Fresh>,
) -> Option<i64> {
    let alen = addr.len() as u64;
    let kind = match fresh {
        Some(f) if f.records => pipe::SOCK_RECORDS,
        Some(_) => 0,
        None => served_type(getsockopt_int(fd, libc::SO_TYPE).ok()?)?,
    };
    let name = name_of(addr)?;
    let listener = names::lookup(r, name)?;
    let me = sys::fstat(fd).ok()?.st_ino;
    let sole = fresh.map_or(fd::Sole::NO, |f| f.sole);
    let pid = fd::own_pid();
    let queue = if !sole.holds() && passcred(fd) {
        None
    } else {
        Some(new_queue(r, me, pipe::SOCK_PENDING | kind).ok()?)
    };
    if let Some(h) = queue {
        early_timeouts(r, fd, me, h);
    }
    // Counted before the ticket and until its fate is settled: of two connects of this
    // process that overlap, the second to be counted sees the first (see `pending_add`).
    let (connecting, overlapping) = Connecting::begin();
    let Some(ticket) = names::pending_add(r, listener, pid, me, queue, overlapping) else {
        drop(connecting);
        // A queue refused before anyone took it is nobody's: it goes at once.
        if let Some(h) = queue
            && pipe::sock_refuse(r, h)
        {
            pipe::release(r, h);
        }
        return None;
    };
    let res =
        g.allow_signals(|| sys::syscall6(libc::SYS_connect, fd as usize, uaddr, alen as usize, 0, 0, 0));
    let Some(h) = queue else {
        // The kernel's connection, with its ticket all the same: it keeps this process's
        // connects to the listener in order (see shared_state::unix).
        if res.is_err() {
            let _ = names::pending_remove(r, listener, pid, ticket);
        }
        return Some(crate::base::iov::ret(res));
    };
    if res.is_err() {
        if let Some(h) = names::pending_remove(r, listener, pid, ticket) {
            // Refused before anyone took it: nobody's, so it goes at once.
            pipe::release(r, h);
        }
        return Some(crate::base::iov::ret(res));
    }
    let ours = pipe::sock_state(r, h) == pipe::SOCK_LINKED
        || peer_pid(fd) == Some(listener.pid)
        || diag::accept_queue_holds(listener.ino as u64, me)
        || !pipe::sock_refuse(r, h);
    if !ours {
        let _ = names::pending_remove(r, listener, pid, ticket);
    }
    // Settled: this connect is in the listener's accept queue, or its entry is gone.
    drop(connecting);
    if ours {
        insert_connected(r, fd, h, sole);
    } else {
        pipe::release(r, h);
    }
    Some(0)
}

/// `accept`/`accept4`: the kernel's; a connection whose client made a pending queue is
/// adopted, the rest stay the kernel's.
pub fn accept(r: &Region, g: &thread::Guard, nr: i64, a: &[u64; 6]) -> Option<i64> {
    let lfd = a[0] as i32;
    let flags = if nr == libc::SYS_accept4 { a[3] as usize } else { 0 };
    let sole = fd::Sole::before_create();
    let known = fd::listener(lfd);
    let tcp = known.filter(crate::family::tcp::is_listener);
    // From a TCP listener of ours, the peer's name comes with the accept when the caller asks
    // for none (the kernel then fills ours).
    let mut peer = [0u8; 28];
    let mut peer_len = peer.len() as u32;
    let (addr, addr_len) = if tcp.is_some() && a[1] == 0 {
        (peer.as_mut_ptr() as usize, &mut peer_len as *mut u32 as usize)
    } else {
        (a[1] as usize, a[2] as usize)
    };
    let res = g.allow_signals(|| sys::syscall6(libc::SYS_accept4, lfd as usize, addr, addr_len, flags, 0, 0));
    let Ok(nfd) = res else { return Some(crate::base::iov::ret(res)) };
    let nfd = nfd as i32;
    if let Some(listener) = tcp {
        let peer = if addr == peer.as_ptr() as usize {
            crate::family::tcp::Endpoint::from_sockaddr(&peer[..(peer_len as usize).min(peer.len())])
        } else {
            None
        };
        crate::family::tcp::accepted(r, nfd, sole, Some(crate::family::tcp::Via { listener, peer }));
        return Some(nfd as i64);
    }
    // Only a stream client makes a pending queue: the diagnostics answer for the others.
    let announced = known;
    let domain = if announced.is_some() { Ok(libc::AF_UNIX) } else { getsockopt_int(nfd, libc::SO_DOMAIN) };
    match domain {
        Ok(libc::AF_UNIX) => adopt(r, lfd, announced, nfd, sole),
        Ok(libc::AF_INET | libc::AF_INET6) => crate::family::tcp::accepted(r, nfd, sole, None),
        _ => {}
    }
    Some(nfd as i64)
}

/// Finds the client queue of the connection `fd` accepted (its socket's only holder since
/// `sole`) from listener `lfd` (`announced` by this process, if so): its client process's
/// oldest connect to the listener not taken yet (see shared_state::unix); and links ours to it.
fn adopt(r: &Region, lfd: i32, announced: Option<fd::Listening>, fd: i32, sole: fd::Sole) {
    let Ok(st) = sys::fstat(fd) else { return };
    let Some(ino) = announced.map(|l| l.ino).or_else(|| sys::fstat(lfd).ok().map(|l| l.st_ino as u32)) else {
        return;
    };
    let listener = names::Listener { ino, pid: 0 };
    let Some(pid) = peer_pid(fd) else { return };
    // Asked only where the order is not known: unanswered, the connection is the kernel's.
    let mut client = || diag::peer_of(st.st_ino).ok().flatten().map(|i| i as u64);
    // What is not in the table is the kernel's.
    let names::Taken::Found(Some(client)) = names::pending_take(r, listener, pid, &mut client) else {
        return;
    };
    if pipe::sock_state(r, client) != pipe::SOCK_PENDING {
        return;
    }
    let kind = if pipe::sock_records(r, client) { pipe::SOCK_RECORDS } else { 0 };
    let Ok(h) = new_queue(r, st.st_ino, pipe::SOCK_PENDING | kind) else {
        // No queue for us (a full table): the client must not wait for one.
        pipe::sock_refuse(r, client);
        return;
    };
    // SO_PASSCRED inherited from the listener (set after listen, which the kernel then
    // serves; one this process alone holds has none that setsockopt here did not see): marked
    // before the link, so that no send of the client's once linked goes without credentials.
    if !announced.is_some_and(|l| l.sole.holds()) && passcred(fd) {
        pipe::sock_set_passcred(r, client, true, scm::pid_ns());
        pipe::sock_set_sender_passcred(r, h, true);
    }
    if !pipe::sock_adopt(r, client, h) {
        pipe::sock_refuse(r, h);
        pipe::release(r, h);
        return;
    }
    // A client that gave its end to the kernel before we linked reads the kernel's queue.
    // The link (release stores) before the look at the client's flag, which `hand_back` sets
    // before it looks for the link.
    sys::full_fence();
    if pipe::handed_back(r, client) {
        let _ = pipe::sock_hand_back(r, h);
    }
    insert_connected(r, fd, h, sole);
}

/// Gives both directions of the connection `p` is an end of to the kernel (see the module
/// comment). The peer moves what it queued into the kernel when it next looks (every served
/// call on it, and its sleepers, which this wakes).
pub fn hand_back(r: &Region, p: &PipeFd) {
    if udp::is_udp(r, p) {
        udp::forget(r, p);
    }
    if dgram::is_recv_queue(r, p) {
        dgram::forget(r, p);
        return;
    }
    // The peer's queue first: a peer woken by ours must find its own handed back already, or
    // it would wait in the kernel with its data still here.
    if let Some(peer) = pipe::sock_peer(r, p.pipe) {
        let _ = pipe::sock_hand_back(r, peer);
    }
    let _ = pipe::sock_hand_back(r, p.pipe);
    // A server adopting a pending connection right now links after our first look; it checks
    // our flag after linking, we check its link after flagging (see `adopt`).
    sys::full_fence();
    if let Some(peer) = pipe::sock_peer(r, p.pipe) {
        let _ = pipe::sock_hand_back(r, peer);
    }
    drain(r, p);
}

/// Moves what this end queued before a hand-back into the kernel's queue (see
/// `pipe::sock_drain`).
pub fn drain(r: &Region, p: &PipeFd) {
    let flags = (libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) as usize;
    pipe::sock_drain(r, p.pipe, &mut |bytes| {
        sys::syscall6(libc::SYS_sendto, p.fd as usize, bytes.as_ptr() as usize, bytes.len(), flags, 0, 0)
    });
}

/// The queue this socket receives from, waiting for a pending connection to be adopted.
/// None: the kernel serves the receive.
pub(crate) fn rx_queue(r: &Region, env: &dyn pipe::PipeEnv, p: &PipeFd) -> Result<Option<PipeHandle>, Errno> {
    if let Some(rx) = pipe::sock_peer(r, p.pipe) {
        return Ok(Some(rx));
    }
    match pipe::sock_wait_linked(r, p.pipe, env)? {
        true => Ok(pipe::sock_peer(r, p.pipe)),
        false => Ok(None),
    }
}

/// What a receive got: the count it returns, and whether a record was cut short (MSG_TRUNC
/// in recvmsg's flags).
pub type Got = (usize, bool);

/// Receives into `iov` with `flags`, and the message's ancillary data into `ctl`; None: the
/// kernel serves it.
pub fn recv(
    r: &Region,
    g: &thread::Guard,
    p: &PipeFd,
    iov: &[Iov],
    flags: i32,
    ctl: &mut Ctl,
) -> Option<Result<Got, Errno>> {
    // One look at the socket word says which family serves it (a hot path).
    let word = if p.socket { pipe::sock_flags(r, p.pipe) } else { 0 };
    if word & pipe::SOCK_UDP != 0 {
        return udp::recv(r, g, p, iov, flags, ctl);
    }
    if word & pipe::SOCK_RECV_QUEUE != 0 {
        return dgram::recv(r, g, p, iov, flags, ctl);
    }
    if word & pipe::SOCK_TCP != 0 {
        return crate::family::tcp::recv(r, g, p, iov, flags).map(|res| res.map(|n| (n, false)));
    }
    if flags & libc::MSG_OOB != 0 {
        return recv_oob(r, p, iov, flags, ctl);
    }
    drain(r, p);
    // The token of a message with fds is taken as the read takes the message (crate::family::scm).
    let taken = core::cell::Cell::new(*ctl);
    let take = |fp| {
        let mut c = taken.get();
        scm::take_token(p.fd, fp, flags, &mut c);
        taken.set(c);
    };
    let env =
        pipes::Env::new(p, r, g, flags & libc::MSG_DONTWAIT != 0, pipes::Side::SockRead).taking_fds(&take);
    let rx = match rx_queue(r, &env, p) {
        Ok(Some(rx)) => rx,
        Ok(None) => {
            drain(r, p);
            return None;
        }
        Err(e) => return Some(Err(e)),
    };
    let mode = RecvMode { peek: flags & libc::MSG_PEEK != 0, socket: true };
    if p.packet {
        let dgram = pipe::sock_dgram(r, p.pipe);
        // A seqpacket socket reports the reset before what is still queued (sock_error first).
        if !dgram
            && pipe::PipeEnv::peer_gone(&env, false)
            && reset_pending(r, p)
            && pipe::sock_take_reset(r, p.pipe)
        {
            return Some(Err(libc::ECONNRESET));
        }
        let mut cb = pipe::UnixCb::default();
        let res = pipe::record_read(r, rx, iov, &env, mode.peek, &mut cb);
        if let Ok(Some(_)) = res {
            *ctl = taken.get();
            ancillary(r, rx, Some(cb), ctl);
        }
        return match res {
            Err(pipe::HANDED_BACK) => {
                drain(r, p);
                None
            }
            Err(e) => Some(Err(e)),
            // A datagram socket shut down for reading still says EAGAIN when it would wait.
            Ok(None) if dgram && pipe::PipeEnv::nonblocking(&env) => Some(Err(libc::EAGAIN)),
            Ok(None) if dgram => Some(Ok((0, false))),
            Ok(None) => Some(eof(r, p).map(|n| (n, false))),
            // MSG_TRUNC: the record's real length.
            Ok(Some((n, len))) => Some(Ok((if flags & libc::MSG_TRUNC != 0 { len } else { n }, len > n))),
        };
    }
    let want: usize = iov.iter().map(|v| v.1).sum();
    if want == 0 {
        // A stream receive of nothing still waits for something to be there (its low-water
        // mark is one byte), then returns 0; peeking one byte into our own buffer does that.
        let mut byte = 0u8;
        let one = [(&mut byte as *mut u8 as usize, 1)];
        let peek = RecvMode { peek: true, socket: true };
        return match pipe::ring_read(r, rx, &one, &env, peek) {
            Err(pipe::HANDED_BACK) => {
                drain(r, p);
                None
            }
            res => Some(res.map(|_| {
                // Nothing is copied, but the first message's fds and credentials come.
                if let Ok(Some(cb)) = pipe::sock_head_cb(r, rx, mode.peek, &env) {
                    *ctl = taken.get();
                    ancillary(r, rx, Some(cb), ctl);
                }
                (0, false)
            })),
        };
    }
    let mut got = 0usize;
    // After a first part of a MSG_WAITALL receive: what is left of the iovecs.
    let mut rest = None;
    let mut msg = pipe::CbRead { check_creds: pipe::sock_passcred(r, rx), ..Default::default() };
    loop {
        let left = match got {
            0 => iov,
            _ => {
                let rest = match rest.as_mut() {
                    Some(rest) => rest,
                    None => match scratch::take(iov.len(), (0usize, 0usize)) {
                        Ok(s) => rest.insert(s),
                        Err(_) => break,
                    },
                };
                let n = crate::base::iov::skip_iov(iov, got, rest);
                &rest[..n]
            }
        };
        let res = pipe::sock_read(r, rx, left, &env, mode, &mut msg);
        match res {
            Err(pipe::HANDED_BACK) if got == 0 => {
                // Woken by the hand-back: what we sent must reach the kernel's queue too.
                drain(r, p);
                return None;
            }
            Err(_) | Ok(0) if got > 0 => break,
            Err(e) => return Some(Err(e)),
            Ok(0) => return Some(eof(r, p).map(|n| (n, false))),
            Ok(k) => got += k,
        }
        // MSG_WAITALL: until the buffer is full, EOF, an error, a signal (a partial count) or
        // a message edge (fds, other credentials).
        if flags & libc::MSG_WAITALL == 0 || mode.peek || got >= want || msg.stopped {
            break;
        }
    }
    *ctl = taken.get();
    ancillary(r, rx, msg.first, ctl);
    Some(Ok((got, false)))
}

/// The ancillary data of a received message with header `cb` (None or all zero: sent
/// without one) that has no token (a token's was taken with the message): for SO_PASSCRED
/// its sender's credentials (the kernel's "unknown" ones for a message sent before either end
/// asked).
fn ancillary(r: &Region, rx: PipeHandle, cb: Option<pipe::UnixCb>, ctl: &mut Ctl) {
    let cb = cb.unwrap_or_default();
    if cb.fp == 0 && pipe::sock_passcred(r, rx) {
        let (pid, uid, gid) = scm::creds_seen(&cb);
        scm::put_creds(ctl, pid, uid, gid);
    }
}

/// End of file, or first ECONNRESET: a peer released with data it never read (what we sent
/// and is still queued) sets the kernel's `sk_err`, reported once before EOF. The released
/// peer no longer has an inode, where one that only shut down does.
fn eof(r: &Region, p: &PipeFd) -> Result<usize, Errno> {
    if reset_pending(r, p) && pipe::sock_take_reset(r, p.pipe) {
        return Err(libc::ECONNRESET);
    }
    Ok(0)
}

fn reset_pending(r: &Region, p: &PipeFd) -> bool {
    // A TCP peer's reset is the kernel's socket's own error. A peer released by its last
    // close dropped our unread bytes and said so; one that died left them, and the kernel
    // says whether it is gone.
    !pipe::sock_dgram(r, p.pipe)
        && !pipe::sock_tcp(r, p.pipe)
        && !pipe::sock_reset_seen(r, p.pipe)
        && (pipe::sock_reset_pending(r, p.pipe)
            || pipe::fionread(r, p.pipe).is_ok_and(|n| n > 0)
                && sys::fstat(p.fd).is_ok_and(|st| diag::peer_of(st.st_ino) == Ok(None)))
}

/// POLLERR for a hung-up socket whose ECONNRESET is still to be read (see [`eof`]).
pub fn pending_error(r: &Region, p: &PipeFd) -> i16 {
    if reset_pending(r, p) { libc::POLLERR } else { 0 }
}

/// `recv(MSG_OOB)`: a record socket has none (EOPNOTSUPP); a stream's out-of-band byte
/// comes from the queue it receives from (MSG_OOB in recvmsg's flags), or EINVAL.
fn recv_oob(r: &Region, p: &PipeFd, iov: &[Iov], flags: i32, ctl: &mut Ctl) -> Option<Result<Got, Errno>> {
    if p.packet {
        return Some(Err(libc::EOPNOTSUPP));
    }
    let rx = match pipe::sock_peer(r, p.pipe) {
        Some(rx) if !pipe::handed_back(r, rx) => rx,
        // The kernel's byte, on a connection given back to it.
        Some(_) => return None,
        // Not linked yet: nothing sent, nothing out of band.
        None => return Some(Err(libc::EINVAL)),
    };
    let inline = getsockopt_int(p.fd, libc::SO_OOBINLINE) == Ok(1);
    let res = pipe::sock_recv_oob(r, rx, iov, flags & libc::MSG_PEEK != 0, inline);
    if res.is_ok() {
        ctl.flags |= libc::MSG_OOB;
    }
    Some(res.map(|n| (n, false)))
}

/// `send(MSG_OOB)` on a stream socket (`unix_stream_sendmsg`, `queue_oob`): all but the last
/// byte as data, then the last byte out of band, and SIGURG to the owner of the receiving
/// socket's file. Nothing to send is EOPNOTSUPP; a receiver gone by then is EPIPE without
/// SIGPIPE, after the count of what was sent.
fn send_oob(
    r: &Region,
    g: &thread::Guard,
    p: &PipeFd,
    iov: &[Iov],
    flags: i32,
) -> Option<Result<usize, Errno>> {
    let Some(k) = iov.iter().rposition(|v| v.1 > 0) else { return Some(Err(libc::EOPNOTSUPP)) };
    let (base, len) = iov[k];
    let plain = flags & !libc::MSG_OOB;
    let mut sent = 0;
    for part in [&iov[..k], &[(base, len - 1)][..]] {
        let want: usize = part.iter().map(|v| v.1).sum();
        if want == 0 {
            continue;
        }
        match send_cb(r, g, p, part, plain, None)? {
            Ok(n) => sent += n,
            Err(e) if sent == 0 => return Some(Err(e)),
            Err(_) => return Some(Ok(sent)),
        }
        if sent < want {
            return Some(Ok(sent));
        }
    }
    let env = pipes::Env::new(p, r, g, flags & libc::MSG_DONTWAIT != 0, pipes::Side::SockWrite);
    let creds = pipe::sock_sends_creds(r, p.pipe).map(|_| scm::own_creds(0));
    match pipe::sock_write_oob(r, p.pipe, &[(base + len - 1, 1)], creds.as_ref(), &env) {
        Ok(n) => {
            sigurg(r, p);
            Some(Ok(sent + n))
        }
        Err(pipe::HANDED_BACK) if sent == 0 => None,
        Err(_) if sent > 0 => Some(Ok(sent)),
        Err(e) => Some(Err(e)),
    }
}

/// `sk_send_sigurg` on the receiving socket: SIGURG to the owner its process gave its file.
fn sigurg(r: &Region, p: &PipeFd) {
    let Some(peer) = pipe::sock_peer(r, p.pipe) else { return };
    let owner = pipe::sock_owner(r, peer);
    if owner == 0 {
        return;
    }
    let (kind, id) = ((owner >> 32) as u32, owner as u32 as i32);
    let sig = libc::SIGURG as usize;
    let _ = match kind {
        F_OWNER_TID => sys::syscall6(libc::SYS_tkill, id as usize, sig, 0, 0, 0, 0).map(|_| ()),
        F_OWNER_PGRP => sys::kill(-id, libc::SIGURG),
        _ => sys::kill(id, libc::SIGURG),
    };
}

/// After a change of the socket's owner (F_SETOWN, F_SETOWN_EX, FIOSETOWN, SIOCSPGRP): the
/// kernel's answer kept in its queue, for senders of out-of-band data.
pub fn owner_changed(r: &Region, p: &PipeFd) {
    let mut ex = [0u32; 2];
    let got = sys::syscall6(
        libc::SYS_fcntl,
        p.fd as usize,
        F_GETOWN_EX as usize,
        ex.as_mut_ptr() as usize,
        0,
        0,
        0,
    );
    if got.is_ok() {
        let owner = if ex[1] == 0 { 0 } else { (ex[0] as u64) << 32 | ex[1] as u64 };
        pipe::sock_set_owner(r, p.pipe, owner);
    }
}

/// Whether `cmd` is an fcntl that sets a file's owner.
pub fn sets_owner(cmd: i32) -> bool {
    cmd == libc::F_SETOWN || cmd == F_SETOWN_EX
}

/// Sends `iov` with `flags`; None: the kernel serves it.
pub fn send(
    r: &Region,
    g: &thread::Guard,
    p: &PipeFd,
    iov: &[Iov],
    flags: i32,
) -> Option<Result<usize, Errno>> {
    send_cb(r, g, p, iov, flags, None)
}

/// Sends `iov` as one message with header `cb` (a token's), or for a receiver that asked for
/// credentials with ours.
fn send_cb(
    r: &Region,
    g: &thread::Guard,
    p: &PipeFd,
    iov: &[Iov],
    flags: i32,
    cb: Option<&pipe::UnixCb>,
) -> Option<Result<usize, Errno>> {
    // One look at the socket word says which family serves it (a hot path).
    let word = if p.socket { pipe::sock_flags(r, p.pipe) } else { 0 };
    if word & pipe::SOCK_UDP != 0 {
        return udp::send(r, p, iov, flags, None);
    }
    if word & pipe::SOCK_RECV_QUEUE != 0 {
        return dgram::send(r, g, p, iov, flags, None);
    }
    if word & pipe::SOCK_TCP != 0 {
        return crate::family::tcp::send(r, g, p, iov, flags);
    }
    if flags & libc::MSG_OOB != 0 {
        if p.packet {
            return Some(Err(libc::EOPNOTSUPP));
        }
        // Out-of-band data with ancillary data: the kernel's, on a connection given back.
        if cb.is_some() {
            hand_back(r, p);
            return None;
        }
        return send_oob(r, g, p, iov, flags);
    }
    if pipe::handed_back(r, p.pipe) {
        drain(r, p);
        return None;
    }
    let env = pipes::Env::new(p, r, g, flags & libc::MSG_DONTWAIT != 0, pipes::Side::SockWrite);
    let creds;
    let cb = match cb {
        // maybe_add_creds: either end asked. A receiver in another PID namespace gets them
        // through the kernel, which gives it our pid as it sees it.
        None => match pipe::sock_sends_creds(r, p.pipe) {
            Some(ns) if ns != 0 && ns != scm::pid_ns() => {
                let own = scm::own_creds_ctl();
                return send_scm(r, g, p, own.0.as_ptr() as usize, own.0.len(), iov, flags)
                    .map(|v| if v < 0 { Err(-v as Errno) } else { Ok(v as usize) });
            }
            Some(_) => {
                creds = scm::own_creds(0);
                Some(&creds)
            }
            None => None,
        },
        cb => cb,
    };
    if p.packet {
        // The kernel's limit comes before anything else: a record must fit the send buffer.
        let total: usize = iov.iter().map(|v| v.1).sum();
        if total > pipe::PIPE_BUF
            && getsockopt_int(p.fd, libc::SO_SNDBUF).is_ok_and(|b| total > (b as usize).saturating_sub(32))
        {
            return Some(Err(libc::EMSGSIZE));
        }
        // A record socket's EPIPE comes without SIGPIPE (unix_dgram_sendmsg). A datagram
        // socket whose peer is gone gets the kernel's ECONNREFUSED, and is disconnected.
        return match pipe::record_write(r, p.pipe, iov, cb, &env) {
            Err(pipe::HANDED_BACK) => None,
            // No memory for the queue: the connection goes to the kernel, which sends it.
            Err(pipe::NO_SPACE) => {
                hand_back(r, p);
                None
            }
            Err(libc::EPIPE) if pipe::sock_dgram(r, p.pipe) && dgram_peer_gone(p.fd) => {
                // What it queued for the gone peer is dropped, as the kernel's queue was.
                let _ = pipe::sock_hand_back(r, p.pipe);
                None
            }
            res => Some(res),
        };
    }
    let res = match cb {
        Some(cb) => pipe::sock_write(r, p.pipe, iov, cb, &env),
        None => pipe::pipe_write(r, p.pipe, iov, false, &env),
    };
    if res == Err(pipe::HANDED_BACK) {
        return None;
    }
    let total: usize = iov.iter().map(|v| v.1).sum();
    // No memory for the queue's next page: the connection goes to the kernel, which sends
    // what is left (all of it, or the rest after what went into the queue).
    if env.ran_out_of_space() {
        hand_back(r, p);
        let done = res.unwrap_or(0);
        if done == 0 {
            return None;
        }
        return Some(Ok(send_rest(g, p, iov, flags, done)));
    }
    let broken = res == Err(libc::EPIPE)
        || res.is_ok_and(|n| n > 0 && n < total && pipe::PipeEnv::peer_gone(&env, true));
    if broken && flags & libc::MSG_NOSIGNAL == 0 {
        pipes::raise_sigpipe();
    }
    Some(res)
}

/// After `done` bytes of `iov` went into the queue of a connection given back since: the rest
/// through the kernel's socket. What it returns: `done` and what the kernel took.
pub(crate) fn send_rest(g: &thread::Guard, p: &PipeFd, iov: &[Iov], flags: i32, done: usize) -> usize {
    // In scratch memory: an iovec array is too large for a small stack.
    let Ok(mut rest) = scratch::take(iov.len(), (0usize, 0usize)) else { return done };
    let n = crate::base::iov::skip_iov(iov, done, &mut rest);
    if n == 0 {
        return done;
    }
    // SAFETY: an all-zero msghdr is valid; it names only the iovecs.
    let mut m: libc::msghdr = unsafe { core::mem::zeroed() };
    m.msg_iov = rest.as_mut_ptr() as *mut libc::iovec;
    m.msg_iovlen = n;
    let flags = (flags & !libc::MSG_OOB) as usize;
    let more = g.allow_signals(|| {
        sys::syscall6(libc::SYS_sendmsg, p.fd as usize, &m as *const libc::msghdr as usize, flags, 0, 0, 0)
    });
    done + more.unwrap_or(0)
}

/// `sendto`/`send`: with no address. An address on a connected socket is the kernel's EISCONN.
pub fn sendto(r: &Region, g: &thread::Guard, a: &[u64; 6]) -> Option<i64> {
    let p = fd::lookup(r, a[0] as i32).filter(|p| p.socket)?;
    let word = if a[4] != 0 { pipe::sock_flags(r, p.pipe) } else { 0 };
    if word & pipe::SOCK_RECV_QUEUE != 0 {
        let iov = match crate::base::iov::single(a[1] as usize, a[2] as usize) {
            Ok(v) => v,
            Err(e) => return Some(-(e as i64)),
        };
        let dest = Some((a[4] as usize, a[5] as u32 as usize));
        if word & pipe::SOCK_UDP != 0 {
            return udp::send(r, &p, &[iov], a[3] as i32, dest).map(crate::base::iov::ret);
        }
        return dgram::send(r, g, &p, &[iov], a[3] as i32, dest).map(crate::base::iov::ret);
    }
    // A connected stream socket refuses an address (EISCONN); a seqpacket one ignores it; a
    // datagram pair end sends there, which the kernel does. TCP ignores it too, but the
    // kernel's sends must follow what the queue holds: the connection goes back first.
    if a[4] != 0 && !p.packet {
        if word & pipe::SOCK_TCP != 0 {
            hand_back(r, &p);
        }
        return None;
    }
    if a[4] != 0 && pipe::sock_dgram(r, p.pipe) {
        hand_back(r, &p);
        return None;
    }
    let iov = match crate::base::iov::single(a[1] as usize, a[2] as usize) {
        Ok(v) => v,
        Err(e) => return Some(-(e as i64)),
    };
    send(r, g, &p, &[iov], a[3] as i32).map(crate::base::iov::ret)
}

/// `recvfrom`/`recv`: the source address of a stream is the peer's bound name (none if unbound).
pub fn recvfrom(r: &Region, g: &thread::Guard, a: &[u64; 6]) -> Option<i64> {
    let p = fd::lookup(r, a[0] as i32).filter(|p| p.socket)?;
    let iov = match crate::base::iov::single(a[1] as usize, a[2] as usize) {
        Ok(v) => v,
        Err(e) => return Some(-(e as i64)),
    };
    let mut ctl = Ctl::none();
    let res = recv(r, g, &p, &[iov], a[3] as i32, &mut ctl)?.map(|(n, _)| n);
    if let (Ok(n), true) = (res, a[4] != 0 && a[5] != 0) {
        let mut ulen = 0i32;
        if crate::base::copy::slice_in(core::slice::from_mut(&mut ulen), a[5] as usize).is_err() {
            return Some(-(libc::EFAULT as i64));
        }
        if ulen < 0 {
            return Some(-(libc::EINVAL as i64));
        }
        if let Err(e) = source_out(r, &p, &ctl, n, a[4] as usize, ulen as usize, a[5] as usize) {
            return Some(-(e as i64));
        }
    }
    Some(crate::base::iov::ret(res))
}

/// The source address of a receive: a datagram's own, or the peer's name (TCP gives none).
fn source_out(
    r: &Region,
    p: &PipeFd,
    ctl: &Ctl,
    n: usize,
    uaddr: usize,
    cap: usize,
    ulen: usize,
) -> Result<(), Errno> {
    match ctl.src {
        Some((bytes, len)) => addr_out(&bytes[..len], uaddr, cap, ulen),
        None if pipe::sock_tcp(r, p.pipe) => addr_out(&[], uaddr, cap, ulen),
        None => peer_name_out(p.fd, n, uaddr, cap, ulen),
    }
}

/// `move_addr_to_user`: at most `cap` bytes of `addr` to `uaddr`, its full length to `ulen`.
fn addr_out(addr: &[u8], uaddr: usize, cap: usize, ulen: usize) -> Result<(), Errno> {
    crate::base::copy::slice_out(uaddr, &addr[..addr.len().min(cap)])?;
    crate::base::copy::slice_out(ulen, &[addr.len() as i32])
}

/// Writes the source address of `n` received bytes of a connection: its peer's name.
fn peer_name_out(fd: i32, n: usize, uaddr: usize, cap: usize, ulen: usize) -> Result<(), Errno> {
    let mut addr = [0u8; 2 + names::UNIX_PATH_MAX];
    let mut len = addr.len() as u32;
    let named = n > 0
        && sys::syscall6(
            libc::SYS_getpeername,
            fd as usize,
            addr.as_mut_ptr() as usize,
            &mut len as *mut u32 as usize,
            0,
            0,
            0,
        )
        .is_ok();
    // An unbound peer has no address: the length is 0.
    let len = if named && len > 2 { (len as usize).min(addr.len()) } else { 0 };
    addr_out(&addr[..len], uaddr, cap, ulen)
}

/// The user's `struct msghdr`.
fn msghdr_in(addr: usize) -> Result<libc::msghdr, Errno> {
    // SAFETY: an all-zero msghdr is a valid value (null pointers, zero lengths).
    let mut m: libc::msghdr = unsafe { core::mem::zeroed() };
    crate::base::copy::slice_in(core::slice::from_mut(&mut m), addr)?;
    Ok(m)
}

/// A msghdr's iovecs: more than UIO_MAXIOV is EMSGSIZE here (copy_msghdr_from_user), where
/// readv says EINVAL.
fn msg_iovec(m: &libc::msghdr) -> Result<scratch::Slice<Iov>, Errno> {
    if m.msg_iovlen > IOV_MAX {
        return Err(libc::EMSGSIZE);
    }
    crate::base::iov::import_iovec(m.msg_iov as usize, m.msg_iovlen as u64)
}

/// `sendmsg`, with ancillary data too; an address on a stream is the kernel's EISCONN.
pub fn sendmsg(r: &Region, g: &thread::Guard, fd: i32, umsg: usize, flags: i32) -> Option<i64> {
    let p = fd::lookup(r, fd).filter(|p| p.socket);
    let m = msghdr_in(umsg);
    // Over any socket, the kernel's too: shim objects passed are in flight from now.
    if let Ok(m) = &m
        && m.msg_controllen != 0
    {
        scm::mark_passed(r, m.msg_control as usize, m.msg_controllen);
    }
    let p = p?;
    let m = match m {
        Ok(m) => m,
        Err(e) => return Some(-(e as i64)),
    };
    // A control message or an address on TCP is the kernel's to judge, after what the queue
    // holds.
    if pipe::sock_tcp(r, p.pipe) && (m.msg_controllen != 0 || m.msg_namelen != 0) {
        hand_back(r, &p);
        return None;
    }
    let named_dgram = dgram::is_recv_queue(r, &p);
    // Ancillary data on UDP (IP_PKTINFO, UDP_SEGMENT, ...) is the kernel's.
    if udp::is_udp(r, &p) && m.msg_controllen != 0 {
        return None;
    }
    if named_dgram && m.msg_controllen != 0 {
        return Some(dgram::send_with_control(r, g, &p, umsg, &m, flags));
    }
    if m.msg_namelen != 0 && !p.packet {
        return None;
    }
    if m.msg_namelen != 0 && pipe::sock_dgram(r, p.pipe) && !named_dgram {
        hand_back(r, &p);
        return None;
    }
    let iov = match msg_iovec(&m) {
        Ok(iov) => iov,
        Err(e) => return Some(-(e as i64)),
    };
    if m.msg_controllen != 0 && !scm::carries_nothing(m.msg_control as usize, m.msg_controllen) {
        return send_scm(r, g, &p, m.msg_control as usize, m.msg_controllen, &iov, flags);
    }
    if named_dgram && m.msg_namelen != 0 {
        let dest = Some((m.msg_name as usize, m.msg_namelen as usize));
        if udp::is_udp(r, &p) {
            return udp::send(r, &p, &iov, flags, dest).map(crate::base::iov::ret);
        }
        return dgram::send(r, g, &p, &iov, flags, dest).map(crate::base::iov::ret);
    }
    send(r, g, &p, &iov, flags).map(crate::base::iov::ret)
}

/// A message with ancillary data: its token first (see `crate::family::scm`), then the data, under
/// the queue's scm lock so that tokens and messages keep one order.
fn send_scm(
    r: &Region,
    g: &thread::Guard,
    p: &PipeFd,
    ctl: usize,
    ctl_len: usize,
    iov: &[Iov],
    flags: i32,
) -> Option<i64> {
    if pipe::handed_back(r, p.pipe) {
        drain(r, p);
        return None;
    }
    // A stream sends nothing, fds included, for no data: the kernel's answer moves no data.
    let total: usize = iov.iter().map(|v| v.1).sum();
    if total == 0 && !p.packet {
        return None;
    }
    let _order = pipe::sock_scm_lock(r, p.pipe).ok()?;
    // A non-blocking send that would find the queue full fails before its token, whose fds
    // would otherwise stay in flight.
    let nonblocking = flags & libc::MSG_DONTWAIT != 0
        || pipe::sock_flags(r, p.pipe) & pipe::SOCK_SNDTIMEO_ZERO != 0
        || fd::getfl(p.fd).is_ok_and(|f| f & libc::O_NONBLOCK != 0);
    // What the kernel refuses in the control data it says first, full queue or not.
    if nonblocking && !pipe::sock_may_send(r, p.pipe) {
        return Some(-(scm::refused(ctl, ctl_len).unwrap_or(libc::EAGAIN) as i64));
    }
    // The queue's pages for the message get their memory before its fds leave: without
    // room, the connection and this message go to the kernel.
    let pages = total.div_ceil(pipe::PIPE_BUF - pipe::CB_LEN).max(1);
    if !pipe::sock_reserve(r, p.pipe, pages as u32) {
        hand_back(r, p);
        return None;
    }
    let cb = scm::own_creds(scm::new_id());
    let sent = g.allow_signals(|| scm::send_token(p.fd, cb.fp, ctl, ctl_len, flags));
    if let Err(e) = sent {
        if e == libc::EPIPE && !p.packet && flags & libc::MSG_NOSIGNAL == 0 {
            pipes::raise_sigpipe();
        }
        return Some(-(e as i64));
    }
    send_cb(r, g, p, iov, flags, Some(&cb)).map(crate::base::iov::ret)
}

/// `recvmsg`: the data, the peer's name if asked for, the ancillary data.
pub fn recvmsg(r: &Region, g: &thread::Guard, fd: i32, umsg: usize, flags: i32) -> Option<i64> {
    let p = fd::lookup(r, fd).filter(|p| p.socket)?;
    let m = match msghdr_in(umsg) {
        Ok(m) => m,
        Err(e) => return Some(-(e as i64)),
    };
    let iov = match msg_iovec(&m) {
        Ok(iov) => iov,
        Err(e) => return Some(-(e as i64)),
    };
    let mut ctl = Ctl { ptr: m.msg_control as usize, len: m.msg_controllen, ..Ctl::none() };
    let (got, truncated) = match recv(r, g, &p, &iov, flags, &mut ctl)? {
        Ok(g) => g,
        Err(e) => return Some(-(e as i64)),
    };
    let field = |off: usize| umsg + off;
    let mut out = Ok(());
    if !m.msg_name.is_null() {
        let cap = (m.msg_namelen as i32).max(0) as usize;
        out = source_out(r, &p, &ctl, got, m.msg_name as usize, cap, field(8));
    } else {
        out = out.and(crate::base::copy::slice_out(field(8), &[0u32]));
    }
    // msg_controllen and msg_flags.
    let mflags = if truncated { libc::MSG_TRUNC } else { 0 } | ctl.flags;
    out = out
        .and(crate::base::copy::slice_out(field(40), &[ctl.used]))
        .and(crate::base::copy::slice_out(field(48), &[mflags]));
    Some(match out {
        Ok(()) => got as i64,
        Err(e) => -(e as i64),
    })
}

/// `struct mmsghdr`: a msghdr and the length the call stores.
const MMSGHDR: usize = 64;
const UIO_MAXIOV: u64 = 1024;

/// `sendmmsg`: `sendmsg` for each entry, storing each one's count; a failure after the
/// first ends the batch with the number sent (`__sys_sendmmsg`).
pub fn sendmmsg(r: &Region, g: &thread::Guard, a: &[u64; 6]) -> Option<i64> {
    let fd = a[0] as i32;
    let (vec, vlen, flags) = (a[1] as usize, a[2].min(UIO_MAXIOV) as usize, a[3] as i32);
    if fd::lookup(r, fd).filter(|p| p.socket).is_none() {
        // The kernel's socket: only the objects its messages pass are ours to mark.
        for i in 0..vlen {
            if let Ok(m) = msghdr_in(vec + i * MMSGHDR) {
                scm::mark_passed(r, m.msg_control as usize, m.msg_controllen);
            }
        }
        return None;
    }
    let mut done = 0;
    while done < vlen {
        let entry = vec + done * MMSGHDR;
        // What the kernel must serve (a connection given back to it) ends a batch we began.
        let Some(res) = sendmsg(r, g, fd, entry, flags) else {
            return (done > 0).then_some(done as i64);
        };
        if res < 0 {
            return Some(if done > 0 { done as i64 } else { res });
        }
        if let Err(e) = crate::base::copy::slice_out(entry + 56, &[res as u32]) {
            return Some(if done > 0 { done as i64 } else { -(e as i64) });
        }
        done += 1;
    }
    Some(done as i64)
}

/// `recvmmsg`: `recvmsg` for each entry; MSG_WAITFORONE makes the later ones non-blocking,
/// and a timeout is looked at after each entry (as the kernel does: the first still blocks).
pub fn recvmmsg(r: &Region, g: &thread::Guard, a: &[u64; 6]) -> Option<i64> {
    let fd = a[0] as i32;
    fd::lookup(r, fd).filter(|p| p.socket)?;
    let (vec, vlen, mut flags, utmo) =
        (a[1] as usize, a[2].min(UIO_MAXIOV) as usize, a[3] as i32, a[4] as usize);
    let mut deadline = None;
    if utmo != 0 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        if crate::base::copy::slice_in(core::slice::from_mut(&mut ts), utmo).is_err() {
            return Some(-(libc::EFAULT as i64));
        }
        if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
            return Some(-(libc::EINVAL as i64));
        }
        deadline = Some(shared_state::wait::deadline_after(&ts));
    }
    let left_ns = |d: &libc::timespec| {
        let now = sys::clock_gettime(libc::CLOCK_MONOTONIC);
        (d.tv_sec - now.tv_sec) * 1_000_000_000 + (d.tv_nsec - now.tv_nsec)
    };
    let mut done = 0;
    let mut err = 0i64;
    while done < vlen {
        let entry = vec + done * MMSGHDR;
        let Some(res) = recvmsg(r, g, fd, entry, flags & !libc::MSG_WAITFORONE) else {
            if done == 0 {
                return None;
            }
            break;
        };
        if res < 0 {
            err = res;
            break;
        }
        if let Err(e) = crate::base::copy::slice_out(entry + 56, &[res as u32]) {
            err = -(e as i64);
            break;
        }
        done += 1;
        if flags & libc::MSG_WAITFORONE != 0 {
            flags |= libc::MSG_DONTWAIT;
        }
        if deadline.as_ref().is_some_and(|d| left_ns(d) <= 0) {
            break;
        }
    }
    if let Some(d) = deadline {
        let ns = left_ns(&d).max(0);
        let left = libc::timespec { tv_sec: ns / 1_000_000_000, tv_nsec: ns % 1_000_000_000 };
        if crate::base::copy::slice_out(utmo, &[left]).is_err() {
            return Some(-(libc::EFAULT as i64));
        }
    }
    Some(if done > 0 { done as i64 } else { err })
}

/// `shutdown`: the kernel records it on the placeholder (and its peer); sleepers on either
/// queue look again.
pub fn shutdown(r: &Region, fd: i32, how: u64) -> Option<i64> {
    let p = fd::lookup(r, fd).filter(|p| p.socket)?;
    if udp::is_udp(r, &p) {
        return Some(udp::shutdown(r, &p, how));
    }
    if dgram::is_recv_queue(r, &p) {
        return Some(dgram::shutdown(r, &p, how));
    }
    let tcp = pipe::sock_tcp(r, p.pipe);
    // A TCP connection's SHUT_WR stays served: the kernel sends the FIN, which its peer reads
    // (end of file) once it has read our queue; our sends from here are the kernel's (EPIPE).
    // Marked first, so that a peer that sees the FIN sees the mark too (and keeps sending to
    // us through the queue). Any other half-close is the kernel's from here.
    let shut_wr = tcp && how == libc::SHUT_WR as u64 && pipe::sock_state(r, p.pipe) == pipe::SOCK_LINKED;
    if shut_wr {
        pipe::sock_change_flags(r, p.pipe, pipe::SOCK_SHUT_WR, 0);
    }
    let res = sys::syscall6(libc::SYS_shutdown, fd as usize, how as usize, 0, 0, 0, 0);
    if res.is_err() && shut_wr {
        pipe::sock_change_flags(r, p.pipe, 0, pipe::SOCK_SHUT_WR);
    }
    if res.is_ok() && tcp && !shut_wr {
        hand_back(r, &p);
    }
    note_change(r, &p);
    crate::family::epoll::object_changed(r, &p);
    Some(crate::base::iov::ret(res))
}

/// Runs `drop_fd`, the kernel call that drops the socket fd `p` (a close, or a dup onto it),
/// and frees the queues nobody can read any more, as the kernel frees a socket's buffers when
/// it is released: a datagram socket's own receive queue (and its name) once it is released
/// (`unix_diag` knows no released socket), and both queues of a connection once both its
/// sockets are. An fd that was its socket's only holder (`fd::Sole`) releases it as it
/// closes: the queue is marked released, and when the peer's was too, the caller frees both
/// (returned: the peer's queue). Any other close of a connection is marked on its queue;
/// POLLHUP before it says the peer is gone (or both directions were shut down), and such
/// closes are counted, and a collection, which finds every socket still held in one read of
/// each process's fds, frees what they released ([`pipe::note_maybe_released`]).
pub fn dropping(
    r: &Region,
    p: &PipeFd,
    drop_fd: impl FnOnce() -> Result<usize, Errno>,
) -> (Result<usize, Errno>, Option<PipeHandle>) {
    if pipe::sock_tcp(r, p.pipe) {
        crate::family::tcp::before_close(r, p);
    }
    let own = pipe::object_ino(r, p.pipe);
    let flags = pipe::sock_flags(r, p.pipe);
    let state = flags & 0xff;
    let mut both_gone = None;
    let res = if udp::is_udp(r, p) {
        // unix_diag knows no UDP socket: only a close by its only holder releases it here
        // (else the collector finds it gone).
        let res = drop_fd();
        if res.is_ok() {
            udp::closing(r, p);
            if p.sole.holds() {
                pipe::release(r, p.pipe);
            }
        }
        res
    } else if dgram::is_recv_queue(r, p) {
        let res = drop_fd();
        if own.is_some_and(diag::released) {
            names::unregister_dgram(r, p.pipe);
            pipe::release(r, p.pipe);
        }
        res
    } else if state == pipe::SOCK_REFUSED {
        // The kernel carries the connection: our queue holds nothing anyone reads.
        let res = drop_fd();
        if own.is_some_and(diag::released) {
            pipe::release(r, p.pipe);
        }
        res
    } else if state == pipe::SOCK_LINKED
        && let Some(peer) = pipe::sock_peer(r, p.pipe)
    {
        if p.sole.holds() {
            let res = drop_fd();
            if res.is_ok() {
                let released = fd::released_by_close(p.fd, p.sole);
                let release = if released {
                    pipe::sock_released(r, p.pipe)
                } else {
                    // Another holder after all (a process started meanwhile): a collection
                    // finds out.
                    pipe::sock_closing(r, p.pipe);
                    pipe::PeerRelease::Closed
                };
                // Released while the peer lives: what it sent us and we left unread goes.
                if released && release != pipe::PeerRelease::Released && !pipe::sock_tcp(r, p.pipe) {
                    pipe::sock_reader_released(r, peer);
                }
                match release {
                    pipe::PeerRelease::Released => both_gone = Some(peer),
                    pipe::PeerRelease::Closed => pipe::note_maybe_released(r),
                    pipe::PeerRelease::Held => {}
                }
            }
            res
        } else {
            pipe::sock_closing(r, p.pipe);
            let hup = flags & pipe::SOCK_DGRAM != 0 || crate::base::fd::revents(p.fd, 0) & libc::POLLHUP != 0;
            let res = drop_fd();
            if hup || pipe::peer_release(r, p.pipe) == pipe::PeerRelease::Released {
                pipe::note_maybe_released(r);
            }
            res
        }
    } else {
        // A connect not accepted yet: the pending table keeps its queue for the server.
        drop_fd()
    };
    note_change(r, p);
    (res, both_gone)
}

/// Something about the connection changed (close, shutdown, flags): both queues' sleepers
/// and cached views look again.
pub fn note_change(r: &Region, p: &PipeFd) {
    pipe::note_close(r, p.pipe);
    if let Some(peer) = pipe::sock_peer(r, p.pipe) {
        pipe::note_close(r, peer);
    }
}

/// `getsockopt(SO_ERROR)`: the kernel's pending error, or the ECONNRESET of a peer released
/// with data unread (read and cleared, as `sock_error`).
pub fn getsockopt(r: &Region, a: &[u64; 6]) -> Option<i64> {
    let p = fd::lookup(r, a[0] as i32).filter(|p| p.socket)?;
    if a[1] as i32 != SOL_SOCKET || a[2] as i32 != libc::SO_ERROR {
        return None;
    }
    let res = sys::syscall6(
        libc::SYS_getsockopt,
        a[0] as usize,
        a[1] as usize,
        a[2] as usize,
        a[3] as usize,
        a[4] as usize,
        0,
    );
    if res.is_ok() {
        let mut v = 0i32;
        let kernel_err =
            crate::base::copy::slice_in(core::slice::from_mut(&mut v), a[3] as usize).is_ok() && v != 0;
        if !kernel_err && reset_pending(r, &p) && pipe::sock_take_reset(r, p.pipe) {
            return Some(crate::base::iov::ret(
                crate::base::copy::slice_out(a[3] as usize, &[libc::ECONNRESET]).map(|_| 0),
            ));
        }
    }
    Some(crate::base::iov::ret(res))
}

/// SO_RCVTIMEO/SO_SNDTIMEO, as `_OLD` (a timeval) and `_NEW` (`__kernel_sock_timeval`): on
/// x86-64 both are 16 bytes with a signed 64-bit `tv_sec` first.
const SO_RCVTIMEO_OLD: i32 = 20;
const SO_SNDTIMEO_OLD: i32 = 21;
const SO_RCVTIMEO_NEW: i32 = 66;
const SO_SNDTIMEO_NEW: i32 = 67;

/// The zero-timeout flag a timeout option sets when its seconds are negative.
fn timeout_flag(level: i32, opt: i32) -> Option<u32> {
    match (level, opt) {
        (SOL_SOCKET, SO_RCVTIMEO_OLD | SO_RCVTIMEO_NEW) => Some(pipe::SOCK_RCVTIMEO_ZERO),
        (SOL_SOCKET, SO_SNDTIMEO_OLD | SO_SNDTIMEO_NEW) => Some(pipe::SOCK_SNDTIMEO_ZERO),
        _ => None,
    }
}

/// Whether a timeout the kernel accepted has negative seconds: `sock_set_timeout` then makes
/// it 0, which reads back as `{0, 0}`, the same as no timeout.
fn negative_timeout(uval: usize) -> bool {
    let mut sec = 0i64;
    crate::base::copy::slice_in(core::slice::from_mut(&mut sec), uval).is_ok() && sec < 0
}

/// Zero timeouts set on sockets that had no queue yet (a client before its connect), by fd:
/// the socket's inode above the two flags (bit 0 receive, bit 1 send), so an entry left by
/// an fd since closed never matches another socket.
static EARLY_TIMEOUTS: [AtomicU64; 1024] = [const { AtomicU64::new(0) }; 1024];

fn early_flag_bit(flag: u32) -> u64 {
    if flag == pipe::SOCK_RCVTIMEO_ZERO { 1 } else { 2 }
}

fn note_early_timeout(fd: i32, flag: u32, zero: bool) {
    let (Some(e), Ok(st)) = (usize::try_from(fd).ok().and_then(|i| EARLY_TIMEOUTS.get(i)), sys::fstat(fd))
    else {
        return;
    };
    let old = e.load(Ordering::Relaxed);
    let bits = if old >> 2 == st.st_ino { old & 3 } else { 0 };
    let bit = early_flag_bit(flag);
    e.store(st.st_ino << 2 | if zero { bits | bit } else { bits & !bit }, Ordering::Relaxed);
}

/// Send buffers set on sockets that had no queue yet, by fd: the socket's inode (32 bits, as
/// sockfs numbers them) above the kernel's value.
static EARLY_SNDBUF: [AtomicU64; 1024] = [const { AtomicU64::new(0) }; 1024];

fn note_early_sndbuf(fd: i32) {
    let (Some(e), Ok(st), Ok(b)) = (
        usize::try_from(fd).ok().and_then(|i| EARLY_SNDBUF.get(i)),
        sys::fstat(fd),
        getsockopt_int(fd, libc::SO_SNDBUF),
    ) else {
        return;
    };
    e.store((st.st_ino as u32 as u64) << 32 | b as u32 as u64, Ordering::Relaxed);
}

/// The zero-timeout flags and send buffer the socket with inode `ino` had before it got its
/// queue `h` carry over.
fn early_timeouts(r: &Region, fd: i32, ino: u64, h: PipeHandle) {
    if let Some(e) = usize::try_from(fd).ok().and_then(|i| EARLY_SNDBUF.get(i)) {
        let v = e.load(Ordering::Relaxed);
        if v >> 32 == ino as u32 as u64 && v as u32 != 0 {
            pipe::sock_set_sndbuf(r, h, v as u32);
        }
    }
    let Some(e) = usize::try_from(fd).ok().and_then(|i| EARLY_TIMEOUTS.get(i)) else { return };
    let v = e.load(Ordering::Relaxed);
    if v >> 2 != ino {
        return;
    }
    for flag in [pipe::SOCK_RCVTIMEO_ZERO, pipe::SOCK_SNDTIMEO_ZERO] {
        if v & early_flag_bit(flag) != 0 {
            pipe::sock_change_flags(r, h, flag, 0);
        }
    }
}

/// `setsockopt`: the kernel's; SO_PASSCRED marks our receive queue, the send buffer and a
/// negative timeout are marked on the queue (or noted for the queue a connect makes).
pub fn setsockopt(r: &Region, a: &[u64; 6]) -> Option<i64> {
    let kernel = || {
        sys::syscall6(
            libc::SYS_setsockopt,
            a[0] as usize,
            a[1] as usize,
            a[2] as usize,
            a[3] as usize,
            a[4] as usize,
            0,
        )
    };
    let timeout = timeout_flag(a[1] as i32, a[2] as i32);
    let passcred_opt = a[1] as i32 == SOL_SOCKET && a[2] as i32 == libc::SO_PASSCRED;
    crate::family::tcp::option_setting(a[0] as i32, a[1] as i32, a[2] as i32);
    if passcred_opt && (fd::fresh(a[0] as i32).is_some() || fd::is_listener(a[0] as i32)) {
        // A fresh socket's or a listener's SO_PASSCRED is no longer known to be off (see
        // `listen`, `connect`, `adopt`).
        fd::share(a[0] as i32);
    }
    let sndbuf = a[1] as i32 == SOL_SOCKET && matches!(a[2] as i32, libc::SO_SNDBUF | libc::SO_SNDBUFFORCE);
    let Some(p) = fd::lookup(r, a[0] as i32).filter(|p| p.socket) else {
        if sndbuf {
            let res = kernel();
            if res.is_ok() {
                note_early_sndbuf(a[0] as i32);
            }
            return Some(crate::base::iov::ret(res));
        }
        let flag = timeout?;
        let res = kernel();
        if res.is_ok() {
            note_early_timeout(a[0] as i32, flag, negative_timeout(a[3] as usize));
        }
        return Some(crate::base::iov::ret(res));
    };
    if pipe::sock_tcp(r, p.pipe) && crate::family::tcp::changes_data_path(a[1] as i32, a[2] as i32) {
        hand_back(r, &p);
    }
    let res = kernel();
    if let (Ok(_), Some(flag)) = (res, timeout) {
        let zero = negative_timeout(a[3] as usize);
        let (set, clear) = if zero { (flag, 0) } else { (0, flag) };
        pipe::sock_change_flags(r, p.pipe, set, clear);
    }
    if res.is_ok() && udp::is_udp(r, &p) {
        udp::option_set(r, &p, a[1] as i32, a[2] as i32);
    } else if dgram::is_recv_queue(r, &p) {
        // Its own queue: senders add their credentials.
        if res.is_ok() && passcred_opt {
            pipe::sock_set_passcred(r, p.pipe, passcred(p.fd), scm::pid_ns());
        }
    } else if res.is_ok() && passcred_opt {
        // Our receive queue's senders add their credentials from now on; a connection not
        // linked yet has none to mark.
        match pipe::sock_peer(r, p.pipe) {
            Some(rx) => {
                let on = passcred(p.fd);
                pipe::sock_set_passcred(r, rx, on, scm::pid_ns());
                pipe::sock_set_sender_passcred(r, p.pipe, on);
            }
            None => hand_back(r, &p),
        }
    }
    if res.is_ok() && sndbuf {
        // The limit of our queue, or of what our datagrams charge, from now on (the kernel
        // doubled and clamped the value).
        if let Ok(b) = getsockopt_int(p.fd, libc::SO_SNDBUF) {
            pipe::sock_set_sndbuf(r, p.pipe, b as u32);
        }
    }
    Some(crate::base::iov::ret(res))
}

/// FIONREAD/SIOCINQ (bytes queued to read) and SIOCOUTQ (the charge of skbs sent, unread), with what the
/// kernel's own queue holds after a hand-back.
pub fn ioctl(r: &Region, p: &PipeFd, req: u64, arg: usize) -> Option<i64> {
    if matches!(req, FIOSETOWN | SIOCSPGRP) {
        let res = sys::syscall6(libc::SYS_ioctl, p.fd as usize, req as usize, arg, 0, 0, 0);
        if res.is_ok() {
            owner_changed(r, p);
        }
        return Some(crate::base::iov::ret(res));
    }
    if req == SIOCATMARK && !p.packet {
        let rx = pipe::sock_peer(r, p.pipe).filter(|&rx| !pipe::handed_back(r, rx))?;
        return Some(crate::base::iov::ret(
            pipe::sock_at_mark(r, rx).and_then(|m| crate::base::copy::slice_out(arg, &[m as i32]).map(|_| 0)),
        ));
    }
    let own = dgram::is_recv_queue(r, p);
    let h = match req {
        libc::FIONREAD if own => Some(p.pipe),
        // A TCP socket's is what its peer's kernel did not acknowledge, which the queue is not.
        SIOCOUTQ if pipe::sock_tcp(r, p.pipe) => return None,
        libc::FIONREAD => pipe::sock_peer(r, p.pipe),
        SIOCOUTQ => Some(p.pipe),
        _ => return None,
    };
    let mut kernel = 0i32;
    let res = sys::syscall6(
        libc::SYS_ioctl,
        p.fd as usize,
        req as usize,
        &mut kernel as *mut i32 as usize,
        0,
        0,
        0,
    );
    if let Err(e) = res {
        return Some(-(e as i64));
    }
    // A datagram socket's FIONREAD is the size of the next datagram to be received: the head
    // record of our queue's, unless that is empty or marks the kernel's datagram as next.
    if req == libc::FIONREAD && pipe::sock_dgram(r, p.pipe) {
        let next = h.and_then(|h| pipe::record_next_len(r, h, kernel == 0));
        let n = next.map_or(kernel, |len| len.min(i32::MAX as usize) as i32);
        return Some(crate::base::iov::ret(crate::base::copy::slice_out(arg, &[n]).map(|_| 0)));
    }
    let ours = match h {
        // Out-of-band bytes a read dropped stay in the kernel's count.
        Some(h) if req == libc::FIONREAD && !p.packet => {
            pipe::fionread(r, h).unwrap_or(0) + pipe::sock_oob_dropped(r, h) as usize
        }
        // The truesize of our skbs not yet read (`sk_wmem_alloc_get`).
        Some(h) if req == SIOCOUTQ => pipe::sock_outq(r, h).unwrap_or(0),
        Some(h) => pipe::fionread(r, h).unwrap_or(0),
        None => 0,
    };
    // Until a hand-back the kernel's socket holds only the tokens of messages with fds, which
    // our skbs' charge already counts; a datagram socket's holds what the kernel carried.
    if req == SIOCOUTQ && !own && !pipe::handed_back(r, p.pipe) {
        kernel = 0;
    }
    let n = (ours as i64 + kernel as i64).min(i32::MAX as i64) as i32;
    Some(crate::base::iov::ret(crate::base::copy::slice_out(arg, &[n]).map(|_| 0)))
}

/// Whether the record socket `fd` can no longer send: SEND_SHUTDOWN (a seqpacket socket gets
/// it when its peer shuts down reading or goes); a datagram socket's peer shut down for
/// reading, or gone.
pub fn send_shut_down(fd: i32) -> bool {
    let Ok(st) = sys::fstat(fd) else { return false };
    if diag::shutdown_of(st.st_ino).is_some_and(|m| m & 2 != 0) {
        return true;
    }
    getsockopt_int(fd, libc::SO_TYPE) == Ok(libc::SOCK_DGRAM)
        && match diag::peer_of(st.st_ino) {
            Ok(Some(peer)) => diag::shutdown_of(peer as u64).is_some_and(|m| m & 1 != 0),
            Ok(None) => true,
            Err(()) => false,
        }
}

/// A datagram socket's peer is gone (the kernel then refuses its sends and disconnects it).
fn dgram_peer_gone(fd: i32) -> bool {
    sys::fstat(fd).is_ok_and(|st| diag::peer_of(st.st_ino) == Ok(None))
}

/// The kernel's socket diagnostics (NETLINK_SOCK_DIAG, `unix_diag`): which socket is a
/// socket's peer, and which connections wait in a listener's accept queue.
pub(crate) mod diag {
    use shared_state::sys;

    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const UDIAG_SHOW_PEER: u32 = 0x4;
    const UDIAG_SHOW_ICONS: u32 = 0x8;
    const UNIX_DIAG_PEER: u16 = 2;
    const UNIX_DIAG_ICONS: u16 = 3;
    const UNIX_DIAG_SHUTDOWN: u16 = 6;
    const NETLINK_SOCK_DIAG: usize = 4;

    /// nlmsghdr + unix_diag_req.
    #[repr(C)]
    struct Request {
        len: u32,
        ty: u16,
        flags: u16,
        seq: u32,
        pid: u32,
        family: u8,
        protocol: u8,
        pad: u16,
        states: u32,
        ino: u32,
        show: u32,
        cookie: [u32; 2],
    }

    /// Sends request `req` to the kernel's socket diagnostics and takes its answer into the
    /// `cap` bytes at `out`; the answer's length.
    pub(crate) fn exchange(req: &[u8], out: usize, cap: usize) -> Result<usize, i32> {
        exchange_with(NETLINK_SOCK_DIAG, req, out, cap)
    }

    /// [`exchange`] with netlink family `proto` (NETLINK_ROUTE, say).
    pub(crate) fn exchange_with(proto: usize, req: &[u8], out: usize, cap: usize) -> Result<usize, i32> {
        let flags = (libc::SOCK_DGRAM | libc::SOCK_CLOEXEC) as usize;
        let s = sys::syscall6(libc::SYS_socket, libc::AF_NETLINK as usize, flags, proto, 0, 0, 0)?;
        let s = s as i32;
        let sent = sys::syscall6(libc::SYS_sendto, s as usize, req.as_ptr() as usize, req.len(), 0, 0, 0);
        // The kernel answers inside sendto: the reply is queued already, and a receive that
        // finds none must not block the caller forever.
        let dontwait = libc::MSG_DONTWAIT as usize;
        let got = sent.and_then(|_| sys::syscall6(libc::SYS_recvfrom, s as usize, out, cap, dontwait, 0, 0));
        sys::close(s);
        got.map(|n| n.min(cap))
    }

    /// Asks about socket `ino`; calls `attr(type, payload)` for each attribute of the answer.
    fn query(ino: u64, show: u32, attr: &mut dyn FnMut(u16, &[u8])) -> bool {
        ask(ino, show, attr) == Ok(true)
    }

    /// [`query`]: Ok(true) answered, Ok(false) no such socket, Err the kernel could not be asked.
    fn ask(ino: u64, show: u32, attr: &mut dyn FnMut(u16, &[u8])) -> Result<bool, ()> {
        let Ok(ino) = u32::try_from(ino) else { return Err(()) };
        let req = Request {
            len: size_of::<Request>() as u32,
            ty: SOCK_DIAG_BY_FAMILY,
            flags: libc::NLM_F_REQUEST as u16,
            seq: 1,
            pid: 0,
            family: libc::AF_UNIX as u8,
            protocol: 0,
            pad: 0,
            states: u32::MAX,
            ino,
            show,
            cookie: [u32::MAX; 2],
        };
        let Ok(mut buf) = crate::base::scratch::take(512, 0u64) else { return Err(()) };
        // SAFETY: Request is plain data (repr(C), no padding), `req.len` bytes long.
        let req =
            unsafe { core::slice::from_raw_parts(&req as *const Request as *const u8, req.len as usize) };
        let got = exchange(req, buf.as_mut_ptr() as usize, size_of_val(&*buf));
        let Ok(n) = got else { return Err(()) };
        // SAFETY: `buf` is ours and `n` bytes of it were written.
        let bytes =
            unsafe { core::slice::from_raw_parts(buf.as_ptr() as *const u8, n.min(size_of_val(&*buf))) };
        // nlmsghdr (16) with type SOCK_DIAG_BY_FAMILY, unix_diag_msg (16), then rtattrs.
        let u16_at = |o: usize| bytes.get(o..o + 2).map(|b| u16::from_ne_bytes([b[0], b[1]]));
        let i32_at = |o: usize| bytes.get(o..o + 4).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        // An error message (after its header, the errno, negative) for a socket that is gone.
        if u16_at(4) == Some(libc::NLMSG_ERROR as u16) && i32_at(16) == Some(-libc::ENOENT) {
            return Ok(false);
        }
        if u16_at(4) != Some(SOCK_DIAG_BY_FAMILY) {
            return Err(());
        }
        let msg_len = bytes.get(0..4).map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize);
        let end = msg_len.min(bytes.len());
        let mut off = 32;
        while off + 4 <= end {
            let (Some(len), Some(ty)) = (u16_at(off), u16_at(off + 2)) else { break };
            let len = len as usize;
            if len < 4 || off + len > end {
                break;
            }
            attr(ty, &bytes[off + 4..off + len]);
            off += len.div_ceil(4) * 4;
        }
        Ok(true)
    }

    fn u32s(payload: &[u8]) -> impl Iterator<Item = u32> + '_ {
        payload.chunks_exact(4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The inode of the socket connected to socket `ino`: Ok(None) when it has none (its
    /// peer is gone), Err when the kernel could not be asked (tried three times).
    pub fn peer_of(ino: u64) -> Result<Option<u32>, ()> {
        for _ in 0..3 {
            let mut peer = None;
            if query(ino, UDIAG_SHOW_PEER, &mut |ty, p| {
                if ty == UNIX_DIAG_PEER {
                    peer = u32s(p).next();
                }
            }) {
                return Ok(peer.filter(|&p| p != 0));
            }
        }
        Err(())
    }

    /// Whether socket `ino` still exists (an fd or a message in flight holds it); false also
    /// when the kernel could not be asked.
    pub fn exists(ino: u64) -> bool {
        query(ino, 0, &mut |_, _| {})
    }

    /// Whether socket `ino` is gone (released: nothing holds it); false when the kernel could
    /// not be asked.
    pub fn released(ino: u64) -> bool {
        ask(ino, 0, &mut |_, _| {}) == Ok(false)
    }

    /// Socket `ino`'s `sk_shutdown` (RCV_SHUTDOWN 1, SEND_SHUTDOWN 2).
    pub fn shutdown_of(ino: u64) -> Option<u8> {
        let mut mask = None;
        query(ino, 0, &mut |ty, p| {
            if ty == UNIX_DIAG_SHUTDOWN {
                mask = p.first().copied();
            }
        });
        mask
    }

    /// Whether the connection of client socket `client` waits in listener `listener`'s queue.
    pub fn accept_queue_holds(listener: u64, client: u64) -> bool {
        let mut found = false;
        query(listener, UDIAG_SHOW_ICONS, &mut |ty, p| {
            if ty == UNIX_DIAG_ICONS {
                found |= u32s(p).any(|i| i as u64 == client);
            }
        });
        found
    }
}
