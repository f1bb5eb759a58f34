//! Command-line interface: one module per subcommand. This is the binary's
//! edge, the only place that uses `anyhow` and chooses exit codes.

mod backup;
mod demo;
mod doctor;
mod export;
mod operator;
mod report;
mod resolve;
mod retry;
mod sales;
mod serve;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes, documented in the README.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A runtime failure (I/O, database, network).
    pub const FAILURE: u8 = 1;
    /// Bad command line or configuration.
    pub const CONFIG: u8 = 2;
    /// The data directory is in use by another laned.
    pub const LOCKED: u8 = 3;
    /// The database was refused (newer schema, foreign file, other lane).
    pub const DATABASE_REFUSED: u8 = 4;
    /// `laned report`: the back-end's figures differ from the lane's.
    pub const DIFFERENCE: u8 = 5;
    /// `laned status`, `laned doctor`: the lane needs someone to act (stuck
    /// sales, delivery paused, the sync ceiling under an hour away); it
    /// still takes sales.
    pub const ATTENTION: u8 = 6;
    /// `laned status`, `laned doctor`: the lane refuses new sales
    /// (suspended, or restored from an old copy).
    pub const STOPPED: u8 = 7;
}

/// laned: offline-first point-of-sale lane daemon.
#[derive(Debug, Parser)]
#[command(name = "laned", version = laned::VERSION, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the lane daemon: the till API on localhost, the store, the drain.
    Serve(Box<serve::Args>),
    /// Try laned: a lane with an embedded salemap back-end, nothing else needed.
    Demo(demo::Args),
    /// Show the lane's state from its database, whether the daemon runs or not.
    Status(Box<status::Args>),
    /// Find and explain sales from the database, whether the daemon runs or not.
    Sales(Box<sales::Args>),
    /// Export sales with their envelopes and attempts as NDJSON or CSV.
    Export(Box<export::Args>),
    /// Check the lane's configuration, disk, database, daemon, back-end and clock.
    Doctor(Box<doctor::Args>),
    /// Write a consistent, checked copy of the lane database.
    Backup(Box<backup::Args>),
    /// One business day on the lane, side by side with the back-end's figures.
    Report(Box<report::Args>),
    /// Send stuck sales back to the drain (audit-logged).
    Retry(Box<retry::Args>),
    /// Record a stuck sale as settled by hand with the back-end's document number (audit-logged).
    Resolve(Box<resolve::Args>),
    /// Write the man pages and shell completions into DIR (for packaging).
    #[command(hide = true)]
    GenerateAssets {
        /// Output directory.
        dir: std::path::PathBuf,
    },
}

/// Parses the command line and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Demo(args) => demo::run(args),
        Command::Status(args) => status::run(*args),
        Command::Sales(args) => sales::run(*args),
        Command::Export(args) => export::run(*args),
        Command::Doctor(args) => doctor::run(*args),
        Command::Backup(args) => backup::run(*args),
        Command::Report(args) => report::run(*args),
        Command::Retry(args) => retry::run(*args),
        Command::Resolve(args) => resolve::run(*args),
        Command::GenerateAssets { dir } => {
            use clap::CommandFactory;
            laned::common::assets::write(Cli::command(), &dir).map_err(Into::into)
        }
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        // A lane in trouble is a finding, already shown: no "error".
        Err(e) if e.is::<operator::Troubled>() => {
            eprintln!("laned: the lane is {e}");
            ExitCode::from(exit_code(&e))
        }
        Err(e) => {
            eprintln!("laned: error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn exit_code(e: &anyhow::Error) -> u8 {
    use laned::lane::daemon::DaemonError;
    use laned::lane::store::StoreError;
    for cause in e.chain() {
        if cause.is::<report::Difference>() {
            return exit::DIFFERENCE;
        }
        if let Some(t) = cause.downcast_ref::<operator::Troubled>() {
            return match t.verdict {
                laned::lane::status::Verdict::Stopped => exit::STOPPED,
                _ => exit::ATTENTION,
            };
        }
        if cause.is::<laned::lane::config::ConfigError>()
            || cause.is::<sales::BadArgument>()
            || matches!(
                cause.downcast_ref::<laned::lane::drain::ClientError>(),
                Some(laned::lane::drain::ClientError::BadUrl { .. })
            )
        {
            return exit::CONFIG;
        }
        let store = cause.downcast_ref::<StoreError>().or_else(|| {
            match cause.downcast_ref::<DaemonError>() {
                Some(DaemonError::Store(s)) => Some(s),
                _ => None,
            }
        });
        match store {
            Some(StoreError::Locked { .. }) => return exit::LOCKED,
            Some(
                StoreError::NewerSchema { .. }
                | StoreError::ForeignDatabase { .. }
                | StoreError::LaneMismatch { .. },
            ) => return exit::DATABASE_REFUSED,
            _ => {}
        }
    }
    exit::FAILURE
}
