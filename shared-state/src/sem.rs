//! System V semaphores, after `ipc/sem.c`: `sem_array`, `sem`, `sem_queue` and `sem_undo`,
//! with the kernel's queueing and wake-up order (perform_atomic_semop, update_queue,
//! wake_const_ops, do_smart_update, merge/unmerge of the queues) and exit_sem.
//!
//! Each set has its own robust lock (`sem_lock`), and the namespace's lock guards only the ids
//! (semget, IPC_RMID, IPC_SET, IPC_INFO, the views), taken before a set's as the kernel takes
//! `ids->rwsem`. Each store made while holding a lock is journalled first (old value of the
//! 8-byte word) in that lock's journal, emptied just before unlocking: a holder killed at any
//! instant leaves a journal that the next locker replays backwards, so a semop, a wake-up pass
//! or an undo application happens entirely or not at all. That is also what makes SEM_UNDO
//! apply exactly once. Sleepers, undo records and adjustments come from pools shared by the
//! sets, claimed and freed through the journals (`journal::Pool`).
//!
//! A process with undo entries holds its record's `life` mutex (robust) for as long as it
//! runs; the kernel marks it owner-died when the process dies, so whoever next touches one of
//! its sets sees the death with one memory read, confirms it, and applies its adjustments on
//! that set (as exit_sem does set by set). A bitmap per process record names the sets it may
//! have undo entries on, for its exit. Waiters sleep on a futex word of their own queue entry
//! and read their result under the set's lock, so a waker killed before committing never leaks
//! a result that was rolled back.

use crate::ipc::{self, Cred, Ipc64Perm, IpcFamily, KernIpcPerm, LockedIds, S_IRUGO, S_IWUGO};
use crate::journal::{Brief, CpuNote, JOURNAL_BYTES, Journal, ObjGuard, ObjLock, Pool, PoolHead};
use crate::killpoint::{self, Step};
use crate::proc::{self, LIVE, ProcRecord};
use crate::region::{
    IPCMNI, MAX_PROCS, Region, SEM_ADJ_MAX, SEM_ADJ_OFF, SEM_JOURNAL_OFF, SEM_LENT_CLAIMS_OFF,
    SEM_LENT_JOURNAL_OFF, SEM_LENT_JOURNALS, SEM_LOCKS_OFF, SEM_PROC_SETS_BYTES, SEM_PROC_SETS_OFF,
    SEM_QUEUE_MAX, SEM_QUEUE_OFF, SEM_SEMS_OFF, SEM_SETS_OFF, SEM_SOPS_MAX, SEM_SOPS_OFF, SEM_SOPS_SMALL,
    SEM_SOPS_SMALL_OFF, SEM_UNDO_MAX, SEM_UNDO_OFF, SEM_WINDOW, Tally,
};
use crate::sys::{self, Errno};
use crate::wait::{self, WaitOutcome};
use core::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering, compiler_fence};
use libc::{E2BIG, EACCES, EAGAIN, EFBIG, EIDRM, EINTR, EINVAL, ENOMEM, ENOSPC, EPERM, ERANGE};

pub const SEMVMX: i32 = 32767;
pub const SEMAEM: i32 = SEMVMX;
pub const SEM_UNDO: i16 = 0x1000;
pub const IPC_NOWAIT: i16 = 0o4000;

pub const IPC_RMID: i32 = 0;
pub const IPC_SET: i32 = 1;
pub const IPC_STAT: i32 = 2;
pub const IPC_INFO: i32 = 3;
pub const GETPID: i32 = 11;
pub const GETVAL: i32 = 12;
pub const GETALL: i32 = 13;
pub const GETNCNT: i32 = 14;
pub const GETZCNT: i32 = 15;
pub const SETVAL: i32 = 16;
pub const SETALL: i32 = 17;
pub const SEM_STAT: i32 = 18;
pub const SEM_INFO: i32 = 19;
pub const SEM_STAT_ANY: i32 = 20;

/// `seminfo` constants of include/uapi/linux/sem.h.
const SEMMNU: i32 = 32000 * 32000;
const SEMMAP: i32 = SEMMNU;
const SEMUME: i32 = 500;
const SEMUSZ: i32 = 20;

/// A queue entry's status while it waits (the kernel's -EINTR "in progress").
const PENDING: i32 = i32::MIN;
const FIRST_SLICE_NS: i64 = 97_000_000;
/// After a watched death: this many short slices for the dying process to finish exiting.
const RECHECK_SLICE_NS: i64 = 2_000_000;
const RECHECKS: u32 = 25;
const MAX_WALK: usize = 1 << 22;
/// Life words of processes with adjustments on the set that a sleeper also waits on: their
/// death (robust futex) wakes it at once.
const WATCHED: usize = 6;
/// Wake-ups deferred until after the unlock; more are woken at once (they then wait for the
/// lock, which is still correct).
const DEFERRED_WAKES: usize = 64;
const _: () = assert!(SEM_QUEUE_MAX <= 1 << 16);
/// Yields a semop may make before it sleeps.
const SEM_YIELDS: u32 = 8;

/// `struct sembuf`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Sembuf {
    pub sem_num: u16,
    pub sem_op: i16,
    pub sem_flg: i16,
}

/// A queue of sleeping operations: indices + 1 of the first and last entry (0 = none).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct List {
    head: u32,
    tail: u32,
}

/// The namespace part (in the region header): the ids, under their own lock.
#[repr(C, align(64))]
pub struct SemNs {
    pub lock: ObjLock,
    pub ids: ipc::IpcIds,
    /// Semaphores in all sets (`ns->used_sems`).
    pub used_sems: u32,
    _pad: u32,
    /// The pools of sleepers, undo records and adjustments (see [`POOLS`]).
    pools: [PoolHead; 3],
    /// Last ticket handed to a sleeper.
    tickets: AtomicU32,
}

/// Region offset, entry size, claim word offset, size and parts (see `journal::Pool`) of the
/// pools of sleepers, undo records and adjustments.
type PoolDesc = (u64, u64, u64, u32, &'static [(u64, u64)]);
const POOLS: [PoolDesc; 3] = [
    (
        SEM_QUEUE_OFF,
        size_of::<SemQueue>() as u64,
        core::mem::offset_of!(SemQueue, claim) as u64,
        SEM_QUEUE_MAX,
        &[(SEM_QUEUE_OFF, size_of::<SemQueue>() as u64)],
    ),
    (
        SEM_UNDO_OFF,
        size_of::<SemUndo>() as u64,
        core::mem::offset_of!(SemUndo, claim) as u64,
        SEM_UNDO_MAX,
        &[(SEM_UNDO_OFF, size_of::<SemUndo>() as u64)],
    ),
    (
        SEM_ADJ_OFF,
        size_of::<SemAdj>() as u64,
        core::mem::offset_of!(SemAdj, claim) as u64,
        SEM_ADJ_MAX,
        &[(SEM_ADJ_OFF, size_of::<SemAdj>() as u64)],
    ),
];

// The ids' journal may restore the words from `ids` to `used_sems`, and none of the atomics.
const _: () =
    assert!(core::mem::offset_of!(SemNs, ids) % 8 == 0 && core::mem::offset_of!(SemNs, pools) % 8 == 0);

impl SemNs {
    /// # Safety
    /// Only on a new region, before any other process uses it.
    pub unsafe fn init(this: *mut SemNs) {
        // SAFETY: per the contract.
        unsafe {
            ObjLock::init(&raw mut (*this).lock);
            (*this).ids.init();
        }
    }
}

/// `struct sem_array`.
#[repr(C, align(64))]
pub struct SemArray {
    /// The set's own lock (`sem_perm.lock`).
    lock: ObjLock,
    pub live: u32,
    pub nsems: u32,
    pub perm: KernIpcPerm,
    pub ctime: i64,
    pending_alter: List,
    pending_const: List,
    complex_count: u32,
    /// First `SemUndo` of this set (the kernel's `list_id`), index + 1.
    undo_head: u32,
    /// Sleepers in the set's own two queues (complex operations, and simple ones merged).
    queued: u32,
    /// Bumped whenever the set's undo list changes: a lock-free semop's walk of it is stale.
    undo_seq: u32,
    /// Every semaphore word of the set carries GATED (not journalled: it tells the truth about
    /// the words, which the lock holder's recovery fixes itself). A semaphore's lock holder
    /// that ungates its semaphore clears it.
    gated: AtomicU32,
    /// `use_global_lock`: while non-zero, every operation takes the set's lock. Set before the
    /// set's holder changes anything and lowered only after its journal is committed, never
    /// journalled: a set journal with entries implies it is non-zero.
    use_global: AtomicU32,
    /// Where the last lockers ran.
    cpus: CpuNote,
}

/// `struct sem`.
#[repr(C)]
pub struct Sem {
    /// semval, sempid, the set's sequence number and two flags: see [`word_of`].
    word: AtomicU64,
    otime: AtomicI64,
    pending_alter: List,
    pending_const: List,
}

// A semaphore's value, its last pid and its set's sequence number share one word, so that a
// semop of one operation is one compare-and-swap with no lock (`fast_semop`). The set's lock
// holder first sets GATED on every semaphore of the set (`Sems::gate`), which makes those
// compare-and-swaps fail until it is done; a set with sleepers stays gated.
const VAL_MASK: u64 = 0xffff;
const PID_SHIFT: u32 = 16;
/// pid_max is at most 2^22.
const PID_MASK: u64 = (1 << 22) - 1;
const GEN_SHIFT: u32 = 38;
/// Sequence numbers stay below 2^16 (INT_MAX / IPCMNI).
const GEN_MASK: u64 = 0xffff;
/// A lock-free SEM_UNDO semop changed the value and may not have stored its adjustment yet;
/// its process's `SemIntent` says what to store.
const PENDING_UNDO: u64 = 1 << 62;
const GATED: u64 = 1 << 63;

const fn word_of(val: i32, pid: i32, seq: u32) -> u64 {
    (val as u64 & VAL_MASK) | (pid as u64 & PID_MASK) << PID_SHIFT | (seq as u64 & GEN_MASK) << GEN_SHIFT
}

const fn word_val(w: u64) -> i32 {
    (w & VAL_MASK) as i32
}

const fn word_pid(w: u64) -> i32 {
    ((w >> PID_SHIFT) & PID_MASK) as i32
}

const fn with_val_pid(w: u64, val: i32, pid: i32) -> u64 {
    w & !(VAL_MASK | PID_MASK << PID_SHIFT) | word_of(val, pid, 0)
}

/// A process's lock-free SEM_UNDO semop in flight (in its `ProcRecord`): enough for whoever
/// finds the process dead with the semaphore's PENDING_UNDO set to store the adjustment.
#[repr(C)]
#[derive(Default)]
pub struct SemIntent {
    stage: AtomicU32,
    /// The operation's `sem_op`.
    op: AtomicI32,
    /// Region offset of the semaphore's word.
    word_off: AtomicU64,
    /// The `SemAdj` entry to change.
    adj: AtomicU32,
    /// Its new value, valid from STORED on.
    new_adj: AtomicI32,
}

const IDLE: u32 = 0;
/// Claimed by one thread, fields being written.
const CLAIMED: u32 = 1;
/// `op`, `word_off` and `adj` are valid; the value may have changed.
const STARTED: u32 = 2;
/// The value changed and `new_adj` is what the adjustment becomes.
const STORED: u32 = 3;

/// Where queue entry `qi` keeps its `nsops` sembufs: SEM_SOPS_SMALL of them or fewer in the
/// dense array, more in its room for SEM_SOPS_MAX.
fn sops_off(qi: u32, nsops: u32) -> u64 {
    let (off, room) = if nsops <= SEM_SOPS_SMALL {
        (SEM_SOPS_SMALL_OFF, SEM_SOPS_SMALL)
    } else {
        (SEM_SOPS_OFF, SEM_SOPS_MAX)
    };
    off + qi as u64 * room as u64 * size_of::<Sembuf>() as u64
}

/// `struct sem_queue`: one sleeping semop.
#[repr(C)]
struct SemQueue {
    next: u32,
    prev: u32,
    /// Which list: 0 none, 1 the set's alter, 2 the set's const, 3 + 2n / 4 + 2n semaphore n's.
    list: u32,
    set: u32,
    id: i32,
    owner: u32,
    pid: i32,
    nsops: u32,
    blocking: u32,
    status: i32,
    /// The pool's claim word: set index + 1 while the entry is the set's.
    claim: AtomicU32,
    /// Tells the sleeper that the entry is still its own (a process judged dead loses its
    /// entries, and they may be reused).
    ticket: u32,
    /// The sleeper's futex word (not journalled: a spurious change only causes a re-check).
    wake: AtomicU32,
    /// Non-zero while the sleeper is in a futex wait (`wait::asleep_on` the value it waits on):
    /// only then does a waker make the wake syscall (a sleeper yielding to its waker on one
    /// CPU needs none).
    sleeping: AtomicU32,
    /// The result, 1 - status, stored by the waker once its journal is committed: the sleeper
    /// then returns without the lock, and frees the entry itself (as the kernel's woken task
    /// reads `queue.status` without `sem_lock`). 0 until then.
    done: AtomicU32,
    _pad: u32,
}

impl SemQueue {
    /// Wakes the sleeper if it is in its futex wait (its word was bumped already).
    fn wake_sleeper(&self) {
        wait::wake_sleeper(&self.sleeping, &self.wake);
    }
}

/// `struct sem_undo`: the adjustments of one process for one set, on the set's list.
#[repr(C)]
struct SemUndo {
    owner: u32,
    set: u32,
    id: i32,
    set_next: u32,
    set_prev: u32,
    adj_head: u32,
    /// The pool's claim word: set index + 1.
    claim: AtomicU32,
    _pad: u32,
}

/// One `semadj` entry: (semnum, adjustment), chained from its `SemUndo`.
#[repr(C)]
struct SemAdj {
    semnum: u32,
    adj: i32,
    next: u32,
    /// The pool's claim word: set index + 1.
    claim: AtomicU32,
}

/// `struct semid64_ds` (x86_64).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Semid64Ds {
    pub perm: Ipc64Perm,
    pub otime: i64,
    pub unused1: u64,
    pub ctime: i64,
    pub unused2: u64,
    pub nsems: u64,
    pub unused3: u64,
    pub unused4: u64,
}

/// `struct seminfo`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Seminfo {
    pub semmap: i32,
    pub semmni: i32,
    pub semmns: i32,
    pub semmnu: i32,
    pub semmsl: i32,
    pub semopm: i32,
    pub semume: i32,
    pub semusz: i32,
    pub semvmx: i32,
    pub semaem: i32,
}

const _: () = assert!(
    size_of::<SemQueue>() == 64
        && size_of::<SemUndo>() == 32
        && size_of::<SemAdj>() == 16
        && size_of::<Sembuf>() == 6
        && size_of::<Sem>() == 32
        && core::mem::offset_of!(SemUndo, claim) == 24
        && core::mem::offset_of!(SemAdj, claim) == 12
);
const _: () = assert!(size_of::<Semid64Ds>() == 104 && size_of::<Seminfo>() == 40);
const _: () =
    assert!(size_of::<SemQueue>().is_multiple_of(8) && core::mem::offset_of!(SemQueue, wake) % 8 == 0);

/// What a blocking semop needs from its caller.
pub trait SemEnv {
    /// Copies `len` bytes from the caller's `src` (EFAULT if it is bad).
    fn copy_from(&self, dst: *mut u8, src: usize, len: usize) -> Result<(), Errno>;
    /// Runs one wait (the closure) with signals deliverable. Interrupted only when an
    /// application handler ran (semop is then never restarted).
    fn wait(&self, f: &mut dyn FnMut() -> WaitOutcome) -> WaitOutcome;
    /// A cancellation point, called with no lock held and nothing queued.
    fn testcancel(&self) {}
    /// A word that changes whenever an application handler runs (futex_waitv is restarted
    /// after an SA_RESTART handler, a semop must not be).
    fn handled_word(&self) -> Option<&AtomicU32> {
        None
    }
}

fn ns_of(r: &Region) -> &SemNs {
    &r.header().sem
}

/// Set `idx`, for reads without its lock (and to take it).
#[allow(clippy::mut_from_ref)]
#[inline]
fn set_at(r: &Region, idx: u32) -> &mut SemArray {
    let idx = idx.min(IPCMNI - 1);
    // SAFETY: bounded index into the set array; mutation only under the set's lock.
    unsafe { r.at::<SemArray>(set_off(idx)) }
}

/// The bitmap of sets process `slot` may have undo entries on.
fn proc_sets(r: &Region, slot: u32) -> &[AtomicU64] {
    let off = proc_sets_off(slot);
    // SAFETY: each record's bitmap lies there; its words are atomics.
    unsafe {
        core::slice::from_raw_parts((r.base() + off as usize) as *const AtomicU64, IPCMNI as usize / 64)
    }
}

fn proc_sets_off(slot: u32) -> u64 {
    SEM_PROC_SETS_OFF + slot.min(MAX_PROCS - 1) as u64 * SEM_PROC_SETS_BYTES
}

/// A set's lock, or one semaphore's (`sem_lock`), held: the set's state (or that semaphore's)
/// may be changed. Commits its journal and unlocks on drop, then wakes the sleepers whose
/// operations it completed.
pub(crate) struct Sems<'a> {
    r: &'a Region,
    /// The set whose lock is held.
    idx: u32,
    /// Only this semaphore's lock is held (a simple operation), with this lent journal.
    one: Option<u32>,
    lent: u32,
    /// The semaphore of `one` is gated by us.
    one_gated: core::cell::Cell<bool>,
    guard: Option<ObjGuard<'a>>,
    /// pid << 32 | CPU + 1 of the last other locker, when taken for a semop.
    peer: u64,
    /// Entries completed (indices fit 16 bits: a smaller frame for every holder).
    wakes: [core::cell::Cell<u16>; DEFERRED_WAKES],
    nwakes: core::cell::Cell<usize>,
}

impl Drop for Sems<'_> {
    fn drop(&mut self) {
        self.journal().commit();
        self.ungate();
        if let Some(num) = self.one {
            // Committed: the journal is nobody's (its lock's length is 0).
            lent_claim(self.r, self.lent).store(0, Ordering::Release);
            sem_lock_at(self.r, self.idx, num).lent.store(0, Ordering::Release);
        }
        // The results are committed: the sleepers may read them without the lock. An entry
        // freed meanwhile (its sleeper, completed by its own pass, returned) is not told.
        for qi in &self.wakes[..self.nwakes.get()] {
            killpoint::reached(Step::SemCommitted);
            let q = self.q(qi.get() as u32);
            if q.claim.load(Ordering::Relaxed) == self.idx + 1 && q.status != PENDING {
                q.done.store(1 - q.status as u32, Ordering::Release);
                q.wake.fetch_add(1, Ordering::SeqCst);
            }
            killpoint::reached(Step::SemTold);
        }
        if self.one.is_none() {
            self.complexmode_tryleave();
        }
        drop(self.guard.take());
        for qi in &self.wakes[..self.nwakes.get()] {
            self.q(qi.get() as u32).wake_sleeper();
        }
    }
}

/// Takes set `idx`'s lock for a served call (counted in `sem_calls`).
fn lock(r: &Region, idx: u32) -> Result<Sems<'_>, Errno> {
    let s = lock_uncounted(r, idx)?;
    count_call(r);
    Ok(s)
}

/// Takes set `idx`'s lock for a simple operation that found the set in complex mode: as the
/// kernel's sem_lock slow path, it does not prolong complex mode (nor enters it anew when the
/// mode ended meanwhile, unless a holder died holding the lock).
fn lock_for_simple(r: &Region, idx: u32) -> Result<Sems<'_>, Errno> {
    let s = lock_mode(r, idx, false)?;
    count_call(r);
    Ok(s)
}

/// Takes set `idx`'s lock for a view (`ipcs`, `/proc/sysvipc/sem`, status): not a call.
fn lock_uncounted(r: &Region, idx: u32) -> Result<Sems<'_>, Errno> {
    lock_mode(r, idx, true)
}

/// The set's lock, in complex mode; `complex`: for a complex operation, semctl or exit, which
/// keep the set in complex mode for the next few calls (complexmode_enter).
fn lock_mode(r: &Region, idx: u32, complex: bool) -> Result<Sems<'_>, Errno> {
    let idx = idx.min(IPCMNI - 1);
    // A slot never used holds no set (and its page may have no memory).
    if !set_backed(r, idx) {
        return Err(EINVAL);
    }
    let guard = set_at(r, idx).lock.lock(r).map_err(|_| ENOMEM)?;
    let recovered = guard.recovered;
    let s = Sems::new(r, idx, None, 0, guard);
    if recovered {
        r.header().counters.lock_recoveries.fetch_add(1, Ordering::Relaxed);
        s.journal().recover();
        Ids::repair(r);
        // gate() then gates every semaphore again and settles what is half done.
        s.set(idx).gated.store(0, Ordering::Relaxed);
    }
    if complex || recovered || s.set(idx).use_global.load(Ordering::Relaxed) == 0 {
        s.complexmode_enter(recovered);
    }
    Ok(s)
}

/// Global lock acquisitions a set stays in complex mode after its last complex operation
/// (the kernel's USE_GLOBAL_LOCK_HYSTERESIS).
const GLOBAL_HYSTERESIS: u32 = 10;

/// Where semaphore `num` of set `idx`'s own lock lives.
const fn sem_lock_off(idx: u32, num: u32) -> u64 {
    SEM_LOCKS_OFF + (idx as u64 * SEM_WINDOW as u64 + num as u64) * size_of::<ObjLock>() as u64
}

fn sem_lock_at(r: &Region, idx: u32, num: u32) -> &ObjLock {
    // SAFETY: bounded indices into the lock window of each set; the lock is shared.
    unsafe { r.at::<ObjLock>(sem_lock_off(idx.min(IPCMNI - 1), num.min(SEM_WINDOW - 1))) }
}

/// What a lent journal's claim word holds while semaphore `num` of set `idx` has it.
const fn lent_owner(idx: u32, num: u32) -> u32 {
    idx * SEM_WINDOW + num + 1
}

fn lent_claim(r: &Region, i: u32) -> &AtomicU32 {
    let off = SEM_LENT_CLAIMS_OFF + i.min(SEM_LENT_JOURNALS - 1) as u64 * 4;
    // SAFETY: an aligned u32 of the claim words (reserved before any is claimed).
    unsafe { &*((r.base() + off as usize) as *const AtomicU32) }
}

fn lent_journal<'a>(r: &'a Region, lock: &'a ObjLock, i: u32) -> Journal<'a> {
    let off = SEM_LENT_JOURNAL_OFF + i.min(SEM_LENT_JOURNALS - 1) as u64 * JOURNAL_BYTES;
    Journal::new(r, lock, off, core::ptr::null()..core::ptr::null())
}

/// A semaphore's lock whose holder was killed holding it: its lent journal is replayed and
/// given back. The journal is named in the lock before it is claimed, and entries are written
/// only once it is claimed, so a claim word that is not the lock's means nothing was written.
fn recover_one(r: &Region, lock: &ObjLock, owner: u32) {
    r.header().counters.lock_recoveries.fetch_add(1, Ordering::Relaxed);
    let i = lock.lent.load(Ordering::Acquire);
    if i != 0 {
        let claim = lent_claim(r, i - 1);
        if claim.load(Ordering::Acquire) == owner {
            lent_journal(r, lock, i - 1).recover();
            claim.store(0, Ordering::Release);
        }
        lock.lent.store(0, Ordering::Release);
    }
}

/// A free lent journal for the holder of `lock`, semaphore `owner`: `None` when all are in use.
fn lend(r: &Region, lock: &ObjLock, owner: u32) -> Option<u32> {
    r.reserve(SEM_LENT_CLAIMS_OFF, SEM_LENT_JOURNALS as u64 * 4).ok()?;
    for k in 0..SEM_LENT_JOURNALS {
        let i = (owner + k) % SEM_LENT_JOURNALS;
        let claim = lent_claim(r, i);
        if claim.load(Ordering::Relaxed) == 0 {
            lock.lent.store(i + 1, Ordering::SeqCst);
            if claim.compare_exchange(0, owner, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                return Some(i);
            }
        }
    }
    lock.lent.store(0, Ordering::Release);
    None
}

/// `sem_lock` for a simple operation on semaphore `num` of set `idx`: that semaphore's lock
/// only, while no complex operation keeps the set's (`use_global_lock`). `None`: take the
/// set's lock (also when no journal can be lent).
fn lock_one(r: &Region, idx: u32, num: u32) -> Option<Sems<'_>> {
    let idx = idx.min(IPCMNI - 1);
    if num >= SEM_WINDOW || !set_backed(r, idx) {
        return None;
    }
    let set = set_at(r, idx);
    if set.use_global.load(Ordering::Acquire) != 0 || r.reserve(sem_lock_off(idx, num), 64).is_err() {
        return None;
    }
    let lock = sem_lock_at(r, idx, num);
    let guard = lock.lock(r).ok()?;
    let owner = lent_owner(idx, num);
    if guard.recovered {
        recover_one(r, lock, owner);
    }
    // Pairs with complexmode_enter, which stores use_global before it takes each
    // semaphore's lock: either it waits for us, or we see its store.
    if set.use_global.load(Ordering::SeqCst) != 0 {
        return None;
    }
    let lent = lend(r, lock, owner)?;
    count_call(r);
    Some(Sems::new(r, idx, Some(num), lent, guard))
}

/// The set of `semid`, locked: EINVAL if there is none.
fn lock_id(r: &Region, semid: i32) -> Result<Sems<'_>, Errno> {
    let s = lock(r, ipc::id_to_idx(semid))?;
    s.check(semid)?;
    Ok(s)
}

/// The semaphore family's ids (see `ipc::LockedIds`).
pub(crate) struct SemIds;

/// The namespace's ids lock, held (a set being created is released after it).
type Ids<'a> = ipc::Ids<'a, SemIds>;

fn lock_ids(r: &Region) -> Result<Ids<'_>, Errno> {
    Ids::lock(r)
}

impl LockedIds for SemIds {
    type Params = u32;
    type Obj<'a> = Sems<'a>;
    const JOURNALS: u64 = SEM_JOURNAL_OFF;
    const SLOTS: (u64, u64) = (SEM_SETS_OFF, size_of::<SemArray>() as u64);

    fn lock(r: &Region) -> &ObjLock {
        &ns_of(r).lock
    }

    fn words(r: &Region) -> core::ops::Range<*const u8> {
        let ns = ns_of(r);
        (&raw const ns.ids).cast::<u8>()..(&raw const ns.pools).cast::<u8>()
    }

    fn ids(r: &Region) -> &mut ipc::IpcIds {
        // SAFETY: changed only under the ids' lock.
        unsafe { &mut r.header_mut().sem.ids }
    }

    fn perm(r: &Region, idx: u32) -> Option<&KernIpcPerm> {
        let s = set_backed(r, idx).then(|| set_at(r, idx))?;
        (s.live != 0).then_some(&s.perm)
    }

    /// `newary`: the set is made under its own lock, and goes live by a store journalled with
    /// the ids.
    fn getnew(ids: &mut Ids<'_>, cred: &Cred, key: i32, flg: i32, nsems: &u32) -> Result<i32, Errno> {
        let nsems = *nsems;
        if nsems == 0 {
            return Err(EINVAL);
        }
        let limits = ids.r.header().limits;
        if ids.ns().used_sems as i64 + nsems as i64 > limits.semmns as i32 as i64 {
            return Err(ENOSPC);
        }
        if nsems > SEM_WINDOW {
            return Err(ENOMEM);
        }
        let (idx, seq) = ids.alloc(limits.semmni)?;
        // The new set's semaphores get their memory first, as its slot did.
        let sems = ids.r.reserve(sem_off(idx, 0), nsems as u64 * size_of::<Sem>() as u64).map_err(|_| ENOMEM);
        let s = match sems.and_then(|()| lock_uncounted(ids.r, idx)) {
            Ok(s) => s,
            Err(e) => {
                ids.journal().recover();
                return Err(e);
            }
        };
        let id = ipc::build_id(seq, idx);
        // Not journalled: the set is not live until the store below, and the next set in the
        // slot writes them again. Gated from the start, as a new set's id may be guessed.
        for n in 0..nsems {
            let sem = s.sem(idx, n);
            sem.word.store(word_of(0, 0, seq) | GATED, Ordering::Release);
            sem.otime.store(0, Ordering::Relaxed);
            sem.pending_alter = List::default();
            sem.pending_const = List::default();
        }
        let set = s.set(idx);
        set.nsems = nsems;
        set.perm = KernIpcPerm::new(cred, key, flg, seq, id);
        set.ctime = sys::coarse_seconds();
        (set.pending_alter, set.pending_const) = (List::default(), List::default());
        (set.complex_count, set.undo_head, set.queued, set.undo_seq) = (0, 0, 0, 0);
        // Ungated when the set's lock drops.
        set.gated.store(1, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        ids.w(&mut set.live, 1);
        ids.w(&mut ids.ns().used_sems, ids.ns().used_sems + nsems);
        ids.h.under = Some(s);
        Ok(id)
    }

    fn more_checks(r: &Region, idx: u32, nsems: &u32) -> Result<(), Errno> {
        if *nsems > set_at(r, idx).nsems { Err(EINVAL) } else { Ok(()) }
    }

    /// `used_sems`, from the live sets.
    fn recount(r: &Region, max_idx: i32) {
        let sems =
            (0..=max_idx).filter_map(|i| Self::perm(r, i as u32).map(|_| set_at(r, i as u32).nsems)).sum();
        // SAFETY: the ids' lock is held (recount runs in `Ids::recovered`).
        unsafe { r.header_mut().sem.used_sems = sems };
    }
}

impl<'a> Ids<'a> {
    #[allow(clippy::mut_from_ref)]
    fn ns(&self) -> &'a mut SemNs {
        // SAFETY: the ids lock is held for the lifetime of `Ids`.
        unsafe { &mut self.r.header_mut().sem }
    }

    /// `sem_rmid`'s ids half, after the set's own was committed.
    fn remove_set(&self, idx: u32, nsems: u32) {
        let ns = self.ns();
        let used = ns.used_sems.saturating_sub(nsems);
        self.w(&mut ns.used_sems, used);
        self.remove(idx);
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Perform {
    Done,
    Block(usize),
    Fail(Errno),
}

impl<'a> Sems<'a> {
    fn new(r: &'a Region, idx: u32, one: Option<u32>, lent: u32, guard: ObjGuard<'a>) -> Sems<'a> {
        Sems {
            r,
            idx,
            one,
            lent,
            one_gated: Default::default(),
            peer: 0,
            guard: Some(guard),
            wakes: core::array::from_fn(|_| core::cell::Cell::new(0)),
            nwakes: Default::default(),
        }
    }

    /// `complexmode_enter`, with the set's lock just taken: no semaphore's lock holder may
    /// still change the set. Each semaphore's lock is taken and released in turn, which also
    /// rolls back a holder killed holding one. Done in full after a recovery (a holder killed
    /// midway left use_global set).
    fn complexmode_enter(&self, recovered: bool) {
        let set = self.set(self.idx);
        if set.use_global.load(Ordering::Relaxed) != 0 && !recovered {
            set.use_global.store(GLOBAL_HYSTERESIS, Ordering::Relaxed);
            return;
        }
        set.use_global.store(GLOBAL_HYSTERESIS, Ordering::SeqCst);
        for num in 0..set.nsems.min(SEM_WINDOW) {
            // A lock whose page was never reserved was never taken (a locker reserves it, then
            // sees use_global once it holds it).
            if self.r.reserved(sem_lock_off(self.idx, num), 64) {
                let lock = sem_lock_at(self.r, self.idx, num);
                if let Ok(g) = lock.lock(self.r) {
                    if g.recovered {
                        recover_one(self.r, lock, lent_owner(self.idx, num));
                    }
                    killpoint::reached(Step::SemComplexEnter);
                }
            }
        }
    }

    /// `complexmode_tryleave`, after the journal is committed: with no complex operation
    /// sleeping, the semaphores' locks serve simple ones again after a few more calls. A
    /// removed set stays in complex mode.
    fn complexmode_tryleave(&self) {
        let set = self.set(self.idx);
        let u = set.use_global.load(Ordering::Relaxed);
        if set.live != 0 && set.complex_count == 0 && set.queued == 0 && u != 0 {
            set.use_global.store(u - 1, Ordering::Release);
        }
    }

    /// Whether a simple operation of process `slot` on semaphore `num` needs nothing only the
    /// set's lock may do first: an undo entry to create (find_alloc_undo), a dead process's
    /// adjustments or sleepers to settle, or an error to report.
    fn one_ready(&self, semid: i32, sop: &Sembuf, slot: u32, cred: &Cred) -> bool {
        let (idx, num) = (self.idx, sop.sem_num as u32);
        let set = self.set(idx);
        let mode = if sop.sem_op != 0 { S_IWUGO } else { S_IRUGO };
        if self.check(semid).is_err() || num >= set.nsems || !set.perm.ipcperms(cred, mode) {
            return false;
        }
        if sop.sem_flg & SEM_UNDO != 0
            && self.find_undo(slot, idx, semid).and_then(|ui| self.find_adj(ui, num)).is_none()
        {
            return false;
        }
        !self.any_dead(num)
    }

    /// Whether a process with adjustments on the set, or sleeping on semaphore `num`, died
    /// (as far as one look tells: see `dead`).
    fn any_dead(&self, num: u32) -> bool {
        let mut cur = self.set(self.idx).undo_head;
        for _ in 0..MAX_WALK {
            if cur == 0 {
                break;
            }
            let u = self.undo(cur - 1);
            if u.owner < MAX_PROCS && self.dead(u.owner, false) {
                return true;
            }
            cur = u.set_next;
        }
        [3 + 2 * num, 4 + 2 * num].into_iter().any(|code| {
            let mut dead = false;
            self.each(self.idx, code, |qi| {
                let o = self.q(qi).owner;
                dead |= o < MAX_PROCS && self.dead(o, false);
            });
            dead
        })
    }

    #[allow(clippy::mut_from_ref)]
    fn ns(&self) -> &'a SemNs {
        ns_of(self.r)
    }

    #[allow(clippy::mut_from_ref)]
    fn set(&self, idx: u32) -> &'a mut SemArray {
        debug_assert!(idx == self.idx);
        set_at(self.r, idx)
    }

    /// The set is live and has id `semid` (`sem_obtain_object_check`).
    fn check(&self, semid: i32) -> Result<(), Errno> {
        let set = self.set(self.idx);
        if set.live != 0 && set.perm.id == semid { Ok(()) } else { Err(EINVAL) }
    }

    #[allow(clippy::mut_from_ref)]
    fn sem(&self, idx: u32, num: u32) -> &'a mut Sem {
        debug_assert!(idx < IPCMNI && num < SEM_WINDOW);
        let off = SEM_SEMS_OFF + (idx as u64 * SEM_WINDOW as u64 + num as u64) * size_of::<Sem>() as u64;
        // SAFETY: each set has a window of SEM_WINDOW semaphores; lock held.
        unsafe { self.r.at::<Sem>(off) }
    }

    /// Semaphore `num`'s word, with its set gated.
    fn word(&self, idx: u32, num: u32) -> u64 {
        self.gate(idx);
        self.sem(idx, num).word.load(Ordering::Acquire)
    }

    fn val(&self, idx: u32, num: u32) -> i32 {
        word_val(self.word(idx, num))
    }

    fn pid(&self, idx: u32, num: u32) -> i32 {
        word_pid(self.word(idx, num))
    }

    /// A journalled change of semaphore `num`'s value and last pid.
    fn set_val(&self, idx: u32, num: u32, val: i32, pid: i32) {
        let w = self.word(idx, num);
        let new = with_val_pid(w, val, pid);
        if new != w {
            let word = &self.sem(idx, num).word;
            self.save(word.as_ptr() as *const u8, 8);
            word.store(new, Ordering::Release);
        }
    }

    /// Makes every lock-free semop on the set (or on the semaphore whose lock is held) fail
    /// over to the lock until the lock is dropped, and settles lock-free SEM_UNDO semops caught
    /// half done.
    fn gate(&self, idx: u32) {
        if let Some(num) = self.one {
            if !self.one_gated.replace(true)
                && self.sem(idx, num).word.fetch_or(GATED, Ordering::AcqRel) & PENDING_UNDO != 0
            {
                self.settle_pending(idx, num);
            }
            return;
        }
        let set = self.set(idx);
        if set.gated.load(Ordering::Relaxed) == 0 {
            // First the flag: a holder killed midway leaves a set its recovery gates again.
            set.gated.store(1, Ordering::Relaxed);
            compiler_fence(Ordering::SeqCst);
            for num in 0..set.nsems.min(SEM_WINDOW) {
                if self.sem(idx, num).word.fetch_or(GATED, Ordering::AcqRel) & PENDING_UNDO != 0 {
                    self.settle_pending(idx, num);
                }
            }
        }
    }

    /// Lets lock-free semops back onto each semaphore nobody sleeps on, when no complex
    /// operation sleeps in the set.
    fn ungate(&self) {
        let set = self.set(self.idx);
        if set.live == 0 || set.queued != 0 {
            return;
        }
        let idle = |sem: &Sem| sem.pending_alter.head == 0 && sem.pending_const.head == 0;
        if let Some(num) = self.one {
            let sem = self.sem(self.idx, num);
            if self.one_gated.get() && idle(sem) {
                // First the set's flag: killed in between, a semaphore stays gated, never the
                // flag claiming one is that is not.
                set.gated.store(0, Ordering::SeqCst);
                sem.word.fetch_and(!GATED, Ordering::Release);
            }
            return;
        }
        if set.gated.load(Ordering::Relaxed) != 0 {
            let mut any = false;
            for num in 0..set.nsems.min(SEM_WINDOW) {
                let sem = self.sem(self.idx, num);
                if idle(sem) {
                    sem.word.fetch_and(!GATED, Ordering::Release);
                    any = true;
                }
            }
            if any {
                set.gated.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Semaphore `num` of gated set `idx` has PENDING_UNDO: its process is between changing the
    /// value and storing its adjustment. Waits for it, or finishes for it if it died.
    fn settle_pending(&self, idx: u32, num: u32) {
        let word = &self.sem(idx, num).word;
        let word_off = word.as_ptr() as u64 - self.r.base() as u64;
        let start = sys::monotonic_ns();
        loop {
            let w = word.load(Ordering::Acquire);
            if w & PENDING_UNDO == 0 {
                return;
            }
            let pid = word_pid(w);
            let hwm = self.r.header().procs_hwm.load(Ordering::Relaxed).min(MAX_PROCS);
            let slot = (0..hwm).find(|&sl| {
                let rec = self.record(sl);
                rec.state.load(Ordering::Acquire) == LIVE && rec.pid == pid
            });
            // Our own pid: another thread of ours, which has had ample time unless exit or
            // exec killed it midway.
            let gone = match slot {
                None => true,
                Some(_) if pid == proc::self_pid() => sys::monotonic_ns() - start > 10_000_000,
                Some(sl) => self.dead(sl, true),
            };
            if !gone {
                let _ = sys::syscall6(libc::SYS_sched_yield, 0, 0, 0, 0, 0, 0);
                continue;
            }
            if let Some(sl) = slot {
                let it = &self.record(sl).sem_intent;
                let stage = it.stage.load(Ordering::Acquire);
                if it.word_off.load(Ordering::Relaxed) == word_off && (stage == STARTED || stage == STORED) {
                    let a = self.adj(it.adj.load(Ordering::Relaxed));
                    if stage == STARTED {
                        // Recorded before storing, so a settler killed here is not repeated.
                        it.new_adj.store(a.adj - it.op.load(Ordering::Relaxed), Ordering::Relaxed);
                        it.stage.store(STORED, Ordering::Release);
                        compiler_fence(Ordering::SeqCst);
                    }
                    // SAFETY: an adjustment entry in the region; no one else writes it while the
                    // semaphore is PENDING_UNDO.
                    unsafe { core::ptr::write_volatile(&mut a.adj, it.new_adj.load(Ordering::Relaxed)) };
                    self.r.header().counters.sem_undo_settled.fetch_add(1, Ordering::Relaxed);
                }
                word.fetch_and(!PENDING_UNDO, Ordering::AcqRel);
                it.stage.store(IDLE, Ordering::Release);
            } else {
                word.fetch_and(!PENDING_UNDO, Ordering::AcqRel);
            }
            return;
        }
    }

    #[allow(clippy::mut_from_ref)]
    fn q(&self, qi: u32) -> &'a mut SemQueue {
        q_at(self.r, qi)
    }

    #[allow(clippy::mut_from_ref)]
    fn sops(&self, qi: u32) -> &'a mut [Sembuf] {
        let qi = qi.min(SEM_QUEUE_MAX - 1);
        let n = (self.q(qi).nsops).min(SEM_SOPS_MAX);
        let off = sops_off(qi, n);
        // SAFETY: each queue entry owns that many sembufs there (see `sops_off`); lock held.
        unsafe { core::slice::from_raw_parts_mut((self.r.base() + off as usize) as *mut Sembuf, n as usize) }
    }

    #[allow(clippy::mut_from_ref)]
    fn undo(&self, ui: u32) -> &'a mut SemUndo {
        let ui = ui.min(SEM_UNDO_MAX - 1);
        // SAFETY: bounded index into the undo pool; the set's lock held.
        unsafe { self.r.at::<SemUndo>(SEM_UNDO_OFF + ui as u64 * size_of::<SemUndo>() as u64) }
    }

    #[allow(clippy::mut_from_ref)]
    fn adj(&self, ai: u32) -> &'a mut SemAdj {
        let ai = ai.min(SEM_ADJ_MAX - 1);
        // SAFETY: bounded index into the adjustment pool; the set's lock held.
        unsafe { self.r.at::<SemAdj>(SEM_ADJ_OFF + ai as u64 * size_of::<SemAdj>() as u64) }
    }

    #[allow(clippy::mut_from_ref)]
    fn record(&self, slot: u32) -> &'a mut ProcRecord {
        // SAFETY: slot < MAX_PROCS (checked by callers); only its identity fields and atomics
        // are used, which do not change while it holds entries of this set.
        unsafe { proc::record(self.r, slot.min(MAX_PROCS - 1)) }
    }

    // ---- the journal ----

    fn journal(&self) -> Journal<'a> {
        if let Some(num) = self.one {
            return lent_journal(self.r, sem_lock_at(self.r, self.idx, num), self.lent);
        }
        let set = set_at(self.r, self.idx);
        Journal::new(
            self.r,
            &set.lock,
            SEM_JOURNAL_OFF + self.idx as u64 * JOURNAL_BYTES,
            core::ptr::null()..core::ptr::null(),
        )
    }

    /// Saves the 8-byte words covering `[p, p + len)` before they are changed.
    fn save(&self, p: *const u8, len: usize) {
        self.journal().save(p, len);
    }

    /// A journalled store.
    fn w<T: Copy>(&self, place: &mut T, v: T) {
        self.save(place as *const T as *const u8, size_of::<T>());
        *place = v;
    }

    // ---- pools ----

    fn pool(&self, which: u8) -> Pool<'a> {
        let (off, stride, claim, max, _) = POOLS[which as usize];
        let head = &self.ns().pools[which as usize];
        // The sets keep no entries of their own (sleepers free theirs without the lock).
        Pool { r: self.r, words: off + claim, stride, links: off, link_stride: stride, max, head }
    }

    /// A free entry of pool `which` (sleepers, undo records, adjustments), now the set's.
    fn alloc(&self, which: u8) -> Result<u32, Errno> {
        self.pool(which).claim(&self.journal(), self.idx + 1, POOLS[which as usize].4).ok_or(ENOMEM)
    }

    /// Gives entry `i` of pool `which` back when the lock is released.
    fn free(&self, which: u8, i: u32) {
        self.pool(which).free(&self.journal(), i, self.idx + 1);
    }

    fn free_q(&self, qi: u32) {
        self.free(0, qi);
    }

    // ---- queues ----

    fn list(&self, set: u32, code: u32) -> &'a mut List {
        match code {
            1 => &mut self.set(set).pending_alter,
            2 => &mut self.set(set).pending_const,
            c if c % 2 == 1 => &mut self.sem(set, (c - 3) / 2).pending_alter,
            c => &mut self.sem(set, (c - 4) / 2).pending_const,
        }
    }

    fn add_tail(&self, set: u32, code: u32, qi: u32) {
        self.gate(set);
        let l = self.list(set, code);
        let q = self.q(qi);
        self.w(&mut q.prev, l.tail);
        self.w(&mut q.next, 0);
        self.w(&mut q.list, code);
        if l.tail != 0 {
            self.w(&mut self.q(l.tail - 1).next, qi + 1);
        } else {
            self.w(&mut l.head, qi + 1);
        }
        self.w(&mut l.tail, qi + 1);
        self.count_queued(set, code, 1);
    }

    /// Sleepers on the set's own lists are counted (`queued`).
    fn count_queued(&self, set: u32, code: u32, add: i32) {
        if code <= 2 {
            let v = self.set(set).queued.saturating_add_signed(add);
            self.w(&mut self.set(set).queued, v);
        }
    }

    fn unlink(&self, qi: u32) {
        let q = self.q(qi);
        if q.list == 0 {
            return;
        }
        // With its last sleeper gone the set may be ungated when the lock drops.
        self.gate(q.set);
        let l = self.list(q.set, q.list);
        if q.prev != 0 {
            self.w(&mut self.q(q.prev - 1).next, q.next);
        } else {
            self.w(&mut l.head, q.next);
        }
        if q.next != 0 {
            self.w(&mut self.q(q.next - 1).prev, q.prev);
        } else {
            self.w(&mut l.tail, q.prev);
        }
        let code = q.list;
        self.w(&mut q.list, 0);
        self.count_queued(q.set, code, -1);
        if q.nsops > 1 {
            let set = self.set(q.set);
            let v = set.complex_count.saturating_sub(1);
            self.w(&mut set.complex_count, v);
        }
    }

    /// Hands each entry of list `code` to `f` after reading its successor, so that `f` may
    /// take it off the list (`list_for_each_entry_safe`); allocates nothing. Should `f` take
    /// the successor off too, the walk starts over.
    fn each(&self, set: u32, code: u32, mut f: impl FnMut(u32)) {
        let mut cur = self.list(set, code).head;
        for _ in 0..SEM_QUEUE_MAX {
            if cur == 0 {
                break;
            }
            let qi = cur - 1;
            cur = self.q(qi).next;
            f(qi);
            if cur != 0 && self.q(cur - 1).list != code {
                cur = self.list(set, code).head;
            }
        }
    }

    /// `merge_queues`: a complex operation is about to sleep; every simple one moves to the
    /// set's list, each semaphore's list spliced in front.
    fn merge_queues(&self, set: u32) {
        for n in 0..self.set(set).nsems {
            // From the tail, each to the head: the order is kept.
            let mut cur = self.list(set, 3 + 2 * n).tail;
            for _ in 0..SEM_QUEUE_MAX {
                if cur == 0 {
                    break;
                }
                let qi = cur - 1;
                cur = self.q(qi).prev;
                self.unlink(qi);
                self.add_head(set, 1, qi);
            }
        }
    }

    fn add_head(&self, set: u32, code: u32, qi: u32) {
        self.gate(set);
        let l = self.list(set, code);
        let q = self.q(qi);
        self.w(&mut q.prev, 0);
        self.w(&mut q.next, l.head);
        self.w(&mut q.list, code);
        if l.head != 0 {
            self.w(&mut self.q(l.head - 1).prev, qi + 1);
        } else {
            self.w(&mut l.tail, qi + 1);
        }
        self.w(&mut l.head, qi + 1);
        self.count_queued(set, code, 1);
    }

    /// `unmerge_queues`, done when the kernel drops the global lock with no complex op left.
    fn unmerge_queues(&self, set: u32) {
        let s = self.set(set);
        if s.live == 0 || s.complex_count != 0 || s.pending_alter.head == 0 {
            return;
        }
        self.each(set, 1, |qi| {
            let num = self.sops(qi).first().map_or(0, |s| s.sem_num as u32);
            self.unlink(qi);
            self.add_tail(set, 3 + 2 * num, qi);
        });
    }

    // ---- undo ----

    /// `lookup_undo`: process `owner`'s entry on the set.
    fn find_undo(&self, owner: u32, set: u32, id: i32) -> Option<u32> {
        let mut cur = self.set(set).undo_head;
        for _ in 0..MAX_WALK {
            if cur == 0 {
                return None;
            }
            let u = self.undo(cur - 1);
            if u.owner == owner && u.set == set && u.id == id {
                return Some(cur - 1);
            }
            cur = u.set_next;
        }
        None
    }

    fn find_adj(&self, ui: u32, semnum: u32) -> Option<u32> {
        let mut cur = self.undo(ui).adj_head;
        for _ in 0..MAX_WALK {
            if cur == 0 {
                return None;
            }
            if self.adj(cur - 1).semnum == semnum {
                return Some(cur - 1);
            }
            cur = self.adj(cur - 1).next;
        }
        None
    }

    /// `find_alloc_undo`, plus an entry for each semaphore the operation adjusts.
    fn alloc_undo(&self, owner: u32, set: u32, id: i32, sops: &[Sembuf]) -> Result<(), Errno> {
        self.gate(set);
        let ui = match self.find_undo(owner, set, id) {
            Some(ui) => ui,
            None => {
                // Named in the owner's bitmap first: its exit looks at this set. The bitmap
                // gets its memory at the owner's first undo record (no room: ENOMEM).
                self.r.reserve(proc_sets_off(owner), SEM_PROC_SETS_BYTES).map_err(|_| ENOMEM)?;
                proc_sets(self.r, owner)[set as usize / 64].fetch_or(1 << (set % 64), Ordering::AcqRel);
                let ui = self.alloc(1)?;
                let s = self.set(set);
                let u = self.undo(ui);
                self.save(u as *const SemUndo as *const u8, core::mem::offset_of!(SemUndo, claim));
                (u.owner, u.set, u.id, u.adj_head) = (owner, set, id, 0);
                (u.set_next, u.set_prev) = (s.undo_head, 0);
                if s.undo_head != 0 {
                    self.w(&mut self.undo(s.undo_head - 1).set_prev, ui + 1);
                }
                self.w(&mut s.undo_head, ui + 1);
                let seq = s.undo_seq.wrapping_add(1);
                self.w(&mut s.undo_seq, seq);
                ui
            }
        };
        for sop in sops.iter().filter(|s| s.sem_flg & SEM_UNDO != 0) {
            if self.find_adj(ui, sop.sem_num as u32).is_none() {
                let ai = self.alloc(2)?;
                let u = self.undo(ui);
                let a = self.adj(ai);
                self.save(a as *const SemAdj as *const u8, core::mem::offset_of!(SemAdj, claim));
                (a.semnum, a.adj, a.next) = (sop.sem_num as u32, 0, u.adj_head);
                self.w(&mut u.adj_head, ai + 1);
            }
        }
        Ok(())
    }

    /// Unlinks undo entry `ui` from the set's list and frees it with its adjustments.
    fn free_undo(&self, ui: u32) {
        let u = self.undo(ui);
        let s = self.set(self.idx);
        self.gate(self.idx);
        let seq = s.undo_seq.wrapping_add(1);
        self.w(&mut s.undo_seq, seq);
        if u.set_prev != 0 {
            self.w(&mut self.undo(u.set_prev - 1).set_next, u.set_next);
        } else if s.undo_head == ui + 1 {
            self.w(&mut s.undo_head, u.set_next);
        }
        if u.set_next != 0 {
            self.w(&mut self.undo(u.set_next - 1).set_prev, u.set_prev);
        }
        let mut cur = u.adj_head;
        for _ in 0..MAX_WALK {
            if cur == 0 {
                break;
            }
            self.free(2, cur - 1);
            cur = self.adj(cur - 1).next;
        }
        self.free(1, ui);
    }

    /// Hands each undo entry of the set to `f` after reading its successor (`f` may free it).
    fn each_undo(&self, set: u32, mut f: impl FnMut(u32)) {
        let mut cur = self.set(set).undo_head;
        for _ in 0..SEM_UNDO_MAX {
            if cur == 0 {
                break;
            }
            let ui = cur - 1;
            cur = self.undo(ui).set_next;
            f(ui);
        }
    }

    /// Zeroes every process's adjustment of semaphore `num` (all of them for `None`).
    fn clear_adj(&self, set: u32, num: Option<u32>) {
        self.gate(set);
        self.each_undo(set, |ui| {
            let mut cur = self.undo(ui).adj_head;
            for _ in 0..MAX_WALK {
                if cur == 0 {
                    break;
                }
                let a = self.adj(cur - 1);
                if num.is_none_or(|n| n == a.semnum) && a.adj != 0 {
                    self.w(&mut a.adj, 0);
                }
                cur = a.next;
            }
        });
    }

    // ---- operations ----

    /// `perform_atomic_semop`: checks every operation in order against the values the earlier
    /// ones leave, then applies them all. Nothing is written unless all succeed.
    fn perform(&self, set: u32, sops: &[Sembuf], owner: u32, pid: i32) -> Perform {
        self.gate(set);
        let id = self.set(set).perm.id;
        let undo = if sops.iter().any(|s| s.sem_flg & SEM_UNDO != 0) {
            self.find_undo(owner, set, id)
        } else {
            None
        };
        let adj_of = |num: u32| undo.and_then(|ui| self.find_adj(ui, num));
        let dup = has_dup(sops);
        let mut adjs = [u32::MAX; 64];
        for (i, sop) in sops.iter().enumerate() {
            let num = sop.sem_num as u32;
            let earlier = |f: &dyn Fn(&Sembuf) -> i32| {
                if dup {
                    sops[..i].iter().filter(|s| s.sem_num == sop.sem_num).map(f).sum::<i32>()
                } else {
                    0
                }
            };
            let curr = self.val(set, num) + earlier(&|s| s.sem_op as i32);
            let op = sop.sem_op as i32;
            if op == 0 && curr != 0 {
                return self.would_block(i, sop);
            }
            let result = curr + op;
            if result < 0 {
                return self.would_block(i, sop);
            }
            if result > SEMVMX {
                return Perform::Fail(ERANGE);
            }
            if sop.sem_flg & SEM_UNDO != 0 {
                let Some(ai) = adj_of(num) else { return Perform::Fail(EINVAL) };
                if i < adjs.len() {
                    adjs[i] = ai;
                }
                let earlier_undo =
                    earlier(&|s| if s.sem_flg & SEM_UNDO != 0 { -(s.sem_op as i32) } else { 0 });
                let adj = self.adj(ai).adj + earlier_undo - op;
                if !(-SEMAEM - 1..=SEMAEM).contains(&adj) {
                    return Perform::Fail(ERANGE);
                }
            }
        }
        for (i, sop) in sops.iter().enumerate() {
            let num = sop.sem_num as u32;
            if sop.sem_flg & SEM_UNDO != 0 {
                let ai =
                    adjs.get(i).copied().filter(|&a| a != u32::MAX).or_else(|| adj_of(sop.sem_num as u32));
                if let Some(ai) = ai {
                    let a = self.adj(ai);
                    let v = a.adj - sop.sem_op as i32;
                    self.w(&mut a.adj, v);
                }
            }
            self.set_val(set, num, self.val(set, num) + sop.sem_op as i32, pid);
        }
        Perform::Done
    }

    fn would_block(&self, i: usize, sop: &Sembuf) -> Perform {
        if sop.sem_flg & IPC_NOWAIT != 0 { Perform::Fail(EAGAIN) } else { Perform::Block(i) }
    }

    /// Retries queued operation `qi`; `Some(result)` when it left the queue.
    fn retry(&self, qi: u32) -> Option<i32> {
        let q = self.q(qi);
        let sops = self.sops(qi);
        match self.perform(q.set, sops, q.owner, q.pid) {
            Perform::Block(b) => {
                if q.blocking != b as u32 {
                    self.w(&mut q.blocking, b as u32);
                }
                None
            }
            Perform::Done => Some(0),
            Perform::Fail(e) => Some(-e),
        }
    }

    /// `wake_up_sem_queue_prepare`: the entry leaves its queue with `status`.
    fn complete(&self, qi: u32, status: i32) {
        self.unlink(qi);
        let q = self.q(qi);
        self.w(&mut q.status, status);
        killpoint::reached(Step::SemCompleted);
        UNCOUNTED_WAKEUPS.bump(&self.r.header().counters.sem_wakeups);
        let n = self.nwakes.get();
        if n < DEFERRED_WAKES {
            self.wakes[n].set(qi as u16);
            self.nwakes.set(n + 1);
        } else {
            // Told at once: it reads the result under the lock.
            q.wake.fetch_add(1, Ordering::SeqCst);
            q.wake_sleeper();
        }
    }

    /// `wake_const_ops`.
    fn wake_const_ops(&self, set: u32, code: u32) -> bool {
        let mut completed = false;
        self.each(set, code, |qi| {
            if let Some(st) = self.retry(qi) {
                self.complete(qi, st);
                completed |= st == 0;
            }
        });
        completed
    }

    /// `do_smart_wakeup_zero`: `sops` None means every semaphore may have changed.
    fn wakeup_zero(&self, set: u32, sops: Option<&[Sembuf]>) -> bool {
        let mut completed = false;
        let mut got_zero = false;
        let mut each = |num: u32| {
            if self.val(set, num) == 0 {
                got_zero = true;
                completed |= self.wake_const_ops(set, 4 + 2 * num);
            }
        };
        match sops {
            Some(sops) => sops.iter().for_each(|s| each(s.sem_num as u32)),
            None => (0..self.set(set).nsems).for_each(each),
        }
        if got_zero {
            completed |= self.wake_const_ops(set, 2);
        }
        completed
    }

    /// `update_queue`: `num` None is the set's own list.
    fn update_queue(&self, set: u32, num: Option<u32>) -> bool {
        let code = num.map_or(1, |n| 3 + 2 * n);
        let mut completed = false;
        'again: loop {
            let mut cur = self.list(set, code).head;
            for _ in 0..SEM_QUEUE_MAX {
                if cur == 0 {
                    break;
                }
                let qi = cur - 1;
                cur = self.q(qi).next;
                if num.is_some_and(|n| self.val(set, n) == 0) {
                    break 'again;
                }
                let Some(st) = self.retry(qi) else { continue };
                self.unlink(qi);
                let mut restart = false;
                if st == 0 {
                    completed = true;
                    self.wakeup_zero(set, Some(self.sops(qi)));
                    // check_restart
                    restart = self.set(set).pending_alter.head != 0 || self.q(qi).nsops > 1;
                }
                self.complete(qi, st);
                // Also when the next entry was completed by this wake-up.
                if restart || (cur != 0 && self.q(cur - 1).list != code) {
                    continue 'again;
                }
            }
            break;
        }
        completed
    }

    /// `do_smart_update`.
    fn smart_update(&self, set: u32, sops: Option<&[Sembuf]>, otime: bool) {
        let mut otime = otime | self.wakeup_zero(set, sops);
        if self.set(set).pending_alter.head != 0 {
            otime |= self.update_queue(set, None);
        } else {
            match sops {
                None => {
                    for n in 0..self.set(set).nsems {
                        otime |= self.update_queue(set, Some(n));
                    }
                }
                Some(sops) => {
                    for s in sops.iter().filter(|s| s.sem_op > 0) {
                        otime |= self.update_queue(set, Some(s.sem_num as u32));
                    }
                }
            }
        }
        if otime {
            self.set_semotime(set, sops);
        }
    }

    fn set_semotime(&self, set: u32, sops: Option<&[Sembuf]>) {
        let num = sops.and_then(|s| s.first()).map_or(0, |s| s.sem_num as u32);
        let now = sys::coarse_seconds();
        let otime = &self.sem(set, num).otime;
        if otime.load(Ordering::Relaxed) != now {
            self.save(otime.as_ptr() as *const u8, 8);
            otime.store(now, Ordering::Relaxed);
        }
    }

    /// `count_semcnt`.
    fn count(&self, set: u32, num: u32, zero: bool) -> i32 {
        let mut n = 0;
        self.each(set, if zero { 4 + 2 * num } else { 3 + 2 * num }, |_| n += 1);
        let mut check = |qi: u32| {
            let q = self.q(qi);
            let b = self.sops(qi).get(q.blocking as usize).copied().unwrap_or_default();
            n += (b.sem_num as u32 == num && if zero { b.sem_op == 0 } else { b.sem_op < 0 }) as i32;
        };
        self.each(set, 1, &mut check);
        if zero {
            self.each(set, 2, &mut check);
        }
        n
    }

    /// Records where we run; returns the last other process that locked the set.
    fn note_cpu(&self) -> u64 {
        self.set(self.idx).cpus.note(crate::journal::note_running(self.r))
    }

    /// `freeary`'s half under the set's lock: every sleeper gets EIDRM, every undo entry goes,
    /// and the set is dead.
    #[inline(never)]
    fn freeary(&self, idx: u32) {
        self.gate(idx);
        self.each_undo(idx, |ui| self.free_undo(ui));
        let nsems = self.set(idx).nsems;
        let codes = [2, 1].into_iter().chain((0..nsems).flat_map(|n| [4 + 2 * n, 3 + 2 * n]));
        for code in codes {
            self.each(idx, code, |qi| self.complete(qi, -EIDRM));
        }
        let s = self.set(idx);
        self.w(&mut s.live, 0);
    }

    /// `exit_sem` for the process in `slot`, on this set: its queued operations go and its
    /// adjustments are applied, clamped to [0, SEMVMX].
    #[inline(never)]
    fn exit_on_set(&self, slot: u32) {
        let set = self.idx;
        let codes = (1..=2).chain((0..self.set(set).nsems).flat_map(|n| [3 + 2 * n, 4 + 2 * n]));
        for code in codes {
            self.each(set, code, |qi| {
                if self.q(qi).owner == slot {
                    self.unlink(qi);
                    self.free_q(qi);
                }
            });
        }
        let s = self.set(set);
        let Some(ui) = (s.live != 0).then(|| self.find_undo(slot, set, s.perm.id)).flatten() else {
            self.unmerge_queues(set);
            return;
        };
        let pid = self.record(slot).pid;
        // Before any adjustment is read: gating settles a lock-free SEM_UNDO semop the process
        // died in the middle of, whose adjustment may not be stored yet.
        self.gate(set);
        let mut cur = self.undo(ui).adj_head;
        for _ in 0..MAX_WALK {
            if cur == 0 {
                break;
            }
            let a = self.adj(cur - 1);
            if a.adj != 0 && a.semnum < s.nsems {
                let v = (self.val(set, a.semnum) + a.adj).clamp(0, SEMVMX);
                self.set_val(set, a.semnum, v, pid);
            }
            cur = a.next;
        }
        killpoint::reached(Step::SemUndoApplied);
        self.free_undo(ui);
        self.smart_update(set, None, true);
        self.unmerge_queues(set);
    }

    /// Whoever touches a set first settles the processes that died holding adjustments on it
    /// or sleeping in it: one read of each one's life word, a system call only on a sign of
    /// death. Allocates nothing (the semop fast path runs it).
    fn reap_set(&self, set: u32) {
        self.reap_set_as_of(set, false);
    }

    #[inline(never)]
    fn reap_set_as_of(&self, set: u32, fresh: bool) {
        'again: for _ in 0..MAX_WALK {
            let mut cur = self.set(set).undo_head;
            while cur != 0 {
                let u = self.undo(cur - 1);
                if u.owner < MAX_PROCS && self.dead(u.owner, fresh) {
                    self.exit_on_set(u.owner);
                    continue 'again;
                }
                cur = u.set_next;
            }
            {
                let codes = (1..=2).chain((0..self.set(set).nsems).flat_map(|n| [3 + 2 * n, 4 + 2 * n]));
                for code in codes {
                    let mut cur = self.list(set, code).head;
                    while cur != 0 {
                        let q = self.q(cur - 1);
                        if q.owner < MAX_PROCS && self.dead(q.owner, fresh) {
                            self.exit_on_set(q.owner);
                            continue 'again;
                        }
                        cur = q.next;
                    }
                }
            }
            return;
        }
    }

    /// Life words of other processes with adjustments on the semaphores of sleeper `qi`'s
    /// operations (the undo their death applies may let it go on), marked FUTEX_WAITERS so that
    /// the kernel wakes it on them when their owner dies: (word, value to wait on). Others'
    /// deaths cannot change what it waits for: a mutex's waiters watch its holder only, not
    /// every process that ever took it (each watched word costs the futex wait a page lookup).
    fn watch_undo_owners(&self, set: u32, qi: u32, out: &mut [(usize, u32); WATCHED]) -> usize {
        let mut n = 0;
        let mut cur = self.set(set).undo_head;
        let sops = self.sops(qi);
        while cur != 0 && n < WATCHED {
            let ui = cur - 1;
            let u = self.undo(ui);
            cur = u.set_next;
            let rec = self.record(u.owner.min(MAX_PROCS - 1));
            if u.owner >= MAX_PROCS || rec.pid == proc::self_pid() {
                continue;
            }
            let adjusts =
                |s: &Sembuf| self.find_adj(ui, s.sem_num as u32).is_some_and(|ai| self.adj(ai).adj != 0);
            if !sops.iter().any(adjusts) {
                continue;
            }
            let word = rec.life.word();
            let w = word.load(Ordering::Acquire);
            if w & 0x3fff_ffff == 0 || w & 0x4000_0000 != 0 {
                continue; // no live holder to die
            }
            let want = w | 0x8000_0000;
            if w == want || word.compare_exchange(w, want, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                out[n] = (word.as_ptr() as usize, want);
                n += 1;
            }
        }
        n
    }

    /// `fresh`: confirm even if someone found it alive less than 100 ms ago (a sleeper woken by
    /// the death itself, while the dying process may still be exiting).
    fn dead(&self, slot: u32, fresh: bool) -> bool {
        // SAFETY: slot < MAX_PROCS (callers); the set's lock is held, and a record's release
        // runs exit_sem on the set under it first.
        unsafe { proc::dead(self.r, slot.min(MAX_PROCS - 1), fresh) }
    }
}

/// Whether an operation follows an altering one on the same semaphore (the kernel's dupsop,
/// exact here).
fn has_dup(sops: &[Sembuf]) -> bool {
    sops.iter().enumerate().any(|(i, s)| sops[..i].iter().any(|e| e.sem_num == s.sem_num && e.sem_op != 0))
}

/// Sleeper entry `qi`, for reads without its set's lock (and under it).
#[allow(clippy::mut_from_ref)]
fn q_at(r: &Region, qi: u32) -> &mut SemQueue {
    let qi = qi.min(SEM_QUEUE_MAX - 1);
    // SAFETY: bounded index into the queue pool; changed only under its set's lock (or only
    // its atomics used).
    unsafe { r.at::<SemQueue>(SEM_QUEUE_OFF + qi as u64 * size_of::<SemQueue>() as u64) }
}

/// `semget(2)`.
pub fn semget(r: &Region, key: i32, nsems: i32, flg: i32) -> Result<i32, Errno> {
    let limits = r.header().limits;
    // The sem sysctl's values are ints (a write may make them negative).
    if nsems < 0 || nsems > limits.semmsl as i32 {
        return Err(EINVAL);
    }
    let cred = Cred::current();
    let mut ids = lock_ids(r)?;
    r.header().counters.sem_calls.fetch_add(1, Ordering::Relaxed);
    ids.ipcget(&cred, key, flg, &(nsems as u32))
}

/// `semtimedop(2)` (`timeout` 0: `semop`). `sops`/`timeout` are caller addresses.
pub fn semtimedop(
    r: &Region,
    semid: i32,
    sops_addr: usize,
    nsops: usize,
    timeout: usize,
    env: &dyn SemEnv,
) -> Result<i32, Errno> {
    if nsops == 1 && timeout == 0 {
        return semop_one(r, semid, sops_addr, env);
    }
    // The kernel's order: the timeout is copied first (ksys_semtimedop), then do_semtimedop.
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    if timeout != 0 {
        env.copy_from(&mut ts as *mut libc::timespec as *mut u8, timeout, size_of::<libc::timespec>())?;
    }
    if nsops > r.header().limits.semopm as usize {
        return Err(E2BIG);
    }
    if nsops < 1 {
        return Err(EINVAL);
    }
    let mut small = [Sembuf::default(); 16];
    let mut big;
    let sops: &mut [Sembuf] = if nsops <= small.len() {
        &mut small[..nsops]
    } else {
        big = sys::Mapped::new(nsops * size_of::<Sembuf>())?;
        // SAFETY: a Sembuf is plain integers, 2-byte aligned.
        unsafe { big.slice(nsops) }
    };
    env.copy_from(sops.as_mut_ptr() as *mut u8, sops_addr, nsops * size_of::<Sembuf>())?;
    if semid < 0 {
        return Err(EINVAL);
    }
    let deadline = if timeout != 0 {
        if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
            return Err(EINVAL);
        }
        Some(wait::deadline_after(&ts))
    } else {
        None
    };
    let first = if nsops == 1 {
        fast_semop(r, semid, &sops[0], &Cred::current(), proc::self_pid())
    } else {
        Fast::Locked
    };
    do_semtimedop(r, semid, sops, deadline, first, env)
}

/// A semop of one operation served if it succeeds at once on a set nobody holds or sleeps in
/// (the lock-free path, which makes no system call); false: `semtimedop` must serve it.
#[inline(always)]
pub fn semop_at_once(r: &Region, semid: i32, sop: &Sembuf) -> bool {
    let (Some(cred), pid) = (Cred::cached(), proc::known_pid()) else { return false };
    semid >= 0
        && pid != 0
        && 1 <= r.header().limits.semopm as usize
        && matches!(fast_semop(r, semid, sop, &cred, pid), Fast::Done)
}

/// `semop` of one operation: the lock-free path first, in a frame of its own (the locked
/// path's is larger than the operation).
fn semop_one(r: &Region, semid: i32, sops_addr: usize, env: &dyn SemEnv) -> Result<i32, Errno> {
    if 1 > r.header().limits.semopm as usize {
        return Err(E2BIG);
    }
    let mut sop = [Sembuf::default()];
    env.copy_from(sop.as_mut_ptr() as *mut u8, sops_addr, size_of::<Sembuf>())?;
    if semid < 0 {
        return Err(EINVAL);
    }
    match fast_semop(r, semid, &sop[0], &Cred::current(), proc::self_pid()) {
        Fast::Done => Ok(0),
        first => do_semtimedop(r, semid, &mut sop, None, first, env),
    }
}

/// `__do_semtimedop` with the operations copied in and checked; `first` is what the lock-free
/// path did with a single one.
#[inline(never)]
fn do_semtimedop<'a>(
    r: &'a Region,
    semid: i32,
    sops: &mut [Sembuf],
    deadline: Option<libc::timespec>,
    first: Fast<'a>,
    env: &dyn SemEnv,
) -> Result<i32, Errno> {
    let nsops = sops.len();
    // A single operation that would block on a set nobody sleeps in waits a little before it
    // queues: its waker then needs no lock either (see `journal::Brief::wait_unknown`).
    let mut waited = false;
    if nsops == 1 {
        let mut brief = Brief::new(SEM_YIELDS);
        let mut fast = first;
        loop {
            match fast {
                Fast::Done => return Ok(0),
                Fast::Blocked(word, w)
                    if !waited && sops[0].sem_flg & IPC_NOWAIT == 0 && far(deadline.as_ref()) =>
                {
                    waited = true;
                    if !brief.wait_unknown(&|| word.load(Ordering::Acquire) != w) {
                        break;
                    }
                }
                // Another process took what we waited for: with more than one waiter, the
                // queue's order decides, as the kernel's.
                Fast::Blocked(..) if waited => {
                    brief.lost();
                    break;
                }
                _ => break,
            }
            fast = fast_semop(r, semid, &sops[0], &Cred::current(), proc::self_pid());
        }
    }
    let max = sops.iter().map(|s| s.sem_num as u32).max().unwrap_or(0);
    let undos = sops.iter().any(|s| s.sem_flg & SEM_UNDO != 0);
    let alter = sops.iter().any(|s| s.sem_op != 0);
    // A record makes our death visible: to undo our adjustments or drop our sleeping ops.
    let slot = proc::ensure_record(r).ok_or(ENOMEM)?;
    let pid = proc::self_pid();
    let cred = Cred::current();
    let mut s = lock_for_semop(r, semid, sops, slot, &cred)?;
    s.peer = s.note_cpu();
    let idx = s.idx;
    if s.one.is_none() {
        // find_alloc_undo comes before the other checks: a failed semop still leaves the
        // process an undo structure for the set (and exit_sem then touches the set).
        if undos {
            s.alloc_undo(slot, idx, semid, &[])?;
        }
        if max >= s.set(idx).nsems {
            return Err(EFBIG);
        }
        if !s.set(idx).perm.ipcperms(&cred, if alter { S_IWUGO } else { S_IRUGO }) {
            return Err(EACCES);
        }
        s.reap_set(idx);
        if undos {
            s.alloc_undo(slot, idx, semid, sops)?;
        }
    }
    let blocking = match s.perform(idx, sops, slot, pid) {
        Perform::Done => {
            if alter {
                s.smart_update(idx, Some(sops), true);
            } else {
                s.set_semotime(idx, Some(sops));
            }
            s.unmerge_queues(idx);
            return Ok(0);
        }
        Perform::Fail(e) => return Err(e),
        Perform::Block(b) => b,
    };
    if nsops > SEM_SOPS_MAX as usize {
        return Err(ENOMEM);
    }
    // Queue ourselves (do_semtimedop's sleeping half).
    let qi = s.alloc(0)?;
    let me = proc::self_pid();
    if SLEEPER_PID.load(Ordering::Relaxed) != me {
        SLEEPER_PID.store(me, Ordering::Relaxed);
    }
    if r.reserve(sops_off(qi, nsops as u32), size_of_val(sops) as u64).is_err() {
        s.free_q(qi);
        return Err(ENOMEM);
    }
    let q = s.q(qi);
    s.save(q as *const SemQueue as *const u8, core::mem::offset_of!(SemQueue, claim));
    q.next = 0;
    q.prev = 0;
    q.list = 0;
    q.set = idx;
    q.id = semid;
    q.owner = slot;
    q.pid = pid;
    q.nsops = nsops as u32;
    q.blocking = blocking as u32;
    q.status = PENDING;
    q.done.store(0, Ordering::Relaxed);
    let ticket = s.ns().tickets.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
    s.save((&raw const q.ticket).cast(), 4);
    q.ticket = ticket;
    let dst = s.sops(qi);
    s.save(dst.as_ptr() as *const u8, size_of_val(sops));
    dst.copy_from_slice(sops);
    let set = s.set(idx);
    if nsops == 1 {
        let n = sops[0].sem_num as u32;
        let code = if !alter {
            4 + 2 * n
        } else if set.complex_count != 0 {
            1
        } else {
            3 + 2 * n
        };
        s.add_tail(idx, code, qi);
    } else {
        if set.complex_count == 0 {
            s.merge_queues(idx);
        }
        s.add_tail(idx, if alter { 1 } else { 2 }, qi);
        let v = set.complex_count + 1;
        s.w(&mut set.complex_count, v);
    }
    // A call that waited before it queued sleeps at once.
    if waited {
        s.peer = 0;
    }
    let one = (nsops == 1).then_some(sops[0].sem_num as u32);
    sleep(r, s, (qi, one), ticket, deadline.as_ref(), env)
}

/// `sem_lock` for a semop: a simple operation takes only its semaphore's lock when that is all
/// it needs. Apart, so that only one held lock lives in the caller's frame.
#[inline(never)]
fn lock_for_semop<'a>(
    r: &'a Region,
    semid: i32,
    sops: &[Sembuf],
    slot: u32,
    cred: &Cred,
) -> Result<Sems<'a>, Errno> {
    let idx = ipc::id_to_idx(semid);
    let one = (sops.len() == 1).then(|| lock_one(r, idx, sops[0].sem_num as u32)).flatten();
    match one {
        Some(s) if s.one_ready(semid, &sops[0], slot, cred) => Ok(s),
        // It needs what only the set's lock may do (find_alloc_undo takes it too).
        Some(s) => {
            drop(s);
            lock_id(r, semid)
        }
        None if sops.len() == 1 => {
            let s = lock_for_simple(r, idx)?;
            s.check(semid)?;
            Ok(s)
        }
        None => lock_id(r, semid),
    }
}

/// The sleeper's `sem_lock` again (for `settles`: the set's lock, which settles the dead).
#[inline(never)]
fn relock(r: &Region, idx: u32, one: Option<u32>, settles: bool) -> Result<Sems<'_>, Errno> {
    match one {
        // The entry is on its semaphore's list while the set is not in complex mode.
        Some(num) if !settles => lock_one(r, idx, num).map_or_else(|| lock_for_simple(r, idx), Ok),
        Some(_) => lock_for_simple(r, idx),
        None => lock(r, idx),
    }
}

/// Where set `idx` lives in the region.
const fn set_off(idx: u32) -> u64 {
    SEM_SETS_OFF + idx as u64 * size_of::<SemArray>() as u64
}

/// Where semaphore `num` of set `idx` lives.
const fn sem_off(idx: u32, num: u32) -> u64 {
    SEM_SEMS_OFF + (idx as u64 * SEM_WINDOW as u64 + num as u64) * size_of::<Sem>() as u64
}

/// Whether set slot `idx` was ever used (one that was not holds no set and is not read).
fn set_backed(r: &Region, idx: u32) -> bool {
    r.reserved(set_off(idx), size_of::<SemArray>() as u64)
}

/// Whether a wait may spend a brief wait's budget before queueing: no deadline, or one at
/// least a millisecond away.
fn far(deadline: Option<&libc::timespec>) -> bool {
    deadline.is_none_or(|d| {
        let now = sys::clock_gettime(libc::CLOCK_MONOTONIC);
        (d.tv_sec - now.tv_sec) * 1_000_000_000 + (d.tv_nsec - now.tv_nsec) >= 1_000_000
    })
}

/// What [`fast_semop`] did.
enum Fast<'a> {
    /// Served lock-free.
    Done,
    /// Would block on this value of the semaphore's word (no one gates the set).
    Blocked(&'a AtomicU64, u64),
    /// The locked path must serve it.
    Locked,
}

/// A semop of one operation on a set nobody holds, sleeps in or died holding adjustments on,
/// by `cred` and process `pid`: one compare-and-swap of the semaphore's word, no lock, no
/// system call. `Locked`: take the locked path (which also gives every error, and decides
/// permissions that need the kernel's word on groups or capabilities). Inlined into the
/// exported semop: a set nobody holds adjustments on takes no further call but the clock's.
#[inline(always)]
fn fast_semop<'a>(r: &'a Region, semid: i32, sop: &Sembuf, cred: &Cred, pid: i32) -> Fast<'a> {
    let idx = ipc::id_to_idx(semid);
    if r.sem_set_seen.load(Ordering::Relaxed) != idx + 1 {
        if !set_backed(r, idx) {
            return Fast::Locked;
        }
        r.sem_set_seen.store(idx + 1, Ordering::Relaxed);
    }
    // Unlocked reads of the set: the word's sequence number and GATED, compared by the
    // compare-and-swap, are what make the operation valid.
    let set = set_at(r, idx);
    let num = sop.sem_num as u32;
    if set.perm.id != semid || num >= set.nsems.min(SEM_WINDOW) {
        return Fast::Locked;
    }
    let op = sop.sem_op as i32;
    if !set.perm.granted_plainly(cred, if op != 0 { S_IWUGO } else { S_IRUGO }) {
        return Fast::Locked;
    }
    let off = sem_off(idx, num);
    // SAFETY: each set has a window of SEM_WINDOW semaphores; the word is atomic.
    let sem = unsafe { r.at::<Sem>(off) };
    let seq = semid as u32 / IPCMNI;
    let undo = sop.sem_flg & SEM_UNDO != 0;
    let out = if undo || set.undo_head != 0 {
        fast_semop_undo(r, set, (idx, num, off), sem, semid, op, undo, pid)
    } else {
        cas_semop(sem, seq, op, pid, None)
    };
    if matches!(out, Fast::Done) {
        let now = sys::coarse_seconds();
        if sem.otime.load(Ordering::Relaxed) != now {
            sem.otime.store(now, Ordering::Relaxed);
        }
        count_call(r);
    }
    out
}

/// The compare-and-swap of [`fast_semop`] on semaphore `sem` of a set with sequence number
/// `seq`; with `adj` (our adjustment entry, SEM_UNDO) it also sets PENDING_UNDO.
#[inline(always)]
fn cas_semop<'a>(sem: &'a Sem, seq: u32, op: i32, pid: i32, adj: Option<&SemAdj>) -> Fast<'a> {
    for _ in 0..8 {
        let w = sem.word.load(Ordering::Acquire);
        if w & (GATED | PENDING_UNDO) != 0 || (w >> GEN_SHIFT) & GEN_MASK != seq as u64 & GEN_MASK {
            return Fast::Locked;
        }
        let res = word_val(w) + op;
        if (op == 0 && word_val(w) != 0) || res < 0 {
            return Fast::Blocked(&sem.word, w);
        }
        if res > SEMVMX {
            return Fast::Locked;
        }
        if let Some(a) = adj {
            // SAFETY: an entry in the region, changed by others only while the set is gated.
            let cur = unsafe { core::ptr::read_volatile(&a.adj) };
            if !(-SEMAEM - 1..=SEMAEM).contains(&(cur - op)) {
                return Fast::Locked;
            }
        }
        let new = with_val_pid(w, res, pid) | if adj.is_some() { PENDING_UNDO } else { 0 };
        if new == w || sem.word.compare_exchange(w, new, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            return Fast::Done;
        }
    }
    Fast::Locked
}

/// [`fast_semop`] on a set some process holds adjustments on, or with SEM_UNDO (semaphore
/// `num` at region offset `off` of set `idx`): every holder must be alive, and with SEM_UNDO
/// our intent is recorded before the value changes and the adjustment stored after.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn fast_semop_undo<'a>(
    r: &'a Region,
    set: &SemArray,
    (idx, num, off): (u32, u32, u64),
    sem: &'a Sem,
    semid: i32,
    op: i32,
    undo: bool,
    pid: i32,
) -> Fast<'a> {
    let seq = semid as u32 / IPCMNI;
    let slot = proc::self_slot(r);
    let (mine, ok) = undo_holders_live(r, set, idx, semid, slot);
    if !ok {
        return Fast::Locked;
    }
    if !undo {
        return cas_semop(sem, seq, op, pid, None);
    }
    let Some((it, ai)) = mine.and_then(|ui| start_undo(r, slot, ui, num, op, off)) else {
        return Fast::Locked;
    };
    // SAFETY: ai is a bounded index of one of our adjustment entries (start_undo).
    let a = unsafe { r.at::<SemAdj>(SEM_ADJ_OFF + ai as u64 * size_of::<SemAdj>() as u64) };
    let out = cas_semop(sem, seq, op, pid, Some(a));
    if matches!(out, Fast::Done) {
        // The value changed and PENDING_UNDO keeps everyone else off the adjustment.
        // SAFETY: as above.
        let new_adj = unsafe { core::ptr::read_volatile(&a.adj) } - op;
        it.new_adj.store(new_adj, Ordering::Relaxed);
        it.stage.store(STORED, Ordering::Release);
        // The adjustment changes only after STORED is recorded.
        compiler_fence(Ordering::SeqCst);
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(&mut a.adj, new_adj) };
        sem.word.fetch_and(!PENDING_UNDO, Ordering::AcqRel);
    }
    it.stage.store(IDLE, Ordering::Release);
    out
}

/// Semops (and other calls on a set), sleeps and wake-ups of this process not yet added to
/// the namespace's `sem_calls`, `sem_waits` and `sem_wakeups`: a locked add per call would
/// cost a third of a lock-free semop, and one on a locked path moves a line that every
/// process writes between the CPUs, inside the critical section.
static UNCOUNTED_CALLS: Tally = Tally::new();
static UNCOUNTED_WAITS: Tally = Tally::new();
static UNCOUNTED_WAKEUPS: Tally = Tally::new();

#[inline]
fn count_call(r: &Region) {
    UNCOUNTED_CALLS.bump(&r.header().counters.sem_calls);
}

/// Adds this process's uncounted calls, sleeps and wake-ups to the namespace's (at exit).
pub fn flush_counts(r: &Region) {
    let c = &r.header().counters;
    UNCOUNTED_CALLS.flush(&c.sem_calls);
    UNCOUNTED_WAITS.flush(&c.sem_waits);
    UNCOUNTED_WAKEUPS.flush(&c.sem_wakeups);
}

unsafe extern "C" {
    /// glibc's: non-zero while the process has never had a second thread.
    static __libc_single_threaded: core::ffi::c_char;
}

/// Walks set `idx`'s undo list without the lock: whether every other holder's life mutex says
/// it lives (a dead one's adjustments must be applied first, by the locked path), and our own
/// entry for the set. False also when the list changed under the walk.
fn undo_holders_live(r: &Region, set: &SemArray, idx: u32, semid: i32, slot: u32) -> (Option<u32>, bool) {
    let seq = set.undo_seq;
    compiler_fence(Ordering::SeqCst);
    let mut mine = None;
    let mut cur = set.undo_head;
    for _ in 0..64 {
        if cur == 0 {
            compiler_fence(Ordering::SeqCst);
            // SAFETY: a u32 of the set; see fast_semop for why unlocked reads are fine.
            let again = unsafe { core::ptr::read_volatile(&set.undo_seq) };
            return (mine, again == seq);
        }
        let ui = (cur - 1).min(SEM_UNDO_MAX - 1);
        // SAFETY: bounded index into the undo pool.
        let u = unsafe { r.at::<SemUndo>(SEM_UNDO_OFF + ui as u64 * size_of::<SemUndo>() as u64) };
        if u.owner == slot {
            if u.set == idx && u.id == semid {
                mine = Some(ui);
            }
        } else {
            // SAFETY: bounded slot; only the atomic life word is read.
            let w = unsafe { proc::record(r, u.owner.min(MAX_PROCS - 1)) }.life.owner_word();
            if w & 0x3fff_ffff == 0 || w & 0x4000_0000 != 0 {
                return (None, false);
            }
        }
        cur = u.set_next;
    }
    (None, false)
}

/// Claims our intent record for a lock-free SEM_UNDO operation on semaphore `num` (word at
/// `word_off`) of the set our undo entry `ui` is for: the intent and the adjustment entry.
/// `None` when we have no adjustment entry for it yet, or another thread of ours is in one.
fn start_undo(r: &Region, slot: u32, ui: u32, num: u32, op: i32, word_off: u64) -> Option<(&SemIntent, u32)> {
    if slot >= MAX_PROCS {
        return None;
    }
    // SAFETY: our own record (slot checked); its intent is written only by us while we live.
    let rec = unsafe { proc::record(r, slot) };
    let w = rec.life.owner_word();
    if rec.pid != proc::self_pid() || w & 0x3fff_ffff == 0 || w & 0x4000_0000 != 0 {
        return None;
    }
    // SAFETY: bounded index into the undo pool.
    let u = unsafe { r.at::<SemUndo>(SEM_UNDO_OFF + ui as u64 * size_of::<SemUndo>() as u64) };
    let mut cur = u.adj_head;
    let mut ai = None;
    for _ in 0..64 {
        if cur == 0 {
            break;
        }
        let i = (cur - 1).min(SEM_ADJ_MAX - 1);
        // SAFETY: bounded index into the adjustment pool.
        let a = unsafe { r.at::<SemAdj>(SEM_ADJ_OFF + i as u64 * size_of::<SemAdj>() as u64) };
        if a.semnum == num {
            ai = Some(i);
            break;
        }
        cur = a.next;
    }
    let ai = ai?;
    let it = &rec.sem_intent;
    // SAFETY: a byte glibc keeps; read, never written.
    if unsafe { core::ptr::read_volatile(&raw const __libc_single_threaded) } != 0 {
        // No other thread to race with, and our handlers do not run inside the shim.
        if it.stage.load(Ordering::Relaxed) != IDLE {
            return None;
        }
        it.stage.store(CLAIMED, Ordering::Relaxed);
    } else {
        it.stage.compare_exchange(IDLE, CLAIMED, Ordering::Acquire, Ordering::Relaxed).ok()?;
    }
    it.op.store(op, Ordering::Relaxed);
    it.word_off.store(word_off, Ordering::Relaxed);
    it.adj.store(ai, Ordering::Relaxed);
    it.stage.store(STARTED, Ordering::Release);
    Some((it, ai))
}

/// The sleeping loop of queued operation `qi` (on semaphore `one` if simple); `s` holds the
/// lock on entry.
fn sleep<'a>(
    r: &'a Region,
    mut s: Sems<'a>,
    (qi, one): (u32, Option<u32>),
    ticket: u32,
    deadline: Option<&libc::timespec>,
    env: &dyn SemEnv,
) -> Result<i32, Errno> {
    UNCOUNTED_WAITS.bump(&r.header().counters.sem_waits);
    // Only the first wait of a call yields to the last other locker (likely our waker) on our
    // CPU, or spins while it runs on another one.
    let mut peer = s.peer;
    let idx = s.idx;
    // After a watched holder's death woke us: short slices while it finishes exiting.
    let mut recheck = 0u32;
    loop {
        let q = s.q(qi);
        if q.status != PENDING {
            killpoint::reached(Step::SemGranted);
            let st = q.status;
            s.free_q(qi);
            return if st == 0 { Ok(0) } else { Err(-st) };
        }
        let seq = q.wake.load(Ordering::Acquire);
        let mut watched = [(0usize, 0u32); WATCHED];
        let nwatched = if s.set(idx).live != 0 { s.watch_undo_owners(idx, qi, &mut watched) } else { 0 };
        drop(s);
        crate::journal::wait_briefly(r, peer, || q.wake.load(Ordering::Acquire) != seq);
        peer = 0;
        let slice_ns = if recheck > 0 { RECHECK_SLICE_NS } else { FIRST_SLICE_NS };
        let slice = wait::deadline_after(&libc::timespec { tv_sec: 0, tv_nsec: slice_ns });
        let death = core::cell::Cell::new(false);
        let (until, last) = match deadline {
            Some(d) if (d.tv_sec, d.tv_nsec) <= (slice.tv_sec, slice.tv_nsec) => (*d, true),
            _ => (slice, false),
        };
        // Pairs with wake_sleeper: either the waker sees us asleep or we see its change.
        q.sleeping.store(wait::asleep_on(seq), Ordering::SeqCst);
        let out = if q.wake.load(Ordering::SeqCst) != seq {
            WaitOutcome::Woken
        } else if nwatched == 0 {
            env.wait(&mut || match sys::futex(
                q.wake.as_ptr(),
                libc::FUTEX_WAIT_BITSET,
                seq,
                &until,
                0,
                libc::FUTEX_BITSET_MATCH_ANY as u32,
            ) {
                Err(libc::ETIMEDOUT) => WaitOutcome::TimedOut,
                Err(libc::EINTR) => WaitOutcome::Interrupted,
                _ => WaitOutcome::Woken,
            })
        } else {
            // Our own word, the handler count, and the life words of holders of adjustments.
            let mut waiters = [sys::FutexWaitv::default(); WATCHED + 2];
            let word = |addr: usize, val: u32| sys::FutexWaitv {
                val: val as u64,
                uaddr: addr as u64,
                flags: sys::FUTEX2_SIZE_U32,
                reserved: 0,
            };
            waiters[0] = word(q.wake.as_ptr() as usize, seq);
            let mut n = 1;
            if let Some(h) = env.handled_word() {
                waiters[1] = word(h.as_ptr() as usize, h.load(Ordering::Relaxed));
                n = 2;
            }
            for &(addr, val) in &watched[..nwatched] {
                waiters[n] = word(addr, val);
                n += 1;
            }
            let first_watched = n - nwatched;
            env.wait(&mut || match sys::futex_waitv(&waiters[..n], &until) {
                Ok(i) if i >= first_watched => {
                    death.set(true);
                    WaitOutcome::Woken
                }
                Err(libc::ETIMEDOUT) => WaitOutcome::TimedOut,
                Err(libc::EINTR) => WaitOutcome::Interrupted,
                _ => WaitOutcome::Woken,
            })
        };
        q.sleeping.store(0, Ordering::Relaxed);
        // Completed and committed: ours to free, with no lock (nothing else refers to it).
        let done = q.done.load(Ordering::Acquire);
        if done != 0 && q.ticket == ticket {
            killpoint::reached(Step::SemGranted);
            if q.claim.compare_exchange(idx + 1, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                ns_of(r).pools[0].given_back(qi);
            }
            let st = 1 - done as i32;
            return if st == 0 { Ok(0) } else { Err(-st) };
        }
        // Settling the dead takes the set's lock.
        let settles = match out {
            WaitOutcome::Interrupted => false,
            WaitOutcome::TimedOut => !last,
            WaitOutcome::Woken => true,
        };
        s = relock(r, idx, one, settles)?;
        let q = s.q(qi);
        if q.claim.load(Ordering::Relaxed) != idx + 1 || q.ticket != ticket {
            return Err(EIDRM);
        }
        if q.status != PENDING {
            continue;
        }
        match out {
            WaitOutcome::Interrupted => {
                let set = q.set;
                s.unlink(qi);
                s.free_q(qi);
                s.unmerge_queues(set);
                drop(s);
                env.testcancel();
                return Err(EINTR);
            }
            WaitOutcome::TimedOut if last => {
                let set = q.set;
                s.unlink(qi);
                s.free_q(qi);
                s.unmerge_queues(set);
                return Err(EAGAIN);
            }
            // Woken without a result: maybe by the death of a watched holder, which is
            // settled now; any other died holding what we wait for is settled at slice ends.
            WaitOutcome::TimedOut | WaitOutcome::Woken => {
                if death.get() {
                    recheck = RECHECKS;
                }
                let set = q.set;
                if s.set(set).live != 0 {
                    s.reap_set_as_of(set, recheck > 0);
                }
                recheck = recheck.saturating_sub(1);
            }
        }
    }
}

fn to_user<T>(buf: usize, v: &T) -> Result<(), Errno> {
    sys::copy_to_user(buf, v as *const T as *const u8, size_of::<T>())
}

fn stat_of(s: &Sems, idx: u32) -> Semid64Ds {
    let set = s.set(idx);
    let otime = (0..set.nsems).map(|n| s.sem(idx, n).otime.load(Ordering::Relaxed)).max().unwrap_or(0);
    Semid64Ds {
        perm: Ipc64Perm::from(&set.perm),
        otime,
        ctime: set.ctime,
        nsems: set.nsems as u64,
        ..Default::default()
    }
}

/// `semctl(2)`; `arg` is the fourth argument (a value for SETVAL, else a caller pointer).
pub fn semctl(r: &Region, semid: i32, semnum: i32, cmd: i32, arg: usize) -> Result<i32, Errno> {
    if semid < 0 {
        return Err(EINVAL);
    }
    let cred = Cred::current();
    match cmd {
        IPC_INFO | SEM_INFO => {
            let l = r.header().limits;
            let mut info = Seminfo {
                semmni: l.semmni as i32,
                semmns: l.semmns as i32,
                semmsl: l.semmsl as i32,
                semopm: l.semopm as i32,
                semvmx: SEMVMX,
                semmnu: SEMMNU,
                semmap: SEMMAP,
                semume: SEMUME,
                semusz: SEMUSZ,
                semaem: SEMAEM,
            };
            let max_idx = {
                let ids = lock_ids(r)?;
                r.header().counters.sem_calls.fetch_add(1, Ordering::Relaxed);
                if cmd == SEM_INFO {
                    info.semusz = ids.ids().in_use as i32;
                    info.semaem = ids.ns().used_sems as i32;
                }
                ids.ids().get_maxidx()
            };
            to_user(arg, &info)?;
            Ok(max_idx.max(0))
        }
        IPC_STAT | SEM_STAT | SEM_STAT_ANY => {
            let (ds, ret) = {
                let s = lock(r, ipc::id_to_idx(semid))?;
                let idx = s.idx;
                if cmd == IPC_STAT {
                    s.check(semid)?;
                } else if s.set(idx).live == 0 {
                    return Err(EINVAL);
                }
                if cmd != SEM_STAT_ANY && !s.set(idx).perm.ipcperms(&cred, S_IRUGO) {
                    return Err(EACCES);
                }
                s.reap_set(idx);
                (stat_of(&s, idx), if cmd == IPC_STAT { 0 } else { s.set(idx).perm.id })
            };
            to_user(arg, &ds)?;
            Ok(ret)
        }
        GETALL | GETVAL | GETPID | GETNCNT | GETZCNT | SETALL => {
            semctl_main(r, &cred, semid, semnum, cmd, arg)
        }
        SETVAL => {
            let val = arg as i32;
            if !(0..=SEMVMX).contains(&val) {
                return Err(ERANGE);
            }
            let s = lock_id(r, semid)?;
            let idx = s.idx;
            if semnum < 0 || semnum as u32 >= s.set(idx).nsems {
                return Err(EINVAL);
            }
            if !s.set(idx).perm.ipcperms(&cred, S_IWUGO) {
                return Err(EACCES);
            }
            s.reap_set(idx);
            let num = semnum as u32;
            s.clear_adj(idx, Some(num));
            s.set_val(idx, num, val, proc::self_pid());
            s.w(&mut s.set(idx).ctime, sys::coarse_seconds());
            s.smart_update(idx, None, false);
            s.unmerge_queues(idx);
            Ok(0)
        }
        IPC_SET | IPC_RMID => semctl_down(r, &cred, semid, cmd, arg),
        _ => Err(EINVAL),
    }
}

/// IPC_SET and IPC_RMID (`semctl_down`): apart, so that its frame does not add to the others'.
#[inline(never)]
fn semctl_down(r: &Region, cred: &Cred, semid: i32, cmd: i32, arg: usize) -> Result<i32, Errno> {
    let (uid, gid, mode) = if cmd == IPC_SET { set_args(arg)? } else { (0, 0, 0) };
    // semctl_down: the ids first, then the set.
    let ids = lock_ids(r)?;
    let s = lock_id(r, semid)?;
    let idx = s.idx;
    if !s.set(idx).perm.owner_or_admin(cred) {
        return Err(EPERM);
    }
    if cmd == IPC_RMID {
        let nsems = s.set(idx).nsems;
        s.freeary(idx);
        // The set's half is committed first: a holder killed before the ids' half
        // leaves ids that their recovery counts again.
        drop(s);
        ids.remove_set(idx, nsems);
    } else {
        let set = s.set(idx);
        let mut perm = set.perm;
        perm.update(uid, gid, mode)?;
        s.w(&mut set.perm, perm);
        s.w(&mut set.ctime, sys::coarse_seconds());
    }
    Ok(0)
}

/// IPC_SET's uid, gid and mode, read from the user's semid_ds in a frame of their own (the
/// caller's holds two lock guards).
#[inline(never)]
fn set_args(arg: usize) -> Result<(u32, u32, u32), Errno> {
    let mut ds = Semid64Ds::default();
    sys::copy_from_user(&mut ds as *mut Semid64Ds as *mut u8, arg, size_of::<Semid64Ds>())?;
    Ok((ds.perm.uid, ds.perm.gid, ds.perm.mode as u32))
}

/// GETALL and SETALL keep this many values on the stack (a quarter of the kernel's
/// SEMMSL_FAST, to keep frames small), more in a mapping of their own.
const VALUES_FAST: usize = 64;

fn values_buf<'b>(
    fast: &'b mut [u16; VALUES_FAST],
    big: &'b mut Option<sys::Mapped>,
    n: usize,
) -> Result<&'b mut [u16], Errno> {
    if n <= VALUES_FAST {
        return Ok(&mut fast[..n]);
    }
    let m = big.insert(sys::Mapped::new(n * 2)?);
    // SAFETY: plain u16s.
    Ok(unsafe { m.slice(n) })
}

fn semctl_main(r: &Region, cred: &Cred, semid: i32, semnum: i32, cmd: i32, arg: usize) -> Result<i32, Errno> {
    let nsems = {
        let s = lock_id(r, semid)?;
        if !s.set(s.idx).perm.ipcperms(cred, if cmd == SETALL { S_IWUGO } else { S_IRUGO }) {
            return Err(EACCES);
        }
        s.set(s.idx).nsems
    };
    let relock = || lock_id(r, semid).map_err(|e| if e == EINVAL { EIDRM } else { e });
    match cmd {
        GETALL => {
            let (mut fast, mut big) = ([0u16; VALUES_FAST], None);
            let vals = values_buf(&mut fast, &mut big, nsems as usize)?;
            {
                let s = relock()?;
                let idx = s.idx;
                s.reap_set(idx);
                for (n, v) in vals.iter_mut().enumerate() {
                    *v = s.val(idx, n as u32) as u16;
                }
            }
            sys::copy_to_user(arg, vals.as_ptr() as *const u8, vals.len() * 2)?;
            Ok(0)
        }
        SETALL => {
            let (mut fast, mut big) = ([0u16; VALUES_FAST], None);
            let vals = values_buf(&mut fast, &mut big, nsems as usize)?;
            sys::copy_from_user(vals.as_mut_ptr() as *mut u8, arg, vals.len() * 2)?;
            if vals.iter().any(|&v| v as i32 > SEMVMX) {
                return Err(ERANGE);
            }
            let s = relock()?;
            let idx = s.idx;
            if s.set(idx).nsems != nsems {
                return Err(EIDRM);
            }
            s.reap_set(idx);
            let pid = proc::self_pid();
            for (n, &v) in vals.iter().enumerate() {
                s.set_val(idx, n as u32, v as i32, pid);
            }
            s.clear_adj(idx, None);
            s.w(&mut s.set(idx).ctime, sys::coarse_seconds());
            s.smart_update(idx, None, false);
            s.unmerge_queues(idx);
            Ok(0)
        }
        _ => {
            if semnum < 0 || semnum as u32 >= nsems {
                return Err(EINVAL);
            }
            let s = relock()?;
            let idx = s.idx;
            s.reap_set(idx);
            let num = semnum as u32;
            Ok(match cmd {
                GETVAL => s.val(idx, num),
                GETPID => s.pid(idx, num),
                GETNCNT => s.count(idx, num, false),
                _ => s.count(idx, num, true),
            })
        }
    }
}

/// A live set as `ipcs` shows it: id, stat, and per semaphore (value, ncnt, zcnt, pid).
pub struct SemSnapshot {
    pub id: i32,
    pub ds: Semid64Ds,
    pub sems: Vec<(i32, i32, i32, i32)>,
}

/// Every live set, in index order, after settling dead processes: for `ipcs` and `status`.
pub fn snapshot(r: &Region) -> Result<Vec<SemSnapshot>, Errno> {
    let mut out = Vec::new();
    each_set(r, |s| {
        let idx = s.idx;
        let sems = (0..s.set(idx).nsems)
            .map(|n| (s.val(idx, n), s.count(idx, n, false), s.count(idx, n, true), s.pid(idx, n)))
            .collect();
        out.push(SemSnapshot { id: s.set(idx).perm.id, ds: stat_of(s, idx), sems });
    })?;
    Ok(out)
}

/// Every live set's id and `semid64_ds`, in index order, after settling dead processes: what
/// `/proc/sysvipc/sem` shows. `f` runs under the set's lock.
pub fn each_stat(r: &Region, mut f: impl FnMut(i32, &Semid64Ds)) -> Result<(), Errno> {
    each_set(r, |s| f(s.set(s.idx).perm.id, &stat_of(s, s.idx)))
}

/// `f` on each live set in index order, locked and settled, with the ids held (no set comes or
/// goes meanwhile).
fn each_set(r: &Region, mut f: impl FnMut(&Sems)) -> Result<(), Errno> {
    let ids = lock_ids(r)?;
    for idx in 0..=ids.max_idx() {
        let idx = idx as u32;
        if set_at(r, idx).live != 0 {
            let s = lock_uncounted(r, idx)?;
            s.reap_set(idx);
            f(&s);
        }
    }
    Ok(())
}

/// The id of the set with `key`, for `ipcrm -S`.
pub fn id_of_key(r: &Region, key: i32) -> Result<i32, Errno> {
    let ids = lock_ids(r)?;
    r.header().counters.sem_calls.fetch_add(1, Ordering::Relaxed);
    ids.findkey(key).map(|i| set_at(r, i).perm.id).ok_or(EINVAL)
}

/// The pid holding the lock of the set of `semid`, or else of one of its semaphores (0 when
/// none), for tests that kill it.
pub fn lock_holder(r: &Region, semid: i32) -> i32 {
    let idx = ipc::id_to_idx(semid);
    if !set_backed(r, idx) {
        return 0;
    }
    match (set_at(r, idx).lock.owner_word() & 0x3fff_ffff) as i32 {
        0 => sem_lock_holder(r, semid),
        pid => pid,
    }
}

/// The pid holding the lock of one of the semaphores of the set of `semid` (0 when none).
pub fn sem_lock_holder(r: &Region, semid: i32) -> i32 {
    let idx = ipc::id_to_idx(semid);
    if !set_backed(r, idx) {
        return 0;
    }
    (0..set_at(r, idx).nsems.min(SEM_WINDOW))
        .filter(|&n| r.reserved(sem_lock_off(idx, n), 64))
        .map(|n| (sem_lock_at(r, idx, n).owner_word() & 0x3fff_ffff) as i32)
        .find(|&pid| pid != 0)
        .unwrap_or(0)
}

/// Whether set `semid` serves simple operations under its semaphores' own locks now (no
/// complex operation keeps it in complex mode), for tests.
pub fn per_semaphore_locking(r: &Region, semid: i32) -> bool {
    let idx = ipc::id_to_idx(semid);
    set_backed(r, idx) && set_at(r, idx).use_global.load(Ordering::Acquire) == 0
}

/// The sleeping semops of the process in `slot` are gone (it exited, exec'd or was found
/// dead): each is taken off its set under that set's lock.
fn drop_sleepers(r: &Region, slot: u32) {
    let ns = ns_of(r);
    for qi in 0..ns.pools[0].high(SEM_QUEUE_MAX) {
        let q = q_at(r, qi);
        let claim = q.claim.load(Ordering::Acquire);
        if claim == 0 || q.owner != slot {
            continue;
        }
        let Ok(s) = lock(r, claim - 1) else { continue };
        if q.claim.load(Ordering::Acquire) == claim && q.owner == slot {
            s.unlink(qi);
            s.free_q(qi);
            s.unmerge_queues(s.idx);
        }
    }
}

/// This process's pid once it queued a sleeper (0: never; a fork child starts with its
/// parent's): an image that never did has none to drop at its exit, and need not read the
/// sleepers' pool (a page fault per page of it, in every exiting process).
static SLEEPER_PID: AtomicI32 = AtomicI32::new(0);

/// exit_sem for `slot` (a process that exited or was found dead; `own`: this image's record,
/// at its exit): its sleepers go, and its adjustments are applied set by set, each under the
/// set's lock. Idempotent.
///
/// # Safety
/// The caller holds the region lock (lock order: region, then sets) or none; `slot < MAX_PROCS`.
pub unsafe fn exit_sem(r: &Region, slot: u32, own: bool) {
    if !own || SLEEPER_PID.load(Ordering::Relaxed) == proc::self_pid() {
        drop_sleepers(r, slot);
    }
    // A process that never had an undo record has no bitmap (nor memory for it).
    if !r.reserved(proc_sets_off(slot), SEM_PROC_SETS_BYTES) {
        return;
    }
    for (w, word) in proc_sets(r, slot).iter().enumerate() {
        let mut bits = word.load(Ordering::Acquire);
        while bits != 0 {
            let idx = w as u32 * 64 + bits.trailing_zeros();
            bits &= bits - 1;
            if let Ok(s) = lock(r, idx) {
                if s.set(idx).live != 0 {
                    s.exit_on_set(slot);
                }
                drop(s);
                word.fetch_and(!(1 << (idx % 64)), Ordering::AcqRel);
            }
        }
    }
}

/// exec: threads that slept in semop are gone; the undo entries are kept.
pub fn exec_sem(r: &Region, slot: u32) {
    drop_sleepers(r, slot);
}

/// Live sets and their semaphores, for `ipcshim status`.
pub fn counts(r: &Region) -> (u32, u32) {
    match lock_ids(r) {
        Ok(ids) => (ids.ids().in_use, ids.ns().used_sems),
        Err(_) => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Env;

    impl SemEnv for Env {
        fn copy_from(&self, dst: *mut u8, src: usize, len: usize) -> Result<(), Errno> {
            // SAFETY: the tests pass their own sembufs.
            unsafe { core::ptr::copy_nonoverlapping(src as *const u8, dst, len) };
            Ok(())
        }

        fn wait(&self, f: &mut dyn FnMut() -> WaitOutcome) -> WaitOutcome {
            f()
        }
    }

    fn semop1(r: &Region, id: i32, op: i16, flg: i16) -> Result<i32, Errno> {
        let sop = Sembuf { sem_num: 0, sem_op: op, sem_flg: flg };
        semtimedop(r, id, &sop as *const Sembuf as usize, 1, 0, &Env)
    }

    /// A process killed between a lock-free SEM_UNDO semop's value change and its adjustment's
    /// store, whose undo the next locker applies before it reads any value: the adjustment is
    /// settled first, so the undo gives back what that last semop took (once seen as a value
    /// one short in `lock_free_undo_semops_killed_midway_are_settled`).
    #[test]
    fn undo_applied_first_thing_counts_a_semop_killed_midway() {
        let dir = format!("/dev/shm/ipcshim-unit-sem-midway-{}", std::process::id());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = crate::region::region_path(&dir, sys::getuid(), "t").unwrap();
        let r = Region::open(&path, true).unwrap();
        let id = semget(&r, crate::ipc::IPC_PRIVATE, 1, 0o600).unwrap();
        semctl(&r, id, 0, SETVAL, 100).unwrap();
        // SAFETY: the child makes shared_state calls and raw syscalls only, then dies.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            proc::identify_self();
            // The first take is locked (it makes the undo and adjustment entries), the give
            // lock-free: the adjustment is back at 0.
            let ok = semop1(&r, id, -1, SEM_UNDO).is_ok() && semop1(&r, id, 1, SEM_UNDO).is_ok();
            let idx = ipc::id_to_idx(id);
            let set = set_at(&r, idx);
            let off = sem_off(idx, 0);
            // SAFETY: semaphore 0 of the set.
            let sem = unsafe { r.at::<Sem>(off) };
            let slot = proc::self_slot(&r);
            let (mine, live) = undo_holders_live(&r, set, idx, id, slot);
            let started = mine.filter(|_| ok && live).and_then(|ui| start_undo(&r, slot, ui, 0, -1, off));
            if let Some((_, ai)) = started {
                // SAFETY: our adjustment entry (start_undo).
                let a = unsafe { r.at::<SemAdj>(SEM_ADJ_OFF + ai as u64 * size_of::<SemAdj>() as u64) };
                // A take's compare-and-swap, then death before the adjustment is stored.
                if matches!(cas_semop(sem, id as u32 / IPCMNI, -1, proc::self_pid(), Some(a)), Fast::Done) {
                    // SAFETY: plain kill of ourselves.
                    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
                }
            }
            // SAFETY: plain _exit.
            unsafe { libc::_exit(3) };
        }
        let mut st = 0;
        // SAFETY: our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
        assert!(libc::WIFSIGNALED(st), "the child did not die midway (status {st:#x})");
        // A give of ours: locked (the set has a dead undo holder), it applies the child's
        // undo (+1 for its take) before its own operation.
        semop1(&r, id, 1, 0).unwrap();
        let v = semctl(&r, id, 0, GETVAL, 0);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(v, Ok(101), "99 after the child's take, its undo and our give");
    }

    /// A namespace of one test's own, removed when done.
    struct Scratch {
        dir: String,
        r: Region,
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn scratch(name: &str) -> Scratch {
        let dir = format!("/dev/shm/ipcshim-unit-sem-{name}-{}", std::process::id());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = crate::region::region_path(&dir, sys::getuid(), "t").unwrap();
        let r = Region::open(&path, true).unwrap();
        Scratch { dir, r }
    }

    fn semop_all(r: &Region, id: i32, sops: &[Sembuf]) -> Result<i32, Errno> {
        semtimedop(r, id, sops.as_ptr() as usize, sops.len(), 0, &Env)
    }

    /// Forks a child that runs `f` (shared_state calls and raw system calls only: nothing that
    /// allocates) and exits with what it returns.
    fn spawn(f: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child runs `f`, which allocates nothing, then _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            proc::identify_self();
            let code = f();
            // SAFETY: plain _exit.
            unsafe { libc::_exit(code) };
        }
        pid
    }

    /// `pid`'s wait status once it ended, within 20 s (killed and `None` past that: a hang).
    fn ended(pid: i32) -> Option<i32> {
        for _ in 0..20_000 {
            let mut st = 0;
            // SAFETY: our own child.
            if unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) } == pid {
                return Some(st);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // SAFETY: our own child, then reaped.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, core::ptr::null_mut(), 0);
        }
        None
    }

    /// Sleepers queued on semaphore `num` of set `id` or on the set's own list (read without
    /// the lock, which would keep the set in complex mode: a hint to poll).
    fn queued(r: &Region, id: i32, num: u32) -> usize {
        let idx = ipc::id_to_idx(id);
        let len = |mut cur: u32| {
            let mut n = 0;
            while cur != 0 && n < 64 {
                n += 1;
                cur = q_at(r, cur - 1).next;
            }
            n
        };
        let off = SEM_SEMS_OFF + (idx as u64 * SEM_WINDOW as u64 + num as u64) * size_of::<Sem>() as u64;
        // SAFETY: semaphore `num` of the set; only read.
        let sem = unsafe { r.at::<Sem>(off) };
        len(sem.pending_alter.head) + len(set_at(r, idx).pending_alter.head)
    }

    fn poll(what: &str, f: impl Fn() -> bool) {
        for _ in 0..20_000 {
            if f() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!("waited 20 s for {what}");
    }

    const MUTEX_TAKE: [Sembuf; 2] = [
        Sembuf { sem_num: 0, sem_op: -1, sem_flg: SEM_UNDO },
        Sembuf { sem_num: 1, sem_op: -1, sem_flg: SEM_UNDO },
    ];
    const MUTEX_GIVE: [Sembuf; 2] = [
        Sembuf { sem_num: 1, sem_op: 1, sem_flg: SEM_UNDO },
        Sembuf { sem_num: 0, sem_op: 1, sem_flg: SEM_UNDO },
    ];
    const TOKENS: i32 = 5;

    /// A set's mutex (semaphore 0, with SEM_UNDO; `complex`: with a token of semaphore 1 in the
    /// same semop, as `tests/c/sysv_stress.c` takes it) held by A while B and C sleep on it;
    /// then A gives it. A (`victim_sleeps` false) or B dies at `step` of that hand-off. Every
    /// other process must go through the mutex, and the set end at its start values.
    fn killed_in_handoff(name: &str, step: Step, complex: bool, victim_sleeps: bool) {
        let sc = scratch(name);
        let r = &sc.r;
        let id = semget(r, crate::ipc::IPC_PRIVATE, 2, 0o600).unwrap();
        let start: [u16; 2] = [1, TOKENS as u16];
        semctl(r, id, 0, SETALL, start.as_ptr() as usize).unwrap();
        let go = semget(r, crate::ipc::IPC_PRIVATE, 1, 0o600).unwrap();
        let (take, give) =
            if complex { (&MUTEX_TAKE[..], &MUTEX_GIVE[..]) } else { (&MUTEX_TAKE[..1], &MUTEX_GIVE[1..]) };
        let through = |armed: bool| {
            if armed {
                killpoint::arm(step, 0);
            }
            if semop_all(r, id, take).is_err() {
                return 1;
            }
            if semop_all(r, id, give).is_err() { 2 } else { 0 }
        };
        let a = spawn(|| {
            if semop_all(r, id, take).is_err() {
                return 1;
            }
            if semop1(r, go, -1, 0).is_err() {
                return 2;
            }
            // Simple operations: the give under the semaphore's own lock, once the calls
            // that failed with EAGAIN took the set out of complex mode.
            let nowait = Sembuf { sem_num: 0, sem_op: -1, sem_flg: IPC_NOWAIT };
            for _ in 0..4 * GLOBAL_HYSTERESIS {
                if complex || per_semaphore_locking(r, id) {
                    break;
                }
                if semop_all(r, id, &[nowait]) != Err(EAGAIN) {
                    return 3;
                }
            }
            if !victim_sleeps {
                killpoint::arm(step, 0);
            }
            if semop_all(r, id, give).is_err() { 4 } else { 0 }
        });
        poll("A to take the mutex", || semctl(r, id, 0, GETVAL, 0) == Ok(0));
        let b = spawn(|| through(victim_sleeps));
        poll("B to sleep", || queued(r, id, 0) == 1);
        let c = spawn(|| through(false));
        poll("B and C to sleep", || queued(r, id, 0) == 2);
        semop1(r, go, 1, 0).unwrap();
        let (victim, others) = if victim_sleeps { (b, [a, c]) } else { (a, [b, c]) };
        died_at(step, victim);
        for (who, pid) in ["A or B", "C"].into_iter().zip(others) {
            exited_ok(step, who, pid);
        }
        // Nobody holds the mutex or a token now, the victim's undo included.
        let vals = [semctl(r, id, 0, GETVAL, 0), semctl(r, id, 1, GETVAL, 0)];
        assert_eq!(vals, [Ok(1), Ok(TOKENS)], "{step:?}: values at the end");
        assert_eq!(semctl(r, id, 0, GETNCNT, 0), Ok(0), "{step:?}: a sleeper left");
    }

    /// A waker killed having committed a hand-off, before it told its sleeper: the sleeper
    /// finds its result at its next look.
    #[test]
    fn waker_killed_before_telling_its_sleeper() {
        killed_in_handoff("committed-one", Step::SemCommitted, false, false);
        killed_in_handoff("committed-set", Step::SemCommitted, true, false);
    }

    /// A waker killed having told its sleeper, still holding the lock.
    #[test]
    fn waker_killed_after_telling_its_sleeper() {
        killed_in_handoff("told-one", Step::SemTold, false, false);
        killed_in_handoff("told-set", Step::SemTold, true, false);
    }

    /// A waker killed having completed a sleeper, before its commit: the hand-off is rolled
    /// back, and the waker's undo gives the mutex to a sleeper.
    #[test]
    fn waker_killed_midway_through_a_handoff() {
        killed_in_handoff("completed-one", Step::SemCompleted, false, false);
        killed_in_handoff("completed-set", Step::SemCompleted, true, false);
    }

    /// A sleeper killed once its waker took the mutex for it, before it returned: its undo
    /// gives the mutex to the next sleeper.
    #[test]
    fn sleeper_killed_once_granted() {
        killed_in_handoff("granted-one", Step::SemGranted, false, true);
        killed_in_handoff("granted-set", Step::SemGranted, true, true);
    }

    /// The victim's end: SIGKILLed at its step, not hung, not exited.
    fn died_at(step: Step, pid: i32) {
        let st = ended(pid).unwrap_or_else(|| panic!("{step:?}: the victim hung"));
        assert!(
            libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL,
            "{step:?}: the victim did not die there (status {st:#x})"
        );
    }

    fn exited_ok(step: Step, who: &str, pid: i32) {
        let st = ended(pid).unwrap_or_else(|| panic!("{step:?}: {who} hung"));
        assert!(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0, "{step:?}: {who} failed (status {st:#x})");
    }

    /// A process that settles a dead holder's undo (the mutex back) killed after applying it,
    /// before its commit: the undo is rolled back and applied again by the next, once.
    #[test]
    fn settler_of_a_dead_holder_killed_midway() {
        for complex in [false, true] {
            let step = Step::SemUndoApplied;
            let sc = scratch(if complex { "settler-set" } else { "settler-one" });
            let r = &sc.r;
            let id = semget(r, crate::ipc::IPC_PRIVATE, 2, 0o600).unwrap();
            let start: [u16; 2] = [1, TOKENS as u16];
            semctl(r, id, 0, SETALL, start.as_ptr() as usize).unwrap();
            let (take, give) = if complex {
                (&MUTEX_TAKE[..], &MUTEX_GIVE[..])
            } else {
                (&MUTEX_TAKE[..1], &MUTEX_GIVE[1..])
            };
            // D dies holding the mutex (no exit of ours runs: as if killed).
            let d = spawn(|| if semop_all(r, id, take).is_ok() { 0 } else { 1 });
            exited_ok(step, "D", d);
            let through = |armed: bool| {
                if armed {
                    killpoint::arm(step, 0);
                }
                if semop_all(r, id, take).is_err() {
                    return 1;
                }
                if semop_all(r, id, give).is_err() { 2 } else { 0 }
            };
            died_at(step, spawn(|| through(true)));
            exited_ok(step, "B", spawn(|| through(false)));
            let vals = [semctl(r, id, 0, GETVAL, 0), semctl(r, id, 1, GETVAL, 0)];
            assert_eq!(vals, [Ok(1), Ok(TOKENS)], "{step:?}: D's undo applied once");
        }
    }

    /// A complex operation's locker killed entering complex mode, holding the set's lock and a
    /// semaphore's: the next locker recovers both, and the mutex's sleeper gets it.
    #[test]
    fn locker_killed_entering_complex_mode() {
        let step = Step::SemComplexEnter;
        let sc = scratch("complex-enter");
        let r = &sc.r;
        let id = semget(r, crate::ipc::IPC_PRIVATE, 2, 0o600).unwrap();
        let start: [u16; 2] = [1, TOKENS as u16];
        semctl(r, id, 0, SETALL, start.as_ptr() as usize).unwrap();
        let go = semget(r, crate::ipc::IPC_PRIVATE, 1, 0o600).unwrap();
        let (take, give) = (&MUTEX_TAKE[..1], &MUTEX_GIVE[1..]);
        let nowait = [Sembuf { sem_num: 0, sem_op: -1, sem_flg: IPC_NOWAIT }];
        let a = spawn(|| {
            if semop_all(r, id, take).is_err() {
                return 1;
            }
            if semop1(r, go, -1, 0).is_err() {
                return 2;
            }
            if semop_all(r, id, give).is_err() { 3 } else { 0 }
        });
        poll("A to take the mutex", || semctl(r, id, 0, GETVAL, 0) == Ok(0));
        let b = spawn(|| {
            if semop_all(r, id, take).is_err() {
                return 1;
            }
            if semop_all(r, id, give).is_err() { 2 } else { 0 }
        });
        poll("B to sleep", || queued(r, id, 0) == 1);
        // The victim's calls that fail with EAGAIN take the set out of complex mode (they use
        // semaphore 0's lock then); its complex one enters it.
        let v = spawn(|| {
            killpoint::arm(step, 0);
            let two = [nowait[0], Sembuf { sem_num: 1, sem_op: -1, sem_flg: IPC_NOWAIT }];
            for _ in 0..100 {
                for _ in 0..4 * GLOBAL_HYSTERESIS {
                    if per_semaphore_locking(r, id) {
                        break;
                    }
                    if semop_all(r, id, &nowait) != Err(EAGAIN) {
                        return 1;
                    }
                }
                if semop_all(r, id, &nowait) != Err(EAGAIN) || semop_all(r, id, &two) != Err(EAGAIN) {
                    return 2;
                }
            }
            3
        });
        died_at(step, v);
        semop1(r, go, 1, 0).unwrap();
        exited_ok(step, "A", a);
        exited_ok(step, "B", b);
        let vals = [semctl(r, id, 0, GETVAL, 0), semctl(r, id, 1, GETVAL, 0)];
        assert_eq!(vals, [Ok(1), Ok(TOKENS)], "{step:?}: values at the end");
    }
}
