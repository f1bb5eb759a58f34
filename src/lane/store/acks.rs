//! The back-end's signing key, as the lane pinned it
//! (docs/backend-contract.md, "Signed acknowledgements").

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use crate::contract::Keys;
use crate::contract::ack::PublicKey;

/// Where the pinned key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// The back-end's heartbeat, the first time it named one.
    FirstContact,
    /// The lane's configuration (`backend_key`).
    Config,
}

impl KeySource {
    fn as_str(self) -> &'static str {
        match self {
            KeySource::FirstContact => "first_contact",
            KeySource::Config => "config",
        }
    }
}

/// The pinned key, if any.
pub fn pinned(conn: &Connection) -> Result<Option<(Keys, String)>, StoreError> {
    conn.prepare_cached("SELECT tenant, key_id, public_key, source FROM backend_key WHERE id = 1")
        .and_then(|mut st| {
            st.query_row([], |r| {
                Ok((
                    Keys {
                        tenant: r.get(0)?,
                        signing_key: PublicKey {
                            key_id: r.get(1)?,
                            algorithm: crate::contract::ack::ED25519.into(),
                            public_key: r.get(2)?,
                        },
                    },
                    r.get(3)?,
                ))
            })
            .optional()
        })
        .map_err(|e| StoreError::sqlite("read the pinned back-end key", e))
}

/// Pins `keys` (replacing a pinned key only when `source` is the
/// configuration, which an operator changes on purpose).
pub fn pin(conn: &Connection, keys: &Keys, source: KeySource, now: &str) -> Result<(), StoreError> {
    let sql = match source {
        KeySource::FirstContact => {
            "INSERT INTO backend_key (id, tenant, key_id, public_key, pinned_at, source)
             VALUES (1, ?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING"
        }
        KeySource::Config => {
            "INSERT INTO backend_key (id, tenant, key_id, public_key, pinned_at, source)
             VALUES (1, ?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, key_id = excluded.key_id,
                 public_key = excluded.public_key, pinned_at = excluded.pinned_at,
                 source = excluded.source
             WHERE backend_key.public_key <> excluded.public_key
                OR backend_key.tenant <> excluded.tenant"
        }
    };
    conn.prepare_cached(sql)
        .and_then(|mut st| {
            st.execute(params![
                keys.tenant,
                keys.signing_key.key_id,
                keys.signing_key.public_key,
                now,
                source.as_str()
            ])
        })
        .map(drop)
        .map_err(|e| StoreError::sqlite("pin the back-end's key", e))
}
