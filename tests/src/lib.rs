//! Helpers shared by the integration tests: where the built artefacts are.

use std::path::PathBuf;

pub mod diff;

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// `target/release`, where `make build` puts `libipcshim.so` and `ipcshim`.
pub fn release_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("release"),
        None => workspace_root().join("target").join("release"),
    }
}

/// The preload library.
pub fn shim_lib() -> PathBuf {
    release_dir().join("libipcshim.so")
}

/// The `ipcshim` command.
pub fn cli_bin() -> PathBuf {
    release_dir().join("ipcshim")
}

/// Where tests put IPCSHIM_DIRs: the region must live on tmpfs.
pub fn state_base() -> PathBuf {
    PathBuf::from("/dev/shm")
}

/// `ipcshim --ns NS status` of the namespaces in `dir`.
pub fn ns_status(dir: &std::path::Path, ns: &str) -> String {
    let out = std::process::Command::new(cli_bin())
        .args(["--ns", ns, "status"])
        .env("IPCSHIM_DIR", dir)
        .env_remove("LD_PRELOAD")
        .output()
        .expect("ipcshim status");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The number after `key=` on the line of `status` that starts with `line` (`pipes:` …).
pub fn status_field(status: &str, line: &str, key: &str) -> u64 {
    let l = status.lines().find(|l| l.starts_with(line)).unwrap_or_else(|| panic!("no {line} in\n{status}"));
    l.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")).and_then(|v| v.parse().ok()))
        .unwrap_or_else(|| panic!("no {key} on {l}"))
}
