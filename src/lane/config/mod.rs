//! Configuration, layered in one place: built-in defaults, then the TOML file
//! named by `--config`, then `LANED_*` environment variables, then flags.
//! The file's keys and the flags are one struct, [`Settings`]; [`Config`]
//! is what they resolve to, checked.
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

mod settings;
mod sources;

pub use settings::{ConfigArgs, Settings};
pub use sources::{API_TOKEN_CREDENTIAL, BACKEND_TOKEN_CREDENTIAL, data_dir, read_token_file};
use sources::{credential, fallback_data_dir, token};

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

/// How the drain talks to the back-end.
#[derive(Debug, Clone)]
pub struct DrainConfig {
    /// Bearer token sent to the back-end.
    pub backend_token: Option<Secret>,
    /// Where the token was read from, so a reload can read it again.
    pub backend_token_file: Option<PathBuf>,
    /// The back-end's signing key as configured (`backend_key`), which
    /// overrides the one pinned at first contact.
    pub backend_key: Option<crate::contract::ack::PublicKey>,
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
            backend_key: None,
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
    /// The language of the status page and of the cashier's sentences.
    pub locale: crate::lane::messages::Locale,
    /// The local time of the automatic day closing (`None`: off).
    pub close_day_at: Option<jiff::civil::Time>,
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
        Self::merge(args.file()?, &args.settings, env)
    }

    /// Every setting at its default, for lane `lane_id` keeping its data in
    /// `data_dir` (for embedding and tests; nothing is read from the
    /// environment).
    pub fn defaults(lane_id: &str, data_dir: &Path) -> Result<Config, ConfigError> {
        let file = Settings {
            lane_id: Some(lane_id.to_owned()),
            data_dir: Some(data_dir.to_owned()),
            ..Settings::default()
        };
        Self::merge(file, &Settings::default(), |_| None)
    }

    /// `args` (flags and variables) over `file`, resolved and checked.
    /// The two stay apart for the tokens only: a token file named by a
    /// flag beats a token variable, which beats one named in the file.
    fn merge(
        file: Settings,
        args: &Settings,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let api_token = token(
            args.api_token_file.as_deref(),
            env("LANED_API_TOKEN"),
            credential(&env, API_TOKEN_CREDENTIAL),
            file.api_token_file.as_deref(),
        )?;
        let backend_token = token(
            args.backend_token_file.as_deref(),
            env("LANED_BACKEND_TOKEN"),
            credential(&env, BACKEND_TOKEN_CREDENTIAL),
            file.backend_token_file.as_deref(),
        )?;
        let s = args.clone().over(file);
        let mut drain = drain_config(&s, backend_token)?;
        let ceiling = ceiling_config(&s, &mut drain)?;
        let listen = s.listen.unwrap_or_else(|| {
            DEFAULT_LISTEN
                .parse()
                .unwrap_or(([127, 0, 0, 1], 7410).into())
        });
        let data_dir = match s.data_dir {
            Some(d) => d,
            None => fallback_data_dir(&env)?,
        };
        let lane_id = s.lane_id.ok_or(ConfigError::Invalid {
            key: "lane_id",
            message: "is required: give --lane-id, LANED_LANE_ID or lane_id in the config file"
                .into(),
        })?;
        check_id("lane_id", &lane_id)?;
        let series = s.series.unwrap_or_else(|| lane_id.clone());
        check_id("series", &series)?;
        let backend_url = s.backend_url;
        if let Some(u) = &backend_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                key: "backend_url",
                message: format!("must start with https:// or http:// (got {u:?})"),
            });
        }
        if !listen.ip().is_loopback() && api_token.is_none() {
            return Err(ConfigError::Invalid {
                key: "listen",
                message: format!(
                    "{listen} is reachable from other machines; configure an API token \
                     (api_token_file or LANED_API_TOKEN) or listen on 127.0.0.1"
                ),
            });
        }
        let log_level = s.log_level.unwrap_or_else(|| "info".into());
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_level) {
            return Err(ConfigError::Invalid {
                key: "log_level",
                message: format!(
                    "{log_level:?} is not a log filter ({e}); try \"info\" or \"laned=debug\""
                ),
            });
        }
        let allowed_hosts = s.allowed_hosts.unwrap_or_default();
        let connections = crate::common::serve::Limits {
            max_connections: s.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            header_read_timeout: s
                .header_read_timeout
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
        let close_day_at = match s.close_day_at.as_deref().map(str::trim) {
            None | Some("off") => None,
            Some(t) => Some(
                t.parse::<jiff::civil::Time>()
                    .ok()
                    .filter(|_| t.len() == 5)
                    .ok_or_else(|| ConfigError::Invalid {
                        key: "close_day_at",
                        message: format!("must be a local time like 03:00, or off (got {t:?})"),
                    })?,
            ),
        };
        Ok(Config {
            listen,
            data_dir,
            lane_id,
            series,
            backend_url,
            log_format: s.log_format.unwrap_or_default(),
            log_level,
            api_token,
            allowed_hosts,
            connections,
            drain,
            ceiling,
            locale: s.locale.unwrap_or_default(),
            close_day_at,
        })
    }
}

fn drain_config(s: &Settings, backend_token: Option<Secret>) -> Result<DrainConfig, ConfigError> {
    let d = DrainConfig::default();
    let or = |i: Option<Interval>, dflt| i.map_or(dflt, |i| i.0);
    let c = DrainConfig {
        backend_token,
        backend_token_file: s.backend_token_file.clone(),
        backend_key: s.backend_key.as_deref().map(backend_key).transpose()?,
        batch_size: s.batch_size.unwrap_or(d.batch_size),
        on_reject: s.on_reject.unwrap_or_default(),
        backoff_base: or(s.backoff_base, d.backoff_base),
        backoff_cap: or(s.backoff_cap, d.backoff_cap),
        retry_after_cap: or(s.retry_after_cap, d.retry_after_cap),
        stuck_recheck: or(s.stuck_recheck, d.stuck_recheck),
        heartbeat_interval: or(s.heartbeat_interval, d.heartbeat_interval),
        request_timeout: or(s.request_timeout, d.request_timeout),
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

/// The back-end's public key as configured: 64 hexadecimal digits of an
/// Ed25519 key.
fn backend_key(hex: &str) -> Result<crate::contract::ack::PublicKey, ConfigError> {
    let invalid = || ConfigError::Invalid {
        key: "backend_key",
        message: "must be the back-end's Ed25519 public key, 64 hexadecimal digits \
                  (salemap shows it at GET /v1/keys)"
            .into(),
    };
    let hex = hex.trim().to_ascii_lowercase();
    let mut bytes = [0u8; 32];
    const_hex::decode_to_slice(&hex, &mut bytes).map_err(|_| invalid())?;
    let key = crate::contract::ack::PublicKey {
        key_id: crate::contract::ack::key_id(&bytes),
        algorithm: crate::contract::ack::ED25519.into(),
        public_key: hex,
    };
    key.verifying_key().map_err(|_| invalid())?;
    Ok(key)
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
fn ceiling_config(s: &Settings, drain: &mut DrainConfig) -> Result<CeilingConfig, ConfigError> {
    let mut limits = s
        .ceiling_preset
        .map_or_else(crate::lane::ceiling::Limits::default, Preset::limits);
    let ceiling_written = s.sync_ceiling;
    if let Some(l) = ceiling_written {
        limits.sync_ceiling = l.duration();
    }
    let warn_written = s.warn_after;
    match (warn_written, ceiling_written.and(limits.sync_ceiling)) {
        (Some(w), _) => limits.warn_after = w.0,
        (None, Some(c)) => limits.warn_after = warning_for(c),
        (None, None) => {}
    }
    if let Some(l) = s.max_unsent_age {
        limits.max_unsent_age = l.duration();
    }
    if let Some(l) = s.monthly_offline_budget {
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
    if s.heartbeat_interval.is_none() {
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
    let time_zone = match &s.time_zone {
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

    fn args(lane: &str) -> Settings {
        Settings {
            lane_id: Some(lane.into()),
            data_dir: Some("/tmp/x".into()),
            ..Default::default()
        }
    }

    #[test]
    fn example_config_parses_and_sets_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/laned.toml");
        let f = Settings::read(&path).expect("example config parses");
        // Destructured without `..`: a new key fails to compile here until the
        // example covers it.
        let Settings {
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
        assert!(monthly_offline_budget.is_some() && time_zone.is_some() && locale.is_some());
        assert!(close_day_at.is_some() && backend_key.is_some());
        // And it merges into a valid configuration (the token file is not
        // read: the env token wins).
        let a = Settings::default();
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
        let c = Config::merge(Settings::default(), &args("L1"), no_env).unwrap();
        assert_eq!(c.ceiling.limits.sync_ceiling, Some(h(24)));
        assert_eq!(c.ceiling.limits.warn_after, h(20));
        assert_eq!(c.ceiling.limits.max_unsent_age, None);
        let file: Settings =
            toml::from_str("lane_id = 'L1'\nceiling_preset = 'ua-prro'\ntime_zone = 'UTC'\n")
                .unwrap();
        let c = Config::merge(file.clone(), &args("L1"), no_env).unwrap();
        let l = c.ceiling.limits;
        assert_eq!((l.sync_ceiling, l.warn_after), (Some(h(36)), h(30)));
        assert_eq!(l.monthly_offline_budget, Some(h(168)));
        // A flag beats the preset; "off" switches a rule off.
        let a = Settings {
            sync_ceiling: Some("off".parse().unwrap()),
            monthly_offline_budget: Some("100h".parse().unwrap()),
            ..args("L1")
        };
        let l = Config::merge(file, &a, no_env).unwrap().ceiling.limits;
        assert_eq!(l.sync_ceiling, None);
        assert_eq!(l.monthly_offline_budget, Some(h(100)));
        let a = Settings {
            ceiling_preset: Some(Preset::Ru30d),
            ..args("L1")
        };
        let l = Config::merge(Settings::default(), &a, no_env)
            .unwrap()
            .ceiling
            .limits;
        assert_eq!((l.sync_ceiling, l.max_unsent_age), (None, Some(h(720))));
    }

    #[test]
    fn the_automatic_closing_is_off_unless_a_local_time_is_given() {
        let at = |toml_text: &str| {
            let file: Settings = toml::from_str(toml_text).unwrap();
            Config::merge(file, &args("L1"), no_env)
                .unwrap()
                .close_day_at
        };
        assert_eq!(at(""), None);
        assert_eq!(at("close_day_at = 'off'"), None);
        assert_eq!(
            at("close_day_at = '03:00'"),
            Some(jiff::civil::time(3, 0, 0, 0))
        );
    }

    #[test]
    fn ceiling_settings_that_cannot_work_are_refused() {
        let bad = |toml_text: &str| {
            let file: Settings = toml::from_str(toml_text).unwrap();
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
        for t in ["25:00", "3:00", "03:00:00", "noon"] {
            let (key, message) = bad(&format!("close_day_at = '{t}'"));
            assert_eq!(key, "close_day_at");
            assert!(message.contains("like 03:00"), "{message}");
        }
        assert!(toml::from_str::<Settings>("sync_ceiling = 'never'").is_err());
        assert!("0s".parse::<Limit>().is_err());
    }

    #[test]
    fn settings_that_depend_on_the_ceiling_follow_it_unless_written() {
        use std::time::Duration;
        let merge = |toml_text: &str, a: &Settings| {
            let file: Settings = toml::from_str(toml_text).unwrap();
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

    /// Every default a flag's help states is the one in force: giving the
    /// stated value changes nothing (lychee checks its help the same way).
    #[test]
    fn the_defaults_the_help_states_are_the_defaults() {
        use clap::{CommandFactory, Parser};
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            settings: Settings,
        }
        let resolve = |extra: &[String]| {
            let mut argv = vec!["laned".to_owned()];
            argv.extend(extra.iter().cloned());
            let f = Flags::try_parse_from(argv).unwrap();
            let c = Config::merge(Settings::default(), &f.settings.over(args("L1")), no_env);
            format!("{:?}", c.unwrap())
        };
        let baseline = resolve(&[]);
        let mut checked = vec![];
        for arg in Flags::command().get_arguments() {
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            let Some(stated) = help
                .split_once("[default: ")
                .and_then(|(_, d)| d.strip_suffix(']'))
            else {
                continue;
            };
            // "the lane id", "five sixths of the sync ceiling": a rule, not
            // a value; the unit tests above cover those.
            if stated.contains(' ') {
                continue;
            }
            let flag = format!("--{}", arg.get_long().unwrap_or_default());
            assert_eq!(
                resolve(&[flag.clone(), stated.to_owned()]),
                baseline,
                "{flag} {stated}: the help states a default that is not the default"
            );
            checked.push(flag);
        }
        assert!(checked.len() >= 14, "too few defaults found: {checked:?}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = toml::from_str::<Settings>("lane_id = 'L1'\nlisten_addr = '1.2.3.4:5'\n");
        assert!(e.unwrap_err().to_string().contains("listen_addr"));
    }

    #[test]
    fn flags_override_file_and_series_defaults_to_lane() {
        let file = Settings {
            lane_id: Some("FILE".into()),
            series: Some("S9".into()),
            listen: Some("127.0.0.1:9000".parse().unwrap()),
            ..Default::default()
        };
        let c = Config::merge(file, &args("L03"), no_env).unwrap();
        assert_eq!(c.lane_id, "L03");
        assert_eq!(c.series, "S9");
        assert_eq!(c.listen.port(), 9000);
        let c = Config::merge(Settings::default(), &args("L03"), no_env).unwrap();
        assert_eq!(c.series, "L03");
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn non_loopback_listen_needs_a_token() {
        let mut a = args("L03");
        a.listen = Some("0.0.0.0:7410".parse().unwrap());
        let e = Config::merge(Settings::default(), &a, no_env).unwrap_err();
        assert!(e.to_string().contains("API token"), "{e}");
        let c = Config::merge(Settings::default(), &a, |k| {
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
        let c = Config::merge(Settings::default(), &a, systemd).unwrap();
        assert_eq!(c.api_token.as_ref().map(Secret::expose), Some("cred-api"));
        assert_eq!(
            c.drain.backend_token.as_ref().map(Secret::expose),
            Some("cred-backend")
        );
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/laned"));
        // A data_dir in the file, and a token in the environment, still win.
        let file = Settings {
            data_dir: Some("/srv/lane".into()),
            ..Settings::default()
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
        let c = Config::merge(Settings::default(), &a, systemd).unwrap();
        assert!(c.drain.backend_token.is_none());
        let empty = tempfile::tempdir().unwrap();
        let e = empty.path().display().to_string();
        let mut local = args("L03");
        local.data_dir = None;
        let c = Config::merge(Settings::default(), &local, |k| {
            (k == "CREDENTIALS_DIRECTORY").then(|| e.clone())
        })
        .unwrap();
        assert!(c.drain.backend_token.is_none() && c.api_token.is_none());
        // A credential that is there but cannot be read is an error, not
        // silently no token.
        std::fs::create_dir(empty.path().join("backend-token")).unwrap();
        let e = Config::merge(Settings::default(), &local, |k| {
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
        let file = Settings {
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
        let f: Settings =
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
        let e = Config::merge(Settings::default(), &a, no_env).unwrap_err();
        assert!(e.to_string().starts_with("log_level:"), "{e}");
    }

    #[test]
    fn bad_ids_and_missing_lane_are_refused() {
        assert!(Config::merge(Settings::default(), &args("L 03"), no_env).is_err());
        assert!(Config::merge(Settings::default(), &args(""), no_env).is_err());
        let mut a = args("L03");
        a.lane_id = None;
        let e = Config::merge(Settings::default(), &a, no_env).unwrap_err();
        assert!(e.to_string().contains("lane_id"));
    }
}
