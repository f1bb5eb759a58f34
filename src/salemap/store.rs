//! The posted sale map on SQLite: the INSERT-first algorithm of DESIGN §7.
//!
//! Every post runs in one `BEGIN IMMEDIATE` transaction (a batch is one
//! transaction for all its sales, so one fsync for N). For each sale the id
//! row is inserted first: the primary key is the gate. A duplicate finds
//! the row and answers the stored document (or `payload_mismatch`); only
//! the sale that inserted the row takes the next document number, in the
//! same transaction, so a rollback leaves no gap. SQLite has one writer at
//! a time, so a concurrent duplicate waits for the winner's commit or
//! rollback and then sees its row, or finds the gate free and posts itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};
use serde::Serialize;

use crate::contract::Kind;

/// `PRAGMA application_id` of a salemap database ("SMAP").
pub const APPLICATION_ID: i64 = 0x534D_4150;

/// The schema, one file per version.
const MIGRATIONS: &[(&str, &str)] = &[(
    "0001_initial",
    include_str!("../../schema/salemap/sqlite/0001_initial.sql"),
)];

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("cannot {what}")]
    Sqlite {
        /// What the store was doing.
        what: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file belongs to another program or a newer salemap.
    #[error("{path} is not a salemap database this version can use ({why})")]
    Refused {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// A fault injected by a test: the transaction was rolled back.
    #[error("injected fault: the transaction was rolled back")]
    Injected,
    /// A blocking task could not be joined.
    #[error("the database task stopped unexpectedly")]
    Task,
}

fn sql(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { what, source }
}

/// One sale to post, parsed and fingerprinted by the API.
#[derive(Debug, Clone)]
pub struct Item {
    /// The idempotency key.
    pub transaction_id: String,
    /// The lane that sent it.
    pub lane_id: String,
    /// Its receipt series.
    pub series: String,
    /// Its receipt number.
    pub receipt_no: i64,
    /// The lane's sequence number.
    pub lane_seq: i64,
    /// sale, return or void.
    pub kind: Kind,
    /// What a return or void refers to.
    pub references: Option<String>,
    /// Trading day.
    pub business_date: String,
    /// ISO 4217.
    pub currency: String,
    /// Total, minor units.
    pub total: i64,
    /// SHA-256 (hex) of the envelope bytes.
    pub fingerprint: String,
    /// The envelope bytes as received.
    pub envelope: String,
}

/// A posted document, as the lane receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Doc {
    /// The sale's id.
    pub transaction_id: String,
    /// salemap's document number: `SERIES/NNNNNNNN`, gap-free per series.
    pub doc_no: String,
    /// When it was posted (UTC, RFC 3339).
    pub posted_at: String,
}

/// What posting one sale came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Posted now (`201`).
    Posted(Doc),
    /// Posted before with the same bytes (`200`, replayed).
    Replayed(Doc),
    /// Posted before with other bytes (`422 payload_mismatch`).
    Mismatch,
    /// The lane, series and receipt number are posted under another id
    /// (`422 receipt_no_conflict`).
    ReceiptConflict {
        /// The id that holds the number.
        holder: String,
    },
}

/// A document as support sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Stored {
    /// The document.
    #[serde(flatten)]
    pub doc: Doc,
    /// The lane.
    pub lane_id: String,
    /// The receipt.
    pub series: String,
    /// The receipt number.
    pub receipt_no: i64,
    /// sale, return or void.
    pub kind: String,
    /// The void that cancelled it.
    pub voided_by: Option<String>,
    /// The envelope as received.
    pub envelope: Box<serde_json::value::RawValue>,
}

/// Count and amounts of one kind of document on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KindTotals {
    /// Documents.
    pub count: i64,
    /// Sum of totals per currency, minor units.
    pub totals: BTreeMap<String, i64>,
}

/// What salemap holds for one lane and business day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Day {
    /// The lane.
    pub lane_id: String,
    /// The trading day.
    pub business_date: String,
    /// All documents of the day.
    pub count: i64,
    /// Sales not voided.
    pub sales: KindTotals,
    /// Returns not voided.
    pub returns: KindTotals,
    /// Voids.
    pub voids: KindTotals,
    /// Sales and returns cancelled by a void.
    pub voided: KindTotals,
    /// Sales minus returns, not voided, per currency.
    pub net: BTreeMap<String, i64>,
}

/// The SQLite store: one writer connection, one reader (WAL lets reads run
/// beside the writer).
#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
    /// Test seam: which post transactions (numbered from 1) roll back.
    abort: Arc<Mutex<Option<AbortRule>>>,
    posts: Arc<AtomicU64>,
}

/// Which post transactions a test makes roll back, by ordinal (from 1).
pub type AbortRule = Box<dyn Fn(u64) -> bool + Send>;

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic cannot leave a transaction open: `Transaction` rolls back on
    // drop, so the connection is usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn open(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(sql("open the database"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql("set the busy timeout"))?;
    // WAL so reads run beside the writer; FULL so a 201 survives a power
    // cut (the lane forgets a sale once it has the answer).
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        .map_err(sql("set pragmas"))?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Refused {
                path: path.to_owned(),
                why: format!("cannot create its directory: {e}"),
            })?;
        }
        let mut writer = open(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?;
        migrate(&mut writer, path)?;
        let reader = open(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        Ok(SqliteStore {
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
            abort: Arc::new(Mutex::new(None)),
            posts: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Test seam: post transactions whose ordinal (counted from 1 from
    /// now) satisfies `rule` roll back after inserting their rows and
    /// taking their numbers, and answer 503. `None` turns it off.
    #[doc(hidden)]
    pub fn inject_aborts(&self, rule: Option<AbortRule>) {
        *self.abort.lock().unwrap_or_else(PoisonError::into_inner) = rule;
        self.posts.store(0, Ordering::Relaxed);
    }

    /// Posts `items` in one transaction; one outcome per item, in order.
    pub async fn post(
        &self,
        tenant: String,
        items: Vec<Item>,
        posted_at: String,
    ) -> Result<Vec<Outcome>, StoreError> {
        let s = self.clone();
        tokio::task::spawn_blocking(move || s.post_blocking(&tenant, &items, &posted_at))
            .await
            .map_err(|_| StoreError::Task)?
    }

    fn post_blocking(
        &self,
        tenant: &str,
        items: &[Item],
        posted_at: &str,
    ) -> Result<Vec<Outcome>, StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql("begin"))?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(post_one(&tx, tenant, item, posted_at)?);
        }
        let ordinal = self.posts.fetch_add(1, Ordering::Relaxed) + 1;
        let abort = self
            .abort
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|rule| rule(ordinal));
        if abort {
            // Dropping the transaction rolls everything back.
            return Err(StoreError::Injected);
        }
        tx.commit().map_err(sql("commit"))?;
        Ok(out)
    }

    /// Highest receipt number per series of `lane_id`.
    pub async fn last_receipt_no(
        &self,
        tenant: String,
        lane_id: String,
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT series, MAX(receipt_no) FROM posted
                 WHERE tenant = ?1 AND lane_id = ?2 GROUP BY series",
            )?;
            let rows = st.query_map(params![tenant, lane_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    /// One document, for support.
    pub async fn get(&self, tenant: String, id: String) -> Result<Option<Stored>, StoreError> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT transaction_id, doc_no, posted_at, lane_id, series, receipt_no, kind,
                        voided_by, envelope
                 FROM posted WHERE tenant = ?1 AND transaction_id = ?2",
            )?
            .query_row(params![tenant, id], |r| {
                let envelope: String = r.get(8)?;
                Ok(Stored {
                    doc: Doc {
                        transaction_id: r.get(0)?,
                        doc_no: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                        posted_at: r.get(2)?,
                    },
                    lane_id: r.get(3)?,
                    series: r.get(4)?,
                    receipt_no: r.get(5)?,
                    kind: r.get(6)?,
                    voided_by: r.get(7)?,
                    envelope: serde_json::value::RawValue::from_string(envelope).map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            8,
                            rusqlite::types::Type::Text,
                            Box::new(e),
                        )
                    })?,
                })
            })
            .optional()
        })
        .await
    }

    /// Count and totals of one lane's business day.
    pub async fn day(
        &self,
        tenant: String,
        lane_id: String,
        business_date: String,
    ) -> Result<Day, StoreError> {
        self.read(move |c| {
            let mut day = Day {
                lane_id: lane_id.clone(),
                business_date: business_date.clone(),
                ..Day::default()
            };
            let mut st = c.prepare_cached(
                "SELECT kind, voided_by IS NOT NULL, currency, COUNT(*), SUM(total) FROM posted
                 WHERE tenant = ?1 AND lane_id = ?2 AND business_date = ?3
                 GROUP BY kind, voided_by IS NOT NULL, currency",
            )?;
            let mut rows = st.query(params![tenant, lane_id, business_date])?;
            while let Some(r) = rows.next()? {
                let kind: String = r.get(0)?;
                let voided: bool = r.get(1)?;
                let currency: String = r.get(2)?;
                let count: i64 = r.get(3)?;
                let sum: i64 = r.get(4)?;
                day.count += count;
                let bucket = match (kind.as_str(), voided) {
                    (_, true) => &mut day.voided,
                    ("sale", _) => &mut day.sales,
                    ("return", _) => &mut day.returns,
                    _ => &mut day.voids,
                };
                bucket.count += count;
                *bucket.totals.entry(currency.clone()).or_default() += sum;
                let sign = match (kind.as_str(), voided) {
                    ("sale", false) => 1,
                    ("return", false) => -1,
                    _ => 0,
                };
                if sign != 0 {
                    *day.net.entry(currency).or_default() += sign * sum;
                }
            }
            Ok(day)
        })
        .await
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || f(&lock(&reader)).map_err(sql("read")))
            .await
            .map_err(|_| StoreError::Task)?
    }
}

fn post_one(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    item: &Item,
    posted_at: &str,
) -> Result<Outcome, StoreError> {
    // The gate: insert the id row first. A receipt number already live
    // under another id fails the partial unique index; the savepoint undoes
    // only this item.
    tx.execute_batch("SAVEPOINT item")
        .map_err(sql("savepoint"))?;
    let inserted = tx
        .prepare_cached(
            "INSERT INTO posted (tenant, transaction_id, lane_id, series, receipt_no, lane_seq,
                                 kind, references_id, business_date, currency, total,
                                 fingerprint, envelope, posted_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (tenant, transaction_id) DO NOTHING",
        )
        .and_then(|mut st| {
            st.execute(params![
                tenant,
                item.transaction_id,
                item.lane_id,
                item.series,
                item.receipt_no,
                item.lane_seq,
                item.kind.as_str(),
                item.references,
                item.business_date,
                item.currency,
                item.total,
                item.fingerprint,
                item.envelope,
                posted_at,
            ])
        });
    let outcome = match inserted {
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
            tx.execute_batch("ROLLBACK TO item")
                .map_err(sql("roll back an item"))?;
            let holder: Option<String> = tx
                .prepare_cached(
                    "SELECT transaction_id FROM posted
                     WHERE tenant = ?1 AND lane_id = ?2 AND series = ?3 AND receipt_no = ?4
                       AND voided_by IS NULL",
                )
                .and_then(|mut st| {
                    st.query_row(
                        params![tenant, item.lane_id, item.series, item.receipt_no],
                        |r| r.get(0),
                    )
                    .optional()
                })
                .map_err(sql("find the receipt number's holder"))?;
            Outcome::ReceiptConflict {
                holder: holder.unwrap_or_default(),
            }
        }
        Err(e) => {
            return Err(StoreError::Sqlite {
                what: "insert",
                source: e,
            });
        }
        Ok(0) => {
            // Someone posted this id before (the winner has committed: SQLite
            // has one writer at a time).
            let (fingerprint, doc_no, at): (String, Option<String>, String) = tx
                .prepare_cached(
                    "SELECT fingerprint, doc_no, posted_at FROM posted
                     WHERE tenant = ?1 AND transaction_id = ?2",
                )
                .and_then(|mut st| {
                    st.query_row(params![tenant, item.transaction_id], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                })
                .map_err(sql("read the posted document"))?;
            if fingerprint == item.fingerprint {
                Outcome::Replayed(Doc {
                    transaction_id: item.transaction_id.clone(),
                    doc_no: doc_no.unwrap_or_default(),
                    posted_at: at,
                })
            } else {
                Outcome::Mismatch
            }
        }
        Ok(_) => {
            // The winner: take the next number of the series.
            let no: i64 = tx
                .prepare_cached(
                    "INSERT INTO doc_counters (tenant, series, last_no) VALUES (?1, ?2, 1)
                     ON CONFLICT (tenant, series) DO UPDATE SET last_no = last_no + 1
                     RETURNING last_no",
                )
                .and_then(|mut st| st.query_row(params![tenant, item.series], |r| r.get(0)))
                .map_err(sql("take a document number"))?;
            let doc_no = doc_no(&item.series, no);
            tx.prepare_cached(
                "UPDATE posted SET doc_no = ?3 WHERE tenant = ?1 AND transaction_id = ?2",
            )
            .and_then(|mut st| st.execute(params![tenant, item.transaction_id, doc_no]))
            .map_err(sql("number the document"))?;
            if let (Kind::Void, Some(original)) = (item.kind, &item.references) {
                tx.prepare_cached(
                    "UPDATE posted SET voided_by = ?3
                     WHERE tenant = ?1 AND transaction_id = ?2 AND voided_by IS NULL",
                )
                .and_then(|mut st| st.execute(params![tenant, original, item.transaction_id]))
                .map_err(sql("mark the original voided"))?;
            }
            Outcome::Posted(Doc {
                transaction_id: item.transaction_id.clone(),
                doc_no,
                posted_at: posted_at.to_owned(),
            })
        }
    };
    tx.execute_batch("RELEASE item").map_err(sql("release"))?;
    Ok(outcome)
}

/// The printed form of a document number.
pub fn doc_no(series: &str, no: i64) -> String {
    format!("{series}/{no:08}")
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let get = |c: &Connection, q: &str| -> Result<i64, StoreError> {
        c.query_row(q, [], |r| r.get(0))
            .map_err(sql("read the header"))
    };
    let app = get(conn, "PRAGMA application_id")?;
    let version = get(conn, "PRAGMA user_version")?;
    let objects = get(conn, "SELECT count(*) FROM sqlite_master")?;
    let refuse = |why: String| StoreError::Refused {
        path: path.to_owned(),
        why,
    };
    if app != APPLICATION_ID && (app != 0 || objects > 0) {
        return Err(refuse("it belongs to another program".into()));
    }
    let latest = MIGRATIONS.len() as i64;
    if version > latest {
        return Err(refuse(format!(
            "schema version {version}, this salemap knows up to {latest}"
        )));
    }
    for (i, (name, text)) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(sql("begin a migration"))?;
        tx.execute_batch(text).map_err(sql("apply a migration"))?;
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .and_then(|()| tx.pragma_update(None, "application_id", APPLICATION_ID))
            .and_then(|()| tx.commit())
            .map_err(sql("apply a migration"))?;
        tracing::info!(migration = name, "applied salemap schema migration");
    }
    Ok(())
}
