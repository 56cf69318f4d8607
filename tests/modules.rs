//! The crate's top-level modules import each other without circles (docs/architecture.md):
//! read from the sources, every `crate::module` a file names is an edge from its own
//! top-level module; the graph must have no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

mod common;

/// The modules a file's text names: `crate::name` and `crate::{name, …}`.
fn named(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for part in group.split(',') {
                let n = ident(part.trim());
                if !n.is_empty() {
                    out.insert(n);
                }
            }
        } else {
            let n = ident(rest);
            if !n.is_empty() {
                out.insert(n);
            }
        }
    }
    out
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, files);
        } else if p.extension().is_some_and(|x| x == "rs") {
            files.push(p);
        }
    }
}

#[test]
fn top_level_modules_import_each_other_without_circles() {
    let src = common::path("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel.iter().next().unwrap().to_string_lossy().to_string();
        let top = first.trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let entry = deps.entry(top.clone()).or_default();
        for m in named(&text) {
            let is_module = src.join(&m).is_dir() || src.join(format!("{m}.rs")).is_file();
            if m != top && is_module {
                entry.insert(m);
            }
        }
    }
    assert!(deps.len() > 10, "read the modules: {deps:?}");
    assert!(deps["service"].contains("api") && deps["api"].contains("cases"));
    // depth-first search for a cycle
    fn visit(
        m: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(at) = path.iter().position(|p| p == m) {
            panic!(
                "modules import each other: {} → {m}",
                path[at..].join(" → ")
            );
        }
        if done.contains(m) {
            return;
        }
        path.push(m.to_string());
        for d in deps.get(m).into_iter().flatten() {
            visit(d, deps, path, done);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in deps.keys() {
        visit(m, &deps, &mut Vec::new(), &mut done);
    }
}
