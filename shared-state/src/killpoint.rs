//! Named instants of the locked sections at which a test kills its own process: a forked test
//! child arms one, and is SIGKILLed when it gets there, so that each instant a holder or a
//! sleeper may die at is tested deterministically rather than by chance. Outside the crate's
//! own tests, [`reached`] is empty and compiles to nothing.

/// The instants.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub(crate) enum Step {
    /// A semaphore holder's journal is committed; a sleeper it completed is not told yet.
    SemCommitted = 1,
    /// A semaphore holder told a sleeper its result, and still holds the lock.
    SemTold,
    /// A semaphore holder completed a sleeper (its status stored), before its commit.
    SemCompleted,
    /// A semaphore holder applied a dead process's adjustments, before freeing its undo entry.
    SemUndoApplied,
    /// A set's holder entering complex mode, with one semaphore's lock taken.
    SemComplexEnter,
    /// A sleeper finds its operation done (by its waker), before it returns.
    SemGranted,
    /// A message queue's sender handed its message to a sleeping receiver, before its commit.
    MsgHanded,
    /// A message queue's holder committed, before it woke the sleepers it served.
    MsgCommitted,
}

#[cfg(test)]
static ARMED: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
#[cfg(test)]
static SKIP: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Kills this process the `skip + 1`th time it reaches `step` (a forked test child's own).
#[cfg(test)]
pub(crate) fn arm(step: Step, skip: u32) {
    use core::sync::atomic::Ordering;
    SKIP.store(skip, Ordering::Relaxed);
    ARMED.store(step as u32, Ordering::Relaxed);
}

/// This process is at `step`: dies there if a test armed it.
#[inline(always)]
pub(crate) fn reached(step: Step) {
    #[cfg(test)]
    {
        use core::sync::atomic::Ordering;
        if ARMED.load(Ordering::Relaxed) == step as u32
            && SKIP.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| s.checked_sub(1)).is_err()
        {
            // SAFETY: plain system calls on ourselves.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
    }
    #[cfg(not(test))]
    let _ = step;
}
