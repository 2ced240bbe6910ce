//! Processes dying at the worst moments: holding the region lock, mid-update, or attached.

mod common;

use common::{Pipe, TempDir, fork, kill_and_reap, sleep_forever, wait_exit};
use shared_state::Region;
use shared_state::ipc::{IPC_CREAT, IPC_PRIVATE, id_to_idx};
use shared_state::region::SHM_SLOTS_OFF;
use shared_state::shm::{self, Shmid64Ds, ShmidKernel};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

/// This process's record slot is process-global (a real process uses one region), so tests that
/// attach from the test process itself, each in its own region, take turns.
static PARENT_ATTACH: Mutex<()> = Mutex::new(());

fn stat(region: &Region, id: i32) -> Result<Shmid64Ds, i32> {
    let mut ds = Shmid64Ds::default();
    shm::shmctl(region, id, shm::IPC_STAT, &mut ds as *mut _ as usize).map(|_| ds)
}

fn recoveries(region: &Region) -> u64 {
    region.header().counters.lock_recoveries.load(Ordering::Relaxed)
}

/// (used_ids, shm_tot) from SHM_INFO (`struct shm_info`: i32 used_ids, pad, u64 shm_tot…).
fn shm_info(region: &Region) -> (i32, u64) {
    let mut buf = [0u64; 6];
    shm::shmctl(region, 0, shm::SHM_INFO, buf.as_mut_ptr() as usize).unwrap();
    (buf[0] as u32 as i32, buf[1])
}

/// A child that takes the region lock, says so, and sleeps holding it.
fn spawn_lock_holder(region: &Region) -> i32 {
    let mut held = Pipe::new();
    let pid = fork(|| {
        let Ok(_guard) = region.lock() else { return 2 };
        held.send(1);
        sleep_forever()
    });
    held.close_write();
    assert_eq!(held.recv(), Some(1), "lock holder did not take the lock");
    pid
}

/// Takes the lock on another thread; the answer is whether the lock reported a recovery.
fn lock_in_thread(region: &'static Region) -> mpsc::Receiver<bool> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let guard = region.lock().expect("lock unusable after its holder died");
        let _ = tx.send(guard.recovered);
    });
    rx
}

/// The full shm life cycle, from this process, after a recovery.
fn shm_still_works(region: &Region) {
    let _turn = PARENT_ATTACH.lock().unwrap();
    let id = shm::shmget(region, 0x7e57, 8192, IPC_CREAT | 0o600).unwrap();
    let addr = shm::shmat(region, id, 0, 0).unwrap();
    // SAFETY: `addr` is a fresh read-write attachment of 8192 bytes.
    unsafe {
        *(addr as *mut u64) = 0xfeed;
        assert_eq!(*(addr as *const u64), 0xfeed);
    }
    assert_eq!(stat(region, id).unwrap().nattch, 1);
    shm::shmdt(region, addr).unwrap();
    assert_eq!(stat(region, id).unwrap().nattch, 0);
    assert_eq!(shm::shmctl(region, id, shm::IPC_RMID, 0), Ok(0));
    assert_eq!(stat(region, id).err(), Some(libc::EINVAL));
}

/// The region outlives the test's threads (a blocked locker may be left behind on failure).
fn leak_region(dir: &TempDir) -> &'static Region {
    Box::leak(Box::new(dir.region("ns")))
}

#[test]
fn lock_holder_killed_then_lock_recovers() {
    let dir = TempDir::new("lockkill");
    let region = leak_region(&dir);
    let before = recoveries(region);
    let pid = spawn_lock_holder(region);
    kill_and_reap(pid);
    let rx = lock_in_thread(region);
    let recovered = rx.recv_timeout(Duration::from_secs(5)).expect("lock not obtained within 5 s");
    assert!(recovered, "the dead holder was not reported");
    assert_eq!(recoveries(region), before + 1);
    shm_still_works(region);
    // The lock is consistent again: later lockers see no recovery.
    assert!(!region.lock().unwrap().recovered);
    assert_eq!(recoveries(region), before + 1);
}

#[test]
fn blocked_locker_is_woken_when_holder_is_killed() {
    let dir = TempDir::new("lockwait");
    let region = leak_region(&dir);
    let before = recoveries(region);
    let pid = spawn_lock_holder(region);
    let rx = lock_in_thread(region);
    // Give the thread time to block in the lock; it must not get it while the holder lives.
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "lock taken while held");
    kill_and_reap(pid);
    let recovered = rx.recv_timeout(Duration::from_secs(5)).expect("blocked locker never woke");
    assert!(recovered, "the dead holder was not reported");
    assert_eq!(recoveries(region), before + 1);
    shm_still_works(region);
}

/// A child that attaches `id`, says so, and sleeps attached.
fn spawn_attacher(region: &Region, id: i32) -> i32 {
    let mut attached = Pipe::new();
    let pid = fork(|| {
        shared_state::proc::identify_self();
        let Ok(addr) = shm::shmat(region, id, 0, 0) else { return 2 };
        // SAFETY: a fresh read-write attachment of at least one page.
        unsafe { *(addr as *mut u8) = 1 };
        attached.send(1);
        sleep_forever()
    });
    attached.close_write();
    assert_eq!(attached.recv(), Some(1), "child could not attach");
    pid
}

#[test]
fn killed_attacher_is_reaped() {
    let dir = TempDir::new("reap");
    let region = dir.region("ns");
    let id = shm::shmget(&region, IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
    let pid = spawn_attacher(&region, id);
    let ds = stat(&region, id).unwrap();
    assert_eq!((ds.nattch, ds.lpid), (1, pid));
    kill_and_reap(pid);
    let ds = stat(&region, id).unwrap();
    assert_eq!((ds.nattch, ds.lpid), (0, pid));
    assert_ne!(ds.dtime, 0, "the reaped detach sets shm_dtime");
}

#[test]
fn removed_segment_dies_with_its_last_attacher() {
    let dir = TempDir::new("rmid");
    let region = dir.region("ns");
    let key = 0x4242;
    let id = shm::shmget(&region, key, 4096, IPC_CREAT | 0o600).unwrap();
    let pid = spawn_attacher(&region, id);
    assert_eq!(shm::shmctl(&region, id, shm::IPC_RMID, 0), Ok(0));
    let ds = stat(&region, id).unwrap();
    assert_eq!(ds.nattch, 1);
    assert_ne!(ds.perm.mode as u32 & shm::SHM_DEST, 0);
    assert_eq!(ds.perm.key, IPC_PRIVATE, "a removed segment loses its key");
    kill_and_reap(pid);
    assert_eq!(stat(&region, id).err(), Some(libc::EINVAL));
    assert!(shm::snapshot(&region).unwrap().is_empty());
    assert_eq!(shm_info(&region), (0, 0));
}

#[test]
fn zombie_attacher_counts_as_dead() {
    let dir = TempDir::new("zombie");
    let region = dir.region("ns");
    let id = shm::shmget(&region, IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
    let pid = spawn_attacher(&region, id);
    // SAFETY: plain syscall on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    // Wait until it is a zombie, leaving it unreaped (WNOWAIT).
    // SAFETY: an all-zero siginfo_t is valid; the kernel fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid out-pointer.
    let rc =
        unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) };
    assert_eq!(rc, 0);
    let ds = stat(&region, id).unwrap();
    assert_eq!((ds.nattch, ds.lpid), (0, pid), "a zombie still counted as attached");
    assert_eq!(wait_exit(pid), 128 + libc::SIGKILL);
}

/// A segment's slot in the region, to be used only under the region lock.
fn slot(region: &Region, id: i32) -> *mut ShmidKernel {
    let off = SHM_SLOTS_OFF + id_to_idx(id) as u64 * size_of::<ShmidKernel>() as u64;
    (region.base() + off as usize) as *mut ShmidKernel
}

#[test]
fn crash_mid_update_derived_state_is_recomputed() {
    let dir = TempDir::new("midupdate");
    let region = dir.region("ns");
    let kept = shm::shmget(&region, IPC_PRIVATE, 8192, IPC_CREAT | 0o600).unwrap();
    let doomed = shm::shmget(&region, IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
    let attacher = spawn_attacher(&region, kept);
    assert_eq!(stat(&region, kept).unwrap().nattch, 1);
    assert_eq!(shm_info(&region), (2, 3));
    let before = recoveries(&region);

    // A holder dies half way through an update, leaving every derived field wrong: counts,
    // a "removed" segment that seems attached, page total, ids bookkeeping, no free space.
    let mut done = Pipe::new();
    let pid = fork(|| {
        let Ok(_guard) = region.lock() else { return 2 };
        // SAFETY: we hold the lock; both ids name live segments.
        unsafe {
            (*slot(&region, kept)).nattch = 7;
            let d = &mut *slot(&region, doomed);
            d.nattch = 3;
            d.perm.mode |= shm::SHM_DEST;
            let ns = &mut region.header_mut().shm;
            ns.shm_tot = 999_999;
            ns.ids.in_use = 77;
            ns.extents_len = 0;
        }
        done.send(1);
        sleep_forever()
    });
    done.close_write();
    assert_eq!(done.recv(), Some(1));
    kill_and_reap(pid);

    let ds = stat(&region, kept).unwrap();
    assert_eq!(recoveries(&region), before + 1);
    assert_eq!(ds.nattch, 1, "nattch not recomputed from the attachment lists");
    assert_eq!(stat(&region, doomed).err(), Some(libc::EINVAL), "unattached removed segment kept");
    assert_eq!(shm_info(&region), (1, 2), "used_ids / shm_tot not rebuilt");

    // Free space was rebuilt around the surviving segment: a new one fits and does not overlap.
    let fresh = shm::shmget(&region, IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
    {
        let _guard = region.lock().unwrap();
        // SAFETY: lock held; both ids name live segments, so their slots hold no torn data.
        let (a, b) = unsafe { (&*slot(&region, kept), &*slot(&region, fresh)) };
        let (a, b) = ((a.data_off, a.data_off + a.data_len), (b.data_off, b.data_off + b.data_len));
        assert!(a.1 <= b.0 || b.1 <= a.0, "data ranges overlap: {a:?} {b:?}");
    }

    kill_and_reap(attacher);
    assert_eq!(stat(&region, kept).unwrap().nattch, 0);
}
