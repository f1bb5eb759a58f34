//! The writer thread: the only read-write connection, with group commit.
//!
//! Callers send jobs over a bounded channel. The thread takes the first job,
//! then every job already queued (up to [`MAX_BATCH`]), runs them in one
//! `BEGIN IMMEDIATE` transaction, each inside its own savepoint so one bad
//! job cannot spoil the others, commits once (one fsync), and only then
//! answers every caller. An answer therefore always means "on disk".

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::value::RawValue;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use super::read::{self, SaleRow};
use super::{LaneIdentity, StoreError, fmt_ts, sha256_hex};
use crate::clock::Clock;
use crate::contract::{Envelope, Kind};

/// Most jobs committed in one transaction. Large enough that 32 or more
/// concurrent tills share an fsync; small enough that no caller waits long
/// behind a huge batch.
pub const MAX_BATCH: usize = 256;

/// Jobs that may wait for the writer before senders feel back-pressure.
const QUEUE: usize = 4096;

/// A sale ready to be stored: validated and canonicalised by the API.
#[derive(Debug, Clone)]
pub struct NewSale {
    /// The sale's transaction id (v4).
    pub transaction_id: Uuid,
    /// sale, return or void.
    pub kind: Kind,
    /// The sale a return or void refers to.
    pub references: Option<Uuid>,
    /// Deduplication key for sales sent without an id.
    pub client_key: Option<ClientKey>,
    /// The sale as accepted, in canonical JSON (the envelope's `sale`).
    pub sale_json: String,
    /// ISO 4217 code.
    pub currency: String,
    /// The sale's total in minor units.
    pub total: i64,
    /// The business day the till assigned.
    pub business_date: String,
}

/// How a sale sent without a transaction id is recognised when sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientKey {
    /// The till's `Idempotency-Key` header: a repeat must carry the same sale.
    Idempotency(String),
    /// The legacy fingerprint (register, invoice, time, kind, lines): a match
    /// *is* the same sale, whatever else differs.
    Legacy(String),
}

impl ClientKey {
    fn column(&self) -> String {
        match self {
            ClientKey::Idempotency(k) => format!("key:{k}"),
            ClientKey::Legacy(f) => format!("legacy:{f}"),
        }
    }
}

/// What storing a sale came to.
#[derive(Debug)]
pub enum InsertOutcome {
    /// Stored now, with a new receipt number.
    Created(SaleRow),
    /// The same sale was stored before; here it is, unchanged.
    Replayed(SaleRow),
    /// The id (or idempotency key) belongs to a different sale; nothing changed.
    Conflict(SaleRow),
}

struct Ctx {
    identity: LaneIdentity,
    clock: Arc<dyn Clock>,
}

/// One unit of work for the writer thread.
trait Job: Send {
    /// Runs inside a savepoint; `false` rolls the savepoint back.
    fn run(&mut self, conn: &Connection, ctx: &Ctx) -> bool;
    /// Answers the caller once the batch's fate is known: `None` means
    /// committed.
    fn finish(self: Box<Self>, batch_error: Option<Arc<StoreError>>);
}

struct Call<F, T> {
    f: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> Job for Call<F, T>
where
    F: FnOnce(&Connection, &Ctx) -> Result<T, StoreError> + Send,
    T: Send,
{
    fn run(&mut self, conn: &Connection, ctx: &Ctx) -> bool {
        let r = match self.f.take() {
            Some(f) => f(conn, ctx),
            None => Err(StoreError::Closed),
        };
        let ok = r.is_ok();
        self.result = Some(r);
        ok
    }

    fn finish(self: Box<Self>, batch_error: Option<Arc<StoreError>>) {
        let this = *self;
        let r = match (batch_error, this.result) {
            // The job's own error stands even when the batch failed too.
            (_, Some(Err(e))) => Err(e),
            (Some(e), _) => Err(StoreError::Batch(e)),
            (None, Some(ok)) => ok,
            (None, None) => Err(StoreError::Closed),
        };
        // The caller may have gone away (client disconnected); the work is
        // committed regardless, which is what durability means.
        let _ = this.reply.send(r);
    }
}

enum Msg {
    Job(Box<dyn Job>),
    Close(oneshot::Sender<()>),
}

/// Sends jobs to the writer thread.
pub(super) struct WriterHandle {
    tx: mpsc::Sender<Msg>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Records the lane id at first start; refuses a database of another lane.
pub(super) fn claim_lane(
    conn: &Connection,
    path: &Path,
    identity: &LaneIdentity,
) -> Result<(), StoreError> {
    let stored: Option<String> = conn
        .query_row(
            "SELECT value FROM lane_meta WHERE key = 'lane_id'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| StoreError::sqlite("read the lane id", e))?;
    match stored {
        Some(s) if s == identity.lane_id => Ok(()),
        Some(s) => Err(StoreError::LaneMismatch {
            path: path.to_owned(),
            stored: s,
            configured: identity.lane_id.clone(),
        }),
        None => conn
            .execute(
                "INSERT INTO lane_meta (key, value) VALUES ('lane_id', ?1)",
                [&identity.lane_id],
            )
            .map(drop)
            .map_err(|e| StoreError::sqlite("record the lane id", e)),
    }
}

/// Starts the writer thread on `conn`.
pub(super) fn spawn(
    conn: Connection,
    identity: LaneIdentity,
    clock: Arc<dyn Clock>,
) -> Result<WriterHandle, StoreError> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let ctx = Ctx { identity, clock };
    let thread = std::thread::Builder::new()
        .name("laned-store-writer".into())
        .spawn(move || writer_loop(conn, rx, ctx))
        .map_err(|source| StoreError::Io {
            what: "start the writer thread for",
            path: Default::default(),
            source,
        })?;
    Ok(WriterHandle {
        tx,
        thread: Mutex::new(Some(thread)),
    })
}

fn writer_loop(mut conn: Connection, mut rx: mpsc::Receiver<Msg>, ctx: Ctx) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    let mut closing = None;
    // blocking_recv parks the thread: an idle lane's writer uses no CPU.
    while let Some(first) = rx.blocking_recv() {
        match first {
            Msg::Job(j) => batch.push(j),
            Msg::Close(done) => closing = Some(done),
        }
        while closing.is_none() && batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Job(j)) => batch.push(j),
                Ok(Msg::Close(done)) => closing = Some(done),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            run_batch(&mut conn, &mut batch, &ctx);
        }
        if let Some(done) = closing.take() {
            let _ = done.send(());
            break;
        }
    }
    // Fold the WAL into the main file on a clean stop, so the database file
    // alone is complete (handy for copies); best effort, the WAL is durable.
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
        tracing::warn!(error = %e, "could not checkpoint the WAL at shutdown");
    }
    drop(conn);
}

fn run_batch(conn: &mut Connection, batch: &mut Vec<Box<dyn Job>>, ctx: &Ctx) {
    let outcome = (|| -> Result<(), StoreError> {
        let mut tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| StoreError::sqlite("begin a transaction", e))?;
        for job in batch.iter_mut() {
            let sp = tx
                .savepoint()
                .map_err(|e| StoreError::sqlite("open a savepoint", e))?;
            if job.run(&sp, ctx) {
                sp.commit()
                    .map_err(|e| StoreError::sqlite("release a savepoint", e))?;
            }
            // else: dropping `sp` rolls back exactly this job's changes.
        }
        tx.commit().map_err(|e| StoreError::sqlite("commit", e))
    })();
    let err = outcome.err().map(|e| {
        tracing::error!(error = %e, source = ?std::error::Error::source(&e), jobs = batch.len(), "store batch failed; nothing in it was stored");
        Arc::new(e)
    });
    for job in batch.drain(..) {
        job.finish(err.clone());
    }
}

impl WriterHandle {
    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection, &Ctx) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = Box::new(Call {
            f: Some(f),
            result: None,
            reply,
        });
        self.tx
            .send(Msg::Job(job))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub(super) async fn insert(&self, sale: NewSale) -> Result<InsertOutcome, StoreError> {
        self.call(move |conn, ctx| insert_sale(conn, ctx, sale))
            .await
    }

    /// A round trip through the writer thread (for health checks).
    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        self.call(|conn, _| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(|e| StoreError::sqlite("ping", e))
        })
        .await
    }

    /// Caps the database at `pages` pages, as a full disk would (tests).
    #[cfg(test)]
    pub(super) async fn limit_pages(&self, pages: i64) -> Result<(), StoreError> {
        self.call(move |conn, _| {
            conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
                .map_err(|e| StoreError::sqlite("limit pages", e))
        })
        .await
    }

    pub(super) async fn close(&self) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).await.is_ok() {
            let _ = rx.await;
        }
        let thread = self.thread.lock().await.take();
        if let Some(t) = thread {
            // The thread has answered Close, so this join does not block long.
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

fn insert_sale(conn: &Connection, ctx: &Ctx, sale: NewSale) -> Result<InsertOutcome, StoreError> {
    let sale_sha = sha256_hex(sale.sale_json.as_bytes());
    let id = sale.transaction_id;
    if let Some(existing) = read::sale_by_id(conn, id)? {
        return Ok(if existing.sale_sha256 == sale_sha {
            InsertOutcome::Replayed(existing)
        } else {
            InsertOutcome::Conflict(existing)
        });
    }
    let key = sale.client_key.as_ref().map(ClientKey::column);
    if let Some(k) = &key
        && let Some(existing) = read::sale_by_client_key(conn, k)?
    {
        let same = matches!(sale.client_key, Some(ClientKey::Legacy(_)))
            || existing.sale_sha256 == sale_sha;
        return Ok(if same {
            InsertOutcome::Replayed(existing)
        } else {
            InsertOutcome::Conflict(existing)
        });
    }
    let series = &ctx.identity.series;
    // The counter row and the sale are written in one transaction: a number
    // is issued if and only if its sale is stored (invariant 3).
    let receipt_no: i64 = conn
        .query_row(
            "INSERT INTO counters (series, last) VALUES (?1, 1)
             ON CONFLICT (series) DO UPDATE SET last = last + 1
             RETURNING last",
            [series],
            |r| r.get(0),
        )
        .map_err(|e| StoreError::sqlite("take a receipt number", e))?;
    let seq: i64 = conn
        .query_row(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'sales'), 0) + 1",
            [],
            |r| r.get(0),
        )
        .map_err(|e| StoreError::sqlite("take a sequence number", e))?;
    let recorded_at = fmt_ts(ctx.clock.wall());
    let raw = RawValue::from_string(sale.sale_json).map_err(|source| StoreError::Decode {
        what: format!("sale {id}"),
        source,
    })?;
    let envelope = Envelope {
        transaction_id: id,
        lane_id: ctx.identity.lane_id.clone(),
        series: series.clone(),
        receipt_no,
        lane_seq: seq,
        recorded_at: recorded_at.clone(),
        sale: raw,
    };
    // The envelope bytes are fixed here, once: every delivery attempt sends
    // exactly these bytes.
    let body = serde_json::to_vec(&envelope).map_err(|source| StoreError::Decode {
        what: format!("envelope of {id}"),
        source,
    })?;
    let body_sha = sha256_hex(&body);
    conn.execute(
        "INSERT INTO sales (seq, transaction_id, kind, references_id, series, receipt_no,
                            body, body_sha256, sale_sha256, client_key, currency, total,
                            business_date, recorded_at, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 'pending')",
        params![
            seq,
            id.to_string(),
            sale.kind.as_str(),
            sale.references.map(|r| r.to_string()),
            series,
            receipt_no,
            body,
            body_sha,
            sale_sha,
            key,
            sale.currency,
            sale.total,
            sale.business_date,
            recorded_at,
        ],
    )
    .map_err(|e| StoreError::sqlite("store the sale", e))?;
    read::sale_by_id(conn, id)?
        .map(InsertOutcome::Created)
        .ok_or(StoreError::Internal(
            "a stored sale was not found in its own transaction",
        ))
}
