//! Reading and writing the application's pointers from the SIGSYS handler: a bad pointer must
//! give EFAULT, not kill the process.

use crate::base::thread;
use core::mem::{MaybeUninit, size_of};
use shared_state::{sys, uaccess};

/// How to copy. The fixup copy costs what memcpy costs but needs our SIGSEGV/SIGBUS wrapper
/// to be reachable: installed, and neither signal blocked at the trapped syscall (a blocked
/// fault signal kills). Otherwise `process_vm_readv`/`writev` on ourselves.
#[derive(Clone, Copy)]
pub(crate) struct User {
    fast: bool,
}

impl User {
    /// For a syscall trapped with `mask` blocked.
    pub fn new(mask: u64) -> User {
        let faults = thread::sigbit(libc::SIGSEGV) | thread::sigbit(libc::SIGBUS);
        User {
            fast: thread::fault_fixups_active()
                && !crate::base::thread::in_vfork_child()
                && mask & faults == 0,
        }
    }

    /// Copies `dst.len()` bytes from `addr`; false if any byte is unreadable.
    pub fn copy_in(self, dst: &mut [u8], addr: usize) -> bool {
        if self.fast {
            // SAFETY: `dst` is ours; a fault on `addr` is fixed up into a short count by the
            // installed wrapper.
            unsafe { uaccess::copy_user(dst.as_mut_ptr(), addr as *const u8, dst.len()) == 0 }
        } else {
            sys::copy_from_user(dst.as_mut_ptr(), addr, dst.len()).is_ok()
        }
    }

    /// Reads the first bytes of many strings at once where each copy is a system call: into
    /// `heads[i]`, up to its length and not across a page, from `addrs[i]`. How many (from
    /// the first) were read; 0 when each is as cheap to read alone.
    #[inline(never)]
    pub fn read_heads<const N: usize>(self, addrs: &[usize], heads: &mut [[u8; N]]) -> usize {
        if self.fast {
            return 0;
        }
        let n = addrs.len().min(heads.len()).min(8);
        let empty = libc::iovec { iov_base: core::ptr::null_mut(), iov_len: 0 };
        let (mut local, mut remote) = ([empty; 8], [empty; 8]);
        let mut want = [0usize; 8];
        for i in 0..n {
            want[i] = N.min(4096 - addrs[i] % 4096);
            local[i] = libc::iovec { iov_base: heads[i].as_mut_ptr().cast(), iov_len: want[i] };
            remote[i] = libc::iovec { iov_base: addrs[i] as *mut libc::c_void, iov_len: want[i] };
        }
        let mut got = sys::copy_from_user_vec(&local[..n], &remote[..n]).unwrap_or(0);
        want[..n]
            .iter()
            .take_while(|&&w| {
                got >= w && {
                    got -= w;
                    true
                }
            })
            .count()
    }

    pub fn read<T: Copy>(self, addr: usize) -> Option<T> {
        let mut v = MaybeUninit::<T>::uninit();
        let dst = v.as_mut_ptr() as *mut u8;
        let ok = if self.fast {
            // SAFETY: `dst` is ours and valid for size_of::<T>() bytes; a fault on `addr` is
            // fixed up into a short count by the installed wrapper.
            unsafe { uaccess::copy_user(dst, addr as *const u8, size_of::<T>()) == 0 }
        } else {
            sys::copy_from_user(dst, addr, size_of::<T>()).is_ok()
        };
        // SAFETY: every byte was written by a complete copy; T is plain data (Copy).
        ok.then(|| unsafe { v.assume_init() })
    }

    pub fn write<T: Copy>(self, addr: usize, v: &T) -> bool {
        let src = v as *const T as *const u8;
        if self.fast {
            // SAFETY: `src` is ours and valid for size_of::<T>() bytes; a fault on `addr` is
            // fixed up into a short count by the installed wrapper.
            unsafe { uaccess::copy_user(addr as *mut u8, src, size_of::<T>()) == 0 }
        } else {
            sys::copy_to_user(addr, src, size_of::<T>()).is_ok()
        }
    }
}
