//! What the drain reads and writes: the next batch to deliver (in lane
//! order, with the park/block policy and references respected), the
//! lane-level delivery state, and the outcome of each attempt.

use crate::common::time::fmt_ts;
use crate::lane::config::OnReject;
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SaleState, StoreError};

/// A sale ready to be sent.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Lane sequence.
    pub seq: i64,
    /// Transaction id.
    pub transaction_id: String,
    /// `pending`, or `stuck` when this is a re-check.
    pub state: SaleState,
    /// The exact envelope bytes.
    pub body: Vec<u8>,
    /// Its receipt series.
    pub series: String,
    /// Its receipt number.
    pub receipt_no: i64,
}

/// The next batch, and when to look again if it is empty.
#[derive(Debug, Default)]
pub struct Plan {
    /// Sales to send now, in lane order (re-checks of stuck sales first).
    pub sales: Vec<Candidate>,
    /// Earliest `next_attempt_at` of a stuck sale not yet due.
    pub next_recheck_at: Option<Timestamp>,
    /// Pending sales held back: behind a stuck sale in block mode, behind
    /// a day closing not yet delivered, or waiting for the sale they
    /// reference.
    pub held: usize,
    /// A day closing to send after `sales` (docs/journal.md): the first
    /// pending one once every sale before it in lane order has gone, or a
    /// stuck one due for its re-check.
    pub closing: Option<ClosingCandidate>,
}

/// A day closing ready to be sent.
#[derive(Debug, Clone)]
pub struct ClosingCandidate {
    /// Lane sequence.
    pub seq: i64,
    /// Its id.
    pub transaction_id: String,
    /// `pending`, or `stuck` for a re-check.
    pub stuck: bool,
    /// The exact envelope bytes.
    pub body: Vec<u8>,
    /// Its series.
    pub series: String,
    /// Its closing number.
    pub closing_no: i64,
    /// The business day it closes.
    pub business_date: String,
}

/// What became of a closing in one attempt.
#[derive(Debug, Clone)]
pub struct ClosingDelivery {
    /// The closing.
    pub seq: i64,
    /// `posted` or `stuck`, if it moves.
    pub new_state: Option<&'static str>,
    /// Document number and posting time, when posted.
    pub posted: Option<(String, String)>,
    /// The back-end's verified acknowledgement (JSON), when posted.
    pub ack: Option<String>,
    /// The back-end's verified day certificate (JSON), when it sent one.
    pub certificate: Option<String>,
    /// Error code and message, when not posted.
    pub error: Option<(String, String)>,
    /// When to try it again, if ever.
    pub next_attempt_at: Option<Timestamp>,
}

/// Records a closing's delivery attempt and the lane-level state.
pub fn record_closing(
    conn: &Connection,
    d: &ClosingDelivery,
    lane: &DrainState,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE closings SET state = coalesce(?2, state),
                doc_no = coalesce(?3, doc_no), posted_at = coalesce(?4, posted_at),
                attempts = attempts + 1, next_attempt_at = ?5,
                last_error_code = ?6, last_error = ?7, ack = coalesce(?8, ack),
                certificate = coalesce(?9, certificate)
         WHERE seq = ?1",
    )
    .and_then(|mut st| {
        st.execute(params![
            d.seq,
            d.new_state,
            d.posted.as_ref().map(|p| &p.0),
            d.posted.as_ref().map(|p| &p.1),
            d.next_attempt_at.map(fmt_ts),
            d.error.as_ref().map(|e| &e.0),
            d.error.as_ref().map(|e| &e.1),
            d.ack,
            d.certificate,
        ])
    })
    .map_err(|e| StoreError::sqlite("record a closing's delivery", e))?;
    write_state(conn, lane).map_err(|e| StoreError::sqlite("record the drain state", e))
}

/// A closing to send, from `SELECT seq, transaction_id, body, series,
/// closing_no, business_date`.
fn closing_candidate(r: &rusqlite::Row<'_>, stuck: bool) -> rusqlite::Result<ClosingCandidate> {
    Ok(ClosingCandidate {
        seq: r.get(0)?,
        transaction_id: r.get(1)?,
        stuck,
        body: r.get(2)?,
        series: r.get(3)?,
        closing_no: r.get(4)?,
        business_date: r.get(5)?,
    })
}

/// Plans the next batch of at most `limit` sales at time `now` (UTC text).
pub fn plan(
    conn: &Connection,
    now: &str,
    horizon: &str,
    limit: usize,
    policy: OnReject,
) -> Result<Plan, StoreError> {
    let q = || -> rusqlite::Result<Plan> {
        let tx = conn.unchecked_transaction()?;
        let mut plan = Plan::default();
        let first_stuck: Option<(i64, Option<String>)> = tx
            .prepare_cached(
                "SELECT seq, next_attempt_at FROM sales WHERE state = 'stuck' ORDER BY seq LIMIT 1",
            )?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        plan.next_recheck_at = tx
            .prepare_cached(
                "SELECT min(next_attempt_at) FROM sales
                 WHERE state = 'stuck' AND next_attempt_at > ?1 AND next_attempt_at <= ?2",
            )?
            .query_row([now, horizon], |r| timestamp(r, 0))?;
        // Stuck sales due for their re-check go first (they are the oldest).
        // In block mode only the first stuck sale may go: nothing passes it.
        let recheck_limit = match policy {
            OnReject::Park => limit,
            OnReject::Block => 1,
        };
        let mut st = tx.prepare_cached(
            "SELECT seq, transaction_id, body, series, receipt_no FROM sales
             WHERE state = 'stuck'
               AND (next_attempt_at IS NULL OR next_attempt_at <= ?1 OR next_attempt_at > ?3)
             ORDER BY seq LIMIT ?2",
        )?;
        let due = st.query_map(params![now, recheck_limit as i64, horizon], |r| {
            Ok(Candidate {
                seq: r.get(0)?,
                transaction_id: r.get(1)?,
                state: SaleState::Stuck,
                body: r.get(2)?,
                series: r.get(3)?,
                receipt_no: r.get(4)?,
            })
        })?;
        for c in due {
            let c = c?;
            if policy == OnReject::Block && first_stuck.as_ref().is_some_and(|(s, _)| *s != c.seq) {
                break;
            }
            plan.sales.push(c);
        }
        // A day closing goes in lane order: the sales after it wait until
        // it has gone (posted, or stuck and parked).
        let closing: Option<ClosingCandidate> = tx
            .prepare_cached(
                "SELECT seq, transaction_id, body, series, closing_no, business_date FROM closings
                 WHERE state = 'pending' ORDER BY seq LIMIT 1",
            )?
            .query_row([], |r| closing_candidate(r, false))
            .optional()?;
        // In block mode a stuck sale holds everything after it; once it is
        // re-sent and posted, the next plan goes on.
        let barrier = match policy {
            OnReject::Block => first_stuck.map(|(s, _)| s),
            OnReject::Park => None,
        };
        let barrier = match (barrier, closing.as_ref().map(|c| c.seq)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut pending = tx.prepare_cached(
            "SELECT seq, transaction_id, references_id, body, series, receipt_no FROM sales
             WHERE state = 'pending' AND seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let mut reference =
            tx.prepare_cached("SELECT state FROM sales WHERE transaction_id = ?1")?;
        let mut after = 0i64;
        let page = (limit * 2).max(16) as i64;
        'pages: while plan.sales.len() < limit {
            let rows: Vec<(Option<String>, Candidate)> = pending
                .query_map(params![after, page], |r| {
                    Ok((
                        r.get(2)?,
                        Candidate {
                            seq: r.get(0)?,
                            transaction_id: r.get(1)?,
                            state: SaleState::Pending,
                            body: r.get(3)?,
                            series: r.get(4)?,
                            receipt_no: r.get(5)?,
                        },
                    ))
                })?
                .collect::<Result<_, _>>()?;
            if rows.is_empty() {
                break;
            }
            for (references, candidate) in rows {
                let seq = candidate.seq;
                after = seq;
                if barrier.is_some_and(|b| seq > b) {
                    plan.held += 1;
                    break 'pages;
                }
                if plan.sales.len() == limit {
                    break 'pages;
                }
                // A return or void goes only once the sale it references
                // (when that sale is on this lane) is posted or resolved:
                // never in the same round, since the back-end may refuse
                // the sale and accept the return.
                if let Some(r) = &references {
                    let state: Option<String> =
                        reference.query_row([r], |row| row.get(0)).optional()?;
                    let ready =
                        matches!(state.as_deref(), None | Some("posted") | Some("resolved"));
                    if !ready {
                        plan.held += 1;
                        if policy == OnReject::Block {
                            break 'pages;
                        }
                        continue;
                    }
                }
                plan.sales.push(candidate);
            }
        }
        drop(st);
        drop(pending);
        drop(reference);
        // The pending closing is ready once no sale before it waits (in
        // block mode, none is stuck either); else a stuck one due again.
        if let Some(c) = closing {
            let before: i64 = tx
                .prepare_cached(
                    "SELECT count(*) FROM sales WHERE seq < ?1
                     AND (state = 'pending' OR (state = 'stuck' AND ?2))",
                )?
                .query_row(params![c.seq, policy == OnReject::Block], |r| r.get(0))?;
            if before == 0 {
                plan.closing = Some(c);
            }
        } else {
            plan.closing = tx
                .prepare_cached(
                    "SELECT seq, transaction_id, body, series, closing_no, business_date
                     FROM closings WHERE state = 'stuck'
                       AND (next_attempt_at IS NULL OR next_attempt_at <= ?1 OR next_attempt_at > ?2)
                     ORDER BY seq LIMIT 1",
                )?
                .query_row([now, horizon], |r| closing_candidate(r, true))
                .optional()?;
        }
        let closing_recheck = tx
            .prepare_cached(
                "SELECT min(next_attempt_at) FROM closings
                 WHERE state = 'stuck' AND next_attempt_at > ?1 AND next_attempt_at <= ?2",
            )?
            .query_row([now, horizon], |r| timestamp(r, 0))?;
        plan.next_recheck_at = match (plan.next_recheck_at, closing_recheck) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tx.finish()?;
        Ok(plan)
    };
    q().map_err(|e| StoreError::sqlite("plan the next delivery", e))
}

/// The transaction id a sale waits for, if it is a return or void whose
/// referenced sale on this lane is not yet posted or resolved.
pub fn waiting_for(conn: &Connection, transaction_id: &str) -> Result<Option<String>, StoreError> {
    conn.prepare_cached(
        "SELECT r.transaction_id FROM sales s JOIN sales r ON r.transaction_id = s.references_id
         WHERE s.transaction_id = ?1 AND s.state IN ('pending', 'stuck')
           AND r.state NOT IN ('posted', 'resolved')",
    )
    .and_then(|mut st| st.query_row([transaction_id], |r| r.get(0)).optional())
    .map_err(|e| StoreError::sqlite("look up what a sale waits for", e))
}

/// Lane-level delivery state (the `drain_state` row).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainState {
    /// Last successful exchange with the back-end.
    pub last_success_at: Option<Timestamp>,
    /// Last attempt of any kind.
    pub last_attempt_at: Option<Timestamp>,
    /// Code of the last failure.
    pub last_error_code: Option<String>,
    /// Message of the last failure.
    pub last_error: Option<String>,
    /// Failures since the last success.
    pub consecutive_failures: i64,
    /// Lane-level fault code (the drain is paused while set).
    pub fault_code: Option<String>,
    /// Lane-level fault message.
    pub fault_message: Option<String>,
    /// When the drain may next try.
    pub next_attempt_at: Option<Timestamp>,
}

/// A timestamp column: stored as text in the one format `fmt_ts` writes;
/// anything else is a conversion error naming the column.
fn timestamp(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<Timestamp>> {
    let text: Option<String> = r.get(i)?;
    text.map(|t| {
        t.parse::<Timestamp>().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    })
    .transpose()
}

/// Reads the drain state.
pub fn drain_state(conn: &Connection) -> Result<DrainState, StoreError> {
    conn.prepare_cached(
        "SELECT last_success_at, last_attempt_at, last_error_code, last_error,
                consecutive_failures, fault_code, fault_message, next_attempt_at
         FROM drain_state WHERE id = 1",
    )
    .and_then(|mut st| {
        st.query_row([], |r| {
            Ok(DrainState {
                last_success_at: timestamp(r, 0)?,
                last_attempt_at: timestamp(r, 1)?,
                last_error_code: r.get(2)?,
                last_error: r.get(3)?,
                consecutive_failures: r.get(4)?,
                fault_code: r.get(5)?,
                fault_message: r.get(6)?,
                next_attempt_at: timestamp(r, 7)?,
            })
        })
    })
    .map_err(|e| StoreError::sqlite("read the drain state", e))
}

/// What became of one sale in one attempt.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The sale.
    pub seq: i64,
    /// The state it moves to, if it moves (posted or stuck).
    pub new_state: Option<SaleState>,
    /// Document number and posting time, when posted.
    pub posted: Option<(String, String)>,
    /// The back-end's verified acknowledgement (JSON), when posted.
    pub ack: Option<String>,
    /// Error code and message, when not posted.
    pub error: Option<(String, String)>,
    /// When to try this sale again, if ever.
    pub next_attempt_at: Option<Timestamp>,
    /// The attempt record.
    pub attempt: AttemptRecord,
}

/// One row of `attempts`.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// When the request started.
    pub started_at: Timestamp,
    /// How long it took.
    pub duration_ms: i64,
    /// posted | stuck | retry | lane_fault.
    pub outcome: &'static str,
    /// HTTP status, if any.
    pub http_status: Option<u16>,
    /// Error code, if any.
    pub error_code: Option<String>,
    /// Message, if any.
    pub message: Option<String>,
}

/// Records the outcome of one round of delivery and the new lane-level
/// state, in one transaction.
pub fn record(
    conn: &Connection,
    deliveries: &[Delivery],
    lane: &DrainState,
) -> Result<(), StoreError> {
    let q = || -> rusqlite::Result<()> {
        let mut attempt = conn.prepare_cached(
            "INSERT INTO attempts (seq, started_at, duration_ms, outcome, http_status, error_code, message)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        // Only sales still waiting for delivery change: an operator may
        // have settled one by hand meanwhile.
        let mut update = conn.prepare_cached(
            "UPDATE sales SET
                 state = COALESCE(?2, state),
                 doc_no = COALESCE(?3, doc_no),
                 posted_at = COALESCE(?4, posted_at),
                 last_error_code = CASE WHEN ?2 = 'posted' THEN NULL ELSE COALESCE(?5, last_error_code) END,
                 last_error = CASE WHEN ?2 = 'posted' THEN NULL ELSE COALESCE(?6, last_error) END,
                 next_attempt_at = ?7,
                 attempts = attempts + 1,
                 ack = COALESCE(?8, ack)
             WHERE seq = ?1 AND state IN ('pending', 'stuck')",
        )?;
        for d in deliveries {
            let a = &d.attempt;
            attempt.execute(params![
                d.seq,
                fmt_ts(a.started_at),
                a.duration_ms,
                a.outcome,
                a.http_status,
                a.error_code,
                a.message
            ])?;
            update.execute(params![
                d.seq,
                d.new_state.map(SaleState::as_str),
                d.posted.as_ref().map(|p| &p.0),
                d.posted.as_ref().map(|p| &p.1),
                d.error.as_ref().map(|e| &e.0),
                d.error.as_ref().map(|e| &e.1),
                d.next_attempt_at.map(fmt_ts),
                d.ack,
            ])?;
        }
        write_state(conn, lane)
    };
    q().map_err(|e| StoreError::sqlite("record a delivery", e))
}

/// Replaces the drain state row.
pub fn write_state(conn: &Connection, s: &DrainState) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE drain_state SET last_success_at = ?1, last_attempt_at = ?2, last_error_code = ?3,
             last_error = ?4, consecutive_failures = ?5, fault_code = ?6, fault_message = ?7,
             next_attempt_at = ?8
         WHERE id = 1",
    )?
    .execute(params![
        s.last_success_at.map(fmt_ts),
        s.last_attempt_at.map(fmt_ts),
        s.last_error_code,
        s.last_error,
        s.consecutive_failures,
        s.fault_code,
        s.fault_message,
        s.next_attempt_at.map(fmt_ts)
    ])
    .map(drop)
}

/// Clears the retry schedule and any lane-level fault and makes every
/// stuck sale due for a re-check; returns how many stuck sales that was.
fn rearm(conn: &Connection, now: &str) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE drain_state SET next_attempt_at = NULL, fault_code = NULL, fault_message = NULL
         WHERE id = 1",
        [],
    )?;
    conn.execute(
        "UPDATE sales SET next_attempt_at = ?1 WHERE state = 'stuck'",
        [now],
    )
}

/// The drain takes up an operator's request for a sync at the start of
/// its next round: an attempt that was on the wire when the request came
/// may have been refused since, and must not swallow it.
pub fn rearm_for_sync(conn: &Connection, now: &str) -> Result<(), StoreError> {
    rearm(conn, now)
        .map(drop)
        .map_err(|e| StoreError::sqlite("take up a sync", e))
}

/// An operator asked to sync now: clear the retry schedule and any
/// lane-level fault, make every stuck sale due for a re-check, and write
/// the audit entry.
pub fn sync_now(conn: &Connection, now: &str, actor: &str, reason: &str) -> Result<(), StoreError> {
    let q = || -> rusqlite::Result<()> {
        let stuck = rearm(conn, now)?;
        super::audit::write(
            conn,
            super::audit::Entry {
                at: now,
                actor,
                action: "sync",
                transaction_id: None,
                reason: Some(reason),
                details: serde_json::json!({"stuck_rechecked": stuck}).to_string(),
            },
        )
    };
    q().map_err(|e| StoreError::sqlite("request a sync", e))
}
