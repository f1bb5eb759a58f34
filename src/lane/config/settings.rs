//! The lane's settings as written: one struct for the config file's keys
//! and the flags (each flag also a `LANED_*` variable), so that a setting
//! is declared once, and layered in one place.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ConfigError, Limit, OnReject};
use crate::common::duration::Interval;
use crate::common::telemetry::LogFormat;
use crate::lane::ceiling::Preset;
use crate::lane::messages::Locale;

/// Every setting, each optional: what is missing comes from the defaults.
/// In the config file the keys are these names (unknown keys are refused);
/// as flags the same names with `-` (`--backend-url`), and as variables
/// `LANED_` and the name in capitals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Listen address [default: 127.0.0.1:7410].
    #[arg(long, env = "LANED_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Data directory [default: the platform's local data directory].
    #[arg(long, env = "LANED_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// This lane's id (letters, digits, '-' and '_').
    #[arg(long, env = "LANED_LANE_ID", value_name = "ID")]
    pub lane_id: Option<String>,
    /// Receipt number series [default: the lane id].
    #[arg(long, env = "LANED_SERIES", value_name = "SERIES")]
    pub series: Option<String>,
    /// Base URL of the back-end.
    #[arg(long, env = "LANED_BACKEND_URL", value_name = "URL")]
    pub backend_url: Option<String>,
    /// Log format [default: text].
    #[arg(long, env = "LANED_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `laned=debug` [default: info].
    #[arg(long, env = "LANED_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// File holding the till API token; required to listen beyond loopback.
    #[arg(long, env = "LANED_API_TOKEN_FILE", value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,
    /// Extra accepted `Host` names besides loopback and the listen address
    /// (repeat the flag, or comma-separated in the variable).
    #[arg(
        long = "allowed-host",
        env = "LANED_ALLOWED_HOSTS",
        value_name = "HOST",
        value_delimiter = ','
    )]
    pub allowed_hosts: Option<Vec<String>>,
    /// Connections open at once; more are closed [default: 256].
    #[arg(long, env = "LANED_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Time to send a complete request head; idle connections close after it too [default: 15s].
    #[arg(long, env = "LANED_HEADER_READ_TIMEOUT", value_name = "DURATION")]
    pub header_read_timeout: Option<Interval>,
    /// File holding the back-end bearer token (or set LANED_BACKEND_TOKEN).
    #[arg(long, env = "LANED_BACKEND_TOKEN_FILE", value_name = "FILE")]
    pub backend_token_file: Option<PathBuf>,
    /// The back-end's Ed25519 public key (64 hex digits), when it signs: every acknowledgement
    /// must verify against it [default: pinned from the back-end's first heartbeat].
    #[arg(long, env = "LANED_BACKEND_KEY", value_name = "HEX")]
    pub backend_key: Option<String>,
    /// Sales per batch request, 1 to 1000 [default: 100].
    #[arg(long, env = "LANED_BATCH_SIZE", value_name = "N")]
    pub batch_size: Option<usize>,
    /// What a sale the back-end refuses does to the drain [default: park].
    #[arg(long, env = "LANED_ON_REJECT", value_enum)]
    pub on_reject: Option<OnReject>,
    /// First retry delay after a transient failure; doubles each time [default: 1s].
    #[arg(long, env = "LANED_BACKOFF_BASE", value_name = "DURATION")]
    pub backoff_base: Option<Interval>,
    /// Longest retry delay [default: 5m].
    #[arg(long, env = "LANED_BACKOFF_CAP", value_name = "DURATION")]
    pub backoff_cap: Option<Interval>,
    /// Longest Retry-After honoured [default: 15m].
    #[arg(long, env = "LANED_RETRY_AFTER_CAP", value_name = "DURATION")]
    pub retry_after_cap: Option<Interval>,
    /// Automatic re-check of stuck sales [default: 1h].
    #[arg(long, env = "LANED_STUCK_RECHECK", value_name = "DURATION")]
    pub stuck_recheck: Option<Interval>,
    /// Heartbeat of an idle lane [default: 5m, or a tenth of warn_after if shorter].
    #[arg(long, env = "LANED_HEARTBEAT_INTERVAL", value_name = "DURATION")]
    pub heartbeat_interval: Option<Interval>,
    /// Timeout of one back-end request [default: 30s].
    #[arg(long, env = "LANED_REQUEST_TIMEOUT", value_name = "DURATION")]
    pub request_timeout: Option<Interval>,
    /// Named set of sync ceiling limits.
    #[arg(long, env = "LANED_CEILING_PRESET", value_enum)]
    pub ceiling_preset: Option<Preset>,
    /// Offline time after which new sales are refused, or "off" [default: 24h].
    #[arg(long, env = "LANED_SYNC_CEILING", value_name = "DURATION|off")]
    pub sync_ceiling: Option<Limit>,
    /// Offline time after which the lane warns [default: five sixths of the sync ceiling].
    #[arg(long, env = "LANED_WARN_AFTER", value_name = "DURATION")]
    pub warn_after: Option<Interval>,
    /// Age of the oldest unsent sale that suspends the lane, or "off" [default: off].
    #[arg(long, env = "LANED_MAX_UNSENT_AGE", value_name = "DURATION|off")]
    pub max_unsent_age: Option<Limit>,
    /// Offline time allowed per calendar month, or "off" [default: off].
    #[arg(
        long,
        env = "LANED_MONTHLY_OFFLINE_BUDGET",
        value_name = "DURATION|off"
    )]
    pub monthly_offline_budget: Option<Limit>,
    /// IANA time zone of the lane's calendar months, e.g. Europe/Kyiv [default: the system's].
    #[arg(long, env = "LANED_TIME_ZONE", value_name = "ZONE")]
    pub time_zone: Option<String>,
    /// Local time (the lane's time zone) at which the lane closes every earlier business day
    /// still open, e.g. 03:00, or "off" [default: off].
    #[arg(long, env = "LANED_CLOSE_DAY_AT", value_name = "HH:MM|off")]
    pub close_day_at: Option<String>,
    /// Language of the status page and of the sentences a cashier reads (en, sw, uk); a
    /// browser asking for another of them gets its own [default: en].
    #[arg(long, env = "LANED_LOCALE", value_enum)]
    pub locale: Option<Locale>,
}

impl Settings {
    /// These settings over `lower` ones: each setting given here wins; the
    /// extra host names add up, `lower`'s first.
    #[must_use]
    pub fn over(self, lower: Settings) -> Settings {
        // A struct literal without `..`: a new setting does not compile
        // until it is layered here too.
        macro_rules! over {
            ($($key:ident),* $(,)?) => {
                Settings {
                    allowed_hosts: match (lower.allowed_hosts, self.allowed_hosts) {
                        (None, None) => None,
                        (l, s) => Some(l.into_iter().chain(s).flatten().collect()),
                    },
                    $($key: self.$key.or(lower.$key),)*
                }
            };
        }
        over!(
            listen,
            data_dir,
            lane_id,
            series,
            backend_url,
            log_format,
            log_level,
            api_token_file,
            max_connections,
            header_read_timeout,
            backend_token_file,
            backend_key,
            batch_size,
            on_reject,
            backoff_base,
            backoff_cap,
            retry_after_cap,
            stuck_recheck,
            heartbeat_interval,
            request_timeout,
            ceiling_preset,
            sync_ceiling,
            warn_after,
            max_unsent_age,
            monthly_offline_budget,
            time_zone,
            close_day_at,
            locale,
        )
    }

    /// Reads and parses a config file, refusing unknown keys.
    pub fn read(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }
}

/// What every subcommand that reads the lane's data takes on its command
/// line: the config file to read, and the settings over it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// TOML config file.
    #[arg(long, env = "LANED_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The settings given as flags or variables.
    #[command(flatten)]
    pub settings: Settings,
}

impl ConfigArgs {
    /// The config file to read: `--config` / `LANED_CONFIG`, else the
    /// packaged default (`LANED_DEFAULT_CONFIG` at build time, e.g.
    /// `/etc/laned/laned.toml` in the Debian package) when it exists. A
    /// development build has no default and reads no file unless told.
    pub fn config_path(&self) -> Option<PathBuf> {
        self.config.clone().or_else(|| {
            option_env!("LANED_DEFAULT_CONFIG")
                .map(PathBuf::from)
                .filter(|p| p.is_file())
        })
    }

    /// The config file's settings (none when there is no file).
    pub fn file(&self) -> Result<Settings, ConfigError> {
        self.config_path()
            .map_or_else(|| Ok(Settings::default()), |p| Settings::read(&p))
    }
}
