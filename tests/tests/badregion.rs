//! A namespace file that is foreign, truncated or of another layout version is refused with one
//! line naming it, by the CLI and by shimmed programs, and the file is left untouched; other
//! namespaces in the same directory keep working.

use ipcshim_tests::{cli_bin, shim_lib, state_base};
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn scratch(tag: &str) -> Dir {
    let dir = state_base().join(format!("ipcshim-badregion-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).expect("create scratch dir");
    Dir(dir)
}

fn ipcshim(dir: &Dir, ns: &str, args: &[&str]) -> Output {
    Command::new(cli_bin())
        .args(args)
        .env("IPCSHIM_DIR", &dir.0)
        .env("IPCSHIM_NS", ns)
        .env_remove("LD_PRELOAD")
        .output()
        .expect("run ipcshim")
}

/// `ipcmk -M 4096` with the shim preloaded directly (so the shim itself meets the bad file).
fn shimmed_ipcmk(dir: &Dir, ns: &str) -> Output {
    Command::new("ipcmk")
        .args(["-M", "4096"])
        .env("IPCSHIM_DIR", &dir.0)
        .env("IPCSHIM_NS", ns)
        .env("LD_PRELOAD", shim_lib())
        .output()
        .expect("run ipcmk")
}

fn region_file(dir: &Dir, ns: &str) -> PathBuf {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    dir.0.join(format!("ipcshim-{uid}-{ns}"))
}

/// Size and first page: enough to see a change without reading a 65 GiB sparse file.
fn fingerprint(p: &PathBuf) -> Option<(u64, Vec<u8>)> {
    let f = fs::File::open(p).ok()?;
    let mut head = vec![0u8; 4096];
    let n = std::os::unix::fs::FileExt::read_at(&f, &mut head, 0).ok()?;
    head.truncate(n);
    Some((f.metadata().ok()?.len(), head))
}

fn check_refused(damage: impl Fn(&PathBuf), expect: &str) {
    let dir = scratch(expect.split_whitespace().next().unwrap_or("x"));
    // A healthy namespace with a segment in it, next to the one we damage.
    assert!(ipcshim(&dir, "good", &["run", "--", "ipcmk", "-M", "8192"]).status.success());
    assert!(ipcshim(&dir, "bad", &["run", "--", "ipcmk", "-M", "4096"]).status.success());
    let bad = region_file(&dir, "bad");
    damage(&bad);
    let before = fingerprint(&bad);

    for out in [ipcshim(&dir, "bad", &["ipcs", "-m"]), ipcshim(&dir, "bad", &["run", "--", "true"])] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "a damaged region was accepted");
        assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
        assert!(err.contains(bad.to_str().unwrap()), "message does not name the file: {err}");
        assert!(err.contains(expect), "message {err:?} lacks {expect:?}");
    }
    let out = shimmed_ipcmk(&dir, "bad");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ipcmk succeeded on a damaged region");
    assert!(err.lines().next().is_some_and(|l| l.contains(expect)), "shim said {err:?}");

    let after = fingerprint(&bad);
    assert!(before == after, "the damaged file was modified");
    let good = String::from_utf8_lossy(&ipcshim(&dir, "good", &["ipcs", "-m"]).stdout).into_owned();
    assert!(good.contains(" 8192 "), "the healthy namespace lost its segment: {good}");
    assert!(ipcshim(&dir, "good", &["run", "--", "ipcmk", "-M", "4096"]).status.success());
}

#[test]
fn foreign_file_is_refused() {
    check_refused(|p| fs::write(p, vec![0xab; 4096]).unwrap(), "not an ipcshim region");
}

#[test]
fn truncated_file_is_refused() {
    check_refused(
        |p| fs::OpenOptions::new().write(true).open(p).unwrap().set_len(1 << 20).unwrap(),
        "truncated",
    );
}

#[test]
fn other_layout_version_is_refused() {
    check_refused(
        |p| {
            let f = fs::OpenOptions::new().write(true).open(p).unwrap();
            std::os::unix::fs::FileExt::write_all_at(&f, &999u32.to_ne_bytes(), 8).unwrap();
        },
        "version 999",
    );
}

#[test]
fn disable_leaves_calls_to_the_kernel() {
    let dir = scratch("disable");
    let out = Command::new("unshare")
        .args(["--ipc", "sh", "-c", "ipcmk -M 4096 >/dev/null && env -u LD_PRELOAD ipcs -m"])
        .env("IPCSHIM_DIR", &dir.0)
        .env("IPCSHIM_NS", "disabled")
        .env("LD_PRELOAD", shim_lib())
        .env("IPCSHIM_DISABLE", "1")
        .output()
        .expect("run unshare");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(listing.contains(" 4096 "), "the kernel does not hold the segment: {listing}");
    assert!(!region_file(&dir, "disabled").exists(), "a disabled shim created a region");
}
