//! Copies to and from the application's pointers for the served calls: EFAULT for a bad one,
//! never a crash.

use crate::base::thread;
use shared_state::sys::{self, Errno};
use shared_state::uaccess;
use shared_state::wait::WaitOutcome;

/// The highest user address on x86_64 with 4-level paging (`USER_PTR_MAX`).
const USER_PTR_MAX: usize = 0x7fff_ffff_efff;

/// The kernel's `access_ok` on x86_64: the range ends in user space without wrapping.
pub fn access_ok(addr: usize, len: usize) -> bool {
    let end = addr.wrapping_add(len);
    end >= addr && end <= USER_PTR_MAX
}

/// Copies `len` bytes from the caller's `src` into our `dst`, as the kernel's copy_from_user.
pub fn from_user(dst: *mut u8, src: usize, len: usize) -> Result<(), Errno> {
    if !access_ok(src, len) {
        return Err(libc::EFAULT);
    }
    if !thread::fault_fixups_active() {
        return sys::copy_from_user(dst, src, len);
    }
    if len <= 8 && thread::fixup_usable() {
        // SAFETY: a fault reaches the fixup (the wrapper is installed and the thread can take
        // it); `dst` is our buffer of `len` bytes.
        let v = unsafe { uaccess::read_small(src as *const u8, len) }.ok_or(libc::EFAULT)?;
        store_small(dst, v, len);
        return Ok(());
    }
    // SAFETY: `dst` is our buffer of `len` bytes; a bad `src` faults into the fixup (or is
    // copied without faulting when a fixup cannot happen).
    match unsafe { uaccess::copy_user(dst, src as *const u8, len) } {
        0 => Ok(()),
        _ => Err(libc::EFAULT),
    }
}

/// Stores the low `len <= 8` bytes of `v` at `dst`, in the largest pieces that fit (a later
/// read of a field is then served from one store).
fn store_small(dst: *mut u8, v: u64, len: usize) {
    let (mut off, mut v) = (0, v);
    while off < len {
        // SAFETY: `dst` is our buffer of `len` bytes, and each store ends inside it.
        unsafe {
            let d = dst.add(off);
            let size = match len - off {
                4.. => {
                    (d as *mut u32).write_unaligned(v as u32);
                    4
                }
                2 | 3 => {
                    (d as *mut u16).write_unaligned(v as u16);
                    2
                }
                _ => {
                    *d = v as u8;
                    1
                }
            };
            off += size;
            v >>= size * 8;
        }
    }
}

/// Copies `len` bytes of ours at `src` to the caller's `dst`, as copy_to_user.
pub fn to_user(dst: usize, src: *const u8, len: usize) -> Result<(), Errno> {
    if !access_ok(dst, len) {
        return Err(libc::EFAULT);
    }
    if !thread::fault_fixups_active() {
        return sys::copy_to_user(dst, src, len);
    }
    // SAFETY: `src` is ours, `len` bytes; a bad `dst` faults into the fixup (as above).
    match unsafe { uaccess::copy_user(dst as *mut u8, src, len) } {
        0 => Ok(()),
        _ => Err(libc::EFAULT),
    }
}

/// Copies `dst.len()` items in from the caller's `addr`.
pub fn slice_in<T>(dst: &mut [T], addr: usize) -> Result<(), Errno> {
    from_user(dst.as_mut_ptr() as *mut u8, addr, size_of_val(dst))
}

/// Copies `src` out to the caller's `addr`.
pub fn slice_out<T>(addr: usize, src: &[T]) -> Result<(), Errno> {
    to_user(addr, src.as_ptr() as *const u8, size_of_val(src))
}

/// One wait of a blocking System V call (semop, msgsnd, msgrcv) with signals deliverable: such
/// calls fail with EINTR once an application handler ran, and are never restarted; a wait
/// interrupted without one (SIGSTOP, SIGCONT) just goes on.
pub fn sysv_wait(g: &thread::Guard, f: &mut dyn FnMut() -> WaitOutcome) -> WaitOutcome {
    thread::clear_interrupt();
    let r = g.allow_signals(|| if thread::interrupt_pending() { WaitOutcome::Interrupted } else { f() });
    match (thread::take_interrupt(), r) {
        (Some(_), _) => WaitOutcome::Interrupted,
        (None, WaitOutcome::Interrupted) => WaitOutcome::Woken,
        (None, r) => r,
    }
}
