//! laned: an offline-first point-of-sale lane daemon.
//!
//! A till hands each finished sale to laned over localhost; laned stores it
//! durably with a gap-free receipt number and delivers it to the back-end
//! exactly once, in order. See `ARCHITECTURE.md` for the map of this crate.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// This build's version and git commit, e.g. `0.1.0 (3f2c9a4e1b7d)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("LANED_GIT_COMMIT"),
    ")"
);

/// The git commit this build comes from (`unknown` outside a git checkout).
pub const GIT_COMMIT: &str = env!("LANED_GIT_COMMIT");

pub mod common;
pub mod contract;
pub mod lane;
pub mod salemap;
