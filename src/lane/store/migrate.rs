//! The lane schema's migrations: numbered SQL files under `schema/lane/`,
//! applied by the common runner (`common::migrate`), each in one
//! transaction together with its `user_version` bump. A landed migration
//! is never edited; new ones are appended here.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;
use super::open::APPLICATION_ID;
use crate::common::migrate::{Header, MigrateError, Migration, Sqlite};

/// The lane schema's migrations, in order. Index `i` brings the database
/// from `user_version = i` to `i + 1`.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "0001_initial",
        sql: include_str!("../../../schema/lane/0001_initial.sql"),
    },
    Migration {
        name: "0002_drain",
        sql: include_str!("../../../schema/lane/0002_drain.sql"),
    },
    Migration {
        name: "0003_lane_clock",
        sql: include_str!("../../../schema/lane/0003_lane_clock.sql"),
    },
    Migration {
        name: "0004_restore_guard",
        sql: include_str!("../../../schema/lane/0004_restore_guard.sql"),
    },
    Migration {
        name: "0005_boot_clock",
        sql: include_str!("../../../schema/lane/0005_boot_clock.sql"),
    },
    Migration {
        name: "0006_tallies",
        sql: include_str!("../../../schema/lane/0006_tallies.sql"),
    },
    Migration {
        name: "0007_journal",
        sql: include_str!("../../../schema/lane/0007_journal.sql"),
    },
    Migration {
        name: "0008_closings",
        sql: include_str!("../../../schema/lane/0008_closings.sql"),
    },
    Migration {
        name: "0009_acks",
        sql: include_str!("../../../schema/lane/0009_acks.sql"),
    },
];

/// The lane's SQLite store, as the runner sees it.
const LANE: Sqlite = Sqlite {
    store: "lane",
    application_id: APPLICATION_ID,
    migrations: MIGRATIONS,
};

/// The schema version this binary writes.
pub fn latest() -> i64 {
    crate::common::migrate::latest(MIGRATIONS)
}

/// The runner's refusal or failure, as a store error naming `path`.
fn store_error(e: MigrateError, path: &Path) -> StoreError {
    match e {
        MigrateError::Header(e) => StoreError::sqlite("read database header", e),
        MigrateError::Foreign => StoreError::ForeignDatabase {
            path: path.to_owned(),
        },
        MigrateError::Newer { found, supported } => StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            supported,
        },
        MigrateError::Step { name, line, source } => StoreError::Migration { name, line, source },
    }
}

/// Reads the header of an existing database.
pub fn header(conn: &Connection) -> Result<Header, StoreError> {
    Sqlite::header(conn).map_err(|e| store_error(e, Path::new("")))
}

/// Refuses a database this binary must not modify: one made by something
/// else, or by a newer laned.
pub fn check_compatible(h: Header, path: &Path) -> Result<(), StoreError> {
    LANE.check(h).map_err(|e| store_error(e, path))
}

/// Applies every missing migration. Each runs in its own transaction; a
/// failure rolls that step back and leaves the database at the previous
/// version.
pub fn apply(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    LANE.apply(conn).map_err(|e| store_error(e, path))
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
            LANE.apply_upto(&mut old, start).unwrap();
            let h = header(&old).unwrap();
            assert_eq!(h.user_version, start as i64);
            apply(&mut old, &p).unwrap();
            assert_eq!(schema(&old), want, "upgrading from version {start}");
            assert_eq!(header(&old).unwrap().user_version, latest());
        }
    }

    #[test]
    fn a_foreign_or_newer_database_is_refused_naming_the_file() {
        let h = |application_id, user_version, objects| Header {
            application_id,
            user_version,
            objects,
        };
        let p = Path::new("x.db");
        assert!(check_compatible(h(0, 0, 0), p).is_ok());
        assert!(matches!(
            check_compatible(h(42, 0, 0), p),
            Err(StoreError::ForeignDatabase { path }) if path == p
        ));
        assert!(matches!(
            check_compatible(h(APPLICATION_ID, latest() + 1, 9), p),
            Err(StoreError::NewerSchema { found, .. }) if found == latest() + 1
        ));
    }

    /// One change to the sales table, as the store or a hand-typed
    /// statement could make it.
    #[derive(Debug, Clone)]
    enum Op {
        /// A new sale, return or void (`kind` 0..3) in one of two
        /// currencies.
        Insert { kind: u8, eur: bool, total: i64 },
        /// The `pick`-th sale (modulo their number) moves to a state.
        Move { pick: usize, state: u8 },
        /// Changes made and rolled back.
        RolledBack(Vec<(usize, u8)>),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0u8..3, any::<bool>(), 0i64..100_000).prop_map(|(kind, eur, total)| Op::Insert {
                kind,
                eur,
                total
            }),
            (any::<usize>(), 0u8..4).prop_map(|(pick, state)| Op::Move { pick, state }),
            proptest::collection::vec((any::<usize>(), 0u8..4), 1..4).prop_map(Op::RolledBack),
        ]
    }

    const STATES: [&str; 4] = ["pending", "posted", "stuck", "resolved"];

    fn run(c: &Connection, ops: &[Op], n: &mut usize) {
        let move_sql = "UPDATE sales SET state = ?2 WHERE seq = ?1";
        for op in ops {
            match op {
                Op::Insert { kind, eur, total } => {
                    *n += 1;
                    c.execute(
                        "INSERT INTO sales (transaction_id, kind, series, receipt_no, body,
                                            body_sha256, sale_sha256, currency, total,
                                            business_date, recorded_at)
                         VALUES (?1, ?2, 'S', ?3, x'', ?6, '', ?4, ?5, '2026-11-22', 'now')",
                        rusqlite::params![
                            n.to_string(),
                            ["sale", "return", "void"][*kind as usize],
                            *n as i64,
                            if *eur { "EUR" } else { "KES" },
                            total,
                            crate::contract::journal::hash(b"")
                        ],
                    )
                    .unwrap();
                }
                Op::Move { pick, state } if *n > 0 => {
                    c.execute(
                        move_sql,
                        rusqlite::params![(pick % *n) as i64 + 1, STATES[*state as usize]],
                    )
                    .unwrap();
                }
                Op::Move { .. } => {}
                Op::RolledBack(moves) if *n > 0 => {
                    c.execute_batch("BEGIN").unwrap();
                    for (pick, state) in moves {
                        c.execute(
                            move_sql,
                            rusqlite::params![(pick % *n) as i64 + 1, STATES[*state as usize]],
                        )
                        .unwrap();
                    }
                    c.execute_batch("ROLLBACK").unwrap();
                }
                Op::RolledBack(_) => {}
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(crate::common::testing::proptest_config(Some(64)))]

        /// The figures the triggers keep equal a full recount, whatever
        /// happened: sales stored before the migration that adds them,
        /// sales, returns and voids in two currencies, any state changes,
        /// changes rolled back.
        #[test]
        fn the_kept_tallies_always_equal_a_full_recount(
            before in proptest::collection::vec(op(), 0..30),
            after in proptest::collection::vec(op(), 0..60),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (mut c, p) = fresh(dir.path(), "lane.db");
            let tallies_from = MIGRATIONS.iter().position(|m| m.name == "0006_tallies").unwrap();
            LANE.apply_upto(&mut c, tallies_from).unwrap();
            let mut n = 0;
            run(&c, &before, &mut n);
            apply(&mut c, &p).unwrap();
            run(&c, &after, &mut n);
            proptest::prop_assert_eq!(super::super::read::tally_mismatches(&c).unwrap(), vec![]);
            let counts = super::super::read::status_counts(&c).unwrap();
            let total: i64 = counts.by_state.values().sum();
            proptest::prop_assert_eq!(total, n as i64);
        }
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
