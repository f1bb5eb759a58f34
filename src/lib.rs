//! laned: an offline-first point-of-sale lane daemon.
//!
//! A till hands each finished sale to laned over localhost; laned stores it
//! durably with a gap-free receipt number and delivers it to the back-end
//! exactly once, in order. See `ARCHITECTURE.md` for the map of this crate.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod ceiling;
pub mod clock;
pub mod config;
pub mod contract;
pub mod daemon;
pub mod drain;
pub mod metrics;
pub mod money;
pub mod salemap;
pub mod shutdown;
pub mod store;
pub mod telemetry;
