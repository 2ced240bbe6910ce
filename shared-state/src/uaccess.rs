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

// As ipcshim_copy_user from a caller's source (rdi = dst, 16-aligned; rsi = src; rdx = n) but
// with non-temporal stores, 64 bytes at a time, the rest by `rep movsb`; sfence before
// returning. A fault at one of a chunk's loads comes before any of its stores: the fixup
// returns the bytes from that chunk on (rdx) as not copied, at most 63 too many.
global_asm!(
    ".pushsection .text.ipcshim_copy_nt,\"ax\",@progbits",
    ".globl ipcshim_copy_nt",
    ".hidden ipcshim_copy_nt",
    ".type ipcshim_copy_nt,@function",
    "ipcshim_copy_nt:",
    "    cmp rdx, 64",
    "    jb 2f",
    "1:",
    ".globl ipcshim_copy_nt_load0",
    ".hidden ipcshim_copy_nt_load0",
    "ipcshim_copy_nt_load0:",
    "    movdqu xmm0, xmmword ptr [rsi]",
    ".globl ipcshim_copy_nt_load1",
    ".hidden ipcshim_copy_nt_load1",
    "ipcshim_copy_nt_load1:",
    "    movdqu xmm1, xmmword ptr [rsi + 16]",
    ".globl ipcshim_copy_nt_load2",
    ".hidden ipcshim_copy_nt_load2",
    "ipcshim_copy_nt_load2:",
    "    movdqu xmm2, xmmword ptr [rsi + 32]",
    ".globl ipcshim_copy_nt_load3",
    ".hidden ipcshim_copy_nt_load3",
    "ipcshim_copy_nt_load3:",
    "    movdqu xmm3, xmmword ptr [rsi + 48]",
    "    movntdq xmmword ptr [rdi], xmm0",
    "    movntdq xmmword ptr [rdi + 16], xmm1",
    "    movntdq xmmword ptr [rdi + 32], xmm2",
    "    movntdq xmmword ptr [rdi + 48], xmm3",
    "    add rsi, 64",
    "    add rdi, 64",
    "    sub rdx, 64",
    "    cmp rdx, 64",
    "    jae 1b",
    "2:",
    "    mov rcx, rdx",
    ".globl ipcshim_copy_nt_tail",
    ".hidden ipcshim_copy_nt_tail",
    "ipcshim_copy_nt_tail:",
    "    rep movsb",
    "    sfence",
    "    xor eax, eax",
    "    ret",
    ".globl ipcshim_copy_nt_fixup",
    ".hidden ipcshim_copy_nt_fixup",
    "ipcshim_copy_nt_fixup:",
    "    sfence",
    "    mov rax, rdx",
    "    ret",
    ".globl ipcshim_copy_nt_tail_fixup",
    ".hidden ipcshim_copy_nt_tail_fixup",
    "ipcshim_copy_nt_tail_fixup:",
    "    sfence",
    "    mov rax, rcx",
    "    ret",
    ".size ipcshim_copy_nt, . - ipcshim_copy_nt",
    ".popsection",
);

// Reads n <= 8 bytes (rdi = address, rsi = n) into rax, little-endian and zero-extended, in
// loads of 4, 2 and 1 bytes that stay inside [rdi, rdi + n), each at a known instruction; rdx
// is 0, or 1 after a fault (the fixup). For the small reads of a call's arguments (a sembuf is
// 6 bytes), where `rep movsb` and a store-and-reload cost more than the read.
global_asm!(
    ".pushsection .text.ipcshim_read_small,\"ax\",@progbits",
    ".globl ipcshim_read_small",
    ".hidden ipcshim_read_small",
    ".type ipcshim_read_small,@function",
    "ipcshim_read_small:",
    "    xor eax, eax",
    "    xor ecx, ecx",
    "    cmp rsi, 4",
    "    jb 2f",
    ".globl ipcshim_read_small_4",
    ".hidden ipcshim_read_small_4",
    "ipcshim_read_small_4:",
    "    mov eax, dword ptr [rdi]",
    "    add rdi, 4",
    "    sub rsi, 4",
    "    mov ecx, 32",
    "    cmp rsi, 4",
    "    jb 2f",
    ".globl ipcshim_read_small_4b",
    ".hidden ipcshim_read_small_4b",
    "ipcshim_read_small_4b:",
    "    mov edx, dword ptr [rdi]",
    "    shl rdx, 32",
    "    or rax, rdx",
    "    xor edx, edx",
    "    ret",
    "2:",
    "    cmp rsi, 2",
    "    jb 3f",
    ".globl ipcshim_read_small_2",
    ".hidden ipcshim_read_small_2",
    "ipcshim_read_small_2:",
    "    movzx edx, word ptr [rdi]",
    "    shl rdx, cl",
    "    or rax, rdx",
    "    add rdi, 2",
    "    sub rsi, 2",
    "    add ecx, 16",
    "3:",
    "    test rsi, rsi",
    "    jz 4f",
    ".globl ipcshim_read_small_1",
    ".hidden ipcshim_read_small_1",
    "ipcshim_read_small_1:",
    "    movzx edx, byte ptr [rdi]",
    "    shl rdx, cl",
    "    or rax, rdx",
    "4:",
    "    xor edx, edx",
    "    ret",
    ".globl ipcshim_read_small_fixup",
    ".hidden ipcshim_read_small_fixup",
    "ipcshim_read_small_fixup:",
    "    xor eax, eax",
    "    mov edx, 1",
    "    ret",
    ".size ipcshim_read_small, . - ipcshim_read_small",
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
    fn ipcshim_copy_nt(dst: *mut u8, src: *const u8, n: usize) -> usize;
    static ipcshim_copy_nt_load0: u8;
    static ipcshim_copy_nt_load1: u8;
    static ipcshim_copy_nt_load2: u8;
    static ipcshim_copy_nt_load3: u8;
    static ipcshim_copy_nt_tail: u8;
    static ipcshim_copy_nt_fixup: u8;
    static ipcshim_copy_nt_tail_fixup: u8;
    fn ipcshim_read_small(src: *const u8, n: usize) -> Small;
    static ipcshim_read_small_4: u8;
    static ipcshim_read_small_4b: u8;
    static ipcshim_read_small_2: u8;
    static ipcshim_read_small_1: u8;
    static ipcshim_read_small_fixup: u8;
}

/// What `ipcshim_read_small` returns in rax and rdx.
#[repr(C)]
struct Small {
    value: u64,
    fault: u64,
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

/// The least a copy stores non-temporally ([`copy_from_user_nt`]).
const NT_MIN: usize = 512;

/// [`copy_user`] from the caller's `src` into our `dst` with non-temporal stores, which
/// leave no line of `dst` in this CPU's cache: for data another CPU reads next, whose cache
/// holds those lines from its last reads (a store to them must first take them from it,
/// which made a copy into a ring page 4-5 times as costly as the reader's copy out of it on
/// this machine). On a fault the count not copied may be up to 63 bytes too high (a write
/// keeps whole pages only).
///
/// # Safety
/// As [`copy_user`].
pub unsafe fn copy_from_user_nt(dst: *mut u8, src: *const u8, n: usize) -> usize {
    let check = USABLE.load(Ordering::Acquire);
    // SAFETY: only `set_usable_check` stores here, a `fn() -> bool`.
    if check != 0 && !unsafe { core::mem::transmute::<usize, fn() -> bool>(check) }() {
        return n - vm_copy(dst, src, n);
    }
    // SAFETY: as in copy_user; movntdq needs `dst` 16-byte aligned, else the plain copy (as
    // for a few lines, where the sfence would cost more than it saves).
    unsafe {
        if !(dst as usize).is_multiple_of(16) || n < NT_MIN {
            return ipcshim_copy_user(dst, src, n);
        }
        ipcshim_copy_nt(dst, src, n)
    }
}

/// The `n <= 8` bytes at the caller's `src`, little-endian in a word (`None` when they are
/// not all readable): a caller's small argument costs a few loads, not a `rep movsb`.
///
/// # Safety
/// A fault must reach the fixup: the SIGSEGV/SIGBUS handler that honours [`fixup_target`] is
/// installed and the calling thread can take it now (what [`set_usable_check`]'s check says;
/// [`copy_user`] looks for itself).
#[inline]
pub unsafe fn read_small(src: *const u8, n: usize) -> Option<u64> {
    debug_assert!(n <= 8);
    // SAFETY: the routine reads inside [src, src + n) and follows the C ABI; a fault inside
    // it returns through the fixup (the caller's contract).
    let r = unsafe { ipcshim_read_small(src, n.min(8)) };
    (r.fault == 0).then_some(r.value)
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

/// If a SIGSEGV/SIGBUS hit `rip` inside copy_user or read_small, the address to resume at
/// (fixup); else None.
pub fn fixup_target(rip: usize) -> Option<usize> {
    if rip == (&raw const ipcshim_copy_insn) as usize {
        return Some((&raw const ipcshim_copy_fixup) as usize);
    }
    if rip == (&raw const ipcshim_copy_nt_tail) as usize {
        return Some((&raw const ipcshim_copy_nt_tail_fixup) as usize);
    }
    let nt_loads = [
        &raw const ipcshim_copy_nt_load0,
        &raw const ipcshim_copy_nt_load1,
        &raw const ipcshim_copy_nt_load2,
        &raw const ipcshim_copy_nt_load3,
    ];
    if nt_loads.iter().any(|&l| l as usize == rip) {
        return Some((&raw const ipcshim_copy_nt_fixup) as usize);
    }
    let loads = [
        &raw const ipcshim_read_small_4,
        &raw const ipcshim_read_small_4b,
        &raw const ipcshim_read_small_2,
        &raw const ipcshim_read_small_1,
    ];
    loads.iter().any(|&l| l as usize == rip).then_some((&raw const ipcshim_read_small_fixup) as usize)
}

#[cfg(test)]
mod tests {
    /// Every size read at every alignment in a page gives the bytes little-endian, and reads
    /// nothing past them (the last byte of a buffer ending at a guard page).
    #[test]
    fn read_small_reads_exactly_n_bytes() {
        // SAFETY: a private anonymous mapping of two pages, the second made inaccessible.
        let base = unsafe {
            let p = libc::mmap(
                core::ptr::null_mut(),
                8192,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            assert_eq!(
                libc::mprotect((p as *mut u8).add(4096) as *mut libc::c_void, 4096, libc::PROT_NONE),
                0
            );
            p as *mut u8
        };
        for i in 0..4096 {
            // SAFETY: inside the first page.
            unsafe { *base.add(i) = (i * 7 + 3) as u8 };
        }
        for n in 0..=8usize {
            for start in (0..64).chain(4096 - 16..=4096 - n) {
                let want = (0..n).fold(0u64, |v, i| v | (((start + i) * 7 + 3) as u8 as u64) << (8 * i));
                // SAFETY: [start, start + n) lies in the readable page; no fault is taken.
                let got = unsafe { super::read_small(base.add(start), n) };
                assert_eq!(got, Some(want), "n {n} at {start}");
            }
        }
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(base as *mut libc::c_void, 8192) };
    }
}
