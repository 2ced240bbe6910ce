//! Read and write buffers as the kernel checks them (`fs/read_write.c`, `lib/iov_iter.c`):
//! single buffers, user iovec arrays copied into scratch memory, and the kernel-style result
//! (-errno on failure) every served call returns.

use crate::base::scratch;
use shared_state::sys::Errno;

/// The kernel's UIO_MAXIOV and MAX_RW_COUNT (INT_MAX rounded down to a page).
pub const IOV_MAX: usize = 1024;

const MAX_RW_COUNT: usize = (i32::MAX as usize) & !4095;

/// One user iovec: (address, length); the address may be bad.
pub type Iov = (usize, usize);

pub fn ret(r: Result<usize, Errno>) -> i64 {
    match r {
        Ok(n) => n as i64,
        Err(e) => -(e as i64),
    }
}

/// `read`/`write`'s single buffer, checked as `vfs_read`/`vfs_write` do.
pub fn single(addr: usize, len: usize) -> Result<Iov, Errno> {
    if !crate::base::copy::access_ok(addr, len) {
        return Err(libc::EFAULT);
    }
    if (len as isize) < 0 {
        return Err(libc::EINVAL);
    }
    Ok((addr, len.min(MAX_RW_COUNT)))
}

/// Copies in and checks a user iovec array as `import_iovec` does (`copy_iovec_from_user`'s
/// per-entry order of EFAULT and EINVAL, then `access_ok` and the MAX_RW_COUNT cut), into
/// scratch memory.
pub fn import_iovec(uiov: usize, cnt: u64) -> Result<scratch::Slice<Iov>, Errno> {
    let cnt = cnt as i64;
    if !(0..=IOV_MAX as i64).contains(&cnt) {
        return Err(libc::EINVAL);
    }
    let mut out = scratch::take(cnt as usize, (0usize, 0usize))?;
    const CHUNK: usize = 32;
    let mut raw = [libc::iovec { iov_base: core::ptr::null_mut(), iov_len: 0 }; CHUNK];
    let entry = size_of::<libc::iovec>();
    for (k, dst) in out.chunks_mut(CHUNK).enumerate() {
        let raw = &mut raw[..dst.len()];
        let at = uiov + k * CHUNK * entry;
        if crate::base::copy::slice_in(raw, at).is_err() {
            // Which comes first, a bad entry or a negative length, is decided entry by entry.
            for (i, v) in raw.iter_mut().enumerate() {
                crate::base::copy::slice_in(core::slice::from_mut(v), at + i * entry)?;
                if (v.iov_len as isize) < 0 {
                    return Err(libc::EINVAL);
                }
            }
        }
        if raw.iter().any(|v| (v.iov_len as isize) < 0) {
            return Err(libc::EINVAL);
        }
        for (d, v) in dst.iter_mut().zip(raw.iter()) {
            *d = (v.iov_base as usize, v.iov_len);
        }
    }
    let mut total = 0usize;
    for v in out.iter_mut() {
        if !crate::base::copy::access_ok(v.0, v.1) {
            return Err(libc::EFAULT);
        }
        v.1 = v.1.min(MAX_RW_COUNT - total);
        total += v.1;
    }
    Ok(out)
}

/// `iov` without its first `skip` bytes, into `out` (as long as `iov`, laid out as the kernel's
/// `struct iovec`s); returns how many entries.
pub fn skip_iov(iov: &[Iov], mut skip: usize, out: &mut [Iov]) -> usize {
    let mut n = 0;
    for &(base, len) in iov {
        if skip >= len {
            skip -= len;
            continue;
        }
        out[n] = (base + skip, len - skip);
        skip = 0;
        n += 1;
    }
    n
}

/// What is left of `iov` after the first `got` bytes a receive took (`iov` itself for none),
/// in `rest`, scratch memory taken at the first call (an iovec array is too large for a
/// small stack); None without scratch memory.
pub fn iov_after<'a>(
    iov: &'a [Iov],
    got: usize,
    rest: &'a mut Option<scratch::Slice<Iov>>,
) -> Option<&'a [Iov]> {
    if got == 0 {
        return Some(iov);
    }
    let rest = match rest {
        Some(rest) => rest,
        None => rest.insert(scratch::take(iov.len(), (0usize, 0usize)).ok()?),
    };
    let n = skip_iov(iov, got, rest);
    Some(&rest[..n])
}
