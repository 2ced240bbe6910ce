//! A lock that lives in the shared region and survives the death of its holder.
//!
//! glibc's robust process-shared mutex (NOTES §5): when the holder dies the next locker gets
//! EOWNERDEAD. The lock itself is then made consistent; the structure it protects is repaired
//! by the caller, which is told through [`LockGuard::recovered`].

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicI32, Ordering};

#[repr(C)]
pub struct RobustMutex {
    inner: UnsafeCell<libc::pthread_mutex_t>,
}

// SAFETY: the mutex is designed for concurrent use from many threads and processes.
unsafe impl Sync for RobustMutex {}

/// Held while alive; unlocks on drop.
pub struct LockGuard<'a> {
    mutex: &'a RobustMutex,
    /// The previous holder died while holding the lock: its update may be half done.
    pub recovered: bool,
}

impl RobustMutex {
    /// Initialises a mutex in place, in memory that no other process uses yet.
    ///
    /// # Safety
    /// `this` must point to writable memory of the right size that nobody else accesses.
    pub unsafe fn init(this: *mut RobustMutex) {
        // SAFETY: per the contract `this` is valid and exclusive; the attr lives on our stack.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = core::mem::zeroed();
            libc::pthread_mutexattr_init(&mut attr);
            libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
            libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
            libc::pthread_mutex_init((*this).inner.get(), &attr);
            libc::pthread_mutexattr_destroy(&mut attr);
        }
    }

    /// Takes the lock. Fails only when the mutex is unusable (ENOTRECOVERABLE, or memory that
    /// is not a mutex at all).
    pub fn lock(&self) -> Result<LockGuard<'_>, i32> {
        // SAFETY: the mutex was initialised by `init` when the region was created.
        let rc = unsafe { libc::pthread_mutex_lock(self.inner.get()) };
        match rc {
            0 => Ok(LockGuard { mutex: self, recovered: false }),
            libc::EOWNERDEAD => {
                // SAFETY: we hold the lock (EOWNERDEAD transfers ownership to us).
                unsafe { libc::pthread_mutex_consistent(self.inner.get()) };
                Ok(LockGuard { mutex: self, recovered: true })
            }
            e => Err(e),
        }
    }
}

impl RobustMutex {
    /// Takes the lock if it is free; `None` when another holder has it.
    pub fn try_lock(&self) -> Option<Result<LockGuard<'_>, i32>> {
        // SAFETY: the mutex was initialised by `init` when the region was created.
        let rc = unsafe { libc::pthread_mutex_trylock(self.inner.get()) };
        match rc {
            0 => Some(Ok(LockGuard { mutex: self, recovered: false })),
            libc::EBUSY => None,
            libc::EOWNERDEAD => {
                // SAFETY: we hold the lock (EOWNERDEAD transfers ownership to us).
                unsafe { libc::pthread_mutex_consistent(self.inner.get()) };
                Some(Ok(LockGuard { mutex: self, recovered: true }))
            }
            e => Some(Err(e)),
        }
    }
}

impl RobustMutex {
    /// Takes the lock, first spinning for up to `spin_ns` while another holder has it (a
    /// holder on another CPU usually lets go sooner than a futex sleep and wake-up take).
    /// The spin only reads the lock word, trying to take it when it reads free: trying all
    /// along would pull the word's cache line away from the holder at every attempt.
    /// `every`: pauses between looks at the word (a pipe's writer and reader do better left
    /// to run a little while the other holds the lock).
    pub fn lock_spinning(&self, spin_ns: i64, every: u32) -> Result<LockGuard<'_>, i32> {
        let word = self.word();
        if word.load(core::sync::atomic::Ordering::Relaxed) == 0
            && let Some(g) = self.try_lock()
        {
            return g;
        }
        let start = crate::sys::monotonic_ns();
        let mut i = 0u32;
        loop {
            core::hint::spin_loop();
            i = i.wrapping_add(1);
            if i.is_multiple_of(every.max(1))
                && word.load(core::sync::atomic::Ordering::Relaxed) == 0
                && let Some(g) = self.try_lock()
            {
                return g;
            }
            if i.is_multiple_of(64) && crate::sys::monotonic_ns() - start > spin_ns {
                return self.lock();
            }
        }
    }

    /// Makes a mutex in zeroed memory the robust process-shared one [`init`](Self::init)
    /// makes: on zeroed memory glibc's init writes only `__kind` (the int at offset 16), so
    /// lockers that find it 0 all store the same value, and a lock of the region's many
    /// objects needs no initialisation pass.
    pub fn ensure_init(&self) {
        // SAFETY: `__kind` is the fifth int of glibc's pthread_mutex_t, 4-aligned.
        let kind = unsafe { &*((self.inner.get() as *const AtomicI32).add(4)) };
        if kind.load(Ordering::Acquire) != 0 {
            return;
        }
        let _ = kind.compare_exchange(0, Self::kind(), Ordering::AcqRel, Ordering::Acquire);
    }

    /// The `__kind` glibc's init gives a robust process-shared mutex, learnt once per process
    /// (a process about to fork learns it for its children).
    pub fn kind() -> i32 {
        static KIND: AtomicI32 = AtomicI32::new(0);
        let mut want = KIND.load(Ordering::Relaxed);
        if want == 0 {
            let mut m = core::mem::MaybeUninit::<RobustMutex>::zeroed();
            // SAFETY: a zeroed mutex of our own on the stack, initialised and only read.
            want = unsafe {
                RobustMutex::init(m.as_mut_ptr());
                (*((m.as_ptr() as *const AtomicI32).add(4))).load(Ordering::Relaxed)
            };
            KIND.store(want, Ordering::Relaxed);
        }
        want
    }

    /// The lock word: the owner's TID, plus FUTEX_OWNER_DIED (0x4000_0000) once the kernel
    /// saw the owner die holding it.
    pub fn owner_word(&self) -> u32 {
        self.word().load(core::sync::atomic::Ordering::Acquire)
    }

    /// The lock word itself, a futex the kernel wakes when the owner dies with FUTEX_WAITERS set.
    pub fn word(&self) -> &core::sync::atomic::AtomicU32 {
        // SAFETY: `__lock` is the first int of glibc's pthread_mutex_t, 4-aligned.
        unsafe { &*(self.inner.get() as *const core::sync::atomic::AtomicU32) }
    }

    /// Takes the lock for good (it is released by the owner's death), if nobody holds it.
    pub fn hold(&self) {
        if let Some(Ok(g)) = self.try_lock() {
            core::mem::forget(g);
        }
    }

    /// Releases a lock taken with [`hold`](Self::hold); false when this thread is not its owner.
    pub fn release(&self) -> bool {
        // SAFETY: the mutex was initialised; a non-owner gets EPERM and nothing changes.
        unsafe { libc::pthread_mutex_unlock(self.inner.get()) == 0 }
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: the guard exists only while this thread holds the lock.
        unsafe { libc::pthread_mutex_unlock(self.mutex.inner.get()) };
    }
}

// The namespaces pad their lock out to a cache line of its own on this assumption.
const _: () = assert!(size_of::<RobustMutex>() == 40);
