//! The fiscal journal's format (docs/journal.md), shared by whoever writes
//! it (the lane) and whoever checks it (`laned verify`, later the back-end):
//! per series, every document carries `prev_hash`, the SHA-256 of the
//! previous document's exact bytes, and `grand_total`, the series'
//! cumulative net per currency after it. A changed, missing or reordered
//! document breaks a link or a total that anyone holding the bytes can
//! recompute.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use uuid::Uuid;

use super::Kind;

/// The `prev_hash` of a series' first document.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A document's hash: the lowercase hex SHA-256 of its exact bytes.
pub fn hash(bytes: &[u8]) -> String {
    crate::common::hash::sha256_hex(bytes)
}

/// A series' running state: the hash of its last document and its grand
/// total, and what a later void needs of the documents before it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    /// The hash of the last document (`None`: the series has none yet).
    pub last_hash: Option<String>,
    /// The cumulative net per currency, minor units.
    pub grand_total: BTreeMap<String, i64>,
}

impl Head {
    /// The `prev_hash` the next document carries.
    pub fn next_prev_hash(&self) -> &str {
        self.last_hash.as_deref().unwrap_or(GENESIS)
    }
}

/// What a document does to its series' grand total, in its currency: a
/// sale adds its total, a return subtracts it, a void subtracts the signed
/// total of the document it voids (`voided`: that document's own effect,
/// when it is in this series before the void; a void of a document outside
/// the series changes nothing here).
pub fn effect(kind: Kind, total: i64, voided: Option<i64>) -> i64 {
    match kind {
        Kind::Sale => total,
        Kind::Return => -total,
        Kind::Void => voided.map_or(0, |v| -v),
    }
}

/// The grand total after a document with this `effect` in `currency`:
/// every currency seen in the series so far stays listed.
pub fn after(total: &BTreeMap<String, i64>, currency: &str, effect: i64) -> BTreeMap<String, i64> {
    let mut t = total.clone();
    let e = t.entry(currency.to_owned()).or_default();
    *e = e.saturating_add(effect);
    t
}

/// What verification reads of a document: its envelope's fields, the
/// sale's kind, reference, currency and total.
#[derive(Debug, Deserialize)]
struct Fields {
    transaction_id: Uuid,
    series: String,
    receipt_no: i64,
    #[serde(default)]
    prev_hash: Option<String>,
    #[serde(default)]
    grand_total: Option<BTreeMap<String, i64>>,
    sale: SaleFields,
}

#[derive(Debug, Deserialize)]
struct SaleFields {
    kind: Kind,
    references: Option<Uuid>,
    currency: String,
    total: i64,
}

/// Why a document breaks its series' journal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    /// Its bytes are not a document.
    #[error("its bytes are not a readable document: {0}")]
    Unreadable(String),
    /// Its receipt number is not the next one.
    #[error("its receipt number is {found}, but the series' next is {expected}")]
    Numbering {
        /// The number it carries.
        found: i64,
        /// The number that follows the document before it.
        expected: i64,
    },
    /// It does not link to the document before it.
    #[error("its prev_hash {found} is not the hash of the document before it ({expected})")]
    Link {
        /// The `prev_hash` it carries.
        found: String,
        /// The hash of the document before it (or the genesis value).
        expected: String,
    },
    /// It carries no link after documents that do.
    #[error("it carries no prev_hash, but documents before it in the series do")]
    Unlinked,
    /// Its grand total is not the one the chain before it gives.
    #[error("its grand_total {found:?} is not {expected:?}, the total the chain before it gives")]
    GrandTotal {
        /// The total it carries.
        found: BTreeMap<String, i64>,
        /// The total recomputed.
        expected: BTreeMap<String, i64>,
    },
    /// Its transaction id appears earlier in the journal.
    #[error("its transaction id already appears earlier in the journal")]
    Duplicate,
}

/// The first broken document of a series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// Its position in the input (1-based).
    pub position: u64,
    /// Its transaction id, when readable.
    pub transaction_id: Option<Uuid>,
    /// Its receipt number, when readable.
    pub receipt_no: Option<i64>,
    /// Why.
    pub why: Break,
}

/// One series, as far as it has been checked.
#[derive(Debug, Clone, Default)]
pub struct SeriesReport {
    /// Documents read.
    pub documents: u64,
    /// Of which stored before the journal (no `prev_hash`).
    pub unchained: u64,
    /// The last receipt number.
    pub last_receipt_no: i64,
    /// The series' state after the last document.
    pub head: Head,
    /// The first broken document, if any; checking the series stops there.
    pub broken: Option<Broken>,
    /// Receipt numbers skipped by documents that still link to the one
    /// before them (`first..=last`): numbers this lane did not issue (a
    /// copy restored and acknowledged continues after head office's
    /// number). The numbering is then not 1..n, though the chain holds.
    pub gaps: Vec<(i64, i64)>,
    /// Each sale's and return's effect, for the voids after it.
    effects: HashMap<Uuid, i64>,
}

/// Checks documents given in lane order, series by series: every link,
/// every grand total, receipt numbers 1..n, no id twice. Memory grows with
/// the sales and returns of a series (an id and an amount each, for the
/// voids that may follow), not with their bytes.
#[derive(Debug, Default)]
pub struct Verifier {
    series: BTreeMap<String, SeriesReport>,
    seen: std::collections::HashSet<Uuid>,
    position: u64,
}

impl SeriesReport {
    /// The chain holds and the receipt numbers are exactly 1..n.
    pub fn intact(&self) -> bool {
        self.broken.is_none() && self.gaps.is_empty()
    }
}

impl Verifier {
    /// A verifier that has read nothing.
    pub fn new() -> Verifier {
        Verifier::default()
    }

    /// Reads the next document's exact bytes. An unreadable document
    /// breaks no series it cannot be placed in: it is returned.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), Broken> {
        self.position += 1;
        let position = self.position;
        let f: Fields = match serde_json::from_slice(bytes) {
            Ok(f) => f,
            Err(e) => {
                return Err(Broken {
                    position,
                    transaction_id: None,
                    receipt_no: None,
                    why: Break::Unreadable(e.to_string()),
                });
            }
        };
        let first_seen = self.seen.insert(f.transaction_id);
        let s = self.series.entry(f.series.clone()).or_default();
        if s.broken.is_some() {
            return Ok(());
        }
        let broken = |why| Broken {
            position,
            transaction_id: Some(f.transaction_id),
            receipt_no: Some(f.receipt_no),
            why,
        };
        let expected_no = s.last_receipt_no + 1;
        let numbering = Break::Numbering {
            found: f.receipt_no,
            expected: expected_no,
        };
        // A number skipped forward by a document that links to the one
        // before it is a gap in the numbering, not in the chain (a lane
        // restored from an old copy continues after head office's number):
        // recorded, and the chain checked on. Anything else is a break.
        let jump = f.receipt_no > expected_no;
        let why = if !first_seen {
            Some(Break::Duplicate)
        } else if f.receipt_no < expected_no {
            Some(numbering.clone())
        } else {
            None
        };
        let voided = f
            .sale
            .references
            .filter(|_| f.sale.kind == Kind::Void)
            .and_then(|r| s.effects.get(&r).copied());
        let effect = effect(f.sale.kind, f.sale.total, voided);
        let total = after(&s.head.grand_total, &f.sale.currency, effect);
        let why = why.or_else(|| match (&f.prev_hash, &f.grand_total) {
            (None, _) if s.documents > s.unchained => Some(Break::Unlinked),
            (None, _) => None,
            (Some(p), _) if p != s.head.next_prev_hash() => Some(Break::Link {
                found: p.clone(),
                expected: s.head.next_prev_hash().to_owned(),
            }),
            (Some(_), Some(g)) if *g != total => Some(Break::GrandTotal {
                found: g.clone(),
                expected: total.clone(),
            }),
            (Some(_), None) => Some(Break::GrandTotal {
                found: BTreeMap::new(),
                expected: total.clone(),
            }),
            (Some(_), Some(_)) => None,
        });
        let why = match why {
            // A jump whose document does not link: the numbering is the
            // first thing wrong with it.
            Some(_) if jump => Some(numbering),
            None if jump && f.prev_hash.is_none() => Some(numbering),
            other => other,
        };
        if let Some(why) = why {
            s.broken = Some(broken(why));
            return Ok(());
        }
        if jump {
            s.gaps.push((expected_no, f.receipt_no - 1));
        }
        s.documents += 1;
        if f.prev_hash.is_none() {
            s.unchained += 1;
        }
        s.last_receipt_no = f.receipt_no;
        s.head = Head {
            last_hash: Some(hash(bytes)),
            grand_total: total,
        };
        if matches!(f.sale.kind, Kind::Sale | Kind::Return) {
            s.effects.insert(f.transaction_id, effect);
        }
        Ok(())
    }

    /// Each series and how it came out.
    pub fn finish(self) -> BTreeMap<String, SeriesReport> {
        self.series
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chained document as the lane writes it.
    fn doc(
        head: &Head,
        id: Uuid,
        no: i64,
        kind: &str,
        refs: Option<Uuid>,
        total: i64,
    ) -> (Vec<u8>, Head) {
        let k: Kind = serde_json::from_value(serde_json::json!(kind)).unwrap();
        let e = effect(k, total, None);
        let gt = after(&head.grand_total, "KES", e);
        let body = serde_json::json!({
            "transaction_id": id, "lane_id": "L1", "series": "L1", "receipt_no": no,
            "lane_seq": no, "recorded_at": "2026-11-22T10:00:00.000Z",
            "prev_hash": head.next_prev_hash(), "grand_total": gt,
            "sale": {"kind": kind, "references": refs, "currency": "KES", "total": total}
        })
        .to_string()
        .into_bytes();
        let next = Head {
            last_hash: Some(hash(&body)),
            grand_total: gt,
        };
        (body, next)
    }

    #[test]
    fn an_intact_chain_verifies_and_a_changed_byte_is_named() {
        let mut head = Head::default();
        let mut docs = vec![];
        for (i, t) in [100, 250, 75].iter().enumerate() {
            let (b, h) = doc(&head, Uuid::new_v4(), i as i64 + 1, "sale", None, *t);
            docs.push(b);
            head = h;
        }
        let mut v = Verifier::new();
        for d in &docs {
            v.push(d).unwrap();
        }
        let r = v.finish();
        assert_eq!(r["L1"].broken, None);
        assert_eq!(r["L1"].documents, 3);
        assert_eq!(r["L1"].head.grand_total["KES"], 425);

        // One byte of the second document: the third no longer links.
        let mut bad = docs.clone();
        let at = bad[1].iter().position(|b| *b == b'2').unwrap();
        bad[1][at] = b'3';
        let mut v = Verifier::new();
        for d in &bad {
            v.push(d).unwrap();
        }
        let broken = v.finish()["L1"].broken.clone().unwrap();
        assert_eq!(broken.position, 3, "{broken:?}");
        assert!(matches!(broken.why, Break::Link { .. }));

        // A number skipped by a document that links to the one before it
        // (a restored copy, acknowledged): a gap, and the chain checked on.
        let (b4, _) = doc(&head, Uuid::new_v4(), 9, "sale", None, 10);
        let mut v = Verifier::new();
        for d in docs.iter().chain([&b4]) {
            v.push(d).unwrap();
        }
        let r = v.finish();
        assert_eq!(r["L1"].broken, None);
        assert_eq!(r["L1"].gaps, [(4, 8)]);
        assert!(!r["L1"].intact());
        assert_eq!(r["L1"].head.grand_total["KES"], 435);

        // The second left out: the third's number and link are wrong.
        let mut v = Verifier::new();
        v.push(&docs[0]).unwrap();
        v.push(&docs[2]).unwrap();
        let broken = v.finish()["L1"].broken.clone().unwrap();
        assert_eq!(
            broken.why,
            Break::Numbering {
                found: 3,
                expected: 2
            }
        );
    }
}
