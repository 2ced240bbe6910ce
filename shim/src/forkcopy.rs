//! Fork children that need not fault the shim's code in again.
//!
//! fork copies the page tables only of mappings that have anonymous pages (`vma_needs_copy`);
//! a read-only file mapping such as the shim's text starts empty in the child, which then
//! takes a fault for every 64 KiB of it that it runs (about a dozen in a child that makes an
//! undo semop, a send and a receive, 4-5 us each on this kind of machine). Writing one page of
//! each of the shim's read-only segments back with its own bytes gives the mapping an
//! anonymous page, so every fork after that copies its page table instead.

use core::sync::atomic::{AtomicBool, Ordering};
use shared_state::sys::syscall6;

static DONE: AtomicBool = AtomicBool::new(false);

unsafe extern "C" {
    /// The shim's ELF header, put there by the linker: the start of its first segment.
    static __ehdr_start: u8;
}

/// Once per image, before its first fork (a child inherits the result).
pub(crate) fn before_fork() {
    // Read first: a store each time would copy this page in every fork, parent side.
    if DONE.load(Ordering::Relaxed) {
        return;
    }
    DONE.store(true, Ordering::Relaxed);
    // Learnt once here rather than by every child (glibc reads /sys for the CPUs).
    shared_state::sys::multi_cpu();
    shared_state::lock::RobustMutex::kind();
    let base = &raw const __ehdr_start as usize;
    // SAFETY: the linker's symbol for this object's ELF header, which its first (read-only)
    // segment maps together with the program headers.
    let eh = unsafe { &*(base as *const libc::Elf64_Ehdr) };
    // SAFETY: as above: the program headers are in that segment, e_phnum of them.
    let phdrs = unsafe {
        core::slice::from_raw_parts(
            (base + eh.e_phoff as usize) as *const libc::Elf64_Phdr,
            eh.e_phnum as usize,
        )
    };
    for ph in phdrs.iter().filter(|ph| ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_W == 0) {
        // The whole mapping at once: made writable in part, it would stay split in two
        // mappings (the writable part is charged to the commit limit, and keeps that mark).
        let start = (base + ph.p_vaddr as usize) & !4095;
        let len = (base + (ph.p_vaddr + ph.p_memsz) as usize).next_multiple_of(4096) - start;
        let mut prot = libc::PROT_READ;
        if ph.p_flags & libc::PF_X != 0 {
            prot |= libc::PROT_EXEC;
        }
        let writable = (prot | libc::PROT_WRITE) as usize;
        if syscall6(libc::SYS_mprotect, start, len, writable, 0, 0, 0).is_ok() {
            // Its last page: the first may hold the end of the segment before.
            let page = start + len - 4096;
            let p = page as *mut u8;
            // SAFETY: the page is mapped and now writable; the same byte goes back, so code or
            // data another thread reads meanwhile does not change.
            unsafe { p.write_volatile(p.read_volatile()) };
            let _ = syscall6(libc::SYS_mprotect, start, len, prot as usize, 0, 0, 0);
        }
    }
}
