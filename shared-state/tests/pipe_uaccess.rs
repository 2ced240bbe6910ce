//! `uaccess::copy_user`: exact partial counts when the caller's memory faults, with a SIGSEGV and
//! SIGBUS handler that does what the shim's does (resume at the fixup).

use shared_state::uaccess::{copy_user, fixup_target};
use std::sync::Once;

extern "C" fn on_fault(_sig: i32, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid ucontext to an SA_SIGINFO handler.
    let uc = unsafe { &mut *(ctx as *mut libc::ucontext_t) };
    let rip = uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize;
    match fixup_target(rip) {
        Some(fix) => uc.uc_mcontext.gregs[libc::REG_RIP as usize] = fix as i64,
        // SAFETY: not a copy fault: a real crash, ended as one.
        None => unsafe { libc::abort() },
    }
}

fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for sig in [libc::SIGSEGV, libc::SIGBUS] {
            // SAFETY: a zeroed sigaction plus handler and flags is a valid argument.
            unsafe {
                let mut sa: libc::sigaction = core::mem::zeroed();
                sa.sa_sigaction = on_fault as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
                assert_eq!(libc::sigaction(sig, &sa, core::ptr::null_mut()), 0);
            }
        }
    });
}

/// Two read-write pages followed by a PROT_NONE guard page; returns the start.
fn guarded() -> usize {
    // SAFETY: fresh anonymous mapping; the guard page is ours to protect.
    unsafe {
        let p = libc::mmap(
            core::ptr::null_mut(),
            3 * 4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        assert_eq!(libc::mprotect((p as usize + 8192) as *mut libc::c_void, 4096, libc::PROT_NONE), 0);
        p as usize
    }
}

#[test]
fn valid_copy_copies_everything() {
    let src: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let mut dst = vec![0u8; 10_000];
    // SAFETY: both buffers are ours and 10,000 bytes long.
    assert_eq!(unsafe { copy_user(dst.as_mut_ptr(), src.as_ptr(), 10_000) }, 0);
    assert_eq!(src, dst);
    // SAFETY: a zero-length copy touches nothing.
    assert_eq!(unsafe { copy_user(dst.as_mut_ptr(), 8 as *const u8, 0) }, 0);
}

#[test]
fn faults_report_the_uncopied_count() {
    install_handler();
    let area = guarded();
    let mut dst = vec![0u8; 300];
    // SAFETY: `dst` is ours; address 16 is unmapped and the handler fixes the fault up.
    assert_eq!(unsafe { copy_user(dst.as_mut_ptr(), 16 as *const u8, 64) }, 64);
    // SAFETY: 100 readable bytes, then the guard page.
    unsafe { core::ptr::write_bytes((area + 8192 - 100) as *mut u8, 7, 100) };
    // SAFETY: as above; the source runs into the guard page after 100 bytes.
    let left = unsafe { copy_user(dst.as_mut_ptr(), (area + 8192 - 100) as *const u8, 300) };
    assert_eq!(left, 200);
    assert!(dst[..100].iter().all(|&b| b == 7));
    let src = [9u8; 300];
    // SAFETY: writing towards the guard page: 100 bytes fit.
    let left = unsafe { copy_user((area + 8192 - 100) as *mut u8, src.as_ptr(), 300) };
    assert_eq!(left, 200);
    // SAFETY: the 100 bytes before the guard page are readable.
    let landed = unsafe { core::slice::from_raw_parts((area + 8192 - 100) as *const u8, 100) };
    assert!(landed.iter().all(|&b| b == 9));
}

#[test]
fn fixup_only_for_the_copy_instruction() {
    assert_eq!(fixup_target(0), None);
    let fix = fixup_target_of_copy();
    assert_eq!(fixup_target(fix), None, "the fixup itself cannot fault on user memory");
}

/// The fixup address, found the way the handler finds it: from a real fault.
fn fixup_target_of_copy() -> usize {
    install_handler();
    static FIX: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    extern "C" fn probe(_sig: i32, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid ucontext to an SA_SIGINFO handler.
        let uc = unsafe { &mut *(ctx as *mut libc::ucontext_t) };
        let fix = fixup_target(uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize).unwrap();
        FIX.store(fix, std::sync::atomic::Ordering::Relaxed);
        uc.uc_mcontext.gregs[libc::REG_RIP as usize] = fix as i64;
    }
    // SAFETY: SIGBUS is not otherwise raised by these tests; the old action is restored after.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = probe as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        let mut old: libc::sigaction = core::mem::zeroed();
        libc::sigaction(libc::SIGBUS, &sa, &mut old);
        // A read past the end of a memfd's size raises SIGBUS, not SIGSEGV.
        let fd = libc::memfd_create(c"probe".as_ptr(), 0);
        let p = libc::mmap(core::ptr::null_mut(), 4096, libc::PROT_READ, libc::MAP_SHARED, fd, 0);
        let mut b = [0u8; 8];
        assert_eq!(copy_user(b.as_mut_ptr(), p as *const u8, 8), 8);
        libc::munmap(p, 4096);
        libc::close(fd);
        libc::sigaction(libc::SIGBUS, &old, core::ptr::null_mut());
    }
    FIX.load(std::sync::atomic::Ordering::Relaxed)
}
