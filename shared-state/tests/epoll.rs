//! The region's epoll objects: item life cycle, tokens, and a holder killed mid-epoll_ctl.

mod common;

use common::{TempDir, fork, wait_exit};
use shared_state::epoll::{self as ep, DISABLED, ItemRef, PENDING};

#[test]
fn items_are_reserved_published_modified_and_removed() {
    let dir = TempDir::new("epoll-life");
    let r = dir.region("ns");
    let l = ep::lock(&r).unwrap();
    let h = ep::create(&r, &l, 2, &|_| true, &|_| {}).unwrap();
    assert_eq!(ep::obj(&r, h).unwrap().kernel_items.load(std::sync::atomic::Ordering::Relaxed), 2);
    let a = ep::reserve(&r, &l, h, 0x11, 5).unwrap();
    assert_eq!(ItemRef::from_token(a.token()), Some(a));
    // Reserved: not yet seen by waiters.
    assert_eq!(ep::items(&r, h).count(), 0);
    ep::publish(&r, &l, a, 0x19, 77, 0, 0);
    let v = ep::items(&r, h).next().unwrap();
    assert_eq!((v.at, v.cfg as u32, v.data, v.cfg & PENDING != 0), (a, 0x19, 77, true));
    v.item.set_flags(&l, DISABLED, PENDING);
    assert_eq!(ep::items(&r, h).next().unwrap().cfg & (DISABLED | PENDING), DISABLED);
    ep::modify(&r, &l, a, 0x1c, 78, 0);
    let v = ep::items(&r, h).next().unwrap();
    assert_eq!((v.cfg as u32, v.data, v.cfg & (DISABLED | PENDING)), (0x1c, 78, PENDING));
    // The last item takes the object with it.
    ep::remove(&r, &l, a);
    assert!(ep::obj(&r, h).is_none());
    assert!(!ep::is_live(&r, a));
    // Nothing else looks like a token.
    assert_eq!(ItemRef::from_token(0x7fff_1234_5678), None);
}

#[test]
fn holder_killed_mid_ctl_leaves_published_items_whole() {
    let dir = TempDir::new("epoll-crash");
    let r = dir.region("ns");
    let (h, a) = {
        let l = ep::lock(&r).unwrap();
        let h = ep::create(&r, &l, 0, &|_| true, &|_| {}).unwrap();
        let a = ep::reserve(&r, &l, h, 0x21, 3).unwrap();
        ep::publish(&r, &l, a, 1, 42, 0, 0);
        (h, a)
    };
    // The parent's mapping: one the child unmapped would take the robust lock's record along.
    let pid = fork(|| {
        let l = ep::lock(&r).unwrap();
        // An ADD that dies between reserving its item and publishing it, lock held.
        let _ = ep::reserve(&r, &l, h, 0x22, 4).unwrap();
        std::mem::forget(l);
        0
    });
    assert_eq!(wait_exit(pid), 0);
    let l = ep::lock(&r).unwrap();
    let items: Vec<_> = ep::items(&r, h).map(|v| (v.at, v.data)).collect();
    assert_eq!(items, [(a, 42)]);
    // The reserved slot is free again: the next reservation may take it.
    let b = ep::reserve(&r, &l, h, 0x23, 5).unwrap();
    assert_ne!(b, a);
    ep::remove(&r, &l, b);
    ep::remove(&r, &l, a);
    assert!(ep::obj(&r, h).is_none());
}
