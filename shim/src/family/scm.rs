//! Ancillary data on served sockets (net/core/scm.c). The data travels through the region;
//! what only the kernel can carry, the fds (kept alive in flight, installed in the receiver)
//! and explicit credentials (checked against the sender's rights), travels as a token: a
//! 16-byte message on the placeholder kernel socket, sent with the user's own control data,
//! whose id the queued message's header ([`UnixCb::fp`]) names. The kernel validates the
//! control data and gives its errno; the receiver takes the token with the user's control
//! buffer, so truncation, MSG_CTRUNC and MSG_CMSG_CLOEXEC are the kernel's too.
//! Credentials for SO_PASSCRED without a token are the shim's, built as `put_cmsg` does.

use crate::base::scratch;
use shared_state::Region;
use shared_state::pipe::{self, SOCKADDR_UN_MAX, UnixCb};
use shared_state::sys::{self, Errno};

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A token's first bytes: tokens are told from anything else on the kernel socket by it.
const MAGIC: [u8; 8] = *b"ipcshim:";
const TOKEN: usize = 16;
/// Room for the control data of an orphan token: SCM_MAX_FD fds (CMSG_SPACE 1032) and
/// credentials (32).
const ORPHAN_CTL: usize = 1104;

/// This process's token counter (pid above it makes an id unique while it lives).
static SEQ: AtomicU32 = AtomicU32::new(0);

/// A new token id, never 0 (0 is "no token").
pub fn new_id() -> u64 {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed).wrapping_add(1).max(1);
    (sys::getpid() as u64) << 32 | seq as u64
}

/// The caller's credentials, as `scm_set_cred` takes them (tgid, real uid and gid), with the
/// PID namespace the pid is in.
pub fn own_creds(fp: u64) -> UnixCb {
    let pid = sys::getpid() as u32;
    UnixCb { fp, pid, uid: sys::getuid(), gid: sys::getgid(), pid_ns: pid_ns_of(pid), ..UnixCb::default() }
}

/// This process's PID namespace, as the nsfs inode of `/proc/self/ns/pid` (0 if unknown).
pub fn pid_ns() -> u32 {
    pid_ns_of(sys::getpid() as u32)
}

/// Cached with the pid it was read for: a child in a new PID namespace has another pid.
static PID_NS: AtomicU64 = AtomicU64::new(0);

fn pid_ns_of(pid: u32) -> u32 {
    let cached = PID_NS.load(Ordering::Relaxed);
    if cached != 0 && (cached >> 32) as u32 == pid {
        return cached as u32;
    }
    let ns = sys::fstatat(libc::AT_FDCWD, b"/proc/self/ns/pid\0").map_or(0, |st| st.st_ino as u32);
    PID_NS.store((pid as u64) << 32 | ns as u64, Ordering::Relaxed);
    ns
}

/// The credentials a receiver that asked for them sees for a message with header `cb`
/// (`scm_recv`): none were added (neither end had SO_PASSCRED when it was sent) is the
/// kernel's "unknown", pid 0 and the overflow ids; a sender in another PID namespace is not
/// there (pid 0: a sender the receiver could see sent its credentials through the kernel).
pub fn creds_seen(cb: &UnixCb) -> (u32, u32, u32) {
    if cb.pid == 0 {
        let (uid, gid) = overflow_ids();
        return (0, uid, gid);
    }
    let visible = cb.pid_ns == 0 || cb.pid_ns == pid_ns();
    (if visible { cb.pid } else { 0 }, cb.uid, cb.gid)
}

/// `overflowuid` and `overflowgid` (kernel/sys.c), what `from_kuid_munged` gives for an id
/// with no mapping: read once.
fn overflow_ids() -> (u32, u32) {
    static IDS: AtomicU64 = AtomicU64::new(0);
    let v = IDS.load(Ordering::Relaxed);
    if v != 0 {
        return (v as u32, (v >> 32) as u32 & 0x7fff_ffff);
    }
    let read = |path: &[u8]| {
        let mut buf = [0u8; 16];
        sys::open(path, libc::O_RDONLY | libc::O_CLOEXEC, 0)
            .map(|fd| {
                let n = sys::read(fd, &mut buf).unwrap_or(0);
                sys::close(fd);
                buf[..n]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .fold(0u32, |v, &b| v * 10 + (b - b'0') as u32)
            })
            .ok()
            .filter(|&id| id != 0)
            .unwrap_or(65534)
    };
    let (uid, gid) = (read(b"/proc/sys/kernel/overflowuid\0"), read(b"/proc/sys/kernel/overflowgid\0"));
    IDS.store(1 << 63 | (gid as u64) << 32 | uid as u64, Ordering::Relaxed);
    (uid, gid)
}

/// The largest control buffer [`carries_nothing`] looks into; larger ones go to the kernel.
const SCAN_CTL: usize = 1024;

/// Whether control data the kernel would accept carries nothing for the receiver
/// (`__scm_send`: only cmsgs of other levels, and SCM_RIGHTS with no whole fd), so the
/// message is plain data. Anything else, or anything the kernel would refuse (a bad header,
/// an unknown SOL_SOCKET type, a fault), is the kernel's to judge.
pub fn carries_nothing(ctl: usize, len: usize) -> bool {
    const HDR: usize = 16;
    if len > SCAN_CTL {
        return false;
    }
    let Ok(mut buf) = scratch::take(SCAN_CTL, 0u8) else { return false };
    if crate::base::copy::slice_in(&mut buf[..len], ctl).is_err() {
        return false;
    }
    let bytes = &buf[..len];
    let mut off = 0;
    // for_each_cmsghdr with CMSG_OK.
    while off + HDR <= len {
        let cmsg_len = usize::from_ne_bytes(bytes[off..off + 8].try_into().unwrap_or_default());
        if cmsg_len < HDR || cmsg_len > len - off {
            return false;
        }
        let level = i32::from_ne_bytes(bytes[off + 8..off + 12].try_into().unwrap_or_default());
        let ty = i32::from_ne_bytes(bytes[off + 12..off + 16].try_into().unwrap_or_default());
        if level == libc::SOL_SOCKET && (ty != libc::SCM_RIGHTS || (cmsg_len - HDR) / 4 > 0) {
            return false;
        }
        off += cmsg_len.next_multiple_of(8);
    }
    true
}

/// The kernel's verdict on control data without queueing anything: it is sent with one byte
/// over a socketpair of our own (the same `__scm_send` checks: ESRCH, EPERM, EBADF, EINVAL…),
/// and what got through is taken back and closed. For a send that would fail with EAGAIN,
/// which the kernel reports only after the control data passed.
pub fn refused(ctl: usize, len: usize) -> Option<Errno> {
    let (a, b) = sys::socketpair(libc::SOCK_DGRAM | libc::SOCK_CLOEXEC).ok()?;
    // Shaped as a token (of no id), like everything else the shim sends on kernel sockets.
    let mut data = [0u8; TOKEN];
    data[..8].copy_from_slice(&MAGIC);
    let mut iov = libc::iovec { iov_base: core::ptr::null_mut(), iov_len: 0 };
    let m = msghdr(&mut data, &mut iov, ctl, len);
    let sent = sys::syscall6(
        libc::SYS_sendmsg,
        a as usize,
        &m as *const _ as usize,
        (libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) as usize,
        0,
        0,
        0,
    );
    if sent.is_ok() {
        drop_orphan(b, &mut data, &mut iov);
    }
    sys::close(a);
    sys::close(b);
    sent.err()
}

/// SCM_CREDENTIALS with our own credentials, as control data: sent through the kernel when
/// the receiver is in another PID namespace, so that it sees our pid as it can.
#[repr(C, align(8))]
pub struct OwnCredsCtl(pub [u8; 32]);

pub fn own_creds_ctl() -> OwnCredsCtl {
    let mut c = OwnCredsCtl([0; 32]);
    c.0[..8].copy_from_slice(&28usize.to_ne_bytes());
    c.0[8..12].copy_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
    c.0[12..16].copy_from_slice(&libc::SCM_CREDENTIALS.to_ne_bytes());
    c.0[16..20].copy_from_slice(&sys::getpid().to_ne_bytes());
    c.0[20..24].copy_from_slice(&sys::getuid().to_ne_bytes());
    c.0[24..28].copy_from_slice(&sys::getgid().to_ne_bytes());
    c
}

/// The user's control buffer of a receive, and what the receive put there.
#[derive(Clone, Copy)]
pub struct Ctl {
    pub ptr: usize,
    pub len: usize,
    /// Bytes written (msg_controllen on return).
    pub used: usize,
    /// MSG_CTRUNC, if the kernel or [`put_creds`] cut something.
    pub flags: i32,
    /// A datagram's source address (bytes, length), from its header; None: the peer's name.
    pub src: Option<([u8; SOCKADDR_UN_MAX], usize)>,
}

impl Ctl {
    /// No control buffer (read, recv, recvfrom).
    pub const fn none() -> Ctl {
        Ctl { ptr: 0, len: 0, used: 0, flags: 0, src: None }
    }
}

fn msghdr(data: &mut [u8; TOKEN], iov: &mut libc::iovec, ctl: usize, len: usize) -> libc::msghdr {
    iov.iov_base = data.as_mut_ptr().cast();
    iov.iov_len = TOKEN;
    // SAFETY: an all-zero msghdr is a valid value (null pointers, zero lengths).
    let mut m: libc::msghdr = unsafe { core::mem::zeroed() };
    m.msg_iov = iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl as *mut libc::c_void;
    m.msg_controllen = len;
    m
}

/// Sends token `id` with the user's control data on `fd`, the kernel socket under a served
/// one. Its error (a bad fd, a bad cmsg, too many fds, foreign credentials) is the call's.
pub fn send_token(fd: i32, id: u64, ctl: usize, ctl_len: usize, flags: i32) -> Result<(), Errno> {
    let mut data = [0u8; TOKEN];
    data[..8].copy_from_slice(&MAGIC);
    data[8..].copy_from_slice(&id.to_ne_bytes());
    let mut iov = libc::iovec { iov_base: core::ptr::null_mut(), iov_len: 0 };
    let m = msghdr(&mut data, &mut iov, ctl, ctl_len);
    let flags = libc::MSG_NOSIGNAL | (flags & libc::MSG_DONTWAIT);
    sys::syscall6(libc::SYS_sendmsg, fd as usize, &m as *const _ as usize, flags as usize, 0, 0, 0)
        .map(|_| ())
}

fn recv_token(fd: i32, m: &mut libc::msghdr, flags: i32) -> Option<u64> {
    let flags = (flags | libc::MSG_DONTWAIT) as usize;
    let n = sys::syscall6(libc::SYS_recvmsg, fd as usize, m as *mut _ as usize, flags, 0, 0, 0).ok()?;
    // SAFETY: msg_iov points at the caller's one iovec of TOKEN bytes.
    let data = unsafe { core::slice::from_raw_parts((*m.msg_iov).iov_base as *const u8, TOKEN) };
    (n == TOKEN && data[..8] == MAGIC).then(|| u64::from_ne_bytes(data[8..].try_into().unwrap_or_default()))
}

/// Takes token `id` from `fd` into the user's control buffer (peeking with MSG_PEEK), with
/// the receive queue locked as the read takes its message. Senders put tokens on the kernel
/// socket in their messages' queue order (the scm lock), and every earlier message's token
/// was taken under this lock with it, so a token ahead of ours is one no receiver will take:
/// its message never got queued (the sender failed or was killed between the two steps),
/// was dropped unread (a fault), or its receiver was killed holding the lock. Its fds are
/// closed, as the kernel drops an unread message's.
pub fn take_token(fd: i32, id: u64, flags: i32, ctl: &mut Ctl) {
    let mut data = [0u8; TOKEN];
    let mut iov = libc::iovec { iov_base: core::ptr::null_mut(), iov_len: 0 };
    // Each round takes ours or drops one token ahead of it, of which there are finitely many.
    while let Some(next) = peek_token(fd, &mut data, &mut iov) {
        if next == id {
            let mut m = msghdr(&mut data, &mut iov, ctl.ptr, ctl.len);
            if recv_token(fd, &mut m, flags & (libc::MSG_PEEK | libc::MSG_CMSG_CLOEXEC)).is_some() {
                ctl.used = m.msg_controllen;
                ctl.flags |= m.msg_flags & libc::MSG_CTRUNC;
            }
            return;
        }
        if !drop_orphan(fd, &mut data, &mut iov) {
            return;
        }
    }
}

fn peek_token(fd: i32, data: &mut [u8; TOKEN], iov: &mut libc::iovec) -> Option<u64> {
    let mut m = msghdr(data, iov, 0, 0);
    recv_token(fd, &mut m, libc::MSG_PEEK)
}

/// Takes the token at the head of `fd` and closes its fds; false if it could not.
fn drop_orphan(fd: i32, data: &mut [u8; TOKEN], iov: &mut libc::iovec) -> bool {
    // Aligned as `struct cmsghdr`.
    let Ok(mut buf) = scratch::take(ORPHAN_CTL / 8, 0u64) else { return false };
    let mut m = msghdr(data, iov, buf.as_mut_ptr() as usize, ORPHAN_CTL);
    // Any message: `refused`'s carries no token id.
    let flags = (libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT) as usize;
    if sys::syscall6(libc::SYS_recvmsg, fd as usize, &mut m as *mut _ as usize, flags, 0, 0, 0).is_err() {
        return false;
    }
    // SAFETY: the u64s are plain bytes to look at; `m.msg_controllen` of them were written.
    let bytes = unsafe { core::slice::from_raw_parts(buf.as_ptr() as *const u8, ORPHAN_CTL) };
    each_passed_fd(&bytes[..m.msg_controllen.min(ORPHAN_CTL)], sys::close);
    true
}

/// Calls `f` with each fd of the SCM_RIGHTS messages in control data `bytes`.
fn each_passed_fd(bytes: &[u8], mut f: impl FnMut(i32)) {
    let mut off = 0;
    while off + 16 <= bytes.len() {
        let word = |i: usize| u32::from_ne_bytes(bytes[off + i..off + i + 4].try_into().unwrap_or_default());
        let len = usize::from_ne_bytes(bytes[off..off + 8].try_into().unwrap_or_default());
        if len < 16 || off + len > bytes.len() {
            break;
        }
        if word(8) as i32 == libc::SOL_SOCKET && word(12) as i32 == libc::SCM_RIGHTS {
            for i in (16..len).step_by(4) {
                f(word(i) as i32);
            }
        }
        off += len.next_multiple_of(8);
    }
}

/// A send of the user's control data `ctl` (`len` bytes) over any socket: the shim objects of
/// the fds it passes are marked in flight, so that a collection does not take them for
/// garbage while no process holds them (see `pipe::note_in_flight`), and those fds are no
/// longer their files' only holders (see `fd::Sole`).
pub fn mark_passed(r: &Region, ctl: usize, len: usize) {
    if ctl == 0 {
        return;
    }
    // Aligned as `struct cmsghdr`, in scratch memory (too large for a small stack).
    let Ok(mut buf) = scratch::take(ORPHAN_CTL / 8, 0u64) else {
        crate::base::fd::share_all();
        return;
    };
    // SAFETY: the u64s are plain bytes, ORPHAN_CTL of them, ours while `buf` lives.
    let bytes = unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, ORPHAN_CTL) };
    let n = len.min(ORPHAN_CTL);
    if n < len {
        // Fds past what is looked at (many small messages) are not known.
        crate::base::fd::share_all();
    }
    if crate::base::copy::slice_in(&mut bytes[..n], ctl).is_err() {
        return;
    }
    each_passed_fd(&bytes[..n], |fd| {
        crate::base::fd::share(fd);
        if let Some(p) = crate::base::fd::lookup(r, fd) {
            pipe::note_in_flight(r, p.pipe);
            if let Some(peer) = pipe::sock_peer(r, p.pipe) {
                pipe::note_in_flight(r, peer);
            }
        }
    });
}

/// SCM_CREDENTIALS into the user's control buffer, as `put_cmsg` writes one (a short buffer
/// gets what fits and MSG_CTRUNC; a fault leaves it unwritten, as the kernel ignores it).
pub fn put_creds(ctl: &mut Ctl, pid: u32, uid: u32, gid: u32) {
    const LEN: usize = 16 + 12;
    const SPACE: usize = 32;
    let room = ctl.len - ctl.used;
    if ctl.ptr == 0 || room < 16 {
        ctl.flags |= libc::MSG_CTRUNC;
        return;
    }
    let cmlen = if room < LEN {
        ctl.flags |= libc::MSG_CTRUNC;
        room
    } else {
        LEN
    };
    let mut cm = [0u8; LEN];
    cm[..8].copy_from_slice(&cmlen.to_ne_bytes());
    cm[8..12].copy_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
    cm[12..16].copy_from_slice(&libc::SCM_CREDENTIALS.to_ne_bytes());
    cm[16..20].copy_from_slice(&pid.to_ne_bytes());
    cm[20..24].copy_from_slice(&uid.to_ne_bytes());
    cm[24..28].copy_from_slice(&gid.to_ne_bytes());
    if crate::base::copy::slice_out(ctl.ptr + ctl.used, &cm[..cmlen]).is_ok() {
        ctl.used += SPACE.min(room);
    }
}
