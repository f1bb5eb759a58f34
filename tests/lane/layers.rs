//! The code's layers, enforced: every path in `src/` is read with Rust's
//! grammar and resolved to the module it names, and a module may only name
//! modules of its own layer or below (ARCHITECTURE.md, "Layers").
//!
//! `common` → `contract` → `lane` | `salemap` → the binaries (`src/main.rs`,
//! `src/cli/`). `lane` and `salemap` never name each other. Inside `lane`
//! the modules are ordered too (`LANE_ORDER`): each may name only itself
//! and the ones before it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The library's layers, lowest first. Modules of one layer may name each
/// other and anything lower; `lane` and `salemap` share a level but never
/// name each other.
const LAYERS: &[(&str, u8)] = &[("common", 0), ("contract", 1), ("lane", 2), ("salemap", 2)];

/// `lane`'s modules, lowest first.
const LANE_ORDER: &[&str] = &[
    "messages", "ceiling", "config", "store", "metrics", "guard", "drain", "closer", "status",
    "api", "daemon",
];

/// One source file: its path and the module path it defines (`lane::store`
/// for `src/lane/store/mod.rs`); `None` for the binaries' files.
struct File {
    path: PathBuf,
    module: Option<Vec<String>>,
    text: String,
}

fn files(root: &Path) -> Vec<File> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root.join("src")).unwrap().to_path_buf();
                let text = std::fs::read_to_string(&path).unwrap();
                out.push(File {
                    module: module_of(&rel),
                    path: rel,
                    text,
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The module path a file under `src/` defines in the library, or `None`
/// for the binaries (`main.rs`, `cli/`) and the build script.
fn module_of(rel: &Path) -> Option<Vec<String>> {
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    match parts[0].as_str() {
        "main.rs" | "build.rs" | "cli" => return None,
        _ => {}
    }
    let mut module: Vec<String> = parts;
    let last = module.pop().unwrap();
    match last.as_str() {
        "lib.rs" | "mod.rs" => {}
        other => module.push(other.trim_end_matches(".rs").to_string()),
    }
    Some(module)
}

/// Collects every module path a file names, resolved from the crate root.
struct Paths<'a> {
    module: Vec<String>,
    children: &'a BTreeSet<Vec<String>>,
    /// (the module that names, the path it names).
    found: Vec<(Vec<String>, Vec<String>)>,
}

impl Paths<'_> {
    fn resolve(&mut self, segments: Vec<String>) {
        let mut iter = segments.into_iter().peekable();
        let mut at = match iter.peek().map(String::as_str) {
            Some("crate") => {
                iter.next();
                Vec::new()
            }
            Some("super") | Some("self") => self.module.clone(),
            Some(first) => {
                // A path relative to this module (`mod x;` then `x::y`).
                let mut child = self.module.clone();
                child.push(first.to_string());
                if !self.children.contains(&child) {
                    return; // another crate, or an item in scope
                }
                self.module.clone()
            }
            None => return,
        };
        while let Some(s) = iter.peek() {
            match s.as_str() {
                "super" => {
                    at.pop();
                }
                "self" => {}
                _ => break,
            }
            iter.next();
        }
        at.extend(iter);
        self.found.push((self.module.clone(), at));
    }

    fn use_tree(&mut self, prefix: Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                let mut prefix = prefix;
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
            }
            syn::UseTree::Name(n) => {
                let mut path = prefix;
                path.push(n.ident.to_string());
                self.resolve(path);
            }
            syn::UseTree::Rename(r) => {
                let mut path = prefix;
                path.push(r.ident.to_string());
                self.resolve(path);
            }
            syn::UseTree::Glob(_) => self.resolve(prefix),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix.clone(), t);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Paths<'_> {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        self.resolve(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, p);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        // An inline module (`mod tests { … }`) is one level down.
        self.module.push(m.ident.to_string());
        syn::visit::visit_item_mod(self, m);
        self.module.pop();
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        // Macro bodies are tokens, not syntax: read the `crate::…` paths in them.
        let text = m.tokens.to_string();
        let words: Vec<&str> = text.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            if *w == "crate" {
                let mut path = vec!["crate".to_string()];
                let mut j = i + 1;
                while j + 1 < words.len() && words[j] == "::" {
                    path.push(words[j + 1].to_string());
                    j += 2;
                }
                self.resolve(path);
            }
        }
        syn::visit::visit_macro(self, m);
    }
}

fn layer(module: &[String]) -> Option<u8> {
    let first = module.first()?;
    LAYERS
        .iter()
        .find(|(name, _)| name == first)
        .map(|(_, l)| *l)
}

/// Why `from` may not name `to`, or `None` when it may.
fn rule_broken(from: &[String], to: &[String]) -> Option<String> {
    let (Some(lf), Some(lt)) = (layer(from), layer(to)) else {
        return None; // the crate root (VERSION) or not a module of ours
    };
    if lt > lf {
        return Some(format!(
            "layer `{}` may not name the higher layer `{}`",
            from[0], to[0]
        ));
    }
    if lt == lf && from[0] != to[0] {
        return Some(format!(
            "`{}` and `{}` never name each other",
            from[0], to[0]
        ));
    }
    if from[0] == "lane" && to[0] == "lane" && from.len() > 1 && to.len() > 1 && from[1] != to[1] {
        let rank = |m: &str| LANE_ORDER.iter().position(|x| *x == m);
        match (rank(&from[1]), rank(&to[1])) {
            (Some(f), Some(t)) if t > f => {
                return Some(format!(
                    "`lane::{}` may not name `lane::{}`, which comes after it",
                    from[1], to[1]
                ));
            }
            (None, _) => return Some(format!("`lane::{}` is not in LANE_ORDER", from[1])),
            _ => {}
        }
    }
    None
}

/// Every import across the rules, as `file: from → to (why)`.
fn violations(files: &[File]) -> Vec<String> {
    let children: BTreeSet<Vec<String>> = files.iter().filter_map(|f| f.module.clone()).collect();
    let mut out = Vec::new();
    for f in files {
        let Some(module) = &f.module else { continue };
        let ast = syn::parse_file(&f.text)
            .unwrap_or_else(|e| panic!("{}: not Rust: {e}", f.path.display()));
        let mut paths = Paths {
            module: module.clone(),
            children: &children,
            found: Vec::new(),
        };
        paths.visit_file(&ast);
        for (from, to) in paths.found {
            if let Some(why) = rule_broken(&from, &to) {
                // Named down to its module (the item names add nothing).
                let module_len = (1..=to.len())
                    .rev()
                    .find(|n| children.contains(&to[..*n]))
                    .unwrap_or(to.len());
                out.push(format!(
                    "{}: {} → {} ({why})",
                    f.path.display(),
                    from.join("::"),
                    to[..module_len].join("::")
                ));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_module_names_only_its_own_layer_and_below() {
    let files = files(&root());
    assert!(
        files.len() > 50,
        "found only {} files under src/",
        files.len()
    );
    let v = violations(&files);
    assert!(v.is_empty(), "imports across the layers:\n{}", v.join("\n"));
}

#[test]
fn every_lane_module_is_ranked() {
    for f in files(&root()) {
        if let Some(m) = &f.module
            && m.len() > 1
            && m[0] == "lane"
        {
            assert!(
                LANE_ORDER.contains(&m[1].as_str()),
                "{}: lane::{} is not in LANE_ORDER",
                f.path.display(),
                m[1]
            );
        }
    }
}

/// The check is not vacuous: each kind of planted violation is caught.
#[test]
fn a_planted_import_across_the_layers_is_caught() {
    let planted = [
        // The contract naming the lane's store, by `use`.
        (
            "contract/mod.rs",
            "use crate::lane::store::Store;\n",
            "contract → lane::store",
        ),
        // common naming the contract in an expression path.
        (
            "common/clock.rs",
            "fn f() { let _ = crate::contract::MAX_ENVELOPE_BYTES; }\n",
            "common::clock → contract",
        ),
        // salemap naming the lane through `super`.
        (
            "salemap/api.rs",
            "use super::super::lane::config::Config;\n",
            "salemap::api → lane::config",
        ),
        // The lane naming salemap inside a macro.
        (
            "lane/daemon.rs",
            "fn g() { println!(\"{}\", crate::salemap::X); }\n",
            "lane::daemon → salemap",
        ),
        // The store naming the API (a later lane module), in a test module.
        (
            "lane/store/mod.rs",
            "mod tests { use super::super::api::ApiError; }\n",
            "lane::store::tests → lane::api",
        ),
        // A relative path through a declared child module.
        (
            "lane/ceiling/mod.rs",
            "fn h() { let _ = super::drain::Drain::new; }\n",
            "lane::ceiling → lane::drain",
        ),
    ];
    for (file, code, expect) in planted {
        let mut tree = files(&root());
        let f = tree.iter_mut().find(|f| f.path == Path::new(file)).unwrap();
        f.text.push_str(code);
        let v = violations(&tree);
        assert!(
            v.iter().any(|line| line.contains(expect)),
            "a planted `{}` in {file} was not caught; found:\n{}",
            code.trim(),
            v.join("\n")
        );
    }
}
