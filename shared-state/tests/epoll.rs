//! The region's eventpoll: items reserved, published, queued in wake-up order and collected,
//! level-triggered ones going back to the tail, wait queues with exclusive entries, and a
//! holder killed inside epoll_ctl or a collection leaving every other interest whole.

mod common;

use common::{TempDir, fork, wait_exit};
use shared_state::epoll::{self as ep, DISABLED, ItemRef};
use shared_state::epoll_wq::{self as wq, Wq};
use shared_state::pipe::{READERS, WRITERS};

const IN: u32 = libc::EPOLLIN as u32;

/// The data of the items a collection takes, in order (each taken off the list).
fn collect(c: &ep::Ctl) -> Vec<u64> {
    let mut s = c.scan();
    let mut out = Vec::new();
    while let Some(v) = s.take() {
        out.push(v.data);
    }
    out
}

#[test]
fn items_are_published_queued_in_order_and_removed() {
    let dir = TempDir::new("epoll-life");
    let r = dir.region("ns");
    let h = ep::create(&r, 0).unwrap();
    let c = ep::ctl(&r, h).unwrap();
    let a = c.reserve(0x11, 5, Wq::Pipe(1), READERS).unwrap();
    assert_eq!(ItemRef::from_token(a.token()), Some(a));
    // Reserved: not collected yet.
    assert!(collect(&c).is_empty());
    c.publish(a, IN, 77, |_| true);
    let b = c.reserve(0x12, 6, Wq::Pipe(2), READERS).unwrap();
    c.publish(b, IN, 78, |_| true);
    // Published: polled once, in the order they were added.
    assert_eq!(collect(&c), [77, 78]);
    assert!(!c.inst.events_available());
    // Wake-ups queue them in the order they came.
    wq::notify(&r, Wq::Pipe(2), READERS, IN);
    wq::notify(&r, Wq::Pipe(1), READERS, IN);
    wq::notify(&r, Wq::Pipe(2), READERS, IN);
    assert!(c.inst.events_available());
    assert_eq!(collect(&c), [78, 77]);
    // A wake-up of the other side, or one the item does not want, queues nothing.
    wq::notify(&r, Wq::Pipe(1), WRITERS, IN);
    wq::notify(&r, Wq::Pipe(1), READERS, libc::EPOLLOUT as u32);
    assert!(collect(&c).is_empty());
    // A level-triggered item reported goes back to the tail.
    wq::notify(&r, Wq::Pipe(1), READERS, IN);
    wq::notify(&r, Wq::Pipe(2), READERS, IN);
    {
        let mut s = c.scan();
        let v = s.take().unwrap();
        assert_eq!(v.data, 77);
        s.requeue(v.at);
    }
    assert_eq!(collect(&c), [78, 77]);
    // MOD: new data, polled again; ONESHOT disabled items are not queued by wake-ups.
    c.modify(a, IN, 79, |_| true);
    {
        let mut s = c.scan();
        let v = s.take().unwrap();
        assert_eq!((v.data, v.cfg & DISABLED), (79, 0));
        v.disable();
    }
    wq::notify(&r, Wq::Pipe(1), READERS, IN);
    assert!(collect(&c).is_empty());
    c.remove(a);
    c.remove(b);
    assert!(!ep::is_live(&r, a));
    wq::notify(&r, Wq::Pipe(1), READERS, IN);
    assert!(collect(&c).is_empty());
    c.free();
    assert!(ep::inst(&r, h).is_none());
    // Nothing else looks like a token.
    assert_eq!(ItemRef::from_token(0x7fff_1234_5678), None);
}

#[test]
fn exclusive_items_wake_one_set_with_a_sleeper() {
    let dir = TempDir::new("epoll-excl");
    let r = dir.region("ns");
    let excl = IN | libc::EPOLLEXCLUSIVE as u32;
    let sets: Vec<_> = (0..3).map(|_| ep::create(&r, 0).unwrap()).collect();
    for (k, &h) in sets.iter().enumerate() {
        let c = ep::ctl(&r, h).unwrap();
        let i = c.reserve(0x21, 3, Wq::Pipe(7), READERS).unwrap();
        c.publish(i, excl, k as u64, |_| true);
        collect(&c);
    }
    // Nobody sleeps: every exclusive item is queued (none woke a waiter).
    wq::notify(&r, Wq::Pipe(7), READERS, IN);
    let queued: Vec<_> = sets.iter().map(|&h| ep::inst(&r, h).unwrap().events_available()).collect();
    assert_eq!(queued, [true, true, true]);
    for &h in &sets {
        collect(&ep::ctl(&r, h).unwrap());
    }
    // The second set has a sleeper: the first is queued (no sleeper), the second woken, the
    // third left alone.
    let o = ep::inst(&r, sets[1]).unwrap();
    let seq = o.sleep_prepare(std::process::id());
    wq::notify(&r, Wq::Pipe(7), READERS, IN);
    assert_ne!(o.word.load(std::sync::atomic::Ordering::SeqCst), seq);
    o.sleep_done();
    let queued: Vec<_> = sets.iter().map(|&h| ep::inst(&r, h).unwrap().events_available()).collect();
    assert_eq!(queued, [true, true, false]);
}

#[test]
fn holder_killed_mid_ctl_or_collection_leaves_published_items_whole() {
    let dir = TempDir::new("epoll-crash");
    let r = dir.region("ns");
    let h = ep::create(&r, 0).unwrap();
    let (a, b) = {
        let c = ep::ctl(&r, h).unwrap();
        let a = c.reserve(0x31, 3, Wq::Pipe(3), READERS).unwrap();
        c.publish(a, IN, 42, |_| true);
        let b = c.reserve(0x32, 4, Wq::Pipe(4), READERS).unwrap();
        c.publish(b, IN, 43, |_| true);
        collect(&c);
        (a, b)
    };
    wq::notify(&r, Wq::Pipe(4), READERS, IN);
    wq::notify(&r, Wq::Pipe(3), READERS, IN);
    // The parent's mapping: one the child unmapped would take the robust lock's record along.
    let pid = fork(|| {
        let c = ep::ctl(&r, h).unwrap();
        // An ADD that dies between reserving its item and publishing it, inside a collection
        // that took the ready list private.
        let _ = c.reserve(0x33, 5, Wq::Pipe(5), READERS).unwrap();
        let mut s = c.scan();
        let _ = s.take();
        std::mem::forget(s);
        std::mem::forget(c);
        0
    });
    assert_eq!(wait_exit(pid), 0);
    let c = ep::ctl(&r, h).unwrap();
    // The ready list is back, in its order; the reservation is gone.
    assert_eq!(collect(&c), [43, 42]);
    let mut live = Vec::new();
    ep::each_item(&r, h, |v| live.push((v.at, v.data)));
    live.sort_by_key(|x| x.1);
    assert_eq!(live, [(a, 42), (b, 43)]);
    // Both still wake-able.
    wq::notify(&r, Wq::Pipe(3), READERS, IN);
    assert_eq!(collect(&c), [42]);
    c.free();
}
