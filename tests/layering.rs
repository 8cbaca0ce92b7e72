#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The crate's layering, checked by reading `src/`: every `use` and every `crate::` /
//! `super::` / `self::` path in non-test code is resolved to the file that defines (or
//! re-exports from a child) what it names.
//!
//! Guarded:
//! - the layers: `storage` uses neither `broker` nor `server`; `broker` does not use `server`;
//!   `protocol` uses neither `server` nor `broker`; `security` uses none of `storage`,
//!   `broker`, `server`;
//! - no file-level import cycles. An edge from a file to a `mod.rs` (or `lib.rs`) of a module
//!   that contains it is not counted: every child names its parent (`use super::Broker`), so
//!   a cycle is only a real one when it runs through files none of which contains another.
//!
//! Test code (`#[cfg(test)]` items and `tests.rs` files) may use anything and is skipped.
//! Paths are resolved by name through `use` declarations and child modules; a method called on
//! a type defined elsewhere is no import and is not seen.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Uses that the layers forbid: (from top-level module, to top-level module).
const FORBIDDEN: &[(&str, &str)] = &[
    ("storage", "broker"),
    ("storage", "server"),
    ("broker", "server"),
    ("protocol", "server"),
    ("protocol", "broker"),
    ("security", "broker"),
    ("security", "server"),
    ("security", "storage"),
];

/// File dependencies that close a cycle and are not fixed yet, each with why and the fix;
/// they are left out of the cycle check. An entry whose dependency is gone fails the check,
/// so the list only shrinks.
const KNOWN_CYCLE_EDGES: &[(&str, &str, &str)] = &[];

struct File {
    /// Relative to the crate root, e.g. `src/broker/mod.rs`.
    rel: String,
    /// Module path, e.g. `["broker"]` for `src/broker/mod.rs`.
    module: Vec<String>,
    /// Non-test code with comments removed, one entry per source line.
    lines: Vec<String>,
}

/// A path named by a file, made absolute, with the line it is on.
struct Ref {
    line: usize,
    path: Vec<String>,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "bin") {
                continue;
            }
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Strips `//` comments, and blanks `#[cfg(test)]` items (through their closing brace, or
/// their `;` when they have no body). Keeps one entry per line so line numbers stay right.
fn non_test_lines(text: &str) -> Vec<String> {
    let lines: Vec<String> = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => l[..i].to_string(),
            None => l.to_string(),
        })
        .collect();
    let mut out = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != "#[cfg(test)]" {
            out.push(lines[i].clone());
            i += 1;
            continue;
        }
        // Skip the item: up to its first `;` at depth 0 or the brace closing its body.
        let mut depth = 0i64;
        let mut opened = false;
        loop {
            out.push(String::new());
            i += 1;
            if i >= lines.len() {
                break;
            }
            let mut done = false;
            for c in lines[i].chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    ';' if !opened && depth == 0 => done = true,
                    _ => {}
                }
            }
            if done || (opened && depth <= 0) {
                out.push(String::new());
                i += 1;
                break;
            }
        }
    }
    out
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands one `use` tree (`a::{b, c::{d as e}, f::*}`) into (alias, path) pairs; the alias
/// is the last segment, the `as` name, or `*` for a glob.
fn expand_use(tree: &str, prefix: &[String], out: &mut Vec<(String, Vec<String>)>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let mut base = prefix.to_vec();
        base.extend(head);
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_use(&inner[start..i], &base, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand_use(&inner[start..], &base, out);
        return;
    }
    let (path_part, alias) = match tree.split_once(" as ") {
        Some((p, a)) => (p.trim(), Some(a.trim().to_string())),
        None => (tree, None),
    };
    let mut path = prefix.to_vec();
    path.extend(path_part.split("::").map(|s| s.trim().to_string()));
    if path.last().is_some_and(|s| s == "self") {
        path.pop();
    }
    let name = alias.unwrap_or_else(|| path.last().cloned().unwrap_or_default());
    out.push((name, path));
}

struct Crate {
    files: Vec<File>,
    /// Module path → index into `files`.
    modules: BTreeMap<Vec<String>, usize>,
}

impl Crate {
    fn load(root: &Path) -> Crate {
        let mut paths = Vec::new();
        rust_files(&root.join("src"), &mut paths);
        let mut files = Vec::new();
        let mut modules = BTreeMap::new();
        for p in paths {
            let rel = p.strip_prefix(root).unwrap();
            let comps: Vec<String> = rel
                .iter()
                .skip(1)
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            let (last, dirs) = comps.split_last().unwrap();
            let stem = last.trim_end_matches(".rs");
            if stem == "tests" || stem == "main" {
                continue;
            }
            let mut module = dirs.to_vec();
            if stem != "mod" && stem != "lib" {
                module.push(stem.to_string());
            }
            let text = std::fs::read_to_string(&p).unwrap();
            modules.insert(module.clone(), files.len());
            files.push(File {
                rel: rel.to_string_lossy().into_owned(),
                module,
                lines: non_test_lines(&text),
            });
        }
        Crate { files, modules }
    }

    fn is_module(&self, path: &[String]) -> bool {
        self.modules.contains_key(path)
    }

    /// Makes a path as written in `file` absolute (`crate::`, `super::`, `self::`, or a
    /// child module's name); `None` for an external crate or a local name.
    fn absolute(&self, file: &File, segs: &[String]) -> Option<Vec<String>> {
        let first = segs.first()?;
        let mut base = match first.as_str() {
            "crate" => Vec::new(),
            "self" => file.module.clone(),
            "super" => file.module.clone(),
            _ => {
                let mut child = file.module.clone();
                child.push(first.clone());
                if !self.is_module(&child) {
                    return None;
                }
                child.extend(segs[1..].iter().cloned());
                return Some(child);
            }
        };
        let mut rest = segs;
        if first == "crate" || first == "self" {
            rest = &segs[1..];
        }
        while rest.first().is_some_and(|s| s == "super") {
            base.pop()?;
            rest = &rest[1..];
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// `use` declarations of a file: (alias, absolute path, line).
    fn uses(&self, file: &File) -> Vec<(String, Vec<String>, usize)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < file.lines.len() {
            let t = file.lines[i].trim_start();
            let body = t
                .strip_prefix("use ")
                .or_else(|| t.split_once(") use ").map(|(_, b)| b))
                .or_else(|| t.strip_prefix("pub use "));
            let Some(body) = body else {
                i += 1;
                continue;
            };
            let start = i;
            let mut stmt = body.to_string();
            while !stmt.contains(';') && i + 1 < file.lines.len() {
                i += 1;
                stmt.push_str(&file.lines[i]);
            }
            let stmt = stmt
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            let mut pairs = Vec::new();
            expand_use(&stmt, &[], &mut pairs);
            for (alias, path) in pairs {
                if let Some(abs) = self.absolute(file, &path) {
                    out.push((alias, abs, start + 1));
                }
            }
            i += 1;
        }
        out
    }

    /// Every path a file names outside its `use` declarations, made absolute.
    fn inline_refs(&self, file: &File) -> Vec<Ref> {
        let mut out = Vec::new();
        for (n, line) in file.lines.iter().enumerate() {
            let t = line.trim_start();
            if t.starts_with("use ") || t.starts_with("pub use ") || t.contains(") use ") {
                continue;
            }
            let chars: Vec<char> = line.chars().collect();
            let mut i = 0;
            while i < chars.len() {
                let at_start = i == 0 || !(is_ident_char(chars[i - 1]) || chars[i - 1] == ':');
                if !at_start || !is_ident_char(chars[i]) {
                    i += 1;
                    continue;
                }
                let mut segs = Vec::new();
                let mut j = i;
                loop {
                    let s = j;
                    while j < chars.len() && is_ident_char(chars[j]) {
                        j += 1;
                    }
                    segs.push(chars[s..j].iter().collect::<String>());
                    if j + 2 < chars.len()
                        && chars[j] == ':'
                        && chars[j + 1] == ':'
                        && is_ident_char(chars[j + 2])
                    {
                        j += 2;
                    } else {
                        break;
                    }
                }
                if segs.len() > 1
                    && let Some(abs) = self.absolute(file, &segs)
                {
                    out.push(Ref {
                        line: n + 1,
                        path: abs,
                    });
                }
                i = j.max(i + 1);
            }
        }
        out
    }

    fn refs(&self, file: &File) -> Vec<Ref> {
        let mut refs: Vec<Ref> = self
            .uses(file)
            .into_iter()
            .map(|(_, path, line)| Ref { line, path })
            .collect();
        refs.extend(self.inline_refs(file));
        refs
    }

    /// The file defining what an absolute path names: its longest module prefix, followed
    /// through that module's `use` declarations (re-exports) when they name the next segment.
    fn resolve(&self, path: &[String], aliases: &[BTreeMap<String, Vec<String>>]) -> usize {
        let mut path = path.to_vec();
        for _ in 0..8 {
            let mut k = path.len();
            while k > 0 && !self.is_module(&path[..k]) {
                k -= 1;
            }
            let m = self.modules[&path[..k]];
            let Some(next) = path.get(k) else {
                return m;
            };
            match aliases[m].get(next) {
                Some(target) if target.as_slice() != path.as_slice() => {
                    let mut p = target.clone();
                    p.extend(path[k + 1..].iter().cloned());
                    path = p;
                }
                _ => return m,
            }
        }
        self.modules[&Vec::new()]
    }
}

fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn lower_layers_never_use_higher_ones() {
    let krate = Crate::load(&crate_root());
    let mut violations = Vec::new();
    for f in &krate.files {
        let Some(from) = f.module.first() else {
            continue;
        };
        for r in krate.refs(f) {
            let Some(to) = r.path.first() else { continue };
            if FORBIDDEN.contains(&(from.as_str(), to.as_str())) {
                violations.push(format!("{}:{}: {}", f.rel, r.line, r.path.join("::")));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering violations (storage < protocol < broker < server):\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_files_import_each_other_through_a_cycle() {
    let krate = Crate::load(&crate_root());
    let aliases: Vec<BTreeMap<String, Vec<String>>> = krate
        .files
        .iter()
        .map(|f| {
            krate
                .uses(f)
                .into_iter()
                .filter(|(alias, _, _)| alias != "*")
                .map(|(alias, path, _)| (alias, path))
                .collect()
        })
        .collect();
    // edges[a] = b → first line of `a` that names something of `b`.
    let mut edges: Vec<BTreeMap<usize, usize>> = vec![BTreeMap::new(); krate.files.len()];
    for (a, f) in krate.files.iter().enumerate() {
        for r in krate.refs(f) {
            let b = krate.resolve(&r.path, &aliases);
            let target = &krate.files[b];
            let contains_a = target.rel.ends_with("mod.rs") || target.rel.ends_with("lib.rs");
            if b == a || (contains_a && f.module.starts_with(&target.module)) {
                continue;
            }
            edges[a].entry(b).or_insert(r.line);
        }
    }
    let mut stale = Vec::new();
    for (from, to, _) in KNOWN_CYCLE_EDGES {
        let index = |rel: &str| krate.files.iter().position(|f| f.rel == rel);
        match (index(from), index(to)) {
            (Some(a), Some(b)) if edges[a].remove(&b).is_some() => {}
            _ => stale.push(format!("{from} -> {to}")),
        }
    }
    assert!(
        stale.is_empty(),
        "KNOWN_CYCLE_EDGES lists dependencies that no longer exist (remove them):\n{}",
        stale.join("\n")
    );
    let cycles = strongly_connected(&edges);
    let report: Vec<String> = cycles
        .iter()
        .map(|scc| {
            shortest_cycle(&edges, scc)
                .windows(2)
                .map(|w| {
                    format!(
                        "  {}:{} uses {}",
                        krate.files[w[0]].rel, edges[w[0]][&w[1]], krate.files[w[1]].rel
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    assert!(
        cycles.is_empty(),
        "import cycles between files (one per group of files that reach each other):\n{}",
        report.join("\n--\n")
    );
}

/// A shortest cycle through the first file of a strongly connected component, as the files
/// along it, first file repeated at the end.
fn shortest_cycle(edges: &[BTreeMap<usize, usize>], scc: &[usize]) -> Vec<usize> {
    let members: BTreeSet<usize> = scc.iter().copied().collect();
    let start = scc[0];
    let mut came_from: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &w in edges[v].keys().filter(|w| members.contains(w)) {
            if w == start {
                let mut path = vec![start, v];
                let mut cur = v;
                while cur != start {
                    cur = came_from[&cur];
                    path.push(cur);
                }
                path.reverse();
                return path;
            }
            if let std::collections::btree_map::Entry::Vacant(e) = came_from.entry(w) {
                e.insert(v);
                queue.push_back(w);
            }
        }
    }
    vec![start]
}

/// Tarjan's algorithm; returns the components with more than one file.
fn strongly_connected(edges: &[BTreeMap<usize, usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        edges: &'a [BTreeMap<usize, usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        let targets: Vec<usize> = s.edges[v].keys().copied().collect();
        for w in targets {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                scc.push(w);
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort_unstable();
                s.out.push(scc);
            }
        }
    }
    let n = edges.len();
    let mut s = State {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}

/// The checker itself: a forbidden use and a two-file cycle in a made-up tree are found.
#[test]
fn the_checker_finds_a_planted_violation_and_cycle() {
    let dir = std::env::temp_dir().join(format!("thorstream-layering-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src/storage")).unwrap();
    std::fs::create_dir_all(dir.join("src/broker")).unwrap();
    std::fs::write(
        dir.join("src/lib.rs"),
        "pub mod broker;\npub mod storage;\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("src/storage/mod.rs"),
        "mod a;\nmod b;\nuse crate::broker::Broker;\n",
    )
    .unwrap();
    std::fs::write(dir.join("src/storage/a.rs"), "use super::b::{B, other};\n").unwrap();
    std::fs::write(
        dir.join("src/storage/b.rs"),
        "pub struct B;\nfn f() { super::a::g(); }\n#[cfg(test)]\nmod t { use crate::broker::X; }\n",
    )
    .unwrap();
    std::fs::write(dir.join("src/broker/mod.rs"), "pub struct Broker;\n").unwrap();
    let krate = Crate::load(&dir);
    let storage = &krate.files[krate.modules[&vec!["storage".to_string()]]];
    let uses = krate.uses(storage);
    assert_eq!(uses.len(), 1);
    assert_eq!(uses[0].1, vec!["broker".to_string(), "Broker".to_string()]);
    let b = &krate.files[krate.modules[&vec!["storage".to_string(), "b".to_string()]]];
    let refs = krate.refs(b);
    assert_eq!(refs.len(), 1, "the cfg(test) module is skipped");
    assert_eq!(refs[0].path, vec!["storage", "a", "g"]);
    let aliases: Vec<BTreeMap<String, Vec<String>>> = vec![BTreeMap::new(); krate.files.len()];
    let a_idx = krate.modules[&vec!["storage".to_string(), "a".to_string()]];
    let b_idx = krate.modules[&vec!["storage".to_string(), "b".to_string()]];
    let mut edges = vec![BTreeMap::new(); krate.files.len()];
    for (i, f) in krate.files.iter().enumerate() {
        for r in krate.refs(f) {
            let t = krate.resolve(&r.path, &aliases);
            if t != i {
                edges[i].insert(t, r.line);
            }
        }
    }
    assert_eq!(strongly_connected(&edges), vec![vec![a_idx, b_idx]]);
    let _ = std::fs::remove_dir_all(&dir);
}
