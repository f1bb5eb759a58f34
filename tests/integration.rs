//! The integration tests, in one test binary (`cargo test --test
//! integration`): linking the whole crate once per test file was most of
//! the test build, and one process runs the groups beside each other
//! instead of one after another. Each group is a directory:
//!
//! - `lane/`: lanes in this process (the `Daemon` seam), the support
//!   commands run against them, and the checks that keep the documents and
//!   the code's layers true to the code;
//! - `binaries/`: the real `laned` and `salemap` binaries as processes;
//! - `salemap/`: salemap in this process and as a binary, on SQLite and
//!   PostgreSQL, the conformance kit, end to end.
//!
//! A test's name starts with its group and file
//! (`lane::drain::a_lost_answer_…`), so `cargo test --test integration
//! lane::` runs one group. The reliability suite (`tests/attack/`) is a
//! binary of its own.

mod common;
// The backlog the benchmarks store straight into a lane (export_load).
#[path = "benches/support.rs"]
mod support;

mod binaries;
mod lane;
mod salemap;
