//! Processes: one record per live process that holds state in the namespace.
//!
//! A record is named by pid plus the process start time (field 22 of /proc/PID/stat), which a
//! reused pid does not repeat. Nothing watches for deaths: whoever next needs an exact view
//! (IPC_STAT, IPC_RMID, ipcs, a new attachment…) calls [`reap`], which checks the records and
//! releases what dead processes held — the work the kernel does in exit_mm/exit_sem.

use crate::lock::RobustMutex;
use crate::region::{MAX_PROCS, PROCS_OFF, Region};
use crate::sys::{self, Errno};
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};

pub const FREE: u32 = 0;
pub const LIVE: u32 = 1;
/// Prepared by a parent inside fork(), claimed by the child (pid still the parent's).
pub const FORKING: u32 = 2;
/// Taken by a process that is filling it in (`claim_record`): nobody's yet. The state is this
/// bit with the claimer's pid, so that a claimer killed half way leaves a record the next
/// reaper frees instead of one lost for good.
pub const CLAIMING: u32 = 1 << 31;
/// Released by its process at exit without the region lock while another process held it (a
/// reaper there may be reading it): the lock's next holder frees it.
pub const EXITED: u32 = 4;

#[repr(C)]
pub struct ProcRecord {
    pub state: AtomicU32,
    pub pid: i32,
    pub starttime: u64,
    /// Heap offset of the first `ShmAttach` of this process, 0 for none.
    pub shm_attach: u64,
    /// Set once the process made a segment (its `creator`): its exit then needs the ids' lock.
    pub shm_made: u32,
    /// Coarse monotonic ms when another process last confirmed (with system calls) that this
    /// one lives although its life mutex says otherwise (its holding thread ended): a hint
    /// that spares every toucher the same check for a while.
    pub alive_ms: AtomicU32,
    /// Held by the process for as long as it runs: the kernel marks it owner-died when the
    /// holder dies, so others see a death without a system call (sem undo).
    pub life: RobustMutex,
    /// The lock-free SEM_UNDO semop in progress, for whoever finds the process dead in it.
    pub sem_intent: crate::sem::SemIntent,
}

/// Takes `rec`'s life mutex in this thread if no live thread holds it (a new record, after
/// exec, or after the holding thread ended).
pub fn hold_life(rec: &ProcRecord) {
    let w = rec.life.owner_word();
    if w & 0x3fff_ffff == 0 || w & 0x4000_0000 != 0 {
        rec.life.hold();
    }
}

pub const NO_SLOT: u32 = u32::MAX;

/// Who "current" is in this process; the user-space analogue of `current`. The start time is
/// read from /proc when a record first needs it (0 until then): most processes never do.
static SELF_PID: AtomicI32 = AtomicI32::new(0);
static SELF_START: AtomicU64 = AtomicU64::new(0);

/// How many regions a process may hold records in: its namespace's, and those of the IPC
/// namespaces it moved to (see the shim's `ipcns`).
pub const MAX_REGIONS: usize = 8;

/// This process's record in each region it has one in: (region base, slot).
static SELF_SLOTS: [(AtomicUsize, AtomicU32); MAX_REGIONS] =
    [const { (AtomicUsize::new(0), AtomicU32::new(NO_SLOT)) }; MAX_REGIONS];

/// Learns who we are: at start-up, and again in a fork child.
pub fn identify_self() {
    SELF_PID.store(sys::getpid(), Ordering::Relaxed);
    SELF_START.store(0, Ordering::Relaxed);
    for (_, slot) in &SELF_SLOTS {
        // Stored only when set: in a fork child, a store copies the page it shares.
        if slot.load(Ordering::Relaxed) != NO_SLOT {
            slot.store(NO_SLOT, Ordering::Relaxed);
        }
    }
}

/// CLOCK_BOOTTIME (ns) read before this process's latest fork, 0 if none: the start time of
/// the child lies between that read and the child's first (see [`identify_fork_child`]).
static FORK_CLOCK: AtomicU64 = AtomicU64::new(0);

/// Before a fork (see [`FORK_CLOCK`]).
pub fn before_fork() {
    FORK_CLOCK.store(boottime_ns(), Ordering::Relaxed);
}

/// CLOCK_BOOTTIME from the kernel itself (in a fork child, a system call costs less than the
/// page faults of the vDSO's way), 0 if it fails.
fn boottime_ns() -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    let clock = libc::CLOCK_BOOTTIME as usize;
    match sys::syscall6(libc::SYS_clock_gettime, clock, &raw mut t as usize, 0, 0, 0, 0) {
        Ok(_) => t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64,
        Err(_) => 0,
    }
}

/// In a fork child: learns who we are, and our start time without reading `/proc` (a fresh
/// process's first look there costs it more than the rest of a fork) when the clock tells it:
/// the kernel takes it (`start_boottime`, shown in USER_HZ ticks) after the parent's read of
/// the same clock before the fork and before ours, so when both reads fall inside one tick,
/// well clear of its edges, that tick is it. Otherwise it is read from `/proc` when needed.
pub fn identify_fork_child() {
    identify_self();
    const TICK: u64 = 10_000_000;
    const MARGIN: u64 = 200_000;
    let (before, now) = (FORK_CLOCK.load(Ordering::Relaxed), boottime_ns());
    if before != 0
        && now != 0
        && before / TICK == now / TICK
        && before % TICK >= MARGIN
        && now % TICK < TICK - MARGIN
    {
        SELF_START.store(before / TICK, Ordering::Relaxed);
    }
}

/// Our pid if we learnt it (no system call), else 0.
#[inline]
pub fn known_pid() -> i32 {
    SELF_PID.load(Ordering::Relaxed)
}

/// Our start time if we learnt it (no system call), else 0.
pub fn known_start() -> u64 {
    SELF_START.load(Ordering::Relaxed)
}

#[inline]
pub fn self_pid() -> i32 {
    let pid = SELF_PID.load(Ordering::Relaxed);
    if pid == 0 { sys::getpid() } else { pid }
}

/// Our start time (field 22 of /proc/PID/stat), which names our records with our pid. Read
/// before taking a lock under which a record of ours may be made or looked for: the read is a
/// fresh process's first look at /proc, too slow to make other lockers wait for.
pub fn self_start() -> u64 {
    match SELF_START.load(Ordering::Relaxed) {
        0 => {
            let start = stat_of(self_pid()).map_or(0, |s| s.starttime);
            SELF_START.store(start, Ordering::Relaxed);
            start
        }
        start => start,
    }
}

/// This process's record in `region`, NO_SLOT if it has none.
pub fn self_slot(region: &Region) -> u32 {
    let base = region.base();
    SELF_SLOTS
        .iter()
        .find(|(b, _)| b.load(Ordering::Acquire) == base)
        .map_or(NO_SLOT, |(_, s)| s.load(Ordering::Relaxed))
}

/// Publishes `slot` as our record in `region` if the entry still names `seen`; else the slot
/// another thread of ours published meanwhile.
fn swap_self_slot(region: &Region, seen: u32, slot: u32) -> Result<(), u32> {
    let base = region.base();
    for (b, s) in &SELF_SLOTS {
        if b.compare_exchange(0, base, Ordering::AcqRel, Ordering::Acquire).is_ok()
            || b.load(Ordering::Acquire) == base
        {
            return s.compare_exchange(seen, slot, Ordering::AcqRel, Ordering::Acquire).map(|_| ());
        }
    }
    Ok(())
}

pub fn set_self_slot(region: &Region, slot: u32) {
    let base = region.base();
    // Entries are claimed in order and never given back: a region's is before the first free.
    for (b, s) in &SELF_SLOTS {
        if b.compare_exchange(0, base, Ordering::AcqRel, Ordering::Acquire).is_ok()
            || b.load(Ordering::Acquire) == base
        {
            s.store(slot, Ordering::Relaxed);
            return;
        }
    }
}

pub struct ProcStat {
    pub starttime: u64,
    pub dead: bool,
}

/// How much of `/proc/PID/stat` holds its first 22 fields (a 15-character comm and every
/// number at its widest take about 360 bytes).
pub const STAT_PREFIX: usize = 512;

/// Reads state and start time of `pid` without allocating: ENOENT or ESRCH when it is gone,
/// another errno when it could not be looked at (EMFILE, EACCES under `hidepid`).
pub fn stat_of(pid: i32) -> Result<ProcStat, Errno> {
    let mut path = [0u8; 32];
    let mut n = 0;
    for &b in b"/proc/" {
        path[n] = b;
        n += 1;
    }
    let mut digits = [0u8; 12];
    let mut d = 0;
    let mut v = pid as u32;
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        path[n] = digits[d];
        n += 1;
    }
    for &b in b"/stat\0" {
        path[n] = b;
        n += 1;
    }
    let fd = sys::open(&path[..n], libc::O_RDONLY, 0)?;
    let mut buf = [0u8; STAT_PREFIX];
    let len = sys::read(fd, &mut buf);
    sys::close(fd);
    parse_stat(&buf[..len?]).ok_or(libc::EIO)
}

fn parse_stat(text: &[u8]) -> Option<ProcStat> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let mut fields = text[close + 1..].split(|&b| b == b' ').filter(|f| !f.is_empty());
    let state = *fields.next()?.first()?;
    // After the state (field 3), start time is field 22: 18 fields further on.
    let start = fields.nth(18)?;
    let starttime =
        start.iter().take_while(|b| b.is_ascii_digit()).fold(0u64, |a, &b| a * 10 + (b - b'0') as u64);
    Some(ProcStat { starttime, dead: state == b'Z' || state == b'X' })
}

/// Whether the process a record names is still running (a zombie has already dropped its
/// memory, so for IPC it is dead, as in the kernel's exit_mm).
pub fn alive(pid: i32, starttime: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    if pid == self_pid() {
        return true;
    }
    if sys::kill(pid, 0) == Err(libc::ESRCH) {
        return false;
    }
    match stat_of(pid) {
        Ok(st) => !st.dead && (starttime == 0 || st.starttime == starttime),
        Err(libc::ENOENT | libc::ESRCH) => false,
        // kill found it, and we cannot look closer (out of fds, hidepid): taking it for dead
        // would release a live process's record, its locks and undo.
        Err(_) => true,
    }
}

/// The number of process slots worth scanning.
pub fn procs_hwm(region: &Region) -> u32 {
    region.header().procs_hwm.load(Ordering::Relaxed).min(MAX_PROCS)
}

/// Before `region` is unmapped: lets go of the life mutexes this thread holds in it, which
/// would otherwise stay on the thread's robust list pointing into unmapped memory (glibc walks
/// that list on its next robust lock or unlock). Only a process that maps several regions
/// over its life, as tests do, unmaps one.
pub fn release_lives(region: &Region) {
    let me = sys::syscall6(libc::SYS_gettid, 0, 0, 0, 0, 0, 0).unwrap_or(0) as u32;
    for slot in 0..procs_hwm(region) {
        // SAFETY: slot < procs_hwm <= MAX_PROCS; the life mutex is only read and, when this
        // thread owns it, unlocked by its owner.
        let rec = unsafe { record(region, slot) };
        if rec.life.owner_word() & 0x3fff_ffff == me {
            rec.life.release();
        }
    }
}

/// # Safety
/// The caller holds the region lock; `slot < MAX_PROCS`.
#[allow(clippy::mut_from_ref)]
pub unsafe fn record(region: &Region, slot: u32) -> &mut ProcRecord {
    debug_assert!(slot < MAX_PROCS);
    // SAFETY: the process table lies at PROCS_OFF with MAX_PROCS records.
    unsafe { region.at::<ProcRecord>(PROCS_OFF + slot as u64 * size_of::<ProcRecord>() as u64) }
}

/// Claims a free record for `pid` without the region lock: its state goes from FREE to
/// CLAIMING by a compare-and-swap, so no two claimers get it and no scan under the lock takes
/// it for a dead process's while it is filled in. None when the table is full.
fn claim_record(region: &Region, state: u32, pid: i32, starttime: u64) -> Option<u32> {
    let claiming = CLAIMING | sys::getpid() as u32;
    for slot in 0..MAX_PROCS {
        // A record never used before gets its memory first (none left: the table is full).
        let off = PROCS_OFF + slot as u64 * size_of::<ProcRecord>() as u64;
        if region.reserve(off, size_of::<ProcRecord>() as u64).is_err() {
            break;
        }
        // SAFETY: slot in range; only the state is touched before the record is ours.
        let r = unsafe { record(region, slot) };
        if r.state.load(Ordering::Relaxed) != FREE
            || r.state.compare_exchange(FREE, claiming, Ordering::Acquire, Ordering::Relaxed).is_err()
        {
            continue;
        }
        r.pid = pid;
        r.starttime = starttime;
        r.shm_attach = 0;
        r.shm_made = 0;
        r.alive_ms.store(0, Ordering::Relaxed);
        r.sem_intent = crate::sem::SemIntent::default();
        // SAFETY: a free record's mutex is no one's: its process died or released it.
        unsafe { RobustMutex::init(&raw mut r.life) };
        region.header().procs_hwm.fetch_max(slot + 1, Ordering::Relaxed);
        r.state.store(state, Ordering::Release);
        return Some(slot);
    }
    None
}

/// Claims a free record for `pid`, reaping the dead when the table is full.
///
/// # Safety
/// The caller holds the region lock.
pub unsafe fn alloc_record(region: &Region, state: u32, pid: i32, starttime: u64) -> Option<u32> {
    claim_record(region, state, pid, starttime).or_else(|| {
        // SAFETY: lock held.
        unsafe { reap(region) };
        claim_record(region, state, pid, starttime)
    })
}

/// This process's record, created on first need.
///
/// # Safety
/// The caller holds the region lock.
pub unsafe fn current_record(region: &Region) -> Option<u32> {
    own_record(region, true)
}

/// This process's record, made without the region lock unless the table is full (then
/// reaping takes it, or finds it held when `locked`). Two threads of ours making one at once
/// keep the first published.
fn own_record(region: &Region, locked: bool) -> Option<u32> {
    let seen = self_slot(region);
    if seen < MAX_PROCS {
        // SAFETY: seen < MAX_PROCS; state and pid of a record are read only.
        let r = unsafe { record(region, seen) };
        if r.state.load(Ordering::Acquire) == LIVE && r.pid == self_pid() {
            return Some(seen);
        }
    }
    let (pid, start) = (self_pid(), self_start());
    let slot = match claim_record(region, LIVE, pid, start) {
        Some(slot) => slot,
        None => {
            let _g = if locked { None } else { Some(region.lock().ok()?) };
            // SAFETY: the region lock is held, by the caller or here.
            unsafe { reap(region) };
            claim_record(region, LIVE, pid, start)?
        }
    };
    // SAFETY: slot < MAX_PROCS, claimed by us.
    let r = unsafe { record(region, slot) };
    match swap_self_slot(region, seen, slot) {
        Ok(()) => {
            hold_life(r);
            Some(slot)
        }
        Err(other) => {
            r.state.store(FREE, Ordering::Release);
            Some(other)
        }
    }
}

/// Releases everything a record holds and frees it; `pid` is reported as the last user.
///
/// # Safety
/// The caller holds the region lock.
pub unsafe fn release_record(region: &Region, slot: u32) {
    // SAFETY: per the contract.
    let r = unsafe { record(region, slot) };
    let pid = r.pid;
    // SAFETY: per the contract.
    unsafe { drop_state(region, slot, pid, false) };
    r.state.store(FREE, Ordering::Release);
}

/// What a record holds, given back: exit_sem, exit_msg and exit_shm (`own`: the record of
/// this image, at its exit).
///
/// # Safety
/// The caller holds the region lock, or the record is its own and holds no segment state
/// (see [`holds_shm`]).
unsafe fn drop_state(region: &Region, slot: u32, pid: i32, own: bool) {
    // SAFETY: the set locks nest inside the region lock, or are taken alone.
    unsafe { crate::sem::exit_sem(region, slot, own) };
    // SAFETY: the queue locks nest inside the region lock, or are taken alone.
    unsafe {
        if own {
            crate::msg::exit_msg_own(region, slot);
        } else {
            crate::msg::exit_msg(region, slot);
        }
    }
    // SAFETY: per the contract, a record with segment state is released under the region lock.
    if holds_shm(unsafe { record(region, slot) }) {
        // SAFETY: as above.
        unsafe { crate::shm::exit_shm(region, slot, pid) };
    }
}

/// Whether the record attached or made a segment: only then does its release need the region
/// lock (the shm ids'); semaphores and queues have locks of their own.
fn holds_shm(r: &ProcRecord) -> bool {
    r.shm_attach != 0 || r.shm_made != 0
}

/// Releases the state of every dead process.
///
/// # Safety
/// The caller holds the region lock.
pub unsafe fn reap(region: &Region) {
    for slot in 0..procs_hwm(region) {
        // SAFETY: lock held.
        let r = unsafe { record(region, slot) };
        let state = r.state.load(Ordering::Acquire);
        if state == EXITED {
            r.state.store(FREE, Ordering::Release);
            continue;
        }
        if state & CLAIMING != 0 {
            // Its claimer died before filling it in (a zombie still counts as there).
            if sys::kill((state & !CLAIMING) as i32, 0) == Err(libc::ESRCH) {
                let _ = r.state.compare_exchange(state, FREE, Ordering::AcqRel, Ordering::Relaxed);
            }
            continue;
        }
        if state == FREE || alive(r.pid, r.starttime) {
            continue;
        }
        // SAFETY: lock held.
        unsafe { release_record(region, slot) };
        region.header().counters.procs_reaped.fetch_add(1, Ordering::Relaxed);
    }
}

/// The record of the pre-exec image of this very process, if it had one: the new image drops
/// what exec drops (attachments) and keeps the rest (the process is still the creator of its
/// segments). Called once at start-up.
pub fn exec_cleanup(region: &Region) {
    let pid = self_pid();
    let ours = |slot: u32| {
        // SAFETY: the caller holds the region lock.
        let r = unsafe { record(region, slot) };
        r.state.load(Ordering::Relaxed) == LIVE && r.pid == pid
    };
    // Our start time only if a record has our pid (most images had none).
    let start = {
        let Ok(_guard) = region.lock() else { return };
        if !(0..procs_hwm(region)).any(ours) {
            return;
        }
        drop(_guard);
        self_start()
    };
    let Ok(_guard) = region.lock() else { return };
    for slot in 0..procs_hwm(region) {
        // SAFETY: lock held.
        let r = unsafe { record(region, slot) };
        if ours(slot) && r.starttime == start {
            // SAFETY: lock held.
            unsafe { crate::shm::exec_shm(region, slot, pid) };
            crate::sem::exec_sem(region, slot);
            // SAFETY: region lock held (the queue locks nest inside it).
            unsafe { crate::msg::exit_msg(region, slot) };
            // The old image's threads, the holder among them, are gone.
            hold_life(r);
            set_self_slot(region, slot);
            return;
        }
    }
}

/// Normal exit: drop attachments now rather than waiting to be reaped.
pub fn exit_cleanup(region: &Region) {
    crate::sem::flush_counts(region);
    crate::pipe::flush_counts(region);
    crate::msg::flush_counts(region);
    let slot = self_slot(region);
    if slot == NO_SLOT {
        return;
    }
    // SAFETY: slot came from own_record; our own record is freed by nobody else while we live.
    let r = unsafe { record(region, slot) };
    // A vfork child that calls exit() shares our statics: only the record's own process may
    // release it.
    if r.state.load(Ordering::Acquire) != LIVE || r.pid != sys::getpid() {
        return;
    }
    // Without segment state, no region lock: 100 processes exiting at once would queue on it
    // (behind a holder preempted by other programs, for a whole time slice).
    let _guard = if holds_shm(r) {
        let Ok(g) = region.lock() else { return };
        Some(g)
    } else {
        None
    };
    // A record whose life mutex another thread of ours holds stays until we are reaped:
    // freeing it would let a new owner's mutex sit in that thread's robust list.
    let w = r.life.owner_word();
    let whole = w & 0x3fff_ffff == 0 || w & 0x4000_0000 != 0 || r.life.release();
    // SAFETY: the region lock is held if the record holds segment state.
    unsafe { drop_state(region, slot, r.pid, true) };
    if whole {
        // A reaper holding the region lock may have read the record as ours, and take our pid,
        // dead a moment from now, for the next owner's: FREE only under the lock.
        if _guard.is_some() {
            r.state.store(FREE, Ordering::Release);
        } else if let Some(Ok(_g)) = region.try_lock() {
            r.state.store(FREE, Ordering::Release);
        } else {
            r.state.store(EXITED, Ordering::Release);
        }
    }
    set_self_slot(region, NO_SLOT);
}

/// This process leaves the IPC namespace of `region` for another (`unshare`, `setns`): what
/// `ksys_unshare` does to the old one, `exit_sem` (its undo applied, when `undo`: no other
/// thread shares the list) and `exit_shm` (when `orphan`: it stops being its segments'
/// creator, and under shm_rmid_forced its unattached ones die). Its attachments stay, as the
/// mappings do.
pub fn leave_ipc_ns(region: &Region, undo: bool, orphan: bool) {
    let slot = self_slot(region);
    if slot >= MAX_PROCS || !(undo || orphan) {
        return;
    }
    let Ok(_guard) = region.lock() else { return };
    // SAFETY: lock held; slot < MAX_PROCS.
    let r = unsafe { record(region, slot) };
    if r.state.load(Ordering::Relaxed) != LIVE || r.pid != sys::getpid() {
        return;
    }
    if undo {
        // SAFETY: region lock held (the set locks nest inside it).
        unsafe { crate::sem::exit_sem(region, slot, false) };
    }
    if orphan {
        // SAFETY: lock held.
        unsafe { crate::shm::orphan_shm(region, slot) };
    }
}

/// This process's record with its life mutex held by a live thread of ours, created on first
/// need: a sleeper needs one so that its death is seen (with one read of the life word).
pub fn ensure_record(region: &Region) -> Option<u32> {
    let slot = self_slot(region);
    if slot < MAX_PROCS {
        // SAFETY: our own record; the life mutex is only read here, or taken by us.
        let rec = unsafe { record(region, slot) };
        if rec.state.load(Ordering::Relaxed) == LIVE && rec.pid == self_pid() {
            hold_life(rec);
            return Some(slot);
        }
    }
    own_record(region, false)
}

/// Whether the process of record `slot` is dead: one read of its life word, and system calls
/// only when that says so (confirmed at most every 100 ms unless `fresh`: the holding thread
/// may have ended while the process lives on).
///
/// # Safety
/// `slot < MAX_PROCS`, and the caller holds a lock under which the record cannot be freed
/// (the region lock, or a family lock whose entries the record's release removes first).
pub unsafe fn dead(region: &Region, slot: u32, fresh: bool) -> bool {
    // SAFETY: per the contract.
    let rec = unsafe { record(region, slot) };
    if rec.state.load(Ordering::Relaxed) != LIVE {
        return true;
    }
    let word = rec.life.owner_word();
    if word & 0x3fff_ffff != 0 && word & 0x4000_0000 == 0 || rec.pid == self_pid() {
        return false;
    }
    let t = sys::clock_gettime(libc::CLOCK_MONOTONIC_COARSE);
    let now = (t.tv_sec as u64 * 1000 + t.tv_nsec as u64 / 1_000_000) as u32 | 1;
    let last = rec.alive_ms.load(Ordering::Relaxed);
    if !fresh && last != 0 && now.wrapping_sub(last) < 100 {
        return false;
    }
    if alive(rec.pid, rec.starttime) {
        rec.alive_ms.store(now, Ordering::Relaxed);
        return false;
    }
    true
}

/// Live records, for `ipcshim status`.
pub fn live_pids(region: &Region) -> Vec<i32> {
    let Ok(_guard) = region.lock() else { return Vec::new() };
    // SAFETY: lock held.
    unsafe { reap(region) };
    (0..procs_hwm(region))
        // SAFETY: lock held.
        .map(|s| unsafe { record(region, s) })
        .filter(|r| matches!(r.state.load(Ordering::Acquire), LIVE | FORKING))
        .map(|r| r.pid)
        .collect()
}

/// Fork support: the parent prepares the child's record before fork so that attachment counts
/// are right the moment fork returns (as dup_mmap does); the child then claims it.
pub mod fork {
    use super::*;

    thread_local! {
        /// Per region (by base): the record prepared for the child.
        static PENDING: core::cell::Cell<[(usize, u32); MAX_REGIONS]> =
            const { core::cell::Cell::new([(0, NO_SLOT); MAX_REGIONS]) };
    }

    fn set_pending(region: &Region, slot: u32) {
        PENDING.with(|p| {
            let mut all = p.get();
            let base = region.base();
            if let Some(e) = all.iter_mut().find(|e| e.0 == base || e.0 == 0) {
                *e = (base, slot);
            }
            p.set(all);
        });
    }

    fn take_pending(region: &Region) -> u32 {
        PENDING.with(|p| {
            let mut all = p.get();
            let found = all.iter_mut().find(|e| e.0 == region.base()).map_or(NO_SLOT, |e| {
                let slot = e.1;
                e.1 = NO_SLOT;
                slot
            });
            p.set(all);
            found
        })
    }

    /// In the parent, before fork.
    pub fn prepare(region: &Region) {
        set_pending(region, NO_SLOT);
        let slot = self_slot(region);
        if slot == NO_SLOT {
            return;
        }
        let start = self_start();
        let Ok(_guard) = region.lock() else { return };
        // SAFETY: lock held.
        unsafe {
            if record(region, slot).shm_attach == 0 {
                return;
            }
            let Some(child) = alloc_record(region, FORKING, self_pid(), start) else {
                return;
            };
            crate::shm::fork_shm(region, slot, child);
            set_pending(region, child);
        }
    }

    /// In the child, before fork returns (after [`identify_self`]).
    pub fn child(region: &Region) {
        let slot = take_pending(region);
        if slot == NO_SLOT {
            return;
        }
        let start = self_start();
        let Ok(_guard) = region.lock() else { return };
        // SAFETY: lock held; the slot was prepared by our parent for us.
        unsafe {
            let r = record(region, slot);
            if r.state.load(Ordering::Relaxed) != FORKING {
                return;
            }
            r.pid = self_pid();
            r.starttime = start;
            r.life.hold();
            r.state.store(LIVE, Ordering::Release);
        }
        set_self_slot(region, slot);
    }

    /// In the parent after fork: `pid` is fork's result. A failed fork gives the prepared
    /// record back.
    pub fn parent(region: &Region, pid: i32) {
        let slot = take_pending(region);
        if slot == NO_SLOT || pid > 0 {
            return;
        }
        let Ok(_guard) = region.lock() else { return };
        // SAFETY: lock held; the slot is the one we prepared and the child never existed.
        unsafe {
            if record(region, slot).state.load(Ordering::Relaxed) == FORKING {
                release_record(region, slot);
            }
        }
    }
}
