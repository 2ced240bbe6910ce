//! Process and thread state and primitives every layer above uses: the fd table, the region
//! and IPC namespaces, user copies, per-thread state, scratch memory, io_uring, tracing.

pub(crate) mod copy;
pub(crate) mod fd;
pub(crate) mod inode;
pub(crate) mod iov;
pub(crate) mod ipcns;
pub(crate) mod mlock;
pub(crate) mod real;
pub(crate) mod region;
pub(crate) mod scratch;
pub(crate) mod thread;
pub(crate) mod trace;
pub(crate) mod uring;
pub(crate) mod user;
