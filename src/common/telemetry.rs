//! Logging setup.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use serde::{Deserialize, Serialize};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber: logs go to stderr, as text or JSON.
/// `RUST_LOG`, when set, overrides `level`. Under systemd (stderr is the
/// journal's stream) text lines carry no timestamp and no colour: the
/// journal stamps each line itself.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let journal = stderr_is_journal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(!journal && std::io::stderr().is_terminal());
    // A second init (tests) is harmless: try_init just reports it.
    let _ = match (format, journal) {
        (LogFormat::Text, false) => builder.try_init(),
        (LogFormat::Text, true) => builder.without_time().try_init(),
        (LogFormat::Json, _) => builder.json().flatten_event(true).try_init(),
    };
}

/// Whether stderr is connected to the journal: systemd sets
/// `JOURNAL_STREAM=<device>:<inode>` to the stream it gave the service,
/// which stays true only while stderr is that very stream (not after a
/// redirect in a wrapper script).
fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        use std::os::unix::fs::MetadataExt;
        let Some((dev, ino)) = v.to_str().and_then(|s| s.split_once(':')) else {
            return false;
        };
        let Ok(stderr) = std::io::stderr().as_fd().try_clone_to_owned() else {
            return false;
        };
        let Ok(meta) = std::fs::File::from(stderr).metadata() else {
            return false;
        };
        dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = v;
        false
    }
}
