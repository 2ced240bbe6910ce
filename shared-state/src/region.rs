//! The region: one file per IPC namespace, mapped by every process of the namespace at its own
//! address. Everything inside is addressed by offset from the start of the file.
//!
//! Layout (fixed by [`LAYOUT_VERSION`]):
//! header page | what runs on each CPU | process table | shm ids | shm free extents | pipe objects | pipe hash |
//! pipe GC scratch | heap | shm data area | pipe page area | sem sets | semaphores |
//! sem queue entries | their sembufs (a few each, then room for many each) | sem undo entries | semadj entries | sem journals (one per
//! set, then the ids') | each process's sets with undo entries | msg queues | msg headers |
//! msg sleepers | msg text chunk links | their claim words | msg text | msg journals (one per queue, then the
//! ids') | unix names | unix connect streams | unix pending connects | epoll | msg rings | unix
//! addresses | exec wake-ups | tcp listeners | tcp connections |
//! bound udp sockets | backing bitmap.
//! The file is sparse: only pages that were touched take memory, and every page is reserved
//! before it is first touched (`crate::backing`), so a full tmpfs is an error, never a SIGBUS.

use crate::alloc::Heap;
use crate::journal::JOURNAL_BYTES;
use crate::lock::{LockGuard, RobustMutex};
use crate::pipe::{PipeInodeInfo, PipeNs};
use crate::proc::ProcRecord;
use crate::shm::{Extent, ShmidKernel};
use crate::sys;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::fmt;

pub const MAGIC: [u8; 8] = *b"IPCSHIM\0";
/// Bumped whenever the meaning of any byte in the region changes.
pub const LAYOUT_VERSION: u32 = 43;
pub const PAGE_SIZE: u64 = 4096;
/// The kernel's IPCMNI: ids per family, and the id's sequence multiplier.
pub const IPCMNI: u32 = 32768;
pub const MAX_PROCS: u32 = 16384;

const fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// Who runs on each CPU (`journal::Running`): whether a lock holder or a peer is worth spinning
/// on. Next to the header, which every call reads first: a fresh process's first read of the
/// header maps this page too (the kernel maps the 64 KiB around a read fault), where it would
/// otherwise take a fault and page tables of its own at the region's far end.
pub const RUNNING_OFF: u64 = PAGE_SIZE;
const _: () = assert!(size_of::<crate::journal::Running>() as u64 == PAGE_SIZE);
pub const PROCS_OFF: u64 = RUNNING_OFF + PAGE_SIZE;
pub const SHM_SLOTS_OFF: u64 =
    align_up(PROCS_OFF + MAX_PROCS as u64 * size_of::<ProcRecord>() as u64, PAGE_SIZE);
pub const SHM_EXTENTS_OFF: u64 =
    align_up(SHM_SLOTS_OFF + IPCMNI as u64 * size_of::<ShmidKernel>() as u64, PAGE_SIZE);
/// Free extents can never outnumber live segments plus one.
pub const MAX_EXTENTS: u32 = IPCMNI + 1;
/// Pipe and FIFO objects (`pipe_inode_info`), indexed by slot.
pub const PIPE_MAX: u32 = 32768;
pub const PIPE_SLOTS_OFF: u64 =
    align_up(SHM_EXTENTS_OFF + MAX_EXTENTS as u64 * size_of::<Extent>() as u64, PAGE_SIZE);
/// Buckets of the (dev, ino) lookup: slot + 1 of the first object of each chain, 0 for none.
pub const PIPE_HASH_BUCKETS: u32 = PIPE_MAX;
pub const PIPE_HASH_OFF: u64 =
    align_up(PIPE_SLOTS_OFF + PIPE_MAX as u64 * size_of::<PipeInodeInfo>() as u64, PAGE_SIZE);
pub const HEAP_OFF: u64 = align_up(PIPE_HASH_OFF + PIPE_HASH_BUCKETS as u64 * 4, 1 << 20);
pub const HEAP_END: u64 = 1 << 30;
/// Segment memory lives here; `shmat` maps a second view of a range of it.
pub const SHM_DATA_OFF: u64 = HEAP_END;
pub const SHM_DATA_SIZE: u64 = 64 << 30;
/// Pipe ring pages: runs of 2^order pages handed out by `pipe_pages`.
pub const PIPE_PAGES_OFF: u64 = SHM_DATA_OFF + SHM_DATA_SIZE;
pub const PIPE_PAGES_SIZE: u64 = 32 << 30;
/// Semaphore sets (`sem_array`), indexed by slot.
pub const SEM_SETS_OFF: u64 = PIPE_PAGES_OFF + PIPE_PAGES_SIZE;
/// Each set owns a window of this many `sem`s (larger sets fail with ENOMEM).
pub const SEM_WINDOW: u32 = 32768;
pub const SEM_SEMS_OFF: u64 =
    align_up(SEM_SETS_OFF + IPCMNI as u64 * size_of::<crate::sem::SemArray>() as u64, PAGE_SIZE);
/// Sleeping semops (`sem_queue`) in the namespace at once.
pub const SEM_QUEUE_MAX: u32 = 16384;
pub const SEM_QUEUE_OFF: u64 = align_up(
    SEM_SEMS_OFF + IPCMNI as u64 * SEM_WINDOW as u64 * size_of::<crate::sem::Sem>() as u64,
    PAGE_SIZE,
);
/// A sleeping semop keeps at most this many sembufs.
pub const SEM_SOPS_MAX: u32 = 2048;
/// One of at most this many keeps them in a dense array of their own (most semops have one
/// or two), so that the sembufs of many sleepers share a page: each page a process touches
/// first costs it a fault.
pub const SEM_SOPS_SMALL: u32 = 4;
pub const SEM_SOPS_SMALL_OFF: u64 = align_up(SEM_QUEUE_OFF + SEM_QUEUE_MAX as u64 * 64, PAGE_SIZE);
pub const SEM_SOPS_OFF: u64 =
    align_up(SEM_SOPS_SMALL_OFF + SEM_QUEUE_MAX as u64 * SEM_SOPS_SMALL as u64 * 6, PAGE_SIZE);
/// (process, set) undo entries and their per-semaphore adjustments.
pub const SEM_UNDO_MAX: u32 = 65536;
pub const SEM_UNDO_OFF: u64 =
    align_up(SEM_SOPS_OFF + SEM_QUEUE_MAX as u64 * SEM_SOPS_MAX as u64 * 6, PAGE_SIZE);
pub const SEM_ADJ_MAX: u32 = 1 << 20;
pub const SEM_ADJ_OFF: u64 = align_up(SEM_UNDO_OFF + SEM_UNDO_MAX as u64 * 32, PAGE_SIZE);
/// The journals of the sets' locks (by set index), then the one of the ids' lock.
pub const SEM_JOURNAL_OFF: u64 = align_up(SEM_ADJ_OFF + SEM_ADJ_MAX as u64 * 16, PAGE_SIZE);
/// Per process record, a bitmap of the sets it may have undo entries on (IPCMNI bits).
pub const SEM_PROC_SETS_OFF: u64 = SEM_JOURNAL_OFF + (IPCMNI as u64 + 1) * JOURNAL_BYTES;
pub const SEM_PROC_SETS_BYTES: u64 = IPCMNI as u64 / 8;
/// Each semaphore's own lock (`sem->lock`), in a window per set like the semaphores.
pub const SEM_LOCKS_OFF: u64 =
    align_up(SEM_PROC_SETS_OFF + MAX_PROCS as u64 * SEM_PROC_SETS_BYTES, PAGE_SIZE);
/// Journals lent to holders of a semaphore's lock (one each at a time), and their claim words.
pub const SEM_LENT_JOURNALS: u32 = 1024;
pub const SEM_LENT_CLAIMS_OFF: u64 = align_up(
    SEM_LOCKS_OFF + IPCMNI as u64 * SEM_WINDOW as u64 * size_of::<crate::journal::ObjLock>() as u64,
    PAGE_SIZE,
);
pub const SEM_LENT_JOURNAL_OFF: u64 = align_up(SEM_LENT_CLAIMS_OFF + SEM_LENT_JOURNALS as u64 * 4, PAGE_SIZE);
/// Message queues (`msg_queue`), indexed by slot.
pub const MSG_QUEUES_OFF: u64 = SEM_LENT_JOURNAL_OFF + SEM_LENT_JOURNALS as u64 * JOURNAL_BYTES;
/// Messages (`msg_msg`) queued, handed over or held by a sleeping sender, namespace-wide.
pub const MSG_MSGS_MAX: u32 = 1 << 20;
pub const MSG_MSGS_OFF: u64 =
    align_up(MSG_QUEUES_OFF + IPCMNI as u64 * size_of::<crate::msg::MsgQueue>() as u64, PAGE_SIZE);
/// Sleeping msgsnd/msgrcv calls (`msg_sender`, `msg_receiver`) at once.
pub const MSG_WAITERS_MAX: u32 = 16384;
pub const MSG_WAITERS_OFF: u64 =
    align_up(MSG_MSGS_OFF + MSG_MSGS_MAX as u64 * crate::msg::MSG_MSG_SIZE, PAGE_SIZE);
/// Message text lives in chunks of this many bytes (the kernel's msg_msgseg), chained by a
/// separate array of links.
pub const MSG_CHUNK: u64 = 1024;
pub const MSG_CHUNKS_MAX: u32 = 1 << 23;
pub const MSG_LINKS_OFF: u64 =
    align_up(MSG_WAITERS_OFF + MSG_WAITERS_MAX as u64 * crate::msg::MSG_WAITER_SIZE, PAGE_SIZE);
/// Each chunk's claim word (`journal::Pool`): the queue index + 1 whose message holds it.
pub const MSG_CLAIMS_OFF: u64 = align_up(MSG_LINKS_OFF + MSG_CHUNKS_MAX as u64 * 4, PAGE_SIZE);
pub const MSG_TEXT_OFF: u64 = align_up(MSG_CLAIMS_OFF + MSG_CHUNKS_MAX as u64 * 4, PAGE_SIZE);
/// The journals of the queues' locks (by queue index), then the one of the ids' lock.
pub const MSG_JOURNAL_OFF: u64 = align_up(MSG_TEXT_OFF + MSG_CHUNKS_MAX as u64 * MSG_CHUNK, PAGE_SIZE);
/// Names of AF_UNIX stream sockets listening in shim processes (`unix::UnixName`).
pub const UNIX_NAMES_MAX: u32 = 4096;
pub const UNIX_NAMES_OFF: u64 = MSG_JOURNAL_OFF + (IPCMNI as u64 + 1) * JOURNAL_BYTES;
/// Each client's connects to each of those names, in order (`unix::pending_add`), after a word
/// saying when the tables were last full and, before it, the count of connects pending; then
/// the connects not yet accepted.
pub const UNIX_STREAMS_MAX: u32 = 16384;
pub const UNIX_STREAMS_OFF: u64 = align_up(UNIX_NAMES_OFF + UNIX_NAMES_MAX as u64 * 128, PAGE_SIZE) + 64;
pub const UNIX_PENDING_MAX: u32 = 65536;
pub const UNIX_PENDING_OFF: u64 = align_up(UNIX_STREAMS_OFF + UNIX_STREAMS_MAX as u64 * 24, PAGE_SIZE);
/// epoll: instances, items, wait-queue chunks and the objects' wait queues (`epoll.rs`).
pub const EPOLL_OFF: u64 = align_up(UNIX_PENDING_OFF + UNIX_PENDING_MAX as u64 * 32, PAGE_SIZE);
/// Each queue's ring of small messages for the lock-free path, indexed by slot.
pub const MSG_RINGS_OFF: u64 = align_up(EPOLL_OFF + crate::epoll::AREA_SIZE, PAGE_SIZE);
/// Each socket object's bound address (`unix_sk(sk)->addr`), indexed by slot.
pub const UNIX_ADDRS_OFF: u64 =
    align_up(MSG_RINGS_OFF + IPCMNI as u64 * size_of::<crate::msg_ring::MsgRing>() as u64, PAGE_SIZE);
/// Objects of the ends an exec in progress closes (`pipe_exec`).
pub const EXEC_WAKES_MAX: u32 = 256;
pub const EXEC_WAKES_OFF: u64 = align_up(UNIX_ADDRS_OFF + PIPE_MAX as u64 * 128, PAGE_SIZE);
/// Loopback TCP listeners in shim processes, and connections published by their clients
/// (`crate::tcp`), 64 bytes an entry.
pub const TCP_LISTEN_MAX: u32 = 1024;
pub const TCP_LISTEN_OFF: u64 = align_up(
    EXEC_WAKES_OFF + EXEC_WAKES_MAX as u64 * size_of::<crate::pipe_exec::ExecWake>() as u64,
    PAGE_SIZE,
);
pub const TCP_CONNS_MAX: u32 = 16384;
pub const TCP_CONNS_OFF: u64 = TCP_LISTEN_OFF + TCP_LISTEN_MAX as u64 * 64;
/// Loopback UDP sockets of shim processes bound to a port (`crate::udp`), 64 bytes an entry.
pub const UDP_BOUND_MAX: u32 = 1024;
pub const UDP_BOUND_OFF: u64 = TCP_CONNS_OFF + TCP_CONNS_MAX as u64 * 64;
/// One bit per page of everything before it: the page was reserved (`crate::backing`).
pub const BACKING_OFF: u64 = align_up(UDP_BOUND_OFF + UDP_BOUND_MAX as u64 * 64, PAGE_SIZE);
pub const BACKING_BYTES: u64 = align_up(BACKING_OFF / PAGE_SIZE / 8, PAGE_SIZE);
/// One bit per page of the bitmap, in the header: that bitmap page was reserved.
pub const BACKING_L1_WORDS: usize = (BACKING_BYTES / PAGE_SIZE).div_ceil(64) as usize;
pub const TOTAL_SIZE: u64 = BACKING_OFF + BACKING_BYTES;

const _: () = assert!(HEAP_OFF < HEAP_END);

const STATE_READY: u32 = 0x5245_4459;

/// Limits of the namespace, read from `/proc/sys/kernel` and `/proc/sys/fs` when it is created.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    pub shmmax: u64,
    pub shmall: u64,
    pub shmmni: u32,
    pub semmsl: u32,
    pub semmns: u32,
    pub semopm: u32,
    pub semmni: u32,
    pub msgmax: u32,
    pub msgmnb: u32,
    pub msgmni: u32,
    /// `shm_rmid_forced`: segments die with their last attachment or their creator.
    pub shm_rmid_forced: u32,
    /// `fs.pipe-max-size`: the largest F_SETPIPE_SZ without CAP_SYS_RESOURCE, in bytes.
    pub pipe_max_size: u32,
    /// `fs.pipe-user-pages-soft` / `-hard`: ring pages a user may hold (0 = no limit).
    pub pipe_user_pages_soft: u64,
    pub pipe_user_pages_hard: u64,
    /// `net.unix.max_dgram_qlen`: datagrams a socket queues from senders it is not connected to.
    pub unix_max_dgram_qlen: u32,
    /// `net.core.wmem_default`: a new socket's send buffer.
    pub wmem_default: u32,
}

/// Per-namespace counters, for `ipcshim status`.
#[repr(C)]
#[derive(Default)]
pub struct Counters {
    pub shm_calls: AtomicU64,
    /// Segments whose pages went to a kernel segment (the region had no room).
    pub shm_backed: AtomicU64,
    pub procs_reaped: AtomicU64,
    pub lock_recoveries: AtomicU64,
    pub pipes_created: AtomicU64,
    /// Lock-free SEM_UNDO semops whose process died between changing the value and storing
    /// the adjustment, finished by another process.
    pub sem_undo_settled: AtomicU64,
    /// Syscalls trapped by the catch-all (Syscall User Dispatch) in shimmed processes.
    pub sud_traps: LineCounter,
    /// Bytes written into and read out of shim pipes.
    pub pipe_bytes_in: LineCounter,
    pub pipe_bytes_out: LineCounter,
    /// semget/semop/semctl calls served: each lock of the semaphore state, and each lock-free
    /// semop (added by each process 64 at a time, and at its exit).
    pub sem_calls: LineCounter,
    /// semops that queued to sleep, and sleepers completed by another process's call.
    pub sem_waits: AtomicU64,
    pub sem_wakeups: AtomicU64,
    /// Pipe reads and writes served (added by each process 64 at a time, and at its exit).
    pub pipe_calls: AtomicU64,
    /// Futex sleeps of blocked pipe readers and writers, and the wake calls that ended them
    /// (both next to a system call, so a shared add costs nothing in comparison).
    pub pipe_waits: AtomicU64,
    pub pipe_wakeups: AtomicU64,
    /// msgget/msgsnd/msgrcv/msgctl calls served (each lock of the message queue state; added
    /// by each process 64 at a time, and at its exit).
    pub msg_calls: LineCounter,
    /// Messages handed to a receiver that died before taking them, put back in their queue.
    pub msgs_requeued: AtomicU64,
    /// Bytes sent into and received out of shim AF_UNIX stream sockets' queues.
    pub unix_bytes_in: LineCounter,
    pub unix_bytes_out: LineCounter,
    /// Socket sends and receives served by the queues (added 64 at a time, as pipe_calls).
    pub unix_calls: AtomicU64,
    /// Connections served by the shim (socketpairs and adopted connects), and connections
    /// given back to the kernel for something the shim does not serve.
    pub unix_connections: AtomicU64,
    pub unix_handbacks: AtomicU64,
    /// Syscalls made through call sites the catch-all rewrote into jumps (`shim/src/entry/sud/patch.rs`):
    /// each thread adds its own count at its next trap, and every thread traps as it exits.
    pub sud_patched_calls: AtomicU64,
    /// Call sites rewritten.
    pub sud_patched_sites: AtomicU64,
    /// Loopback TCP connections adopted by a shim server (`crate::tcp`), and TCP socket queues
    /// given back to the kernel (two per connection); also counted in the unix counters.
    pub tcp_connections: AtomicU64,
    pub tcp_handbacks: AtomicU64,
    /// Bytes sent into and received out of loopback TCP queues (added by each process 64 KiB
    /// at a time, and at its exit).
    pub tcp_bytes_in: AtomicU64,
    pub tcp_bytes_out: AtomicU64,
    /// Loopback UDP datagrams (and their bytes) queued by the shim (`crate::udp`), and those
    /// it dropped for a full receive buffer as the kernel does.
    pub udp_datagrams: AtomicU64,
    pub udp_bytes: AtomicU64,
    pub udp_drops: AtomicU64,
}

/// A process's own tally of a counter bumped on every call, added to the shared counter 64 at
/// a time (and by [`Tally::flush`] at exit): a locked add per call on a line that other
/// processes also write would cost more than the call's own work. Tagged with the pid, so a
/// fork child does not add its parent's tally again. Threads of a process may lose a few counts
/// to each other (plain load and store).
#[derive(Default)]
pub struct Tally(AtomicU64);

impl Tally {
    pub const fn new() -> Tally {
        Tally(AtomicU64::new(0))
    }

    #[inline]
    pub fn bump(&self, shared: &AtomicU64) {
        self.add(shared, 1, 64);
    }

    /// Adds `n` (bytes, say) to this process's tally, which goes to `shared` once it reaches
    /// `every` (at most 2^32).
    #[inline]
    pub fn add(&self, shared: &AtomicU64, n: u64, every: u64) {
        let pid = crate::proc::self_pid() as u32 as u64;
        let v = self.0.load(Ordering::Relaxed);
        let n = if v >> 32 == pid { (v & 0xffff_ffff) + n } else { n };
        if n >= every {
            shared.fetch_add(n, Ordering::Relaxed);
            self.0.store(pid << 32, Ordering::Relaxed);
        } else {
            self.0.store(pid << 32 | n, Ordering::Relaxed);
        }
    }

    /// Adds what this process has not added yet.
    pub fn flush(&self, shared: &AtomicU64) {
        let pid = crate::proc::self_pid() as u32 as u64;
        let v = self.0.swap(pid << 32, Ordering::Relaxed);
        if v >> 32 == pid && v & 0xffff_ffff != 0 {
            shared.fetch_add(v & 0xffff_ffff, Ordering::Relaxed);
        }
    }
}

/// A counter alone on its cache line: one bumped on every call by processes on different CPUs
/// (a pipe's writer and reader) would otherwise move a shared line between them each time.
#[repr(C, align(64))]
#[derive(Default)]
pub struct LineCounter(AtomicU64);

impl core::ops::Deref for LineCounter {
    type Target = AtomicU64;
    fn deref(&self) -> &AtomicU64 {
        &self.0
    }
}

#[repr(C)]
pub struct Header {
    pub magic: [u8; 8],
    pub version: u32,
    pub state: AtomicU32,
    pub total_size: u64,
    /// The offsets this file was laid out with: a file from another build is refused.
    pub layout: [u64; 19],
    pub created: i64,
    /// One past the highest process slot ever used: scans of the table stop here.
    pub procs_hwm: AtomicU32,
    pub lock: RobustMutex,
    pub limits: Limits,
    pub counters: Counters,
    pub heap: Heap,
    pub shm: crate::shm::ShmNs,
    pub pipe: PipeNs,
    pub sem: crate::sem::SemNs,
    pub msg: crate::msg::MsgNs,
    /// Which pages of the backing bitmap were reserved (see `crate::backing`).
    pub backing: [AtomicU64; BACKING_L1_WORDS],
    /// Parts of the bitmap lately read (see `crate::backing`).
    pub backing_hot: [AtomicU64; crate::backing::HOT_WORDS],
}

/// The section offsets and the header's own shape: a build that moved any of them (even
/// without a version bump) is told apart from this one.
const fn layout() -> [u64; 19] {
    [
        PROCS_OFF,
        SHM_SLOTS_OFF,
        SHM_EXTENTS_OFF,
        PIPE_SLOTS_OFF,
        PIPE_HASH_OFF,
        HEAP_OFF,
        SHM_DATA_OFF,
        PIPE_PAGES_OFF,
        TOTAL_SIZE,
        size_of::<Header>() as u64,
        core::mem::offset_of!(Header, lock) as u64,
        core::mem::offset_of!(Header, pipe) as u64,
        size_of::<PipeInodeInfo>() as u64,
        SEM_SETS_OFF,
        SEM_JOURNAL_OFF,
        core::mem::offset_of!(Header, sem) as u64,
        size_of::<ProcRecord>() as u64,
        MSG_QUEUES_OFF,
        core::mem::offset_of!(Header, msg) as u64,
    ]
}

const _: () = assert!(size_of::<Header>() as u64 <= PAGE_SIZE);

/// Why a region could not be used; `Display` is the one-line message the user sees.
#[derive(Debug)]
pub struct RegionError {
    pub path: String,
    pub kind: RegionErrorKind,
}

#[derive(Debug)]
pub enum RegionErrorKind {
    Io(&'static str, i32),
    Missing,
    BadName,
    Foreign,
    /// Right magic and version, other offsets or header shape.
    OtherBuild,
    Version(u32),
    Size(u64),
    Incomplete,
    NotInMemory,
    /// A file found by name that is not the named owner's alone (see [`Owner`]).
    NotPrivate(Owner, u32, u32, u32),
    /// IPCSHIM_GROUP is not a group id.
    BadGroup,
    /// The file system has no room for the region's first pages.
    NoSpace(i32),
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ipcshim: {}: ", self.path)?;
        match self.kind {
            RegionErrorKind::Io(what, e) => {
                write!(f, "{what}: {}", std::io::Error::from_raw_os_error(e))
            }
            RegionErrorKind::Missing => write!(f, "no such namespace (no region file)"),
            RegionErrorKind::BadName => write!(f, "namespace names may not contain '/' or be empty"),
            RegionErrorKind::Foreign => write!(f, "not an ipcshim region (bad magic); refusing to use it"),
            RegionErrorKind::OtherBuild => {
                write!(f, "region laid out by a different ipcshim build (same version); refusing to use it")
            }
            RegionErrorKind::Version(v) => {
                write!(f, "region layout version {v}, this ipcshim uses {LAYOUT_VERSION}; refusing to use it")
            }
            RegionErrorKind::Size(s) => {
                write!(
                    f,
                    "region is {s} bytes, expected {TOTAL_SIZE} (truncated or foreign); refusing to use it"
                )
            }
            RegionErrorKind::NotInMemory => {
                write!(f, "not on tmpfs or ramfs (IPC state would be written to disk); set IPCSHIM_DIR")
            }
            RegionErrorKind::NoSpace(e) => {
                write!(
                    f,
                    "no room for a new region ({}); IPC is left to the kernel",
                    std::io::Error::from_raw_os_error(e)
                )
            }
            RegionErrorKind::Incomplete => {
                write!(f, "region initialisation never completed (corrupt header); refusing to use it")
            }
            RegionErrorKind::NotPrivate(owner, uid, gid, mode) => {
                let want = match owner {
                    Owner::User(u) => format!("user {u} alone (mode 0600)"),
                    Owner::Group(g) => format!("group {g} alone (mode 0660)"),
                };
                write!(
                    f,
                    "owned by uid {uid} gid {gid} with mode 0{:o}, not by {want}; refusing to use it",
                    mode & 0o7777
                )
            }
            RegionErrorKind::BadGroup => write!(f, "IPCSHIM_GROUP must be a numeric group id"),
        }
    }
}

impl std::error::Error for RegionError {}

/// A mapped region.
pub struct Region {
    base: usize,
    /// A read-only mapping of the data area, from a read-only open: views duplicated from it
    /// cannot be made writable (SHM_RDONLY attachments refuse mprotect(PROT_WRITE) with EACCES).
    ro_data: usize,
    /// The file's path, or empty when it is read from [`Region::fd_hint`] at need (a region an
    /// exec'd image was handed: the readlink of a fresh process's /proc/self/fd costs more
    /// than everything else its start-up does with the region).
    pub path: String,
    /// A descriptor of the file in this process, kept up to date by its keeper; -1 if none.
    fd_hint: core::sync::atomic::AtomicI32,
    /// The file's (st_dev, st_ino + 1) once a descriptor opened by name showed them (0 before):
    /// what [`Region::kept_file`] checks the kept descriptor against.
    file_id: [AtomicU64; 2],
    /// Index + 1 of the semaphore set the lock-free semop last found reserved (a reserved page
    /// stays so): its check is then one load of this mapping's own.
    pub(crate) sem_set_seen: core::sync::atomic::AtomicU32,
}

// SAFETY: the region is shared memory whose fields are either atomics or guarded by the region
// lock; the struct itself only holds the base address.
unsafe impl Sync for Region {}
// SAFETY: as above.
unsafe impl Send for Region {}

/// Who may open a namespace's region file by its name. Processes started from one that has
/// the region open stay in its namespace whatever their credentials (they inherit the open
/// files, see [`RegionFiles::from_env`]); the name only admits unrelated processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// `ipcshim-<uid>-<ns>`, mode 0600: that user alone.
    User(u32),
    /// `ipcshim-g<gid>-<ns>`, mode 0660 with that group: each of its members.
    Group(u32),
}

/// A namespace by name: its region file and who owns it.
#[derive(Clone, Debug)]
pub struct NsName {
    pub path: String,
    pub owner: Owner,
}

/// `$IPCSHIM_DIR/ipcshim-<uid>-<ns>` or `$IPCSHIM_DIR/ipcshim-g<gid>-<ns>`.
pub fn ns_name(dir: &str, owner: Owner, ns: &str) -> Result<NsName, RegionError> {
    let dir = dir.trim_end_matches('/');
    let path = match owner {
        Owner::User(uid) => format!("{dir}/ipcshim-{uid}-{ns}"),
        Owner::Group(gid) => format!("{dir}/ipcshim-g{gid}-{ns}"),
    };
    if ns.is_empty() || ns.contains('/') {
        return Err(RegionError { path, kind: RegionErrorKind::BadName });
    }
    Ok(NsName { path, owner })
}

/// The path of user `uid`'s namespace `ns` in `dir`.
pub fn region_path(dir: &str, uid: u32, ns: &str) -> Result<String, RegionError> {
    ns_name(dir, Owner::User(uid), ns).map(|n| n.path)
}

/// The namespace the environment names: `IPCSHIM_DIR` (default /dev/shm), `IPCSHIM_NS`
/// (default "default"), and `IPCSHIM_GROUP` (a group id: that group's namespace) or else the
/// real user id.
pub fn name_from_env() -> Result<NsName, RegionError> {
    let dir = std::env::var("IPCSHIM_DIR").unwrap_or_else(|_| "/dev/shm".into());
    let ns = std::env::var("IPCSHIM_NS").unwrap_or_else(|_| "default".into());
    let owner = match std::env::var("IPCSHIM_GROUP") {
        Ok(g) if !g.is_empty() => match g.parse() {
            Ok(gid) => Owner::Group(gid),
            Err(_) => {
                return Err(RegionError {
                    path: format!("IPCSHIM_GROUP={g}"),
                    kind: RegionErrorKind::BadGroup,
                });
            }
        },
        _ => Owner::User(sys::getuid()),
    };
    ns_name(&dir, owner, &ns)
}

/// The environment variable that hands a region's open files to the processes a process
/// starts: `RW,RO,DEV,INO` (the two descriptors, and the file's device and inode, so that a
/// number closed and reused for something else is not taken for the region).
pub const FD_VAR: &str = "IPCSHIM_REGION_FD";

/// Region files an exec'd image was handed (see [`RegionFiles::handed`]): open here as the
/// file `dev`, `ino`, of `size` bytes.
pub struct Handed {
    pub files: RegionFiles,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
}

/// A region file's two open descriptors: read-write for the region, read-only for the
/// read-only view of the data area (an SHM_RDONLY attachment must not be made writable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionFiles {
    pub rw: i32,
    pub ro: i32,
}

impl RegionFiles {
    /// Opens (or with `create`, creates) the namespace `name`, close-on-exec. A file that is
    /// not its owner's alone is refused: anyone who can open it can read and change every
    /// object in it.
    pub fn open(name: &NsName, create: bool) -> Result<RegionFiles, RegionError> {
        let err = |kind| RegionError { path: name.path.clone(), kind };
        let mut cpath = name.path.as_bytes().to_vec();
        cpath.push(0);
        let rw = loop {
            match sys::open(&cpath, libc::O_RDWR | libc::O_NOFOLLOW, 0) {
                Ok(fd) => break fd,
                Err(libc::ENOENT) if create => {}
                Err(libc::ENOENT) => return Err(err(RegionErrorKind::Missing)),
                Err(e) => return Err(err(RegionErrorKind::Io("open", e))),
            }
            // Fresh files are made whole, then linked: nobody sees one with the wrong owner.
            match create_file(name) {
                Ok(fd) => break fd,
                Err(libc::EEXIST) => continue,
                Err(e) => return Err(err(RegionErrorKind::Io("create", e))),
            }
        };
        let owned = sys::fstat(rw).map_err(|e| RegionErrorKind::Io("fstat", e)).and_then(|st| {
            let ok = match name.owner {
                Owner::User(uid) => {
                    (st.st_uid == uid || st.st_uid == sys::geteuid()) && st.st_mode & 0o077 == 0
                }
                Owner::Group(gid) => st.st_gid == gid && st.st_mode & 0o007 == 0,
            };
            if ok {
                Ok(())
            } else {
                Err(RegionErrorKind::NotPrivate(name.owner, st.st_uid, st.st_gid, st.st_mode))
            }
        });
        let ro = owned.and_then(|()| {
            sys::open(&cpath, libc::O_RDONLY | libc::O_NOFOLLOW, 0)
                .map_err(|e| RegionErrorKind::Io("open", e))
        });
        match ro {
            Ok(ro) => Ok(RegionFiles { rw, ro }),
            Err(kind) => {
                sys::close(rw);
                Err(err(kind))
            }
        }
    }

    /// The region files this process was handed in [`FD_VAR`] (see [`RegionFiles::inherited`]).
    pub fn from_env() -> Option<RegionFiles> {
        Self::handed_from_env().map(|h| h.files)
    }

    /// As [`RegionFiles::from_env`], with what was learnt checking them.
    pub fn handed_from_env() -> Option<Handed> {
        Self::handed(&std::env::var(FD_VAR).ok()?)
    }

    /// The region files named by `value` (`RW,RO,DEV,INO`), if they are open here as that file
    /// with those access modes.
    pub fn inherited(value: &str) -> Option<RegionFiles> {
        Self::handed(value).map(|h| h.files)
    }

    /// As [`RegionFiles::inherited`], with the file's identity and size.
    pub fn handed(value: &str) -> Option<Handed> {
        // What follows a ';' is the IPC namespace's (see the shim's `ipcns`).
        let value = value.split(';').next().unwrap_or_default();
        let mut it = value.split(',').map(|w| w.parse::<u64>().ok());
        let mut next = || it.next().flatten();
        let (rw, ro, dev, ino) = (next()?, next()?, next()?, next()?);
        let files = RegionFiles { rw: i32::try_from(rw).ok()?, ro: i32::try_from(ro).ok()? };
        let same = |fd: i32, mode: i32| {
            sys::fstat(fd).ok().filter(|st| {
                st.st_mode & libc::S_IFMT == libc::S_IFREG
                    && (st.st_dev, st.st_ino) == (dev, ino)
                    && sys::syscall6(libc::SYS_fcntl, fd as usize, libc::F_GETFL as usize, 0, 0, 0, 0)
                        .is_ok_and(|fl| fl as i32 & libc::O_ACCMODE == mode)
            })
        };
        let st = same(files.rw, libc::O_RDWR)?;
        same(files.ro, libc::O_RDONLY)?;
        Some(Handed { files, dev, ino, size: st.st_size as u64 })
    }

    /// The IPC namespace's region files named after the ';' of [`FD_VAR`]
    /// (`BASE_KNS,RW,RO,DEV,INO,KNS`, see the shim's `ipcns`), if still open as that file.
    pub fn ipc_inherited(value: &str) -> Option<RegionFiles> {
        let (_, rest) = value.split_once(',')?;
        Self::inherited(rest)
    }

    /// The IPC namespace's region files this process was handed (see [`Self::ipc_inherited`]).
    pub fn ipc_from_env() -> Option<RegionFiles> {
        let value = std::env::var(FD_VAR).ok()?;
        Self::ipc_inherited(value.split_once(';')?.1)
    }

    /// The file's (device, inode), for [`FD_VAR`].
    pub fn identity(&self) -> Result<(u64, u64), i32> {
        sys::fstat(self.rw).map(|st| (st.st_dev, st.st_ino))
    }

    /// The file's path, as /proc names it (for messages and `ipcshim status`).
    pub fn path(&self) -> String {
        std::fs::read_link(format!("/proc/self/fd/{}", self.rw))
            .map_or_else(|_| format!("(fd {})", self.rw), |p| p.display().to_string())
    }

    pub fn close(self) {
        sys::close(self.rw);
        sys::close(self.ro);
    }
}

/// A new region file for `name`, with its owner's mode (and group), linked at its path once
/// complete; EEXIST when someone else linked one first.
fn create_file(name: &NsName) -> Result<i32, i32> {
    let (dir, _) = name.path.rsplit_once('/').ok_or(libc::EINVAL)?;
    let mut cdir = if dir.is_empty() { b"/".to_vec() } else { dir.as_bytes().to_vec() };
    cdir.push(0);
    let mut cpath = name.path.as_bytes().to_vec();
    cpath.push(0);
    let mode = match name.owner {
        Owner::User(_) => 0o600,
        Owner::Group(_) => 0o660,
    };
    let settle = |fd: i32| -> Result<(), i32> {
        // The umask may have taken bits the owner needs.
        sys::syscall6(libc::SYS_fchmod, fd as usize, mode as usize, 0, 0, 0, 0)?;
        if let Owner::Group(gid) = name.owner {
            sys::syscall6(libc::SYS_fchown, fd as usize, u32::MAX as usize, gid as usize, 0, 0, 0)?;
        }
        Ok(())
    };
    let close_on_err = |fd: i32, r: Result<(), i32>| match r {
        Ok(()) => Ok(fd),
        Err(e) => {
            sys::close(fd);
            Err(e)
        }
    };
    let in_place = || {
        let fd = sys::open(&cpath, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW, mode)?;
        close_on_err(fd, settle(fd))
    };
    // No O_TMPFILE here (or, below, no /proc to link through): made in place, for a moment
    // with the creator's group and the umask's mode.
    let fd = match sys::open(&cdir, libc::O_TMPFILE | libc::O_RDWR, mode) {
        Ok(fd) => close_on_err(fd, settle(fd))?,
        Err(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL) => return in_place(),
        Err(e) => return Err(e),
    };
    let proc_path = format!("/proc/self/fd/{fd}\0");
    let linked = sys::syscall6(
        libc::SYS_linkat,
        libc::AT_FDCWD as usize,
        proc_path.as_ptr() as usize,
        libc::AT_FDCWD as usize,
        cpath.as_ptr() as usize,
        libc::AT_SYMLINK_FOLLOW as usize,
        0,
    );
    match close_on_err(fd, linked.map(|_| ())) {
        Err(libc::ENOENT | libc::EACCES) => in_place(),
        r => r,
    }
}

/// Up to `N` white-space separated numbers of `/proc/sys/<name>`, `defaults` where missing.
/// Without allocating: a new IPC namespace's region is made where malloc may not be usable
/// (a clone child whose parent had other threads).
fn read_sysctl<const N: usize>(name: &str, defaults: [u64; N]) -> [u64; N] {
    let mut path = [0u8; 64];
    let head = b"/proc/sys/";
    let len = head.len() + name.len();
    if len >= path.len() {
        return defaults;
    }
    path[..head.len()].copy_from_slice(head);
    path[head.len()..len].copy_from_slice(name.as_bytes());
    let Ok(fd) = sys::open(&path[..len + 1], libc::O_RDONLY | libc::O_CLOEXEC, 0) else { return defaults };
    let mut buf = [0u8; 128];
    let n = sys::read(fd, &mut buf).unwrap_or(0);
    sys::close(fd);
    let mut out = defaults;
    let words = buf[..n].split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty());
    for (slot, w) in out.iter_mut().zip(words) {
        if let Some(v) = w.iter().try_fold(0u64, |v, &b| {
            b.is_ascii_digit().then(|| v.checked_mul(10)?.checked_add((b - b'0') as u64)).flatten()
        }) {
            *slot = v;
        }
    }
    out
}

fn read_sysctl_u64(name: &str, default: u64) -> u64 {
    read_sysctl(name, [default])[0]
}

/// The kernel's current limits for this process's IPC namespace.
pub fn kernel_limits() -> Limits {
    let sem = read_sysctl("kernel/sem", [32000, 1_024_000_000, 500, 32000]).map(|v| v as u32);
    Limits {
        shmmax: read_sysctl_u64("kernel/shmmax", u64::MAX - (1 << 24)),
        shmall: read_sysctl_u64("kernel/shmall", u64::MAX - (1 << 24)),
        shmmni: read_sysctl_u64("kernel/shmmni", 4096) as u32,
        semmsl: sem[0],
        semmns: sem[1],
        semopm: sem[2],
        semmni: sem[3],
        msgmax: read_sysctl_u64("kernel/msgmax", 8192) as u32,
        msgmnb: read_sysctl_u64("kernel/msgmnb", 16384) as u32,
        msgmni: read_sysctl_u64("kernel/msgmni", 32000) as u32,
        shm_rmid_forced: read_sysctl_u64("kernel/shm_rmid_forced", 0) as u32,
        pipe_max_size: read_sysctl_u64("fs/pipe-max-size", 1 << 20) as u32,
        pipe_user_pages_soft: read_sysctl_u64("fs/pipe-user-pages-soft", 16 * 1024),
        pipe_user_pages_hard: read_sysctl_u64("fs/pipe-user-pages-hard", 0),
        unix_max_dgram_qlen: read_sysctl_u64("net/unix/max_dgram_qlen", 10) as u32,
        wmem_default: read_sysctl_u64("net/core/wmem_default", crate::skb::SNDBUF_DEFAULT as u64) as u32,
    }
}

impl Region {
    /// Opens the real user's namespace file `path`, creating it if `create` and it does not
    /// exist yet.
    pub fn open(path: &str, create: bool) -> Result<Region, RegionError> {
        Self::open_named(&NsName { path: path.to_string(), owner: Owner::User(sys::getuid()) }, create)
    }

    /// Opens namespace `name`, creating it if `create` and it does not exist yet.
    pub fn open_named(name: &NsName, create: bool) -> Result<Region, RegionError> {
        let files = RegionFiles::open(name, create)?;
        let res = Self::map(&files, &name.path);
        files.close();
        res
    }

    fn new(base: usize, ro_data: usize, path: String) -> Region {
        Region {
            base,
            ro_data,
            path,
            fd_hint: core::sync::atomic::AtomicI32::new(-1),
            file_id: [const { AtomicU64::new(0) }; 2],
            sem_set_seen: core::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Maps the region of the files an exec'd image was handed. The process that handed them
    /// down mapped them, so the file is complete and on a memory file system: neither the file
    /// system nor the creation lock is looked at again, only the header (the layout of this
    /// build). Its path is left to be read when needed ([`Region::set_fd_hint`]). Anything
    /// unexpected goes the long way ([`Region::map`], named `path()`), which says what it is.
    pub fn map_handed(h: &Handed, path: impl FnOnce() -> String) -> Result<Region, RegionError> {
        if h.size == TOTAL_SIZE && Self::validate(h.files.rw, h.size).is_ok() {
            let prot = libc::PROT_READ | libc::PROT_WRITE;
            if let Ok(base) = sys::mmap(0, TOTAL_SIZE as usize, prot, libc::MAP_SHARED, h.files.rw, 0) {
                let ro = libc::PROT_READ;
                match sys::mmap(0, SHM_DATA_SIZE as usize, ro, libc::MAP_SHARED, h.files.ro, SHM_DATA_OFF) {
                    Ok(ro_data) => return Ok(Region::new(base, ro_data, String::new())),
                    Err(_) => {
                        let _ = sys::munmap(base, TOTAL_SIZE as usize);
                    }
                }
            }
        }
        Self::map(&h.files, &path())
    }

    /// A descriptor of the region's file, for [`Region::path`] when it is empty.
    pub fn set_fd_hint(&self, fd: i32) {
        self.fd_hint.store(fd, Ordering::Relaxed);
    }

    /// Remembers which file `st` (of a descriptor opened by the region's name) is.
    pub fn learn_file(&self, st: &libc::stat) {
        self.file_id[0].store(st.st_dev, Ordering::Relaxed);
        self.file_id[1].store(st.st_ino + 1, Ordering::Relaxed);
    }

    /// The kept descriptor ([`Region::set_fd_hint`], opened read-write) when it still is the
    /// region's file as [`Region::learn_file`] saw it: one fstat instead of an open by name
    /// (a readlink and two opens for a region linked after its creation) and a close.
    pub fn kept_file(&self) -> Option<i32> {
        let ino = self.file_id[1].load(Ordering::Relaxed);
        let fd = self.fd_hint.load(Ordering::Relaxed);
        if ino == 0 || fd < 0 {
            return None;
        }
        let st = sys::fstat(fd).ok()?;
        (st.st_ino + 1 == ino && st.st_dev == self.file_id[0].load(Ordering::Relaxed)).then_some(fd)
    }

    /// The region file's path into `out` (NUL-terminated): its name, or where the descriptor
    /// of [`Region::set_fd_hint`] leads; the length without the NUL, None if neither fits.
    pub fn path_into(&self, out: &mut [u8; 512]) -> Option<usize> {
        let p = self.path.as_bytes();
        if !p.is_empty() {
            out.get_mut(..p.len())?.copy_from_slice(p);
            *out.get_mut(p.len())? = 0;
            return Some(p.len());
        }
        let fd = self.fd_hint.load(Ordering::Relaxed);
        if fd < 0 {
            return None;
        }
        let mut link = [0u8; 32];
        link[..14].copy_from_slice(b"/proc/self/fd/");
        let mut digits = [0u8; 10];
        let k = crate::pipe_gc::itoa(fd as u32, &mut digits);
        link[14..14 + k].copy_from_slice(&digits[..k]);
        let n = sys::readlinkat(libc::AT_FDCWD, &link[..14 + k + 1], &mut out[..511]).ok()?;
        out[n] = 0;
        Some(n)
    }

    /// Maps the region behind `files` (named `path` in messages). Concurrent first openers
    /// serialise on an flock; a bad file is refused, never rewritten.
    pub fn map(files: &RegionFiles, path: &str) -> Result<Region, RegionError> {
        let err = |kind| RegionError { path: path.to_string(), kind };
        let fd = files.rw;
        if !sys::on_memory_fs(fd) {
            return Err(err(RegionErrorKind::NotInMemory));
        }
        sys::flock(fd, libc::LOCK_EX).map_err(|e| err(RegionErrorKind::Io("flock", e)))?;
        let size = sys::fstat_size(fd).map_err(|e| err(RegionErrorKind::Io("fstat", e)))?;
        let fresh = size == 0 || Self::abandoned(fd, size);
        if size == 0 {
            sys::ftruncate(fd, TOTAL_SIZE).map_err(|e| err(RegionErrorKind::Io("ftruncate", e)))?;
        } else if !fresh {
            Self::validate(fd, size).map_err(err)?;
        }
        let base =
            sys::mmap(0, TOTAL_SIZE as usize, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
                .map_err(|e| err(RegionErrorKind::Io("mmap", e)))?;
        let ro_data =
            sys::mmap(0, SHM_DATA_SIZE as usize, libc::PROT_READ, libc::MAP_SHARED, files.ro, SHM_DATA_OFF)
                .map_err(|e| {
                let _ = sys::munmap(base, TOTAL_SIZE as usize);
                err(RegionErrorKind::Io("mmap", e))
            })?;
        let region = Region::new(base, ro_data, path.to_string());
        if fresh {
            // SAFETY: we hold the exclusive flock on a zero-length file we just sized: no other
            // process has the header mapped in a usable state yet.
            if let Err(e) = unsafe { region.initialise() } {
                // Nothing was written: the next opener starts afresh. The header may have no
                // page, so the region is not dropped (which reads it).
                let _ = sys::ftruncate(fd, 0);
                let _ = sys::munmap(region.base, TOTAL_SIZE as usize);
                let _ = sys::munmap(region.ro_data, SHM_DATA_SIZE as usize);
                core::mem::forget(region);
                let _ = sys::flock(fd, libc::LOCK_UN);
                return Err(err(RegionErrorKind::NoSpace(e)));
            }
        }
        let _ = sys::flock(fd, libc::LOCK_UN);
        Ok(region)
    }

    /// A creator died under the flock before writing the header: nobody can have used the
    /// file, so it is initialised again.
    fn abandoned(fd: i32, size: u64) -> bool {
        let mut buf = [0u8; size_of::<Header>()];
        size == TOTAL_SIZE
            && matches!(sys::pread(fd, &mut buf, 0), Ok(n) if n == buf.len())
            && buf.iter().all(|&b| b == 0)
    }

    /// Checks the header of an existing file without mapping it (a short file would SIGBUS).
    /// Only its identity and shape are read (the fields before `created`).
    fn validate(fd: i32, size: u64) -> Result<(), RegionErrorKind> {
        const SHAPE: usize = core::mem::offset_of!(Header, created);
        let mut buf = [0u8; SHAPE];
        let n = sys::pread(fd, &mut buf, 0).map_err(|e| RegionErrorKind::Io("read", e))?;
        if n < 16 || buf[..8] != MAGIC {
            return Err(RegionErrorKind::Foreign);
        }
        let version = u32::from_ne_bytes(buf[8..12].try_into().unwrap());
        if version != LAYOUT_VERSION {
            return Err(RegionErrorKind::Version(version));
        }
        if size < size_of::<Header>() as u64 {
            return Err(RegionErrorKind::Size(size));
        }
        let word = |off: usize| u64::from_ne_bytes(buf[off..off + 8].try_into().unwrap());
        let total = word(core::mem::offset_of!(Header, total_size));
        let at = core::mem::offset_of!(Header, layout);
        if total != TOTAL_SIZE || (0..layout().len()).any(|i| word(at + 8 * i) != layout()[i]) {
            return Err(RegionErrorKind::OtherBuild);
        }
        if size != TOTAL_SIZE {
            return Err(RegionErrorKind::Size(size));
        }
        let at = core::mem::offset_of!(Header, state);
        if u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap()) != STATE_READY {
            return Err(RegionErrorKind::Incomplete);
        }
        Ok(())
    }

    /// # Safety
    /// Only while holding the creation flock on a freshly sized file.
    unsafe fn initialise(&self) -> Result<(), sys::Errno> {
        // Every page written below is reserved first, the header's own page before anything
        // (the backing bits live in it): a full file system fails here, with nothing written.
        crate::backing::populate(self, 0, PAGE_SIZE)?;
        self.reserve(0, PAGE_SIZE)?;
        self.reserve(SHM_EXTENTS_OFF, size_of::<Extent>() as u64)?;
        self.reserve(EPOLL_OFF, size_of::<crate::epoll::EpollNs>() as u64)?;
        // The pipe lookup's buckets are hashed all over: reserved whole (128 KiB).
        self.reserve(PIPE_HASH_OFF, PIPE_HASH_BUCKETS as u64 * 4)?;
        // Read by every locker and every exec: small, reserved whole.
        self.reserve(RUNNING_OFF, size_of::<crate::journal::Running>() as u64)?;
        self.reserve(EXEC_WAKES_OFF, EXEC_WAKES_MAX as u64 * size_of::<crate::pipe_exec::ExecWake>() as u64)?;
        let hdr = self.base as *mut Header;
        // SAFETY: the header page is mapped, zero-filled and exclusively ours (see caller).
        // Identity first, readiness last: a creator that dies in between leaves a file that is
        // refused as incomplete rather than as foreign.
        unsafe {
            (*hdr).magic = MAGIC;
            (*hdr).version = LAYOUT_VERSION;
            (*hdr).total_size = TOTAL_SIZE;
            (*hdr).layout = layout();
            RobustMutex::init(&raw mut (*hdr).lock);
            (*hdr).created = sys::real_seconds();
            (*hdr).limits = kernel_limits();
            (*hdr).heap.init(HEAP_OFF);
            (*hdr).shm.init();
            crate::shm::init_extents(self);
            (*hdr).pipe.init();
            crate::sem::SemNs::init(&raw mut (*hdr).sem);
            crate::msg::MsgNs::init(&raw mut (*hdr).msg);
            (*hdr).state.store(STATE_READY, Ordering::Release);
        }
        Ok(())
    }

    pub fn base(&self) -> usize {
        self.base
    }

    /// Start of the read-only view of the data area.
    pub fn ro_data(&self) -> usize {
        self.ro_data
    }

    pub fn header(&self) -> &Header {
        // SAFETY: the header page is mapped for the region's lifetime and was validated.
        unsafe { &*(self.base as *const Header) }
    }

    /// Mutable access to the header's plain fields.
    ///
    /// # Safety
    /// The caller holds the region lock (or is the only user, during initialisation).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn header_mut(&self) -> &mut Header {
        // SAFETY: mapped; exclusivity is the caller's contract.
        unsafe { &mut *(self.base as *mut Header) }
    }

    /// A `T` at offset `off`.
    ///
    /// # Safety
    /// `off .. off + size_of::<T>()` lies in the region, is aligned for `T`, and the caller
    /// holds whatever lock guards it.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn at<T>(&self, off: u64) -> &mut T {
        debug_assert!(off + size_of::<T>() as u64 <= TOTAL_SIZE);
        // SAFETY: per the contract.
        unsafe { &mut *((self.base + off as usize) as *mut T) }
    }

    /// Takes the region lock; if its previous holder died mid-update, repairs what it left.
    pub fn lock(&self) -> Result<LockGuard<'_>, i32> {
        let guard = self.header().lock.lock()?;
        if guard.recovered {
            self.header().counters.lock_recoveries.fetch_add(1, Ordering::Relaxed);
            // SAFETY: we hold the lock.
            unsafe { crate::shm::recover(self) };
        }
        Ok(guard)
    }

    /// [`Region::lock`] if no one holds it; None when someone does.
    pub fn try_lock(&self) -> Option<Result<LockGuard<'_>, i32>> {
        let guard = self.header().lock.try_lock()?;
        if let Ok(g) = &guard
            && g.recovered
        {
            self.header().counters.lock_recoveries.fetch_add(1, Ordering::Relaxed);
            // SAFETY: we hold the lock.
            unsafe { crate::shm::recover(self) };
        }
        Some(guard)
    }

    /// Bytes of memory the region file really occupies.
    pub fn resident_bytes(&self) -> u64 {
        let mut path = [0u8; 512];
        self.path_into(&mut path)
            .and_then(|n| sys::fstatat(libc::AT_FDCWD, &path[..n + 1]).ok())
            .map_or(0, |st| st.st_blocks as u64 * 512)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        crate::proc::release_lives(self);
        let _ = sys::munmap(self.base, TOTAL_SIZE as usize);
        let _ = sys::munmap(self.ro_data, SHM_DATA_SIZE as usize);
    }
}
