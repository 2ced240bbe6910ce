//! Copies to and from caller-supplied addresses that may be bad, after the kernel's exception
//! table (`arch/x86/lib/copy_user_64.S`, NOTES §6).
//!
//! The copy is one `rep movsb` at a known instruction. A fault there raises SIGSEGV or SIGBUS;
//! the shim's handler asks [`fixup_target`] whether the faulting RIP is that instruction and, if
//! so, resumes at the fixup label instead. `rep movsb` is restartable, so at the fault RCX holds
//! exactly the number of bytes not yet copied, and the fixup returns it. A valid copy costs what
//! `memcpy` costs; only a fault pays for a signal.

use core::arch::global_asm;
use core::sync::atomic::{AtomicUsize, Ordering};

// SysV ABI: rdi = dst, rsi = src, rdx = n; DF is clear on entry to any function.
// Hidden symbols: nothing outside this crate's binary can interpose or see them.
global_asm!(
    ".pushsection .text.ipcshim_copy_user,\"ax\",@progbits",
    ".globl ipcshim_copy_user",
    ".hidden ipcshim_copy_user",
    ".type ipcshim_copy_user,@function",
    "ipcshim_copy_user:",
    "    mov rcx, rdx",
    ".globl ipcshim_copy_insn",
    ".hidden ipcshim_copy_insn",
    "ipcshim_copy_insn:",
    "    rep movsb",
    "    xor eax, eax",
    "    ret",
    ".globl ipcshim_copy_fixup",
    ".hidden ipcshim_copy_fixup",
    "ipcshim_copy_fixup:",
    "    mov rax, rcx",
    "    ret",
    ".size ipcshim_copy_user, . - ipcshim_copy_user",
    ".popsection",
);

/// Set by the user of this crate that installs the fault wrapper: whether the calling thread
/// can take a fixup now (the wrapper is installed and SIGSEGV/SIGBUS are not blocked: the
/// kernel kills a thread that faults with its fault signal blocked).
static USABLE: AtomicUsize = AtomicUsize::new(0);

/// Installs the check [`copy_user`] makes before the fixup copy.
pub fn set_usable_check(f: fn() -> bool) {
    USABLE.store(f as usize, Ordering::Release);
}

unsafe extern "C" {
    fn ipcshim_copy_user(dst: *mut u8, src: *const u8, n: usize) -> usize;
    static ipcshim_copy_insn: u8;
    static ipcshim_copy_fixup: u8;
}

/// Copies n bytes; returns how many bytes were NOT copied (0 = all), like the kernel's raw_copy_*.
/// When the check given to [`set_usable_check`] says a fixup cannot happen now (a fault signal
/// is blocked), the copy goes through `process_vm_readv` instead, at the price of system calls.
///
/// # Safety
/// Whichever of `dst`/`src` is ours must be valid for `n` bytes; the other (the caller's
/// user address) may be bad, but only if a SIGSEGV/SIGBUS handler that honours
/// [`fixup_target`] is installed — otherwise a fault kills the process as a plain access would.
/// The ranges must not overlap.
pub unsafe fn copy_user(dst: *mut u8, src: *const u8, n: usize) -> usize {
    let check = USABLE.load(Ordering::Acquire);
    // SAFETY: only `set_usable_check` stores here, a `fn() -> bool`.
    if check != 0 && !unsafe { core::mem::transmute::<usize, fn() -> bool>(check) }() {
        return n - vm_copy(dst, src, n);
    }
    // SAFETY: the routine reads `src` and writes `dst` for `n` bytes (the caller's contract) and
    // follows the C ABI; a fault inside it is turned into a short count by the handler.
    unsafe { ipcshim_copy_user(dst, src, n) }
}

/// The copy through `process_vm_readv` on ourselves, which cannot fault: the bytes copied
/// before the first bad one, whichever side of the copy is the caller's. One page of each
/// side at a time, as a bad address fails its whole iovec: a fault lies on a page boundary,
/// so the count is exact.
fn vm_copy(dst: *mut u8, src: *const u8, n: usize) -> usize {
    let pid = crate::sys::getpid() as usize;
    let mut copied = 0;
    while copied < n {
        let (d, s) = (dst.wrapping_add(copied), src.wrapping_add(copied));
        let step = (4096 - d as usize % 4096).min(4096 - s as usize % 4096).min(n - copied);
        let local = libc::iovec { iov_base: d as *mut libc::c_void, iov_len: step };
        let remote = libc::iovec { iov_base: s as *mut libc::c_void, iov_len: step };
        let (l, r) = (&local as *const _ as usize, &remote as *const _ as usize);
        match crate::sys::syscall6(libc::SYS_process_vm_readv, pid, l, 1, r, 1, 0) {
            Ok(k) if k == step => copied += step,
            Ok(k) => return copied + k,
            Err(_) => return copied,
        }
    }
    copied
}

/// If a SIGSEGV/SIGBUS hit `rip` inside copy_user, the address to resume at (fixup); else None.
pub fn fixup_target(rip: usize) -> Option<usize> {
    (rip == (&raw const ipcshim_copy_insn) as usize).then_some((&raw const ipcshim_copy_fixup) as usize)
}
