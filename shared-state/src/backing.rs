//! Space before promises: every page of the region gets its memory before it is first touched.
//!
//! The region is a sparse file on tmpfs. A page that tmpfs cannot allocate faults with SIGBUS
//! at first touch, a read as much as a write, in whichever process touches it (NOTES §9). So
//! no page is touched before it was populated with `MADV_POPULATE_WRITE`, which allocates it
//! or fails with an error the caller can report (EFAULT: the file system is full, here
//! ENOSPC). Fixed tables and heaps are reserved a page at a time as they are first used, and
//! remembered in a bitmap at the end of the region (one bit per page; the bitmap's own pages
//! in the header), so a page already reserved costs one load. A page whose bit is clear was
//! never touched and reads as zeros: scans skip it instead of reading it ([`Region::reserved`]).
//!
//! The bitmap covers 128 MiB of the region per page, so the tables one call uses have their
//! bits on pages of their own (a sem call's and a message's: six of them), each a page fault
//! for a fresh process. The header, which every call reads, keeps a copy of the bitmap words
//! read last (`Header::backing_hot`): a bit is never cleared, so a copy never says reserved
//! wrongly, and one that says not yet is checked against the bitmap.
//!
//! Segment memory and pipe ring pages are given back to the system when freed, so they are
//! not in the bitmap: their owners populate them when they allocate them ([`populate`]).

use crate::region::{BACKING_BYTES, BACKING_OFF, PAGE_SIZE, Region};
use crate::sys::{self, Errno};
use core::sync::atomic::{AtomicU64, Ordering};

/// Pages one page of the bitmap covers.
const PAGES_PER_BITMAP_PAGE: u64 = PAGE_SIZE * 8;

/// Copies of bitmap parts in the header: each holds 32 pages' bits (low half) and which 32
/// (group + 1, high half; 0: none).
pub const HOT_WORDS: usize = 64;
const _: () = assert!(HOT_WORDS.is_power_of_two());

/// Allocates the memory of the region's pages `[off, off + len)` (rounded out to pages). ENOSPC
/// when the file system is full, ENOMEM when memory is. A kernel without MADV_POPULATE_WRITE
/// (before 5.14) reserves nothing: pages then get their memory when touched, as before.
pub fn populate(region: &Region, off: u64, len: u64) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    let start = off & !(PAGE_SIZE - 1);
    let end = (off + len).next_multiple_of(PAGE_SIZE);
    let mut tries = 0;
    loop {
        match sys::madvise(region.base() + start as usize, (end - start) as usize, libc::MADV_POPULATE_WRITE)
        {
            Ok(()) | Err(libc::EINVAL) => return Ok(()),
            // A SIGBUS it would have raised: no room in the file system.
            Err(libc::EFAULT) => return Err(libc::ENOSPC),
            // Interrupted by a signal, or a transient failure: what was done stays done.
            Err(libc::EINTR | libc::EAGAIN) if tries < 100 => tries += 1,
            Err(_) => return Err(libc::ENOMEM),
        }
    }
}

/// Pages of the file system the region lives on (learnt once per process; 0 if unknown).
pub fn fs_pages(region: &Region) -> u64 {
    static PAGES: AtomicU64 = AtomicU64::new(u64::MAX);
    let known = PAGES.load(Ordering::Relaxed);
    if known != u64::MAX {
        return known;
    }
    let pages = with_file(region, sys::fs_bytes).and_then(Result::ok).map_or(0, |b| b / PAGE_SIZE);
    PAGES.store(pages, Ordering::Relaxed);
    pages
}

/// Runs `f` with a descriptor of the region's file: the kept one once it was checked to still
/// be that file (the program could have replaced it), else one opened for it; None when the
/// file cannot be opened (the process changed user, say, before its first use).
fn with_file<T>(region: &Region, f: impl FnOnce(i32) -> T) -> Option<T> {
    if let Some(fd) = region.kept_file() {
        return Some(f(fd));
    }
    let mut path = [0u8; 512];
    let by_name = region
        .path_into(&mut path)
        .map(|n| sys::open(&path[..n + 1], libc::O_RDWR | libc::O_CLOEXEC, 0).ok());
    // A region made unnamed and linked later (O_TMPFILE) is named "#ino (deleted)" by the
    // descriptors a process inherits: the mapping itself then names it (root only).
    let fd = match by_name.flatten() {
        Some(fd) => fd,
        None => {
            let end = region.base() + crate::region::TOTAL_SIZE as usize;
            let n = map_files_path(region.base(), end, &mut path);
            sys::open(&path[..n], libc::O_RDWR | libc::O_CLOEXEC, 0).ok()?
        }
    };
    if let Ok(st) = sys::fstat(fd) {
        region.learn_file(&st);
    }
    let res = f(fd);
    sys::close(fd);
    Some(res)
}

/// `/proc/self/map_files/START-END` (lowercase hex, NUL-terminated) into `out`; its length
/// with the NUL.
fn map_files_path(start: usize, end: usize, out: &mut [u8; 512]) -> usize {
    const PREFIX: &[u8] = b"/proc/self/map_files/";
    out[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut n = PREFIX.len();
    for (i, v) in [start, end].into_iter().enumerate() {
        if i == 1 {
            out[n] = b'-';
            n += 1;
        }
        let digits = (usize::BITS - v.leading_zeros()).div_ceil(4).max(1) as usize;
        for d in (0..digits).rev() {
            out[n] = b"0123456789abcdef"[(v >> (4 * d)) & 0xf];
            n += 1;
        }
    }
    out[n] = 0;
    n + 1
}

/// Reserves `[off, off + len)` for a segment: `fallocate` gives the pages their memory without
/// writing them, so what the program has touched stays told apart (see [`written_pages`]).
/// Where the file cannot be opened, the pages are populated instead.
pub fn reserve_segment(region: &Region, off: u64, len: u64) -> Result<(), Errno> {
    match with_file(region, |fd| sys::fallocate(fd, 0, off, len)) {
        Some(Ok(())) => Ok(()),
        Some(Err(libc::ENOSPC)) => Err(libc::ENOSPC),
        // A file system without fallocate (ramfs), or no descriptor: populate, then drop the
        // pages from this process's page tables (its creator need not count them resident).
        _ => {
            populate(region, off, len)?;
            let _ = sys::madvise(region.base() + off as usize, len as usize, libc::MADV_DONTNEED);
            Ok(())
        }
    }
}

/// Pages of `[off, off + len)` that were written or read (the kernel's `nrpages` of a segment's
/// file): reserved pages nobody touched are holes to `SEEK_DATA`, as they are not up to date.
/// Without a descriptor, the pages in memory (which then count the untouched too).
pub fn written_pages(region: &Region, off: u64, len: u64) -> u64 {
    let end = off + len;
    let counted = with_file(region, |fd| {
        let mut pos = off;
        let mut total = 0;
        while pos < end {
            let Ok(data) = sys::lseek(fd, pos as i64, libc::SEEK_DATA) else { break };
            if data >= end {
                break;
            }
            let hole = sys::lseek(fd, data as i64, libc::SEEK_HOLE).unwrap_or(end).min(end);
            total += (hole - data).div_ceil(PAGE_SIZE);
            pos = hole;
        }
        total
    });
    counted.unwrap_or_else(|| {
        let mut vec = [0u8; 256];
        let (mut total, mut at) = (0, off);
        while at < end {
            let chunk = (end - at).min(vec.len() as u64 * PAGE_SIZE);
            let n = chunk.div_ceil(PAGE_SIZE) as usize;
            if sys::mincore(region.base() + at as usize, chunk as usize, &mut vec[..n]).is_ok() {
                total += vec[..n].iter().filter(|&&b| b & 1 != 0).count() as u64;
            }
            at += chunk;
        }
        total
    })
}

/// Gives the memory of `[off, off + len)` back (the range then reads as zeros); for ranges
/// that are not in the bitmap (segments, ring pages) and were populated for nothing.
pub fn discard(region: &Region, off: u64, len: u64) {
    // On ramfs, which cannot punch holes, the pages simply stay.
    let _ = sys::madvise(region.base() + off as usize, len as usize, libc::MADV_REMOVE);
}

impl Region {
    #[inline]
    fn l1(&self, bitmap_page: u64) -> (&AtomicU64, u64) {
        (&self.header().backing[(bitmap_page / 64) as usize], 1 << (bitmap_page % 64))
    }

    /// The bitmap word holding page `page`'s bit, if that part of the bitmap was ever written.
    #[inline]
    fn bitmap_word(&self, page: u64) -> Option<(&AtomicU64, u64)> {
        let (l1, bit) = self.l1(page / PAGES_PER_BITMAP_PAGE);
        if l1.load(Ordering::Acquire) & bit == 0 {
            return None;
        }
        let off = BACKING_OFF + page / 64 * 8;
        // SAFETY: inside the bitmap (page < BACKING_OFF / PAGE_SIZE), whose page is reserved.
        Some((unsafe { &*((self.base() + off as usize) as *const AtomicU64) }, 1 << (page % 64)))
    }

    #[inline]
    fn page_reserved(&self, page: u64) -> bool {
        let group = page / 32;
        // Two places a group's copy may be in (hashed: the tables start at round offsets,
        // whose groups are alike in their low bits), so that the thirty-odd groups a sem call
        // and a message use do not evict each other from one: a miss reads the bitmap, whose
        // pages lie at the region's far end, a page fault and page tables for a fresh process.
        let h = group.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let shift = 64 - HOT_WORDS.trailing_zeros();
        let (a, b) = ((h >> shift) as usize, (h.rotate_left(32) >> shift) as usize);
        let words = &self.header().backing_hot;
        let (va, vb) = (words[a].load(Ordering::Acquire), words[b].load(Ordering::Acquire));
        let tag = (group + 1) << 32;
        let bit = 1 << (page % 32);
        if va >> 32 == group + 1 && va & bit != 0 || vb >> 32 == group + 1 && vb & bit != 0 {
            return true;
        }
        let Some((w, wbit)) = self.bitmap_word(page) else { return false };
        let bits = w.load(Ordering::Acquire);
        if bits & wbit == 0 {
            return false;
        }
        // The bitmap word's half that holds this page, kept where the group already is, else
        // where nothing is, else in the second place (the first keeps what it holds).
        let new = tag | (bits >> (group % 2 * 32)) as u32 as u64;
        let into = if va >> 32 == group + 1 || va == 0 && vb >> 32 != group + 1 { a } else { b };
        if words[into].load(Ordering::Relaxed) != new {
            words[into].store(new, Ordering::Release);
        }
        true
    }

    /// Whether every page of `[off, off + len)` was reserved. One that was not has never been
    /// touched and holds zeros: a scan treats it so without reading it (which would need its
    /// memory).
    #[inline]
    pub fn reserved(&self, off: u64, len: u64) -> bool {
        debug_assert!(off + len <= BACKING_OFF);
        let first = off / PAGE_SIZE;
        let last = (off + len.max(1) - 1) / PAGE_SIZE;
        (first..=last).all(|p| self.page_reserved(p))
    }

    /// Reserves the pages of `[off, off + len)` before their first use (see the module
    /// comment); ENOSPC or ENOMEM when there is no room. Cheap when they already are.
    pub fn reserve(&self, off: u64, len: u64) -> Result<(), Errno> {
        debug_assert!(off + len <= BACKING_OFF);
        if len == 0 {
            return Ok(());
        }
        let first = off / PAGE_SIZE;
        let last = (off + len - 1) / PAGE_SIZE;
        let mut p = first;
        while p <= last {
            if self.page_reserved(p) {
                p += 1;
                continue;
            }
            let mut end = p + 1;
            while end <= last && !self.page_reserved(end) {
                end += 1;
            }
            populate(self, p * PAGE_SIZE, (end - p) * PAGE_SIZE)?;
            self.mark(p, end)?;
            p = end;
        }
        Ok(())
    }

    /// Sets the bits of pages `[from, to)`, reserving the bitmap's own pages first.
    fn mark(&self, from: u64, to: u64) -> Result<(), Errno> {
        let mut page = from;
        while page < to {
            let bp = page / PAGES_PER_BITMAP_PAGE;
            let (l1, bit) = self.l1(bp);
            if l1.load(Ordering::Acquire) & bit == 0 {
                populate(self, BACKING_OFF + bp * PAGE_SIZE, PAGE_SIZE)?;
                l1.fetch_or(bit, Ordering::AcqRel);
            }
            let (word, bit) = self.bitmap_word(page).expect("bitmap page reserved above");
            word.fetch_or(bit, Ordering::AcqRel);
            page += 1;
        }
        Ok(())
    }
}

const _: () = assert!(BACKING_BYTES * 8 * PAGE_SIZE >= BACKING_OFF);
