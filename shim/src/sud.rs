//! The syscall-level catch-all (Syscall User Dispatch, NOTES §2).
//!
//! Interface used by the rest of the shim; the implementation arrives with the catch-all.

/// True when every syscall of this process reaches the shim (SUD armed in this image).
pub fn catchall_active() -> bool {
    false
}

/// True in the child of a `vfork`/`CLONE_VM` clone, which shares the parent's memory (and so
/// its per-process tables) but not its fd table.
pub fn in_vfork_child() -> bool {
    false
}

/// Held while shim code runs: syscalls go straight to the kernel, and asynchronous signals
/// that arrive meanwhile are deferred until the guard drops.
pub struct Guard(());

pub fn enter() -> Guard {
    Guard(())
}

impl Guard {
    /// Runs `f` (a wait holding no shim lock) with signals delivered to the application's
    /// handlers as they arrive.
    pub fn allow_signals<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }
}
