//! The shim's stack budget (README, "How it works"), checked on the machine code: no function
//! of `libipcshim.so` that a served call can reach has a frame larger than [`MAX_FRAME`]. A
//! larger one is a buffer that belongs in scratch memory (`shim/src/base/scratch.rs`): served calls
//! run on the application's stack, which may be a 16 KiB thread stack or a small sigaltstack.
//! `c-tests/stack_small.c` measures whole served paths at run time; this catches a big frame
//! on a path that test does not take.

use ipcshim_tests::shim_lib;
use std::process::Command;

/// The largest frame a function of the shim or of shared-state may have.
const MAX_FRAME: u64 = 1280;
/// Functions no served call reaches: they run in the library's constructor, on the main
/// thread's stack.
const STARTUP_ONLY: &[&str] = &["shared_state::region::Region::open", "shared_state::region::Region::map"];

/// Each function's name (demangled, without hash) and the bytes its `sub $N, %rsp`
/// instructions reserve (a large frame's stack probes included).
fn frames(disassembly: &str) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    for line in disassembly.lines() {
        if let Some(name) = line.strip_suffix(">:").and_then(|l| l.split_once(" <")).map(|(_, n)| n) {
            out.push((name.to_string(), 0));
            continue;
        }
        let Some(ins) = line.split('\t').next_back() else { continue };
        let Some(imm) = ins.strip_prefix("sub").and_then(|r| r.trim_start().strip_prefix("$0x")) else {
            continue;
        };
        let Some((hex, "%rsp")) = imm.split_once(',') else { continue };
        if let (Some(last), Ok(n)) = (out.last_mut(), u64::from_str_radix(hex, 16)) {
            last.1 += n;
        }
    }
    out
}

/// The shim's and shared-state's functions, and the exported C symbols (the hooks).
fn ours(name: &str) -> bool {
    ["ipcshim::", "shared_state::", "<ipcshim::", "<shared_state::"].iter().any(|p| name.starts_with(p))
        || !name.contains("::")
}

#[test]
fn no_large_frames() {
    let out = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn", "-C"])
        .arg(shim_lib())
        .output()
        .expect("objdump (binutils, scripts/deps.sh)");
    assert!(out.status.success(), "objdump failed: {}", String::from_utf8_lossy(&out.stderr));
    let all = frames(&String::from_utf8_lossy(&out.stdout));
    let checked = all.iter().filter(|(n, _)| ours(n)).count();
    assert!(checked > 300, "only {checked} functions of the shim found in the disassembly");
    let big: Vec<String> = all
        .iter()
        .filter(|(n, size)| ours(n) && *size > MAX_FRAME && !STARTUP_ONLY.contains(&n.as_str()))
        .map(|(n, size)| format!("{size:6} {n}"))
        .collect();
    assert!(big.is_empty(), "frames over {MAX_FRAME} bytes:\n{}", big.join("\n"));
}

#[test]
fn frames_are_read_from_the_prologue() {
    let sample = "0000000000001000 <ipcshim::poll::poll>:\n\
                  \x20   1000:\tpush   %rbp\n\
                  \x20   1001:\tsub    $0x1000,%rsp\n\
                  \x20   1008:\tmovq   $0x0,(%rsp)\n\
                  \x20   1010:\tsub    $0x268,%rsp\n\
                  \x20   1017:\tsub    $0x10,%rax\n\
                  0000000000002000 <shared_state::sys::close>:\n\
                  \x20   2000:\tret\n";
    assert_eq!(
        frames(sample),
        vec![("ipcshim::poll::poll".to_string(), 0x1268), ("shared_state::sys::close".to_string(), 0)]
    );
}
