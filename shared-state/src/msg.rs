//! System V message queues, after `ipc/msg.c`: `msg_queue`, `msg_msg`, `msg_receiver` and
//! `msg_sender`, with the kernel's order (pipelined_send hands a message to the first sleeping
//! receiver it suits, ss_wakeup, expunge_all, find_msg's search modes, MSG_COPY).
//!
//! Each queue has its own robust lock (the kernel's per-queue `q_perm.lock`), and the
//! namespace's lock guards only the ids (msgget, IPC_RMID, IPC_SET, IPC_INFO, the views),
//! taken before a queue's. Every store made while holding a lock is journalled first (the old
//! 8-byte word) in that lock's journal, emptied just before unlocking, so a holder killed at
//! any instant is rolled back by the next locker: a send or a receive happens entirely or not
//! at all. Messages, sleepers and text chunks come from pools shared by the queues, claimed
//! and freed through the journals (`journal::Pool`). Message text is copied from the sender
//! into its chunks before the message is linked, and to the receiver before it is unlinked.
//!
//! A message handed to a sleeping receiver waits in the receiver's entry until it wakes up and
//! copies it out. A receiver that dies first does not take it with it: whoever sees the death
//! puts the message back where it was in its queue (or hands it to the next receiver).

use crate::ipc::{self, Cred, Ipc64Perm, IpcFamily, KernIpcPerm, LockedIds, S_IRUGO, S_IWUGO};
use crate::journal::{CpuNote, FreeList, JOURNAL_BYTES, Journal, ObjGuard, ObjLock, Pool, PoolHead};
use crate::killpoint::{self, Step};
use crate::msg_ring::{self, CLOSED, RING, count, next, used};
use crate::proc;
use crate::region::{
    IPCMNI, MAX_PROCS, MSG_CHUNK, MSG_CHUNKS_MAX, MSG_CLAIMS_OFF, MSG_JOURNAL_OFF, MSG_LINKS_OFF,
    MSG_MSGS_MAX, MSG_MSGS_OFF, MSG_QUEUES_OFF, MSG_TEXT_OFF, MSG_WAITERS_MAX, MSG_WAITERS_OFF, Region,
};
use crate::sys::{self, Errno};
use crate::wait::{self, WaitOutcome};
use core::sync::atomic::{AtomicI32, AtomicU32, Ordering, compiler_fence};
use libc::{E2BIG, EACCES, EAGAIN, EIDRM, EINTR, EINVAL, ENOMEM, ENOMSG, EPERM};

pub const IPC_NOWAIT: i32 = 0o4000;
pub const MSG_NOERROR: i32 = 0o10000;
pub const MSG_EXCEPT: i32 = 0o20000;
pub const MSG_COPY: i32 = 0o40000;

pub const IPC_RMID: i32 = 0;
pub const IPC_SET: i32 = 1;
pub const IPC_STAT: i32 = 2;
pub const IPC_INFO: i32 = 3;
pub const MSG_STAT: i32 = 11;
pub const MSG_INFO: i32 = 12;
pub const MSG_STAT_ANY: i32 = 13;

/// `msginfo` constants of include/uapi/linux/msg.h.
const MSGMNI: i32 = 32000;
const MSGMNB: i32 = 16384;
const MSGPOOL: i32 = MSGMNI * MSGMNB / 1024;
const MSGTQL: i32 = MSGMNB;
const MSGMAP: i32 = MSGMNB;
const MSGSSZ: i32 = 16;
const MSGSEG: u16 = 0xffff;

const CAP_SYS_RESOURCE: u32 = 24;

/// find_msg's search modes.
pub(crate) const SEARCH_ANY: u32 = 1;
pub(crate) const SEARCH_EQUAL: u32 = 2;
pub(crate) const SEARCH_NOTEQUAL: u32 = 3;
const SEARCH_LESSEQUAL: u32 = 4;
const SEARCH_NUMBER: u32 = 5;

/// A sleeper's status: still waiting (the kernel's r_msg == -EAGAIN).
const PENDING: i32 = i32::MIN;
/// Woken to look again: a sender by ss_wakeup, a receiver by IPC_SET's expunge_all(-EAGAIN).
const RECHECK: i32 = i32::MIN + 1;
/// A receiver that was handed the message in its entry.
const HANDED: i32 = 1;

/// Which of its queue's lists a sleeper is on.
const ON_NONE: u32 = 0;
const ON_RECEIVERS: u32 = 1;
const ON_SENDERS: u32 = 2;
/// Receivers handed a message they have not taken yet (kept to see their death).
const ON_HANDED: u32 = 3;

const RECEIVER: u32 = 1;
const SENDER: u32 = 2;

pub(crate) const SAME_CPU_YIELDS: u32 = 4;
/// A sleeper looks for dead processes holding what it waits for at this interval.
const SLICE_NS: i64 = 97_000_000;
const DEFERRED_WAKES: usize = 64;

/// A queue of messages or sleepers: index + 1 of the first and last entry (0 = none).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct List {
    pub(crate) head: u32,
    tail: u32,
}

/// The namespace part (in the region header): the ids, under their own lock.
#[repr(C, align(64))]
pub struct MsgNs {
    pub lock: ObjLock,
    pub ids: ipc::IpcIds,
    /// The pools of messages, sleepers and text chunks (see [`POOLS`]).
    pools: [PoolHead; 3],
    /// Last ticket handed to a sleeper.
    tickets: AtomicU32,
}

/// The pools of messages, sleepers and text chunks: region offset and stride of the claim
/// words (the chunks' are an array of their own), of the link words (a free message's or
/// sleeper's list links, a free chunk's first text bytes), size, and the parts an entry's
/// memory is in (see `journal::Pool::claim`).
type PoolDesc = (u64, u64, u64, u64, u32, &'static [(u64, u64)]);
const POOLS: [PoolDesc; 3] = [
    (
        MSG_MSGS_OFF + core::mem::offset_of!(MsgMsg, claim) as u64,
        MSG_MSG_SIZE,
        MSG_MSGS_OFF,
        MSG_MSG_SIZE,
        MSG_MSGS_MAX,
        &[(MSG_MSGS_OFF, MSG_MSG_SIZE)],
    ),
    (
        MSG_WAITERS_OFF + core::mem::offset_of!(MsgWaiter, claim) as u64,
        MSG_WAITER_SIZE,
        MSG_WAITERS_OFF,
        MSG_WAITER_SIZE,
        MSG_WAITERS_MAX,
        &[(MSG_WAITERS_OFF, MSG_WAITER_SIZE)],
    ),
    (
        MSG_CLAIMS_OFF,
        4,
        MSG_TEXT_OFF,
        MSG_CHUNK,
        MSG_CHUNKS_MAX,
        &[(MSG_CLAIMS_OFF, 4), (MSG_LINKS_OFF, 4), (MSG_TEXT_OFF, MSG_CHUNK)],
    ),
];
const MSGS: u8 = 0;
const WAITERS: u8 = 1;
const CHUNKS: u8 = 2;

// The ids' journal may restore the words of `ids`, and none of the atomics.
const _: () =
    assert!(core::mem::offset_of!(MsgNs, ids) % 8 == 0 && core::mem::offset_of!(MsgNs, pools) % 8 == 0);

impl MsgNs {
    /// # Safety
    /// Only on a new region, before any other process uses it.
    pub unsafe fn init(this: *mut MsgNs) {
        // SAFETY: per the contract.
        unsafe {
            ObjLock::init(&raw mut (*this).lock);
            (*this).ids.init();
        }
    }
}

/// `struct msg_queue`.
#[repr(C, align(64))]
pub struct MsgQueue {
    /// The queue's own lock (`q_perm.lock`).
    lock: ObjLock,
    pub live: u32,
    _pad: u32,
    pub perm: KernIpcPerm,
    pub stime: i64,
    pub rtime: i64,
    pub ctime: i64,
    pub cbytes: u64,
    pub qnum: u64,
    pub qbytes: u64,
    pub lspid: i32,
    pub lrpid: i32,
    /// Send order of the next message: a message put back goes where this says it was.
    seq: u64,
    pub(crate) messages: List,
    pub(crate) receivers: List,
    pub(crate) senders: List,
    pub(crate) handed: List,
    /// Where the last lockers ran.
    cpus: CpuNote,
    /// Entries of each pool the queue freed and keeps for its next allocations.
    kept: [FreeList; 3],
}

/// `struct msg_msg`: its text is `nchunks(ts)` chunks chained from `first`.
#[repr(C)]
struct MsgMsg {
    next: u32,
    prev: u32,
    mtype: i64,
    ts: u64,
    seq: u64,
    first: u32,
    last: u32,
    /// The pool's claim word: queue index + 1.
    claim: AtomicU32,
    _pad: u32,
}

/// A sleeping `msg_receiver` or `msg_sender`.
#[repr(C)]
struct MsgWaiter {
    next: u32,
    prev: u32,
    list: u32,
    queue: u32,
    id: i32,
    owner: u32,
    /// The receiving thread (the kernel's q_lrpid after a pipelined send is its task_pid).
    tid: i32,
    mode: u32,
    msgtype: i64,
    maxsize: i64,
    /// Receiver: the message handed to it; sender: the message it holds (index + 1).
    msg: u32,
    status: i32,
    msgsz: u64,
    kind: u32,
    /// Tells the sleeper that the entry is still its own (entries of a process judged dead are
    /// freed and may be reused).
    ticket: u32,
    /// The sleeper's futex word (not journalled: a spurious change only causes a re-check).
    wake: AtomicU32,
    /// Non-zero while the sleeper is in its futex wait: only then is a wake syscall made.
    sleeping: AtomicU32,
    /// The pool's claim word: queue index + 1.
    claim: AtomicU32,
    _pad: u32,
}

pub(crate) const MSG_MSG_SIZE: u64 = size_of::<MsgMsg>() as u64;
pub(crate) const MSG_WAITER_SIZE: u64 = size_of::<MsgWaiter>() as u64;

/// `struct msqid64_ds` (x86_64).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Msqid64Ds {
    pub perm: Ipc64Perm,
    pub stime: i64,
    pub rtime: i64,
    pub ctime: i64,
    pub cbytes: u64,
    pub qnum: u64,
    pub qbytes: u64,
    pub lspid: i32,
    pub lrpid: i32,
    pub unused4: u64,
    pub unused5: u64,
}

/// `struct msginfo`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Msginfo {
    pub msgpool: i32,
    pub msgmap: i32,
    pub msgmax: i32,
    pub msgmnb: i32,
    pub msgmni: i32,
    pub msgssz: i32,
    pub msgtql: i32,
    pub msgseg: u16,
}

const _: () = assert!(size_of::<MsgMsg>() == 48 && size_of::<MsgWaiter>() == 88);
const _: () = assert!(size_of::<Msqid64Ds>() == 120 && size_of::<Msginfo>() == 32);
const _: () = assert!(core::mem::offset_of!(MsgWaiter, wake) % 8 == 0);

/// What a msgsnd or msgrcv needs from its caller.
pub trait MsgEnv {
    /// Copies `len` bytes from the caller's `src` (EFAULT if it is bad).
    fn copy_from(&self, dst: *mut u8, src: usize, len: usize) -> Result<(), Errno>;
    /// Copies `len` bytes to the caller's `dst` (EFAULT if it is bad).
    fn copy_to(&self, dst: usize, src: *const u8, len: usize) -> Result<(), Errno>;
    /// Runs one wait (the closure) with signals deliverable. Interrupted only when an
    /// application handler ran (msgsnd and msgrcv then fail with EINTR, never restart).
    fn wait(&self, f: &mut dyn FnMut() -> WaitOutcome) -> WaitOutcome;
    /// A cancellation point, called with no lock held and nothing queued.
    fn testcancel(&self) {}
}

fn nchunks(ts: u64) -> u32 {
    ts.div_ceil(MSG_CHUNK) as u32
}

/// A queue's lock, held: its state may be changed. Commits its journal and unlocks on drop,
/// then wakes the sleepers it completed.
pub(crate) struct Msgs<'a> {
    r: &'a Region,
    /// The queue whose lock is held.
    idx: u32,
    guard: Option<ObjGuard<'a>>,
    wakes: [core::cell::Cell<u32>; DEFERRED_WAKES],
    nwakes: core::cell::Cell<usize>,
    /// The ring is opened at unlock if it may be.
    reopen: core::cell::Cell<bool>,
}

impl Drop for Msgs<'_> {
    fn drop(&mut self) {
        self.journal().commit();
        if self.nwakes.get() != 0 {
            killpoint::reached(Step::MsgCommitted);
        }
        // After the commit: a rollback must never find a ring open over a list it refills.
        if self.reopen.get() {
            self.open_ring(self.idx);
        }
        drop(self.guard.take());
        for wi in &self.wakes[..self.nwakes.get()] {
            self.waiter(wi.get()).wake_sleeper();
        }
    }
}

impl MsgWaiter {
    fn wake_sleeper(&self) {
        wait::wake_sleeper(&self.sleeping, &self.wake);
    }
}

/// Calls of this process not yet added to `msg_calls`: a locked add per call, inside the lock,
/// on a line the peer's calls also write, cost a sixth of a two-CPU msgsnd.
static CALLS: crate::region::Tally = crate::region::Tally::new();

/// Takes queue `idx`'s lock for a served call (counted in `msg_calls`).
fn lock(r: &Region, idx: u32) -> Result<Msgs<'_>, Errno> {
    CALLS.bump(&r.header().counters.msg_calls);
    lock_uncounted(r, idx)
}

/// Adds this process's uncounted calls to `msg_calls` (at exit).
pub fn flush_counts(r: &Region) {
    CALLS.flush(&r.header().counters.msg_calls);
}

/// Queue `idx`, for reads without its lock (and to take it).
#[allow(clippy::mut_from_ref)]
fn queue_at(r: &Region, idx: u32) -> &mut MsgQueue {
    let idx = idx.min(IPCMNI - 1);
    // SAFETY: bounded index into the queue array; changed only under the queue's lock.
    unsafe { r.at::<MsgQueue>(queue_off(idx)) }
}

/// Sleeper entry `wi`, for reads without its queue's lock (and under it).
#[allow(clippy::mut_from_ref)]
fn waiter_at(r: &Region, wi: u32) -> &mut MsgWaiter {
    let wi = wi.min(MSG_WAITERS_MAX - 1);
    // SAFETY: bounded index into the sleeper pool; changed only under its queue's lock (or
    // only its atomics used).
    unsafe { r.at::<MsgWaiter>(MSG_WAITERS_OFF + wi as u64 * size_of::<MsgWaiter>() as u64) }
}

/// Takes queue `idx`'s lock for a view (`ipcs`, `/proc/sysvipc/msg`, status): not a call.
fn lock_uncounted(r: &Region, idx: u32) -> Result<Msgs<'_>, Errno> {
    let idx = idx.min(IPCMNI - 1);
    // A slot never used holds no queue (and its page may have no memory).
    if !queue_backed(r, idx) {
        return Err(EINVAL);
    }
    let guard = queue_at(r, idx).lock.lock(r).map_err(|_| ENOMEM)?;
    let recovered = guard.recovered;
    let s = Msgs {
        r,
        idx,
        guard: Some(guard),
        wakes: core::array::from_fn(|_| core::cell::Cell::new(0)),
        nwakes: Default::default(),
        reopen: Default::default(),
    };
    if recovered {
        r.header().counters.lock_recoveries.fetch_add(1, Ordering::Relaxed);
        s.rollback();
        Ids::repair(r);
    }
    Ok(s)
}

/// The queue of `msqid`, locked: EINVAL if there is none.
fn lock_id(r: &Region, msqid: i32) -> Result<Msgs<'_>, Errno> {
    let s = lock(r, ipc::id_to_idx(msqid))?;
    let q = s.queue(s.idx);
    if q.live != 0 && q.perm.id == msqid { Ok(s) } else { Err(EINVAL) }
}

/// The message queue family's ids (see `ipc::LockedIds`).
pub(crate) struct MsgIds;

/// The namespace's ids lock, held (a queue being created is released after it).
type Ids<'a> = ipc::Ids<'a, MsgIds>;

fn lock_ids(r: &Region) -> Result<Ids<'_>, Errno> {
    Ids::lock(r)
}

impl Ids<'_> {
    /// Each live queue, in index order, locked, its ring settled and its dead sleepers gone.
    fn each_queue(&self, mut f: impl FnMut(&Msgs)) -> Result<(), Errno> {
        for idx in 0..=self.max_idx() {
            let idx = idx as u32;
            if queue_at(self.r, idx).live != 0 {
                let s = lock_uncounted(self.r, idx)?;
                let _ = s.settle(idx);
                s.reap_queue(idx, false);
                f(&s);
            }
        }
        Ok(())
    }
}

/// `testmsg`.
pub(crate) fn testmsg(mtype: i64, msgtype: i64, mode: u32) -> bool {
    match mode {
        SEARCH_ANY | SEARCH_NUMBER => true,
        SEARCH_LESSEQUAL => mtype <= msgtype,
        SEARCH_EQUAL => mtype == msgtype,
        SEARCH_NOTEQUAL => mtype != msgtype,
        _ => false,
    }
}

/// `convert_mode`: the search mode, and msgtyp as find_msg uses it.
fn convert_mode(msgtyp: i64, msgflg: i32) -> (u32, i64) {
    if msgflg & MSG_COPY != 0 {
        return (SEARCH_NUMBER, msgtyp);
    }
    if msgtyp == 0 {
        return (SEARCH_ANY, msgtyp);
    }
    if msgtyp < 0 {
        return (SEARCH_LESSEQUAL, if msgtyp == i64::MIN { i64::MAX } else { -msgtyp });
    }
    if msgflg & MSG_EXCEPT != 0 { (SEARCH_NOTEQUAL, msgtyp) } else { (SEARCH_EQUAL, msgtyp) }
}

impl<'a> Msgs<'a> {
    fn ns(&self) -> &'a MsgNs {
        &self.r.header().msg
    }

    #[allow(clippy::mut_from_ref)]
    fn queue(&self, idx: u32) -> &'a mut MsgQueue {
        debug_assert!(idx == self.idx);
        queue_at(self.r, idx)
    }

    #[allow(clippy::mut_from_ref)]
    fn msg(&self, mi: u32) -> &'a mut MsgMsg {
        let mi = mi.min(MSG_MSGS_MAX - 1);
        // SAFETY: bounded index into the message pool; the queue's lock held.
        unsafe { self.r.at::<MsgMsg>(MSG_MSGS_OFF + mi as u64 * size_of::<MsgMsg>() as u64) }
    }

    #[allow(clippy::mut_from_ref)]
    fn waiter(&self, wi: u32) -> &'a mut MsgWaiter {
        waiter_at(self.r, wi)
    }

    /// The link (next chunk index + 1) of chunk `ci`.
    #[allow(clippy::mut_from_ref)]
    fn link(&self, ci: u32) -> &'a mut u32 {
        let ci = ci.min(MSG_CHUNKS_MAX - 1);
        // SAFETY: bounded index into the link array; lock held.
        unsafe { self.r.at::<u32>(MSG_LINKS_OFF + ci as u64 * 4) }
    }

    fn text(&self, ci: u32) -> *mut u8 {
        let ci = ci.min(MSG_CHUNKS_MAX - 1);
        (self.r.base() + (MSG_TEXT_OFF + ci as u64 * MSG_CHUNK) as usize) as *mut u8
    }

    // ---- the journal ----

    fn journal(&self) -> Journal<'a> {
        let q = queue_at(self.r, self.idx);
        let off = MSG_JOURNAL_OFF + self.idx as u64 * JOURNAL_BYTES;
        Journal::new(self.r, &q.lock, off, core::ptr::null()..core::ptr::null())
    }

    /// Saves the 8-byte words covering `[p, p + len)` before they are changed.
    fn save(&self, p: *const u8, len: usize) {
        self.journal().save(p, len);
    }

    /// A journalled store.
    fn w<T: Copy>(&self, place: &mut T, v: T) {
        self.save(place as *const T as *const u8, size_of::<T>());
        *place = v;
    }

    /// A journalled store, skipped when the value is already there (a queue's pids and times
    /// seldom change from one message to the next).
    fn set<T: Copy + PartialEq>(&self, place: &mut T, v: T) {
        if *place != v {
            self.w(place, v);
        }
    }

    /// Undoes what a killed holder left half done. The queue's message and byte counts are
    /// stored unjournalled (four entries fewer per call): they are counted again from the list.
    fn rollback(&self) {
        self.journal().recover();
        let idx = self.idx;
        let (mut qnum, mut cbytes) = (0, 0);
        let mut cur = self.queue(idx).messages.head;
        while cur != 0 && qnum < MSG_MSGS_MAX as u64 {
            qnum += 1;
            cbytes += self.msg(cur - 1).ts;
            cur = self.msg(cur - 1).next;
        }
        let q = self.queue(idx);
        (q.qnum, q.cbytes) = (qnum, cbytes);
    }

    fn defer_wake(&self, wi: u32) {
        let n = self.nwakes.get();
        if n < DEFERRED_WAKES {
            self.wakes[n].set(wi);
            self.nwakes.set(n + 1);
        } else {
            self.waiter(wi).wake_sleeper();
        }
    }

    // ---- the ring ----

    /// Closes queue `idx`'s ring and moves its messages to the list, with the pid and time of
    /// the last sender and receiver through it: locked calls then see the queue whole. Out of
    /// message headers, what did not move stays in the closed ring, after the list (false).
    fn settle(&self, idx: u32) -> bool {
        let ring = msg_ring::ring(self.r, idx);
        let base = ring.base.0.load(Ordering::Relaxed) as u32;
        let (t, h) = (ring.tail.0.load(Ordering::Acquire), ring.head.0.load(Ordering::Acquire));
        // Closed and settled already: nobody changes it, and a load takes no line away.
        if t & h & CLOSED != 0 && count(t) == base && count(h) == base {
            return true;
        }
        let t = ring.tail.0.fetch_or(CLOSED, Ordering::AcqRel);
        let h = ring.head.0.fetch_or(CLOSED, Ordering::AcqRel);
        let (tc, hc) = (count(t), count(h));
        if tc == base && hc == base {
            return true;
        }
        ring.sender.0.want.store(1, Ordering::Relaxed);
        let q = self.queue(idx);
        let took = &ring.receiver.0.took_mut()[(hc & 1) as usize];
        if hc != base && took.count == hc {
            self.set(&mut q.lrpid, took.pid);
            self.set(&mut q.rtime, took.time);
        }
        if tc != base {
            let s = ring.slot(next(tc, u32::MAX));
            self.set(&mut q.lspid, s.spid);
            self.set(&mut q.stime, s.stime);
        }
        // An open killed between its stores of the two words (`open_ring`) leaves the head
        // two past the tail: the ring holds nothing, and the tail joins the head.
        let n = used(tc, hc);
        let n = if n > RING - 1 {
            self.save(ring.tail.0.as_ptr().cast(), 8);
            ring.tail.0.store(CLOSED | hc as u64, Ordering::Relaxed);
            0
        } else {
            n
        };
        let mut moved = 0;
        while moved < n {
            let s = ring.slot(next(hc, moved));
            let ts = (s.ts as u64).min(msg_ring::RING_TEXT as u64);
            let Ok(mi) = self.alloc_msg(ts) else { break };
            moved += 1;
            let m = self.msg(mi);
            if ts > 0 {
                // SAFETY: ts bytes fit both the slot's text and the message's one chunk.
                unsafe { core::ptr::copy_nonoverlapping(s.text.as_ptr(), self.text(m.first), ts as usize) };
            }
            let seq = q.seq;
            (m.mtype, m.seq) = (s.mtype, seq);
            self.w(&mut q.seq, seq + 1);
            self.msg_add_before(idx, mi, 0);
            self.account(idx, mi, true);
        }
        let hc = next(hc, moved);
        self.save(ring.head.0.as_ptr().cast(), 8);
        ring.head.0.store(CLOSED | hc as u64, Ordering::Relaxed);
        self.save(ring.base.0.as_ptr().cast(), 8);
        ring.base.0.store(hc as u64, Ordering::Relaxed);
        moved == n
    }

    /// Opens queue `idx`'s settled ring again: its messages then follow the list's (only the
    /// locked path adds to the list, and it settles first). Runs after the journal is
    /// committed; a holder killed half way leaves it closed.
    fn open_ring(&self, idx: u32) {
        let q = self.queue(idx);
        let ring = msg_ring::ring(self.r, idx);
        let t = ring.tail.0.load(Ordering::Relaxed);
        if q.live == 0 || t & CLOSED == 0 || ring.sender.0.want.load(Ordering::Relaxed) == 0 {
            return;
        }
        if !msg_ring::reserve(self.r, idx) {
            return;
        }
        if count(ring.head.0.load(Ordering::Relaxed)) != count(t) {
            return;
        }
        // A process that died inside a ring call leaves its word set.
        for side in [&ring.sender.0.busy, &ring.receiver.0.busy] {
            let v = side.load(Ordering::Relaxed);
            let slot = (v as u32).wrapping_sub(1);
            // SAFETY: slot < MAX_PROCS (checked); the record is only read, and one freed or
            // reused meanwhile has another pid or state, which says dead as it should.
            if v != 0
                && (slot >= MAX_PROCS
                    || unsafe {
                        proc::record(self.r, slot).pid != (v >> 32) as i32 || proc::dead(self.r, slot, false)
                    })
            {
                let _ = side.compare_exchange(v, 0, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
        ring.sender.0.want.store(0, Ordering::Relaxed);
        // Two past the old count: a sender still inside its call (its swap will fail) may yet
        // write the slot at the old count.
        let base = next(count(t), 2);
        ring.slot(next(base, u32::MAX)).cum = 0;
        ring.base.0.store(base as u64, Ordering::Relaxed);
        // Killed between these two, the head is two past the tail: `settle` mends it.
        ring.head.0.store(CLOSED | base as u64, Ordering::Release);
        ring.tail.0.store(CLOSED | base as u64, Ordering::Release);
        ring.head.0.store(base as u64, Ordering::Release);
        ring.tail.0.store(base as u64, Ordering::Release);
    }

    // ---- pools ----

    fn pool(&self, which: u8) -> Pool<'a> {
        Self::pool_of(self.r, which)
    }

    fn pool_of(r: &'a Region, which: u8) -> Pool<'a> {
        let (words, stride, links, link_stride, max, _) = POOLS[which as usize];
        Pool { r, words, stride, links, link_stride, max, head: &r.header().msg.pools[which as usize] }
    }

    /// An entry of pool `which` (messages, sleepers, chunks), now the queue's: one it kept,
    /// else a free one.
    fn claim(&self, which: u8) -> Result<u32, Errno> {
        let kept = &mut self.queue(self.idx).kept[which as usize];
        self.pool(which).alloc(&self.journal(), self.idx + 1, kept, POOLS[which as usize].5).ok_or(ENOMEM)
    }

    /// Gives entry `i` of pool `which` back: kept by a live queue, else to the pool when the
    /// lock is released (a receiver still holds a removed queue's message).
    fn free(&self, which: u8, i: u32) {
        let q = self.queue(self.idx);
        if q.live != 0 {
            self.pool(which).release(&self.journal(), i, self.idx + 1, &mut q.kept[which as usize]);
        } else {
            self.pool(which).free(&self.journal(), i, self.idx + 1);
        }
    }

    /// `n` chunks chained first to last (their links need no journal: a rollback frees them),
    /// or none when the pool runs out.
    fn alloc_chunks(&self, n: u32) -> Result<(u32, u32), Errno> {
        let (mut first, mut last) = (0, 0);
        for k in 0..n {
            let Ok(ci) = self.claim(CHUNKS) else {
                let mut ci = first;
                for _ in 0..k {
                    self.free(CHUNKS, ci);
                    ci = self.link(ci).wrapping_sub(1);
                }
                return Err(ENOMEM);
            };
            if k == 0 {
                first = ci;
            } else {
                *self.link(last) = ci + 1;
            }
            last = ci;
        }
        Ok((first, last))
    }

    fn alloc_msg(&self, ts: u64) -> Result<u32, Errno> {
        let mi = self.claim(MSGS)?;
        let (first, last) = self.alloc_chunks(nchunks(ts)).inspect_err(|_| self.free(MSGS, mi))?;
        let m = self.msg(mi);
        // A message on no list has fields that mean nothing to a rollback (which frees it).
        (m.next, m.prev, m.mtype, m.ts, m.seq, m.first, m.last) = (0, 0, 0, ts, 0, first, last);
        Ok(mi)
    }

    /// `free_msg`: the message and its chunks go back to their pools.
    fn free_msg(&self, mi: u32) {
        let m = self.msg(mi);
        let mut ci = m.first;
        for _ in 0..nchunks(m.ts) {
            self.free(CHUNKS, ci);
            ci = self.link(ci).wrapping_sub(1);
        }
        self.free(MSGS, mi);
    }

    fn alloc_waiter(&self) -> Result<u32, Errno> {
        let pid = proc::self_pid();
        if SLEPT.load(Ordering::Relaxed) != pid {
            SLEPT.store(pid, Ordering::Relaxed);
        }
        self.claim(WAITERS)
    }

    fn free_waiter(&self, wi: u32) {
        let w = self.waiter(wi);
        self.w(&mut w.kind, 0);
        self.free(WAITERS, wi);
    }

    // ---- text ----

    /// load_msg's copy: the caller's `len` bytes at `src` into the chunks of `mi`.
    fn copy_in(&self, mi: u32, src: usize, env: &dyn MsgEnv) -> Result<(), Errno> {
        let m = self.msg(mi);
        let (mut ci, mut off) = (m.first, 0u64);
        while off < m.ts {
            let n = (m.ts - off).min(MSG_CHUNK);
            env.copy_from(self.text(ci), src + off as usize, n as usize)?;
            off += n;
            ci = self.link(ci).wrapping_sub(1);
        }
        Ok(())
    }

    /// do_msg_fill: the type, then up to `bufsz` bytes of text, to the caller's `dst`.
    fn copy_out(&self, mi: u32, dst: usize, bufsz: u64, env: &dyn MsgEnv) -> Result<u64, Errno> {
        let m = self.msg(mi);
        env.copy_to(dst, &m.mtype as *const i64 as *const u8, 8)?;
        let len = m.ts.min(bufsz);
        let (mut ci, mut off) = (m.first, 0u64);
        while off < len {
            let n = (len - off).min(MSG_CHUNK);
            env.copy_to(dst + 8 + off as usize, self.text(ci), n as usize)?;
            off += n;
            ci = self.link(ci).wrapping_sub(1);
        }
        Ok(len)
    }

    // ---- lists ----

    fn wlist(&self, idx: u32, code: u32) -> &'a mut List {
        let q = self.queue(idx);
        match code {
            ON_RECEIVERS => &mut q.receivers,
            ON_SENDERS => &mut q.senders,
            _ => &mut q.handed,
        }
    }

    fn waiter_add_tail(&self, idx: u32, code: u32, wi: u32) {
        let l = self.wlist(idx, code);
        let w = self.waiter(wi);
        self.w(&mut w.prev, l.tail);
        self.w(&mut w.next, 0);
        self.w(&mut w.list, code);
        if l.tail != 0 {
            self.w(&mut self.waiter(l.tail - 1).next, wi + 1);
        } else {
            self.w(&mut l.head, wi + 1);
        }
        self.w(&mut l.tail, wi + 1);
    }

    fn waiter_unlink(&self, wi: u32) {
        let w = self.waiter(wi);
        if w.list == ON_NONE {
            return;
        }
        let l = self.wlist(w.queue, w.list);
        if w.prev != 0 {
            self.w(&mut self.waiter(w.prev - 1).next, w.next);
        } else {
            self.w(&mut l.head, w.next);
        }
        if w.next != 0 {
            self.w(&mut self.waiter(w.next - 1).prev, w.prev);
        } else {
            self.w(&mut l.tail, w.prev);
        }
        self.w(&mut w.list, ON_NONE);
    }

    fn msg_add_before(&self, idx: u32, mi: u32, before: u32) {
        let q = self.queue(idx);
        let m = self.msg(mi);
        let prev = if before == 0 { q.messages.tail } else { self.msg(before - 1).prev };
        // A message on no list (new, held by a sender or a receiver) has links that mean
        // nothing: they need no journal.
        (m.prev, m.next) = (prev, before);
        if prev != 0 {
            self.w(&mut self.msg(prev - 1).next, mi + 1);
        } else {
            self.w(&mut q.messages.head, mi + 1);
        }
        if before != 0 {
            self.w(&mut self.msg(before - 1).prev, mi + 1);
        } else {
            self.w(&mut q.messages.tail, mi + 1);
        }
    }

    fn msg_unlink(&self, idx: u32, mi: u32) {
        let q = self.queue(idx);
        let m = self.msg(mi);
        if m.prev != 0 {
            self.w(&mut self.msg(m.prev - 1).next, m.next);
        } else {
            self.w(&mut q.messages.head, m.next);
        }
        if m.next != 0 {
            self.w(&mut self.msg(m.next - 1).prev, m.prev);
        } else {
            self.w(&mut q.messages.tail, m.prev);
        }
    }

    /// Accounts message `mi` as queued (`queued`) or as no longer queued.
    fn account(&self, idx: u32, mi: u32, queued: bool) {
        let q = self.queue(idx);
        let ts = self.msg(mi).ts;
        let (qnum, cbytes) = if queued {
            (q.qnum + 1, q.cbytes + ts)
        } else {
            (q.qnum.saturating_sub(1), q.cbytes.saturating_sub(ts))
        };
        // Not journalled: a rollback counts them again.
        (q.qnum, q.cbytes) = (qnum, cbytes);
    }

    // ---- msg.c ----

    /// `msg_fits_inqueue`.
    fn fits(&self, idx: u32, msgsz: u64) -> bool {
        let q = self.queue(idx);
        // The kernel writes the count rule as 1 + qnum <= qbytes.
        msgsz + q.cbytes <= q.qbytes && q.qnum < q.qbytes
    }

    /// `find_msg`: the first message matching (for SEARCH_LESSEQUAL the first of the lowest
    /// type), as index.
    fn find_msg(&self, idx: u32, msgtyp: i64, mode: u32) -> Option<u32> {
        let mut typ = msgtyp;
        let mut found = None;
        let mut count = 0i64;
        let mut cur = self.queue(idx).messages.head;
        while cur != 0 {
            let m = self.msg(cur - 1);
            if testmsg(m.mtype, typ, mode) {
                if mode == SEARCH_LESSEQUAL && m.mtype != 1 {
                    typ = m.mtype - 1;
                    found = Some(cur - 1);
                } else if mode == SEARCH_NUMBER {
                    if typ == count {
                        return Some(cur - 1);
                    }
                } else {
                    return Some(cur - 1);
                }
                count += 1;
            }
            cur = m.next;
        }
        found
    }

    /// Whether the sleeper's process is gone (its entry can go).
    fn owner_dead(&self, wi: u32, fresh: bool) -> bool {
        let owner = self.waiter(wi).owner;
        // SAFETY: owner < MAX_PROCS; records are released only after exit_msg dropped their
        // entries under this lock.
        owner >= MAX_PROCS || unsafe { proc::dead(self.r, owner, fresh) }
    }

    /// `pipelined_send`: hands `mi` to the first sleeping receiver it suits; a receiver whose
    /// buffer is too small gets E2BIG instead. Dead receivers are dropped on the way.
    fn pipelined_send(&self, idx: u32, mi: u32) -> bool {
        let (mtype, ts) = (self.msg(mi).mtype, self.msg(mi).ts);
        let mut cur = self.queue(idx).receivers.head;
        while cur != 0 {
            let wi = cur - 1;
            let w = self.waiter(wi);
            cur = w.next;
            if !testmsg(mtype, w.msgtype, w.mode) {
                continue;
            }
            if self.owner_dead(wi, false) {
                self.drop_waiter(wi);
                continue;
            }
            self.waiter_unlink(wi);
            if (w.maxsize as u64) < ts {
                self.w(&mut w.status, -E2BIG);
                w.wake.fetch_add(1, Ordering::SeqCst);
                self.defer_wake(wi);
            } else {
                let q = self.queue(idx);
                self.set(&mut q.lrpid, w.tid);
                self.set(&mut q.rtime, sys::coarse_seconds());
                self.w(&mut w.msg, mi + 1);
                self.w(&mut w.status, HANDED);
                killpoint::reached(Step::MsgHanded);
                self.waiter_add_tail(idx, ON_HANDED, wi);
                w.wake.fetch_add(1, Ordering::SeqCst);
                self.defer_wake(wi);
                return true;
            }
        }
        false
    }

    /// A message whose receiver died before taking it: handed on, or back in its place.
    fn requeue(&self, idx: u32, id: i32, mi: u32) {
        self.r.header().counters.msgs_requeued.fetch_add(1, Ordering::Relaxed);
        let q = self.queue(idx);
        if q.live == 0 || q.perm.id != id {
            self.free_msg(mi);
            return;
        }
        if self.pipelined_send(idx, mi) {
            return;
        }
        // The ring's messages are later ones, and an open ring's list must not grow.
        let _ = self.settle(idx);
        let seq = self.msg(mi).seq;
        let mut before = q.messages.head;
        while before != 0 && self.msg(before - 1).seq < seq {
            before = self.msg(before - 1).next;
        }
        self.msg_add_before(idx, mi, before);
        self.account(idx, mi, true);
    }

    /// Removes sleeper `wi` whose process is gone; what it held is not lost.
    fn drop_waiter(&self, wi: u32) {
        let w = self.waiter(wi);
        self.waiter_unlink(wi);
        if w.msg != 0 {
            let mi = w.msg - 1;
            self.w(&mut w.msg, 0);
            if w.kind == RECEIVER && w.status == HANDED {
                self.requeue(w.queue, w.id, mi);
            } else {
                self.free_msg(mi);
            }
        }
        self.free_waiter(wi);
    }

    /// Sleepers of queue `idx` whose processes died: dropped. Allocates nothing.
    fn reap_queue(&self, idx: u32, fresh: bool) {
        for code in [ON_HANDED, ON_RECEIVERS, ON_SENDERS] {
            let mut cur = self.wlist(idx, code).head;
            for _ in 0..MSG_WAITERS_MAX {
                if cur == 0 {
                    break;
                }
                let wi = cur - 1;
                cur = self.waiter(wi).next;
                if self.owner_dead(wi, fresh) {
                    self.drop_waiter(wi);
                    // A requeued message handed on moves a receiver to another list: when it
                    // was the next one, the walk starts over.
                    if cur != 0 && self.waiter(cur - 1).list != code {
                        cur = self.wlist(idx, code).head;
                    }
                }
            }
        }
    }

    /// Receivers handed a message whose processes died: their messages back in the queue.
    /// Allocates nothing (every msgrcv runs it).
    fn reap_handed(&self, idx: u32) {
        let mut cur = self.queue(idx).handed.head;
        while cur != 0 {
            let wi = cur - 1;
            cur = self.waiter(wi).next;
            if self.owner_dead(wi, false) {
                self.drop_waiter(wi);
            }
        }
    }

    /// `ss_wakeup`: with `kill` every sender leaves with EIDRM; else the senders whose message
    /// now fits are woken and the others move to the tail, in order.
    fn ss_wakeup(&self, idx: u32, kill: bool) {
        let mut cur = self.queue(idx).senders.head;
        let mut stop = 0;
        while cur != 0 {
            let wi = cur - 1;
            let w = self.waiter(wi);
            cur = w.next;
            if kill {
                self.waiter_unlink(wi);
                self.w(&mut w.status, -EIDRM);
            } else if stop == wi + 1 {
                break;
            } else if !self.fits(idx, w.msgsz) {
                if stop == 0 {
                    stop = wi + 1;
                }
                self.waiter_unlink(wi);
                self.waiter_add_tail(idx, ON_SENDERS, wi);
                continue;
            } else if w.status == PENDING {
                self.w(&mut w.status, RECHECK);
            }
            w.wake.fetch_add(1, Ordering::SeqCst);
            self.defer_wake(wi);
        }
    }

    /// `expunge_all`: every sleeping receiver is woken with `res` (RECHECK: look again).
    fn expunge_all(&self, idx: u32, res: i32) {
        let mut cur = self.queue(idx).receivers.head;
        while cur != 0 {
            let wi = cur - 1;
            let w = self.waiter(wi);
            cur = w.next;
            if res != RECHECK {
                self.waiter_unlink(wi);
            }
            self.w(&mut w.status, res);
            w.wake.fetch_add(1, Ordering::SeqCst);
            self.defer_wake(wi);
        }
    }

    /// `freeque`'s half under the queue's lock: sleepers leave with EIDRM, messages are
    /// freed, and the queue is dead.
    #[inline(never)]
    fn freeque(&self, idx: u32) {
        self.expunge_all(idx, -EIDRM);
        self.ss_wakeup(idx, true);
        // Receivers handed a message keep it, as in the kernel; the queue forgets them.
        let mut cur = self.queue(idx).handed.head;
        while cur != 0 {
            let wi = cur - 1;
            cur = self.waiter(wi).next;
            self.waiter_unlink(wi);
        }
        let mut cur = self.queue(idx).messages.head;
        while cur != 0 {
            let mi = cur - 1;
            cur = self.msg(mi).next;
            self.account(idx, mi, false);
            self.free_msg(mi);
        }
        let q = self.queue(idx);
        for which in [MSGS, WAITERS, CHUNKS] {
            self.pool(which).drain(&self.journal(), idx + 1, &mut q.kept[which as usize]);
        }
        self.w(&mut q.messages, List::default());
        self.w(&mut q.live, 0);
    }

    /// Records where we run; returns the last other process that locked the queue.
    fn note_cpu(&self) -> u64 {
        self.queue(self.idx).cpus.note(crate::journal::note_running(self.r))
    }

    /// A new sleeper entry on `idx`'s list `code`.
    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &self,
        idx: u32,
        code: u32,
        owner: u32,
        mode: u32,
        msgtype: i64,
        maxsize: i64,
        msg: u32,
        msgsz: u64,
    ) -> Result<(u32, u32), Errno> {
        let wi = self.alloc_waiter()?;
        let ticket = self.ns().tickets.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let w = self.waiter(wi);
        self.save(w as *const MsgWaiter as *const u8, core::mem::offset_of!(MsgWaiter, wake));
        w.next = 0;
        w.prev = 0;
        w.list = ON_NONE;
        w.queue = idx;
        w.id = self.queue(idx).perm.id;
        w.owner = owner;
        w.tid = if code == ON_RECEIVERS { current_tid() } else { 0 };
        w.mode = mode;
        w.msgtype = msgtype;
        w.maxsize = maxsize;
        w.msg = msg;
        w.status = PENDING;
        w.msgsz = msgsz;
        w.kind = if code == ON_RECEIVERS { RECEIVER } else { SENDER };
        w.ticket = ticket;
        self.waiter_add_tail(idx, code, wi);
        Ok((wi, ticket))
    }
}

impl LockedIds for MsgIds {
    type Params = ();
    type Obj<'a> = Msgs<'a>;
    const JOURNALS: u64 = MSG_JOURNAL_OFF;
    const SLOTS: (u64, u64) = (MSG_QUEUES_OFF, size_of::<MsgQueue>() as u64);

    fn lock(r: &Region) -> &ObjLock {
        &r.header().msg.lock
    }

    fn words(r: &Region) -> core::ops::Range<*const u8> {
        let ns = &r.header().msg;
        (&raw const ns.ids).cast::<u8>()..(&raw const ns.pools).cast::<u8>()
    }

    fn ids(r: &Region) -> &mut ipc::IpcIds {
        // SAFETY: changed only under the ids' lock.
        unsafe { &mut r.header_mut().msg.ids }
    }

    fn perm(r: &Region, idx: u32) -> Option<&KernIpcPerm> {
        let q = queue_backed(r, idx).then(|| queue_at(r, idx))?;
        (q.live != 0).then_some(&q.perm)
    }

    /// `newque`: the queue is made under its own lock, and goes live by a store journalled
    /// with the ids.
    fn getnew(ids: &mut Ids<'_>, cred: &Cred, key: i32, flg: i32, _: &()) -> Result<i32, Errno> {
        let limits = ids.r.header().limits;
        let (idx, seq) = ids.alloc(limits.msgmni)?;
        // The ring's first page gets its memory first, as the queue's slot did.
        let ring_page = ids.r.reserve(msg_ring::ring_off(idx), crate::region::PAGE_SIZE).map_err(|_| ENOMEM);
        let s = match ring_page.and_then(|()| lock_uncounted(ids.r, idx)) {
            Ok(s) => s,
            Err(e) => {
                ids.journal().recover();
                return Err(e);
            }
        };
        // A ring without room for all its slots (one never used: it holds nothing) stays
        // closed, and settled: the queue takes the locked path.
        if !msg_ring::reserve(ids.r, idx) {
            let ring = msg_ring::ring(ids.r, idx);
            for word in [&ring.tail.0, &ring.head.0, &ring.base.0] {
                ids.journal().save(word.as_ptr().cast(), 8);
            }
            ring.base.0.store(0, Ordering::Relaxed);
            ring.head.0.store(CLOSED, Ordering::Release);
            ring.tail.0.store(CLOSED, Ordering::Release);
        }
        let id = ipc::build_id(seq, idx);
        // Not journalled: the queue is not live until the store below.
        let q = s.queue(idx);
        q.perm = KernIpcPerm::new(cred, key, flg, seq, id);
        (q.stime, q.rtime, q.ctime) = (0, 0, sys::coarse_seconds());
        (q.cbytes, q.qnum, q.qbytes, q.lspid, q.lrpid, q.seq) = (0, 0, limits.msgmnb as u64, 0, 0, 0);
        (q.messages, q.receivers, q.senders, q.handed) = Default::default();
        compiler_fence(Ordering::SeqCst);
        ids.journal().save((&raw const q.live).cast(), 4);
        q.live = 1;
        ids.h.under = Some(s);
        Ok(id)
    }
}

/// `msgget(2)`.
pub fn msgget(r: &Region, key: i32, flg: i32) -> Result<i32, Errno> {
    let cred = Cred::current();
    let mut ids = lock_ids(r)?;
    CALLS.bump(&r.header().counters.msg_calls);
    ids.ipcget(&cred, key, flg, &())
}

/// How a blocked call waits: the first wait of a call spins while its likely waker `peer`
/// runs on another CPU or yields to it on ours (`journal::wait_briefly`), then it sleeps on
/// the entry's futex word for one slice. Returns with the queue's lock held again.
fn wait_once<'a>(
    r: &'a Region,
    s: Msgs<'a>,
    wi: u32,
    peer: &mut u64,
    env: &dyn MsgEnv,
) -> Result<(Msgs<'a>, WaitOutcome), Errno> {
    let w = s.waiter(wi);
    let seq = w.wake.load(Ordering::Acquire);
    let (idx, reopen) = (s.idx, s.reopen.get());
    drop(s);
    crate::journal::wait_briefly(r, *peer, || w.wake.load(Ordering::Acquire) != seq);
    *peer = 0;
    let until = wait::deadline_after(&libc::timespec { tv_sec: 0, tv_nsec: SLICE_NS });
    // Pairs with wake_sleeper: either the waker sees us asleep or we see its change.
    w.sleeping.store(wait::asleep_on(seq), Ordering::SeqCst);
    let out = if w.wake.load(Ordering::SeqCst) != seq {
        WaitOutcome::Woken
    } else {
        env.wait(&mut || match sys::futex(
            w.wake.as_ptr(),
            libc::FUTEX_WAIT_BITSET,
            seq,
            &until,
            0,
            libc::FUTEX_BITSET_MATCH_ANY as u32,
        ) {
            Err(libc::ETIMEDOUT) => WaitOutcome::TimedOut,
            Err(libc::EINTR) => WaitOutcome::Interrupted,
            _ => WaitOutcome::Woken,
        })
    };
    w.sleeping.store(0, Ordering::Relaxed);
    let s = lock(r, idx)?;
    s.reopen.set(reopen);
    Ok((s, out))
}

const fn queue_off(idx: u32) -> u64 {
    MSG_QUEUES_OFF + idx as u64 * size_of::<MsgQueue>() as u64
}

/// Whether queue slot `idx` was ever used (one that was not holds no queue, nor a ring, and
/// is not read: the lock-free paths leave an id that names it to the locked path's EINVAL).
fn queue_backed(r: &Region, idx: u32) -> bool {
    let idx = idx.min(IPCMNI - 1);
    r.reserved(queue_off(idx), size_of::<MsgQueue>() as u64)
}

/// Who calls through a ring: pid << 32 | process record + 1 (the record tells a death).
fn ring_caller(r: &Region) -> Option<u64> {
    proc::ensure_record(r).map(|slot| (proc::self_pid() as u32 as u64) << 32 | (slot as u64 + 1))
}

/// `msgsnd(2)`: `msgp` is the caller's `struct msgbuf`.
pub fn msgsnd(
    r: &Region,
    msqid: i32,
    msgp: usize,
    msgsz: usize,
    msgflg: i32,
    env: &dyn MsgEnv,
) -> Result<i32, Errno> {
    let mut mtype = 0i64;
    env.copy_from(&mut mtype as *mut i64 as *mut u8, msgp, 8)?;
    let limits = r.header().limits;
    if msgsz > limits.msgmax as usize || (msgsz as isize) < 0 || msqid < 0 || mtype < 1 {
        return Err(EINVAL);
    }
    let ts = msgsz as u64;
    if msgsz <= msg_ring::RING_TEXT
        && queue_backed(r, ipc::id_to_idx(msqid))
        && let Some(me) = ring_caller(r)
    {
        let idx = ipc::id_to_idx(msqid);
        let (ring, q) = (msg_ring::ring(r, idx), queue_at(r, idx));
        let nowait = msgflg & IPC_NOWAIT != 0;
        if let Some(res) = msg_ring::send(r, ring, q, msqid, mtype, msgp + 8, msgsz, nowait, me, env) {
            CALLS.bump(&r.header().counters.msg_calls);
            return res;
        }
    }
    // A sleeper needs a record, so that its death is seen: made before anything is held.
    let slot = if msgflg & IPC_NOWAIT == 0 { proc::ensure_record(r).ok_or(ENOMEM)? } else { proc::NO_SLOT };
    let cred = Cred::current();
    let idx = ipc::id_to_idx(msqid);
    let mut s = lock(r, idx)?;
    let mut peer = s.note_cpu();
    // load_msg: the text is copied before the queue is even looked up.
    let mi = s.alloc_msg(ts)?;
    if let Err(e) = s.copy_in(mi, msgp + 8, env) {
        s.free_msg(mi);
        return Err(e);
    }
    s.msg(mi).mtype = mtype;
    if s.queue(idx).live == 0 || s.queue(idx).perm.id != msqid {
        s.free_msg(mi);
        return Err(EINVAL);
    }
    s.reopen.set(true);
    loop {
        // A ring opened while we slept holds messages that count (no sleeper entry is ours
        // here).
        if !s.settle(idx) {
            s.free_msg(mi);
            return Err(ENOMEM);
        }
        let q = s.queue(idx);
        let fail = if !q.perm.ipcperms(&cred, S_IWUGO) {
            Some(EACCES)
        } else if q.live == 0 || q.perm.id != msqid {
            Some(EIDRM)
        } else if s.fits(idx, ts) {
            break;
        } else if msgflg & IPC_NOWAIT != 0 {
            Some(EAGAIN)
        } else {
            None
        };
        if let Some(e) = fail {
            s.free_msg(mi);
            return Err(e);
        }
        // ss_add: sleep holding the message; our entry owns it meanwhile.
        let (wi, ticket) = match s.enqueue(idx, ON_SENDERS, slot, 0, 0, 0, mi + 1, ts) {
            Ok(w) => w,
            Err(e) => {
                s.free_msg(mi);
                return Err(e);
            }
        };
        loop {
            let out;
            (s, out) = wait_once(r, s, wi, &mut peer, env)?;
            let w = s.waiter(wi);
            if w.kind != SENDER || w.ticket != ticket {
                return Err(EIDRM); // judged dead: the entry and the message were freed
            }
            if w.status == -EIDRM {
                s.free_msg(mi);
                s.free_waiter(wi);
                return Err(EIDRM);
            }
            if out == WaitOutcome::Interrupted || w.status == RECHECK {
                // ss_del: the message is ours again.
                s.waiter_unlink(wi);
                s.w(&mut w.msg, 0);
                s.free_waiter(wi);
                if out == WaitOutcome::Interrupted {
                    s.free_msg(mi);
                    drop(s);
                    env.testcancel();
                    return Err(EINTR);
                }
                break;
            }
            if s.queue(idx).live != 0 {
                s.reap_queue(idx, false);
            }
        }
    }
    let q = s.queue(idx);
    s.set(&mut q.lspid, proc::self_pid());
    s.set(&mut q.stime, sys::coarse_seconds());
    let seq = q.seq;
    // Ours alone until linked: no journal.
    s.msg(mi).seq = seq;
    s.w(&mut q.seq, seq + 1);
    if !s.pipelined_send(idx, mi) {
        s.msg_add_before(idx, mi, 0);
        s.account(idx, mi, true);
    }
    Ok(0)
}

/// `msgrcv(2)`: `msgp` is the caller's `struct msgbuf`; returns the bytes of text copied.
pub fn msgrcv(
    r: &Region,
    msqid: i32,
    msgp: usize,
    msgsz: usize,
    msgtyp: i64,
    msgflg: i32,
    env: &dyn MsgEnv,
) -> Result<usize, Errno> {
    if msqid < 0 || (msgsz as isize) < 0 {
        return Err(EINVAL);
    }
    let bufsz = msgsz as u64;
    // prepare_copy: MSG_COPY loads a message from the buffer first, so it must be readable.
    let copy_size = if msgflg & MSG_COPY != 0 {
        if msgflg & MSG_EXCEPT != 0 || msgflg & IPC_NOWAIT == 0 {
            return Err(EINVAL);
        }
        let len = bufsz.min(r.header().limits.msgmax as u64);
        let mut scratch = [0u8; 256];
        let mut off = 0;
        while off < len {
            let n = (len - off).min(scratch.len() as u64) as usize;
            env.copy_from(scratch.as_mut_ptr(), msgp + off as usize, n)?;
            off += n as u64;
        }
        len
    } else {
        0
    };
    let (mode, msgtyp) = convert_mode(msgtyp, msgflg);
    // A closed ring costs a queue of large messages one load.
    if msgflg & MSG_COPY == 0
        && queue_backed(r, ipc::id_to_idx(msqid))
        && msg_ring::ring(r, ipc::id_to_idx(msqid)).tail.0.load(Ordering::Relaxed) & CLOSED == 0
        && let Some(me) = ring_caller(r)
    {
        let (ring, q) = (msg_ring::ring(r, ipc::id_to_idx(msqid)), queue_at(r, ipc::id_to_idx(msqid)));
        if let Some(res) = msg_ring::recv(r, ring, q, msqid, msgp, bufsz, msgtyp, mode, msgflg, me, env) {
            CALLS.bump(&r.header().counters.msg_calls);
            return res;
        }
    }
    let slot = if msgflg & IPC_NOWAIT == 0 { proc::ensure_record(r).ok_or(ENOMEM)? } else { proc::NO_SLOT };
    let cred = Cred::current();
    let mut s = lock_id(r, msqid)?;
    let mut peer = s.note_cpu();
    let idx = s.idx;
    s.reopen.set(true);
    loop {
        let q = s.queue(idx);
        if !q.perm.ipcperms(&cred, S_IRUGO) {
            return Err(EACCES);
        }
        if q.live == 0 || q.perm.id != msqid {
            return Err(EIDRM);
        }
        s.reap_handed(idx);
        // The list's first match comes before the ring's, but for the lowest type.
        let found = match (mode != SEARCH_LESSEQUAL).then(|| s.find_msg(idx, msgtyp, mode)).flatten() {
            Some(mi) => Some(mi),
            None if s.settle(idx) => s.find_msg(idx, msgtyp, mode),
            None => return Err(ENOMEM),
        };
        if let Some(mi) = found {
            let ts = s.msg(mi).ts;
            if bufsz < ts && msgflg & MSG_NOERROR == 0 {
                return Err(E2BIG);
            }
            if msgflg & MSG_COPY != 0 {
                if ts > copy_size {
                    return Err(EINVAL);
                }
                return s.copy_out(mi, msgp, bufsz, env).map(|n| n as usize);
            }
            // Copied before the message leaves, so a kill mid-copy loses nothing; a fault
            // loses it, as the kernel's store_msg does after the unlink.
            let res = s.copy_out(mi, msgp, bufsz, env);
            s.msg_unlink(idx, mi);
            s.account(idx, mi, false);
            s.set(&mut q.rtime, sys::coarse_seconds());
            s.set(&mut q.lrpid, proc::self_pid());
            s.ss_wakeup(idx, false);
            s.free_msg(mi);
            return res.map(|n| n as usize);
        }
        if msgflg & IPC_NOWAIT != 0 {
            return Err(ENOMSG);
        }
        let maxsize = if msgflg & MSG_NOERROR != 0 { i32::MAX as i64 } else { bufsz as i64 };
        let (wi, ticket) = s.enqueue(idx, ON_RECEIVERS, slot, mode, msgtyp, maxsize, 0, 0)?;
        loop {
            let out;
            (s, out) = wait_once(r, s, wi, &mut peer, env)?;
            let w = s.waiter(wi);
            if w.kind != RECEIVER || w.ticket != ticket {
                return Err(EIDRM);
            }
            match w.status {
                HANDED => {
                    let mi = w.msg.wrapping_sub(1);
                    let res = s.copy_out(mi, msgp, bufsz, env);
                    s.waiter_unlink(wi);
                    s.w(&mut w.msg, 0);
                    s.free_waiter(wi);
                    s.free_msg(mi);
                    return res.map(|n| n as usize);
                }
                PENDING | RECHECK => {}
                st => {
                    s.waiter_unlink(wi);
                    s.free_waiter(wi);
                    return Err(-st);
                }
            }
            if out == WaitOutcome::Interrupted || w.status == RECHECK {
                s.waiter_unlink(wi);
                s.free_waiter(wi);
                if out == WaitOutcome::Interrupted {
                    drop(s);
                    env.testcancel();
                    return Err(EINTR);
                }
                break;
            }
            if s.queue(idx).live != 0 && s.queue(idx).perm.id == msqid {
                s.reap_queue(idx, false);
            }
        }
    }
}

fn to_user<T>(buf: usize, v: &T) -> Result<(), Errno> {
    sys::copy_to_user(buf, v as *const T as *const u8, size_of::<T>())
}

fn stat_of(s: &Msgs, idx: u32) -> Msqid64Ds {
    let q = s.queue(idx);
    Msqid64Ds {
        perm: Ipc64Perm::from(&q.perm),
        stime: q.stime,
        rtime: q.rtime,
        ctime: q.ctime,
        cbytes: q.cbytes,
        qnum: q.qnum,
        qbytes: q.qbytes,
        lspid: q.lspid,
        lrpid: q.lrpid,
        ..Default::default()
    }
}

/// `msgctl(2)`; `buf` is the caller's pointer.
pub fn msgctl(r: &Region, msqid: i32, cmd: i32, buf: usize) -> Result<i32, Errno> {
    if msqid < 0 || cmd < 0 {
        return Err(EINVAL);
    }
    let cred = Cred::current();
    match cmd {
        IPC_INFO | MSG_INFO => {
            let l = r.header().limits;
            let mut info = Msginfo {
                msgmni: l.msgmni as i32,
                msgmax: l.msgmax as i32,
                msgmnb: l.msgmnb as i32,
                msgssz: MSGSSZ,
                msgseg: MSGSEG,
                msgmap: MSGMAP,
                msgpool: MSGPOOL,
                msgtql: MSGTQL,
            };
            let max_idx = {
                let ids = lock_ids(r)?;
                CALLS.bump(&r.header().counters.msg_calls);
                if cmd == MSG_INFO {
                    let (mut hdrs, mut bytes) = (0u64, 0u64);
                    ids.each_queue(|s| {
                        hdrs += s.queue(s.idx).qnum;
                        bytes += s.queue(s.idx).cbytes;
                    })?;
                    info.msgpool = ids.ids().in_use as i32;
                    info.msgmap = hdrs.min(i32::MAX as u64) as i32;
                    info.msgtql = bytes.min(i32::MAX as u64) as i32;
                }
                ids.ids().get_maxidx()
            };
            to_user(buf, &info)?;
            Ok(max_idx.max(0))
        }
        IPC_STAT | MSG_STAT | MSG_STAT_ANY => {
            let (ds, ret) = {
                let s = lock(r, ipc::id_to_idx(msqid))?;
                let idx = s.idx;
                let q = s.queue(idx);
                if q.live == 0 || (cmd == IPC_STAT && q.perm.id != msqid) {
                    return Err(EINVAL);
                }
                if cmd != MSG_STAT_ANY && !q.perm.ipcperms(&cred, S_IRUGO) {
                    return Err(EACCES);
                }
                let _ = s.settle(idx);
                s.reap_queue(idx, false);
                (stat_of(&s, idx), if cmd == IPC_STAT { 0 } else { q.perm.id })
            };
            to_user(buf, &ds)?;
            Ok(ret)
        }
        IPC_SET | IPC_RMID => msgctl_down(r, &cred, msqid, cmd, buf),
        _ => Err(EINVAL),
    }
}

/// IPC_SET and IPC_RMID (`msgctl_down`): apart, so that its frame does not add to the others'.
#[inline(never)]
fn msgctl_down(r: &Region, cred: &Cred, msqid: i32, cmd: i32, buf: usize) -> Result<i32, Errno> {
    let (uid, gid, mode, qbytes) = if cmd == IPC_SET { set_args(buf)? } else { (0, 0, 0, 0) };
    // msgctl_down: the ids first, then the queue.
    let ids = lock_ids(r)?;
    let s = lock_id(r, msqid)?;
    let idx = s.idx;
    let q = s.queue(idx);
    if !q.perm.owner_or_admin(cred) {
        return Err(EPERM);
    }
    let _ = s.settle(idx);
    if cmd == IPC_RMID {
        s.freeque(idx);
        // The queue's half is committed first: a holder killed before the ids' half
        // leaves ids that their recovery counts again.
        drop(s);
        ids.remove(idx);
        return Ok(0);
    }
    if qbytes as u32 > r.header().limits.msgmnb && !cred.capable(CAP_SYS_RESOURCE) {
        return Err(EPERM);
    }
    let mut perm = q.perm;
    perm.update(uid, gid, mode)?;
    s.w(&mut q.perm, perm);
    s.w(&mut q.qbytes, qbytes as i64 as u64);
    s.w(&mut q.ctime, sys::coarse_seconds());
    s.expunge_all(idx, RECHECK);
    s.ss_wakeup(idx, false);
    Ok(0)
}

/// IPC_SET's uid, gid, mode and msg_qbytes, read from the user's msqid_ds in a frame of their
/// own (the caller's holds two lock guards). msgctl_down takes msg_qbytes as an int (and
/// compares it with the unsigned msgmnb).
#[inline(never)]
fn set_args(buf: usize) -> Result<(u32, u32, u32, i32), Errno> {
    let mut ds = Msqid64Ds::default();
    sys::copy_from_user(&mut ds as *mut Msqid64Ds as *mut u8, buf, size_of::<Msqid64Ds>())?;
    Ok((ds.perm.uid, ds.perm.gid, ds.perm.mode as u32, ds.qbytes as i32))
}

/// A live queue as `ipcs` shows it.
pub struct MsgSnapshot {
    pub id: i32,
    pub ds: Msqid64Ds,
}

/// Every live queue, in index order, after settling dead processes: for `ipcs` and `status`.
pub fn snapshot(r: &Region) -> Result<Vec<MsgSnapshot>, Errno> {
    let mut out = Vec::new();
    each_stat(r, |id, ds| out.push(MsgSnapshot { id, ds: *ds }))?;
    Ok(out)
}

/// Each live queue's id and stat, in index order, after settling dead processes; allocates
/// nothing (for `/proc/sysvipc/msg`).
pub fn each_stat(r: &Region, mut f: impl FnMut(i32, &Msqid64Ds)) -> Result<(), Errno> {
    lock_ids(r)?.each_queue(|s| f(s.queue(s.idx).perm.id, &stat_of(s, s.idx)))
}

/// The id of the queue with `key`, for `ipcrm -Q`.
pub fn id_of_key(r: &Region, key: i32) -> Result<i32, Errno> {
    let ids = lock_ids(r)?;
    CALLS.bump(&r.header().counters.msg_calls);
    ids.findkey(key).map(|i| queue_at(r, i).perm.id).ok_or(EINVAL)
}

/// Live queues and the messages in them, for `ipcshim status`.
pub fn counts(r: &Region) -> (u32, u64) {
    let Ok(ids) = lock_ids(r) else { return (0, 0) };
    let mut hdrs = 0;
    let _ = ids.each_queue(|s| hdrs += s.queue(s.idx).qnum);
    (ids.ids().in_use, hdrs)
}

/// The pid holding the lock of the queue of `msqid` (0 when none), for tests that kill it.
pub fn lock_holder(r: &Region, msqid: i32) -> i32 {
    let idx = ipc::id_to_idx(msqid);
    if !queue_backed(r, idx) {
        return 0;
    }
    (queue_at(r, idx).lock.owner_word() & 0x3fff_ffff) as i32
}

/// This process's pid once it queued a sleeper (0: never; a fork child starts with its
/// parent's): an image that never did has none to drop at its exit, and need not read the
/// sleepers' pool (a page fault per page of it, in every exiting process).
static SLEPT: AtomicI32 = AtomicI32::new(0);

/// At this image's own exit: [`exit_msg`] for its record `slot`, if it ever queued a sleeper.
///
/// # Safety
/// As [`exit_msg`].
pub unsafe fn exit_msg_own(r: &Region, slot: u32) {
    if SLEPT.load(Ordering::Relaxed) == proc::self_pid() {
        // SAFETY: per the contract.
        unsafe { exit_msg(r, slot) };
    }
}

/// The sleepers of the process in `slot` are gone (it exited, exec'd or was found dead): a
/// sender's message is dropped, a handed receiver's goes back to its queue; each under its
/// queue's lock.
///
/// # Safety
/// The caller holds the region lock (lock order: region, then queues) or none;
/// `slot < MAX_PROCS`.
pub unsafe fn exit_msg(r: &Region, slot: u32) {
    for wi in 0..r.header().msg.pools[WAITERS as usize].high(MSG_WAITERS_MAX) {
        let w = waiter_at(r, wi);
        let claim = w.claim.load(Ordering::Acquire);
        if claim == 0 || w.kind == 0 || w.owner != slot {
            continue;
        }
        let Ok(s) = lock(r, claim - 1) else { continue };
        if w.claim.load(Ordering::Acquire) == claim && w.kind != 0 && w.owner == slot {
            s.drop_waiter(wi);
        }
    }
}

/// This thread's id, asked once per thread and process (a fork child's thread starts with its
/// parent's cache, under the parent's pid).
fn current_tid() -> i32 {
    thread_local! {
        static TID: core::cell::Cell<(i32, i32)> = const { core::cell::Cell::new((0, 0)) };
    }
    let pid = proc::self_pid();
    TID.with(|c| {
        let (cached_pid, tid) = c.get();
        if cached_pid == pid && tid != 0 {
            return tid;
        }
        let tid = sys::syscall6(libc::SYS_gettid, 0, 0, 0, 0, 0, 0).unwrap_or(0) as i32;
        c.set((pid, tid));
        tid
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(convert_mode(0, MSG_EXCEPT), (SEARCH_ANY, 0));
        assert_eq!(convert_mode(-3, MSG_EXCEPT), (SEARCH_LESSEQUAL, 3));
        assert_eq!(convert_mode(i64::MIN, 0), (SEARCH_LESSEQUAL, i64::MAX));
        assert_eq!(convert_mode(4, MSG_EXCEPT), (SEARCH_NOTEQUAL, 4));
        assert_eq!(convert_mode(4, 0), (SEARCH_EQUAL, 4));
        assert_eq!(convert_mode(-1, MSG_COPY), (SEARCH_NUMBER, -1));
        assert!(testmsg(2, 3, SEARCH_LESSEQUAL) && !testmsg(4, 3, SEARCH_LESSEQUAL));
        assert!(testmsg(2, 3, SEARCH_NOTEQUAL) && !testmsg(3, 3, SEARCH_NOTEQUAL));
        assert_eq!(nchunks(0), 0);
        assert_eq!(nchunks(1), 1);
        assert_eq!(nchunks(MSG_CHUNK), 1);
        assert_eq!(nchunks(MSG_CHUNK + 1), 2);
    }

    struct Copy;

    impl MsgEnv for Copy {
        fn copy_from(&self, dst: *mut u8, src: usize, len: usize) -> Result<(), Errno> {
            // SAFETY: the test passes its own buffers.
            unsafe { core::ptr::copy_nonoverlapping(src as *const u8, dst, len) };
            Ok(())
        }

        fn copy_to(&self, dst: usize, src: *const u8, len: usize) -> Result<(), Errno> {
            // SAFETY: as above.
            unsafe { core::ptr::copy_nonoverlapping(src, dst as *mut u8, len) };
            Ok(())
        }

        fn wait(&self, f: &mut dyn FnMut() -> WaitOutcome) -> WaitOutcome {
            f()
        }
    }

    /// A fresh region of the test's own in /dev/shm, and its directory.
    fn region(name: &str) -> (std::path::PathBuf, Region) {
        let dir =
            std::path::Path::new("/dev/shm").join(format!("ipcshim-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = crate::region::region_path(dir.to_str().unwrap(), sys::getuid(), "t").unwrap();
        (dir, Region::open(&path, true).unwrap())
    }

    /// A holder killed in `open_ring` between its stores of the head and the tail leaves the
    /// head two past the tail: the next locked call finds the ring empty (not its 511 old
    /// slots as messages), and the ring carries messages again after it.
    #[test]
    fn ring_opened_half_holds_nothing() {
        let (dir, r) = region("msghalf");
        let id = msgget(&r, crate::ipc::IPC_PRIVATE, 0o600).unwrap();
        let idx = crate::ipc::id_to_idx(id);
        let ring = msg_ring::ring(&r, idx);
        {
            let s = lock(&r, idx).unwrap();
            assert!(s.settle(idx));
            // Old messages of type 1 in every slot, as a busy ring leaves them.
            for c in 0..RING {
                let slot = ring.slot(c);
                (slot.mtype, slot.ts, slot.spid) = (1, 32, 1);
            }
            // open_ring's first stores, then the kill.
            let base = next(count(ring.tail.0.load(Ordering::Relaxed)), 2);
            ring.base.0.store(base as u64, Ordering::Relaxed);
            ring.head.0.store(CLOSED | base as u64, Ordering::Release);
        }
        let mut buf = [0u8; 8 + 32];
        let rcv = |buf: &mut [u8; 40]| msgrcv(&r, id, buf.as_mut_ptr() as usize, 32, 1, IPC_NOWAIT, &Copy);
        assert_eq!(rcv(&mut buf), Err(ENOMSG), "old slots came out as messages");
        for k in 0..600u32 {
            buf[..8].copy_from_slice(&1i64.to_ne_bytes());
            buf[8..12].copy_from_slice(&k.to_ne_bytes());
            msgsnd(&r, id, buf.as_ptr() as usize, 32, IPC_NOWAIT, &Copy).unwrap();
            assert_eq!(rcv(&mut buf), Ok(32));
            assert_eq!(buf[8..12], k.to_ne_bytes());
        }
        assert_eq!(rcv(&mut buf), Err(ENOMSG));
        assert_eq!(count(ring.tail.0.load(Ordering::Relaxed)), count(ring.head.0.load(Ordering::Relaxed)));
        msgctl(&r, id, IPC_RMID, 0).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A queue reuses the entries it freed: thousands of messages through it take no more of
    /// the pools than its deepest moment, and its removal gives every entry back.
    #[test]
    fn queues_reuse_their_entries() {
        let (dir, r) = region("msgpool");
        let id = msgget(&r, crate::ipc::IPC_PRIVATE, 0o600).unwrap();
        let mut buf = vec![0u8; 8 + 3000];
        buf[..8].copy_from_slice(&1i64.to_ne_bytes());
        let (mut sent, mut got) = (0u64, 0u64);
        for round in 0..2000u64 {
            // Up to 5 messages of 200-3000 bytes (1-3 chunks, above the ring's size) queued.
            let len = 200 + (round * 397 % 2800) as usize;
            if msgsnd(&r, id, buf.as_ptr() as usize, len, IPC_NOWAIT, &Copy).is_ok() {
                sent += 1;
            }
            if round % 5 == 4 {
                while msgrcv(&r, id, buf.as_mut_ptr() as usize, 3000, 0, IPC_NOWAIT, &Copy).is_ok() {
                    got += 1;
                }
            }
        }
        assert_eq!((sent, got), (2000, 2000));
        let pools = &r.header().msg.pools;
        assert!(
            pools[MSGS as usize].high(MSG_MSGS_MAX) <= 5,
            "messages took more entries than queued at once"
        );
        assert!(
            pools[CHUNKS as usize].high(MSG_CHUNKS_MAX) <= 15,
            "chunks took more entries than queued at once"
        );
        let kept = queue_at(&r, crate::ipc::id_to_idx(id)).kept;
        assert!(
            kept[MSGS as usize].len() >= 5 && kept[CHUNKS as usize].len() >= 5,
            "the queue keeps no entries"
        );
        msgctl(&r, id, IPC_RMID, 0).unwrap();
        for (which, max) in [(MSGS, MSG_MSGS_MAX), (CHUNKS, MSG_CHUNKS_MAX)] {
            let pool = Msgs::pool_of(&r, which);
            for i in 0..pools[which as usize].high(max) {
                assert_eq!(
                    pool.word(i).load(Ordering::Relaxed),
                    0,
                    "entry {i} of pool {which} kept after removal"
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A 200-byte message (past the ring's room) of type 1 whose text is `c`s.
    #[repr(C)]
    struct Big {
        mtype: i64,
        text: [u8; 200],
    }

    /// A receiver asleep on a queue, and a sender handing it a message killed at `step`:
    /// `handed` says whether the message counts as sent (then the receiver gets it, else the
    /// next one), and the queue ends empty either way: nothing lost, nothing twice.
    fn sender_killed(name: &str, step: Step, handed: bool) {
        let (dir, r) = region(name);
        let r = &r;
        let id = msgget(r, crate::ipc::IPC_PRIVATE, 0o600).unwrap();
        let spawn = |f: &dyn Fn() -> i32| {
            // SAFETY: the child makes shared_state calls and raw system calls only, then exits.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                proc::identify_self();
                // SAFETY: plain _exit.
                unsafe { libc::_exit(f()) };
            }
            pid
        };
        let send = |c: u8| {
            let m = Big { mtype: 1, text: [c; 200] };
            msgsnd(r, id, &m as *const Big as usize, 200, 0, &Copy)
        };
        let wait = |pid: i32| {
            let mut st = 0;
            for _ in 0..20_000 {
                // SAFETY: our own child.
                if unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) } == pid {
                    return st;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{step:?}: a process hung");
        };
        let receiver = spawn(&|| {
            let mut m = Big { mtype: 0, text: [0; 200] };
            match msgrcv(r, id, &mut m as *mut Big as usize, 200, 0, 0, &Copy) {
                Ok(200) if m.text.iter().all(|&b| b == m.text[0]) => m.text[0] as i32,
                _ => 1,
            }
        });
        let idx = crate::ipc::id_to_idx(id);
        for _ in 0..20_000 {
            if queue_at(r, idx).receivers.head != 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let victim = spawn(&|| {
            killpoint::arm(step, 0);
            if send(b'A').is_ok() { 0 } else { 1 }
        });
        let st = wait(victim);
        assert!(libc::WIFSIGNALED(st), "{step:?}: the sender did not die there (status {st:#x})");
        send(b'B').unwrap();
        let st = wait(receiver);
        let want = if handed { b'A' } else { b'B' };
        assert!(libc::WIFEXITED(st), "{step:?}: receiver status {st:#x}");
        assert_eq!(libc::WEXITSTATUS(st), want as i32, "{step:?}: what the receiver got");
        let mut m = Big { mtype: 0, text: [0; 200] };
        let left = msgrcv(r, id, &mut m as *mut Big as usize, 200, 0, IPC_NOWAIT, &Copy).map(|_| m.text[0]);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(left, if handed { Ok(b'B') } else { Err(ENOMSG) }, "{step:?}: what the queue kept");
    }

    /// A sender killed having handed its message to a sleeping receiver, before its commit:
    /// the send never happened, and the receiver gets the next message.
    #[test]
    fn sender_killed_handing_a_message() {
        sender_killed("msghanded", Step::MsgHanded, false);
    }

    /// A sender killed having committed a hand-off, before it woke the receiver: the receiver
    /// gets that message at its next look.
    #[test]
    fn sender_killed_before_waking_its_receiver() {
        sender_killed("msgcommitted", Step::MsgCommitted, true);
    }
}
