//! The lane database read directly, without the daemon: what support
//! needs most when laned is down (and what works beside a running laned,
//! since WAL lets readers in). The connection is read-only and
//! `query_only`; nothing here can write.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};

use serde::Serialize;

use super::read::{self, ListFilter, SaleRow, StatusCounts, Tally};
use super::{
    DB_FILE, DrainState, Mode, RestoreGuard, StoreError, drain, lane_clock, migrate, open, restore,
};
use crate::lane::ceiling::Checkpoint;

/// A read-only view of a lane database.
pub struct ReadOnly {
    pub(super) conn: Connection,
    path: PathBuf,
}

impl ReadOnly {
    /// Opens `data_dir`'s database read-only. Refuses a missing, foreign
    /// or newer database, and one an older laned has not yet migrated.
    pub fn open(data_dir: &Path) -> Result<ReadOnly, StoreError> {
        let path = data_dir.join(DB_FILE);
        if !path.is_file() {
            return Err(StoreError::NoDatabase { path });
        }
        let conn = open::open(&path, Mode::ReadOnly)?;
        let h = migrate::header(&conn)?;
        migrate::check_compatible(h, &path)?;
        if h.user_version < migrate::latest() {
            return Err(StoreError::OlderSchema {
                path,
                found: h.user_version,
                latest: migrate::latest(),
            });
        }
        Ok(ReadOnly { conn, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lane id recorded in the database.
    pub fn lane_id(&self) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT value FROM lane_meta WHERE key = 'lane_id'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| StoreError::sqlite("read the lane id", e))
    }

    /// Counts and sums, as `/v1/status` shows them.
    pub fn status_counts(&self) -> Result<StatusCounts, StoreError> {
        read::status_counts(&self.conn)
    }

    /// Every document of the fiscal journal through the verifier, in lane
    /// order (docs/journal.md).
    pub fn verify_journal(&self) -> Result<super::journal::VerifyOutcome, StoreError> {
        super::journal::verify(&self.conn, &self.path)
    }

    /// Where the figures kept for the status report differ from a full
    /// recount of the sales (empty when they agree). Reads every sale.
    pub fn tally_mismatches(&self) -> Result<Vec<(Tally, Tally)>, StoreError> {
        read::tally_mismatches(&self.conn)
    }

    /// The drain's lane-level state.
    pub fn drain_state(&self) -> Result<DrainState, StoreError> {
        drain::drain_state(&self.conn)
    }

    /// The restored-lane guard, if raised.
    pub fn restore_guard(&self) -> Result<Option<RestoreGuard>, StoreError> {
        restore::active(&self.conn)
    }

    /// The offline clock's last checkpoint.
    pub fn checkpoint(&self) -> Result<Checkpoint, StoreError> {
        lane_clock::load(&self.conn)
    }

    /// When the oldest pending or stuck sale was recorded.
    pub fn oldest_unsent(&self) -> Result<Option<jiff::Timestamp>, StoreError> {
        lane_clock::oldest_unsent(&self.conn)
    }

    /// One sale.
    pub fn sale(&self, id: uuid::Uuid) -> Result<Option<SaleRow>, StoreError> {
        read::sale_by_id(&self.conn, id)
    }

    /// A page of sales in lane order.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<SaleRow>, StoreError> {
        read::list(&self.conn, filter)
    }

    /// Streams sales in lane order, one consistent snapshot (one read
    /// transaction), row by row: memory stays flat whatever the count.
    /// `state` filters (None: all); `since` keeps sales recorded at or after
    /// it. `each` gets every sale with its attempts; it may stop the export
    /// by returning an error.
    pub fn export<E: From<StoreError>>(
        &self,
        state: Option<super::SaleState>,
        since: Option<&str>,
        mut each: impl FnMut(&SaleRow, &[Attempt]) -> Result<(), E>,
    ) -> Result<u64, E> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|e| StoreError::sqlite("begin the export", e))?;
        let sql = format!(
            "SELECT {} FROM sales WHERE {} AND (?2 IS NULL OR recorded_at >= ?2) ORDER BY seq",
            read::COLUMNS,
            state_filter(state)
        );
        let mut st = tx
            .prepare(&sql)
            .map_err(|e| StoreError::sqlite("prepare the export", e))?;
        let mut rows = st
            .query(rusqlite::params![state.map(|s| s.as_str()), since])
            .map_err(|e| StoreError::sqlite("run the export", e))?;
        let mut n = 0;
        while let Some(r) = rows
            .next()
            .map_err(|e| StoreError::sqlite("read the export", e))?
        {
            let sale = read::sale_row(r).map_err(|e| StoreError::sqlite("read a sale", e))?;
            let attempts = self.attempts(sale.seq)?;
            each(&sale, &attempts)?;
            n += 1;
        }
        Ok(n)
    }

    /// Every document of one business day, with the hash of the bytes the
    /// lane sends and its state, for `laned report` to name what the
    /// back-end does not hold the same.
    pub fn day_documents(
        &self,
        business_date: &str,
    ) -> Result<Vec<crate::contract::reconcile::LaneDocument>, StoreError> {
        let q = || -> rusqlite::Result<Vec<crate::contract::reconcile::LaneDocument>> {
            self.conn
                .prepare(
                    "SELECT transaction_id, series, receipt_no, kind, body_sha256, state, doc_no
                     FROM sales WHERE business_date = ?1 ORDER BY series, receipt_no",
                )?
                .query_map([business_date], |r| {
                    Ok(crate::contract::reconcile::LaneDocument {
                        transaction_id: r.get(0)?,
                        series: r.get(1)?,
                        receipt_no: r.get(2)?,
                        kind: r.get(3)?,
                        hash: r.get(4)?,
                        state: r.get(5)?,
                        doc_no: r.get(6)?,
                    })
                })?
                .collect()
        };
        q().map_err(|e| StoreError::sqlite("read the business day's documents", e))
    }

    /// One business day as the lane holds it, for `laned report`: every
    /// document, the ones delivered (posted, or resolved by hand), and
    /// counts and net amounts per state.
    pub fn day(&self, business_date: &str) -> Result<LaneDay, StoreError> {
        let q = || -> rusqlite::Result<LaneDay> {
            let mut day = LaneDay::default();
            day.all.business_date = business_date.to_owned();
            day.delivered.business_date = business_date.to_owned();
            let mut st = self.conn.prepare(
                "SELECT s.kind, s.state, s.currency,
                        EXISTS (SELECT 1 FROM sales v WHERE v.kind = 'void'
                                AND v.references_id = s.transaction_id),
                        EXISTS (SELECT 1 FROM sales v WHERE v.kind = 'void'
                                AND v.references_id = s.transaction_id
                                AND v.state IN ('posted', 'resolved')),
                        COUNT(*), SUM(s.total)
                 FROM sales s WHERE s.business_date = ?1
                 GROUP BY 1, 2, 3, 4, 5",
            )?;
            let mut rows = st.query([business_date])?;
            while let Some(r) = rows.next()? {
                let (kind, state, currency): (String, String, String) =
                    (r.get(0)?, r.get(1)?, r.get(2)?);
                let (voided, voided_delivered): (bool, bool) = (r.get(3)?, r.get(4)?);
                let (count, sum): (i64, i64) = (r.get(5)?, r.get(6)?);
                day.all.add(&kind, voided, currency.clone(), count, sum);
                if state == "posted" || state == "resolved" {
                    day.delivered
                        .add(&kind, voided_delivered, currency.clone(), count, sum);
                }
                let by = day.by_state.entry(state).or_default();
                by.count += count;
                let sign = match kind.as_str() {
                    "sale" => 1,
                    "return" => -1,
                    _ => 0,
                };
                if sign != 0 {
                    *by.totals.entry(currency).or_default() += sign * sum;
                }
            }
            Ok(day)
        };
        q().map_err(|e| StoreError::sqlite("read the business day", e))
    }

    /// A day's figures so far in each series with documents that day
    /// (`laned report --x`), with counted cash against expected.
    pub fn x_report(
        &self,
        business_date: &str,
        counted: &std::collections::BTreeMap<String, i64>,
    ) -> Result<Vec<super::closing::XReport>, StoreError> {
        let series: Vec<String> = self
            .conn
            .prepare("SELECT DISTINCT series FROM sales WHERE business_date = ?1 ORDER BY 1")
            .and_then(|mut st| st.query_map([business_date], |r| r.get(0))?.collect())
            .map_err(|e| StoreError::sqlite("read the day's series", e))?;
        series
            .iter()
            .map(|s| super::closing::x_report(&self.conn, s, business_date, counted))
            .collect()
    }

    /// The business days of `series` with documents and no closing yet,
    /// up to and including `through`, oldest first.
    pub fn open_days(&self, series: &str, through: &str) -> Result<Vec<String>, StoreError> {
        super::closing::open_days(&self.conn, series, through)
    }

    /// Every closing, in lane order (one per series and day: few).
    pub fn closings(&self) -> Result<Vec<super::closing::ClosingRow>, StoreError> {
        let mut all = super::closing::list(&self.conn, i64::MAX)?;
        all.reverse();
        Ok(all)
    }

    /// How many sales an export with these filters holds.
    pub fn export_count(
        &self,
        state: Option<super::SaleState>,
        since: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT COUNT(*) FROM sales WHERE {} AND (?2 IS NULL OR recorded_at >= ?2)",
                    state_filter(state)
                ),
                rusqlite::params![state.map(|s| s.as_str()), since],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(|e| StoreError::sqlite("count the export", e))
    }

    /// Every delivery attempt of the sale with `seq`, oldest first.
    pub fn attempts(&self, seq: i64) -> Result<Vec<Attempt>, StoreError> {
        let q = || -> rusqlite::Result<Vec<Attempt>> {
            let mut st = self.conn.prepare_cached(
                "SELECT started_at, duration_ms, outcome, http_status, error_code, message
                 FROM attempts WHERE seq = ?1 ORDER BY id",
            )?;
            let rows = st.query_map([seq], |r| {
                Ok(Attempt {
                    started_at: r.get(0)?,
                    duration_ms: r.get(1)?,
                    outcome: r.get(2)?,
                    http_status: r.get(3)?,
                    error_code: r.get(4)?,
                    message: r.get(5)?,
                })
            })?;
            rows.collect()
        };
        q().map_err(|e| StoreError::sqlite("read the attempts", e))
    }
}

/// A business day on the lane (see [`ReadOnly::day`]).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LaneDay {
    /// Every document the lane recorded for the day.
    pub all: crate::contract::Day,
    /// The documents the back-end confirmed (posted) or that were settled
    /// by hand (resolved): what the back-end should hold.
    pub delivered: crate::contract::Day,
    /// Count and net amount (sales minus returns) per sale state.
    pub by_state: std::collections::BTreeMap<String, crate::contract::KindTotals>,
}

/// One delivery attempt of a sale, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// When it started (UTC).
    pub started_at: String,
    /// How long it took.
    pub duration_ms: i64,
    /// posted, stuck, retry or lane_fault.
    pub outcome: String,
    /// The HTTP status, when there was one.
    pub http_status: Option<i64>,
    /// The back-end's (or the transport's) error code.
    pub error_code: Option<String>,
    /// Its message.
    pub message: Option<String>,
}

/// The condition on `?1`, the state an export keeps: `state = ?1` when
/// one is named, so that SQLite reads the (state, seq) index (the default
/// export, the stuck sales, then costs the same among a million sales as
/// among ten); `?1 IS NULL` (always true) for all.
fn state_filter(state: Option<super::SaleState>) -> &'static str {
    if state.is_some() {
        "state = ?1"
    } else {
        "?1 IS NULL"
    }
}
