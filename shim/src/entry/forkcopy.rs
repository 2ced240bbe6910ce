//! Fork children that need not fault in the code they run.
//!
//! fork copies the page tables only of mappings that have anonymous pages (`vma_needs_copy`);
//! a read-only file mapping such as a library's text starts empty in the child, which then
//! takes a fault for every 64 KiB of it that it runs: a dozen of the shim's in a child that
//! makes an undo semop, a send and a receive, and as many of libc's and the loader's (its
//! fork, the shim's mutexes and copies, lazy binding), 4-5 us each on this kind of machine.
//! Writing one page of each read-only segment of the shim, libc and the loader back with its
//! own bytes gives the mapping an anonymous page, so every fork after that copies its page
//! table instead (the parent's mapped pages, a few hundred: less than the faults cost).

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicBool, Ordering};
use shared_state::sys::syscall6;

static DONE: AtomicBool = AtomicBool::new(false);

/// Once per image, before its first fork (a child inherits the result).
pub(crate) fn before_fork() {
    // Read first: a store each time would copy this page in every fork, parent side.
    if DONE.load(Ordering::Relaxed) {
        return;
    }
    // Learnt once here rather than by every child (glibc reads /sys for the CPUs).
    shared_state::sys::multi_cpu();
    shared_state::lock::RobustMutex::kind();
    // An address in each object: ours, libc's, the loader's.
    let mut inside = [before_fork as *const () as u64, libc::getpid as *const () as u64, 0];
    // SAFETY: the loader's own export, looked up by name.
    let tls = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__tls_get_addr".as_ptr()) };
    inside[2] = tls as u64;
    // Not while another thread rewrites a site of libc's (it makes that page writable, which
    // the protection put back here would undo): tried again at the next fork.
    let done = crate::entry::sud::excluding_rewrites(|| {
        // SAFETY: the callback only reads what the loader passes it and makes system calls.
        unsafe { libc::dl_iterate_phdr(Some(each), inside.as_mut_ptr() as *mut c_void) };
    });
    if done.is_some() {
        DONE.store(true, Ordering::Relaxed);
    }
}

unsafe extern "C" fn each(info: *mut libc::dl_phdr_info, _: libc::size_t, data: *mut c_void) -> c_int {
    // SAFETY: dl_iterate_phdr passes a valid dl_phdr_info; `data` is the array above.
    let (info, inside) = unsafe { (&*info, &*(data as *const [u64; 3])) };
    // SAFETY: its program headers, as the loader has them.
    let phdrs = unsafe { core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let loads = || phdrs.iter().filter(|p| p.p_type == libc::PT_LOAD);
    let holds = |a: u64| {
        loads().any(|p| {
            let start = info.dlpi_addr.wrapping_add(p.p_vaddr);
            (start..start + p.p_memsz).contains(&a)
        })
    };
    if !inside.iter().any(|&a| a != 0 && holds(a)) {
        return 0;
    }
    for p in loads().filter(|p| p.p_flags & libc::PF_W == 0) {
        let start = info.dlpi_addr.wrapping_add(p.p_vaddr) as usize & !4095;
        let end = (info.dlpi_addr.wrapping_add(p.p_vaddr + p.p_memsz) as usize).next_multiple_of(4096);
        give_anon_page(start, end - start, p.p_flags & libc::PF_X != 0);
    }
    0
}

/// Makes the read-only mapping `[start, start + len)` writable whole (made writable in part,
/// it would stay split in two mappings: the writable part is charged to the commit limit and
/// keeps that mark), writes its last page back with its own bytes (the first may hold the
/// end of the segment before) and makes it read-only again.
fn give_anon_page(start: usize, len: usize, exec: bool) {
    let prot = libc::PROT_READ | if exec { libc::PROT_EXEC } else { 0 };
    let writable = (prot | libc::PROT_WRITE) as usize;
    if syscall6(libc::SYS_mprotect, start, len, writable, 0, 0, 0).is_ok() {
        let p = (start + len - 4096) as *mut u8;
        // SAFETY: the page is mapped and now writable; the same byte goes back, so code or data
        // another thread reads meanwhile does not change.
        unsafe { p.write_volatile(p.read_volatile()) };
        let _ = syscall6(libc::SYS_mprotect, start, len, prot as usize, 0, 0, 0);
    }
}
