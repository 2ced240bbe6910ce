//! `libipcshim.so`: loaded with LD_PRELOAD, it serves the program's System V shared memory
//! calls (shared memory, semaphores, message queues) from the namespace's shared region (see the `shared-state` crate), with the
//! kernel's results and errno. This crate only translates C calls and process events.

mod copy;
mod dgram;
mod dispatch;
mod epoll;
mod fd;
mod foreign;
mod forkcopy;
mod hooks;
mod ipcns;
mod mlock;
mod msg;
mod pipes;
mod poll;
mod process;
mod procfs;
mod real;
mod region;
mod scm;
mod scratch;
mod sem;
mod signals;
mod splice;
mod sud;
mod sysv;
mod tcp;
mod trace;
mod udp;
mod unix;
mod uring;
