//! `ipcrm` argument handling and messages, as util-linux 2.38.1 `ipcrm` behaves.
//! API: `parse_ipcrm_args(args)` (args exclude argv[0]) -> requests to perform IN ORDER (real ipcrm
//! removes while parsing, so a later bad argument does not undo earlier removals); `Err` = stderr, exit 1.
//! For a failed removal print `remove_failure(..)`, for a failed key lookup `key_lookup_failure(..)`;
//! count failures and finish with `ipcrm_finish(args, failures)` (stdout tail + exit status).

use crate::ipcs::{Getopt, HasArg, LongOpt, c_strtonum, strtos32_or_err};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpcKind {
    Shm,
    Msg,
    Sem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveRequest {
    /// Remove by id (`-m/-q/-s`, legacy syntax).
    Id { kind: IpcKind, id: i32 },
    /// Look up `key` (never IPC_PRIVATE) then remove that id; `text` is the key as typed, for messages.
    Key { kind: IpcKind, key: i32, text: String },
    /// `-a`/`--all[=…]`: remove every object of `kind` (all three if None) in the order shm, sem, msg,
    /// skipping objects the caller may not stat. Always the last removal request.
    All(Option<IpcKind>),
    /// `-v` seen: print `verbose_line` before each later removal.
    Verbose,
    /// Print to stderr (already prefixed, no newline), count one failure, continue.
    Warn(String),
    /// Print to stderr and exit 1 now (earlier requests are still performed first).
    Fatal(String),
}

/// How a failed removal is reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveFailure {
    /// stderr line, without the trailing newline.
    pub message: String,
    /// ipcrm exits 1 immediately after an unexpected errno.
    pub fatal: bool,
}

const LONGS: &[LongOpt] = &[
    LongOpt { name: "shmem-id", has_arg: HasArg::Required, val: 'm' },
    LongOpt { name: "shmem-key", has_arg: HasArg::Required, val: 'M' },
    LongOpt { name: "queue-id", has_arg: HasArg::Required, val: 'q' },
    LongOpt { name: "queue-key", has_arg: HasArg::Required, val: 'Q' },
    LongOpt { name: "semaphore-id", has_arg: HasArg::Required, val: 's' },
    LongOpt { name: "semaphore-key", has_arg: HasArg::Required, val: 'S' },
    LongOpt { name: "all", has_arg: HasArg::Optional, val: 'a' },
    LongOpt { name: "verbose", has_arg: HasArg::No, val: 'v' },
    LongOpt { name: "version", has_arg: HasArg::No, val: 'V' },
    LongOpt { name: "help", has_arg: HasArg::No, val: 'h' },
];

const TRY: &str = "Try 'ipcrm --help' for more information.";

fn legacy_kind(args: &[String]) -> Option<IpcKind> {
    match args.first().map(String::as_str) {
        Some("shm") => Some(IpcKind::Shm),
        Some("msg") => Some(IpcKind::Msg),
        Some("sem") => Some(IpcKind::Sem),
        _ => None,
    }
}

/// ipcrm's strtokey(): strtoul base 0 (hex, octal or decimal), truncated to key_t.
fn parse_key(s: &str) -> Result<i32, String> {
    let bad = || format!("ipcrm: failed to parse argument: '{s}'");
    let (mag, neg, rest, over) = c_strtonum(s, 0).ok_or_else(bad)?;
    if over {
        return Err(format!("{}: Numerical result out of range", bad()));
    }
    if !rest.is_empty() {
        return Err(bad());
    }
    let v = if neg { mag.wrapping_neg() } else { mag };
    Ok(v as u32 as i32)
}

/// The legacy form's strtoul(…, 10) id parse; None means "invalid id".
fn parse_legacy_id(s: &str) -> Option<i32> {
    if s.is_empty() {
        // strtoul("") consumes nothing yet leaves *end == 0: ipcrm uses id 0.
        return Some(0);
    }
    let (mag, neg, rest, over) = c_strtonum(s, 10)?;
    if over || !rest.is_empty() {
        return None;
    }
    let v = if neg { mag.wrapping_neg() } else { mag };
    Some(v as u32 as i32)
}

/// Parses ipcrm arguments (without argv[0]) into the sequence of actions ipcrm performs.
pub fn parse_ipcrm_args(args: &[String]) -> Result<Vec<RemoveRequest>, String> {
    if let Some(kind) = legacy_kind(args) {
        if args.len() < 2 {
            return Err(format!("ipcrm: not enough arguments\n{TRY}"));
        }
        return Ok(args[1..]
            .iter()
            .map(|a| match parse_legacy_id(a) {
                Some(id) => RemoveRequest::Id { kind, id },
                None => RemoveRequest::Warn(format!("ipcrm: invalid id: {a}")),
            })
            .collect());
    }
    let mut out = Vec::new();
    let mut all: Option<Option<IpcKind>> = None;
    let mut g = Getopt::new("ipcrm", args, "q:m:s:Q:M:S:a::vhV", LONGS);
    while let Some(o) = g.next_opt() {
        let (c, arg) = match o {
            Ok(v) => v,
            Err(e) => {
                out.push(RemoveRequest::Fatal(format!("{e}\n{TRY}")));
                return Ok(out);
            }
        };
        if c == 'a' {
            // optarg NULL (bare -a) means everything; "--all=" is an unknown "" category.
            all = Some(match arg.as_deref() {
                None => None,
                Some("shm") => Some(IpcKind::Shm),
                Some("msg") => Some(IpcKind::Msg),
                Some("sem") => Some(IpcKind::Sem),
                Some(other) => {
                    out.push(RemoveRequest::Fatal(format!("ipcrm: unknown argument: {other}")));
                    return Ok(out);
                }
            });
            continue;
        }
        let arg = arg.unwrap_or_default();
        let kind = match c.to_ascii_lowercase() {
            'm' => IpcKind::Shm,
            'q' => IpcKind::Msg,
            _ => IpcKind::Sem,
        };
        match c {
            'm' | 'q' | 's' => match strtos32_or_err("ipcrm", &arg, "failed to parse argument") {
                Ok(id) => out.push(RemoveRequest::Id { kind, id }),
                Err(e) => {
                    out.push(RemoveRequest::Fatal(e));
                    return Ok(out);
                }
            },
            'M' | 'Q' | 'S' => match parse_key(&arg) {
                Ok(0) => out.push(RemoveRequest::Warn(format!("ipcrm: illegal key ({arg})"))),
                Ok(key) => out.push(RemoveRequest::Key { kind, key, text: arg }),
                Err(e) => {
                    out.push(RemoveRequest::Fatal(e));
                    return Ok(out);
                }
            },
            'v' => out.push(RemoveRequest::Verbose),
            'h' => {
                out.push(RemoveRequest::Fatal("ipcrm: --help is not supported by ipcshim".into()));
                return Ok(out);
            }
            _ => {
                out.push(RemoveRequest::Fatal("ipcrm: --version is not supported by ipcshim".into()));
                return Ok(out);
            }
        }
    }
    if let Some(k) = all {
        out.push(RemoveRequest::All(k));
    }
    if let Some(extra) = g.nonopts.first() {
        out.push(RemoveRequest::Fatal(format!("ipcrm: unknown argument: {extra}\n{TRY}")));
    }
    Ok(out)
}

/// stdout line ipcrm prints with `-v` just before removing.
pub fn verbose_line(kind: IpcKind, id: i32) -> String {
    match kind {
        IpcKind::Shm => format!("removing shared memory segment id `{id}'"),
        IpcKind::Msg => format!("removing message queue id `{id}'"),
        IpcKind::Sem => format!("removing semaphore id `{id}'"),
    }
}

fn strerror(errno: i32) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for buf.len() bytes; the XSI strerror_r NUL-terminates on success.
    let rc = unsafe { libc::strerror_r(errno, buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return format!("Unknown error {errno}");
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Message for a failed IPC_RMID of `id` (`by_key`: the id came from `-M/-Q/-S`; ipcrm
/// still prints the id number then).
pub fn remove_failure(by_key: bool, id: i32, errno: i32) -> RemoveFailure {
    let what = if by_key { "key" } else { "id" };
    let msg = match errno {
        libc::EACCES | libc::EPERM => format!("permission denied for {what}"),
        libc::EINVAL => format!("invalid {what}"),
        libc::EIDRM => format!("already removed {what}"),
        e => {
            return RemoveFailure { message: format!("ipcrm: {what} failed: {}", strerror(e)), fatal: true };
        }
    };
    RemoveFailure { message: format!("ipcrm: {msg} ({id})"), fatal: false }
}

/// Message for a failed key lookup (the shmget/msgget/semget(key, 0, 0) step); `text` is
/// the key as typed. Not found is ENOENT.
pub fn key_lookup_failure(text: &str, errno: i32) -> RemoveFailure {
    let msg = match errno {
        libc::EACCES => "permission denied for key",
        libc::EIDRM => "already removed key",
        libc::ENOENT => "invalid key",
        e => {
            return RemoveFailure { message: format!("ipcrm: key failed: {}", strerror(e)), fatal: true };
        }
    };
    RemoveFailure { message: format!("ipcrm: {msg} ({text})"), fatal: false }
}

/// After all requests ran with `failures` counted (Warn items + failed removals, `-a` counting
/// at most one): text to append to stdout and the exit status.
pub fn ipcrm_finish(args: &[String], failures: usize) -> (&'static str, i32) {
    match (legacy_kind(args).is_some(), failures) {
        (true, 0) => ("resource(s) deleted\n", 0),
        (_, 0) => ("", 0),
        _ => ("", 1),
    }
}

#[cfg(test)]
mod tests {
    use super::IpcKind::*;
    use super::RemoveRequest::*;
    use super::*;

    fn p(v: &[&str]) -> Result<Vec<RemoveRequest>, String> {
        parse_ipcrm_args(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn key(kind: IpcKind, key: i32, text: &str) -> RemoveRequest {
        Key { kind, key, text: text.into() }
    }

    #[test]
    fn options() {
        assert_eq!(p(&[]).unwrap(), vec![]);
        assert_eq!(
            p(&["-a", "-m5", "--queue-id=6", "-s", " +7", "-v"]).unwrap(),
            vec![
                Id { kind: Shm, id: 5 },
                Id { kind: Msg, id: 6 },
                Id { kind: Sem, id: 7 },
                Verbose,
                All(None)
            ]
        );
        assert_eq!(
            p(&["-M", "0x1234", "--queue-key", "010", "-S", "-1", "--all=sem"]).unwrap(),
            vec![key(Shm, 0x1234, "0x1234"), key(Msg, 8, "010"), key(Sem, -1, "-1"), All(Some(Sem))]
        );
        assert_eq!(p(&["-M", "0x100000000"]).unwrap(), vec![Warn("ipcrm: illegal key (0x100000000)".into())]);
        assert_eq!(
            p(&["-m", "1", "-m", "abc", "-m", "2"]).unwrap(),
            vec![Id { kind: Shm, id: 1 }, Fatal("ipcrm: failed to parse argument: 'abc'".into())]
        );
        assert_eq!(
            p(&["-m", "99999999999"]).unwrap(),
            vec![Fatal(
                "ipcrm: failed to parse argument: '99999999999': Numerical result out of range".into()
            )]
        );
        assert_eq!(p(&["-ax"]).unwrap(), vec![Fatal("ipcrm: unknown argument: x".into())]);
        assert_eq!(
            p(&["-a", "shm"]).unwrap(),
            vec![All(None), Fatal(format!("ipcrm: unknown argument: shm\n{TRY}"))]
        );
        assert_eq!(p(&["-z"]).unwrap(), vec![Fatal(format!("ipcrm: invalid option -- 'z'\n{TRY}"))]);
    }

    #[test]
    fn legacy() {
        assert_eq!(
            p(&["shm", "1", "x", "2"]).unwrap(),
            vec![Id { kind: Shm, id: 1 }, Warn("ipcrm: invalid id: x".into()), Id { kind: Shm, id: 2 }]
        );
        assert_eq!(p(&["sem"]).unwrap_err(), format!("ipcrm: not enough arguments\n{TRY}"));
        let args = vec!["msg".to_string(), "3".to_string()];
        assert_eq!(ipcrm_finish(&args, 0), ("resource(s) deleted\n", 0));
        assert_eq!(ipcrm_finish(&args, 1), ("", 1));
        assert_eq!(ipcrm_finish(&[], 0), ("", 0));
    }

    #[test]
    fn messages() {
        assert_eq!(remove_failure(false, 5, libc::EINVAL).message, "ipcrm: invalid id (5)");
        assert_eq!(remove_failure(true, 0, libc::EPERM).message, "ipcrm: permission denied for key (0)");
        assert_eq!(key_lookup_failure("0x12", libc::ENOENT).message, "ipcrm: invalid key (0x12)");
        let f = remove_failure(false, 1, libc::ENOMEM);
        assert!(f.fatal);
        assert_eq!(f.message, "ipcrm: id failed: Cannot allocate memory");
    }
}
