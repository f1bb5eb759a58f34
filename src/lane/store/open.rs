//! The one place that opens SQLite connections and sets their pragmas.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::StoreError;

/// `PRAGMA application_id` of a laned lane database ("LANE" in ASCII), so a
/// foreign SQLite file given as the data directory is refused, not migrated.
pub const APPLICATION_ID: i64 = 0x4C41_4E45;

/// How long a connection waits on a lock held by another connection before
/// giving up with `SQLITE_BUSY`. Only the CLI and the daemon's own readers
/// ever contend, and only briefly (a checkpoint); five seconds is generous.
const BUSY_TIMEOUT_MS: u32 = 5_000;

/// Whether a connection may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The writer thread's connection: the only one that writes.
    ReadWrite,
    /// Status, listing and export.
    ReadOnly,
}

/// Opens `path` and sets every pragma laned relies on. The file must exist
/// (the store creates it with 0600 before the first open).
pub fn open(path: &Path, mode: Mode) -> Result<Connection, StoreError> {
    let flags = match mode {
        Mode::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE,
        Mode::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| StoreError::sqlite("open", e))?;
    let set = |sql: &str| {
        conn.execute_batch(sql)
            .map_err(|e| StoreError::sqlite("set pragmas", e))
    };
    // Wait for a lock rather than failing at once: readers can meet a
    // checkpoint, and the CLI may open the file while the daemon writes.
    conn.busy_timeout(std::time::Duration::from_millis(u64::from(BUSY_TIMEOUT_MS)))
        .map_err(|e| StoreError::sqlite("set busy timeout", e))?;
    // Attempts reference sales; keep SQLite enforcing it.
    set("PRAGMA foreign_keys = ON;")?;
    match mode {
        Mode::ReadWrite => {
            // WAL: readers never block the writer and the writer never blocks
            // readers, so status and export work while sales stream in.
            // The mode is stored in the file, so read-only opens inherit it.
            let jm: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(|e| StoreError::sqlite("set journal_mode", e))?;
            if !jm.eq_ignore_ascii_case("wal") {
                return Err(StoreError::NoWal { journal_mode: jm });
            }
            // FULL: a commit in WAL mode is fsynced before it returns. This
            // is invariant 1 (an acknowledged sale survives a power cut);
            // NORMAL would lose the last commits on power loss.
            set("PRAGMA synchronous = FULL;")?;
            // Keep the WAL from growing without bound under steady ingest;
            // this is SQLite's default, stated so nobody lowers it blindly.
            set("PRAGMA wal_autocheckpoint = 1000;")?;
        }
        Mode::ReadOnly => {
            // Belt and braces: even a bug cannot write through this handle.
            set("PRAGMA query_only = ON;")?;
        }
    }
    Ok(conn)
}
