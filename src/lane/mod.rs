//! The lane: the daemon on the till. Configuration, the sales store, the
//! sync ceiling, the drain to the back-end, the localhost API and the
//! wiring that runs them together.

pub mod api;
pub mod ceiling;
pub mod closer;
pub mod config;
pub mod daemon;
pub mod drain;
pub mod guard;
pub mod messages;
pub mod metrics;
pub mod status;
pub mod store;
