//! The README stays true to the binary: every flag of `laned serve` and
//! every key of the example config is documented there.

use crate::common;

use std::collections::BTreeSet;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README")
}

#[test]
fn every_serve_flag_is_in_the_readme() {
    let out = std::process::Command::new(common::laned_bin())
        .args(["serve", "--help"])
        .output()
        .expect("laned serve --help");
    let help = String::from_utf8_lossy(&out.stdout);
    let flags: BTreeSet<&str> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.trim_end_matches(','))
        .filter(|w| !matches!(*w, "--help" | "--version"))
        .collect();
    assert!(flags.len() > 10, "no flags found in: {help}");
    let readme = readme();
    let missing: Vec<_> = flags
        .iter()
        .filter(|f| !readme.contains(&format!("`{f}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "flags missing from the README: {missing:?}"
    );
}

#[test]
fn every_config_key_is_in_the_readme() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/laned.toml"))
            .expect("example config");
    let table: toml::Table = toml::from_str(&example).expect("example config parses");
    let readme = readme();
    let missing: Vec<_> = table
        .keys()
        .filter(|k| !readme.contains(&format!("| `{k}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "config keys missing from the README's table: {missing:?}"
    );
}

#[test]
fn every_subcommand_is_in_the_readme() {
    let out = std::process::Command::new(common::laned_bin())
        .arg("--help")
        .output()
        .expect("laned --help");
    let help = String::from_utf8_lossy(&out.stdout);
    // The "Commands:" block: one subcommand per line, first word.
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .expect("a Commands section")
        .split("Options:")
        .next()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 10, "{commands:?}");
    let readme = readme();
    let missing: Vec<_> = commands
        .iter()
        .filter(|c| !readme.contains(&format!("laned {c}")))
        .collect();
    assert!(
        missing.is_empty(),
        "subcommands missing from the README: {missing:?}"
    );
}

/// The repository's documents, for the path checks below.
fn documents() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names = vec![
        "ARCHITECTURE.md".to_owned(),
        "README.md".to_owned(),
        "RELIABILITY.md".to_owned(),
        "BENCHMARKS.md".to_owned(),
        "packaging/README.md".to_owned(),
    ];
    for e in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let name = e
            .expect("docs/ entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".md") {
            names.push(format!("docs/{name}"));
        }
    }
    names
        .into_iter()
        .filter_map(|n| std::fs::read_to_string(root.join(&n)).ok().map(|t| (n, t)))
        .collect()
}

/// Every `src/…` and `tests/…` path a document names exists: the codemap
/// and the invariant table follow the tree when files move.
#[test]
fn every_source_path_the_documents_name_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut missing = Vec::new();
    for (name, text) in documents() {
        for (i, _) in text
            .match_indices("src/")
            .chain(text.match_indices("tests/"))
        {
            // Only paths that start a word (not `target/tmp/…` or a URL).
            if i > 0 && !matches!(text.as_bytes()[i - 1], b'`' | b' ' | b'(' | b'\n') {
                continue;
            }
            let path: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '.' | '-'))
                .collect();
            let path = path.trim_end_matches('.');
            if (path.ends_with(".rs") || path.ends_with('/')) && !root.join(path).exists() {
                missing.push(format!("{name}: {path}"));
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "paths named but not in the tree:\n{}",
        missing.join("\n")
    );
}

/// Every module directory and file of the library has its place in
/// ARCHITECTURE.md's codemap.
#[test]
fn the_codemap_names_every_module() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let arch = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut missing = Vec::new();
    let mut stack = vec![root.join("src")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("src/") {
            let path = e.expect("entry").path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                if name != "templates" {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") && name != "mod.rs" && name != "main.rs" {
                // Named by file name (`writer.rs`) or by path.
                if !arch.contains(&format!("`{name}`")) && !arch.contains(&format!("{name}`")) {
                    missing.push(
                        path.strip_prefix(root)
                            .unwrap_or(&path)
                            .display()
                            .to_string(),
                    );
                }
            }
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "not in ARCHITECTURE.md's codemap:\n{}",
        missing.join("\n")
    );
}

/// The project's text stands alone: no document, source file, test or
/// packaged file cites the design notes kept outside the repository.
/// (Migrations that landed before this rule keep their comments: a landed
/// migration is never edited. New ones are checked.)
#[test]
fn nothing_cites_the_design_notes_outside_the_repository() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![];
    let mut dirs: Vec<std::path::PathBuf> = ["src", "tests", "docs", "packaging", "schema", ".ci"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).expect("a directory of the repository") {
            let path = e.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.extend(documents().into_iter().map(|(n, _)| root.join(n)));
    const LANDED: &[&str] = &[
        "schema/lane/0001_initial.sql",
        "schema/lane/0003_lane_clock.sql",
        "schema/salemap/sqlite/0001_initial.sql",
        "schema/salemap/postgres/0001_initial.sql",
    ];
    // Spelled in pieces so that this file does not cite them either.
    let (name, shared) = (["DESI", "GN"].concat(), ["../sha", "red/"].concat());
    let citing: Vec<String> = files
        .iter()
        .filter(|p| {
            std::fs::read_to_string(p)
                .is_ok_and(|t| t.contains(&format!("{name} §")) || t.contains(&shared))
        })
        .filter(|p| !LANDED.iter().any(|l| p.ends_with(l)))
        .map(|p| p.strip_prefix(root).unwrap_or(p).display().to_string())
        .collect();
    assert!(citing.is_empty(), "these cite the design notes: {citing:?}");
    assert!(files.len() > 100, "too few files read: {}", files.len());
}
