//! Settling stuck sales (docs/support.md): an operator sends a stuck sale back to
//! the drain (`retry`) or records that it was settled by hand with the
//! back-end's document number (`resolve`). Each change is one transaction
//! with its audit entry (the writer runs each call in its own savepoint, so
//! a failure leaves nothing half done); nothing else is touched.

use super::audit;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::json;

use super::{StoreError, receipt_label};

/// Which sales a retry names.
#[derive(Debug, Clone)]
pub enum RetryTarget {
    /// One sale, by transaction id.
    One(String),
    /// Every sale that is stuck now.
    AllStuck,
}

/// Who asked and why, for the audit log.
#[derive(Debug, Clone)]
pub struct Operator {
    /// Who (e.g. `cli:alice` or the admin API caller's name).
    pub actor: String,
    /// Why, in their words.
    pub reason: String,
}

/// A sale an operator action changed.
#[derive(Debug, Clone, Serialize)]
pub struct Settled {
    /// The transaction id.
    pub transaction_id: String,
    /// Its receipt, e.g. `L01/00000042`.
    pub receipt: String,
    /// The state it is in now.
    pub state: &'static str,
    /// The back-end's document number (resolve only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc_no: Option<String>,
}

/// How an operator action ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// These sales changed (none for `--all-stuck` when nothing is stuck).
    Done(Vec<Settled>),
    /// No sale has this transaction id.
    NotFound(String),
    /// The sale is not stuck: only a stuck sale can be retried or resolved.
    NotStuck {
        /// The transaction id.
        transaction_id: String,
        /// Its state.
        state: String,
    },
}

fn stuck_sale(conn: &Connection, id: &str) -> rusqlite::Result<Result<(i64, String), Outcome>> {
    let row: Option<(i64, String, String, i64)> = conn
        .query_row(
            "SELECT seq, state, series, receipt_no FROM sales WHERE transaction_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    Ok(match row {
        None => Err(Outcome::NotFound(id.to_owned())),
        Some((_, state, _, _)) if state != "stuck" => Err(Outcome::NotStuck {
            transaction_id: id.to_owned(),
            state,
        }),
        Some((seq, _, series, no)) => Ok((seq, receipt_label(&series, no))),
    })
}

/// Moves stuck sales back to `pending`, due at once; one audit entry per
/// sale. Their attempts and last error stay as they were.
pub fn retry(
    conn: &Connection,
    now: &str,
    who: &Operator,
    target: &RetryTarget,
) -> Result<Outcome, StoreError> {
    let q = || -> rusqlite::Result<Outcome> {
        let sales: Vec<(i64, String, String)> = match target {
            RetryTarget::One(id) => match stuck_sale(conn, id)? {
                Ok((seq, receipt)) => vec![(seq, id.clone(), receipt)],
                Err(o) => return Ok(o),
            },
            RetryTarget::AllStuck => {
                let mut st = conn.prepare(
                    "SELECT seq, transaction_id, series, receipt_no FROM sales
                     WHERE state = 'stuck' ORDER BY seq",
                )?;
                let rows = st.query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        receipt_label(&r.get::<_, String>(2)?, r.get(3)?),
                    ))
                })?;
                rows.collect::<rusqlite::Result<_>>()?
            }
        };
        let mut done = vec![];
        for (seq, id, receipt) in sales {
            conn.execute(
                "UPDATE sales SET state = 'pending', next_attempt_at = NULL
                 WHERE seq = ?1 AND state = 'stuck'",
                [seq],
            )?;
            audit::write(
                conn,
                audit::Entry {
                    at: now,
                    actor: &who.actor,
                    action: "retry",
                    transaction_id: Some(&id),
                    reason: Some(&who.reason),
                    details: json!({"receipt": receipt, "from": "stuck", "to": "pending"})
                        .to_string(),
                },
            )?;
            done.push(Settled {
                transaction_id: id,
                receipt,
                state: "pending",
                doc_no: None,
            });
        }
        Ok(Outcome::Done(done))
    };
    q().map_err(|e| StoreError::sqlite("retry stuck sales", e))
}

/// Marks a stuck sale `resolved` with the back-end's document number, as
/// settled by hand; audit-logged with the error it was stuck on.
pub fn resolve(
    conn: &Connection,
    now: &str,
    who: &Operator,
    id: &str,
    doc_no: &str,
) -> Result<Outcome, StoreError> {
    let q = || -> rusqlite::Result<Outcome> {
        let (seq, receipt) = match stuck_sale(conn, id)? {
            Ok(s) => s,
            Err(o) => return Ok(o),
        };
        let (code, message): (Option<String>, Option<String>) = conn.query_row(
            "SELECT last_error_code, last_error FROM sales WHERE seq = ?1",
            [seq],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        conn.execute(
            "UPDATE sales SET state = 'resolved', doc_no = ?2, next_attempt_at = NULL
             WHERE seq = ?1 AND state = 'stuck'",
            params![seq, doc_no],
        )?;
        audit::write(
            conn,
            audit::Entry {
                at: now,
                actor: &who.actor,
                action: "resolve",
                transaction_id: Some(id),
                reason: Some(&who.reason),
                details: json!({"receipt": receipt, "doc_no": doc_no, "from": "stuck",
                                "last_error_code": code, "last_error": message})
                .to_string(),
            },
        )?;
        Ok(Outcome::Done(vec![Settled {
            transaction_id: id.to_owned(),
            receipt,
            state: "resolved",
            doc_no: Some(doc_no.to_owned()),
        }]))
    };
    q().map_err(|e| StoreError::sqlite("resolve a stuck sale", e))
}

/// Checks an operator's reason: 1 to 500 characters after trimming.
pub fn valid_reason(reason: &str) -> Option<&str> {
    let r = reason.trim();
    (1..=500).contains(&r.chars().count()).then_some(r)
}

/// Checks a back-end document number: 1 to 64 printable characters.
pub fn valid_doc_no(doc_no: &str) -> Option<&str> {
    let d = doc_no.trim();
    ((1..=64).contains(&d.chars().count()) && !d.chars().any(char::is_control)).then_some(d)
}
