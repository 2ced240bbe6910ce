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
