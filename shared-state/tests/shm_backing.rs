//! Segments the region has no room for live in a private kernel segment (`shm_backing`). One
//! larger than the region's 64 GiB data area is such a segment wherever the region is (with
//! SHM_NORESERVE, for which the kernel reserves no memory, as it would not for its own).

mod common;

use common::{Pipe, TempDir, fork, kill_and_reap, sleep_forever, wait_exit};
use shared_state::Region;
use shared_state::ipc::{IPC_CREAT, IPC_PRIVATE, id_to_idx};
use shared_state::region::SHM_SLOTS_OFF;
use shared_state::shm::{self, SHM_NORESERVE, SHM_RDONLY, SHM_REMAP, Shmid64Ds, ShmidKernel};
use shared_state::shm_backing;

/// Past the region's data area.
const BIG: usize = 65 << 30;
const SHM_DEST: u32 = 0o1000;
const SHM_LOCKED: u32 = 0o2000;

fn stat(region: &Region, id: i32) -> Result<Shmid64Ds, i32> {
    let mut ds = Shmid64Ds::default();
    shm::shmctl(region, id, shm::IPC_STAT, &mut ds as *mut _ as usize).map(|_| ds)
}

/// The kernel segment behind shim segment `id`.
fn kernel_id(region: &Region, id: i32) -> i32 {
    let _g = region.lock().unwrap();
    let off = SHM_SLOTS_OFF + id_to_idx(id) as u64 * size_of::<ShmidKernel>() as u64;
    // SAFETY: a slot of the table, read under the region lock.
    let seg = unsafe { &*((region.base() + off as usize) as *const ShmidKernel) };
    assert_eq!(seg.kernel, 1, "segment {id} is not a kernel segment");
    seg.kshmid
}

/// The kernel's IPC_STAT of its segment `kid`.
fn kernel_stat(kid: i32) -> Result<libc::shmid_ds, i32> {
    // SAFETY: an all-zero shmid_ds is valid; the kernel fills it.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer.
    match unsafe { libc::shmctl(kid, libc::IPC_STAT, &mut ds) } {
        0 => Ok(ds),
        _ => Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)),
    }
}

/// A child that attaches `id` (with `flg`), runs `f` on the address, and exits with its result.
fn in_child(region: &Region, id: i32, flg: i32, f: impl FnOnce(usize) -> i32) -> i32 {
    wait_exit(fork(|| {
        shared_state::proc::identify_self();
        match shm::shmat(region, id, 0, flg) {
            Ok(addr) => f(addr),
            Err(e) => 200 + e,
        }
    }))
}

#[test]
fn a_segment_beyond_the_data_area_is_a_kernel_segment_with_the_shims_permissions() {
    let dir = TempDir::new("kbig");
    let region = dir.region("ns");
    let id = shm::shmget(&region, 0x6b01, BIG, IPC_CREAT | SHM_NORESERVE | 0o640).unwrap();
    let kid = kernel_id(&region, id);
    let k = kernel_stat(kid).unwrap();
    assert_eq!((k.shm_segsz, k.shm_perm.mode as u32 & 0o7777, k.shm_perm.__key), (BIG, 0o640, 0));
    assert_eq!(stat(&region, id).unwrap().segsz, BIG as u64);
    // IPC_SET and SHM_LOCK reach the kernel segment.
    let mut ds = stat(&region, id).unwrap();
    ds.perm.mode = 0o604;
    assert_eq!(shm::shmctl(&region, id, shm::IPC_SET, &mut ds as *mut _ as usize), Ok(0));
    assert_eq!(kernel_stat(kid).unwrap().shm_perm.mode as u32 & 0o777, 0o604);
    assert_eq!(shm::shmctl(&region, id, shm::SHM_LOCK, 0), Ok(0));
    assert_ne!(kernel_stat(kid).unwrap().shm_perm.mode as u32 & SHM_LOCKED, 0);
    assert_eq!(shm::shmctl(&region, id, shm::SHM_UNLOCK, 0), Ok(0));
    assert_eq!(kernel_stat(kid).unwrap().shm_perm.mode as u32 & SHM_LOCKED, 0);
    // One process writes a page near the start and one past 64 GiB; another reads them.
    let far = (64 << 30) + 8192;
    let wrote = in_child(&region, id, 0, |a| {
        // SAFETY: both offsets lie inside the BIG-byte read-write attachment at `a`.
        unsafe {
            *(a as *mut u64) = 0x5eed;
            *((a + far) as *mut u64) = 0xfa2;
        }
        (kernel_stat(kid).unwrap().shm_nattch != 1) as i32
    });
    assert_eq!(wrote, 0);
    // The kernel dropped the dead child's attachment; the shim's view counts what it wrote.
    assert_eq!(kernel_stat(kid).unwrap().shm_nattch, 0);
    let mut rss = 0;
    shm::each_stat(&region, |i, _, r| rss = if i == id { r } else { rss }).unwrap();
    assert_eq!(rss, 8192, "two pages resident");
    let read = in_child(&region, id, SHM_RDONLY, |a| {
        // SAFETY: inside the read-only attachment.
        let seen = unsafe { (*(a as *const u64), *((a + far) as *const u64)) };
        // A SHM_RDONLY attachment cannot be made writable, as the kernel's.
        // SAFETY: mprotect of our own attachment.
        let rc = unsafe { libc::mprotect(a as *mut _, 4096, libc::PROT_READ | libc::PROT_WRITE) };
        let eacces = std::io::Error::last_os_error().raw_os_error() == Some(libc::EACCES);
        (seen != (0x5eed, 0xfa2)) as i32 | ((rc == 0 || !eacces) as i32 * 2)
    });
    assert_eq!(read, 0);
    // SHM_REMAP over a mapping of the process's own; without it, EINVAL.
    let remapped = in_child(&region, id, 0, |a| {
        let fixed = shm::shmat(&region, id, a, 0);
        let over = shm::shmat(&region, id, a, SHM_REMAP);
        // SAFETY: the remapped attachment.
        let seen = over.map(|b| unsafe { *(b as *const u64) });
        (fixed != Err(libc::EINVAL)) as i32 | ((seen != Ok(0x5eed)) as i32 * 2)
    });
    assert_eq!(remapped, 0);
    assert_eq!(stat(&region, id).unwrap().nattch, 0);
    assert_eq!(shm::shmctl(&region, id, shm::IPC_RMID, 0), Ok(0));
    assert_eq!(kernel_stat(kid).err(), Some(libc::EINVAL), "the kernel segment outlived its segment");
}

#[test]
fn removed_while_attached_the_kernel_frees_it_at_the_death_of_the_last_attacher() {
    let dir = TempDir::new("kdest");
    let region = dir.region("ns");
    let id = shm::shmget(&region, IPC_PRIVATE, BIG, IPC_CREAT | SHM_NORESERVE | 0o600).unwrap();
    let kid = kernel_id(&region, id);
    let mut attached = Pipe::new();
    let pid = fork(|| {
        shared_state::proc::identify_self();
        if shm::shmat(&region, id, 0, 0).is_err() {
            return 2;
        }
        attached.send(1);
        sleep_forever()
    });
    attached.close_write();
    assert_eq!(attached.recv(), Some(1), "child could not attach");
    assert_eq!(shm::shmctl(&region, id, shm::IPC_RMID, 0), Ok(0));
    let k = kernel_stat(kid).unwrap();
    assert_eq!((k.shm_nattch, k.shm_perm.mode as u32 & SHM_DEST), (1, SHM_DEST));
    // Killed, and reaped by the test, not by the shim: the kernel alone frees the memory.
    kill_and_reap(pid);
    assert_eq!(kernel_stat(kid).err(), Some(libc::EINVAL));
    assert_eq!(stat(&region, id).err(), Some(libc::EINVAL));
}

/// A lock holder killed with a kernel segment in doubt: made but its id not recorded, or
/// recorded but owned by no segment. The next lock holder removes both; it keeps one a live
/// segment owns.
#[test]
fn kernel_segments_in_doubt_when_the_lock_holder_dies_are_removed() {
    let dir = TempDir::new("korphan");
    let region = dir.region("ns");
    let kept = shm::shmget(&region, IPC_PRIVATE, BIG, IPC_CREAT | SHM_NORESERVE | 0o600).unwrap();
    let kept_kid = kernel_id(&region, kept);
    let size = 12345 * 4096;
    let mut made = Pipe::new();
    let pid = fork(|| {
        let Ok(_guard) = region.lock() else { return 2 };
        // SAFETY: the region lock is held.
        let orphans = unsafe { &mut region.header_mut().shm.orphans };
        let kns = shm_backing::kernel_ns();
        for (size, recorded) in [(size, false), (size + 4096, true)] {
            let Some(job) = shm_backing::note(orphans, -1, size as u64, kns) else { return 3 };
            let Ok(kid) = shm_backing::create(size as u64, 0o600) else { return 4 };
            if recorded {
                orphans[job].id = kid;
            }
        }
        // One naming the live segment's.
        if shm_backing::note(orphans, kept_kid, 0, kns).is_none() {
            return 5;
        }
        made.send(1);
        sleep_forever()
    });
    made.close_write();
    assert_eq!(made.recv(), Some(1), "the holder did not make its segments");
    kill_and_reap(pid);
    drop(region.lock().unwrap());
    // SAFETY: no other process uses the region any more.
    let left = unsafe { region.header_mut().shm.orphans.iter().filter(|o| o.used != 0).count() };
    assert_eq!(left, 0, "entries left unsettled");
    let mut doubtful = 0;
    shm_backing::each_line(b"/proc/sysvipc/shm\0", |l| {
        let f: Vec<&[u8]> = l.split(|&b| b == b' ').filter(|f| !f.is_empty()).collect();
        let ours = [size, size + 4096].iter().any(|s| f.get(3) == Some(&s.to_string().as_bytes()));
        doubtful += (ours && f.get(4) == Some(&pid.to_string().as_bytes())) as usize;
    });
    assert_eq!(doubtful, 0, "a kernel segment of the dead holder is left");
    assert_eq!(kernel_stat(kept_kid).unwrap().shm_segsz, BIG, "the live segment's was removed");
    assert_eq!(shm::shmctl(&region, kept, shm::IPC_RMID, 0), Ok(0));
    assert_eq!(kernel_stat(kept_kid).err(), Some(libc::EINVAL));
}
