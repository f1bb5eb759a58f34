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
