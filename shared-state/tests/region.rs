//! A bad region file is refused with one line naming it, is left as it was, and does not stop
//! other namespaces; so is one that is not its owner's alone. Concurrent first openers create
//! one region; a group's namespace file is made for the group; inherited descriptors are taken
//! only for the same file.

mod common;

use common::{Pipe, TempDir, fork, wait_exit};
use shared_state::Region;
use shared_state::ipc::{IPC_CREAT, IPC_PRIVATE};
use shared_state::region::{Owner, PAGE_SIZE, RegionFiles, TOTAL_SIZE, ns_name};
use shared_state::shm;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// What a failed open must not change. The first 1 MiB covers the header and the tables'
/// first pages; the rest of a (sparse) full-size file is too big to compare whole.
#[derive(Debug, PartialEq)]
struct FileState {
    len: u64,
    mtime: (i64, i64),
    head: Vec<u8>,
}

fn file_state(path: &str) -> FileState {
    let meta = std::fs::metadata(path).unwrap();
    let mut head = Vec::new();
    File::open(path).unwrap().take(1 << 20).read_to_end(&mut head).unwrap();
    FileState { len: meta.len(), mtime: (meta.mtime(), meta.mtime_nsec()), head }
}

/// Opens `path`, expecting a refusal; checks the message is one line about `path` that
/// contains every one of `words`, and that the file was not touched.
fn expect_refused(path: &str, words: &[&str]) {
    let before = file_state(path);
    for create in [true, false] {
        let msg = match Region::open(path, create) {
            Ok(_) => panic!("{path}: a bad region was accepted (create = {create})"),
            Err(e) => e.to_string(),
        };
        assert!(msg.contains(path), "message does not name the file: {msg}");
        assert!(!msg.contains('\n'), "message is not one line: {msg:?}");
        for w in words {
            assert!(msg.contains(w), "message lacks {w:?}: {msg}");
        }
    }
    assert_eq!(file_state(path), before, "the failed open changed {path}");
}

/// Another namespace next to the bad file is created and used normally.
fn other_namespace_works(dir: &TempDir) {
    let region = dir.region("other");
    let key = 0x5eed;
    let id = shm::shmget(&region, key, 4096, IPC_CREAT | 0o600).unwrap();
    let segs = shm::snapshot(&region).unwrap();
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].0, id);
    assert_eq!(segs[0].1.perm.key, key);
    assert_eq!(segs[0].1.segsz, 4096);
    let mut ds = shm::Shmid64Ds::default();
    assert_eq!(shm::shmctl(&region, id, shm::IPC_STAT, &mut ds as *mut _ as usize), Ok(0));
    assert_eq!(ds.segsz, 4096);
}

/// A working region with one segment in it, closed again.
fn valid_region(dir: &TempDir) -> String {
    let path = dir.region_path("bad");
    let region = Region::open(&path, true).unwrap();
    shm::shmget(&region, 0x1234, 4096, IPC_CREAT | 0o600).unwrap();
    path
}

#[test]
fn foreign_bytes_are_refused() {
    let dir = TempDir::new("foreign");
    let path = dir.region_path("bad");
    std::fs::write(&path, vec![0xAB; 4096]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    expect_refused(&path, &["not an ipcshim region"]);
    other_namespace_works(&dir);
}

#[test]
fn truncated_region_is_refused() {
    let dir = TempDir::new("truncated");
    let path = valid_region(&dir);
    for len in [TOTAL_SIZE / 2, 100] {
        OpenOptions::new().write(true).open(&path).unwrap().set_len(len).unwrap();
        expect_refused(&path, &["truncated", &format!("region is {len} bytes")]);
    }
    other_namespace_works(&dir);
}

#[test]
fn other_version_is_refused() {
    let dir = TempDir::new("version");
    let path = valid_region(&dir);
    let mut f = OpenOptions::new().write(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(8)).unwrap();
    f.write_all(&999u32.to_ne_bytes()).unwrap();
    drop(f);
    expect_refused(&path, &["version 999"]);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), TOTAL_SIZE);
    other_namespace_works(&dir);
}

#[test]
fn interrupted_initialisation_is_refused_as_incomplete() {
    let dir = TempDir::new("incomplete");
    let path = valid_region(&dir);
    // The state word follows magic and version; a creator that died before setting it leaves 0.
    let mut f = OpenOptions::new().write(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(12)).unwrap();
    f.write_all(&0u32.to_ne_bytes()).unwrap();
    drop(f);
    expect_refused(&path, &["never completed"]);
    other_namespace_works(&dir);
}

#[test]
fn other_build_layout_is_refused() {
    let dir = TempDir::new("otherbuild");
    let path = valid_region(&dir);
    // The first layout word (process table offset) sits after magic, version, state, total_size.
    let mut f = OpenOptions::new().write(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(24)).unwrap();
    f.write_all(&12345u64.to_ne_bytes()).unwrap();
    drop(f);
    expect_refused(&path, &["different ipcshim build"]);
    other_namespace_works(&dir);
}

/// 8 processes open a fresh namespace at once and each creates a segment in it.
fn first_open_race(dir: &TempDir, ns: &str) {
    const N: usize = 8;
    let path = dir.region_path(ns);
    let go = Pipe::new();
    let pids: Vec<i32> = (0..N)
        .map(|_| {
            fork(|| {
                shared_state::proc::identify_self();
                // Every child is forked before any of them opens.
                if go.recv().is_none() {
                    return 2;
                }
                let Ok(region) = Region::open(&path, true) else { return 3 };
                match shm::shmget(&region, IPC_PRIVATE, PAGE_SIZE as usize, IPC_CREAT | 0o600) {
                    Ok(_) => 0,
                    Err(_) => 4,
                }
            })
        })
        .collect();
    // One byte each rather than closing: other tests' children inherit our write end.
    for _ in 0..N {
        go.send(1);
    }
    for &pid in &pids {
        assert_eq!(wait_exit(pid), 0, "{ns}: child {pid} failed");
    }
    let region = Region::open(&path, false).unwrap();
    let segs = shm::snapshot(&region).unwrap();
    assert_eq!(segs.len(), N, "{ns}: a segment was lost");
    let mut cpids: Vec<i32> = segs.iter().map(|(_, ds)| ds.cpid).collect();
    cpids.sort_unstable();
    let mut want = pids.clone();
    want.sort_unstable();
    assert_eq!(cpids, want, "{ns}: each child created exactly one segment");
}

#[test]
fn concurrent_first_openers_share_one_region() {
    let dir = TempDir::new("concurrent");
    // The race window is short: several rounds make a lost initialisation show up.
    for round in 0..5 {
        first_open_race(&dir, &format!("race{round}"));
    }
}

#[test]
fn a_file_open_to_others_or_not_the_users_is_refused() {
    let dir = TempDir::new("private");
    let path = valid_region(&dir);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    expect_refused(&path, &["mode 0644", "refusing to use it"]);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    if shared_state::sys::getuid() == 0 {
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        expect_refused(&path, &["owned by uid 65534", "not by user 0"]);
    }
    other_namespace_works(&dir);
}

#[test]
fn a_group_namespace_file_is_the_groups() {
    let dir = TempDir::new("group");
    // A group the test process is in (its own), so that it may give the file to it.
    let gid = shared_state::sys::getegid();
    let name = ns_name(&dir.path, Owner::Group(gid), "shared").unwrap();
    assert!(name.path.ends_with(&format!("/ipcshim-g{gid}-shared")), "{}", name.path);
    let region = Region::open_named(&name, true).unwrap();
    shm::shmget(&region, 0x77, 4096, IPC_CREAT | 0o600).unwrap();
    let meta = std::fs::metadata(&name.path).unwrap();
    assert_eq!((meta.gid(), meta.mode() & 0o7777), (gid, 0o660), "the group's file");
    let again = Region::open_named(&name, false).unwrap();
    assert_eq!(shm::snapshot(&again).unwrap().len(), 1, "the same namespace by name");
    // Open to others: refused.
    std::fs::set_permissions(&name.path, std::fs::Permissions::from_mode(0o664)).unwrap();
    let msg = Region::open_named(&name, false).err().expect("a group file open to others").to_string();
    assert!(msg.contains("mode 0664") && msg.contains(&format!("not by group {gid}")), "{msg}");
}

#[test]
fn inherited_descriptors_are_taken_only_for_the_same_file() {
    let dir = TempDir::new("inherit");
    let name = ns_name(&dir.path, Owner::User(shared_state::sys::getuid()), "tree").unwrap();
    let other = ns_name(&dir.path, Owner::User(shared_state::sys::getuid()), "other").unwrap();
    let files = RegionFiles::open(&name, true).unwrap();
    let elsewhere = RegionFiles::open(&other, true).unwrap();
    let (dev, ino) = files.identity().unwrap();
    let verdicts = |value: &str| match RegionFiles::inherited(value) {
        Some(f) if f == files => {
            let region = Region::map(&f, &f.path()).unwrap();
            shm::shmget(&region, IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
            0
        }
        Some(_) => 2,
        None => 1,
    };
    let (rw, ro) = (files.rw, files.ro);
    assert_eq!(verdicts(&format!("{rw},{ro},{dev},{ino}")), 0, "the region's own descriptors");
    assert_eq!(verdicts(&format!("{ro},{rw},{dev},{ino}")), 1, "access modes swapped");
    assert_eq!(verdicts(&format!("{rw},{ro},{dev},{}", ino + 1)), 1, "another inode");
    assert_eq!(verdicts(&format!("{},{},{dev},{ino}", elsewhere.rw, elsewhere.ro)), 1, "another file");
    assert_eq!(verdicts(&format!("{rw},{ro},{dev}")), 1, "a field missing");
    assert_eq!(verdicts("999,998,1,2"), 1, "closed numbers");
    let region = Region::open_named(&name, false).unwrap();
    assert_eq!(shm::snapshot(&region).unwrap().len(), 1, "the segment made through them is the namespace's");
    files.close();
    elsewhere.close();
}
