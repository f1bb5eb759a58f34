//! Read queries, and the pool of read-only connections that runs them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, Row};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::open::{Mode, open};
use super::{SaleState, StoreError, receipt_label};
use crate::contract::Kind;
use serde::Serialize;

/// Read-only connections open at most at once. Reads are short; four is
/// plenty for a till and bounds memory.
const READERS: usize = 4;

/// A sale as stored.
#[derive(Debug, Clone)]
pub struct SaleRow {
    /// Local sequence (delivery order).
    pub seq: i64,
    /// Transaction id.
    pub transaction_id: String,
    /// sale | return | void.
    pub kind: Kind,
    /// The sale a return or void refers to.
    pub references_id: Option<String>,
    /// Receipt series.
    pub series: String,
    /// Receipt number within the series.
    pub receipt_no: i64,
    /// The envelope bytes sent to the back-end.
    pub body: Vec<u8>,
    /// SHA-256 of the canonical sale (repeat detection).
    pub sale_sha256: String,
    /// ISO 4217 currency.
    pub currency: String,
    /// Total in minor units.
    pub total: i64,
    /// Business day.
    pub business_date: String,
    /// When laned stored it (UTC).
    pub recorded_at: String,
    /// Delivery state.
    pub state: SaleState,
    /// The back-end's document number, once posted.
    pub doc_no: Option<String>,
    /// When the back-end posted it.
    pub posted_at: Option<String>,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// When the next attempt is due.
    pub next_attempt_at: Option<String>,
    /// Code of the last delivery error.
    pub last_error_code: Option<String>,
    /// Message of the last delivery error.
    pub last_error: Option<String>,
}

/// A sale as operators see it: `GET /v1/sales` lists it so, and
/// `laned sales` and `laned export` print it.
#[derive(Debug, Serialize)]
pub struct SaleSummary<'a> {
    /// The sale's id.
    pub transaction_id: &'a str,
    /// Lane order.
    pub seq: i64,
    /// Sale, return or void.
    pub kind: Kind,
    /// The sale a return or void refers to.
    pub references: Option<&'a str>,
    /// Receipt series.
    pub series: &'a str,
    /// Receipt number in the series.
    pub receipt_no: i64,
    /// The printable receipt number, e.g. `L03-000042`.
    pub receipt: String,
    /// Delivery state.
    pub state: SaleState,
    /// When the lane stored it.
    pub recorded_at: &'a str,
    /// Trading day.
    pub business_date: &'a str,
    /// ISO 4217.
    pub currency: &'a str,
    /// Total, minor units.
    pub total: i64,
    /// The back-end's document number, once posted or resolved.
    pub doc_no: Option<&'a str>,
    /// When the back-end posted it.
    pub posted_at: Option<&'a str>,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// When it is due again, if scheduled.
    pub next_attempt_at: Option<&'a str>,
    /// The last error it met, if any.
    pub last_error: Option<LastError<'a>>,
}

/// The last error a sale met.
#[derive(Debug, Serialize)]
pub struct LastError<'a> {
    /// The back-end's code, if it gave one.
    pub code: Option<&'a str>,
    /// The sentence.
    pub message: &'a str,
}

impl SaleRow {
    /// The sale as operators see it.
    pub fn summary(&self) -> SaleSummary<'_> {
        let r = self;
        SaleSummary {
            transaction_id: &r.transaction_id,
            seq: r.seq,
            kind: r.kind,
            references: r.references_id.as_deref(),
            series: &r.series,
            receipt_no: r.receipt_no,
            receipt: receipt_label(&r.series, r.receipt_no),
            state: r.state,
            recorded_at: &r.recorded_at,
            business_date: &r.business_date,
            currency: &r.currency,
            total: r.total,
            doc_no: r.doc_no.as_deref(),
            posted_at: r.posted_at.as_deref(),
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at.as_deref(),
            last_error: r.last_error.as_deref().map(|m| LastError {
                code: r.last_error_code.as_deref(),
                message: m,
            }),
        }
    }
}

pub(super) const COLUMNS: &str =
    "seq, transaction_id, kind, references_id, series, receipt_no, body,
    sale_sha256, currency, total, business_date, recorded_at, state, doc_no, posted_at,
    attempts, next_attempt_at, last_error_code, last_error";

pub(super) fn sale_row(r: &Row<'_>) -> rusqlite::Result<SaleRow> {
    let state: String = r.get(12)?;
    let kind: String = r.get(2)?;
    Ok(SaleRow {
        seq: r.get(0)?,
        transaction_id: r.get(1)?,
        // The CHECK constraint keeps other values out of the column.
        kind: Kind::parse(&kind).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                format!("unknown document kind {kind:?}").into(),
            )
        })?,
        references_id: r.get(3)?,
        series: r.get(4)?,
        receipt_no: r.get(5)?,
        body: r.get(6)?,
        sale_sha256: r.get(7)?,
        currency: r.get(8)?,
        total: r.get(9)?,
        business_date: r.get(10)?,
        recorded_at: r.get(11)?,
        // The CHECK constraint keeps other values out of the column.
        state: SaleState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                12,
                rusqlite::types::Type::Text,
                format!("unknown sale state {state:?}").into(),
            )
        })?,
        doc_no: r.get(13)?,
        posted_at: r.get(14)?,
        attempts: r.get(15)?,
        next_attempt_at: r.get(16)?,
        last_error_code: r.get(17)?,
        last_error: r.get(18)?,
    })
}

/// One sale by transaction id.
pub fn sale_by_id(conn: &Connection, id: Uuid) -> Result<Option<SaleRow>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sales WHERE transaction_id = ?1"
    ))
    .and_then(|mut st| st.query_row([id.to_string()], sale_row).optional())
    .map_err(|e| StoreError::sqlite("read a sale", e))
}

/// One sale by its client deduplication key.
pub(super) fn sale_by_client_key(
    conn: &Connection,
    key: &str,
) -> Result<Option<SaleRow>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sales WHERE client_key = ?1"
    ))
    .and_then(|mut st| st.query_row([key], sale_row).optional())
    .map_err(|e| StoreError::sqlite("read a sale", e))
}

/// Which page of sales to list.
#[derive(Debug, Clone)]
pub struct ListFilter {
    /// Only sales in this state.
    pub state: Option<SaleState>,
    /// Only sales with `seq` greater than this (the paging cursor).
    pub after: i64,
    /// Page size.
    pub limit: i64,
}

/// A page of sales in lane order.
pub fn list(conn: &Connection, f: &ListFilter) -> Result<Vec<SaleRow>, StoreError> {
    // One statement per case, so that a page of one state reads the
    // (state, seq) index from `after` on, not every sale of the others:
    // five stuck sales among a million are found at once.
    let q = || -> rusqlite::Result<Vec<SaleRow>> {
        match f.state {
            Some(state) => conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM sales WHERE state = ?1 AND seq > ?2
                     ORDER BY seq LIMIT ?3"
                ))?
                .query_map(
                    rusqlite::params![state.as_str(), f.after, f.limit],
                    sale_row,
                )?
                .collect(),
            None => conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM sales WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                ))?
                .query_map(rusqlite::params![f.after, f.limit], sale_row)?
                .collect(),
        }
    };
    q().map_err(|e| StoreError::sqlite("list sales", e))
}

/// Figures for `/v1/status`.
#[derive(Debug, Clone, Default)]
pub struct StatusCounts {
    /// Number of sales per state (every state present, zero included).
    pub by_state: BTreeMap<&'static str, i64>,
    /// `recorded_at` of the oldest pending sale.
    pub oldest_pending_recorded_at: Option<String>,
    /// Net pending amount per currency: sales minus returns, minor units.
    pub pending_amount: BTreeMap<String, i64>,
    /// Last receipt number issued per series.
    pub last_receipt_no: BTreeMap<String, i64>,
    /// Day closings head office refused or does not take (`stuck`).
    pub closings_stuck: i64,
    /// The last business day closed, per series that has closed one.
    pub closed_through: BTreeMap<String, String>,
}

/// Counts and sums for the status endpoint, in one read transaction so the
/// figures agree with each other.
pub fn status_counts(conn: &Connection) -> Result<StatusCounts, StoreError> {
    let q = || -> rusqlite::Result<StatusCounts> {
        let tx = conn.unchecked_transaction()?;
        let s = counts_in(&tx)?;
        tx.finish()?;
        Ok(s)
    };
    q().map_err(|e| StoreError::sqlite("read status", e))
}

fn counts_in(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<StatusCounts> {
    let mut s = StatusCounts::default();
    for st in SaleState::ALL {
        s.by_state.insert(st.as_str(), 0);
    }
    // The tallies the triggers keep (one row per state and currency): the
    // same figures at a million sales as at ten.
    for row in tallies(tx)? {
        if let Some(k) = SaleState::parse(&row.state) {
            *s.by_state.entry(k.as_str()).or_default() += row.n;
            if k == SaleState::Pending && row.n > 0 {
                *s.pending_amount.entry(row.currency).or_default() += row.net;
            }
        }
    }
    s.oldest_pending_recorded_at = tx
        .prepare_cached(
            "SELECT recorded_at FROM sales WHERE state = 'pending' ORDER BY seq LIMIT 1",
        )?
        .query_row([], |r| r.get(0))
        .optional()?;
    s.closings_stuck = tx
        .prepare_cached("SELECT count(*) FROM closings WHERE state = 'stuck'")?
        .query_row([], |r| r.get(0))?;
    let mut st = tx.prepare_cached("SELECT series, last FROM counters ORDER BY series")?;
    for row in st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
        let (c, v) = row?;
        s.last_receipt_no.insert(c, v);
    }
    // Per series, its last closing's day: one step down the (series,
    // business_date) index, whatever the number of days closed.
    let mut last_closed = tx.prepare_cached(
        "SELECT business_date FROM closings WHERE series = ?1
         ORDER BY business_date DESC LIMIT 1",
    )?;
    for series in s.last_receipt_no.keys() {
        if let Some(day) = last_closed
            .query_row([series], |r| r.get::<_, String>(0))
            .optional()?
        {
            s.closed_through.insert(series.clone(), day);
        }
    }
    Ok(s)
}

/// Sales in one state and currency, and their net amount in minor units
/// (sales add, returns subtract, voids count zero).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// The sales' state.
    pub state: String,
    /// Their currency.
    pub currency: String,
    /// How many.
    pub n: i64,
    /// Their net amount.
    pub net: i64,
}

/// The tallies as kept by the triggers, empty rows left out.
fn tallies(conn: &Connection) -> rusqlite::Result<Vec<Tally>> {
    tally_rows(
        conn,
        "SELECT state, currency, n, net FROM sale_tally WHERE n <> 0 ORDER BY state, currency",
    )
}

/// The same figures counted from every sale: what the tallies must equal.
fn recount(conn: &Connection) -> rusqlite::Result<Vec<Tally>> {
    tally_rows(
        conn,
        "SELECT state, currency, count(*),
                coalesce(sum(CASE kind WHEN 'sale' THEN total WHEN 'return' THEN -total ELSE 0 END), 0)
         FROM sales GROUP BY state, currency ORDER BY state, currency",
    )
}

fn tally_rows(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<Tally>> {
    let mut st = conn.prepare_cached(sql)?;
    st.query_map([], |r| {
        Ok(Tally {
            state: r.get(0)?,
            currency: r.get(1)?,
            n: r.get(2)?,
            net: r.get(3)?,
        })
    })?
    .collect()
}

/// Where the kept tallies differ from a full recount, as
/// `(kept, counted)` pairs of the rows that differ (a missing row is
/// zero). Empty when they agree, which they always should. Reads every
/// sale: for `laned doctor` and the tests, not for the status report.
pub fn tally_mismatches(conn: &Connection) -> Result<Vec<(Tally, Tally)>, StoreError> {
    let q = || -> rusqlite::Result<Vec<(Tally, Tally)>> {
        let tx = conn.unchecked_transaction()?;
        let kept = tallies(&tx)?;
        let counted = recount(&tx)?;
        tx.finish()?;
        let key = |t: &Tally| (t.state.clone(), t.currency.clone());
        let zero = |(state, currency): (String, String)| Tally {
            state,
            currency,
            n: 0,
            net: 0,
        };
        let kept: BTreeMap<_, _> = kept.into_iter().map(|t| (key(&t), t)).collect();
        let counted: BTreeMap<_, _> = counted.into_iter().map(|t| (key(&t), t)).collect();
        let keys: std::collections::BTreeSet<_> =
            kept.keys().chain(counted.keys()).cloned().collect();
        Ok(keys
            .into_iter()
            .filter_map(|k| {
                let a = kept.get(&k).cloned().unwrap_or_else(|| zero(k.clone()));
                let b = counted.get(&k).cloned().unwrap_or_else(|| zero(k));
                (a != b).then_some((a, b))
            })
            .collect())
    };
    q().map_err(|e| StoreError::sqlite("recount the lane's figures", e))
}

/// A bounded pool of read-only connections; queries run on tokio's
/// blocking threads so the async runtime never waits on disk.
pub(super) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl ReadPool {
    pub(super) fn new(path: PathBuf) -> Self {
        ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(READERS),
        }
    }

    pub(super) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let conn = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let path = self.path.clone();
        let (conn, r) = tokio::task::spawn_blocking(move || {
            let conn = match conn {
                Some(c) => c,
                None => match open(&path, Mode::ReadOnly) {
                    Ok(c) => c,
                    Err(e) => return (None, Err(e)),
                },
            };
            let r = f(&conn);
            (Some(conn), r)
        })
        .await
        .map_err(|_| StoreError::Internal("a read task panicked"))?;
        if let Some(c) = conn {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(c);
        }
        r
    }
}
