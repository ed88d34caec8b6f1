//! The crates' import graphs have no cycles: no two files that import each other, directly or
//! round a loop, and no two top-level modules (a folder counts as one) either, so contracts stay
//! at the bottom and each module can be read from what it imports. Read from the sources'
//! `crate::` and `super::` paths (a module and its own submodules may use each other).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One crate's source files by module path (`["viewer", "machine"]`; the root is `[]`).
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let mut module: Vec<String> = rel
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            out.insert(module, path);
        }
    }
    out
}

/// The code of `text` without comments and string literals (a path in a doc comment or a
/// message is no import).
fn code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_string = false;
        let mut prev = ' ';
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if !in_string && c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' {
                in_string = !in_string;
            } else if !in_string {
                out.push(c);
            }
            prev = c;
        }
        out.push('\n');
    }
    out
}

/// Every path that follows `crate::` or `super::` in `code`, with use-trees expanded
/// (`crate::{a, b::{c, d}}` gives `a`, `b::c`, `b::d`); `super` paths keep their `super`s.
fn paths(code: &str) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    for (i, _) in code.char_indices() {
        let rest = &code[i..];
        let starts_word = i == 0 || !is_ident(bytes[i - 1]);
        if starts_word && rest.starts_with("crate::") {
            out.extend(tree(&rest["crate::".len()..]).0);
        } else if starts_word && rest.starts_with("super::") {
            out.extend(tree(rest).0);
        }
    }
    out
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Parses a path or use-tree at the start of `s`: its expanded paths and the bytes read.
fn tree(s: &str) -> (Vec<Vec<String>>, usize) {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut segments = Vec::new();
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'{' {
            i += 1;
            let mut all = Vec::new();
            loop {
                while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
                    i += 1;
                }
                if i >= bytes.len() || bytes[i] == b'}' {
                    i += 1;
                    break;
                }
                let (sub, used) = tree(&s[i..]);
                if used == 0 {
                    i += 1;
                    continue;
                }
                i += used;
                for p in sub {
                    let mut full: Vec<String> = segments.clone();
                    full.extend(p);
                    all.push(full);
                }
            }
            return (all, i);
        }
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        if i == start {
            break;
        }
        segments.push(s[start..i].to_owned());
        if s[i..].starts_with("::") {
            i += 2;
        } else {
            break;
        }
    }
    (vec![segments], i)
}

/// The module `path` (as written in module `from`) lands in: the longest known prefix.
/// (`super` is the module's parent, whether it is a file or a folder's `mod.rs`.)
fn resolve(
    from: &[String],
    path: &[String],
    known: &BTreeMap<Vec<String>, PathBuf>,
) -> Option<Vec<String>> {
    let mut base: Vec<String> = from.to_vec();
    let mut rest = path;
    let mut absolute = true;
    while rest.first().map(String::as_str) == Some("super") {
        absolute = false;
        base.pop()?;
        rest = &rest[1..];
    }
    let mut full = if absolute { Vec::new() } else { base };
    full.extend(rest.iter().cloned());
    (0..=full.len())
        .rev()
        .map(|n| full[..n].to_vec())
        .find(|m| known.contains_key(m))
}

/// A cycle in `edges`, if there is one, as the modules round it.
fn cycle(edges: &Edges) -> Option<Vec<Vec<String>>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        node: &Vec<String>,
        edges: &Edges,
        marks: &mut BTreeMap<Vec<String>, Mark>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        marks.insert(node.clone(), Mark::Open);
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let at = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut round = stack[at..].to_vec();
                    round.push(next.clone());
                    return Some(round);
                }
                Mark::New => {
                    if let Some(c) = visit(next, edges, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(node.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in edges.keys() {
        if marks.get(node).copied().unwrap_or(Mark::New) == Mark::New {
            let mut stack = Vec::new();
            if let Some(c) = visit(node, edges, &mut marks, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

/// Which modules each module imports.
type Edges = BTreeMap<Vec<String>, BTreeSet<Vec<String>>>;

/// The import edges of the crate whose sources are in `src`, between files and between
/// top-level modules.
fn edges(src: &Path) -> (Edges, Edges) {
    let known = modules(src);
    let (mut files, mut tops) = (Edges::new(), Edges::new());
    for (module, path) in &known {
        let text = std::fs::read_to_string(path).expect("a source file");
        // Tests are not part of the graph (they may use anything).
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for p in paths(&code(text)) {
            let Some(to) = resolve(module, &p, &known) else {
                continue;
            };
            // A module and its own submodules may use each other.
            if to.starts_with(module) || module.starts_with(&to) {
                continue;
            }
            files.entry(module.clone()).or_default().insert(to.clone());
            let (a, b) = (module.first().cloned(), to.first().cloned());
            if let (Some(a), Some(b)) = (a, b)
                && a != b
            {
                tops.entry(vec![a]).or_default().insert(vec![b]);
            }
        }
    }
    (files, tops)
}

fn show(round: &[Vec<String>]) -> String {
    round
        .iter()
        .map(|m| format!("crate::{}", m.join("::")))
        .collect::<Vec<_>>()
        .join(" -> ")
}

#[test]
fn no_crate_has_an_import_cycle_between_files_or_top_level_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for krate in [
        "app/engine/src",
        "app/gui/src",
        "app/src",
        "signal-server/src",
    ] {
        let (files, tops) = edges(&root.join(krate));
        assert!(
            !files.is_empty() || krate != "app/engine/src",
            "{krate}: no imports read (is the reader broken?)"
        );
        if let Some(round) = cycle(&files) {
            panic!(
                "{krate}: files import each other round a loop: {}",
                show(&round)
            );
        }
        if let Some(round) = cycle(&tops) {
            panic!(
                "{krate}: top-level modules import each other round a loop: {}",
                show(&round)
            );
        }
    }
}

#[test]
fn the_reader_sees_use_trees_super_paths_and_cycles() {
    let code = code(
        "use crate::{a::{b, c::D}, e};\nuse super::f::G; // crate::not::this\nlet s = \"crate::nor::this\"; x = crate::h::i();",
    );
    assert_eq!(
        paths(&code),
        [
            vec!["a", "b"],
            vec!["a", "c", "D"],
            vec!["e"],
            vec!["super", "f", "G"],
            vec!["h", "i"],
        ]
        .map(|p| p.into_iter().map(String::from).collect::<Vec<_>>())
    );
    let m = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
    let mut known = BTreeMap::new();
    for k in ["viewer", "viewer::machine", "media", "channels::link"] {
        known.insert(m(k), PathBuf::new());
    }
    assert_eq!(
        resolve(&m("viewer::machine"), &m("super::ViewEvent"), &known),
        Some(m("viewer"))
    );
    assert_eq!(
        resolve(&m("viewer"), &m("media::TrackSink"), &known),
        Some(m("media"))
    );
    assert_eq!(
        resolve(&m("viewer"), &m("channels::link::Link"), &known),
        Some(m("channels::link"))
    );
    let mut e = Edges::new();
    e.entry(m("a")).or_default().insert(m("b"));
    e.entry(m("b")).or_default().insert(m("c"));
    assert_eq!(cycle(&e), None);
    e.entry(m("c")).or_default().insert(m("a"));
    assert_eq!(cycle(&e).map(|c| c.len()), Some(4));
}
