//! Where secrets and the data directory come from besides the settings:
//! token files, `LANED_*_TOKEN` variables, systemd credentials
//! (`$CREDENTIALS_DIRECTORY`) and state directory (`$STATE_DIRECTORY`), the
//! packaged defaults and the platform's data directory.

use std::path::{Path, PathBuf};

use super::{ConfigArgs, ConfigError};
use crate::common::secret::Secret;

/// A token from, in decreasing priority: a file named by a flag (or its
/// `LANED_*_TOKEN_FILE` variable, which clap folds into the flag), the
/// token itself in a `LANED_*_TOKEN` variable, a file named in the config
/// file. Secrets never sit in the config file itself.
pub(super) fn token(
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
pub(super) fn credential(env: &impl Fn(&str) -> Option<String>, name: &str) -> Option<PathBuf> {
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

/// The data directory alone, for commands that read a lane's database
/// without running it (no lane id needed): flag or `LANED_DATA_DIR`, then
/// the config file, then the platform default.
pub fn data_dir(args: &ConfigArgs) -> Result<PathBuf, ConfigError> {
    if let Some(d) = &args.settings.data_dir {
        return Ok(d.clone());
    }
    match args.file()?.data_dir {
        Some(d) => Ok(d),
        None => fallback_data_dir(&|k: &str| std::env::var(k).ok()),
    }
}

/// The data directory when neither flag, variable nor file names one:
/// systemd's `StateDirectory=` (`$STATE_DIRECTORY`), else the packaged
/// default (`LANED_DEFAULT_DATA_DIR` at build time, `/var/lib/laned` in the
/// Debian package), else the platform's per-user data directory.
pub(super) fn fallback_data_dir(
    env: &impl Fn(&str) -> Option<String>,
) -> Result<PathBuf, ConfigError> {
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

fn default_data_dir() -> Result<PathBuf, ConfigError> {
    directories::ProjectDirs::from("", "", "laned")
        .map(|d| d.data_local_dir().to_owned())
        .ok_or(ConfigError::Invalid {
            key: "data_dir",
            message: "no home directory to derive a default from; give --data-dir".into(),
        })
}
