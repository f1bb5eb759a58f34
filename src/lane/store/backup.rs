//! `laned backup`: a consistent copy of the lane database made with
//! SQLite's online backup API from a read-only connection, so it works
//! beside a running daemon (one read snapshot, all pages in one step) and
//! when the daemon is down. The copy is written next to its destination,
//! fsynced, checked with `PRAGMA integrity_check`, then renamed into place:
//! a destination either does not exist or holds a whole, checked copy.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use super::StoreError;
use super::offline::ReadOnly;

/// What a backup holds.
#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    /// Where it was written.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The lane it belongs to.
    pub lane_id: Option<String>,
    /// Sales in it.
    pub sales: i64,
    /// Its schema version.
    pub schema_version: i64,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::Io { what, path, source }
}

impl ReadOnly {
    /// `PRAGMA integrity_check`: empty when the database is sound, else
    /// SQLite's findings (at most 100).
    pub fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        integrity(&self.conn)
    }

    /// Copies the database to `dest`, which must not exist yet.
    pub fn backup(&self, dest: &Path) -> Result<BackupSummary, StoreError> {
        if dest.exists() {
            return Err(StoreError::BackupExists {
                path: dest.to_owned(),
            });
        }
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some(name) = name else {
            return Err(StoreError::BackupNotAFile {
                path: dest.to_owned(),
            });
        };
        // The copy is first written to a hidden file beside `dest`: say
        // which directory is missing rather than name that file.
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(StoreError::BackupNoDirectory {
                dir: dir.to_owned(),
            });
        }
        let partial = dest.with_file_name(format!(".{name}.partial"));
        let _ = std::fs::remove_file(&partial);
        let result = self.copy_to(&partial);
        let summary = match result {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        std::fs::rename(&partial, dest).map_err(io("move the backup into place", dest))?;
        sync_dir(dest)?;
        Ok(BackupSummary {
            path: dest.to_owned(),
            ..summary
        })
    }

    fn copy_to(&self, partial: &Path) -> Result<BackupSummary, StoreError> {
        // Owner-only, like the database itself: it holds every sale.
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        opts.open(partial)
            .map_err(io("create the backup file", partial))?;
        let sql = |what: &'static str| move |e| StoreError::sqlite(what, e);
        {
            let mut dst = Connection::open(partial).map_err(sql("open the backup file"))?;
            let backup = rusqlite::backup::Backup::new(&self.conn, &mut dst)
                .map_err(sql("start the backup"))?;
            // All pages in one step: one read snapshot of the source, so the
            // copy is consistent however busy the daemon is.
            match backup.step(-1).map_err(sql("copy the database"))? {
                rusqlite::backup::StepResult::Done => {}
                other => {
                    return Err(StoreError::BackupUnfinished {
                        step: format!("{other:?}"),
                    });
                }
            }
            drop(backup);
            // Not in WAL mode: the copy is one self-contained file.
            dst.pragma_update(None, "journal_mode", "DELETE")
                .map_err(sql("finish the backup file"))?;
            dst.close()
                .map_err(|(_, e)| StoreError::sqlite("close the backup file", e))?;
        }
        std::fs::File::open(partial)
            .and_then(|f| f.sync_all())
            .map_err(io("flush the backup file to disk", partial))?;
        let check = Connection::open_with_flags(partial, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sql("open the backup to check it"))?;
        let problems = integrity(&check)?;
        if !problems.is_empty() {
            return Err(StoreError::BackupDamaged { problems });
        }
        let sales: i64 = check
            .query_row("SELECT COUNT(*) FROM sales", [], |r| r.get(0))
            .map_err(sql("count the sales in the backup"))?;
        let lane_id: Option<String> = check
            .query_row(
                "SELECT value FROM lane_meta WHERE key = 'lane_id'",
                [],
                |r| r.get(0),
            )
            .ok();
        let schema_version: i64 = check
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql("read the backup's schema version"))?;
        let bytes = std::fs::metadata(partial)
            .map_err(io("inspect the backup file", partial))?
            .len();
        Ok(BackupSummary {
            path: partial.to_owned(),
            bytes,
            lane_id,
            sales,
            schema_version,
        })
    }
}

fn integrity(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let q = || -> rusqlite::Result<Vec<String>> {
        let mut st = conn.prepare("PRAGMA integrity_check")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    };
    let found = q().map_err(|e| StoreError::sqlite("check the database's integrity", e))?;
    Ok(found.into_iter().filter(|l| l != "ok").collect())
}

/// Makes the rename durable (Unix; elsewhere the rename is what we have).
fn sync_dir(file: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        let dir = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("flush the backup's directory", dir))?;
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}
