//! The real `laned` (and `salemap`) binaries as processes: started and
//! stopped as a service manager would, killed with `kill -9`, signalled,
//! configured through files, flags and the environment, upgraded, and
//! attacked at the connection level.

mod backup;
mod ceiling_real;
mod cli;
mod config_layers;
mod connections;
mod crash_recovery;
mod demo;
mod drain_real;
pub(crate) mod examples;
mod export_load;
mod instance_and_schema;
pub(crate) mod journal;
#[cfg(unix)]
mod systemd_notify;
mod upgrade;
