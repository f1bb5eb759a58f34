//! Command-line interface: one module per subcommand. This is the binary's
//! edge, the only place that uses `anyhow` and chooses exit codes.

mod backup;
mod close_day;
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
mod verify;

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
    /// `laned verify`: the fiscal journal does not hold.
    pub const JOURNAL_BROKEN: u8 = 8;
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
    /// Check the fiscal journal: every hash link, grand total and receipt number.
    Verify(Box<verify::Args>),
    /// Close a business day: its figures recorded in the fiscal journal, for good.
    CloseDay(Box<close_day::Args>),
    /// Write the man pages and shell completions into DIR (for packaging).
    #[command(hide = true)]
    GenerateAssets {
        /// Output directory.
        dir: std::path::PathBuf,
    },
}

/// Each support command, and an example of it for its `--help`.
const SUPPORT_COMMANDS: [(&str, &str); 11] = [
    (
        "close-day",
        "Examples:\n  laned close-day --date 2026-11-22 --counted KES=48250.00 \\\n    \
         --config /etc/laned/laned.toml\n  \
         laned close-day --through 2026-11-22 --config /etc/laned/laned.toml",
    ),
    (
        "status",
        "Examples:\n  laned status --config /etc/laned/laned.toml\n  \
         laned status --json --data-dir ./laned-demo/lane   # exit 6: attention, 7: sales refused",
    ),
    (
        "sales list",
        "Examples:\n  laned sales list --state stuck --config /etc/laned/laned.toml\n  \
         laned sales list --json --data-dir ./laned-demo/lane",
    ),
    (
        "sales show",
        "Example:\n  laned sales show 3f2c9a4e-8d4a-4c1b-9a57-2f0e6d9b1c3a --config /etc/laned/laned.toml",
    ),
    (
        "export",
        "Examples:\n  laned export --config /etc/laned/laned.toml -o stuck.ndjson\n  \
         laned export --state all --since 2026-11-01 --format csv -o november.csv",
    ),
    (
        "doctor",
        "Example:\n  laned doctor --config /etc/laned/laned.toml   # the file the service uses",
    ),
    (
        "backup",
        "Example:\n  laned backup -o /media/usb/lane-L03.db --config /etc/laned/laned.toml",
    ),
    (
        "report",
        "Examples:\n  laned report --date 2026-11-22 --config /etc/laned/laned.toml\n  \
         laned report --x --date 2026-11-22 --counted KES=48250.00   # the day so far",
    ),
    (
        "retry",
        "Examples:\n  laned retry 3f2c9a4e-8d4a-4c1b-9a57-2f0e6d9b1c3a --reason \"SKU added\" \\\n    \
         --config /etc/laned/laned.toml\n  \
         laned retry --all-stuck --reason \"price list fixed\" --config /etc/laned/laned.toml",
    ),
    (
        "verify",
        "Examples:\n  laned verify --config /etc/laned/laned.toml   # exit 8 when the journal is broken\n  \
         laned export --state all -o lane.ndjson --config /etc/laned/laned.toml\n  \
         laned verify --file lane.ndjson\n  \
         laned verify --bundle L03-2026-11.ndjson --key 4c5d0e2f8a9b1c3d   # head office's audit bundle",
    ),
    (
        "resolve",
        "Example:\n  laned resolve 3f2c9a4e-8d4a-4c1b-9a57-2f0e6d9b1c3a --doc-no BO-2026-77 \\\n    \
         --reason \"posted by hand, ticket 4411\" --config /etc/laned/laned.toml",
    ),
];

/// The daemon's settings a support command accepts but seldom needs: it
/// reads them from `--config` like the service. Hidden from its help,
/// which names them once.
const DAEMON_SETTINGS_NOTE: &str = "The daemon's settings (laned serve --help) are accepted too, as flags or \
     LANED_* variables, for a lane run without a config file: give the ones the daemon \
     runs with (for example --backend-url) so that the lane is judged as it judges itself.";

/// The command line: each support command shows its own options first,
/// then where the lane is (`--config`, `--data-dir`), with an example; the
/// daemon's many settings are listed by `serve` alone.
fn command() -> clap::Command {
    use clap::{Args, CommandFactory};
    let settings: Vec<String> =
        laned::lane::config::Settings::augment_args(clap::Command::new("s"))
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .filter(|id| id != "data_dir")
            .collect();
    let tidy = move |sc: clap::Command, example: &str| {
        let mut sc = sc
            .after_help(format!("{example}\n\n{DAEMON_SETTINGS_NOTE}"))
            .mut_arg("config", |a| {
                a.help_heading("Where the lane is").display_order(1000)
            })
            .mut_arg("data_dir", |a| {
                a.help_heading("Where the lane is").display_order(1001)
            });
        for id in &settings {
            sc = sc.mut_arg(id.as_str(), |a| a.hide(true));
        }
        sc
    };
    let mut cmd = Cli::command();
    for (path, example) in SUPPORT_COMMANDS {
        let tidy = tidy.clone();
        cmd = match path.split_once(' ') {
            Some((outer, inner)) => cmd.mut_subcommand(outer, move |sc| {
                sc.mut_subcommand(inner, move |sc| tidy(sc, example))
            }),
            None => cmd.mut_subcommand(path, move |sc| tidy(sc, example)),
        };
    }
    cmd
}

/// Parses the command line and runs the subcommand.
pub fn main() -> ExitCode {
    use clap::FromArgMatches;
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
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
        Command::Verify(args) => verify::run(*args),
        Command::CloseDay(args) => close_day::run(*args),
        Command::GenerateAssets { dir } => {
            laned::common::assets::write(command(), &dir).map_err(Into::into)
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
        if cause.is::<verify::Broken>() || cause.is::<verify::NotProven>() {
            return exit::JOURNAL_BROKEN;
        }
        if let Some(t) = cause.downcast_ref::<operator::Troubled>() {
            return match t.verdict {
                laned::lane::status::Verdict::Stopped => exit::STOPPED,
                _ => exit::ATTENTION,
            };
        }
        if cause.is::<laned::lane::config::ConfigError>()
            || cause.is::<sales::BadArgument>()
            || cause.is::<verify::NotAnExport>()
            || cause.is::<verify::NotABundle>()
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
                | StoreError::LaneMismatch { .. }
                | StoreError::JournalBroken { .. },
            ) => return exit::DATABASE_REFUSED,
            _ => {}
        }
    }
    exit::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every support command's help fits on a screen, shows its own options
    /// before where the lane is, and ends with an example.
    #[test]
    fn support_commands_show_their_own_options_first_with_an_example() {
        let mut cmd = command();
        cmd.build();
        for (path, _) in SUPPORT_COMMANDS {
            let mut sc = &mut cmd;
            for name in path.split(' ') {
                sc = sc.find_subcommand_mut(name).expect("a subcommand");
            }
            let help = sc.render_long_help().to_string();
            let lines = help.lines().count();
            assert!(lines < 70, "laned {path} --help is {lines} lines:\n{help}");
            let own = help.find("Options:").expect("own options");
            let lane = help.find("Where the lane is:").expect("where the lane is");
            assert!(own < lane, "laned {path} --help:\n{help}");
            assert!(
                help.contains(&format!("laned {path}")),
                "no example in:\n{help}"
            );
            assert!(
                !help.contains("--sync-ceiling"),
                "daemon settings in:\n{help}"
            );
        }
        // The daemon's help lists every setting.
        let serve = cmd
            .find_subcommand_mut("serve")
            .unwrap()
            .render_long_help()
            .to_string();
        for flag in ["--sync-ceiling", "--backend-url", "--locale", "--time-zone"] {
            assert!(serve.contains(flag), "laned serve --help lacks {flag}");
        }
    }

    /// Hidden settings still parse.
    #[test]
    fn a_support_command_still_takes_a_daemon_setting() {
        use clap::FromArgMatches;
        let m = command()
            .try_get_matches_from([
                "laned",
                "status",
                "--backend-url",
                "http://127.0.0.1:9",
                "--json",
            ])
            .unwrap();
        assert!(matches!(
            Cli::from_arg_matches(&m).unwrap().command,
            Command::Status(_)
        ));
    }
}
