//! Wire types of the back-end contract (docs/backend-contract.md), shared by the lane's
//! drain and the reference back-end. Changing them changes the contract:
//! update `docs/` and the tests in the same commit.

pub mod ack;
pub mod bundle;
pub mod closing;
pub mod journal;
pub mod money;
pub mod reconcile;
pub mod sale;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

/// What a till document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A sale.
    Sale,
    /// Goods returned against an earlier sale.
    Return,
    /// Cancels an earlier sale; carries no lines or payments.
    Void,
}

impl Kind {
    /// The name on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Sale => "sale",
            Kind::Return => "return",
            Kind::Void => "void",
        }
    }

    /// Parses a kind name.
    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::Sale, Kind::Return, Kind::Void]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// The document a lane posts for each sale: identity and position on the
/// lane, plus the sale exactly as the till handed it over. Its bytes are
/// fixed when the sale is stored and resent unchanged on every attempt.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope<S = Box<RawValue>> {
    /// The idempotency key: minted on the lane before any network exchange.
    pub transaction_id: Uuid,
    /// The lane that recorded the sale.
    pub lane_id: String,
    /// Receipt series.
    pub series: String,
    /// Gap-free receipt number within the series.
    pub receipt_no: i64,
    /// The lane's local sequence number (delivery order).
    pub lane_seq: i64,
    /// When the lane stored the sale (UTC, RFC 3339).
    pub recorded_at: String,
    /// The fiscal journal's link (docs/journal.md): the lowercase hex
    /// SHA-256 of the previous document of the series' exact bytes, 64
    /// zeros for the first. Absent on documents stored before the journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_hash: Option<String>,
    /// The series' cumulative net amount per currency after this document,
    /// minor units (docs/journal.md). Absent with `prev_hash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grand_total: Option<std::collections::BTreeMap<String, i64>>,
    /// The sale as accepted from the till (docs/till-api.md).
    pub sale: S,
}

/// The largest envelope a lane sends, in bytes, and the largest a back-end
/// must accept, on `PUT` and inside a batch. The lane refuses at intake a
/// sale whose envelope would be larger.
pub const MAX_ENVELOPE_BYTES: usize = 1024 * 1024;

/// The largest batch body a lane sends: it puts fewer sales in a batch
/// rather than go over (a batch always has room for one envelope of
/// [`MAX_ENVELOPE_BYTES`]).
pub const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;

/// Header carrying the transaction id on every `PUT` of a sale.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// Header the back-end sets to `true` when it answers with a stored result.
pub const IDEMPOTENCY_REPLAYED: &str = "Idempotency-Replayed";

/// Error codes of the back-end contract (docs/backend-contract.md) that the lane acts on.
pub mod codes {
    /// The same id is being posted right now; retry after `Retry-After`.
    pub const IN_FLIGHT: &str = "in_flight";
    /// The same id was posted with different bytes.
    pub const PAYLOAD_MISMATCH: &str = "payload_mismatch";
    /// This lane, series and receipt number is posted under another id.
    pub const RECEIPT_NO_CONFLICT: &str = "receipt_no_conflict";
    /// The receipt series belongs to another lane (`403`, lane-level).
    pub const SERIES_OF_ANOTHER_LANE: &str = "series_of_another_lane";
    /// The document's `prev_hash` contradicts a document the back-end holds
    /// (a forked lane: restored or cloned).
    pub const CHAIN_CONFLICT: &str = "chain_conflict";
    /// The document's `grand_total` is not its predecessor's plus its own
    /// effect.
    pub const GRAND_TOTAL_MISMATCH: &str = "grand_total_mismatch";
    /// The back-end is working on as many requests as it takes; nothing of
    /// this one was posted; retry after `Retry-After` (`429`).
    pub const BUSY: &str = "busy";
}

/// `201`/`200` answer to a posted sale: the back-end's document for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posted {
    /// The sale's id.
    pub transaction_id: Uuid,
    /// The back-end's document number.
    pub doc_no: String,
    /// When the back-end posted it (RFC 3339).
    pub posted_at: String,
    /// The back-end's signature over what it holds ([`ack`]); absent from
    /// a back-end that does not sign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<ack::Ack>,
    /// A closing's day certificate, once the back-end holds the series'
    /// chain unbroken through it ([`ack::DayCertificate`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<ack::DayCertificate>,
}

/// The answer to `POST {base}/v1/sales:batch`: one result per sale, in
/// request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// Results, one per envelope sent.
    pub results: Vec<ItemResult>,
}

/// The outcome for one sale of a batch; `status` has the meaning it would
/// have as the HTTP status of a single `PUT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResult {
    /// The sale's id.
    pub transaction_id: Uuid,
    /// 201 posted, 200 replayed, 409 in flight, 422 refused, …
    pub status: u16,
    /// The document number, when posted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_no: Option<String>,
    /// When posted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posted_at: Option<String>,
    /// The back-end's signature, when posted ([`ack`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<ack::Ack>,
    /// Error code, when not posted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Error sentence, when not posted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The answer to `GET {base}/v1/heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The back-end's clock (RFC 3339).
    pub server_time: String,
    /// Highest receipt number the back-end holds per series of this lane.
    #[serde(default)]
    pub last_receipt_no: std::collections::BTreeMap<String, i64>,
    /// The back-end's signing identity, when it signs ([`Keys`]).
    #[serde(default, flatten)]
    pub keys: Option<Keys>,
}

/// The answer to `GET {base}/v1/keys`, also part of the heartbeat: who
/// signs the back-end's acknowledgements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keys {
    /// The tenant every acknowledgement binds.
    pub tenant: String,
    /// The key acknowledgements are signed with now.
    pub signing_key: ack::PublicKey,
}

/// The body of `POST {base}/v1/sales:batch` built from stored envelope
/// bytes, which are spliced in unchanged: `{"lane_id": …, "sales": [...]}`.
pub fn batch_body<'a>(lane_id: &str, envelopes: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\"lane_id\":");
    // A lane id is plain ASCII (checked by the config), but escape anyway.
    out.extend_from_slice(serde_json::Value::from(lane_id).to_string().as_bytes());
    out.extend_from_slice(b",\"sales\":[");
    for (i, e) in envelopes.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(e);
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_body_is_valid_json_holding_the_envelopes_unchanged() {
        let a = br#"{"transaction_id":"x","sale":{"b":1,"a":2}}"#;
        let b = br#"{"transaction_id":"y"}"#;
        let body = batch_body("L03", [&a[..], &b[..]]);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["lane_id"], "L03");
        assert_eq!(v["sales"].as_array().unwrap().len(), 2);
        // Key order inside each envelope is kept byte for byte.
        assert!(
            std::str::from_utf8(&body)
                .unwrap()
                .contains(r#"{"b":1,"a":2}"#)
        );
        assert_eq!(batch_body("L03", []), br#"{"lane_id":"L03","sales":[]}"#);
    }
}

/// One document a back-end holds, as `GET
/// {base}/v1/lanes/{lane_id}/days/{business_date}/documents` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldDocument {
    /// Its id.
    pub transaction_id: String,
    /// Its receipt series.
    pub series: String,
    /// Its receipt number.
    pub receipt_no: i64,
    /// sale, return or void.
    pub kind: String,
    /// The SHA-256 (lowercase hex) of the exact bytes the back-end holds.
    pub hash: String,
    /// The back-end's document number.
    pub doc_no: String,
}

/// One page of the documents a back-end holds for a lane and business
/// day, in order of series, receipt number and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayDocuments {
    /// The lane.
    pub lane_id: String,
    /// The business day.
    pub business_date: String,
    /// This page.
    pub documents: Vec<HeldDocument>,
    /// The id to ask `after` for the next page; `None` on the last page.
    pub next_after: Option<String>,
}

/// Documents per page of [`DayDocuments`] unless the lane asks for fewer.
pub const DAY_DOCUMENTS_PAGE: i64 = 500;
/// Most documents a page of [`DayDocuments`] holds.
pub const DAY_DOCUMENTS_MAX: i64 = 1000;

/// Count and amounts of one kind of document on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KindTotals {
    /// Documents.
    pub count: i64,
    /// Sum of totals per currency, minor units.
    pub totals: BTreeMap<String, i64>,
}

/// What a back-end holds for one lane and business day: the answer to
/// `GET {base}/v1/lanes/{lane_id}/days/{business_date}` (and what the lane
/// counts on its side for `laned report`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Day {
    /// The lane.
    pub lane_id: String,
    /// The trading day.
    pub business_date: String,
    /// All documents of the day.
    pub count: i64,
    /// Sales not voided.
    pub sales: KindTotals,
    /// Returns not voided.
    pub returns: KindTotals,
    /// Voids.
    pub voids: KindTotals,
    /// Sales and returns cancelled by a void.
    pub voided: KindTotals,
    /// Sales minus returns, not voided, per currency.
    pub net: BTreeMap<String, i64>,
}

impl Day {
    /// Adds one group of documents (one kind, voided or not, one currency).
    pub fn add(&mut self, kind: &str, voided: bool, currency: String, count: i64, sum: i64) {
        self.count += count;
        let bucket = match (kind, voided) {
            (_, true) => &mut self.voided,
            ("sale", _) => &mut self.sales,
            ("return", _) => &mut self.returns,
            _ => &mut self.voids,
        };
        bucket.count += count;
        *bucket.totals.entry(currency.clone()).or_default() += sum;
        let sign = match (kind, voided) {
            ("sale", false) => 1,
            ("return", false) => -1,
            _ => 0,
        };
        if sign != 0 {
            *self.net.entry(currency).or_default() += sign * sum;
        }
    }
}
