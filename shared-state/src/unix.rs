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
//! A server finds its client's queue by the client's pid, which the kernel gives it as the
//! accepted socket's peer credentials: every shim client connecting to an announced name takes
//! a ticket of its (listener, pid) stream before the kernel's connect, and the kernel's accept
//! queue holds a process's connections in that order, so the server takes the oldest ticket
//! not taken (a client that died before its connect leaves a ticket without entry, skipped).
//! Only where that order is not known, threads of one client connecting at once (every
//! connect of the stream outstanding when a second begins is marked, with the ticket of
//! whichever began second: see [`pending_add`]), or for a while after the tables were full,
//! does the server ask the kernel's socket diagnostics for the client socket's inode.

use crate::pipe::{self, PipeHandle, SOCKADDR_UN_MAX, ns_lock};
use crate::region::{
    PIPE_MAX, Region, UNIX_ADDRS_OFF, UNIX_NAMES_MAX, UNIX_NAMES_OFF, UNIX_PENDING_MAX, UNIX_PENDING_OFF,
    UNIX_STREAMS_MAX, UNIX_STREAMS_OFF,
};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

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

/// Above the kind's bits: the entry's change count, which every change of the entry bumps
/// and an emptied entry keeps, so a lock-free [`find`] tells a consistent read from one a
/// change overlapped (a seqlock, one per entry).
const SEQ_SHIFT: u32 = 40;
const SEQ_ONE: u64 = 1 << SEQ_SHIFT;

impl UnixName {
    /// The kind, without the change count (0: empty).
    fn kind(&self) -> u64 {
        self.kind.load(Ordering::Acquire) & (SEQ_ONE - 1)
    }

    /// Empties the entry (the namespace lock held).
    fn clear(&self) {
        let word = self.kind.load(Ordering::Relaxed);
        self.kind.store((word | (SEQ_ONE - 1)).wrapping_add(1), Ordering::Release);
    }

    /// Changes the kind to `kind` (the namespace lock held).
    fn set_kind(&self, kind: u64) {
        let word = self.kind.load(Ordering::Relaxed);
        self.kind.store((word | (SEQ_ONE - 1)).wrapping_add(1) | kind, Ordering::Release);
    }
}

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

/// `listen` in a shim process: connections to `name` will be adopted by the shim. Returns
/// the name's slot (for [`listener_gone`]); None when it could not be entered.
pub fn register(region: &Region, name: Name<'_>, listener: Listener) -> Option<u32> {
    let (kind, key) = encode(name)?;
    store(region, kind, key, listener.pack())
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
    let _ = store(region, kind | DGRAM, key, queue.to_bits());
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
        if e.kind() & DGRAM != 0 && e.listener.load(Ordering::Relaxed) == queue.to_bits() {
            e.clear();
        }
    }
}

fn store(region: &Region, kind: u64, key: [u64; 14], value: u64) -> Option<u32> {
    let _g = ns_lock(region).ok()?;
    // Without room for the entry the name stays unannounced: its connections are the kernel's.
    let i = index(kind, &key);
    let e = entry(region, i, true)?;
    // Emptied first and filled last: a holder killed in between leaves an empty slot. The fence
    // keeps the fill after the emptying for a lock-free reader (find).
    e.clear();
    fence(Ordering::Release);
    for (slot, w) in e.key.iter().zip(key) {
        slot.store(w, Ordering::Relaxed);
    }
    e.listener.store(value, Ordering::Relaxed);
    e.set_kind(kind);
    Some(i)
}

/// Without the namespace lock (every send to a name looks it up): a read that a change of the
/// entry overlapped, which its change count shows, is made again.
fn find(region: &Region, kind: u64, key: &[u64; 14]) -> Option<u64> {
    let e = entry(region, index(kind, key), false)?;
    loop {
        let before = e.kind.load(Ordering::Acquire);
        let same = before & (SEQ_ONE - 1) & !FOREIGN_HELD == kind
            && e.key.iter().zip(key).all(|(slot, &w)| slot.load(Ordering::Relaxed) == w);
        let listener = e.listener.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if e.kind.load(Ordering::Relaxed) == before {
            return same.then_some(listener);
        }
    }
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
        let kind = e.kind();
        if kind != 0 && kind & DGRAM == 0 && gone(Listener::unpack(e.listener.load(Ordering::Relaxed))) {
            e.clear();
        }
    }
}

/// The process that listened on the shim listener with socket inode `ino`, if one is
/// registered.
pub fn registrant(region: &Region, ino: u32) -> Option<u32> {
    let _g = ns_lock(region).ok()?;
    (0..UNIX_NAMES_MAX).filter_map(|i| entry(region, i, false)).find_map(|e| {
        let kind = e.kind();
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
        let kind = e.kind();
        if kind != 0 && kind & DGRAM == 0 && Listener::unpack(e.listener.load(Ordering::Relaxed)).ino == ino {
            e.set_kind(kind | FOREIGN_HELD);
        }
    }
}

/// A shim process lets go of the listener with socket inode `ino`: if a program without the
/// shim holds it too, connections to its name are left to the kernel from now on.
pub fn release_listener(region: &Region, ino: u32) {
    let Ok(_g) = ns_lock(region) else { return };
    for i in 0..UNIX_NAMES_MAX {
        let Some(e) = entry(region, i, false) else { continue };
        let kind = e.kind();
        if kind & FOREIGN_HELD != 0
            && kind & DGRAM == 0
            && Listener::unpack(e.listener.load(Ordering::Relaxed)).ino == ino
        {
            e.clear();
        }
    }
}

/// A client's connects to one listener, in order: (listener inode, client pid), the tickets
/// the client took (one per connect, before the kernel's connect) and those the server has
/// taken, and the coarse second of the last use (an idle one of a gone process is dropped).
#[repr(C)]
struct Stream {
    key: AtomicU64,
    issued: AtomicU32,
    taken: AtomicU32,
    used: AtomicU64,
}

/// One connect: the stream's key, the ticket, its state (`P_*`), the client socket's inode
/// and its queue (handle bits + 1; 0: a connection the kernel carries).
#[repr(C)]
struct Pending {
    key: AtomicU64,
    ticket: AtomicU32,
    state: AtomicU32,
    client_ino: AtomicU64,
    queue: AtomicU64,
}

const _: () = assert!(size_of::<Pending>() == 32 && size_of::<Stream>() == 24);

/// Entry states; P_UNCERTAIN may be added to P_CONNECTING.
const P_FREE: u32 = 0;
/// Made before the kernel's connect (which may have gone through already, or not yet).
const P_CONNECTING: u32 = 1;
/// Another thread of the client connected to the listener at the same time: this connect's
/// place among them in the kernel's accept queue is not known (the server asks the kernel).
const P_UNCERTAIN: u32 = 1 << 8;

/// Entries a key may use, from its hash on.
const PROBES: u32 = 64;
/// An idle stream this old is taken to be a gone process's (its pid may be reused).
const STREAM_STALE_SECS: u64 = 600;

/// Entry `i` of the stream table, as [`entry`] gives the names'.
fn stream(region: &Region, i: u32, fill: bool) -> Option<&Stream> {
    table_entry(region, UNIX_STREAMS_OFF, i, fill)
}

/// Entry `i` of the pending table, as [`entry`] gives the names'.
fn pending(region: &Region, i: u32, fill: bool) -> Option<&Pending> {
    table_entry(region, UNIX_PENDING_OFF, i, fill)
}

fn stream_key(listener: Listener, pid: u32) -> u64 {
    (pid as u64) << 32 | listener.ino as u64
}

fn probes(hash: u64, size: u32) -> impl Iterator<Item = u32> {
    let start = (hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as u32;
    (0..PROBES).map(move |k| (start + k) % size)
}

/// A stream's key once it is dropped ([`drop_if_idle`]): its place may be reused, but a
/// search goes on past it (only a place never used, key 0, ends one).
const DROPPED: u64 = u64::MAX;

/// The stream of `key`, made if `make` (None: none, or no room).
fn stream_of(region: &Region, key: u64, make: bool) -> Option<&Stream> {
    let now = crate::sys::coarse_seconds() as u64;
    let mut free = None;
    for i in probes(key, UNIX_STREAMS_MAX) {
        // A place never reserved was never used: the key is not further on either.
        let Some(s) = stream(region, i, make) else { break };
        let k = s.key.load(Ordering::Acquire);
        if k == key {
            return Some(s);
        }
        let idle = s.issued.load(Ordering::Relaxed) == s.taken.load(Ordering::Relaxed);
        let stale = now.saturating_sub(s.used.load(Ordering::Relaxed)) > STREAM_STALE_SECS;
        if free.is_none() && (k == 0 || k == DROPPED || (idle && stale)) {
            free = Some(s);
        }
        if k == 0 {
            break;
        }
    }
    let s = free.filter(|_| make)?;
    s.key.store(DROPPED, Ordering::Release);
    s.issued.store(0, Ordering::Relaxed);
    s.taken.store(0, Ordering::Relaxed);
    s.used.store(now, Ordering::Relaxed);
    s.key.store(key, Ordering::Release);
    Some(s)
}

/// The entry of `key`'s connect `ticket`, or (`free`) a free place for it.
fn entry_of(region: &Region, key: u64, ticket: u32, free: bool) -> Option<&Pending> {
    let hash = key ^ (ticket as u64).wrapping_mul(0xff51_afd7_ed55_8ccd);
    probes(hash, UNIX_PENDING_MAX).filter_map(|i| pending(region, i, free)).find(|e| {
        let st = e.state.load(Ordering::Acquire);
        if free {
            st == P_FREE
        } else {
            st != P_FREE && e.key.load(Ordering::Relaxed) == key && e.ticket.load(Ordering::Relaxed) == ticket
        }
    })
}

/// Since when (coarse seconds) the tables were full for some connect: servers match every
/// connection by asking the kernel for a while (see [`pending_take`]). None when its page has
/// no memory (`fill`: it is reserved first).
fn overflowed(region: &Region, fill: bool) -> Option<&AtomicU64> {
    table_entry(region, UNIX_STREAMS_OFF - 8, 0, fill)
}

/// How many pending entries are in use, at least (counted up before an entry is made and down
/// after one is freed, under the namespace lock, so a holder killed in between leaves it
/// high): when 0, a listener's release need not look through the table.
fn pending_live(region: &Region, fill: bool) -> Option<&AtomicU64> {
    table_entry(region, UNIX_STREAMS_OFF - 16, 0, fill)
}

/// Whether a connect may be pending on some listener (the count may be high after a kill).
pub fn any_pending(region: &Region) -> bool {
    pending_live(region, false).is_some_and(|n| n.load(Ordering::Relaxed) != 0)
}

/// One pending entry fewer (the namespace lock held).
fn pending_freed(region: &Region) {
    if let Some(n) = pending_live(region, false) {
        let _ = n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(1)));
    }
}

/// A shim client about to connect to `listener` with socket `client_ino` and queue `queue`
/// (None: a connection the kernel will carry, kept for the order): its ticket, in the order of
/// this process's connects to the listener. None when there is no room: the connection must
/// then be the kernel's (and servers ask the kernel which connection is whose for a while).
///
/// `overlapping`: another connect of the client, not settled yet, began before this one. The
/// kernel may then queue any of the client's outstanding connects, this one included, before
/// an older one, so each is marked to be found by its inode, in the same locked section as
/// the ticket: whichever of two overlapping connects began second marks both before either
/// of them can pass the other in the kernel's accept queue.
pub fn pending_add(
    region: &Region,
    listener: Listener,
    pid: u32,
    client_ino: u64,
    queue: Option<PipeHandle>,
    overlapping: bool,
) -> Option<u32> {
    let key = stream_key(listener, pid);
    let Ok(_g) = ns_lock(region) else { return None };
    let added = (|| {
        let s = stream_of(region, key, true)?;
        let ticket = s.issued.load(Ordering::Relaxed);
        let e = entry_of(region, key, ticket, true)?;
        pending_live(region, true)?.fetch_add(1, Ordering::Relaxed);
        // The ticket first: a server that finds it issued and no entry skips it (our death).
        s.issued.store(ticket.wrapping_add(1), Ordering::Release);
        s.used.store(crate::sys::coarse_seconds() as u64, Ordering::Relaxed);
        e.key.store(key, Ordering::Relaxed);
        e.ticket.store(ticket, Ordering::Relaxed);
        e.client_ino.store(client_ino, Ordering::Relaxed);
        e.queue.store(queue.map_or(0, |h| h.to_bits() + 1), Ordering::Relaxed);
        if let Some(h) = queue {
            pipe::sock_set_queued(region, h);
        }
        // Published last.
        e.state.store(P_CONNECTING, Ordering::Release);
        if overlapping {
            mark_uncertain(region, s, key);
        }
        Some(ticket)
    })();
    if added.is_none()
        && let Some(o) = overflowed(region, true)
    {
        o.store(crate::sys::coarse_seconds() as u64, Ordering::Release);
    }
    added
}

/// Marks every outstanding connect of stream `s` (key `key`) uncertain: see [`pending_add`].
/// The namespace lock held.
fn mark_uncertain(region: &Region, s: &Stream, key: u64) {
    let (from, to) = (s.taken.load(Ordering::Relaxed), s.issued.load(Ordering::Relaxed));
    for t in (0..to.wrapping_sub(from)).map(|k| from.wrapping_add(k)) {
        if let Some(e) = entry_of(region, key, t, false) {
            e.state.fetch_or(P_UNCERTAIN, Ordering::AcqRel);
        }
    }
}

/// What [`pending_take`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// The connect, with its queue (None: a connection the kernel carries).
    Found(Option<PipeHandle>),
    NotThere,
}

/// Takes the entry of the connection from `pid` that the server accepted from `listener`: the
/// client's connects are in the kernel's accept queue in the order of their tickets, so it is
/// the oldest not taken. One whose place is uncertain (threads that connected at once), or
/// any while the tables have lately been full, is found by the client socket's inode instead,
/// which `client_ino` asks the kernel for (None: its socket is gone, or no answer).
pub fn pending_take(
    region: &Region,
    listener: Listener,
    pid: u32,
    client_ino: &mut dyn FnMut() -> Option<u64>,
) -> Taken {
    let key = stream_key(listener, pid);
    let exact = overflowed(region, false).is_some_and(|o| {
        crate::sys::coarse_seconds() as u64 <= o.load(Ordering::Acquire).saturating_add(STREAM_STALE_SECS)
    });
    let Ok(g) = ns_lock(region) else { return Taken::NotThere };
    let Some(s) = stream_of(region, key, false) else { return Taken::NotThere };
    let (mut t, issued) = (s.taken.load(Ordering::Relaxed), s.issued.load(Ordering::Relaxed));
    // Tickets without an entry: a client that died before making it, or taken out of turn.
    let head = loop {
        if t == issued {
            s.taken.store(t, Ordering::Release);
            drop_if_idle(region, s);
            return Taken::NotThere;
        }
        if let Some(e) = entry_of(region, key, t, false) {
            break e;
        }
        t = t.wrapping_add(1);
    };
    s.taken.store(t, Ordering::Release);
    let e = if exact || head.state.load(Ordering::Acquire) & P_UNCERTAIN != 0 {
        drop(g);
        let ino = client_ino();
        let _g = ns_lock(region);
        let found = (0..issued.wrapping_sub(t)).map(|k| t.wrapping_add(k)).find_map(|k| {
            entry_of(region, key, k, false).filter(|e| Some(e.client_ino.load(Ordering::Relaxed)) == ino)
        });
        // A gone client's socket: then its place is the oldest's.
        let Some(e) = found.or_else(|| if ino.is_none() { entry_of(region, key, t, false) } else { None })
        else {
            return Taken::NotThere;
        };
        return take(region, e);
    } else {
        head
    };
    let taken = take(region, e);
    // The head went: the next take starts past it.
    s.taken.store(t.wrapping_add(1), Ordering::Release);
    drop_if_idle(region, s);
    drop(g);
    taken
}

/// Takes entry `e` (the namespace lock held). Its queue is kept a while (`pipe::sock_taken`)
/// for the server to link it (its own queue's creation may run a collection in between).
fn take(region: &Region, e: &Pending) -> Taken {
    let bits = e.queue.load(Ordering::Relaxed);
    let h = (bits != 0).then(|| PipeHandle::from_bits(bits - 1));
    if let Some(h) = h {
        pipe::sock_taken(region, h);
    }
    e.state.store(P_FREE, Ordering::Release);
    pending_freed(region);
    Taken::Found(h)
}

/// A stream with no connect outstanding (every ticket taken) holds nothing: it goes, so that a
/// program connecting to ever new listeners does not fill the table, and a client's next
/// connect takes ticket 0 again, whose entry's place is the one its last connect used. The
/// namespace lock held.
fn drop_if_idle(region: &Region, s: &Stream) {
    if s.issued.load(Ordering::Relaxed) != s.taken.load(Ordering::Relaxed) {
        return;
    }
    // Places are probed in a row from a key's hash on: when the next one was never used, no
    // key was put past this one, which can be a never-used place again (as can the dropped
    // ones before it), so that searches stop early instead of running through tombstones.
    let table = region.base() + UNIX_STREAMS_OFF as usize;
    let i = ((s as *const Stream as usize - table) / size_of::<Stream>()) as u32;
    let step = |i: u32, by: u32| (i + by) % UNIX_STREAMS_MAX;
    if stream(region, step(i, 1), false).is_some_and(|n| n.key.load(Ordering::Acquire) != 0) {
        s.key.store(DROPPED, Ordering::Release);
        return;
    }
    s.key.store(0, Ordering::Release);
    let mut j = step(i, UNIX_STREAMS_MAX - 1);
    while let Some(p) = stream(region, j, false).filter(|p| p.key.load(Ordering::Acquire) == DROPPED) {
        p.key.store(0, Ordering::Release);
        j = step(j, UNIX_STREAMS_MAX - 1);
    }
}

/// Listener socket `ino` is gone (released): the connects still pending to it will never be
/// accepted (the kernel reset their connections), so their queues go, and so do the names
/// that led to it (the one at `name_slot` if [`register`] said where, else any).
pub fn listener_gone(region: &Region, ino: u32, name_slot: Option<u32>) {
    match name_slot {
        Some(i) => {
            let Ok(_g) = ns_lock(region) else { return };
            if let Some(e) = entry(region, i, false) {
                let kind = e.kind();
                if kind != 0
                    && kind & DGRAM == 0
                    && Listener::unpack(e.listener.load(Ordering::Relaxed)).ino == ino
                {
                    e.clear();
                }
            }
        }
        None => unregister(region, |l| l.ino == ino),
    }
    if pending_live(region, false).is_none_or(|n| n.load(Ordering::Relaxed) == 0) {
        return;
    }
    loop {
        let mut doomed = [None; 64];
        let mut n = 0;
        {
            let Ok(_g) = ns_lock(region) else { return };
            for e in (0..UNIX_PENDING_MAX).filter_map(|i| pending(region, i, false)) {
                if n == doomed.len() {
                    break;
                }
                if e.state.load(Ordering::Acquire) != P_FREE && e.key.load(Ordering::Relaxed) as u32 == ino {
                    let bits = e.queue.load(Ordering::Relaxed);
                    if bits != 0 {
                        let h = PipeHandle::from_bits(bits - 1);
                        // Taken by a server already if this fails: then it is the server's.
                        if pipe::sock_refuse(region, h) || pipe::sock_state(region, h) == pipe::SOCK_REFUSED {
                            doomed[n] = Some(h);
                        }
                    }
                    e.state.store(P_FREE, Ordering::Release);
                    pending_freed(region);
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
    let Some(live) = pending_live(region, false).filter(|n| n.load(Ordering::Relaxed) != 0) else { return 0 };
    let (mut n, mut in_use) = (0, 0);
    for e in (0..UNIX_PENDING_MAX).filter_map(|i| pending(region, i, false)) {
        if e.state.load(Ordering::Acquire) == P_FREE {
            continue;
        }
        in_use += 1;
        let ino = e.key.load(Ordering::Relaxed) as u32;
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
    // Exact again (a holder killed between its count and its entry left it high).
    live.store(in_use, Ordering::Relaxed);
    n
}

/// A client's connect `ticket` went to the kernel, failed, or reached another listener: its
/// entry goes (the server skips its ticket). Its queue, if nobody will adopt it now, is
/// refused and returned: nobody's, for the caller to release.
#[must_use]
pub fn pending_remove(region: &Region, listener: Listener, pid: u32, ticket: u32) -> Option<PipeHandle> {
    let Ok(_g) = ns_lock(region) else { return None };
    let key = stream_key(listener, pid);
    let e = entry_of(region, key, ticket, false)?;
    let bits = e.queue.load(Ordering::Relaxed);
    e.state.store(P_FREE, Ordering::Release);
    pending_freed(region);
    // The last ticket issued, not passed by the server: nobody will take it, so it is given
    // back (the connect never reached the kernel's accept queue, or the listener's).
    if let Some(s) = stream_of(region, key, false)
        && s.issued.load(Ordering::Relaxed) == ticket.wrapping_add(1)
        && s.taken.load(Ordering::Relaxed) != ticket.wrapping_add(1)
    {
        s.issued.store(ticket, Ordering::Relaxed);
        drop_if_idle(region, s);
    }
    let h = (bits != 0).then(|| PipeHandle::from_bits(bits - 1))?;
    pipe::sock_refuse(region, h).then_some(h)
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
    let len = len.min(SOCKADDR_UN_MAX);
    // Only the words the address covers, each at once (every datagram sent copies it).
    for (w, o) in e.bytes.iter().zip(out[..len].chunks_mut(8)) {
        o.copy_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes()[..o.len()]);
    }
    len
}
