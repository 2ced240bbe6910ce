//! The per-object locks of semaphore sets and message queues (and of each family's ids), each
//! with an undo journal, and the entry pools those objects share.
//!
//! Every store made while holding an object's lock is journalled first (the old value of the
//! 8-byte word), and the journal is emptied just before unlocking: a holder killed at any
//! instant leaves a journal that the next locker replays backwards, so each operation happens
//! entirely or not at all.
//!
//! Entries of the namespace's pools (sleepers, undo records, messages, text chunks) belong to
//! one object at a time: a claim word in each says which (object + 1, 0 when free). A holder
//! claims an entry with one compare-and-swap after journalling the claim, so a rollback gives
//! back exactly what the killed holder took; it frees entries only once its other changes are
//! all made (the journal is then marked committed, and a holder killed while freeing has its
//! frees finished by the next locker), so a rollback never finds an entry it restores in
//! another object's hands. An object may keep entries it freed on a list of its own
//! ([`FreeList`], journalled like its other words), still claimed: its next allocations take
//! them in O(1), and only an object growing past what it kept searches the pool.

use crate::lock::{LockGuard, RobustMutex};
use crate::region::{PAGE_SIZE, Region, TOTAL_SIZE};
use core::ops::Range;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, compiler_fence};

/// Entries in each object's journal (larger single calls are journalled this far).
pub const JOURNAL_MAX: u64 = 1 << 18;
pub const JOURNAL_BYTES: u64 = JOURNAL_MAX * size_of::<JournalEntry>() as u64;

/// In an entry's offset: a claim (its value: the owner, whose claim a rollback gives back)
/// or a free (done at commit).
const CLAIM: u64 = 1 << 62;
const FREE: u64 = 1 << 61;
const OFF_MASK: u64 = (1 << 48) - 1;
/// In the journal's length word: the holder's changes are all made, only its frees remain.
const COMMITTED: u64 = 1 << 63;
/// In the length word: some entry is a free.
const FREES: u64 = 1 << 62;
const LEN_MASK: u64 = (1 << 32) - 1;

/// How long a locker or a sleeper spins on a holder or peer that runs on another CPU.
pub const SPIN_NS: i64 = 50_000;

#[repr(C)]
pub struct JournalEntry {
    off: u64,
    old: u64,
}

/// A robust lock with its journal's length and who holds it, alone on a cache line.
#[repr(C, align(64))]
pub struct ObjLock {
    mutex: RobustMutex,
    /// Entries written by the current holder, with COMMITTED and FREES; 0 outside a locked
    /// section.
    jlen: AtomicU64,
    /// pid << 32 | CPU + 1 of the holder when it took the lock; 0 when free.
    holder: AtomicU64,
    /// For a lock without a journal of its own: which lent journal its holder uses (index + 1),
    /// named before the journal is claimed.
    pub lent: AtomicU32,
}

const _: () = assert!(size_of::<ObjLock>() == 64);

/// Held while alive; unlocks on drop.
pub struct ObjGuard<'a> {
    lock: &'a ObjLock,
    guard: Option<LockGuard<'a>>,
    /// The previous holder died holding the lock: its journal must be replayed.
    pub recovered: bool,
}

impl Drop for ObjGuard<'_> {
    fn drop(&mut self) {
        self.lock.holder.store(0, Ordering::Relaxed);
        drop(self.guard.take());
    }
}

impl ObjLock {
    /// # Safety
    /// `this` points to memory of an `ObjLock` that no other process uses yet.
    pub unsafe fn init(this: *mut ObjLock) {
        // SAFETY: per the contract.
        unsafe { RobustMutex::init(&raw mut (*this).mutex) };
    }

    /// Takes the lock, spinning only while its holder runs on another CPU (a holder that was
    /// preempted, or runs on ours, needs the CPU more than we need the lock); then sleeps.
    pub fn lock(&self, r: &Region) -> Result<ObjGuard<'_>, i32> {
        self.mutex.ensure_init();
        let g = match self.mutex.try_lock() {
            Some(g) => g?,
            None => {
                let word = self.mutex.word();
                let mut spun = None;
                loop {
                    // 0: between a holder's unlock and the next one's note.
                    let h = self.holder.load(Ordering::Relaxed);
                    if h != 0 && !running_elsewhere(r, h) {
                        break;
                    }
                    let start = *spun.get_or_insert_with(crate::sys::monotonic_ns);
                    for _ in 0..64 {
                        core::hint::spin_loop();
                    }
                    if word.load(Ordering::Relaxed) == 0
                        && let Some(g) = self.mutex.try_lock()
                    {
                        return Ok(self.held(r, g?));
                    }
                    if crate::sys::monotonic_ns() - start > SPIN_NS {
                        break;
                    }
                }
                self.mutex.lock()?
            }
        };
        Ok(self.held(r, g))
    }

    fn held<'a>(&'a self, r: &Region, g: LockGuard<'a>) -> ObjGuard<'a> {
        let me = note_running(r);
        self.holder.store(me, Ordering::Relaxed);
        ObjGuard { lock: self, recovered: g.recovered, guard: Some(g) }
    }

    /// Takes the lock if nobody holds it.
    pub fn try_lock(&self, r: &Region) -> Option<Result<ObjGuard<'_>, i32>> {
        self.mutex.ensure_init();
        Some(self.mutex.try_lock()?.map(|g| self.held(r, g)))
    }

    /// The lock word: the owner's TID, plus FUTEX_OWNER_DIED once it died holding it.
    pub fn owner_word(&self) -> u32 {
        self.mutex.owner_word()
    }
}

/// A lock held with its journal: commits the journal and unlocks on drop, then releases what
/// was locked under it (`under`, an object being created under the ids).
pub(crate) struct Held<'a, H> {
    pub journal: Journal<'a>,
    guard: Option<ObjGuard<'a>>,
    pub under: Option<H>,
}

impl<'a, H> Held<'a, H> {
    pub fn new(journal: Journal<'a>, guard: ObjGuard<'a>) -> Held<'a, H> {
        Held { journal, guard: Some(guard), under: None }
    }

    /// The previous holder died holding the lock.
    pub fn recovered(&self) -> bool {
        self.guard.as_ref().is_some_and(|g| g.recovered)
    }
}

impl<H> Drop for Held<'_, H> {
    fn drop(&mut self) {
        self.journal.commit();
        drop(self.guard.take());
        drop(self.under.take());
    }
}

/// The journal of one object's lock, whose entries lie at region offset `off`.
pub(crate) struct Journal<'a> {
    r: &'a Region,
    len: &'a AtomicU64,
    off: u64,
    /// Words of the header page that may be journalled (every other journalled word lies past
    /// the header page).
    header_words: Range<u64>,
}

impl<'a> Journal<'a> {
    /// The journal behind `lock`, with its entries at `off`; `header` the header-page words
    /// it may restore (empty for an object's).
    pub fn new(r: &'a Region, lock: &'a ObjLock, off: u64, header: Range<*const u8>) -> Journal<'a> {
        let base = r.base() as u64;
        let header_words = header.start as u64 - base..header.end as u64 - base;
        Journal { r, len: &lock.jlen, off, header_words }
    }

    #[allow(clippy::mut_from_ref)]
    fn entry(&self, i: u64) -> &mut JournalEntry {
        // SAFETY: i is bounded to JOURNAL_MAX, and the journal area holds that many entries.
        unsafe {
            self.r.at::<JournalEntry>(self.off + i.min(JOURNAL_MAX - 1) * size_of::<JournalEntry>() as u64)
        }
    }

    fn push(&self, off: u64, old: u64, flags: u64) {
        let v = self.len.load(Ordering::Relaxed);
        let n = v & LEN_MASK;
        // A full journal, or no room for its page, leaves that word unprotected.
        let size = size_of::<JournalEntry>() as u64;
        if n < JOURNAL_MAX && self.r.reserve(self.off + n * size, size).is_ok() {
            let e = self.entry(n);
            e.off = off;
            e.old = old;
            compiler_fence(Ordering::SeqCst);
            self.len.store((v | flags) + 1, Ordering::Release);
            compiler_fence(Ordering::SeqCst);
        }
    }

    /// Saves the 8-byte words covering `[p, p + len)` before they are changed.
    pub fn save(&self, p: *const u8, len: usize) {
        let base = self.r.base();
        let end = p as usize - base + len;
        let mut off = (p as usize - base) & !7;
        while off < end {
            // SAFETY: `off` is an aligned word of the region (it covers a field we were handed).
            let old = unsafe { core::ptr::read_volatile((base + off) as *const u64) };
            self.push(off as u64, old, 0);
            off += 8;
        }
    }

    fn off_of(&self, word: &AtomicU32) -> u64 {
        word.as_ptr() as u64 - self.r.base() as u64
    }

    /// Claims the free pool entry whose claim word is `word` for `owner`: false when another
    /// object has it.
    pub fn claim(&self, word: &AtomicU32, owner: u32) -> bool {
        if word.load(Ordering::Relaxed) != 0 {
            return false;
        }
        // Journalled before the swap: a rollback gives it back only if it is still ours.
        self.push(self.off_of(word) | CLAIM, owner as u64, 0);
        word.compare_exchange(0, owner, Ordering::AcqRel, Ordering::Relaxed).is_ok()
    }

    /// Frees `owner`'s pool entry with claim word `word` once the holder's changes are all
    /// made.
    pub fn free(&self, word: &AtomicU32, owner: u32) {
        self.push(self.off_of(word) | FREE, owner as u64, FREES);
    }

    fn claim_word(&self, e: &JournalEntry) -> Option<&AtomicU32> {
        let off = e.off & OFF_MASK;
        (off.is_multiple_of(4) && off >= PAGE_SIZE && off + 4 <= TOTAL_SIZE).then(|| {
            // SAFETY: an aligned u32 of the region past the header page (checked above).
            unsafe { &*((self.r.base() + off as usize) as *const AtomicU32) }
        })
    }

    fn finish_frees(&self, n: u64) {
        for i in 0..n.min(JOURNAL_MAX) {
            let e = self.entry(i);
            if e.off & FREE != 0
                && let Some(w) = self.claim_word(e)
            {
                let _ = w.compare_exchange(e.old as u32, 0, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
    }

    /// Ends a locked section whose changes are all made: the frees are done, the journal
    /// emptied.
    pub fn commit(&self) {
        let v = self.len.load(Ordering::Relaxed);
        if v & FREES != 0 {
            self.len.store(v | COMMITTED, Ordering::Release);
            compiler_fence(Ordering::SeqCst);
            self.finish_frees(v & LEN_MASK);
        }
        self.len.store(0, Ordering::Release);
    }

    /// What a killed holder left: a committed section's frees are finished, anything else is
    /// undone. True when something was undone.
    pub fn recover(&self) -> bool {
        let v = self.len.load(Ordering::Acquire);
        let n = (v & LEN_MASK).min(JOURNAL_MAX);
        if v & COMMITTED != 0 {
            self.finish_frees(n);
            self.len.store(0, Ordering::Release);
            return false;
        }
        for i in (0..n).rev() {
            let e = self.entry(i);
            if e.off & FREE != 0 {
                continue;
            }
            if e.off & CLAIM != 0 {
                if let Some(w) = self.claim_word(e) {
                    let _ = w.compare_exchange(e.old as u32, 0, Ordering::AcqRel, Ordering::Relaxed);
                }
                continue;
            }
            let allowed = e.off >= PAGE_SIZE || self.header_words.contains(&e.off);
            if e.off.is_multiple_of(8) && e.off + 8 <= TOTAL_SIZE && allowed {
                // SAFETY: an aligned word of the region that may be journalled (checked above).
                unsafe { core::ptr::write_volatile((self.r.base() + e.off as usize) as *mut u64, e.old) };
            }
        }
        self.len.store(0, Ordering::Release);
        n > 0
    }
}

/// Where a pool's search for a free entry starts, one past its highest entry ever claimed, and
/// how many entries objects keep on their own lists (in the namespace, not journalled: all are
/// hints a rollback need not restore).
#[repr(C)]
#[derive(Default)]
pub struct PoolHead {
    hint: AtomicU32,
    bump: AtomicU32,
    kept: AtomicU32,
    /// Entries given back to the pool since a scan last found none: while 0, a claim takes a
    /// never-used entry without scanning the used ones (a scan of a million claimed entries
    /// per claim made filling the pool quadratic). A hint: a full pool is scanned regardless.
    freed: AtomicU32,
}

impl PoolHead {
    /// One past the highest entry ever claimed (scans of the pool stop there).
    pub fn high(&self, max: u32) -> u32 {
        self.bump.load(Ordering::Acquire).min(max)
    }

    /// Entry `i`, whose claim word its holder just cleared without a lock, is free again: the
    /// next claim takes it (its pages are mapped) rather than a never-used one.
    pub fn given_back(&self, i: u32) {
        self.hint.store(i, Ordering::Relaxed);
        self.freed.fetch_add(1, Ordering::Relaxed);
    }
}

/// An object's own list of entries it freed and still holds: index + 1 of the first (chained
/// through each entry's link word) and how many. One journalled 8-byte word.
#[repr(C, align(8))]
#[derive(Clone, Copy, Default)]
pub struct FreeList {
    head: u32,
    count: u32,
}

impl FreeList {
    #[cfg(test)]
    pub(crate) fn len(&self) -> u32 {
        self.count
    }
}

/// Most entries an object keeps on its [`FreeList`] of one pool.
const KEEP: u32 = 256;

/// A pool of entries shared by a family's objects: entry i's claim word lies at region offset
/// `words + i * stride`, and its link word, 8 bytes of the entry that mean nothing while it is
/// free (they chain a [`FreeList`]), at `links + i * link_stride`.
pub(crate) struct Pool<'a> {
    pub r: &'a Region,
    pub words: u64,
    pub stride: u64,
    pub links: u64,
    pub link_stride: u64,
    pub max: u32,
    pub head: &'a PoolHead,
}

impl Pool<'_> {
    pub fn word(&self, i: u32) -> &AtomicU32 {
        let i = i.min(self.max - 1);
        // SAFETY: bounded index; the pool's claim words lie in the region.
        unsafe { &*((self.r.base() + (self.words + i as u64 * self.stride) as usize) as *const AtomicU32) }
    }

    #[allow(clippy::mut_from_ref)]
    fn link(&self, i: u32) -> &mut u64 {
        let i = i.min(self.max - 1);
        // SAFETY: bounded index; an entry's link word lies in the region, 8-byte aligned, and
        // is changed only under the lock of the object holding the entry.
        unsafe { self.r.at::<u64>(self.links + i as u64 * self.link_stride) }
    }

    /// An entry for `owner`: the first of its own list `fl`, else a free one of the pool (both
    /// journalled in `j`; see [`Pool::claim`] for `parts`); `None` when the pool is full.
    pub fn alloc(&self, j: &Journal, owner: u32, fl: &mut FreeList, parts: &[(u64, u64)]) -> Option<u32> {
        if fl.head == 0 {
            return self.claim(j, owner, parts);
        }
        let i = fl.head - 1;
        let link = self.link(i);
        // Saved now: the caller overwrites it, and a rollback puts the entry back on the list.
        j.save((link as *const u64).cast(), 8);
        j.save((fl as *const FreeList).cast(), 8);
        *fl = FreeList { head: *link as u32, count: fl.count.saturating_sub(1) };
        self.unkeep();
        Some(i)
    }

    /// Gives `owner`'s entry `i` back: onto its own list `fl` while that is short and the
    /// namespace's objects keep under an eighth of the pool, else to the pool at commit.
    pub fn release(&self, j: &Journal, i: u32, owner: u32, fl: &mut FreeList) {
        if fl.count >= KEEP || self.head.kept.load(Ordering::Relaxed) >= self.max / 8 {
            return self.free(j, i, owner);
        }
        let link = self.link(i);
        j.save((link as *const u64).cast(), 8);
        *link = fl.head as u64;
        j.save((fl as *const FreeList).cast(), 8);
        *fl = FreeList { head: i + 1, count: fl.count + 1 };
        self.head.kept.fetch_add(1, Ordering::Relaxed);
    }

    /// Every entry of `owner`'s list `fl` goes back to the pool at commit (its object is
    /// removed).
    pub fn drain(&self, j: &Journal, owner: u32, fl: &mut FreeList) {
        let mut cur = fl.head;
        for _ in 0..fl.count.min(KEEP) {
            if cur == 0 {
                break;
            }
            self.free(j, cur - 1, owner);
            self.unkeep();
            cur = *self.link(cur - 1) as u32;
        }
        j.save((fl as *const FreeList).cast(), 8);
        *fl = FreeList::default();
    }

    /// One entry fewer kept (the count is a hint: a rollback may have left it low).
    fn unkeep(&self) {
        let _ = self.head.kept.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |k| k.checked_sub(1));
    }

    /// Claims a free entry for `owner`, journalled in `j`; `None` when the pool is full. An
    /// entry never claimed before has its parts (at `off + i * size` of each of `parts`, the
    /// claim word's among them) reserved first.
    pub fn claim(&self, j: &Journal, owner: u32, parts: &[(u64, u64)]) -> Option<u32> {
        let (hint, bump, freed) = (&self.head.hint, &self.head.bump, &self.head.freed);
        let high = self.head.high(self.max);
        if freed.load(Ordering::Relaxed) != 0 || high >= self.max {
            let start = hint.load(Ordering::Relaxed).min(high);
            for i in (start..high).chain(0..start) {
                if self.word(i).load(Ordering::Relaxed) == 0 && j.claim(self.word(i), owner) {
                    hint.store(i + 1, Ordering::Relaxed);
                    let _ = freed.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| f.checked_sub(1));
                    return Some(i);
                }
            }
            freed.store(0, Ordering::Relaxed);
        }
        loop {
            let b = bump.load(Ordering::Acquire);
            // An entry never claimed gets its memory first (none left: the pool is full).
            let reserve =
                |i: u32| parts.iter().all(|&(off, size)| self.r.reserve(off + i as u64 * size, size).is_ok());
            if b >= self.max || !reserve(b) {
                return None;
            }
            if bump.compare_exchange(b, b + 1, Ordering::AcqRel, Ordering::Relaxed).is_ok()
                && j.claim(self.word(b), owner)
            {
                hint.store(b + 1, Ordering::Relaxed);
                return Some(b);
            }
        }
    }

    /// Frees `owner`'s entry `i` at commit; the search for a free one starts there next.
    pub fn free(&self, j: &Journal, i: u32, owner: u32) {
        j.free(self.word(i), owner);
        self.head.hint.store(i, Ordering::Relaxed);
        self.head.freed.fetch_add(1, Ordering::Relaxed);
    }
}

/// What runs on each CPU, as far as shim processes say (pid, per CPU + 1 mod 64), each on a
/// line of its own: a holder or peer that another process took the CPU from is not worth
/// spinning on. Each locker writes its pid there; a sleeper leaves it, so that a peer that
/// wakes it spins while the CPU it went to sleep on does not run anybody else's locks.
#[repr(C, align(64))]
pub struct Running([RunLine; 64]);

#[repr(C, align(64))]
struct RunLine(AtomicU64);

fn running(r: &Region) -> &Running {
    // SAFETY: the table lies at RUNNING_OFF; its words are atomics.
    unsafe { r.at::<Running>(crate::region::RUNNING_OFF) }
}

/// Notes that we run on our CPU now; returns pid << 32 | CPU + 1.
pub fn note_running(r: &Region) -> u64 {
    let cpu = crate::sys::current_cpu();
    let pid = crate::proc::self_pid() as u32 as u64;
    let line = &running(r).0[(cpu as usize).wrapping_sub(1) % 64].0;
    if line.load(Ordering::Relaxed) != pid {
        line.store(pid, Ordering::Relaxed);
    }
    pid << 32 | cpu as u64
}

/// Whether `who` (pid << 32 | CPU + 1) runs on another CPU than ours, as far as we can tell.
pub fn running_elsewhere(r: &Region, who: u64) -> bool {
    let cpu = who as u32;
    cpu != 0
        && crate::sys::multi_cpu()
        && cpu != crate::sys::current_cpu()
        && running(r).0[(cpu as usize - 1) % 64].0.load(Ordering::Relaxed) == who >> 32
}

/// Where the lockers of an object last ran: pid << 32 | CPU + 1 of the last locker, and of
/// the last one before it that was another process (where a waker is likely to run).
#[repr(C)]
#[derive(Default)]
pub struct CpuNote {
    last: AtomicU64,
    other: AtomicU64,
}

impl CpuNote {
    /// Records where we run (with the lock held, `me` from [`note_running`]); returns the last
    /// other process that locked (pid << 32 | CPU + 1, or 0).
    pub fn note(&self, me: u64) -> u64 {
        // Load and store, not a locked swap: the lock serialises the writers.
        let last = self.last.load(Ordering::Relaxed);
        if last != me {
            self.last.store(me, Ordering::Relaxed);
        }
        let peer = if last >> 32 != me >> 32 {
            if last != 0 {
                self.other.store(last, Ordering::Relaxed);
            }
            last
        } else {
            self.other.load(Ordering::Relaxed)
        };
        if peer >> 32 == me >> 32 { 0 } else { peer }
    }
}

/// How a waiter waits a little for `moved` before its futex sleep: a budget per call.
///
/// With its likely waker `peer` known ([`Brief::wait`]) it spins while the peer runs on another
/// CPU (at most [`SPIN_NS`] in all), and yields while the peer shares its CPU. Without
/// ([`Brief::wait_unknown`]) it yields while other processes share its CPU and spins while
/// none does. A yield that comes back at once found nobody else to run: yielding again would
/// only burn the CPU. With more processes than CPUs a yielder stays runnable and takes its
/// turn among the others, which costs a context switch (about 2.5 us here) where a futex sleep
/// costs the switch, the waker's wake-up call and the sleeper's wait: independent pairs
/// ping-ponging through shared words on one CPU ran at 211k round trips/s yielding and 97k
/// sleeping on futexes (the kernel's semop: 110-128k).
pub struct Brief {
    start: i64,
    yields: u32,
    max_yields: u32,
}

/// A yield that comes back sooner than this switched to nobody.
const ALONE_NS: i64 = 1_000;

impl Brief {
    /// A budget of `max_yields` yields and [`SPIN_NS`] of spinning.
    pub fn new(max_yields: u32) -> Brief {
        Brief { start: 0, yields: 0, max_yields }
    }

    /// Waits for `moved`, woken by `peer` (pid << 32 | CPU + 1, 0: unknown); true when it
    /// holds, false when the waiter should sleep.
    pub fn wait(&mut self, r: &Region, peer: u64, moved: &dyn Fn() -> bool) -> bool {
        if peer == 0 || moved() {
            return moved();
        }
        if running_elsewhere(r, peer) {
            if self.start == 0 {
                self.start = crate::sys::monotonic_ns();
            }
            return spin_while_running(r, peer, self.start, moved);
        }
        if peer as u32 != crate::sys::current_cpu() && crate::sys::multi_cpu() {
            return false;
        }
        while self.yields < self.max_yields {
            self.yields += 1;
            match try_yield(moved) {
                Yield::Moved => return true,
                Yield::Shared => {}
                Yield::Alone | Yield::Skipped => return false,
            }
        }
        false
    }
}

impl Brief {
    /// Waits for `moved` without knowing who will make it hold (a lock-free semop that would
    /// block): yields while other processes share our CPU; while none does (the last yield
    /// came back at once), spins, since a waker that runs at all runs on another CPU. True
    /// when `moved` holds, false when the waiter should queue and sleep.
    pub fn wait_unknown(&mut self, moved: &dyn Fn() -> bool) -> bool {
        loop {
            if moved() {
                return true;
            }
            if crate::sys::multi_cpu() && ALONE.load(Ordering::Relaxed) {
                if self.start == 0 {
                    self.start = crate::sys::monotonic_ns();
                }
                let mut i = 0u32;
                while !moved() {
                    core::hint::spin_loop();
                    i = i.wrapping_add(1);
                    if i.is_multiple_of(32) && crate::sys::monotonic_ns() - self.start > SPIN_NS {
                        // Nobody answered: the next wait yields first, to see who shares the CPU.
                        ALONE.store(false, Ordering::Relaxed);
                        return false;
                    }
                }
                return true;
            }
            if self.yields >= self.max_yields {
                return false;
            }
            self.yields += 1;
            match try_yield(moved) {
                Yield::Moved => return true,
                Yield::Shared | Yield::Alone => {}
                Yield::Skipped => return false,
            }
        }
    }

    /// What `moved` said came true was taken by another waiter: yields that end so are not
    /// paying off (others contend for the same thing, and the queue should order them).
    pub fn lost(&mut self) {
        if self.yields > 0 {
            let _ = YIELD_SCORE.fetch_sub(2, Ordering::Relaxed);
        }
    }
}

/// The last yield of this process came back at once: nobody else wanted its CPU.
static ALONE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The brief wait of a locked sleep (see [`Brief`]): one yield at most.
pub fn wait_briefly(r: &Region, peer: u64, moved: impl Fn() -> bool) -> bool {
    Brief::new(1).wait(r, peer, &moved)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Yield {
    /// `moved` holds after the yield.
    Moved,
    /// Others ran meanwhile; `moved` does not hold yet.
    Shared,
    /// Nobody else was ready to run on our CPU.
    Alone,
    /// Yields have not been paying off in this process: none made.
    Skipped,
}

/// How yields have been paying off in this process (see [`try_yield`]).
static YIELD_SCORE: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(4);

/// One yield if yields have been paying off in this process (a score it keeps, tried again
/// now and then when they have not).
fn try_yield(moved: &dyn Fn() -> bool) -> Yield {
    let score = YIELD_SCORE.load(Ordering::Relaxed);
    if score <= 0 {
        YIELD_SCORE.store(score + 1, Ordering::Relaxed);
        return Yield::Skipped;
    }
    let t0 = crate::sys::monotonic_ns();
    let _ = crate::sys::syscall6(libc::SYS_sched_yield, 0, 0, 0, 0, 0, 0);
    let alone = crate::sys::monotonic_ns() - t0 < ALONE_NS;
    ALONE.store(alone, Ordering::Relaxed);
    let out = if moved() {
        Yield::Moved
    } else if alone {
        Yield::Alone
    } else {
        Yield::Shared
    };
    // A yield that switched to others for nothing cost a context switch; one that came back
    // at once cost only the call.
    let score = match out {
        Yield::Moved => (score + 1).min(8),
        Yield::Shared => score - 2,
        _ => score,
    };
    YIELD_SCORE.store(score, Ordering::Relaxed);
    out
}

/// Spins until `moved`, while `peer` runs on another CPU, at most until [`SPIN_NS`] after
/// `start`; true when `moved` became true.
pub fn spin_while_running(r: &Region, peer: u64, start: i64, moved: &dyn Fn() -> bool) -> bool {
    if !running_elsewhere(r, peer) {
        return moved();
    }
    let mut i = 0u32;
    while !moved() {
        core::hint::spin_loop();
        i = i.wrapping_add(1);
        if i.is_multiple_of(32)
            && (crate::sys::monotonic_ns() - start > SPIN_NS || !running_elsewhere(r, peer))
        {
            return moved();
        }
    }
    true
}
