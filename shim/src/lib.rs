//! `libipcshim.so`: loaded with LD_PRELOAD, it serves the program's IPC (pipes, System V
//! shared memory, semaphores and message queues, AF_UNIX and loopback TCP/UDP sockets, epoll)
//! from the namespace's shared region (see the `shared-state` crate), with the kernel's results
//! and errno. This crate only translates C calls and process events.
//!
//! Three layers, each importing only from those below it (`tests/tests/layering.rs` checks):
//! - [`entry`]: how control arrives: the exported C symbols, the syscall-level catch-all
//!   (SIGSYS) and its dispatcher, signal delivery, process events (fork, exec, exit).
//! - [`family`]: one module per kind of file the shim serves (pipes, AF_UNIX stream and
//!   datagram sockets, TCP, UDP, epoll, poll, splice, sysctl views), and the file operations
//!   common to them.
//! - [`base`]: process and thread state and primitives: the fd table, the region and IPC
//!   namespaces, user copies, per-thread state, scratch memory, io_uring, tracing.

mod base;
mod entry;
mod family;
