//! Pipe and socket ends that an exec closes (`O_CLOEXEC`). The kernel wakes a reader in
//! `pipe_release` when the last writer goes, from inside exec; no shim code runs there. So the
//! old image notes here, before exec, the objects of the ends it will lose, and opens an exec
//! window on each ([`pipe::exec_pending`]): their sleepers wait in the kernel on their
//! placeholders meanwhile, which the kernel wakes as it releases the ends, as fast as its own
//! pipes. The new image closes the windows as it starts, waking the sleepers once more
//! ([`pipe::exec_done`]); a new image without the shim leaves them to run out (and takes no
//! entry here).
//!
//! The table is keyed by pid, which exec keeps. An entry left behind (the exec failed and the
//! process then died) only costs a spurious wake-up to a later process with that pid, and is
//! taken over once it is old.

use crate::pipe::{self, PipeHandle};
use crate::region::{EXEC_WAKES_MAX, EXEC_WAKES_OFF, Region};
use core::sync::atomic::{AtomicU64, Ordering};

/// One noted object: `owner` is coarse seconds << 32 | pid (0: free), `handle` its bits.
#[repr(C)]
pub struct ExecWake {
    owner: AtomicU64,
    handle: AtomicU64,
}

/// An entry this old is free to take: its exec has long finished one way or the other.
const STALE_SECS: u64 = 10;
/// How long an exec window stays open at most: the exec reaches its closes long before.
const WINDOW_NS: u64 = 1_000_000_000;

fn table(region: &Region) -> &[ExecWake] {
    // SAFETY: the table is EXEC_WAKES_MAX entries of atomics inside the region.
    unsafe {
        core::slice::from_raw_parts(
            (region.base() + EXEC_WAKES_OFF as usize) as *const ExecWake,
            EXEC_WAKES_MAX as usize,
        )
    }
}

fn now_secs() -> u64 {
    crate::sys::clock_gettime(libc::CLOCK_MONOTONIC_COARSE).tv_sec as u64
}

/// Before process `pid` execs: its end of `h` will be closed by the exec. The window opens in
/// any case (and runs out by itself); an entry, which lets the new image close it at once
/// ([`finish`]), is taken only for a new image with the shim (one without never frees it: a
/// loop of such execs would fill the table) and when one is free.
pub fn note(region: &Region, pid: i32, h: PipeHandle, shim_image: bool) {
    if shim_image {
        take_entry(region, pid, h);
    }
    let until = crate::sys::monotonic_ns() as u64 + WINDOW_NS;
    for o in objects(region, h) {
        pipe::exec_pending(region, o, until);
    }
}

fn take_entry(region: &Region, pid: i32, h: PipeHandle) {
    let now = now_secs();
    let mine = now << 32 | pid as u32 as u64;
    // Counted before the entry is taken: a process killed in between leaves the count high.
    let notes = &pipe::ns(region).exec_notes;
    notes.fetch_add(1, Ordering::SeqCst);
    for e in table(region) {
        let cur = e.owner.load(Ordering::Relaxed);
        let free = cur == 0 || now.saturating_sub(cur >> 32) >= STALE_SECS;
        if free && e.owner.compare_exchange(cur, mine, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            if cur != 0 {
                // Taken over from an exec that never finished: it was counted.
                uncount(region);
            }
            e.handle.store(h.to_bits(), Ordering::Release);
            return;
        }
    }
    uncount(region);
}

fn uncount(region: &Region) {
    let _ =
        pipe::ns(region).exec_notes.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
}

/// The objects whose sleepers wait for an end of `h`: a pipe's own; a socket's send queue
/// (its peer reads there) and its peer's (its peer's sends wait there).
fn objects(region: &Region, h: PipeHandle) -> impl Iterator<Item = PipeHandle> {
    [Some(h), pipe::sock_peer(region, h)].into_iter().flatten()
}

/// In the new image of process `pid`, or after its exec failed: its entries go, their windows
/// close and their sleepers look again.
pub fn finish(region: &Region, pid: i32) {
    if pipe::ns(region).exec_notes.load(Ordering::SeqCst) == 0 {
        return;
    }
    for e in table(region) {
        let cur = e.owner.load(Ordering::Acquire);
        if cur == 0 || cur as u32 != pid as u32 {
            continue;
        }
        let h = PipeHandle::from_bits(e.handle.load(Ordering::Acquire));
        if e.owner.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            uncount(region);
            for o in objects(region, h) {
                pipe::exec_done(region, o);
            }
        }
    }
}
