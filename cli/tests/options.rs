//! The command line: `--ns` before the subcommand or among its options, and every option the
//! CLI does not take where it stands is an error with the usage (exit 2), never ignored.

use std::process::{Command, Output};

struct Dir(String);

impl Dir {
    fn new(test: &str) -> Dir {
        let d = format!("/dev/shm/ipcshim-cli-{test}-{}", std::process::id());
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn ipcshim(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ipcshim"))
            .args(args)
            .env("IPCSHIM_DIR", &self.0)
            .env_remove("IPCSHIM_NS")
            .env_remove("LD_PRELOAD")
            .output()
            .unwrap()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn ns_is_taken_before_or_after_the_subcommand() {
    let d = Dir::new("ns");
    for args in [
        &["--ns", "a1", "status"][..],
        &["status", "--ns", "a1"],
        &["status", "--ns=a1"],
        &["--ns=a1", "status"],
    ] {
        let o = d.ipcshim(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("namespace:      a1\n"),
            "{args:?}: {}",
            text(&o)
        );
    }
    let o = d.ipcshim(&["run", "--ns", "b2", "--", "sh", "-c", "echo $IPCSHIM_NS"]);
    assert_eq!(
        (o.status.code(), String::from_utf8_lossy(&o.stdout).as_ref()),
        (Some(0), "b2\n"),
        "{}",
        text(&o)
    );
    // A queue made in one namespace is listed there, whichever place names it.
    let o = d.ipcshim(&["run", "--ns", "c3", "--", "ipcmk", "-Q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for args in [&["--ns", "c3", "ipcs", "-q"][..], &["ipcs", "-q", "--ns", "c3"], &["ipcs", "--ns=c3", "-q"]]
    {
        let o = d.ipcshim(args);
        let listed = String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.starts_with("0x")).count();
        assert_eq!((o.status.code(), listed), (Some(0), 1), "{args:?}: {}", text(&o));
    }
    let o = d.ipcshim(&[
        "trace",
        "--ns",
        "d4",
        "-o",
        &format!("{}/t", d.0),
        "--",
        "sh",
        "-c",
        "echo $IPCSHIM_NS",
    ]);
    assert_eq!(
        (o.status.code(), String::from_utf8_lossy(&o.stdout).as_ref()),
        (Some(0), "d4\n"),
        "{}",
        text(&o)
    );
}

#[test]
fn options_not_taken_are_errors() {
    let d = Dir::new("bad-options");
    for args in [
        &["--bogus", "status"][..],
        &["--ns"],
        &["status", "--bogus"],
        &["status", "extra"],
        &["status", "--ns"],
        &["run", "--bogus", "--", "true"],
        &["run", "--ns"],
        &["run"],
        &["trace", "-o"],
        &["diff", "--bogus", "--", "true"],
        &["ipcs", "--ns"],
        &["frobnicate"],
    ] {
        let o = d.ipcshim(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("usage: ipcshim"), "{args:?}: {}", text(&o));
    }
}
