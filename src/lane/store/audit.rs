//! The audit log: every operator action (a sync requested, a stuck sale
//! retried or resolved, a restore acknowledged) is one row, written in the
//! same transaction as the change it records. Triggers refuse any change
//! to a row once written.

use rusqlite::{Connection, params};

/// One audit entry.
pub(crate) struct Entry<'a> {
    /// When (the store's timestamp text).
    pub at: &'a str,
    /// Who: `cli:<user>`, `admin-api`, `status-page` or what the admin
    /// API's `X-Laned-Actor` named.
    pub actor: &'a str,
    /// What: `sync`, `retry`, `resolve`, `acknowledge_restore`.
    pub action: &'static str,
    /// The sale acted on, if one.
    pub transaction_id: Option<&'a str>,
    /// Why, as the operator gave it.
    pub reason: Option<&'a str>,
    /// The facts of the change, as JSON text.
    pub details: String,
}

/// Appends `entry` to the audit log.
pub(crate) fn write(conn: &Connection, entry: Entry<'_>) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at, actor, action, transaction_id, reason, details)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        entry.at,
        entry.actor,
        entry.action,
        entry.transaction_id,
        entry.reason,
        entry.details
    ])?;
    Ok(())
}
