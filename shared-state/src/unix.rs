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
//!
//! A server finds its client's queue through the client socket's inode, which the diagnostics
//! give as its peer's (asked at every accept). A client that closed or died before being accepted has no inode any
//! more: its connect is also in a pending table by (listener, client pid), in connect order,
//! and the server takes that pid's oldest one, as the kernel's accept queue is in connect
//! order. Every shim client connecting to an announced name is in it, so a process's
//! connections to one listener are there in order.

use crate::pipe::{self, PipeHandle, SOCKADDR_UN_MAX, ns_lock};
use crate::region::{
    PIPE_MAX, Region, UNIX_ADDRS_OFF, UNIX_NAMES_MAX, UNIX_NAMES_OFF, UNIX_PENDING_MAX, UNIX_PENDING_OFF,
};
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

/// Entry `i`, if it was ever used (one that was not is empty, and is not read); `fill`: to
/// be written, so it is reserved first (None without room).
fn entry(region: &Region, i: u32, fill: bool) -> Option<&UnixName> {
    table_entry(region, UNIX_NAMES_OFF, i, fill)
}

/// Entry `i` of a table of `T`s (made of atomics only) at `off`: see [`entry`].
fn table_entry<T>(region: &Region, off: u64, i: u32, fill: bool) -> Option<&T> {
    let (at, size) = (off + i as u64 * size_of::<T>() as u64, size_of::<T>() as u64);
    let usable = if fill { region.reserve(at, size).is_ok() } else { region.reserved(at, size) };
    // SAFETY: callers pass an index of a table of T at `off`, inside the mapping; the entry's
    // page has its memory.
    usable.then(|| unsafe { &*((region.base() + at as usize) as *const T) })
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
    store(region, kind, key, listener.pack());
}

/// Above a kind: a datagram socket's name, whose entry holds its receive queue (the kernel
/// keeps each type's names apart too: a stream client never finds a datagram socket).
const DGRAM: u64 = 1 << 32;
/// Above a listener's kind: a program without the shim holds the listening socket too (it
/// inherited it through exec), beside the shim process that listened: once that one lets go
/// of it, the name leads to the kernel.
const FOREIGN_HELD: u64 = 1 << 33;

/// `bind` of a datagram socket in a shim process: datagrams sent to `name` go into `queue`.
pub fn register_dgram(region: &Region, name: Name<'_>, queue: PipeHandle) {
    let Some((kind, key)) = encode(name) else { return };
    store(region, kind | DGRAM, key, queue.to_bits());
}

/// The receive queue of the shim datagram socket last bound to `name`, if any (it may be
/// gone: the caller checks the socket still exists).
pub fn lookup_dgram(region: &Region, name: Name<'_>) -> Option<PipeHandle> {
    let (kind, key) = encode(name)?;
    find(region, kind | DGRAM, &key).map(PipeHandle::from_bits)
}

/// Datagrams to the socket of `queue` go to the kernel from now on.
pub fn unregister_dgram(region: &Region, queue: PipeHandle) {
    let Ok(_g) = ns_lock(region) else { return };
    for e in (0..UNIX_NAMES_MAX).filter_map(|i| entry(region, i, false)) {
        if e.kind.load(Ordering::Acquire) & DGRAM != 0
            && e.listener.load(Ordering::Relaxed) == queue.to_bits()
        {
            e.kind.store(0, Ordering::Release);
        }
    }
}

fn store(region: &Region, kind: u64, key: [u64; 14], value: u64) {
    let Ok(_g) = ns_lock(region) else { return };
    // Without room for the entry the name stays unannounced: its connections are the kernel's.
    let Some(e) = entry(region, index(kind, &key), true) else { return };
    // Emptied first and filled last: a holder killed in between leaves an empty slot.
    e.kind.store(0, Ordering::Release);
    for (slot, w) in e.key.iter().zip(key) {
        slot.store(w, Ordering::Relaxed);
    }
    e.listener.store(value, Ordering::Relaxed);
    e.kind.store(kind, Ordering::Release);
}

fn find(region: &Region, kind: u64, key: &[u64; 14]) -> Option<u64> {
    let _g = ns_lock(region).ok()?;
    let e = entry(region, index(kind, key), false)?;
    let same = e.kind.load(Ordering::Acquire) & !FOREIGN_HELD == kind
        && e.key.iter().zip(key).all(|(slot, &w)| slot.load(Ordering::Relaxed) == w);
    same.then(|| e.listener.load(Ordering::Relaxed))
}

/// The shim listener last registered under `name`, if any.
pub fn lookup(region: &Region, name: Name<'_>) -> Option<Listener> {
    let (kind, key) = encode(name)?;
    find(region, kind, &key).map(Listener::unpack)
}

/// Listeners that will no longer adopt connections (`gone` says which): their names lead to
/// the kernel.
pub fn unregister(region: &Region, gone: impl Fn(Listener) -> bool) {
    let Ok(_g) = ns_lock(region) else { return };
    for e in (0..UNIX_NAMES_MAX).filter_map(|i| entry(region, i, false)) {
        let kind = e.kind.load(Ordering::Acquire);
        if kind != 0 && kind & DGRAM == 0 && gone(Listener::unpack(e.listener.load(Ordering::Relaxed))) {
            e.kind.store(0, Ordering::Release);
        }
    }
}

/// The process that listened on the shim listener with socket inode `ino`, if one is
/// registered.
pub fn registrant(region: &Region, ino: u32) -> Option<u32> {
    let _g = ns_lock(region).ok()?;
    (0..UNIX_NAMES_MAX).filter_map(|i| entry(region, i, false)).find_map(|e| {
        let kind = e.kind.load(Ordering::Acquire);
        let l = Listener::unpack(e.listener.load(Ordering::Relaxed));
        (kind != 0 && kind & DGRAM == 0 && l.ino == ino).then_some(l.pid)
    })
}

/// A program without the shim now holds the listener with socket inode `ino` too (see
/// [`FOREIGN_HELD`]).
pub fn mark_foreign_held(region: &Region, ino: u32) {
    let Ok(_g) = ns_lock(region) else { return };
    for i in 0..UNIX_NAMES_MAX {
        let Some(e) = entry(region, i, false) else { continue };
        let kind = e.kind.load(Ordering::Acquire);
        if kind != 0 && kind & DGRAM == 0 && Listener::unpack(e.listener.load(Ordering::Relaxed)).ino == ino {
            e.kind.store(kind | FOREIGN_HELD, Ordering::Release);
        }
    }
}

/// A shim process lets go of the listener with socket inode `ino`: if a program without the
/// shim holds it too, connections to its name are left to the kernel from now on.
pub fn release_listener(region: &Region, ino: u32) {
    let Ok(_g) = ns_lock(region) else { return };
    for i in 0..UNIX_NAMES_MAX {
        let Some(e) = entry(region, i, false) else { continue };
        let kind = e.kind.load(Ordering::Acquire);
        if kind & FOREIGN_HELD != 0
            && kind & DGRAM == 0
            && Listener::unpack(e.listener.load(Ordering::Relaxed)).ino == ino
        {
            e.kind.store(0, Ordering::Release);
        }
    }
}

/// A connect to an announced name, not yet accepted: (listener inode, client pid), the client
/// socket's inode, its queue (`QUEUE_*` or handle bits + 2) and its order.
#[repr(C)]
struct Pending {
    key: AtomicU64,
    client_ino: AtomicU64,
    queue: AtomicU64,
    seq: AtomicU64,
}

const _: () = assert!(size_of::<Pending>() == 32);

/// Entries a key may use, from its hash on.
const PENDING_PROBES: u32 = 32;
/// An entry this old is taken to be a connection nobody will accept (its listener closed).
const PENDING_STALE_SECS: u64 = 600;

static PENDING_SEQ: AtomicU64 = AtomicU64::new(0);

/// `Pending::queue` of a free entry, and of a connection the kernel carries.
const QUEUE_FREE: u64 = 0;
const QUEUE_KERNEL: u64 = 1;

/// Entry `i` of the pending table, as [`entry`] gives the names'.
fn pending(region: &Region, i: u32, fill: bool) -> Option<&Pending> {
    table_entry(region, UNIX_PENDING_OFF, i, fill)
}

fn pending_key(listener: Listener, pid: u32) -> u64 {
    (pid as u64) << 32 | listener.ino as u64
}

fn probes(key: u64) -> impl Iterator<Item = u32> {
    let start = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as u32;
    (0..PENDING_PROBES).map(move |k| (start + k) % UNIX_PENDING_MAX)
}

fn queue_of(e: &Pending) -> Option<PipeHandle> {
    let bits = e.queue.load(Ordering::Acquire);
    (bits > QUEUE_KERNEL).then(|| PipeHandle::from_bits(bits - 2))
}

/// Frees an entry. Its queue stays marked: the collector keeps a marked queue only while it
/// is pending, and a refused one is not kept; one taken by a server is kept a while
/// (`pipe::sock_taken`) for the server to link it (its own queue's creation may run a
/// collection in between).
fn release(e: &Pending) {
    e.queue.store(QUEUE_FREE, Ordering::Release);
}

/// A shim client about to connect to `listener` with socket `client_ino` and queue `queue`
/// (None: a connection the kernel will carry, kept for the order). False when there is no
/// room: the connection must then be the kernel's.
pub fn pending_add(
    region: &Region,
    listener: Listener,
    pid: u32,
    client_ino: u64,
    queue: Option<PipeHandle>,
) -> bool {
    let key = pending_key(listener, pid);
    // Seconds in the high half: entries compare in connect order, and age shows.
    let seq = crate::sys::coarse_seconds() as u64 & 0xffff_ffff;
    let seq = seq << 32 | (PENDING_SEQ.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff);
    let Ok(_g) = ns_lock(region) else { return false };
    let now = crate::sys::coarse_seconds() as u64;
    for e in probes(key).filter_map(|i| pending(region, i, true)) {
        let used = e.queue.load(Ordering::Acquire) != QUEUE_FREE;
        if used && now.saturating_sub(e.seq.load(Ordering::Relaxed) >> 32) < PENDING_STALE_SECS {
            continue;
        }
        if used {
            // A connection nobody accepted in ten minutes: its queue goes to the collector.
            if let Some(h) = queue_of(e) {
                pipe::sock_refuse(region, h);
            }
            release(e);
        }
        e.key.store(key, Ordering::Relaxed);
        e.client_ino.store(client_ino, Ordering::Relaxed);
        e.seq.store(seq, Ordering::Relaxed);
        if let Some(h) = queue {
            pipe::sock_set_queued(region, h);
        }
        // Published last.
        e.queue.store(queue.map_or(QUEUE_KERNEL, |h| h.to_bits() + 2), Ordering::Release);
        return true;
    }
    false
}

/// Which pending connect a server takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// The client socket's, by its inode.
    Ino(u64),
    /// That pid's oldest (its socket is gone; the kernel's accept queue is in connect order).
    Oldest,
}

/// What [`pending_take`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// The connect, with its queue (None: a connection the kernel carries).
    Found(Option<PipeHandle>),
    NotThere,
}

/// Takes the entry of the connect from `pid` to `listener` that the server accepted.
pub fn pending_take(region: &Region, listener: Listener, pid: u32, which: Which) -> Taken {
    let key = pending_key(listener, pid);
    let Ok(_g) = ns_lock(region) else { return Taken::NotThere };
    let mut best: Option<(u64, u32)> = None;
    for i in probes(key) {
        let Some(e) = pending(region, i, false) else { continue };
        if e.queue.load(Ordering::Acquire) == QUEUE_FREE || e.key.load(Ordering::Relaxed) != key {
            continue;
        }
        let seq = e.seq.load(Ordering::Relaxed);
        let wanted = match which {
            Which::Ino(ino) => e.client_ino.load(Ordering::Relaxed) == ino,
            Which::Oldest => best.is_none_or(|(s, _)| seq < s),
        };
        if wanted {
            best = Some((seq, i));
        }
    }
    let Some(e) = best.and_then(|(_, i)| pending(region, i, false)) else { return Taken::NotThere };
    let h = queue_of(e);
    if let Some(h) = h {
        pipe::sock_taken(region, h);
    }
    release(e);
    Taken::Found(h)
}

/// Listener socket `ino` is gone (released): the connects still pending to it will never be
/// accepted (the kernel reset their connections), so their queues go, and so do the names
/// that led to it.
pub fn listener_gone(region: &Region, ino: u32) {
    unregister(region, |l| l.ino == ino);
    loop {
        let mut doomed = [None; 64];
        let mut n = 0;
        {
            let Ok(_g) = ns_lock(region) else { return };
            for e in (0..UNIX_PENDING_MAX).filter_map(|i| pending(region, i, false)) {
                if n == doomed.len() {
                    break;
                }
                if e.queue.load(Ordering::Acquire) != QUEUE_FREE
                    && e.key.load(Ordering::Relaxed) as u32 == ino
                {
                    if let Some(h) = queue_of(e) {
                        // Taken by a server already if this fails: then it is the server's.
                        if pipe::sock_refuse(region, h) || pipe::sock_state(region, h) == pipe::SOCK_REFUSED {
                            doomed[n] = Some(h);
                        }
                    }
                    release(e);
                    n += 1;
                }
            }
        }
        for h in doomed.iter().flatten() {
            pipe::release(region, *h);
        }
        if n < doomed.len() {
            return;
        }
    }
}

/// The listeners that connects are pending to, into `out` (sorted, without repeats); how many
/// (at most `out.len()`: more are left out).
pub fn pending_listeners(region: &Region, out: &mut [u32]) -> usize {
    let Ok(_g) = ns_lock(region) else { return 0 };
    let mut n = 0;
    for e in (0..UNIX_PENDING_MAX).filter_map(|i| pending(region, i, false)) {
        let ino = e.key.load(Ordering::Relaxed) as u32;
        if e.queue.load(Ordering::Acquire) == QUEUE_FREE {
            continue;
        }
        match out[..n].binary_search(&ino) {
            Ok(_) => {}
            Err(at) if n < out.len() => {
                out.copy_within(at..n, at + 1);
                out[at] = ino;
                n += 1;
            }
            Err(_) => {}
        }
    }
    n
}

/// A client's connect went to the kernel or failed: its entry goes.
pub fn pending_remove(region: &Region, listener: Listener, pid: u32, client_ino: u64) {
    let key = pending_key(listener, pid);
    let Ok(_g) = ns_lock(region) else { return };
    for e in probes(key).filter_map(|i| pending(region, i, false)) {
        if e.queue.load(Ordering::Acquire) != QUEUE_FREE
            && e.key.load(Ordering::Relaxed) == key
            && e.client_ino.load(Ordering::Relaxed) == client_ino
        {
            release(e);
        }
    }
}

/// A socket object's bound address: its generation (the slot's object it belongs to), its
/// length (0: none; stored last) and its bytes.
#[repr(C)]
struct UnixAddr {
    generation: AtomicU64,
    len: AtomicU64,
    bytes: [AtomicU64; 14],
}

const _: () = assert!(size_of::<UnixAddr>() == 128 && SOCKADDR_UN_MAX <= 14 * 8);

fn addr_entry(region: &Region, h: PipeHandle, fill: bool) -> Option<&UnixAddr> {
    (h.idx < PIPE_MAX).then(|| table_entry(region, UNIX_ADDRS_OFF, h.idx, fill)).flatten()
}

/// Records the address socket `h` was bound to (`sockaddr_un` bytes, as getsockname gives).
/// A name never changes once bound, so readers need no lock.
pub fn set_addr(region: &Region, h: PipeHandle, addr: &[u8]) {
    // Without room the address is not kept: a datagram from it shows no sender's name.
    let Some(e) = addr_entry(region, h, true) else { return };
    let addr = &addr[..addr.len().min(SOCKADDR_UN_MAX)];
    e.len.store(0, Ordering::Release);
    for (i, w) in e.bytes.iter().enumerate() {
        let mut v = [0u8; 8];
        for (k, b) in v.iter_mut().enumerate() {
            *b = addr.get(i * 8 + k).copied().unwrap_or(0);
        }
        w.store(u64::from_ne_bytes(v), Ordering::Relaxed);
    }
    e.generation.store(h.generation as u64, Ordering::Relaxed);
    e.len.store(addr.len() as u64, Ordering::Release);
}

/// The address socket `h` was bound to, into `out`; its length (0: unbound, as far as the
/// shim saw).
pub fn addr_of(region: &Region, h: PipeHandle, out: &mut [u8; SOCKADDR_UN_MAX]) -> usize {
    let Some(e) = addr_entry(region, h, false) else { return 0 };
    let len = e.len.load(Ordering::Acquire) as usize;
    if len == 0 || e.generation.load(Ordering::Relaxed) != h.generation as u64 {
        return 0;
    }
    for (i, w) in e.bytes.iter().enumerate() {
        let v = w.load(Ordering::Relaxed).to_ne_bytes();
        for (k, b) in v.iter().enumerate() {
            if let Some(o) = out.get_mut(i * 8 + k) {
                *o = *b;
            }
        }
    }
    len.min(SOCKADDR_UN_MAX)
}
