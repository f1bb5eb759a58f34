//! Schema migrations: numbered SQL files under `schema/lane/`, applied in
//! order, each in one transaction together with its `user_version` bump.
//! A landed migration is never edited; new ones are appended here.

use rusqlite::Connection;

use super::StoreError;
use super::open::APPLICATION_ID;

/// The lane schema's migrations, in order. Index `i` brings the database
/// from `user_version = i` to `i + 1`.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_initial",
        include_str!("../../../schema/lane/0001_initial.sql"),
    ),
    (
        "0002_drain",
        include_str!("../../../schema/lane/0002_drain.sql"),
    ),
    (
        "0003_lane_clock",
        include_str!("../../../schema/lane/0003_lane_clock.sql"),
    ),
    (
        "0004_restore_guard",
        include_str!("../../../schema/lane/0004_restore_guard.sql"),
    ),
    (
        "0005_boot_clock",
        include_str!("../../../schema/lane/0005_boot_clock.sql"),
    ),
];

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
    /// Number of schema objects (tables, indexes, …) in the file.
    pub objects: i64,
}

/// Reads the header of an existing database.
pub fn header(conn: &Connection) -> Result<Header, StoreError> {
    let get = |sql: &str| -> Result<i64, StoreError> {
        conn.query_row(sql, [], |r| r.get(0))
            .map_err(|e| StoreError::sqlite("read database header", e))
    };
    Ok(Header {
        application_id: get("PRAGMA application_id")?,
        user_version: get("PRAGMA user_version")?,
        objects: get("SELECT count(*) FROM sqlite_master")?,
    })
}

/// Refuses a database this binary must not modify: one made by something
/// else, or by a newer laned.
pub fn check_compatible(h: Header, path: &std::path::Path) -> Result<(), StoreError> {
    // application_id 0 is SQLite's default: only an empty file may be a
    // new lane database; anything else with it belongs to another program.
    let foreign = match h.application_id {
        APPLICATION_ID => false,
        0 => h.objects > 0 || h.user_version != 0,
        _ => true,
    };
    if foreign {
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
    apply_upto(conn, path, MIGRATIONS.len())
}

/// Applies the missing migrations among the first `upto`.
fn apply_upto(
    conn: &mut Connection,
    path: &std::path::Path,
    upto: usize,
) -> Result<(), StoreError> {
    let h = header(conn)?;
    check_compatible(h, path)?;
    let pending = MIGRATIONS.iter().enumerate().take(upto);
    for (i, (name, sql)) in pending.skip(h.user_version as usize) {
        let step = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.pragma_update(None, "application_id", APPLICATION_ID)?;
            tx.commit()
        };
        step(conn).map_err(|e| {
            let (source, line) = without_sql(e, sql);
            StoreError::Migration { name, line, source }
        })?;
        tracing::info!(migration = name, "applied schema migration");
    }
    Ok(())
}

/// SQLite's error on a migration without the migration's whole text
/// (rusqlite puts the SQL into the message), and the line it points at.
fn without_sql(e: rusqlite::Error, sql: &str) -> (rusqlite::Error, Option<usize>) {
    match e {
        rusqlite::Error::SqlInputError {
            error,
            msg,
            offset,
            sql: rest,
        } => {
            // `rest` is what was left of the batch when the failing
            // statement was prepared; `offset` counts from its start.
            let start = sql.len().saturating_sub(rest.len());
            let line = usize::try_from(offset).ok().map(|o| {
                let upto = &sql.as_bytes()[..(start + o).min(sql.len())];
                upto.iter().filter(|b| **b == b'\n').count() + 1
            });
            (rusqlite::Error::SqliteFailure(error, Some(msg)), line)
        }
        other => (other, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(conn: &Connection) -> Vec<(String, String, String)> {
        let mut st = conn
            .prepare("SELECT type, name, COALESCE(sql, '') FROM sqlite_master ORDER BY type, name")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn fresh(dir: &std::path::Path, name: &str) -> (Connection, std::path::PathBuf) {
        let path = dir.join(name);
        std::fs::File::create(&path).unwrap();
        (
            super::super::open::open(&path, super::super::Mode::ReadWrite).unwrap(),
            path,
        )
    }

    #[test]
    fn every_upgrade_path_ends_in_the_same_schema_as_a_fresh_database() {
        let dir = tempfile::tempdir().unwrap();
        let (mut new, p) = fresh(dir.path(), "fresh.db");
        apply(&mut new, &p).unwrap();
        let want = schema(&new);
        for start in 1..MIGRATIONS.len() {
            let (mut old, p) = fresh(dir.path(), &format!("from-{start}.db"));
            apply_upto(&mut old, &p, start).unwrap();
            let h = header(&old).unwrap();
            assert_eq!(h.user_version, start as i64);
            apply(&mut old, &p).unwrap();
            assert_eq!(schema(&old), want, "upgrading from version {start}");
            assert_eq!(header(&old).unwrap().user_version, latest());
        }
    }

    #[test]
    fn a_failing_migration_is_reported_in_one_line_naming_its_line() {
        let c = Connection::open_in_memory().unwrap();
        let sql =
            "-- a migration\nCREATE TABLE a (x);\n\nCREATE TABLE b (y);\nCREATE TABLE a (z);\n";
        let (e, line) = without_sql(c.execute_batch(sql).unwrap_err(), sql);
        assert_eq!(line, Some(5));
        let e = StoreError::Migration {
            name: "0009_test",
            line,
            source: e,
        };
        let text = format!("{:#}", anyhow::Error::new(e));
        assert_eq!(
            text,
            "schema migration 0009_test failed at line 5; the database was left at the \
             previous version: table a already exists: Error code 1: SQL logic error"
        );
    }

    #[test]
    fn only_an_empty_file_is_taken_for_a_new_lane_database() {
        let h = |application_id, user_version, objects| Header {
            application_id,
            user_version,
            objects,
        };
        let p = std::path::Path::new("x.db");
        assert!(check_compatible(h(0, 0, 0), p).is_ok());
        assert!(check_compatible(h(APPLICATION_ID, 1, 9), p).is_ok());
        assert!(matches!(
            check_compatible(h(0, 0, 3), p),
            Err(StoreError::ForeignDatabase { .. })
        ));
        assert!(matches!(
            check_compatible(h(0, 7, 0), p),
            Err(StoreError::ForeignDatabase { .. })
        ));
        assert!(matches!(
            check_compatible(h(42, 0, 0), p),
            Err(StoreError::ForeignDatabase { .. })
        ));
        assert!(matches!(
            check_compatible(h(APPLICATION_ID, latest() + 1, 9), p),
            Err(StoreError::NewerSchema { .. })
        ));
    }

    #[test]
    fn the_database_itself_refuses_to_delete_a_sale_or_touch_the_audit_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, p) = fresh(dir.path(), "lane.db");
        apply(&mut c, &p).unwrap();
        c.execute_batch(
            "INSERT INTO sales (transaction_id, kind, series, receipt_no, body, body_sha256,
                                sale_sha256, currency, total, business_date, recorded_at)
             VALUES ('t', 'sale', 'S', 1, x'', '', '', 'KES', 1, '2026-11-22', 'now');
             INSERT INTO audit_log (at, actor, action) VALUES ('now', 'me', 'test');",
        )
        .unwrap();
        for sql in [
            "DELETE FROM sales",
            "DELETE FROM audit_log",
            "UPDATE audit_log SET actor = 'someone else'",
        ] {
            let e = c.execute_batch(sql).unwrap_err();
            assert!(
                e.to_string().contains("never deleted") || e.to_string().contains("append-only"),
                "{sql}: {e}"
            );
        }
        let n: i64 = c
            .query_row("SELECT count(*) FROM sales", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
}
