//! Ancillary data on served sockets (net/core/scm.c). The data travels through the region;
//! what only the kernel can carry, the fds (kept alive in flight, installed in the receiver)
//! and explicit credentials (checked against the sender's rights), travels as a token: a
//! 16-byte message on the placeholder kernel socket, sent with the user's own control data,
//! whose id the queued message's header ([`UnixCb::fp`]) names. The kernel validates the
//! control data and gives its errno; the receiver takes the token with the user's control
//! buffer, so truncation, MSG_CTRUNC and MSG_CMSG_CLOEXEC are the kernel's too.
//! Credentials for SO_PASSCRED without a token are the shim's, built as `put_cmsg` does.

use crate::scratch;
use shared_state::pipe::{SOCKADDR_UN_MAX, UnixCb};
use shared_state::sys::{self, Errno};

use core::sync::atomic::{AtomicU32, Ordering};

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

/// The caller's credentials, as `scm_set_cred` takes them (tgid, real uid and gid).
pub fn own_creds(fp: u64) -> UnixCb {
    UnixCb { fp, pid: sys::getpid() as u32, uid: sys::getuid(), gid: sys::getgid(), ..UnixCb::default() }
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
    if recv_token(fd, &mut m, libc::MSG_CMSG_CLOEXEC).is_none() {
        return false;
    }
    // SAFETY: the u64s are plain bytes to look at; `m.msg_controllen` of them were written.
    let bytes = unsafe { core::slice::from_raw_parts(buf.as_ptr() as *const u8, ORPHAN_CTL) };
    let bytes = &bytes[..m.msg_controllen.min(ORPHAN_CTL)];
    let mut off = 0;
    while off + 16 <= bytes.len() {
        let word = |i: usize| u32::from_ne_bytes(bytes[off + i..off + i + 4].try_into().unwrap_or_default());
        let len = usize::from_ne_bytes(bytes[off..off + 8].try_into().unwrap_or_default());
        if len < 16 || off + len > bytes.len() {
            break;
        }
        if word(8) as i32 == libc::SOL_SOCKET && word(12) as i32 == libc::SCM_RIGHTS {
            for i in (16..len).step_by(4) {
                sys::close(word(i) as i32);
            }
        }
        off += len.next_multiple_of(8);
    }
    true
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
    if crate::copy::slice_out(ctl.ptr + ctl.used, &cm[..cmlen]).is_ok() {
        ctl.used += SPACE.min(room);
    }
}

/// SO_PEERCRED of `fd`: the credentials of a message sent before the receiver asked for them.
pub fn peer_creds(fd: i32) -> (u32, u32, u32) {
    let mut cr = libc::ucred { pid: 0, uid: u32::MAX, gid: u32::MAX };
    let _ = crate::unix::getsockopt_into(fd, libc::SO_PEERCRED, &mut cr);
    (cr.pid as u32, cr.uid, cr.gid)
}
