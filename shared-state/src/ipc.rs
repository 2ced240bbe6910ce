//! What `ipc/util.c` does for every family: `kern_ipc_perm`, `ipc_ids` with the kernel's id
//! allocation (cyclic index, sequence bumped on wrap, id = seq * IPCMNI + index), key lookup,
//! `ipcperms`, the generic `ipcget` behind shmget/semget/msgget, and for the families whose
//! objects each have a lock of their own (semaphore sets, message queues) the ids' own lock and
//! journal (`ids->rwsem`, [`Ids`]).

use crate::journal::{Held, JOURNAL_BYTES, Journal, ObjGuard, ObjLock};
use crate::region::{IPCMNI, Region};
use crate::sys::{self, Errno};
use core::ops::Range;
use core::sync::atomic::Ordering;
use libc::{EACCES, EEXIST, EINVAL, ENOENT, ENOMEM, ENOSPC};

pub const IPC_PRIVATE: i32 = 0;
pub const IPC_CREAT: i32 = 0o1000;
pub const IPC_EXCL: i32 = 0o2000;
pub const S_IRWXUGO: u32 = 0o777;
pub const S_IRUGO: u32 = 0o444;
pub const S_IWUGO: u32 = 0o222;
pub const S_IXUGO: u32 = 0o111;

/// The kernel's `ipc_min_cycle` (RADIX_TREE_MAP_SIZE): indices cycle at least this far.
const IPC_MIN_CYCLE: u32 = 64;
const SEQ_SHIFT: u32 = 15;
/// `ipcid_seq_max()`.
const SEQ_MAX: u32 = (i32::MAX as u32) >> SEQ_SHIFT;

pub const CAP_IPC_LOCK: u32 = 14;
pub const CAP_IPC_OWNER: u32 = 15;
pub const CAP_SYS_ADMIN: u32 = 21;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KernIpcPerm {
    pub key: i32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    /// Permission bits plus family flags (SHM_DEST, SHM_LOCKED).
    pub mode: u32,
    pub seq: u32,
    pub id: i32,
}

/// The calling task's credentials, read fresh per call (a process may setuid at any time).
pub struct Cred {
    pub euid: u32,
    pub egid: u32,
}

/// Cached effective ids (valid bit | egid << 32 | euid), used only while [`cache_creds`] is on:
/// the shim turns it on when it sees every set*id call (and calls [`creds_changed`] on each).
static CRED_CACHE: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
static CRED_CACHING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
const CRED_VALID: u64 = 1 << 63;

/// Lets [`Cred::current`] answer from a cache (no system call on the semop fast path).
pub fn cache_creds(on: bool) {
    CRED_CACHING.store(on, core::sync::atomic::Ordering::Relaxed);
    creds_changed();
}

/// The process may have changed its ids: the next [`Cred::current`] asks the kernel.
pub fn creds_changed() {
    CRED_CACHE.store(0, core::sync::atomic::Ordering::Relaxed);
}

impl Cred {
    /// The cached credentials, if any (no system call).
    #[inline]
    pub fn cached() -> Option<Cred> {
        use core::sync::atomic::Ordering::Relaxed;
        let c = CRED_CACHE.load(Relaxed);
        (CRED_CACHING.load(Relaxed) && c & CRED_VALID != 0)
            .then_some(Cred { euid: c as u32, egid: ((c >> 32) as u32) & 0x7fff_ffff })
    }

    #[inline]
    pub fn current() -> Cred {
        use core::sync::atomic::Ordering::Relaxed;
        let caching = CRED_CACHING.load(Relaxed);
        let c = CRED_CACHE.load(Relaxed);
        if caching && c & CRED_VALID != 0 {
            return Cred { euid: c as u32, egid: ((c >> 32) as u32) & 0x7fff_ffff };
        }
        let cred = Cred { euid: sys::geteuid(), egid: sys::getegid() };
        if caching && cred.egid <= 0x7fff_ffff {
            CRED_CACHE.store(CRED_VALID | (cred.egid as u64) << 32 | cred.euid as u64, Relaxed);
        }
        cred
    }

    /// `in_group_p`: the effective or a supplementary group.
    pub fn in_group_p(&self, gid: u32) -> bool {
        if gid == self.egid {
            return true;
        }
        let mut groups = [0u32; 256];
        let n = sys::getgroups(&mut groups);
        groups[..n].contains(&gid)
    }

    pub fn capable(&self, cap: u32) -> bool {
        sys::effective_caps() & (1u64 << cap) != 0
    }
}

impl KernIpcPerm {
    /// A new object's perm (`ipcget_new`/`ipc_addid`): owned and created by `cred`, the
    /// permission bits of `flg`.
    pub fn new(cred: &Cred, key: i32, flg: i32, seq: u32, id: i32) -> KernIpcPerm {
        KernIpcPerm {
            key,
            uid: cred.euid,
            gid: cred.egid,
            cuid: cred.euid,
            cgid: cred.egid,
            mode: flg as u32 & S_IRWXUGO,
            seq,
            id,
        }
    }

    /// `ipcperms`: may `cred` access with the rwx bits in `flag` (any of the three triplets)?
    pub fn ipcperms(&self, cred: &Cred, flag: u32) -> bool {
        let requested = (flag >> 6) | (flag >> 3) | flag;
        let mut granted = self.mode;
        if cred.euid == self.cuid || cred.euid == self.uid {
            granted >>= 6;
        } else if cred.in_group_p(self.cgid) || cred.in_group_p(self.gid) {
            granted >>= 3;
        }
        requested & !granted & 0o7 == 0 || cred.capable(CAP_IPC_OWNER)
    }

    /// Whether [`ipcperms`](Self::ipcperms) grants `flag` to `cred` without asking the kernel
    /// for supplementary groups or capabilities: false when it would have to ask.
    #[inline]
    pub fn granted_plainly(&self, cred: &Cred, flag: u32) -> bool {
        let requested = (flag >> 6) | (flag >> 3) | flag;
        let granted = if cred.euid == self.cuid || cred.euid == self.uid {
            self.mode >> 6
        } else if cred.egid == self.cgid || cred.egid == self.gid {
            self.mode >> 3
        } else {
            return false;
        };
        requested & !granted & 0o7 == 0
    }

    /// The owner check of `ipcctl_obtain_check` (IPC_SET, IPC_RMID).
    pub fn owner_or_admin(&self, cred: &Cred) -> bool {
        cred.euid == self.cuid || cred.euid == self.uid || cred.capable(CAP_SYS_ADMIN)
    }

    /// `ipc_update_perm` for IPC_SET.
    pub fn update(&mut self, uid: u32, gid: u32, mode: u32) -> Result<(), Errno> {
        if uid == u32::MAX || gid == u32::MAX {
            return Err(EINVAL);
        }
        self.uid = uid;
        self.gid = gid;
        self.mode = (self.mode & !S_IRWXUGO) | (mode & S_IRWXUGO);
        Ok(())
    }
}

/// The user-visible half of `struct ipc64_perm`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Ipc64Perm {
    pub key: i32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    pub mode: u16,
    pub pad1: u16,
    pub seq: u16,
    pub pad2: u16,
    pub unused1: u64,
    pub unused2: u64,
}

impl From<&KernIpcPerm> for Ipc64Perm {
    fn from(p: &KernIpcPerm) -> Self {
        Ipc64Perm {
            key: p.key,
            uid: p.uid,
            gid: p.gid,
            cuid: p.cuid,
            cgid: p.cgid,
            mode: p.mode as u16,
            seq: p.seq as u16,
            ..Default::default()
        }
    }
}

/// `struct ipc_ids`, minus the objects themselves (which live in the family's slot array).
#[repr(C)]
#[derive(Debug)]
pub struct IpcIds {
    pub in_use: u32,
    pub seq: u32,
    pub last_idx: i32,
    pub max_idx: i32,
    /// The idr's cyclic cursor (`idr_next`).
    pub next_idx: u32,
    /// `ids->next_id` (the `*_next_id` sysctl): the id the next object gets, -1 when unset.
    pub next_id: i32,
}

impl IpcIds {
    pub fn init(&mut self) {
        self.in_use = 0;
        self.seq = 0;
        self.last_idx = -1;
        self.max_idx = -1;
        self.next_idx = 0;
        self.next_id = -1;
    }

    /// The indices below this are those [`IpcIds::alloc`] may pick next: their slots must be
    /// reserved (`Region::reserve`) before it looks at them.
    pub fn window(&self) -> u32 {
        // A set next_id may pick any index from its own up.
        let next = if self.next_id >= 0 { IPCMNI } else { 0 };
        (self.in_use * 3 / 2).clamp(IPC_MIN_CYCLE, IPCMNI).max(next)
    }

    /// `ipc_idr_alloc` + the bookkeeping of `ipc_addid`: picks an index with `used(idx)` false,
    /// returning (index, seq). `mni` is the family's limit (shmmni…).
    pub fn alloc(&mut self, mni: u32, used: impl Fn(u32) -> bool) -> Result<(u32, u32), Errno> {
        let limit = mni.min(IPCMNI);
        if self.in_use >= limit {
            return Err(ENOSPC);
        }
        // A set next_id is used once, taken or not: the lowest free index from its own, with
        // its sequence, and neither the cursor nor the sequence moves.
        let next_id = core::mem::replace(&mut self.next_id, -1);
        if next_id >= 0 {
            let idx = (id_to_idx(next_id)..IPCMNI).find(|&i| !used(i)).ok_or(ENOSPC)?;
            self.add(idx);
            return Ok((idx, next_id as u32 >> SEQ_SHIFT));
        }
        let max_idx = self.window();
        let find = |from: u32| (from..max_idx).find(|&i| !used(i));
        let start = if self.next_idx < max_idx { self.next_idx } else { 0 };
        let idx = find(start).or_else(|| if start > 0 { find(0) } else { None }).ok_or(ENOSPC)?;
        self.next_idx = idx + 1;
        if idx as i32 <= self.last_idx {
            self.seq += 1;
            if self.seq >= SEQ_MAX {
                self.seq = 0;
            }
        }
        self.last_idx = idx as i32;
        self.add(idx);
        Ok((idx, self.seq))
    }

    /// `ipc_addid`'s count of a new object at `idx`.
    fn add(&mut self, idx: u32) {
        self.in_use += 1;
        if idx as i32 > self.max_idx {
            self.max_idx = idx as i32;
        }
    }

    /// `ipc_rmid`: forget index `idx`; `used` answers for the other indices.
    pub fn remove(&mut self, idx: u32, used: impl Fn(u32) -> bool) {
        self.in_use = self.in_use.saturating_sub(1);
        if idx as i32 == self.max_idx {
            let mut i = idx as i32 - 1;
            while i >= 0 && !used(i as u32) {
                i -= 1;
            }
            self.max_idx = i;
        }
    }

    /// `ipc_get_maxidx`.
    pub fn get_maxidx(&self) -> i32 {
        if self.in_use == 0 {
            -1
        } else if self.in_use == IPCMNI {
            IPCMNI as i32 - 1
        } else {
            self.max_idx
        }
    }
}

pub fn build_id(seq: u32, idx: u32) -> i32 {
    ((seq << SEQ_SHIFT) + idx) as i32
}

pub fn id_to_idx(id: i32) -> u32 {
    (id as u32) & (IPCMNI - 1)
}

/// One family's table, as `ipcget` needs it (the kernel's `ipc_ops`).
pub trait IpcFamily {
    type Params;
    /// The perm of a live object at `idx`, if any.
    fn perm(&self, idx: u32) -> Option<&KernIpcPerm>;
    /// The highest index that may be in use.
    fn max_idx(&self) -> i32;
    /// `ops->getnew`: creates an object, returning its id.
    fn getnew(&mut self, cred: &Cred, key: i32, flg: i32, params: &Self::Params) -> Result<i32, Errno>;
    /// `ops->more_checks` on an existing object found by key.
    fn more_checks(&self, _idx: u32, _params: &Self::Params) -> Result<(), Errno> {
        Ok(())
    }

    /// `ipc_findkey`.
    fn findkey(&self, key: i32) -> Option<u32> {
        (0..=self.max_idx()).map(|i| i as u32).find(|&i| self.perm(i).is_some_and(|p| p.key == key))
    }

    /// `ipc_obtain_object_check`: the index of a live object whose full id is `id`.
    fn obtain_check(&self, id: i32) -> Result<u32, Errno> {
        if id < 0 {
            return Err(EINVAL);
        }
        let idx = id_to_idx(id);
        match self.perm(idx) {
            Some(p) if p.id == id => Ok(idx),
            _ => Err(EINVAL),
        }
    }

    /// `ipcget`: `ipcget_new` for IPC_PRIVATE, else `ipcget_public`.
    fn ipcget(&mut self, cred: &Cred, key: i32, flg: i32, params: &Self::Params) -> Result<i32, Errno> {
        if key == IPC_PRIVATE {
            return self.getnew(cred, key, flg, params);
        }
        match self.findkey(key) {
            None if flg & IPC_CREAT == 0 => Err(ENOENT),
            None => self.getnew(cred, key, flg, params),
            Some(_) if flg & IPC_CREAT != 0 && flg & IPC_EXCL != 0 => Err(EEXIST),
            Some(idx) => {
                self.more_checks(idx, params)?;
                let perm = self.perm(idx).ok_or(EINVAL)?;
                if !perm.ipcperms(cred, flg as u32) {
                    return Err(EACCES);
                }
                Ok(perm.id)
            }
        }
    }
}

/// A family whose ids are guarded by a lock and journal of their own, taken only to find,
/// create or remove an object and for the views (the kernel's `ids->rwsem`), while each object
/// has its own lock: semaphore sets and message queues.
pub(crate) trait LockedIds: Sized {
    /// `semget`'s or `msgget`'s parameters.
    type Params;
    /// One of the family's objects with its lock held (one being created is released after
    /// the ids).
    type Obj<'a>;
    /// Region offset of the objects' journals, one per slot; the ids' follows the last.
    const JOURNALS: u64;
    /// Region offset and size of the object slots (those the allocation may pick are reserved
    /// before it looks at them).
    const SLOTS: (u64, u64);
    /// The ids' lock.
    fn lock(r: &Region) -> &ObjLock;
    /// The header words the ids' journal may restore: the ids, and what the family counts with
    /// them.
    fn words(r: &Region) -> Range<*const u8>;
    /// The ids (changed only under their lock).
    #[allow(clippy::mut_from_ref)]
    fn ids(r: &Region) -> &mut IpcIds;
    /// The perm of the live object in slot `idx`, if any (a slot never used is not read).
    fn perm(r: &Region, idx: u32) -> Option<&KernIpcPerm>;
    /// `ops->getnew`.
    fn getnew(
        ids: &mut Ids<'_, Self>,
        cred: &Cred,
        key: i32,
        flg: i32,
        params: &Self::Params,
    ) -> Result<i32, Errno>;
    /// `ops->more_checks` on an existing object found by key.
    fn more_checks(_r: &Region, _idx: u32, _params: &Self::Params) -> Result<(), Errno> {
        Ok(())
    }
    /// After a killed holder's journal was replayed: what the family counts with the ids,
    /// counted again from the live objects up to `max_idx` (a removal commits its object's
    /// half first, then the ids').
    fn recount(_r: &Region, _max_idx: i32) {}
}

/// A family's ids, locked: commits their journal and unlocks on drop, then releases an object
/// created under them.
pub(crate) struct Ids<'a, F: LockedIds> {
    pub r: &'a Region,
    pub h: Held<'a, F::Obj<'a>>,
}

impl<'a, F: LockedIds> Ids<'a, F> {
    pub fn lock(r: &'a Region) -> Result<Ids<'a, F>, Errno> {
        let guard = F::lock(r).lock(r).map_err(|_| ENOMEM)?;
        Ok(Self::recovered(r, guard))
    }

    /// The ids locked by `guard`, repaired if their last holder died: its journal replayed,
    /// then the counts a removal commits after its object's (in_use, max_idx, the family's)
    /// counted again from the live objects.
    pub fn recovered(r: &'a Region, guard: ObjGuard<'a>) -> Ids<'a, F> {
        let off = F::JOURNALS + IPCMNI as u64 * JOURNAL_BYTES;
        let ids = Ids { r, h: Held::new(Journal::new(r, F::lock(r), off, F::words(r)), guard) };
        if ids.h.recovered() {
            r.header().counters.lock_recoveries.fetch_add(1, Ordering::Relaxed);
            ids.journal().recover();
            let i = ids.ids();
            let (mut in_use, mut max) = (0, -1);
            for idx in 0..=i.max_idx.min(IPCMNI as i32 - 1) {
                if F::perm(r, idx as u32).is_some() {
                    (in_use, max) = (in_use + 1, idx);
                }
            }
            (i.in_use, i.max_idx) = (in_use, max);
            F::recount(r, max);
        }
        ids
    }

    /// After an object's locker found the object's holder killed: that holder may have held the
    /// ids too (creating or removing the object), which are repaired now if nobody holds them.
    pub fn repair(r: &'a Region) {
        if let Some(Ok(guard)) = F::lock(r).try_lock(r) {
            drop(Self::recovered(r, guard));
        }
    }

    pub fn journal(&self) -> &Journal<'a> {
        &self.h.journal
    }

    #[allow(clippy::mut_from_ref)]
    pub fn ids(&self) -> &'a mut IpcIds {
        F::ids(self.r)
    }

    /// A journalled store.
    pub fn w<T: Copy>(&self, place: &mut T, v: T) {
        self.journal().save(place as *const T as *const u8, size_of::<T>());
        *place = v;
    }

    /// The index and sequence of a new object (`ipc_idr_alloc`), journalled with the ids. The
    /// slots it may pick get their memory first: a full file system is ENOMEM, as a kernel out
    /// of memory.
    pub fn alloc(&self, mni: u32) -> Result<(u32, u32), Errno> {
        let ids = self.ids();
        let (off, size) = F::SLOTS;
        self.r.reserve(off, ids.window() as u64 * size).map_err(|_| ENOMEM)?;
        self.journal().save(ids as *const IpcIds as *const u8, size_of::<IpcIds>());
        ids.alloc(mni, |i| F::perm(self.r, i).is_some())
    }

    /// `ipc_rmid`, after the object's own half was committed.
    pub fn remove(&self, idx: u32) {
        let ids = self.ids();
        self.journal().save(ids as *const IpcIds as *const u8, size_of::<IpcIds>());
        ids.remove(idx, |i| F::perm(self.r, i).is_some());
    }
}

impl<F: LockedIds> IpcFamily for Ids<'_, F> {
    type Params = F::Params;

    fn perm(&self, idx: u32) -> Option<&KernIpcPerm> {
        // Liveness and perm change only under the ids lock, which is held.
        F::perm(self.r, idx)
    }

    fn max_idx(&self) -> i32 {
        self.ids().max_idx.min(IPCMNI as i32 - 1)
    }

    fn getnew(&mut self, cred: &Cred, key: i32, flg: i32, params: &F::Params) -> Result<i32, Errno> {
        F::getnew(self, cred, key, flg, params)
    }

    fn more_checks(&self, idx: u32, params: &F::Params) -> Result<(), Errno> {
        F::more_checks(self.r, idx, params)
    }
}
