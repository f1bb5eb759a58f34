//! The day closing of the fiscal journal (docs/journal.md): the figures of
//! one business day of one series, recorded once as a `closing` document
//! in the chain, and computed the same way by whoever writes them (the
//! lane, at `laned close-day`, and for `laned report --x`) and whoever
//! checks them (`laned verify`).
//!
//! Every figure is a sum over the documents of the day in lane order, in
//! integer minor units per currency:
//!
//! - `kinds`: per kind, the count and the sum of totals; for voids, the
//!   sum of what they cancel (the signed total of the voided document: a
//!   voided sale counts its total, a voided return minus its total, a void
//!   of a document not earlier in the series 0);
//! - `net`: sales − returns − what voids cancel, which is the day's change
//!   of the grand total;
//! - `tax_codes`: line amounts per tax code (`""`: lines with none), sales
//!   adding, returns subtracting, voids subtracting the voided document's;
//! - `payment_methods`: payments per method, the change taken off `cash`,
//!   with the same signs.
//!
//! So `net`, the sum of `tax_codes` and the sum of `payment_methods` agree
//! for every currency.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use uuid::Uuid;

use super::Kind;

/// The payment method whose net is the cash expected in the drawer.
pub const CASH: &str = "cash";

/// A short text of a document (a date, a currency, a tax code, a payment
/// method): kept inline, so that reading a document allocates nothing.
pub type Text = compact_str::CompactString;

/// What a closing reads of a covered document's sale (its other fields
/// are skipped).
#[derive(Debug, Clone, Deserialize)]
pub struct SaleDoc {
    /// sale, return or void.
    pub kind: Kind,
    /// The document a return or void refers to.
    #[serde(default)]
    pub references: Option<Uuid>,
    /// The business day.
    pub business_date: Text,
    /// ISO 4217 code.
    pub currency: Text,
    /// Σ line amounts.
    pub total: i64,
    /// Change given, in cash.
    #[serde(default)]
    pub change: i64,
    /// The lines' amounts summed per tax code (`""`: lines with none), in
    /// the order the codes first appear: all a closing needs of them.
    #[serde(default, rename = "lines", deserialize_with = "tax_of_lines")]
    pub tax: Sums,
    /// The payments' amounts summed per method.
    #[serde(default, rename = "payments", deserialize_with = "by_method")]
    pub pay: Sums,
}

/// Amounts summed per key (a tax code, a payment method), in the order the
/// keys first appear; inline for the usual few keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sums(pub SmallVec<[(Text, i64); 2]>);

impl Sums {
    /// Adds `v` under `key`.
    pub fn add(&mut self, key: &str, v: i64) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, e)) => *e = e.saturating_add(v),
            None => self.0.push((key.into(), v)),
        }
    }
}

/// The `lines` array, summed per tax code as it is read.
fn tax_of_lines<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Sums, D::Error> {
    sums::<D, LineDoc>(d, |l| (l.tax_code.unwrap_or_default(), l.amount))
}

/// The `payments` array, summed per method as it is read.
fn by_method<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Sums, D::Error> {
    sums::<D, PaymentDoc>(d, |p| (p.method, p.amount))
}

/// An array of `T`, each summed under its key as it is read (no vector of
/// lines is built).
fn sums<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
    key: fn(T) -> (Text, i64),
) -> Result<Sums, D::Error> {
    struct V<T>(fn(T) -> (Text, i64));
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
        type Value = Sums;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Sums, A::Error> {
            let mut s = Sums::default();
            while let Some(t) = seq.next_element::<T>()? {
                let (k, v) = (self.0)(t);
                s.add(&k, v);
            }
            Ok(s)
        }
    }
    d.deserialize_seq(V(key))
}

/// A line, as a closing reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct LineDoc {
    /// Its tax code, if any.
    #[serde(default)]
    pub tax_code: Option<Text>,
    /// Its amount.
    pub amount: i64,
}

/// A payment, as a closing reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentDoc {
    /// cash, card, …
    pub method: Text,
    /// Its amount.
    pub amount: i64,
}

/// A sale's or return's signed contribution, kept for a void that may
/// cancel it later.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Breakdown {
    /// Its currency.
    pub currency: String,
    /// Its effect on the grand total.
    pub effect: i64,
    /// Per tax code.
    pub tax: BTreeMap<String, i64>,
    /// Per payment method, change taken off cash.
    pub pay: BTreeMap<String, i64>,
}

impl Breakdown {
    /// The contribution of a sale (+) or return (−); a void has none of
    /// its own.
    pub fn of(doc: &SaleDoc) -> Breakdown {
        let sign = match doc.kind {
            Kind::Sale => 1,
            Kind::Return => -1,
            Kind::Void => 0,
        };
        let mut b = Breakdown {
            currency: doc.currency.to_string(),
            effect: doc.total.saturating_mul(sign),
            ..Breakdown::default()
        };
        if sign == 0 {
            return b;
        }
        for (code, v) in &doc.tax.0 {
            add(&mut b.tax, code, v.saturating_mul(sign));
        }
        for (method, v) in &doc.pay.0 {
            add(&mut b.pay, method, v.saturating_mul(sign));
        }
        if doc.change != 0 {
            add(&mut b.pay, CASH, doc.change.saturating_mul(-sign));
        }
        b
    }
}

/// Adds `v` under `key` (allocating the key only the first time: this
/// runs for every line and payment of every document verified, and for
/// every document's grand total).
pub(crate) fn add(m: &mut BTreeMap<String, i64>, key: &str, v: i64) {
    match m.get_mut(key) {
        Some(e) => *e = e.saturating_add(v),
        None => {
            m.insert(key.to_owned(), v);
        }
    }
}

/// Adds `v` under `currency` and `key` (allocating only the first time).
fn add_in(m: &mut BTreeMap<String, BTreeMap<String, i64>>, currency: &str, key: &str, v: i64) {
    if let Some(inner) = m.get_mut(currency) {
        add(inner, key, v);
        return;
    }
    m.insert(currency.to_owned(), BTreeMap::from([(key.to_owned(), v)]));
}

/// Count and sum of one kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindFigures {
    /// Documents of the kind.
    pub count: i64,
    /// Per currency.
    pub totals: BTreeMap<String, i64>,
}

/// The three kinds, always all listed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kinds {
    /// Sales.
    pub sale: KindFigures,
    /// Returns.
    #[serde(rename = "return")]
    pub ret: KindFigures,
    /// Voids: what they cancel.
    pub void: KindFigures,
}

/// One business day's figures in one series.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    /// Documents covered.
    pub documents: i64,
    /// The lowest receipt number covered.
    pub first_receipt_no: i64,
    /// The highest receipt number covered.
    pub last_receipt_no: i64,
    /// Per kind.
    pub kinds: Kinds,
    /// Per currency: the day's change of the grand total.
    pub net: BTreeMap<String, i64>,
    /// Per currency, per tax code.
    pub tax_codes: BTreeMap<String, BTreeMap<String, i64>>,
    /// Per currency, per payment method.
    pub payment_methods: BTreeMap<String, BTreeMap<String, i64>>,
}

impl Figures {
    /// Adds the next document of the day. `voided`: for a void, the
    /// breakdown of the document it cancels, when that is earlier in the
    /// series.
    pub fn add(&mut self, receipt_no: i64, doc: &SaleDoc, voided: Option<&Breakdown>) {
        self.documents += 1;
        if self.documents == 1 {
            self.first_receipt_no = receipt_no;
            self.last_receipt_no = receipt_no;
        } else {
            self.first_receipt_no = self.first_receipt_no.min(receipt_no);
            self.last_receipt_no = self.last_receipt_no.max(receipt_no);
        }
        let cur = doc.currency.as_str();
        match (doc.kind, voided) {
            (Kind::Sale | Kind::Return, _) => {
                // Straight from the document: no breakdown built.
                let (bucket, sign) = match doc.kind {
                    Kind::Sale => (&mut self.kinds.sale, 1),
                    _ => (&mut self.kinds.ret, -1),
                };
                bucket.count += 1;
                add(&mut bucket.totals, cur, doc.total);
                add(&mut self.net, cur, doc.total.saturating_mul(sign));
                for (code, v) in &doc.tax.0 {
                    add_in(&mut self.tax_codes, cur, code, v.saturating_mul(sign));
                }
                for (method, v) in &doc.pay.0 {
                    add_in(
                        &mut self.payment_methods,
                        cur,
                        method,
                        v.saturating_mul(sign),
                    );
                }
                if doc.change != 0 {
                    add_in(
                        &mut self.payment_methods,
                        cur,
                        CASH,
                        doc.change.saturating_mul(-sign),
                    );
                }
            }
            (Kind::Void, b) => {
                // A void counts what it cancels, and takes the voided
                // document's amounts back out, in its own currency.
                let effect = b.map_or(0, |b| b.effect);
                self.kinds.void.count += 1;
                add(&mut self.kinds.void.totals, cur, effect);
                add(&mut self.net, cur, effect.saturating_neg());
                if let Some(b) = b {
                    for (code, v) in &b.tax {
                        add_in(&mut self.tax_codes, cur, code, v.saturating_neg());
                    }
                    for (method, v) in &b.pay {
                        add_in(&mut self.payment_methods, cur, method, v.saturating_neg());
                    }
                }
            }
        }
    }

    /// The cash expected in the drawer in `currency`.
    pub fn expected_cash(&self, currency: &str) -> i64 {
        self.payment_methods
            .get(currency)
            .and_then(|m| m.get(CASH))
            .copied()
            .unwrap_or_default()
    }

    /// The cash counted per currency against what is expected.
    pub fn cash(&self, counted: &BTreeMap<String, i64>) -> BTreeMap<String, Cash> {
        counted
            .iter()
            .map(|(c, n)| {
                let expected = self.expected_cash(c);
                (
                    c.clone(),
                    Cash {
                        expected,
                        counted: *n,
                        variance: n.saturating_sub(expected),
                    },
                )
            })
            .collect()
    }
}

/// Cash counted at the closing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cash {
    /// The net of the `cash` payment method.
    pub expected: i64,
    /// What was counted.
    pub counted: i64,
    /// counted − expected.
    pub variance: i64,
}

/// The `closing` object of a closing document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closing {
    /// The business day closed.
    pub business_date: String,
    /// The hash of the last document it covers (in lane order).
    pub covers_hash: String,
    /// The day's figures.
    #[serde(flatten)]
    pub figures: Figures,
    /// Counted cash, when given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cash: BTreeMap<String, Cash>,
}

/// The `kind` of a closing document's envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClosingKind {
    /// The only value.
    Closing,
}

/// A closing document: chained like a sale, numbered by `closing_no`
/// instead of a receipt number. Serialized by serde in this field order;
/// the bytes are fixed when it is stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClosingEnvelope {
    /// Its id (v4), the idempotency key at the back-end.
    pub transaction_id: Uuid,
    /// The lane.
    pub lane_id: String,
    /// The series it closes a day of.
    pub series: String,
    /// Always `closing`.
    pub kind: ClosingKind,
    /// Gap-free per series, from 1.
    pub closing_no: i64,
    /// Its place in lane order (shared with sales).
    pub lane_seq: i64,
    /// When the lane recorded it (UTC).
    pub recorded_at: String,
    /// The hash of the series' previous document.
    pub prev_hash: String,
    /// The series' grand total (a closing changes nothing).
    pub grand_total: BTreeMap<String, i64>,
    /// The figures.
    pub closing: Closing,
}

/// The first place two figures differ, as a dotted path, for a message
/// that names what is wrong.
pub fn first_difference(found: &Figures, expected: &Figures) -> String {
    fn walk(a: &serde_json::Value, b: &serde_json::Value, at: String) -> Option<String> {
        use serde_json::Value::Object;
        match (a, b) {
            (Object(x), Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                keys.into_iter().find_map(|k| {
                    let null = serde_json::Value::Null;
                    let p = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    walk(x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null), p)
                })
            }
            _ if a == b => None,
            _ => Some(format!("{at} is {a}, the documents give {b}")),
        }
    }
    let a = serde_json::to_value(found).unwrap_or_default();
    let b = serde_json::to_value(expected).unwrap_or_default();
    walk(&a, &b, String::new()).unwrap_or_else(|| "they differ".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(v: serde_json::Value) -> SaleDoc {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn net_tax_codes_and_payments_agree_and_a_void_cancels_what_it_voids() {
        let sale = doc(serde_json::json!({
            "kind": "sale", "business_date": "2026-11-22", "currency": "KES", "total": 1500,
            "change": 500,
            "lines": [{"tax_code": "A", "amount": 1000}, {"amount": 500}],
            "payments": [{"method": "cash", "amount": 1000}, {"method": "card", "amount": 1000}]
        }));
        let ret = doc(serde_json::json!({
            "kind": "return", "business_date": "2026-11-22", "currency": "KES", "total": 500,
            "lines": [{"amount": 500}], "payments": [{"method": "cash", "amount": 500}]
        }));
        let void = doc(serde_json::json!({
            "kind": "void", "business_date": "2026-11-22", "currency": "KES", "total": 0
        }));
        let mut f = Figures::default();
        f.add(3, &sale, None);
        f.add(4, &ret, None);
        assert_eq!(f.net["KES"], 1000);
        assert_eq!(f.tax_codes["KES"]["A"], 1000);
        assert_eq!(f.tax_codes["KES"][""], 0);
        assert_eq!(f.payment_methods["KES"]["cash"], 0);
        assert_eq!(f.payment_methods["KES"]["card"], 1000);
        f.add(5, &void, Some(&Breakdown::of(&sale)));
        assert_eq!(
            (f.first_receipt_no, f.last_receipt_no, f.documents),
            (3, 5, 3)
        );
        assert_eq!(f.kinds.void.count, 1);
        assert_eq!(f.kinds.void.totals["KES"], 1500);
        assert_eq!(f.net["KES"], -500);
        assert_eq!(f.tax_codes["KES"].values().sum::<i64>(), -500);
        assert_eq!(f.payment_methods["KES"].values().sum::<i64>(), -500);
        let cash = f.cash(&BTreeMap::from([("KES".to_owned(), -400)]));
        assert_eq!(cash["KES"].expected, -500);
        assert_eq!(cash["KES"].variance, 100);
    }
}
