//! util-linux `ipcs`, `lsipc` and `ipcmk` on ipcshim's `/proc/sysvipc` views and IPC sysctls.
//!
//! One script makes objects with known keys (a small C helper) and with `ipcmk`, lists them
//! with every `ipcs` and `lsipc` view, writes and reads the sysctls (also wrongly), sets
//! `shm_rmid_forced` and lets holders die. It runs once on the kernel and once under the shim,
//! each in a fresh IPC namespace (`tests/src/diff.rs`); the outputs must be the same once the
//! pids, times and random `ipcmk` keys that legitimately differ are masked. The shim run has
//! every System V syscall made to fail by seccomp, so its objects cannot be the kernel's: the
//! listings come from the shim's views. A run under the filter without the shim shows that.

use ipcshim_tests::diff::{self, Mode};
use std::fs;
use std::os::unix::fs::PermissionsExt;

const SCRIPT: &str = r#"#!/bin/bash
H=@HELPER@
pids=
made() { pids="$pids $!"; until [ -s "$1" ] || ! kill -0 $! 2>/dev/null; do sleep 0.01; done; }
"$H" shm 0x1111 8192 0640 al > a.out & wait $!; made a.out; A=$(<a.out)
"$H" shm 0x2222 4096 0600 h > b.out & HB=$!; made b.out; B=$(<b.out)
"$H" shm 0x3333 12288 0660 hr > d.out & HD=$!; made d.out
"$H" sem 0x4444 3 0640 > s.out & wait $!; made s.out; S=$(<s.out)
echo "== /proc/sysvipc"; cat /proc/sysvipc/shm /proc/sysvipc/sem
echo "== ipcs -a"; ipcs -a
echo "== ipcs -m -i"; ipcs -m -i "$A"; ipcs -m -i "$B"
echo "== ipcs -s -i"; ipcs -s -i "$S"
for o in -t -p -c -u -l; do echo "== ipcs -m -s $o"; ipcs -m -s $o; done
echo "== lsipc"; lsipc
echo "== lsipc -m"; lsipc -m --notruncate
echo "== lsipc -s"; lsipc -s -c
echo "== lsipc -i"; lsipc -m -i "$B"; lsipc -s -i "$S"
echo "== lsipc -g"; lsipc -g -m; lsipc -g -s
echo "== sysctl"
k=/proc/sys/kernel
cat $k/shmmax $k/shmall $k/shmmni $k/shm_rmid_forced $k/sem $k/msgmax $k/msgmnb $k/msgmni
echo 100 > $k/shmmni; echo "rc=$?"
echo "250 32000 32 200" > $k/sem; echo "rc=$?"
echo "1 2 3 40000" > $k/sem; echo "rc=$?"
echo garbage > $k/shmmax; echo "rc=$?"
echo -1 > $k/msgmax; echo "rc=$?"
echo 33000 > $k/msgmni; echo "rc=$?"
printf '4096 9' > $k/shmmax; echo "rc=$?"
echo 0x2000 > $k/shmall; echo "rc=$?"
runuser -u nobody -- sh -c "echo 5 > $k/shmmni"; echo "nobody rc=$?"
cat $k/shmmax $k/shmall $k/shmmni $k/sem $k/msgmax $k/msgmni
exec 3<>$k/msgmnb; echo 1234 >&3; cat <&3; exec 3>&-
ipcs -l
"$H" shm 0x5555 5000 0600 x > e.out & wait $!; echo "over shmmax rc=$?"; pids="$pids $!"
echo "== shm_rmid_forced"
echo 1 > $k/shm_rmid_forced; echo "rc=$?"
ipcs -m
kill $HB $HD; wait $HB $HD
ipcs -m
echo "== ipcmk"
echo 0 > $k/shm_rmid_forced; echo 1048576 > $k/shmmax; echo "32000 1024000000 500 32000" > $k/sem
ipcmk -M 65536 -p 0600 > m.out & wait $!; pids="$pids $!"
ipcmk -S 2 > ms.out & wait $!; pids="$pids $!"
ipcmk -Q -p 0640 > mq.out & wait $!; pids="$pids $!"
cat m.out ms.out mq.out
M=$(awk '{print $NF}' m.out); MS=$(awk '{print $NF}' ms.out); MQ=$(awk '{print $NF}' mq.out)
ipcs -a
ipcs -m -i "$M"; ipcs -s -i "$MS"; ipcs -q -i "$MQ"
echo "== /proc/sysvipc/msg"; cat /proc/sysvipc/msg
lsipc -m; lsipc -s; lsipc -q
echo "KEYS: $(ipcs -m | awk -v id="$M" '$2 == id {print $1}') $(ipcs -s | awk -v id="$MS" '$2 == id {print $1}') $(ipcs -q | awk -v id="$MQ" '$2 == id {print $1}')"
ipcrm -m "$M" -s "$MS" -s "$S" -q "$MQ"; echo "rc=$?"
ipcs -a
echo "PIDS:$pids"
"#;

/// `out` with every token in `pids` and every time (10-digit epoch seconds, hh:mm[:ss])
/// replaced by a placeholder of the same width (pids by `PID` when not `keep_width`), and every
/// `keys` string masked.
fn mask(out: &str, pids: &[&str], keys: &[&str], keep_width: bool) -> String {
    let mut text = out.to_string();
    for k in keys.iter().filter(|k| k.starts_with("0x")) {
        text = text.replace(k, "0xKKKKKKKK");
        // /proc/sysvipc shows the key first, in decimal (%10d: 11 characters when negative).
        let Ok(v) = u32::from_str_radix(&k[2..], 16) else { continue };
        let dec = format!("{} ", v as i32);
        text = text
            .lines()
            .map(|l| match l.trim_start().strip_prefix(&dec) {
                Some(rest) => format!("KEY {rest}\n"),
                None => format!("{l}\n"),
            })
            .collect();
    }
    let b = text.as_bytes();
    let mut res = String::new();
    let mut i = 0;
    while i < b.len() {
        let starts = b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_alphanumeric());
        if !starts {
            res.push(b[i] as char);
            i += 1;
            continue;
        }
        let end = (i..b.len()).find(|&j| !(b[j].is_ascii_digit() || b[j] == b':')).unwrap_or(b.len());
        let tok = &text[i..end];
        let clock = tok.split(':').count() >= 2 && tok.split(':').all(|p| (1..=2).contains(&p.len()));
        let epoch = tok.len() == 10 && !tok.contains(':');
        let fill = if pids.contains(&tok) {
            Some('P')
        } else if clock || epoch {
            Some('T')
        } else {
            None
        };
        match fill {
            Some('P') if !keep_width => res.push_str("PID"),
            Some(c) => res.extend(std::iter::repeat_n(c, tok.len())),
            None => res.push_str(tok),
        }
        i = end;
    }
    res
}

/// The words after `tag` on the script's line starting with it.
fn listed<'a>(out: &'a str, tag: &str) -> Vec<&'a str> {
    out.lines().find_map(|l| l.strip_prefix(tag)).map(|l| l.split_whitespace().collect()).unwrap_or_default()
}

fn collapse(s: &str) -> String {
    s.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join("\n")
}

#[test]
fn util_linux_sees_the_shim_objects_as_the_kernel_shows_its_own() {
    let helper =
        diff::compile(&ipcshim_tests::workspace_root().join("tests/c/ipc_helper.c")).expect("compile");
    let script = diff::out_dir().join("proc_views.sh");
    fs::write(&script, SCRIPT.replace("@HELPER@", &helper.display().to_string())).expect("write script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");

    let kernel = diff::run(&script, Mode::Kernel).expect("kernel run");
    let shim = diff::run(&script, Mode::Shim).expect("shim run");
    for run in [&kernel, &shim] {
        assert_eq!(run.status, "exit 0", "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    }
    // The kernel's own listing has the objects (the script works) ...
    assert!(
        kernel.stdout.contains("0x00001111") && kernel.stdout.contains("0x00004444"),
        "{}",
        kernel.stdout
    );
    // ... no SysV call of the shim run reached the kernel (seccomp's EHWPOISON, "Memory page
    // has hardware error"), and no data went through a kernel pipe.
    assert!(
        !shim.stderr.contains("hardware error") && !shim.stdout.contains("hardware error"),
        "{}",
        shim.stderr
    );
    assert!(shim.kernel_pipe_io.is_empty(), "{:?}", shim.kernel_pipe_io);

    let (kp, sp) = (listed(&kernel.stdout, "PIDS:"), listed(&shim.stdout, "PIDS:"));
    let (kk, sk) = (listed(&kernel.stdout, "KEYS:"), listed(&shim.stdout, "KEYS:"));
    assert!(kp.len() == 8 && sp.len() == 8 && kk.len() == 3 && sk.len() == 3, "{kp:?} {sp:?} {kk:?} {sk:?}");
    // Either run's pids are masked in both: a pid of one run that equals a number the script
    // prints (a key's decimal, a size) is then masked on both sides, not only on its own.
    let all: Vec<&str> = kp.iter().chain(&sp).copied().collect();
    let (k, s) = (mask(&kernel.stdout, &all, &kk, true), mask(&shim.stdout, &all, &sk, true));
    // A pid one digit longer in one run widens util-linux's columns: then only the words count,
    // each pid one word whatever its width.
    let widths = |p: &[&str]| p.iter().map(|p| p.len()).collect::<Vec<_>>();
    let same = k == s
        || (widths(&kp) != widths(&sp)
            && collapse(&mask(&kernel.stdout, &all, &kk, false))
                == collapse(&mask(&shim.stdout, &all, &sk, false)));
    if !same {
        let kl: Vec<&str> = k.lines().collect();
        let first = kl.iter().zip(s.lines()).position(|(a, b)| *a != b).unwrap_or(kl.len());
        panic!(
            "outputs differ from line {}:\nkernel: {:?}\nshim:   {:?}\n--- kernel\n{k}\n--- shim\n{s}\nshim stderr:\n{}",
            first + 1,
            kl.get(first),
            s.lines().nth(first),
            shim.stderr
        );
    }

    // Without the shim, the same filter leaves the script no objects at all.
    let filtered = diff::run(&script, Mode::FilterOnly).expect("filtered run");
    assert!(
        !filtered.stdout.contains("0x00001111"),
        "the filter let a SysV call through:\n{}",
        filtered.stdout
    );
}

#[test]
fn masking_keeps_widths() {
    let out = "cpid=12345 at 11:37:12 ctime 1795606632 size 12345678 0x0000abcd\n";
    assert_eq!(
        mask(out, &["12345"], &["0x0000abcd"], true),
        "cpid=PPPPP at TTTTTTTT ctime TTTTTTTTTT size 12345678 0xKKKKKKKK\n"
    );
    // Pids of other widths compare equal once their columns are collapsed.
    let (wide, narrow) = ("1234  12345 x\n", "1234  9999  x\n");
    assert_ne!(mask(wide, &["12345"], &[], true), mask(narrow, &["9999"], &[], true));
    assert_eq!(collapse(&mask(wide, &["12345"], &[], false)), collapse(&mask(narrow, &["9999"], &[], false)));
    // A pid of one run equal to a number both print (the key 0x1111 is 4369 in /proc/sysvipc):
    // masked with both runs' pids, both sides read the same.
    let (kernel, shim) = ("4369 x 1000\n", "4369 x 4369\n");
    let all = ["1000", "4369"];
    assert_eq!(mask(kernel, &all, &[], true), mask(shim, &all, &[], true));
}
