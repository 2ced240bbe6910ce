//! `ipcs` output, byte-for-byte as util-linux 2.38.1 `ipcs` prints it.
//! API: `parse_ipcs_args(args)` (args exclude argv[0]) -> `IpcsRequest`, or `Err(stderr text)` => exit 1.
//! Then `render_ipcs(&req, &shm, &sem, &msg, &limits, &summary)` -> `IpcsOutput { stdout, stderr }`, exit 0.
//! Rows must be given in ascending index order (the order /proc/sysvipc lists them); `SemRow::values`
//! only matters for `-s -i ID`. Owner/group names come from the passwd/group databases at render time.

use std::ffi::CStr;
use std::fmt::Write as _;

/// `SHM_DEST`/`SHM_LOCKED` as they appear in the `mode` of /proc/sysvipc/shm.
pub const SHM_DEST: u32 = 0o1000;
pub const SHM_LOCKED: u32 = 0o2000;
/// ipcs prints this fixed value (SEMVMX) rather than asking the kernel.
const SEMVMX: u32 = 32767;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShmRow {
    pub key: i32,
    pub id: i32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    /// Full mode, including SHM_DEST and SHM_LOCKED.
    pub mode: u32,
    pub segsz: u64,
    pub nattch: u64,
    pub cpid: i32,
    pub lpid: i32,
    pub atime: i64,
    pub dtime: i64,
    pub ctime: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SemValue {
    pub value: i32,
    pub ncnt: u32,
    pub zcnt: u32,
    pub pid: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SemRow {
    pub key: i32,
    pub id: i32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    pub mode: u32,
    pub nsems: u64,
    pub otime: i64,
    pub ctime: i64,
    /// One entry per semaphore; only printed by `-s -i ID`.
    pub values: Vec<SemValue>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsgRow {
    pub key: i32,
    pub id: i32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    pub mode: u32,
    pub cbytes: u64,
    pub qnum: u64,
    pub qbytes: u64,
    pub lspid: i32,
    pub lrpid: i32,
    pub stime: i64,
    pub rtime: i64,
    pub ctime: i64,
}

/// What `ipcs -l` prints (shmall is in pages, like /proc/sys/kernel/shmall).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    pub shmmax: u64,
    pub shmall: u64,
    pub shmmni: u64,
    pub shmmin: u64,
    pub semmsl: i32,
    pub semmns: i32,
    pub semopm: i32,
    pub semmni: i32,
    pub msgmax: u64,
    pub msgmnb: i32,
    pub msgmni: i32,
}

/// What `ipcs -u` prints: fields of shm_info, seminfo (SEM_INFO) and msginfo (MSG_INFO).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub shm_used_ids: i32,
    pub shm_tot: u64,
    pub shm_rss: u64,
    pub shm_swp: u64,
    pub shm_swap_attempts: u64,
    pub shm_swap_successes: u64,
    pub sem_usz: i32,
    pub sem_aem: i32,
    pub msg_pool: i32,
    pub msg_map: i32,
    pub msg_tql: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Default,
    Limits,
    Summary,
    Creator,
    Time,
    Pid,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Unit {
    #[default]
    Default,
    Bytes,
    Human,
    /// Only used internally by `-l`.
    Kb,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpcsRequest {
    pub shm: bool,
    pub sem: bool,
    pub msg: bool,
    /// `-i ID`: exactly one of shm/sem/msg is set.
    pub id: Option<i32>,
    pub format: Format,
    pub unit: Unit,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpcsOutput {
    pub stdout: String,
    pub stderr: String,
}

// ---------------------------------------------------------------------------
// getopt_long emulation (shared with ipcrm.rs)

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum HasArg {
    No,
    Required,
    Optional,
}

pub(crate) struct LongOpt {
    pub name: &'static str,
    pub has_arg: HasArg,
    pub val: char,
}

/// glibc getopt_long with argument permutation; `next` yields options in
/// order, errors carry glibc's message (without the "Try --help" line).
pub(crate) struct Getopt<'a> {
    args: &'a [String],
    shorts: &'static str,
    longs: &'static [LongOpt],
    prog: &'static str,
    idx: usize,
    sub: usize,
    pub nonopts: Vec<String>,
}

impl<'a> Getopt<'a> {
    pub fn new(
        prog: &'static str,
        args: &'a [String],
        shorts: &'static str,
        longs: &'static [LongOpt],
    ) -> Self {
        Getopt { args, shorts, longs, prog, idx: 0, sub: 0, nonopts: Vec::new() }
    }

    fn short_spec(&self, c: char) -> Option<HasArg> {
        let pos = self.shorts.find(c)?;
        let rest = &self.shorts[pos + c.len_utf8()..];
        Some(if rest.starts_with("::") {
            HasArg::Optional
        } else if rest.starts_with(':') {
            HasArg::Required
        } else {
            HasArg::No
        })
    }

    #[allow(clippy::type_complexity)]
    pub fn next_opt(&mut self) -> Option<Result<(char, Option<String>), String>> {
        let p = self.prog;
        if self.sub == 0 {
            loop {
                let a = self.args.get(self.idx)?;
                if a == "--" {
                    self.nonopts.extend(self.args[self.idx + 1..].iter().cloned());
                    self.idx = self.args.len();
                    return None;
                }
                if let Some(body) = a.strip_prefix("--") {
                    self.idx += 1;
                    return Some(self.long(body));
                }
                if a.len() > 1 && a.starts_with('-') {
                    self.sub = 1;
                    break;
                }
                self.nonopts.push(a.clone());
                self.idx += 1;
            }
        }
        let a = &self.args[self.idx];
        let c = a[self.sub..].chars().next().unwrap_or('?');
        self.sub += c.len_utf8();
        let at_end = self.sub >= a.len();
        let rest = a[self.sub..].to_string();
        let finish = |g: &mut Self| {
            g.idx += 1;
            g.sub = 0;
        };
        match self.short_spec(c).filter(|_| c != ':') {
            None => {
                if at_end {
                    finish(self);
                }
                Some(Err(format!("{p}: invalid option -- '{c}'")))
            }
            Some(HasArg::No) => {
                if at_end {
                    finish(self);
                }
                Some(Ok((c, None)))
            }
            Some(HasArg::Optional) => {
                finish(self);
                Some(Ok((c, (!at_end).then_some(rest))))
            }
            Some(HasArg::Required) => {
                finish(self);
                if !at_end {
                    return Some(Ok((c, Some(rest))));
                }
                match self.args.get(self.idx) {
                    Some(v) => {
                        self.idx += 1;
                        Some(Ok((c, Some(v.clone()))))
                    }
                    None => Some(Err(format!("{p}: option requires an argument -- '{c}'"))),
                }
            }
        }
    }

    fn long(&mut self, body: &str) -> Result<(char, Option<String>), String> {
        let p = self.prog;
        let (name, value) = match body.find('=') {
            Some(i) => (&body[..i], Some(body[i + 1..].to_string())),
            None => (body, None),
        };
        let opt = match self.longs.iter().find(|o| o.name == name) {
            Some(o) => o,
            None => {
                let cands: Vec<&LongOpt> = self.longs.iter().filter(|o| o.name.starts_with(name)).collect();
                match cands.len() {
                    0 => return Err(format!("{p}: unrecognized option '--{body}'")),
                    1 => cands[0],
                    _ => {
                        let mut m = format!("{p}: option '--{body}' is ambiguous; possibilities:");
                        for o in cands {
                            let _ = write!(m, " '--{}'", o.name);
                        }
                        return Err(m);
                    }
                }
            }
        };
        let full = opt.name;
        match (opt.has_arg, value) {
            (HasArg::No, Some(_)) => Err(format!("{p}: option '--{full}' doesn't allow an argument")),
            (HasArg::No, None) | (HasArg::Optional, None) => Ok((opt.val, None)),
            (_, Some(v)) => Ok((opt.val, Some(v))),
            (HasArg::Required, None) => match self.args.get(self.idx) {
                Some(v) => {
                    self.idx += 1;
                    Ok((opt.val, Some(v.clone())))
                }
                None => Err(format!("{p}: option '--{full}' requires an argument")),
            },
        }
    }
}

/// C strtoul/strtoimax: returns (magnitude, negative, rest, overflowed), or None
/// when no digits were consumed.
pub(crate) fn c_strtonum(s: &str, base: u32) -> Option<(u64, bool, &str, bool)> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let hex_prefix = (t.starts_with("0x") || t.starts_with("0X"))
        && t[2..].chars().next().is_some_and(|c| c.is_ascii_hexdigit());
    let (base, t) = match base {
        0 if hex_prefix => (16, &t[2..]),
        0 if t.starts_with('0') => (8, t),
        0 => (10, t),
        16 if hex_prefix => (16, &t[2..]),
        b => (b, t),
    };
    let end = t.find(|c: char| !c.is_digit(base)).unwrap_or(t.len());
    if end == 0 {
        return None;
    }
    let mut v: u64 = 0;
    let mut over = false;
    for c in t[..end].chars() {
        let d = u64::from(c.to_digit(base).unwrap_or(0));
        match v.checked_mul(u64::from(base)).and_then(|x| x.checked_add(d)) {
            Some(n) => v = n,
            None => over = true,
        }
    }
    Some((v, neg, &t[end..], over))
}

/// util-linux strtos32_or_err: decimal, whole string, within i32.
pub(crate) fn strtos32_or_err(prog: &str, s: &str, what: &str) -> Result<i32, String> {
    let bad = || format!("{prog}: {what}: '{s}'");
    let range = || format!("{prog}: {what}: '{s}': Numerical result out of range");
    let (mag, neg, rest, over) = c_strtonum(s, 10).ok_or_else(bad)?;
    // strtoimax saturates and sets ERANGE; that is reported before trailing junk.
    if over || mag > i64::MAX as u64 + u64::from(neg) {
        return Err(range());
    }
    if !rest.is_empty() {
        return Err(bad());
    }
    let v = if neg { (mag as i128).wrapping_neg() } else { mag as i128 };
    i32::try_from(v).map_err(|_| range())
}

// ---------------------------------------------------------------------------
// argument parsing

const IPCS_LONGS: &[LongOpt] = &[
    LongOpt { name: "id", has_arg: HasArg::Required, val: 'i' },
    LongOpt { name: "queues", has_arg: HasArg::No, val: 'q' },
    LongOpt { name: "shmems", has_arg: HasArg::No, val: 'm' },
    LongOpt { name: "semaphores", has_arg: HasArg::No, val: 's' },
    LongOpt { name: "all", has_arg: HasArg::No, val: 'a' },
    LongOpt { name: "time", has_arg: HasArg::No, val: 't' },
    LongOpt { name: "pid", has_arg: HasArg::No, val: 'p' },
    LongOpt { name: "creator", has_arg: HasArg::No, val: 'c' },
    LongOpt { name: "limits", has_arg: HasArg::No, val: 'l' },
    LongOpt { name: "summary", has_arg: HasArg::No, val: 'u' },
    LongOpt { name: "human", has_arg: HasArg::No, val: 'H' },
    LongOpt { name: "bytes", has_arg: HasArg::No, val: 'b' },
    LongOpt { name: "version", has_arg: HasArg::No, val: 'V' },
    LongOpt { name: "help", has_arg: HasArg::No, val: 'h' },
];

const TRY_IPCS: &str = "Try 'ipcs --help' for more information.";

/// Parses ipcs arguments (without argv[0]). `Err` is the full stderr text
/// (no trailing newline); the caller exits with status 1.
pub fn parse_ipcs_args(args: &[String]) -> Result<IpcsRequest, String> {
    let mut g = Getopt::new("ipcs", args, "i:qmsatpclubVh", IPCS_LONGS);
    let mut r = IpcsRequest::default();
    while let Some(o) = g.next_opt() {
        let (c, arg) = o.map_err(|e| format!("{e}\n{TRY_IPCS}"))?;
        match c {
            'i' => {
                let a = arg.unwrap_or_default();
                r.id = Some(strtos32_or_err("ipcs", &a, "failed to parse id argument")?);
            }
            'a' => (r.msg, r.shm, r.sem) = (true, true, true),
            'q' => r.msg = true,
            'm' => r.shm = true,
            's' => r.sem = true,
            't' => r.format = Format::Time,
            'c' => r.format = Format::Creator,
            'p' => r.format = Format::Pid,
            'l' => r.format = Format::Limits,
            'u' => r.format = Format::Summary,
            'H' => r.unit = Unit::Human,
            'b' => r.unit = Unit::Bytes,
            // Usage/version text belongs to util-linux; ipcshim does not mimic it.
            'h' => return Err("ipcs: --help is not supported by ipcshim".into()),
            _ => return Err("ipcs: --version is not supported by ipcshim".into()),
        }
    }
    // Leftover non-option arguments are silently ignored by ipcs as well.
    let n = usize::from(r.msg) + usize::from(r.shm) + usize::from(r.sem);
    if r.id.is_some() && n != 1 {
        return Err("ipcs: when using an ID, a single resource must be specified".into());
    }
    if n == 0 {
        (r.msg, r.shm, r.sem) = (true, true, true);
    }
    Ok(r)
}

// ---------------------------------------------------------------------------
// rendering helpers

/// printf("%-W.Ps", s): truncate to P bytes (at a char boundary), pad to W.
fn pad(s: &str, width: usize, prec: Option<usize>) -> String {
    let mut t = s;
    if let Some(p) = prec
        && t.len() > p
    {
        let mut e = p;
        while !t.is_char_boundary(e) {
            e -= 1;
        }
        t = &t[..e];
    }
    format!("{t:<width$}")
}

fn lookup_name(id: u32, group: bool) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    loop {
        let (rc, found, name_ptr);
        if group {
            // SAFETY: an all-zero group is a valid out-struct.
            let mut gr: libc::group = unsafe { std::mem::zeroed() };
            let mut res: *mut libc::group = std::ptr::null_mut();
            // SAFETY: all pointers are valid for the call; buf outlives the use of gr.
            rc = unsafe { libc::getgrgid_r(id, &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut res) };
            (found, name_ptr) = (!res.is_null(), gr.gr_name);
        } else {
            // SAFETY: an all-zero passwd is a valid out-struct.
            let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
            let mut res: *mut libc::passwd = std::ptr::null_mut();
            // SAFETY: all pointers are valid for the call; buf outlives the use of pw.
            rc = unsafe { libc::getpwuid_r(id, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut res) };
            (found, name_ptr) = (!res.is_null(), pw.pw_name);
        }
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || !found || name_ptr.is_null() {
            return None;
        }
        // SAFETY: on success the name is a NUL-terminated string inside buf.
        let name = unsafe { CStr::from_ptr(name_ptr) };
        return Some(name.to_string_lossy().into_owned());
    }
}

fn user_name(uid: u32) -> Option<String> {
    lookup_name(uid, false)
}

fn group_name(gid: u32) -> Option<String> {
    lookup_name(gid, true)
}

/// "%-W.10s" owner name or "%-Wu" uid, preceded by "%-Nd" id.
fn id_owner(id: i32, id_width: usize, uid: u32) -> String {
    match user_name(uid) {
        Some(n) => format!("{id:<id_width$} {}", pad(&n, 10, Some(10))),
        None => format!("{id:<id_width$} {uid:<10}"),
    }
}

/// ipc_print_perms(): the `-c` row.
fn perms_row(id: i32, mode: u32, cuid: u32, cgid: u32, uid: u32, gid: u32) -> String {
    let u = |x: u32| user_name(x).unwrap_or_else(|| x.to_string());
    let g = |x: u32| group_name(x).unwrap_or_else(|| x.to_string());
    format!(
        "{:<10} {:<10o} {:<10} {:<10} {:<10} {:<10}\n",
        id,
        mode & 0o777,
        u(cuid),
        g(cgid),
        u(uid),
        g(gid)
    )
}

/// ctime(3) in local time, including the trailing newline; None where ctime returns NULL.
pub fn ctime(t: i64) -> Option<String> {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let tt = t as libc::time_t;
    // SAFETY: zeroed tm is a valid out-struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid; localtime_r is thread-safe.
    if unsafe { libc::localtime_r(&tt, &mut tm) }.is_null() {
        return None;
    }
    let year = i64::from(tm.tm_year) + 1900;
    Some(format!(
        "{} {}{:>3} {:02}:{:02}:{:02} {}\n",
        DAYS.get(tm.tm_wday as usize).unwrap_or(&"???"),
        MONS.get(tm.tm_mon as usize).unwrap_or(&"???"),
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        year
    ))
}

/// printf("%-W.Ps", t ? ctime(&t) + skip : "Not set").
fn time_col(t: i64, skip: usize, width: usize, prec: usize, not_set: bool) -> String {
    if t == 0 && not_set {
        return pad("Not set", width, Some(prec));
    }
    let s = ctime(t).unwrap_or_else(|| "(null)".into());
    pad(s.get(skip..).unwrap_or(""), width, Some(prec))
}

/// size_to_human_string(SIZE_SUFFIX_1LETTER, bytes) from util-linux lib/strutils.c.
pub fn human_size(bytes: u64) -> String {
    let mut exp = 10;
    while exp <= 60 && bytes >= 1u64 << exp {
        exp += 10;
    }
    exp -= 10;
    let letter = b"BKMGTPE"[exp / 10] as char;
    let (mut dec, mut frac) = if exp == 0 { (bytes, 0) } else { (bytes >> exp, bytes & ((1u64 << exp) - 1)) };
    if frac != 0 {
        frac = if frac >= u64::MAX / 1000 {
            ((frac / 1024) * 1000) / (1u64 << (exp - 10))
        } else {
            (frac * 1000) / (1u64 << exp)
        };
        // round to one decimal, as util-linux does
        frac = (frac + 50) / 100 * 10;
        if frac == 100 {
            dec += 1;
            frac = 0;
        }
    }
    if frac != 0 {
        let mut s = format!("{dec}.{frac:02}");
        if s.ends_with('0') {
            s.pop();
        }
        format!("{s}{letter}")
    } else {
        format!("{dec}{letter}")
    }
}

/// ipc_print_size(): optional label, then the size in `unit` with printf width.
fn print_size(out: &mut String, unit: Unit, label: Option<&str>, size: u64, end: &str, width: i32) {
    if let Some(l) = label {
        if l.ends_with('=') {
            out.push_str(l);
        } else {
            match unit {
                Unit::Bytes => {
                    let _ = write!(out, "{l} (bytes) = ");
                }
                Unit::Kb => {
                    let _ = write!(out, "{l} (kbytes) = ");
                }
                _ => {
                    let _ = write!(out, "{l} = ");
                }
            }
        }
    }
    let v = match unit {
        Unit::Default | Unit::Bytes => size.to_string(),
        Unit::Kb => (size / 1024).to_string(),
        Unit::Human => human_size(size),
    };
    let w = width.unsigned_abs() as usize;
    if width < 0 {
        let _ = write!(out, "{v:<w$}");
    } else {
        let _ = write!(out, "{v:>w$}");
    }
    out.push_str(end);
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

// ---------------------------------------------------------------------------
// sections

fn do_msg(o: &mut String, f: Format, unit: Unit, rows: &[MsgRow], lim: &Limits, sum: &Summary) {
    match f {
        Format::Limits => {
            o.push_str("------ Messages Limits --------\n");
            let _ = writeln!(o, "max queues system wide = {}", lim.msgmni);
            let u = if unit == Unit::Default { Unit::Bytes } else { unit };
            print_size(o, u, Some("max size of message"), lim.msgmax, "\n", 0);
            print_size(o, u, Some("default max size of queue"), lim.msgmnb as u64, "\n", 0);
            return;
        }
        Format::Summary => {
            o.push_str("------ Messages Status --------\n");
            let _ = writeln!(o, "allocated queues = {}", sum.msg_pool);
            let _ = writeln!(o, "used headers = {}", sum.msg_map);
            let end = if unit == Unit::Default { " bytes\n" } else { "\n" };
            print_size(o, unit, Some("used space"), sum.msg_tql, end, 0);
            return;
        }
        Format::Creator => {
            o.push_str("------ Message Queues Creators/Owners --------\n");
            o.push_str("msqid      perms      cuid       cgid       uid        gid       \n");
        }
        Format::Time => {
            o.push_str("------ Message Queues Send/Recv/Change Times --------\n");
            let _ =
                writeln!(o, "{:<8} {:<10} {:<20} {:<20} {:<20}", "msqid", "owner", "send", "recv", "change");
        }
        Format::Pid => {
            o.push_str("------ Message Queues PIDs --------\n");
            let _ = writeln!(o, "{:<10} {:<10} {:<10} {:<10}", "msqid", "owner", "lspid", "lrpid");
        }
        Format::Default => {
            o.push_str("------ Message Queues --------\n");
            let used = if unit == Unit::Human { "size" } else { "used-bytes" };
            let _ = writeln!(
                o,
                "{:<10} {:<10} {:<10} {:<10} {:<12} {:<12}",
                "key", "msqid", "owner", "perms", used, "messages"
            );
        }
    }
    for r in rows {
        match f {
            Format::Creator => o.push_str(&perms_row(r.id, r.mode, r.cuid, r.cgid, r.uid, r.gid)),
            Format::Time => {
                o.push_str(&id_owner(r.id, 8, r.uid));
                for t in [r.stime, r.rtime] {
                    let _ = write!(o, " {}", time_col(t, 4, 20, 16, true));
                }
                let _ = writeln!(o, " {}", time_col(r.ctime, 4, 20, 16, true));
            }
            Format::Pid => {
                o.push_str(&id_owner(r.id, 8, r.uid));
                let _ = writeln!(o, "  {:>5}     {:>5}", r.lspid, r.lrpid);
            }
            _ => {
                let _ = write!(o, "0x{:08x} ", r.key as u32);
                o.push_str(&id_owner(r.id, 10, r.uid));
                let _ = write!(o, " {:<10o} ", r.mode & 0o777);
                if unit == Unit::Human {
                    print_size(o, unit, None, r.cbytes, "      ", 6);
                } else {
                    print_size(o, unit, None, r.cbytes, "", -12);
                }
                let _ = writeln!(o, " {:<12}", r.qnum);
            }
        }
    }
}

fn do_shm(o: &mut String, f: Format, unit: Unit, rows: &[ShmRow], lim: &Limits, sum: &Summary) {
    match f {
        Format::Limits => {
            let pgsz = page_size();
            o.push_str("------ Shared Memory Limits --------\n");
            let _ = writeln!(o, "max number of segments = {}", lim.shmmni);
            let u = if unit == Unit::Default { Unit::Kb } else { unit };
            print_size(o, u, Some("max seg size"), lim.shmmax, "\n", 0);
            if unit == Unit::Kb || unit == Unit::Default {
                let kpp = pgsz / 1024;
                // ipcs clamps an overflowing product instead of wrapping.
                let tmp = lim.shmall.checked_mul(kpp).unwrap_or(u64::MAX - u64::MAX % kpp.max(1));
                let label = "max total shared memory (kbytes)";
                print_size(o, Unit::Default, Some(label), tmp, "\n", 0);
            } else {
                let tmp = lim.shmall.checked_mul(pgsz).unwrap_or(u64::MAX - u64::MAX % pgsz);
                print_size(o, unit, Some("max total shared memory"), tmp, "\n", 0);
            }
            let u = if unit == Unit::Default { Unit::Bytes } else { unit };
            print_size(o, u, Some("min seg size"), lim.shmmin, "\n", 0);
            return;
        }
        Format::Summary => {
            o.push_str("------ Shared Memory Status --------\n");
            let _ = write!(
                o,
                "segments allocated {}\npages allocated {}\npages resident  {}\npages swapped   {}\nSwap performance: {} attempts\t {} successes\n",
                sum.shm_used_ids,
                sum.shm_tot,
                sum.shm_rss,
                sum.shm_swp,
                sum.shm_swap_attempts,
                sum.shm_swap_successes
            );
            return;
        }
        Format::Creator => {
            o.push_str("------ Shared Memory Segment Creators/Owners --------\n");
            o.push_str("shmid      perms      cuid       cgid       uid        gid       \n");
        }
        Format::Time => {
            o.push_str("------ Shared Memory Attach/Detach/Change Times --------\n");
            let _ = writeln!(
                o,
                "{:<10} {:<10} {:<20} {:<20} {:<20}",
                "shmid", "owner", "attached", "detached", "changed"
            );
        }
        Format::Pid => {
            o.push_str("------ Shared Memory Creator/Last-op PIDs --------\n");
            let _ = writeln!(o, "{:<10} {:<10} {:<10} {:<10}", "shmid", "owner", "cpid", "lpid");
        }
        Format::Default => {
            o.push_str("------ Shared Memory Segments --------\n");
            let bytes = if unit == Unit::Human { "size" } else { "bytes" };
            let _ = writeln!(
                o,
                "{:<10} {:<10} {:<10} {:<10} {:<10} {:<10} {:<12}",
                "key", "shmid", "owner", "perms", bytes, "nattch", "status"
            );
        }
    }
    for r in rows {
        match f {
            Format::Creator => o.push_str(&perms_row(r.id, r.mode, r.cuid, r.cgid, r.uid, r.gid)),
            Format::Time => {
                o.push_str(&id_owner(r.id, 10, r.uid));
                for t in [r.atime, r.dtime] {
                    let _ = write!(o, " {}", time_col(t, 4, 20, 16, true));
                }
                let _ = writeln!(o, " {}", time_col(r.ctime, 4, 20, 16, true));
            }
            Format::Pid => {
                o.push_str(&id_owner(r.id, 10, r.uid));
                // "%-10u": ipcs prints the pids unsigned.
                let _ = writeln!(o, " {:<10} {:<10}", r.cpid as u32, r.lpid as u32);
            }
            _ => {
                let _ = write!(o, "0x{:08x} ", r.key as u32);
                o.push_str(&id_owner(r.id, 10, r.uid));
                let _ = write!(o, " {:<10o} ", r.mode & 0o777);
                if unit == Unit::Human {
                    print_size(o, unit, None, r.segsz, "    ", 6);
                } else {
                    print_size(o, unit, None, r.segsz, "", -10);
                }
                let dest = if r.mode & SHM_DEST != 0 { "dest" } else { " " };
                let locked = if r.mode & SHM_LOCKED != 0 { "locked" } else { " " };
                let _ = writeln!(o, " {:<10} {:<6} {:<6}", r.nattch, dest, locked);
            }
        }
    }
}

fn do_sem(o: &mut String, f: Format, rows: &[SemRow], lim: &Limits, sum: &Summary) {
    match f {
        Format::Limits => {
            o.push_str("------ Semaphore Limits --------\n");
            let _ = writeln!(o, "max number of arrays = {}", lim.semmni);
            let _ = writeln!(o, "max semaphores per array = {}", lim.semmsl);
            let _ = writeln!(o, "max semaphores system wide = {}", lim.semmns);
            let _ = writeln!(o, "max ops per semop call = {}", lim.semopm);
            let _ = writeln!(o, "semaphore max value = {SEMVMX}");
            return;
        }
        Format::Summary => {
            o.push_str("------ Semaphore Status --------\n");
            let _ = writeln!(o, "used arrays = {}", sum.sem_usz);
            let _ = writeln!(o, "allocated semaphores = {}", sum.sem_aem);
            return;
        }
        // ipcs prints nothing at all for semaphores with -p.
        Format::Pid => return,
        Format::Creator => {
            o.push_str("------ Semaphore Arrays Creators/Owners --------\n");
            o.push_str("semid      perms      cuid       cgid       uid        gid       \n");
        }
        Format::Time => {
            o.push_str("------ Semaphore Operation/Change Times --------\n");
            let _ = writeln!(o, "{:<8} {:<10} {:<26} {:<26}", "semid", "owner", "last-op", "last-changed");
        }
        Format::Default => {
            o.push_str("------ Semaphore Arrays --------\n");
            let _ =
                writeln!(o, "{:<10} {:<10} {:<10} {:<10} {:<10}", "key", "semid", "owner", "perms", "nsems");
        }
    }
    for r in rows {
        match f {
            Format::Creator => o.push_str(&perms_row(r.id, r.mode, r.cuid, r.cgid, r.uid, r.gid)),
            Format::Time => {
                o.push_str(&id_owner(r.id, 8, r.uid));
                let _ = write!(o, "  {}", time_col(r.otime, 0, 26, 24, true));
                let _ = writeln!(o, " {}", time_col(r.ctime, 0, 26, 24, true));
            }
            _ => {
                let _ = write!(o, "0x{:08x} ", r.key as u32);
                o.push_str(&id_owner(r.id, 10, r.uid));
                let _ = writeln!(o, " {:<10o} {:<10}", r.mode & 0o777, r.nsems);
            }
        }
    }
}

fn print_shm(o: &mut String, r: &ShmRow, unit: Unit) {
    let _ = writeln!(o, "\nShared memory Segment shmid={}", r.id);
    let _ = writeln!(o, "uid={}\tgid={}\tcuid={}\tcgid={}", r.uid, r.gid, r.cuid, r.cgid);
    let _ = writeln!(o, "mode={}\taccess_perms={}", alt_octal(r.mode), alt_octal(r.mode & 0o777));
    let label = if unit == Unit::Human { "size=" } else { "bytes=" };
    print_size(o, unit, Some(label), r.segsz, "\t", 0);
    let _ = writeln!(o, "lpid={}\tcpid={}\tnattch={}", r.lpid as u32, r.cpid as u32, r.nattch);
    let _ = writeln!(o, "att_time={}", time_col(r.atime, 0, 26, 24, true));
    let _ = writeln!(o, "det_time={}", time_col(r.dtime, 0, 26, 24, true));
    let _ = writeln!(o, "change_time={}", time_col(r.ctime, 0, 26, 24, false));
    o.push('\n');
}

fn print_msg(o: &mut String, r: &MsgRow, unit: Unit) {
    let _ = writeln!(o, "\nMessage Queue msqid={}", r.id);
    let _ = writeln!(
        o,
        "uid={}\tgid={}\tcuid={}\tcgid={}\tmode={}",
        r.uid,
        r.gid,
        r.cuid,
        r.cgid,
        alt_octal(r.mode)
    );
    let human = unit == Unit::Human;
    print_size(o, unit, Some(if human { "csize=" } else { "cbytes=" }), r.cbytes, "\t", 0);
    print_size(o, unit, Some(if human { "qsize=" } else { "qbytes=" }), r.qbytes, "\t", 0);
    let _ = writeln!(o, "qnum={}\tlspid={}\tlrpid={}", r.qnum, r.lspid, r.lrpid);
    let _ = writeln!(o, "send_time={}", time_col(r.stime, 0, 26, 24, true));
    let _ = writeln!(o, "rcv_time={}", time_col(r.rtime, 0, 26, 24, true));
    let _ = writeln!(o, "change_time={}", time_col(r.ctime, 0, 26, 24, true));
    o.push('\n');
}

fn print_sem(o: &mut String, r: &SemRow) {
    let _ = writeln!(o, "\nSemaphore Array semid={}", r.id);
    let _ = writeln!(o, "uid={}\t gid={}\t cuid={}\t cgid={}", r.uid, r.gid, r.cuid, r.cgid);
    let _ = writeln!(o, "mode={}, access_perms={}", alt_octal(r.mode), alt_octal(r.mode & 0o777));
    let _ = writeln!(o, "nsems = {}", r.nsems);
    let _ = writeln!(o, "otime = {}", time_col(r.otime, 0, 26, 24, true));
    let _ = writeln!(o, "ctime = {}", time_col(r.ctime, 0, 26, 24, false));
    let _ = writeln!(o, "{:<10} {:<10} {:<10} {:<10} {:<10}", "semnum", "value", "ncount", "zcount", "pid");
    for (i, v) in r.values.iter().enumerate() {
        let _ = writeln!(
            o,
            "{:<10} {:<10} {:<10} {:<10} {:<10}",
            i, v.value, v.ncnt as i32, v.zcnt as i32, v.pid
        );
    }
    o.push('\n');
}

/// printf("%#o").
fn alt_octal(v: u32) -> String {
    if v == 0 { "0".into() } else { format!("0{v:o}") }
}

/// Renders what ipcs prints for `req` over the given objects. The exit status is always 0.
pub fn render_ipcs(
    req: &IpcsRequest,
    shm: &[ShmRow],
    sem: &[SemRow],
    msg: &[MsgRow],
    limits: &Limits,
    summary: &Summary,
) -> IpcsOutput {
    let mut out = IpcsOutput::default();
    let o = &mut out.stdout;
    if let Some(id) = req.id {
        let found = if req.msg {
            msg.iter().find(|r| r.id == id).map(|r| print_msg(o, r, req.unit))
        } else if req.shm {
            shm.iter().find(|r| r.id == id).map(|r| print_shm(o, r, req.unit))
        } else {
            sem.iter().find(|r| r.id == id).map(|r| print_sem(o, r))
        };
        if found.is_none() {
            out.stderr = format!("ipcs: id {id} not found\n");
        }
        return out;
    }
    o.push('\n');
    if req.msg {
        do_msg(o, req.format, req.unit, msg, limits, summary);
        o.push('\n');
    }
    if req.shm {
        do_shm(o, req.format, req.unit, shm, limits, summary);
        o.push('\n');
    }
    if req.sem {
        do_sem(o, req.format, sem, limits, summary);
        o.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(1023), "1023B");
        assert_eq!(human_size(4096), "4K");
        assert_eq!(human_size(1500), "1.5K");
        assert_eq!(human_size(18446744073692774399), "16E");
    }

    #[test]
    fn parse_rules() {
        let r = parse_ipcs_args(&a(&[])).unwrap();
        assert!(r.shm && r.sem && r.msg && r.id.is_none());
        let r = parse_ipcs_args(&a(&["-m", "-i", "5", "-t"])).unwrap();
        assert_eq!((r.shm, r.sem, r.msg, r.id, r.format), (true, false, false, Some(5), Format::Time));
        let r = parse_ipcs_args(&a(&["--sh", "--id=7", "--hum"])).unwrap();
        assert_eq!((r.shm, r.id, r.unit), (true, Some(7), Unit::Human));
        assert_eq!(
            parse_ipcs_args(&a(&["-i", "0"])).unwrap_err(),
            "ipcs: when using an ID, a single resource must be specified"
        );
        assert_eq!(
            parse_ipcs_args(&a(&["-x"])).unwrap_err(),
            "ipcs: invalid option -- 'x'\nTry 'ipcs --help' for more information."
        );
        assert_eq!(
            parse_ipcs_args(&a(&["-m", "-i", "abc"])).unwrap_err(),
            "ipcs: failed to parse id argument: 'abc'"
        );
    }
}
