//! Lane tokens: which bearer token may post for which lane. The file holds
//! only SHA-256 hashes of the tokens, never the tokens themselves.
//!
//! ```toml
//! # lane id = SHA-256 (hex) of that lane's token
//! [lanes]
//! L03 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//!
//! # Head office: who may read every lane's watermarks, the head-office
//! # page and /metrics (a name = SHA-256 of that reader's token).
//! [office]
//! finance = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
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
    #[serde(default)]
    office: BTreeMap<String, String>,
}

/// The token hashes (hex SHA-256) of the file, each to who holds it.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    /// Each lane's, to its lane id.
    pub lanes: BTreeMap<String, String>,
    /// Head office readers', to their names.
    pub office: BTreeMap<String, String>,
}

/// Who may post: a token hash per lane, or anyone (demos only).
#[derive(Debug, Clone)]
pub enum Lanes {
    /// The tokens of the lanes and of head office's readers.
    Tokens(Tokens),
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
        let mut office = BTreeMap::new();
        for (name, h) in f.office {
            let h = h.trim().to_ascii_lowercase();
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(TokensError::Invalid {
                    path: path.to_owned(),
                    message: format!(
                        "the office hash for {name} is not 64 hex digits; make one with `salemap hash-token`"
                    ),
                });
            }
            if by_hash.contains_key(&h) || office.contains_key(&h) {
                return Err(TokensError::Invalid {
                    path: path.to_owned(),
                    message: format!(
                        "the office token of {name} is also another's; give each its own"
                    ),
                });
            }
            office.insert(h, name);
        }
        Ok(Lanes::Tokens(Tokens {
            lanes: by_hash,
            office,
        }))
    }

    /// One lane with one token (embedding, tests).
    pub fn single(lane_id: &str, token: &str) -> Lanes {
        Lanes::Tokens(Tokens {
            lanes: BTreeMap::from([(hash(token), lane_id.to_owned())]),
            office: BTreeMap::new(),
        })
    }

    /// These tokens and one more lane's (tests, embedding).
    pub fn with_lane(self, lane_id: &str, token: &str) -> Lanes {
        let mut t = self.tokens();
        t.lanes.insert(hash(token), lane_id.to_owned());
        Lanes::Tokens(t)
    }

    /// These tokens and a head office reader's (tests, embedding).
    pub fn with_office(self, name: &str, token: &str) -> Lanes {
        let mut t = self.tokens();
        t.office.insert(hash(token), name.to_owned());
        Lanes::Tokens(t)
    }

    fn tokens(self) -> Tokens {
        match self {
            Lanes::Tokens(t) => t,
            Lanes::AnyLane => Tokens::default(),
        }
    }

    /// Who presents `bearer`: a lane, anyone (demo mode), or `None`
    /// (refused).
    pub fn caller(&self, bearer: Option<&str>) -> Option<Caller<'_>> {
        match self {
            Lanes::AnyLane => Some(Caller::Anyone),
            Lanes::Tokens(t) => {
                let h = hash(bearer?);
                t.lanes
                    .get(&h)
                    .map(|l| Caller::Lane(l))
                    .or_else(|| t.office.get(&h).map(|n| Caller::Office(n)))
            }
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
    /// A head office reader, by name: reads every lane, posts for none.
    Office(&'a str),
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
        std::fs::write(
            &p,
            format!(
                "[lanes]\nL03 = \"{}\"\n[office]\nfinance = \"{}\"\n",
                hash("a"),
                hash("f")
            ),
        )
        .unwrap();
        let lanes = Lanes::load(&p).unwrap();
        assert_eq!(lanes.caller(Some("f")), Some(Caller::Office("finance")));
        assert_eq!(lanes.caller(Some("a")), Some(Caller::Lane("L03")));
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
