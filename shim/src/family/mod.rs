//! The kinds of file the shim serves, one module each, over the region's objects
//! (`shared_state`), using only the primitives of `crate::base`.

pub(crate) mod dgram;
pub(crate) mod epoll;
pub(crate) mod file;
pub(crate) mod foreign;
pub(crate) mod pipes;
pub(crate) mod poll;
pub(crate) mod procfs;
pub(crate) mod scm;
pub(crate) mod splice;
pub(crate) mod tcp;
pub(crate) mod udp;
pub(crate) mod unix;
