//! The real `laned` (and `salemap`) binaries as processes: started and
//! stopped as a service manager would, killed with `kill -9`, signalled,
//! configured through files, flags and the environment, upgraded, and
//! attacked at the connection level.
//!
//! One test binary (`cargo test --test binaries`): each module was a test
//! binary of its own, and linking the whole crate once per file was most of
//! the test build.

#[path = "../common/mod.rs"]
mod common;
// The backlog the benchmarks store straight into a lane (export_load).
#[path = "../benches/support.rs"]
mod support;

mod backup;
mod ceiling_real;
mod cli;
mod config_layers;
mod connections;
mod crash_recovery;
mod demo;
mod drain_real;
mod export_load;
mod instance_and_schema;
#[cfg(unix)]
mod systemd_notify;
mod upgrade;
