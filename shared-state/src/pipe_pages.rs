//! The pipe page area: runs of 2^order pages that hold pipe rings.
//!
//! A small page allocator: one free list per order, a bump pointer behind them, no splitting
//! or merging (almost every ring is the default size, so freed runs are reused as they are).
//! Every operation is published by one store (a list head or the bump pointer), so a holder
//! of the pipe namespace lock killed mid-operation leaks at most one run. A free list is linked
//! through the first word of each free run; the rest of a freed run is handed back to the
//! system (MADV_REMOVE punches the hole in the region file), unless at most
//! [`KEEP_WRITTEN`] of its pages were ever written: a freed ring costs at most that many pages
//! and one, and a connection that carried little costs no hole punch (nor its next user the
//! page faults). Larger freed runs keep their memory too while all such pages stay within
//! [`keep_budget`] (a server making and closing connections that each carry a few hundred
//! KB would otherwise punch and populate every page of every one of them, where the kernel's
//! allocator hands out memory it just freed); a run that cannot get memory gives all of it
//! back first ([`PagePool::reclaim`]).

use crate::backing;
use crate::region::{PAGE_SIZE, PIPE_PAGES_OFF, PIPE_PAGES_SIZE, Region};
use crate::sys::{self, Errno};
use core::sync::atomic::{AtomicU64, Ordering};

/// Orders 0..=20: the largest ring (2^19 slots, 2 GiB) plus its buffer table fits in 2^20 pages.
pub const ORDERS: usize = 21;
/// Pages in the area.
pub const POOL_PAGES: u64 = PIPE_PAGES_SIZE / PAGE_SIZE;
/// Written pages after its first that a freed run keeps resident.
pub const KEEP_WRITTEN: u64 = 4;
/// Beside a free run's link, its second word: `KEPT | n` when its first n pages still have
/// their memory (they were populated and not given back), so that its next user need not
/// populate them again; anything else: only its first page.
const KEPT: u64 = 0x4b45_5054 << 32;

#[repr(C)]
pub struct PagePool {
    /// Pages below this have been handed out at least once.
    top: u64,
    /// First page + 1 of the first free run of each order; 0 for an empty list.
    free: [u64; ORDERS],
    /// Pages in runs currently allocated (for `ipcshim status`).
    pub pages_in_use: AtomicU64,
    /// Pages after their first that free runs keep (see [`keep_budget`]).
    kept_pages: AtomicU64,
}

/// The pages free runs may keep beyond their first: at most 4 MiB, and a 32nd of the file
/// system the region lives on (a container's 64 MiB `/dev/shm`: 2 MiB).
pub fn keep_budget(region: &Region) -> u64 {
    (backing::fs_pages(region) / 32).min(1024)
}

/// Address of page `page` of the area.
pub fn page_addr(region: &Region, page: u64) -> usize {
    region.base() + (PIPE_PAGES_OFF + page * PAGE_SIZE) as usize
}

impl PagePool {
    fn valid(&self, page: u64, order: usize) -> bool {
        order < ORDERS && page.checked_add(1 << order).is_some_and(|end| end <= self.top.min(POOL_PAGES))
    }

    fn link(region: &Region, page: u64) -> &AtomicU64 {
        // SAFETY: `page` is inside the area (callers check `valid`); the first word of a run is
        // 8-aligned and only used as the free-list link while the run is free.
        unsafe { &*(page_addr(region, page) as *const AtomicU64) }
    }

    /// A run of 2^order pages whose first page is zeroed and whose first `reserve` pages have
    /// their memory (`crate::backing`: the ring's buffer table), with how many of its first
    /// pages have it (at least `reserve`: a reused run may have kept more); None when the area
    /// is exhausted or the file system has no room. `intent` is told the run before the pool
    /// lets go of it: a holder killed from then on leaves the run where recovery finds it (see
    /// [`PagePool::allocated`]).
    ///
    /// # Safety
    /// The caller holds the pipe namespace lock; `self` is the region's own pool.
    pub unsafe fn alloc(
        &mut self,
        region: &Region,
        order: usize,
        reserve: u64,
        intent: impl FnOnce(u64),
    ) -> Option<(u64, u64)> {
        if order >= ORDERS || reserve > 1 << order {
            return None;
        }
        let head = self.free[order];
        // A free run's first page was written before (it holds the link): it has memory.
        let (page, kept) = match head.checked_sub(1) {
            Some(page) if self.valid(page, order) => {
                let kept = Self::kept(region, page).load(Ordering::Relaxed);
                let kept = if kept & !0xffff_ffff == KEPT { (kept as u32 as u64).min(1 << order) } else { 1 };
                if kept < reserve {
                    self.populate(region, PIPE_PAGES_OFF + page * PAGE_SIZE, reserve * PAGE_SIZE).ok()?;
                }
                let _ = self
                    .kept_pages
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(kept - 1)));
                intent(page);
                self.free[order] = Self::link(region, page).load(Ordering::Relaxed);
                (page, kept.max(reserve))
            }
            _ => {
                // An empty list, or a corrupt one: dropped rather than followed.
                self.free[order] = 0;
                let page = self.top;
                if page + (1 << order) > POOL_PAGES {
                    return None;
                }
                self.populate(region, PIPE_PAGES_OFF + page * PAGE_SIZE, reserve * PAGE_SIZE).ok()?;
                intent(page);
                self.top = page + (1 << order);
                (page, reserve.max(1))
            }
        };
        // SAFETY: the run is inside the area and now ours alone.
        unsafe { core::ptr::write_bytes(page_addr(region, page) as *mut u8, 0, PAGE_SIZE as usize) };
        self.pages_in_use.fetch_add(1 << order, Ordering::Relaxed);
        Some((page, kept))
    }

    /// `backing::populate`, after giving back what free runs keep if the file system is full.
    pub fn populate(&mut self, region: &Region, off: u64, len: u64) -> Result<(), Errno> {
        backing::populate(region, off, len).or_else(|e| {
            if e == libc::ENOSPC && self.reclaim(region) {
                backing::populate(region, off, len)
            } else {
                Err(e)
            }
        })
    }

    /// Gives back the memory free runs keep beyond their first page; whether there was any.
    pub fn reclaim(&mut self, region: &Region) -> bool {
        if self.kept_pages.swap(0, Ordering::Relaxed) == 0 {
            return false;
        }
        for order in 1..ORDERS {
            let mut next = self.free[order];
            // Bounded as `allocated`'s walk: a corrupt list is not followed for ever.
            for _ in 0..POOL_PAGES {
                let Some(page) = next.checked_sub(1).filter(|&p| self.valid(p, order)) else { break };
                let kept = Self::kept(region, page).load(Ordering::Relaxed);
                if kept & !0xffff_ffff == KEPT && kept as u32 > 1 {
                    release(region, page, order, u64::MAX);
                    Self::kept(region, page).store(KEPT | 1, Ordering::Relaxed);
                }
                next = Self::link(region, page).load(Ordering::Relaxed);
            }
        }
        true
    }

    /// Whether a freed run whose first `have` pages have memory may keep them all: within
    /// [`keep_budget`].
    pub fn may_keep(&self, region: &Region, have: u64) -> bool {
        self.kept_pages.load(Ordering::Relaxed) + have.saturating_sub(1) <= keep_budget(region)
    }

    /// The second word of a run's first page (see [`KEPT`]).
    fn kept(region: &Region, page: u64) -> &AtomicU64 {
        // SAFETY: as `link`: the second word of the run's first page, used so while it is free.
        unsafe { &*((page_addr(region, page) + 8) as *const AtomicU64) }
    }

    /// Whether the run at `page` of `order` is out of the pool: handed out and not freed (a
    /// walk of the free list: for recovery only).
    pub fn allocated(&self, region: &Region, page: u64, order: usize) -> bool {
        if !self.valid(page, order) {
            return false;
        }
        let mut next = self.free[order];
        for _ in 0..POOL_PAGES {
            match next.checked_sub(1) {
                Some(p) if p == page => return false,
                Some(p) if self.valid(p, order) => next = Self::link(region, p).load(Ordering::Relaxed),
                _ => return true,
            }
        }
        true
    }

    /// Sets the count of pages in use (recovery recounts them from the objects).
    pub fn set_in_use(&self, pages: u64) {
        self.pages_in_use.store(pages, Ordering::Relaxed);
    }

    /// Returns a run obtained from `alloc` (after [`release`]), whose first `kept` pages still
    /// have their memory (1 when not known). A run that is not one is ignored.
    ///
    /// # Safety
    /// The caller holds the pipe namespace lock and nobody uses the run any more.
    pub unsafe fn free(&mut self, region: &Region, page: u64, order: usize, kept: u64) {
        if !self.valid(page, order) {
            return;
        }
        let kept = kept.clamp(1, 1 << order);
        Self::kept(region, page).store(KEPT | kept, Ordering::Relaxed);
        self.kept_pages.fetch_add(kept - 1, Ordering::Relaxed);
        Self::link(region, page).store(self.free[order], Ordering::Relaxed);
        self.free[order] = page + 1;
        let _ = self
            .pages_in_use
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1 << order)));
    }
}

/// Gives the memory of a run's pages after the first back to the system, unless `written` (how
/// many of them may have been written; u64::MAX: unknown) is at most [`KEEP_WRITTEN`]. Called
/// by the run's owner before freeing it; true when they were given back.
pub fn release(region: &Region, page: u64, order: usize, written: u64) -> bool {
    if written > KEEP_WRITTEN && order > 0 && order < ORDERS && page + (1 << order) <= POOL_PAGES {
        let len = ((1u64 << order) - 1) * PAGE_SIZE;
        // On ramfs, which cannot punch holes, the pages simply stay.
        let _ = sys::madvise(page_addr(region, page + 1), len as usize, libc::MADV_REMOVE);
        return true;
    }
    false
}
