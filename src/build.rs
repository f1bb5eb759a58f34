//! Build script: records the git commit the binaries are built from, for
//! `--version`, `/v1/status`, the status page and `laned doctor`. From a
//! source tree without git (a release tarball), `LANED_GIT_COMMIT` may
//! name it; otherwise it is "unknown".

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=LANED_GIT_COMMIT");
    let commit = std::env::var("LANED_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=LANED_GIT_COMMIT={}", commit.trim());
}

fn git_commit() -> Option<String> {
    let root = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let git = Path::new(&root).join(".git");
    // Rebuild when the checked-out commit changes.
    if git.is_dir() {
        println!("cargo:rerun-if-changed={}", git.join("HEAD").display());
        if let Ok(head) = std::fs::read_to_string(git.join("HEAD"))
            && let Some(r) = head.trim().strip_prefix("ref: ")
        {
            println!("cargo:rerun-if-changed={}", git.join(r).display());
        }
        println!(
            "cargo:rerun-if-changed={}",
            git.join("packed-refs").display()
        );
    }
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(&root)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|c| !c.is_empty())
}
