//! AF_UNIX stream sockets, after `net/unix/af_unix.c`. The kernel keeps doing everything about
//! names and connections (bind, listen's backlog, connect, accept, permissions, addresses):
//! every shim socket is a real kernel socket, connected to the real peer, that carries no data.
//! What the shim adds is where the data goes: each end's send queue is a pipe object
//! ([`crate::pipe`]) named by the end's socket inode and linked to its peer's.
//!
//! A connecting client must know before its first send whether the other end will read the
//! shim's queue. This table says which names have a listener in a shim process: a client
//! connecting to one creates its queue (pending) before the kernel's connect, the server's
//! accept adopts it. An entry can be stale (a listener closed, a name reused); the shim checks
//! with the kernel that the connection really reached the listener named here, and
//! [`crate::pipe::sock_adopt`] / [`crate::pipe::sock_refuse`] decide each connection exactly
//! once, so a stale or lost entry only sends a connection to the kernel.
//!
//! A client first compares the listener's pid with the one the kernel gives it as its peer's
//! credentials (those of the process that called `listen`); only when they differ does it ask
//! the kernel's socket diagnostics.

use crate::pipe::ns_lock;
use crate::region::{Region, UNIX_NAMES_MAX, UNIX_NAMES_OFF};
use core::sync::atomic::{AtomicU64, Ordering};

/// `sun_path` holds at most this many bytes.
pub const UNIX_PATH_MAX: usize = 108;

/// A socket's name, as the table keys it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Name<'a> {
    /// A filesystem name: the socket file's (st_dev, st_ino).
    Path { dev: u64, ino: u64 },
    /// An abstract name: `sun_path` with its leading NUL, as long as the address says.
    Abstract(&'a [u8]),
}

/// A listening socket: its inode, and the process that called `listen` (the pid the kernel
/// gives its clients as their peer's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listener {
    pub ino: u32,
    pub pid: u32,
}

impl Listener {
    fn pack(self) -> u64 {
        (self.pid as u64) << 32 | self.ino as u64
    }

    fn unpack(v: u64) -> Listener {
        Listener { ino: v as u32, pid: (v >> 32) as u32 }
    }
}

/// One entry: `kind` (0 empty, 1 path, 2 + length for an abstract name), the listener
/// (packed), and the key.
#[repr(C)]
struct UnixName {
    kind: AtomicU64,
    listener: AtomicU64,
    key: [AtomicU64; 14],
}

const _: () = assert!(size_of::<UnixName>() == 128 && UNIX_PATH_MAX <= 14 * 8);

fn entry(region: &Region, i: u32) -> &UnixName {
    // SAFETY: the names table is UNIX_NAMES_MAX entries of 128 bytes at UNIX_NAMES_OFF, inside
    // the mapping, and made of atomics only.
    unsafe { &*((region.base() + UNIX_NAMES_OFF as usize) as *const UnixName).add(i as usize) }
}

/// The name as the table stores it: kind and key words.
fn encode(name: Name<'_>) -> Option<(u64, [u64; 14])> {
    let mut key = [0u64; 14];
    match name {
        Name::Path { dev, ino } => {
            key[0] = dev;
            key[1] = ino;
            Some((1, key))
        }
        Name::Abstract(bytes) if bytes.len() <= UNIX_PATH_MAX => {
            for (i, b) in bytes.iter().enumerate() {
                key[i / 8] |= (*b as u64) << (i % 8 * 8);
            }
            Some((2 + bytes.len() as u64, key))
        }
        Name::Abstract(_) => None,
    }
}

/// Where a name lives: one slot per hash (a newer listener's name replaces an older one's).
fn index(kind: u64, key: &[u64; 14]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ kind;
    for w in key {
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    (h % UNIX_NAMES_MAX as u64) as u32
}

/// `listen` in a shim process: connections to `name` will be adopted by the shim.
pub fn register(region: &Region, name: Name<'_>, listener: Listener) {
    let Some((kind, key)) = encode(name) else { return };
    let Ok(_g) = ns_lock(region) else { return };
    let e = entry(region, index(kind, &key));
    // Emptied first and filled last: a holder killed in between leaves an empty slot.
    e.kind.store(0, Ordering::Release);
    for (slot, w) in e.key.iter().zip(key) {
        slot.store(w, Ordering::Relaxed);
    }
    e.listener.store(listener.pack(), Ordering::Relaxed);
    e.kind.store(kind, Ordering::Release);
}

/// The shim listener last registered under `name`, if any.
pub fn lookup(region: &Region, name: Name<'_>) -> Option<Listener> {
    let (kind, key) = encode(name)?;
    let _g = ns_lock(region).ok()?;
    let e = entry(region, index(kind, &key));
    let same = e.kind.load(Ordering::Acquire) == kind
        && e.key.iter().zip(key).all(|(slot, w)| slot.load(Ordering::Relaxed) == w);
    same.then(|| Listener::unpack(e.listener.load(Ordering::Relaxed)))
}

/// Listeners that will no longer adopt connections (`gone` says which): their names lead to
/// the kernel.
pub fn unregister(region: &Region, gone: impl Fn(Listener) -> bool) {
    let Ok(_g) = ns_lock(region) else { return };
    for i in 0..UNIX_NAMES_MAX {
        let e = entry(region, i);
        if e.kind.load(Ordering::Acquire) != 0 && gone(Listener::unpack(e.listener.load(Ordering::Relaxed))) {
            e.kind.store(0, Ordering::Release);
        }
    }
}
