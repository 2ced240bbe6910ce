//! splice, tee and sendfile through shim pipes, after `fs/splice.c`: `splice_pipe_to_pipe`
//! and `link_pipe` (tee) between two objects, `splice_from_pipe` (`iter_file_splice_write`,
//! `splice_to_socket`) out of one and `splice_file_to_pipe` into one, with the same waits,
//! counts and errors. The other end of a splice out of or into a pipe is the caller's
//! [`SpliceEnd`]: it is given pieces of the ring's pages, so data moves between the region
//! and the end with no buffer in between.
//!
//! Data is copied where the kernel moves page references, so the ring's slots are used as
//! the kernel's: a buffer moved whole from pipe to pipe keeps its offset, length and flags,
//! part of one becomes a buffer that takes no merges, and what comes in from outside fills
//! one unmergeable buffer per piece (a page of the file, at its offset in the page).
//!
//! Crash safety as for read and write: what comes in is written into free slots and
//! published by one store of the head; what goes out is consumed by one store after the end
//! took it (a process killed between the two leaves it in the pipe as well: never lost).
//! Between two pipes the destination's head is published before the source's tail.

use crate::pipe::{
    Active, HANDED_BACK, PAGE, PIPE_BUF_FLAG_CAN_MERGE, PipeBuffer, PipeEnv, PipeGuard, PipeHandle,
    PipeInodeInfo, READERS, Ring, WRITERS, Waited, count_call, enter, join, lock_for_write, lock_pipe,
    note_cpu, pipe_full, wait_for,
};
use crate::region::Region;
use crate::sys::Errno;
use crate::wait::WaitOutcome;
use core::sync::atomic::Ordering;
use libc::{EAGAIN, EINTR, EPIPE};

/// Pieces handed to an end at once (`splice_to_socket`'s `bvec[16]`).
pub const PIECES: usize = 16;

/// One piece of a ring page: address and length.
pub type Piece = (usize, usize);

/// The other end of a splice out of or into a shim pipe.
pub trait SpliceEnd {
    /// Moves bytes between `pieces` and the end: out of them for a splice from the pipe, into
    /// them for one into it; `more`: more data follows (MSG_MORE). Err(EAGAIN) when it would
    /// wait. Runs with the pipe's lock held, as the kernel's actors run under `pipe_lock`.
    fn transfer(&mut self, pieces: &[Piece], more: bool) -> Result<usize, Errno>;
    /// After EAGAIN, with no lock held: waits through `env` (signals deliverable) until the
    /// end may move something. None when the end does not wait: EAGAIN is its answer.
    fn wait(&mut self, env: &dyn PipeEnv) -> Option<WaitOutcome>;
    /// Into a pipe: go on while room and length remain (a file, which the kernel reads until
    /// the pipe is full); a socket gives what it has once.
    fn fill(&self) -> bool {
        false
    }
    /// Into a pipe: where the first byte sits in its page (a file's position: the kernel's
    /// buffers are the page cache's pages).
    fn first_offset(&self) -> usize {
        0
    }
}

fn partial(done: usize, e: Errno) -> Result<usize, Errno> {
    if done > 0 { Ok(done) } else { Err(e) }
}

/// How a wait for the pipe itself ended, for the loops below.
enum Next {
    Retry,
    Gone,
    Stop(Result<usize, Errno>),
}

fn waited(w: Waited, env: &dyn PipeEnv) -> Next {
    match w {
        Waited::Woken => Next::Retry,
        Waited::Interrupted if env.restart_after_signal() => Next::Retry,
        Waited::Interrupted => Next::Stop(Err(EINTR)),
        Waited::PeerGone => Next::Gone,
        Waited::TimedOut => Next::Stop(Err(EAGAIN)),
    }
}

/// After the end's EAGAIN: waits for it, unless it does not wait or something moved already.
fn end_waited(end: &mut dyn SpliceEnd, env: &dyn PipeEnv, done: usize) -> Next {
    match end.wait(env) {
        Some(WaitOutcome::Woken) => Next::Retry,
        Some(WaitOutcome::Interrupted) if done == 0 && env.restart_after_signal() => Next::Retry,
        Some(WaitOutcome::Interrupted) => Next::Stop(partial(done, EINTR)),
        None | Some(WaitOutcome::TimedOut) => Next::Stop(partial(done, EAGAIN)),
    }
}

/// Wakes `pipe`'s readers after data was published, as `wakeup_pipe_readers`.
fn published(region: &Region, pipe: &PipeInodeInfo) {
    pipe.wake(READERS, region);
}

/// Wakes `pipe`'s writers after a full ring was consumed from.
fn freed(region: &Region, pipe: &PipeInodeInfo) {
    pipe.wake(WRITERS, region);
}

/// `splice_from_pipe`: up to `len` bytes out of the pipe `h` into `end` (`consume`: a splice;
/// otherwise a tee into a kernel pipe, one pass that takes nothing). Waits for data as the
/// kernel does: none and no writer is 0; something moved already ends the call.
pub fn splice_from(
    region: &Region,
    h: PipeHandle,
    len: usize,
    env: &dyn PipeEnv,
    end: &mut dyn SpliceEnd,
    consume: bool,
) -> Result<usize, Errno> {
    let act = enter(region, h)?;
    let pipe = act.pipe;
    note_cpu(&pipe.rd_cpu);
    let (mut done, mut gone, mut was_full) = (0usize, false, false);
    let res = loop {
        let guard = match lock_pipe(region, pipe) {
            Ok(g) => g,
            Err(e) => break partial(done, e),
        };
        if pipe.is_handed_back() {
            break partial(done, HANDED_BACK);
        }
        let ring = match pipe.ring() {
            Ok(r) => r,
            Err(e) => break partial(done, e),
        };
        let (head, tail) = pipe.head_tail();
        if head == tail {
            drop(guard);
            if done > 0 || gone || env.peer_gone(false) {
                break Ok(done);
            }
            if env.nonblocking() {
                break if env.peer_gone(true) { Ok(0) } else { Err(EAGAIN) };
            }
            if was_full {
                freed(region, pipe);
                was_full = false;
            }
            match waited(
                wait_for(region, pipe, READERS, env, &|| pipe.readable() || pipe.is_handed_back(), None),
                env,
            ) {
                Next::Retry => continue,
                Next::Gone => {
                    gone = true;
                    continue;
                }
                Next::Stop(r) => break r,
            }
        }
        let mut pieces = [(0usize, 0usize); PIECES];
        let (mut n, mut want, mut i) = (0, 0, tail);
        while i != head && n < PIECES && want < len - done {
            let b = PipeBuffer::load(ring.buf(region, i));
            if b.len > 0 {
                let take = b.len.min(len - done - want);
                pieces[n] = (ring.page(region, i) as usize + b.offset, take);
                n += 1;
                want += take;
            }
            i = i.wrapping_add(1);
        }
        if n == 0 {
            // Nothing but empty buffers (eat_empty_buffer).
            if !consume {
                break Ok(done);
            }
            pipe.head_tail.store(join(head, i), Ordering::Release);
            continue;
        }
        match end.transfer(&pieces[..n], want < len - done && i != head) {
            Ok(0) => break Ok(done),
            Ok(k) => {
                if consume {
                    was_full |= pipe_full(head, tail, ring.size());
                    consume_bytes(region, pipe, ring, k);
                }
                done += k;
                if !consume || done == len {
                    break Ok(done);
                }
            }
            Err(EAGAIN) => {
                drop(guard);
                match end_waited(end, env, done) {
                    Next::Stop(r) => break r,
                    _ => continue,
                }
            }
            Err(e) => break partial(done, e),
        }
    };
    if was_full {
        freed(region, pipe);
    }
    if consume {
        count_call(region, pipe, res.ok(), false);
    }
    res
}

/// Takes `k` bytes off the front of the ring (lock held), in one store.
fn consume_bytes(region: &Region, pipe: &PipeInodeInfo, ring: Ring, mut k: usize) {
    let (head, mut tail) = pipe.head_tail();
    while k > 0 && tail != head {
        let cell = ring.buf(region, tail);
        let b = PipeBuffer::load(cell);
        if k >= b.len {
            k -= b.len;
            tail = tail.wrapping_add(1);
        } else {
            cell.store(PipeBuffer { offset: b.offset + k, len: b.len - k, ..b }.pack(), Ordering::Release);
            k = 0;
        }
    }
    pipe.head_tail.store(join(head, tail), Ordering::Release);
}

/// `splice_file_to_pipe`: up to `len` bytes from `end` into the pipe `h`: waits for room
/// (`wait_for_space`), then reads into as many free slots as the length needs. `broken` is
/// set when the pipe has no reader (the kernel's SIGPIPE with EPIPE).
pub fn splice_into(
    region: &Region,
    h: PipeHandle,
    len: usize,
    env: &dyn PipeEnv,
    end: &mut dyn SpliceEnd,
    broken: &mut bool,
) -> Result<usize, Errno> {
    let act = enter(region, h)?;
    let pipe = act.pipe;
    note_cpu(&pipe.wr_cpu);
    let (mut done, mut gone, mut any) = (0usize, false, false);
    let mut at = end.first_offset() % PAGE;
    let res = loop {
        let guard = match lock_for_write(region, pipe) {
            Ok(g) => g,
            Err(e) => break partial(done, e),
        };
        if pipe.is_handed_back() {
            break partial(done, HANDED_BACK);
        }
        if done == 0 && (gone || env.peer_gone(false)) {
            *broken = true;
            break Err(EPIPE);
        }
        let ring = match pipe.ring() {
            Ok(r) => r,
            Err(e) => break partial(done, e),
        };
        let (head, tail) = pipe.head_tail();
        if pipe_full(head, tail, ring.size()) {
            drop(guard);
            if done > 0 {
                break Ok(done);
            }
            if env.nonblocking() {
                if env.peer_gone(true) {
                    *broken = true;
                    break Err(EPIPE);
                }
                break Err(EAGAIN);
            }
            match waited(
                wait_for(
                    region,
                    pipe,
                    WRITERS,
                    env,
                    &|| pipe.writable(region) || pipe.is_handed_back(),
                    None,
                ),
                env,
            ) {
                Next::Retry => continue,
                Next::Gone => {
                    gone = true;
                    continue;
                }
                Next::Stop(r) => break r,
            }
        }
        // do_splice_read of nothing, after the wait for room.
        if len == 0 {
            break Ok(0);
        }
        let free = ring.size() - head.wrapping_sub(tail);
        let mut pieces = [(0usize, 0usize); PIECES];
        let (mut n, mut want) = (0, 0);
        while n < PIECES && (n as u32) < free && want < len - done {
            let off = if n == 0 { at } else { 0 };
            let take = (PAGE - off).min(len - done - want);
            // SAFETY: off < PAGE: inside the free slot's data page.
            pieces[n] = (unsafe { ring.page(region, head.wrapping_add(n as u32)).add(off) } as usize, take);
            n += 1;
            want += take;
        }
        match end.transfer(&pieces[..n], false) {
            Ok(0) => break Ok(done),
            Ok(k) => {
                publish(region, pipe, ring, &pieces[..n], k);
                any = true;
                done += k;
                at = (at + k) % PAGE;
                if done == len || k < want || !end.fill() {
                    break Ok(done);
                }
            }
            Err(EAGAIN) => {
                drop(guard);
                match end_waited(end, env, done) {
                    Next::Stop(r) => break r,
                    _ => continue,
                }
            }
            Err(e) => break partial(done, e),
        }
    };
    if any {
        published(region, pipe);
    }
    count_call(region, pipe, res.ok(), true);
    res
}

/// Queues the first `k` bytes of `pieces` (free slots from the head on, filled), one
/// unmergeable buffer per piece, in one store of the head (lock held).
fn publish(region: &Region, pipe: &PipeInodeInfo, ring: Ring, pieces: &[Piece], mut k: usize) {
    let (mut head, tail) = pipe.head_tail();
    for &(addr, len) in pieces {
        if k == 0 {
            break;
        }
        let chunk = len.min(k);
        let offset = addr - ring.page(region, head) as usize;
        ring.buf(region, head)
            .store(PipeBuffer { offset, len: chunk, flags: 0, charge: 0 }.pack(), Ordering::Release);
        head = head.wrapping_add(1);
        k -= chunk;
    }
    pipe.head_tail.store(join(head, tail), Ordering::Release);
}

/// Both objects' locks, in slot order (`pipe_double_lock`).
fn lock_both<'a>(
    region: &Region,
    a: (&'a PipeInodeInfo, u32),
    b: (&'a PipeInodeInfo, u32),
) -> Result<(PipeGuard<'a>, PipeGuard<'a>), Errno> {
    if a.1 < b.1 {
        let ga = lock_pipe(region, a.0)?;
        Ok((ga, lock_pipe(region, b.0)?))
    } else {
        let gb = lock_pipe(region, b.0)?;
        Ok((lock_pipe(region, a.0)?, gb))
    }
}

/// `splice_pipe_to_pipe` (`consume`) or `link_pipe` (tee): up to `len` bytes from the pipe
/// `ih` into the pipe `oh`, after waiting for data (`ipipe_prep`) and room (`opipe_prep`).
/// `broken` as for [`splice_into`]. A tee does not retry when it raced with others and
/// found nothing to do (it returns 0, as the kernel's).
pub fn pipe_to_pipe(
    region: &Region,
    ih: PipeHandle,
    oh: PipeHandle,
    len: usize,
    envs: (&dyn PipeEnv, &dyn PipeEnv),
    consume: bool,
    broken: &mut bool,
) -> Result<usize, Errno> {
    let (ienv, oenv) = envs;
    let ia: Active<'_> = enter(region, ih)?;
    let oa: Active<'_> = enter(region, oh)?;
    let (ip, op) = (ia.pipe, oa.pipe);
    note_cpu(&ip.rd_cpu);
    note_cpu(&op.wr_cpu);
    let (mut igone, mut ogone) = (false, false);
    let (mut ret, mut took, mut was_full) = (0usize, false, false);
    let res = 'out: loop {
        // ipipe_prep: data, or no writer (the loop below then ends with 0).
        while !ip.readable() && !ip.is_handed_back() && !igone && !ienv.peer_gone(false) {
            if ienv.nonblocking() {
                if ienv.peer_gone(true) {
                    break;
                }
                break 'out Err(EAGAIN);
            }
            match waited(
                wait_for(region, ip, READERS, ienv, &|| ip.readable() || ip.is_handed_back(), None),
                ienv,
            ) {
                Next::Retry => {}
                Next::Gone => igone = true,
                Next::Stop(r) => break 'out r,
            }
        }
        // opipe_prep: room, or no reader (EPIPE).
        while !op.writable(region) && !op.is_handed_back() {
            if ogone || oenv.peer_gone(false) || (oenv.nonblocking() && oenv.peer_gone(true)) {
                *broken = true;
                break 'out Err(EPIPE);
            }
            if oenv.nonblocking() {
                break 'out Err(EAGAIN);
            }
            match waited(
                wait_for(region, op, WRITERS, oenv, &|| op.writable(region) || op.is_handed_back(), None),
                oenv,
            ) {
                Next::Retry => {}
                Next::Gone => ogone = true,
                Next::Stop(r) => break 'out r,
            }
        }
        let guards = match lock_both(region, (ip, ih.idx), (op, oh.idx)) {
            Ok(g) => g,
            Err(e) => break 'out Err(e),
        };
        // A writer filling the output's free slots unlocked: its buffers come first.
        if op.copier_busy() {
            drop(guards);
            if let Err(e) = op.wait_copier() {
                break 'out Err(e);
            }
            continue 'out;
        }
        if ip.is_handed_back() || op.is_handed_back() {
            break 'out Err(HANDED_BACK);
        }
        let (iring, oring) = match (ip.ring(), op.ring()) {
            (Ok(i), Ok(o)) => (i, o),
            (Err(e), _) | (_, Err(e)) => break 'out Err(e),
        };
        let (i_head, i_tail0) = ip.head_tail();
        let (o_head0, o_tail) = op.head_tail();
        let (mut i_tail, mut o_head) = (i_tail0, o_head0);
        let mut split = None;
        loop {
            if ogone || oenv.peer_gone(false) {
                *broken = true;
                if ret == 0 {
                    drop(guards);
                    break 'out Err(EPIPE);
                }
                break;
            }
            if i_tail == i_head && (igone || ienv.peer_gone(false)) {
                break;
            }
            if i_tail == i_head || pipe_full(o_head, o_tail, oring.size()) {
                if ret > 0 || !consume {
                    break;
                }
                drop(guards);
                if ienv.nonblocking() {
                    break 'out Err(EAGAIN);
                }
                // Raced with another reader or writer: a zero would mean EOF, so again.
                continue 'out;
            }
            let b = PipeBuffer::load(iring.buf(region, i_tail));
            let whole = consume && len - ret >= b.len;
            let (n, flags) = if whole {
                (b.len, b.flags)
            } else {
                (b.len.min(len - ret), b.flags & !PIPE_BUF_FLAG_CAN_MERGE)
            };
            // SAFETY: offset + len <= PAGE in both slots' data pages (kept so by writers); two
            // different objects' slots never overlap.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    iring.page(region, i_tail).add(b.offset),
                    oring.page(region, o_head).add(b.offset),
                    n,
                );
            }
            oring
                .buf(region, o_head)
                .store(PipeBuffer { offset: b.offset, len: n, flags, charge: 0 }.pack(), Ordering::Release);
            o_head = o_head.wrapping_add(1);
            if whole || !consume {
                i_tail = i_tail.wrapping_add(1);
            } else {
                split = Some((i_tail, PipeBuffer { offset: b.offset + n, len: b.len - n, ..b }));
            }
            ret += n;
            if ret == len || split.is_some() {
                break;
            }
        }
        // The destination first: a process killed between the two stores leaves the data in
        // both pipes rather than in neither.
        op.head_tail.store(join(o_head, o_tail), Ordering::Release);
        if consume {
            if let Some((at, rest)) = split {
                iring.buf(region, at).store(rest.pack(), Ordering::Release);
            }
            took = i_tail != i_tail0 || split.is_some();
            was_full = pipe_full(i_head, i_tail0, iring.size());
            ip.head_tail.store(join(i_head, i_tail), Ordering::Release);
        }
        drop(guards);
        break Ok(ret);
    };
    if ret > 0 {
        published(region, op);
        count_call(region, op, Some(ret), true);
    }
    if took {
        if was_full {
            freed(region, ip);
        }
        count_call(region, ip, Some(ret), false);
    }
    res
}
