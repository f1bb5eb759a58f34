//! salemap, the reference back-end: in this process and as the real
//! binary, on SQLite and on a throwaway PostgreSQL (`common::pg`, one
//! cluster for the whole binary), with the conformance kit, and with a lane
//! delivering to it end to end.
//!
//! One test binary (`cargo test --test salemap`): each module was a test
//! binary of its own, and linking the whole crate once per file was most of
//! the test build.

#[path = "../common/mod.rs"]
mod common;

mod conformance;
mod end_to_end;
mod salemap;
mod salemap_kill;
mod salemap_pg;
