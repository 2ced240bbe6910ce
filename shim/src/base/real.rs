//! The real libc functions behind our exports, resolved once in the constructor as
//! `dlsym(RTLD_NEXT)` would (most in the defining object's own hash table, see `Objects`;
//! dlsym makes no allocation on glibc 2.36, NOTES §3), or on first use if another library's
//! constructor calls us earlier.

use core::sync::atomic::{AtomicUsize, Ordering};

/// One of the functions below: its index in [`NAMES`] and [`ADDRS`].
pub struct Real(usize);

impl Real {
    pub fn get(&self) -> usize {
        match ADDRS[self.0].load(Ordering::Acquire) {
            0 => self.resolve(),
            a => a,
        }
    }

    fn resolve(&self) -> usize {
        self.resolve_named(NAMES.split(|&b| b == 0).nth(self.0).unwrap_or_default())
    }

    /// `name` is this function's entry of [`NAMES`].
    fn resolve_named(&self, name: &[u8]) -> usize {
        let mut buf = [0u8; 16];
        buf[..name.len()].copy_from_slice(name);
        // SAFETY: `buf` holds a NUL-terminated symbol name; dlsym has no other preconditions.
        let a = unsafe { libc::dlsym(libc::RTLD_NEXT, buf.as_ptr() as *const libc::c_char) } as usize;
        ADDRS[self.0].store(a, Ordering::Release);
        a
    }
}

macro_rules! reals {
    ($($id:ident = $name:literal,)*) => {
        /// The names, NUL-separated: one string, which needs no relocation at load.
        const NAMES: &[u8] = concat!($($name, "\0",)*).as_bytes();
        /// The addresses, side by side: resolving them writes one or two pages, not one per
        /// function scattered among other statics.
        static ADDRS: [AtomicUsize; [$($name,)*].len()] = [const { AtomicUsize::new(0) }; [$($name,)*].len()];
        reals!(@each 0usize, $($id,)*);
    };
    (@each $i:expr, $id:ident, $($rest:ident,)*) => {
        pub static $id: Real = Real($i);
        reals!(@each $i + 1, $($rest,)*);
    };
    (@each $i:expr,) => {};
}

reals! {
    SHMGET = "shmget",
    SHMAT = "shmat",
    SHMDT = "shmdt",
    SHMCTL = "shmctl",
    SEMGET = "semget",
    SEMOP = "semop",
    SEMTIMEDOP = "semtimedop",
    SEMCTL = "semctl",
    MSGGET = "msgget",
    MSGSND = "msgsnd",
    MSGRCV = "msgrcv",
    MSGCTL = "msgctl",
    SYSCALL = "syscall",
    FORK = "fork",
    READ = "read",
    WRITE = "write",
    READV = "readv",
    WRITEV = "writev",
    READ_CHK = "__read_chk",
    CLOSE = "close",
    PIPE = "pipe",
    PIPE2 = "pipe2",
    DUP = "dup",
    DUP2 = "dup2",
    DUP3 = "dup3",
    FCNTL = "fcntl",
    FCNTL64 = "fcntl64",
    IOCTL = "ioctl",
    POLL = "poll",
    POLL_CHK = "__poll_chk",
    PPOLL = "ppoll",
    SELECT = "select",
    SEND = "send",
    RECV = "recv",
    SENDTO = "sendto",
    RECVFROM = "recvfrom",
    SENDMSG = "sendmsg",
    RECVMSG = "recvmsg",
    PSELECT = "pselect",
    SOCKET = "socket",
    SOCKETPAIR = "socketpair",
    BIND = "bind",
    LISTEN = "listen",
    CONNECT = "connect",
    ACCEPT = "accept",
    ACCEPT4 = "accept4",
    SHUTDOWN = "shutdown",
    SETSOCKOPT = "setsockopt",
    GETSOCKOPT = "getsockopt",
    EPOLL_WAIT = "epoll_wait",
    EPOLL_PWAIT = "epoll_pwait",
    EPOLL_CTL = "epoll_ctl",
    EXECVE = "execve",
    EXECV = "execv",
    EXECVP = "execvp",
    EXECVPE = "execvpe",
}

/// glibc's `__libc_single_threaded` (0 before the constructor ran, or without one).
static SINGLE_THREADED: AtomicUsize = AtomicUsize::new(0);

/// Whether glibc still takes this process for single-threaded: its cancellable wrappers
/// (`read`, `close`…) are then the bare system call, with no cancellation handling around it.
pub fn single_threaded() -> bool {
    let p = SINGLE_THREADED.load(Ordering::Relaxed);
    // SAFETY: glibc's `char __libc_single_threaded`, which lives as long as libc.
    p != 0 && unsafe { (p as *const u8).read_volatile() } != 0
}

pub fn resolve_all() {
    // SAFETY: dlsym with a NUL-terminated name; RTLD_DEFAULT searches every loaded object.
    let single = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__libc_single_threaded".as_ptr()) };
    SINGLE_THREADED.store(single as usize, Ordering::Relaxed);
    let objects = Objects::after_us(Real(0).get());
    // One pass over the names: finding each one's from the start (`resolve`) made the
    // constructor's look-ups quadratic, about 9 us of every process's start-up.
    for ((i, a), name) in ADDRS.iter().enumerate().zip(NAMES.split(|&b| b == 0)) {
        if a.load(Ordering::Acquire) != 0 {
            continue;
        }
        match objects.as_ref().and_then(|o| o.find(name)) {
            Some(f) => a.store(f, Ordering::Release),
            None => {
                Real(i).resolve_named(name);
            }
        }
    }
}

/// The objects that `dlsym(RTLD_NEXT)` searches from ours up to the one that defines the first
/// name (libc, or an interposer preloaded after us): a look-up in their own hash tables finds
/// what dlsym finds at a sixth of its cost (its locking, error catching and finding the caller
/// dominate: 47,700 instructions for the 56 names). A name that an object between ours and
/// that one defines, or that this cannot decide (an IFUNC, no GNU hash table), goes to dlsym.
struct Objects {
    /// (load bias, GNU hash table, symbol table, string table, version table or 0).
    tables: [(usize, usize, usize, usize, usize); 8],
    /// Objects between ours and the defining one, then the defining one, last.
    n: usize,
}

impl Objects {
    fn after_us(first: usize) -> Option<Objects> {
        struct Walk {
            ours: usize,
            first: usize,
            seen_ours: bool,
            done: bool,
            ok: bool,
            o: Objects,
        }
        unsafe extern "C" fn each(
            info: *mut libc::dl_phdr_info,
            _: libc::size_t,
            data: *mut libc::c_void,
        ) -> i32 {
            // SAFETY: dl_iterate_phdr passes a valid dl_phdr_info; `data` is the Walk below.
            let (info, w) = unsafe { (&*info, &mut *(data as *mut Walk)) };
            // SAFETY: the object's program headers, as the loader has them.
            let phdrs = unsafe { core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
            let base = info.dlpi_addr as usize;
            let holds = |a: usize| {
                phdrs.iter().filter(|p| p.p_type == libc::PT_LOAD).any(|p| {
                    let start = base.wrapping_add(p.p_vaddr as usize);
                    a.wrapping_sub(start) < p.p_memsz as usize
                })
            };
            if w.done {
                return 0;
            }
            if !w.seen_ours {
                w.seen_ours = holds(w.ours);
                return 0;
            }
            match tables(base, phdrs) {
                Some(t) if w.o.n < w.o.tables.len() => {
                    w.o.tables[w.o.n] = t;
                    w.o.n += 1;
                }
                _ => w.ok = false,
            }
            w.done = holds(w.first);
            0
        }
        if first == 0 {
            return None;
        }
        let mut w = Walk {
            ours: resolve_all as *const () as usize,
            first,
            seen_ours: false,
            done: false,
            ok: true,
            o: Objects { tables: [(0, 0, 0, 0, 0); 8], n: 0 },
        };
        // SAFETY: the callback only reads what the loader passes it and writes `w`.
        unsafe { libc::dl_iterate_phdr(Some(each), &raw mut w as *mut libc::c_void) };
        (w.ok && w.done).then_some(w.o)
    }

    /// `name`'s address in the defining object, unless an earlier one (or nothing here) says.
    fn find(&self, name: &[u8]) -> Option<usize> {
        let (last, between) = self.tables[..self.n].split_last()?;
        if between.iter().any(|t| lookup(t, name) != Some(None)) {
            return None;
        }
        lookup(last, name)?
    }
}

/// An object's (load bias, GNU hash, symbols, strings, versions) from its dynamic section.
fn tables(base: usize, phdrs: &[libc::Elf64_Phdr]) -> Option<(usize, usize, usize, usize, usize)> {
    const DT_STRTAB: u64 = 5;
    const DT_SYMTAB: u64 = 6;
    const DT_VERSYM: u64 = 0x6fff_fff0;
    const DT_GNU_HASH: u64 = 0x6fff_fef5;
    let dynamic = phdrs.iter().find(|p| p.p_type == libc::PT_DYNAMIC)?;
    let at = base.wrapping_add(dynamic.p_vaddr as usize) as *const [u64; 2];
    let (mut hash, mut sym, mut str, mut ver) = (0, 0, 0, 0);
    for i in 0..dynamic.p_memsz as usize / 16 {
        // SAFETY: the object's mapped dynamic section, read up to DT_NULL.
        let [tag, val] = unsafe { *at.add(i) };
        // The loader relocates these in place on x86_64 (not the vDSO's): one below the load
        // bias is not relocated yet.
        let addr = if (val as usize) < base { base.wrapping_add(val as usize) } else { val as usize };
        match tag {
            0 => break,
            DT_GNU_HASH => hash = addr,
            DT_SYMTAB => sym = addr,
            DT_STRTAB => str = addr,
            DT_VERSYM => ver = addr,
            _ => {}
        }
    }
    (hash != 0 && sym != 0 && str != 0).then_some((base, hash, sym, str, ver))
}

/// `name` in one object's GNU hash table: `Some(Some(address))` for a default-version
/// definition, `Some(None)` for none, `None` when dlsym must decide (an IFUNC).
fn lookup(t: &(usize, usize, usize, usize, usize), name: &[u8]) -> Option<Option<usize>> {
    const STT_GNU_IFUNC: u8 = 10;
    let &(base, hash, symtab, strtab, versym) = t;
    let h = name.iter().fold(5381u32, |h, &c| h.wrapping_mul(33).wrapping_add(c as u32));
    let words = hash as *const u32;
    // SAFETY: the GNU hash table's header, mapped with its object.
    let [nbuckets, symoffset, bloom_size, bloom_shift] = unsafe { *(words as *const [u32; 4]) };
    if nbuckets == 0 || bloom_size == 0 {
        return Some(None);
    }
    let bloom = (hash + 16) as *const u64;
    // SAFETY: bloom_size words of the bloom filter follow the header.
    let word = unsafe { *bloom.add((h as usize / 64) % bloom_size as usize) };
    let mask = 1u64 << (h % 64) | 1u64 << ((h >> bloom_shift) % 64);
    if word & mask != mask {
        return Some(None);
    }
    // SAFETY: the buckets follow the bloom filter, the chains the buckets.
    let buckets = unsafe { bloom.add(bloom_size as usize) } as *const u32;
    // SAFETY: as above.
    let chains = unsafe { buckets.add(nbuckets as usize) };
    // SAFETY: bucket h % nbuckets exists.
    let mut i = unsafe { *buckets.add((h % nbuckets) as usize) } as usize;
    if i < symoffset as usize {
        return Some(None);
    }
    loop {
        // SAFETY: every symbol from a bucket's first to its chain's end has a chain word.
        let ch = unsafe { *chains.add(i - symoffset as usize) };
        if ch | 1 == h | 1 {
            // SAFETY: symbol i of the mapped symbol table, named in the mapped string table.
            let sym = unsafe { &*(symtab as *const libc::Elf64_Sym).add(i) };
            // SAFETY: as above.
            let sname =
                unsafe { core::ffi::CStr::from_ptr((strtab + sym.st_name as usize) as *const libc::c_char) };
            // SAFETY: the version table has an entry per symbol.
            let ver = if versym == 0 { 1 } else { unsafe { *(versym as *const u16).add(i) } };
            // Defined (section index not SHN_UNDEF), not local, the default version (not
            // hidden, not VER_NDX_LOCAL).
            if sname.to_bytes() == name
                && sym.st_shndx != 0
                && sym.st_info >> 4 != 0
                && ver & 0x8000 == 0
                && ver != 0
            {
                if sym.st_info & 0xf == STT_GNU_IFUNC {
                    return None;
                }
                return Some(Some(base.wrapping_add(sym.st_value as usize)));
            }
        }
        if ch & 1 != 0 {
            return Some(None);
        }
        i += 1;
    }
}

/// Calls the real libc function behind `$r` with the given signature and arguments.
macro_rules! real_call {
    ($r:expr, fn($($t:ty),* $(,)?) -> $ret:ty, $($a:expr),* $(,)?) => {{
        // SAFETY: the address is libc's function of exactly this signature, from dlsym.
        let f = unsafe { core::mem::transmute::<usize, unsafe extern "C" fn($($t),*) -> $ret>($r.get()) };
        // SAFETY: arguments are passed through unchanged from our caller.
        unsafe { f($($a),*) }
    }};
}
pub(crate) use real_call;
