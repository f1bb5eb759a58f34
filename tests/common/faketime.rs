//! libfaketime for the real binaries: the wall clock a child process sees
//! is moved by a fixed offset, while its monotonic and boot clocks stay
//! real (`FAKETIME_DONT_FAKE_MONOTONIC=1`). The machine's clock is never
//! touched.
//!
//! Without the library (Debian's `faketime` package) the tests that need it
//! say so and skip, unless `LANED_REQUIRE_FAKETIME=1` (CI), where they fail.

use std::path::PathBuf;
use std::process::Command;

/// The preload library, if installed.
fn find() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .collect();
    candidates.push("/usr/lib/faketime/libfaketime.so.1".into());
    candidates.push("/usr/local/lib/faketime/libfaketime.so.1".into());
    candidates.into_iter().find(|p| p.is_file())
}

/// The library, or `None` after a visible notice that `what` is skipped;
/// panics when `LANED_REQUIRE_FAKETIME=1`.
pub fn preload(what: &str) -> Option<PathBuf> {
    let found = find();
    if found.is_none() {
        assert!(
            std::env::var("LANED_REQUIRE_FAKETIME").as_deref() != Ok("1"),
            "LANED_REQUIRE_FAKETIME=1 but libfaketime was not found (apt-get install faketime)"
        );
        super::skip::skipped(
            what,
            "no libfaketime on this machine (apt-get install faketime)",
            "LANED_REQUIRE_FAKETIME",
        );
    }
    found
}

/// Makes `cmd` see a wall clock `offset_seconds` away from the real one
/// (negative: behind).
pub fn offset(cmd: &mut Command, lib: &std::path::Path, offset_seconds: i64) {
    cmd.env("LD_PRELOAD", lib)
        .env("FAKETIME", format!("{offset_seconds:+}"))
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
}
