//! The heap: a size-class allocator inside the region, for variable-sized kernel objects.
//!
//! Every operation ends in a single store that publishes it (a free-list head or the bump
//! pointer), so a holder killed mid-operation leaves the heap consistent; at worst one block
//! is leaked. Offsets read back from the region are bounds-checked, so a corrupted heap makes
//! allocations fail rather than scribble elsewhere.

use crate::region::{HEAP_END, Region};

const MIN_SHIFT: u32 = 5;
const CLASSES: usize = 26;
const HDR: u64 = 16;
const HDR_MAGIC: u64 = 0x4950_4348_0000_0000;

#[repr(C)]
pub struct Heap {
    start: u64,
    top: u64,
    free: [u64; CLASSES],
    pub allocated_bytes: u64,
}

impl Heap {
    pub fn init(&mut self, start: u64) {
        self.start = start;
        self.top = start;
    }

    fn class_of(bytes: u64) -> Option<usize> {
        let need = (bytes + HDR).max(1 << MIN_SHIFT);
        let shift = 64 - (need - 1).leading_zeros();
        let class = (shift - MIN_SHIFT) as usize;
        (class < CLASSES).then_some(class)
    }

    fn valid_block(&self, off: u64) -> bool {
        off >= self.start && off < self.top && off.is_multiple_of(HDR) && self.top <= HEAP_END
    }

    /// Allocates `bytes` zeroed bytes; returns the payload offset.
    ///
    /// # Safety
    /// The caller holds the region lock; `self` is the region's own heap.
    pub unsafe fn alloc(&mut self, region: &Region, bytes: u64) -> Option<u64> {
        let class = Self::class_of(bytes)?;
        let size = 1u64 << (class as u32 + MIN_SHIFT);
        let head = self.free[class];
        let block = if head != 0 {
            if !self.valid_block(head) {
                self.free[class] = 0; // corrupt list: drop it rather than follow it
                return None;
            }
            // SAFETY: head is a block start inside the heap (checked above); we hold the lock.
            let next = unsafe { *region.at::<u64>(head + HDR) };
            self.free[class] = next;
            head
        } else {
            let block = self.top;
            if block + size > HEAP_END || region.reserve(block, size).is_err() {
                return None;
            }
            self.top = block + size;
            block
        };
        // SAFETY: the block [block, block + size) is inside the heap and now owned by us.
        unsafe {
            *region.at::<u64>(block) = HDR_MAGIC | class as u64;
            core::ptr::write_bytes(
                (region.base() + (block + HDR) as usize) as *mut u8,
                0,
                (size - HDR) as usize,
            );
        }
        self.allocated_bytes += size;
        Some(block + HDR)
    }

    /// Returns a block obtained from `alloc`. A pointer that is not one is ignored.
    ///
    /// # Safety
    /// The caller holds the region lock and no longer uses the block.
    pub unsafe fn free(&mut self, region: &Region, payload: u64) {
        let Some(block) = payload.checked_sub(HDR) else { return };
        if !self.valid_block(block) {
            return;
        }
        // SAFETY: `block` is inside the heap (checked); we hold the lock.
        let hdr = unsafe { region.at::<u64>(block) };
        if *hdr & !0xff != HDR_MAGIC || (*hdr & 0xff) as usize >= CLASSES {
            return;
        }
        let class = (*hdr & 0xff) as usize;
        *hdr = HDR_MAGIC | 0xff; // freed: a double free is ignored
        // SAFETY: as above; the payload holds at least 16 bytes.
        unsafe { *region.at::<u64>(payload) = self.free[class] };
        self.free[class] = block;
        self.allocated_bytes = self.allocated_bytes.saturating_sub(1 << (class as u32 + MIN_SHIFT));
    }

    pub fn used_bytes(&self) -> u64 {
        self.top - self.start
    }
}
