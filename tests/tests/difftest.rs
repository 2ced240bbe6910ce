//! Runs every `c-tests/*.c` program against the kernel and against the shim (see
//! `ipcshim_tests::diff`), and checks that the seccomp filter behind the shim run really blocks
//! System V IPC.

use ipcshim_tests::diff::{self, Mode};
use std::fs;

#[test]
fn shim_matches_kernel() {
    let programs = diff::programs().expect("list c-tests");
    assert!(!programs.is_empty(), "no c-tests/*.c found");
    let mut failures = Vec::new();
    let mut cases = 0;
    for src in &programs {
        match diff::check(src) {
            Ok(n) => {
                eprintln!("ok   {} ({n} cases)", src.display());
                cases += n;
            }
            Err(report) => {
                eprintln!("FAIL {}", src.display());
                failures.push(report);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} programs differ ({cases} cases passed in the rest):\n\n{}",
        failures.len(),
        programs.len(),
        failures.join("\n\n")
    );
}

/// Every SysV IPC syscall, through glibc and raw, with harmless arguments.
const PROBE: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>

#define P(name, expr) do { errno = 0; long r = (long)(expr); \
	printf("%s %ld %s\n", name, r, r == -1 && errno == 133 ? "EHWPOISON" : "other"); } while (0)

int main(void)
{
	P("glibc_shmget", shmget(IPC_PRIVATE, 4096, 0600));
	P("shmget", syscall(SYS_shmget, IPC_PRIVATE, 4096, 0600));
	P("shmat", syscall(SYS_shmat, -1, 0, 0));
	P("shmctl", syscall(SYS_shmctl, -1, IPC_STAT, 0));
	P("shmdt", syscall(SYS_shmdt, 1));
	P("semget", syscall(SYS_semget, IPC_PRIVATE, 1, 0600));
	P("semop", syscall(SYS_semop, -1, 0, 0));
	P("semctl", syscall(SYS_semctl, -1, 0, IPC_RMID, 0));
	P("semtimedop", syscall(SYS_semtimedop, -1, 0, 0, 0));
	P("msgget", syscall(SYS_msgget, IPC_PRIVATE, 0600));
	P("msgsnd", syscall(SYS_msgsnd, -1, 0, 0, 0));
	P("msgrcv", syscall(SYS_msgrcv, -1, 0, 0, 0, 0));
	P("msgctl", syscall(SYS_msgctl, -1, IPC_RMID, 0));
	P("getpid", syscall(SYS_getpid) > 0 ? 0 : -1);
	return 0;
}
"#;

#[test]
fn seccomp_filter_blocks_sysv_ipc() {
    let dir = diff::out_dir();
    fs::create_dir_all(&dir).expect("mkdir target/c-tests");
    let src = dir.join("seccomp_probe.c");
    fs::write(&src, PROBE).expect("write probe source");
    let exe = diff::compile(&src).expect("compile probe");

    let kernel = diff::run(&exe, Mode::Kernel).expect("kernel run");
    let filtered = diff::run(&exe, Mode::FilterOnly).expect("filtered run");
    for run in [&kernel, &filtered] {
        assert_eq!(run.status, "exit 0", "probe failed: {run:?}");
        assert_eq!(run.stdout.lines().count(), 14, "probe output: {run:?}");
    }
    assert!(!kernel.stdout.contains("EHWPOISON"), "kernel run shows EHWPOISON:\n{}", kernel.stdout);
    for line in filtered.stdout.lines() {
        let blocked = line.ends_with(" -1 EHWPOISON");
        assert_eq!(blocked, !line.starts_with("getpid "), "filtered run: {line}\n{}", filtered.stdout);
    }
}
