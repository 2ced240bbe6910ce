//! Loopback TCP pairing tables: listeners by (address, port) with their any-address and
//! IPV6_V6ONLY rules, dead listeners dropped, and each connection decided once: claimed by the
//! server after its client published it, or refused before, which the client then finds.

mod common;
mod pipe_common;

use common::TempDir;
use pipe_common::KPipe;
use shared_state::pipe::{self, PipeHandle};
use shared_state::tcp::{self, Claim, Endpoint, Tuple};

fn v4(a: [u8; 4], port: u16) -> Endpoint {
    let mut sa = [0u8; 16];
    sa[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    sa[2..4].copy_from_slice(&port.to_be_bytes());
    sa[4..8].copy_from_slice(&a);
    Endpoint::from_sockaddr(&sa).unwrap()
}

fn v6(last: u8, port: u16) -> Endpoint {
    let mut sa = [0u8; 28];
    sa[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
    sa[2..4].copy_from_slice(&port.to_be_bytes());
    sa[23] = last;
    Endpoint::from_sockaddr(&sa).unwrap()
}

fn queue(r: &shared_state::Region) -> (PipeHandle, KPipe) {
    let k = KPipe::new();
    let (dev, ino) = k.key();
    let h = pipe::pipe_new(r, dev, ino).unwrap();
    pipe::sock_init(r, h, pipe::SOCK_PENDING | pipe::SOCK_TCP);
    (h, k)
}

#[test]
fn endpoints_name_loopback_and_any_addresses() {
    assert!(v4([127, 0, 0, 1], 80).is_loopback());
    assert!(v4([127, 3, 2, 1], 80).is_loopback());
    assert!(!v4([10, 0, 0, 1], 80).is_loopback());
    assert!(v6(1, 80).is_loopback());
    assert!(!v6(2, 80).is_loopback());
    assert!(v4([0, 0, 0, 0], 80).is_wildcard() && v6(0, 80).is_wildcard());
    assert!(Endpoint::from_sockaddr(&[1, 0, 0, 0]).is_none(), "AF_UNIX is no endpoint");
}

#[test]
fn listeners_are_found_by_address_or_any_address() {
    let dir = TempDir::new("tcp-listen");
    let r = dir.region("ns");
    let alive = |_| true;
    assert!(tcp::lookup(&r, &v4([127, 0, 0, 1], 5000), alive).is_none());
    let slot = tcp::register(&r, &v4([127, 0, 0, 1], 5000), false, 10, 100).unwrap();
    let l = tcp::lookup(&r, &v4([127, 0, 0, 1], 5000), alive).unwrap();
    assert_eq!((l.pid, l.ino), (10, 100));
    // Its holder finds it by slot and inode, with its name; another inode there is not it.
    assert_eq!(tcp::listener_at(&r, slot, 100), Some((l, v4([127, 0, 0, 1], 5000))));
    assert_eq!(tcp::listener_at(&r, slot, 99), None);
    assert!(tcp::lookup(&r, &v4([127, 0, 0, 2], 5000), alive).is_none(), "another address");
    assert!(tcp::lookup(&r, &v4([127, 0, 0, 1], 5001), alive).is_none(), "another port");
    // A dual-stack listener on :: takes IPv4 too; an IPv6-only one does not.
    assert!(tcp::register(&r, &v6(0, 6000), false, 11, 101).is_some());
    assert_eq!(tcp::lookup(&r, &v4([127, 0, 0, 1], 6000), alive).map(|l| l.ino), Some(101));
    assert_eq!(tcp::lookup(&r, &v6(1, 6000), alive).map(|l| l.ino), Some(101));
    assert!(tcp::register(&r, &v6(0, 7000), true, 12, 102).is_some());
    assert!(tcp::lookup(&r, &v4([127, 0, 0, 1], 7000), alive).is_none());
    assert_eq!(tcp::lookup(&r, &v6(1, 7000), alive).map(|l| l.ino), Some(102));
    // 0.0.0.0 takes IPv4 only.
    assert!(tcp::register(&r, &v4([0, 0, 0, 0], 8000), false, 13, 103).is_some());
    assert_eq!(tcp::lookup(&r, &v4([127, 0, 0, 9], 8000), alive).map(|l| l.ino), Some(103));
    assert!(tcp::lookup(&r, &v6(1, 8000), alive).is_none());
    // A dead listener's entry goes at the first look; an unregistered one at once.
    assert!(tcp::lookup(&r, &v4([127, 0, 0, 1], 5000), |pid| pid != 10).is_none());
    assert!(tcp::lookup(&r, &v4([127, 0, 0, 1], 5000), alive).is_none());
    assert_eq!(tcp::listener_at(&r, slot, 100), None, "gone from the table");
    tcp::unregister(&r, |pid, ino| pid == 11 && ino == 101);
    assert!(tcp::lookup(&r, &v6(1, 6000), alive).is_none());
}

#[test]
fn a_connection_is_claimed_or_refused_once() {
    let dir = TempDir::new("tcp-claim");
    let r = dir.region("ns");
    let server = v4([127, 0, 0, 1], 5000);
    assert!(tcp::register(&r, &server, false, 10, 100).is_some());
    let l = tcp::lookup(&r, &server, |_| true).unwrap();
    let t = Tuple { client: v4([127, 0, 0, 1], 40000), server };

    // Nobody counted: nothing can be published for it any more.
    assert_eq!(tcp::claim(&r, &l, &t, false), Claim::Kernel);

    // Counted and published: the server takes the queue, once.
    tcp::connecting(&r, &l, true);
    assert_eq!(tcp::claim(&r, &l, &t, false), Claim::Wait);
    let (h, _k) = queue(&r);
    assert!(tcp::publish(&r, &l, &t, h));
    tcp::connecting(&r, &l, false);
    assert_eq!(tcp::claim(&r, &l, &t, false), Claim::Queue(h));
    assert_eq!(tcp::claim(&r, &l, &t, false), Claim::Kernel);

    // Counted, refused before it was published: the client finds the refusal.
    let t2 = Tuple { client: v4([127, 0, 0, 1], 40001), server };
    tcp::connecting(&r, &l, true);
    assert_eq!(tcp::claim(&r, &l, &t2, true), Claim::Kernel);
    let (h2, _k2) = queue(&r);
    assert!(!tcp::publish(&r, &l, &t2, h2), "a refused connection is the kernel's");
    tcp::connecting(&r, &l, false);
    // The refusal went with it: the same 4-tuple later is a new connection.
    tcp::connecting(&r, &l, true);
    assert!(tcp::publish(&r, &l, &t2, h2));
    tcp::connecting(&r, &l, false);
    assert_eq!(tcp::claim(&r, &l, &t2, false), Claim::Queue(h2));
}
