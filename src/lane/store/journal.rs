//! The fiscal journal in the store (docs/journal.md): each series' head
//! (`journal_head`, `journal_total`, migration 0007), advanced by the
//! writer in the transaction that stores each document; the check of the
//! last links at start; and the full verification `laned verify` runs.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension};

use super::StoreError;
use crate::contract::Kind;
use crate::contract::journal::{self, Chunk, Head};

/// The series' head as stored (an empty head for a new series).
pub(super) fn head(conn: &Connection, series: &str) -> Result<Head, StoreError> {
    let q = || -> rusqlite::Result<Head> {
        let last_hash = conn
            .prepare_cached("SELECT last_hash FROM journal_head WHERE series = ?1")?
            .query_row([series], |r| r.get(0))
            .optional()?;
        let mut grand_total = BTreeMap::new();
        let mut st =
            conn.prepare_cached("SELECT currency, amount FROM journal_total WHERE series = ?1")?;
        for row in st.query_map([series], |r| Ok((r.get(0)?, r.get(1)?)))? {
            let (c, a): (String, i64) = row?;
            grand_total.insert(c, a);
        }
        Ok(Head {
            last_hash,
            grand_total,
        })
    };
    q().map_err(|e| StoreError::sqlite("read the journal's head", e))
}

/// The effect on its series' grand total of a document voided by a void
/// of that series: `None` when it is not earlier in the series.
pub(super) fn voided_effect(
    conn: &Connection,
    series: &str,
    voided: &str,
) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("SELECT kind, total FROM sales WHERE transaction_id = ?1 AND series = ?2")
        .and_then(|mut st| {
            st.query_row([voided, series], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()
        })
        .map(|found| {
            found.and_then(|(kind, total)| {
                let kind = match kind.as_str() {
                    "sale" => Kind::Sale,
                    "return" => Kind::Return,
                    _ => return None,
                };
                Some(journal::effect(kind, total, None))
            })
        })
        .map_err(|e| StoreError::sqlite("read the voided document", e))
}

/// Advances the series' head to a document just stored: its hash, and the
/// grand total in its currency.
pub(super) fn advance(
    conn: &Connection,
    series: &str,
    hash: &str,
    currency: &str,
    amount: i64,
) -> Result<(), StoreError> {
    let q = || -> rusqlite::Result<()> {
        conn.prepare_cached(
            "INSERT INTO journal_head (series, last_hash) VALUES (?1, ?2)
             ON CONFLICT (series) DO UPDATE SET last_hash = excluded.last_hash",
        )?
        .execute([series, hash])?;
        conn.prepare_cached(
            "INSERT INTO journal_total (series, currency, amount) VALUES (?1, ?2, ?3)
             ON CONFLICT (series, currency) DO UPDATE SET amount = excluded.amount",
        )?
        .execute(rusqlite::params![series, currency, amount])?;
        Ok(())
    };
    q().map_err(|e| StoreError::sqlite("advance the journal's head", e))
}

/// Advances the series' head to a closing just stored: its hash (a
/// closing leaves the grand total as it is).
pub(super) fn advance_hash(conn: &Connection, series: &str, hash: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO journal_head (series, last_hash) VALUES (?1, ?2)
         ON CONFLICT (series) DO UPDATE SET last_hash = excluded.last_hash",
    )
    .and_then(|mut st| st.execute([series, hash]))
    .map(drop)
    .map_err(|e| StoreError::sqlite("advance the journal's head", e))
}

/// A series' end as stored: its head, and its last two documents (sales
/// or closings, by lane order).
struct Tail {
    series: String,
    head: Option<String>,
    document: String,
    last: Vec<u8>,
    previous: Option<Vec<u8>>,
}

/// The last links of every series, checked before the lane numbers onto
/// them: the stored head is the hash of the series' last document's bytes,
/// and that document links to the one before it. A lane whose last link
/// does not hold must not add to the chain (it would hide the break).
pub(super) fn check_tail(conn: &Connection) -> Result<(), StoreError> {
    let q = || -> rusqlite::Result<Vec<Tail>> {
        // Every series that ever took a number (`counters`) or has a head;
        // within a series receipt numbers and closing numbers rise with
        // lane order, so its last two sales and last two closings come
        // from the (series, receipt_no) and (series, closing_no) indexes,
        // and the last two documents are the last two of those four: the
        // check costs the same at a million sales as at ten.
        let series: Vec<(String, Option<String>)> = conn
            .prepare(
                "SELECT s.series, h.last_hash
                 FROM (SELECT series FROM journal_head UNION SELECT series FROM counters) s
                 LEFT JOIN journal_head h ON h.series = s.series",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut sales = conn.prepare(
            "SELECT seq, receipt_no, body FROM sales WHERE series = ?1
             ORDER BY receipt_no DESC LIMIT 2",
        )?;
        let mut closings = conn.prepare(
            "SELECT seq, -closing_no, body FROM closings WHERE series = ?1
             ORDER BY closing_no DESC LIMIT 2",
        )?;
        let mut tails = vec![];
        for (name, head) in series {
            let mut docs: Vec<(i64, i64, Vec<u8>)> = sales
                .query_map([&name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .chain(closings.query_map([&name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?)
                .collect::<Result<_, _>>()?;
            docs.sort_by_key(|d| std::cmp::Reverse(d.0));
            let mut docs = docs.into_iter();
            let (no, last) = docs.next().map(|d| (d.1, d.2)).unwrap_or_default();
            // Closings come with their number negated.
            let document = if no < 0 {
                format!("closing {}", -no)
            } else {
                format!("receipt {no}")
            };
            tails.push(Tail {
                series: name,
                head,
                document,
                last,
                previous: docs.next().map(|d| d.2),
            });
        }
        Ok(tails)
    };
    let rows = q().map_err(|e| StoreError::sqlite("read the journal's last links", e))?;
    for Tail {
        series,
        head,
        document,
        last,
        previous,
    } in rows
    {
        let broken = |why: String| StoreError::JournalBroken {
            series: series.clone(),
            document: document.clone(),
            why,
        };
        if last.is_empty() {
            return Err(broken(
                "the journal has a head for a series with no document".into(),
            ));
        }
        let last_hash = journal::hash(&last);
        match head {
            None => {
                return Err(broken(
                    "the series has documents but no journal head".into(),
                ));
            }
            Some(h) if h != last_hash => {
                return Err(broken(format!(
                    "its bytes hash to {last_hash}, but the journal's head is {h}"
                )));
            }
            Some(_) => {}
        }
        let link = serde_json::from_slice::<serde_json::Value>(&last)
            .ok()
            .and_then(|v| v["prev_hash"].as_str().map(str::to_owned));
        let expected = previous.map_or_else(|| journal::GENESIS.to_owned(), |p| journal::hash(&p));
        if let Some(link) = link
            && link != expected
        {
            return Err(broken(format!(
                "its prev_hash {link} is not the hash of the document before it ({expected})"
            )));
        }
    }
    Ok(())
}

/// Documents read at once (parts of it parsed on every core).
const CHUNK: usize = 4096;

/// Every document in lane order through the verifier, streamed in
/// chunks (`contract::journal::verify_stream`: this thread reads, the
/// other cores parse and hash, one thread checks in order). `path` is the
/// database's file: a void's voided document is read again through a
/// connection of the checking thread's own.
pub fn verify(conn: &Connection, path: &std::path::Path) -> Result<VerifyOutcome, StoreError> {
    let read = |e| StoreError::sqlite("read the journal", e);
    let again = super::open::open(path, super::open::Mode::ReadOnly)?;
    // A void's voided document, read again by its lane sequence (rows are
    // never changed, so any snapshot holds the same bytes).
    let fetch = move |seq: u64| -> Option<Vec<u8>> {
        let seq = i64::try_from(seq).ok()?;
        again
            .prepare_cached("SELECT body FROM sales WHERE seq = ?1")
            .and_then(|mut st| st.query_row([seq], |r| r.get(0)).optional())
            .ok()
            .flatten()
    };
    let tx = conn
        .unchecked_transaction()
        .map_err(|e| StoreError::sqlite("begin the verification", e))?;
    let mut outcome = {
        let mut st = tx
            // Sales and closings merged in lane order.
            .prepare(
                "SELECT seq, body FROM sales UNION ALL SELECT seq, body FROM closings ORDER BY 1",
            )
            .map_err(read)?;
        let mut rows = st.query([]).map_err(read)?;
        let next = |mut chunk: Chunk| -> Result<Chunk, StoreError> {
            // The bytes copied once, from SQLite's page into the chunk.
            while chunk.len() < CHUNK {
                let Some(r) = rows.next().map_err(read)? else {
                    break;
                };
                let seq: i64 = r.get(0).map_err(read)?;
                let body = r.get_ref(1).map_err(read)?;
                let bytes = body.as_bytes().map_err(|e| {
                    StoreError::sqlite("read the journal", rusqlite::Error::from(e))
                })?;
                chunk.push(u64::try_from(seq).unwrap_or_default(), bytes);
            }
            Ok(chunk)
        };
        // Room for every document's id at once: the last lane sequence.
        let documents: i64 = tx
            .query_row(
                "SELECT max(coalesce((SELECT max(seq) FROM sales), 0),
                            coalesce((SELECT max(seq) FROM closings), 0))",
                [],
                |r| r.get(0),
            )
            .map_err(read)?;
        journal::verify_stream(
            next,
            journal::as_stored,
            fetch,
            usize::try_from(documents).unwrap_or(0),
        )?
    };
    // The last document of each series against the head the lane kept.
    let heads: Vec<(String, String)> = tx
        .prepare("SELECT series, last_hash FROM journal_head")
        .and_then(|mut st| st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .map_err(|e| StoreError::sqlite("read the journal's heads", e))?;
    for (name, kept) in heads {
        if let Some(s) = outcome.series.get_mut(&name) {
            s.check_head(&kept);
        }
    }
    tx.finish()
        .map_err(|e| StoreError::sqlite("end the verification", e))?;
    Ok(VerifyOutcome {
        series: outcome.series,
        unreadable: outcome.unreadable,
    })
}

/// What [`verify`] found.
#[derive(Debug)]
pub struct VerifyOutcome {
    /// Each series.
    pub series: BTreeMap<String, journal::SeriesReport>,
    /// Documents that could not be read at all.
    pub unreadable: Vec<journal::Broken>,
}
