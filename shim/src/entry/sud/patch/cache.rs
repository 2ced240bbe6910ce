//! The sites other processes found (issue 23): a process pays, at each call site, its first
//! trap (or two, before the rewrite), and a rewrite's mprotect pair; short programs that start
//! many processes (git, python, shells) pay it in each. So every site that trapped and that
//! the rewriter would rewrite is recorded in a file of its object's for the program, named
//! by the two GNU build-ids, `$IPCSHIM_DIR/ipcshim-sites-<euid>/<program>-<object>` (libc's
//! sites a shell uses are not python's); an image of that program that loads the object
//! (at start-up for the program, libc and the loader, at the first trap in it for others)
//! rewrites all its known sites at once, each code segment made writable once.
//!
//! An entry only names a site: it is rewritten after the same checks against the bytes in
//! memory as one that trapped (`rewritable`), so a stale or foreign entry can at worst point
//! at bytes that fail them. A file not ours (owner, mode), of a torn length, or with entries
//! whose check word does not match the object's build-id is ignored, wholly or entry by
//! entry. Objects without a build-id keep trapping as before.
//!
//! A record is one 8-byte `O_APPEND` write (the site's return address less the load bias,
//! the call's number, and a check word), so processes record concurrently without a lock.

use super::*;

/// Objects seen by this image (their files read, or known to have none).
const OBJECTS: usize = 64;
/// The longest build-id kept (GNU's are 20 bytes; md5 and uuid ones 16).
const ID_MAX: usize = 32;
/// Entries read from one file (a file grows by new sites only, so this is far more than
/// any program has).
const MAX_ENTRIES: usize = 4096;
/// Entries read per system call (on the handler's stack).
const CHUNK: usize = 32;
/// Code segments of one object handled in one pass.
const SEGMENTS: usize = 4;
/// The longest path of a file.
const PATH_MAX: usize = 320;
/// Changes when the format does: old files' check words stop matching.
const FORMAT: u64 = 1;

/// `$IPCSHIM_DIR/ipcshim-sites-<euid>/`, NUL-free, and its length (0: no cache).
static DIR: [AtomicU8; PATH_MAX] = [const { AtomicU8::new(0) }; PATH_MAX];
static DIR_LEN: AtomicUsize = AtomicUsize::new(0);
static EUID: AtomicU32 = AtomicU32::new(0);

/// The program's build-id: the sites used in an object depend on the program using it (libc's
/// for a shell are not python's), so each program has its own file per object. No cache for
/// a program without one.
static MAIN_ID: [AtomicU64; ID_MAX / 8] = [const { AtomicU64::new(0) }; ID_MAX / 8];
static MAIN_LEN: AtomicUsize = AtomicUsize::new(0);

/// One object seen: where it starts and ends and its link map (an object loaded after another
/// was unloaded may get one of them), its load bias, its build-id (length 0: not cached).
struct Seen {
    start: AtomicUsize,
    end: AtomicUsize,
    link_map: AtomicUsize,
    bias: AtomicUsize,
    id: [AtomicU64; ID_MAX / 8],
    id_len: AtomicUsize,
}

/// Written under BUSY only.
static SEEN: [Seen; OBJECTS] = [const {
    Seen {
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        link_map: AtomicUsize::new(0),
        bias: AtomicUsize::new(0),
        id: [const { AtomicU64::new(0) }; ID_MAX / 8],
        id_len: AtomicUsize::new(0),
    }
}; OBJECTS];

/// At start-up, `IPCSHIM_PATCH` not `0` or `nocache`: where the files are.
pub(super) fn init() {
    if std::env::var_os("IPCSHIM_PATCH").is_some_and(|v| v == "nocache") {
        return;
    }
    let dir = std::env::var_os("IPCSHIM_DIR").unwrap_or_else(|| "/dev/shm".into());
    let euid = shared_state::sys::geteuid();
    let path = format!("{}/ipcshim-sites-{euid}/", dir.to_string_lossy());
    // Room for the two build-ids' hex names, the dash and the NUL.
    if path.len() + 4 * ID_MAX + 2 > PATH_MAX || path.as_bytes().contains(&0) {
        return;
    }
    for (d, b) in DIR.iter().zip(path.bytes()) {
        d.store(b, Ordering::Relaxed);
    }
    EUID.store(euid, Ordering::Relaxed);
    DIR_LEN.store(path.len(), Ordering::Release);
}

pub(super) fn on() -> bool {
    MAIN_LEN.load(Ordering::Acquire) != 0
}

/// At start-up, after `init` and with the fault fixups in place: the sites known in the
/// program, libc and the loader are rewritten before anything traps.
pub(super) fn start(user: User) {
    // SAFETY: getauxval has no preconditions.
    let (entry, loader) = unsafe { (libc::getauxval(libc::AT_ENTRY), libc::getauxval(libc::AT_BASE)) };
    let libc_code = libc::getpid as *const () as usize;
    if DIR_LEN.load(Ordering::Acquire) == 0
        || BUSY.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err()
    {
        return;
    }
    for (i, addr) in [entry as usize, libc_code, loader as usize].into_iter().enumerate() {
        if let Some(o) = find_object(addr)
            && seen(&o).is_none()
        {
            object_seen(o, user, i == 0);
        }
        if !on() {
            break;
        }
    }
    BUSY.store(false, Ordering::Release);
}

/// At a trap from a site not in the site table: if its object is new to this image, its
/// known sites are rewritten. Not in a vfork child.
pub(super) fn first_trap(ret: usize, user: User) {
    if !on() {
        return;
    }
    let Some(o) = find_object(ret) else { return };
    if seen(&o).is_some() {
        return;
    }
    if BUSY.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        return;
    }
    if seen(&o).is_none() {
        object_seen(o, user, false);
    }
    BUSY.store(false, Ordering::Release);
}

fn seen(o: &Object) -> Option<&'static Seen> {
    SEEN.iter().take_while(|s| s.start.load(Ordering::Acquire) != 0).find(|s| {
        s.start.load(Ordering::Relaxed) == o.map_start
            && s.end.load(Ordering::Relaxed) == o.map_end
            && s.link_map.load(Ordering::Relaxed) == o.link_map
    })
}

/// Under BUSY, for an object not seen yet: enters it in SEEN and rewrites its known sites;
/// `main`: the program, whose build-id names the files.
fn object_seen(o: Object, user: User, main: bool) {
    let Some(slot) = SEEN.iter().find(|s| s.start.load(Ordering::Relaxed) == 0) else { return };
    let mut notes = [(0usize, 0usize); SEGMENTS];
    let mut code = [(0usize, 0usize, 0usize); SEGMENTS];
    let (mut n_notes, mut n_code) = (0, 0);
    let bias = program_headers(&o, user, |ph, start| {
        if ph.p_type == libc::PT_NOTE && n_notes < SEGMENTS {
            notes[n_notes] = (start, ph.p_filesz as usize);
            n_notes += 1;
        }
        if ph.p_type == libc::PT_LOAD
            && n_code < SEGMENTS
            && let Some(prot) = segment_protection(ph)
        {
            code[n_code] = (start, start + ph.p_filesz as usize, prot);
            n_code += 1;
        }
        false
    });
    let mut id = [0u8; ID_MAX];
    let id_len = bias.map_or(0, |_| {
        notes[..n_notes].iter().find_map(|&(a, len)| build_id(a, len, user, &mut id)).unwrap_or(0)
    });
    slot.bias.store(bias.unwrap_or(0), Ordering::Relaxed);
    for (w, c) in slot.id.iter().zip(id.chunks(8)) {
        w.store(u64::from_le_bytes(c.try_into().unwrap()), Ordering::Relaxed);
    }
    slot.id_len.store(id_len, Ordering::Relaxed);
    slot.end.store(o.map_end, Ordering::Relaxed);
    slot.link_map.store(o.link_map, Ordering::Relaxed);
    slot.start.store(o.map_start, Ordering::Release);
    if main {
        for (w, c) in MAIN_ID.iter().zip(id.chunks(8)) {
            w.store(u64::from_le_bytes(c.try_into().unwrap()), Ordering::Relaxed);
        }
        MAIN_LEN.store(id_len, Ordering::Release);
    }
    if let Some(bias) = bias
        && id_len != 0
    {
        load(bias, &id[..id_len], &code[..n_code], user);
    }
}

/// The GNU build-id in the note segment at [`at`, `at + len`) into `id`; its length.
fn build_id(at: usize, len: usize, user: User, id: &mut [u8; ID_MAX]) -> Option<usize> {
    let mut off = 0;
    for _ in 0..32 {
        if off + 12 > len {
            return None;
        }
        let head: [u32; 3] = user.read(at + off)?;
        let (name, desc) = (head[0] as usize, head[1] as usize);
        let desc_at = off + 12 + name.next_multiple_of(4);
        if head[2] == 3 && name == 4 && user.read::<[u8; 4]>(at + off + 12)? == *b"GNU\0" {
            if desc == 0 || desc > ID_MAX || desc_at + desc > len {
                return None;
            }
            let mut buf = [0u8; ID_MAX];
            if !user.copy_in(&mut buf[..desc], at + desc_at) {
                return None;
            }
            *id = buf;
            return Some(desc);
        }
        off = desc_at.checked_add(desc.next_multiple_of(4))?;
    }
    None
}

/// The path of the object's file (NUL-terminated) in `buf`: DIR, the program's build-id and
/// the object's, in hex.
fn path<'a>(id: &[u8], buf: &'a mut [u8; PATH_MAX]) -> &'a [u8] {
    let mut n = DIR_LEN.load(Ordering::Acquire);
    for (b, d) in buf.iter_mut().zip(&DIR[..n]) {
        *b = d.load(Ordering::Relaxed);
    }
    fn hex(bytes: &[u8], buf: &mut [u8], n: &mut usize) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for &x in bytes {
            buf[*n] = HEX[usize::from(x >> 4)];
            buf[*n + 1] = HEX[usize::from(x & 15)];
            *n += 2;
        }
    }
    let mut main = [0u8; ID_MAX];
    for (c, w) in main.chunks_mut(8).zip(&MAIN_ID) {
        c.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
    hex(&main[..MAIN_LEN.load(Ordering::Relaxed)], buf, &mut n);
    buf[n] = b'-';
    n += 1;
    hex(id, buf, &mut n);
    buf[n] = 0;
    &buf[..n + 1]
}

/// The check word of an entry: the object's build-id, the site, the call and the format.
fn check(id: &[u8], off: u32, nr: u16) -> u16 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ FORMAT;
    for &b in id.iter().chain(&off.to_le_bytes()).chain(&nr.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h ^ h >> 16 ^ h >> 32 ^ h >> 48) as u16
}

/// Opens the object's file for reading if it is ours: a regular file of this euid that no
/// one else may write, of whole entries. The fd and its number of entries.
fn open_ours(path: &[u8], flags: i32) -> Option<(i32, usize)> {
    let fd = shared_state::sys::open(path, flags, 0o600).ok()?;
    // SAFETY: an all-zero stat is a valid value; the kernel fills it.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    let ok = syscall6(libc::SYS_fstat, fd as usize, &raw mut st as usize, 0, 0, 0, 0).is_ok()
        && st.st_mode & libc::S_IFMT == libc::S_IFREG
        && st.st_uid == EUID.load(Ordering::Relaxed)
        && st.st_mode & 0o022 == 0
        && st.st_size % 8 == 0;
    if !ok {
        shared_state::sys::close(fd);
        return None;
    }
    Some((fd, st.st_size as usize / 8))
}

/// One entry of a file: the site's return address less the load bias, and the call.
fn entry(id: &[u8], raw: [u8; 8]) -> Option<(usize, u32)> {
    let off = u32::from_le_bytes(raw[..4].try_into().unwrap());
    let nr = u16::from_le_bytes([raw[4], raw[5]]);
    (check(id, off, nr) == u16::from_le_bytes([raw[6], raw[7]])).then_some((off as usize, u32::from(nr)))
}

/// Under BUSY: rewrites the object's known sites (in a frame of its own: the handler's stack
/// is small); `code` are its code segments (start, end, protection). Each segment is made
/// writable once, over the pages its entries fall in.
#[inline(never)]
fn load(bias: usize, id: &[u8], code: &[(usize, usize, usize)], user: User) {
    let mut buf = [0u8; PATH_MAX];
    let Some((fd, entries)) = open_ours(path(id, &mut buf), libc::O_RDONLY) else { return };
    let entries = entries.min(MAX_ENTRIES);
    // The segment of each entry's site, by return address.
    let segment = |ret: usize| code.iter().position(|&(s, e, _)| s + 7 < ret && ret <= e);
    let mut chunk = [[0u8; 8]; CHUNK];
    // The first pass finds the pages to make writable; the second rewrites.
    let mut range = [(usize::MAX, 0usize); SEGMENTS];
    let mut each = |f: &mut dyn FnMut(usize, u32)| {
        for first in (0..entries).step_by(CHUNK) {
            let n = (entries - first).min(CHUNK);
            // SAFETY: `chunk` is plain bytes, 8 * CHUNK of them.
            let bytes = unsafe { core::slice::from_raw_parts_mut(chunk.as_mut_ptr() as *mut u8, 8 * n) };
            if shared_state::sys::pread(fd, bytes, 8 * first as u64) != Ok(8 * n) {
                return;
            }
            for raw in &chunk[..n] {
                if let Some((off, nr)) = entry(id, *raw) {
                    f(bias.wrapping_add(off), nr);
                }
            }
        }
    };
    each(&mut |ret, _| {
        if let Some(i) = segment(ret) {
            range[i] = (range[i].0.min(ret.saturating_sub(7 + MAX_GAP) & !4095), range[i].1.max(ret));
        }
    });
    let mut opened = [false; SEGMENTS];
    for ((r, &(start, _, prot)), open) in range.iter_mut().zip(code).zip(&mut opened) {
        if r.0 < r.1 {
            r.0 = r.0.max(start & !4095);
            let rwx = prot | libc::PROT_WRITE as usize;
            *open = syscall6(libc::SYS_mprotect, r.0, r.1.next_multiple_of(4096) - r.0, rwx, 0, 0, 0).is_ok();
        }
    }
    let mut done = 0;
    let trace = crate::base::trace::on();
    each(&mut |ret, nr| {
        let Some(i) = segment(ret) else { return };
        let Some(stub) = stub_for(i64::from(nr)) else { return };
        if !opened[i] || (trace && stub != Stub::Pass) || sites::get(ret).is_some_and(|v| v != sites::SEEN) {
            return;
        }
        let Some(site) = site_at(ret, nr, user).filter(|s| s.at > code[i].0) else {
            return;
        };
        let mut tramp = None;
        if let Some(store) = store_kind(&site)
            && let Some(t) = trampolines::make(&site, ret, nr, stub)
            && store_jmp(&site, nr, store, t)
        {
            tramp = Some(t);
        }
        // A site that cannot be rewritten now is rewritten at its first trap.
        sites::put(ret, tramp.unwrap_or(sites::SEEN));
        done += u64::from(tramp.is_some());
    });
    for (i, &(lo, hi)) in range.iter().enumerate() {
        if opened[i] {
            let _ = syscall6(libc::SYS_mprotect, lo, hi.next_multiple_of(4096) - lo, code[i].2, 0, 0, 0);
        }
    }
    shared_state::sys::close(fd);
    if done != 0
        && let Some(r) = crate::base::region::active()
    {
        r.header().counters.sud_patched_sites.fetch_add(done, Ordering::Relaxed);
    }
}

/// Under BUSY, at the first trap from a site the rewriter would rewrite (`ret` returning
/// from its call `nr`): recorded in its object's file, if the object has one.
pub(super) fn record(ret: usize, nr: u32) {
    if !on() {
        return;
    }
    let Some(o) = find_object(ret) else { return };
    let Some(s) = seen(&o) else { return };
    let id_len = s.id_len.load(Ordering::Relaxed);
    let off = ret.wrapping_sub(s.bias.load(Ordering::Relaxed));
    let (Ok(off), Ok(nr)) = (u32::try_from(off), u16::try_from(nr)) else { return };
    if id_len == 0 {
        return;
    }
    let mut id = [0u8; ID_MAX];
    for (c, w) in id.chunks_mut(8).zip(&s.id) {
        c.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
    let id = &id[..id_len];
    let mut raw = [0u8; 8];
    raw[..4].copy_from_slice(&off.to_le_bytes());
    raw[4..6].copy_from_slice(&nr.to_le_bytes());
    raw[6..].copy_from_slice(&check(id, off, nr).to_le_bytes());
    let mut buf = [0u8; PATH_MAX];
    let path = path(id, &mut buf);
    let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_NOFOLLOW;
    let mut opened = open_ours(path, flags);
    if opened.is_none() {
        // The directory first, once per user and IPCSHIM_DIR.
        let dir = DIR_LEN.load(Ordering::Relaxed);
        let mut d = [0u8; PATH_MAX];
        d[..dir].copy_from_slice(&path[..dir]);
        if syscall6(libc::SYS_mkdir, d.as_ptr() as usize, 0o700, 0, 0, 0, 0).is_ok() {
            opened = open_ours(path, flags);
        }
    }
    if let Some((fd, entries)) = opened {
        if entries < MAX_ENTRIES {
            let _ = shared_state::sys::write(fd, &raw);
        }
        shared_state::sys::close(fd);
    }
}
