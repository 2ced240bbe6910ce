//! The shim's eventpoll (`fs/eventpoll.c`): epoll instances (`struct eventpoll`) and their
//! interests in shim objects (`struct epitem`), with the kernel's ready list.
//!
//! The kernel's instance stays the epoll fd and holds every interest too (the shim's as its
//! placeholder, IN/OUT masked off, with a token naming the item as its data: see the shim's
//! `epoll`), so membership, epoll_ctl's errno and the placeholders' HUP/ERR stay the kernel's.
//! What the kernel cannot see, a shim object becoming readable or writable, reaches the
//! instance as the kernel's does: the object's wait queue ([`crate::epoll_wq`]) lists the items
//! watching it, and a writer, reader or closer puts each on its instance's ready list and
//! wakes one sleeper (`ep_poll_callback`). A wait walks only the ready list
//! (`ep_send_events`): a level-triggered item goes back to its tail when reported, an
//! edge-triggered one waits for the next wake-up, a ONESHOT one is disabled.
//!
//! Instances, items and wait-queue chunks live in tables of the region, claimed with one
//! compare-and-swap each, so their number is bounded only by the tables (a full one leaves the
//! interest to the kernel). Locks per instance, as the kernel's: `mtx` (`ep->mtx`) serialises
//! epoll_ctl and the collection of events; `lock` (`ep->lock`) guards the lists and is taken
//! briefly by wakers, who only push onto the overflow chain (`ovflist`), published by one store.
//! A holder killed under `lock` leaves at worst a flag the next taker clears; one killed under
//! `mtx` leaves a ready list the next taker rebuilds from the items' flags, and reserved items
//! it frees: every published interest stays whole.

use crate::epoll_wq::{self, Wq};
use crate::lock::{LockGuard, RobustMutex};
use crate::region::{EPOLL_OFF, PIPE_MAX, Region};
use crate::sys::{self, Errno};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

/// Instances, items and wait-queue chunks the tables hold.
pub const EP_INSTS: u32 = 1 << 16;
pub const EP_ITEMS: u32 = 1 << 20;
pub const WQ_CHUNKS: u32 = 1 << 16;

/// Returned when a table is full: the caller leaves the interest to the kernel. Not an errno.
pub const TABLE_FULL: Errno = 1 << 21;

/// Slot states: the low byte of `ident`, the generation above it.
const FREE: u64 = 0;
const RESERVED: u64 = 1;
const LIVE: u64 = 2;
/// Taken by a reservation still filling it in: ignored by every scan (one whose taker died is
/// lost to the table).
const CLAIMED: u64 = 3;
/// Item generations wrap here (a token carries 28 bits of one).
const GEN_MASK: u32 = (1 << 28) - 1;

/// `cfg` flag above the 32 event bits: EPOLLONESHOT fired, nothing is reported until a MOD
/// (the kernel's `events &= EP_PRIVATE_BITS`).
pub const DISABLED: u64 = 1 << 32;

/// An item's list state (`st`).
/// On the ready list, or on the collecting waiter's private list.
const ONLIST: u32 = 1;
/// On the overflow chain (queued by a waker, not yet moved to the ready list).
const ONOVF: u32 = 2;
/// An fd of its object was closed: the waiter asks the kernel whether the interest is still there.
const VERIFY: u32 = 4;
/// Queued by a wake-up (not only to be verified): an item reports only then.
const WOKEN: u32 = 8;
/// A collector took the item with its WOKEN (a wake-up meanwhile sets WOKEN again); one that
/// dies before it is done leaves this for the repair, which makes it WOKEN again.
const TAKEN: u32 = 16;

/// Instance flags.
/// Known to more than one process (forked, passed, or found by another): only the collector
/// may free it.
pub const SHARED: u32 = 1;
/// The next wait asks the kernel for its events even if the set has no kernel fds.
const KCHECK: u32 = 2;
/// A token of its items is in its kernel epoll fd, where others can find the instance.
const FINDABLE: u32 = 4;

/// The epoll part of the region.
#[repr(C)]
pub struct EpollNs {
    /// Bumped at every instance creation, and again once its first token is in its kernel
    /// epoll fd ([`note_findable`]): a process that found no instance behind an epoll fd looks
    /// again only once it moved.
    pub created: AtomicU32,
    /// Live instances.
    pub live: AtomicU32,
    inst_hint: AtomicU32,
    inst_hwm: AtomicU32,
    item_hint: AtomicU32,
    item_hwm: AtomicU32,
    pub(crate) chunk_hint: AtomicU32,
    pub(crate) chunk_hwm: AtomicU32,
    /// Orders items on wait queues (exclusive ones are woken in the order they were added).
    pub(crate) wq_seq: AtomicU64,
}

/// `struct eventpoll`.
#[repr(C, align(64))]
pub struct EpInst {
    ident: AtomicU64,
    /// Whether the mutexes of this slot were initialised (once per slot, never again: a waker
    /// holding a stale reference may be taking `lock` while the slot is reused).
    init: AtomicU32,
    /// The process that made it, and how many processes it had started then (see
    /// [`EpInst::exclusive_to`]).
    owner: AtomicU32,
    owner_forks: AtomicU32,
    flags: AtomicU32,
    /// Interests in kernel fds (a closed one may still be counted: then only slower).
    pub kernel_items: AtomicU32,
    /// Alternates whether the kernel's or the shim's ready events come first.
    pub turn: AtomicU32,
    nitems: AtomicU32,
    /// A collection is in progress (`ep->ovflist` active): wakers only chain.
    scanning: AtomicU32,
    /// Kernel fetches that returned everything the kernel had (see [`ItemView::kernel_bits`]).
    pub fetch_epoch: AtomicU32,
    /// CLOCK_BOOTTIME of the creation, in ns (compared with process start times).
    born: AtomicU64,
    /// CLOCK_MONOTONIC ns until which an exec may close an end one of its items watches: the
    /// waiter sleeps where the kernel can wake it (see the shim's `epoll`).
    pub exec_until: AtomicU64,
    rdl_seq: AtomicU64,
    mtx: RobustMutex,
    lock: RobustMutex,
    /// Item slot + 1 of the ready list's ends and of the overflow chain's head; 0 for none.
    rdl_head: AtomicU32,
    rdl_tail: AtomicU32,
    ovf_head: AtomicU32,
    /// Bumped by a waker that finds sleepers; they sleep on it (`ep->wq`).
    pub word: AtomicU32,
    sleepers: AtomicU32,
    /// The process that last counted itself among the sleepers (see [`EpInst::wake`]).
    sleeper: AtomicU32,
    /// The same for pollers of the epoll fd itself (`ep->poll_wait`): poll, select.
    pub poll_word: AtomicU32,
    poll_sleepers: AtomicU32,
    /// Items of other instances watching this one (nested epoll sets).
    pub(crate) watch: epoll_wq::WatchList,
}

/// `struct epitem`.
#[repr(C, align(64))]
pub struct EpItem {
    ident: AtomicU64,
    st: AtomicU32,
    /// The instance's slot.
    inst: AtomicU32,
    /// The fd number it was added with: the kernel keys an interest by (file, fd).
    pub fd: AtomicU32,
    sel: AtomicU32,
    /// What it watches (the shim's encoding).
    pub target: AtomicU64,
    /// The wait queue it is on ([`Wq::bits`]).
    pub(crate) wq: AtomicU64,
    /// Events (low 32 bits) | DISABLED, and the data: double-buffered, `sel` picks.
    cfg: [AtomicU64; 2],
    data: [AtomicU64; 2],
    /// What the kernel last reported for the placeholder's half (HUP, ERR, RDHUP…), and the
    /// instance's fetch epoch then.
    kbits: AtomicU32,
    kepoch: AtomicU32,
    ovf_next: AtomicU32,
    rdl_next: AtomicU32,
    rdl_prev: AtomicU32,
    /// Which of its object's wake-ups reach it (`crate::pipe::READERS`, `WRITERS`): a pipe's
    /// read end waits on `rd_wait`, its write end on `wr_wait`, a socket on both.
    pub(crate) sides: AtomicU32,
    /// Place on its wait queue.
    pub(crate) wq_seq: AtomicU64,
    /// When it joined the ready list (its order, rebuilt after a crash).
    ready_seq: AtomicU64,
    /// The events its kernel half was last given (see [`ItemView::registered`]): KREG_KNOWN |
    /// KREG_NARROW? | events; 0 while unknown.
    kreg: AtomicU64,
}

const KREG_KNOWN: u64 = 1 << 32;
const KREG_NARROW: u64 = 1 << 33;

const _: () = assert!(size_of::<EpItem>() == 128);

/// Names an instance: slot and generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstRef {
    pub idx: u32,
    pub generation: u32,
}

impl InstRef {
    /// 48 bits: generation << 16 | slot.
    pub fn to_bits(self) -> u64 {
        (self.generation as u64) << 16 | self.idx as u64
    }

    pub fn from_bits(b: u64) -> InstRef {
        InstRef { idx: (b & 0xffff) as u32, generation: (b >> 16) as u32 }
    }
}

const _: () = assert!(EP_INSTS <= 1 << 16);

/// Names an item: slot and generation (28 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemRef {
    pub idx: u32,
    pub generation: u32,
}

/// A token's top 16 bits: no user pointer has them (not canonical).
const TOKEN_MAGIC: u64 = 0xe90c;

impl ItemRef {
    /// The kernel-side data of the item: magic | slot (20) | generation (28).
    pub fn token(self) -> u64 {
        TOKEN_MAGIC << 48 | (self.idx as u64) << 28 | (self.generation & GEN_MASK) as u64
    }

    pub fn from_token(t: u64) -> Option<ItemRef> {
        (t >> 48 == TOKEN_MAGIC)
            .then_some(ItemRef { idx: (t >> 28 & 0xf_ffff) as u32, generation: t as u32 & GEN_MASK })
    }

    pub(crate) fn to_bits(self) -> u64 {
        (self.generation as u64) << 32 | (self.idx as u64 + 1)
    }

    pub(crate) fn from_bits(b: u64) -> Option<ItemRef> {
        let idx = (b as u32).checked_sub(1)?;
        (idx < EP_ITEMS).then_some(ItemRef { idx, generation: (b >> 32) as u32 })
    }
}

fn ident(generation: u32, state: u64) -> u64 {
    (generation as u64) << 8 | state
}

/// Where the parts of the epoll area start.
const INSTS_OFF: u64 = 4096;
const ITEMS_OFF: u64 = INSTS_OFF + EP_INSTS as u64 * size_of::<EpInst>() as u64;
pub(crate) const CHUNKS_OFF: u64 = ITEMS_OFF + EP_ITEMS as u64 * size_of::<EpItem>() as u64;
/// Which wait queue each chunk belongs to (its `Wq::bits`), 0 when free.
pub(crate) const CHUNK_OWNERS_OFF: u64 =
    CHUNKS_OFF + WQ_CHUNKS as u64 * size_of::<epoll_wq::WatchList>() as u64;
/// The wait queues of pipe and socket objects, by slot.
pub(crate) const PIPE_WQ_OFF: u64 = CHUNK_OWNERS_OFF + WQ_CHUNKS as u64 * 8;
pub const AREA_SIZE: u64 = PIPE_WQ_OFF + PIPE_MAX as u64 * size_of::<epoll_wq::WatchList>() as u64;
const _: () = assert!(size_of::<EpollNs>() as u64 <= INSTS_OFF);

/// A token of instance `o`'s is now in its kernel epoll fd: at its first, other processes and
/// threads can find the instance, and one that looked before (after the creation, or when it
/// was made as an inner set) and cached that there was none looks again.
pub fn note_findable(r: &Region, o: &EpInst) {
    if o.flags.fetch_or(FINDABLE, SeqCst) & FINDABLE == 0 {
        ns(r).created.fetch_add(1, SeqCst);
    }
}

pub fn ns(r: &Region) -> &EpollNs {
    // SAFETY: the epoll area starts with the EpollNs; every field is an atomic.
    unsafe { r.at::<EpollNs>(EPOLL_OFF) }
}

fn inst_off(idx: u32) -> u64 {
    EPOLL_OFF + INSTS_OFF + idx as u64 * size_of::<EpInst>() as u64
}

fn item_off(idx: u32) -> u64 {
    EPOLL_OFF + ITEMS_OFF + idx as u64 * size_of::<EpItem>() as u64
}

/// Instance slot `idx`, which a claim reserved (below `inst_hwm`).
fn inst_at(r: &Region, idx: u32) -> &EpInst {
    debug_assert!(idx < EP_INSTS);
    // SAFETY: idx < EP_INSTS: inside the epoll area, which the region maps; atomics and
    // process-shared mutexes only.
    unsafe { r.at::<EpInst>(inst_off(idx)) }
}

/// Item slot `idx`, which a claim reserved (below `item_hwm`).
pub(crate) fn item_at(r: &Region, idx: u32) -> &EpItem {
    debug_assert!(idx < EP_ITEMS);
    // SAFETY: idx < EP_ITEMS: inside the epoll area, which the region maps; atomics only.
    unsafe { r.at::<EpItem>(item_off(idx)) }
}

/// The live instance `h`, if it still is.
pub fn inst(r: &Region, h: InstRef) -> Option<&EpInst> {
    (h.idx < ns(r).inst_hwm.load(SeqCst).min(EP_INSTS))
        .then(|| inst_at(r, h.idx))
        .filter(|o| o.ident.load(SeqCst) == ident(h.generation, LIVE))
}

/// The wait queue of instance slot `idx` (the sets watching it).
pub(crate) fn inst_watch(r: &Region, idx: u32) -> &epoll_wq::WatchList {
    &inst_at(r, idx).watch
}

fn inst_ref(r: &Region, idx: u32) -> InstRef {
    InstRef { idx, generation: (inst_at(r, idx).ident.load(SeqCst) >> 8) as u32 }
}

/// Claims a free slot of a table of `n` whose idents `ident_at` gives, cyclically from `hint`,
/// in `state` with the next generation (within `mask`): its index and generation.
fn claim<'a>(
    hint: &AtomicU32,
    hwm: &AtomicU32,
    n: u32,
    ident_at: impl Fn(u32) -> &'a AtomicU64,
    reserve: impl Fn(u32) -> bool,
    mask: u32,
    state: u64,
) -> Option<(u32, u32)> {
    let start = hint.load(SeqCst);
    for k in 0..n {
        let idx = (start + k) % n;
        // Slots are reserved as they are first looked at (claims go in order from the hint):
        // none is read before its page has its memory.
        if !reserve(idx) {
            return None;
        }
        let id = ident_at(idx).load(SeqCst);
        if id & 0xff != FREE {
            continue;
        }
        let generation = ((id >> 8) as u32).wrapping_add(1) & mask;
        if ident_at(idx).compare_exchange(id, ident(generation, state), SeqCst, SeqCst).is_ok() {
            hwm.fetch_max(idx + 1, SeqCst);
            hint.store((idx + 1) % n, SeqCst);
            return Some((idx, generation));
        }
    }
    None
}

/// A new instance, made by this process, which has started `forks` processes so far.
pub fn create(r: &Region, forks: u32) -> Result<InstRef, Errno> {
    let ns = ns(r);
    let ident_at = |idx| &inst_at(r, idx).ident;
    let reserve = |idx| r.reserve(inst_off(idx), size_of::<EpInst>() as u64).is_ok();
    let (idx, generation) =
        claim(&ns.inst_hint, &ns.inst_hwm, EP_INSTS, ident_at, reserve, u32::MAX, RESERVED)
            .ok_or(TABLE_FULL)?;
    let o = inst_at(r, idx);
    if o.init.load(SeqCst) == 0 {
        // SAFETY: never initialised, and ours: nobody else can have a reference to it.
        unsafe {
            RobustMutex::init(&o.mtx as *const RobustMutex as *mut RobustMutex);
            RobustMutex::init(&o.lock as *const RobustMutex as *mut RobustMutex);
        }
        o.init.store(1, SeqCst);
    }
    for w in [&o.kernel_items, &o.turn, &o.nitems, &o.scanning, &o.fetch_epoch, &o.rdl_head, &o.rdl_tail] {
        w.store(0, SeqCst);
    }
    for w in [&o.ovf_head, &o.sleepers, &o.sleeper, &o.poll_sleepers] {
        w.store(0, SeqCst);
    }
    o.exec_until.store(0, SeqCst);
    o.flags.store(KCHECK, SeqCst);
    o.owner.store(sys::getpid() as u32, SeqCst);
    o.owner_forks.store(forks, SeqCst);
    let t = sys::clock_gettime(libc::CLOCK_BOOTTIME);
    o.born.store(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64, SeqCst);
    epoll_wq::reset(r, Wq::Inst(idx));
    o.ident.store(ident(generation, LIVE), SeqCst);
    ns.live.fetch_add(1, SeqCst);
    ns.created.fetch_add(1, SeqCst);
    Ok(InstRef { idx, generation })
}

impl EpInst {
    /// Marks it known to another process.
    pub fn set_shared(&self) {
        self.flags.fetch_or(SHARED, SeqCst);
    }

    pub fn shared(&self) -> bool {
        self.flags.load(SeqCst) & SHARED != 0
    }

    /// Whether only the calling process (pid, having started `forks` processes) can hold it:
    /// it made it, started no process since, and nobody else was told of it.
    pub fn exclusive_to(&self, pid: u32, forks: u32) -> bool {
        !self.shared() && self.owner.load(SeqCst) == pid && self.owner_forks.load(SeqCst) == forks
    }

    /// Whether a waiter or poller is asleep on it (its epoll fd is in use in another thread).
    pub fn has_sleepers(&self) -> bool {
        self.sleepers.load(SeqCst) != 0 || self.poll_sleepers.load(SeqCst) != 0
    }

    pub fn born(&self) -> u64 {
        self.born.load(SeqCst)
    }

    /// The next wait asks the kernel for its events.
    pub fn set_kcheck(&self) {
        self.flags.fetch_or(KCHECK, SeqCst);
    }

    pub fn take_kcheck(&self) -> bool {
        self.flags.fetch_and(!KCHECK, SeqCst) & KCHECK != 0
    }

    /// Whether the ready list or the overflow chain holds anything, or a collection is in
    /// progress (`ep_events_available`).
    pub fn events_available(&self) -> bool {
        self.rdl_head.load(SeqCst) != 0 || self.ovf_head.load(SeqCst) != 0 || self.scanning.load(SeqCst) != 0
    }

    /// A waiter of process `pid` is about to sleep on `word`: counted first, then the value it
    /// sleeps on.
    pub fn sleep_prepare(&self, pid: u32) -> u32 {
        self.sleeper.store(pid, SeqCst);
        self.sleepers.fetch_add(1, SeqCst);
        self.word.load(SeqCst)
    }

    pub fn sleep_done(&self) {
        self.sleepers.fetch_sub(1, SeqCst);
    }

    /// The same for a poller of the epoll fd.
    pub fn poll_prepare(&self) -> u32 {
        self.poll_sleepers.fetch_add(1, SeqCst);
        self.poll_word.load(SeqCst)
    }

    pub fn poll_done(&self) {
        self.poll_sleepers.fetch_sub(1, SeqCst);
    }

    /// Wakes one sleeper (`wake_up(&ep->wq)`) and every poller; whether a sleeper was there.
    /// For an `exclusive` wake-up, a sleeper that no futex wait holds is taken at its word (one
    /// between two looks at the set sees the new word) unless it is the process of a killed
    /// waiter, still counted: the kernel freed that process's set as it exited, so its wake-up
    /// goes on to the next set's.
    pub(crate) fn wake(&self, exclusive: bool) -> bool {
        // The caller's change (some made with release stores, under a lock) before the look at
        // the sleepers, who count themselves before they look at it (`sleep_prepare`).
        sys::full_fence();
        let mut woke = self.sleepers.load(SeqCst) != 0;
        if woke {
            self.word.fetch_add(1, SeqCst);
            let n = sys::futex(self.word.as_ptr(), libc::FUTEX_WAKE, 1, core::ptr::null(), 0, 0);
            if exclusive && n == Ok(0) {
                woke = crate::proc::alive(self.sleeper.load(SeqCst) as i32, 0);
            }
        }
        if self.poll_sleepers.load(SeqCst) != 0 {
            self.poll_word.fetch_add(1, SeqCst);
            let _ = sys::futex(
                self.poll_word.as_ptr(),
                libc::FUTEX_WAKE,
                i32::MAX as u32,
                core::ptr::null(),
                0,
                0,
            );
        }
        woke
    }
}

/// The instance's `mtx` held: epoll_ctl and the collection of events, one at a time.
pub struct Ctl<'a> {
    pub r: &'a Region,
    pub h: InstRef,
    pub inst: &'a EpInst,
    _g: LockGuard<'a>,
}

/// Takes instance `h`'s `mtx`; after a holder died, rebuilds what it left half done. EBADF
/// when the instance is gone.
pub fn ctl(r: &Region, h: InstRef) -> Result<Ctl<'_>, Errno> {
    let o = inst(r, h).ok_or(libc::EBADF)?;
    let g = o.mtx.lock_spinning(5_000, 16).map_err(|_| libc::ENOMEM)?;
    let c = Ctl { r, h, inst: o, _g: g };
    if o.ident.load(SeqCst) != ident(h.generation, LIVE) {
        return Err(libc::EBADF);
    }
    if c._g.recovered {
        r.header().counters.lock_recoveries.fetch_add(1, SeqCst);
        c.rebuild();
    }
    Ok(c)
}

/// The instance's `lock` held.
struct Lists<'a> {
    _g: LockGuard<'a>,
}

fn lists<'a>(r: &'a Region, idx: u32, o: &'a EpInst) -> Lists<'a> {
    loop {
        match o.lock.lock_spinning(5_000, 16) {
            Ok(g) => {
                if g.recovered {
                    r.header().counters.lock_recoveries.fetch_add(1, SeqCst);
                    fix_overflow(r, idx, o);
                }
                return Lists { _g: g };
            }
            // Only memory that is not a mutex fails; the slot was initialised before use.
            Err(_) => core::hint::spin_loop(),
        }
    }
}

/// A waker died under `lock`: an item it flagged but never chained is unflagged (lock held).
fn fix_overflow(r: &Region, idx: u32, o: &EpInst) {
    each_item_of(r, idx, |_, it| {
        it.st.fetch_and(!ONOVF, SeqCst);
    });
    let mut at = o.ovf_head.load(SeqCst);
    let mut n = 0;
    while at != 0 && n < EP_ITEMS {
        let it = item_at(r, at - 1);
        it.st.fetch_or(ONOVF, SeqCst);
        at = it.ovf_next.load(SeqCst);
        n += 1;
    }
}

/// Calls `f` with every reserved or live item of instance slot `idx` (a scan of the table:
/// only for teardown and crash repair).
fn each_item_of(r: &Region, idx: u32, mut f: impl FnMut(ItemRef, &EpItem)) {
    for k in 0..ns(r).item_hwm.load(SeqCst).min(EP_ITEMS) {
        let it = item_at(r, k);
        let id = it.ident.load(SeqCst);
        if matches!(id & 0xff, RESERVED | LIVE) && it.inst.load(SeqCst) == idx {
            f(ItemRef { idx: k, generation: (id >> 8) as u32 }, it);
        }
    }
}

impl Ctl<'_> {
    /// A holder of `mtx` died: its private list is lost and its reserved items are orphans.
    /// The ready list is made again from the items' flags, in the order they joined it.
    fn rebuild(&self) {
        let (r, idx, o) = (self.r, self.h.idx, self.inst);
        let _l = lists(r, idx, o);
        o.scanning.store(0, SeqCst);
        o.rdl_head.store(0, SeqCst);
        o.rdl_tail.store(0, SeqCst);
        let mut orphans = 0u32;
        each_item_of(r, idx, |i, it| {
            if it.ident.load(SeqCst) & 0xff == RESERVED {
                orphans += 1;
                return;
            }
            // One a dead collector had taken is still to be collected.
            if it.st.load(SeqCst) & TAKEN != 0 {
                it.st.fetch_or(WOKEN, SeqCst);
                it.st.fetch_and(!TAKEN, SeqCst);
            }
            if it.st.load(SeqCst) & ONLIST == 0 {
                return;
            }
            // Inserted in ready_seq order (a repair only: quadratic is fine).
            let seq = it.ready_seq.load(SeqCst);
            let mut before = o.rdl_head.load(SeqCst);
            while before != 0 && item_at(r, before - 1).ready_seq.load(SeqCst) <= seq {
                before = item_at(r, before - 1).rdl_next.load(SeqCst);
            }
            self.link_before(i.idx, before);
        });
        if orphans > 0 {
            drop(_l);
            self.remove_where(|it| it.ident.load(SeqCst) & 0xff == RESERVED);
        }
        o.set_kcheck();
    }

    /// Links item slot `i` into the ready list before slot + 1 `before` (0: at the tail).
    fn link_before(&self, i: u32, before: u32) {
        let (r, o) = (self.r, self.inst);
        let it = item_at(r, i);
        let prev =
            if before == 0 { o.rdl_tail.load(SeqCst) } else { item_at(r, before - 1).rdl_prev.load(SeqCst) };
        it.rdl_next.store(before, SeqCst);
        it.rdl_prev.store(prev, SeqCst);
        if prev == 0 {
            o.rdl_head.store(i + 1, SeqCst);
        } else {
            item_at(r, prev - 1).rdl_next.store(i + 1, SeqCst);
        }
        if before == 0 {
            o.rdl_tail.store(i + 1, SeqCst);
        } else {
            item_at(r, before - 1).rdl_prev.store(i + 1, SeqCst);
        }
        it.ready_seq.store(o.rdl_seq.fetch_add(1, SeqCst), SeqCst);
    }

    /// The slot + 1 after slot + 1 `at` on the ready list, or its head for `at` 0.
    fn after(&self, at: u32) -> u32 {
        if at == 0 { self.inst.rdl_head.load(SeqCst) } else { item_at(self.r, at - 1).rdl_next.load(SeqCst) }
    }

    fn unlink(&self, i: u32) {
        let (r, o) = (self.r, self.inst);
        let it = item_at(r, i);
        let (prev, next) = (it.rdl_prev.load(SeqCst), it.rdl_next.load(SeqCst));
        if prev == 0 {
            o.rdl_head.store(next, SeqCst);
        } else {
            item_at(r, prev - 1).rdl_next.store(next, SeqCst);
        }
        if next == 0 {
            o.rdl_tail.store(prev, SeqCst);
        } else {
            item_at(r, next - 1).rdl_prev.store(prev, SeqCst);
        }
        it.rdl_next.store(0, SeqCst);
        it.rdl_prev.store(0, SeqCst);
    }

    /// Reserves an item for `target` added as `fd`, on wait queue `wq` for its wake-ups of
    /// `sides` (its token goes to the kernel next). TABLE_FULL when the item table or the wait
    /// queue has no room.
    pub fn reserve(&self, target: u64, fd: i32, wq: Wq, sides: u32) -> Result<ItemRef, Errno> {
        let (r, ns) = (self.r, ns(self.r));
        let ident_at = |idx| &item_at(r, idx).ident;
        let reserve = |idx| r.reserve(item_off(idx), size_of::<EpItem>() as u64).is_ok();
        let (idx, generation) =
            claim(&ns.item_hint, &ns.item_hwm, EP_ITEMS, ident_at, reserve, GEN_MASK, CLAIMED)
                .ok_or(TABLE_FULL)?;
        let it = item_at(r, idx);
        it.inst.store(self.h.idx, SeqCst);
        it.st.store(0, SeqCst);
        it.fd.store(fd as u32, SeqCst);
        it.target.store(target, SeqCst);
        it.wq.store(wq.bits(), SeqCst);
        it.sides.store(sides, SeqCst);
        it.sel.store(0, SeqCst);
        it.kbits.store(0, SeqCst);
        it.kepoch.store(0, SeqCst);
        it.kreg.store(0, SeqCst);
        for w in [&it.ovf_next, &it.rdl_next, &it.rdl_prev] {
            w.store(0, SeqCst);
        }
        for c in &it.cfg {
            c.store(0, SeqCst);
        }
        it.wq_seq.store(ns.wq_seq.fetch_add(1, SeqCst), SeqCst);
        it.ident.store(ident(generation, RESERVED), SeqCst);
        let i = ItemRef { idx, generation };
        if epoll_wq::register(r, wq, i).is_err() {
            it.ident.store(ident(generation, FREE), SeqCst);
            return Err(TABLE_FULL);
        }
        self.inst.nitems.fetch_add(1, SeqCst);
        Ok(i)
    }

    /// Publishes a reserved item with its events and data, and queues it if `ready` says its
    /// target is ready now (`ep_insert`: asked once live, so a wake-up before that is seen by
    /// `ready` and one after it queues the item itself); the kernel is asked once too.
    pub fn publish(&self, i: ItemRef, events: u32, data: u64, ready: impl FnOnce(&ItemView<'_>) -> bool) {
        let Some(it) = item(self.r, i, RESERVED) else { return };
        it.cfg[0].store(events as u64, SeqCst);
        it.data[0].store(data, SeqCst);
        it.ident.store(ident(i.generation, LIVE), SeqCst);
        self.inst.set_kcheck();
        self.queue_if(i, ready);
    }

    /// A MOD: new events and data (one store publishes them), ONESHOT re-armed, queued if
    /// `ready` (`ep_modify`).
    pub fn modify(&self, i: ItemRef, events: u32, data: u64, ready: impl FnOnce(&ItemView<'_>) -> bool) {
        self.modify_as(i, events, data, true, ready);
    }

    /// A MOD whose kernel half is the one the kernel already has (not asked of it, see
    /// `shim::epoll::ctl`): what the kernel reported for the placeholder stays true.
    pub fn modify_served(
        &self,
        i: ItemRef,
        events: u32,
        data: u64,
        ready: impl FnOnce(&ItemView<'_>) -> bool,
    ) {
        self.modify_as(i, events, data, false, ready);
    }

    fn modify_as(
        &self,
        i: ItemRef,
        events: u32,
        data: u64,
        kernel: bool,
        ready: impl FnOnce(&ItemView<'_>) -> bool,
    ) {
        let Some(it) = item(self.r, i, LIVE) else { return };
        let sel = it.sel.load(SeqCst) as usize & 1;
        it.cfg[sel ^ 1].store(events as u64, SeqCst);
        it.data[sel ^ 1].store(data, SeqCst);
        it.sel.store((sel ^ 1) as u32, SeqCst);
        if kernel {
            it.kbits.store(0, SeqCst);
            self.inst.set_kcheck();
        }
        self.queue_if(i, ready);
    }

    /// An ADD of the interest live item `i` was until a DEL the kernel has not made yet (see
    /// `shim::epoll::defer_del`): as a new item (`ep_insert`), it leaves the lists and is
    /// queued at the tail if `ready` says so, with new events and data. `kernel`: its kernel
    /// half was given again (what the kernel reported before is forgotten).
    pub fn revive(
        &self,
        i: ItemRef,
        events: u32,
        data: u64,
        kernel: bool,
        ready: impl FnOnce(&ItemView<'_>) -> bool,
    ) {
        let Some(it) = item(self.r, i, LIVE) else { return };
        if it.inst.load(SeqCst) != self.h.idx {
            return;
        }
        {
            let _l = lists(self.r, self.h.idx, self.inst);
            self.unlist(i.idx, it);
        }
        self.modify_as(i, events, data, kernel, ready);
    }

    /// Takes item slot `i` off the ready list and the overflow chain, and clears its list
    /// state (`lock` held).
    fn unlist(&self, i: u32, it: &EpItem) {
        let st = it.st.load(SeqCst);
        if st & ONLIST != 0 && self.inst.scanning.load(SeqCst) == 0 {
            self.unlink(i);
        }
        if st & ONOVF != 0 {
            self.unchain(i);
        }
        it.st.store(0, SeqCst);
    }

    /// Records the events item `i`'s kernel half was just given, and whether it is
    /// `narrowed` (see [`ItemView::registered`]).
    pub fn set_registered(&self, i: ItemRef, events: u32, narrowed: bool) {
        if i.idx < EP_ITEMS && item_at(self.r, i.idx).ident.load(SeqCst) >> 8 == i.generation as u64 {
            let narrow = if narrowed { KREG_NARROW } else { 0 };
            item_at(self.r, i.idx).kreg.store(KREG_KNOWN | narrow | events as u64, SeqCst);
        }
    }

    /// Queues live item `i` at the ready list's tail, waking a sleeper, if `ready` says so.
    fn queue_if(&self, i: ItemRef, ready: impl FnOnce(&ItemView<'_>) -> bool) {
        // The registration just made before the look at the object's state, whose writers
        // (release stores) look for registrations after they write.
        sys::full_fence();
        if view(self.r, i).is_some_and(|v| ready(&v)) && queue(self.r, i, 0) {
            self.inst.wake(false);
        }
    }

    /// Frees an item (reserved or live): off the lists, off its wait queue.
    pub fn remove(&self, i: ItemRef) {
        let r = self.r;
        if i.idx >= EP_ITEMS {
            return;
        }
        let it = item_at(r, i.idx);
        let id = it.ident.load(SeqCst);
        if id >> 8 != i.generation as u64
            || !matches!(id & 0xff, RESERVED | LIVE)
            || it.inst.load(SeqCst) != self.h.idx
        {
            return;
        }
        {
            let _l = lists(r, self.h.idx, self.inst);
            self.unlist(i.idx, it);
            it.ident.store(ident(i.generation, FREE), SeqCst);
        }
        epoll_wq::unregister(r, Wq::from_bits(it.wq.load(SeqCst)), i);
        self.inst.nitems.fetch_sub(1, SeqCst);
    }

    /// Removes every item of the instance `doomed` says (a table scan per 16 of them).
    fn remove_where(&self, doomed: impl Fn(&EpItem) -> bool) {
        loop {
            let mut batch = [None::<ItemRef>; 16];
            let mut n = 0;
            each_item_of(self.r, self.h.idx, |i, it| {
                if n < batch.len() && doomed(it) {
                    batch[n] = Some(i);
                    n += 1;
                }
            });
            for i in batch[..n].iter().flatten() {
                self.remove(*i);
            }
            if n < batch.len() {
                break;
            }
        }
    }

    /// Takes item slot `i` off the overflow chain (`lock` held).
    fn unchain(&self, i: u32) {
        let (r, o) = (self.r, self.inst);
        let next = item_at(r, i).ovf_next.load(SeqCst);
        if o.ovf_head.load(SeqCst) == i + 1 {
            o.ovf_head.store(next, SeqCst);
            return;
        }
        let mut at = o.ovf_head.load(SeqCst);
        let mut n = 0;
        while at != 0 && n < EP_ITEMS {
            let prev = item_at(r, at - 1);
            if prev.ovf_next.load(SeqCst) == i + 1 {
                prev.ovf_next.store(next, SeqCst);
                return;
            }
            at = prev.ovf_next.load(SeqCst);
            n += 1;
        }
    }

    /// Frees the instance and every item of it (its epoll file is gone).
    pub fn free(self) {
        let (r, idx) = (self.r, self.h.idx);
        self.remove_where(|_| true);
        epoll_wq::reset(r, Wq::Inst(idx));
        self.inst.ident.store(ident(self.h.generation, FREE), SeqCst);
        ns(r).live.fetch_sub(1, SeqCst);
        // Sleepers (in other threads) look again and find it gone.
        self.inst.wake(false);
    }

    /// Starts collecting the ready list (`ep_start_scan`): what wakers queued joins it, and
    /// the whole list becomes this collector's; wakers chain meanwhile.
    pub fn scan(&self) -> Scan<'_> {
        let (r, o) = (self.r, self.inst);
        let _l = lists(r, self.h.idx, o);
        self.drain_overflow(false);
        let head = o.rdl_head.swap(0, SeqCst);
        o.rdl_tail.store(0, SeqCst);
        o.scanning.store(1, SeqCst);
        Scan { c: self, tx: head, cur: 0 }
    }

    /// Moves the overflow chain onto the ready list, those not on it yet, in the order they
    /// were queued: at its tail, or (`at_head`, ep_done_scan) in front (`lock` held).
    fn drain_overflow(&self, at_head: bool) {
        let (r, o) = (self.r, self.inst);
        // The chain is newest first: inserting each in front leaves them oldest first.
        let mut at = o.ovf_head.swap(0, SeqCst);
        let mut first = o.rdl_head.load(SeqCst);
        let mut n = 0;
        // Appending at the tail keeps them in chain order (newest first) unless reversed: so
        // they go in front of a marker, the old tail's successor (0).
        let tail_mark = o.rdl_tail.load(SeqCst);
        while at != 0 && n < EP_ITEMS {
            let it = item_at(r, at - 1);
            let next = it.ovf_next.load(SeqCst);
            let st = it.st.fetch_and(!ONOVF, SeqCst);
            if st & ONLIST == 0 && it.ident.load(SeqCst) & 0xff == LIVE {
                it.st.fetch_or(ONLIST, SeqCst);
                if at_head {
                    self.link_before(at - 1, first);
                    first = at;
                } else {
                    // In front of what was appended before it from this chain (it is older).
                    self.link_before(at - 1, self.after(tail_mark));
                }
            }
            at = next;
            n += 1;
        }
    }
}

impl Ctl<'_> {
    /// Calls `f` with each item on the ready list or queued for it, without taking any off,
    /// until it returns true (`ep_eventpoll_poll` of a nested set); whether one did.
    pub fn any_queued(&self, mut f: impl FnMut(ItemView<'_>) -> bool) -> bool {
        let (r, o) = (self.r, self.inst);
        // The ready list (stable while `mtx` is held), then the chain (whose links never
        // change under us: wakers only push in front).
        for (start, chained) in [(o.rdl_head.load(SeqCst), false), (o.ovf_head.load(SeqCst), true)] {
            let (mut at, mut n) = (start, 0);
            while at != 0 && n < EP_ITEMS {
                let it = item_at(r, at - 1);
                let id = it.ident.load(SeqCst);
                if id & 0xff == LIVE && f(view_of(it, ItemRef { idx: at - 1, generation: (id >> 8) as u32 }))
                {
                    return true;
                }
                at = if chained { it.ovf_next.load(SeqCst) } else { it.rdl_next.load(SeqCst) };
                n += 1;
            }
        }
        false
    }
}

/// A collection in progress: the ready list taken private (`txlist`). Each item taken keeps
/// its place in the list's bookkeeping until the collector says what became of it, so one
/// killed meanwhile leaves it to be collected again.
pub struct Scan<'c> {
    c: &'c Ctl<'c>,
    tx: u32,
    /// The item taken last (slot + 1) while it is not settled.
    cur: u32,
}

impl<'c> Scan<'c> {
    /// The next item to poll, taken off the list.
    pub fn take(&mut self) -> Option<ItemView<'c>> {
        self.settle(false);
        let r = self.c.r;
        while self.tx != 0 {
            let idx = self.tx - 1;
            let it = item_at(r, idx);
            self.tx = it.rdl_next.load(SeqCst);
            it.rdl_next.store(0, SeqCst);
            it.rdl_prev.store(0, SeqCst);
            let id = it.ident.load(SeqCst);
            if id & 0xff != LIVE {
                it.st.fetch_and(!(ONLIST | WOKEN), SeqCst);
                continue;
            }
            self.cur = idx + 1;
            let st = it
                .st
                .fetch_update(SeqCst, SeqCst, |st| {
                    Some((st & !WOKEN) | if st & WOKEN != 0 { TAKEN } else { 0 })
                })
                .unwrap_or(0);
            let mut v = view_of(it, ItemRef { idx, generation: (id >> 8) as u32 });
            v.woken = st & WOKEN != 0;
            return Some(v);
        }
        None
    }

    /// The item taken last is done with: off the list until its next wake-up, which (during
    /// this collection too) queues it again; `keep`: on it still.
    fn settle(&mut self, keep: bool) {
        if self.cur != 0 {
            let it = item_at(self.c.r, self.cur - 1);
            it.st.fetch_and(if keep { !TAKEN } else { !(ONLIST | TAKEN) }, SeqCst);
            self.cur = 0;
        }
    }

    /// A level-triggered item reported: back at the tail of the ready list (private until
    /// the collection ends).
    pub fn requeue(&mut self, i: ItemRef) {
        if self.cur == i.idx + 1 {
            self.settle(true);
            item_at(self.c.r, i.idx).st.fetch_or(WOKEN, SeqCst);
            self.c.link_before(i.idx, 0);
        }
    }

    /// An item whose event could not be copied out: first again next time.
    pub fn put_back(&mut self, i: ItemRef) {
        if self.cur == i.idx + 1 {
            self.settle(true);
            let it = item_at(self.c.r, i.idx);
            it.st.fetch_or(WOKEN, SeqCst);
            it.rdl_next.store(self.tx, SeqCst);
            self.tx = i.idx + 1;
        }
    }

    /// Removes the item just taken (its interest is gone).
    pub fn remove(&mut self, i: ItemRef) {
        self.settle(false);
        self.c.remove(i);
    }
}

impl Drop for Scan<'_> {
    /// `ep_done_scan`: what was queued meanwhile goes in front, then what was not looked at.
    fn drop(&mut self) {
        self.settle(false);
        let (c, r) = (self.c, self.c.r);
        let o = c.inst;
        let _l = lists(r, c.h.idx, o);
        c.drain_overflow(true);
        // The rest of the private list, in front of everything.
        let mut at = self.tx;
        let mut prev_new = 0;
        while at != 0 {
            let next = item_at(r, at - 1).rdl_next.load(SeqCst);
            c.link_before(at - 1, c.after(prev_new));
            prev_new = at;
            at = next;
        }
        o.scanning.store(0, SeqCst);
    }
}

/// A live item as a collector sees it.
#[derive(Clone, Copy)]
pub struct ItemView<'a> {
    pub at: ItemRef,
    pub item: &'a EpItem,
    /// events | DISABLED
    pub cfg: u64,
    pub data: u64,
    pub target: u64,
    pub fd: i32,
    /// Taken off the ready list after a wake-up since the last time (not only to be verified).
    pub woken: bool,
}

fn view_of(it: &EpItem, at: ItemRef) -> ItemView<'_> {
    let sel = it.sel.load(SeqCst) as usize & 1;
    ItemView {
        at,
        item: it,
        cfg: it.cfg[sel].load(SeqCst),
        data: it.data[sel].load(SeqCst),
        target: it.target.load(SeqCst),
        fd: it.fd.load(SeqCst) as i32,
        woken: false,
    }
}

impl ItemView<'_> {
    /// ONESHOT fired: nothing more until a MOD.
    pub fn disable(&self) {
        let sel = self.item.sel.load(SeqCst) as usize & 1;
        self.item.cfg[sel].fetch_or(DISABLED, SeqCst);
    }

    /// What the kernel reported for the placeholder's half: kept while a fetch that saw all
    /// the kernel had (`fetch_epoch`) is not newer than the report.
    pub fn kernel_bits(&self, o: &EpInst) -> u32 {
        let bits = self.item.kbits.load(SeqCst);
        if bits != 0 && o.fetch_epoch.load(SeqCst) > self.item.kepoch.load(SeqCst) {
            self.item.kbits.store(0, SeqCst);
            return 0;
        }
        bits
    }

    /// Reported once (edge-triggered or ONESHOT): the kernel's bits are used up.
    pub fn clear_kernel_bits(&self) {
        self.item.kbits.store(0, SeqCst);
    }

    /// The events its kernel half holds, if known, and whether it was narrowed: a socket's
    /// level-triggered half asks for EPOLLIN whatever the interest wants (so that switching
    /// between EPOLLIN and EPOLLOUT costs the kernel nothing) until the placeholder showed an
    /// EPOLLIN the interest does not want; it is narrowed to the interest's then, for good.
    pub fn registered(&self) -> Option<(u32, bool)> {
        let k = self.item.kreg.load(SeqCst);
        (k & KREG_KNOWN != 0).then_some((k as u32, k & KREG_NARROW != 0))
    }

    /// Whether an fd of its object was closed since it was last verified (and clears it).
    pub fn take_verify(&self) -> bool {
        self.item.st.fetch_and(!VERIFY, SeqCst) & VERIFY != 0
    }
}

/// The item `i` in state `state`.
fn item(r: &Region, i: ItemRef, state: u64) -> Option<&EpItem> {
    let it = (i.idx < EP_ITEMS).then(|| item_at(r, i.idx))?;
    (it.ident.load(SeqCst) == ident(i.generation, state)).then_some(it)
}

/// The live item `i`, as a collector or epoll_ctl sees it.
pub fn view(r: &Region, i: ItemRef) -> Option<ItemView<'_>> {
    item(r, i, LIVE).map(|it| view_of(it, i))
}

/// The instance item `i` belongs to, if it is live.
pub fn inst_of(r: &Region, i: ItemRef) -> Option<InstRef> {
    let it = item(r, i, LIVE)?;
    let h = inst_ref(r, it.inst.load(SeqCst));
    inst(r, h).map(|_| h)
}

/// Whether item `i` is live.
pub fn is_live(r: &Region, i: ItemRef) -> bool {
    item(r, i, LIVE).is_some()
}

/// How [`queue`] found the item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Queued {
    /// On a list now, or already: its instance.
    Yes(u32),
    /// Gone, or disabled (ONESHOT fired).
    No,
}

/// Puts item `i` on its instance's ready list (`ep_poll_callback`'s list part), merging
/// `kbits` from the kernel first; `key`: the wake-up's events (0: any), which the item must
/// want. The caller wakes the instance.
pub(crate) fn queue_for(r: &Region, i: ItemRef, kbits: u32, key: u32) -> Queued {
    queue_as(r, i, kbits, key, WOKEN)
}

/// [`queue_for`], marking the item with `mark` (WOKEN, VERIFY).
fn queue_as(r: &Region, i: ItemRef, kbits: u32, key: u32, mark: u32) -> Queued {
    let Some(it) = item(r, i, LIVE) else { return Queued::No };
    let idx = it.inst.load(SeqCst);
    if idx >= EP_INSTS {
        return Queued::No;
    }
    let sel = it.sel.load(SeqCst) as usize & 1;
    let cfg = it.cfg[sel].load(SeqCst);
    if cfg & DISABLED != 0 || (key != 0 && key & cfg as u32 == 0) {
        return Queued::No;
    }
    if kbits != 0 {
        it.kbits.fetch_or(kbits, SeqCst);
    }
    it.st.fetch_or(mark, SeqCst);
    let o = inst_at(r, idx);
    // Already queued: the collector that takes it reads the object's state after this
    // wake-up's (see Scan::take). No fence: the mark above and the loads below are SeqCst
    // atomics, which keep their order (the mark is a locked instruction), and the collector
    // learns of it through `st` itself.
    let st = it.st.load(SeqCst);
    if st & ONOVF != 0 || (st & ONLIST != 0 && o.scanning.load(SeqCst) == 0) {
        return Queued::Yes(idx);
    }
    let _l = lists(r, idx, o);
    if it.ident.load(SeqCst) != ident(i.generation, LIVE) || it.inst.load(SeqCst) != idx {
        return Queued::No;
    }
    let st = it.st.load(SeqCst);
    if st & ONOVF == 0 && !(st & ONLIST != 0 && o.scanning.load(SeqCst) == 0) {
        it.st.fetch_or(ONOVF, SeqCst);
        it.ovf_next.store(o.ovf_head.load(SeqCst), SeqCst);
        o.ovf_head.store(i.idx + 1, SeqCst);
    }
    Queued::Yes(idx)
}

/// [`queue_for`] with any key.
pub fn queue(r: &Region, i: ItemRef, kbits: u32) -> bool {
    matches!(queue_for(r, i, kbits, 0), Queued::Yes(_))
}

/// The kernel reported `bits` for item `i`'s placeholder in a fetch of instance `o`: kept for
/// the next report, and the item queued.
pub fn kernel_report(r: &Region, o: &EpInst, i: ItemRef, bits: u32) {
    if let Some(it) = item(r, i, LIVE) {
        it.kbits.store(0, SeqCst);
        it.kepoch.store(o.fetch_epoch.load(SeqCst), SeqCst);
        queue(r, i, bits);
    }
}

/// Marks item `i` to be verified (an fd of its object was closed) and queues it.
pub(crate) fn mark_verify(r: &Region, i: ItemRef) -> Option<u32> {
    let it = item(r, i, LIVE)?;
    let idx = it.inst.load(SeqCst);
    inst_at(r, idx.min(EP_INSTS - 1)).set_kcheck();
    match queue_as(r, i, 0, 0, VERIFY) {
        Queued::Yes(idx) => Some(idx),
        // A disabled item is verified too.
        Queued::No => {
            queue_disabled(r, i);
            Some(idx)
        }
    }
}

/// Asks item `i`'s set to look at it again after asking the kernel (its object's peer closed
/// or shut down: only the placeholder shows it); the instance slot to wake.
pub(crate) fn mark_changed(r: &Region, i: ItemRef) -> Option<u32> {
    let it = item(r, i, LIVE)?;
    inst_at(r, it.inst.load(SeqCst).min(EP_INSTS - 1)).set_kcheck();
    // Not a wake-up itself: the kernel's report of the placeholder is.
    match queue_as(r, i, 0, 0, 0) {
        Queued::Yes(idx) => Some(idx),
        Queued::No => None,
    }
}

/// A wake-up of item `i` with any key that only the placeholders may explain (`sk_state_change`
/// after a shutdown): queued as [`queue_for`] does, its set asking the kernel; the instance
/// slot to wake.
pub(crate) fn mark_state_changed(r: &Region, i: ItemRef) -> Option<u32> {
    let it = item(r, i, LIVE)?;
    inst_at(r, it.inst.load(SeqCst).min(EP_INSTS - 1)).set_kcheck();
    match queue_for(r, i, 0, 0) {
        Queued::Yes(idx) => Some(idx),
        Queued::No => None,
    }
}

/// Queues a disabled item all the same (it must be verified).
fn queue_disabled(r: &Region, i: ItemRef) {
    let Some(it) = item(r, i, LIVE) else { return };
    let idx = it.inst.load(SeqCst);
    if idx >= EP_INSTS {
        return;
    }
    it.st.fetch_or(VERIFY, SeqCst);
    let o = inst_at(r, idx);
    let _l = lists(r, idx, o);
    let st = it.st.load(SeqCst);
    if st & ONOVF == 0 && !(st & ONLIST != 0 && o.scanning.load(SeqCst) == 0) {
        it.st.fetch_or(ONOVF, SeqCst);
        it.ovf_next.store(o.ovf_head.load(SeqCst), SeqCst);
        o.ovf_head.store(i.idx + 1, SeqCst);
    }
}

/// Wakes instance slot `idx` after one of its items was queued (`exclusive`: an EPOLLEXCLUSIVE
/// one); whether a sleeper was there.
pub(crate) fn wake_slot(r: &Region, idx: u32, exclusive: bool) -> bool {
    inst_at(r, idx).wake(exclusive)
}

/// The items of instance `h` watching wait queue `wq` (epoll_ctl finds an interest by them).
pub fn each_on(r: &Region, h: InstRef, wq: Wq, mut f: impl FnMut(ItemView<'_>)) {
    epoll_wq::each(r, wq, |i| {
        if let Some(v) = view(r, i)
            && v.item.inst.load(SeqCst) == h.idx
            && v.item.wq.load(SeqCst) == wq.bits()
        {
            f(v);
        }
    });
}

/// Every live item of instance `h` (a scan of the table: for rare paths only).
pub fn each_item(r: &Region, h: InstRef, mut f: impl FnMut(ItemView<'_>)) {
    each_item_of(r, h.idx, |i, it| {
        if it.ident.load(SeqCst) & 0xff == LIVE {
            f(view_of(it, i));
        }
    });
}

/// Frees every instance born after `keep_born_before` that `held` does not name and that no
/// other set watches: its epoll file is gone (no process has an fd of it).
pub fn free_unheld(r: &Region, keep_born_before: u64, held: &dyn Fn(InstRef) -> bool) {
    for idx in 0..ns(r).inst_hwm.load(SeqCst).min(EP_INSTS) {
        let h = inst_ref(r, idx);
        let Some(o) = inst(r, h) else { continue };
        if held(h) || o.born() < keep_born_before || epoll_wq::watched(r, Wq::Inst(idx)) {
            continue;
        }
        if let Ok(c) = ctl(r, h) {
            c.free();
        }
    }
}
