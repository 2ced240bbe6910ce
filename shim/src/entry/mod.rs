//! How control reaches the shim: exported C symbols, the syscall-level catch-all and its
//! dispatcher, signal delivery and process events. Translates and delegates to the families.

pub(crate) mod dispatch;
pub(crate) mod forkcopy;
pub(crate) mod hooks;
pub(crate) mod msg;
pub(crate) mod process;
pub(crate) mod sem;
pub(crate) mod signals;
pub(crate) mod sud;
pub(crate) mod sysv;
