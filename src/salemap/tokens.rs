//! Lane tokens: which bearer token may post for which lane. The file holds
//! only SHA-256 hashes of the tokens, never the tokens themselves.
//!
//! ```toml
//! # lane id = SHA-256 (hex) of that lane's token
//! [lanes]
//! L03 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why the tokens file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// It cannot be read.
    #[error("cannot read the lane tokens file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// It is not valid.
    #[error("the lane tokens file {path} is not valid")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: toml::de::Error,
    },
    /// A hash is not 64 hex digits, or a lane id is not plain.
    #[error("the lane tokens file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    lanes: BTreeMap<String, String>,
}

/// Who may post: a token hash per lane, or anyone (demos only).
#[derive(Debug, Clone)]
pub enum Lanes {
    /// Each lane's token hash (hex SHA-256), keyed by the hash.
    Tokens(BTreeMap<String, String>),
    /// Any token, or none, posts for the lane its requests name. Local
    /// demos only.
    AnyLane,
}

/// The hex SHA-256 of a token, as the tokens file stores it.
pub fn hash(token: &str) -> String {
    crate::common::hash::sha256_hex(token.as_bytes())
}

impl Lanes {
    /// Reads a tokens file.
    pub fn load(path: &Path) -> Result<Lanes, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
            path: path.to_owned(),
            source,
        })?;
        let f: File = toml::from_str(&text).map_err(|source| TokensError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let mut by_hash = BTreeMap::new();
        for (lane, h) in f.lanes {
            let h = h.trim().to_ascii_lowercase();
            let plain = (1..=32).contains(&lane.len())
                && lane
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !plain {
                return Err(TokensError::Invalid {
                    path: path.to_owned(),
                    message: format!(
                        "{lane:?} is not a lane id (1 to 32 letters, digits, '-', '_')"
                    ),
                });
            }
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(TokensError::Invalid {
                    path: path.to_owned(),
                    message: format!(
                        "the hash for {lane} is not 64 hex digits; make one with `salemap hash-token`"
                    ),
                });
            }
            if let Some(other) = by_hash.insert(h, lane.clone()) {
                return Err(TokensError::Invalid {
                    path: path.to_owned(),
                    message: format!(
                        "{lane} and {other} have the same token; give each lane its own"
                    ),
                });
            }
        }
        Ok(Lanes::Tokens(by_hash))
    }

    /// One lane with one token (embedding, tests).
    pub fn single(lane_id: &str, token: &str) -> Lanes {
        Lanes::Tokens(BTreeMap::from([(hash(token), lane_id.to_owned())]))
    }

    /// Who presents `bearer`: a lane, anyone (demo mode), or `None`
    /// (refused).
    pub fn caller(&self, bearer: Option<&str>) -> Option<Caller<'_>> {
        match self {
            Lanes::AnyLane => Some(Caller::Anyone),
            Lanes::Tokens(by_hash) => bearer
                .and_then(|t| by_hash.get(&hash(t)))
                .map(|l| Caller::Lane(l)),
        }
    }
}

/// Who a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller<'a> {
    /// The lane its token belongs to.
    Lane(&'a str),
    /// Anyone, for any lane (`--allow-any-lane`).
    Anyone,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_maps_to_its_lane_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lanes.toml");
        std::fs::write(
            &p,
            format!(
                "[lanes]\nL03 = \"{}\"\nL04 = \"{}\"\n",
                hash("a"),
                hash("b")
            ),
        )
        .unwrap();
        let lanes = Lanes::load(&p).unwrap();
        assert_eq!(lanes.caller(Some("a")), Some(Caller::Lane("L03")));
        assert_eq!(lanes.caller(Some("b")), Some(Caller::Lane("L04")));
        assert_eq!(lanes.caller(Some("c")), None);
        assert_eq!(lanes.caller(None), None);
        assert_eq!(Lanes::AnyLane.caller(None), Some(Caller::Anyone));
        std::fs::write(&p, "[lanes]\nL03 = \"abc\"\n").unwrap();
        assert!(matches!(Lanes::load(&p), Err(TokensError::Invalid { .. })));
        std::fs::write(
            &p,
            format!("[lanes]\nL03 = \"{0}\"\nL04 = \"{0}\"\n", hash("a")),
        )
        .unwrap();
        assert!(matches!(Lanes::load(&p), Err(TokensError::Invalid { .. })));
    }
}
