//! Day closings in the store (docs/journal.md, migration 0008): the
//! figures of a business day computed from its documents, the closing
//! recorded as the next document of the series' chain, the refusal of
//! late documents for a closed day, and the closings' delivery state.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use uuid::Uuid;

use super::{StoreError, audit, journal};
use crate::contract::Kind;
use crate::contract::closing::{
    Breakdown, Closing, ClosingEnvelope, ClosingKind, Figures, SaleDoc,
};

/// A document the lane refuses because of a closing (nothing is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Its business day is closed: `business_date` ≤ `closed_through`.
    DayClosed {
        /// The document's business day.
        business_date: String,
        /// The last day closed in the series.
        closed_through: String,
    },
    /// A void of a document whose business day is closed: a return
    /// undoes it instead.
    VoidOfClosedDay {
        /// The voided document.
        references: String,
        /// Its business day.
        business_date: String,
    },
}

/// What `close-day` asks for.
#[derive(Debug, Clone)]
pub struct CloseRequest {
    /// The business day to close.
    pub business_date: String,
    /// The lane's own date today (its time zone): a later day cannot be
    /// closed yet.
    pub today: String,
    /// Cash counted, per currency, minor units.
    pub counted: BTreeMap<String, i64>,
    /// Who closes the day (audit log).
    pub actor: String,
}

/// What a request to close a day came to.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CloseOutcome {
    /// Recorded: the closing.
    Closed {
        /// The closing document as stored.
        closing: Box<ClosingRow>,
    },
    /// No document of the series has that business day: nothing recorded.
    NothingToClose {
        /// The day.
        business_date: String,
    },
    /// The day (or a later one) is closed already; closings are final.
    AlreadyClosed {
        /// The day asked for.
        business_date: String,
        /// The last day closed.
        closed_through: String,
    },
    /// An earlier day with documents is not closed: it must be first.
    EarlierDayOpen {
        /// The day asked for.
        business_date: String,
        /// The earliest open day.
        open: String,
    },
    /// The day has not begun on the lane's calendar.
    InFuture {
        /// The day asked for.
        business_date: String,
        /// The lane's date today.
        today: String,
    },
}

impl CloseOutcome {
    /// For a refusal, its stable code and a sentence for the operator.
    pub fn refusal(&self) -> Option<(&'static str, String)> {
        match self {
            CloseOutcome::Closed { .. } => None,
            CloseOutcome::NothingToClose { business_date } => Some((
                "nothing_to_close",
                format!(
                    "No sale, return or void on this lane has the business day {business_date}: \
                     there is nothing to close, and nothing was recorded."
                ),
            )),
            CloseOutcome::AlreadyClosed {
                business_date,
                closed_through,
            } => Some((
                "day_already_closed",
                format!(
                    "The business day {business_date} is already closed (the lane is closed \
                     through {closed_through}); closings are final, and nothing was recorded. \
                     laned report --x shows the figures of a day still open."
                ),
            )),
            CloseOutcome::EarlierDayOpen {
                business_date,
                open,
            } => Some((
                "earlier_day_open",
                format!(
                    "The business day {open} has sales and is not closed yet: close it before \
                     {business_date} (laned close-day --date {open}, or --through \
                     {business_date} to close every open day up to it). Nothing was recorded."
                ),
            )),
            CloseOutcome::InFuture {
                business_date,
                today,
            } => Some((
                "day_in_future",
                format!(
                    "The business day {business_date} has not begun on this lane (its date is \
                     {today}); closing it would refuse every sale until then. Nothing was \
                     recorded."
                ),
            )),
        }
    }
}

/// A stored closing.
#[derive(Debug, Clone, Serialize)]
pub struct ClosingRow {
    /// Lane order.
    pub seq: i64,
    /// Its id.
    pub transaction_id: String,
    /// The series.
    pub series: String,
    /// Gap-free per series.
    pub closing_no: i64,
    /// The day closed.
    pub business_date: String,
    /// When recorded.
    pub recorded_at: String,
    /// Who closed it.
    pub actor: String,
    /// pending, posted or stuck (delivery to the back-end).
    pub state: String,
    /// The back-end's document number, once posted.
    pub doc_no: Option<String>,
    /// The last delivery error's code, if any.
    pub last_error_code: Option<String>,
    /// The last delivery error, if any.
    pub last_error: Option<String>,
    /// Its exact bytes.
    #[serde(skip)]
    pub body: Vec<u8>,
    /// The figures (parsed from the bytes).
    pub closing: Option<Closing>,
}

const COLUMNS: &str = "seq, transaction_id, series, closing_no, business_date, recorded_at, \
                       actor, state, doc_no, last_error_code, last_error, body";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ClosingRow> {
    let body: Vec<u8> = r.get(11)?;
    let closing = serde_json::from_slice::<ClosingEnvelope>(&body)
        .ok()
        .map(|e| e.closing);
    Ok(ClosingRow {
        seq: r.get(0)?,
        transaction_id: r.get(1)?,
        series: r.get(2)?,
        closing_no: r.get(3)?,
        business_date: r.get(4)?,
        recorded_at: r.get(5)?,
        actor: r.get(6)?,
        state: r.get(7)?,
        doc_no: r.get(8)?,
        last_error_code: r.get(9)?,
        last_error: r.get(10)?,
        body,
        closing,
    })
}

/// The series' closings, newest first, at most `limit`.
pub(super) fn list(conn: &Connection, limit: i64) -> Result<Vec<ClosingRow>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM closings ORDER BY seq DESC LIMIT ?1"
    ))
    .and_then(|mut st| st.query_map([limit], row)?.collect())
    .map_err(|e| StoreError::sqlite("read the closings", e))
}

/// The last business day closed in the series.
pub(super) fn closed_through(
    conn: &Connection,
    series: &str,
) -> Result<Option<String>, StoreError> {
    conn.prepare_cached(
        "SELECT business_date FROM closings WHERE series = ?1 ORDER BY closing_no DESC LIMIT 1",
    )
    .and_then(|mut st| st.query_row([series], |r| r.get(0)).optional())
    .map_err(|e| StoreError::sqlite("read the last closing", e))
}

/// Why a new document may not be stored in `series`, if a closing
/// forbids it: its day is closed, or it voids a document of a closed day.
/// `through` is the series' last day closed ([`closed_through`]).
pub(super) fn refusal(
    conn: &Connection,
    series: &str,
    through: Option<String>,
    business_date: &str,
    kind: Kind,
    references: Option<&Uuid>,
) -> Result<Option<Refusal>, StoreError> {
    let Some(through) = through else {
        return Ok(None);
    };
    if business_date <= through.as_str() {
        return Ok(Some(Refusal::DayClosed {
            business_date: business_date.to_owned(),
            closed_through: through,
        }));
    }
    if let (Kind::Void, Some(r)) = (kind, references) {
        let voided: Option<String> = conn
            .prepare_cached(
                "SELECT business_date FROM sales WHERE transaction_id = ?1 AND series = ?2",
            )
            .and_then(|mut st| {
                st.query_row([r.to_string(), series.to_owned()], |row| row.get(0))
                    .optional()
            })
            .map_err(|e| StoreError::sqlite("read the voided document", e))?;
        if let Some(d) = voided.filter(|d| *d <= through) {
            return Ok(Some(Refusal::VoidOfClosedDay {
                references: r.to_string(),
                business_date: d,
            }));
        }
    }
    Ok(None)
}

/// A business day's figures in `series` from its documents in lane order,
/// and the hash of the last one; `None` when it has none.
pub(super) fn day_figures(
    conn: &Connection,
    series: &str,
    business_date: &str,
) -> Result<Option<(Figures, String)>, StoreError> {
    let sql = |e| StoreError::sqlite("read the day's documents", e);
    let mut st = conn
        .prepare_cached(
            "SELECT seq, transaction_id, receipt_no, body, body_sha256 FROM sales
             WHERE business_date = ?1 AND series = ?2 ORDER BY seq",
        )
        .map_err(sql)?;
    let mut voided_st = conn
        .prepare_cached(
            "SELECT body FROM sales WHERE transaction_id = ?1 AND series = ?2 AND seq < ?3",
        )
        .map_err(sql)?;
    let mut rows = st.query(params![business_date, series]).map_err(sql)?;
    let mut figures = Figures::default();
    let mut last = None;
    let mut breakdowns: HashMap<String, Breakdown> = HashMap::new();
    while let Some(r) = rows.next().map_err(sql)? {
        let seq: i64 = r.get(0).map_err(sql)?;
        let id: String = r.get(1).map_err(sql)?;
        let receipt_no: i64 = r.get(2).map_err(sql)?;
        let body: Vec<u8> = r.get(3).map_err(sql)?;
        let doc = sale_doc(&body, &id)?;
        // A void cancels a sale or return earlier in the series.
        let voided = match (doc.kind, doc.references) {
            (Kind::Void, Some(v)) => match breakdowns.get(&v.to_string()) {
                Some(b) => Some(b.clone()),
                None => voided_st
                    .query_row(params![v.to_string(), series, seq], |r| {
                        r.get::<_, Vec<u8>>(0)
                    })
                    .optional()
                    .map_err(sql)?
                    .map(|b| sale_doc(&b, &v.to_string()))
                    .transpose()?
                    .filter(|d| d.kind != Kind::Void)
                    .map(|d| Breakdown::of(&d)),
            },
            _ => None,
        };
        figures.add(receipt_no, &doc, voided.as_ref());
        if matches!(doc.kind, Kind::Sale | Kind::Return) {
            breakdowns.insert(id, Breakdown::of(&doc));
        }
        last = Some(r.get::<_, String>(4).map_err(sql)?);
    }
    Ok(last.map(|h| (figures, h)))
}

fn sale_doc(body: &[u8], id: &str) -> Result<SaleDoc, StoreError> {
    #[derive(serde::Deserialize)]
    struct Env {
        sale: SaleDoc,
    }
    serde_json::from_slice::<Env>(body)
        .map(|e| e.sale)
        .map_err(|source| StoreError::Decode {
            what: format!("envelope of {id}"),
            source,
        })
}

/// The business days of `series` with documents and no closing yet, up to
/// and including `through`, oldest first.
pub(super) fn open_days(
    conn: &Connection,
    series: &str,
    through: &str,
) -> Result<Vec<String>, StoreError> {
    let closed = closed_through(conn, series)?;
    conn.prepare_cached(
        "SELECT DISTINCT business_date FROM sales
         WHERE series = ?1 AND business_date > ?2 AND business_date <= ?3 ORDER BY 1",
    )
    .and_then(|mut st| {
        st.query_map(
            params![series, closed.as_deref().unwrap_or(""), through],
            |r| r.get(0),
        )?
        .collect()
    })
    .map_err(|e| StoreError::sqlite("read the open days", e))
}

/// Closes a business day of `series` (in the writer's transaction): the
/// closing is the series' next document, chained, numbered, audit-logged.
pub(super) fn close_day(
    conn: &Connection,
    lane_id: &str,
    series: &str,
    recorded_at: &str,
    req: &CloseRequest,
) -> Result<CloseOutcome, StoreError> {
    let date = &req.business_date;
    if *date > req.today {
        return Ok(CloseOutcome::InFuture {
            business_date: date.clone(),
            today: req.today.clone(),
        });
    }
    let through = closed_through(conn, series)?;
    if let Some(t) = through.as_ref().filter(|t| date <= *t) {
        return Ok(CloseOutcome::AlreadyClosed {
            business_date: date.clone(),
            closed_through: t.clone(),
        });
    }
    let open: Option<String> = conn
        .prepare_cached(
            "SELECT min(business_date) FROM sales
             WHERE series = ?1 AND business_date > ?2 AND business_date < ?3",
        )
        .and_then(|mut st| {
            st.query_row(
                params![series, through.as_deref().unwrap_or(""), date],
                |r| r.get(0),
            )
        })
        .map_err(|e| StoreError::sqlite("look for an earlier open day", e))?;
    if let Some(open) = open {
        return Ok(CloseOutcome::EarlierDayOpen {
            business_date: date.clone(),
            open,
        });
    }
    let Some((figures, covers_hash)) = day_figures(conn, series, date)? else {
        return Ok(CloseOutcome::NothingToClose {
            business_date: date.clone(),
        });
    };
    let head = journal::head(conn, series)?;
    let closing_no: i64 = conn
        .prepare_cached("SELECT coalesce(max(closing_no), 0) + 1 FROM closings WHERE series = ?1")
        .and_then(|mut st| st.query_row([series], |r| r.get(0)))
        .map_err(|e| StoreError::sqlite("take a closing number", e))?;
    // The closing takes the next number of the lane's sequence, shared
    // with the sales: the next sale's number moves past it.
    let seq: i64 = conn
        .prepare_cached(
            "UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'sales' RETURNING seq",
        )
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .map_err(|e| StoreError::sqlite("take a sequence number", e))?;
    let id = Uuid::new_v4();
    let cash = figures.cash(&req.counted);
    let envelope = ClosingEnvelope {
        transaction_id: id,
        lane_id: lane_id.to_owned(),
        series: series.to_owned(),
        kind: ClosingKind::Closing,
        closing_no,
        lane_seq: seq,
        recorded_at: recorded_at.to_owned(),
        prev_hash: head.next_prev_hash().to_owned(),
        grand_total: head.grand_total.clone(),
        closing: Closing {
            business_date: date.clone(),
            covers_hash,
            figures,
            cash,
        },
    };
    let body = serde_json::to_vec(&envelope).map_err(|source| StoreError::Decode {
        what: format!("closing of {date}"),
        source,
    })?;
    let hash = crate::contract::journal::hash(&body);
    let q = || -> rusqlite::Result<()> {
        conn.prepare_cached(
            "INSERT INTO closings (seq, transaction_id, series, closing_no, business_date, body,
                                   body_sha256, recorded_at, actor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            seq,
            id.to_string(),
            series,
            closing_no,
            date,
            body,
            hash,
            recorded_at,
            req.actor
        ])?;
        audit::write(
            conn,
            audit::Entry {
                at: recorded_at,
                actor: &req.actor,
                action: "close_day",
                transaction_id: Some(&id.to_string()),
                reason: None,
                details: serde_json::json!({
                    "series": series, "closing_no": closing_no, "business_date": date,
                    "counted": req.counted,
                })
                .to_string(),
            },
        )
    };
    q().map_err(|e| StoreError::sqlite("store the closing", e))?;
    journal::advance_hash(conn, series, &hash)?;
    let stored = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM closings WHERE seq = ?1"))
        .and_then(|mut st| st.query_row([seq], row))
        .map_err(|e| StoreError::sqlite("read the closing back", e))?;
    Ok(CloseOutcome::Closed {
        closing: Box::new(stored),
    })
}

/// The open day's figures without recording anything (`laned report
/// --x`): `None` when the day has no document.
pub(super) fn x_report(
    conn: &Connection,
    series: &str,
    business_date: &str,
    counted: &BTreeMap<String, i64>,
) -> Result<XReport, StoreError> {
    let closed_through = closed_through(conn, series)?;
    let figures = day_figures(conn, series, business_date)?.map(|(f, _)| f);
    let cash = figures
        .as_ref()
        .map(|f| f.cash(counted))
        .unwrap_or_default();
    Ok(XReport {
        series: series.to_owned(),
        business_date: business_date.to_owned(),
        closed: closed_through
            .as_ref()
            .is_some_and(|t| business_date <= t.as_str()),
        closed_through,
        figures,
        cash,
    })
}

/// An X report: a day's figures so far.
#[derive(Debug, Clone, Serialize)]
pub struct XReport {
    /// The series.
    pub series: String,
    /// The day.
    pub business_date: String,
    /// Whether the day is closed already (the closing has the figures).
    pub closed: bool,
    /// The last day closed in the series.
    pub closed_through: Option<String>,
    /// The figures, when the day has documents.
    pub figures: Option<Figures>,
    /// Counted cash against expected, when given.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub cash: BTreeMap<String, crate::contract::closing::Cash>,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;
    use serde_json::json;
    use uuid::Uuid;

    use super::{CloseOutcome, CloseRequest, Refusal};
    use crate::common::clock::SystemClock;
    use crate::contract::Kind;
    use crate::lane::store::{InsertOutcome, LaneIdentity, NewSale, Store, open};

    /// What a till or an operator does, on day 0..4 of the test's month.
    #[derive(Debug, Clone)]
    enum Op {
        /// A sale: lines (amount, tax code 0..3: A, B, none), paid by
        /// card (`card`) or in cash with `change` on top.
        Sale {
            day: u8,
            lines: Vec<(i64, u8)>,
            card: bool,
            change: i64,
        },
        /// A return of the `pick`-th sale so far.
        Return { day: u8, pick: usize },
        /// A void of the `pick`-th document so far.
        Void { day: u8, pick: usize },
        /// Close the day, counting `counted` cash.
        Close { day: u8, counted: i64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (0u8..4, proptest::collection::vec((1i64..50_000, 0u8..3), 1..4), any::<bool>(), 0i64..1000)
                .prop_map(|(day, lines, card, change)| Op::Sale { day, lines, card, change }),
            1 => (0u8..4, any::<usize>()).prop_map(|(day, pick)| Op::Return { day, pick }),
            1 => (0u8..4, any::<usize>()).prop_map(|(day, pick)| Op::Void { day, pick }),
            1 => (0u8..4, 0i64..200_000).prop_map(|(day, counted)| Op::Close { day, counted }),
        ]
    }

    fn date(day: u8) -> String {
        format!("2026-11-2{day}")
    }

    /// The till's document, validated and canonical as the API stores it.
    fn new_sale(doc: serde_json::Value) -> NewSale {
        let sale = crate::contract::sale::validate(&doc, None).expect("a valid document");
        let json = sale.canonical_json();
        NewSale {
            transaction_id: Uuid::new_v4(),
            kind: sale.kind,
            references: sale.references,
            client_key: None,
            sale_sha256: crate::common::hash::sha256_hex(json.as_bytes()),
            sale_json: json,
            currency: sale.currency.clone(),
            total: sale.total,
            business_date: sale.business_date.clone(),
            replay_only: false,
        }
    }

    fn body(
        day: u8,
        kind: &str,
        references: Option<Uuid>,
        lines: &[(i64, u8)],
        card: bool,
        change: i64,
    ) -> serde_json::Value {
        let total: i64 = lines.iter().map(|l| l.0).sum();
        let lines: Vec<_> = lines
            .iter()
            .enumerate()
            .map(|(i, (amount, tax))| {
                let code = [Some("A"), Some("B"), None][*tax as usize];
                json!({"sku": format!("S{i}"), "quantity": "1", "unit_price": amount,
                       "amount": amount, "tax_code": code})
            })
            .collect();
        let (method, change) = if card { ("card", 0) } else { ("cash", change) };
        if kind == "void" {
            return json!({"kind": "void", "references": references, "business_date": date(day),
                          "occurred_at": "2026-11-22T10:00:00Z", "currency": "KES"});
        }
        json!({"kind": kind, "references": references, "business_date": date(day),
               "occurred_at": "2026-11-22T10:00:00Z", "currency": "KES", "lines": lines,
               "payments": [{"method": method, "amount": total + change}],
               "total": total, "change": change})
    }

    proptest::proptest! {
        #![proptest_config(crate::common::testing::proptest_config(Some(24)))]

        /// Whatever tills and operators do, on any days, in any order: a
        /// closed day takes no document and no void of its documents (the
        /// model says which), every closing's net, tax codes and payment
        /// methods agree and carry the day's grand-total change, the whole
        /// journal verifies, and one byte changed in any stored document
        /// (closings too) is caught.
        #[test]
        fn closings_hold_through_random_days_and_any_changed_byte_is_caught(
            ops in proptest::collection::vec(op(), 1..40),
            flip in any::<(usize, usize)>(),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let id = LaneIdentity { lane_id: "L03".into(), series: "L03".into() };
            let (store, lock) =
                Store::open(dir.path(), id, Arc::new(SystemClock::new())).unwrap();
            // The model: documents (id, day, kind, total), the last day closed.
            let mut docs: Vec<(Uuid, u8, Kind, i64)> = vec![];
            let mut closed: Option<u8> = None;
            let mut closings = 0;
            rt.block_on(async {
                for op in &ops {
                    match op {
                        Op::Close { day, counted } => {
                            let o = store
                                .close_day(CloseRequest {
                                    business_date: date(*day),
                                    today: "2026-11-30".into(),
                                    counted: [("KES".to_owned(), *counted)].into(),
                                    actor: "test".into(),
                                })
                                .await
                                .unwrap();
                            let has_docs = docs.iter().any(|d| d.1 == *day);
                            let earlier_open = docs
                                .iter()
                                .any(|d| d.1 < *day && closed.is_none_or(|c| d.1 > c));
                            match &o {
                                CloseOutcome::Closed { closing } => {
                                    assert!(closed.is_none_or(|c| c < *day) && has_docs && !earlier_open, "{o:?}");
                                    closed = Some(*day);
                                    closings += 1;
                                    let f = &closing.closing.as_ref().unwrap().figures;
                                    let net = f.net.get("KES").copied().unwrap_or_default();
                                    let tax: i64 = f.tax_codes.get("KES").map_or(0, |m| m.values().sum());
                                    let pay: i64 = f.payment_methods.get("KES").map_or(0, |m| m.values().sum());
                                    assert_eq!((tax, pay), (net, net), "{f:?}");
                                }
                                CloseOutcome::AlreadyClosed { .. } => {
                                    assert!(closed.is_some_and(|c| c >= *day))
                                }
                                CloseOutcome::EarlierDayOpen { .. } => assert!(earlier_open),
                                CloseOutcome::NothingToClose { .. } => assert!(!has_docs),
                                CloseOutcome::InFuture { .. } => panic!("{o:?}"),
                            }
                        }
                        Op::Sale { day, lines, card, change } => {
                            let s = new_sale(body(*day, "sale", None, lines, *card, *change));
                            let id = s.transaction_id;
                            let total = s.total;
                            match store.insert_sale(s).await.unwrap() {
                                InsertOutcome::Created(_) => {
                                    assert!(closed.is_none_or(|c| c < *day));
                                    docs.push((id, *day, Kind::Sale, total));
                                }
                                InsertOutcome::Refused(Refusal::DayClosed { .. }) => {
                                    assert!(closed.is_some_and(|c| c >= *day))
                                }
                                other => panic!("{other:?}"),
                            }
                        }
                        Op::Return { day, pick } | Op::Void { day, pick } => {
                            let sales: Vec<_> = docs.iter().filter(|d| d.2 == Kind::Sale).collect();
                            let pool = if matches!(op, Op::Return { .. }) { sales } else { docs.iter().collect() };
                            let Some(target) = pool.get(pick % pool.len().max(1)).copied().copied() else {
                                continue;
                            };
                            let doc = match op {
                                Op::Return { .. } => body(*day, "return", Some(target.0), &[(target.3.max(1), 0)], false, 0),
                                _ => body(*day, "void", Some(target.0), &[], false, 0),
                            };
                            let s = new_sale(doc);
                            let (id, kind, total) = (s.transaction_id, s.kind, s.total);
                            let void_of_closed = kind == Kind::Void && closed.is_some_and(|c| c >= target.1);
                            match store.insert_sale(s).await.unwrap() {
                                InsertOutcome::Created(_) => {
                                    assert!(closed.is_none_or(|c| c < *day) && !void_of_closed);
                                    docs.push((id, *day, kind, total));
                                }
                                InsertOutcome::Refused(Refusal::DayClosed { .. }) => {
                                    assert!(closed.is_some_and(|c| c >= *day))
                                }
                                InsertOutcome::Refused(Refusal::VoidOfClosedDay { .. }) => {
                                    assert!(void_of_closed)
                                }
                                other => panic!("{other:?}"),
                            }
                        }
                    }
                }
                store.close().await;
            });
            drop(lock);
            let path = dir.path().join(crate::lane::store::DB_FILE);
            let c = open::open(&path, open::Mode::ReadOnly).unwrap();
            let out = super::super::journal::verify(&c, &path).unwrap();
            prop_assert!(out.unreadable.is_empty());
            if let Some(s) = out.series.get("L03") {
                prop_assert!(s.intact(), "{:?}", s.broken);
                prop_assert_eq!(s.closings, closings);
                prop_assert_eq!(s.documents as usize, docs.len());
            }
            drop(c);
            // One byte of one document changed, as an attacker would.
            if docs.is_empty() {
                return Ok(());
            }
            let w = rusqlite::Connection::open(&path).unwrap();
            w.execute_batch("DROP TRIGGER closings_are_immutable").unwrap();
            let all: Vec<(String, i64, i64)> = w
                .prepare("SELECT 'sales', seq, length(body) FROM sales UNION ALL
                          SELECT 'closings', seq, length(body) FROM closings ORDER BY 2")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let (table, seq, len) = &all[flip.0 % all.len()];
            let at = flip.1 % usize::try_from(*len).unwrap();
            let mut bytes: Vec<u8> = w
                .query_row(&format!("SELECT body FROM {table} WHERE seq = ?1"), [seq], |r| r.get(0))
                .unwrap();
            bytes[at] ^= 0x01;
            w.execute(&format!("UPDATE {table} SET body = ?2 WHERE seq = ?1"), rusqlite::params![seq, bytes])
                .unwrap();
            drop(w);
            let c = open::open(&path, open::Mode::ReadOnly).unwrap();
            let out = super::super::journal::verify(&c, &path).unwrap();
            let caught = !out.unreadable.is_empty() || out.series.values().any(|s| !s.intact());
            prop_assert!(caught, "byte {at} of {table} {seq} changed, and verify found it intact");
        }
    }
}
