//! The shim's source keeps its layers (see `shim/src/lib.rs`): `entry` on top, `family` in the
//! middle, `base` at the bottom, each module importing only from its own layer or those below,
//! with no loop of imports among `base`'s modules, and loops among `family`'s modules confined
//! to the socket and readiness modules that still call each other (listed below, to shrink).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: [&str; 3] = ["base", "family", "entry"];

/// Family modules that are still in a loop of imports with each other: unix.rs is both the
/// socket layer (bind/connect/send/recv for every socket type) and AF_UNIX streams, and the
/// pipe queue's wait environment asks socket modules about their side. No other module may
/// join a loop.
const FAMILY_LOOPS: [&str; 7] = ["dgram", "epoll", "pipes", "poll", "tcp", "udp", "unix"];

type Module = (usize, String);

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module a file belongs to: its layer and the first path component below the layer.
fn module_of(src: &Path, file: &Path) -> Option<Module> {
    let rel: Vec<String> =
        file.strip_prefix(src).unwrap().iter().map(|c| c.to_string_lossy().into_owned()).collect();
    let layer = LAYERS.iter().position(|l| *l == rel[0])?;
    let name = rel.get(1)?.trim_end_matches(".rs").to_string();
    (name != "mod").then_some((layer, name))
}

fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// Every `crate::LAYER::MODULE` a file names, including inside `use crate::{...}` and
/// `use crate::LAYER::{...}` groups. Whole-line and trailing `// ` comments are skipped.
fn references(text: &str) -> BTreeSet<Module> {
    let code: String = text
        .lines()
        .map(|l| if l.trim_start().starts_with("//") { "" } else { l.split(" // ").next().unwrap() })
        .collect::<Vec<_>>()
        .join("\n");
    let mut refs = BTreeSet::new();
    let mut add = |path: &str| {
        let mut parts = path.split("::").map(str::trim);
        let (Some(layer), Some(rest)) = (parts.next(), parts.next()) else { return };
        let Some(l) = LAYERS.iter().position(|x| *x == layer) else { return };
        if rest.starts_with('{') {
            let group = &path[path.find('{').unwrap() + 1..];
            for item in group.split([',', '}']) {
                let m = ident(item.trim());
                if !m.is_empty() && m != "self" {
                    refs.insert((l, m.to_string()));
                }
            }
        } else if !ident(rest).is_empty() {
            refs.insert((l, ident(rest).to_string()));
        }
    };
    let mut at = 0;
    while let Some(i) = code[at..].find("crate::") {
        let start = at + i + "crate::".len();
        let tail = &code[start..];
        if let Some(group) = tail.strip_prefix('{') {
            let body = &group[..group.find('}').unwrap_or(group.len())];
            // A top-level group: items are LAYER::MODULE or LAYER::{...}; nested braces are
            // not used at this level in the shim.
            for item in body.split(',') {
                add(item.trim());
            }
        } else {
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            let mut path = tail[..end].to_string();
            if tail[end..].starts_with('{') {
                path.push_str(&tail[end..end + tail[end..].find('}').unwrap_or(0) + 1]);
            }
            add(&path);
        }
        at = start;
    }
    refs
}

fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shim/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut g: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        if rel == Path::new("lib.rs") {
            continue;
        }
        let rel0 = rel.iter().next().unwrap().to_string_lossy().into_owned();
        assert!(LAYERS.contains(&rel0.as_str()), "{} is outside the layers' directories", rel.display());
        let Some(m) = module_of(&src, f) else { continue };
        let refs = references(&std::fs::read_to_string(f).unwrap());
        let e = g.entry(m.clone()).or_default();
        e.extend(refs.into_iter().filter(|r| *r != m));
    }
    g
}

fn name(m: &Module) -> String {
    format!("{}/{}", LAYERS[m.0], m.1)
}

/// The modules reachable from `from` through edges within its own layer.
fn reach(g: &BTreeMap<Module, BTreeSet<Module>>, from: &Module) -> BTreeSet<Module> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.clone()];
    while let Some(m) = stack.pop() {
        for d in g.get(&m).into_iter().flatten().filter(|d| d.0 == from.0) {
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn modules_import_only_their_own_layer_and_those_below() {
    let g = graph();
    assert!(g.len() > 20, "found only {} modules", g.len());
    let up: Vec<String> = g
        .iter()
        .flat_map(|(m, ds)| {
            ds.iter().filter(|d| d.0 > m.0).map(move |d| format!("{} -> {}", name(m), name(d)))
        })
        .collect();
    assert!(up.is_empty(), "imports against the layering:\n{}", up.join("\n"));
}

#[test]
fn no_loops_of_imports_in_base_and_none_new_in_family() {
    let g = graph();
    let mut loops = Vec::new();
    for m in g.keys().filter(|m| m.0 < 2) {
        let looped = reach(&g, m).contains(m);
        let allowed = m.0 == 1 && FAMILY_LOOPS.contains(&m.1.as_str());
        if looped && !allowed {
            loops.push(name(m));
        }
    }
    assert!(loops.is_empty(), "modules in a loop of imports: {}", loops.join(", "));
    // The list shrinks as loops are untangled: a listed module that no longer loops goes.
    for l in FAMILY_LOOPS {
        let m = (1, l.to_string());
        assert!(
            g.contains_key(&m) && reach(&g, &m).contains(&m),
            "family/{l} is in no loop any more: drop it"
        );
    }
}

#[test]
fn references_are_found_in_every_form() {
    let text = "use crate::base::fd::{self, PipeFd};\nuse crate::{base::scratch, family::unix};\n\
                use crate::base::{thread, uring};\n// crate::entry::hooks in a comment\n\
                let x = crate::family::epoll::instance_of(fd); // crate::entry::sud\n";
    let got: Vec<String> = references(text).iter().map(name).collect();
    assert_eq!(got, ["base/fd", "base/scratch", "base/thread", "base/uring", "family/epoll", "family/unix"]);
}
