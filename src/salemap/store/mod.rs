//! The posted sale map (docs/backend-contract.md) on SQLite ([`sqlite`], embedded,
//! the default) or PostgreSQL ([`postgres`], fleets), behind one [`Store`].
//!
//! Both run the INSERT-first algorithm: for each sale the id row is
//! inserted first and the primary key is the gate; a duplicate finds the
//! row and answers the stored document (or `payload_mismatch`); only the
//! sale that inserted the row takes the next document number, from a
//! per-series counter in the same transaction, so a rollback leaves no gap.
//! A batch is one transaction, with a savepoint per sale.

pub mod chain;
pub mod marks;
pub mod postgres;
pub mod sqlite;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

use crate::contract::{Kind, Posted};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
use uuid::Uuid;

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
    /// PostgreSQL failed (or could not be reached).
    #[error("cannot {what}")]
    Postgres {
        /// What the store was doing.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// No PostgreSQL connection could be had from the pool.
    #[error("no database connection")]
    Pool(#[source] deadpool_postgres::PoolError),
    /// The PostgreSQL settings are not usable.
    #[error("the PostgreSQL URL is not usable: {0}")]
    BadUrl(String),
    /// A file or directory of the SQLite database could not be made.
    #[error("cannot {what} {path}")]
    File {
        /// What was being done.
        what: &'static str,
        /// The database file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The database belongs to another program or a newer salemap, or a
    /// migration failed (and left it at the previous version).
    #[error("cannot bring the salemap database {database} to this version's schema")]
    Schema {
        /// The database file, or "the PostgreSQL database".
        database: String,
        /// What the migration runner found.
        #[source]
        source: crate::common::migrate::MigrateError,
    },
    /// PostgreSQL's lock timeout: a sale of this request is being posted by
    /// a transaction that has not finished; nothing of the request was
    /// posted (`409 in_flight`).
    #[error("a sale of this request is being posted by another request right now")]
    InFlight,
    /// A lane posted in a receipt series another lane owns; nothing of the
    /// request was posted (`403 series_of_another_lane`).
    #[error("series {series} belongs to lane {owner}, not to lane {lane}")]
    SeriesOfAnotherLane {
        /// The series.
        series: String,
        /// The lane that owns it (the first to post in it).
        owner: String,
        /// The lane that tried.
        lane: String,
    },
    /// A fault injected by a test: the transaction was rolled back.
    #[error("injected fault: the transaction was rolled back")]
    Injected,
    /// A blocking task could not be joined.
    #[error("the database task stopped unexpectedly")]
    Task,
}

/// One sale to post, parsed and fingerprinted by the API.
#[derive(Debug, Clone)]
pub struct Item {
    /// The idempotency key.
    pub transaction_id: Uuid,
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
    /// SHA-256 (hex) of the envelope bytes: the document's hash.
    pub fingerprint: String,
    /// The envelope bytes as received.
    pub envelope: String,
    /// The journal's link (`None` from before the journal).
    pub prev_hash: Option<String>,
    /// The journal's grand total.
    pub grand_total: Option<BTreeMap<String, i64>>,
}

/// What posting one sale came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Posted now (`201`).
    Posted(Posted),
    /// Posted before with the same bytes (`200`, replayed).
    Replayed(Posted),
    /// Posted before with other bytes (`422 payload_mismatch`).
    Mismatch,
    /// The lane, series and receipt number are posted under another id
    /// (`422 receipt_no_conflict`).
    ReceiptConflict {
        /// The id that holds the number.
        holder: String,
    },
    /// The document's `prev_hash` contradicts a held document
    /// (`422 chain_conflict`): a forked lane.
    ChainConflict {
        /// The held document it contradicts.
        holder: String,
        /// How.
        reason: chain::ConflictReason,
    },
    /// The document's grand total does not follow from its predecessor's
    /// (`422 grand_total_mismatch`).
    GrandTotalMismatch {
        /// What it should carry.
        expected: BTreeMap<String, i64>,
        /// What it carries.
        found: BTreeMap<String, i64>,
    },
}

impl Outcome {
    /// The outcome of a document its chain refuses.
    fn refused(r: chain::Refusal) -> Outcome {
        match r {
            chain::Refusal::Conflict { holder, reason } => {
                Outcome::ChainConflict { holder, reason }
            }
            chain::Refusal::GrandTotal { expected, found } => {
                Outcome::GrandTotalMismatch { expected, found }
            }
        }
    }

    /// A number conflict of a chained document is a forked chain: two
    /// documents of one lane's journal in one place. (A closing's is one
    /// already: closings are always chained.)
    fn chained(self, item_chained: bool) -> Outcome {
        match self {
            Outcome::ReceiptConflict { holder } if item_chained => Outcome::ChainConflict {
                holder,
                reason: chain::ConflictReason::Forked,
            },
            o => o,
        }
    }
}

/// What a void's effect needs of the document it voids.
#[derive(Debug, Clone)]
pub(super) struct VoidedDoc {
    lane_id: String,
    series: String,
    lane_seq: i64,
    kind: Kind,
    total: i64,
}

/// Each item's effect on its series' grand total (docs/journal.md): a
/// void's needs the document it voids, from earlier in the request or from
/// `held` (`None` when salemap does not hold it).
fn effects(items: &[Item], mut held: impl FnMut(&str) -> Option<VoidedDoc>) -> Vec<Option<i64>> {
    use crate::contract::journal::effect;
    items
        .iter()
        .enumerate()
        .map(|(i, it)| match (it.kind, &it.references) {
            (Kind::Void, Some(r)) => {
                let earlier = items[..i]
                    .iter()
                    .rev()
                    .find(|e| e.transaction_id.to_string() == *r)
                    .map(|e| VoidedDoc {
                        lane_id: e.lane_id.clone(),
                        series: e.series.clone(),
                        lane_seq: e.lane_seq,
                        kind: e.kind,
                        total: e.total,
                    });
                let v = earlier.or_else(|| held(r))?;
                let in_series =
                    v.lane_id == it.lane_id && v.series == it.series && v.lane_seq < it.lane_seq;
                Some(effect(
                    Kind::Void,
                    0,
                    in_series.then(|| effect(v.kind, v.total, None)),
                ))
            }
            (kind, _) => Some(effect(kind, it.total, None)),
        })
        .collect()
}

impl Item {
    /// Its place in the chain, with its `effect`.
    fn link(&self, effect: Option<i64>) -> chain::Link {
        chain::Link {
            transaction_id: self.transaction_id.to_string(),
            lane_id: self.lane_id.clone(),
            series: self.series.clone(),
            lane_seq: self.lane_seq,
            number: crate::contract::ack::Number::Receipt(self.receipt_no),
            hash: self.fingerprint.clone(),
            prev_hash: self.prev_hash.clone(),
            grand_total: self.grand_total.clone(),
            currency: Some(self.currency.clone()),
            effect,
        }
    }
}

impl ClosingItem {
    /// Its place in the chain.
    fn link(&self) -> chain::Link {
        chain::Link {
            transaction_id: self.transaction_id.to_string(),
            lane_id: self.lane_id.clone(),
            series: self.series.clone(),
            lane_seq: self.lane_seq,
            number: crate::contract::ack::Number::Closing(self.closing_no),
            hash: self.fingerprint.clone(),
            prev_hash: Some(self.prev_hash.clone()),
            grand_total: Some(self.grand_total.clone()),
            currency: None,
            effect: Some(0),
        }
    }
}

/// A day closing to store (docs/journal.md): its identity and exact bytes.
#[derive(Debug, Clone)]
pub struct ClosingItem {
    /// Its id.
    pub transaction_id: Uuid,
    /// The lane.
    pub lane_id: String,
    /// The series.
    pub series: String,
    /// Gap-free per series.
    pub closing_no: i64,
    /// Its place in lane order.
    pub lane_seq: i64,
    /// The day it closes.
    pub business_date: String,
    /// SHA-256 (hex) of its bytes: its hash.
    pub fingerprint: String,
    /// Its bytes.
    pub envelope: String,
    /// The journal's link.
    pub prev_hash: String,
    /// The series' grand total.
    pub grand_total: BTreeMap<String, i64>,
}

/// A closing the proven chain has reached: its day certificate's facts
/// (signed when served).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certified {
    /// The day it closes.
    pub business_date: String,
    /// The closing's hash.
    pub closing_hash: String,
    /// When salemap certified it.
    pub certified_at: String,
}

/// The document number of a closing: its series and closing number.
pub fn closing_doc_no(series: &str, no: i64) -> String {
    format!("{series}/Z{no:06}")
}

/// A document as support sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Stored {
    /// The document.
    #[serde(flatten)]
    pub doc: Posted,
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

pub use crate::contract::{Day, KindTotals};

/// A held document as an audit bundle carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditDoc {
    /// Its series.
    pub series: String,
    /// Its place in lane order.
    pub lane_seq: i64,
    /// The SHA-256 of its bytes.
    pub hash: String,
    /// Its exact bytes.
    pub envelope: String,
    /// Its document number.
    pub doc_no: String,
    /// When salemap posted it.
    pub posted_at: String,
    /// Its receipt or closing number.
    pub number: crate::contract::ack::Number,
}

/// A day certificate as an audit bundle carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCertificate {
    /// The series.
    pub series: String,
    /// The closing.
    pub closing_no: i64,
    /// Its day.
    pub business_date: String,
    /// The closing's hash.
    pub closing_hash: String,
    /// When salemap certified it.
    pub certified_at: String,
}

/// Where an audit page starts: after this (series, lane_seq, hash).
pub type AuditCursor = Option<(String, i64, String)>;

/// Which post transactions a test makes roll back, by ordinal (from 1).
pub type AbortRule = Box<dyn Fn(u64) -> bool + Send>;

/// Test seam shared by both stores: chosen post transactions roll back
/// after inserting their rows and taking their numbers.
#[derive(Clone, Default)]
struct Aborts {
    rule: Arc<Mutex<Option<AbortRule>>>,
    posts: Arc<AtomicU64>,
}

impl Aborts {
    fn set(&self, rule: Option<AbortRule>) {
        *self.rule.lock().unwrap_or_else(PoisonError::into_inner) = rule;
        self.posts.store(0, Ordering::Relaxed);
    }

    /// Counts a post transaction; true if it must roll back.
    fn now(&self) -> bool {
        let ordinal = self.posts.fetch_add(1, Ordering::Relaxed) + 1;
        self.rule
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|rule| rule(ordinal))
    }
}

/// The printed form of a document number.
pub fn doc_no(series: &str, no: i64) -> String {
    format!("{series}/{no:08}")
}

/// The posted sale map, on either database.
#[derive(Clone)]
pub enum Store {
    /// Embedded SQLite.
    Sqlite(SqliteStore),
    /// PostgreSQL.
    Postgres(PgStore),
}

impl Store {
    /// Posts `items` in one transaction; one outcome per item, in order.
    pub async fn post(
        &self,
        tenant: String,
        items: Vec<Item>,
        posted_at: String,
    ) -> Result<Vec<Outcome>, StoreError> {
        self.post_with(tenant, items, posted_at, |_| ())
            .await
            .map(|(o, ())| o)
    }

    /// [`Store::post`], running `during_commit` on the outcomes while the
    /// commit is flushed to disk (its CPU would otherwise wait for it);
    /// what it gives is only handed back if the commit succeeds.
    pub async fn post_with<T: Send + 'static>(
        &self,
        tenant: String,
        items: Vec<Item>,
        posted_at: String,
        during_commit: impl FnOnce(&[Outcome]) -> T + Send + 'static,
    ) -> Result<(Vec<Outcome>, T), StoreError> {
        match self {
            Store::Sqlite(s) => s.post(tenant, items, posted_at, during_commit).await,
            Store::Postgres(s) => s.post(&tenant, &items, &posted_at, during_commit).await,
        }
    }

    /// Stores a day closing.
    pub async fn post_closing(
        &self,
        tenant: String,
        item: ClosingItem,
        posted_at: String,
    ) -> Result<Outcome, StoreError> {
        match self {
            Store::Sqlite(s) => s.post_closing(tenant, item, posted_at).await,
            Store::Postgres(s) => s.post_closing(&tenant, &item, &posted_at).await,
        }
    }

    /// Highest receipt number per series of `lane_id`.
    pub async fn last_receipt_no(
        &self,
        tenant: String,
        lane_id: String,
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        match self {
            Store::Sqlite(s) => s.last_receipt_no(tenant, lane_id).await,
            Store::Postgres(s) => s.last_receipt_no(&tenant, &lane_id).await,
        }
    }

    /// The certificate of a lane's closing, if its day is certified.
    pub async fn certificate(
        &self,
        tenant: String,
        lane_id: String,
        series: String,
        closing_no: i64,
    ) -> Result<Option<Certified>, StoreError> {
        match self {
            Store::Sqlite(s) => s.certificate(tenant, lane_id, series, closing_no).await,
            Store::Postgres(s) => s.certificate(&tenant, &lane_id, &series, closing_no).await,
        }
    }

    /// One document, for support.
    pub async fn get(&self, tenant: String, id: String) -> Result<Option<Stored>, StoreError> {
        match self {
            Store::Sqlite(s) => s.get(tenant, id).await,
            Store::Postgres(s) => s.get(&tenant, &id).await,
        }
    }

    /// Notes a lane's heartbeat (docs/backend-contract.md, "What head
    /// office sees").
    pub async fn heard(
        &self,
        tenant: String,
        lane_id: String,
        at: String,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.heard(tenant, lane_id, at).await,
            Store::Postgres(s) => s.heard(&tenant, &lane_id, &at).await,
        }
    }

    /// Every lane's marks (or one lane's): one row per lane and series,
    /// whatever the map holds.
    pub async fn marks(
        &self,
        tenant: String,
        lane: Option<String>,
    ) -> Result<Vec<marks::LaneMarks>, StoreError> {
        match self {
            Store::Sqlite(s) => s.marks(tenant, lane).await,
            Store::Postgres(s) => s.marks(&tenant, lane.as_deref()).await,
        }
    }

    /// One lane in full: its marks, holes and refused documents.
    pub async fn detail(
        &self,
        tenant: String,
        lane: String,
    ) -> Result<Option<marks::LaneDetail>, StoreError> {
        match self {
            Store::Sqlite(s) => s.detail(tenant, lane).await,
            Store::Postgres(s) => s.detail(&tenant, &lane).await,
        }
    }

    /// A round trip through the store (SQLite's writing connection, or the
    /// PostgreSQL pool to the server): what the systemd watchdog waits for.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.ping().await,
            Store::Postgres(s) => s.ping().await,
        }
    }

    /// Count and totals of one lane's business day.
    pub async fn day(
        &self,
        tenant: String,
        lane_id: String,
        business_date: String,
    ) -> Result<Day, StoreError> {
        match self {
            Store::Sqlite(s) => s.day(tenant, lane_id, business_date).await,
            Store::Postgres(s) => s.day(&tenant, &lane_id, &business_date).await,
        }
    }

    /// One page of the documents of a lane's business day, in order of
    /// series, receipt number and id, after the document `after` (which
    /// must be one of them: `Ok(None)` otherwise).
    pub async fn day_documents(
        &self,
        tenant: String,
        lane_id: String,
        business_date: String,
        after: Option<String>,
        limit: i64,
    ) -> Result<Option<Vec<crate::contract::HeldDocument>>, StoreError> {
        match self {
            Store::Sqlite(s) => {
                s.day_documents(tenant, lane_id, business_date, after, limit)
                    .await
            }
            Store::Postgres(s) => {
                s.day_documents(&tenant, &lane_id, &business_date, after.as_deref(), limit)
                    .await
            }
        }
    }

    /// Per series of the lane, the last place in lane order of a document
    /// of a business day up to `to`: where its audit bundle ends.
    pub async fn audit_ends(
        &self,
        tenant: String,
        lane_id: String,
        to: String,
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        match self {
            Store::Sqlite(s) => s.audit_ends(tenant, lane_id, to).await,
            Store::Postgres(s) => s.audit_ends(&tenant, &lane_id, &to).await,
        }
    }

    /// One page of the lane's documents in order of series and lane
    /// order, after `after`.
    pub async fn audit_page(
        &self,
        tenant: String,
        lane_id: String,
        after: AuditCursor,
        limit: i64,
    ) -> Result<Vec<AuditDoc>, StoreError> {
        match self {
            Store::Sqlite(s) => s.audit_page(tenant, lane_id, after, limit).await,
            Store::Postgres(s) => s.audit_page(&tenant, &lane_id, after, limit).await,
        }
    }

    /// The lane's day certificates of days up to `to`, by series and
    /// closing number.
    pub async fn audit_certificates(
        &self,
        tenant: String,
        lane_id: String,
        to: String,
    ) -> Result<Vec<AuditCertificate>, StoreError> {
        match self {
            Store::Sqlite(s) => s.audit_certificates(tenant, lane_id, to).await,
            Store::Postgres(s) => s.audit_certificates(&tenant, &lane_id, &to).await,
        }
    }

    /// Test seam: post transactions whose ordinal (counted from 1 from now)
    /// satisfies `rule` roll back after inserting their rows and taking
    /// their numbers, and answer 503. `None` turns it off.
    #[doc(hidden)]
    pub fn inject_aborts(&self, rule: Option<AbortRule>) {
        match self {
            Store::Sqlite(s) => s.aborts().set(rule),
            Store::Postgres(s) => s.aborts().set(rule),
        }
    }
}
