//! Loopback TCP (AF_INET 127.0.0.0/8, AF_INET6 ::1) between shim processes, with the AF_UNIX
//! streams' split (`crate::family::unix`): every socket is the kernel's TCP socket, which keeps
//! names, ports, the handshake, connection state, FIN and RST; once both ends are the shim's,
//! the connection's bytes move through two region queues named by the sockets' inodes.
//!
//! Pairing (`shared_state::tcp`): `listen` enters the listener's name; a client that connects
//! to an entered name publishes its queue under the connection's 4-tuple once the kernel
//! connected it, and `accept` adopts the queue published under the accepted socket's names.
//!
//! The kernel's socket answers everything the queues do not hold: end of file and a reset
//! (a receive that finds the queue empty and the peer gone asks it), EPIPE and SIGPIPE (a send
//! that finds the peer gone, or going, gives the connection back and sends through it). What
//! the shim does not serve (out-of-band data, a shutdown, options that change what a receive
//! or a send does) gives the connection back to the kernel, its queued bytes first
//! (`unix::hand_back`).

use crate::base::fd::{self, PipeFd};
use crate::base::iov::Iov;
use crate::base::thread;
use crate::family::pipes;
use crate::family::unix;
use core::sync::atomic::{AtomicU32, Ordering};
use shared_state::Region;
use shared_state::pipe::{self, RecvMode};
use shared_state::sys::{self, Errno};
pub use shared_state::tcp::Endpoint;
use shared_state::tcp::{self as table, Claim, Listener, Tuple};

const IPPROTO_TCP: i32 = libc::IPPROTO_TCP;

pub(crate) fn sockopt_int(fd: i32, level: i32, opt: i32) -> Result<i32, Errno> {
    let mut v = 0i32;
    let mut len = size_of::<i32>() as u32;
    sys::syscall6(
        libc::SYS_getsockopt,
        fd as usize,
        level as usize,
        opt as usize,
        &mut v as *mut i32 as usize,
        &mut len as *mut u32 as usize,
        0,
    )?;
    Ok(v)
}

/// The socket's own name (`getsockname`) or its peer's, as an endpoint.
fn name_of(fd: i32, peer: bool) -> Option<Endpoint> {
    let mut sa = [0u8; 28];
    let mut len = sa.len() as u32;
    let nr = if peer { libc::SYS_getpeername } else { libc::SYS_getsockname };
    sys::syscall6(nr, fd as usize, sa.as_mut_ptr() as usize, &mut len as *mut u32 as usize, 0, 0, 0).ok()?;
    Endpoint::from_sockaddr(&sa[..(len as usize).min(sa.len())])
}

/// A TCP socket whose receives the queue can serve: SO_RCVLOWAT other than 1 makes a receive
/// wait for more than a byte, which the kernel does.
fn servable(fd: i32) -> bool {
    sockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL) == Ok(IPPROTO_TCP)
        && sockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVLOWAT) == Ok(1)
}

/// Whether TCP socket `fd` has never started a connection (or is closed again: refused,
/// reset, disconnected): only the connect that starts one may publish it. A connect called
/// again on a non-blocking one under way (EALREADY, then 0 once the handshake completed, as
/// APR's) must not: its server may have accepted it already and found nothing published
/// (the handshake took longer than we waited, or the table had no room), and what the client
/// sent into a queue published now would wait there unread.
fn unconnected(fd: i32) -> bool {
    const TCP_CLOSE: u8 = 7;
    // tcp_info's first byte is tcpi_state; the kernel copies as much as asked.
    let mut state = 0u8;
    let mut len = 1u32;
    let res = sys::syscall6(
        libc::SYS_getsockopt,
        fd as usize,
        IPPROTO_TCP as usize,
        libc::TCP_INFO as usize,
        &mut state as *mut u8 as usize,
        &mut len as *mut u32 as usize,
        0,
    );
    res.is_ok() && len == 1 && state == TCP_CLOSE
}

/// Whether `ep`'s address is this host's own: a loopback address, or one the kernel routes
/// as local (RTN_LOCAL, asked each time: addresses come and go), so that a connection to it
/// never leaves the host. Not the any address.
pub fn local(ep: &Endpoint) -> bool {
    const RTM_NEWROUTE: u16 = 24;
    const RTM_GETROUTE: u16 = 26;
    const RTA_DST: u16 = 1;
    const RTN_LOCAL: u8 = 2;
    if ep.is_loopback() {
        return true;
    }
    if ep.is_wildcard() {
        return false;
    }
    let (family, addr) =
        if ep.is_v4() { (libc::AF_INET, &ep.addr[12..]) } else { (libc::AF_INET6, &ep.addr[..]) };
    // nlmsghdr (16), rtmsg (12: family, dst_len… type, flags), then RTA_DST's rtattr.
    let len = 16 + 12 + 4 + addr.len();
    let mut req = [0u8; 48];
    req[..4].copy_from_slice(&(len as u32).to_ne_bytes());
    req[4..6].copy_from_slice(&RTM_GETROUTE.to_ne_bytes());
    req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[16] = family as u8;
    req[17] = (addr.len() * 8) as u8;
    req[28..30].copy_from_slice(&((4 + addr.len()) as u16).to_ne_bytes());
    req[30..32].copy_from_slice(&RTA_DST.to_ne_bytes());
    req[32..32 + addr.len()].copy_from_slice(addr);
    let mut buf = [0u8; 512];
    let got = unix::diag::exchange_with(0, &req[..len], buf.as_mut_ptr() as usize, buf.len());
    // The answer: nlmsghdr, then the route's rtmsg, whose type is its eighth byte.
    got.is_ok_and(|n| n >= 28 && u16::from_ne_bytes([buf[4], buf[5]]) == RTM_NEWROUTE && buf[23] == RTN_LOCAL)
}

/// Whether process `pid` still runs (another user's answers EPERM, and runs).
fn alive(pid: u32) -> bool {
    sys::kill(pid as i32, 0) != Err(libc::ESRCH)
}

/// Per fd: the inode of the listener this process entered in the table through it.
static LISTENERS: [AtomicU32; fd::CACHED] = [const { AtomicU32::new(0) }; fd::CACHED];
/// Whether LISTENERS may hold any (an exec looks only then).
static ANY_LISTENER: AtomicU32 = AtomicU32::new(0);

/// The fd table's listener entry (`fd::Listening`) of a TCP listener has this bit in the name
/// slot, which AF_UNIX listeners use for their names table, and its slot in the listener table
/// in the others: the entry makes its close reach [`closing`] (a kernel fd's close never
/// reaches the dispatcher), and its accepts find the listener without a look-up.
const LISTENER_BIT: u32 = 1 << 31;

/// Whether `l` is a TCP listener's entry.
pub fn is_listener(l: &fd::Listening) -> bool {
    l.name_slot & LISTENER_BIT != 0
}

/// `socket(AF_INET/AF_INET6, SOCK_STREAM, TCP)`: the kernel's; the fd is noted as a fresh TCP
/// socket held by it alone (`fd::FreshTcp`): its connect need not ask the kernel what it is,
/// and its close after a connect may need to know it is the socket's last.
pub fn socket(domain: u64, ty: u64, proto: u64) -> Option<i64> {
    if !matches!(domain as i32, libc::AF_INET | libc::AF_INET6) || ty as i32 & 0xf != libc::SOCK_STREAM {
        return None;
    }
    let sole = fd::Sole::before_create();
    let res = sys::syscall6(libc::SYS_socket, domain as usize, ty as usize, proto as usize, 0, 0, 0);
    // Protocol 0 is TCP's for a stream; MPTCP, SCTP and others are asked about at connect.
    if let Ok(fd) = res
        && matches!(proto as i32, 0 | IPPROTO_TCP)
    {
        fd::mark_fresh_tcp(fd as i32, sole);
    }
    Some(crate::base::iov::ret(res))
}

/// Before `setsockopt(level, opt)` of `fd`: an option that changes receives, set on a fresh
/// TCP socket or on a listener (whose accepted sockets inherit it), must be asked about at
/// the connect or accept.
pub fn option_setting(fd: i32, level: i32, opt: i32) {
    if changes_data_path(level, opt) {
        fd::fresh_tcp_option(fd);
        if fd::listener(fd).is_some_and(|l| is_listener(&l)) {
            fd::share(fd);
        }
    }
}

/// Before a send on `fd` with `flags`: MSG_FASTOPEN connects a fresh socket (its connect
/// then waits for that connection, which the shim did not publish).
pub fn sending(fd: i32, flags: i32) {
    if flags & libc::MSG_FASTOPEN != 0 && fd::fresh_tcp(fd).is_some() {
        fd::unfresh(fd);
    }
}

/// After a successful `listen` of `fd` (`fresh` as the table knew it before): a TCP listener
/// on a loopback or any address, not in a SO_REUSEPORT group (whose other members may be
/// programs without the shim), is entered.
pub fn listened(r: &Region, fd: i32, fresh: Option<fd::FreshTcp>) {
    let domain = unix::getsockopt_int(fd, libc::SO_DOMAIN);
    if !matches!(domain, Ok(libc::AF_INET | libc::AF_INET6))
        || sockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL) != Ok(IPPROTO_TCP)
        || sockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT) != Ok(0)
    {
        return;
    }
    let Some(ep) = name_of(fd, false).filter(|ep| ep.is_wildcard() || local(ep)) else { return };
    let v6only =
        domain == Ok(libc::AF_INET6) && sockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) == Ok(1);
    // A listener whose close we could not follow stays the kernel's (so does a vfork child's,
    // whose statics are its parent's).
    let Some(slot) =
        usize::try_from(fd).ok().and_then(|i| LISTENERS.get(i)).filter(|_| !thread::in_vfork_child())
    else {
        return;
    };
    let Ok(st) = sys::fstat(fd) else { return };
    let ino = st.st_ino as u32;
    if let Some(entry) = table::register(r, &ep, v6only, fd::own_pid(), ino) {
        slot.store(ino, Ordering::Relaxed);
        if ANY_LISTENER.load(Ordering::Relaxed) == 0 {
            ANY_LISTENER.store(1, Ordering::Relaxed);
        }
        // Held by this fd alone, its SO_RCVLOWAT is the default until `option_setting` sees
        // it set: its accepted sockets need not be asked.
        let sole = fresh.filter(|f| !f.ask_lowat).map_or(fd::Sole::NO, |f| f.sole);
        fd::mark_listener(fd, fd::Listening { ino, name_slot: LISTENER_BIT | entry, sole });
    }
}

/// `fd` is being closed: a listener this process entered through it leaves the table (its
/// connections are the kernel's from now on, even if another process still holds it). A
/// process that inherited it (a fork child) lets go of its copy only.
pub fn closing(r: &Region, fd: i32) {
    // A vfork child shares our statics, and entered no listener.
    if thread::in_vfork_child() {
        return;
    }
    let Some(slot) = usize::try_from(fd).ok().and_then(|i| LISTENERS.get(i)) else { return };
    if slot.load(Ordering::Relaxed) == 0 {
        return;
    }
    let ino = slot.swap(0, Ordering::Relaxed);
    let pid = sys::getpid() as u32;
    table::unregister(r, |p, i| i == ino && p == pid);
}

/// Before an exec: the listeners this process entered leave the table (the new image may
/// not load the shim, and does not know them).
pub fn forget_own_listeners(r: &Region) {
    if ANY_LISTENER.load(Ordering::Relaxed) == 0 || thread::in_vfork_child() {
        return;
    }
    let pid = sys::getpid() as u32;
    table::unregister(r, |p, _| p == pid);
    for slot in &LISTENERS[..fd::highest().min(fd::CACHED)] {
        if slot.load(Ordering::Relaxed) != 0 {
            slot.store(0, Ordering::Relaxed);
        }
    }
}

/// `connect` of a TCP socket to a loopback address a shim process listens on: the kernel's
/// connect; once connected, the client's queue is made and published for the server. None:
/// not such a connect (the caller goes on).
pub fn connect(r: &Region, g: &thread::Guard, fd: i32, uaddr: usize, alen: u64) -> Option<i64> {
    // A fresh socket held by this fd alone is known; whatever this connect does, the socket is
    // not fresh any more (unless the kernel refuses it below).
    let fresh = fd::fresh_tcp(fd);
    if fresh.is_some() {
        fd::unfresh(fd);
    }
    let fresh = fresh.filter(|f| f.sole.holds());
    if !(2..=128).contains(&alen) {
        return None;
    }
    let mut sa = [0u8; 28];
    let n = (alen as usize).min(sa.len());
    crate::base::copy::slice_in(&mut sa[..n], uaddr).ok()?;
    let family = u16::from_ne_bytes([sa[0], sa[1]]) as i32;
    // A connect of a served connection is the kernel's answer (0 or EISCONN), but AF_UNSPEC
    // disconnects it: the kernel's from then on, so that a later connection's bytes cannot go
    // to the old peer's queue.
    if let Some(p) = fd::lookup(r, fd) {
        if family == libc::AF_UNSPEC && p.socket && pipe::sock_tcp(r, p.pipe) {
            unix::hand_back(r, &p);
        }
        return None;
    }
    if n < 16 {
        return None;
    }
    if family == libc::AF_INET6 && n < 24 {
        return None;
    }
    let dst = Endpoint::from_sockaddr(&sa[..n]).filter(|d| !d.is_wildcard())?;
    // Another of this host's addresses is asked about only when a shim process listens there.
    let l = table::lookup(r, &dst, alive_or_own).filter(|_| local(&dst))?;
    let ok = match fresh {
        Some(f) if !f.ask_lowat => true,
        Some(_) => sockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVLOWAT) == Ok(1),
        None => servable(fd) && unconnected(fd),
    };
    if !ok {
        return None;
    }
    let ino = sys::fstat(fd).ok()?.st_ino as u32;
    if !table::connecting(r, &l, ino, fd::own_pid()) {
        return None;
    }
    let res =
        g.allow_signals(|| sys::syscall6(libc::SYS_connect, fd as usize, uaddr, alen as usize, 0, 0, 0));
    let connected = match res {
        Ok(_) => true,
        Err(libc::EINPROGRESS) => handshake_done(fd, &dst),
        Err(_) => false,
    };
    end_connect(r, &l, fd, ino, &dst, fresh.map_or(fd::Sole::NO, |f| f.sole), connected);
    // Refused, reset, timed out: closed again, as fresh as before (not one interrupted or
    // still under way).
    if let (Some(f), Err(e)) = (fresh, res)
        && !matches!(e, libc::EINPROGRESS | libc::EALREADY | libc::EINTR)
    {
        fd::mark_fresh_tcp(fd, f.sole);
        if f.ask_lowat {
            fd::fresh_tcp_option(fd);
        }
    }
    Some(crate::base::iov::ret(res))
}

/// [`alive`], without asking about this process.
fn alive_or_own(pid: u32) -> bool {
    pid == fd::own_pid() || alive(pid)
}

/// How long a non-blocking connect waits for the loopback handshake before it asks the
/// kernel whether it still may complete (and between two questions).
const HANDSHAKE_ASK_NS: i64 = 5_000_000;

/// After a non-blocking connect's EINPROGRESS: whether the connection is established. On
/// loopback the handshake has mostly completed by then (the peer's answers are processed as
/// the connect releases its socket), but a softirq deferred to its thread on a loaded
/// machine may take long: waited for as long as the kernel says the listener took or may
/// still take the SYN. One the listener dropped (its accept queue full), refused or reset
/// is the kernel's; so is one still under way after 5 ms when the kernel cannot be asked.
fn handshake_done(fd: i32, dst: &Endpoint) -> bool {
    let mut ask_at = sys::monotonic_ns() + HANDSHAKE_ASK_NS;
    for k in 0.. {
        match crate::base::fd::revents(fd, libc::POLLOUT) {
            libc::POLLOUT => return true,
            0 => {}
            _ => return false,
        }
        if sys::monotonic_ns() >= ask_at {
            if !syn_may_complete(fd, dst) {
                return false;
            }
            ask_at = sys::monotonic_ns() + HANDSHAKE_ASK_NS;
        }
        pause(k);
    }
    false
}

/// For connecting socket `fd`: whether its SYN was not sent again (the first one was not
/// lost) and the kernel says the listener at `dst` either took it (a request or a child
/// socket under the connection's names) or has room in its accept queue to take it.
fn syn_may_complete(fd: i32, dst: &Endpoint) -> bool {
    // tcp_info: tcpi_state, tcpi_ca_state, tcpi_retransmits.
    let mut info = [0u8; 3];
    let mut len = info.len() as u32;
    let asked = sys::syscall6(
        libc::SYS_getsockopt,
        fd as usize,
        IPPROTO_TCP as usize,
        libc::TCP_INFO as usize,
        info.as_mut_ptr() as usize,
        &mut len as *mut u32 as usize,
        0,
    );
    if asked.is_err() || len < 3 || info[2] != 0 {
        return false;
    }
    let Some(local) = name_of(fd, false) else { return false };
    // The socket a packet from us to `dst` reaches: the listener's child or request for
    // this connection, or the listener itself.
    match diag_lookup(dst, &local) {
        Ok(Some(s)) => s.state != TCP_LISTEN || s.rqueue <= s.wqueue,
        _ => false,
    }
}

const TCP_LISTEN: u8 = 10;

/// What the kernel's socket diagnostics say of a TCP socket.
struct Diag {
    state: u8,
    /// A listener's accept queue length and backlog.
    rqueue: u32,
    wqueue: u32,
    ino: u32,
}

/// The TCP socket named `local` whose peer is `remote`, as the kernel's lookup for a packet
/// from `remote` to `local` finds it (a listener of `local` without one). Ok(None): no
/// such socket; Err: the kernel could not be asked.
fn diag_lookup(local: &Endpoint, remote: &Endpoint) -> Result<Option<Diag>, ()> {
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    // nlmsghdr (16), then inet_diag_req_v2: family, protocol, ext, pad, states, then the
    // sockid: sport, dport (big-endian), src[16], dst[16], ifindex, cookie (none: all ones).
    let mut req = [0u8; 72];
    req[..4].copy_from_slice(&72u32.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    let v4 = local.is_v4() && remote.is_v4();
    req[16] = if v4 { libc::AF_INET } else { libc::AF_INET6 } as u8;
    req[17] = IPPROTO_TCP as u8;
    req[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
    req[24..26].copy_from_slice(&local.port.to_be_bytes());
    req[26..28].copy_from_slice(&remote.port.to_be_bytes());
    for (at, ep) in [(28, local), (44, remote)] {
        if v4 {
            req[at..at + 4].copy_from_slice(&ep.addr[12..]);
        } else {
            req[at..at + 16].copy_from_slice(&ep.addr);
        }
    }
    req[64..72].copy_from_slice(&[0xff; 8]);
    let mut buf = [0u8; 256];
    let n = unix::diag::exchange(&req, buf.as_mut_ptr() as usize, buf.len()).map_err(|_| ())?;
    let u32_at = |o: usize| buf.get(o..o + 4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    let ty = buf.get(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    if n >= 20 && ty == Some(libc::NLMSG_ERROR as u16) && u32_at(16) == Some((-libc::ENOENT) as u32) {
        return Ok(None);
    }
    // The answer: nlmsghdr, then inet_diag_msg: family, state, timer, retrans, the sockid
    // (48), expires, rqueue, wqueue, uid, inode.
    if n < 16 + 72 || ty != Some(SOCK_DIAG_BY_FAMILY) {
        return Err(());
    }
    let (Some(rqueue), Some(wqueue), Some(ino)) = (u32_at(16 + 56), u32_at(16 + 60), u32_at(16 + 68)) else {
        return Err(());
    };
    Ok(Some(Diag { state: buf[17], rqueue, wqueue, ino }))
}

/// The inode of the client socket of accepted connection `t` (0: none any more), or None
/// when the kernel could not be asked.
fn peer_ino(t: &Tuple) -> Option<u32> {
    match diag_lookup(&t.client, &t.server) {
        Ok(Some(d)) if d.state != TCP_LISTEN => Some(d.ino),
        Ok(_) => Some(0),
        Err(()) => None,
    }
}

/// The `k`th pause of a short wait for another process: a yield at first, then 100 us naps
/// (a process that was preempted needs a CPU more than our spinning does).
fn pause(k: u32) {
    if k < 32 {
        let _ = sys::syscall6(libc::SYS_sched_yield, 0, 0, 0, 0, 0, 0);
    } else {
        let ts = libc::timespec { tv_sec: 0, tv_nsec: 100_000 };
        let _ = sys::syscall6(libc::SYS_nanosleep, &ts as *const libc::timespec as usize, 0, 0, 0, 0, 0);
    }
}

/// Ends the connect of socket `fd` (inode `ino`) to the server of `l` (`table::connected`):
/// with the client's queue published when `connected`.
fn end_connect(r: &Region, l: &Listener, fd: i32, ino: u32, dst: &Endpoint, sole: fd::Sole, connected: bool) {
    let local = name_of(fd, false).filter(|_| connected);
    let queue = local
        .and_then(|c| Some((c, unix::new_queue(r, ino as u64, pipe::SOCK_PENDING | pipe::SOCK_TCP).ok()?)));
    let Some((client, h)) = queue else {
        table::connected(r, l, ino, None);
        return;
    };
    if !table::connected(r, l, ino, Some((&Tuple { client, server: *dst }, h))) {
        pipe::sock_refuse(r, h);
        pipe::release(r, h);
        return;
    }
    unix::insert_connected(r, fd, h, sole);
}

/// How long a server that cannot ask the kernel for its peer's socket waits for a client
/// counted on its listener to publish the connection it accepted (the client is between the
/// kernel's connect and its publication, which a loaded machine may preempt).
const PUBLISH_WAIT_NS: i64 = 50_000_000;

/// What an accept from a TCP listener this process knows (`fd::Listening`) learnt: the
/// listener, and the peer's name if the accept gave it.
pub struct Via {
    pub listener: fd::Listening,
    pub peer: Option<Endpoint>,
}

/// The listener entry, the connection's names, and whether SO_RCVLOWAT is known to be the
/// default, for socket `fd` accepted from a listener this process entered or inherited: its
/// entry is read where it was put, and only a wildcard listener's own name is asked.
fn known_names(r: &Region, fd: i32, via: &Via) -> Option<(Listener, Tuple, bool)> {
    let l = &via.listener;
    let (entry, name) = table::listener_at(r, l.name_slot & !LISTENER_BIT, l.ino)?;
    let local = if name.is_wildcard() { name_of(fd, false)? } else { name };
    let peer = via.peer.or_else(|| name_of(fd, true))?;
    Some((entry, Tuple { client: peer, server: local }, l.sole.holds()))
}

/// After `accept` gave `fd` (its socket's only holder since `sole`) of an AF_INET or AF_INET6
/// listener (`via` one this process knows): a loopback TCP connection whose client published
/// its queue is adopted.
pub fn accepted(r: &Region, fd: i32, sole: fd::Sole, via: Option<Via>) {
    let known = via.and_then(|v| known_names(r, fd, &v));
    let (l, t, lowat_default) = match known {
        Some(k) => k,
        None => {
            if sockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL) != Ok(IPPROTO_TCP) {
                return;
            }
            let Some(local) = name_of(fd, false) else { return };
            let Some(l) = table::lookup(r, &local, alive_or_own) else { return };
            let Some(peer) = name_of(fd, true) else { return };
            (l, Tuple { client: peer, server: local }, false)
        }
    };

    let start = sys::monotonic_ns();
    let mut k = 0;
    // The client socket's inode, asked once a client of the listener is under way.
    let mut peer = None;
    let client = loop {
        let late = sys::monotonic_ns() - start > PUBLISH_WAIT_NS;
        match table::claim(r, &l, &t, peer, late) {
            Claim::Queue(h) => break h,
            Claim::Kernel => return,
            // A client on another host publishes nothing: not waited for (asked only while
            // a shim client of the listener is under way).
            Claim::Wait if k == 0 && !local(&t.client) => return,
            Claim::Wait if k == 0 => peer = peer_ino(&t),
            Claim::Wait => pause(k),
        }
        k += 1;
    };
    if pipe::sock_state(r, client) != pipe::SOCK_PENDING {
        return;
    }
    let ours = sys::fstat(fd)
        .ok()
        .and_then(|st| unix::new_queue(r, st.st_ino, pipe::SOCK_PENDING | pipe::SOCK_TCP).ok());
    let Some(h) = ours else {
        // No queue for us: the client moves what it queued into the kernel at its next call.
        let _ = pipe::sock_hand_back(r, client);
        return;
    };
    if !pipe::sock_adopt(r, client, h) {
        pipe::sock_refuse(r, h);
        pipe::release(r, h);
        return;
    }
    r.header().counters.tcp_connections.fetch_add(1, Ordering::Relaxed);
    // A client that gave its end to the kernel before we linked reads the kernel's queue; a
    // receive that waits for more than a byte (SO_RCVLOWAT) is the kernel's, after what the
    // client queued. The link (release stores) before the look at the client's flag, which
    // `hand_back` sets before it looks for the link.
    sys::full_fence();
    let servable = lowat_default || sockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVLOWAT) == Ok(1);
    if pipe::handed_back(r, client) || !servable {
        let _ = pipe::sock_hand_back(r, client);
        let _ = pipe::sock_hand_back(r, h);
    }
    unix::insert_connected(r, fd, h, sole);
}

/// Gives the connection to the kernel for a call it serves (None: the caller passes it on).
fn kernel_call(r: &Region, p: &PipeFd) -> Option<Result<usize, Errno>> {
    unix::hand_back(r, p);
    None
}

/// The receive flags a queue serves; the rest (MSG_OOB, MSG_TRUNC's discard, the error queue)
/// are the kernel's.
const RECV_FLAGS: i32 =
    libc::MSG_PEEK | libc::MSG_WAITALL | libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL | libc::MSG_CMSG_CLOEXEC;

/// A receive on TCP socket `p`; None: the kernel answers (end of file, a reset, a connection
/// given back).
pub fn recv(
    r: &Region,
    g: &thread::Guard,
    p: &PipeFd,
    iov: &[Iov],
    flags: i32,
) -> Option<Result<usize, Errno>> {
    if flags & libc::MSG_ERRQUEUE != 0 {
        return None;
    }
    if flags & !RECV_FLAGS != 0 {
        return kernel_call(r, p);
    }
    unix::drain(r, p);
    let env = pipes::Env::new(p, r, g, flags & libc::MSG_DONTWAIT != 0, pipes::Side::SockRead);
    let rx = match unix::rx_queue(r, &env, p) {
        Ok(Some(rx)) => rx,
        Ok(None) => {
            unix::drain(r, p);
            return None;
        }
        Err(e) => return Some(Err(e)),
    };
    let mode = RecvMode { peek: flags & libc::MSG_PEEK != 0, socket: true };
    let want: usize = iov.iter().map(|v| v.1).sum();
    if want == 0 {
        // A receive of nothing still waits for a byte (its low-water mark is one), then
        // returns 0: peeking one byte into our own buffer does that.
        let mut byte = 0u8;
        let one = [(&mut byte as *mut u8 as usize, 1)];
        return match pipe::ring_read(r, rx, &one, &env, RecvMode { peek: true, socket: true }) {
            Err(pipe::HANDED_BACK) | Ok(0) => {
                unix::drain(r, p);
                None
            }
            res => Some(res.map(|_| 0)),
        };
    }
    let mut got = 0usize;
    let mut rest = None;
    let mut msg = pipe::CbRead::default();
    while let Some(left) = crate::base::iov::iov_after(iov, got, &mut rest) {
        match pipe::sock_read(r, rx, left, &env, mode, &mut msg) {
            Err(_) | Ok(0) if got > 0 => break,
            // Empty with the peer gone (end of file or a reset, which the kernel's socket
            // says), or given back: the kernel answers.
            Err(pipe::HANDED_BACK) | Ok(0) => {
                unix::drain(r, p);
                return None;
            }
            Err(e) => return Some(Err(e)),
            Ok(k) => got += k,
        }
        if flags & libc::MSG_WAITALL == 0 || mode.peek || got >= want {
            break;
        }
    }
    Some(Ok(got))
}

/// The send flags a queue serves (MSG_MORE and MSG_EOR only shape the kernel's segments);
/// the rest (MSG_OOB, MSG_FASTOPEN, MSG_ZEROCOPY…) are the kernel's.
const SEND_FLAGS: i32 = libc::MSG_DONTWAIT
    | libc::MSG_NOSIGNAL
    | libc::MSG_MORE
    | libc::MSG_EOR
    | libc::MSG_CONFIRM
    | libc::MSG_DONTROUTE;

/// A send on TCP socket `p`; None: the kernel sends (the connection was given back: its peer
/// is gone or going, whose EPIPE, reset and SIGPIPE are the kernel's to give).
pub fn send(
    r: &Region,
    g: &thread::Guard,
    p: &PipeFd,
    iov: &[Iov],
    flags: i32,
) -> Option<Result<usize, Errno>> {
    if flags & !SEND_FLAGS != 0 {
        return kernel_call(r, p);
    }
    if pipe::handed_back(r, p.pipe) {
        unix::drain(r, p);
        return None;
    }
    // Shut down for sending: the kernel's EPIPE (and SIGPIPE).
    if pipe::sock_flags(r, p.pipe) & pipe::SOCK_SHUT_WR != 0 {
        return kernel_call(r, p);
    }
    let env = pipes::Env::new(p, r, g, flags & libc::MSG_DONTWAIT != 0, pipes::Side::TcpSend);
    let res = pipe::pipe_write(r, p.pipe, iov, false, &env);
    let total: usize = iov.iter().map(|v| v.1).sum();
    match res {
        Err(pipe::HANDED_BACK) => None,
        Err(libc::EPIPE | pipe::NO_SPACE) => kernel_call(r, p),
        Ok(n) if n < total && (env.ran_out_of_space() || pipe::PipeEnv::peer_gone(&env, true)) => {
            unix::hand_back(r, p);
            // A send that moved bytes reports its count; an EPIPE (and its SIGPIPE) is the
            // next send's, as tcp_sendmsg's.
            Some(Ok(unix::send_rest(g, p, iov, flags | libc::MSG_NOSIGNAL, n)))
        }
        res => Some(res),
    }
}

/// Options that change what a receive or a send does, which the queues do not follow: set on
/// a served connection, they give it back to the kernel first.
pub fn changes_data_path(level: i32, opt: i32) -> bool {
    const SO_TIMESTAMPING_NEW: i32 = 65;
    const SO_TIMESTAMP_NEW: i32 = 63;
    const SO_TIMESTAMPNS_NEW: i32 = 64;
    const TCP_INQ: i32 = 36;
    const TCP_ZEROCOPY_RECEIVE: i32 = 35;
    match level {
        libc::SOL_SOCKET => matches!(
            opt,
            libc::SO_RCVLOWAT
                | libc::SO_RCVBUF
                | libc::SO_RCVBUFFORCE
                | libc::SO_SNDBUF
                | libc::SO_SNDBUFFORCE
                | libc::SO_TIMESTAMP
                | libc::SO_TIMESTAMPNS
                | libc::SO_TIMESTAMPING
                | SO_TIMESTAMP_NEW
                | SO_TIMESTAMPNS_NEW
                | SO_TIMESTAMPING_NEW
                | libc::SO_PEEK_OFF
                | libc::SO_ZEROCOPY
                | libc::SO_RXQ_OVFL
        ),
        IPPROTO_TCP => {
            matches!(opt, TCP_INQ | TCP_ZEROCOPY_RECEIVE | libc::TCP_REPAIR | libc::TCP_NOTSENT_LOWAT)
        }
        _ => false,
    }
}

/// At exit(), whose closes the shim does not see: each TCP socket this process alone holds
/// with bytes it never read resets its connection as its close would (see [`before_close`]).
pub fn at_exit(r: &Region) {
    for fd in 0..fd::highest().min(fd::CACHED) as i32 {
        if let Some(p) = fd::cached(r, fd).filter(|p| p.socket && pipe::sock_tcp(r, p.pipe)) {
            reset_if_unread(r, &p);
        }
    }
}

/// Before the close of TCP socket `p`: a client whose server has not taken the connection yet
/// and queued nothing gives it to the kernel; the socket's last close with bytes it never read
/// resets the connection, as `tcp_close` does for data unread in its receive queue.
pub fn before_close(r: &Region, p: &PipeFd) {
    match pipe::sock_state(r, p.pipe) {
        // Nothing queued: the kernel's from here, as the server will find. Bytes queued stay
        // for the server to adopt and read before the kernel's end of file (moving them into
        // the kernel could stop part way, and the rest would come first), kept by the
        // collector while pending.
        pipe::SOCK_PENDING if pipe::fionread(r, p.pipe).is_ok_and(|n| n > 0) => {
            pipe::sock_set_queued(r, p.pipe)
        }
        pipe::SOCK_PENDING => {
            pipe::sock_refuse(r, p.pipe);
        }
        _ => reset_if_unread(r, p),
    }
}

/// The socket's last close (its fd its only holder) with bytes it never read: SO_LINGER
/// {1, 0}, so the kernel's close resets the connection.
fn reset_if_unread(r: &Region, p: &PipeFd) {
    if pipe::sock_state(r, p.pipe) != pipe::SOCK_LINKED || !p.sole.holds() {
        return;
    }
    let unread = pipe::sock_peer(r, p.pipe).is_some_and(|rx| pipe::fionread(r, rx).is_ok_and(|n| n > 0));
    if unread {
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        let _ = sys::syscall6(
            libc::SYS_setsockopt,
            p.fd as usize,
            libc::SOL_SOCKET as usize,
            libc::SO_LINGER as usize,
            &linger as *const libc::linger as usize,
            size_of::<libc::linger>(),
            0,
        );
    }
}
