//! Schema migrations: numbered SQL files under `schema/lane/`, applied in
//! order, each in one transaction together with its `user_version` bump.
//! A landed migration is never edited; new ones are appended here.

use rusqlite::Connection;

use super::StoreError;
use super::open::APPLICATION_ID;

/// The lane schema's migrations, in order. Index `i` brings the database
/// from `user_version = i` to `i + 1`.
pub const MIGRATIONS: &[(&str, &str)] = &[(
    "0001_initial",
    include_str!("../../schema/lane/0001_initial.sql"),
)];

/// The schema version this binary writes.
pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

/// What a database says about itself before we touch it.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    /// `PRAGMA application_id`.
    pub application_id: i64,
    /// `PRAGMA user_version`.
    pub user_version: i64,
}

/// Reads the header of an existing database.
pub fn header(conn: &Connection) -> Result<Header, StoreError> {
    let get = |p: &str| -> Result<i64, StoreError> {
        conn.query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))
            .map_err(|e| StoreError::sqlite("read database header", e))
    };
    Ok(Header {
        application_id: get("application_id")?,
        user_version: get("user_version")?,
    })
}

/// Refuses a database this binary must not modify: one made by something
/// else, or by a newer laned.
pub fn check_compatible(h: Header, path: &std::path::Path) -> Result<(), StoreError> {
    if h.application_id != 0 && h.application_id != APPLICATION_ID {
        return Err(StoreError::ForeignDatabase {
            path: path.to_owned(),
        });
    }
    if h.user_version > latest() {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found: h.user_version,
            supported: latest(),
        });
    }
    Ok(())
}

/// Applies every missing migration. Each runs in its own transaction; a
/// failure rolls that step back and leaves the database at the previous
/// version.
pub fn apply(conn: &mut Connection, path: &std::path::Path) -> Result<(), StoreError> {
    let h = header(conn)?;
    check_compatible(h, path)?;
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(h.user_version as usize) {
        let step = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.pragma_update(None, "application_id", APPLICATION_ID)?;
            tx.commit()
        };
        step(conn).map_err(|source| StoreError::Migration { name, source })?;
        tracing::info!(migration = name, "applied schema migration");
    }
    Ok(())
}
