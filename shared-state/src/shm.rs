//! System V shared memory, after `ipc/shm.c`: `shmid_kernel`, newseg, do_shmat, shmdt,
//! shmctl, and what fork, exec and exit do to attachments.
//!
//! A segment's memory is a range of the region's data area. `shmat` maps a second view of that
//! range with `mremap(old_size = 0)`, which needs no file descriptor: a process that has since
//! changed user, or closed every fd, can still attach. A segment the region has no room for
//! lives in a private segment of the kernel's instead (`shm_backing`). Each attachment is recorded in the
//! attaching process's record, so `shm_nattch` is exact and a dead process's attachments are
//! dropped when it is reaped.

use crate::backing;
use crate::ipc::{self, Cred, Ipc64Perm, IpcFamily, IpcIds, KernIpcPerm, S_IRUGO, S_IWUGO, S_IXUGO};
use crate::proc::{self, ProcRecord};
use crate::region::{
    IPCMNI, MAX_EXTENTS, MAX_PROCS, PAGE_SIZE, Region, SHM_DATA_OFF, SHM_DATA_SIZE, SHM_EXTENTS_OFF,
    SHM_SLOTS_OFF,
};
use crate::shm_backing::{self as kshm, ORPHANS, Orphan};
use crate::sys::{self, Errno};
use core::sync::atomic::Ordering;
use libc::{EACCES, EINVAL, ENOMEM, ENOSPC, EPERM};

pub const SHM_RDONLY: i32 = 0o10000;
pub const SHM_RND: i32 = 0o20000;
pub const SHM_REMAP: i32 = 0o40000;
pub const SHM_EXEC: i32 = 0o100000;
pub const SHM_HUGETLB: i32 = 0o4000;
pub const SHM_NORESERVE: i32 = 0o10000;
const SHM_HUGE_SHIFT: u32 = 26;
const SHM_HUGE_MASK: u32 = 0x3f;
pub const SHM_DEST: u32 = 0o1000;
pub const SHM_LOCKED: u32 = 0o2000;
pub const SHMLBA: usize = PAGE_SIZE as usize;
pub const SHMMIN: u64 = 1;

pub const IPC_RMID: i32 = 0;
pub const IPC_SET: i32 = 1;
pub const IPC_STAT: i32 = 2;
pub const IPC_INFO: i32 = 3;
pub const SHM_LOCK: i32 = 11;
pub const SHM_UNLOCK: i32 = 12;
pub const SHM_STAT: i32 = 13;
pub const SHM_INFO: i32 = 14;
pub const SHM_STAT_ANY: i32 = 15;

/// Bounds every list walk, so a corrupted region cannot loop us forever.
const MAX_WALK: usize = 1 << 20;

/// The per-namespace part of the shm state (in the region header).
#[repr(C)]
pub struct ShmNs {
    pub ids: IpcIds,
    /// Pages in all segments (`ns->shm_tot`).
    pub shm_tot: u64,
    pub extents_len: u32,
    /// Kernel segments that may have no shim segment owning them (see `shm_backing`).
    pub orphans: [Orphan; ORPHANS],
}

impl ShmNs {
    pub fn init(&mut self) {
        self.ids.init();
        self.shm_tot = 0;
        self.extents_len = 0;
        self.orphans = [Orphan::default(); ORPHANS];
    }
}

/// A free range of the data area, in bytes. Derived state: rebuilt from the segments after a
/// crash.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Extent {
    pub off: u64,
    pub len: u64,
}

/// `struct shmid_kernel`.
#[repr(C)]
pub struct ShmidKernel {
    pub live: u32,
    pub perm: KernIpcPerm,
    pub segsz: u64,
    pub atime: i64,
    pub dtime: i64,
    pub ctime: i64,
    pub cpid: i32,
    pub lpid: i32,
    /// Derived from the attachment lists; recomputed after a crash.
    pub nattch: u64,
    pub data_off: u64,
    pub data_len: u64,
    /// Process slot + 1 of the creator while it lives (the kernel's `shm_creator`), else 0.
    pub creator: u32,
    /// 1: the pages are kernel segment `kshmid` of kernel IPC namespace `kns`, not the region's.
    pub kernel: u32,
    pub kshmid: i32,
    /// 1: that kernel segment was removed already (the kernel frees it at its last detach).
    pub krmid: u32,
    pub kns: u64,
}

/// Where a new segment's pages are.
enum Storage {
    /// At this offset of the data area.
    Region(u64),
    /// In kernel segment `id` of namespace `kns`, whose orphan entry `job` is cleared once the
    /// shim segment owns it.
    Kernel { id: i32, kns: u64, job: usize },
}

/// One attachment of one process (a heap node in that process's list).
#[repr(C)]
struct ShmAttach {
    next: u64,
    idx: u32,
    id: i32,
    addr: u64,
    len: u64,
    /// 0 for a SHM_RDONLY attachment, whose vma the kernel does not make VM_SHARED.
    shared: u32,
}

/// `struct shmid64_ds` as x86_64 user space sees it.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Shmid64Ds {
    pub perm: Ipc64Perm,
    pub segsz: u64,
    pub atime: i64,
    pub dtime: i64,
    pub ctime: i64,
    pub cpid: i32,
    pub lpid: i32,
    pub nattch: u64,
    pub unused4: u64,
    pub unused5: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Shminfo64 {
    shmmax: u64,
    shmmin: u64,
    shmmni: u64,
    shmseg: u64,
    shmall: u64,
    unused: [u64; 4],
}

/// `struct shm_info` (SHM_INFO).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct ShmInfo {
    pub used_ids: i32,
    pub pad: i32,
    pub shm_tot: u64,
    pub shm_rss: u64,
    pub shm_swp: u64,
    pub swap_attempts: u64,
    pub swap_successes: u64,
}

const _: () = assert!(size_of::<Shmid64Ds>() == 112 && size_of::<ShmInfo>() == 48);

const fn slot_off(idx: u32) -> u64 {
    SHM_SLOTS_OFF + idx as u64 * size_of::<ShmidKernel>() as u64
}

fn pages(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE_SIZE)
}

/// The shm table of one region, valid while the region lock is held.
struct Shm<'a> {
    region: &'a Region,
}

impl<'a> Shm<'a> {
    fn ns(&self) -> &'a mut ShmNs {
        // SAFETY: the lock is held for the lifetime of `Shm` (see constructors).
        unsafe { &mut self.region.header_mut().shm }
    }

    fn slot(&self, idx: u32) -> &'a mut ShmidKernel {
        debug_assert!(idx < IPCMNI);
        // SAFETY: idx < IPCMNI; the slot array lies at SHM_SLOTS_OFF; lock held.
        unsafe { self.region.at::<ShmidKernel>(slot_off(idx)) }
    }

    /// Whether slot `idx` was ever used (one that was not holds no segment, and is not read).
    fn backed(&self, idx: u32) -> bool {
        self.region.reserved(slot_off(idx), size_of::<ShmidKernel>() as u64)
    }

    fn extents(&self) -> &'a mut [Extent] {
        // SAFETY: the extent array lies at SHM_EXTENTS_OFF with MAX_EXTENTS entries; lock held.
        unsafe {
            core::slice::from_raw_parts_mut(
                (self.region.base() + SHM_EXTENTS_OFF as usize) as *mut Extent,
                MAX_EXTENTS as usize,
            )
        }
    }

    fn used(&self, idx: u32) -> bool {
        self.backed(idx) && self.slot(idx).live != 0
    }

    fn data_addr(&self, seg: &ShmidKernel) -> usize {
        self.region.base() + (SHM_DATA_OFF + seg.data_off) as usize
    }

    /// First-fit allocation of `len` bytes of the data area.
    fn alloc_data(&self, len: u64) -> Option<u64> {
        let ns = self.ns();
        let ext = self.extents();
        let n = (ns.extents_len as usize).min(ext.len());
        let i = (0..n).find(|&i| ext[i].len >= len)?;
        let off = ext[i].off;
        if ext[i].len == len {
            ext.copy_within(i + 1..n, i);
            ns.extents_len = n as u32 - 1;
        } else {
            ext[i].off += len;
            ext[i].len -= len;
        }
        Some(off)
    }

    fn free_data(&self, off: u64, len: u64) {
        let ns = self.ns();
        let ext = self.extents();
        let n = (ns.extents_len as usize).min(ext.len());
        let i = (0..n).find(|&i| ext[i].off > off).unwrap_or(n);
        let merge_prev = i > 0 && ext[i - 1].off + ext[i - 1].len == off;
        let merge_next = i < n && off + len == ext[i].off;
        match (merge_prev, merge_next) {
            (true, true) => {
                ext[i - 1].len += len + ext[i].len;
                ext.copy_within(i + 1..n, i);
                ns.extents_len = n as u32 - 1;
            }
            (true, false) => ext[i - 1].len += len,
            (false, true) => {
                ext[i].off = off;
                ext[i].len += len;
            }
            (false, false)
                if n < ext.len()
                    && self
                        .region
                        .reserve(
                            SHM_EXTENTS_OFF + n as u64 * size_of::<Extent>() as u64,
                            size_of::<Extent>() as u64,
                        )
                        .is_ok() =>
            {
                ext.copy_within(i..n, i + 1);
                ext[i] = Extent { off, len };
                ns.extents_len = n as u32 + 1;
            }
            // Cannot happen (see MAX_EXTENTS), or no room for the entry: the range is leaked.
            (false, false) => {}
        }
    }

    /// Gives a range's memory back to the system; the range reads as zeros afterwards.
    fn discard(&self, off: u64, len: u64) {
        let _ =
            sys::madvise(self.region.base() + (SHM_DATA_OFF + off) as usize, len as usize, libc::MADV_REMOVE);
    }

    /// `shm_destroy`.
    fn destroy(&self, idx: u32) {
        let seg = self.slot(idx);
        let ns = self.ns();
        ns.shm_tot = ns.shm_tot.saturating_sub(pages(seg.segsz));
        if seg.kernel == 0 {
            self.discard(seg.data_off, seg.data_len);
            self.free_data(seg.data_off, seg.data_len);
            seg.live = 0;
            ns.ids.remove(idx, |i| self.used(i));
            return;
        }
        // The kernel segment goes too, unless its IPC_RMID was done (it goes at its last detach).
        // Noted before the shim segment stops owning it, so a death in between leaks nothing.
        let remove = seg.krmid == 0;
        let noted = remove && kshm::note(&mut ns.orphans, seg.kshmid, seg.segsz, seg.kns).is_some();
        seg.live = 0;
        ns.ids.remove(idx, |i| self.used(i));
        if noted {
            self.settle_orphans();
        } else if remove {
            // No entry free (every one awaits another namespace or user): removed unrecorded.
            let _ = kshm::remove(seg.kshmid);
        }
    }

    /// Whether a live segment's pages are kernel segment `id` of namespace `kns`.
    fn owns_kernel(&self, id: i32, kns: u64) -> bool {
        (0..=self.max_idx()).any(|i| {
            let seg = self.slot(i as u32);
            seg.live != 0 && seg.kernel != 0 && seg.kshmid == id && seg.kns == kns
        })
    }

    /// Removes the kernel segments no shim segment owns (see `shm_backing`).
    fn settle_orphans(&self) {
        kshm::settle(&mut self.ns().orphans, |id, kns| self.owns_kernel(id, kns));
    }

    /// A new segment's pages: reserved in the region, or else a kernel segment, whose memory is
    /// not bounded by the region's file system. The kernel's errno when neither can be had.
    fn storage(&self, size: u64, len: u64, flg: i32) -> Result<Storage, Errno> {
        if let Some(off) = self.alloc_data(len) {
            if backing::reserve_segment(self.region, SHM_DATA_OFF + off, len).is_ok() {
                return Ok(Storage::Region(off));
            }
            self.discard(off, len);
            self.free_data(off, len);
        }
        self.settle_orphans();
        let kns = kshm::kernel_ns();
        let job = kshm::note(&mut self.ns().orphans, -1, size, kns).ok_or(ENOMEM)?;
        match kshm::create(size, flg) {
            Ok(id) => {
                self.ns().orphans[job].id = id;
                Ok(Storage::Kernel { id, kns, job })
            }
            Err(e) => {
                self.ns().orphans[job].used = 0;
                // Out of the kernel's shmall or shmmni is its ENOSPC; anything else (no memory,
                // or System V calls denied to this process) is an allocation that failed.
                Err(if e == ENOSPC { ENOSPC } else { ENOMEM })
            }
        }
    }

    /// `shm_may_destroy` after a detach.
    fn maybe_destroy(&self, idx: u32) {
        let seg = self.slot(idx);
        if seg.nattch == 0 && (seg.perm.mode & SHM_DEST != 0 || self.limits().shm_rmid_forced != 0) {
            self.destroy(idx);
        }
    }

    /// `shm_close`: one attachment of `idx` went away, by `pid`.
    fn close(&self, idx: u32, id: i32, pid: i32) {
        if idx >= IPCMNI {
            return;
        }
        let seg = self.slot(idx);
        if seg.live == 0 || seg.perm.id != id {
            return;
        }
        seg.nattch = seg.nattch.saturating_sub(1);
        seg.dtime = sys::coarse_seconds();
        seg.lpid = pid;
        self.maybe_destroy(idx);
    }

    fn attach_node(&self, off: u64) -> Option<&'a mut ShmAttach> {
        if !(crate::region::HEAP_OFF..crate::region::HEAP_END).contains(&off) || !off.is_multiple_of(8) {
            return None;
        }
        // SAFETY: bounds-checked heap offset; lock held.
        Some(unsafe { self.region.at::<ShmAttach>(off) })
    }

    fn record(&self, slot: u32) -> &'a mut ProcRecord {
        // SAFETY: lock held; callers pass slots < MAX_PROCS.
        unsafe { proc::record(self.region, slot) }
    }

    fn heap(&self) -> &'a mut crate::alloc::Heap {
        // SAFETY: lock held.
        unsafe { &mut self.region.header_mut().heap }
    }

    /// Adds an attachment to `slot`'s list and counts it (`shm_open`).
    fn add_attach(
        &self,
        slot: u32,
        idx: u32,
        addr: u64,
        len: u64,
        shared: bool,
        pid: i32,
    ) -> Result<(), Errno> {
        let seg = self.slot(idx);
        // SAFETY: lock held.
        let off = unsafe { self.heap().alloc(self.region, size_of::<ShmAttach>() as u64) }.ok_or(ENOMEM)?;
        let node = self.attach_node(off).ok_or(ENOMEM)?;
        let rec = self.record(slot);
        *node = ShmAttach { next: rec.shm_attach, idx, id: seg.perm.id, addr, len, shared: shared as u32 };
        rec.shm_attach = off;
        seg.nattch += 1;
        seg.atime = sys::coarse_seconds();
        seg.lpid = pid;
        Ok(())
    }

    /// Unlinks the first attachment of `slot` matching `pred`; returns (idx, id, addr, len).
    fn take_attach(&self, slot: u32, pred: impl Fn(&ShmAttach) -> bool) -> Option<(u32, i32, u64, u64)> {
        let rec = self.record(slot);
        let mut prev: Option<&mut ShmAttach> = None;
        let mut cur = rec.shm_attach;
        for _ in 0..MAX_WALK {
            let node = self.attach_node(cur)?;
            if pred(node) {
                let found = (node.idx, node.id, node.addr, node.len);
                match prev {
                    Some(p) => p.next = node.next,
                    None => rec.shm_attach = node.next,
                }
                // SAFETY: lock held; the node is unlinked.
                unsafe { self.heap().free(self.region, cur) };
                return Some(found);
            }
            cur = node.next;
            prev = Some(node);
        }
        None
    }

    fn for_each_attach(&self, slot: u32, mut f: impl FnMut(&ShmAttach)) {
        let mut cur = self.record(slot).shm_attach;
        for _ in 0..MAX_WALK {
            let Some(node) = self.attach_node(cur) else { return };
            f(node);
            cur = node.next;
        }
    }

    fn limits(&self) -> crate::region::Limits {
        self.region.header().limits
    }

    /// Resident pages of a segment (the kernel's `nrpages` of its shmem file).
    fn rss_pages(&self, seg: &ShmidKernel) -> u64 {
        match seg.kernel {
            0 => backing::written_pages(self.region, SHM_DATA_OFF + seg.data_off, seg.data_len),
            _ if kshm::in_ns(seg.kns) => kshm::rss_pages(seg.kshmid),
            _ => 0,
        }
    }
}

impl IpcFamily for Shm<'_> {
    type Params = u64;

    fn perm(&self, idx: u32) -> Option<&KernIpcPerm> {
        self.used(idx).then(|| &self.slot(idx).perm)
    }

    fn max_idx(&self) -> i32 {
        self.ns().ids.max_idx.min(IPCMNI as i32 - 1)
    }

    /// `newseg`.
    fn getnew(&mut self, cred: &Cred, key: i32, flg: i32, size: &u64) -> Result<i32, Errno> {
        let size = *size;
        let limits = self.limits();
        // Beyond shmmax, and beyond what a shmem file can hold (MAX_LFS_FILESIZE).
        if size < SHMMIN || size > limits.shmmax || size > i64::MAX as u64 {
            return Err(EINVAL);
        }
        let numpages = pages(size);
        let ns = self.ns();
        match ns.shm_tot.checked_add(numpages) {
            Some(t) if t <= limits.shmall => {}
            _ => return Err(ENOSPC),
        }
        if flg & SHM_HUGETLB != 0 {
            hugetlb_check(flg, cred)?;
        }
        if ns.ids.in_use >= limits.shmmni.min(IPCMNI) {
            return Err(ENOSPC);
        }
        let len = numpages * PAGE_SIZE;
        // The creator needs a record so that its exit is noticed (shm_rmid_forced).
        // SAFETY: the lock is held while `self` exists.
        let creator = unsafe { proc::current_record(self.region) }.ok_or(ENOMEM)?;
        // The slots the id allocation may pick, and the segment's memory, are reserved before
        // anything is promised: a full file system is ENOMEM here, as a kernel out of memory.
        let window = ns.ids.window() as u64 * size_of::<ShmidKernel>() as u64;
        self.region.reserve(SHM_SLOTS_OFF, window).map_err(|_| ENOMEM)?;
        let storage = self.storage(size, len, flg)?;
        let (idx, seq) = match ns.ids.alloc(limits.shmmni, |i| self.used(i)) {
            Ok(v) => v,
            Err(e) => {
                match storage {
                    Storage::Region(off) => {
                        self.discard(off, len);
                        self.free_data(off, len);
                    }
                    // Its entry names it, and nothing owns it.
                    Storage::Kernel { .. } => self.settle_orphans(),
                }
                return Err(e);
            }
        };
        let (data_off, kernel, kshmid, kns) = match storage {
            Storage::Region(off) => (off, 0, 0, 0),
            Storage::Kernel { id, kns, .. } => (0, 1, id, kns),
        };
        let id = ipc::build_id(seq, idx);
        let seg = self.slot(idx);
        *seg = ShmidKernel {
            live: 0,
            perm: KernIpcPerm::new(cred, key, flg, seq, id),
            segsz: size,
            atime: 0,
            dtime: 0,
            ctime: sys::coarse_seconds(),
            cpid: proc::self_pid(),
            lpid: 0,
            nattch: 0,
            data_off,
            data_len: len,
            creator: creator + 1,
            kernel,
            kshmid,
            krmid: 0,
            kns,
        };
        ns.shm_tot += numpages;
        self.record(creator).shm_made = 1;
        seg.live = 1;
        if let Storage::Kernel { job, .. } = storage {
            ns.orphans[job].used = 0;
            self.region.header().counters.shm_backed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(id)
    }

    fn more_checks(&self, idx: u32, size: &u64) -> Result<(), Errno> {
        if self.slot(idx).segsz < *size { Err(EINVAL) } else { Ok(()) }
    }
}

/// ipcshim provides no huge pages. Like the kernel with none reserved: an unknown huge page
/// size is EINVAL, a caller who may not use huge pages gets EPERM (`hugetlb_file_setup` asks
/// before it reserves), a reservation fails with ENOMEM, and SHM_NORESERVE (no reservation)
/// gets a segment, here of ordinary pages.
fn hugetlb_check(flg: i32, cred: &Cred) -> Result<(), Errno> {
    let log = (flg as u32 >> SHM_HUGE_SHIFT) & SHM_HUGE_MASK;
    let size_known = match log {
        0 => true,
        // Built on the stack: this may run in the catch-all's SIGSYS handler (no allocation).
        l => {
            const DIR: &[u8] = b"/sys/kernel/mm/hugepages/hugepages-";
            let mut path = [0u8; DIR.len() + 24];
            path[..DIR.len()].copy_from_slice(DIR);
            let mut digits = [0u8; 20];
            let n = crate::pipe_gc::itoa64((1u64 << l) >> 10, &mut digits);
            path[DIR.len()..DIR.len() + n].copy_from_slice(&digits[..n]);
            path[DIR.len() + n..DIR.len() + n + 3].copy_from_slice(b"kB\0");
            sys::fstatat(libc::AT_FDCWD, &path[..DIR.len() + n + 3]).is_ok()
        }
    };
    if !size_known {
        Err(EINVAL)
    } else if !can_do_hugetlb_shm(cred) {
        Err(EPERM)
    } else if flg & SHM_NORESERVE == 0 {
        Err(ENOMEM)
    } else {
        Ok(())
    }
}

/// `can_do_hugetlb_shm`: CAP_IPC_LOCK, or membership of `vm.hugetlb_shm_group` (a global
/// sysctl, 0 when unreadable).
fn can_do_hugetlb_shm(cred: &Cred) -> bool {
    if cred.capable(ipc::CAP_IPC_LOCK) {
        return true;
    }
    let mut buf = [0u8; 16];
    let group = sys::open(b"/proc/sys/vm/hugetlb_shm_group\0", libc::O_RDONLY | libc::O_CLOEXEC, 0)
        .map(|fd| {
            let n = sys::read(fd, &mut buf).unwrap_or(0);
            sys::close(fd);
            buf[..n].iter().take_while(|b| b.is_ascii_digit()).fold(0u32, |v, &b| v * 10 + (b - b'0') as u32)
        })
        .unwrap_or(0);
    cred.in_group_p(group)
}

/// Runs a served call under the region lock (counted in `shm_calls`).
fn locked<T>(region: &Region, f: impl FnOnce(&mut Shm) -> Result<T, Errno>) -> Result<T, Errno> {
    region.header().counters.shm_calls.fetch_add(1, Ordering::Relaxed);
    locked_uncounted(region, f)
}

/// For views (`ipcs`, `/proc/sysvipc/shm`, status), which are not calls.
fn locked_uncounted<T>(region: &Region, f: impl FnOnce(&mut Shm) -> Result<T, Errno>) -> Result<T, Errno> {
    let _guard = region.lock().map_err(|_| ENOMEM)?;
    f(&mut Shm { region })
}

/// `shmget(2)`.
pub fn shmget(region: &Region, key: i32, size: usize, flg: i32) -> Result<i32, Errno> {
    let cred = Cred::current();
    if flg & ipc::IPC_CREAT != 0 {
        // The creator needs a record (see `newseg`).
        proc::self_start();
    }
    locked(region, |shm| {
        if flg & ipc::IPC_CREAT != 0 {
            // SAFETY: lock held. Dead attachers may still hold removed segments.
            unsafe { proc::reap(region) };
        }
        shm.ipcget(&cred, key, flg, &(size as u64))
    })
}

fn overlaps(a: usize, alen: usize, b: usize, blen: usize) -> bool {
    a < b.saturating_add(blen) && b < a.saturating_add(alen)
}

/// `do_shmat`: returns the attach address.
pub fn shmat(region: &Region, shmid: i32, shmaddr: usize, shmflg: i32) -> Result<usize, Errno> {
    if shmid < 0 {
        return Err(EINVAL);
    }
    let mut addr = shmaddr;
    if addr != 0 {
        if addr & (SHMLBA - 1) != 0 {
            if shmflg & SHM_RND != 0 {
                addr &= !(SHMLBA - 1);
                if addr == 0 && shmflg & SHM_REMAP != 0 {
                    return Err(EINVAL);
                }
            } else {
                return Err(EINVAL);
            }
        }
    } else if shmflg & SHM_REMAP != 0 {
        return Err(EINVAL);
    }
    let (mut prot, mut acc) = if shmflg & SHM_RDONLY != 0 {
        (libc::PROT_READ, S_IRUGO)
    } else {
        (libc::PROT_READ | libc::PROT_WRITE, S_IRUGO | S_IWUGO)
    };
    if shmflg & SHM_EXEC != 0 {
        prot |= libc::PROT_EXEC;
        acc |= S_IXUGO;
    }
    let cred = Cred::current();
    let pid = proc::self_pid();
    proc::self_start();
    locked(region, |shm| {
        let idx = shm.obtain_check(shmid)?;
        let seg = shm.slot(idx);
        if !seg.perm.ipcperms(&cred, acc) {
            return Err(EACCES);
        }
        let len = seg.data_len as usize;
        if addr != 0 && overlaps(addr, len, region.base(), crate::region::TOTAL_SIZE as usize) {
            return Err(EINVAL); // never let a segment view replace the region itself
        }
        if addr.checked_add(len).is_none() {
            return Err(EINVAL);
        }
        // SAFETY: lock held.
        let slot = unsafe { proc::current_record(region) }.ok_or(ENOMEM)?;
        let mapped = if seg.kernel != 0 {
            // The kernel's own attachment of the kernel segment, whose permissions are the
            // shim segment's; its id means nothing in another kernel IPC namespace.
            kshm::reachable(seg.kns)?;
            kshm::attach(seg.kshmid, addr, shmflg & (SHM_RDONLY | SHM_REMAP | SHM_EXEC))?
        } else {
            let src = if shmflg & SHM_RDONLY != 0 {
                region.ro_data() + seg.data_off as usize
            } else {
                shm.data_addr(seg)
            };
            let mapped = if addr == 0 {
                sys::mremap(src, 0, len, libc::MREMAP_MAYMOVE, 0)?
            } else if shmflg & SHM_REMAP != 0 {
                sys::mremap(src, 0, len, libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED, addr)?
            } else {
                let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE;
                match sys::mmap(addr, len, libc::PROT_NONE, flags, -1, 0) {
                    Ok(_) => {}
                    Err(libc::EEXIST) => return Err(EINVAL),
                    Err(e) => return Err(e),
                }
                match sys::mremap(src, 0, len, libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED, addr) {
                    Ok(at) => at,
                    Err(e) => {
                        let _ = sys::munmap(addr, len);
                        return Err(e);
                    }
                }
            };
            if prot & libc::PROT_EXEC != 0 {
                let _ = sys::mprotect(mapped, len, prot);
            }
            mapped
        };
        if addr != 0 && shmflg & SHM_REMAP != 0 {
            // Attachments that the new mapping covered are gone, as their vmas are.
            while let Some((i, id, _, _)) = shm
                .take_attach(slot, |a| a.addr as usize >= mapped && (a.addr + a.len) as usize <= mapped + len)
            {
                shm.close(i, id, pid);
            }
        }
        if let Err(e) = shm.add_attach(slot, idx, mapped as u64, len as u64, shmflg & SHM_RDONLY == 0, pid) {
            let _ = sys::munmap(mapped, len);
            return Err(e);
        }
        Ok(mapped)
    })
}

/// `shmdt(2)`.
pub fn shmdt(region: &Region, shmaddr: usize) -> Result<(), Errno> {
    if shmaddr & (PAGE_SIZE as usize - 1) != 0 {
        return Err(EINVAL);
    }
    let pid = proc::self_pid();
    locked(region, |shm| {
        let slot = proc::self_slot(region);
        if slot >= MAX_PROCS {
            return Err(EINVAL);
        }
        let (idx, id, addr, len) = shm.take_attach(slot, |a| a.addr as usize == shmaddr).ok_or(EINVAL)?;
        let _ = sys::munmap(addr as usize, len as usize);
        shm.close(idx, id, pid);
        Ok(())
    })
}

/// `remap_file_pages(start, size, 0, pgoff, _)` whose `start` lies in one of this process's
/// attachments, with arguments the kernel's first checks passed (page-aligned, no wrap): the
/// kernel would map the region file there, so it is done here as `shm_mmap` would, with the
/// segment as the file. `None` when `start` is in no attachment (the kernel's call).
///
/// As the kernel: a SHM_RDONLY attachment (not VM_SHARED) or a range that leaves the
/// attachment (another vma, another file) is EINVAL;
/// the old pages go first (`shm_close`), so replacing the whole of the last attachment of a
/// removed segment destroys it and fails with EINVAL, the range left unmapped; otherwise the
/// segment's pages from `pgoff` take the range (pages past its end raise SIGBUS), with the
/// vma's protection, and the segment's atime, dtime and lpid are the caller's.
pub fn remap_file_pages(region: &Region, start: usize, size: usize, pgoff: u64) -> Option<Result<(), Errno>> {
    let slot = proc::self_slot(region);
    if slot >= MAX_PROCS {
        return None;
    }
    let pid = proc::self_pid();
    let res = locked(region, |shm| {
        let mut found = None;
        shm.for_each_attach(slot, |a| {
            if found.is_none() && (a.addr..a.addr + a.len).contains(&(start as u64)) {
                found = Some((a.idx, a.id, a.addr as usize, a.len as usize, a.shared != 0));
            }
        });
        let Some((idx, id, addr, len, shared)) = found else { return Ok(None) };
        if !shared || start + size > addr + len {
            return Ok(Some(Err(EINVAL)));
        }
        let prot = vma_prot(start).unwrap_or(libc::PROT_READ);
        let live = |shm: &Shm| shm.slot(idx).live != 0 && shm.slot(idx).perm.id == id;
        if !live(shm) {
            return Ok(Some(Err(EINVAL)));
        }
        let whole = start == addr && size == len;
        if whole {
            shm.take_attach(slot, |a| a.addr as usize == addr);
            shm.close(idx, id, pid);
            if !live(shm) {
                let _ = sys::munmap(start, size);
                return Ok(Some(Err(EINVAL)));
            }
        } else {
            let seg = shm.slot(idx);
            seg.dtime = sys::coarse_seconds();
            seg.lpid = pid;
        }
        let mapped = shm.map_pages(idx, start, size, pgoff, prot);
        // The kernel's remap that failed left the range unmapped.
        if whole && (mapped.is_ok() || shm.slot(idx).kernel == 0) {
            shm.add_attach(slot, idx, addr as u64, len as u64, true, pid)?;
        } else {
            shm.slot(idx).atime = sys::coarse_seconds();
        }
        Ok(Some(mapped))
    });
    res.unwrap_or_else(|e| Some(Err(e)))
}

impl Shm<'_> {
    /// Maps segment `idx`'s pages from `pgoff` over `[start, start + size)` with `prot` (from
    /// the writable view: the attachment is VM_SHARED, so it may be made writable again);
    /// pages past the segment's end come from an empty file, so touching them is SIGBUS as past
    /// the end of the kernel's shmem file.
    fn map_pages(&self, idx: u32, start: usize, size: usize, pgoff: u64, prot: i32) -> Result<(), Errno> {
        let seg = self.slot(idx);
        if seg.kernel != 0 {
            // The attachment is the kernel's: its own remap_file_pages maps its segment there.
            return sys::kernel_own(libc::SYS_remap_file_pages, start, size, 0, pgoff as usize, 0)
                .map(|_| ());
        }
        let page = PAGE_SIZE as usize;
        let inside =
            (seg.data_len / PAGE_SIZE).saturating_sub(pgoff).min((size / page) as u64) as usize * page;
        if inside > 0 {
            let src = self.data_addr(seg) + pgoff as usize * page;
            sys::mremap(src, 0, inside, libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED, start)?;
        }
        if inside < size {
            let fd = sys::syscall6(
                libc::SYS_memfd_create,
                c"ipcshim-shm".as_ptr() as usize,
                libc::MFD_CLOEXEC as usize,
                0,
                0,
                0,
                0,
            )? as i32;
            let r = sys::mmap(start + inside, size - inside, prot, libc::MAP_SHARED | libc::MAP_FIXED, fd, 0);
            sys::close(fd);
            r?;
        }
        if inside > 0 && prot != libc::PROT_READ | libc::PROT_WRITE {
            sys::mprotect(start, inside, prot)?;
        }
        Ok(())
    }
}

/// The protection of the mapping holding `addr`, from `/proc/self/maps` (read without
/// allocating: the range and permissions open each line).
fn vma_prot(addr: usize) -> Option<i32> {
    let mut found = None;
    kshm::each_line(b"/proc/self/maps\0", |line| {
        if found.is_none() {
            found = maps_line_prot(line, addr);
        }
    });
    found
}

/// The protection a `/proc/PID/maps` line gives, if its range holds `addr`.
fn maps_line_prot(line: &[u8], addr: usize) -> Option<i32> {
    let hex = |s: &[u8]| s.iter().try_fold(0usize, |v, &b| Some(v * 16 + (b as char).to_digit(16)? as usize));
    let mut fields = line.split(|&b| b == b' ');
    let (lo, hi) = {
        let range = fields.next()?;
        let dash = range.iter().position(|&b| b == b'-')?;
        (hex(&range[..dash])?, hex(&range[dash + 1..])?)
    };
    if !(lo..hi).contains(&addr) {
        return None;
    }
    let perms = fields.next()?;
    let bit = |i: usize, c: u8, p: i32| if perms.get(i) == Some(&c) { p } else { 0 };
    Some(bit(0, b'r', libc::PROT_READ) | bit(1, b'w', libc::PROT_WRITE) | bit(2, b'x', libc::PROT_EXEC))
}

fn to_user<T>(buf: usize, v: &T) -> Result<(), Errno> {
    sys::copy_to_user(buf, v as *const T as *const u8, size_of::<T>())
}

/// `shmctl(2)`; `buf` is the caller's pointer, copied through with EFAULT checks.
pub fn shmctl(region: &Region, shmid: i32, cmd: i32, buf: usize) -> Result<i32, Errno> {
    if cmd < 0 || shmid < 0 {
        return Err(EINVAL);
    }
    let cred = Cred::current();
    match cmd {
        IPC_INFO => {
            let (info, ret) = locked(region, |shm| {
                let l = shm.limits();
                let info = Shminfo64 {
                    shmmax: l.shmmax,
                    shmmin: SHMMIN,
                    shmmni: l.shmmni as u64,
                    shmseg: l.shmmni as u64,
                    shmall: l.shmall,
                    unused: [0; 4],
                };
                Ok((info, shm.ns().ids.get_maxidx().max(0)))
            })?;
            to_user(buf, &info)?;
            Ok(ret)
        }
        SHM_INFO => {
            let (info, ret) = locked(region, |shm| {
                // SAFETY: lock held.
                unsafe { proc::reap(region) };
                let ns = shm.ns();
                let mut info =
                    ShmInfo { used_ids: ns.ids.in_use as i32, shm_tot: ns.shm_tot, ..Default::default() };
                for idx in 0..=shm.max_idx().max(-1) {
                    let seg = shm.slot(idx as u32);
                    if seg.live != 0 {
                        info.shm_rss += shm.rss_pages(seg);
                    }
                }
                Ok((info, ns.ids.get_maxidx().max(0)))
            })?;
            to_user(buf, &info)?;
            Ok(ret)
        }
        IPC_STAT | SHM_STAT | SHM_STAT_ANY => {
            let (ds, ret) = locked(region, |shm| {
                // SAFETY: lock held.
                unsafe { proc::reap(region) };
                let idx = if cmd == IPC_STAT {
                    shm.obtain_check(shmid)?
                } else {
                    let idx = ipc::id_to_idx(shmid);
                    shm.perm(idx).ok_or(EINVAL)?;
                    idx
                };
                let seg = shm.slot(idx);
                if cmd != SHM_STAT_ANY && !seg.perm.ipcperms(&cred, S_IRUGO) {
                    return Err(EACCES);
                }
                Ok((stat_of(seg), if cmd == IPC_STAT { 0 } else { seg.perm.id }))
            })?;
            to_user(buf, &ds)?;
            Ok(ret)
        }
        IPC_SET | IPC_RMID => {
            let mut ds = Shmid64Ds::default();
            if cmd == IPC_SET {
                sys::copy_from_user(&mut ds as *mut Shmid64Ds as *mut u8, buf, size_of::<Shmid64Ds>())?;
            }
            locked(region, |shm| {
                // SAFETY: lock held.
                unsafe { proc::reap(region) };
                let idx = shm.obtain_check(shmid)?;
                let seg = shm.slot(idx);
                if !seg.perm.owner_or_admin(&cred) {
                    return Err(EPERM);
                }
                if cmd == IPC_RMID {
                    if seg.nattch > 0 {
                        seg.perm.mode |= SHM_DEST;
                        seg.perm.key = ipc::IPC_PRIVATE;
                        // The kernel segment goes at its last detach, even if every attacher is
                        // killed and never reaped; when this fails, the destroy removes it.
                        if seg.kernel != 0 && kshm::in_ns(seg.kns) && kshm::remove(seg.kshmid).is_ok() {
                            seg.krmid = 1;
                        }
                    } else {
                        shm.destroy(idx);
                    }
                } else {
                    let mut perm = seg.perm;
                    perm.update(ds.perm.uid, ds.perm.gid, ds.perm.mode as u32)?;
                    // The kernel segment's permissions stay the shim segment's.
                    if seg.kernel != 0 {
                        kshm::reachable(seg.kns)?;
                        kshm::set_perm(seg.kshmid, &perm)?;
                    }
                    seg.perm = perm;
                    seg.ctime = sys::coarse_seconds();
                }
                Ok(0)
            })
        }
        SHM_LOCK | SHM_UNLOCK => locked(region, |shm| {
            let idx = shm.obtain_check(shmid)?;
            let seg = shm.slot(idx);
            if !cred.capable(ipc::CAP_IPC_LOCK) {
                if cred.euid != seg.perm.uid && cred.euid != seg.perm.cuid {
                    return Err(EPERM);
                }
                if cmd == SHM_LOCK {
                    let limit = sys::memlock_limit();
                    if limit == 0 {
                        return Err(EPERM);
                    }
                    if seg.perm.mode & SHM_LOCKED == 0 && seg.data_len > limit {
                        return Err(ENOMEM);
                    }
                }
            }
            // A kernel segment's pages are really (un)locked, with the kernel's accounting.
            if seg.kernel != 0 {
                kshm::reachable(seg.kns)?;
                kshm::lock(seg.kshmid, cmd)?;
            }
            if cmd == SHM_LOCK {
                seg.perm.mode |= SHM_LOCKED;
            } else {
                seg.perm.mode &= !SHM_LOCKED;
            }
            Ok(0)
        }),
        _ => Err(EINVAL),
    }
}

fn stat_of(seg: &ShmidKernel) -> Shmid64Ds {
    Shmid64Ds {
        perm: Ipc64Perm::from(&seg.perm),
        segsz: seg.segsz,
        atime: seg.atime,
        dtime: seg.dtime,
        ctime: seg.ctime,
        cpid: seg.cpid,
        lpid: seg.lpid,
        nattch: seg.nattch,
        ..Default::default()
    }
}

/// Every live segment with its id, in index order, after reaping: for `ipcs` and `status`.
pub fn snapshot(region: &Region) -> Result<Vec<(i32, Shmid64Ds)>, Errno> {
    locked_uncounted(region, |shm| {
        // SAFETY: lock held.
        unsafe { proc::reap(region) };
        Ok((0..=shm.max_idx())
            .filter_map(|i| {
                let seg = shm.slot(i as u32);
                (seg.live != 0).then(|| (seg.perm.id, stat_of(seg)))
            })
            .collect())
    })
}

/// Every live segment's id, `shmid64_ds` and resident bytes, in index order, after reaping: what
/// `/proc/sysvipc/shm` shows. `f` runs under the region lock.
pub fn each_stat(region: &Region, mut f: impl FnMut(i32, &Shmid64Ds, u64)) -> Result<(), Errno> {
    locked_uncounted(region, |shm| {
        // SAFETY: lock held.
        unsafe { proc::reap(region) };
        for i in 0..=shm.max_idx() {
            let seg = shm.slot(i as u32);
            if seg.live != 0 {
                f(seg.perm.id, &stat_of(seg), shm.rss_pages(seg) * PAGE_SIZE);
            }
        }
        Ok(())
    })
}

/// `shm_destroy_orphaned`, after shm_rmid_forced was set: segments whose creator is gone and
/// that nothing attaches die now.
pub fn destroy_orphaned(region: &Region) -> Result<(), Errno> {
    locked_uncounted(region, |shm| {
        // SAFETY: lock held.
        unsafe { proc::reap(region) };
        for i in 0..=shm.max_idx() {
            let seg = shm.slot(i as u32);
            if seg.live != 0 && seg.creator == 0 {
                shm.maybe_destroy(i as u32);
            }
        }
        Ok(())
    })
}

/// Removes segment `id` as `shmctl(IPC_RMID)` would, for `ipcrm`.
pub fn remove_by_key(region: &Region, key: i32) -> Result<(), Errno> {
    let id = locked(region, |shm| shm.findkey(key).map(|i| shm.slot(i).perm.id).ok_or(EINVAL))?;
    shmctl(region, id, IPC_RMID, 0).map(|_| ())
}

/// exec or exit unmapped everything: drop the process's attachments.
///
/// # Safety
/// The caller holds the region lock; `slot < MAX_PROCS`.
pub unsafe fn exec_shm(region: &Region, slot: u32, pid: i32) {
    let shm = Shm { region };
    while let Some((idx, id, _, _)) = shm.take_attach(slot, |_| true) {
        shm.close(idx, id, pid);
    }
}

/// `exit_shm`: the process is gone (exit, or reaped after death). Besides its attachments it
/// stops being its segments' creator; under shm_rmid_forced its unattached ones die with it.
///
/// # Safety
/// The caller holds the region lock; `slot < MAX_PROCS`.
pub unsafe fn exit_shm(region: &Region, slot: u32, pid: i32) {
    // SAFETY: forwarded contract.
    unsafe {
        exec_shm(region, slot, pid);
        orphan_shm(region, slot);
    }
}

/// The part of `exit_shm` that does not detach: the process stops being its segments'
/// creator, and under shm_rmid_forced its unattached ones die.
///
/// # Safety
/// The caller holds the region lock; `slot < MAX_PROCS`.
pub unsafe fn orphan_shm(region: &Region, slot: u32) {
    let shm = Shm { region };
    let forced = shm.limits().shm_rmid_forced != 0;
    for idx in 0..=shm.max_idx() {
        let seg = shm.slot(idx as u32);
        if seg.live != 0 && seg.creator == slot + 1 {
            seg.creator = 0;
            if forced && seg.nattch == 0 {
                shm.destroy(idx as u32);
            }
        }
    }
}

/// The program unmapped `[addr, addr + len)` itself: attachments wholly inside are gone, as
/// their vmas are (a partly unmapped attachment stays counted).
pub fn unmapped(region: &Region, addr: usize, len: usize) {
    let slot = proc::self_slot(region);
    if slot >= MAX_PROCS {
        return;
    }
    let pid = proc::self_pid();
    let _ = locked(region, |shm| {
        let end = addr.saturating_add(len);
        while let Some((idx, id, _, _)) =
            shm.take_attach(slot, |a| a.addr as usize >= addr && (a.addr + a.len) as usize <= end)
        {
            shm.close(idx, id, pid);
        }
        Ok(())
    });
}

/// Copies `parent`'s attachments to the prepared `child` record, counting them now.
///
/// # Safety
/// The caller holds the region lock; both slots < MAX_PROCS.
pub unsafe fn fork_shm(region: &Region, parent: u32, child: u32) {
    let shm = Shm { region };
    let pid = shm.record(parent).pid;
    // In batches, each read from the parent's list before it is added to the child's.
    let mut done = 0;
    loop {
        let mut batch = [(0u32, 0u64, 0u64, false); 16];
        let (mut n, mut at) = (0, 0);
        shm.for_each_attach(parent, |a| {
            if at >= done && n < batch.len() {
                batch[n] = (a.idx, a.addr, a.len, a.shared != 0);
                n += 1;
            }
            at += 1;
        });
        for &(idx, addr, len, shared) in &batch[..n] {
            if idx < IPCMNI && shm.slot(idx).live != 0 {
                let _ = shm.add_attach(child, idx, addr, len, shared, pid);
            }
        }
        if n < batch.len() {
            return;
        }
        done += n;
    }
}

/// After a lock holder died mid-update: recompute everything derived from primary state.
///
/// # Safety
/// The caller holds the region lock.
pub unsafe fn recover(region: &Region) {
    let shm = Shm { region };
    let ns = shm.ns();
    // Slots never used hold no segment and are left untouched.
    let used: Vec<u32> = (0..IPCMNI).filter(|&i| shm.backed(i)).collect();
    for &idx in &used {
        shm.slot(idx).nattch = 0;
    }
    for slot in 0..proc::procs_hwm(region) {
        let state = shm.record(slot).state.load(Ordering::Acquire);
        if matches!(state, proc::FREE | proc::EXITED) || state & proc::CLAIMING != 0 {
            continue;
        }
        shm.for_each_attach(slot, |a| {
            if a.idx < IPCMNI && shm.slot(a.idx).live != 0 && shm.slot(a.idx).perm.id == a.id {
                shm.slot(a.idx).nattch += 1;
            }
        });
    }
    // Rebuild ids bookkeeping, shm_tot and the free extents from the live segments.
    let mut in_use = 0;
    let mut max_idx = -1;
    let mut tot = 0;
    let ext = shm.extents();
    let mut n = 0usize;
    let mut cursor = 0u64;
    for &idx in &used {
        let seg = shm.slot(idx);
        if seg.live == 0 {
            continue;
        }
        let bad = seg.kernel == 0
            && (seg.data_len == 0
                || !seg.data_off.is_multiple_of(PAGE_SIZE)
                || seg.data_off.checked_add(seg.data_len).is_none_or(|end| end > SHM_DATA_SIZE));
        if bad {
            seg.live = 0; // unusable: drop it rather than let it alias other memory
            continue;
        }
        in_use += 1;
        max_idx = idx as i32;
        tot += pages(seg.segsz);
    }
    // Live ranges in address order become the holes between free extents.
    let mut ranges: Vec<(u64, u64)> = used
        .iter()
        .map(|&i| shm.slot(i))
        .filter(|s| s.live != 0 && s.kernel == 0)
        .map(|s| (s.data_off, s.data_len))
        .collect();
    ranges.sort_unstable();
    let entry = |n: usize| SHM_EXTENTS_OFF + n as u64 * size_of::<Extent>() as u64;
    let room =
        |n: usize| n < MAX_EXTENTS as usize && region.reserve(entry(n), size_of::<Extent>() as u64).is_ok();
    for (off, len) in ranges {
        if off > cursor && room(n) {
            ext[n] = Extent { off: cursor, len: off - cursor };
            n += 1;
        }
        cursor = cursor.max(off + len);
    }
    if cursor < SHM_DATA_SIZE && room(n) {
        ext[n] = Extent { off: cursor, len: SHM_DATA_SIZE - cursor };
        n += 1;
    }
    ns.extents_len = n as u32;
    // A destroy cut short may have left data in a range now free: new segments start zeroed.
    for e in &ext[..n] {
        shm.discard(e.off, e.len);
    }
    ns.ids.in_use = in_use;
    ns.ids.max_idx = max_idx;
    ns.shm_tot = tot;
    // A kernel segment being made or removed when the holder died.
    shm.settle_orphans();
    for idx in 0..=max_idx {
        let seg = shm.slot(idx as u32);
        if seg.live != 0 {
            shm.maybe_destroy(idx as u32);
        }
    }
}

/// The full-size data area as one free extent, for a new region.
pub fn init_extents(region: &Region) {
    let shm = Shm { region };
    shm.extents()[0] = Extent { off: 0, len: SHM_DATA_SIZE };
    shm.ns().extents_len = 1;
}
