//! Loopback UDP between shim processes (`net/ipv4/udp.c`, `net/ipv6/udp.c`). The kernel keeps
//! every UDP socket, its port and its names (bind, ephemeral ports, connect, getsockname);
//! the shim only carries datagrams between two shim sockets, into the receiver's own queue
//! (a [`crate::pipe`] receive queue, as an AF_UNIX datagram socket's).
//!
//! A sender finds its receiver by the local name it is bound to, as `__udp4_lib_lookup`
//! does: this table holds the bound shim sockets no other socket can share a port with (no
//! SO_REUSEADDR, no SO_REUSEPORT), so at most one entry matches a destination. A receiver
//! connected to a peer takes only that peer's datagrams; anything else (no entry, a receiver
//! that takes nothing from this sender) is sent through the kernel, which delivers it or
//! answers with its ICMP port unreachable (ECONNREFUSED on a connected sender).

use crate::pipe::{PipeHandle, ns_lock};
use crate::region::{Region, UDP_BOUND_MAX, UDP_BOUND_OFF};
pub use crate::tcp::Endpoint;
use core::sync::atomic::{AtomicU64, Ordering};

/// A bound socket: `tag` (0 empty, else 1 | IPV6_V6ONLY << 1 | an AF_INET6 socket << 2 |
/// port << 16 | SO_RCVBUF << 32), its address, its receive queue, and its connected peer
/// (`peer_port` 0: not connected, else 1 << 16 | port). Written under the namespace lock,
/// `seq` odd meanwhile; read without it (a sender's every datagram), again if `seq` moved.
#[repr(C)]
struct Bound {
    tag: AtomicU64,
    addr: [AtomicU64; 2],
    queue: AtomicU64,
    peer: [AtomicU64; 2],
    peer_port: AtomicU64,
    seq: AtomicU64,
}

const _: () = assert!(size_of::<Bound>() == 64);

/// Entries looked at from a port's home slot.
const PROBE: u32 = 16;

fn words(addr: &[u8; 16]) -> [u64; 2] {
    [
        u64::from_ne_bytes(addr[..8].try_into().unwrap_or([0; 8])),
        u64::from_ne_bytes(addr[8..].try_into().unwrap_or([0; 8])),
    ]
}

fn entry(region: &Region, i: u32, fill: bool) -> Option<&Bound> {
    let (at, size) = (UDP_BOUND_OFF + i as u64 * 64, 64);
    let usable = if fill { region.reserve(at, size).is_ok() } else { region.reserved(at, size) };
    // SAFETY: i < UDP_BOUND_MAX: inside the table, inside the mapping; the entry's page has its
    // memory; Bound is made of atomics only.
    usable.then(|| unsafe { &*((region.base() + at as usize) as *const Bound) })
}

fn slots(port: u16) -> impl Iterator<Item = u32> {
    let home = (port as u32).wrapping_mul(0x9e37_79b1) >> 16;
    (0..PROBE).map(move |k| (home.wrapping_add(k)) % UDP_BOUND_MAX)
}

/// A receiving socket as the table has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receiver {
    pub queue: PipeHandle,
    /// An AF_INET6 socket (it sees a sender's address as `sockaddr_in6`).
    pub v6: bool,
    pub rcvbuf: u32,
}

/// What a bound socket is, for [`bind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    pub local: Endpoint,
    pub peer: Option<Endpoint>,
    pub v6only: bool,
    pub v6: bool,
    pub rcvbuf: u32,
}

/// Socket `queue` is bound (or connected, or its SO_RCVBUF changed) as `b` says: datagrams to
/// its name go into its queue. False when the table has no room (they go to the kernel).
pub fn bind(region: &Region, queue: PipeHandle, b: &Binding) -> bool {
    let Ok(_g) = ns_lock(region) else { return false };
    forget_locked(region, queue);
    let w = words(&b.local.addr);
    let mut free = None;
    for i in slots(b.local.port) {
        let Some(e) = entry(region, i, true) else { return false };
        let t = e.tag.load(Ordering::Acquire);
        // Its name again: a socket the shim did not see close (the kernel let this one bind).
        let same = t != 0
            && (t >> 16) as u16 == b.local.port
            && e.addr[0].load(Ordering::Relaxed) == w[0]
            && e.addr[1].load(Ordering::Relaxed) == w[1];
        if same || t == 0 && free.is_none() {
            free = Some(e);
        }
        if same {
            break;
        }
    }
    let Some(e) = free else { return false };
    // Emptied first and tagged last: a holder killed in between leaves an empty entry.
    let seq = e.seq.load(Ordering::Relaxed) | 1;
    e.seq.store(seq, Ordering::Release);
    e.tag.store(0, Ordering::Release);
    e.addr[0].store(w[0], Ordering::Relaxed);
    e.addr[1].store(w[1], Ordering::Relaxed);
    e.queue.store(queue.to_bits(), Ordering::Relaxed);
    let (pw, pport) = match b.peer {
        Some(p) => (words(&p.addr), 1 << 16 | p.port as u64),
        None => ([0, 0], 0),
    };
    e.peer[0].store(pw[0], Ordering::Relaxed);
    e.peer[1].store(pw[1], Ordering::Relaxed);
    e.peer_port.store(pport, Ordering::Relaxed);
    let tag = 1 | (b.v6only as u64) << 1 | (b.v6 as u64) << 2 | (b.local.port as u64) << 16;
    e.tag.store(tag | (b.rcvbuf as u64) << 32, Ordering::Release);
    e.seq.store(seq + 1, Ordering::Release);
    true
}

fn forget_locked(region: &Region, queue: PipeHandle) {
    for e in (0..UDP_BOUND_MAX).filter_map(|i| entry(region, i, false)) {
        if e.tag.load(Ordering::Acquire) != 0 && e.queue.load(Ordering::Relaxed) == queue.to_bits() {
            e.tag.store(0, Ordering::Release);
        }
    }
}

/// Datagrams to socket `queue` go through the kernel from now on.
pub fn forget(region: &Region, queue: PipeHandle) {
    if let Ok(_g) = ns_lock(region) {
        forget_locked(region, queue);
    }
}

/// What [`lookup`] found for a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// The shim socket that takes it.
    To(Receiver),
    /// A shim socket bound there, connected to another peer: no socket takes the datagram.
    Refused,
}

/// The shim socket a datagram from `src` to `dst` reaches: one bound to `dst`, or to the any
/// address of its family (an IPv6 one also takes IPv4 unless IPV6_V6ONLY). None: no shim
/// socket is known there.
pub fn lookup(region: &Region, dst: &Endpoint, src: &Endpoint) -> Option<Found> {
    let v4 = dst.addr[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
    let any6 = Endpoint { addr: [0; 16], port: dst.port };
    let mut any4 = any6;
    any4.addr[10] = 0xff;
    any4.addr[11] = 0xff;
    for (ep, ok) in [(*dst, true), (any4, v4), (any6, true)] {
        if !ok {
            continue;
        }
        for i in slots(ep.port) {
            let Some(e) = entry(region, i, false) else { continue };
            let found = loop {
                let seq = e.seq.load(Ordering::Acquire);
                let found = (seq & 1 == 0).then(|| matching(e, &ep, src, v4)).flatten();
                if seq & 1 == 0 && e.seq.load(Ordering::Acquire) == seq {
                    break found;
                }
                core::hint::spin_loop();
            };
            if found.is_some() {
                return found;
            }
        }
    }
    None
}

/// What entry `e` says of a datagram from `src` to `ep` (one of the names that may take a
/// datagram to an IPv4 address if `v4`), if it is bound to `ep`.
fn matching(e: &Bound, ep: &Endpoint, src: &Endpoint, v4: bool) -> Option<Found> {
    let w = words(&ep.addr);
    let t = e.tag.load(Ordering::Acquire);
    if t == 0
        || (t >> 16) as u16 != ep.port
        || e.addr[0].load(Ordering::Relaxed) != w[0]
        || e.addr[1].load(Ordering::Relaxed) != w[1]
    {
        return None;
    }
    // An IPv6-only socket on :: takes no IPv4 datagram; a socket without the shim on 0.0.0.0
    // may: the kernel's to say.
    if t & 2 != 0 && v4 {
        return None;
    }
    let pp = e.peer_port.load(Ordering::Relaxed);
    let pw = words(&src.addr);
    let other_peer = pp != 0
        && (pp as u16 != src.port
            || e.peer[0].load(Ordering::Relaxed) != pw[0]
            || e.peer[1].load(Ordering::Relaxed) != pw[1]);
    if other_peer {
        return Some(Found::Refused);
    }
    let queue = PipeHandle::from_bits(e.queue.load(Ordering::Relaxed));
    Some(Found::To(Receiver { queue, v6: t & 4 != 0, rcvbuf: (t >> 32) as u32 }))
}

/// The `truesize` of the skb a loopback UDP send of `len` bytes makes (`__ip_append_data`,
/// `__ip6_append_data`, `__alloc_skb`), measured on this kernel (`/proc/net/udp`'s rx_queue):
/// a head with room for the link, IP and UDP headers and the payload, from the small-head
/// cache or kmalloc's power-of-two caches; past `SKB_MAX_ALLOC` the payload goes to page
/// frags charged byte for byte.
pub fn truesize(len: usize, v6: bool) -> usize {
    /// `SKB_DATA_ALIGN(sizeof(struct sk_buff))`.
    const SKB: usize = 256;
    /// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))`.
    const SHINFO: usize = 320;
    /// `SKB_SMALL_HEAD_CACHE_SIZE`'s data part.
    const SMALL_HEAD: usize = 256;
    /// `SKB_MAX_ALLOC`.
    const MAX_ALLOC: usize = 16064;
    // IP and UDP headers and the link layer's reserve.
    let overhead = if v6 { 72 } else { 59 };
    let head = if len + overhead >= MAX_ALLOC { overhead } else { len + overhead };
    let data = head.next_multiple_of(64);
    let obj = if data <= SMALL_HEAD { SMALL_HEAD + SHINFO } else { (data + SHINFO).next_power_of_two() };
    SKB + obj + if len + overhead >= MAX_ALLOC { len } else { 0 }
}

/// The largest payload a loopback datagram carries in one skb: IPv4's 65535-byte packet,
/// and IPv6's 65536-byte loopback MTU (a larger one is fragmented: the kernel's).
pub fn max_payload(v6: bool) -> usize {
    if v6 { 65536 - 48 } else { 65535 - 28 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// rx_queue after one datagram to a fresh socket, on this machine's kernel.
    #[test]
    fn kernel_truesizes() {
        let v4 = [
            (0, 832),
            (192, 832),
            (197, 832),
            (500, 1280),
            (1000, 2304),
            (3000, 4352),
            (3777, 8448),
            (8000, 16640),
            (16000, 16640),
            (30000, 30832),
            (65507, 66339),
        ];
        for (n, t) in v4 {
            assert_eq!(truesize(n, false), t, "v4 {n}");
        }
        let v6 = [(184, 832), (185, 1280), (3700, 4352), (7800, 8448), (15990, 16640), (40000, 40832)];
        for (n, t) in v6 {
            assert_eq!(truesize(n, true), t, "v6 {n}");
        }
    }
}
