//! Copies to and from caller-supplied addresses that may be bad, after the kernel's exception
//! table (`arch/x86/lib/copy_user_64.S`, NOTES §6).
//!
//! The copy is one `rep movsb` at a known instruction. A fault there raises SIGSEGV or SIGBUS;
//! the shim's handler asks [`fixup_target`] whether the faulting RIP is that instruction and, if
//! so, resumes at the fixup label instead. `rep movsb` is restartable, so at the fault RCX holds
//! exactly the number of bytes not yet copied, and the fixup returns it. A valid copy costs what
//! `memcpy` costs; only a fault pays for a signal.

use core::arch::global_asm;

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

unsafe extern "C" {
    fn ipcshim_copy_user(dst: *mut u8, src: *const u8, n: usize) -> usize;
    static ipcshim_copy_insn: u8;
    static ipcshim_copy_fixup: u8;
}

/// Copies n bytes; returns how many bytes were NOT copied (0 = all), like the kernel's raw_copy_*.
///
/// # Safety
/// Whichever of `dst`/`src` is ours must be valid for `n` bytes; the other (the caller's
/// user address) may be bad, but only if a SIGSEGV/SIGBUS handler that honours
/// [`fixup_target`] is installed — otherwise a fault kills the process as a plain access would.
/// The ranges must not overlap.
pub unsafe fn copy_user(dst: *mut u8, src: *const u8, n: usize) -> usize {
    // SAFETY: the routine reads `src` and writes `dst` for `n` bytes (the caller's contract) and
    // follows the C ABI; a fault inside it is turned into a short count by the handler.
    unsafe { ipcshim_copy_user(dst, src, n) }
}

/// If a SIGSEGV/SIGBUS hit `rip` inside copy_user, the address to resume at (fixup); else None.
pub fn fixup_target(rip: usize) -> Option<usize> {
    (rip == (&raw const ipcshim_copy_insn) as usize).then_some((&raw const ipcshim_copy_fixup) as usize)
}
