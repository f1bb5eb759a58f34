//! Wire types of the back-end contract (DESIGN §6), shared by the lane's
//! drain and the reference back-end. Changing them changes the contract:
//! update `docs/` and the tests in the same commit.

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
    /// The sale as accepted from the till (DESIGN §8).
    pub sale: S,
}
