//! Loopback UDP (AF_INET 127.0.0.0/8, AF_INET6 ::1) between shim processes. Every UDP socket
//! is the kernel's: bind, ephemeral ports (an unbound sender binds port 0 first, as
//! `inet_autobind`), connect, getsockname, errors and everything the shim does not carry
//! stay its own. What the shim adds is a receive queue per socket (`crate::family::dgram`'s records,
//! the sender's address in each header) and `shared_state::udp`'s table of bound sockets, by
//! which a sender finds the socket a datagram is for. A datagram the shim cannot deliver
//! exactly (no shim socket there, a receiver connected elsewhere, a broadcast, a flag or an
//! option the queues do not follow) is sent through the kernel, which delivers it or answers
//! with its ICMP errors; a receive takes the kernel's queue once ours is empty.

use crate::base::fd::{self, PipeFd};
use crate::base::iov::Iov;
use crate::base::thread;
use crate::family::dgram;
use crate::family::scm::Ctl;
use crate::family::tcp::sockopt_int;
use crate::family::unix::{self, Got};
use core::sync::atomic::{AtomicU64, Ordering};
use shared_state::Region;
use shared_state::pipe::{self, Enqueued, PipeHandle, SOCKADDR_UN_MAX, UnixCb};
use shared_state::sys::{self, Errno};
use shared_state::udp::{self as table, Binding, Endpoint, Found};
use shared_state::unix as names;

/// `socket(AF_INET/AF_INET6, SOCK_DGRAM, 0 or IPPROTO_UDP)`: the kernel's socket, with a
/// receive queue behind it (without room for one, simply the kernel's).
pub fn socket(r: &Region, domain: u64, ty: u64, proto: u64) -> Option<i64> {
    if !matches!(domain as i32, libc::AF_INET | libc::AF_INET6)
        || ty as i32 & 0xf != libc::SOCK_DGRAM
        || !matches!(proto as i32, 0 | libc::IPPROTO_UDP)
    {
        return None;
    }
    let sole = fd::Sole::before_create();
    let res = sys::syscall6(libc::SYS_socket, domain as usize, ty as usize, proto as usize, 0, 0, 0);
    let Ok(fd) = res else { return Some(crate::base::iov::ret(res)) };
    let fd = fd as i32;
    // Kernel-seen from the start: a blocked receive looks at the kernel's queue (datagrams
    // from senders without the shim, ICMP errors) every few milliseconds.
    let state = pipe::SOCK_LINKED
        | pipe::SOCK_RECORDS
        | pipe::SOCK_DGRAM
        | pipe::SOCK_RECV_QUEUE
        | pipe::SOCK_UDP
        | pipe::SOCK_KERNEL_SEEN;
    if let Ok(h) = sys::fstat(fd).and_then(|st| unix::new_queue(r, st.st_ino, state)) {
        unix::insert(r, fd, h);
        fd::set_sole(fd, sole);
    }
    Some(fd as i64)
}

/// Whether `p` is such a socket.
pub fn is_udp(r: &Region, p: &PipeFd) -> bool {
    p.socket && pipe::sock_flags(r, p.pipe) & pipe::SOCK_UDP != 0
}

/// The socket's own name or its peer's: its family and endpoint.
fn name_of(fd: i32, peer: bool) -> Option<(i32, Endpoint)> {
    let mut sa = [0u8; 28];
    let mut len = sa.len() as u32;
    let nr = if peer { libc::SYS_getpeername } else { libc::SYS_getsockname };
    sys::syscall6(nr, fd as usize, sa.as_mut_ptr() as usize, &mut len as *mut u32 as usize, 0, 0, 0).ok()?;
    let sa = &sa[..(len as usize).min(sa.len())];
    Some((u16::from_ne_bytes([sa[0], sa[1]]) as i32, Endpoint::from_sockaddr(sa)?))
}

/// A socket's names as the kernel gave them after its last bind, connect or autobind.
#[derive(Clone, Copy)]
struct Names {
    v6: bool,
    v6only: bool,
    local: Endpoint,
    peer: Option<Endpoint>,
}

/// Asks the kernel for the socket's names and keeps them with its queue (the slot
/// `shared_state::unix::set_addr` keeps an AF_UNIX socket's name in), for its sends.
fn store_names(r: &Region, p: &PipeFd) -> Option<Names> {
    let (family, local) = name_of(p.fd, false)?;
    let v6 = family == libc::AF_INET6;
    let n = Names {
        v6,
        v6only: v6 && sockopt_int(p.fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) == Ok(1),
        local,
        peer: name_of(p.fd, true).map(|(_, e)| e),
    };
    let mut b = [0u8; 40];
    b[0] = 1;
    b[1] = n.v6 as u8 | (n.v6only as u8) << 1 | (n.peer.is_some() as u8) << 2;
    b[4..20].copy_from_slice(&local.addr);
    b[20..22].copy_from_slice(&local.port.to_ne_bytes());
    if let Some(peer) = n.peer {
        b[22..38].copy_from_slice(&peer.addr);
        b[38..40].copy_from_slice(&peer.port.to_ne_bytes());
    }
    names::set_addr(r, p.pipe, &b);
    Some(n)
}

/// The names kept by [`store_names`] (two equal reads: not torn by a store meanwhile), or
/// asked afresh.
fn names_of(r: &Region, p: &PipeFd) -> Option<Names> {
    let mut a = [0u8; SOCKADDR_UN_MAX];
    let mut b = [0u8; SOCKADDR_UN_MAX];
    let (la, lb) = (names::addr_of(r, p.pipe, &mut a), names::addr_of(r, p.pipe, &mut b));
    if la != 40 || lb != 40 || a[..40] != b[..40] || a[0] != 1 {
        return store_names(r, p);
    }
    let ep = |at: usize| Endpoint {
        addr: a[at..at + 16].try_into().unwrap_or([0; 16]),
        port: u16::from_ne_bytes([a[at + 16], a[at + 17]]),
    };
    Some(Names {
        v6: a[1] & 1 != 0,
        v6only: a[1] & 2 != 0,
        local: ep(4),
        peer: (a[1] & 4 != 0).then(|| ep(22)),
    })
}

/// The socket is the kernel's from now on: nothing more comes into its queue.
fn to_kernel(r: &Region, p: &PipeFd) {
    pipe::sock_change_flags(r, p.pipe, pipe::SOCK_UDP_KERNEL, 0);
    table::forget(r, p.pipe);
}

/// After a bind, connect or autobind: the socket's names as the kernel now has them enter the
/// table (a socket sharing its port, or with no port, leaves it).
fn publish(r: &Region, p: &PipeFd) {
    let stored = store_names(r, p);
    if pipe::sock_flags(r, p.pipe) & pipe::SOCK_UDP_KERNEL != 0 {
        return;
    }
    let shared = [libc::SO_REUSEADDR, libc::SO_REUSEPORT]
        .iter()
        .any(|&o| sockopt_int(p.fd, libc::SOL_SOCKET, o) != Ok(0));
    if shared {
        return to_kernel(r, p);
    }
    let Some(n) = stored.filter(|n| n.local.port != 0) else {
        return table::forget(r, p.pipe);
    };
    if !n.local.is_loopback() && !n.local.is_wildcard() {
        return table::forget(r, p.pipe);
    }
    let b = Binding {
        local: n.local,
        peer: n.peer,
        v6only: n.v6only,
        v6: n.v6,
        rcvbuf: sockopt_int(p.fd, libc::SOL_SOCKET, libc::SO_RCVBUF).unwrap_or(0) as u32,
    };
    if !table::bind(r, p.pipe, &b) {
        to_kernel(r, p);
    }
}

/// `bind`: the kernel's, then the name is entered.
pub fn bind(r: &Region, p: &PipeFd, uaddr: u64, alen: u64) -> i64 {
    let res = sys::syscall6(libc::SYS_bind, p.fd as usize, uaddr as usize, alen as usize, 0, 0, 0);
    if res.is_ok() {
        publish(r, p);
    }
    crate::base::iov::ret(res)
}

/// `connect` (AF_UNSPEC: disconnect): the kernel's, then the names are entered again (a
/// connected socket takes only its peer's datagrams, and has its source address fixed).
pub fn connect(r: &Region, p: &PipeFd, uaddr: usize, alen: u64) -> i64 {
    let res = sys::syscall6(libc::SYS_connect, p.fd as usize, uaddr, alen as usize, 0, 0, 0);
    publish(r, p);
    crate::base::iov::ret(res)
}

/// `shutdown`: the kernel's; its effects on receives are the kernel's to give from then on.
pub fn shutdown(r: &Region, p: &PipeFd, how: u64) -> i64 {
    let res = sys::syscall6(libc::SYS_shutdown, p.fd as usize, how as usize, 0, 0, 0, 0);
    if res.is_ok() {
        to_kernel(r, p);
    }
    crate::base::iov::ret(res)
}

/// `setsockopt` on a UDP socket, after the kernel's: the receive buffer is entered anew;
/// options that do not change what a datagram carries or how it is received keep the socket
/// the shim's; any other leaves it to the kernel.
pub fn option_set(r: &Region, p: &PipeFd, level: i32, opt: i32) {
    let kept = match level {
        libc::SOL_SOCKET => matches!(
            opt,
            libc::SO_SNDBUF
                | libc::SO_SNDBUFFORCE
                | libc::SO_RCVTIMEO
                | libc::SO_SNDTIMEO
                | libc::SO_BROADCAST
                | libc::SO_KEEPALIVE
                | libc::SO_LINGER
        ),
        libc::IPPROTO_IPV6 => opt == libc::IPV6_V6ONLY,
        _ => false,
    };
    if matches!(opt, libc::SO_RCVBUF | libc::SO_RCVBUFFORCE) && level == libc::SOL_SOCKET
        || level == libc::IPPROTO_IPV6 && opt == libc::IPV6_V6ONLY
    {
        publish(r, p);
    } else if !kept {
        to_kernel(r, p);
    }
}

/// The socket is no longer the shim's to receive for (an exec into a program without it).
pub fn forget(r: &Region, p: &PipeFd) {
    to_kernel(r, p);
}

/// At exit(), whose closes the shim does not see: each UDP socket's close (see [`closing`]).
pub fn at_exit(r: &Region) {
    for fd in 0..fd::highest().min(fd::CACHED) as i32 {
        if let Some(p) = fd::cached(r, fd).filter(|p| is_udp(r, p)) {
            closing(r, &p);
        }
    }
}

/// A close of it: by its only holder, out of the table; by another, senders ask the kernel
/// again whether it still exists.
pub fn closing(r: &Region, p: &PipeFd) {
    if p.sole.holds() {
        table::forget(r, p.pipe);
    } else {
        pipe::note_close(r, p.pipe);
    }
}

const V4_MAPPED: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
const V6_LOOPBACK: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

fn is_v4(ep: &Endpoint) -> bool {
    ep.addr[..12] == V4_MAPPED
}

/// The sender's address a receiver of family `v6` sees (`sockaddr_in`, or `sockaddr_in6`
/// with an IPv4 sender's address mapped), into `cb`.
fn source_into(cb: &mut UnixCb, src: &Endpoint, v6: bool) {
    let port = src.port.to_be_bytes();
    if v6 {
        cb.addr[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        cb.addr[2..4].copy_from_slice(&port);
        cb.addr[8..24].copy_from_slice(&src.addr);
        cb.addr_len = 28;
    } else {
        cb.addr[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        cb.addr[2..4].copy_from_slice(&port);
        cb.addr[4..8].copy_from_slice(&src.addr[12..]);
        cb.addr_len = 16;
    }
}

/// A datagram the kernel must carry (corked with MSG_MORE, past the loopback MTU, with a flag
/// the queues do not serve): this socket's sends all go through the kernel from now on, so a
/// receiver never reads a later datagram of it from its queue before this one from the
/// kernel's.
fn sends_to_kernel(r: &Region, p: &PipeFd) -> Option<Result<usize, Errno>> {
    pipe::sock_change_flags(r, p.pipe, pipe::SOCK_PEER_KERNEL, 0);
    None
}

/// The send flags the queues serve; MSG_MORE (a corked datagram) and the rest are the
/// kernel's.
const SEND_FLAGS: i32 = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL | libc::MSG_CONFIRM;

/// The destination a send names (the user's address and length), checked as
/// `udp_sendmsg`/`udpv6_sendmsg` would accept it; None for anything else (the kernel judges).
fn dest_of(family: i32, ua: usize, ul: usize) -> Option<Endpoint> {
    let mut sa = [0u8; 28];
    let need = if family == libc::AF_INET6 { 24 } else { 16 };
    if ul < need {
        return None;
    }
    crate::base::copy::slice_in(&mut sa[..need], ua).ok()?;
    if u16::from_ne_bytes([sa[0], sa[1]]) as i32 != family {
        return None;
    }
    Endpoint::from_sockaddr(&sa[..need])
}

/// A send of `iov` to `dest` (the user's address and length) or to the connected peer. None:
/// the kernel sends it.
pub fn send(
    r: &Region,
    p: &PipeFd,
    iov: &[Iov],
    flags: i32,
    dest: Option<(usize, usize)>,
) -> Option<Result<usize, Errno>> {
    if pipe::sock_flags(r, p.pipe) & (pipe::SOCK_UDP_KERNEL | pipe::SOCK_PEER_KERNEL) != 0 {
        return None;
    }
    if flags & !SEND_FLAGS != 0 {
        return sends_to_kernel(r, p);
    }
    let n = names_of(r, p)?;
    let family = if n.v6 { libc::AF_INET6 } else { libc::AF_INET };
    let (mut local, connected) = (n.local, n.peer);
    let dst = match dest {
        Some((ua, ul)) => dest_of(family, ua, ul)?,
        None => connected?,
    };
    // 127.255.255.255 is lo's broadcast address.
    if !dst.is_loopback() || dst.port == 0 || is_v4(&dst) && dst.addr[13..] == [255; 3] {
        return None;
    }
    let total: usize = iov.iter().map(|v| v.1).sum();
    if total > table::max_payload(!is_v4(&dst)) {
        return sends_to_kernel(r, p);
    }
    if n.v6 && n.v6only && is_v4(&dst) {
        return None;
    }
    // An error waiting (an earlier datagram's ICMP port unreachable, which only a connected
    // socket gets) is the kernel's to give.
    if connected.is_some() && crate::base::fd::revents(p.fd, libc::POLLERR) != 0 {
        return None;
    }
    if local.port == 0 {
        // inet_autobind: an ephemeral port, no address.
        let mut any = [0u8; 28];
        any[..2].copy_from_slice(&(family as u16).to_ne_bytes());
        let alen = if family == libc::AF_INET6 { 28 } else { 16 };
        if let Err(e) = sys::syscall6(libc::SYS_bind, p.fd as usize, any.as_ptr() as usize, alen, 0, 0, 0) {
            return Some(Err(e));
        }
        publish(r, p);
        local = names_of(r, p)?.local;
    }
    // The route's source: the bound address, or lo's own for its family.
    let src = if local.is_wildcard() {
        let mut a = Endpoint { addr: V6_LOOPBACK, port: local.port };
        if is_v4(&dst) {
            a.addr = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1];
        }
        a
    } else if is_v4(&local) != is_v4(&dst) {
        return None;
    } else {
        local
    };
    let to = match table::lookup(r, &dst, &src)? {
        Found::To(to) if pipe::is_live(r, to.queue) && receives(r, to.queue, &src, &dst) => to,
        // No socket takes it: the kernel's ICMP port unreachable reaches only a connected
        // sender (without IP_RECVERR, which leaves a socket to the kernel), as its error.
        Found::Refused if connected.is_none() => return Some(Ok(total)),
        _ => return None,
    };
    let mut cb = UnixCb::default();
    source_into(&mut cb, &src, to.v6);
    let truesize = table::truesize(total, !is_v4(&dst));
    match pipe::udp_enqueue(r, to.queue, iov, &cb, truesize, to.rcvbuf as usize) {
        Ok(Enqueued::Queued | Enqueued::Dropped) => Some(Ok(total)),
        Err(libc::EFAULT) => Some(Err(libc::EFAULT)),
        Err(_) => None,
    }
}

/// Per receive queue (by slot): its handle bits, and the generations (mixed with them) at
/// which the kernel last said its socket is the one a datagram to its name reaches.
static CONFIRMED: [(AtomicU64, AtomicU64); 64] =
    [const { (AtomicU64::new(u64::MAX), AtomicU64::new(0)) }; 64];

/// Whether the kernel delivers a datagram from `src` to `dst` to the socket of queue `to`
/// (not to another socket bound there since, the entry's socket gone unseen): asked once
/// per change of the queue's generations (a close of it, an exit anywhere).
fn receives(r: &Region, to: PipeHandle, src: &Endpoint, dst: &Endpoint) -> bool {
    let key = pipe::liveness_gens(r, to) ^ to.to_bits().rotate_left(17);
    let slot = (!thread::in_vfork_child()).then(|| &CONFIRMED[to.idx as usize % CONFIRMED.len()]);
    if let Some((k, g)) = slot
        && k.load(Ordering::Acquire) == to.to_bits()
        && g.load(Ordering::Acquire) == key
    {
        return true;
    }
    let yes = pipe::object_ino(r, to).is_some_and(|ino| kernel_receiver(src, dst) == Some(ino as u32));
    if let (true, Some((k, g))) = (yes, slot) {
        k.store(to.to_bits(), Ordering::Release);
        g.store(key, Ordering::Release);
    } else if !yes {
        table::forget(r, to);
    }
    yes
}

/// The inode of the socket the kernel delivers a datagram from `src` to `dst` to
/// (NETLINK_SOCK_DIAG's `udp_dump_one`, whose lookup takes the sender as `idiag_src`); None:
/// no socket, or the kernel could not be asked.
fn kernel_receiver(src: &Endpoint, dst: &Endpoint) -> Option<u32> {
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    let v4 = is_v4(dst);
    // nlmsghdr (16), then inet_diag_req_v2: family, protocol, ext, pad, states, and
    // inet_diag_sockid: sport, dport, src, dst, if, cookie.
    let mut req = [0u8; 72];
    req[..4].copy_from_slice(&72u32.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[16] = if v4 { libc::AF_INET } else { libc::AF_INET6 } as u8;
    req[17] = libc::IPPROTO_UDP as u8;
    req[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
    req[24..26].copy_from_slice(&src.port.to_be_bytes());
    req[26..28].copy_from_slice(&dst.port.to_be_bytes());
    for (at, e) in [(28, src), (44, dst)] {
        if v4 {
            req[at..at + 4].copy_from_slice(&e.addr[12..]);
        } else {
            req[at..at + 16].copy_from_slice(&e.addr);
        }
    }
    req[64..72].copy_from_slice(&[0xff; 8]);
    let mut buf = [0u8; 256];
    let n = unix::diag::exchange(&req, buf.as_mut_ptr() as usize, buf.len()).ok()?;
    // nlmsghdr (16), inet_diag_msg: family, state, timer, retrans, id (48), expires, rqueue,
    // wqueue, uid, inode.
    let ty = u16::from_ne_bytes([buf[4], buf[5]]);
    (ty == SOCK_DIAG_BY_FAMILY && n >= 88).then(|| u32::from_ne_bytes([buf[84], buf[85], buf[86], buf[87]]))
}

/// The receive flags the queue serves; the rest (the error queue, MSG_OOB) are the kernel's.
const RECV_FLAGS: i32 = libc::MSG_PEEK
    | libc::MSG_DONTWAIT
    | libc::MSG_TRUNC
    | libc::MSG_WAITALL
    | libc::MSG_NOSIGNAL
    | libc::MSG_CMSG_CLOEXEC;

/// A receive from the socket's queue (the sender's address into `ctl.src`); None: the kernel
/// answers (its queue has something, an error waits, or the call is one it serves).
pub fn recv(
    r: &Region,
    g: &thread::Guard,
    p: &PipeFd,
    iov: &[Iov],
    flags: i32,
    ctl: &mut Ctl,
) -> Option<Result<Got, Errno>> {
    if flags & !RECV_FLAGS != 0 {
        return None;
    }
    // sock_error comes before any queued datagram (`__skb_recv_udp`); only a connected
    // socket gets one.
    if names_of(r, p).is_none_or(|n| n.peer.is_some()) && crate::base::fd::revents(p.fd, libc::POLLERR) != 0 {
        return None;
    }
    dgram::recv(r, g, p, iov, flags & !libc::MSG_WAITALL, ctl)
}
