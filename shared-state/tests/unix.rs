//! AF_UNIX stream sockets' queues: the pending, adopted and refused connection states, each
//! decided exactly once, peeking across buffers, and what a hand-back leaves to read first.

mod common;
mod pipe_common;

use common::TempDir;
use pipe_common::{Env, KPipe, read, write};
use shared_state::pipe::{self, PipeHandle, RecvMode};
use shared_state::unix::{self, Name};

/// A send queue named like a socket end (a kernel pipe stands in for its inode).
fn queue(r: &shared_state::Region, state: u32) -> (PipeHandle, KPipe) {
    let k = KPipe::new();
    let (dev, ino) = k.key();
    let h = pipe::pipe_new(r, dev, ino).unwrap();
    pipe::sock_init(r, h, state);
    (h, k)
}

fn recv(
    r: &shared_state::Region,
    h: PipeHandle,
    buf: &mut [u8],
    env: &Env,
    mode: RecvMode,
) -> Result<usize, i32> {
    pipe::ring_read(r, h, &[(buf.as_mut_ptr() as usize, buf.len())], env, mode)
}

#[test]
fn a_pending_connection_is_adopted_or_refused_once() {
    let dir = TempDir::new("unix-adopt");
    let r = dir.region("ns");
    let (client, _k1) = queue(&r, pipe::SOCK_PENDING);
    let (server, _k2) = queue(&r, pipe::SOCK_PENDING);
    assert_eq!(pipe::sock_peer(&r, client), None);
    assert!(pipe::sock_adopt(&r, client, server));
    assert!(!pipe::sock_refuse(&r, client), "an adopted connection cannot be refused");
    assert_eq!(pipe::sock_state(&r, client), pipe::SOCK_LINKED);
    assert_eq!(pipe::sock_state(&r, server), pipe::SOCK_LINKED);
    assert_eq!(pipe::sock_peer(&r, client), Some(server));
    assert_eq!(pipe::sock_peer(&r, server), Some(client));

    let (late, _k3) = queue(&r, pipe::SOCK_PENDING);
    let (other, _k4) = queue(&r, pipe::SOCK_PENDING);
    assert!(pipe::sock_refuse(&r, late));
    assert!(!pipe::sock_adopt(&r, late, other), "a refused connection stays the kernel's");
    assert_eq!(pipe::sock_state(&r, late), pipe::SOCK_REFUSED);
    assert_eq!(r.header().counters.unix_connections.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn a_pending_client_waits_for_its_link() {
    let dir = TempDir::new("unix-wait");
    let r = dir.region("ns");
    let (client, _k1) = queue(&r, pipe::SOCK_PENDING);
    let (server, _k2) = queue(&r, pipe::SOCK_PENDING);
    let env = Env::new(true);
    assert_eq!(pipe::sock_wait_linked(&r, client, &env), Err(libc::EAGAIN));
    std::thread::scope(|s| {
        let t = s.spawn(|| {
            let env = Env::new(false);
            pipe::sock_wait_linked(&r, client, &env)
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(pipe::sock_adopt(&r, client, server));
        assert_eq!(t.join().unwrap(), Ok(true));
    });
}

#[test]
fn peek_reads_across_buffers_without_consuming() {
    let dir = TempDir::new("unix-peek");
    let r = dir.region("ns");
    let (h, _k) = queue(&r, pipe::SOCK_LINKED);
    let env = Env::new(true);
    let big = vec![7u8; 5000];
    assert_eq!(write(&r, h, &big, &env), Ok(5000));
    assert_eq!(write(&r, h, b"tail", &env), Ok(4));
    let mut buf = vec![0u8; 6000];
    let peek = RecvMode { peek: true, socket: true };
    assert_eq!(recv(&r, h, &mut buf, &env, peek), Ok(5004), "a peek crosses buffers");
    assert_eq!(&buf[5000..5004], b"tail");
    assert_eq!(recv(&r, h, &mut buf[..10], &env, peek), Ok(10));
    assert_eq!(pipe::fionread(&r, h), Ok(5004), "nothing consumed");
    assert_eq!(read(&r, h, &mut buf, &env), Ok(5004));
}

#[test]
fn after_a_hand_back_queued_data_is_read_first_and_can_be_drained() {
    let dir = TempDir::new("unix-handback");
    let r = dir.region("ns");
    let (h, _k) = queue(&r, pipe::SOCK_LINKED);
    let env = Env::new(true);
    assert_eq!(write(&r, h, b"0123456789", &env), Ok(10));
    pipe::sock_hand_back(&r, h).unwrap();
    assert_eq!(write(&r, h, b"x", &env), Err(pipe::HANDED_BACK), "sends go to the kernel");
    let sock = RecvMode { peek: false, socket: true };
    let mut buf = [0u8; 4];
    assert_eq!(recv(&r, h, &mut buf, &env, sock), Ok(4), "queued data is still read here");
    assert_eq!(&buf, b"0123");
    // The sender moves the rest into the kernel, which takes part of it.
    let mut moved = Vec::new();
    pipe::sock_drain(&r, h, &mut |b| {
        let k = b.len().min(2);
        moved.extend_from_slice(&b[..k]);
        Ok(k)
    });
    assert_eq!(moved, b"45");
    assert_eq!(recv(&r, h, &mut buf, &env, sock), Ok(4), "what the kernel did not take stays first");
    assert_eq!(&buf, b"6789");
    assert_eq!(recv(&r, h, &mut buf, &env, sock), Err(pipe::HANDED_BACK), "then the kernel's queue");
}

#[test]
fn names_lead_to_their_last_listener() {
    let dir = TempDir::new("unix-names");
    let r = dir.region("ns");
    let path = Name::Path { dev: 1, ino: 2 };
    let abs = Name::Abstract(b"\0srv");
    assert_eq!(unix::lookup(&r, path), None);
    let l = |ino, pid| unix::Listener { ino, pid };
    unix::register(&r, path, l(100, 7));
    unix::register(&r, abs, l(200, 8));
    assert_eq!(unix::lookup(&r, path), Some(l(100, 7)));
    assert_eq!(unix::lookup(&r, abs), Some(l(200, 8)));
    assert_eq!(unix::lookup(&r, Name::Abstract(b"\0srv2")), None);
    assert_eq!(unix::lookup(&r, Name::Path { dev: 1, ino: 3 }), None);
    unix::register(&r, path, l(101, 7));
    assert_eq!(unix::lookup(&r, path), Some(l(101, 7)), "a newer listener replaces the old");
    unix::unregister(&r, |x| x.ino == 200);
    assert_eq!(unix::lookup(&r, abs), None);
    unix::unregister(&r, |x| x.pid == 7);
    assert_eq!(unix::lookup(&r, path), None, "a process's listeners go with it");
}

#[test]
fn records_keep_their_boundaries() {
    let dir = TempDir::new("unix-records");
    let r = dir.region("ns");
    let (h, _k) = queue(&r, pipe::SOCK_LINKED | pipe::SOCK_RECORDS);
    assert!(pipe::sock_records(&r, h));
    let env = Env::new(true);
    let send = |data: &[u8]| pipe::record_write(&r, h, &[(data.as_ptr() as usize, data.len())], None, &env);
    let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    assert_eq!(send(b"hello world"), Ok(11));
    assert_eq!(send(b""), Ok(0), "an empty record is a record");
    assert_eq!(send(&big), Ok(10_000));
    let take = |cap: usize, peek: bool| {
        let mut buf = vec![0u8; cap];
        pipe::record_read(
            &r,
            h,
            &[(buf.as_mut_ptr() as usize, cap)],
            &env,
            peek,
            &mut pipe::UnixCb::default(),
        )
        .map(|g| {
            buf.truncate(g.map_or(0, |(n, _)| n));
            (g, buf)
        })
    };
    assert_eq!(take(5, true), Ok((Some((5, 11)), b"hello".to_vec())), "a peek leaves the record");
    assert_eq!(take(5, false), Ok((Some((5, 11)), b"hello".to_vec())), "the rest of a record is dropped");
    assert_eq!(take(100, false), Ok((Some((0, 0)), vec![])));
    assert_eq!(take(20_000, false), Ok((Some((10_000, 10_000)), big.clone())), "across pages");
    assert_eq!(take(10, false), Err(libc::EAGAIN));
    // The send buffer, not the ring's first 64 slots, limits a record: the ring grows for it
    // (the shim says EMSGSIZE first for one larger than the send buffer), and it is charged
    // its skb's truesize until read.
    let huge: Vec<u8> = (0..65 * 4096u32).map(|i| (i / 4096) as u8).collect();
    assert_eq!(send(&huge), Ok(huge.len()), "larger than the ring's first slots");
    assert_eq!(pipe::sock_outq(&r, h), Ok(shared_state::skb::dgram_truesize(huge.len())));
    assert_eq!(take(huge.len(), false), Ok((Some((huge.len(), huge.len())), huge)));
    assert_eq!(pipe::sock_outq(&r, h), Ok(0));
}

#[test]
fn a_server_takes_each_clients_connects_in_ticket_order() {
    let dir = TempDir::new("unix-pending");
    let r = dir.region("ns");
    let l = unix::Listener { ino: 9, pid: 0 };
    let (first, _k1) = queue(&r, pipe::SOCK_PENDING);
    let (second, _k2) = queue(&r, pipe::SOCK_PENDING);
    let (third, _k3) = queue(&r, pipe::SOCK_PENDING);
    let t0 = unix::pending_add(&r, l, 42, 1001, Some(first), false).unwrap();
    let t1 = unix::pending_add(&r, l, 42, 1002, None, false)
        .expect("a connection the kernel carries keeps its place");
    let t2 = unix::pending_add(&r, l, 42, 1003, Some(second), false).unwrap();
    let t3 = unix::pending_add(&r, l, 42, 1004, Some(third), false).unwrap();
    assert_eq!([t0, t1, t2, t3], [0, 1, 2, 3]);
    let asked = std::cell::Cell::new(0);
    let take = |pid, ino: Option<u64>| {
        unix::pending_take(&r, l, pid, &mut || {
            asked.set(asked.get() + 1);
            ino
        })
    };
    use unix::Taken;
    assert_eq!(take(7, None), Taken::NotThere, "another process's connects are not ours");
    assert_eq!(take(42, None), Taken::Found(Some(first)), "the oldest, without asking the kernel");
    assert_eq!(take(42, None), Taken::Found(None), "the kernel's connection");
    // A connect that failed (or whose client died before it connected) is skipped; its
    // queue, which nobody took, is refused and given back for its release.
    assert_eq!(unix::pending_remove(&r, l, 42, t2), Some(second));
    assert_eq!(pipe::sock_state(&r, second), pipe::SOCK_REFUSED);
    assert_eq!(unix::pending_remove(&r, l, 42, t2), None, "removed once");
    // One whose order with another thread's is not known is found by its inode.
    let (fourth, _k4) = queue(&r, pipe::SOCK_PENDING);
    let t4 = unix::pending_add(&r, l, 42, 1010, Some(fourth), true).expect("an overlapping connect");
    assert_eq!(t4, 4);
    assert_eq!(take(42, Some(1010)), Taken::Found(Some(fourth)), "the younger first, found by its inode");
    assert_eq!(take(42, Some(1004)), Taken::Found(Some(third)), "the older one, marked by the younger");
    assert_eq!(asked.get(), 2, "the kernel asked for each");
    assert_eq!(take(42, None), Taken::NotThere, "nothing left");
    // Every ticket taken, the stream is gone: the next connect starts it again.
    assert_eq!(unix::pending_add(&r, l, 42, 1005, None, false), Some(0));
    assert_eq!(unix::pending_add(&r, l, 42, 1006, None, false), Some(1));
    // The last ticket of a connect that failed is given back; an earlier one is skipped.
    assert_eq!(unix::pending_remove(&r, l, 42, 1), None);
    assert_eq!(unix::pending_add(&r, l, 42, 1007, None, false), Some(1));
    assert_eq!(unix::pending_remove(&r, l, 42, 0), None);
    assert_eq!(unix::pending_add(&r, l, 42, 1008, None, false), Some(2));
    assert_eq!(take(42, Some(1007)), Taken::Found(None), "ticket 0 skipped");
    assert_eq!(take(42, Some(1008)), Taken::Found(None));
    assert_eq!(take(42, None), Taken::NotThere);
    assert_eq!(unix::pending_add(&r, l, 42, 1009, None, false), Some(0), "idle again");
}

#[test]
fn a_message_header_ends_a_stream_read_as_its_fds_and_credentials_do() {
    let dir = TempDir::new("unix-cb");
    let r = dir.region("ns");
    let (h, _k) = queue(&r, pipe::SOCK_LINKED);
    let env = Env::new(true);
    let mode = RecvMode { peek: false, socket: true };
    let me = pipe::UnixCb { fp: 0, pid: 10, uid: 1, gid: 2, ..Default::default() };
    let send = |data: &[u8], cb: pipe::UnixCb| {
        pipe::sock_write(&r, h, &[(data.as_ptr() as usize, data.len())], &cb, &env)
    };
    let read = |buf: &mut [u8], m: &mut pipe::CbRead, peek: bool| {
        let mode = RecvMode { peek, ..mode };
        pipe::sock_read(&r, h, &[(buf.as_mut_ptr() as usize, buf.len())], &env, mode, m)
    };
    assert_eq!(write(&r, h, b"plain,", &env), Ok(6));
    assert_eq!(send(b"with fd,", pipe::UnixCb { fp: 77, ..me }), Ok(8));
    assert_eq!(write(&r, h, b"plain again", &env), Ok(11));
    let mut buf = [0u8; 64];
    let mut m = pipe::CbRead::default();
    assert_eq!(read(&mut buf, &mut m, true), Ok(14), "a peek stops after the message with fds");
    assert_eq!(m.first.map(|c| c.fp), Some(77));
    let mut m = pipe::CbRead::default();
    assert_eq!(read(&mut buf[..10], &mut m, false), Ok(10), "glued up to the fds");
    assert_eq!((m.first.map(|c| c.fp), m.stopped), (Some(77), true));
    let mut m = pipe::CbRead::default();
    assert_eq!(read(&mut buf, &mut m, false), Ok(15), "the rest, its fds taken, glues on");
    assert_eq!(&buf[..15], b" fd,plain again");
    assert_eq!(m.first.map(|c| c.fp), Some(0));
    // SO_PASSCRED: other credentials end a read; the same ones glue.
    assert_eq!(send(b"one,", me), Ok(4));
    assert_eq!(send(b"two", me), Ok(3));
    assert_eq!(send(b"other", pipe::UnixCb { pid: 11, ..me }), Ok(5));
    let mut m = pipe::CbRead { check_creds: true, ..Default::default() };
    assert_eq!(read(&mut buf, &mut m, false), Ok(7));
    assert_eq!((m.first, m.stopped), (Some(me), true));
    let mut m = pipe::CbRead { check_creds: true, ..Default::default() };
    assert_eq!(read(&mut buf, &mut m, false), Ok(5));
    assert_eq!(m.first.map(|c| c.pid), Some(11));
    // A record keeps its header.
    let (rec, _k2) = queue(&r, pipe::SOCK_LINKED | pipe::SOCK_RECORDS);
    let big = vec![3u8; 9000];
    let cb = pipe::UnixCb { fp: 5, ..me };
    assert_eq!(pipe::record_write(&r, rec, &[(big.as_ptr() as usize, big.len())], Some(&cb), &env), Ok(9000));
    assert_eq!(pipe::record_next_len(&r, rec, false), Some(9000));
    let mut got = pipe::UnixCb::default();
    let mut out = vec![0u8; 10_000];
    let res = pipe::record_read(&r, rec, &[(out.as_mut_ptr() as usize, out.len())], &env, false, &mut got);
    assert_eq!(res, Ok(Some((9000, 9000))));
    assert_eq!((got, &out[..9000]), (cb, &big[..]));
}
