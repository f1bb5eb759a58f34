//! The lane store: the only module that knows SQL.
//!
//! One writer thread owns the only read-write connection and commits
//! concurrent requests together (group commit: one fsync for many sales).
//! Reads go through a small pool of read-only connections, so status and
//! listing never wait for the writer.

pub mod acks;
mod audit;
mod backup;
pub mod closing;
mod drain;
pub mod journal;
mod lane_clock;
mod lock;
mod migrate;
mod offline;
mod open;
mod read;
mod restore;
mod settle;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::ErrorCode;
use serde::Serialize;
use uuid::Uuid;

use crate::common::clock::Clock;
use crate::common::time::fmt_ts;

pub use backup::BackupSummary;
pub use drain::{
    AttemptRecord, Candidate, ClosingCandidate, ClosingDelivery, Delivery, DrainState, Plan,
};
pub use lock::{InstanceLock, LOCK_FILE, listening_on, serving_description};
pub use migrate::{MIGRATIONS, latest as latest_schema_version};
pub use offline::{Attempt, LaneDay, ReadOnly};
pub use open::{APPLICATION_ID, Mode, open as open_connection};
pub use read::{LastError, ListFilter, SaleRow, SaleSummary, StatusCounts, Tally};
pub use restore::{Behind, RestoreGuard};
pub use settle::{
    Operator, Outcome as SettleOutcome, RetryTarget, Settled, valid_doc_no, valid_reason,
};
pub use writer::{ClientKey, InsertOutcome, NewSale};

/// File name of the lane database inside the data directory.
pub const DB_FILE: &str = "lane.db";

/// What can go wrong in the store. Each variant says what the operator or
/// the till can do about it; SQLite's own error is kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk (or the database's size limit) is full: no sale can be
    /// stored until space is freed. Nothing was evicted.
    #[error("storage is full: {what} failed")]
    Full {
        /// The operation that hit the limit.
        what: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// SQLite reports the database file damaged.
    #[error("the database is damaged ({what} failed); restore it from a backup")]
    Corrupt {
        /// The operation that found the damage.
        what: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// Another connection held a lock longer than the busy timeout.
    #[error("the database is busy ({what}); try again")]
    Busy {
        /// The operation.
        what: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// Any other SQLite failure.
    #[error("database error while trying to {what}")]
    Sqlite {
        /// The operation.
        what: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A filesystem operation on the data directory failed.
    #[error("cannot {what} {path}")]
    Io {
        /// The operation.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the data directory.
    #[error("the data directory is in use by {holder} (lock file {path})")]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// What the holder wrote about itself (pid, address, start time).
        holder: String,
    },
    /// The database was written by a newer laned; it is left untouched.
    #[error(
        "{path} has schema version {found}, but this laned only knows versions up to {supported}; \
         it was written by a newer laned. Run that version (or newer); the file was not modified"
    )]
    NewerSchema {
        /// The database.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The newest this binary knows.
        supported: i64,
    },
    /// The file is an SQLite database, but not a laned lane database.
    #[error("{path} is not a laned database (foreign application_id); it was not modified")]
    ForeignDatabase {
        /// The database.
        path: PathBuf,
    },
    /// The database belongs to another lane.
    #[error(
        "{path} belongs to lane {stored:?}, but this daemon is configured as lane {configured:?}; \
         a lane's receipts cannot move to another lane"
    )]
    LaneMismatch {
        /// The database.
        path: PathBuf,
        /// The lane id recorded in it.
        stored: String,
        /// The lane id configured.
        configured: String,
    },
    /// A migration failed; the database stays at the previous version.
    #[error(
        "schema migration {name} failed{}; the database was left at the previous version",
        line.map(|l| format!(" at line {l}")).unwrap_or_default()
    )]
    Migration {
        /// The migration's name.
        name: &'static str,
        /// The line of the migration's SQL where SQLite stopped, if it says.
        line: Option<usize>,
        /// SQLite's error (without the migration's text, so that the
        /// failure stays one log line).
        #[source]
        source: rusqlite::Error,
    },
    /// The file system refused SQLite's write-ahead log, which concurrent
    /// reads and the commit rule need.
    #[error("the file system refused WAL journaling (journal_mode is {journal_mode})")]
    NoWal {
        /// The journal mode SQLite reported instead.
        journal_mode: String,
    },
    /// There is no database where a command that only reads expects one.
    #[error("there is no lane database at {path} (check --data-dir)")]
    NoDatabase {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A command that only reads met a database an older laned wrote and
    /// the daemon has not upgraded yet.
    #[error(
        "{path} is at schema version {found}, older than this laned's {latest}; start the \
         lane's daemon once to upgrade it"
    )]
    OlderSchema {
        /// The database.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The version this binary writes.
        latest: i64,
    },
    /// A backup's destination already exists: a backup never overwrites.
    #[error("{path} already exists; a backup never overwrites a file")]
    BackupExists {
        /// The destination.
        path: PathBuf,
    },
    /// A backup's destination is in a directory that does not exist.
    #[error(
        "{dir} does not exist (or is not a directory); create it or choose another place for the backup"
    )]
    BackupNoDirectory {
        /// The directory.
        dir: PathBuf,
    },
    /// A backup's destination names a directory, not a file.
    #[error("{path} is not a file name")]
    BackupNotAFile {
        /// The destination.
        path: PathBuf,
    },
    /// SQLite's online backup stopped before copying every page.
    #[error("the backup did not finish ({step}); try again")]
    BackupUnfinished {
        /// What the last backup step reported.
        step: String,
    },
    /// The copy failed `PRAGMA integrity_check`; it was not kept.
    #[error("the copy failed its integrity check: {}", problems.join("; "))]
    BackupDamaged {
        /// What the integrity check reported.
        problems: Vec<String>,
    },
    /// The writer thread has stopped (the daemon is shutting down).
    #[error("the store is shutting down")]
    Closed,
    /// The transaction this request was committed in failed as a whole;
    /// nothing in it was stored.
    #[error("the transaction holding this request failed")]
    Batch(#[source] Arc<StoreError>),
    /// Something that cannot happen did; a bug, reported rather than a panic.
    #[error("internal store error: {0}")]
    Internal(&'static str),
    /// The sale's envelope would be larger than the back-end contract
    /// allows; nothing was stored and no number taken.
    #[error("the sale's envelope would be {bytes} bytes, over the {limit} the contract allows")]
    EnvelopeTooLarge {
        /// Its size.
        bytes: usize,
        /// The contract's largest envelope.
        limit: usize,
    },
    /// A stored row could not be decoded.
    #[error("stored data for {what} is not readable")]
    Decode {
        /// What was being decoded.
        what: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The last link of a series' fiscal journal does not hold: the lane
    /// will not number onto it (docs/journal.md).
    #[error(
        "the fiscal journal of series {series} is broken at {document}: {why}; \
         the database was left untouched: run laned verify, and call support"
    )]
    JournalBroken {
        /// The series.
        series: String,
        /// Its last document: `receipt 57` or `closing 3`.
        document: String,
        /// What does not hold.
        why: String,
    },
}

impl StoreError {
    /// Classifies an SQLite error by what it means for the caller.
    pub(crate) fn sqlite(what: &'static str, source: rusqlite::Error) -> StoreError {
        match source.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::Full { what, source },
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                StoreError::Corrupt { what, source }
            }
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StoreError::Busy { what, source }
            }
            _ => StoreError::Sqlite { what, source },
        }
    }
}

/// Who the store belongs to; fixed for the daemon's life.
#[derive(Debug, Clone)]
pub struct LaneIdentity {
    /// The lane id (recorded in the database at first start).
    pub lane_id: String,
    /// The series new receipts are numbered in.
    pub series: String,
}

/// Sale states (docs/support.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaleState {
    /// Stored, not yet delivered.
    Pending,
    /// Delivered; the back-end's document number is known.
    Posted,
    /// Refused by the back-end for a reason a retry will not fix.
    Stuck,
    /// Settled by hand by an operator.
    Resolved,
}

impl SaleState {
    /// Every state, in lifecycle order.
    pub const ALL: [SaleState; 4] = [
        SaleState::Pending,
        SaleState::Posted,
        SaleState::Stuck,
        SaleState::Resolved,
    ];

    /// The name used in SQL, JSON and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            SaleState::Pending => "pending",
            SaleState::Posted => "posted",
            SaleState::Stuck => "stuck",
            SaleState::Resolved => "resolved",
        }
    }

    /// Parses a state name.
    pub fn parse(s: &str) -> Option<SaleState> {
        SaleState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// Handle to the open store. Cheap to clone; every clone talks to the same
/// writer thread and read pool.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    writer: writer::WriterHandle,
    readers: read::ReadPool,
    path: PathBuf,
    identity: LaneIdentity,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the lane database in `data_dir`: takes the
    /// instance lock, refuses a newer or foreign database without touching
    /// it, applies migrations, and starts the writer thread.
    pub fn open(
        data_dir: &Path,
        identity: LaneIdentity,
        clock: Arc<dyn Clock>,
    ) -> Result<(Store, InstanceLock), StoreError> {
        let lock = Store::lock(data_dir, &identity.lane_id, clock.as_ref())?;
        Store::open_locked(data_dir, lock, identity, clock)
    }

    /// Takes the instance lock of `data_dir` (creating the directory,
    /// owner-only, if needed) and says who holds it, without opening the
    /// database: a daemon checks what else can fail (its port) before it
    /// creates or migrates anything.
    pub fn lock(
        data_dir: &Path,
        lane_id: &str,
        clock: &dyn Clock,
    ) -> Result<InstanceLock, StoreError> {
        ensure_private_dir(data_dir)?;
        let mut lock = InstanceLock::acquire(data_dir)?;
        // Say who holds it at once, so a second instance started while this
        // one migrates names this process, not a previous holder.
        lock.describe(&format!(
            "laned pid {} (lane {lane_id}, starting since {})",
            std::process::id(),
            fmt_ts(clock.wall())
        ))?;
        Ok(lock)
    }

    /// [`Store::open`] under a lock already taken with [`Store::lock`].
    pub fn open_locked(
        data_dir: &Path,
        lock: InstanceLock,
        identity: LaneIdentity,
        clock: Arc<dyn Clock>,
    ) -> Result<(Store, InstanceLock), StoreError> {
        let path = data_dir.join(DB_FILE);
        if path.exists() {
            // Look before touching: even setting WAL mode writes to the file.
            let header = open::open(&path, Mode::ReadOnly).and_then(|ro| migrate::header(&ro));
            let header = match header {
                // Not an SQLite file at all (SQLITE_NOTADB).
                Err(StoreError::Corrupt { source, .. })
                    if source.sqlite_error_code() == Some(ErrorCode::NotADatabase) =>
                {
                    return Err(StoreError::ForeignDatabase { path });
                }
                other => other?,
            };
            migrate::check_compatible(header, &path)?;
        } else {
            create_private_file(&path)?;
        }
        let mut conn = open::open(&path, Mode::ReadWrite)?;
        migrate::apply(&mut conn, &path)?;
        journal::check_tail(&conn)?;
        writer::claim_lane(&conn, &path, &identity)?;
        let writer = writer::spawn(conn, identity.clone(), clock)?;
        let readers = read::ReadPool::new(path.clone());
        Ok((
            Store {
                inner: Arc::new(Inner {
                    writer,
                    readers,
                    path,
                    identity,
                }),
            },
            lock,
        ))
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The lane this store belongs to.
    pub fn identity(&self) -> &LaneIdentity {
        &self.inner.identity
    }

    /// Stores a sale durably (committed and fsynced) and gives it the next
    /// receipt number, or finds the sale it repeats.
    pub async fn insert_sale(&self, sale: NewSale) -> Result<InsertOutcome, StoreError> {
        self.inner.writer.insert(sale).await
    }

    /// One sale by transaction id.
    pub async fn sale(&self, id: Uuid) -> Result<Option<SaleRow>, StoreError> {
        self.inner
            .readers
            .run(move |c| read::sale_by_id(c, id))
            .await
    }

    /// A page of sales in lane order.
    pub async fn list(&self, filter: ListFilter) -> Result<Vec<SaleRow>, StoreError> {
        self.inner
            .readers
            .run(move |c| read::list(c, &filter))
            .await
    }

    /// Counts and sums for the status endpoint.
    pub async fn status_counts(&self) -> Result<StatusCounts, StoreError> {
        self.inner.readers.run(read::status_counts).await
    }

    /// Stops the writer after the commands already queued, and waits for it.
    pub async fn close(&self) {
        self.inner.writer.close().await;
    }

    /// The next batch for the drain.
    /// The next batch for the drain. A stuck sale's re-check time further
    /// away than `recheck` can only come from a clock set back since it was
    /// scheduled: such a sale counts as due.
    pub async fn plan_delivery(
        &self,
        now: jiff::Timestamp,
        recheck: std::time::Duration,
        limit: usize,
        policy: crate::lane::config::OnReject,
    ) -> Result<Plan, StoreError> {
        let horizon = fmt_ts(now + recheck);
        let now = fmt_ts(now);
        self.inner
            .readers
            .run(move |c| drain::plan(c, &now, &horizon, limit, policy))
            .await
    }

    /// The lane-level delivery state.
    pub async fn drain_state(&self) -> Result<DrainState, StoreError> {
        self.inner.readers.run(drain::drain_state).await
    }

    /// What a return or void waits for, if anything.
    pub async fn waiting_for(&self, transaction_id: String) -> Result<Option<String>, StoreError> {
        self.inner
            .readers
            .run(move |c| drain::waiting_for(c, &transaction_id))
            .await
    }

    /// Records a round of delivery (attempts, sale states, lane state).
    pub async fn record_delivery(
        &self,
        deliveries: Vec<Delivery>,
        lane: DrainState,
    ) -> Result<(), StoreError> {
        self.inner
            .writer
            .call(move |c, _| drain::record(c, &deliveries, &lane))
            .await
    }

    /// Records a day closing's delivery attempt with the lane-level state.
    pub async fn record_closing_delivery(
        &self,
        delivery: ClosingDelivery,
        lane: DrainState,
    ) -> Result<(), StoreError> {
        self.inner
            .writer
            .call(move |c, _| drain::record_closing(c, &delivery, &lane))
            .await
    }

    /// Replaces the lane-level delivery state only (heartbeats, faults).
    pub async fn set_drain_state(&self, lane: DrainState) -> Result<(), StoreError> {
        self.inner
            .writer
            .call(move |c, _| {
                drain::write_state(c, &lane)
                    .map_err(|e| StoreError::sqlite("write the drain state", e))
            })
            .await
    }

    /// The back-end key the lane pinned, and where it came from
    /// (`first_contact` or `config`).
    pub async fn pinned_key(&self) -> Result<Option<(crate::contract::Keys, String)>, StoreError> {
        self.inner.readers.run(acks::pinned).await
    }

    /// Pins the back-end's key (docs/backend-contract.md): at first
    /// contact only if none is pinned; from the configuration always.
    pub async fn pin_key(
        &self,
        keys: crate::contract::Keys,
        source: acks::KeySource,
        now: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        let now = crate::common::time::fmt_ts(now);
        self.inner
            .writer
            .call(move |c, _| acks::pin(c, &keys, source, &now))
            .await
    }

    /// An operator's "sync now", audit-logged.
    pub async fn sync_now(
        &self,
        now: jiff::Timestamp,
        actor: String,
        reason: String,
    ) -> Result<(), StoreError> {
        let now = fmt_ts(now);
        self.inner
            .writer
            .call(move |c, _| drain::sync_now(c, &now, &actor, &reason))
            .await
    }

    /// The drain takes up a sync requested meanwhile (no audit entry: the
    /// request wrote it).
    pub async fn rearm_for_sync(&self, now: jiff::Timestamp) -> Result<(), StoreError> {
        let now = fmt_ts(now);
        self.inner
            .writer
            .call(move |c, _| drain::rearm_for_sync(c, &now))
            .await
    }

    /// The active restored-lane guard, if any.
    pub async fn restore_guard(&self) -> Result<Option<RestoreGuard>, StoreError> {
        self.inner.readers.run(restore::active).await
    }

    /// Compares the back-end's highest receipt numbers with the lane's
    /// counters; raises the guard if the back-end is ahead. Returns the
    /// active guard.
    pub async fn check_receipt_numbers(
        &self,
        backend: std::collections::BTreeMap<String, i64>,
        now: jiff::Timestamp,
    ) -> Result<Option<RestoreGuard>, StoreError> {
        let now = fmt_ts(now);
        self.inner
            .writer
            .call(move |c, _| restore::check(c, &backend, &now))
            .await
    }

    /// An operator acknowledges a restored lane: numbering continues above
    /// the back-end's numbers; audit-logged. `None` if nothing was guarded.
    pub async fn acknowledge_restore(
        &self,
        now: jiff::Timestamp,
        actor: String,
        reason: String,
    ) -> Result<Option<RestoreGuard>, StoreError> {
        let now = fmt_ts(now);
        self.inner
            .writer
            .call(move |c, _| restore::acknowledge(c, &now, &actor, &reason))
            .await
    }

    /// An operator sends stuck sales back to the drain; audit-logged.
    pub async fn retry(
        &self,
        now: jiff::Timestamp,
        who: Operator,
        target: RetryTarget,
    ) -> Result<SettleOutcome, StoreError> {
        let now = fmt_ts(now);
        self.inner
            .writer
            .call(move |c, _| settle::retry(c, &now, &who, &target))
            .await
    }

    /// An operator records a stuck sale as settled by hand, with the
    /// back-end's document number; audit-logged.
    pub async fn resolve(
        &self,
        now: jiff::Timestamp,
        who: Operator,
        transaction_id: String,
        doc_no: String,
    ) -> Result<SettleOutcome, StoreError> {
        let now = fmt_ts(now);
        self.inner
            .writer
            .call(move |c, _| settle::resolve(c, &now, &who, &transaction_id, &doc_no))
            .await
    }

    /// Closes a business day: records the closing as the series' next
    /// document (docs/journal.md); audit-logged.
    pub async fn close_day(
        &self,
        req: closing::CloseRequest,
    ) -> Result<closing::CloseOutcome, StoreError> {
        self.inner
            .writer
            .call(move |c, ctx| {
                let id = ctx.identity();
                let o = closing::close_day(c, &id.lane_id, &id.series, &ctx.now(), &req);
                ctx.forget_closings();
                o
            })
            .await
    }

    /// The business days of the lane's series with documents and no
    /// closing yet, up to and including `through`, oldest first.
    pub async fn open_days(&self, through: String) -> Result<Vec<String>, StoreError> {
        let series = self.inner.identity.series.clone();
        self.inner
            .readers
            .run(move |c| closing::open_days(c, &series, &through))
            .await
    }

    /// The offline clock's last checkpoint.
    pub async fn load_clock(&self) -> Result<crate::lane::ceiling::Checkpoint, StoreError> {
        self.inner.readers.run(lane_clock::load).await
    }

    /// Writes the offline clock's checkpoint (durably, like every write).
    pub async fn save_clock(&self, cp: crate::lane::ceiling::Checkpoint) -> Result<(), StoreError> {
        self.inner
            .writer
            .call(move |c, _| lane_clock::save(c, &cp))
            .await
    }

    /// `recorded_at` of the oldest pending or stuck sale.
    pub async fn oldest_unsent(&self) -> Result<Option<jiff::Timestamp>, StoreError> {
        self.inner.readers.run(lane_clock::oldest_unsent).await
    }

    /// A round trip through the writer thread: proves it is not wedged.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.inner.writer.ping().await
    }
}

/// Creates the data directory (0700 on Unix), or tightens an existing one.
fn ensure_private_dir(dir: &Path) -> Result<(), StoreError> {
    let io = |what, source| StoreError::Io {
        what,
        path: dir.to_owned(),
        source,
    };
    if crate::common::owner_only::ensure_dir(dir).map_err(|e| io("create the data directory", e))? {
        tracing::warn!(dir = %dir.display(), "data directory was readable by others; set it to 0700");
    }
    Ok(())
}

/// Creates an empty database file readable by the owner only. SQLite gives
/// its `-wal` and `-shm` files the same mode.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    crate::common::owner_only::create_file(path).map_err(|source| StoreError::Io {
        what: "create the database",
        path: path.to_owned(),
        source,
    })
}

/// The printable receipt number, e.g. `L03-000042`.
pub fn receipt_label(series: &str, receipt_no: i64) -> String {
    format!("{series}-{receipt_no:06}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::clock::SystemClock;
    use crate::contract::Kind;

    fn new_sale(i: usize) -> NewSale {
        NewSale {
            transaction_id: Uuid::new_v4(),
            kind: Kind::Sale,
            references: None,
            client_key: None,
            // Large enough that a few dozen sales fill the capped file.
            sale_json: format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(2000)),
            sale_sha256: crate::common::hash::sha256_hex(i.to_string().as_bytes()),
            currency: "KES".into(),
            total: 100,
            business_date: "2026-11-22".into(),
            replay_only: false,
        }
    }

    #[tokio::test]
    async fn a_full_disk_refuses_new_sales_loudly_and_keeps_every_stored_one() {
        let dir = tempfile::tempdir().unwrap();
        let id = LaneIdentity {
            lane_id: "L03".into(),
            series: "L03".into(),
        };
        let (store, _lock) = Store::open(dir.path(), id, Arc::new(SystemClock::new())).unwrap();
        let pages: i64 = {
            let c = open::open(store.path(), Mode::ReadOnly).unwrap();
            c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap()
        };
        store.inner.writer.limit_pages(pages + 20).await.unwrap();
        let mut stored = 0;
        let err = loop {
            match store.insert_sale(new_sale(stored)).await {
                Ok(InsertOutcome::Created(_)) => stored += 1,
                Ok(other) => panic!("unexpected {other:?}"),
                Err(e) => break e,
            }
            assert!(stored < 10_000, "the size cap never took effect");
        };
        let root = match &err {
            StoreError::Batch(inner) => inner.as_ref(),
            e => e,
        };
        assert!(matches!(root, StoreError::Full { .. }), "{err:?}");
        assert!(stored > 0);
        // The refused sale took no number; every stored sale is still there.
        let counts = store.status_counts().await.unwrap();
        assert_eq!(counts.by_state["pending"], stored as i64);
        assert_eq!(counts.last_receipt_no["L03"], stored as i64);
        // (The API answers such an error 507 storage_full: api/error.rs.)
        store.close().await;
    }
}
