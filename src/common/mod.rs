//! The bottom layer: what both daemons and their command lines use and that
//! knows nothing of sales. The clock, serving HTTP, systemd's notifications,
//! shutdown, logging, owner-only files and the installed assets.

pub mod assets;
pub mod clock;
pub mod duration;
pub mod hash;
pub mod http;
pub mod migrate;
pub mod owner_only;
pub mod secret;
pub mod serve;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod time;
