//! The application's signal handlers, wrapped: the shim learns which handlers ran (and with
//! which SA_RESTART) and keeps SIGSYS deliverable.

/// Forgets earlier handler runs; call before a wait.
pub fn clear_interrupt() {}

/// After a wait returned EINTR: `Some(true)` if every handler that ran had SA_RESTART,
/// `Some(false)` if one did not, `None` if no application handler ran.
pub fn take_interrupt() -> Option<bool> {
    None
}

/// Removes SIGSYS from a signal mask the application wants to install.
pub fn sanitize_mask(mask: &mut u64) {
    *mask &= !(1u64 << (libc::SIGSYS - 1));
}
