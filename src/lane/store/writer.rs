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
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use super::read::{self, SaleRow};
use super::{LaneIdentity, SaleState, StoreError, journal};
use crate::common::clock::Clock;
use crate::common::hash::sha256_hex;
use crate::common::time::fmt_ts;
use crate::contract::Kind;

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
    /// Must be one valid JSON object: it is spliced into the envelope as is.
    pub sale_json: String,
    /// SHA-256 (hex) of `sale_json`; computed by the caller so the hashing
    /// runs on the API's threads, not the single writer thread.
    pub sale_sha256: String,
    /// ISO 4217 code.
    pub currency: String,
    /// The sale's total in minor units.
    pub total: i64,
    /// The business day the till assigned.
    pub business_date: String,
    /// Answer a repeat of a stored sale, but store nothing new (the lane is
    /// suspended): a new sale comes back as [`InsertOutcome::NotStored`].
    pub replay_only: bool,
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
    /// A new sale, not stored because [`NewSale::replay_only`] was set.
    NotStored,
    /// A new sale refused because of a day closing; nothing changed.
    Refused(super::closing::Refusal),
}

pub(super) struct Ctx {
    identity: LaneIdentity,
    clock: Arc<dyn Clock>,
    /// The lane's series' last day closed, as read in the current batch's
    /// transaction (`None`: not read yet). Forgotten at every batch and
    /// by every closing, so it never outlives a rollback; it saves each
    /// sale of a busy batch a read (see BENCHMARKS.md).
    closed: std::cell::RefCell<Option<Option<String>>>,
}

impl Ctx {
    /// The lane the writer writes for.
    pub(super) fn identity(&self) -> &LaneIdentity {
        &self.identity
    }

    /// The wall clock, as the store's timestamp text.
    pub(super) fn now(&self) -> String {
        fmt_ts(self.clock.wall())
    }

    /// The lane's series' last day closed, read once per batch.
    fn closed_through(&self, conn: &Connection) -> Result<Option<String>, StoreError> {
        if let Some(known) = self.closed.borrow().as_ref() {
            return Ok(known.clone());
        }
        let read = super::closing::closed_through(conn, &self.identity.series)?;
        *self.closed.borrow_mut() = Some(read.clone());
        Ok(read)
    }

    /// Forgets the last day closed (a new batch, or a closing recorded).
    pub(super) fn forget_closings(&self) {
        *self.closed.borrow_mut() = None;
    }
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
    let ctx = Ctx {
        identity,
        clock,
        closed: std::cell::RefCell::new(None),
    };
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
    ctx.forget_closings();
    let outcome = (|| -> Result<(), StoreError> {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| StoreError::sqlite("begin a transaction", e))?;
        for job in batch.iter_mut() {
            savepoint(&tx, "SAVEPOINT job")?;
            if !job.run(&tx, ctx) {
                // Undo exactly this job's changes; the others stand.
                savepoint(&tx, "ROLLBACK TO job")?;
            }
            savepoint(&tx, "RELEASE job")?;
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

/// Runs a savepoint statement from the statement cache. (rusqlite's own
/// `Savepoint` re-parses its SQL each time, which cost a fifth of the
/// writer's time per sale; see BENCHMARKS.md.)
fn savepoint(conn: &Connection, sql: &'static str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut st| st.execute([]))
        .map(drop)
        .map_err(|e| StoreError::sqlite("manage a savepoint", e))
}

impl WriterHandle {
    pub(super) async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
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
    let sale_sha = sale.sale_sha256;
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
    if sale.replay_only {
        return Ok(InsertOutcome::NotStored);
    }
    let series = &ctx.identity.series;
    // A closed business day takes nothing more (docs/journal.md).
    if let Some(r) = super::closing::refusal(
        conn,
        series,
        ctx.closed_through(conn)?,
        &sale.business_date,
        sale.kind,
        sale.references.as_ref(),
    )? {
        return Ok(InsertOutcome::Refused(r));
    }
    // Statements are cached: parsing SQL for every sale was a measurable
    // share of the writer's time (see BENCHMARKS.md).
    let sql = |what, e| StoreError::sqlite(what, e);
    // The counter row and the sale are written in one transaction: a number
    // is issued if and only if its sale is stored (invariant 3).
    let receipt_no: i64 = conn
        .prepare_cached(
            "INSERT INTO counters (series, last) VALUES (?1, 1)
             ON CONFLICT (series) DO UPDATE SET last = last + 1
             RETURNING last",
        )
        .and_then(|mut st| st.query_row([series], |r| r.get(0)))
        .map_err(|e| sql("take a receipt number", e))?;
    // Sales are never deleted, so the next AUTOINCREMENT value is known.
    let seq: i64 = conn
        .prepare_cached(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'sales'), 0) + 1",
        )
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .map_err(|e| sql("take a sequence number", e))?;
    let recorded_at = fmt_ts(ctx.clock.wall());
    // The fiscal journal (docs/journal.md): the link to the series' last
    // document and the grand total after this one, from the series' head,
    // which advances in this same transaction.
    let head = journal::head(conn, series)?;
    let voided = match (sale.kind, &sale.references) {
        (Kind::Void, Some(r)) => journal::voided_effect(conn, series, &r.to_string())?,
        _ => None,
    };
    let effect = crate::contract::journal::effect(sale.kind, sale.total, voided);
    let grand_total = crate::contract::journal::after(&head.grand_total, &sale.currency, effect);
    // The envelope bytes are fixed here, once: every delivery attempt sends
    // exactly these bytes.
    let body = envelope_bytes(
        Placed {
            id,
            lane_id: &ctx.identity.lane_id,
            series,
            receipt_no,
            lane_seq: seq,
            recorded_at: &recorded_at,
            prev_hash: head.next_prev_hash(),
            grand_total: &grand_total,
        },
        &sale.sale_json,
    )
    .map_err(|source| StoreError::Decode {
        what: format!("envelope of {id}"),
        source,
    })?;
    // A back-end need not take a larger envelope: refuse the sale now (the
    // error rolls back the number just taken) rather than store a sale
    // that could never be delivered.
    if body.len() > crate::contract::MAX_ENVELOPE_BYTES {
        return Err(StoreError::EnvelopeTooLarge {
            bytes: body.len(),
            limit: crate::contract::MAX_ENVELOPE_BYTES,
        });
    }
    let body_sha = sha256_hex(&body);
    let row = SaleRow {
        seq,
        transaction_id: id.to_string(),
        kind: sale.kind,
        references_id: sale.references.map(|r| r.to_string()),
        series: series.clone(),
        receipt_no,
        body,
        sale_sha256: sale_sha,
        currency: sale.currency,
        total: sale.total,
        business_date: sale.business_date,
        recorded_at,
        state: SaleState::Pending,
        doc_no: None,
        posted_at: None,
        attempts: 0,
        next_attempt_at: None,
        last_error_code: None,
        last_error: None,
    };
    conn.prepare_cached(
        "INSERT INTO sales (seq, transaction_id, kind, references_id, series, receipt_no,
                            body, body_sha256, sale_sha256, client_key, currency, total,
                            business_date, recorded_at, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )
    .and_then(|mut st| {
        st.execute(params![
            row.seq,
            row.transaction_id,
            row.kind.as_str(),
            row.references_id,
            row.series,
            row.receipt_no,
            row.body,
            body_sha,
            row.sale_sha256,
            key,
            row.currency,
            row.total,
            row.business_date,
            row.recorded_at,
            row.state.as_str(),
        ])
    })
    .map_err(|e| sql("store the sale", e))?;
    journal::advance(
        conn,
        series,
        &body_sha,
        &row.currency,
        grand_total.get(&row.currency).copied().unwrap_or_default(),
    )?;
    Ok(InsertOutcome::Created(row))
}

/// Where a document sits: everything of its envelope but the sale.
struct Placed<'a> {
    id: Uuid,
    lane_id: &'a str,
    series: &'a str,
    receipt_no: i64,
    lane_seq: i64,
    recorded_at: &'a str,
    prev_hash: &'a str,
    grand_total: &'a std::collections::BTreeMap<String, i64>,
}

/// Builds the envelope (see [`crate::contract::Envelope`]) around the already canonical sale
/// JSON without parsing it again: this runs on the single writer thread, and
/// re-parsing the sale there was a measurable share of its time. A unit test
/// checks the result against serde's own serialization of the contract type.
fn envelope_bytes(p: Placed<'_>, sale_json: &str) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(sale_json.len() + 300);
    out.extend_from_slice(b"{\"transaction_id\":\"");
    out.extend_from_slice(
        p.id.hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    out.extend_from_slice(b"\",\"lane_id\":");
    serde_json::to_writer(&mut out, p.lane_id)?;
    out.extend_from_slice(b",\"series\":");
    serde_json::to_writer(&mut out, p.series)?;
    out.extend_from_slice(
        format!(
            ",\"receipt_no\":{},\"lane_seq\":{},\"recorded_at\":",
            p.receipt_no, p.lane_seq
        )
        .as_bytes(),
    );
    serde_json::to_writer(&mut out, p.recorded_at)?;
    out.extend_from_slice(b",\"prev_hash\":");
    serde_json::to_writer(&mut out, p.prev_hash)?;
    out.extend_from_slice(b",\"grand_total\":");
    serde_json::to_writer(&mut out, p.grand_total)?;
    out.extend_from_slice(b",\"sale\":");
    out.extend_from_slice(sale_json.as_bytes());
    out.push(b'}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::clock::SystemClock;
    use crate::contract::Envelope;
    use serde_json::value::RawValue;

    fn job<T: Send + 'static>(
        f: impl FnOnce(&Connection, &Ctx) -> Result<T, StoreError> + Send + 'static,
    ) -> (Box<dyn Job>, oneshot::Receiver<Result<T, StoreError>>) {
        let (reply, rx) = oneshot::channel();
        let j = Box::new(Call {
            f: Some(f),
            result: None,
            reply,
        });
        (j, rx)
    }

    fn sale(n: u32) -> NewSale {
        let sale_json = format!("{{\"n\":{n}}}");
        NewSale {
            transaction_id: Uuid::new_v4(),
            kind: Kind::Sale,
            references: None,
            client_key: None,
            sale_sha256: sha256_hex(sale_json.as_bytes()),
            sale_json,
            currency: "KES".into(),
            total: 100,
            business_date: "2026-11-22".into(),
            replay_only: false,
        }
    }

    #[test]
    fn a_failing_job_rolls_back_only_its_own_writes_in_a_shared_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lane.db");
        std::fs::File::create(&path).unwrap();
        let mut conn = super::super::open::open(&path, super::super::Mode::ReadWrite).unwrap();
        super::super::migrate::apply(&mut conn, &path).unwrap();
        let ctx = Ctx {
            identity: LaneIdentity {
                lane_id: "L03".into(),
                series: "L03".into(),
            },
            clock: Arc::new(SystemClock::new()),
            closed: std::cell::RefCell::new(None),
        };
        let (a, ra) = job(|c, ctx| insert_sale(c, ctx, sale(1)));
        // Takes a receipt number, then fails: its number must not be issued.
        let (b, rb) = job(|c, _| -> Result<(), StoreError> {
            c.execute("UPDATE counters SET last = last + 1", [])
                .map_err(|e| StoreError::sqlite("bump", e))?;
            Err(StoreError::Internal("injected failure"))
        });
        let (c, rc) = job(|c, ctx| insert_sale(c, ctx, sale(2)));
        let mut batch = vec![a, b, c];
        run_batch(&mut conn, &mut batch, &ctx);
        let receipt = |r: Result<InsertOutcome, StoreError>| match r {
            Ok(InsertOutcome::Created(row)) => row.receipt_no,
            other => panic!("{other:?}"),
        };
        assert_eq!(receipt(ra.blocking_recv().unwrap()), 1);
        assert!(matches!(
            rb.blocking_recv().unwrap(),
            Err(StoreError::Internal(_))
        ));
        assert_eq!(
            receipt(rc.blocking_recv().unwrap()),
            2,
            "the failed job's number leaked"
        );
        let (n, last): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM sales), (SELECT last FROM counters)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((n, last), (2, 2));
    }

    #[test]
    fn spliced_envelope_equals_serdes_serialization_of_the_contract_type() {
        let id = Uuid::new_v4();
        let sale = r#"{"kind":"sale","extra":{"q":"\"quoted\" \u00e9"},"total":5}"#;
        let totals: std::collections::BTreeMap<String, i64> =
            [("UAH".to_owned(), -5), ("KES".to_owned(), 12_500)].into();
        let prev = crate::contract::journal::hash(b"the document before");
        let ours = envelope_bytes(
            Placed {
                id,
                lane_id: "L\"03",
                series: "S-1",
                receipt_no: 42,
                lane_seq: 7,
                recorded_at: "2026-11-22T10:00:00.000Z",
                prev_hash: &prev,
                grand_total: &totals,
            },
            sale,
        )
        .unwrap();
        let theirs = serde_json::to_vec(&Envelope {
            transaction_id: id,
            lane_id: "L\"03".into(),
            series: "S-1".into(),
            receipt_no: 42,
            lane_seq: 7,
            recorded_at: "2026-11-22T10:00:00.000Z".into(),
            prev_hash: Some(prev.clone()),
            grand_total: Some(totals.clone()),
            sale: RawValue::from_string(sale.into()).unwrap(),
        })
        .unwrap();
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            String::from_utf8(theirs).unwrap()
        );
    }
}
