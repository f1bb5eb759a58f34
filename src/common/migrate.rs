//! Schema migrations, one runner for every store: the lane's SQLite file,
//! salemap's SQLite file and salemap's PostgreSQL database. A store's
//! migrations are numbered SQL files under `schema/`, applied in order; a
//! landed migration is never edited, new ones are appended. A database
//! newer than the binary, or made by another program, is refused before
//! anything is written.

use rusqlite::Connection;

/// One migration: its file's name without `.sql`, and its SQL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// `0001_initial` and so on.
    pub name: &'static str,
    /// The statements.
    pub sql: &'static str,
}

/// Why a database was not migrated.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The schema version or the file's header could not be read.
    #[error("cannot read the schema version")]
    Header(#[source] rusqlite::Error),
    /// The file is a database of another program.
    #[error("the database belongs to another program")]
    Foreign,
    /// A newer binary made the database.
    #[error("schema version {found}, this binary knows up to {supported}")]
    Newer {
        /// The database's version.
        found: i64,
        /// The newest this binary knows.
        supported: i64,
    },
    /// A migration failed; its transaction was rolled back and the database
    /// is still at the previous version.
    #[error(
        "schema migration {name} failed{}; the database was left at the previous version",
        line.map(|l| format!(" at line {l}")).unwrap_or_default()
    )]
    Step {
        /// The migration.
        name: &'static str,
        /// The line of its SQL where the database stopped, if it says.
        line: Option<usize>,
        /// The database's error, without the migration's text (so that the
        /// failure stays one log line).
        #[source]
        source: rusqlite::Error,
    },
}

/// The migrations a database at schema `version` still needs, each with
/// the version it brings the database to; a database newer than
/// `migrations` is refused.
pub fn pending(
    migrations: &'static [Migration],
    version: i64,
) -> Result<impl Iterator<Item = (i64, &'static Migration)>, MigrateError> {
    let supported = latest(migrations);
    if version > supported {
        return Err(MigrateError::Newer {
            found: version,
            supported,
        });
    }
    let done = usize::try_from(version).unwrap_or(0);
    Ok(migrations
        .iter()
        .enumerate()
        .skip(done)
        .map(|(i, m)| (i as i64 + 1, m)))
}

/// The schema version `migrations` bring a database to.
pub fn latest(migrations: &[Migration]) -> i64 {
    migrations.len() as i64
}

/// Says a migration was applied, the same way for every store.
pub fn applied(store: &'static str, m: &Migration) {
    tracing::info!(store, migration = m.name, "applied schema migration");
}

/// What an SQLite file says about itself before it is touched.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    /// `PRAGMA application_id`: which program's database it is.
    pub application_id: i64,
    /// `PRAGMA user_version`: the schema version.
    pub user_version: i64,
    /// Number of schema objects (tables, indexes, …) in the file.
    pub objects: i64,
}

/// An SQLite store: its `application_id` and its migrations. The schema
/// version is `PRAGMA user_version`, bumped in each migration's own
/// transaction.
#[derive(Debug, Clone, Copy)]
pub struct Sqlite {
    /// Which store this is, for the log.
    pub store: &'static str,
    /// The `application_id` its files carry.
    pub application_id: i64,
    /// Its migrations, in order.
    pub migrations: &'static [Migration],
}

impl Sqlite {
    /// Reads the header of an existing database.
    pub fn header(conn: &Connection) -> Result<Header, MigrateError> {
        let get = |sql: &str| -> Result<i64, MigrateError> {
            conn.query_row(sql, [], |r| r.get(0))
                .map_err(MigrateError::Header)
        };
        Ok(Header {
            application_id: get("PRAGMA application_id")?,
            user_version: get("PRAGMA user_version")?,
            objects: get("SELECT count(*) FROM sqlite_master")?,
        })
    }

    /// Refuses a database this binary must not modify: one made by another
    /// program, or by a newer version of this one.
    pub fn check(&self, h: Header) -> Result<(), MigrateError> {
        // application_id 0 is SQLite's default: only an empty file may be
        // a new database; anything else with it belongs to another program.
        let foreign = match h.application_id {
            id if id == self.application_id => false,
            0 => h.objects > 0 || h.user_version != 0,
            _ => true,
        };
        if foreign {
            return Err(MigrateError::Foreign);
        }
        pending(self.migrations, h.user_version).map(drop)
    }

    /// Applies every missing migration, each in its own transaction with
    /// its `user_version` bump: a failure rolls that step back and leaves
    /// the database at the previous version.
    pub fn apply(&self, conn: &mut Connection) -> Result<(), MigrateError> {
        self.apply_upto(conn, self.migrations.len())
    }

    /// Applies the missing migrations among the first `upto` (tests build
    /// databases of every earlier version with it).
    pub fn apply_upto(&self, conn: &mut Connection, upto: usize) -> Result<(), MigrateError> {
        let h = Self::header(conn)?;
        self.check(h)?;
        for (version, m) in pending(
            &self.migrations[..upto.min(self.migrations.len())],
            h.user_version,
        )? {
            let step = |conn: &mut Connection| -> rusqlite::Result<()> {
                let tx = conn.transaction()?;
                tx.execute_batch(m.sql)?;
                tx.pragma_update(None, "user_version", version)?;
                tx.pragma_update(None, "application_id", self.application_id)?;
                tx.commit()
            };
            step(conn).map_err(|e| {
                let (source, line) = without_sql(e, m.sql);
                MigrateError::Step {
                    name: m.name,
                    line,
                    source,
                }
            })?;
            applied(self.store, m);
        }
        Ok(())
    }
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

    const TWO: &[Migration] = &[
        Migration {
            name: "0001_a",
            sql: "CREATE TABLE a (x);",
        },
        Migration {
            name: "0002_b",
            sql: "CREATE TABLE b (y);",
        },
    ];

    const STORE: Sqlite = Sqlite {
        store: "test",
        application_id: 0x1234,
        migrations: TWO,
    };

    #[test]
    fn pending_is_what_a_version_lacks_and_a_newer_database_is_refused() {
        let names = |v| {
            pending(TWO, v)
                .map(|p| p.map(|(n, m)| (n, m.name)).collect::<Vec<_>>())
                .map_err(|e| e.to_string())
        };
        assert_eq!(names(0), Ok(vec![(1, "0001_a"), (2, "0002_b")]));
        assert_eq!(names(1), Ok(vec![(2, "0002_b")]));
        assert_eq!(names(2), Ok(vec![]));
        assert_eq!(
            names(3),
            Err("schema version 3, this binary knows up to 2".to_owned())
        );
    }

    #[test]
    fn a_failing_migration_is_reported_in_one_line_naming_its_line() {
        let c = Connection::open_in_memory().unwrap();
        let sql =
            "-- a migration\nCREATE TABLE a (x);\n\nCREATE TABLE b (y);\nCREATE TABLE a (z);\n";
        let (source, line) = without_sql(c.execute_batch(sql).unwrap_err(), sql);
        assert_eq!(line, Some(5));
        let e = MigrateError::Step {
            name: "0009_test",
            line,
            source,
        };
        assert_eq!(
            format!("{:#}", anyhow::Error::new(e)),
            "schema migration 0009_test failed at line 5; the database was left at the \
             previous version: table a already exists: Error code 1: SQL logic error"
        );
    }

    #[test]
    fn only_an_empty_file_or_our_own_is_migrated() {
        let h = |application_id, user_version, objects| Header {
            application_id,
            user_version,
            objects,
        };
        assert!(STORE.check(h(0, 0, 0)).is_ok());
        assert!(STORE.check(h(0x1234, 1, 9)).is_ok());
        for foreign in [h(0, 0, 3), h(0, 7, 0), h(42, 0, 0)] {
            assert!(matches!(STORE.check(foreign), Err(MigrateError::Foreign)));
        }
        assert!(matches!(
            STORE.check(h(0x1234, 3, 9)),
            Err(MigrateError::Newer {
                found: 3,
                supported: 2
            })
        ));
    }

    #[test]
    fn a_failed_step_leaves_the_previous_version_and_the_next_run_goes_on() {
        const BROKEN: &[Migration] = &[
            Migration {
                name: "0001_a",
                sql: "CREATE TABLE a (x);",
            },
            Migration {
                name: "0002_broken",
                sql: "CREATE TABLE b (y); CREATE TABLE a (z);",
            },
        ];
        let store = Sqlite {
            migrations: BROKEN,
            ..STORE
        };
        let mut c = Connection::open_in_memory().unwrap();
        let e = store.apply(&mut c).unwrap_err();
        assert!(
            matches!(
                e,
                MigrateError::Step {
                    name: "0002_broken",
                    ..
                }
            ),
            "{e}"
        );
        let h = Sqlite::header(&c).unwrap();
        assert_eq!((h.user_version, h.application_id), (1, 0x1234));
        let b: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'b'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(b, 0, "the failed step's first statement was rolled back");
        // A binary with the migration fixed goes on from version 1.
        STORE.apply(&mut c).unwrap();
        assert_eq!(Sqlite::header(&c).unwrap().user_version, 2);
    }
}
