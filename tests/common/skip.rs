//! A test (or part of one) that cannot run for lack of a tool on this
//! machine says so where it is seen, and `LANED_REQUIRE_*=1` (CI) makes the
//! lack a failure instead (each caller asserts that before skipping).

use std::io::Write;

/// Says that `what` is skipped, in which test, and why, with the variable
/// that makes it a failure instead. Written straight to the process's
/// stderr: libtest captures the `eprintln!` of a test that passes (and
/// shows it only when it fails), so a skip said that way is never seen.
pub fn skipped(what: &str, why: &str, require: &str) {
    let thread = std::thread::current();
    // libtest runs each test on a thread named after it.
    let line = match thread.name() {
        Some(test) if test != "main" && !test.starts_with("tokio-") => {
            format!("SKIPPED {what} in {test}: {why}; set {require}=1 to fail instead\n")
        }
        _ => format!("SKIPPED {what}: {why}; set {require}=1 to fail instead\n"),
    };
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
