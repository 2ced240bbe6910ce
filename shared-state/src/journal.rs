//! The undo journal behind the namespace locks of semaphores and message queues.
//!
//! Every store made while holding the lock is journalled first (the old value of the 8-byte
//! word), and the journal is emptied just before unlocking: a holder killed at any instant
//! leaves a journal that the next locker replays backwards, so each operation happens entirely
//! or not at all.

use crate::region::{PAGE_SIZE, Region, TOTAL_SIZE};
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering, compiler_fence};

#[repr(C)]
struct JournalEntry {
    off: u64,
    old: u64,
}

/// One family's journal.
pub(crate) struct Journal<'a> {
    r: &'a Region,
    /// Entries written by the current holder; 0 outside a locked section.
    len: &'a AtomicU64,
    /// Region offset of the first entry, and how many fit.
    off: u64,
    max: u64,
    /// The family's namespace words in the header page that may be journalled (all other
    /// journalled words lie past the header page).
    ns_words: Range<u64>,
}

impl<'a> Journal<'a> {
    /// The journal of a namespace whose journalled header words run from `first` up to its
    /// `len` word, with `max` entries at region offset `off`.
    pub fn new(r: &'a Region, first: *const u8, len: &'a AtomicU64, off: u64, max: u64) -> Journal<'a> {
        let base = r.base() as u64;
        let ns_words = first as u64 - base..len as *const AtomicU64 as u64 - base;
        Journal { r, len, off, max, ns_words }
    }

    #[allow(clippy::mut_from_ref)]
    fn entry(&self, i: u64) -> &mut JournalEntry {
        // SAFETY: i < max (callers), and the journal area holds `max` entries.
        unsafe {
            self.r.at::<JournalEntry>(self.off + i.min(self.max - 1) * size_of::<JournalEntry>() as u64)
        }
    }

    /// Saves the 8-byte words covering `[p, p + len)` before they are changed.
    pub fn save(&self, p: *const u8, len: usize) {
        let base = self.r.base();
        let end = p as usize - base + len;
        let mut off = (p as usize - base) & !7;
        while off < end {
            let n = self.len.load(Ordering::Relaxed);
            // A full journal, or no room for its page, leaves that word unprotected.
            let room = |n: u64| {
                let size = size_of::<JournalEntry>() as u64;
                n < self.max && self.r.reserve(self.off + n * size, size).is_ok()
            };
            if room(n) {
                let e = self.entry(n);
                e.off = off as u64;
                // SAFETY: `off` is an aligned word of the region (it covers a field we were
                // handed).
                e.old = unsafe { core::ptr::read_volatile((base + off) as *const u64) };
                compiler_fence(Ordering::SeqCst);
                self.len.store(n + 1, Ordering::Release);
                compiler_fence(Ordering::SeqCst);
            }
            off += 8;
        }
    }

    /// Undoes what a killed holder left half done.
    pub fn rollback(&self) {
        let n = self.len.load(Ordering::Acquire).min(self.max);
        for i in (0..n).rev() {
            let e = self.entry(i);
            let allowed = e.off >= PAGE_SIZE || self.ns_words.contains(&e.off);
            if e.off.is_multiple_of(8) && e.off + 8 <= TOTAL_SIZE && allowed {
                // SAFETY: an aligned word of the region that may be journalled (checked above).
                unsafe { core::ptr::write_volatile((self.r.base() + e.off as usize) as *mut u64, e.old) };
            }
        }
        self.len.store(0, Ordering::Release);
    }
}

/// Where the lockers of a namespace last ran: pid << 32 | CPU + 1 of the last locker, and of
/// the last one before it that was another process (where a waker is likely to run).
#[repr(C)]
#[derive(Default)]
pub struct CpuNote {
    last: AtomicU64,
    other: AtomicU64,
}

impl CpuNote {
    /// Records where we run (with the lock held); returns (CPU + 1 of the last other process
    /// that locked, or 0, and ours).
    pub fn note(&self) -> (u32, u32) {
        let cpu = crate::sys::current_cpu();
        let me = (crate::proc::self_pid() as u32 as u64) << 32 | cpu as u64;
        // Load and store, not a locked swap: the lock serialises the writers.
        let last = self.last.load(Ordering::Relaxed);
        self.last.store(me, Ordering::Relaxed);
        let peer = if last >> 32 != me >> 32 {
            self.other.store(last, Ordering::Relaxed);
            last
        } else {
            self.other.load(Ordering::Relaxed)
        };
        (if peer >> 32 == me >> 32 { 0 } else { peer as u32 }, cpu)
    }
}
