//! The shim's half of an epoll instance (`fs/eventpoll.c`'s `eventpoll` and `epitem`): the
//! interests in shim objects. Interests in kernel fds stay in the kernel's own instance.
//!
//! The kernel instance also holds every shim interest, as its placeholder with the IN/OUT bits
//! masked off and a token as its data naming the object and the item here. So membership, the
//! errno paths of epoll_ctl and a placeholder's HUP/ERR stay the kernel's, and any process
//! holding the epoll fd finds the object through `/proc/self/fdinfo` (see the shim's `epoll`).
//! An object lives exactly as long as it has items: the instance's tokens are its name.
//!
//! Everything here changes under one robust lock per namespace. An item is reserved (one
//! store) before the kernel gets its token and published (one store) after; a MOD writes the
//! unused half of a double buffer and flips the selector (one store). A holder killed at any
//! point leaves every published item whole; the next locker frees reserved items, and objects
//! left without items.

use crate::lock::{LockGuard, RobustMutex};
use crate::region::{EPOLL_OFF, Region};
use crate::sys::Errno;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// epoll objects per namespace, and shim interests per object.
pub const EP_OBJS: u32 = 1024;
pub const EP_ITEMS: u32 = 128;

/// Item and object states: the low byte of `ident`, the generation above it.
const FREE: u64 = 0;
const RESERVED: u64 = 1;
const LIVE: u64 = 2;

/// `cfg` flags above the 32 event bits.
/// EPOLLONESHOT fired: nothing is reported until a MOD (the kernel's `events &= EP_PRIVATE_BITS`).
pub const DISABLED: u64 = 1 << 32;
/// Added or modified since the last look: polled once whatever the edges (ep_insert, ep_modify).
pub const PENDING: u64 = 1 << 33;

#[repr(C)]
pub struct EpollNs {
    pub lock: RobustMutex,
    /// Bumped at every object creation: a process that found no object behind an epoll fd
    /// looks again only once it moved.
    pub created: AtomicU32,
    /// Live objects.
    pub live: AtomicU32,
    next: AtomicU32,
}

impl EpollNs {
    /// # Safety
    /// Only while the region is being created.
    pub unsafe fn init(this: *mut EpollNs) {
        // SAFETY: per the contract, nobody else uses the region yet.
        unsafe { RobustMutex::init(&raw mut (*this).lock) };
    }
}

/// One interest in a shim object (`struct epitem`).
#[repr(C)]
pub struct EpItem {
    ident: AtomicU64,
    /// What it watches: the shim fd's object and directions (the shim's encoding).
    pub target: AtomicU64,
    /// The fd number it was added with: the kernel keys an interest by (file, fd).
    pub fd: AtomicU32,
    sel: AtomicU32,
    /// Events (low 32 bits) | DISABLED | PENDING, and the data: double-buffered, `sel` picks.
    cfg: [AtomicU64; 2],
    data: [AtomicU64; 2],
    /// The target's edge counters when the item last left the ready list (EPOLLET).
    pub seen: AtomicU64,
    /// Place on the ready list: a level-triggered item goes to the tail each time it is reported.
    pub order: AtomicU64,
    /// The target's liveness generations when the kernel was last seen to hold the item.
    pub verified: AtomicU64,
}

/// One epoll instance's shim interests (`struct eventpoll`).
#[repr(C)]
pub struct EpObj {
    ident: AtomicU64,
    /// Interests in kernel fds (a closed one may still be counted: then only slower).
    pub kernel_items: AtomicU32,
    /// One past the highest item slot used.
    hwm: AtomicU32,
    nitems: AtomicU32,
    /// Bumped and woken on every change of the interests: sleepers look again.
    pub ctl_word: AtomicU32,
    order_seq: AtomicU64,
    /// Alternates whether the kernel's or the shim's ready fds come first.
    pub turn: AtomicU32,
    _pad: u32,
    /// CLOCK_BOOTTIME of the creation, in ns (compared with process start times).
    born: AtomicU64,
    items: [EpItem; EP_ITEMS as usize],
}

/// Names an object: slot and generation (14 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpHandle {
    pub idx: u32,
    pub generation: u32,
}

/// Names an item of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemRef {
    pub obj: EpHandle,
    pub idx: u32,
    pub generation: u32,
}

const GEN_MASK: u32 = (1 << 14) - 1;
/// A token's top 16 bits: no user pointer has them (not canonical).
const TOKEN_MAGIC: u64 = 0xe90c;

impl ItemRef {
    /// The kernel-side data of the item: magic | obj (10) | obj generation (14) | item (8) |
    /// item generation (16).
    pub fn token(self) -> u64 {
        TOKEN_MAGIC << 48
            | (self.obj.idx as u64) << 38
            | ((self.obj.generation & GEN_MASK) as u64) << 24
            | (self.idx as u64) << 16
            | (self.generation & 0xffff) as u64
    }

    pub fn from_token(t: u64) -> Option<ItemRef> {
        if t >> 48 != TOKEN_MAGIC {
            return None;
        }
        let obj = EpHandle { idx: (t >> 38 & 0x3ff) as u32, generation: (t >> 24) as u32 & GEN_MASK };
        let (idx, generation) = ((t >> 16 & 0xff) as u32, (t & 0xffff) as u32);
        (obj.idx < EP_OBJS && idx < EP_ITEMS).then_some(ItemRef { obj, idx, generation })
    }
}

impl EpHandle {
    pub fn to_bits(self) -> u64 {
        (self.generation as u64) << 16 | self.idx as u64
    }

    pub fn from_bits(b: u64) -> EpHandle {
        EpHandle { idx: (b & 0xffff) as u32, generation: (b >> 16) as u32 & GEN_MASK }
    }
}

fn ident(generation: u32, state: u64) -> u64 {
    (generation as u64) << 8 | state
}

pub fn ns(r: &Region) -> &EpollNs {
    // SAFETY: the epoll area starts with the EpollNs, initialised with the region.
    unsafe { r.at::<EpollNs>(EPOLL_OFF) }
}

/// Object `idx`, if its slot was ever used (one that was not is free, and is not read);
/// `fill`: about to be used, so it is reserved first (None without room).
fn slot(r: &Region, idx: u32, fill: bool) -> Option<&EpObj> {
    let off = EPOLL_OFF + OBJS_OFF + idx as u64 * size_of::<EpObj>() as u64;
    let size = size_of::<EpObj>() as u64;
    let usable = if fill { r.reserve(off, size).is_ok() } else { r.reserved(off, size) };
    // SAFETY: idx < EP_OBJS: inside the epoll area, which the region maps; the page has memory.
    usable.then(|| unsafe { &*r.at::<EpObj>(off) })
}

/// Where the objects start inside the epoll area.
pub const OBJS_OFF: u64 = 4096;
pub const AREA_SIZE: u64 = OBJS_OFF + EP_OBJS as u64 * size_of::<EpObj>() as u64;
const _: () = assert!(size_of::<EpollNs>() as u64 <= OBJS_OFF);

/// The live object `h`, if it still is.
pub fn obj(r: &Region, h: EpHandle) -> Option<&EpObj> {
    (h.idx < EP_OBJS)
        .then(|| slot(r, h.idx, false))
        .flatten()
        .filter(|o| o.ident.load(Ordering::Acquire) == ident(h.generation, LIVE))
}

/// The namespace's epoll lock held.
pub struct EpLock<'a> {
    _g: LockGuard<'a>,
}

/// Takes the lock; after a holder died, frees what it left half made.
pub fn lock(r: &Region) -> Result<EpLock<'_>, Errno> {
    let g = ns(r).lock.lock().map_err(|_| libc::ENOMEM)?;
    if g.recovered {
        r.header().counters.lock_recoveries.fetch_add(1, Ordering::Relaxed);
        for o in (0..EP_OBJS).filter_map(|i| slot(r, i, false)) {
            let id = o.ident.load(Ordering::Acquire);
            if id & 0xff != LIVE {
                continue;
            }
            let mut n = 0;
            for it in &o.items {
                let v = it.ident.load(Ordering::Acquire);
                if v & 0xff == RESERVED {
                    it.ident.store(v & !0xff | FREE, Ordering::Release);
                } else if v & 0xff == LIVE {
                    n += 1;
                }
            }
            o.nitems.store(n, Ordering::Release);
            if n == 0 {
                free_obj(r, o);
            }
        }
    }
    Ok(EpLock { _g: g })
}

fn free_obj(r: &Region, o: &EpObj) {
    let id = o.ident.load(Ordering::Acquire);
    o.ident.store(id & !0xff | FREE, Ordering::Release);
    ns(r).live.fetch_sub(1, Ordering::AcqRel);
}

/// A new object with `kernel_items` interests in kernel fds. When the table is full, items
/// whose targets are gone are freed (`alive` says whether one still is), and `collect` may
/// free the objects of instances nobody holds any more (see [`free_unheld`]); ENOMEM if
/// that frees none.
pub fn create(
    r: &Region,
    l: &EpLock,
    kernel_items: u32,
    alive: &dyn Fn(u64) -> bool,
    collect: &dyn Fn(&EpLock),
) -> Result<EpHandle, Errno> {
    let ns = ns(r);
    for pass in 0..2 {
        let start = ns.next.load(Ordering::Relaxed);
        // A free slot used before, else the first never used, reserved as it is taken
        // (without room for it, the table is full).
        let found = (0..EP_OBJS)
            .map(|k| (start + k) % EP_OBJS)
            .find_map(|idx| {
                slot(r, idx, false)
                    .filter(|o| o.ident.load(Ordering::Acquire) & 0xff == FREE)
                    .map(|o| (idx, o))
            })
            .or_else(|| {
                let idx = (0..EP_OBJS).find(|&i| slot(r, i, false).is_none())?;
                slot(r, idx, true).map(|o| (idx, o))
            });
        if let Some((idx, o)) = found {
            let id = o.ident.load(Ordering::Acquire);
            let generation = ((id >> 8) as u32 + 1) & GEN_MASK;
            for it in &o.items {
                let v = it.ident.load(Ordering::Relaxed);
                it.ident.store(v & !0xff | FREE, Ordering::Relaxed);
            }
            o.hwm.store(0, Ordering::Relaxed);
            o.nitems.store(0, Ordering::Relaxed);
            o.kernel_items.store(kernel_items, Ordering::Relaxed);
            let t = crate::sys::clock_gettime(libc::CLOCK_BOOTTIME);
            o.born.store(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64, Ordering::Relaxed);
            o.ident.store(ident(generation, LIVE), Ordering::Release);
            ns.next.store((idx + 1) % EP_OBJS, Ordering::Relaxed);
            ns.live.fetch_add(1, Ordering::AcqRel);
            ns.created.fetch_add(1, Ordering::AcqRel);
            return Ok(EpHandle { idx, generation });
        }
        if pass == 0 {
            reclaim(r, l, alive);
            collect(l);
        }
    }
    Err(libc::ENOMEM)
}

/// Frees items whose target is gone (so the kernel no longer holds them either), and objects
/// left empty.
fn reclaim(r: &Region, l: &EpLock, alive: &dyn Fn(u64) -> bool) {
    for i in 0..EP_OBJS {
        let Some(o) = slot(r, i, false) else { continue };
        let id = o.ident.load(Ordering::Acquire);
        if id & 0xff != LIVE {
            continue;
        }
        let h = EpHandle { idx: i, generation: (id >> 8) as u32 };
        for k in 0..o.hwm.load(Ordering::Acquire) {
            let it = &o.items[k as usize];
            let v = it.ident.load(Ordering::Acquire);
            if v & 0xff == LIVE && !alive(it.target.load(Ordering::Relaxed)) {
                remove(r, l, ItemRef { obj: h, idx: k, generation: (v >> 8) as u32 });
            }
        }
    }
}

/// Frees every object born after `keep_born_before` that `held` does not name: its epoll
/// instance is gone (no process has an fd of it), so are its interests.
pub fn free_unheld(r: &Region, l: &EpLock, keep_born_before: u64, held: &dyn Fn(EpHandle) -> bool) {
    for i in 0..EP_OBJS {
        let Some(o) = slot(r, i, false) else { continue };
        let id = o.ident.load(Ordering::Acquire);
        let h = EpHandle { idx: i, generation: (id >> 8) as u32 };
        if id & 0xff == LIVE && !held(h) && o.born.load(Ordering::Relaxed) >= keep_born_before {
            // Removing one item leaves the others' idents as they were.
            for k in 0..EP_ITEMS {
                let v = o.items[k as usize].ident.load(Ordering::Acquire);
                if v & 0xff != FREE {
                    remove(r, l, ItemRef { obj: h, idx: k, generation: (v >> 8) as u32 });
                }
            }
        }
    }
}

/// Reserves an item of `h` for `target` added as `fd` (its token goes to the kernel next).
/// ENOSPC when the object is full.
pub fn reserve(r: &Region, _l: &EpLock, h: EpHandle, target: u64, fd: i32) -> Result<ItemRef, Errno> {
    let o = obj(r, h).ok_or(libc::EBADF)?;
    for (k, it) in o.items.iter().enumerate() {
        let v = it.ident.load(Ordering::Acquire);
        if v & 0xff != FREE {
            continue;
        }
        let generation = ((v >> 8) as u32).wrapping_add(1) & 0xffff;
        it.target.store(target, Ordering::Relaxed);
        it.fd.store(fd as u32, Ordering::Relaxed);
        it.ident.store(ident(generation, RESERVED), Ordering::Release);
        o.nitems.fetch_add(1, Ordering::AcqRel);
        if k as u32 >= o.hwm.load(Ordering::Relaxed) {
            o.hwm.store(k as u32 + 1, Ordering::Release);
        }
        return Ok(ItemRef { obj: h, idx: k as u32, generation });
    }
    Err(libc::ENOSPC)
}

fn item(r: &Region, i: ItemRef) -> Option<&EpItem> {
    let it = &obj(r, i.obj)?.items[i.idx as usize];
    let v = it.ident.load(Ordering::Acquire);
    (v >> 8 == i.generation as u64 && v & 0xff != FREE).then_some(it)
}

/// Publishes a reserved item with its first events, data, edge snapshot and verification.
pub fn publish(r: &Region, _l: &EpLock, i: ItemRef, events: u32, data: u64, seen: u64, verified: u64) {
    let Some(o) = obj(r, i.obj) else { return };
    let Some(it) = item(r, i) else { return };
    let sel = it.sel.load(Ordering::Relaxed) as usize & 1;
    it.cfg[sel].store(events as u64 | PENDING, Ordering::Relaxed);
    it.data[sel].store(data, Ordering::Relaxed);
    it.seen.store(seen, Ordering::Relaxed);
    it.verified.store(verified, Ordering::Relaxed);
    it.order.store(o.order_seq.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
    it.ident.store(ident(i.generation, LIVE), Ordering::Release);
    bump(o);
}

/// Frees an item (reserved or live); the object goes with its last one.
pub fn remove(r: &Region, _l: &EpLock, i: ItemRef) {
    let Some(o) = obj(r, i.obj) else { return };
    let Some(it) = item(r, i) else { return };
    it.ident.store(ident(i.generation, FREE), Ordering::Release);
    if o.nitems.fetch_sub(1, Ordering::AcqRel) == 1 {
        free_obj(r, o);
    } else {
        bump(o);
    }
}

/// A MOD: new events and data, polled once again, ONESHOT re-armed.
pub fn modify(r: &Region, _l: &EpLock, i: ItemRef, events: u32, data: u64, seen: u64) {
    let Some(it) = item(r, i) else { return };
    let sel = it.sel.load(Ordering::Relaxed) as usize & 1;
    it.cfg[sel ^ 1].store(events as u64 | PENDING, Ordering::Relaxed);
    it.data[sel ^ 1].store(data, Ordering::Relaxed);
    it.seen.store(seen, Ordering::Relaxed);
    it.sel.store((sel ^ 1) as u32, Ordering::Release);
    if let Some(o) = obj(r, i.obj) {
        bump(o);
    }
}

/// Sleepers of the object look again.
fn bump(o: &EpObj) {
    o.ctl_word.fetch_add(1, Ordering::SeqCst);
    let _ =
        crate::sys::futex(o.ctl_word.as_ptr(), libc::FUTEX_WAKE, i32::MAX as u32, core::ptr::null(), 0, 0);
}

/// A live item as a waiter sees it.
#[derive(Clone, Copy)]
pub struct ItemView<'a> {
    pub at: ItemRef,
    pub item: &'a EpItem,
    /// events | DISABLED | PENDING
    pub cfg: u64,
    pub data: u64,
}

/// Every live item of `h`.
pub fn items(r: &Region, h: EpHandle) -> impl Iterator<Item = ItemView<'_>> {
    let o = obj(r, h);
    let n = o.map_or(0, |o| o.hwm.load(Ordering::Acquire));
    (0..n).filter_map(move |k| {
        let it = &o?.items[k as usize];
        let v = it.ident.load(Ordering::Acquire);
        if v & 0xff != LIVE {
            return None;
        }
        let sel = it.sel.load(Ordering::Acquire) as usize & 1;
        Some(ItemView {
            at: ItemRef { obj: h, idx: k, generation: (v >> 8) as u32 },
            item: it,
            cfg: it.cfg[sel].load(Ordering::Relaxed),
            data: it.data[sel].load(Ordering::Relaxed),
        })
    })
}

impl EpItem {
    /// Sets or clears cfg flags of the current half (one store).
    pub fn set_flags(&self, _l: &EpLock, set: u64, clear: u64) {
        let sel = self.sel.load(Ordering::Relaxed) as usize & 1;
        let v = self.cfg[sel].load(Ordering::Relaxed);
        self.cfg[sel].store((v | set) & !clear, Ordering::Release);
    }

    /// Moves it to the tail of the ready list.
    pub fn requeue(&self, o: &EpObj) {
        self.order.store(o.order_seq.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Whether the object's item `i` is (still) live.
pub fn is_live(r: &Region, i: ItemRef) -> bool {
    item(r, i).is_some_and(|it| it.ident.load(Ordering::Acquire) & 0xff == LIVE)
}
