//! AF_UNIX datagram sockets made under the shim (`unix_dgram_*` in net/unix/af_unix.c). Each
//! one has its own receive queue in the region (`sk_receive_queue`), which any sender queues
//! into; a bound one's name leads to that queue (`shared_state::unix::register_dgram`), and
//! the sender's address and credentials travel in each record's header. The placeholder is a
//! real kernel socket, bound and connected as the user asked: it gives every error about
//! names (ENOENT, EACCES, ECONNREFUSED, EPROTOTYPE, EPERM at connect), getsockname and
//! getpeername, and it carries what the shim cannot: a send to a name no shim socket is
//! bound to (a socket without the shim, or a socket file the kernel alone knows) goes to
//! the kernel, and a receiver whose queue is empty lets the kernel answer once its
//! placeholder has something (a datagram from a process without the shim, or a shutdown).

use crate::base::fd::PipeFd;
use crate::base::iov::Iov;
use crate::base::thread;
use crate::family::pipes;
use crate::family::scm::{self, Ctl};
use crate::family::unix::{self, Got, diag};
use core::sync::atomic::{AtomicU64, Ordering};
use shared_state::Region;
use shared_state::pipe::{self, PipeHandle, SOCKADDR_UN_MAX};
use shared_state::sys::{self, Errno};
use shared_state::unix as names;

/// `socket(AF_UNIX, SOCK_DGRAM, …)`: the kernel's socket, with a receive queue behind it.
/// Without room for a queue the socket is simply the kernel's.
pub fn socket(r: &Region, domain: u64, ty: u64, proto: u64) -> Option<i64> {
    if domain as i32 != libc::AF_UNIX || ty as i32 & 0xf != libc::SOCK_DGRAM {
        return None;
    }
    let res = sys::syscall6(libc::SYS_socket, domain as usize, ty as usize, proto as usize, 0, 0, 0);
    let Ok(fd) = res else { return Some(crate::base::iov::ret(res)) };
    let fd = fd as i32;
    let state = pipe::SOCK_LINKED | pipe::SOCK_RECORDS | pipe::SOCK_DGRAM | pipe::SOCK_RECV_QUEUE;
    if let Ok(h) = sys::fstat(fd).and_then(|st| unix::new_queue(r, st.st_ino, state)) {
        unix::insert(r, fd, h);
    }
    Some(fd as i64)
}

/// Whether `p` is such a socket (its object is its own receive queue).
pub fn is_recv_queue(r: &Region, p: &PipeFd) -> bool {
    p.socket && pipe::sock_flags(r, p.pipe) & pipe::SOCK_RECV_QUEUE != 0
}

fn sockname(fd: i32, addr: &mut [u8; SOCKADDR_UN_MAX]) -> Result<usize, Errno> {
    let mut len = addr.len() as u32;
    sys::syscall6(
        libc::SYS_getsockname,
        fd as usize,
        addr.as_mut_ptr() as usize,
        &mut len as *mut u32 as usize,
        0,
        0,
        0,
    )?;
    Ok((len as usize).min(addr.len()))
}

/// The socket got a name (bind, autobind): senders find its queue by it from now on.
fn bound(r: &Region, p: &PipeFd) {
    let mut addr = [0u8; SOCKADDR_UN_MAX];
    let Ok(len) = sockname(p.fd, &mut addr) else { return };
    if len <= 2 {
        return;
    }
    names::set_addr(r, p.pipe, &addr[..len]);
    if let Some(name) = unix::name_of(&addr[..len]) {
        names::register_dgram(r, name, p.pipe);
    }
}

/// `bind`: the kernel's, then the name is announced.
pub fn bind(r: &Region, p: &PipeFd, uaddr: u64, alen: u64) -> i64 {
    let res = sys::syscall6(libc::SYS_bind, p.fd as usize, uaddr as usize, alen as usize, 0, 0, 0);
    if res.is_ok() {
        bound(r, p);
    }
    crate::base::iov::ret(res)
}

/// The user's `sockaddr_un` (None: one the kernel refuses or faults on, which it then does).
fn addr_in(uaddr: usize, alen: usize, out: &mut [u8; SOCKADDR_UN_MAX]) -> Option<usize> {
    if !(2..=SOCKADDR_UN_MAX).contains(&alen) {
        return None;
    }
    crate::base::copy::slice_in(&mut out[..alen], uaddr).ok()?;
    (u16::from_ne_bytes([out[0], out[1]]) == libc::AF_UNIX as u16).then_some(alen)
}

/// The live shim receive queue bound to `addr`, if it may be written to: a socket file
/// the caller may write (`unix_find_bsd`'s MAY_WRITE), or an abstract name.
fn queue_named(r: &Region, addr: &[u8]) -> Option<PipeHandle> {
    let (name, owner) = unix::name_and_owner(addr)?;
    // generic_permission: for the file's owner the mode's user bits decide, whatever an ACL
    // says; anyone else is the kernel's to judge (groups, ACLs, capabilities).
    let owner_may_write = owner.is_some_and(|(uid, mode)| mode & libc::S_IWUSR != 0 && uid == sys::geteuid());
    if owner.is_some() && !owner_may_write {
        let path = &addr[2..];
        let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
        let mut z = [0u8; SOCKADDR_UN_MAX];
        z[..end].copy_from_slice(&path[..end]);
        let ok = sys::syscall6(
            libc::SYS_faccessat2,
            libc::AT_FDCWD as usize,
            z.as_ptr() as usize,
            libc::W_OK as usize,
            libc::AT_EACCESS as usize,
            0,
            0,
        );
        ok.ok()?;
    }
    let h = names::lookup_dgram(r, name)?;
    (pipe::sock_flags(r, h) & pipe::SOCK_RECV_QUEUE != 0).then_some(h)
}

/// `connect`: the kernel's (its errors, AF_UNSPEC's disconnect), then sends without an
/// address go to the named socket's queue (or to the kernel, when the shim does not serve
/// it). A socket that connects elsewhere drops what it had queued (`unix_dgram_disconnected`).
pub fn connect(r: &Region, p: &PipeFd, uaddr: usize, alen: u64) -> i64 {
    let res = sys::syscall6(libc::SYS_connect, p.fd as usize, uaddr, alen as usize, 0, 0, 0);
    if res.is_err() {
        return crate::base::iov::ret(res);
    }
    let old = (pipe::sock_peer(r, p.pipe), pipe::sock_flags(r, p.pipe) & pipe::SOCK_PEER_KERNEL != 0);
    let mut addr = [0u8; SOCKADDR_UN_MAX];
    let mut fam = [0u8; 2];
    let unspec = crate::base::copy::slice_in(&mut fam, uaddr).is_ok()
        && u16::from_ne_bytes(fam) == libc::AF_UNSPEC as u16;
    let target = if unspec {
        None
    } else {
        addr_in(uaddr, alen as usize, &mut addr).and_then(|n| queue_named(r, &addr[..n]))
    };
    let kernel = !unspec && target.is_none();
    let (set, clear) = if kernel { (pipe::SOCK_PEER_KERNEL, 0) } else { (0, pipe::SOCK_PEER_KERNEL) };
    pipe::sock_change_flags(r, p.pipe, set, clear);
    pipe::sock_set_peer(r, p.pipe, target);
    let had_peer = old.0.is_some() || old.1;
    if had_peer && (old.0 != target || old.1 != kernel) {
        pipe::sock_purge(r, p.pipe);
    }
    0
}

/// Per receive queue (by slot): its handle bits, and the generations (mixed with them) at
/// which its socket was last seen alive.
static ALIVE: [(AtomicU64, AtomicU64); 64] = [const { (AtomicU64::new(u64::MAX), AtomicU64::new(0)) }; 64];

fn seen_key(h: PipeHandle, gens: u64) -> u64 {
    gens ^ h.to_bits().rotate_left(17)
}

/// Whether the socket of receive queue `to` still exists and can receive (not shut down for
/// reading). Its existence is the kernel's to say, asked once per change of its
/// generations (a close anywhere, an exit) unless `force`.
pub fn can_receive(r: &Region, to: PipeHandle, force: bool) -> bool {
    if pipe::sock_flags(r, to) & pipe::SOCK_SHUT_RD != 0 {
        return false;
    }
    alive(r, to, force)
}

fn alive(r: &Region, to: PipeHandle, force: bool) -> bool {
    let gens = pipe::liveness_gens(r, to);
    let slot = (!thread::in_vfork_child()).then(|| &ALIVE[to.idx as usize % ALIVE.len()]);
    if let Some((k, g)) = slot
        && !force
        && k.load(Ordering::Acquire) == to.to_bits()
        && g.load(Ordering::Acquire) == seen_key(to, gens)
    {
        return true;
    }
    let yes = pipe::object_ino(r, to).is_some_and(diag::exists);
    if let (true, Some((k, g))) = (yes, slot) {
        k.store(to.to_bits(), Ordering::Release);
        g.store(seen_key(to, gens), Ordering::Release);
    }
    yes
}

/// A receiver with an empty queue: whether the kernel must answer (its placeholder holds a
/// datagram from a sender without the shim, or is shut down for reading).
pub fn kernel_has_more(r: &Region, p: &PipeFd) -> bool {
    pipe::sock_flags(r, p.pipe) & pipe::SOCK_SHUT_RD != 0 || kernel_readable(p.fd)
}

/// Whether the placeholder's kernel queue holds a datagram.
fn kernel_readable(fd: i32) -> bool {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let polled = sys::syscall6(libc::SYS_poll, &mut pfd as *mut libc::pollfd as usize, 1, 0, 0, 0, 0);
    polled.is_ok_and(|n| n == 1) && pfd.revents & libc::POLLIN != 0
}

/// A datagram with ancillary data (`msghdr` `m` at `umsg`): the kernel carries it, fds,
/// credentials, errors and all, and a shim receiver's queue gets a marker record
/// ([`pipe::FP_KERNEL_NEXT`]) after it, so the receiver reads it in its place among the
/// datagrams the shim carries (`sk_receive_queue` is one queue). A receive that finds its
/// queue empty reads the kernel's queue itself, so the datagram may already be gone when
/// its marker is read; the marker is then passed over.
pub fn send_with_control(
    r: &Region,
    g: &thread::Guard,
    p: &PipeFd,
    umsg: usize,
    m: &libc::msghdr,
    flags: i32,
) -> i64 {
    let mut addr = [0u8; SOCKADDR_UN_MAX];
    let to = if m.msg_namelen != 0 {
        addr_in(m.msg_name as usize, m.msg_namelen as usize, &mut addr)
            .and_then(|n| queue_named(r, &addr[..n]))
    } else {
        pipe::sock_peer(r, p.pipe)
    };
    let res =
        g.allow_signals(|| sys::syscall6(libc::SYS_sendmsg, p.fd as usize, umsg, flags as usize, 0, 0, 0));
    if let (Ok(_), Some(to)) = (res, to) {
        // Never waits: without room the datagram is only out of order.
        let env = pipes::Env::new(p, r, g, true, pipes::Side::DgramSend(to));
        let marker = pipe::UnixCb { fp: pipe::FP_KERNEL_NEXT, ..Default::default() };
        let _ = pipe::dgram_write(r, to, &[], Some(&marker), &env, None);
    }
    crate::base::iov::ret(res)
}

/// A send of `iov`, to `dest` (the user's address and length) or to the connected peer, in
/// `unix_dgram_sendmsg`'s order of checks. None: the kernel serves it.
pub fn send(
    r: &Region,
    g: &thread::Guard,
    p: &PipeFd,
    iov: &[Iov],
    flags: i32,
    dest: Option<(usize, usize)>,
) -> Option<Result<usize, Errno>> {
    if flags & libc::MSG_OOB != 0 {
        return Some(Err(libc::EOPNOTSUPP));
    }
    let mut addr = [0u8; SOCKADDR_UN_MAX];
    let dest_len = match dest {
        // An address the kernel refuses (EINVAL, EFAULT) is its to refuse.
        Some((ua, ul)) => Some(addr_in(ua, ul, &mut addr)?),
        None => None,
    };
    let own = pipe::sock_flags(r, p.pipe);
    let connected = pipe::sock_peer(r, p.pipe);
    if dest_len.is_none() && connected.is_none() {
        // ENOTCONN, or a peer the kernel serves.
        return None;
    }
    let passcred = pipe::sock_passcred(r, p.pipe);
    let mut cb = pipe::UnixCb { sender: p.pipe.to_bits() + 1, ..Default::default() };
    cb.addr_len = names::addr_of(r, p.pipe, &mut cb.addr) as u32;
    if passcred && cb.addr_len == 0 {
        // unix_autobind: the kernel picks the name.
        let family = (libc::AF_UNIX as u16).to_ne_bytes();
        let res = sys::syscall6(libc::SYS_bind, p.fd as usize, family.as_ptr() as usize, 2, 0, 0, 0);
        if let Err(e) = res {
            return Some(Err(e));
        }
        bound(r, p);
        cb.addr_len = names::addr_of(r, p.pipe, &mut cb.addr) as u32;
    }
    let total: usize = iov.iter().map(|v| v.1).sum();
    if total > pipe::PIPE_BUF
        && unix::getsockopt_int(p.fd, libc::SO_SNDBUF).is_ok_and(|b| total > (b as usize).saturating_sub(32))
    {
        return Some(Err(libc::EMSGSIZE));
    }
    // sock_alloc_send_pskb refuses a socket shut down for sending.
    if own & pipe::SOCK_SHUT_WR != 0 {
        return Some(Err(libc::EPIPE));
    }
    let to = match dest_len {
        Some(n) => queue_named(r, &addr[..n])?,
        None => connected?,
    };
    if !alive(r, to, false) {
        if dest_len.is_none() {
            // The kernel's send finds the peer dead: ECONNREFUSED, and it disconnects.
            pipe::sock_set_peer(r, p.pipe, None);
        }
        return None;
    }
    let env = pipes::Env::new(p, r, g, flags & libc::MSG_DONTWAIT != 0, pipes::Side::DgramSend(to));
    // sock_alloc_send_pskb: what this socket has in flight against its send buffer.
    match pipe::dgram_alloc(r, p.pipe, &env) {
        Err(libc::EPIPE) => return None,
        Err(e) => return Some(Err(e)),
        Ok(()) => {}
    }
    let to_flags = pipe::sock_flags(r, to);
    // unix_may_send: a socket connected to another accepts nothing from us. Connected to a
    // socket the kernel serves, it may still be ours (its name was not entered when it
    // connected: no room in the region): the kernel knows.
    let to_peer = pipe::sock_peer(r, to);
    if to_flags & pipe::SOCK_PEER_KERNEL != 0 {
        return None;
    }
    if to_peer.is_some_and(|o| o != p.pipe) {
        return Some(Err(libc::EPERM));
    }
    if to_flags & pipe::SOCK_SHUT_RD != 0 {
        return Some(Err(libc::EPIPE));
    }
    if passcred || pipe::sock_passcred(r, to) {
        let me = scm::own_creds(0);
        (cb.pid, cb.uid, cb.gid) = (me.pid, me.uid, me.gid);
    }
    let qlen = (to != p.pipe && to_peer != Some(p.pipe)).then(|| r.header().limits.unix_max_dgram_qlen);
    match pipe::dgram_write(r, to, iov, Some(&cb), &env, qlen) {
        // Gone while we waited: the kernel's answer (ECONNREFUSED) and disconnect.
        Err(libc::EPIPE) if !alive(r, to, true) => {
            if dest_len.is_none() {
                pipe::sock_set_peer(r, p.pipe, None);
            }
            None
        }
        // Larger than a queue, though within a send buffer the user raised; or no memory for
        // the queue: the kernel delivers it.
        Err(libc::EMSGSIZE | pipe::NO_SPACE) => None,
        res => Some(res),
    }
}

/// A receive from the socket's own queue into `iov`; the sender's address into `ctl.src`.
/// None: the kernel answers (its placeholder has something, or the call is one the shim
/// leaves to it).
pub fn recv(
    r: &Region,
    g: &thread::Guard,
    p: &PipeFd,
    iov: &[Iov],
    flags: i32,
    ctl: &mut Ctl,
) -> Option<Result<Got, Errno>> {
    if flags & libc::MSG_OOB != 0 {
        return Some(Err(libc::EOPNOTSUPP));
    }
    let env = pipes::Env::new(p, r, g, flags & libc::MSG_DONTWAIT != 0, pipes::Side::DgramRecv);
    let peek = flags & libc::MSG_PEEK != 0;
    let mut cb = pipe::UnixCb::default();
    let mut res = pipe::record_read(r, p.pipe, iov, &env, peek, &mut cb);
    // A marker: the kernel's next datagram is this one (taken off our queue unless peeking),
    // unless a receive took it already.
    while let Ok(Some(_)) = res
        && cb.fp == pipe::FP_KERNEL_NEXT
    {
        if kernel_readable(p.fd) {
            return None;
        }
        if peek {
            let _ = pipe::record_read(r, p.pipe, &[], &env, false, &mut cb);
        }
        res = pipe::record_read(r, p.pipe, iov, &env, peek, &mut cb);
    }
    match res {
        Ok(Some((n, len))) => {
            let alen = (cb.addr_len as usize).min(SOCKADDR_UN_MAX);
            ctl.src = Some((cb.addr, alen));
            if pipe::sock_passcred(r, p.pipe) {
                let (pid, uid, gid) = scm::creds_seen(&cb);
                scm::put_creds(ctl, pid, uid, gid);
            }
            Some(Ok((if flags & libc::MSG_TRUNC != 0 { len } else { n }, len > n)))
        }
        Ok(None) => {
            if pipe::sock_flags(r, p.pipe) & pipe::SOCK_SHUT_RD == 0 {
                pipe::sock_change_flags(r, p.pipe, pipe::SOCK_KERNEL_SEEN, 0);
            }
            None
        }
        Err(e) => Some(Err(e)),
    }
}

/// `shutdown`: the kernel's, and our record of it (senders see RCV_SHUTDOWN as EPIPE).
pub fn shutdown(r: &Region, p: &PipeFd, how: u64) -> i64 {
    let res = sys::syscall6(libc::SYS_shutdown, p.fd as usize, how as usize, 0, 0, 0, 0);
    if res.is_ok() {
        let set = match how as i32 {
            libc::SHUT_RD => pipe::SOCK_SHUT_RD,
            libc::SHUT_WR => pipe::SOCK_SHUT_WR,
            _ => pipe::SOCK_SHUT_RD | pipe::SOCK_SHUT_WR,
        };
        pipe::sock_change_flags(r, p.pipe, set, 0);
        pipe::note_close(r, p.pipe);
    }
    crate::base::iov::ret(res)
}

/// The socket will be read by a program without the shim: datagrams to it go to the kernel.
pub fn forget(r: &Region, p: &PipeFd) {
    names::unregister_dgram(r, p.pipe);
}

/// A receive queue's write readiness (`unix_dgram_poll`): its socket's charge writable, and
/// room at its connected peer if that is the shim's, alive (a dead one's send fails at once,
/// which POLLOUT allows) and not connected back.
pub fn writable(r: &Region, h: PipeHandle) -> bool {
    if !pipe::sock_writable(r, h) {
        return false;
    }
    match pipe::sock_peer(r, h) {
        Some(to) if pipe::is_live(r, to) && pipe::sock_peer(r, to) != Some(h) => {
            pipe::dgram_room(r, to, r.header().limits.unix_max_dgram_qlen)
        }
        _ => true,
    }
}
