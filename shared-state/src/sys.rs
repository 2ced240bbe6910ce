//! Raw system calls. The shim exports `syscall`, `shmget` and friends, so the user-space kernel
//! must never call them through libc: every syscall it makes goes through `syscall6` here.

use core::arch::asm;

/// A kernel errno value (positive).
pub type Errno = i32;

/// Issues syscall `nr` with six arguments; returns the raw result or the errno.
#[inline(always)]
pub fn syscall6(
    nr: i64,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
    a6: usize,
) -> Result<usize, Errno> {
    let ret: isize;
    // SAFETY: the x86_64 syscall ABI: rax = nr, args in rdi rsi rdx r10 r8 r9, rcx and r11 clobbered.
    // The caller is responsible for the meaning of the arguments (pointers valid for the call).
    unsafe {
        asm!("syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a1, in("rsi") a2, in("rdx") a3, in("r10") a4, in("r8") a5, in("r9") a6,
            lateout("rcx") _, lateout("r11") _,
            options(nostack));
    }
    if (-4095..0).contains(&ret) { Err(-ret as Errno) } else { Ok(ret as usize) }
}

/// A full memory barrier, as `fence(Ordering::SeqCst)`, made as Linux makes `smp_mb()` on
/// x86_64: with a locked instruction, which orders every earlier load and store before every
/// later one as `mfence` does, at a fraction of its cost (here, AMD EPYC under a hypervisor:
/// `mfence` about 75 ns, a locked `or` about 10).
#[inline(always)]
pub fn full_fence() {
    // SAFETY: or-s 0 into the word at the stack pointer, the thread's own stack, which it leaves
    // as it was; without `nomem` the compiler keeps every memory access on its side.
    unsafe { asm!("lock or qword ptr [rsp], 0") }
}

macro_rules! sc {
    ($nr:expr) => { syscall6($nr, 0, 0, 0, 0, 0, 0) };
    ($nr:expr, $a:expr) => { syscall6($nr, $a as usize, 0, 0, 0, 0, 0) };
    ($nr:expr, $a:expr, $b:expr) => { syscall6($nr, $a as usize, $b as usize, 0, 0, 0, 0) };
    ($nr:expr, $a:expr, $b:expr, $c:expr) => { syscall6($nr, $a as usize, $b as usize, $c as usize, 0, 0, 0) };
    ($nr:expr, $a:expr, $b:expr, $c:expr, $d:expr) => {
        syscall6($nr, $a as usize, $b as usize, $c as usize, $d as usize, 0, 0)
    };
    ($nr:expr, $a:expr, $b:expr, $c:expr, $d:expr, $e:expr) => {
        syscall6($nr, $a as usize, $b as usize, $c as usize, $d as usize, $e as usize, 0)
    };
    ($nr:expr, $a:expr, $b:expr, $c:expr, $d:expr, $e:expr, $f:expr) => {
        syscall6($nr, $a as usize, $b as usize, $c as usize, $d as usize, $e as usize, $f as usize)
    };
}

pub fn getpid() -> i32 {
    sc!(libc::SYS_getpid).unwrap_or(0) as i32
}
pub fn geteuid() -> u32 {
    sc!(libc::SYS_geteuid).unwrap_or(u32::MAX as usize) as u32
}
pub fn getegid() -> u32 {
    sc!(libc::SYS_getegid).unwrap_or(u32::MAX as usize) as u32
}
pub fn getuid() -> u32 {
    sc!(libc::SYS_getuid).unwrap_or(u32::MAX as usize) as u32
}
pub fn getgid() -> u32 {
    sc!(libc::SYS_getgid).unwrap_or(u32::MAX as usize) as u32
}

/// Supplementary groups into `buf`; returns how many were stored.
pub fn getgroups(buf: &mut [u32]) -> usize {
    sc!(libc::SYS_getgroups, buf.len(), buf.as_mut_ptr()).unwrap_or(0)
}

/// Marks a system call shared-state means for the kernel itself (a kernel segment's call, a
/// read of the kernel's `/proc/sysvipc/shm`), in r9, which none of them uses. A program linking
/// shared-state that runs with the shim preloaded (the `ipcshim` command inside a namespace)
/// has its system calls trapped by the shim's catch-all, which would serve these as the
/// program's own System V calls and views; it passes marked ones to the kernel.
pub const KERNEL_OWN: usize = 0x6970_6373_6b65_726e;

/// A system call of up to five arguments made for the kernel itself (see [`KERNEL_OWN`]).
pub fn kernel_own(nr: i64, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize) -> Result<usize, Errno> {
    syscall6(nr, a1, a2, a3, a4, a5, KERNEL_OWN)
}

/// `path` must be NUL-terminated.
pub fn open(path: &[u8], flags: i32, mode: u32) -> Result<i32, Errno> {
    debug_assert_eq!(path.last(), Some(&0));
    sc!(libc::SYS_openat, libc::AT_FDCWD, path.as_ptr(), flags | libc::O_CLOEXEC, mode).map(|fd| fd as i32)
}
pub fn close(fd: i32) {
    let _ = sc!(libc::SYS_close, fd);
}
pub fn read(fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
    sc!(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len())
}
pub fn pread(fd: i32, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
    sc!(libc::SYS_pread64, fd, buf.as_mut_ptr(), buf.len(), off)
}
pub fn write(fd: i32, buf: &[u8]) -> Result<usize, Errno> {
    sc!(libc::SYS_write, fd, buf.as_ptr(), buf.len())
}
pub fn flock(fd: i32, op: i32) -> Result<(), Errno> {
    loop {
        match sc!(libc::SYS_flock, fd, op) {
            Err(libc::EINTR) => continue,
            r => return r.map(|_| ()),
        }
    }
}
pub fn ftruncate(fd: i32, len: u64) -> Result<(), Errno> {
    sc!(libc::SYS_ftruncate, fd, len).map(|_| ())
}
/// File size from fstat.
pub fn fstat_size(fd: i32) -> Result<u64, Errno> {
    // SAFETY: an all-zero `stat` is a valid value; the kernel fills it.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    sc!(libc::SYS_fstat, fd, &mut st as *mut libc::stat)?;
    Ok(st.st_size as u64)
}
pub fn mmap(addr: usize, len: usize, prot: i32, flags: i32, fd: i32, off: u64) -> Result<usize, Errno> {
    sc!(libc::SYS_mmap, addr, len, prot, flags, fd, off)
}
pub fn munmap(addr: usize, len: usize) -> Result<(), Errno> {
    sc!(libc::SYS_munmap, addr, len).map(|_| ())
}

/// Zeroed memory of a call's own for data too large for its stack, mapped and unmapped with
/// system calls: no heap, so usable where the interrupted code may hold the allocator's lock.
pub struct Mapped {
    addr: usize,
    len: usize,
}

impl Mapped {
    /// `len` bytes (ENOMEM when they cannot be had, as the kernel's own allocations fail).
    pub fn new(len: usize) -> Result<Mapped, Errno> {
        let len = len.max(1);
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let addr =
            mmap(0, len, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0).map_err(|_| libc::ENOMEM)?;
        Ok(Mapped { addr, len })
    }

    /// The first `n` values of type `T`.
    ///
    /// # Safety
    /// All-zero bytes are a valid `T`, and `T` needs no more than page alignment.
    pub unsafe fn slice<T>(&mut self, n: usize) -> &mut [T] {
        assert!(n * size_of::<T>() <= self.len);
        // SAFETY: our own mapping of at least that many bytes, zeroed or written as T since.
        unsafe { core::slice::from_raw_parts_mut(self.addr as *mut T, n) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        let _ = munmap(self.addr, self.len);
    }
}
pub fn mremap(
    old: usize,
    old_len: usize,
    new_len: usize,
    flags: i32,
    new_addr: usize,
) -> Result<usize, Errno> {
    sc!(libc::SYS_mremap, old, old_len, new_len, flags, new_addr)
}
pub fn mprotect(addr: usize, len: usize, prot: i32) -> Result<(), Errno> {
    sc!(libc::SYS_mprotect, addr, len, prot).map(|_| ())
}
pub fn madvise(addr: usize, len: usize, advice: i32) -> Result<(), Errno> {
    sc!(libc::SYS_madvise, addr, len, advice).map(|_| ())
}
pub fn mincore(addr: usize, len: usize, vec: &mut [u8]) -> Result<(), Errno> {
    sc!(libc::SYS_mincore, addr, len, vec.as_mut_ptr()).map(|_| ())
}
pub fn kill(pid: i32, sig: i32) -> Result<(), Errno> {
    sc!(libc::SYS_kill, pid, sig).map(|_| ())
}
pub fn futex(
    uaddr: *const u32,
    op: i32,
    val: u32,
    timeout: *const libc::timespec,
    uaddr2: usize,
    val3: u32,
) -> Result<usize, Errno> {
    sc!(libc::SYS_futex, uaddr, op, val, timeout, uaddr2, val3)
}

/// Current time of `clock`.
pub fn clock_gettime(clock: libc::clockid_t) -> libc::timespec {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; clock_gettime is the vDSO, not a hooked symbol.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts
}

/// CLOCK_MONOTONIC in nanoseconds (vDSO).
pub fn monotonic_ns() -> i64 {
    let t = clock_gettime(libc::CLOCK_MONOTONIC);
    t.tv_sec * 1_000_000_000 + t.tv_nsec
}

/// CPU + 1 we run on: glibc reads it from rseq, no system call.
pub fn current_cpu() -> u32 {
    // SAFETY: sched_getcpu has no preconditions.
    let cpu = unsafe { libc::sched_getcpu() };
    if cpu < 0 { 0 } else { cpu as u32 + 1 }
}

/// Whether more than one CPU is online (read once).
pub fn multi_cpu() -> bool {
    static NCPU: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
    let mut n = NCPU.load(core::sync::atomic::Ordering::Relaxed);
    if n == 0 {
        // SAFETY: sysconf has no preconditions; glibc answers from a cached value or /sys.
        n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as u32;
        NCPU.store(n, core::sync::atomic::Ordering::Relaxed);
    }
    n > 1
}

/// `ktime_get_real_seconds`: the vDSO's `time`, the seconds the kernel keeps in its data page
/// (`xtime_sec`, as CLOCK_REALTIME_COARSE's), read without the TSC: 3.3 ns here, where
/// clock_gettime(CLOCK_REALTIME_COARSE) takes 5.4.
#[inline]
pub fn coarse_seconds() -> i64 {
    // SAFETY: time(NULL) has no preconditions; glibc resolves it to the vDSO.
    unsafe { libc::time(core::ptr::null_mut()) }
}

/// Seconds since the epoch, as the kernel's `ktime_get_real_seconds`.
pub fn real_seconds() -> i64 {
    clock_gettime(libc::CLOCK_REALTIME).tv_sec
}

/// Effective capability set (bit n = capability n), as `capget` reports it.
pub fn effective_caps() -> u64 {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut hdr = Header { version: 0x2008_0522, pid: 0 };
    let mut data = [Data { effective: 0, permitted: 0, inheritable: 0 }; 2];
    match sc!(libc::SYS_capget, &mut hdr as *mut Header, data.as_mut_ptr()) {
        Ok(_) => data[0].effective as u64 | ((data[1].effective as u64) << 32),
        Err(_) => 0,
    }
}

/// Copies `len` bytes between our `local` buffer and a caller-supplied `remote` address with
/// process_vm_readv/writev (`nr`) on ourselves: EFAULT instead of a crash when `remote` is
/// not accessible (NOTES §6).
fn copy_user(nr: i64, local: *mut u8, remote: usize, len: usize) -> Result<(), Errno> {
    let local = libc::iovec { iov_base: local as *mut libc::c_void, iov_len: len };
    let remote = libc::iovec { iov_base: remote as *mut libc::c_void, iov_len: len };
    match sc!(nr, getpid(), &local as *const libc::iovec, 1, &remote as *const libc::iovec, 1, 0) {
        Ok(n) if n == len => Ok(()),
        Ok(_) | Err(libc::EFAULT) | Err(libc::ENOMEM) => Err(libc::EFAULT),
        Err(e) => Err(e),
    }
}

/// One process_vm_readv on ourselves of the caller-supplied `remote` pieces into our `local`
/// ones (as many, of the same lengths): the bytes copied, which stop at the first piece that
/// is not readable whole.
pub fn copy_from_user_vec(local: &[libc::iovec], remote: &[libc::iovec]) -> Result<usize, Errno> {
    debug_assert_eq!(local.len(), remote.len());
    let n = local.len().min(remote.len());
    match sc!(libc::SYS_process_vm_readv, getpid(), local.as_ptr(), n, remote.as_ptr(), n, 0) {
        Ok(got) => Ok(got),
        Err(libc::EFAULT) | Err(libc::ENOMEM) => Ok(0),
        Err(e) => Err(e),
    }
}

/// Copies `len` bytes from our `src` to the caller-supplied address `dst`.
pub fn copy_to_user(dst: usize, src: *const u8, len: usize) -> Result<(), Errno> {
    copy_user(libc::SYS_process_vm_writev, src as *mut u8, dst, len)
}

/// Copies `len` bytes from the caller-supplied address `src` into our `dst`.
pub fn copy_from_user(dst: *mut u8, src: usize, len: usize) -> Result<(), Errno> {
    copy_user(libc::SYS_process_vm_readv, dst, src, len)
}

/// RLIMIT_MEMLOCK's soft limit in bytes.
pub fn memlock_limit() -> u64 {
    let mut old = libc::rlimit64 { rlim_cur: 0, rlim_max: 0 };
    match sc!(libc::SYS_prlimit64, 0, libc::RLIMIT_MEMLOCK, 0usize, &mut old as *mut libc::rlimit64) {
        Ok(_) => old.rlim_cur,
        Err(_) => 0,
    }
}

/// The size in bytes of the file system `fd` is on.
pub fn fs_bytes(fd: i32) -> Result<u64, Errno> {
    // SAFETY: an all-zero statfs is a valid value; the kernel fills it.
    let mut st: libc::statfs = unsafe { core::mem::zeroed() };
    sc!(libc::SYS_fstatfs, fd, &mut st as *mut libc::statfs)?;
    Ok((st.f_blocks as u64).saturating_mul(st.f_bsize as u64))
}

/// Whether `fd` lives on tmpfs or ramfs, where a sparse region costs only what is touched.
pub fn on_memory_fs(fd: i32) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    // SAFETY: an all-zero statfs is a valid value; the kernel fills it.
    let mut st: libc::statfs = unsafe { core::mem::zeroed() };
    match sc!(libc::SYS_fstatfs, fd, &mut st as *mut libc::statfs) {
        Ok(_) => st.f_type == TMPFS_MAGIC || st.f_type == RAMFS_MAGIC,
        Err(_) => false,
    }
}

/// `openat(dirfd, path)`; `path` must be NUL-terminated. Always close-on-exec.
pub fn openat(dirfd: i32, path: &[u8], flags: i32) -> Result<i32, Errno> {
    debug_assert_eq!(path.last(), Some(&0));
    sc!(libc::SYS_openat, dirfd, path.as_ptr(), flags | libc::O_CLOEXEC, 0).map(|fd| fd as i32)
}

/// Directory entries of `fd` into `buf` (`struct linux_dirent64` records); 0 at the end.
pub fn getdents64(fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
    sc!(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len())
}

/// Target of the symlink `path` (NUL-terminated) relative to `dirfd`, into `buf`; its length.
pub fn readlinkat(dirfd: i32, path: &[u8], buf: &mut [u8]) -> Result<usize, Errno> {
    debug_assert_eq!(path.last(), Some(&0));
    sc!(libc::SYS_readlinkat, dirfd, path.as_ptr(), buf.as_mut_ptr(), buf.len())
}

/// `fstatat(dirfd, path, 0)`, following symlinks; `path` must be NUL-terminated.
pub fn fstatat(dirfd: i32, path: &[u8]) -> Result<libc::stat, Errno> {
    debug_assert_eq!(path.last(), Some(&0));
    // SAFETY: an all-zero `stat` is a valid value; the kernel fills it.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    sc!(libc::SYS_newfstatat, dirfd, path.as_ptr(), &mut st as *mut libc::stat, 0)?;
    Ok(st)
}

/// `fstat(fd)`.
pub fn fstat(fd: i32) -> Result<libc::stat, Errno> {
    // SAFETY: an all-zero `stat` is a valid value; the kernel fills it.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    sc!(libc::SYS_fstat, fd, &mut st as *mut libc::stat)?;
    Ok(st)
}

/// `pipe2(flags)`: (read end, write end).
pub fn pipe2(flags: i32) -> Result<(i32, i32), Errno> {
    let mut fds = [0i32; 2];
    sc!(libc::SYS_pipe2, fds.as_mut_ptr(), flags)?;
    Ok((fds[0], fds[1]))
}

/// `socketpair(AF_UNIX, ty, 0)`.
pub fn socketpair(ty: i32) -> Result<(i32, i32), Errno> {
    let mut fds = [0i32; 2];
    sc!(libc::SYS_socketpair, libc::AF_UNIX, ty, 0, fds.as_mut_ptr())?;
    Ok((fds[0], fds[1]))
}

static SOCKFS_DEV: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(u64::MAX);

/// The device of sockets (sockfs), learnt once from a socket pair of our own; u64::MAX if
/// none can be made.
pub fn sockfs_dev() -> u64 {
    use core::sync::atomic::Ordering;
    let d = SOCKFS_DEV.load(Ordering::Relaxed);
    if d != u64::MAX {
        return d;
    }
    let Ok((a, b)) = socketpair(libc::SOCK_STREAM | libc::SOCK_CLOEXEC) else { return u64::MAX };
    let st = fstat(a);
    close(a);
    close(b);
    let d = st.map_or(u64::MAX, |st| st.st_dev);
    SOCKFS_DEV.store(d, Ordering::Relaxed);
    d
}

/// One entry of `futex_waitv` (`struct futex_waitv`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct FutexWaitv {
    pub val: u64,
    pub uaddr: u64,
    pub flags: u32,
    pub reserved: u32,
}

/// `FUTEX2_SIZE_U32`: a 32-bit shared (not private) futex word.
pub const FUTEX2_SIZE_U32: u32 = 2;

/// Sleeps until one of `waiters` is woken, one no longer holds its value (EAGAIN), the absolute
/// CLOCK_MONOTONIC `deadline` passes (ETIMEDOUT) or a signal arrives (EINTR).
pub fn futex_waitv(waiters: &[FutexWaitv], deadline: &libc::timespec) -> Result<usize, Errno> {
    sc!(
        libc::SYS_futex_waitv,
        waiters.as_ptr(),
        waiters.len(),
        0,
        deadline as *const libc::timespec,
        libc::CLOCK_MONOTONIC
    )
}

pub fn fallocate(fd: i32, mode: i32, off: u64, len: u64) -> Result<(), Errno> {
    sc!(libc::SYS_fallocate, fd, mode, off, len).map(|_| ())
}
pub fn lseek(fd: i32, off: i64, whence: i32) -> Result<u64, Errno> {
    sc!(libc::SYS_lseek, fd, off, whence).map(|o| o as u64)
}
