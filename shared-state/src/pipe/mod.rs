//! Pipes and FIFOs, after `fs/pipe.c`: `pipe_inode_info`, its ring of `pipe_buffer`s, and
//! pipe_read, pipe_write, pipe_poll, FIONREAD, F_GETPIPE_SZ/F_SETPIPE_SZ (pipe_set_size,
//! pipe_resize_ring, round_pipe_size).
//! What an AF_UNIX socket adds to its send queue (connection state, records, out-of-band bytes,
//! send-buffer charges, datagram and UDP receive queues) is in `sock.rs`, as `net/unix/af_unix.c`.
//!
//! An object is a slot of the region's pipe table, named by the (st_dev, st_ino) of the kernel
//! object behind the caller's fds (a placeholder pipe, or the FIFO file itself). Its ring is a
//! run of pages from [`crate::pipe_pages`]: first the buffer table (one packed `pipe_buffer` per
//! slot), then one data page per slot — slot i always uses data page i, so a buffer is only
//! its offset, length and flags, packed into one `u64`.
//!
//! Crash safety (a process may be SIGKILLed at any instruction, lock held or mid-copy): data is
//! copied into free space or out of queued space first and published afterwards by one store —
//! `head_tail` for a new or consumed buffer, the packed buffer for a merge or partial read, the
//! ring descriptor for a resize (whose runs are remembered in two intent words until the old
//! one is freed). So a write that did not return leaves either nothing or whole buffers, a read
//! that did not return leaves its data queued, and the next locker (EOWNERDEAD) only tidies up.
//!
//! Waits are shared futex waits on one word per pipe, bumped and woken only when somebody
//! sleeps (reader and writer waiter counts), so reads and writes that need not block make no
//! system call. A waiter first spins briefly if its peer last ran on another CPU and is not
//! asleep, then sleeps in slices (1 ms doubling to 100 ms) after each of which it asks the
//! environment whether the other side still exists: a SIGKILLed peer wakes nobody.

use crate::backing;
use crate::lock::{LockGuard, RobustMutex};
use crate::pipe_pages::{self, POOL_PAGES, PagePool, page_addr};
use crate::region::{PAGE_SIZE, PIPE_HASH_BUCKETS, PIPE_HASH_OFF, PIPE_MAX, PIPE_SLOTS_OFF, Region, Tally};
use crate::skb;
use crate::sys::{self, Errno};
use crate::uaccess;
use crate::wait::{self, WaitOutcome};
use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use libc::{EAGAIN, EBADF, EBUSY, EFAULT, EINTR, EINVAL, ENFILE, ENOMEM, EPERM, EPIPE};

mod sock;
pub use sock::*;

/// Writes of at most this many bytes are atomic.
pub const PIPE_BUF: usize = 4096;
pub const PIPE_DEF_BUFFERS: u32 = 16;
/// What a user over the soft page limit gets (fs/pipe.c's PIPE_MIN_DEF_BUFFERS).
pub const PIPE_MIN_DEF_BUFFERS: u32 = 2;
pub(crate) const PAGE: usize = PAGE_SIZE as usize;
/// A ring holds at most 2^31 bytes (round_pipe_size).
const MAX_RING_SHIFT: u32 = 19;
const CAP_SYS_RESOURCE: u64 = 1 << 24;
const CAP_SYS_ADMIN: u64 = 1 << 21;

/// `pipe_buffer.flags`, in the packed form's upper half.
const PIPE_BUF_FLAG_PACKET: u64 = 1 << 32;
pub(crate) const PIPE_BUF_FLAG_CAN_MERGE: u64 = 1 << 33;
/// A seqpacket record's last buffer (its others are packet buffers): see [`record_write`].
const PIPE_BUF_FLAG_RECORD_END: u64 = 1 << 34;
/// A socket message's first buffer, whose page starts with its [`UnixCb`] (the data follows).
const PIPE_BUF_FLAG_CB: u64 = 1 << 35;
/// A stream socket's out-of-band byte, a buffer of its own (the kernel's `oob_skb`): the
/// queue's [`PipeInodeInfo::oob`] names the current one; once taken by `recv(MSG_OOB)` it
/// stays as an empty buffer, a mark no read reads across.
const PIPE_BUF_FLAG_OOB: u64 = 1 << 36;
/// [`PipeInodeInfo::oob`] holds a ring index.
const OOB_SET: u64 = 1 << 63;

/// A `sockaddr_un` at most this long: family and `sun_path`.
pub const SOCKADDR_UN_MAX: usize = 110;

/// What the kernel's `UNIXCB(skb)` keeps beside a message's data: the token of the fds (and
/// explicit credentials) the kernel's own socket carries for it (0: none), the sender's
/// credentials, and a datagram's sender address (`skb->sk`'s, as `unix_copy_addr` gives it;
/// length 0: unbound). Stored at the start of the message's first page.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnixCb {
    pub fp: u64,
    /// A datagram in a receive queue: its sending socket's object (handle bits + 1, 0 for
    /// none), which the datagram's truesize is charged to until it is taken.
    pub sender: u64,
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    pub addr_len: u32,
    pub addr: [u8; SOCKADDR_UN_MAX],
    /// The sender's PID namespace (its nsfs inode) when `pid` is set: a receiver in another
    /// one cannot see that pid.
    pub pid_ns: u32,
    /// With `sender`: the charge, in [`CHARGE_UNIT`]s.
    pub charge: u32,
}

impl Default for UnixCb {
    fn default() -> UnixCb {
        UnixCb {
            fp: 0,
            sender: 0,
            pid: 0,
            uid: 0,
            gid: 0,
            addr_len: 0,
            addr: [0; SOCKADDR_UN_MAX],
            pid_ns: 0,
            charge: 0,
        }
    }
}

impl UnixCb {
    fn creds(&self) -> (u32, u32, u32) {
        (self.pid, self.uid, self.gid)
    }
}

/// A [`UnixCb::fp`] that marks an empty record standing for the next datagram of the
/// receiver's kernel socket (one the kernel carries, with its ancillary data): read in its
/// place, it keeps that datagram's order among the others.
pub const FP_KERNEL_NEXT: u64 = u64::MAX;

/// Room a [`UnixCb`] takes at the start of a page (data stays 8-byte aligned).
pub const CB_LEN: usize = core::mem::size_of::<UnixCb>().next_multiple_of(8);

/// Slot states, the low byte of `ident` (the generation is above it).
const FREE: u64 = 0;
const LIVE: u64 = 1;
/// Being freed by the holder of the namespace lock.
const DYING: u64 = 2;
/// Its (dev, ino) was taken by a newer object while an operation was still running on it:
/// unreachable by lookups, freed by the garbage collector once idle.
const ORPHAN: u64 = 3;

/// Waker bitsets: a reader sleeps until a writer publishes, a writer until a reader consumes.
pub const READERS: u32 = 1;
pub const WRITERS: u32 = 2;

const SPIN_NS: i64 = 50_000;
/// The fewest pages a write copies with the pipe unlocked ([`PipeInodeInfo::wr_copy`]): a
/// page's copy costs less than the lock's extra round trip buys.
const UNLOCKED_MIN_PAGES: u32 = 2;
/// How long a locker spins while the pipe's lock is held (a copy of a page takes ~0.1 us).
const LOCK_SPIN_NS: i64 = 5_000;
/// How long a reader that found data after spinning lets its still-writing peer on another
/// CPU add to it before reading.
const BATCH_MAX_NS: i64 = 50_000;
/// How many times a waiter yields to a peer on its own CPU before it sleeps.
const SAME_CPU_YIELDS: u32 = 4;
const FIRST_SLICE_NS: i64 = 97_000_000;
const MAX_SLICE_NS: i64 = 100_000_000;
/// futex_waitv's limit (FUTEX_WAITV_MAX): the words one futex_waitv sleeps on.
pub const POLL_WAIT_SLOTS: usize = 128;
const SHORT_SLICE_NS: i64 = 10_000_000;
/// How long a sleeper waiting in the kernel while an exec may close its peer's end goes
/// without looking at its ring: data from another writer meanwhile waits this long.
const EXEC_SLICE_NS: i64 = 1_000_000;

/// The pipe part of the region header.
#[repr(C)]
pub struct PipeNs {
    /// Guards the table's slot states, the lookup chains and the page pool (never taken
    /// before a pipe's own lock is released by the same thread: order is pipe, then this).
    pub lock: RobustMutex,
    pub pool: PagePool,
    /// Objects in the table (live or orphaned).
    pub nr_live: AtomicU32,
    /// Where the cyclic search for a free slot starts.
    next_slot: AtomicU32,
    /// One past the highest slot ever used: scans stop here.
    pub(crate) hwm: AtomicU32,
    /// Creations so far; each object records its number (the collector skips newer ones).
    pub(crate) create_seq: AtomicU64,
    pub(crate) creations_since_gc: AtomicU32,
    /// Bumped when a process is known dead (see [`note_exit`]).
    pub exits: AtomicU32,
    /// Ring pages accounted to the namespace's user (the kernel's `user->pipe_bufs`).
    pub user_bufs: AtomicU64,
    /// pid << 32 | coarse start second of the running collector; 0 when none runs.
    pub(crate) gc_owner: AtomicU64,
    /// Number of the current (or last) collection; lookups during one mark their object.
    pub(crate) gc_pass: AtomicU32,
    pub gc_runs: AtomicU64,
    pub gc_freed: AtomicU64,
    /// A collection was asked for while one ran: it runs again (see `collect_garbage`).
    pub(crate) gc_again: AtomicU32,
    /// Processes forked by shimmed processes (see `pipe_gc`'s rounds).
    pub(crate) forks: AtomicU64,
    /// Coarse monotonic ms when the last collection ended (see `pipe_gc::collected_lately`).
    pub(crate) gc_ended_ms: AtomicI64,
    /// Entries of [`crate::pipe_exec`]'s table in use, or more (never fewer): a new image
    /// looks through the table only when some are.
    pub(crate) exec_notes: AtomicU32,
    /// The device of anonymous pipes (pipefs) + 1, once a process learnt it; 0 before.
    pipefs_dev: AtomicU64,
    /// Connections whose last ends may have gone since the last collection (see
    /// [`note_maybe_released`]).
    maybe_released: AtomicU32,
    /// Objects in the table when the last collection ended (see [`maybe_collect`]).
    pub(crate) live_after_gc: AtomicU32,
}

/// The device of anonymous pipes, if a process of the namespace learnt it.
pub fn pipefs_dev(region: &Region) -> Option<u64> {
    ns(region).pipefs_dev.load(Ordering::Relaxed).checked_sub(1)
}

pub fn set_pipefs_dev(region: &Region, dev: u64) {
    ns(region).pipefs_dev.store(dev.wrapping_add(1), Ordering::Relaxed);
}

impl PipeNs {
    pub fn init(&mut self) {
        // SAFETY: called once while the region is being created, before anyone else maps it.
        unsafe { RobustMutex::init(&raw mut self.lock) };
    }
}

/// `struct pipe_inode_info`, one slot of the region's pipe table.
#[repr(C, align(64))]
pub struct PipeInodeInfo {
    /// generation << 8 | state: one word, so a handle is checked with one load.
    ident: AtomicU64,
    pub(crate) dev: AtomicU64,
    pub(crate) ino: AtomicU64,
    pub(crate) create_seq: AtomicU64,
    /// Next slot + 1 in the lookup chain, 0 at its end.
    hash_next: AtomicU32,
    /// Pages accounted to the user for this ring (`nr_accounted`).
    nr_accounted: AtomicU32,
    /// The collection pass that last saw an fd of this object.
    pub(crate) gc_seen: AtomicU32,
    /// Closes noted by the shim: with the region's exits, the peers' liveness cache key.
    closes: AtomicU32,
    /// Operations in progress (the collector leaves such objects alone).
    pub(crate) active: AtomicU32,
    /// CPU + 1 each side last ran an operation on; 0 unknown.
    pub(crate) rd_cpu: AtomicU32,
    pub(crate) wr_cpu: AtomicU32,
    /// Non-zero once an epoll set watches the pipe (the kernel's `poll_usage`): every write
    /// then wakes (and so queues the watching items again), as epoll's edge-triggered mode
    /// expects.
    pub(crate) ep_usage: AtomicU32,
    /// CLOCK_BOOTTIME of the creation, in ns (compared with process start times).
    pub(crate) born: AtomicU64,
    /// Coarse second a collection first found this object unreferenced but active.
    pub(crate) gc_suspect: AtomicI64,
    /// Coarse second a sleeper last woke up in it: a sleeping operation is not a leaked one.
    pub(crate) heartbeat: AtomicI64,
    /// A stream socket's queue: [`OOB_SET`] | the ring index of its current out-of-band
    /// byte, 0 for none.
    oob: AtomicU64,
    /// Out-of-band bytes a read went past and dropped: the kernel counts them in FIONREAD
    /// from then on.
    oob_dropped: AtomicU32,
    /// A stream socket: the owner `F_SETOWN`/`F_SETOWN_EX` gave its file, as [`sock_owner`]
    /// packs it (SIGURG goes there), 0 for none.
    owner: AtomicU64,
    /// CLOCK_MONOTONIC ns until which an exec in progress may close an end of it
    /// ([`crate::pipe_exec`]): sleepers then wait in the kernel on their placeholders, which
    /// the kernel wakes as the end goes; 0 when none.
    exec_until: AtomicU64,
    /// `pipe->mutex`.
    mutex: RobustMutex,
    /// Held over a change of `wmem` and the ring store it goes with ([`charge_sender`]). It
    /// and `wmem` sit next to `mutex` and the ring's indices: a receiver that takes a datagram
    /// changes them, and changes these lines of its sender anyway when it sends back.
    wmem_lock: RobustMutex,
    /// Non-zero once the object was handed back to the kernel ([`hand_back`]).
    handed_back: AtomicU32,
    /// A datagram socket's receive queue: the truesize, in [`CHARGE_UNIT`]s, of the datagrams
    /// its socket sent that wait in receive queues (`sk_wmem_alloc`).
    wmem: AtomicU32,
    /// The ring descriptor (`bufs`, `ring_size`, `max_usage`): see [`Ring`].
    ring: AtomicU64,
    /// A resize's new and old rings until the old one is freed (crash recovery).
    resize_new: AtomicU64,
    resize_old: AtomicU64,
    /// head (low half) and tail (high half), as the kernel's `union pipe_index`.
    pub(crate) head_tail: AtomicU64,
    /// One past the highest ring index a write took since the ring was made (head comes
    /// back to an emptied ring's last page, so it does not count the pages written).
    slots_used: AtomicU32,
    /// The futex word, bumped on a state change that somebody waits for.
    wait: AtomicU32,
    rd_waiters: AtomicU32,
    wr_waiters: AtomicU32,
    /// An AF_UNIX stream socket's object (its send queue): the peer's object, as handle bits
    /// + 1 (0: none yet, or a pipe).
    peer: AtomicU64,
    /// An AF_UNIX stream socket's connection state (`SOCK_*`); 0 for a pipe.
    sock: AtomicU32,
    /// With SOCK_PASSCRED: the PID namespace (nsfs inode) of the receiver that set it.
    passcred_ns: AtomicU32,
    /// Data pages of the current ring that have their memory, from the first: a ring's pages
    /// are reserved as writers first reach them (see [`back_slots`]).
    backed: AtomicU32,
    /// A socket's send buffer (`sk_sndbuf`, as `SO_SNDBUF` leaves it), 0 for the default:
    /// what the skbs its queue holds may charge ([`crate::skb`]).
    sndbuf: AtomicU32,
    /// A socket's sends with ancillary data, held from the kernel's taking of their fds to
    /// the queueing of their data, so that both queues keep one order ([`sock_scm_lock`]).
    scm_lock: RobustMutex,
    /// Coarse second an fd of the object was last passed in an SCM_RIGHTS message: in flight,
    /// no process holds it, and the collector must not take it for garbage for a while.
    pub(crate) in_flight: AtomicI64,
    /// Held by a writer that fills free slots with `mutex` released, so that a reader on
    /// another CPU takes earlier buffers meanwhile ([`write_inner`]): until it has published
    /// them nothing else may be added at the head nor the ring resized, which whoever would
    /// checks with the pipe locked ([`lock_for_write`]).
    wr_copy: RobustMutex,
}

/// Names one object: its slot and the slot's generation when it was created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PipeHandle {
    pub idx: u32,
    pub generation: u32,
}

impl PipeHandle {
    /// 48 bits: generation << 16 | slot.
    pub fn to_bits(self) -> u64 {
        (self.generation as u64) << 16 | self.idx as u64
    }

    pub fn from_bits(bits: u64) -> PipeHandle {
        PipeHandle { idx: (bits & 0xffff) as u32, generation: (bits >> 16) as u32 }
    }
}

/// Gives the data pages of ring slots `first .. first + n` (ring indices) their memory, if
/// they have not had it since the ring was made: a ring's pages are reserved in slot order as
/// writers first reach them, so that a full file system is an error, never a SIGBUS. The
/// caller holds the pipe lock.
fn back_slots(region: &Region, pipe: &PipeInodeInfo, ring: Ring, first: u32, n: u32) -> Result<(), Errno> {
    let s0 = first & (ring.size() - 1);
    let upto = if s0 + n > ring.size() { ring.size() } else { s0 + n };
    let have = pipe.backed.load(Ordering::Relaxed);
    if upto <= have {
        return Ok(());
    }
    let from = ring.page(region, have) as u64 - region.base() as u64;
    // Ahead of the writer, doubling what it has: a ring filled a page at a time costs a few
    // calls, not one per page, and at most twice the pages it reached.
    let ahead = (have * 2).min(ring.size());
    if ahead > upto && backing::populate(region, from, (ahead - have) as u64 * PAGE_SIZE).is_ok() {
        pipe.backed.store(ahead, Ordering::Relaxed);
        return Ok(());
    }
    populate_ring(region, from, (upto - have) as u64 * PAGE_SIZE)?;
    pipe.backed.store(upto, Ordering::Relaxed);
    Ok(())
}

/// `backing::populate` of pages of the page area; when the file system is full, again under
/// the namespace lock as the pool populates (`PagePool::populate`, which first takes back what
/// free runs keep). The caller may hold a pipe's lock.
fn populate_ring(region: &Region, off: u64, len: u64) -> Result<(), Errno> {
    backing::populate(region, off, len).or_else(|e| {
        if e != libc::ENOSPC {
            return Err(e);
        }
        let _g = ns_lock(region)?;
        // SAFETY: namespace lock held.
        unsafe { pool(region) }.populate(region, off, len)
    })
}

/// What the caller's process knows and the object does not; the shim implements it.
pub trait PipeEnv {
    /// O_NONBLOCK on the caller's open file description (queried only when the call would block).
    fn nonblocking(&self) -> bool;
    /// No process holds the other end any more. `force`: must check the kernel now (a syscall);
    /// otherwise the env may answer from its cache of the closes/exits generations.
    fn peer_gone(&self, force: bool) -> bool;
    /// `peer_gone(true)` for a non-blocking call that found nothing to move: the env may
    /// answer from a check made a moment ago, so that a program that polls and retries makes
    /// no system call for it; a death no close told of then shows that much later, as it does
    /// to a sleeper between its slices.
    fn peer_gone_now(&self) -> bool {
        self.peer_gone(true)
    }
    /// Runs one wait (the closure) with signals deliverable; returns its outcome.
    fn wait(&self, f: &mut dyn FnMut() -> WaitOutcome) -> WaitOutcome;
    /// After an Interrupted wait: true = restart (handler had SA_RESTART), false = EINTR.
    fn restart_after_signal(&self) -> bool;
    /// When a blocked call gives up with EAGAIN (a socket's SO_RCVTIMEO/SO_SNDTIMEO, as an
    /// absolute CLOCK_MONOTONIC time); asked only when the call must wait.
    fn deadline(&self) -> Option<libc::timespec> {
        None
    }
    /// The longest sleep between two looks at `peer_gone(true)`: shorter for a waiter that
    /// must also notice what arrives outside the region.
    fn max_slice_ns(&self) -> i64 {
        MAX_SLICE_NS
    }
    /// A write stopped because the ring could not get memory for its next page: it returns
    /// what it wrote (or NO_SPACE), and the caller hands the object to the kernel, which writes
    /// the rest.
    fn out_of_space(&self) {}
    /// Waits up to `ns` in the kernel for the placeholder to say that the other side may be
    /// gone (POLLHUP, POLLERR, POLLRDHUP), with signals deliverable; None if the env has no
    /// placeholder to wait on.
    fn watch_placeholder(&self, ns: i64) -> Option<WaitOutcome> {
        let _ = ns;
        None
    }
    /// A socket read took (or peeked) the message whose fds travel as token `fp`
    /// ([`UnixCb::fp`]); called with the queue locked, so that the env takes what travels
    /// outside the region in the queue's order.
    fn took_fds(&self, fp: u64) {
        let _ = fp;
    }
    /// A stream socket receiving: SO_OOBINLINE (its out-of-band byte is read with the data).
    fn oob_inline(&self) -> bool {
        false
    }
}

/// The ring descriptor: valid bit | log2(ring_size) << 40 | first page of the run.
/// `max_usage` always equals `ring_size` here (no watch queues).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ring {
    run: u64,
    shift: u32,
}

const RING_VALID: u64 = 1 << 63;

impl Ring {
    fn pack(self) -> u64 {
        RING_VALID | (self.shift as u64) << 40 | self.run
    }

    fn unpack(v: u64) -> Option<Ring> {
        let ring = Ring { run: v & ((1 << 40) - 1), shift: ((v >> 40) & 0xff) as u32 };
        (v & RING_VALID != 0 && ring.shift <= MAX_RING_SHIFT && ring.run + (1 << ring.order()) <= POOL_PAGES)
            .then_some(ring)
    }

    pub(crate) fn size(self) -> u32 {
        1 << self.shift
    }

    /// Pages of the buffer table in front of the data pages.
    fn meta_pages(shift: u32) -> u64 {
        ((8u64 << shift) / PAGE_SIZE).max(1)
    }

    fn order_for(shift: u32) -> usize {
        let pages = (1u64 << shift) + Self::meta_pages(shift);
        (64 - (pages - 1).leading_zeros()) as usize
    }

    fn order(self) -> usize {
        Self::order_for(self.shift)
    }

    /// The packed `pipe_buffer` of ring index `i`.
    pub(crate) fn buf(self, region: &Region, i: u32) -> &AtomicU64 {
        let slot = (i & (self.size() - 1)) as usize;
        // SAFETY: the table holds size() words at the start of the run, inside the page area.
        unsafe { &*((page_addr(region, self.run) as *const AtomicU64).add(slot)) }
    }

    /// The data page of ring index `i`.
    pub(crate) fn page(self, region: &Region, i: u32) -> *mut u8 {
        let slot = (i & (self.size() - 1)) as u64;
        page_addr(region, self.run + Self::meta_pages(self.shift) + slot) as *mut u8
    }

    /// The [`UnixCb`] buffer `i`'s page starts with, if it is marked so.
    fn cb(self, region: &Region, i: u32, buf: PipeBuffer) -> UnixCb {
        if buf.flags & PIPE_BUF_FLAG_CB == 0 {
            return UnixCb::default();
        }
        // SAFETY: the page is ours and page-aligned; any bits are a valid UnixCb.
        unsafe { (self.page(region, i) as *const UnixCb).read() }
    }

    fn set_cb(self, region: &Region, i: u32, cb: UnixCb) {
        // SAFETY: the page is ours (a free slot being filled, or one we hold the lock over),
        // page-aligned, and CB_LEN bytes of it are the header.
        unsafe { (self.page(region, i) as *mut UnixCb).write(cb) }
    }
}

/// `struct pipe_buffer` without its page (implied by the slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PipeBuffer {
    pub(crate) offset: usize,
    pub(crate) len: usize,
    pub(crate) flags: u64,
    /// A socket queue's buffer that ends an skb: the skb's `truesize` in [`CHARGE_UNIT`]s,
    /// charged to the sending socket until the buffer is consumed; 0 otherwise.
    pub(crate) charge: u32,
}

/// Every skb truesize is a multiple of this (256-byte `struct sk_buff` plus power-of-two or
/// whole-page allocations).
const CHARGE_UNIT: usize = 256;
/// The most a socket queue's buffers charge each, on average over an skb's buffers (an skb of
/// n bytes takes at least n / PAGE of them; `skb::tests::buffer_charge_bound`).
pub(crate) const BUF_CHARGE_MAX: usize = 3 * PAGE;
/// The most a stream skb charges (its largest, `skb::stream_skb_max`): a partly read one keeps
/// all of it on the buffers it has left (`skb::tests::buffer_charge_bound`).
pub(crate) const PARTIAL_SKB_MAX: usize = 4 * BUF_CHARGE_MAX;
const CHARGE_SHIFT: u32 = 40;
const CHARGE_MAX: u64 = (1 << 23) - 1;

impl PipeBuffer {
    pub(crate) fn pack(self) -> u64 {
        self.flags | (self.charge as u64) << CHARGE_SHIFT | (self.offset as u64) << 16 | self.len as u64
    }

    fn unpack(v: u64) -> PipeBuffer {
        PipeBuffer {
            offset: ((v >> 16) & 0xffff) as usize,
            len: (v & 0xffff) as usize,
            charge: ((v >> CHARGE_SHIFT) & CHARGE_MAX) as u32,
            flags: v
                & (PIPE_BUF_FLAG_PACKET
                    | PIPE_BUF_FLAG_CAN_MERGE
                    | PIPE_BUF_FLAG_RECORD_END
                    | PIPE_BUF_FLAG_CB
                    | PIPE_BUF_FLAG_OOB),
        }
    }

    pub(crate) fn load(a: &AtomicU64) -> PipeBuffer {
        Self::unpack(a.load(Ordering::Acquire))
    }
}

fn ident(generation: u32, state: u64) -> u64 {
    (generation as u64) << 8 | state
}

fn split(head_tail: u64) -> (u32, u32) {
    (head_tail as u32, (head_tail >> 32) as u32)
}

pub(crate) fn join(head: u32, tail: u32) -> u64 {
    (tail as u64) << 32 | head as u64
}

pub(crate) fn pipe_full(head: u32, tail: u32, limit: u32) -> bool {
    head.wrapping_sub(tail) >= limit
}

pub(crate) fn ns(region: &Region) -> &PipeNs {
    &region.header().pipe
}

/// The page pool.
///
/// # Safety
/// The caller holds the pipe namespace lock.
#[allow(clippy::mut_from_ref)]
unsafe fn pool(region: &Region) -> &mut PagePool {
    let hdr = region.base() as *mut crate::region::Header;
    // SAFETY: the header is mapped; the pool is only touched under the namespace lock, and this
    // borrow covers the pool field alone, not the lock beside it.
    unsafe { &mut (*hdr).pipe.pool }
}

pub(crate) fn slot(region: &Region, idx: u32) -> &PipeInodeInfo {
    debug_assert!(idx < PIPE_MAX);
    // SAFETY: the table has PIPE_MAX slots; every field is an atomic or a process-shared mutex.
    unsafe { &*((region.base() + PIPE_SLOTS_OFF as usize) as *const PipeInodeInfo).add(idx as usize) }
}

fn buckets(region: &Region) -> &[AtomicU32] {
    // SAFETY: the bucket array is PIPE_HASH_BUCKETS u32s inside the region.
    unsafe {
        core::slice::from_raw_parts(
            (region.base() + PIPE_HASH_OFF as usize) as *const AtomicU32,
            PIPE_HASH_BUCKETS as usize,
        )
    }
}

/// Consecutive inode numbers of one device (the kernel numbers pipes and sockets one after
/// another, `get_next_ino`) go to neighbouring buckets: a connection's two queues, and the
/// next connection's, look at one cache line instead of a random one each.
fn bucket_of(dev: u64, ino: u64) -> usize {
    const _: () = assert!(PIPE_HASH_BUCKETS.is_power_of_two());
    let base = dev.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    (ino.wrapping_add(base) & (PIPE_HASH_BUCKETS as u64 - 1)) as usize
}

pub(crate) fn coarse_secs() -> i64 {
    sys::clock_gettime(libc::CLOCK_MONOTONIC_COARSE).tv_sec
}

/// CLOCK_BOOTTIME in ns: the clock of process start times in /proc/[pid]/stat.
pub(crate) fn boot_ns() -> u64 {
    let t = sys::clock_gettime(libc::CLOCK_BOOTTIME);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

pub(crate) fn note_cpu(word: &AtomicU32) {
    let cpu = sys::current_cpu();
    if word.load(Ordering::Relaxed) != cpu {
        word.store(cpu, Ordering::Relaxed);
    }
}

impl PipeInodeInfo {
    pub(crate) fn ring(&self) -> Result<Ring, Errno> {
        Ring::unpack(self.ring.load(Ordering::Acquire)).ok_or(libc::EIO)
    }

    pub(crate) fn head_tail(&self) -> (u32, u32) {
        split(self.head_tail.load(Ordering::Acquire))
    }

    pub(crate) fn is_free(&self) -> bool {
        self.ident.load(Ordering::Acquire) & 0xff == FREE
    }

    /// Live and reachable by lookups (not orphaned).
    pub(crate) fn is_hashed(&self) -> bool {
        self.ident.load(Ordering::Acquire) & 0xff == LIVE
    }

    fn is_live(&self, h: PipeHandle) -> bool {
        self.ident.load(Ordering::Acquire) == ident(h.generation, LIVE)
    }

    fn waiters(&self, side: u32) -> &AtomicU32 {
        if side == READERS { &self.rd_waiters } else { &self.wr_waiters }
    }

    /// After publishing a change: wakes `side`'s sleepers, if there are any, and the epoll
    /// items watching it (ep_poll_callback from the wait queue).
    pub(crate) fn wake(&self, side: u32, region: &Region) {
        self.wake_sleepers(side, region);
        if self.ep_usage.load(Ordering::Relaxed) != 0 {
            crate::epoll_wq::pipe_woken(region, self.ep_owner(region, side), side);
        }
    }

    /// Something only the placeholders show may have changed (an exec closing an end): the
    /// epoll items watching the object, or a socket's peer, are looked at again, their sets
    /// asking the kernel.
    fn ep_changed(&self, region: &Region) {
        if self.ep_usage.load(Ordering::Relaxed) != 0 {
            for owner in
                [self.ep_owner(region, WRITERS), self.ep_owner(region, READERS)].into_iter().flatten()
            {
                crate::epoll_wq::changed(region, crate::epoll_wq::Wq::Pipe(owner));
            }
        }
    }

    /// A datagram receive queue `idx`'s socket may send again (`unix_write_space`): if its
    /// charge is now writable, its sleepers are woken, and with `epoll` its own epoll items.
    fn write_space(&self, region: &Region, idx: u32, epoll: bool) {
        // As wake_sleepers: either a sleeper counted before our charge change sees it, or we see
        // it counted. Nobody to wake (the common case): no charge to sum.
        sys::full_fence();
        let sleepers = self.wr_waiters.load(Ordering::SeqCst) != 0;
        let epoll = epoll && self.ep_usage.load(Ordering::Relaxed) != 0;
        if (sleepers || epoll) && self.writable(region) {
            if sleepers {
                self.wake_sleepers(WRITERS, region);
            }
            if epoll {
                crate::epoll_wq::pipe_woken(region, Some(idx), WRITERS);
            }
        }
    }

    /// Wakes `side`'s sleepers only: a change no kernel wait queue would report.
    fn wake_sleepers(&self, side: u32, region: &Region) {
        // Pairs with the sleeper's increment of its count before it re-checks the state: either
        // it sees our change or we see it counted.
        sys::full_fence();
        if self.waiters(side).load(Ordering::SeqCst) != 0 {
            region.header().counters.pipe_wakeups.fetch_add(1, Ordering::Relaxed);
            self.wait.fetch_add(1, Ordering::SeqCst);
            let _ = sys::futex(
                self.wait.as_ptr(),
                libc::FUTEX_WAKE_BITSET,
                i32::MAX as u32,
                core::ptr::null(),
                0,
                side,
            );
        }
    }

    /// This object's slot in the table.
    fn idx(&self, region: &Region) -> u32 {
        ((self as *const PipeInodeInfo as usize - slot(region, 0) as *const PipeInodeInfo as usize)
            / size_of::<PipeInodeInfo>()) as u32
    }

    /// The object whose epoll wait queue a wake-up of `side` concerns: a pipe's own; a socket
    /// queue's reader (its peer socket's object) for data, its writer (its own) for room; a
    /// datagram receive queue's own for data, the socket it is connected to for room.
    fn ep_owner(&self, region: &Region, side: u32) -> Option<u32> {
        let own = self.idx(region);
        let peer = || {
            let b = self.peer.load(Ordering::Acquire);
            (b != 0).then(|| PipeHandle::from_bits(b - 1).idx)
        };
        let sock = self.sock.load(Ordering::Acquire);
        match (sock == 0, sock & SOCK_RECV_QUEUE != 0, side == READERS) {
            (true, _, _) | (false, true, true) | (false, false, false) => Some(own),
            _ => peer(),
        }
    }

    /// A writer is filling free slots with the pipe unlocked ([`Self::wr_copy`]): asked with
    /// the pipe locked.
    pub(crate) fn copier_busy(&self) -> bool {
        self.wr_copy.owner_word() != 0
    }

    /// Waits, with the pipe unlocked, until no writer fills free slots unlocked. Nothing to
    /// repair after one that died: it had published nothing of its batch.
    pub(crate) fn wait_copier(&self) -> Result<(), Errno> {
        drop(self.wr_copy.lock_spinning(LOCK_SPIN_NS, 16).map_err(|_| ENOMEM)?);
        Ok(())
    }

    pub(crate) fn is_handed_back(&self) -> bool {
        self.handed_back.load(Ordering::Acquire) != 0
    }

    pub(crate) fn readable(&self) -> bool {
        let (head, tail) = self.head_tail();
        head != tail
    }

    /// A pipe: a free slot. A socket: `unix_writable`, its charge (with the one
    /// `sk_wmem_alloc` starts at) at most a quarter of its send buffer.
    pub(crate) fn writable(&self, region: &Region) -> bool {
        if self.sock.load(Ordering::Relaxed) != 0 {
            // (charge + 1) * 4 <= sndbuf, for whole numbers.
            return self.charge_below(region, self.sndbuf(region) / 4);
        }
        let (head, tail) = self.head_tail();
        let size = Ring::unpack(self.ring.load(Ordering::Acquire)).map_or(0, Ring::size);
        !pipe_full(head, tail, size)
    }

    /// A socket's own send queue, whose skbs charge its send buffer: not a pipe, nor a
    /// datagram receive queue that any sender fills.
    fn accounted(&self) -> bool {
        let sock = self.sock.load(Ordering::Relaxed);
        sock != 0 && sock & SOCK_RECV_QUEUE == 0
    }

    fn recv_queue(&self) -> bool {
        self.sock.load(Ordering::Relaxed) & SOCK_RECV_QUEUE != 0
    }

    /// `sock_alloc_send_pskb`: an skb may be queued while the charge is below the send
    /// buffer. A sender that slept on a full one goes on only once it is writable: the
    /// kernel wakes it then (`unix_write_space`), not as each skb is read.
    #[inline]
    fn may_send(&self, region: &Region, slept: bool) -> bool {
        if slept { self.writable(region) } else { self.charge_below(region, self.sndbuf(region)) }
    }

    /// Whether [`Self::charged`] is below `limit`; a socket's own send queue with few enough
    /// buffers is, without their charges summed: each charges at most [`BUF_CHARGE_MAX`] on
    /// average over its skb, but for the one skb being read, whose whole charge the buffers
    /// left of it carry ([`PARTIAL_SKB_MAX`] at most).
    fn charge_below(&self, region: &Region, limit: usize) -> bool {
        self.charge_below_with(region, limit, 0)
    }

    /// Whether [`Self::charged`] plus `extra` units is below `limit`, as [`Self::charge_below`].
    fn charge_below_with(&self, region: &Region, limit: usize, extra: usize) -> bool {
        let extra = extra * CHARGE_UNIT;
        if self.recv_queue() {
            return self.charged(region) + extra < limit;
        }
        let (head, tail) = self.head_tail();
        let n = head.wrapping_sub(tail) as usize;
        if n == 0 {
            return extra == 0 || extra < limit;
        }
        if n.saturating_mul(BUF_CHARGE_MAX).saturating_add(PARTIAL_SKB_MAX + extra) < limit {
            return true;
        }
        // Summed only up to the limit: a sender waiting on a full queue asks this as it
        // spins, and a full 64-buffer sum was 7% of a 64 KiB TCP stream's CPU time.
        let Ok(ring) = self.ring() else { return extra < limit };
        let mut units = 0usize;
        for k in 0..(n as u32).min(ring.size()) {
            units += PipeBuffer::load(ring.buf(region, tail.wrapping_add(k))).charge as usize;
            if units * CHARGE_UNIT + extra >= limit {
                return false;
            }
        }
        units * CHARGE_UNIT + extra < limit
    }

    /// Whether a read that took skbs charging `freed` units off this socket's own queue
    /// (`sock_wfree`) has a write space to announce (`unix_write_space`) if the charge is now
    /// writable: only if it was not writable before, since a sleeping writer (or poller) saw
    /// it unwritable after it was counted, and whoever made it writable since woke it; or if
    /// an epoll set watches the socket, which hears of every write space. Queue locked.
    fn freed_wakes(&self, region: &Region, freed: usize) -> bool {
        freed != 0
            && (self.ep_usage.load(Ordering::Relaxed) != 0
                || !self.charge_below_with(region, self.sndbuf(region) / 4, freed))
    }

    fn sndbuf(&self, region: &Region) -> usize {
        match self.sndbuf.load(Ordering::Relaxed) {
            0 => region.header().limits.wmem_default as usize,
            b => b as usize,
        }
    }

    /// `sk_wmem_alloc_get`: the truesize of the skbs queued (a partly read one stays
    /// charged until its last byte is read); a datagram receive queue's socket's: of the
    /// datagrams it sent that are not taken yet.
    fn charged(&self, region: &Region) -> usize {
        if self.recv_queue() {
            // A holder of the charge lock died: its next taker counts the charge again.
            if self.wmem_lock.owner_word() & libc::FUTEX_OWNER_DIED != 0 {
                let generation = (self.ident.load(Ordering::Acquire) >> 8) as u32;
                let bits = PipeHandle { idx: self.idx(region), generation }.to_bits();
                drop(lock_charge(region, self, bits + 1));
            }
            return self.wmem.load(Ordering::Relaxed) as usize * CHARGE_UNIT;
        }
        let Ok(ring) = self.ring() else { return 0 };
        let (head, tail) = self.head_tail();
        let n = head.wrapping_sub(tail).min(ring.size());
        let units: usize =
            (0..n).map(|k| PipeBuffer::load(ring.buf(region, tail.wrapping_add(k))).charge as usize).sum();
        units * CHARGE_UNIT
    }
}

/// An operation in progress on a live object: the collector will not free it meanwhile.
pub(crate) struct Active<'a> {
    pub(crate) pipe: &'a PipeInodeInfo,
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.pipe.active.fetch_sub(1, Ordering::Release);
    }
}

pub(crate) fn enter(region: &Region, h: PipeHandle) -> Result<Active<'_>, Errno> {
    if h.idx >= PIPE_MAX {
        return Err(EBADF);
    }
    let pipe = slot(region, h.idx);
    // Pairs with the collector, which marks the object DYING and then checks `active`.
    pipe.active.fetch_add(1, Ordering::SeqCst);
    let act = Active { pipe };
    if pipe.ident.load(Ordering::SeqCst) != ident(h.generation, LIVE) {
        return Err(EBADF);
    }
    Ok(act)
}

/// A live object's slot, for lock-free reads that tolerate a concurrent free.
fn live(region: &Region, h: PipeHandle) -> Option<&PipeInodeInfo> {
    (h.idx < PIPE_MAX).then(|| slot(region, h.idx)).filter(|p| p.is_live(h))
}

/// `pipe->mutex` held.
pub(crate) struct PipeGuard<'a> {
    _lock: LockGuard<'a>,
}

/// Takes `pipe->mutex`; after a holder died, finishes or undoes what it left.
pub(crate) fn lock_pipe<'a>(region: &Region, pipe: &'a PipeInodeInfo) -> Result<PipeGuard<'a>, Errno> {
    // Critical sections are a copy of at most a page or so: a holder on another CPU lets go
    // sooner than a futex sleep and wake-up would take, so try for a while before blocking.
    lock_pipe_spinning(region, pipe, LOCK_SPIN_NS)
}

/// Takes `pipe->mutex` to add buffers at the head or resize the ring, once no writer is
/// filling free slots unlocked ([`PipeInodeInfo::wr_copy`]): its buffers come first.
pub(crate) fn lock_for_write<'a>(region: &Region, pipe: &'a PipeInodeInfo) -> Result<PipeGuard<'a>, Errno> {
    loop {
        let g = lock_pipe(region, pipe)?;
        if !pipe.copier_busy() {
            return Ok(g);
        }
        drop(g);
        pipe.wait_copier()?;
    }
}

/// [`lock_pipe`], spinning up to `spin_ns` while another holder has the lock.
fn lock_pipe_spinning<'a>(
    region: &Region,
    pipe: &'a PipeInodeInfo,
    spin_ns: i64,
) -> Result<PipeGuard<'a>, Errno> {
    let lock = pipe.mutex.lock_spinning(spin_ns, 16).map_err(|_| ENOMEM)?;
    if lock.recovered {
        region.header().counters.lock_recoveries.fetch_add(1, Ordering::Relaxed);
        normalise(region, pipe);
    }
    Ok(PipeGuard { _lock: lock })
}

/// Repairs a pipe whose lock holder died. Every update was one store, so the ring is
/// consistent; what remains is a resize's intents, and buffers that hold nothing.
fn normalise(region: &Region, pipe: &PipeInodeInfo) {
    finish_resize(region, pipe);
    let Ok(ring) = pipe.ring() else { return };
    let (head, mut tail) = pipe.head_tail();
    if head.wrapping_sub(tail) > ring.size() {
        pipe.head_tail.store(join(head, head), Ordering::Release);
        return;
    }
    for i in (0..head.wrapping_sub(tail)).map(|k| tail.wrapping_add(k)) {
        let b = PipeBuffer::load(ring.buf(region, i));
        if b.offset + b.len > PAGE {
            ring.buf(region, i).store(PipeBuffer { len: 0, ..b }.pack(), Ordering::Release);
        }
    }
    // An out-of-band byte named but not queued (its sender died in between) is none.
    let oob = pipe.oob.load(Ordering::Acquire);
    if oob & OOB_SET != 0 && (oob as u32).wrapping_sub(tail) >= head.wrapping_sub(tail) {
        pipe.oob.store(0, Ordering::Release);
    }
    // An empty record is a buffer of nothing that ends one: it stays.
    while tail != head && {
        let b = PipeBuffer::load(ring.buf(region, tail));
        b.len == 0 && b.flags & PIPE_BUF_FLAG_RECORD_END == 0
    } {
        tail = tail.wrapping_add(1);
    }
    pipe.head_tail.store(join(head, tail), Ordering::Release);
}

/// Takes the namespace lock; after a holder died, rebuilds what it may have left half done.
pub(crate) fn ns_lock(region: &Region) -> Result<LockGuard<'_>, Errno> {
    let guard = ns(region).lock.lock().map_err(|_| ENOMEM)?;
    if guard.recovered {
        region.header().counters.lock_recoveries.fetch_add(1, Ordering::Relaxed);
        // SAFETY: we hold the lock.
        unsafe { recover_ns(region) };
    }
    Ok(guard)
}

/// The lookup chains and the accounting are derived state: rebuilt from the slots. A slot
/// left DYING is finished (or revived, if an operation is running on it).
///
/// # Safety
/// The caller holds the namespace lock.
unsafe fn recover_ns(region: &Region) {
    let ns = ns(region);
    for b in buckets(region) {
        b.store(0, Ordering::Relaxed);
    }
    let (mut live_n, mut bufs) = (0u32, 0u64);
    for idx in 0..ns.hwm.load(Ordering::Relaxed).min(PIPE_MAX) {
        let pipe = slot(region, idx);
        // A FREE slot with a ring: a creation cut short after the run was taken. The run is
        // given back unless the pool still has it (the cut came before the take).
        if pipe.ident.load(Ordering::Acquire) & 0xff == FREE
            && let Some(r) = Ring::unpack(pipe.ring.swap(0, Ordering::AcqRel))
        {
            // SAFETY: lock held.
            let pool = unsafe { pool(region) };
            if pool.allocated(region, r.run, r.order()) {
                pipe_pages::release(region, r.run, r.order(), u64::MAX);
                // SAFETY: lock held; nothing refers to the run.
                unsafe { pool.free(region, r.run, r.order(), 1) };
            }
        }
        let id = pipe.ident.load(Ordering::Acquire);
        if id & 0xff == DYING {
            // SAFETY: lock held.
            if unsafe { try_free(region, idx, false) } {
                continue;
            }
        }
        let state = pipe.ident.load(Ordering::Acquire) & 0xff;
        if state == DYING {
            pipe.ident.store(id & !0xff | LIVE, Ordering::Release);
        }
        match pipe.ident.load(Ordering::Acquire) & 0xff {
            LIVE => hash_insert(region, idx),
            ORPHAN => {}
            _ => continue,
        }
        live_n += 1;
        bufs += pipe.nr_accounted.load(Ordering::Relaxed) as u64;
    }
    ns.nr_live.store(live_n, Ordering::Relaxed);
    ns.user_bufs.store(bufs, Ordering::Relaxed);
    // Pages in use, counted again from the objects' runs (a holder killed between a run's
    // move and its count left the count off).
    let mut pages = 0;
    for idx in 0..ns.hwm.load(Ordering::Relaxed).min(PIPE_MAX) {
        let pipe = slot(region, idx);
        if pipe.ident.load(Ordering::Acquire) & 0xff == FREE {
            continue;
        }
        let runs = [&pipe.ring, &pipe.resize_new, &pipe.resize_old].map(|d| d.load(Ordering::Acquire));
        for (i, &d) in runs.iter().enumerate() {
            if let Some(r) = Ring::unpack(d).filter(|_| !runs[..i].contains(&d)) {
                pages += 1u64 << r.order();
            }
        }
    }
    // SAFETY: lock held.
    unsafe { pool(region) }.set_in_use(pages);
}

fn hash_insert(region: &Region, idx: u32) {
    let pipe = slot(region, idx);
    let b = &buckets(region)[bucket_of(pipe.dev.load(Ordering::Relaxed), pipe.ino.load(Ordering::Relaxed))];
    pipe.hash_next.store(b.load(Ordering::Relaxed), Ordering::Relaxed);
    b.store(idx + 1, Ordering::Release);
}

fn hash_remove(region: &Region, idx: u32) {
    let pipe = slot(region, idx);
    let mut link =
        &buckets(region)[bucket_of(pipe.dev.load(Ordering::Relaxed), pipe.ino.load(Ordering::Relaxed))];
    for _ in 0..PIPE_MAX {
        match link.load(Ordering::Relaxed) {
            0 => return,
            n if n == idx + 1 => {
                link.store(pipe.hash_next.load(Ordering::Relaxed), Ordering::Release);
                return;
            }
            n if n <= PIPE_MAX => link = &slot(region, n - 1).hash_next,
            _ => return,
        }
    }
}

/// The live object named (dev, ino). The caller holds the namespace lock.
pub(crate) fn lookup(region: &Region, dev: u64, ino: u64) -> Option<u32> {
    let mut next = buckets(region)[bucket_of(dev, ino)].load(Ordering::Acquire);
    for _ in 0..PIPE_MAX {
        if next == 0 || next > PIPE_MAX {
            return None;
        }
        let pipe = slot(region, next - 1);
        if pipe.ident.load(Ordering::Acquire) & 0xff == LIVE
            && pipe.dev.load(Ordering::Relaxed) == dev
            && pipe.ino.load(Ordering::Relaxed) == ino
        {
            return Some(next - 1);
        }
        next = pipe.hash_next.load(Ordering::Acquire);
    }
    None
}

fn handle_of(region: &Region, idx: u32) -> PipeHandle {
    PipeHandle { idx, generation: (slot(region, idx).ident.load(Ordering::Acquire) >> 8) as u32 }
}

/// Frees the run behind a ring descriptor (0 = none), whose first `have` pages have memory
/// (0: not known).
/// `intent`: the descriptor may name a run its taker was killed before taking (a resize's
/// intent): freed only if the pool has let go of it.
fn free_run(region: &Region, desc: u64, intent: bool, have: u64) -> Result<(), Errno> {
    if let Some(ring) = Ring::unpack(desc) {
        let _g = ns_lock(region)?;
        // SAFETY: lock held.
        let pool = unsafe { pool(region) };
        if intent && !pool.allocated(region, ring.run, ring.order()) {
            return Ok(());
        }
        let kept = if have > 0 && pool.may_keep(region, have) {
            have
        } else {
            pipe_pages::release(region, ring.run, ring.order(), u64::MAX);
            1
        };
        // SAFETY: lock held; the run is no longer referenced by any descriptor.
        unsafe { pool.free(region, ring.run, ring.order(), kept) };
    }
    Ok(())
}

/// After a resize was interrupted by its process's death: frees whichever run is not the
/// pipe's ring any more, and clears the intents. The caller holds the pipe lock.
fn finish_resize(region: &Region, pipe: &PipeInodeInfo) {
    let cur = pipe.ring.load(Ordering::Acquire);
    let new = pipe.resize_new.swap(0, Ordering::AcqRel);
    if new != 0 && new != cur {
        let _ = free_run(region, new, true, 0);
    }
    let old = pipe.resize_old.swap(0, Ordering::AcqRel);
    if old != 0 && old != cur {
        let _ = free_run(region, old, false, 0);
    }
}

/// Frees slot `idx` unless an operation is running on it (or `force`). Returns whether it did.
///
/// # Safety
/// The caller holds the namespace lock.
pub(crate) unsafe fn try_free(region: &Region, idx: u32, force: bool) -> bool {
    let pipe = slot(region, idx);
    let id = pipe.ident.load(Ordering::Acquire);
    let (generation, state) = ((id >> 8) as u32, id & 0xff);
    if state == FREE {
        return false;
    }
    pipe.ident.store(ident(generation, DYING), Ordering::SeqCst);
    let active = pipe.active.load(Ordering::SeqCst);
    if active != 0 {
        if !force {
            pipe.ident.store(id, Ordering::SeqCst);
            return false;
        }
        // Leaked by dead processes: dropped, while the in-flight increments of stale handles
        // (which undo themselves) are kept.
        pipe.active.fetch_sub(active, Ordering::SeqCst);
    }
    if state != ORPHAN {
        hash_remove(region, idx);
    }
    // Its datagrams' senders get their charge back, each with the store that drops it.
    if pipe.recv_queue() {
        drop_records(region, pipe, false);
    }
    // Each run is taken out of the object before it is freed: a crash leaks it, never frees
    // it twice.
    let ring = pipe.ring.swap(0, Ordering::AcqRel);
    let runs = [ring, pipe.resize_new.swap(0, Ordering::AcqRel), pipe.resize_old.swap(0, Ordering::AcqRel)];
    // A ring never resized has written its table and data pages 0..head (head counts every
    // buffer it took, but for writes into an emptied ring, which `slots_used` counts); a
    // resize's runs are not counted.
    let (head, _) = split(pipe.head_tail.load(Ordering::Acquire));
    let head = head.max(pipe.slots_used.load(Ordering::Relaxed));
    let resized = runs[1] != 0 || runs[2] != 0;
    for (i, &desc) in runs.iter().enumerate() {
        // A resize's new run may still be the pool's (its resizer was killed before taking it).
        // SAFETY: namespace lock held (the caller's contract).
        let ours = |r: Ring| i != 1 || unsafe { pool(region) }.allocated(region, r.run, r.order());
        if let Some(r) = Ring::unpack(desc).filter(|&r| !runs[..i].contains(&desc) && ours(r)) {
            let written = if i == 0 && !resized {
                Ring::meta_pages(r.shift) - 1 + (head as u64).min(r.size() as u64)
            } else {
                u64::MAX
            };
            // What the ring populated (its table, the data pages writers reached), kept when
            // few pages or within the pool's budget.
            let have = Ring::meta_pages(r.shift) + pipe.backed.load(Ordering::Relaxed) as u64;
            // SAFETY: namespace lock held (the caller's contract).
            let keep = written != u64::MAX && unsafe { pool(region) }.may_keep(region, have);
            let kept =
                if (!keep && pipe_pages::release(region, r.run, r.order(), written)) || written == u64::MAX {
                    1
                } else {
                    have
                };
            // SAFETY: lock held; nothing refers to the run any more.
            unsafe { pool(region).free(region, r.run, r.order(), kept) };
        }
    }
    let ns = ns(region);
    let acc = pipe.nr_accounted.swap(0, Ordering::Relaxed) as u64;
    let _ = ns.user_bufs.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(acc)));
    let _ = ns.nr_live.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1)));
    pipe.ident.store(ident(generation.wrapping_add(1), FREE), Ordering::Release);
    true
}

fn caps_allow(caps: &mut Option<u64>, which: u64) -> bool {
    *caps.get_or_insert_with(sys::effective_caps) & which != 0
}

/// `too_many_pipe_buffers_soft` / `_hard`.
fn too_many_soft(region: &Region, user_bufs: u64) -> bool {
    let soft = region.header().limits.pipe_user_pages_soft;
    soft != 0 && user_bufs > soft
}

fn too_many_hard(region: &Region, user_bufs: u64) -> bool {
    let hard = region.header().limits.pipe_user_pages_hard;
    hard != 0 && user_bufs > hard
}

/// `alloc_pipe_info` + inserting the object: the caller holds the namespace lock and has
/// checked that (dev, ino) is not taken.
/// `bufs`: the ring's slots; 0 for a pipe's default size within the user's page limits (a
/// socket's queue is not a pipe's buffer and is not counted against them).
/// NO_SPACE when the table is full or the object cannot get its memory.
fn create(region: &Region, dev: u64, ino: u64, bufs: u32) -> Result<PipeHandle, Errno> {
    let ns = ns(region);
    // A free slot among those used before (when there is one: the live count says), else the
    // next one, which gets its memory first.
    let hwm = ns.hwm.load(Ordering::Relaxed).min(PIPE_MAX);
    let start = ns.next_slot.load(Ordering::Relaxed) % hwm.max(1);
    let some_free = ns.nr_live.load(Ordering::Relaxed) < hwm;
    let idx = (0..if some_free { hwm } else { 0 })
        .map(|k| (start + k) % hwm)
        .find(|&i| slot(region, i).ident.load(Ordering::Acquire) & 0xff == FREE)
        .or_else(|| {
            let size = size_of::<PipeInodeInfo>() as u64;
            (hwm < PIPE_MAX && region.reserve(PIPE_SLOTS_OFF + hwm as u64 * size, size).is_ok())
                .then_some(hwm)
        })
        .ok_or(NO_SPACE)?;
    let mut caps = None;
    let limits = region.header().limits;
    let counted = bufs == 0;
    let mut pipe_bufs = if counted { PIPE_DEF_BUFFERS } else { bufs };
    if counted {
        if pipe_bufs as u64 * PAGE_SIZE > limits.pipe_max_size as u64
            && !caps_allow(&mut caps, CAP_SYS_RESOURCE)
        {
            pipe_bufs = (limits.pipe_max_size >> 12).max(1);
        }
        let unprivileged = |caps: &mut Option<u64>| !caps_allow(caps, CAP_SYS_RESOURCE | CAP_SYS_ADMIN);
        let user_bufs = ns.user_bufs.load(Ordering::Relaxed) + pipe_bufs as u64;
        if too_many_soft(region, user_bufs) && unprivileged(&mut caps) {
            pipe_bufs = PIPE_MIN_DEF_BUFFERS;
        }
        if too_many_hard(region, ns.user_bufs.load(Ordering::Relaxed) + pipe_bufs as u64)
            && unprivileged(&mut caps)
        {
            return Err(ENFILE);
        }
    }
    let shift = pipe_bufs.next_power_of_two().trailing_zeros();
    let pipe = slot(region, idx);
    // The run is noted in the (still FREE) slot first: a creator killed before publishing the
    // object leaves it for recovery to give back (see `recover_ns`).
    let note = |run| pipe.ring.store(Ring { run, shift }.pack(), Ordering::Release);
    // SAFETY: namespace lock held.
    let (run, kept) =
        unsafe { pool(region).alloc(region, Ring::order_for(shift), Ring::meta_pages(shift), note) }
            .ok_or(NO_SPACE)?;
    let generation = (pipe.ident.load(Ordering::Acquire) >> 8) as u32;
    // The slot is FREE: no operation gets past its generation check, so it is initialised in
    // place.
    // SAFETY: the mutex memory is exclusively ours until the object is published below.
    unsafe { RobustMutex::init(&pipe.mutex as *const RobustMutex as *mut RobustMutex) };
    // SAFETY: as above.
    unsafe { RobustMutex::init(&pipe.scm_lock as *const RobustMutex as *mut RobustMutex) };
    // SAFETY: as above.
    unsafe { RobustMutex::init(&pipe.wmem_lock as *const RobustMutex as *mut RobustMutex) };
    // SAFETY: as above.
    unsafe { RobustMutex::init(&pipe.wr_copy as *const RobustMutex as *mut RobustMutex) };
    pipe.wmem.store(0, Ordering::Relaxed);
    pipe.dev.store(dev, Ordering::Relaxed);
    pipe.ino.store(ino, Ordering::Relaxed);
    pipe.create_seq.store(ns.create_seq.fetch_add(1, Ordering::Relaxed) + 1, Ordering::Relaxed);
    pipe.born.store(boot_ns(), Ordering::Relaxed);
    pipe.nr_accounted.store(if counted { 1 << shift } else { 0 }, Ordering::Relaxed);
    // `active` is left alone: a stale handle's operation may have counted itself in and will
    // count itself out.
    for a in [&pipe.closes, &pipe.rd_cpu, &pipe.wr_cpu, &pipe.handed_back, &pipe.sock, &pipe.ep_usage] {
        a.store(0, Ordering::Relaxed);
    }
    pipe.peer.store(0, Ordering::Relaxed);
    pipe.sndbuf.store(0, Ordering::Relaxed);
    pipe.gc_seen.store(ns.gc_pass.load(Ordering::Relaxed), Ordering::Relaxed);
    pipe.gc_suspect.store(0, Ordering::Relaxed);
    pipe.heartbeat.store(0, Ordering::Relaxed);
    pipe.in_flight.store(0, Ordering::Relaxed);
    pipe.exec_until.store(0, Ordering::Relaxed);
    pipe.oob.store(0, Ordering::Relaxed);
    pipe.oob_dropped.store(0, Ordering::Relaxed);
    pipe.owner.store(0, Ordering::Relaxed);
    pipe.resize_new.store(0, Ordering::Relaxed);
    pipe.resize_old.store(0, Ordering::Relaxed);
    pipe.head_tail.store(0, Ordering::Relaxed);
    pipe.slots_used.store(0, Ordering::Relaxed);
    // A reused run's data pages that still have their memory need not be populated again.
    let backed = kept.saturating_sub(Ring::meta_pages(shift)).min(1 << shift);
    pipe.backed.store(backed as u32, Ordering::Relaxed);
    pipe.ring.store(Ring { run, shift }.pack(), Ordering::Release);
    crate::epoll_wq::reset(region, crate::epoll_wq::Wq::Pipe(idx));
    if counted {
        ns.user_bufs.fetch_add(1 << shift, Ordering::Relaxed);
    }
    ns.nr_live.fetch_add(1, Ordering::Relaxed);
    ns.next_slot.store(idx + 1, Ordering::Relaxed);
    if idx >= ns.hwm.load(Ordering::Relaxed) {
        ns.hwm.store(idx + 1, Ordering::Relaxed);
    }
    // Published last: until here a crash leaves a FREE slot (and, at worst, a leaked run).
    pipe.ident.store(ident(generation, LIVE), Ordering::Release);
    hash_insert(region, idx);
    region.header().counters.pipes_created.fetch_add(1, Ordering::Relaxed);
    Ok(PipeHandle { idx, generation })
}

/// Collects garbage every [`crate::pipe_gc::GC_EVERY`] creations, or as many as there are
/// live objects if more (a collection costs about one look per open fd), once the table holds
/// half as many more objects as the last collection left: objects are freed at their last
/// close, and what killed processes held at their reaping, so this only catches what nobody
/// saw go (a process killed whose parent is not ours), which grows the table. A program that
/// makes and frees objects all the time (a connection per request) pays no scans of every
/// process's fds for it. A full table collects too.
fn maybe_collect(region: &Region) {
    let ns = ns(region);
    let n = ns.creations_since_gc.fetch_add(1, Ordering::Relaxed) + 1;
    let live = ns.nr_live.load(Ordering::Relaxed);
    if n >= crate::pipe_gc::GC_EVERY.max(live) {
        ns.creations_since_gc.store(0, Ordering::Relaxed);
        if live >= ns.live_after_gc.load(Ordering::Relaxed).saturating_add(crate::pipe_gc::GC_EVERY / 2) {
            crate::pipe_gc::collect_garbage(region);
        }
    }
}

/// A connection's socket was closed after its peer's: both may be released now, or another
/// process may still hold either. Asking the kernel (`unix_diag`) costs a walk over every
/// AF_UNIX socket in the system per question, so a program closing thousands of connections
/// would pay a walk for each; a collection instead reads each process's fds once, and is
/// run when such closes reach half the live objects (at least [`RELEASE_BATCH`]).
pub fn note_maybe_released(region: &Region) {
    let ns = ns(region);
    let n = ns.maybe_released.fetch_add(1, Ordering::Relaxed) + 1;
    if n >= RELEASE_BATCH.max(ns.nr_live.load(Ordering::Relaxed) / 2) {
        ns.maybe_released.store(0, Ordering::Relaxed);
        crate::pipe_gc::collect_soon(region);
    }
}

/// See [`note_maybe_released`].
pub const RELEASE_BATCH: u32 = 256;

/// Creates or finds the object, trying once more after a collection if the table is full.
/// NO_SPACE when there is no room for it (the kernel then serves the pipe or socket).
fn get_or_create(region: &Region, dev: u64, ino: u64, replace: bool, bufs: u32) -> Result<PipeHandle, Errno> {
    maybe_collect(region);
    for attempt in 0..2 {
        {
            let _g = ns_lock(region)?;
            if let Some(old) = lookup(region, dev, ino) {
                if !replace {
                    return Ok(handle_of(region, old));
                }
                // A kernel inode number was reused: the old object's inode is gone, so is it.
                // SAFETY: lock held.
                if !unsafe { try_free(region, old, false) } {
                    hash_remove(region, old);
                    let id = slot(region, old).ident.load(Ordering::Acquire);
                    slot(region, old).ident.store(id & !0xff | ORPHAN, Ordering::Release);
                }
            }
            match create(region, dev, ino, bufs) {
                Err(NO_SPACE) if attempt == 0 && ns(region).nr_live.load(Ordering::Relaxed) >= PIPE_MAX => {}
                r => return r,
            }
        }
        // A full table is not scanned again within `SOON_MS` of the last collection: each
        // scan reads every process's fds, and a program holding thousands of sockets would
        // pay one per creation (the new object is then the kernel's).
        if crate::pipe_gc::collected_lately(region) {
            break;
        }
        crate::pipe_gc::collect_garbage(region);
    }
    Err(NO_SPACE)
}

/// A new object for a fresh kernel pipe (`get_pipe_inode`). An older object with the same
/// (dev, ino) belonged to an inode that no longer exists and is dropped.
pub fn pipe_new(region: &Region, dev: u64, ino: u64) -> Result<PipeHandle, Errno> {
    get_or_create(region, dev, ino, true, 0)
}

/// A new object of `bufs` slots for a fresh kernel socket (an AF_UNIX socket's send queue),
/// as [`pipe_new`] otherwise; not counted against the pipe page limits, as the kernel does
/// not count socket buffers there.
pub fn sock_new(region: &Region, dev: u64, ino: u64, bufs: u32) -> Result<PipeHandle, Errno> {
    get_or_create(region, dev, ino, true, bufs)
}

/// The object of a FIFO file (`fifo_open`): found, or created by its first opener.
pub fn fifo_get(region: &Region, dev: u64, ino: u64) -> Result<PipeHandle, Errno> {
    if let Some(h) = pipe_find(region, dev, ino) {
        return Ok(h);
    }
    get_or_create(region, dev, ino, false, 0)
}

/// The live object named (dev, ino), if any.
pub fn pipe_find(region: &Region, dev: u64, ino: u64) -> Option<PipeHandle> {
    let _g = ns_lock(region).ok()?;
    let idx = lookup(region, dev, ino)?;
    // A lookup during a collection counts as a reference: the caller has an fd that the scan
    // may already have missed.
    slot(region, idx).gc_seen.store(ns(region).gc_pass.load(Ordering::Relaxed), Ordering::Relaxed);
    Some(handle_of(region, idx))
}

/// Nobody holds the object any more (no end of the pipe is open, or neither socket of the
/// connection is): it is freed now, as `pipe_release` frees the kernel's at the last release,
/// unless an operation is still running on it (the collector frees it then). Its sleepers are
/// woken first.
pub fn release(region: &Region, h: PipeHandle) -> bool {
    let Some(pipe) = live(region, h) else { return false };
    pipe.closes.fetch_add(1, Ordering::SeqCst);
    // A datagram socket's queue is purged first, its senders woken (`unix_release_sock`), before
    // the namespace lock, under which epoll items are not woken.
    if pipe.recv_queue() {
        sock_purge(region, h);
    }
    pipe.wake(READERS, region);
    pipe.wake(WRITERS, region);
    let Ok(_g) = ns_lock(region) else { return false };
    // SAFETY: namespace lock held; the generation is checked under it.
    slot(region, h.idx).is_live(h) && unsafe { try_free(region, h.idx, false) }
}

/// A shimmed process is forking, or has just forked: a collection running now looks for its
/// child (see `pipe_gc`'s rounds).
pub fn note_fork(region: &Region) {
    ns(region).forks.fetch_add(1, Ordering::SeqCst);
}

/// An fd of the object is being passed in an SCM_RIGHTS message (see `in_flight`).
pub fn note_in_flight(region: &Region, h: PipeHandle) {
    if let Some(p) = live(region, h) {
        p.in_flight.store(coarse_secs(), Ordering::Relaxed);
    }
}

/// The shim closed an fd of the object (or changed its file's flags): sleepers re-check
/// whether their peer is gone. Epoll sets learn of a close from the shim's close itself.
pub fn note_close(region: &Region, h: PipeHandle) {
    if let Some(pipe) = live(region, h) {
        pipe.closes.fetch_add(1, Ordering::SeqCst);
        pipe.wake_sleepers(READERS, region);
        pipe.wake_sleepers(WRITERS, region);
    }
}

/// The shim closed an end of the object that reads (`read`) and/or writes (`write`): as
/// [`note_close`], but only the other side's sleepers look again, as only they wait for what
/// such a close can end (`pipe_release` wakes them for the last reader or writer).
pub fn note_end_closed(region: &Region, h: PipeHandle, read: bool, write: bool) {
    if let Some(pipe) = live(region, h) {
        pipe.closes.fetch_add(1, Ordering::SeqCst);
        if write {
            pipe.wake_sleepers(READERS, region);
        }
        if read {
            pipe.wake_sleepers(WRITERS, region);
        }
    }
}

/// An exec about to start may close an end of `h` (see [`crate::pipe_exec`]): until
/// `until_ns` (CLOCK_MONOTONIC), or until [`exec_done`], its sleepers wait in the kernel,
/// which wakes them the moment the end goes, and those asleep now are woken to do so.
pub fn exec_pending(region: &Region, h: PipeHandle, until_ns: u64) {
    if let Some(pipe) = live(region, h) {
        pipe.exec_until.fetch_max(until_ns, Ordering::SeqCst);
        pipe.wake_sleepers(READERS, region);
        pipe.wake_sleepers(WRITERS, region);
        pipe.ep_changed(region);
    }
}

/// The exec that [`exec_pending`] announced is over: sleepers go back to the futex word,
/// after one look whether the other side is gone.
pub fn exec_done(region: &Region, h: PipeHandle) {
    if let Some(pipe) = live(region, h) {
        pipe.exec_until.store(0, Ordering::SeqCst);
        pipe.ep_changed(region);
    }
    note_close(region, h);
}

/// Whether an exec in progress may close an end of `h` (until when, in CLOCK_MONOTONIC ns).
pub fn exec_window(region: &Region, h: PipeHandle) -> Option<u64> {
    let until = live(region, h)?.exec_until.load(Ordering::Relaxed);
    (until != 0 && until > sys::monotonic_ns() as u64).then_some(until)
}

/// A process of the namespace is known to have died (e.g. it was reaped).
pub fn note_exit(region: &Region) {
    ns(region).exits.fetch_add(1, Ordering::SeqCst);
}

/// The object's closes generation and the namespace's exits generation, as one key: while it
/// is unchanged, no fd of the object was closed by the shim and no process was found dead.
pub fn liveness_gens(region: &Region, h: PipeHandle) -> u64 {
    let closes = live(region, h).map_or(u32::MAX, |p| p.closes.load(Ordering::SeqCst));
    (closes as u64) << 32 | ns(region).exits.load(Ordering::SeqCst) as u64
}

/// Iterates the caller's iovecs like the kernel's `iov_iter`; addresses may be bad.
struct IovIter<'a> {
    iov: &'a [(usize, usize)],
    seg: usize,
    off: usize,
    count: usize,
    /// Copies from the user store non-temporally ([`uaccess::copy_from_user_nt`]).
    nt: bool,
}

impl<'a> IovIter<'a> {
    fn new(iov: &'a [(usize, usize)]) -> IovIter<'a> {
        let count = iov.iter().fold(0usize, |a, v| a.saturating_add(v.1));
        IovIter { iov, seg: 0, off: 0, count, nt: false }
    }

    /// Copies up to `n` bytes between `ours` and the user segments, advancing; stops at the
    /// first fault. Returns the bytes copied.
    #[inline]
    fn copy(&mut self, ours: *mut u8, n: usize, to_user: bool) -> usize {
        let mut done = 0;
        while done < n && self.seg < self.iov.len() {
            let (base, len) = self.iov[self.seg];
            let chunk = (len - self.off).min(n - done);
            let user = base.wrapping_add(self.off) as *mut u8;
            // SAFETY: `ours` is valid for n bytes (caller); the user side may fault, which
            // copy_user reports as a short count.
            let left = unsafe {
                if to_user {
                    uaccess::copy_user(user, ours.add(done), chunk)
                } else if self.nt {
                    uaccess::copy_from_user_nt(ours.add(done), user, chunk)
                } else {
                    uaccess::copy_user(ours.add(done), user, chunk)
                }
            };
            let copied = chunk - left;
            done += copied;
            self.off += copied;
            self.count -= copied;
            if self.off == len {
                self.seg += 1;
                self.off = 0;
            }
            if left != 0 {
                break;
            }
        }
        done
    }
}

pub(crate) enum Waited {
    Woken,
    Interrupted,
    /// A forced check found the other side gone.
    PeerGone,
    /// The environment's deadline passed.
    TimedOut,
}

/// Waits until `ready()` or the other side is gone: spins while the peer is running on
/// another CPU, then sleeps in slices. `side`: who we are (READERS or WRITERS).
pub(crate) fn wait_for(
    region: &Region,
    pipe: &PipeInodeInfo,
    side: u32,
    env: &dyn PipeEnv,
    ready: &dyn Fn() -> bool,
    progress: Option<&dyn Fn() -> u64>,
) -> Waited {
    let (mine, peer_cpu, peer_waiters) = if side == READERS {
        (&pipe.rd_waiters, &pipe.wr_cpu, &pipe.wr_waiters)
    } else {
        (&pipe.wr_waiters, &pipe.rd_cpu, &pipe.rd_waiters)
    };
    let peer = peer_cpu.load(Ordering::Relaxed);
    let here = sys::current_cpu();
    // A peer on this CPU that is not asleep runs when we give the CPU up: yielding hands over
    // at the cost of one syscall, where a futex sleep and wake-up cost two and a ping-pong
    // would pay them on every message.
    if peer != 0 && peer == here && peer_waiters.load(Ordering::Relaxed) == 0 {
        for _ in 0..SAME_CPU_YIELDS {
            let _ = sys::syscall6(libc::SYS_sched_yield, 0, 0, 0, 0, 0, 0);
            if ready() {
                return Waited::Woken;
            }
        }
    }
    // On one CPU (or with the peer asleep) spinning only burns the time the peer needs.
    if peer != 0 && peer != here && peer_waiters.load(Ordering::Relaxed) == 0 {
        let start = sys::monotonic_ns();
        let mut i = 0u32;
        while !ready() {
            core::hint::spin_loop();
            i = i.wrapping_add(1);
            if i.is_multiple_of(32) && sys::monotonic_ns() - start > SPIN_NS {
                break;
            }
        }
        if ready() {
            // A writer still going on the other CPU: let a little more arrive before taking
            // the lock, or every byte costs both sides a lock hand-over.
            if let Some(progress) = progress {
                // One short look first: a writer that stopped (a request waiting for its
                // answer) costs almost nothing; one still writing is then left alone for a
                // while at a time, since every look pulls its cache lines away.
                let (mut last, mut pauses) = (progress(), 16);
                let start = sys::monotonic_ns();
                loop {
                    for _ in 0..pauses {
                        core::hint::spin_loop();
                    }
                    let p = progress();
                    if p == last || sys::monotonic_ns() - start > BATCH_MAX_NS {
                        break;
                    }
                    (last, pauses) = (p, 64);
                }
            }
            return Waited::Woken;
        }
    }
    let cap = env.max_slice_ns();
    let mut slice = FIRST_SLICE_NS.min(cap);
    let until = env.deadline();
    loop {
        if let Some(out) = watch_exec(pipe, env, ready, until.as_ref()) {
            return out;
        }
        // Still open here: the env has no placeholder to watch it with.
        let unwatchable = exec_window_open(pipe);
        mine.fetch_add(1, Ordering::SeqCst);
        let seq = pipe.wait.load(Ordering::SeqCst);
        if ready() {
            mine.fetch_sub(1, Ordering::SeqCst);
            return Waited::Woken;
        }
        // A window opened since watch_exec looked woke nobody (we were not counted yet): the
        // end it announces may go at any moment, which only the placeholder would tell.
        if !unwatchable && exec_window_open(pipe) {
            mine.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        // A close noted before we were counted woke nobody: its generation shows it.
        if env.peer_gone(false) {
            mine.fetch_sub(1, Ordering::SeqCst);
            return Waited::PeerGone;
        }
        let mut deadline = wait::deadline_after(&libc::timespec { tv_sec: 0, tv_nsec: slice });
        if let Some(u) = until {
            if (u.tv_sec, u.tv_nsec) <= (deadline.tv_sec, deadline.tv_nsec) {
                deadline = u;
            }
            let now = sys::clock_gettime(libc::CLOCK_MONOTONIC);
            if (now.tv_sec, now.tv_nsec) >= (u.tv_sec, u.tv_nsec) {
                mine.fetch_sub(1, Ordering::SeqCst);
                return Waited::TimedOut;
            }
        }
        region.header().counters.pipe_waits.fetch_add(1, Ordering::Relaxed);
        let out = env.wait(&mut || futex_wait(&pipe.wait, seq, &deadline, side));
        mine.fetch_sub(1, Ordering::SeqCst);
        match out {
            WaitOutcome::Woken => return Waited::Woken,
            WaitOutcome::Interrupted => return Waited::Interrupted,
            WaitOutcome::TimedOut => {
                pipe.heartbeat.store(coarse_secs(), Ordering::Relaxed);
                if env.peer_gone(true) {
                    return Waited::PeerGone;
                }
                slice = (slice * 2).min(MAX_SLICE_NS).min(cap);
            }
        }
    }
}

/// Whether an exec window ([`exec_pending`]) is open on `pipe`. SeqCst: pairs with
/// `exec_pending`'s store and its look for sleepers, against a sleeper's count.
fn exec_window_open(pipe: &PipeInodeInfo) -> bool {
    pipe.exec_until.load(Ordering::SeqCst) as i64 > sys::monotonic_ns()
}

/// While an exec may close the other side's end ([`exec_pending`]): waits in the kernel on the
/// placeholder, in slices of [`EXEC_SLICE_NS`] after each of which the ring is looked at again.
/// None when there is no such exec (or the env has no placeholder): the futex wait follows.
fn watch_exec(
    pipe: &PipeInodeInfo,
    env: &dyn PipeEnv,
    ready: &dyn Fn() -> bool,
    deadline: Option<&libc::timespec>,
) -> Option<Waited> {
    loop {
        let window = pipe.exec_until.load(Ordering::SeqCst) as i64;
        let now = sys::monotonic_ns();
        if window <= now {
            return None;
        }
        if ready() {
            return Some(Waited::Woken);
        }
        let left = deadline.map_or(i64::MAX, |d| (d.tv_sec * 1_000_000_000 + d.tv_nsec) - now);
        if left <= 0 {
            return Some(Waited::TimedOut);
        }
        match env.watch_placeholder((window - now).min(EXEC_SLICE_NS).min(left))? {
            WaitOutcome::Interrupted => return Some(Waited::Interrupted),
            _ if env.peer_gone(true) => return Some(Waited::PeerGone),
            _ => {}
        }
    }
}

/// One shared futex wait for wakes of `bitset`, until the absolute CLOCK_MONOTONIC deadline.
fn futex_wait(word: &AtomicU32, expected: u32, deadline: &libc::timespec, bitset: u32) -> WaitOutcome {
    match sys::futex(word.as_ptr(), libc::FUTEX_WAIT_BITSET, expected, deadline, 0, bitset) {
        Err(libc::ETIMEDOUT) => WaitOutcome::TimedOut,
        Err(libc::EINTR) => WaitOutcome::Interrupted,
        _ => WaitOutcome::Woken,
    }
}

/// Reads and writes of this process not yet added to `pipe_calls` and `unix_calls`, and TCP
/// bytes not yet added to `tcp_bytes_in` and `tcp_bytes_out`.
static CALLS: Tally = Tally::new();
static UNIX_CALLS: Tally = Tally::new();
static TCP_IN: Tally = Tally::new();
static TCP_OUT: Tally = Tally::new();

/// Counts one read or write of `pipe` (a pipe's or a socket's counters) and its bytes.
#[inline]
pub(crate) fn count_call(region: &Region, pipe: &PipeInodeInfo, bytes: Option<usize>, written: bool) {
    let c = &region.header().counters;
    let socket = pipe.sock.load(Ordering::Relaxed) != 0;
    let total = match (socket, written) {
        (true, true) => &c.unix_bytes_in,
        (true, false) => &c.unix_bytes_out,
        (false, true) => &c.pipe_bytes_in,
        (false, false) => &c.pipe_bytes_out,
    };
    if let Some(n) = bytes {
        total.fetch_add(n as u64, Ordering::Relaxed);
        if socket && pipe.sock.load(Ordering::Relaxed) & SOCK_TCP != 0 {
            let (mine, shared) =
                if written { (&TCP_IN, &c.tcp_bytes_in) } else { (&TCP_OUT, &c.tcp_bytes_out) };
            mine.add(shared, n as u64, 1 << 16);
        }
    }
    if socket { UNIX_CALLS.bump(&c.unix_calls) } else { CALLS.bump(&c.pipe_calls) }
}

/// Adds this process's uncounted pipe and socket calls to the counters (at exit).
pub fn flush_counts(region: &Region) {
    CALLS.flush(&region.header().counters.pipe_calls);
    UNIX_CALLS.flush(&region.header().counters.unix_calls);
    TCP_IN.flush(&region.header().counters.tcp_bytes_in);
    TCP_OUT.flush(&region.header().counters.tcp_bytes_out);
}

/// `pipe_write`: writes the caller's iovecs; `packet` is O_DIRECT on the caller's file.
pub fn pipe_write(
    region: &Region,
    h: PipeHandle,
    iov: &[(usize, usize)],
    packet: bool,
    env: &dyn PipeEnv,
) -> Result<usize, Errno> {
    write_inner(region, h, iov, packet, None, false, env)
}

/// A stream socket's send of one message with its [`UnixCb`] (`unix_stream_sendmsg` with
/// ancillary data, or to a receiver that wants credentials): it merges with nothing, every
/// page it fills starts with the header, and only the first one names the fds.
pub fn sock_write(
    region: &Region,
    h: PipeHandle,
    iov: &[(usize, usize)],
    cb: &UnixCb,
    env: &dyn PipeEnv,
) -> Result<usize, Errno> {
    write_inner(region, h, iov, false, Some(cb), false, env)
}

/// A stream socket's out-of-band byte (`queue_oob`): the one byte of `iov` as a buffer of its
/// own, merging with nothing, named as the queue's current one (an earlier one becomes data).
pub fn sock_write_oob(
    region: &Region,
    h: PipeHandle,
    iov: &[(usize, usize)],
    cb: Option<&UnixCb>,
    env: &dyn PipeEnv,
) -> Result<usize, Errno> {
    write_inner(region, h, iov, false, cb, true, env)
}

/// A socket queue's ring with room for `need` more buffers after `head - tail`: grown (to a
/// power of two) if it is full; as it is at its largest size. Errors: no memory.
fn grow_for(
    region: &Region,
    pipe: &PipeInodeInfo,
    ring: Ring,
    head: u32,
    tail: u32,
    need: u32,
) -> Result<Ring, Errno> {
    let used = head.wrapping_sub(tail);
    if ring.size() - used.min(ring.size()) >= need {
        return Ok(ring);
    }
    let want = (used + need).next_power_of_two().max(ring.size() * 2);
    if want > 1 << MAX_RING_SHIFT {
        return Ok(ring);
    }
    pipe_resize_ring(region, pipe, want)?;
    pipe.ring()
}

#[allow(clippy::too_many_arguments)]
fn write_inner(
    region: &Region,
    h: PipeHandle,
    iov: &[(usize, usize)],
    packet: bool,
    cb: Option<&UnixCb>,
    oob: bool,
    env: &dyn PipeEnv,
) -> Result<usize, Errno> {
    let mut from = IovIter::new(iov);
    let total_len = from.count;
    // Null write succeeds.
    if total_len == 0 {
        return Ok(0);
    }
    let act = enter(region, h)?;
    let pipe = act.pipe;
    note_cpu(&pipe.wr_cpu);
    let flags = if packet { PIPE_BUF_FLAG_PACKET } else { PIPE_BUF_FLAG_CAN_MERGE };
    // A socket's send is cut into skbs (`unix_stream_sendmsg`), each starting when the charge
    // is below the send buffer and charged with its last buffer: what is left of the current
    // one, and its size.
    let acct = pipe.accounted();
    // Plain data into a pipe or a stream socket's queue may be copied with the lock released
    // (see below); a record or a message with a header is queued locked.
    let batch =
        cb.is_none() && !oob && pipe.sock.load(Ordering::Relaxed) & (SOCK_RECORDS | SOCK_RECV_QUEUE) == 0;
    let (mut skb_left, mut skb_size) = (0usize, 0usize);
    let mut slept = false;
    let mut ret = 0usize;
    let mut published = false;
    let mut gone = false;
    let mut signalled = false;
    let mut guard = Some(lock_for_write(region, pipe)?);
    let res = 'out: {
        if pipe.is_handed_back() {
            break 'out Err(HANDED_BACK);
        }
        if env.peer_gone(false) {
            break 'out Err(EPIPE);
        }
        let ring = match pipe.ring() {
            Ok(r) => r,
            Err(e) => break 'out Err(e),
        };
        // If it wasn't empty, try to merge new data into the last buffer. That merges small
        // writes, and page-aligns the rest of large ones.
        let (head, tail) = pipe.head_tail();
        let chars = total_len & (PAGE - 1);
        if cb.is_none() && !oob && !acct && chars != 0 && head != tail {
            let last = head.wrapping_sub(1);
            let buf = PipeBuffer::load(ring.buf(region, last));
            let offset = buf.offset + buf.len;
            if buf.flags & PIPE_BUF_FLAG_CAN_MERGE != 0 && offset + chars <= PAGE {
                // SAFETY: offset + chars <= PAGE: inside the slot's data page.
                let dst = unsafe { ring.page(region, last).add(offset) };
                if from.copy(dst, chars, false) < chars {
                    break 'out Err(EFAULT);
                }
                ring.buf(region, last)
                    .store(PipeBuffer { len: buf.len + chars, ..buf }.pack(), Ordering::Release);
                ret = chars;
                if from.count == 0 {
                    break 'out Ok(ret);
                }
            }
        }
        loop {
            if pipe.is_handed_back() {
                break 'out if ret > 0 { Ok(ret) } else { Err(HANDED_BACK) };
            }
            if gone || env.peer_gone(false) {
                break 'out if ret > 0 { Ok(ret) } else { Err(EPIPE) };
            }
            // A resize may have happened while we slept.
            let mut ring = match pipe.ring() {
                Ok(r) => r,
                Err(e) => break 'out if ret > 0 { Ok(ret) } else { Err(e) },
            };
            let (mut head, mut tail) = pipe.head_tail();
            // An empty ring starts again on the page its last buffer used: a connection
            // exchanging small messages keeps to one warm page, where moving on would touch
            // every page of its ring in turn (a fault and a page of memory each).
            let restart = head == tail && head != 0 && pipe.oob.load(Ordering::Acquire) == 0;
            if restart {
                head = head.wrapping_sub(1);
                tail = head;
            }
            let room = if !acct {
                !pipe_full(head, tail, ring.size())
            } else if skb_left == 0 && !pipe.may_send(region, slept) {
                false
            } else {
                slept = false;
                if skb_left == 0 {
                    skb_size = from.count.min(skb::stream_skb_max(pipe.sndbuf(region) as u32));
                    skb_left = skb_size;
                }
                // The charge, not the ring, limits the queue: the ring grows as needed, for
                // the whole skb when it is copied in one go (below).
                let need = if batch { skb_left.div_ceil(PAGE) as u32 } else { 1 };
                match grow_for(region, pipe, ring, head, tail, need) {
                    Ok(r) => ring = r,
                    Err(_) => {
                        env.out_of_space();
                        break 'out if ret > 0 { Ok(ret) } else { Err(NO_SPACE) };
                    }
                }
                !pipe_full(head, tail, ring.size())
            };
            // Several pages (a socket's skb, or as many as there is data and room for) are
            // copied with the lock released (unless the reader shares our CPU, below), so
            // that a reader on another CPU takes earlier buffers meanwhile, and then published
            // together: free slots are nobody else's while `wr_copy` keeps other writers (and
            // resizes) out.
            let pages = if acct { skb_left } else { from.count }.div_ceil(PAGE) as u32;
            let pages = pages.min(ring.size() - head.wrapping_sub(tail).min(ring.size()));
            // A reader last seen on this CPU is not running while we are: the batch is then
            // copied with the lock kept, saving the copier's lock and a second lock of the
            // pipe per batch.
            let same_cpu = pipe.rd_cpu.load(Ordering::Relaxed) == sys::current_cpu();
            // Without memory for all its pages (a full file system) a page at a time, below,
            // queues what fits before the object goes to the kernel.
            if room
                && batch
                && pages >= UNLOCKED_MIN_PAGES
                && back_slots(region, pipe, ring, head, pages).is_ok()
                && let Some(copier) =
                    if same_cpu { Some(None) } else { pipe.wr_copy.try_lock().and_then(Result::ok).map(Some) }
            {
                if copier.is_some() {
                    guard = None;
                }
                // Lines a reader on another CPU pulls over anyway are not worth keeping in
                // this one's cache, where the next copy into them would first have to take
                // them back. (A page at a time, under the lock, the reader's copy of it from
                // memory then cost more than this saved: 4 KiB pipe writes.)
                from.nt = !same_cpu;
                let (mut filled, mut bytes, mut faulted) = (0u32, 0usize, false);
                while filled < pages {
                    let i = head.wrapping_add(filled);
                    let space = if acct { PAGE.min(skb_left) } else { PAGE };
                    let copied = from.copy(ring.page(region, i), space, false);
                    // As below: a page that faulted part way is not queued.
                    if copied < space && from.count != 0 {
                        faulted = true;
                        break;
                    }
                    let mut charge = 0;
                    if acct {
                        skb_left -= copied;
                        if skb_left == 0 {
                            charge = (skb::stream_truesize(skb_size) / CHARGE_UNIT) as u32;
                        }
                    }
                    ring.buf(region, i).store(
                        PipeBuffer { offset: 0, len: copied, flags, charge }.pack(),
                        Ordering::Release,
                    );
                    bytes += copied;
                    filled += 1;
                    if from.count == 0 {
                        break;
                    }
                }
                // A socket's skb that faulted is freed whole (`unix_stream_sendmsg`): the send
                // returns what earlier skbs queued.
                if faulted && acct {
                    (filled, bytes) = (0, 0);
                }
                if copier.is_some() {
                    // A reader on another CPU holds the lock for its copy at most.
                    guard = match lock_pipe_spinning(region, pipe, SPIN_NS) {
                        Ok(g) => Some(g),
                        Err(e) => break 'out if ret > 0 { Ok(ret) } else { Err(e) },
                    };
                    // Handed back meanwhile: the rest, this batch too, goes to the kernel.
                    if pipe.is_handed_back() {
                        break 'out if ret > 0 { Ok(ret) } else { Err(HANDED_BACK) };
                    }
                }
                // Readers moved the tail meanwhile, but not past the head, which only we move:
                // an empty ring stays empty, so a restarted one keeps its tail one page back.
                let (now_head, now_tail) = pipe.head_tail();
                let tail = if restart { head } else { now_tail };
                if filled > 0 {
                    pipe.slots_used.fetch_max(head.wrapping_add(filled), Ordering::Relaxed);
                    pipe.head_tail.store(join(head.wrapping_add(filled), tail), Ordering::Release);
                }
                drop(copier);
                // A reader asleep on the empty ring starts on this batch while we copy the next.
                if filled > 0 && now_head == now_tail {
                    published = true;
                    pipe.wake_sleepers(READERS, region);
                }
                ret += bytes;
                if faulted {
                    break 'out if ret > 0 { Ok(ret) } else { Err(EFAULT) };
                }
                if from.count == 0 {
                    break 'out Ok(ret);
                }
                continue;
            }
            if room {
                if back_slots(region, pipe, ring, head, 1).is_err() {
                    env.out_of_space();
                    break 'out if ret > 0 { Ok(ret) } else { Err(NO_SPACE) };
                }
                // The slot is free space: filled first, then published with the head.
                let (at, flags) = match (cb.is_some(), oob) {
                    (true, false) => (CB_LEN, PIPE_BUF_FLAG_CB),
                    (true, true) => (CB_LEN, PIPE_BUF_FLAG_CB | PIPE_BUF_FLAG_OOB),
                    (false, true) => (0, PIPE_BUF_FLAG_OOB),
                    (false, false) => (0, flags),
                };
                let space = if acct { (PAGE - at).min(skb_left) } else { PAGE - at };
                // SAFETY: at < PAGE: inside the slot's data page.
                let copied = from.copy(unsafe { ring.page(region, head).add(at) }, space, false);
                // A page that faulted part way is not queued (this kernel leaves nothing
                // readable behind, c-tests/pipe_fault.c).
                if copied < space && from.count != 0 {
                    break 'out if ret > 0 { Ok(ret) } else { Err(EFAULT) };
                }
                let mut charge = 0;
                if acct {
                    skb_left -= copied;
                    if skb_left == 0 {
                        charge = (skb::stream_truesize(skb_size) / CHARGE_UNIT) as u32;
                    }
                }
                if let Some(cb) = cb {
                    let fp = if ret == 0 { cb.fp } else { 0 };
                    ring.set_cb(region, head, UnixCb { fp, ..*cb });
                }
                ring.buf(region, head)
                    .store(PipeBuffer { offset: at, len: copied, flags, charge }.pack(), Ordering::Release);
                if oob {
                    pipe.oob.store(OOB_SET | head as u64, Ordering::Release);
                }
                pipe.slots_used.fetch_max(head.wrapping_add(1), Ordering::Relaxed);
                pipe.head_tail.store(join(head.wrapping_add(1), tail), Ordering::Release);
                // Readers sleep only on an empty ring: only its first buffer needs a wake-up
                // (as the kernel's was_empty); waking on every write costs a syscall each.
                published |= head == tail;
                ret += copied;
                if from.count == 0 {
                    break 'out Ok(ret);
                }
                continue;
            }
            // Wait for buffer space to become available.
            if env.nonblocking() {
                if ret == 0 && env.peer_gone_now() {
                    break 'out Err(EPIPE);
                }
                break 'out if ret > 0 { Ok(ret) } else { Err(EAGAIN) };
            }
            if signalled {
                if ret > 0 {
                    break 'out Ok(ret);
                }
                if !env.restart_after_signal() {
                    break 'out Err(EINTR);
                }
                signalled = false;
            }
            guard = None;
            if published {
                pipe.wake(READERS, region);
                published = false;
            }
            // Within an skb (a ring that cannot grow) it waits for a free slot.
            let room = || {
                let (head, tail) = pipe.head_tail();
                let size = Ring::unpack(pipe.ring.load(Ordering::Acquire)).map_or(0, Ring::size);
                if skb_left > 0 { !pipe_full(head, tail, size) } else { pipe.writable(region) }
            };
            slept = true;
            match wait_for(region, pipe, WRITERS, env, &|| room() || pipe.is_handed_back(), None) {
                Waited::Woken => {}
                Waited::Interrupted => signalled = true,
                Waited::PeerGone => gone = true,
                Waited::TimedOut => break 'out if ret > 0 { Ok(ret) } else { Err(EAGAIN) },
            }
            guard = match lock_for_write(region, pipe) {
                Ok(g) => Some(g),
                Err(e) => break 'out if ret > 0 { Ok(ret) } else { Err(e) },
            };
        }
    };
    drop(guard);
    // "Epoll nonsensically wants a wakeup whether the pipe was already empty or not"
    // (pipe_write), whatever the write's outcome.
    let polled = pipe.ep_usage.load(Ordering::Relaxed) != 0;
    if published || polled {
        pipe.wake(READERS, region);
    }
    count_call(region, pipe, res.ok(), true);
    res
}

/// `pipe_read`: reads into the caller's iovecs.
pub fn pipe_read(
    region: &Region,
    h: PipeHandle,
    iov: &[(usize, usize)],
    env: &dyn PipeEnv,
) -> Result<usize, Errno> {
    ring_read(region, h, iov, env, RecvMode::default())
}

/// How [`ring_read`] reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecvMode {
    /// MSG_PEEK: copy without consuming.
    pub peek: bool,
    /// An AF_UNIX socket's queue: after a hand-back what is still queued is read first (the
    /// kernel's queue only holds what was sent after it).
    pub socket: bool,
}

/// What a stream socket's read learned of the messages it read ([`sock_read`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct CbRead {
    /// SO_PASSCRED: a message from other credentials than the first one's ends the read.
    pub check_creds: bool,
    /// The first message's header, with the fds' token of the message that ended the read.
    pub first: Option<UnixCb>,
    /// The read ended at a message edge: fds, or other credentials.
    pub stopped: bool,
}

impl CbRead {
    /// Whether a buffer with header `cb` may join this read (`unix_skb_scm_eq`).
    fn admit(&mut self, cb: &UnixCb) -> bool {
        match self.first {
            None => {
                self.first = Some(UnixCb { fp: 0, ..*cb });
                true
            }
            Some(f) if self.check_creds && f.creds() != cb.creds() => {
                self.stopped = true;
                false
            }
            Some(_) => true,
        }
    }

    /// After a chunk of a buffer with header `cb`: its fds end the read.
    fn took(&mut self, cb: &UnixCb) -> bool {
        if cb.fp == 0 {
            return false;
        }
        if let Some(f) = self.first.as_mut() {
            f.fp = cb.fp;
        }
        self.stopped = true;
        true
    }
}

/// `pipe_read`: reads into the caller's iovecs.
pub fn ring_read(
    region: &Region,
    h: PipeHandle,
    iov: &[(usize, usize)],
    env: &dyn PipeEnv,
    mode: RecvMode,
) -> Result<usize, Errno> {
    read_inner(region, h, iov, env, mode, None)
}

/// `unix_stream_read_generic`'s copy from a socket's receive queue: it stops after the
/// message with fds, and (`check_creds`) before one with other credentials; `msg` says what
/// it met, and carries across the calls of one MSG_WAITALL receive.
pub fn sock_read(
    region: &Region,
    h: PipeHandle,
    iov: &[(usize, usize)],
    env: &dyn PipeEnv,
    mode: RecvMode,
    msg: &mut CbRead,
) -> Result<usize, Errno> {
    read_inner(region, h, iov, env, mode, Some(msg))
}

fn read_inner(
    region: &Region,
    h: PipeHandle,
    iov: &[(usize, usize)],
    env: &dyn PipeEnv,
    mode: RecvMode,
    mut msg: Option<&mut CbRead>,
) -> Result<usize, Errno> {
    let mut to = IovIter::new(iov);
    let mut total_len = to.count;
    // Null read succeeds.
    if total_len == 0 {
        return Ok(0);
    }
    let act = enter(region, h)?;
    let pipe = act.pipe;
    note_cpu(&pipe.rd_cpu);
    let mut ret = 0usize;
    let mut wake_writer = false;
    // The charge, in units, of the socket's skbs consumed: its sender may go on once the
    // charge allows it (`sock_wfree` and `unix_write_space`).
    let mut freed = 0usize;
    let mut gone = false;
    let mut waited = false;
    // A peek that found only out-of-band marks: the head it saw (it waits for a new one).
    let mut passed_head = None;
    let mut guard = Some(lock_pipe(region, pipe)?);
    let res = 'out: loop {
        if pipe.is_handed_back() && (!mode.socket || !pipe.readable()) {
            break 'out if ret > 0 { Ok(ret) } else { Err(HANDED_BACK) };
        }
        let ring = match pipe.ring() {
            Ok(r) => r,
            Err(e) => break 'out if ret > 0 { Ok(ret) } else { Err(e) },
        };
        let (head, mut tail) = pipe.head_tail();
        if head != tail && mode.peek && passed_head != Some(head) {
            // Across buffers, as a stream socket's peek crosses skbs; nothing is consumed.
            while tail != head && ret < total_len {
                let buf = PipeBuffer::load(ring.buf(region, tail));
                if mode.socket && buf.flags & PIPE_BUF_FLAG_OOB != 0 {
                    match oob_mark(pipe, tail, buf, ret, true, env) {
                        OobMark::Stop => break,
                        OobMark::Pass | OobMark::Drop => {
                            tail = tail.wrapping_add(1);
                            continue;
                        }
                        OobMark::Read => {}
                    }
                }
                let cb = ring.cb(region, tail, buf);
                if let Some(m) = msg.as_deref_mut()
                    && !m.admit(&cb)
                {
                    break;
                }
                let chars = buf.len.min(total_len - ret);
                // SAFETY: offset + len <= PAGE (kept so by writers and by normalise).
                let src = unsafe { ring.page(region, tail).add(buf.offset) };
                if to.copy(src, chars, true) < chars {
                    break 'out if ret > 0 { Ok(ret) } else { Err(EFAULT) };
                }
                ret += chars;
                tail = tail.wrapping_add(1);
                if msg.as_deref_mut().is_some_and(|m| m.took(&cb)) {
                    env.took_fds(cb.fp);
                    break;
                }
            }
            if ret > 0 || tail != head {
                break 'out Ok(ret);
            }
            // Nothing but out-of-band marks: as an empty queue until more comes.
            passed_head = Some(head);
        }
        if head != tail && !mode.peek {
            let cell = ring.buf(region, tail);
            let buf = PipeBuffer::load(cell);
            if mode.socket && buf.flags & PIPE_BUF_FLAG_OOB != 0 {
                match oob_mark(pipe, tail, buf, ret, false, env) {
                    OobMark::Stop => {
                        if let Some(m) = msg.as_deref_mut() {
                            m.stopped = true;
                        }
                        break 'out Ok(ret);
                    }
                    // Gone from the stream: a taken byte's mark, or a byte not read inline.
                    mark @ (OobMark::Pass | OobMark::Drop) => {
                        if matches!(mark, OobMark::Drop) {
                            pipe.oob_dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        wake_writer |= pipe_full(head, tail, ring.size());
                        freed += buf.charge as usize;
                        pipe.head_tail.store(join(head, tail.wrapping_add(1)), Ordering::Release);
                        continue;
                    }
                    OobMark::Read => {}
                }
            }
            let cb = ring.cb(region, tail, buf);
            if let Some(m) = msg.as_deref_mut()
                && !m.admit(&cb)
            {
                break 'out Ok(ret);
            }
            let chars = buf.len.min(total_len);
            // SAFETY: offset + len <= PAGE (kept so by writers and by normalise).
            let src = unsafe { ring.page(region, tail).add(buf.offset) };
            if to.copy(src, chars, true) < chars {
                break 'out if ret > 0 { Ok(ret) } else { Err(EFAULT) };
            }
            ret += chars;
            // The fds go with the first bytes read of their message (unix_detach_fds).
            let ends = msg.as_deref_mut().is_some_and(|m| m.took(&cb));
            if ends {
                env.took_fds(cb.fp);
                if buf.len > chars {
                    ring.set_cb(region, tail, UnixCb { fp: 0, ..cb });
                }
            }
            // A packet buffer is consumed whole, whatever did not fit is dropped.
            let packet = buf.flags & PIPE_BUF_FLAG_PACKET != 0;
            if packet {
                total_len = chars;
            }
            if packet || buf.len == chars {
                // Writers sleep only on a full ring (the kernel's was_full).
                wake_writer |= pipe_full(head, tail, ring.size());
                freed += buf.charge as usize;
                tail = tail.wrapping_add(1);
                pipe.head_tail.store(join(head, tail), Ordering::Release);
            } else {
                cell.store(
                    PipeBuffer { offset: buf.offset + chars, len: buf.len - chars, ..buf }.pack(),
                    Ordering::Release,
                );
            }
            total_len -= chars;
            if total_len == 0 || ends {
                break 'out Ok(ret);
            }
            if head != tail {
                continue;
            }
        }
        if ret > 0 {
            break 'out Ok(ret);
        }
        if gone || env.peer_gone(false) {
            break 'out Ok(0);
        }
        if env.nonblocking() {
            break 'out if env.peer_gone_now() { Ok(0) } else { Err(EAGAIN) };
        }
        let space = pipe.freed_wakes(region, freed);
        guard = None;
        if wake_writer || space && pipe.writable(region) {
            pipe.wake(WRITERS, region);
            wake_writer = false;
        }
        freed = 0;
        waited = true;
        // Writes show as a new head or a longer last buffer.
        let progress = || {
            let (head, _) = pipe.head_tail();
            let last = pipe.ring().map_or(0, |r| PipeBuffer::load(r.buf(region, head.wrapping_sub(1))).len);
            (head as u64) << 32 | last as u64
        };
        match wait_for(
            region,
            pipe,
            READERS,
            env,
            &|| pipe.readable() && passed_head != Some(pipe.head_tail().0) || pipe.is_handed_back(),
            Some(&progress),
        ) {
            Waited::Woken => {}
            Waited::Interrupted if env.restart_after_signal() => {}
            Waited::Interrupted => break 'out Err(EINTR),
            Waited::PeerGone => gone = true,
            Waited::TimedOut => break 'out Err(EAGAIN),
        }
        guard = match lock_pipe(region, pipe) {
            Ok(g) => Some(g),
            Err(e) => break 'out Err(e),
        };
    };
    let space = pipe.freed_wakes(region, freed);
    drop(guard);
    if wake_writer || space && pipe.writable(region) {
        pipe.wake(WRITERS, region);
    }
    // wake_next_reader: a reader that slept and left data wakes the next one.
    if waited && pipe.readable() && pipe.ep_usage.load(Ordering::Relaxed) != 0 {
        pipe.wake(READERS, region);
    }
    count_call(region, pipe, res.ok(), false);
    res
}

/// Returned by an operation on an object that was handed back to the kernel meanwhile: the
/// caller issues the call to the kernel's pipe instead. Not an errno.
pub const HANDED_BACK: Errno = 1 << 20;

/// Returned when the object, or room in its ring, cannot get memory (the region's file system
/// is full, or its tables are): the caller leaves the object, or hands it back, to the kernel,
/// which still has room. Not an errno.
pub const NO_SPACE: Errno = 1 << 21;

/// Runs `f` (a look at an fd's placeholder and its close) under the namespace lock, so that
/// of the last holders of two sides closing at once, the second sees the first gone: see the
/// shim's `pipes::dropping`. `f` must not take the lock or block.
pub fn closing<T>(region: &Region, f: impl FnOnce() -> T) -> T {
    let _g = ns_lock(region);
    f()
}

/// Gives the next `pages` slots of the socket queue `h` their memory (see [`back_slots`]), so
/// that a send whose fds leave first finds room for its data; false without room.
pub fn sock_reserve(region: &Region, h: PipeHandle, pages: u32) -> bool {
    let Ok(act) = enter(region, h) else { return false };
    let pipe = act.pipe;
    let Ok(_g) = lock_for_write(region, pipe) else { return false };
    let Ok(mut ring) = pipe.ring() else { return false };
    let (head, tail) = pipe.head_tail();
    // A send the charge lets through at once grows the ring now, not after its fds left.
    if pipe.accounted() && pipe.may_send(region, false) {
        match grow_for(region, pipe, ring, head, tail, pages) {
            Ok(r) => ring = r,
            Err(_) => return false,
        }
    }
    back_slots(region, pipe, ring, head, pages.min(ring.size())).is_ok()
}

/// Whether the object now lives in the kernel's pipe (see [`hand_back`]).
pub fn handed_back(region: &Region, h: PipeHandle) -> bool {
    live(region, h).is_some_and(PipeInodeInfo::is_handed_back)
}

/// Gives the pipe back to the kernel, for uses the shim does not serve (epoll, splice…): the
/// queued bytes are passed in order to `drain` (which writes them into the kernel's pipe),
/// and from then on every process sends its calls on this pipe to the kernel. Sleepers are
/// woken to do so. `drain` runs under the pipe's lock; it must not block on this pipe.
pub fn hand_back(
    region: &Region,
    h: PipeHandle,
    drain: &mut dyn FnMut(&[u8]) -> Result<(), Errno>,
) -> Result<(), Errno> {
    let act = enter(region, h)?;
    let pipe = act.pipe;
    let g = lock_pipe(region, pipe)?;
    if !pipe.is_handed_back() {
        let ring = pipe.ring()?;
        let (head, mut tail) = pipe.head_tail();
        while tail != head {
            let b = PipeBuffer::load(ring.buf(region, tail));
            // SAFETY: offset + len <= PAGE inside the slot's data page, kept so by writers.
            let bytes = unsafe { core::slice::from_raw_parts(ring.page(region, tail).add(b.offset), b.len) };
            drain(bytes)?;
            tail = tail.wrapping_add(1);
            pipe.head_tail.store(join(head, tail), Ordering::Release);
        }
        pipe.handed_back.store(1, Ordering::Release);
    }
    drop(g);
    pipe.wake(READERS, region);
    pipe.wake(WRITERS, region);
    Ok(())
}

/// An epoll set watches the pipe from now on (see `ep_usage`).
pub fn set_ep_usage(region: &Region, h: PipeHandle) {
    if let Some(p) = live(region, h)
        && p.ep_usage.load(Ordering::Relaxed) == 0
    {
        p.ep_usage.store(1, Ordering::SeqCst);
    }
}

/// Whether `h` still names a live object.
pub fn is_live(region: &Region, h: PipeHandle) -> bool {
    live(region, h).is_some()
}

/// `SIOCOUTQ` of a socket's own send queue (`sk_wmem_alloc_get`): the truesize of its skbs
/// not yet read (a datagram receive queue's: of the datagrams its socket sent, not yet taken).
pub fn sock_outq(region: &Region, h: PipeHandle) -> Result<usize, Errno> {
    let act = enter(region, h)?;
    Ok(act.pipe.charged(region))
}

/// `SO_SNDBUF` (or `SO_SNDBUFFORCE`) set the socket's send buffer to `bytes` (as the kernel
/// left it): its queue's limit from now on. Senders blocked on it wake if the queue is now
/// writable (`sk_write_space`); otherwise only their next send sees the new limit.
pub fn sock_set_sndbuf(region: &Region, h: PipeHandle, bytes: u32) {
    if let Some(p) = live(region, h) {
        p.sndbuf.store(bytes, Ordering::Relaxed);
        if p.recv_queue() {
            p.write_space(region, h.idx, true);
        } else if p.writable(region) {
            p.wake(WRITERS, region);
        }
    }
}

/// Whether a send on the socket queue `h` would queue something now rather than wait: the
/// charge below the send buffer.
pub fn sock_may_send(region: &Region, h: PipeHandle) -> bool {
    live(region, h).is_some_and(|p| p.may_send(region, false))
}

/// `unix_writable` of socket `h`: its charge at most a quarter of its send buffer.
pub fn sock_writable(region: &Region, h: PipeHandle) -> bool {
    live(region, h).is_some_and(|p| p.writable(region))
}

/// `pipe_poll`'s data part: (readable = a buffer is queued, writable = a slot is free). The
/// caller adds POLLHUP/POLLERR from the placeholder. A stale handle is neither.
pub fn pipe_poll(region: &Region, h: PipeHandle) -> (bool, bool) {
    live(region, h).map_or((false, false), |p| (p.readable(), p.writable(region)))
}

/// Sleeps until one of `pipes` (handle, wants readable, wants writable) may have become ready,
/// `deadline` (absolute CLOCK_MONOTONIC) passes, or 100 ms elapse (the caller re-polls its
/// placeholders then). Returns immediately when one is ready already. `sleep` sleeps on the
/// futex_waitv list until the absolute time it is given ([`futex_waitv_sleep`], or one that
/// also waits for kernel files, or for more words than one futex_waitv takes), with signals
/// deliverable. Returns true if a signal interrupted the wait.
/// `extra`, words and the values they hold, end the wait when one changes (the shim passes a
/// per-thread count of signal handler runs: futex_waitv itself is restarted after a handler).
/// `recheck`, called once the sleeper is counted, says whether something is ready already
/// that the pipes' own states do not show (an epoll edge). `waiters` is the caller's room for
/// the list: more pipes than fit with `extra` are looked at again after a short slice; it is
/// not kept on the stack, which may be small.
pub fn poll_wait(
    region: &Region,
    pipes: impl IntoIterator<Item = (PipeHandle, bool, bool)>,
    deadline: Option<&libc::timespec>,
    extra: &[(&AtomicU32, u32)],
    recheck: Option<&dyn Fn() -> bool>,
    sleep: &mut dyn FnMut(&[sys::FutexWaitv], &libc::timespec) -> WaitOutcome,
    waiters: &mut [sys::FutexWaitv],
) -> bool {
    let extra = &extra[..extra.len().min(waiters.len())];
    let room = waiters.len() - extra.len();
    let (mut n, mut truncated, mut ready) = (0, false, false);
    for (h, want_rd, want_wr) in pipes {
        let Some(pipe) = live(region, h) else { continue };
        if n == room {
            truncated = true;
            break;
        }
        // Counted on both sides: any change wakes a poller.
        pipe.rd_waiters.fetch_add(1, Ordering::SeqCst);
        pipe.wr_waiters.fetch_add(1, Ordering::SeqCst);
        let seq = pipe.wait.load(Ordering::SeqCst);
        ready |= (want_rd && pipe.readable()) || (want_wr && pipe.writable(region));
        waiters[n] = sys::FutexWaitv {
            val: seq as u64,
            uaddr: pipe.wait.as_ptr() as u64,
            flags: sys::FUTEX2_SIZE_U32,
            reserved: 0,
        };
        n += 1;
    }
    for (k, (word, val)) in extra.iter().enumerate() {
        waiters[n + k] = sys::FutexWaitv {
            val: *val as u64,
            uaddr: word.as_ptr() as u64,
            flags: sys::FUTEX2_SIZE_U32,
            reserved: 0,
        };
    }
    ready |= recheck.is_some_and(|f| f());
    let slice = if truncated { SHORT_SLICE_NS } else { MAX_SLICE_NS };
    let mut until = wait::deadline_after(&libc::timespec { tv_sec: 0, tv_nsec: slice });
    if let Some(d) = deadline
        && (d.tv_sec, d.tv_nsec) < (until.tv_sec, until.tv_nsec)
    {
        until = *d;
    }
    let interrupted = !ready && sleep(&waiters[..n + extra.len()], &until) == WaitOutcome::Interrupted;
    for w in &waiters[..n] {
        // SAFETY: each of the first n entries names the `wait` word of a live pipe in the
        // region (mapped for the process's life): its PipeInodeInfo starts that far before.
        let pipe = unsafe {
            &*((w.uaddr as usize - core::mem::offset_of!(PipeInodeInfo, wait)) as *const PipeInodeInfo)
        };
        pipe.rd_waiters.fetch_sub(1, Ordering::SeqCst);
        pipe.wr_waiters.fetch_sub(1, Ordering::SeqCst);
    }
    interrupted
}

/// [`poll_wait`]'s sleep as one futex_waitv until `until`: on the first [`POLL_WAIT_SLOTS`]
/// words, and no longer than a short slice when there are more.
pub fn futex_waitv_sleep(waiters: &[sys::FutexWaitv], until: &libc::timespec) -> WaitOutcome {
    let mut until = *until;
    if waiters.len() > POLL_WAIT_SLOTS {
        let short = wait::deadline_after(&libc::timespec { tv_sec: 0, tv_nsec: SHORT_SLICE_NS });
        if (short.tv_sec, short.tv_nsec) < (until.tv_sec, until.tv_nsec) {
            until = short;
        }
    }
    match sys::futex_waitv(&waiters[..waiters.len().min(POLL_WAIT_SLOTS)], &until) {
        Err(libc::ETIMEDOUT) => WaitOutcome::TimedOut,
        Err(libc::EINTR) => WaitOutcome::Interrupted,
        _ => WaitOutcome::Woken,
    }
}

/// `FIONREAD`: bytes queued.
pub fn fionread(region: &Region, h: PipeHandle) -> Result<usize, Errno> {
    let act = enter(region, h)?;
    let _g = lock_pipe(region, act.pipe)?;
    let ring = act.pipe.ring()?;
    let (head, tail) = act.pipe.head_tail();
    Ok((0..head.wrapping_sub(tail))
        .map(|k| PipeBuffer::load(ring.buf(region, tail.wrapping_add(k))).len)
        .sum())
}

/// `F_GETPIPE_SZ`: `max_usage * PAGE_SIZE`.
pub fn get_pipe_size(region: &Region, h: PipeHandle) -> Result<usize, Errno> {
    let act = enter(region, h)?;
    Ok(act.pipe.ring()?.size() as usize * PAGE)
}

/// `account_pipe_buffers`: moves the namespace's count from `old` to `new` pages; the new total.
fn account_pipe_buffers(region: &Region, old: u32, new: u32) -> u64 {
    let upd = |n: u64| (n + new as u64).saturating_sub(old as u64);
    let prev = ns(region).user_bufs.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(upd(n)));
    upd(prev.unwrap_or(0))
}

/// `round_pipe_size`: 0 for sizes above 2^31.
pub fn round_pipe_size(size: u32) -> u32 {
    if size > 1 << 31 {
        0
    } else if size < PAGE as u32 {
        PAGE as u32
    } else {
        size.next_power_of_two()
    }
}

/// `F_SETPIPE_SZ` (`pipe_set_size`): `arg` is fcntl's argument (truncated to an unsigned int,
/// as the kernel does); `cap_sys_resource` whether the caller has CAP_SYS_RESOURCE. Returns
/// the new size in bytes.
pub fn set_pipe_size(
    region: &Region,
    h: PipeHandle,
    arg: usize,
    cap_sys_resource: bool,
) -> Result<usize, Errno> {
    let size = round_pipe_size(arg as u32);
    let nr_slots = size >> 12;
    if nr_slots == 0 {
        return Err(EINVAL);
    }
    let act = enter(region, h)?;
    let pipe = act.pipe;
    let _g = lock_for_write(region, pipe)?;
    let max_usage = pipe.ring()?.size();
    let limits = region.header().limits;
    // Growing beyond pipe-max-size takes CAP_SYS_RESOURCE; shrinking is always allowed.
    if nr_slots > max_usage && size > limits.pipe_max_size && !cap_sys_resource {
        return Err(EPERM);
    }
    let accounted = pipe.nr_accounted.load(Ordering::Relaxed);
    let user_bufs = account_pipe_buffers(region, accounted, nr_slots);
    let revert = || account_pipe_buffers(region, nr_slots, accounted);
    if nr_slots > max_usage
        && (too_many_hard(region, user_bufs) || too_many_soft(region, user_bufs))
        && !cap_sys_resource
        && sys::effective_caps() & CAP_SYS_ADMIN == 0
    {
        revert();
        return Err(EPERM);
    }
    if let Err(e) = pipe_resize_ring(region, pipe, nr_slots) {
        revert();
        return Err(e);
    }
    pipe.nr_accounted.store(nr_slots, Ordering::Relaxed);
    Ok(nr_slots as usize * PAGE)
}

/// `pipe_resize_ring`: moves the queued buffers to a ring of `nr_slots`, EBUSY if they do not
/// fit. Each buffer keeps its ring index (head and tail do not change), so the switch is one
/// store of the descriptor. The caller holds the pipe lock.
fn pipe_resize_ring(region: &Region, pipe: &PipeInodeInfo, nr_slots: u32) -> Result<(), Errno> {
    let old = pipe.ring()?;
    let (head, tail) = pipe.head_tail();
    let n = head.wrapping_sub(tail);
    if nr_slots < n {
        return Err(EBUSY);
    }
    if nr_slots == old.size() {
        return Ok(());
    }
    let shift = nr_slots.trailing_zeros();
    let new = {
        let _g = ns_lock(region)?;
        let note = |run| pipe.resize_new.store(Ring { run, shift }.pack(), Ordering::Release);
        // Its data pages are populated as buffers move in and writers reach them (`backed`).
        // SAFETY: namespace lock held.
        let (run, _) =
            unsafe { pool(region).alloc(region, Ring::order_for(shift), Ring::meta_pages(shift), note) }
                .ok_or(ENOMEM)?;
        Ring { run, shift }
    };
    // The pages the queued buffers move into get their memory first; without room the
    // resize fails (ENOMEM, as the kernel's allocation would) and the new run goes.
    let moved = (0..n).map(|k| tail.wrapping_add(k));
    // Their slots are consecutive, but for one wrap at the ring's end: one call per stretch.
    let first = tail & (nr_slots - 1);
    let stretches = [(first, n.min(nr_slots - first)), (0, n - n.min(nr_slots - first))];
    if stretches.iter().filter(|&&(_, len)| len > 0).any(|&(slot, len)| {
        let off = new.page(region, slot) as u64 - region.base() as u64;
        populate_ring(region, off, len as u64 * PAGE_SIZE).is_err()
    }) {
        pipe.resize_new.store(0, Ordering::Release);
        free_run(region, new.pack(), false, 0)?;
        return Err(ENOMEM);
    }
    for i in moved {
        let b = PipeBuffer::load(old.buf(region, i));
        // From the page's start: a socket's buffer has its UnixCb there, before the data.
        // SAFETY: both pages are ours (the new run is not published yet); offset + len <= PAGE.
        unsafe {
            core::ptr::copy_nonoverlapping(
                old.page(region, i),
                new.page(region, i),
                (b.offset + b.len).min(PAGE),
            );
        }
        new.buf(region, i).store(b.pack(), Ordering::Relaxed);
    }
    pipe.resize_old.store(old.pack(), Ordering::Release);
    let old_have = Ring::meta_pages(old.shift) + pipe.backed.swap(0, Ordering::Relaxed) as u64;
    pipe.ring.store(new.pack(), Ordering::Release);
    pipe.resize_new.store(0, Ordering::Release);
    let old_desc = pipe.resize_old.swap(0, Ordering::AcqRel);
    free_run(region, old_desc, false, old_have)?;
    // This might have made more room for writers.
    pipe.wake(WRITERS, region);
    Ok(())
}

/// One live pipe, for `ipcshim status`.
#[derive(Clone, Copy, Debug)]
pub struct PipeInfo {
    pub handle: PipeHandle,
    pub dev: u64,
    pub ino: u64,
    /// Ring size in bytes (F_GETPIPE_SZ).
    pub size: usize,
    /// Bytes queued (FIONREAD), read without the pipe's lock.
    pub queued: usize,
}

/// Totals for `ipcshim status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PipeStats {
    pub live: u32,
    pub queued_bytes: u64,
    /// Pages of the page area held by rings (including their buffer tables).
    pub ring_pages: u64,
    pub gc_runs: u64,
    pub gc_freed: u64,
}

/// Every live pipe.
pub fn snapshot(region: &Region) -> Result<Vec<PipeInfo>, Errno> {
    let _g = ns_lock(region)?;
    let mut out = Vec::new();
    for idx in 0..ns(region).hwm.load(Ordering::Relaxed).min(PIPE_MAX) {
        let pipe = slot(region, idx);
        if pipe.ident.load(Ordering::Acquire) & 0xff != LIVE {
            continue;
        }
        let Ok(ring) = pipe.ring() else { continue };
        let (head, tail) = pipe.head_tail();
        let queued = (0..head.wrapping_sub(tail).min(ring.size()))
            .map(|k| PipeBuffer::load(ring.buf(region, tail.wrapping_add(k))).len)
            .sum();
        out.push(PipeInfo {
            handle: handle_of(region, idx),
            dev: pipe.dev.load(Ordering::Relaxed),
            ino: pipe.ino.load(Ordering::Relaxed),
            size: ring.size() as usize * PAGE,
            queued,
        });
    }
    Ok(out)
}

/// Totals over every live pipe.
pub fn stats(region: &Region) -> Result<PipeStats, Errno> {
    let pipes = snapshot(region)?;
    let ns = ns(region);
    Ok(PipeStats {
        live: pipes.len() as u32,
        queued_bytes: pipes.iter().map(|p| p.queued as u64).sum(),
        ring_pages: ns.pool.pages_in_use.load(Ordering::Relaxed),
        gc_runs: ns.gc_runs.load(Ordering::Relaxed),
        gc_freed: ns.gc_freed.load(Ordering::Relaxed),
    })
}

#[cfg(test)]
mod layout_tests {
    use super::PipeInodeInfo;
    use core::mem::offset_of;

    /// A receiver that takes a datagram changes its sender's charge lock and charge: they share
    /// the cache lines of the ring's indices and of `mutex`, which it changes anyway when it
    /// answers, not those of `sock` and `peer`, which the sender reads on every call.
    #[test]
    fn charge_beside_the_ring() {
        let line = |off: usize| off / 64;
        let lock = offset_of!(PipeInodeInfo, wmem_lock);
        let lines = [line(lock), line(lock + 39), line(offset_of!(PipeInodeInfo, wmem))];
        let busy = [line(offset_of!(PipeInodeInfo, mutex) + 39), line(offset_of!(PipeInodeInfo, head_tail))];
        assert!(lines.iter().all(|l| busy.contains(l)), "{lines:?} {busy:?}");
        assert_ne!(line(offset_of!(PipeInodeInfo, sock)), line(offset_of!(PipeInodeInfo, wmem)));
        assert_eq!(line(offset_of!(PipeInodeInfo, head_tail)), line(offset_of!(PipeInodeInfo, wr_waiters)));
    }
}
