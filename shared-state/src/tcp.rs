//! Loopback TCP connections between shim processes. The kernel keeps every TCP socket, its
//! names and its connection state (bind, listen, the handshake, accept, FIN and RST); the shim
//! only moves a connection's bytes, through two [`crate::pipe`] socket queues as an AF_UNIX
//! stream's (`crate::unix`).
//!
//! On loopback the 4-tuple (client address and port, server address and port) names one
//! connection on both ends, so pairing needs no look at other processes' sockets:
//!
//! - `listen` in a shim process enters the listener's (address, port) in the listener table;
//! - a client connecting to a listed address counts itself on that entry (`connecting`)
//!   before the kernel's connect, and once connected publishes its send queue (pending) under
//!   the connection's 4-tuple in the connection table;
//! - the server's `accept` takes the queue published under the accepted socket's 4-tuple
//!   (its peer's and its own name) and adopts it ([`crate::pipe::sock_adopt`]). With nobody
//!   counted, no client can still publish this connection: the kernel's. Otherwise the
//!   server asks the kernel for its peer socket's inode: each counted client is entered in
//!   flight under its socket's inode with its pid, so the server waits exactly for its own
//!   client while that process lives, and for nobody else (a timing window would decide
//!   where the bytes go). When the kernel cannot be asked, a counted client is waited for a
//!   little; after that the server leaves a refusal in the table, and the client that finds
//!   it there gives its connection to the kernel.
//!
//! Every decision is made under the pipe namespace lock, so a connection is the shim's on both
//! ends or on neither.

use crate::pipe::{self, PipeHandle, ns_lock};
use crate::region::{Region, TCP_CONNS_MAX, TCP_CONNS_OFF, TCP_LISTEN_MAX, TCP_LISTEN_OFF};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A TCP endpoint: an IPv6 address (an IPv4 one as `::ffff:a.b.c.d`, as a dual-stack socket
/// sees it) and a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: [u8; 16],
    pub port: u16,
}

const V4_MAPPED: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
/// ::1
const V6_LOOPBACK: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

impl Endpoint {
    /// The endpoint a `sockaddr_in`/`sockaddr_in6` names (None for another family or a short
    /// address).
    pub fn from_sockaddr(sa: &[u8]) -> Option<Endpoint> {
        let family = u16::from_ne_bytes([*sa.first()?, *sa.get(1)?]) as i32;
        let port = u16::from_be_bytes([*sa.get(2)?, *sa.get(3)?]);
        let mut addr = [0u8; 16];
        match family {
            libc::AF_INET => {
                addr[..12].copy_from_slice(&V4_MAPPED);
                addr[12..].copy_from_slice(sa.get(4..8)?);
            }
            libc::AF_INET6 => addr.copy_from_slice(sa.get(8..24)?),
            _ => return None,
        }
        Some(Endpoint { addr, port })
    }

    /// An IPv4 address (as `::ffff:a.b.c.d`).
    pub fn is_v4(&self) -> bool {
        self.addr[..12] == V4_MAPPED
    }

    /// 127.0.0.0/8 or ::1: a connection to it never leaves this host.
    pub fn is_loopback(&self) -> bool {
        (self.is_v4() && self.addr[12] == 127) || self.addr == V6_LOOPBACK
    }

    /// The any address (0.0.0.0 or ::), which a listener bound to takes every local address.
    pub fn is_wildcard(&self) -> bool {
        self.addr == [0; 16] || (self.is_v4() && self.addr[12..] == [0; 4])
    }

    fn words(&self) -> [u64; 2] {
        [
            u64::from_ne_bytes(self.addr[..8].try_into().unwrap_or([0; 8])),
            u64::from_ne_bytes(self.addr[8..].try_into().unwrap_or([0; 8])),
        ]
    }
}

/// A listener entry: `tag` (0 empty, else 1 | IPV6_V6ONLY << 1 | port << 16), its address, its
/// owner (pid << 32 | socket inode) and the clients between their count and their publication.
#[repr(C)]
struct ListenEntry {
    tag: AtomicU64,
    addr: [AtomicU64; 2],
    owner: AtomicU64,
    connecting: AtomicU32,
    /// Until when (coarse seconds) its clients publish nothing: a refusal found no room.
    refusing: AtomicU32,
    _pad: [u32; 6],
}

/// A connection entry: `val` (0 empty, [`REFUSED`] | when, or a client queue's bits + 1),
/// when it was stored (coarse seconds) and the 4-tuple.
#[repr(C)]
struct ConnEntry {
    val: AtomicU64,
    when: AtomicU64,
    client: [AtomicU64; 2],
    server: [AtomicU64; 2],
    ports: AtomicU64,
    _pad: u64,
}

const _: () = assert!(size_of::<ListenEntry>() == 64 && size_of::<ConnEntry>() == 64);

/// A server's refusal of a connection no client had published yet.
const REFUSED: u64 = 1 << 63;
/// A refusal older than this is forgotten (its client, had it been a shim one, came long ago).
const REFUSED_SECS: u64 = 30;
/// Entries looked at from a key's home slot.
const PROBE: u32 = 16;

fn table_entry<T>(region: &Region, off: u64, i: u32, fill: bool) -> Option<&T> {
    let (at, size) = (off + i as u64 * size_of::<T>() as u64, size_of::<T>() as u64);
    let usable = if fill { region.reserve(at, size).is_ok() } else { region.reserved(at, size) };
    // SAFETY: callers pass an index inside the table of T at `off`, inside the mapping; the
    // entry's page has its memory; T is made of atomics only.
    usable.then(|| unsafe { &*((region.base() + at as usize) as *const T) })
}

/// A key's home slot. Every input bit reaches the low bits (MurmurHash3's fmix64 after each
/// word): a client's port sits in bits 16-31 of its word, and without the mixing, ports that
/// differ in their low bits (a burst of connects, the kernel's ephemeral ports two apart)
/// shared a home, filled its probe window and left their connections to the kernel.
fn hash(words: &[u64]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in words {
        h ^= w;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
    }
    h
}

fn listen_tag(ep: &Endpoint, v6only: bool) -> u64 {
    1 | (v6only as u64) << 1 | (ep.port as u64) << 16
}

/// A listener as the table has it: its entry, process and socket inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listener {
    pub slot: u32,
    pub pid: u32,
    pub ino: u32,
}

fn listen_slots(ep: &Endpoint) -> impl Iterator<Item = u32> {
    let home = hash(&[ep.port as u64]) as u32;
    (0..PROBE).map(move |k| (home.wrapping_add(k)) % TCP_LISTEN_MAX)
}

/// `listen` in a shim process on `ep` (a loopback or any address): connections to it are
/// offered to the shim. The entry's slot, or None when the table has no room (they stay the
/// kernel's).
pub fn register(region: &Region, ep: &Endpoint, v6only: bool, pid: u32, ino: u32) -> Option<u32> {
    let _g = ns_lock(region).ok()?;
    let w = ep.words();
    let tag = listen_tag(ep, v6only);
    let mut free = None;
    for i in listen_slots(ep) {
        let e = table_entry::<ListenEntry>(region, TCP_LISTEN_OFF, i, true)?;
        let t = e.tag.load(Ordering::Acquire);
        // The same name again (a listener before it is gone from here): replaced.
        if t != 0
            && t & !2 == tag & !2
            && e.addr[0].load(Ordering::Relaxed) == w[0]
            && e.addr[1].load(Ordering::Relaxed) == w[1]
        {
            free = Some((i, e));
            break;
        }
        if t == 0 && free.is_none() {
            free = Some((i, e));
        }
    }
    let (slot, e) = free?;
    // Emptied first and tagged last: a holder killed in between leaves an empty entry.
    e.tag.store(0, Ordering::Release);
    e.addr[0].store(w[0], Ordering::Relaxed);
    e.addr[1].store(w[1], Ordering::Relaxed);
    e.owner.store((pid as u64) << 32 | ino as u64, Ordering::Relaxed);
    e.connecting.store(0, Ordering::Relaxed);
    e.refusing.store(0, Ordering::Relaxed);
    e.tag.store(tag, Ordering::Release);
    Some(slot)
}

/// The entry at `slot` if it is still the listener with socket inode `ino` (one its holder
/// registered: no look-up, and no question whether the registering process lives), with its
/// name.
pub fn listener_at(region: &Region, slot: u32, ino: u32) -> Option<(Listener, Endpoint)> {
    let e = table_entry::<ListenEntry>(region, TCP_LISTEN_OFF, slot, false)?;
    let tag = e.tag.load(Ordering::Acquire);
    let owner = e.owner.load(Ordering::Relaxed);
    let w = [e.addr[0].load(Ordering::Relaxed), e.addr[1].load(Ordering::Relaxed)];
    // Read again: an entry emptied and filled meanwhile has another tag or owner.
    let same = tag != 0 && e.tag.load(Ordering::Acquire) == tag && e.owner.load(Ordering::Relaxed) == owner;
    if !same || owner as u32 != ino {
        return None;
    }
    let mut addr = [0u8; 16];
    addr[..8].copy_from_slice(&w[0].to_ne_bytes());
    addr[8..].copy_from_slice(&w[1].to_ne_bytes());
    let l = Listener { slot, pid: (owner >> 32) as u32, ino };
    Some((l, Endpoint { addr, port: (tag >> 16) as u16 }))
}

/// Listeners that no longer adopt connections (`gone` says which, by pid and inode): their
/// names lead to the kernel.
pub fn unregister(region: &Region, gone: impl Fn(u32, u32) -> bool) {
    let Ok(_g) = ns_lock(region) else { return };
    for e in (0..TCP_LISTEN_MAX).filter_map(|i| table_entry::<ListenEntry>(region, TCP_LISTEN_OFF, i, false))
    {
        let owner = e.owner.load(Ordering::Relaxed);
        if e.tag.load(Ordering::Acquire) != 0 && gone((owner >> 32) as u32, owner as u32) {
            e.tag.store(0, Ordering::Release);
        }
    }
}

/// The shim listener a connect to `dst` reaches, if any: one on that address, or on the any
/// address of its family (an IPv6 one also takes IPv4 unless IPV6_V6ONLY). `alive` says
/// whether its process still runs; one that does not is dropped.
pub fn lookup(region: &Region, dst: &Endpoint, alive: impl Fn(u32) -> bool) -> Option<Listener> {
    let any6 = Endpoint { addr: [0; 16], port: dst.port };
    let mut any4 = any6;
    any4.addr[..12].copy_from_slice(&V4_MAPPED);
    let _g = ns_lock(region).ok()?;
    let wanted: [(Endpoint, bool); 3] = [(*dst, true), (any4, dst.is_v4()), (any6, true)];
    for (ep, ok) in wanted {
        if !ok {
            continue;
        }
        let w = ep.words();
        for i in listen_slots(&ep) {
            let Some(e) = table_entry::<ListenEntry>(region, TCP_LISTEN_OFF, i, false) else { continue };
            let t = e.tag.load(Ordering::Acquire);
            if t == 0
                || t & !2 != listen_tag(&ep, false)
                || e.addr[0].load(Ordering::Relaxed) != w[0]
                || e.addr[1].load(Ordering::Relaxed) != w[1]
            {
                continue;
            }
            // An IPv6-only listener on :: never gets an IPv4 connection.
            if t & 2 != 0 && dst.is_v4() {
                return None;
            }
            let owner = e.owner.load(Ordering::Relaxed);
            let (pid, ino) = ((owner >> 32) as u32, owner as u32);
            if !alive(pid) {
                e.tag.store(0, Ordering::Release);
                return None;
            }
            return Some(Listener { slot: i, pid, ino });
        }
    }
    None
}

fn listen_entry<'a>(region: &'a Region, l: &Listener) -> Option<&'a ListenEntry> {
    table_entry::<ListenEntry>(region, TCP_LISTEN_OFF, l.slot, false)
}

/// A client socket between its count and its publication: `val` is [`IN_FLIGHT`] | pid, the
/// key [`in_flight_key`].
const IN_FLIGHT: u64 = 1 << 62;

/// The connection table's key of client socket `ino` in flight: no 4-tuple's (its first word
/// would be a multicast client address).
fn in_flight_key(ino: u32) -> [u64; 5] {
    [u64::MAX, ino as u64, 0, 0, 0]
}

fn uncount(e: &ListenEntry) {
    let _ = e.connecting.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1));
}

/// Client socket `ino` of process `pid` is about to connect to `l`: counted on the listener
/// and entered in flight. False without room (nothing done: the connection is the kernel's).
pub fn connecting(region: &Region, l: &Listener, ino: u32, pid: u32) -> bool {
    let Ok(_g) = ns_lock(region) else { return false };
    let Some(le) = listen_entry(region, l) else { return false };
    let key = in_flight_key(ino);
    let now = now_secs();
    let mut free = None;
    for i in conn_slots(&key) {
        let Some(e) = table_entry::<ConnEntry>(region, TCP_CONNS_OFF, i, true) else { return false };
        if e.val.load(Ordering::Acquire) != 0 && same(e, &key) {
            free = Some(e);
            break;
        }
        if free.is_none() && reusable(region, e, now) {
            free = Some(e);
        }
    }
    let Some(e) = free else { return false };
    store(e, &key, IN_FLIGHT | pid as u64, now);
    le.connecting.fetch_add(1, Ordering::SeqCst);
    true
}

/// The in-flight entry of client socket `ino`, if any.
fn in_flight(region: &Region, ino: u32) -> Option<&ConnEntry> {
    let key = in_flight_key(ino);
    conn_slots(&key)
        .filter_map(|i| table_entry::<ConnEntry>(region, TCP_CONNS_OFF, i, false))
        .find(|e| e.val.load(Ordering::Acquire) & IN_FLIGHT != 0 && same(e, &key))
}

/// Client socket `ino` of `l` is done connecting: `queue` (its 4-tuple and pending queue)
/// published, or None, given up (the kernel's). In one step with leaving the in-flight
/// entry, so that a server never finds it neither in flight nor published. Whether it was
/// published.
pub fn connected(region: &Region, l: &Listener, ino: u32, queue: Option<(&Tuple, PipeHandle)>) -> bool {
    let Ok(_g) = ns_lock(region) else { return false };
    let published = queue.is_some_and(|(t, h)| publish(region, l, t, h));
    if let Some(e) = in_flight(region, ino) {
        e.val.store(0, Ordering::Release);
        if let Some(le) = listen_entry(region, l) {
            uncount(le);
        }
    }
    published
}

/// A connection's 4-tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple {
    pub client: Endpoint,
    pub server: Endpoint,
}

impl Tuple {
    fn words(&self) -> [u64; 5] {
        let (c, s) = (self.client.words(), self.server.words());
        [c[0], c[1], s[0], s[1], (self.client.port as u64) << 16 | self.server.port as u64]
    }
}

fn conn_slots(key: &[u64; 5]) -> impl Iterator<Item = u32> {
    let home = hash(key) as u32;
    (0..PROBE).map(move |k| (home.wrapping_add(k)) % TCP_CONNS_MAX)
}

fn same(e: &ConnEntry, key: &[u64; 5]) -> bool {
    let got = [&e.client[0], &e.client[1], &e.server[0], &e.server[1], &e.ports];
    got.iter().zip(key).all(|(a, &w)| a.load(Ordering::Relaxed) == w)
}

fn now_secs() -> u64 {
    pipe::coarse_secs() as u64
}

/// Whether entry `e` may be reused: empty, an old refusal, or a queue that is gone.
fn reusable(region: &Region, e: &ConnEntry, now: u64) -> bool {
    let v = e.val.load(Ordering::Acquire);
    v == 0
        || (v & REFUSED != 0 && now.saturating_sub(v & !REFUSED) > REFUSED_SECS)
        || (v & IN_FLIGHT != 0 && v & REFUSED == 0 && !alive(v as u32))
        || (v & (REFUSED | IN_FLIGHT) == 0 && !pipe::is_live(region, PipeHandle::from_bits(v - 1)))
}

/// Whether process `pid` still runs (another user's answers EPERM, and runs).
fn alive(pid: u32) -> bool {
    crate::sys::kill(pid as i32, 0) != Err(libc::ESRCH)
}

fn store(e: &ConnEntry, key: &[u64; 5], val: u64, now: u64) {
    e.val.store(0, Ordering::Release);
    for (a, &w) in [&e.client[0], &e.client[1], &e.server[0], &e.server[1], &e.ports].iter().zip(key) {
        a.store(w, Ordering::Relaxed);
    }
    e.when.store(now, Ordering::Relaxed);
    e.val.store(val, Ordering::Release);
}

/// The client's side, once the kernel connected it (under the lock): publishes its pending
/// queue `h` under `t`. False when the server already refused the connection (or the table
/// has no room): the connection is the kernel's.
fn publish(region: &Region, l: &Listener, t: &Tuple, h: PipeHandle) -> bool {
    let key = t.words();
    let now = now_secs();
    if listen_entry(region, l).is_some_and(|e| e.refusing.load(Ordering::Relaxed) as u64 > now) {
        return false;
    }
    let mut free = None;
    for i in conn_slots(&key) {
        let Some(e) = table_entry::<ConnEntry>(region, TCP_CONNS_OFF, i, true) else { return false };
        let v = e.val.load(Ordering::Acquire);
        if v != 0 && same(e, &key) {
            if v & REFUSED != 0 && now.saturating_sub(v & !REFUSED) <= REFUSED_SECS {
                e.val.store(0, Ordering::Release);
                return false;
            }
            // A leftover of an earlier connection with the same 4-tuple.
            free = Some(e);
            break;
        }
        if free.is_none() && reusable(region, e, now) {
            free = Some(e);
        }
    }
    // Without room a server that refuses could not leave its refusal: the kernel's.
    let Some(e) = free else { return false };
    store(e, &key, h.to_bits() + 1, now);
    true
}

/// What the server's [`claim`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The client's queue, taken out of the table.
    Queue(PipeHandle),
    /// Not published, and no client of the listener is between its count and its
    /// publication: nothing will be; the connection is the kernel's.
    Kernel,
    /// Not published, but a client may still publish it.
    Wait,
}

/// The server's side, for an accepted connection `t` of listener `l`: the client's queue, or
/// what to do without one. `peer` is the client socket's inode when the kernel told it (0:
/// no such socket any more): the connection may still be published only while that socket
/// is in flight in a live process. Without it, with `refuse`, a connection that may still be
/// published is refused (a refusal is left for its client): it is the kernel's.
pub fn claim(region: &Region, l: &Listener, t: &Tuple, peer: Option<u32>, refuse: bool) -> Claim {
    let Ok(_g) = ns_lock(region) else { return Claim::Kernel };
    let key = t.words();
    let now = now_secs();
    let mut free = None;
    for i in conn_slots(&key) {
        let Some(e) = table_entry::<ConnEntry>(region, TCP_CONNS_OFF, i, refuse) else { continue };
        let v = e.val.load(Ordering::Acquire);
        if v != 0 && v & (REFUSED | IN_FLIGHT) == 0 && same(e, &key) {
            e.val.store(0, Ordering::Release);
            return Claim::Queue(PipeHandle::from_bits(v - 1));
        }
        if free.is_none() && reusable(region, e, now) {
            free = Some(e);
        }
    }
    let counted = listen_entry(region, l).is_some_and(|e| e.connecting.load(Ordering::SeqCst) > 0);
    if !counted {
        return Claim::Kernel;
    }
    if let Some(ino) = peer {
        return match in_flight(region, ino) {
            Some(e) if alive(e.val.load(Ordering::Relaxed) as u32) => Claim::Wait,
            // Killed between its count and its publication: nothing will come.
            Some(e) => {
                e.val.store(0, Ordering::Release);
                if let Some(le) = listen_entry(region, l) {
                    uncount(le);
                }
                Claim::Kernel
            }
            None => Claim::Kernel,
        };
    }
    if !refuse {
        return Claim::Wait;
    }
    match free {
        Some(e) => {
            store(e, &key, REFUSED | now, now);
            Claim::Kernel
        }
        // No room for the refusal: the listener's clients publish nothing for a while.
        None => {
            if let Some(e) = listen_entry(region, l) {
                e.refusing.store((now + REFUSED_SECS) as u32, Ordering::Relaxed);
            }
            Claim::Kernel
        }
    }
}
