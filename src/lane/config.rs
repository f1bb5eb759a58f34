//! Configuration, layered in one place: built-in defaults, then the TOML file
//! named by `--config`, then `LANED_*` environment variables, then flags.
//!
//! Secrets never sit in the main config file (it is typically world-readable
//! under `/etc`): the API token comes from `LANED_API_TOKEN` or from the file
//! named by `api_token_file`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::common::duration::Interval;
use crate::common::secret::Secret;
use crate::common::telemetry::LogFormat;
use crate::lane::ceiling::Preset;

/// Default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7410";

/// What went wrong while assembling the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown keys.
    #[error("config file {path} is not valid")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said (names the key and line).
        #[source]
        source: toml::de::Error,
    },
    /// A secret file could not be read.
    #[error("cannot read the API token file {path}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A value is present but not acceptable.
    #[error("{key}: {message}")]
    Invalid {
        /// Which setting.
        key: &'static str,
        /// Why, in a sentence.
        message: String,
    },
}

/// What the drain does with a sale the back-end refuses (docs/backend-contract.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OnReject {
    /// Park it as `stuck` and go on with the sales after it.
    #[default]
    Park,
    /// Stop the drain at it, for back-ends that need an unbroken sequence.
    Block,
}

/// A limit of the sync ceiling: a duration, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The rule is switched off.
    Off,
    /// The rule applies at this duration.
    After(Interval),
}

impl Limit {
    fn duration(self) -> Option<std::time::Duration> {
        match self {
            Limit::Off => None,
            Limit::After(i) => Some(i.0),
        }
    }
}

impl std::str::FromStr for Limit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("off") {
            return Ok(Limit::Off);
        }
        s.parse()
            .map(Limit::After)
            .map_err(|e| format!("{e}, or \"off\""))
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Limit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Limit::Off => s.serialize_str("off"),
            Limit::After(i) => i.serialize(s),
        }
    }
}

/// The sync ceiling's settings.
#[derive(Debug, Clone)]
pub struct CeilingConfig {
    /// The limits.
    pub limits: crate::lane::ceiling::Limits,
    /// The time zone whose calendar months the budget counts.
    pub time_zone: jiff::tz::TimeZone,
}

impl Default for CeilingConfig {
    fn default() -> Self {
        CeilingConfig {
            limits: crate::lane::ceiling::Limits::default(),
            time_zone: jiff::tz::TimeZone::system(),
        }
    }
}

/// Connections open at once on the till API, by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Time to send a complete request head, by default.
pub const DEFAULT_HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The config file's keys. Every field is optional: what is missing comes
/// from the defaults. Unknown keys are refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Address the till API listens on.
    pub listen: Option<SocketAddr>,
    /// Directory holding the database and lock file.
    pub data_dir: Option<PathBuf>,
    /// This lane's id, as the back-end knows it.
    pub lane_id: Option<String>,
    /// Receipt number series (defaults to the lane id).
    pub series: Option<String>,
    /// Base URL of the back-end (used by the drain).
    pub backend_url: Option<String>,
    /// `text` or `json`.
    pub log_format: Option<LogFormat>,
    /// A `tracing` filter such as `info` or `laned=debug`.
    pub log_level: Option<String>,
    /// File holding the till API token; required to listen beyond loopback.
    pub api_token_file: Option<PathBuf>,
    /// Extra `Host` header names accepted besides loopback and the listen address.
    pub allowed_hosts: Option<Vec<String>>,
    /// Connections open at once on the till API.
    pub max_connections: Option<usize>,
    /// Time to send a complete request head (and the next, kept alive).
    pub header_read_timeout: Option<Interval>,
    /// File holding the bearer token the lane sends to the back-end.
    pub backend_token_file: Option<PathBuf>,
    /// Sales per `POST /v1/sales:batch` (1 to 1000).
    pub batch_size: Option<usize>,
    /// `park` or `block`.
    pub on_reject: Option<OnReject>,
    /// First retry delay after a transient failure (doubles each time).
    pub backoff_base: Option<Interval>,
    /// Longest retry delay.
    pub backoff_cap: Option<Interval>,
    /// Longest `Retry-After` the lane honours.
    pub retry_after_cap: Option<Interval>,
    /// How often stuck sales are re-sent on their own.
    pub stuck_recheck: Option<Interval>,
    /// How often an idle lane proves its link with a heartbeat.
    pub heartbeat_interval: Option<Interval>,
    /// Timeout of one request to the back-end.
    pub request_timeout: Option<Interval>,
    /// `ke-etims`, `ua-prro` or `ru-30d`: a named set of ceiling limits.
    pub ceiling_preset: Option<Preset>,
    /// Offline this long in a row: new sales are refused (`off` to disable).
    pub sync_ceiling: Option<Limit>,
    /// Offline this long: the lane warns.
    pub warn_after: Option<Interval>,
    /// The oldest unsent sale older than this: new sales are refused.
    pub max_unsent_age: Option<Limit>,
    /// Offline time allowed per calendar month.
    pub monthly_offline_budget: Option<Limit>,
    /// IANA time zone of the lane's calendar months (default: the system's).
    pub time_zone: Option<String>,
}

/// The settings that flags and `LANED_*` variables can give, shared by every
/// subcommand that reads the lane's data.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// TOML config file.
    #[arg(long, env = "LANED_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
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
    /// Log format.
    #[arg(long, env = "LANED_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `laned=debug` [default: info].
    #[arg(long, env = "LANED_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// File holding the till API token.
    #[arg(long, env = "LANED_API_TOKEN_FILE", value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,
    /// Extra accepted `Host` names (repeat, or comma-separated in the env).
    #[arg(
        long = "allowed-host",
        env = "LANED_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
    /// Connections open at once; more are closed [default: 256].
    #[arg(long, env = "LANED_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Time to send a complete request head; idle connections close after it too [default: 15s].
    #[arg(long, env = "LANED_HEADER_READ_TIMEOUT", value_name = "DURATION")]
    pub header_read_timeout: Option<Interval>,
    /// File holding the back-end bearer token (or set LANED_BACKEND_TOKEN).
    #[arg(long, env = "LANED_BACKEND_TOKEN_FILE", value_name = "FILE")]
    pub backend_token_file: Option<PathBuf>,
    /// Sales per batch request [default: 100].
    #[arg(long, env = "LANED_BATCH_SIZE", value_name = "N")]
    pub batch_size: Option<usize>,
    /// What a sale the back-end refuses does to the drain [default: park].
    #[arg(long, env = "LANED_ON_REJECT", value_enum)]
    pub on_reject: Option<OnReject>,
    /// First retry delay [default: 1s].
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
    /// Age of the oldest unsent sale that suspends the lane [default: off].
    #[arg(long, env = "LANED_MAX_UNSENT_AGE", value_name = "DURATION|off")]
    pub max_unsent_age: Option<Limit>,
    /// Offline time allowed per calendar month [default: off].
    #[arg(
        long,
        env = "LANED_MONTHLY_OFFLINE_BUDGET",
        value_name = "DURATION|off"
    )]
    pub monthly_offline_budget: Option<Limit>,
    /// IANA time zone for calendar months, e.g. Europe/Kyiv [default: the system's].
    #[arg(long, env = "LANED_TIME_ZONE", value_name = "ZONE")]
    pub time_zone: Option<String>,
}

/// How the drain talks to the back-end.
#[derive(Debug, Clone)]
pub struct DrainConfig {
    /// Bearer token sent to the back-end.
    pub backend_token: Option<Secret>,
    /// Where the token was read from, so a reload can read it again.
    pub backend_token_file: Option<PathBuf>,
    /// Sales per batch request.
    pub batch_size: usize,
    /// Park or block on a refused sale.
    pub on_reject: OnReject,
    /// First retry delay.
    pub backoff_base: std::time::Duration,
    /// Longest retry delay.
    pub backoff_cap: std::time::Duration,
    /// Longest `Retry-After` honoured.
    pub retry_after_cap: std::time::Duration,
    /// Automatic re-check interval of stuck sales.
    pub stuck_recheck: std::time::Duration,
    /// Heartbeat interval of an idle lane.
    pub heartbeat_interval: std::time::Duration,
    /// Timeout of one back-end request.
    pub request_timeout: std::time::Duration,
}

impl Default for DrainConfig {
    fn default() -> Self {
        use std::time::Duration;
        DrainConfig {
            backend_token: None,
            backend_token_file: None,
            batch_size: 100,
            on_reject: OnReject::Park,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
            retry_after_cap: Duration::from_secs(900),
            stuck_recheck: Duration::from_secs(3600),
            heartbeat_interval: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A token from, in decreasing priority: a file named by a flag (or its
/// `LANED_*_TOKEN_FILE` variable, which clap folds into the flag), the
/// token itself in a `LANED_*_TOKEN` variable, a file named in the config
/// file. Secrets never sit in the config file itself.
fn token(
    flag_file: Option<&Path>,
    env_token: Option<String>,
    credential: Option<PathBuf>,
    config_file: Option<&Path>,
) -> Result<Option<Secret>, ConfigError> {
    if let Some(path) = flag_file {
        return read_token_file(path).map(Some);
    }
    if let Some(t) = env_token {
        let t = t.trim();
        if t.is_empty() {
            return Err(ConfigError::Invalid {
                key: "token",
                message: "a LANED_*_TOKEN variable is set but empty".into(),
            });
        }
        return Ok(Some(Secret::new(t)));
    }
    if let Some(path) = credential {
        match std::fs::read_to_string(&path) {
            // No such credential: the next source.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ConfigError::TokenFile { path, source }),
            // The package creates the credential's source empty: none yet.
            Ok(t) if t.trim().is_empty() => {}
            Ok(_) => return read_token_file(&path).map(Some),
        }
    }
    config_file.map(read_token_file).transpose()
}

/// A credential systemd passed with `LoadCredential=name:…`: the file
/// `$CREDENTIALS_DIRECTORY/name` (owner-only, never in the environment).
fn credential(env: &impl Fn(&str) -> Option<String>, name: &str) -> Option<PathBuf> {
    env("CREDENTIALS_DIRECTORY")
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(&d).join(name))
}

/// Name of the API token credential (`LoadCredential=api-token:…`).
pub const API_TOKEN_CREDENTIAL: &str = "api-token";
/// Name of the back-end token credential (`LoadCredential=backend-token:…`).
pub const BACKEND_TOKEN_CREDENTIAL: &str = "backend-token";

/// Reads a token file: trimmed, and refused when empty.
pub fn read_token_file(path: &Path) -> Result<Secret, ConfigError> {
    let t = std::fs::read_to_string(path).map_err(|source| ConfigError::TokenFile {
        path: path.to_owned(),
        source,
    })?;
    let t = t.trim();
    if t.is_empty() {
        return Err(ConfigError::Invalid {
            key: "token file",
            message: format!("{} is empty", path.display()),
        });
    }
    Ok(Secret::new(t))
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the till API listens on.
    pub listen: SocketAddr,
    /// Directory holding the database and lock file.
    pub data_dir: PathBuf,
    /// This lane's id.
    pub lane_id: String,
    /// Receipt number series.
    pub series: String,
    /// Base URL of the back-end, if configured.
    pub backend_url: Option<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
    /// Token the till must send as `Authorization: Bearer …`, if any.
    pub api_token: Option<Secret>,
    /// Extra accepted `Host` names.
    pub allowed_hosts: Vec<String>,
    /// What the till API allows its connections.
    pub connections: crate::common::serve::Limits,
    /// The drain's settings.
    pub drain: DrainConfig,
    /// The sync ceiling's settings.
    pub ceiling: CeilingConfig,
}

impl Config {
    /// Assembles the configuration: defaults → file → env → flags. `env` is
    /// the process environment lookup (a parameter so tests need not touch
    /// the real environment); clap already folded `LANED_*` variables into
    /// `args` for the settings that have flags.
    pub fn load(
        args: &ConfigArgs,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file = match config_path(args) {
            Some(path) => read_file(&path)?,
            None => ConfigFile::default(),
        };
        Self::merge(file, args, env)
    }

    /// Every setting at its default, for lane `lane_id` keeping its data in
    /// `data_dir` (for embedding and tests; nothing is read from the
    /// environment).
    pub fn defaults(lane_id: &str, data_dir: &Path) -> Result<Config, ConfigError> {
        let file = ConfigFile {
            lane_id: Some(lane_id.to_owned()),
            data_dir: Some(data_dir.to_owned()),
            ..ConfigFile::default()
        };
        Self::merge(file, &ConfigArgs::default(), |_| None)
    }

    fn merge(
        file: ConfigFile,
        args: &ConfigArgs,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut drain = drain_config(&file, args, &env)?;
        let heartbeat_written = args
            .heartbeat_interval
            .or(file.heartbeat_interval)
            .is_some();
        let ceiling = ceiling_config(&file, args, &mut drain, heartbeat_written)?;
        let listen = args.listen.or(file.listen).unwrap_or_else(|| {
            DEFAULT_LISTEN
                .parse()
                .unwrap_or(([127, 0, 0, 1], 7410).into())
        });
        let data_dir = match args.data_dir.clone().or(file.data_dir) {
            Some(d) => d,
            None => fallback_data_dir(&env)?,
        };
        let lane_id = args
            .lane_id
            .clone()
            .or(file.lane_id)
            .ok_or(ConfigError::Invalid {
                key: "lane_id",
                message: "is required: give --lane-id, LANED_LANE_ID or lane_id in the config file"
                    .into(),
            })?;
        check_id("lane_id", &lane_id)?;
        let series = args
            .series
            .clone()
            .or(file.series)
            .unwrap_or_else(|| lane_id.clone());
        check_id("series", &series)?;
        let backend_url = args.backend_url.clone().or(file.backend_url);
        if let Some(u) = &backend_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                key: "backend_url",
                message: format!("must start with https:// or http:// (got {u:?})"),
            });
        }
        let api_token = token(
            args.api_token_file.as_deref(),
            env("LANED_API_TOKEN"),
            credential(&env, API_TOKEN_CREDENTIAL),
            file.api_token_file.as_deref(),
        )?;
        if !listen.ip().is_loopback() && api_token.is_none() {
            return Err(ConfigError::Invalid {
                key: "listen",
                message: format!(
                    "{listen} is reachable from other machines; configure an API token \
                     (api_token_file or LANED_API_TOKEN) or listen on 127.0.0.1"
                ),
            });
        }
        let log_level = args
            .log_level
            .clone()
            .or(file.log_level)
            .unwrap_or_else(|| "info".into());
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_level) {
            return Err(ConfigError::Invalid {
                key: "log_level",
                message: format!(
                    "{log_level:?} is not a log filter ({e}); try \"info\" or \"laned=debug\""
                ),
            });
        }
        let mut allowed_hosts = file.allowed_hosts.unwrap_or_default();
        allowed_hosts.extend(args.allowed_hosts.iter().cloned());
        let connections = crate::common::serve::Limits {
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(DEFAULT_MAX_CONNECTIONS),
            header_read_timeout: args
                .header_read_timeout
                .or(file.header_read_timeout)
                .map_or(DEFAULT_HEADER_READ_TIMEOUT, |i| i.0),
        };
        if !(1..=65_536).contains(&connections.max_connections) {
            return Err(ConfigError::Invalid {
                key: "max_connections",
                message: format!(
                    "must be between 1 and 65536 (got {})",
                    connections.max_connections
                ),
            });
        }
        if connections.header_read_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                key: "header_read_timeout",
                message: "must be longer than zero".into(),
            });
        }
        Ok(Config {
            listen,
            data_dir,
            lane_id,
            series,
            backend_url,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            log_level,
            api_token,
            allowed_hosts,
            connections,
            drain,
            ceiling,
        })
    }
}

fn drain_config(
    file: &ConfigFile,
    args: &ConfigArgs,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<DrainConfig, ConfigError> {
    let d = DrainConfig::default();
    let pick = |a: Option<Interval>, f: Option<Interval>, dflt| a.or(f).map_or(dflt, |i| i.0);
    let backend_token = token(
        args.backend_token_file.as_deref(),
        env("LANED_BACKEND_TOKEN"),
        credential(env, BACKEND_TOKEN_CREDENTIAL),
        file.backend_token_file.as_deref(),
    )?;
    let backend_token_file = args
        .backend_token_file
        .clone()
        .or(file.backend_token_file.clone());
    let c = DrainConfig {
        backend_token,
        backend_token_file,
        batch_size: args.batch_size.or(file.batch_size).unwrap_or(d.batch_size),
        on_reject: args.on_reject.or(file.on_reject).unwrap_or_default(),
        backoff_base: pick(args.backoff_base, file.backoff_base, d.backoff_base),
        backoff_cap: pick(args.backoff_cap, file.backoff_cap, d.backoff_cap),
        retry_after_cap: pick(
            args.retry_after_cap,
            file.retry_after_cap,
            d.retry_after_cap,
        ),
        stuck_recheck: pick(args.stuck_recheck, file.stuck_recheck, d.stuck_recheck),
        heartbeat_interval: pick(
            args.heartbeat_interval,
            file.heartbeat_interval,
            d.heartbeat_interval,
        ),
        request_timeout: pick(
            args.request_timeout,
            file.request_timeout,
            d.request_timeout,
        ),
    };
    if !(1..=1000).contains(&c.batch_size) {
        return Err(ConfigError::Invalid {
            key: "batch_size",
            message: format!("must be between 1 and 1000 (got {})", c.batch_size),
        });
    }
    if c.backoff_cap < c.backoff_base {
        return Err(ConfigError::Invalid {
            key: "backoff_cap",
            message: "must not be shorter than backoff_base".into(),
        });
    }
    Ok(c)
}

/// The warning that comes with a ceiling, when the user sets no warning of
/// their own: at five sixths of it (20 h of the default 24 h).
fn warning_for(ceiling: std::time::Duration) -> std::time::Duration {
    ceiling * 5 / 6
}

/// The heartbeat that comes with a warning, when the user sets none: the
/// default, or a tenth of the warning if that is shorter, so an idle lane
/// proves it is online well before it would warn.
fn heartbeat_for(warn_after: std::time::Duration) -> std::time::Duration {
    DrainConfig::default()
        .heartbeat_interval
        .min(warn_after / 10)
}

/// The sync ceiling's settings. Settings that depend on the ceiling (the
/// warning, then the heartbeat) follow it unless the user wrote them; only
/// a contradiction with something the user wrote is refused.
fn ceiling_config(
    file: &ConfigFile,
    args: &ConfigArgs,
    drain: &mut DrainConfig,
    heartbeat_written: bool,
) -> Result<CeilingConfig, ConfigError> {
    let mut limits = args
        .ceiling_preset
        .or(file.ceiling_preset)
        .map_or_else(crate::lane::ceiling::Limits::default, Preset::limits);
    let ceiling_written = args.sync_ceiling.or(file.sync_ceiling);
    if let Some(l) = ceiling_written {
        limits.sync_ceiling = l.duration();
    }
    let warn_written = args.warn_after.or(file.warn_after);
    match (warn_written, ceiling_written.and(limits.sync_ceiling)) {
        (Some(w), _) => limits.warn_after = w.0,
        (None, Some(c)) => limits.warn_after = warning_for(c),
        (None, None) => {}
    }
    if let Some(l) = args.max_unsent_age.or(file.max_unsent_age) {
        limits.max_unsent_age = l.duration();
    }
    if let Some(l) = args.monthly_offline_budget.or(file.monthly_offline_budget) {
        limits.monthly_offline_budget = l.duration();
    }
    let show = |d: std::time::Duration| Interval(d).to_string();
    if let Some(c) = limits.sync_ceiling
        && limits.warn_after >= c
    {
        let ceiling_from = if ceiling_written.is_some() {
            ""
        } else {
            ", the default"
        };
        return Err(ConfigError::Invalid {
            key: "warn_after",
            message: format!(
                "{} must be shorter than sync_ceiling ({}{ceiling_from}), or the lane would \
                 be suspended before it warns",
                show(limits.warn_after),
                show(c)
            ),
        });
    }
    if !heartbeat_written {
        drain.heartbeat_interval = heartbeat_for(limits.warn_after);
    }
    if drain.heartbeat_interval >= limits.warn_after {
        return Err(ConfigError::Invalid {
            key: "heartbeat_interval",
            message: format!(
                "{} must be shorter than warn_after ({}): an idle lane proves it is online \
                 with a heartbeat, and would otherwise warn between two of them",
                show(drain.heartbeat_interval),
                show(limits.warn_after)
            ),
        });
    }
    let time_zone = match args.time_zone.as_ref().or(file.time_zone.as_ref()) {
        None => jiff::tz::TimeZone::system(),
        Some(name) => jiff::tz::TimeZone::get(name).map_err(|e| ConfigError::Invalid {
            key: "time_zone",
            message: format!(
                "{name:?} is not a known time zone ({e}); use a name like \"Europe/Kyiv\""
            ),
        })?,
    };
    Ok(CeilingConfig { limits, time_zone })
}

/// The data directory alone, for commands that read a lane's database
/// without running it (no lane id needed): flag or `LANED_DATA_DIR`, then
/// the config file, then the platform default.
pub fn data_dir(args: &ConfigArgs) -> Result<PathBuf, ConfigError> {
    if let Some(d) = &args.data_dir {
        return Ok(d.clone());
    }
    let file = match config_path(args) {
        Some(path) => read_file(&path)?,
        None => ConfigFile::default(),
    };
    match file.data_dir {
        Some(d) => Ok(d),
        None => fallback_data_dir(&|k: &str| std::env::var(k).ok()),
    }
}

/// The config file to read: `--config` / `LANED_CONFIG`, else the
/// packaged default (`LANED_DEFAULT_CONFIG` at build time, e.g.
/// `/etc/laned/laned.toml` in the Debian package) when it exists. A
/// development build has no default and reads no file unless told.
pub fn config_path(args: &ConfigArgs) -> Option<PathBuf> {
    args.config.clone().or_else(|| {
        option_env!("LANED_DEFAULT_CONFIG")
            .map(PathBuf::from)
            .filter(|p| p.is_file())
    })
}

/// The data directory when neither flag, variable nor file names one:
/// systemd's `StateDirectory=` (`$STATE_DIRECTORY`), else the packaged
/// default (`LANED_DEFAULT_DATA_DIR` at build time, `/var/lib/laned` in the
/// Debian package), else the platform's per-user data directory.
fn fallback_data_dir(env: &impl Fn(&str) -> Option<String>) -> Result<PathBuf, ConfigError> {
    if let Some(state) = env("STATE_DIRECTORY")
        .and_then(|s| s.split(':').next().map(str::to_owned))
        .filter(|s| !s.is_empty())
    {
        return Ok(PathBuf::from(state));
    }
    if let Some(d) = option_env!("LANED_DEFAULT_DATA_DIR") {
        return Ok(PathBuf::from(d));
    }
    default_data_dir()
}

/// Reads and parses a config file, refusing unknown keys.
pub fn read_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

fn default_data_dir() -> Result<PathBuf, ConfigError> {
    directories::ProjectDirs::from("", "", "laned")
        .map(|d| d.data_local_dir().to_owned())
        .ok_or(ConfigError::Invalid {
            key: "data_dir",
            message: "no home directory to derive a default from; give --data-dir".into(),
        })
}

/// Lane ids and series are printed on receipts and used in URLs: keep them
/// short and plain.
fn check_id(key: &'static str, v: &str) -> Result<(), ConfigError> {
    let ok = (1..=32).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            key,
            message: format!("must be 1 to 32 letters, digits, '-' or '_' (got {v:?})"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn args(lane: &str) -> ConfigArgs {
        ConfigArgs {
            lane_id: Some(lane.into()),
            data_dir: Some("/tmp/x".into()),
            ..Default::default()
        }
    }

    #[test]
    fn example_config_parses_and_sets_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/laned.toml");
        let f = read_file(&path).expect("example config parses");
        // Destructured without `..`: a new key fails to compile here until the
        // example covers it.
        let ConfigFile {
            listen,
            data_dir,
            lane_id,
            series,
            backend_url,
            log_format,
            log_level,
            api_token_file,
            allowed_hosts,
            max_connections,
            header_read_timeout,
            backend_token_file,
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
        } = f.clone();
        assert!(listen.is_some() && data_dir.is_some() && lane_id.is_some() && series.is_some());
        assert!(backend_url.is_some() && log_format.is_some() && log_level.is_some());
        assert!(api_token_file.is_some() && allowed_hosts.is_some());
        assert!(max_connections.is_some() && header_read_timeout.is_some());
        assert!(backend_token_file.is_some() && batch_size.is_some() && on_reject.is_some());
        assert!(backoff_base.is_some() && backoff_cap.is_some() && retry_after_cap.is_some());
        assert!(stuck_recheck.is_some() && heartbeat_interval.is_some());
        assert!(request_timeout.is_some() && ceiling_preset.is_some());
        assert!(sync_ceiling.is_some() && warn_after.is_some() && max_unsent_age.is_some());
        assert!(monthly_offline_budget.is_some() && time_zone.is_some());
        // And it merges into a valid configuration (the token file is not
        // read: the env token wins).
        let a = ConfigArgs::default();
        let c = Config::merge(f, &a, |k| {
            matches!(k, "LANED_API_TOKEN" | "LANED_BACKEND_TOKEN").then(|| "t".into())
        })
        .unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn ceiling_presets_set_the_limits_and_explicit_keys_override_them() {
        use std::time::Duration;
        let h = |n: u64| Duration::from_secs(n * 3600);
        let c = Config::merge(ConfigFile::default(), &args("L1"), no_env).unwrap();
        assert_eq!(c.ceiling.limits.sync_ceiling, Some(h(24)));
        assert_eq!(c.ceiling.limits.warn_after, h(20));
        assert_eq!(c.ceiling.limits.max_unsent_age, None);
        let file: ConfigFile =
            toml::from_str("lane_id = 'L1'\nceiling_preset = 'ua-prro'\ntime_zone = 'UTC'\n")
                .unwrap();
        let c = Config::merge(file.clone(), &args("L1"), no_env).unwrap();
        let l = c.ceiling.limits;
        assert_eq!((l.sync_ceiling, l.warn_after), (Some(h(36)), h(30)));
        assert_eq!(l.monthly_offline_budget, Some(h(168)));
        // A flag beats the preset; "off" switches a rule off.
        let a = ConfigArgs {
            sync_ceiling: Some("off".parse().unwrap()),
            monthly_offline_budget: Some("100h".parse().unwrap()),
            ..args("L1")
        };
        let l = Config::merge(file, &a, no_env).unwrap().ceiling.limits;
        assert_eq!(l.sync_ceiling, None);
        assert_eq!(l.monthly_offline_budget, Some(h(100)));
        let a = ConfigArgs {
            ceiling_preset: Some(Preset::Ru30d),
            ..args("L1")
        };
        let l = Config::merge(ConfigFile::default(), &a, no_env)
            .unwrap()
            .ceiling
            .limits;
        assert_eq!((l.sync_ceiling, l.max_unsent_age), (None, Some(h(720))));
    }

    #[test]
    fn ceiling_settings_that_cannot_work_are_refused() {
        let bad = |toml_text: &str| {
            let file: ConfigFile = toml::from_str(toml_text).unwrap();
            match Config::merge(file, &args("L1"), no_env) {
                Err(ConfigError::Invalid { key, message }) => (key, message),
                other => panic!("accepted: {other:?}"),
            }
        };
        // Contradictions the user wrote, between keys or against a default.
        assert_eq!(
            bad("sync_ceiling = '10h'\nwarn_after = '10h'").0,
            "warn_after"
        );
        let (key, message) = bad("warn_after = '30h'");
        assert_eq!(key, "warn_after");
        assert!(
            message.contains("24h") && message.contains("default"),
            "{message}"
        );
        assert_eq!(
            bad("heartbeat_interval = '5m'\nwarn_after = '4m'\nsync_ceiling = '5m'").0,
            "heartbeat_interval"
        );
        assert_eq!(
            bad("heartbeat_interval = '1h'\nsync_ceiling = '30m'").0,
            "heartbeat_interval"
        );
        let (key, message) = bad("time_zone = 'Mars/Olympus_Mons'");
        assert_eq!(key, "time_zone");
        assert!(message.contains("Mars/Olympus_Mons"), "{message}");
        assert!(toml::from_str::<ConfigFile>("sync_ceiling = 'never'").is_err());
        assert!("0s".parse::<Limit>().is_err());
    }

    #[test]
    fn settings_that_depend_on_the_ceiling_follow_it_unless_written() {
        use std::time::Duration;
        let merge = |toml_text: &str, a: &ConfigArgs| {
            let file: ConfigFile = toml::from_str(toml_text).unwrap();
            Config::merge(file, a, no_env).unwrap()
        };
        let h = |n: u64| Duration::from_secs(n * 3600);
        // A ceiling alone: the warning comes at five sixths of it (as 20 h
        // of 24 h), the heartbeat stays at 5 min.
        let c = merge("sync_ceiling = '12h'", &args("L1"));
        assert_eq!(c.ceiling.limits.warn_after, h(10));
        assert_eq!(c.drain.heartbeat_interval, Duration::from_secs(300));
        // A short one: the heartbeat comes often enough to keep an idle
        // lane from warning between two of them.
        let c = merge("sync_ceiling = '2s'", &args("L1"));
        let warn = c.ceiling.limits.warn_after;
        assert!(
            warn < Duration::from_secs(2) && warn > Duration::ZERO,
            "{warn:?}"
        );
        assert!(c.drain.heartbeat_interval < warn);
        // As a flag over a preset, the preset's warning follows too.
        let mut a = args("L1");
        a.sync_ceiling = Some("12h".parse().unwrap());
        let c = merge("ceiling_preset = 'ke-etims'", &a);
        assert_eq!(c.ceiling.limits.warn_after, h(10));
        // What the user wrote stands.
        let c = merge("sync_ceiling = '12h'\nwarn_after = '11h'", &args("L1"));
        assert_eq!(c.ceiling.limits.warn_after, h(11));
        // Without a ceiling the warning keeps its default.
        let c = merge("sync_ceiling = 'off'", &args("L1"));
        assert_eq!(c.ceiling.limits.warn_after, h(20));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = toml::from_str::<ConfigFile>("lane_id = 'L1'\nlisten_addr = '1.2.3.4:5'\n");
        assert!(e.unwrap_err().to_string().contains("listen_addr"));
    }

    #[test]
    fn flags_override_file_and_series_defaults_to_lane() {
        let file = ConfigFile {
            lane_id: Some("FILE".into()),
            series: Some("S9".into()),
            listen: Some("127.0.0.1:9000".parse().unwrap()),
            ..Default::default()
        };
        let c = Config::merge(file, &args("L03"), no_env).unwrap();
        assert_eq!(c.lane_id, "L03");
        assert_eq!(c.series, "S9");
        assert_eq!(c.listen.port(), 9000);
        let c = Config::merge(ConfigFile::default(), &args("L03"), no_env).unwrap();
        assert_eq!(c.series, "L03");
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn non_loopback_listen_needs_a_token() {
        let mut a = args("L03");
        a.listen = Some("0.0.0.0:7410".parse().unwrap());
        let e = Config::merge(ConfigFile::default(), &a, no_env).unwrap_err();
        assert!(e.to_string().contains("API token"), "{e}");
        let c = Config::merge(ConfigFile::default(), &a, |k| {
            (k == "LANED_API_TOKEN").then(|| "s3cret\n".into())
        })
        .unwrap();
        assert_eq!(c.api_token.as_ref().map(Secret::expose), Some("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn systemd_credentials_and_state_directory_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("backend-token"), "cred-backend\n").unwrap();
        std::fs::write(dir.path().join("api-token"), "cred-api").unwrap();
        let creds = dir.path().display().to_string();
        let mut a = args("L03");
        a.data_dir = None;
        a.listen = Some("0.0.0.0:7410".parse().unwrap());
        let systemd = |k: &str| match k {
            "CREDENTIALS_DIRECTORY" => Some(creds.clone()),
            "STATE_DIRECTORY" => Some("/var/lib/laned".into()),
            _ => None,
        };
        let c = Config::merge(ConfigFile::default(), &a, systemd).unwrap();
        assert_eq!(c.api_token.as_ref().map(Secret::expose), Some("cred-api"));
        assert_eq!(
            c.drain.backend_token.as_ref().map(Secret::expose),
            Some("cred-backend")
        );
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/laned"));
        // A data_dir in the file, and a token in the environment, still win.
        let file = ConfigFile {
            data_dir: Some("/srv/lane".into()),
            ..ConfigFile::default()
        };
        let c = Config::merge(file, &a, |k| match k {
            "LANED_BACKEND_TOKEN" => Some("env-token".into()),
            other => systemd(other),
        })
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/lane"));
        assert_eq!(
            c.drain.backend_token.as_ref().map(Secret::expose),
            Some("env-token")
        );
        // An empty credential (the package's placeholder) or none at all
        // is no token.
        std::fs::write(dir.path().join("backend-token"), "\n").unwrap();
        let c = Config::merge(ConfigFile::default(), &a, systemd).unwrap();
        assert!(c.drain.backend_token.is_none());
        let empty = tempfile::tempdir().unwrap();
        let e = empty.path().display().to_string();
        let mut local = args("L03");
        local.data_dir = None;
        let c = Config::merge(ConfigFile::default(), &local, |k| {
            (k == "CREDENTIALS_DIRECTORY").then(|| e.clone())
        })
        .unwrap();
        assert!(c.drain.backend_token.is_none() && c.api_token.is_none());
        // A credential that is there but cannot be read is an error, not
        // silently no token.
        std::fs::create_dir(empty.path().join("backend-token")).unwrap();
        let e = Config::merge(ConfigFile::default(), &local, |k| {
            (k == "CREDENTIALS_DIRECTORY").then(|| empty.path().display().to_string())
        })
        .unwrap_err();
        assert!(e.to_string().contains("backend-token"), "{e}");
    }

    #[test]
    fn a_token_file_flag_beats_the_token_variable_which_beats_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, t: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, t).unwrap();
            p
        };
        let (from_flag, from_file) = (write("flag", "flag-token\n"), write("file", "file-token"));
        let file = ConfigFile {
            api_token_file: Some(from_file),
            ..Default::default()
        };
        let env = |k: &str| (k == "LANED_API_TOKEN").then(|| "env-token".to_string());
        let t = |c: Config| c.api_token.map(|s| s.expose().to_owned());
        let mut a = args("L03");
        assert_eq!(
            t(Config::merge(file.clone(), &a, no_env).unwrap()).as_deref(),
            Some("file-token")
        );
        assert_eq!(
            t(Config::merge(file.clone(), &a, env).unwrap()).as_deref(),
            Some("env-token")
        );
        a.api_token_file = Some(from_flag);
        assert_eq!(
            t(Config::merge(file.clone(), &a, env).unwrap()).as_deref(),
            Some("flag-token")
        );
        a.api_token_file = Some(write("empty", "  \n"));
        assert!(
            Config::merge(file, &a, env).is_err(),
            "an empty token file is refused"
        );
    }

    #[test]
    fn intervals_parse_friendly_durations_and_refuse_zero() {
        assert_eq!("5m".parse::<Interval>().unwrap().0.as_secs(), 300);
        assert_eq!("1h 30m".parse::<Interval>().unwrap().0.as_secs(), 5400);
        assert!("0s".parse::<Interval>().is_err());
        assert!("-5m".parse::<Interval>().is_err());
        assert!("5".parse::<Interval>().is_err());
        let f: ConfigFile =
            toml::from_str("heartbeat_interval = \"2m\"\non_reject = \"block\"").unwrap();
        let c = Config::merge(f, &args("L03"), no_env).unwrap();
        assert_eq!(c.drain.heartbeat_interval.as_secs(), 120);
        assert_eq!(c.drain.on_reject, OnReject::Block);
        assert_eq!(c.drain.batch_size, 100);
    }

    #[test]
    fn a_bad_log_filter_is_refused() {
        let mut a = args("L03");
        a.log_level = Some("laned=loud".into());
        let e = Config::merge(ConfigFile::default(), &a, no_env).unwrap_err();
        assert!(e.to_string().starts_with("log_level:"), "{e}");
    }

    #[test]
    fn bad_ids_and_missing_lane_are_refused() {
        assert!(Config::merge(ConfigFile::default(), &args("L 03"), no_env).is_err());
        assert!(Config::merge(ConfigFile::default(), &args(""), no_env).is_err());
        let mut a = args("L03");
        a.lane_id = None;
        let e = Config::merge(ConfigFile::default(), &a, no_env).unwrap_err();
        assert!(e.to_string().contains("lane_id"));
    }
}
