//! The user-space kernel behind ipcshim: a shared region holding the kernel's own IPC data
//! structures, and the operations on them, named after their counterparts in Linux's `ipc/`.
//!
//! - [`region`]: the namespace file, its header and layout.
//! - [`lock`], [`wait`]: cross-process locks that survive their holder, and futex waits.
//! - [`proc`]: per-process records, death detection and reaping.
//! - [`alloc`]: the allocator inside the region.
//! - [`backing`]: pages reserved before their first use, so a full tmpfs is an error.
//! - [`ipc`]: the `ipc/util.c` part — ids, keys, permissions, the generic `ipcget`.
//! - [`shm`]: what `ipc/shm.c` does, with [`shm_backing`] (segments in the kernel's memory when
//!   the region has no room)
//! - [`sem`]: what `ipc/sem.c` does, with undo that survives SIGKILL of its owner.
//! - [`msg`]: what `ipc/msg.c` does; no message is lost to a process killed mid-call.
//! - [`pipe`]: what `fs/pipe.c` does, with [`pipe_pages`] (ring memory) and [`pipe_gc`]
//!   (freeing objects no process has open), [`pipe_exec`] (ends an exec closes) and
//!   [`pipe_splice`] (splice and tee).
//! - [`unix`]: the names AF_UNIX listeners in shim processes are bound to, and their pending
//!   connects, so that a connection is served by the shim on both ends or on neither (the
//!   sockets' queues themselves are [`pipe`] objects).
//! - [`tcp`]: loopback TCP listeners in shim processes and the connections their clients
//!   publish, so that a connection is served by the shim on both ends or on neither.
//! - [`epoll`]: the shim's eventpoll (`fs/eventpoll.c`): instances, their interests in shim
//!   objects and ready lists; [`epoll_wq`]: the objects' wait queues and their wake-ups.
//! - [`procfs`]: the namespace's `/proc/sysvipc` files and IPC sysctls, in the kernel's format.
//! - [`sys`]: raw system calls that never re-enter the shim's hooks.
//! - [`uaccess`]: copies to and from caller addresses that may fault (EFAULT, not a crash).

pub mod alloc;
pub mod backing;
pub mod epoll;
pub mod epoll_wq;
pub mod ipc;
pub(crate) mod journal;
pub(crate) mod killpoint;
pub mod lock;
pub mod msg;
pub(crate) mod msg_ring;
pub mod pipe;
pub mod pipe_exec;
pub mod pipe_gc;
pub mod pipe_pages;
pub mod pipe_splice;
pub mod proc;
pub mod procfs;
pub mod region;
pub mod sem;
pub mod shm;
pub mod shm_backing;
pub mod skb;
pub mod sys;
pub mod tcp;
pub mod uaccess;
pub mod udp;
pub mod unix;
pub mod wait;

pub use region::{Region, RegionError};
