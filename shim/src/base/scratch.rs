//! Scratch memory for what a served call needs beyond its small stack budget (iovec arrays,
//! poll sets, epoll event lists, netlink and text buffers): the SIGSYS handler runs on the
//! application's stack, which may be a 16 KiB thread stack or a small `sigaltstack`.
//!
//! Each thread has an arena, mapped at its first use and unmapped when the thread exits
//! (`SYS_exit`, seen by the catch-all). [`take`] carves a slice from the arena's top and gives
//! it back when dropped, last in first out, as locals are dropped: a served call nested in
//! another (an application handler that ran while it waited) takes space above it. Dropping
//! an older slice also gives back whatever lies above it, which is what a call abandoned by a
//! handler's `longjmp` left there (a slice must not be dropped early while a younger one is
//! still used). A request the arena cannot hold (nesting deeper than it was sized for, space
//! still held by an abandoned call) or made in a task that shares its TLS with another (a
//! `vfork` child) gets a mapping of its own, unmapped when dropped. No allocation, no lock:
//! signal-safe.

use crate::base::thread;
use crate::base::thread::tls;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::Ordering::Relaxed;
use shared_state::sys::{self, Errno};

/// Address space reserved per thread; only the pages touched take memory. Sized for a poll of
/// 1024 fds or a 1024-entry iovec array with room for a nested call.
const ARENA: usize = 256 << 10;

/// A slice of `T`s in scratch memory, given back when dropped.
pub struct Slice<T: Copy> {
    ptr: *mut T,
    len: usize,
    /// Arena offset to go back to, or for a mapping of its own, its length (`own`).
    mark: usize,
    own: bool,
}

fn map(len: usize) -> Result<usize, Errno> {
    sys::mmap(
        0,
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        -1,
        0,
    )
}

/// `n` copies of `init` in scratch memory; ENOMEM only if no memory can be mapped.
pub fn take<T: Copy>(n: usize, init: T) -> Result<Slice<T>, Errno> {
    let mut s = take_any::<T>(n)?;
    s.fill(init);
    Ok(s)
}

/// `n` `T`s in scratch memory as the arena holds them: bytes it held before, or zeros (for a
/// buffer the kernel fills, whose filling would cost more than the call). Only for plain data
/// types, which any bytes make a valid value of.
pub fn take_any<T: Copy>(n: usize) -> Result<Slice<T>, Errno> {
    const { assert!(align_of::<T>() <= 4096) };
    let bytes = n.checked_mul(size_of::<T>()).ok_or(libc::ENOMEM)?;
    let t = tls();
    let from_arena = (!thread::in_vfork_child()).then(|| {
        let start = t.arena_top.load(Relaxed).next_multiple_of(align_of::<T>());
        let end = start.checked_add(bytes).filter(|&e| e <= ARENA)?;
        let base = match t.arena.load(Relaxed) {
            0 => {
                let a = map(ARENA).ok()?;
                t.arena.store(a, Relaxed);
                a
            }
            a => a,
        };
        let mark = t.arena_top.swap(end, Relaxed);
        Some(Slice { ptr: (base + start) as *mut T, len: n, mark, own: false })
    });
    let s = match from_arena.flatten() {
        Some(s) => s,
        None => {
            let len = bytes.max(1).next_multiple_of(4096);
            Slice { ptr: map(len)? as *mut T, len: n, mark: len, own: true }
        }
    };
    Ok(s)
}

impl<T: Copy> Drop for Slice<T> {
    fn drop(&mut self) {
        if self.own {
            let _ = sys::munmap(self.ptr as usize, self.mark);
        } else {
            // Never up: the parts of a tuple are dropped oldest first.
            let t = tls();
            t.arena_top.store(t.arena_top.load(Relaxed).min(self.mark), Relaxed);
        }
    }
}

impl<T: Copy> Deref for Slice<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` holds `len` initialized `T`s (filled by `take`; by `take_any`, bytes of
        // the arena or of a fresh mapping, valid for the plain data types it is used for), ours
        // until dropped: the arena gives this range to no one else while it lies below the top.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T: Copy> DerefMut for Slice<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as for `deref`, and `&mut self` makes this the only reference.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// The thread is exiting: its arena goes (not a vfork child's, which is its parent's).
pub fn thread_exit() {
    let t = tls();
    if thread::in_vfork_child() {
        return;
    }
    let a = t.arena.swap(0, Relaxed);
    t.arena_top.store(0, Relaxed);
    if a != 0 {
        let _ = sys::munmap(a, ARENA);
    }
}
