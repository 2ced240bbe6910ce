//! Wait queues for epoll: the items watching each shim object (a pipe or socket queue, or an
//! epoll instance watched by another set), and the wake-up that queues them on their
//! instances' ready lists (`ep_poll_callback`).
//!
//! A queue is a line of slots, each naming one item (slot and generation), and a chain of
//! overflow chunks from a table of the region; an item takes a slot and gives it back with one
//! compare-and-swap each, and a waker reads them without a lock. A stale slot (an item freed
//! meanwhile, even reused) is told apart by the item's generation and its own record of the
//! queue it is on. The wake-up follows the kernel's order: the items that did not ask for
//! EPOLLEXCLUSIVE first (newest first, as `add_wait_queue` puts them at the head), then the
//! exclusive ones in the order they were added, until one of them woke a sleeper.

use crate::epoll::{self, CHUNK_OWNERS_OFF, CHUNKS_OFF, ItemRef, PIPE_WQ_OFF, Queued, WQ_CHUNKS};
use crate::region::{EPOLL_OFF, PIPE_MAX, Region};
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

const SLOTS: usize = 7;

/// One wait queue's head, and also the shape of an overflow chunk.
#[repr(C, align(64))]
pub struct WatchList {
    slots: [AtomicU64; SLOTS],
    /// The next chunk's index + 1; 0 for none.
    more: AtomicU64,
}

/// Which wait queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wq {
    /// A pipe or socket object, by slot.
    Pipe(u32),
    /// An epoll instance, by slot.
    Inst(u32),
}

impl Wq {
    pub fn bits(self) -> u64 {
        match self {
            Wq::Pipe(i) => i as u64 + 1,
            Wq::Inst(i) => 1 << 32 | (i as u64 + 1),
        }
    }

    pub fn from_bits(b: u64) -> Wq {
        let i = (b as u32).wrapping_sub(1);
        if b >> 32 != 0 { Wq::Inst(i) } else { Wq::Pipe(i) }
    }
}

/// Queue `w`'s head; a pipe's only if its page has its memory (`fill`: reserved first, as a
/// registration is about to write it; a head never reserved was never written, so is empty).
fn head(r: &Region, w: Wq, fill: bool) -> Option<&WatchList> {
    match w {
        Wq::Pipe(i) if i < PIPE_MAX => {
            let off = EPOLL_OFF + PIPE_WQ_OFF + i as u64 * size_of::<WatchList>() as u64;
            let size = size_of::<WatchList>() as u64;
            let usable = if fill { r.reserve(off, size).is_ok() } else { r.reserved(off, size) };
            // SAFETY: PIPE_MAX lists of 64 bytes at PIPE_WQ_OFF inside the epoll area; atomics
            // only; the page has its memory.
            usable.then(|| unsafe { &*r.at::<WatchList>(off) })
        }
        Wq::Inst(i) if i < epoll::EP_INSTS => Some(epoll::inst_watch(r, i)),
        _ => None,
    }
}

fn chunk_off(c: u32) -> u64 {
    EPOLL_OFF + CHUNKS_OFF + c as u64 * size_of::<WatchList>() as u64
}

fn owner_off(c: u32) -> u64 {
    EPOLL_OFF + CHUNK_OWNERS_OFF + c as u64 * 8
}

/// Chunk `c`, which was claimed (so has its memory).
fn chunk(r: &Region, c: u32) -> &WatchList {
    debug_assert!(c < WQ_CHUNKS);
    // SAFETY: WQ_CHUNKS chunks of 64 bytes at CHUNKS_OFF inside the epoll area; atomics only.
    unsafe { r.at::<WatchList>(chunk_off(c)) }
}

/// The queue chunk `c` belongs to (`Wq::bits`), 0 while it is free; only for a chunk that was
/// claimed, or whose owner word [`claim_chunk`] reserved.
fn chunk_owner(r: &Region, c: u32) -> &AtomicU64 {
    // SAFETY: WQ_CHUNKS words at CHUNK_OWNERS_OFF inside the epoll area.
    unsafe { r.at::<AtomicU64>(owner_off(c)) }
}

/// The lists of queue `w`: its head, then its chunks (at most WQ_CHUNKS of them).
fn lists(r: &Region, w: Wq) -> impl Iterator<Item = &WatchList> {
    lists_from(r, w, head(r, w, false))
}

/// The lists of queue `w` from its head `at` on.
fn lists_from<'a>(r: &'a Region, w: Wq, at: Option<&'a WatchList>) -> impl Iterator<Item = &'a WatchList> {
    let mut at = at;
    let mut n = 0;
    core::iter::from_fn(move || {
        let l = at?;
        let next = l.more.load(SeqCst);
        n += 1;
        at = (next != 0 && next as u32 <= WQ_CHUNKS && n <= WQ_CHUNKS)
            .then(|| chunk(r, next as u32 - 1))
            .filter(|_| chunk_owner(r, next as u32 - 1).load(SeqCst) == w.bits());
        Some(l)
    })
}

/// Empties queue `w` (its object is new, or gone): its chunks go back to the table.
pub(crate) fn reset(r: &Region, w: Wq) {
    let Some(h) = head(r, w, false) else { return };
    for s in &h.slots {
        s.store(0, SeqCst);
    }
    let mut next = h.more.swap(0, SeqCst);
    let mut n = 0;
    while next != 0 && next as u32 <= WQ_CHUNKS && n < WQ_CHUNKS {
        let c = next as u32 - 1;
        if chunk_owner(r, c).load(SeqCst) != w.bits() {
            break;
        }
        next = chunk(r, c).more.swap(0, SeqCst);
        for s in &chunk(r, c).slots {
            s.store(0, SeqCst);
        }
        chunk_owner(r, c).store(0, SeqCst);
        n += 1;
    }
}

/// Puts item `i` on queue `w`; Err when no slot nor chunk is left.
pub(crate) fn register(r: &Region, w: Wq, i: ItemRef) -> Result<(), ()> {
    let val = i.to_bits();
    let h = head(r, w, true).ok_or(())?;
    loop {
        let mut last = None;
        for l in lists_from(r, w, Some(h)) {
            for s in &l.slots {
                if s.load(SeqCst) == 0 && s.compare_exchange(0, val, SeqCst, SeqCst).is_ok() {
                    return Ok(());
                }
            }
            last = Some(l);
        }
        let last = last.ok_or(())?;
        let c = claim_chunk(r, w)?;
        if last.more.compare_exchange(0, c as u64 + 1, SeqCst, SeqCst).is_err() {
            // Another registration chained one first: ours goes back.
            chunk_owner(r, c).store(0, SeqCst);
        }
    }
}

fn claim_chunk(r: &Region, w: Wq) -> Result<u32, ()> {
    let ns = epoll::ns(r);
    let start = ns.chunk_hint.load(SeqCst);
    for k in 0..WQ_CHUNKS {
        let c = (start + k) % WQ_CHUNKS;
        // A chunk is reserved as it is first looked at (claims go in order from the hint).
        if r.reserve(owner_off(c), 8).is_err()
            || r.reserve(chunk_off(c), size_of::<WatchList>() as u64).is_err()
        {
            return Err(());
        }
        let owner = chunk_owner(r, c);
        if owner.load(SeqCst) == 0 && owner.compare_exchange(0, w.bits(), SeqCst, SeqCst).is_ok() {
            let l = chunk(r, c);
            for s in &l.slots {
                s.store(0, SeqCst);
            }
            l.more.store(0, SeqCst);
            ns.chunk_hint.store((c + 1) % WQ_CHUNKS, SeqCst);
            ns.chunk_hwm.fetch_max(c + 1, SeqCst);
            return Ok(c);
        }
    }
    Err(())
}

/// Takes item `i` off queue `w`.
pub(crate) fn unregister(r: &Region, w: Wq, i: ItemRef) {
    let val = i.to_bits();
    for l in lists(r, w) {
        for s in &l.slots {
            if s.load(SeqCst) == val && s.compare_exchange(val, 0, SeqCst, SeqCst).is_ok() {
                return;
            }
        }
    }
}

/// Calls `f` with every item named on queue `w` (some may be stale: the caller checks).
pub fn each(r: &Region, w: Wq, mut f: impl FnMut(ItemRef)) {
    for l in lists(r, w) {
        for s in &l.slots {
            if let Some(i) = ItemRef::from_bits(s.load(SeqCst)) {
                f(i);
            }
        }
    }
}

/// Whether any item watches queue `w`.
pub(crate) fn watched(r: &Region, w: Wq) -> bool {
    let mut any = false;
    each(r, w, |i| any |= epoll::is_live(r, i));
    any
}

/// Items one wake-up sorts at a time (more are taken in further rounds, each sorted).
const BATCH: usize = 16;
/// Nested sets a wake-up follows (the kernel refuses more than 5 levels).
const NESTED: usize = 8;

/// A wake-up of `side` (READERS: `rd_wait`, WRITERS: `wr_wait`) of the object behind queue
/// `w` with `key` (EPOLLIN, EPOLLOUT): every item there that waits on that side and wants it
/// goes on its instance's ready list and wakes one of its sleepers (`ep_poll_callback`), until
/// an EPOLLEXCLUSIVE one woke somebody; an instance watched by other sets wakes them in turn
/// (`ep_poll_safewake`).
pub fn notify(r: &Region, w: Wq, side: u32, key: u32) {
    let mut work = [(w, key); NESTED];
    let mut side = side;
    let mut pending = 1;
    let mut done = 0;
    while done < pending {
        let (w, key) = work[done];
        done += 1;
        let mut exclusive_woke = false;
        for round in 0.. {
            // (order, item, exclusive) of the entries [round * BATCH, (round + 1) * BATCH).
            let mut batch = [(0u64, ItemRef { idx: 0, generation: 0 }, false); BATCH];
            let (lo, hi) = (round * BATCH, (round + 1) * BATCH);
            let (mut n, mut total) = (0, 0);
            each(r, w, |i| {
                total += 1;
                if !(lo..hi).contains(&(total - 1)) {
                    return;
                }
                if let Some(v) = epoll::view(r, i)
                    .filter(|v| v.item.wq.load(SeqCst) == w.bits() && v.item.sides.load(SeqCst) & side != 0)
                {
                    let excl = v.cfg as u32 & libc::EPOLLEXCLUSIVE as u32 != 0;
                    let seq = v.item.wq_seq.load(SeqCst) & (u64::MAX >> 2);
                    // Non-exclusive first, newest first; then exclusive, oldest first.
                    batch[n] = (if excl { 1 << 63 | seq } else { !seq >> 2 }, i, excl);
                    n += 1;
                }
            });
            batch[..n].sort_unstable_by_key(|e| e.0);
            for &(_, i, excl) in &batch[..n] {
                if excl && exclusive_woke {
                    continue;
                }
                let Queued::Yes(idx) = epoll::queue_for(r, i, 0, key) else { continue };
                let woke = epoll::wake_slot(r, idx, excl);
                exclusive_woke |= excl && woke;
                if pending < NESTED && watched(r, Wq::Inst(idx)) {
                    work[pending] = (Wq::Inst(idx), libc::EPOLLIN as u32);
                    pending += 1;
                }
            }
            if total <= hi {
                break;
            }
        }
        // The sets watching an instance wait for it to become readable.
        side = crate::pipe::READERS;
    }
}

/// An fd of the object behind queue `w` was closed: each item watching it is checked with the
/// kernel (its interest goes with the file's last reference) and polled again.
pub fn closed(r: &Region, w: Wq) {
    each(r, w, |i| woken(r, epoll::mark_verify(r, i)));
}

/// The object behind queue `w` changed where only its placeholder shows it (its peer closed
/// or shut down): each item watching it is polled again, its set asking the kernel too.
pub fn changed(r: &Region, w: Wq) {
    each(r, w, |i| woken(r, epoll::mark_changed(r, i)));
}

/// The object behind queue `w` changed state (`sk_state_change`: a shutdown): each item
/// watching it is woken with any key, its set asking the kernel too.
pub fn state_changed(r: &Region, w: Wq) {
    each(r, w, |i| woken(r, epoll::mark_state_changed(r, i)));
}

/// Wakes instance slot `idx` (if an item of it was queued), and the sets watching it.
fn woken(r: &Region, idx: Option<u32>) {
    if let Some(idx) = idx {
        epoll::wake_slot(r, idx, false);
        if watched(r, Wq::Inst(idx)) {
            notify(r, Wq::Inst(idx), crate::pipe::READERS, libc::EPOLLIN as u32);
        }
    }
}

/// A pipe object's wake-up of `side` (READERS: data came; WRITERS: room came) reaches the
/// wait queue of the object it concerns (`owner`: see `PipeInodeInfo::ep_owner`).
pub(crate) fn pipe_woken(r: &Region, owner: Option<u32>, side: u32) {
    let Some(idx) = owner.filter(|&i| i < PIPE_MAX) else { return };
    let key = if side == crate::pipe::READERS {
        (libc::EPOLLIN | libc::EPOLLRDNORM) as u32
    } else {
        (libc::EPOLLOUT | libc::EPOLLWRNORM) as u32
    };
    notify(r, Wq::Pipe(idx), side, key);
}
