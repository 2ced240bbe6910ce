//! The real libc functions behind our exports, resolved once with `dlsym(RTLD_NEXT)` in the
//! constructor (which makes no allocation on glibc 2.36, NOTES §3), or on first use if another
//! library's constructor calls us earlier.

use core::sync::atomic::{AtomicUsize, Ordering};

pub struct Real {
    name: &'static [u8],
    addr: AtomicUsize,
}

impl Real {
    const fn new(name: &'static [u8]) -> Real {
        Real { name, addr: AtomicUsize::new(0) }
    }

    pub fn get(&self) -> usize {
        match self.addr.load(Ordering::Acquire) {
            0 => self.resolve(),
            a => a,
        }
    }

    fn resolve(&self) -> usize {
        // SAFETY: `name` is a NUL-terminated symbol name; dlsym has no other preconditions.
        let a = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr() as *const libc::c_char) } as usize;
        self.addr.store(a, Ordering::Release);
        a
    }
}

pub static SHMGET: Real = Real::new(b"shmget\0");
pub static SHMAT: Real = Real::new(b"shmat\0");
pub static SHMDT: Real = Real::new(b"shmdt\0");
pub static SHMCTL: Real = Real::new(b"shmctl\0");
pub static SYSCALL: Real = Real::new(b"syscall\0");
pub static FORK: Real = Real::new(b"fork\0");

pub fn resolve_all() {
    for r in [&SHMGET, &SHMAT, &SHMDT, &SHMCTL, &SYSCALL, &FORK] {
        r.get();
    }
}
