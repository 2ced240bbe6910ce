//! Loopback TCP pairing tables: listeners by (address, port) with their any-address and
//! IPV6_V6ONLY rules, dead listeners dropped, and each connection decided once: claimed by the
//! server after its client published it, or refused before, which the client then finds; a
//! server that names its peer socket waits for that client alone while it is in flight.

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

/// A process that no longer runs: a child reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().expect("spawn true");
    child.wait().expect("wait");
    child.id()
}

#[test]
fn a_connection_is_claimed_or_refused_once() {
    let dir = TempDir::new("tcp-claim");
    let r = dir.region("ns");
    let server = v4([127, 0, 0, 1], 5000);
    assert!(tcp::register(&r, &server, false, 10, 100).is_some());
    let l = tcp::lookup(&r, &server, |_| true).unwrap();
    let t = Tuple { client: v4([127, 0, 0, 1], 40000), server };
    let me = std::process::id();

    // Nobody counted: nothing can be published for it any more.
    assert_eq!(tcp::claim(&r, &l, &t, None, false), Claim::Kernel);

    // Counted and published: the server takes the queue, once.
    assert!(tcp::connecting(&r, &l, 500, me));
    assert_eq!(tcp::claim(&r, &l, &t, None, false), Claim::Wait);
    let (h, _k) = queue(&r);
    assert!(tcp::connected(&r, &l, 500, Some((&t, h))));
    assert_eq!(tcp::claim(&r, &l, &t, None, false), Claim::Queue(h));
    assert_eq!(tcp::claim(&r, &l, &t, None, false), Claim::Kernel);

    // Counted, refused before it was published (the server could not name its peer): the
    // client finds the refusal.
    let t2 = Tuple { client: v4([127, 0, 0, 1], 40001), server };
    assert!(tcp::connecting(&r, &l, 501, me));
    assert_eq!(tcp::claim(&r, &l, &t2, None, true), Claim::Kernel);
    let (h2, _k2) = queue(&r);
    assert!(!tcp::connected(&r, &l, 501, Some((&t2, h2))), "a refused connection is the kernel's");
    // The refusal went with it: the same 4-tuple later is a new connection.
    assert!(tcp::connecting(&r, &l, 501, me));
    assert!(tcp::connected(&r, &l, 501, Some((&t2, h2))));
    assert_eq!(tcp::claim(&r, &l, &t2, None, false), Claim::Queue(h2));
}

/// A server that names its peer socket waits for exactly that client while it is in flight
/// and its process lives, however long, and for no other: no time decides where the bytes go.
#[test]
fn a_server_waits_for_its_own_client_only() {
    let dir = TempDir::new("tcp-inflight");
    let r = dir.region("ns");
    let server = v4([127, 0, 0, 1], 5000);
    assert!(tcp::register(&r, &server, false, 10, 100).is_some());
    let l = tcp::lookup(&r, &server, |_| true).unwrap();
    let t = Tuple { client: v4([127, 0, 0, 1], 40000), server };
    let me = std::process::id();

    assert!(tcp::connecting(&r, &l, 600, me));
    // Its own client in flight: waited for, even when the time for a refusal has come.
    assert_eq!(tcp::claim(&r, &l, &t, Some(600), true), Claim::Wait);
    // Another connection (a client without the shim, or one gone: 0) is not waited for.
    assert_eq!(tcp::claim(&r, &l, &t, Some(601), false), Claim::Kernel);
    assert_eq!(tcp::claim(&r, &l, &t, Some(0), false), Claim::Kernel);
    let (h, _k) = queue(&r);
    assert!(tcp::connected(&r, &l, 600, Some((&t, h))), "nothing was refused");
    assert_eq!(tcp::claim(&r, &l, &t, Some(600), false), Claim::Queue(h));

    // A client given up (its connect failed) is not in flight any more.
    assert!(tcp::connecting(&r, &l, 602, me));
    assert!(!tcp::connected(&r, &l, 602, None));
    assert_eq!(tcp::claim(&r, &l, &t, Some(602), false), Claim::Kernel);

    // A client killed in flight: its connection is the kernel's, and its count goes with it.
    assert!(tcp::connecting(&r, &l, 603, dead_pid()));
    assert_eq!(tcp::claim(&r, &l, &t, Some(603), false), Claim::Kernel);
    assert_eq!(tcp::claim(&r, &l, &t, None, false), Claim::Kernel, "nobody counted any more");
}
