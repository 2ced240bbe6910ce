//! AF_UNIX socket queues over the pipe object, after `net/unix/af_unix.c`: a connection's
//! state and flags (`unix_sock`'s), out-of-band bytes, records (seqpacket and datagrams) with
//! their `unix_skb_parms`, the send-buffer charges of `sock_wmalloc`/`sock_wfree`, datagram
//! receive queues, and loopback UDP's enqueue. The byte ring, its locks and waits are the
//! pipe's (`super`); each socket's send queue is one pipe object.

use super::*;

/// What a stream read does at an out-of-band buffer (`manage_oob`).
pub(super) enum OobMark {
    /// The read ends before it (it has data already).
    Stop,
    /// Past a taken byte's mark.
    Pass,
    /// Past the current byte, which is dropped (not read inline).
    Drop,
    /// It is data: an earlier out-of-band byte, or the current one with SO_OOBINLINE.
    Read,
}

/// `manage_oob` for the buffer at `at` holding (or having held) an out-of-band byte, after
/// `copied` bytes; a read that is not a peek meeting the current byte makes it no longer
/// out of band (lock held).
pub(super) fn oob_mark(
    pipe: &PipeInodeInfo,
    at: u32,
    buf: PipeBuffer,
    copied: usize,
    peek: bool,
    env: &dyn PipeEnv,
) -> OobMark {
    let current = pipe.oob.load(Ordering::Acquire);
    if buf.len == 0 {
        // A byte taken by recv(MSG_OOB) still marks where it was, unless a later one does.
        return if copied > 0 && (current == 0 || current as u32 == at) {
            OobMark::Stop
        } else {
            OobMark::Pass
        };
    }
    if current != OOB_SET | at as u64 {
        return OobMark::Read;
    }
    if copied > 0 {
        return OobMark::Stop;
    }
    if !peek {
        pipe.oob.store(0, Ordering::Release);
    }
    if env.oob_inline() { OobMark::Read } else { OobMark::Drop }
}

/// `unix_stream_recv_urg`: the current out-of-band byte of the queue `h` into `iov` (a peek
/// leaves it; a receive leaves its mark). EINVAL with none, or with SO_OOBINLINE (`inline`).
/// A bad buffer gives EFAULT after the byte was taken, as the kernel's.
pub fn sock_recv_oob(
    region: &Region,
    h: PipeHandle,
    iov: &[(usize, usize)],
    peek: bool,
    inline: bool,
) -> Result<usize, Errno> {
    let act = enter(region, h)?;
    let pipe = act.pipe;
    let _g = lock_pipe(region, pipe)?;
    let current = pipe.oob.load(Ordering::Acquire);
    if inline || current == 0 {
        return Err(EINVAL);
    }
    let ring = pipe.ring()?;
    let at = current as u32;
    let cell = ring.buf(region, at);
    let b = PipeBuffer::load(cell);
    let mut to = IovIter::new(iov);
    let want = to.count.min(b.len);
    // SAFETY: offset + len <= PAGE in the slot's data page.
    let copied = to.copy(unsafe { ring.page(region, at).add(b.offset) }, want, true);
    if !peek {
        pipe.oob.store(0, Ordering::Release);
        cell.store(PipeBuffer { offset: b.offset + b.len, len: 0, ..b }.pack(), Ordering::Release);
    }
    count_call(region, pipe, Some(copied), false);
    if copied < want { Err(EFAULT) } else { Ok(1) }
}

/// Out-of-band bytes reads of the queue `h` dropped, which the kernel's FIONREAD still counts.
pub fn sock_oob_dropped(region: &Region, h: PipeHandle) -> u32 {
    live(region, h).map_or(0, |p| p.oob_dropped.load(Ordering::Relaxed))
}

/// Whether the queue `h` has an out-of-band byte to take (POLLPRI).
pub fn sock_oob_pending(region: &Region, h: PipeHandle) -> bool {
    live(region, h).is_some_and(|p| p.oob.load(Ordering::Acquire) != 0)
}

/// SIOCATMARK: whether the next byte a read of the queue `h` meets is the out-of-band mark.
pub fn sock_at_mark(region: &Region, h: PipeHandle) -> Result<bool, Errno> {
    let act = enter(region, h)?;
    let pipe = act.pipe;
    let _g = lock_pipe(region, pipe)?;
    let ring = pipe.ring()?;
    let (head, tail) = pipe.head_tail();
    if head == tail {
        return Ok(false);
    }
    let current = pipe.oob.load(Ordering::Acquire);
    let b = PipeBuffer::load(ring.buf(region, tail));
    let next_is = tail.wrapping_add(1) != head && current == OOB_SET | tail.wrapping_add(1) as u64;
    Ok(current == OOB_SET | tail as u64
        || (b.len == 0 && b.flags & PIPE_BUF_FLAG_OOB != 0 && (current == 0 || next_is)))
}

/// The owner of a stream socket's file (`F_SETOWN`): kind (`F_OWNER_*`) << 32 | id.
pub fn sock_owner(region: &Region, h: PipeHandle) -> u64 {
    live(region, h).map_or(0, |p| p.owner.load(Ordering::Acquire))
}

pub fn sock_set_owner(region: &Region, h: PipeHandle, owner: u64) {
    if let Some(p) = live(region, h) {
        p.owner.store(owner, Ordering::Release);
    }
}

/// A seqpacket socket's send (`unix_dgram_sendmsg` for a connected SOCK_SEQPACKET): the
/// iovecs are one record, queued whole or not at all (it waits for room for all of it), in
/// as many packet buffers as it takes, the last marked as the record's end, and published by
/// one store of the head; `cb`, if any, heads its first page. EMSGSIZE for a record larger
/// than the queue.
pub fn record_write(
    region: &Region,
    h: PipeHandle,
    iov: &[(usize, usize)],
    cb: Option<&UnixCb>,
    env: &dyn PipeEnv,
) -> Result<usize, Errno> {
    dgram_write(region, h, iov, cb, env, None)
}

/// Runs `store` (the ring store that queues or takes a datagram) and changes the charge of its
/// `sender` ([`UnixCb::sender`]) by `units` with it, both under the sender's `wmem_lock`: a
/// holder killed at any instant leaves that lock to be recovered, and the recovery counts the
/// charge again from the queues ([`recount`]). A sender that is gone has no charge to keep.
/// Returns the sender whose charge went down, for [`sender_write_space`], if that may make it
/// writable for a sleeper or an epoll set (see [`PipeInodeInfo::freed_wakes`]).
pub(super) fn charge_sender(
    region: &Region,
    sender: u64,
    units: i64,
    store: impl FnOnce(),
) -> Option<PipeHandle> {
    if sender == 0 {
        store();
        return None;
    }
    let h = PipeHandle::from_bits(sender - 1);
    let Ok(act) = enter(region, h) else {
        store();
        return None;
    };
    let s = act.pipe;
    let Ok(g) = lock_charge(region, s, sender) else {
        store();
        return None;
    };
    store();
    let was = s.wmem.load(Ordering::Relaxed) as i64;
    let now = (was + units).clamp(0, u32::MAX as i64);
    s.wmem.store(now as u32, Ordering::Relaxed);
    drop(g);
    let unwritable = || was as usize * CHARGE_UNIT >= s.sndbuf(region) / 4;
    (units < 0 && (s.ep_usage.load(Ordering::Relaxed) != 0 || unwritable())).then_some(h)
}

/// A datagram of sender `h` was taken (`sock_wfree`): if its charge is now writable, its
/// sleepers are woken, and with `epoll` its epoll items (`unix_write_space`).
pub(super) fn sender_write_space(region: &Region, h: Option<PipeHandle>, epoll: bool) {
    if let Some(h) = h
        && let Some(s) = live(region, h)
    {
        s.write_space(region, h.idx, epoll);
    }
}

/// Takes sender `s`'s charge lock (`sender`: its handle bits + 1); after a holder died, its
/// charge is counted again.
pub(super) fn lock_charge<'a>(
    region: &Region,
    s: &'a PipeInodeInfo,
    sender: u64,
) -> Result<LockGuard<'a>, Errno> {
    let g = s.wmem_lock.lock().map_err(|_| ENOMEM)?;
    if g.recovered {
        region.header().counters.lock_recoveries.fetch_add(1, Ordering::Relaxed);
        s.wmem.store(recount(region, sender).min(u32::MAX as u64) as u32, Ordering::Relaxed);
    }
    Ok(g)
}

/// The charge, in units, of the datagrams `sender` (handle bits + 1) has queued in any receive
/// queue. Its caller holds the sender's charge lock, so none of them is queued or taken
/// meanwhile and each stays in its ring slot (a resize keeps ring indices; a queue whose
/// ring was switched under the count is counted again).
pub(super) fn recount(region: &Region, sender: u64) -> u64 {
    let mut units = 0;
    for idx in 0..ns(region).hwm.load(Ordering::Acquire).min(PIPE_MAX) {
        let p = slot(region, idx);
        loop {
            if p.ident.load(Ordering::Acquire) & 0xff == FREE || !p.recv_queue() {
                break;
            }
            let desc = p.ring.load(Ordering::Acquire);
            let Some(ring) = Ring::unpack(desc) else { break };
            let (head, tail) = p.head_tail();
            let (mut n, mut at, mut first) = (0, tail, true);
            while at != head && head.wrapping_sub(at) <= ring.size() {
                let b = PipeBuffer::load(ring.buf(region, at));
                let cb = ring.cb(region, at, b);
                if first && cb.sender == sender {
                    n += cb.charge as u64;
                }
                first = b.flags & PIPE_BUF_FLAG_RECORD_END != 0;
                at = at.wrapping_add(1);
            }
            if p.ring.load(Ordering::Acquire) == desc {
                units += n;
                break;
            }
        }
    }
    units
}

/// Takes the record at the tail of the receive queue `pipe` (locked, or dying) off it, its
/// sender's charge with it (`skb_queue_purge`, one skb at a time), waking the sender (its epoll
/// items only with `epoll`: not under the namespace lock).
pub(super) fn drop_record(
    region: &Region,
    pipe: &PipeInodeInfo,
    ring: Ring,
    head: u32,
    tail: u32,
    epoll: bool,
) {
    let cb = ring.cb(region, tail, PipeBuffer::load(ring.buf(region, tail)));
    let mut at = tail;
    while at != head {
        let end = PipeBuffer::load(ring.buf(region, at)).flags & PIPE_BUF_FLAG_RECORD_END != 0;
        at = at.wrapping_add(1);
        if end {
            break;
        }
    }
    let taken = || pipe.head_tail.store(join(head, at), Ordering::Release);
    sender_write_space(region, charge_sender(region, cb.sender, -(cb.charge as i64), taken), epoll);
}

/// Every record of the receive queue `pipe` (locked, or dying), taken off with its charge.
pub(super) fn drop_records(region: &Region, pipe: &PipeInodeInfo, epoll: bool) {
    let Ok(ring) = pipe.ring() else { return };
    loop {
        let (head, tail) = pipe.head_tail();
        if head == tail || head.wrapping_sub(tail) > ring.size() {
            break;
        }
        drop_record(region, pipe, ring, head, tail, epoll);
    }
}

/// The thread holding datagram socket `h`'s charge lock (0 when none), for tests that kill it.
pub fn charge_lock_holder(region: &Region, h: PipeHandle) -> i32 {
    live(region, h).map_or(0, |p| (p.wmem_lock.owner_word() & 0x3fff_ffff) as i32)
}

/// `sock_alloc_send_pskb` for a datagram socket `h` that sends into receive queues: it waits
/// (or says EAGAIN) while what it has in flight charges its send buffer fully; once it slept,
/// until the charge is writable (`unix_write_space` wakes it then).
pub fn dgram_alloc(region: &Region, h: PipeHandle, env: &dyn PipeEnv) -> Result<(), Errno> {
    // Below its send buffer (the common case) it goes on at once; a look at a slot freed
    // meanwhile only lets through a send that finds its socket gone anyway.
    if live(region, h).is_some_and(|s| s.may_send(region, false)) {
        return Ok(());
    }
    let act = enter(region, h)?;
    let s = act.pipe;
    let (mut slept, mut signalled) = (false, false);
    while !s.may_send(region, slept) {
        if env.nonblocking() {
            return Err(EAGAIN);
        }
        if signalled {
            if !env.restart_after_signal() {
                return Err(EINTR);
            }
            signalled = false;
        }
        slept = true;
        match wait_for(region, s, WRITERS, env, &|| s.writable(region), None) {
            Waited::Woken => {}
            Waited::Interrupted => signalled = true,
            Waited::PeerGone => return Err(EPIPE),
            Waited::TimedOut => return Err(EAGAIN),
        }
    }
    Ok(())
}

/// [`record_write`] into a datagram receive queue that also counts as full when it holds more
/// than `qlen` records (`unix_recvq_full` for a sender the receiver is not connected to).
pub fn dgram_write(
    region: &Region,
    h: PipeHandle,
    iov: &[(usize, usize)],
    cb: Option<&UnixCb>,
    env: &dyn PipeEnv,
    qlen: Option<u32>,
) -> Result<usize, Errno> {
    let mut from = IovIter::new(iov);
    let total = from.count;
    // The header, if any, starts the first page.
    let hdr = if cb.is_some() { CB_LEN } else { 0 };
    let need = (total + hdr).div_ceil(PAGE).max(1) as u32;
    let act = enter(region, h)?;
    let pipe = act.pipe;
    note_cpu(&pipe.wr_cpu);
    // A socket's own queue: one skb, sent while the charge is below the send buffer
    // (`sock_alloc_send_pskb`), charged with the record's last buffer.
    let acct = pipe.accounted() && qlen.is_none();
    // A datagram from a socket with a receive queue of its own charges that socket
    // (`skb_set_owner_w`), and its receiver's ring grows as needed.
    let sender = cb.map_or(0, |c| c.sender);
    let charge = if sender != 0 { (skb::dgram_truesize(total) / CHARGE_UNIT) as u32 } else { 0 };
    let grows = pipe.recv_queue();
    let mut slept = false;
    let mut signalled = false;
    let mut guard = Some(lock_pipe(region, pipe)?);
    let mut was_empty = false;
    let res = 'out: loop {
        if pipe.is_handed_back() {
            break 'out Err(HANDED_BACK);
        }
        if env.peer_gone(false) {
            break 'out Err(EPIPE);
        }
        let mut ring = match pipe.ring() {
            Ok(r) => r,
            Err(e) => break 'out Err(e),
        };
        let (head, tail) = pipe.head_tail();
        let charge_ok = !acct || pipe.may_send(region, slept);
        let queue_full = qlen.is_some_and(|max| records_queued(region, ring, head, tail) > max);
        if acct && charge_ok || grows && !queue_full {
            match grow_for(region, pipe, ring, head, tail, need) {
                Ok(r) => ring = r,
                Err(_) => {
                    env.out_of_space();
                    break 'out Err(NO_SPACE);
                }
            }
        }
        if need > ring.size() {
            break 'out Err(libc::EMSGSIZE);
        }
        if ring.size() - head.wrapping_sub(tail) >= need && !queue_full && charge_ok {
            if back_slots(region, pipe, ring, head, need).is_err() {
                env.out_of_space();
                break 'out Err(NO_SPACE);
            }
            for i in 0..need {
                let slot = head.wrapping_add(i);
                let at = if i == 0 { hdr } else { 0 };
                let len = (total + hdr - i as usize * PAGE - at).min(PAGE - at);
                // SAFETY: at < PAGE: inside the slot's data page.
                if from.copy(unsafe { ring.page(region, slot).add(at) }, len, false) < len {
                    break 'out Err(EFAULT);
                }
                let end = if i + 1 == need { PIPE_BUF_FLAG_RECORD_END } else { 0 };
                let mut flags = PIPE_BUF_FLAG_PACKET | end;
                if let (0, Some(cb)) = (i, cb) {
                    ring.set_cb(region, slot, UnixCb { charge, ..*cb });
                    flags |= PIPE_BUF_FLAG_CB;
                }
                let charge =
                    if acct && i + 1 == need { (skb::dgram_truesize(total) / CHARGE_UNIT) as u32 } else { 0 };
                ring.buf(region, slot)
                    .store(PipeBuffer { offset: at, len, flags, charge }.pack(), Ordering::Release);
            }
            let publish = || pipe.head_tail.store(join(head.wrapping_add(need), tail), Ordering::Release);
            let _ = charge_sender(region, sender, charge as i64, publish);
            was_empty = head == tail;
            break 'out Ok(total);
        }
        if env.nonblocking() {
            break 'out if env.peer_gone_now() { Err(EPIPE) } else { Err(EAGAIN) };
        }
        if signalled {
            if !env.restart_after_signal() {
                break 'out Err(EINTR);
            }
            signalled = false;
        }
        guard = None;
        let room = || {
            if acct {
                return pipe.writable(region) || pipe.is_handed_back();
            }
            let (head, tail) = pipe.head_tail();
            let ring = Ring::unpack(pipe.ring.load(Ordering::Acquire));
            let size = ring.map_or(0, Ring::size);
            let queue_full = match (qlen, ring) {
                (Some(max), Some(ring)) => records_queued(region, ring, head, tail) > max,
                _ => false,
            };
            size.saturating_sub(head.wrapping_sub(tail)) >= need && !queue_full || pipe.is_handed_back()
        };
        slept = true;
        match wait_for(region, pipe, WRITERS, env, &room, None) {
            Waited::Woken => {}
            Waited::Interrupted => signalled = true,
            Waited::PeerGone => break 'out Err(EPIPE),
            Waited::TimedOut => break 'out Err(EAGAIN),
        }
        guard = match lock_pipe(region, pipe) {
            Ok(g) => Some(g),
            Err(e) => break 'out Err(e),
        };
    };
    drop(guard);
    // An epoll set watching the queue sees every record arrive (as pipe_write's wake-ups).
    let polled = res.is_ok() && pipe.ep_usage.load(Ordering::Relaxed) != 0;
    if was_empty || polled {
        pipe.wake(READERS, region);
    }
    count_call(region, pipe, res.ok(), true);
    res
}

/// How many records the ring holds between `tail` and `head` (`skb_queue_len`).
pub(super) fn records_queued(region: &Region, ring: Ring, head: u32, tail: u32) -> u32 {
    let mut n = 0;
    let mut at = tail;
    while at != head {
        n += (PipeBuffer::load(ring.buf(region, at)).flags & PIPE_BUF_FLAG_RECORD_END != 0) as u32;
        at = at.wrapping_add(1);
    }
    n
}

/// A seqpacket socket's receive: the next record, (bytes copied, the record's length); what
/// does not fit is dropped (MSG_TRUNC), the whole record consumed by one store of the tail
/// unless `peek`; `cb` gets its header (zero if it has none). None at end of file.
pub fn record_read(
    region: &Region,
    h: PipeHandle,
    iov: &[(usize, usize)],
    env: &dyn PipeEnv,
    peek: bool,
    cb: &mut UnixCb,
) -> Result<Option<(usize, usize)>, Errno> {
    let mut to = IovIter::new(iov);
    let want = to.count;
    let act = enter(region, h)?;
    let pipe = act.pipe;
    note_cpu(&pipe.rd_cpu);
    let mut guard = Some(lock_pipe(region, pipe)?);
    let mut wake_writer = false;
    // The charge, in units, of the record taken off the socket's own queue.
    let mut own = 0usize;
    let mut freed = None;
    let res = 'out: loop {
        if pipe.is_handed_back() && !pipe.readable() {
            break 'out Err(HANDED_BACK);
        }
        let ring = match pipe.ring() {
            Ok(r) => r,
            Err(e) => break 'out Err(e),
        };
        let (head, tail) = pipe.head_tail();
        if head != tail {
            *cb = ring.cb(region, tail, PipeBuffer::load(ring.buf(region, tail)));
            let (mut at, mut len, mut copied, mut fault) = (tail, 0usize, 0usize, false);
            let mut units = 0usize;
            loop {
                let b = PipeBuffer::load(ring.buf(region, at));
                units += b.charge as usize;
                let chars = if fault { 0 } else { b.len.min(want - copied) };
                // SAFETY: offset + len <= PAGE (kept so by writers and by normalise).
                let src = unsafe { ring.page(region, at).add(b.offset) };
                if to.copy(src, chars, true) < chars {
                    fault = true;
                }
                copied += chars;
                len += b.len;
                at = at.wrapping_add(1);
                if b.flags & PIPE_BUF_FLAG_RECORD_END != 0 || at == head {
                    break;
                }
            }
            // The kernel takes the record off its queue before copying it: one that cannot be
            // copied out is gone too (a peek leaves it).
            // A record that faulted is dropped with its fds (the next taker closes them).
            if cb.fp != 0 && !fault {
                env.took_fds(cb.fp);
            }
            if !peek {
                // A record writer into a receive queue waits for room for all of it, not just a
                // free slot; into its own queue, whose ring grows, for its charge (as a stream
                // writer: see read_inner).
                if pipe.accounted() {
                    wake_writer = pipe_full(head, tail, ring.size());
                    own = units;
                } else {
                    wake_writer = true;
                }
                let taken = || pipe.head_tail.store(join(head, at), Ordering::Release);
                freed = charge_sender(region, cb.sender, -(cb.charge as i64), taken);
            }
            break 'out if fault { Err(EFAULT) } else { Ok(Some((copied, len))) };
        }
        if env.peer_gone(false) {
            break 'out Ok(None);
        }
        if env.nonblocking() {
            break 'out if env.peer_gone_now() { Ok(None) } else { Err(EAGAIN) };
        }
        guard = None;
        match wait_for(region, pipe, READERS, env, &|| pipe.readable() || pipe.is_handed_back(), None) {
            Waited::Woken => {}
            Waited::Interrupted if env.restart_after_signal() => {}
            Waited::Interrupted => break 'out Err(EINTR),
            Waited::PeerGone => {}
            Waited::TimedOut => break 'out Err(EAGAIN),
        }
        guard = match lock_pipe(region, pipe) {
            Ok(g) => Some(g),
            Err(e) => break 'out Err(e),
        };
    };
    let space = pipe.freed_wakes(region, own);
    drop(guard);
    if wake_writer || space && pipe.writable(region) {
        pipe.wake(WRITERS, region);
    }
    sender_write_space(region, freed, true);
    count_call(region, pipe, res.ok().flatten().map(|(n, _)| n), false);
    res
}

/// A connecting client's object: sending already queues here, but no server has taken the
/// connection yet ([`sock_adopt`]).
pub const SOCK_PENDING: u32 = 1;
/// Both ends' objects know each other.
pub const SOCK_LINKED: u32 = 2;
/// The client found the connection is not served by a shim server: the kernel carries it.
pub const SOCK_REFUSED: u32 = 3;

/// Marks a new object as an AF_UNIX socket's send queue in connection state `state` (with
/// [`SOCK_RECORDS`] for a seqpacket socket).
pub fn sock_init(region: &Region, h: PipeHandle, state: u32) {
    if let Some(p) = live(region, h) {
        p.sock.store(state, Ordering::Release);
    }
}

/// Above the state: the ECONNRESET of a peer released with data unread was reported.
pub(super) const SOCK_RESET_SEEN: u32 = 1 << 8;
/// Above the state: a seqpacket socket, whose queue holds records ([`record_write`]).
pub const SOCK_RECORDS: u32 = 1 << 9;
/// With SOCK_RECORDS: a datagram socket (a connected socketpair end).
pub const SOCK_DGRAM: u32 = 1 << 11;
/// Above the state: the queue is in [`crate::unix`]'s pending table, so a server can still
/// adopt it after the client's socket is gone: the collector leaves it alone.
pub(super) const SOCK_QUEUED: u32 = 1 << 10;

/// Above the state: the receiving end set SO_PASSCRED, so sends into this queue carry the
/// sender's credentials.
pub(super) const SOCK_PASSCRED: u32 = 1 << 12;
/// Above the state: the sending end set SO_PASSCRED, which also makes its sends carry its
/// credentials (`unix_passcred_enabled`).
pub(super) const SOCK_SENDER_PASSCRED: u32 = 1 << 18;

/// With SOCK_DGRAM: a datagram socket's own receive queue (a socket made under the shim),
/// which any sender queues into, as `sk_receive_queue`; its `peer` is the socket it is
/// connected to (`unix_peer`), if that one is the shim's.
pub const SOCK_RECV_QUEUE: u32 = 1 << 13;
/// With SOCK_RECV_QUEUE: `sk_shutdown`'s RCV_SHUTDOWN and SEND_SHUTDOWN, set by the shim's
/// `shutdown`. SOCK_SHUT_WR also with SOCK_TCP: the queue's socket shut down sending (its FIN
/// is the kernel's; what it queued before stays to be read first).
pub const SOCK_SHUT_RD: u32 = 1 << 14;
pub const SOCK_SHUT_WR: u32 = 1 << 15;
/// With SOCK_RECV_QUEUE: connected to a socket the kernel serves (sends go to the kernel); with
/// SOCK_UDP, the socket's sends all go to the kernel.
pub const SOCK_PEER_KERNEL: u32 = 1 << 16;
/// With SOCK_RECV_QUEUE: the kernel's queue had a datagram for it (a sender without the
/// shim): a blocked receiver looks at it often.
pub const SOCK_KERNEL_SEEN: u32 = 1 << 17;

/// `sk_rcvtimeo`/`sk_sndtimeo` of 0, from a negative SO_RCVTIMEO/SO_SNDTIMEO
/// (`sock_set_timeout`): the socket's blocking receives/sends do not wait. Read back, such a
/// timeout is the same `{0, 0}` as none, so the kernel's socket cannot tell us.
pub const SOCK_RCVTIMEO_ZERO: u32 = 1 << 19;
pub const SOCK_SNDTIMEO_ZERO: u32 = 1 << 20;

/// Above a linked end's state: its socket was released (its closer knew its fd was the only
/// holder: see [`sock_released`]).
pub(super) const SOCK_RELEASED: u32 = 1 << 21;
/// Above a linked end's state: an fd of its socket was closed by a process that could not tell
/// whether it was the last one (a collection finds out).
pub(super) const SOCK_CLOSED: u32 = 1 << 22;
/// Above the state: a loopback TCP connection's queue (`crate::tcp`): a plain byte stream
/// (no credentials, no out-of-band byte), whose end of file and errors the kernel's socket
/// gives.
pub const SOCK_TCP: u32 = 1 << 23;
/// With SOCK_RECV_QUEUE: a loopback UDP socket's receive queue (`crate::udp`), whose records
/// charge their skb's truesize in bytes against the receiver's SO_RCVBUF.
pub const SOCK_UDP: u32 = 1 << 24;
/// With SOCK_UDP: the socket is the kernel's from now on (an option the shim does not
/// honour, a port shared with SO_REUSEADDR/SO_REUSEPORT): nothing more is queued here.
pub const SOCK_UDP_KERNEL: u32 = 1 << 25;

/// Above a linked end's state: the socket receiving from this queue was released with some of
/// it unread, which was dropped (`unix_release_sock`'s purge); a stream or seqpacket socket
/// then has an ECONNRESET to report (`sk_err`).
pub(super) const SOCK_RESET_PENDING: u32 = 1 << 26;

/// Whether `h` is a TCP connection's queue.
pub fn sock_tcp(region: &Region, h: PipeHandle) -> bool {
    live(region, h).is_some_and(|p| p.sock.load(Ordering::Acquire) & SOCK_TCP != 0)
}

/// What [`sock_released`] found of the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRelease {
    /// Released too: nobody can read either queue, both may go.
    Released,
    /// Closed somewhere, perhaps for the last time: a collection may free both.
    Closed,
    /// Still held, as far as anyone said: its last closer frees both.
    Held,
}

/// The socket of linked end `h` was released, as `unix_release_sock` runs at the last
/// `fput`: marked so, then its peer is looked at. Marking before looking, as the peer's
/// closer does, lets at least one of two closers at once see both released.
pub fn sock_released(region: &Region, h: PipeHandle) -> PeerRelease {
    if let Some(p) = live(region, h) {
        p.sock.fetch_or(SOCK_RELEASED, Ordering::SeqCst);
    }
    peer_release(region, h)
}

/// An fd of linked end `h`'s socket is being closed, maybe not for the last time: marked
/// before the close, so that a closer of the peer that marks its own release afterwards
/// knows to ask for a collection; then (after the close) what the peer is.
pub fn sock_closing(region: &Region, h: PipeHandle) {
    if let Some(p) = live(region, h) {
        p.sock.fetch_or(SOCK_CLOSED, Ordering::SeqCst);
    }
}

/// What is known of the release of linked end `h`'s peer.
pub fn peer_release(region: &Region, h: PipeHandle) -> PeerRelease {
    let flags = sock_peer(region, h).map_or(0, |peer| sock_flags(region, peer));
    if flags & SOCK_RELEASED != 0 {
        PeerRelease::Released
    } else if flags & SOCK_CLOSED != 0 {
        PeerRelease::Closed
    } else {
        PeerRelease::Held
    }
}

/// Whether linked end `h`'s peer shut down sending only (a TCP `shutdown(SHUT_WR)`) and no
/// fd of its socket was closed since: its FIN is the kernel's, yet it still receives.
pub fn sock_peer_half_closed(region: &Region, h: PipeHandle) -> bool {
    let flags = sock_peer(region, h).map_or(0, |peer| sock_flags(region, peer));
    flags & SOCK_SHUT_WR != 0 && flags & (SOCK_RELEASED | SOCK_CLOSED) == 0
}

/// The socket word: connection state and the flags above it (0 for no live object).
pub fn sock_flags(region: &Region, h: PipeHandle) -> u32 {
    live(region, h).map_or(0, |p| p.sock.load(Ordering::Acquire))
}

/// Sets and clears flags above the state.
pub fn sock_change_flags(region: &Region, h: PipeHandle, set: u32, clear: u32) {
    if let Some(p) = live(region, h) {
        let _ = p.sock.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| Some(v & !clear | set));
    }
}

/// A receive queue's connected peer (`unix_peer(sk) = other`, None: disconnected); those
/// waiting on it look again.
pub fn sock_set_peer(region: &Region, h: PipeHandle, peer: Option<PipeHandle>) {
    if let Some(p) = live(region, h) {
        p.peer.store(peer.map_or(0, |o| o.to_bits() + 1), Ordering::Release);
        p.wake(READERS, region);
        p.wake(WRITERS, region);
    }
}

/// The inode an object is named by (a socket object's: its socket's).
pub fn object_ino(region: &Region, h: PipeHandle) -> Option<u64> {
    live(region, h).map(|p| p.ino.load(Ordering::Relaxed))
}

/// Whether receive queue `h` takes a datagram from a sender it is not connected to: at most
/// `qlen` records queued (`unix_recvq_full`; its ring grows as needed).
pub fn dgram_room(region: &Region, h: PipeHandle, qlen: u32) -> bool {
    let Some(p) = live(region, h) else { return false };
    let Ok(ring) = p.ring() else { return false };
    let (head, tail) = p.head_tail();
    records_queued(region, ring, head, tail) <= qlen
}

/// Drops every queued record (`skb_queue_purge` of a datagram socket that connects elsewhere).
pub fn sock_purge(region: &Region, h: PipeHandle) {
    purge(region, h, 0);
}

/// The socket receiving from linked queue `h` was released, by its last holder's close: what
/// it left unread is dropped, so `h`'s socket's send buffer is free again (EPOLLOUT, its
/// blocked writers and epoll sets woken: `unix_release_sock` purges the receive queue), and a
/// stream or seqpacket socket whose bytes were dropped has an ECONNRESET to report.
pub fn sock_reader_released(region: &Region, h: PipeHandle) {
    let dgram = live(region, h).is_none_or(|p| p.sock.load(Ordering::Acquire) & SOCK_DGRAM != 0);
    purge(region, h, if dgram { 0 } else { SOCK_RESET_PENDING });
}

/// Whether [`sock_reader_released`] dropped unread bytes of `h`.
pub fn sock_reset_pending(region: &Region, h: PipeHandle) -> bool {
    live(region, h).is_some_and(|p| p.sock.load(Ordering::Acquire) & SOCK_RESET_PENDING != 0)
}

/// Drops `h`'s records under its lock, marking its socket word with `mark` if there were any.
pub(super) fn purge(region: &Region, h: PipeHandle, mark: u32) {
    let Ok(act) = enter(region, h) else { return };
    let pipe = act.pipe;
    let Ok(g) = lock_pipe(region, pipe) else { return };
    if pipe.readable() {
        pipe.sock.fetch_or(mark, Ordering::AcqRel);
    }
    drop_records(region, pipe, true);
    drop(g);
    pipe.wake(WRITERS, region);
}

/// Whether the receiver of the queue asked for credentials (see SOCK_PASSCRED).
pub fn sock_passcred(region: &Region, h: PipeHandle) -> bool {
    live(region, h).is_some_and(|p| p.sock.load(Ordering::Acquire) & SOCK_PASSCRED != 0)
}

/// Whether sends into the queue carry the sender's credentials, and for a receiver that asked
/// for them, that receiver's PID namespace: `Some(0)` when only the sender asked, or the
/// connection is not accepted yet (`unix_passcred_enabled`: the receiver has no socket).
pub fn sock_sends_creds(region: &Region, h: PipeHandle) -> Option<u32> {
    let p = live(region, h)?;
    let flags = p.sock.load(Ordering::Acquire);
    if flags & SOCK_PASSCRED != 0 {
        Some(p.passcred_ns.load(Ordering::Relaxed))
    } else {
        (flags & SOCK_SENDER_PASSCRED != 0 || flags & 0xff == SOCK_PENDING).then_some(0)
    }
}

/// The receiver of queue `h` (in PID namespace `pid_ns`) set or cleared SO_PASSCRED.
pub fn sock_set_passcred(region: &Region, h: PipeHandle, on: bool, pid_ns: u32) {
    set_passcred_bit(region, h, SOCK_PASSCRED, on, pid_ns);
}

/// The sender into queue `h` set or cleared SO_PASSCRED.
pub fn sock_set_sender_passcred(region: &Region, h: PipeHandle, on: bool) {
    set_passcred_bit(region, h, SOCK_SENDER_PASSCRED, on, 0);
}

pub(super) fn set_passcred_bit(region: &Region, h: PipeHandle, bit: u32, on: bool, pid_ns: u32) {
    if let Some(p) = live(region, h) {
        if on {
            if bit == SOCK_PASSCRED {
                p.passcred_ns.store(pid_ns, Ordering::Relaxed);
            }
            p.sock.fetch_or(bit, Ordering::AcqRel);
        } else {
            p.sock.fetch_and(!bit, Ordering::AcqRel);
        }
    }
}

/// The header of the message at the head of a stream socket's queue, for a receive with no
/// buffer: `unix_stream_read_generic` copies nothing but still takes that message's fds
/// (unless it peeks), so the message keeps its data without naming them any more; `env`
/// takes their token under the queue's lock.
pub fn sock_head_cb(
    region: &Region,
    h: PipeHandle,
    peek: bool,
    env: &dyn PipeEnv,
) -> Result<Option<UnixCb>, Errno> {
    let act = enter(region, h)?;
    let pipe = act.pipe;
    let _guard = lock_pipe(region, pipe)?;
    let ring = pipe.ring()?;
    let (head, tail) = pipe.head_tail();
    if head == tail {
        return Ok(None);
    }
    let buf = PipeBuffer::load(ring.buf(region, tail));
    if buf.flags & PIPE_BUF_FLAG_OOB != 0 {
        return Ok(None);
    }
    let cb = ring.cb(region, tail, buf);
    if cb.fp != 0 {
        // Under the lock, as a read of bytes takes them: a later token taken first would
        // drop this one as abandoned.
        env.took_fds(cb.fp);
        if !peek {
            ring.set_cb(region, tail, UnixCb { fp: 0, ..cb });
        }
    }
    Ok(Some(cb))
}

/// Takes the socket's lock for a send with ancillary data (see `scm_lock`); a holder that
/// died leaves at worst a token the receiver skips.
pub fn sock_scm_lock(region: &Region, h: PipeHandle) -> Result<LockGuard<'_>, Errno> {
    let pipe = live(region, h).ok_or(libc::EBADF)?;
    pipe.scm_lock.lock().map_err(|_| ENOMEM)
}

/// Marks the queue as held by the pending table (kept by the collector while pending).
pub fn sock_set_queued(region: &Region, h: PipeHandle) {
    if let Some(p) = live(region, h) {
        p.sock.fetch_or(SOCK_QUEUED, Ordering::AcqRel);
    }
}

/// The queue was taken from the pending table by a server about to adopt it: no longer kept
/// as pending, but for a while, as an fd in flight is (a server killed before it adopts it
/// leaves a queue nobody will ever read).
pub fn sock_taken(region: &Region, h: PipeHandle) {
    if let Some(p) = live(region, h) {
        p.in_flight.store(coarse_secs(), Ordering::Relaxed);
        p.sock.fetch_and(!SOCK_QUEUED, Ordering::AcqRel);
    }
}

/// Whether the collector must keep the object although no fd names it (see SOCK_QUEUED).
pub(crate) fn sock_queued(p: &PipeInodeInfo) -> bool {
    let v = p.sock.load(Ordering::Acquire);
    v & SOCK_QUEUED != 0 && v & 0xff == SOCK_PENDING
}

/// Sets the connection state, keeping the flags above it.
pub(super) fn set_state(p: &PipeInodeInfo, from: Option<u32>, to: u32) -> bool {
    p.sock
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            from.is_none_or(|f| v & 0xff == f).then_some(v & !0xff | to)
        })
        .is_ok()
}

/// Whether the socket's queue holds records (SOCK_SEQPACKET, SOCK_DGRAM).
pub fn sock_records(region: &Region, h: PipeHandle) -> bool {
    live(region, h).is_some_and(|p| p.sock.load(Ordering::Acquire) & SOCK_RECORDS != 0)
}

/// Whether the socket is a datagram one.
pub fn sock_dgram(region: &Region, h: PipeHandle) -> bool {
    live(region, h).is_some_and(|p| p.sock.load(Ordering::Acquire) & SOCK_DGRAM != 0)
}

/// The length of the next record queued (a datagram socket's FIONREAD, `skb_peek`'s length);
/// None when the queue is empty or its next record is a [`FP_KERNEL_NEXT`] marker: the next
/// datagram is then the kernel socket's. With `skip_markers` (the kernel socket holds none, so
/// a receive took the marked datagram already) markers are passed over.
pub fn record_next_len(region: &Region, h: PipeHandle, skip_markers: bool) -> Option<usize> {
    let act = enter(region, h).ok()?;
    let pipe = act.pipe;
    let _g = lock_pipe(region, pipe).ok()?;
    let ring = pipe.ring().ok()?;
    let (head, mut at) = pipe.head_tail();
    let (mut len, mut first) = (0, true);
    while at != head {
        let b = PipeBuffer::load(ring.buf(region, at));
        if first && ring.cb(region, at, b).fp == FP_KERNEL_NEXT {
            if !skip_markers {
                return None;
            }
        } else {
            len += b.len;
            if b.flags & PIPE_BUF_FLAG_RECORD_END != 0 {
                return Some(len);
            }
        }
        first = b.flags & PIPE_BUF_FLAG_RECORD_END != 0;
        at = at.wrapping_add(1);
    }
    None
}

/// The socket's connection state (0: a pipe, or gone).
pub fn sock_state(region: &Region, h: PipeHandle) -> u32 {
    live(region, h).map_or(0, |p| p.sock.load(Ordering::Acquire) & 0xff)
}

/// Whether [`sock_take_reset`] already reported the reset.
pub fn sock_reset_seen(region: &Region, h: PipeHandle) -> bool {
    live(region, h).is_none_or(|p| p.sock.load(Ordering::Acquire) & SOCK_RESET_SEEN != 0)
}

/// The peer's `sk_err = ECONNRESET` is read once (`sock_error`): true the first time.
pub fn sock_take_reset(region: &Region, h: PipeHandle) -> bool {
    live(region, h).is_some_and(|p| p.sock.fetch_or(SOCK_RESET_SEEN, Ordering::AcqRel) & SOCK_RESET_SEEN == 0)
}

/// The peer socket's object: the queue this socket receives from.
pub fn sock_peer(region: &Region, h: PipeHandle) -> Option<PipeHandle> {
    let bits = live(region, h)?.peer.load(Ordering::Acquire);
    (bits != 0).then(|| PipeHandle::from_bits(bits - 1))
}

/// The slot of a socket object's peer (for the collector, under the namespace lock).
pub(crate) fn peer_slot(region: &Region, idx: u32) -> Option<u32> {
    let bits = slot(region, idx).peer.load(Ordering::Acquire);
    (bits != 0).then(|| PipeHandle::from_bits(bits - 1).idx).filter(|&i| i < PIPE_MAX)
}

/// Links two ends of a connection (`unix_peer(sk) = other` on both sides).
pub fn sock_link(region: &Region, a: PipeHandle, b: PipeHandle) {
    let (Some(pa), Some(pb)) = (live(region, a), live(region, b)) else { return };
    region.header().counters.unix_connections.fetch_add(1, Ordering::Relaxed);
    pa.peer.store(b.to_bits() + 1, Ordering::Release);
    pb.peer.store(a.to_bits() + 1, Ordering::Release);
    // An end an epoll set watched while pending receives from the queue linked now: its
    // writes must make the wake-ups edge-triggered interests wait for. Pairs with
    // the watcher, who marks its own queue before looking for the peer's. A full fence: the
    // stores above are release ones, which a later load may pass.
    sys::full_fence();
    if pa.ep_usage.load(Ordering::SeqCst) != 0 || pb.ep_usage.load(Ordering::SeqCst) != 0 {
        pa.ep_usage.store(1, Ordering::SeqCst);
        pb.ep_usage.store(1, Ordering::SeqCst);
    }
    set_state(pb, None, SOCK_LINKED);
    set_state(pa, None, SOCK_LINKED);
    // A client waiting to receive waits for the link on its own object (the kernel's accept
    // wakes no epoll set: the connect already did).
    for p in [pa, pb] {
        p.wake_sleepers(READERS, region);
    }
}

/// The server's side of a shim connection: takes a pending client's connection unless the
/// client already gave it to the kernel. Exactly one of this and [`sock_refuse`] succeeds.
pub fn sock_adopt(region: &Region, client: PipeHandle, server: PipeHandle) -> bool {
    let Some(pc) = live(region, client) else { return false };
    // As a lookup does: a collection running now may have read the server's fds before this
    // connection was accepted, and the client's socket may be gone.
    pc.gc_seen.store(ns(region).gc_pass.load(Ordering::Relaxed), Ordering::Relaxed);
    // The client's peer before its state: a client that sees it linked receives from the
    // peer at once (it would take a linked queue without one for the kernel's connection).
    let bits = server.to_bits() + 1;
    let named = pc.peer.compare_exchange(0, bits, Ordering::AcqRel, Ordering::Acquire).is_ok();
    if !set_state(pc, Some(SOCK_PENDING), SOCK_LINKED) {
        if named {
            let _ = pc.peer.compare_exchange(bits, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
        return pc.sock.load(Ordering::Acquire) & 0xff == SOCK_LINKED
            && sock_peer(region, client) == Some(server);
    }
    sock_link(region, client, server);
    // Adopted: the server's socket keeps it now (the collector marks a held socket's peer).
    pc.in_flight.store(0, Ordering::Relaxed);
    true
}

/// The client's side: gives a still pending connection to the kernel. False when a shim
/// server has already adopted it.
pub fn sock_refuse(region: &Region, client: PipeHandle) -> bool {
    live(region, client).is_some_and(|p| set_state(p, Some(SOCK_PENDING), SOCK_REFUSED))
}

/// Waits until a pending client's connection is adopted: `Ok(true)` linked, `Ok(false)` the
/// other side went away first (the caller asks the kernel), EAGAIN when non-blocking.
pub fn sock_wait_linked(region: &Region, h: PipeHandle, env: &dyn PipeEnv) -> Result<bool, Errno> {
    let act = enter(region, h)?;
    let pipe = act.pipe;
    let state = || pipe.sock.load(Ordering::Acquire) & 0xff;
    let linked = || state() != SOCK_PENDING || pipe.is_handed_back();
    loop {
        if linked() {
            return Ok(state() == SOCK_LINKED);
        }
        if env.nonblocking() {
            return Err(EAGAIN);
        }
        match wait_for(region, pipe, READERS, env, &linked, None) {
            Waited::Woken => {}
            Waited::Interrupted if env.restart_after_signal() => {}
            Waited::Interrupted => return Err(EINTR),
            // A server may adopt, answer and close between our look and the wait's look at
            // the kernel's peer: linked by then, what it sent is here.
            Waited::PeerGone => return Ok(state() == SOCK_LINKED),
            Waited::TimedOut => return Err(EAGAIN),
        }
    }
}

/// Gives one direction of a socket connection to the kernel: no more sends queue here, and
/// the receiver reads what is still queued before the kernel's queue. Sleepers are woken to
/// go to the kernel.
pub fn sock_hand_back(region: &Region, h: PipeHandle) -> Result<(), Errno> {
    let act = enter(region, h)?;
    let pipe = act.pipe;
    let g = lock_pipe(region, pipe)?;
    if pipe.handed_back.swap(1, Ordering::AcqRel) == 0 {
        region.header().counters.unix_handbacks.fetch_add(1, Ordering::Relaxed);
        if pipe.sock.load(Ordering::Relaxed) & SOCK_TCP != 0 {
            region.header().counters.tcp_handbacks.fetch_add(1, Ordering::Relaxed);
        }
    }
    drop(g);
    pipe.wake(READERS, region);
    pipe.wake(WRITERS, region);
    Ok(())
}

/// After a hand-back, moves what this socket queued here into the kernel's queue, oldest
/// first, through `send` (which sends without blocking and says how much it took), so that
/// a receiver waiting in the kernel sees it. What `send` does not take stays queued, and is
/// still read before the kernel's queue.
pub fn sock_drain(region: &Region, h: PipeHandle, send: &mut dyn FnMut(&[u8]) -> Result<usize, Errno>) {
    // One load on the hot path of every served call.
    if !live(region, h).is_some_and(|p| p.is_handed_back() && p.readable()) {
        return;
    }
    let Ok(act) = enter(region, h) else { return };
    let pipe = act.pipe;
    let Ok(g) = lock_pipe(region, pipe) else { return };
    let Ok(ring) = pipe.ring() else { return };
    let (head, mut tail) = pipe.head_tail();
    while tail != head {
        let cell = ring.buf(region, tail);
        let b = PipeBuffer::load(cell);
        // SAFETY: offset + len <= PAGE inside the slot's data page, kept so by writers.
        let bytes = unsafe { core::slice::from_raw_parts(ring.page(region, tail).add(b.offset), b.len) };
        match send(bytes) {
            Ok(k) if k >= b.len => {
                tail = tail.wrapping_add(1);
                pipe.head_tail.store(join(head, tail), Ordering::Release);
            }
            Ok(k) => {
                cell.store(
                    PipeBuffer { offset: b.offset + k, len: b.len - k, ..b }.pack(),
                    Ordering::Release,
                );
                break;
            }
            Err(_) => break,
        }
    }
    drop(g);
    pipe.wake(WRITERS, region);
}

/// What [`udp_enqueue`] did with a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    Queued,
    /// The receive buffer is full: dropped, as `__udp_enqueue_schedule_skb` drops it.
    Dropped,
}

/// A loopback UDP datagram of `iov` into receive queue `h`, with header `cb`: queued while
/// the queue's charge plus this skb's `truesize` stays within `rcvbuf` (an empty queue takes
/// one whatever its size), else dropped. Never waits. NO_SPACE: no room in the region (the
/// caller sends it through the kernel); HANDED_BACK: the queue takes nothing any more.
pub fn udp_enqueue(
    region: &Region,
    h: PipeHandle,
    iov: &[(usize, usize)],
    cb: &UnixCb,
    truesize: usize,
    rcvbuf: usize,
) -> Result<Enqueued, Errno> {
    let mut from = IovIter::new(iov);
    let total = from.count;
    let need = (total + CB_LEN).div_ceil(PAGE).max(1) as u32;
    let act = enter(region, h)?;
    let pipe = act.pipe;
    note_cpu(&pipe.wr_cpu);
    let guard = lock_pipe(region, pipe)?;
    if pipe.is_handed_back() || pipe.sock.load(Ordering::Relaxed) & SOCK_UDP_KERNEL != 0 {
        return Err(HANDED_BACK);
    }
    let ring = pipe.ring()?;
    let (head, tail) = pipe.head_tail();
    let n = head.wrapping_sub(tail).min(ring.size());
    // SOCK_UDP records charge bytes, not CHARGE_UNITs.
    let charged: usize =
        (0..n).map(|k| PipeBuffer::load(ring.buf(region, tail.wrapping_add(k))).charge as usize).sum();
    if charged > 0 && charged + truesize > rcvbuf {
        drop(guard);
        region.header().counters.udp_drops.fetch_add(1, Ordering::Relaxed);
        return Ok(Enqueued::Dropped);
    }
    let ring = grow_for(region, pipe, ring, head, tail, need).map_err(|_| NO_SPACE)?;
    if ring.size() - n < need || back_slots(region, pipe, ring, head, need).is_err() {
        return Err(NO_SPACE);
    }
    for i in 0..need {
        let slot = head.wrapping_add(i);
        let at = if i == 0 { CB_LEN } else { 0 };
        let len = (total + CB_LEN - i as usize * PAGE - at).min(PAGE - at);
        // SAFETY: at < PAGE: inside the slot's data page, a free slot we fill under the lock.
        if from.copy(unsafe { ring.page(region, slot).add(at) }, len, false) < len {
            return Err(EFAULT);
        }
        let last = i + 1 == need;
        let mut flags = PIPE_BUF_FLAG_PACKET | if last { PIPE_BUF_FLAG_RECORD_END } else { 0 };
        if i == 0 {
            ring.set_cb(region, slot, *cb);
            flags |= PIPE_BUF_FLAG_CB;
        }
        let charge = if last { truesize.min(CHARGE_MAX as usize) as u32 } else { 0 };
        ring.buf(region, slot).store(PipeBuffer { offset: at, len, flags, charge }.pack(), Ordering::Release);
    }
    pipe.head_tail.store(join(head.wrapping_add(need), tail), Ordering::Release);
    drop(guard);
    if head == tail || pipe.ep_usage.load(Ordering::Relaxed) != 0 {
        pipe.wake(READERS, region);
    }
    count_call(region, pipe, Some(total), true);
    let c = &region.header().counters;
    c.udp_datagrams.fetch_add(1, Ordering::Relaxed);
    c.udp_bytes.fetch_add(total as u64, Ordering::Relaxed);
    Ok(Enqueued::Queued)
}
