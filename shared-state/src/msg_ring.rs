//! The lock-free path of message queues: each queue has a ring of small messages that a sender
//! and a receiver use without the queue's lock, one of each at a time.
//!
//! A queue's messages are the list's, then the ring's: only the locked path adds to the list,
//! after closing the ring, so an open ring's list only shrinks, and a receiver takes from the
//! ring only once the list is empty. Sleepers are the locked path's: a sender does not use the
//! ring while a receiver sleeps (it would be handed the message), nor a receiver while a
//! sender sleeps (it would be woken) or a handed message waits (its receiver may be dead).
//! A sender fills the slot at the tail and publishes it by a compare-and-swap of the tail
//! word; a receiver copies the head message out, then consumes it by a compare-and-swap of the
//! head word. A process killed before its swap changed nothing, so each message is wholly
//! queued or wholly delivered. Any locked call on the queue first closes the ring (a bit in
//! both words, which makes every later swap fail) and moves what it holds into the list
//! ([`crate::msg`]'s `settle`), with the pid and time of the last sender (in its slot) and
//! receiver (in its notes); msgsnd and msgrcv open it again as they unlock if it is wanted.

use crate::ipc::{Cred, S_IRUGO, S_IWUGO};
use crate::journal;
use crate::msg::{
    IPC_NOWAIT, MSG_NOERROR, MsgEnv, MsgQueue, SAME_CPU_YIELDS, SEARCH_ANY, SEARCH_EQUAL, SEARCH_NOTEQUAL,
    testmsg,
};
use crate::region::{MSG_RINGS_OFF, Region};
use crate::sys::{self, Errno};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use libc::{E2BIG, ENOMSG};

/// Slots per ring (a power of two). At most `RING - 1` are in use, so that the slot before the
/// head keeps the byte count of what was consumed.
pub(crate) const RING: u32 = 512;
/// The largest message text the ring carries; larger messages take the locked path.
pub(crate) const RING_TEXT: usize = 96;
/// In the head and tail words, with the count of messages that passed in the low 31 bits.
pub(crate) const CLOSED: u64 = 1 << 63;
const COUNT: u32 = 0x7fff_ffff;

#[repr(C)]
pub(crate) struct Slot {
    pub mtype: i64,
    /// Bytes of text that went through the ring up to and including this message (wrapping).
    pub cum: u64,
    pub ts: u32,
    pub spid: i32,
    pub stime: i64,
    pub text: [u8; RING_TEXT],
}

/// The receiver's pid and time for the message that made the head count `count`.
#[repr(C)]
pub(crate) struct Took {
    pub count: u32,
    pub pid: i32,
    pub time: i64,
}

/// A line of its own for each word the sender or the receiver writes on every call, so that
/// one message moves as few lines between their CPUs as it can.
#[repr(C, align(64))]
pub(crate) struct Line<T>(pub(crate) T);

#[repr(C)]
pub(crate) struct Side {
    /// Who is inside a call on this side: pid << 32 | process record + 1 (0: nobody).
    pub busy: AtomicU64,
    /// The last caller on this side and where it ran: pid << 32 | CPU + 1 (`journal::note_running`).
    note: AtomicU64,
    /// The sender's: the ring should be opened again (it carried messages, or a sender found
    /// it closed). Rings that carry nothing stay closed, sparing the locked calls of large
    /// messages closing and opening them.
    pub want: AtomicU32,
    _pad: u32,
    /// The receiver's: by the parity of the head count it stands for (the other entry stays
    /// valid should the receiver die before its swap).
    pub took: [Took; 2],
}

#[repr(C, align(64))]
pub struct MsgRing {
    pub(crate) tail: Line<AtomicU64>,
    pub(crate) head: Line<AtomicU64>,
    pub(crate) sender: Line<Side>,
    pub(crate) receiver: Line<Side>,
    /// The count of both words when the ring was last opened or settled (lock held).
    pub(crate) base: Line<AtomicU64>,
    slots: [Slot; RING as usize],
}

const _: () = assert!(size_of::<Slot>() == 128 && size_of::<MsgRing>() == 5 * 64 + 128 * RING as usize);

pub(crate) fn count(word: u64) -> u32 {
    word as u32 & COUNT
}

/// Messages in a ring whose words have counts `tail` and `head`.
pub(crate) fn used(tail: u32, head: u32) -> u32 {
    tail.wrapping_sub(head) & COUNT
}

pub(crate) fn next(c: u32, n: u32) -> u32 {
    c.wrapping_add(n) & COUNT
}

/// Queue `idx`'s ring.
pub(crate) fn ring(r: &Region, idx: u32) -> &MsgRing {
    // SAFETY: bounded index into the ring array; its fields are atomics or read as below.
    unsafe { r.at::<MsgRing>(ring_off(idx)) }
}

pub(crate) fn ring_off(idx: u32) -> u64 {
    MSG_RINGS_OFF + idx.min(crate::region::IPCMNI - 1) as u64 * size_of::<MsgRing>() as u64
}

/// Reserves all of queue `idx`'s ring (its slots are read before they are written); false
/// without room, and the ring must then stay closed.
pub(crate) fn reserve(r: &Region, idx: u32) -> bool {
    r.reserve(ring_off(idx), size_of::<MsgRing>() as u64).is_ok()
}

impl MsgRing {
    /// The slot of count `c`. Its owner writes it: the sender past the tail, the lock holder
    /// with the ring closed.
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn slot(&self, c: u32) -> &mut Slot {
        let off = core::mem::offset_of!(MsgRing, slots) + (c % RING) as usize * size_of::<Slot>();
        // SAFETY: in the ring, which lies in the shared mapping; only the slot's owner of the
        // moment writes it (above).
        unsafe { &mut *((self as *const MsgRing as usize + off) as *mut Slot) }
    }
}

impl Side {
    /// The receiver's notes; written only by the receiver inside its call, or with the ring
    /// closed under the lock.
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn took_mut(&self) -> &mut [Took; 2] {
        let p = self as *const Side as usize + core::mem::offset_of!(Side, took);
        // SAFETY: in the shared mapping; one writer at a time (above).
        unsafe { &mut *(p as *mut [Took; 2]) }
    }
}

/// A word of the queue that the lock holder may change under us: read once, as it is.
fn read<T: Copy>(v: &T) -> T {
    // SAFETY: a valid reference; a torn or stale value is caught by the swap that publishes.
    unsafe { core::ptr::read_volatile(v) }
}

/// Whether the caller may use queue `q` (still the one of `id`) for `access`.
fn usable(q: &MsgQueue, id: i32, cred: &Cred, access: u32) -> bool {
    let perm = read(&q.perm);
    read(&q.live) != 0 && perm.id == id && perm.ipcperms(cred, access)
}

impl Side {
    /// Takes this side of the ring for `me`, noting our pid and CPU.
    fn enter(&self, r: &Region, me: u64) -> bool {
        if self.busy.load(Ordering::Relaxed) != 0
            || self.busy.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed).is_err()
        {
            return false;
        }
        let note = journal::note_running(r);
        if self.note.load(Ordering::Relaxed) != note {
            self.note.store(note, Ordering::Relaxed);
        }
        true
    }

    /// Where the process we wait for on `other`'s side likely runs: the last other process
    /// there, else the last other one on this side (a partner that both sends and
    /// receives); 0 when none is known.
    fn peer(&self, other: &Side, me: u64) -> u64 {
        [other, self]
            .iter()
            .map(|s| s.note.load(Ordering::Relaxed))
            .find(|&n| n != 0 && n >> 32 != me >> 32)
            .unwrap_or(0)
    }

    fn leave(&self) {
        self.busy.store(0, Ordering::Release);
    }
}

/// msgsnd of `ts <= RING_TEXT` bytes through the ring of queue `q`: `None` when the locked
/// path must serve it (ring closed or busy, an error to report, a wait that must sleep).
#[allow(clippy::too_many_arguments)]
pub(crate) fn send(
    r: &Region,
    ring: &MsgRing,
    q: &MsgQueue,
    id: i32,
    mtype: i64,
    src: usize,
    ts: usize,
    nowait: bool,
    me: u64,
    env: &dyn MsgEnv,
) -> Option<Result<i32, Errno>> {
    if !ring.sender.0.enter(r, me) {
        return None;
    }
    let res = send_entered(r, ring, q, id, mtype, src, ts, nowait, me, env);
    ring.sender.0.leave();
    res
}

#[allow(clippy::too_many_arguments)]
fn send_entered(
    r: &Region,
    ring: &MsgRing,
    q: &MsgQueue,
    id: i32,
    mtype: i64,
    src: usize,
    ts: usize,
    nowait: bool,
    me: u64,
    env: &dyn MsgEnv,
) -> Option<Result<i32, Errno>> {
    let cred = Cred::current();
    let mut budget = journal::Brief::new(SAME_CPU_YIELDS);
    loop {
        let t = ring.tail.0.load(Ordering::Acquire);
        let h = ring.head.0.load(Ordering::Acquire);
        if (t | h) & CLOSED != 0 {
            if ring.sender.0.want.load(Ordering::Relaxed) == 0 {
                ring.sender.0.want.store(1, Ordering::Relaxed);
            }
            return None;
        }
        // A sleeping receiver is handed the message by the locked path.
        if read(&q.receivers).head != 0 || !usable(q, id, &cred, S_IWUGO) {
            return None;
        }
        let (tc, hc) = (count(t), count(h));
        let n = used(tc, hc);
        if n >= RING - 1 {
            return None;
        }
        let prev = ring.slot(next(tc, COUNT)).cum;
        let bytes = prev.wrapping_sub(ring.slot(next(hc, COUNT)).cum);
        // The list's counts only fall meanwhile (locked receivers).
        let (qnum, cbytes) = (read(&q.qnum), read(&q.cbytes));
        let qbytes = read(&q.qbytes);
        // msg_fits_inqueue, with the kernel's count rule 1 + qnum <= qbytes.
        if cbytes + bytes + ts as u64 <= qbytes && qnum + (n as u64) < qbytes {
            let s = ring.slot(tc);
            if let Err(e) = env.copy_from(s.text.as_mut_ptr(), src, ts) {
                return Some(Err(e));
            }
            (s.mtype, s.ts, s.cum) = (mtype, ts as u32, prev.wrapping_add(ts as u64));
            (s.spid, s.stime) = ((me >> 32) as i32, sys::coarse_seconds());
            let published = ring
                .tail
                .0
                .compare_exchange(t, next(tc, 1) as u64, Ordering::Release, Ordering::Relaxed)
                .is_ok();
            return published.then_some(Ok(0));
        }
        let moved = || ring.head.0.load(Ordering::Acquire) != h || read(&q.qnum) != qnum;
        if nowait || !budget.wait(r, ring.sender.0.peer(&ring.receiver.0, me), &moved) {
            return None;
        }
    }
}

/// msgrcv through the ring of queue `q` (search `mode` for `msgtyp`): `None` when the locked
/// path must serve it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn recv(
    r: &Region,
    ring: &MsgRing,
    q: &MsgQueue,
    id: i32,
    dst: usize,
    bufsz: u64,
    msgtyp: i64,
    mode: u32,
    msgflg: i32,
    me: u64,
    env: &dyn MsgEnv,
) -> Option<Result<usize, Errno>> {
    if !matches!(mode, SEARCH_ANY | SEARCH_EQUAL | SEARCH_NOTEQUAL) || !ring.receiver.0.enter(r, me) {
        return None;
    }
    let res = recv_entered(r, ring, q, id, dst, bufsz, msgtyp, mode, msgflg, me, env);
    ring.receiver.0.leave();
    res
}

#[allow(clippy::too_many_arguments)]
fn recv_entered(
    r: &Region,
    ring: &MsgRing,
    q: &MsgQueue,
    id: i32,
    dst: usize,
    bufsz: u64,
    msgtyp: i64,
    mode: u32,
    msgflg: i32,
    me: u64,
    env: &dyn MsgEnv,
) -> Option<Result<usize, Errno>> {
    let cred = Cred::current();
    let mut budget = journal::Brief::new(SAME_CPU_YIELDS);
    loop {
        let h = ring.head.0.load(Ordering::Acquire);
        let t = ring.tail.0.load(Ordering::Acquire);
        // Sleeping senders are woken by the locked path, and it puts back the message of a
        // receiver that died before taking what it was handed.
        let waiting = read(&q.senders).head | read(&q.handed).head;
        if (t | h) & CLOSED != 0
            || read(&q.messages).head != 0
            || waiting != 0
            || !usable(q, id, &cred, S_IRUGO)
        {
            return None;
        }
        let (tc, hc) = (count(t), count(h));
        let n = used(tc, hc).min(RING - 1);
        let first = (0..n).find(|&i| testmsg(read(&ring.slot(next(hc, i)).mtype), msgtyp, mode));
        // An answer without a swap (ENOMSG, E2BIG) holds only if the ring was not settled
        // meanwhile: its messages may then be in the list, and the slots we read new ones.
        let unsettled = || {
            core::sync::atomic::fence(Ordering::Acquire);
            ring.head.0.load(Ordering::Relaxed) == h
        };
        match first {
            // find_msg's choice is not the head: the list serves it.
            Some(i) if i > 0 => return None,
            Some(_) => {}
            None if msgflg & IPC_NOWAIT != 0 => return unsettled().then_some(Err(ENOMSG)),
            None => {
                let peer = ring.receiver.0.peer(&ring.sender.0, me);
                if !budget.wait(r, peer, &|| ring.tail.0.load(Ordering::Acquire) != t) {
                    return None;
                }
                continue;
            }
        }
        let s = ring.slot(hc);
        let ts = read(&s.ts) as u64;
        if bufsz < ts && msgflg & MSG_NOERROR == 0 {
            return unsettled().then_some(Err(E2BIG));
        }
        let len = ts.min(bufsz).min(RING_TEXT as u64) as usize;
        let mtype = read(&s.mtype);
        // As on the locked path, a fault loses the message (the kernel's store_msg).
        let res = env
            .copy_to(dst, &mtype as *const i64 as *const u8, 8)
            .and_then(|()| env.copy_to(dst + 8, s.text.as_ptr(), len))
            .map(|()| len);
        let took = &mut ring.receiver.0.took_mut()[(next(hc, 1) & 1) as usize];
        (took.count, took.pid, took.time) = (next(hc, 1), (me >> 32) as i32, sys::coarse_seconds());
        let taken =
            ring.head.0.compare_exchange(h, next(hc, 1) as u64, Ordering::Release, Ordering::Relaxed).is_ok();
        return taken.then_some(res);
    }
}
