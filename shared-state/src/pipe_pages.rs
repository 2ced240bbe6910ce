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
//! page faults).

use crate::backing;
use crate::region::{PAGE_SIZE, PIPE_PAGES_OFF, PIPE_PAGES_SIZE, Region};
use crate::sys;
use core::sync::atomic::{AtomicU64, Ordering};

/// Orders 0..=20: the largest ring (2^19 slots, 2 GiB) plus its buffer table fits in 2^20 pages.
pub const ORDERS: usize = 21;
/// Pages in the area.
pub const POOL_PAGES: u64 = PIPE_PAGES_SIZE / PAGE_SIZE;
/// Written pages after its first that a freed run keeps resident.
pub const KEEP_WRITTEN: u64 = 4;

#[repr(C)]
pub struct PagePool {
    /// Pages below this have been handed out at least once.
    top: u64,
    /// First page + 1 of the first free run of each order; 0 for an empty list.
    free: [u64; ORDERS],
    /// Pages in runs currently allocated (for `ipcshim status`).
    pub pages_in_use: AtomicU64,
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
    /// their memory (`crate::backing`: the ring's buffer table); None when the area is
    /// exhausted or the file system has no room. `intent` is told the run before the pool lets
    /// go of it: a holder killed from then on leaves the run where recovery finds it (see
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
    ) -> Option<u64> {
        if order >= ORDERS || reserve > 1 << order {
            return None;
        }
        let head = self.free[order];
        let page = match head.checked_sub(1) {
            Some(page) if self.valid(page, order) => {
                // A free run's first page was written before (it holds the link): it has memory,
                // and only the pages after it may need theirs (a freed ring's later pages go
                // back to the file system).
                let more = reserve.saturating_sub(1) * PAGE_SIZE;
                backing::populate(region, PIPE_PAGES_OFF + (page + 1) * PAGE_SIZE, more).ok()?;
                intent(page);
                self.free[order] = Self::link(region, page).load(Ordering::Relaxed);
                page
            }
            _ => {
                // An empty list, or a corrupt one: dropped rather than followed.
                self.free[order] = 0;
                let page = self.top;
                if page + (1 << order) > POOL_PAGES {
                    return None;
                }
                backing::populate(region, PIPE_PAGES_OFF + page * PAGE_SIZE, reserve * PAGE_SIZE).ok()?;
                intent(page);
                self.top = page + (1 << order);
                page
            }
        };
        // SAFETY: the run is inside the area and now ours alone.
        unsafe { core::ptr::write_bytes(page_addr(region, page) as *mut u8, 0, PAGE_SIZE as usize) };
        self.pages_in_use.fetch_add(1 << order, Ordering::Relaxed);
        Some(page)
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

    /// Returns a run obtained from `alloc` (after [`release`]). A run that is not one is ignored.
    ///
    /// # Safety
    /// The caller holds the pipe namespace lock and nobody uses the run any more.
    pub unsafe fn free(&mut self, region: &Region, page: u64, order: usize) {
        if !self.valid(page, order) {
            return;
        }
        Self::link(region, page).store(self.free[order], Ordering::Relaxed);
        self.free[order] = page + 1;
        let _ = self
            .pages_in_use
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1 << order)));
    }
}

/// Gives the memory of a run's pages after the first back to the system, unless `written` (how
/// many of them may have been written; u64::MAX: unknown) is at most [`KEEP_WRITTEN`]. Called
/// by the run's owner before freeing it.
pub fn release(region: &Region, page: u64, order: usize, written: u64) {
    if written > KEEP_WRITTEN && order > 0 && order < ORDERS && page + (1 << order) <= POOL_PAGES {
        let len = ((1u64 << order) - 1) * PAGE_SIZE;
        // On ramfs, which cannot punch holes, the pages simply stay.
        let _ = sys::madvise(page_addr(region, page + 1), len as usize, libc::MADV_REMOVE);
    }
}
