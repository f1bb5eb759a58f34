//! What an answer from the back-end means for a sale (docs/backend-contract.md).

use std::time::Duration;

/// The meaning of one answer for one sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Posted (201) or already posted (200): the document is known.
    Posted {
        /// The back-end's document number.
        doc_no: String,
        /// When it was posted.
        posted_at: String,
        /// The back-end's signature, if it sent one.
        ack: Option<crate::contract::ack::Ack>,
        /// A closing's day certificate, if the back-end sent one.
        certificate: Option<crate::contract::ack::DayCertificate>,
    },
    /// Refused for a reason a retry will not fix: the sale becomes `stuck`.
    Stuck {
        /// Stable code from the back-end (or `http_<status>`).
        code: String,
        /// The back-end's sentence.
        message: String,
    },
    /// Worth retrying later (network, overload, in flight, 5xx).
    Retry {
        /// Stable code (`network`, `timeout`, `in_flight`, `http_503`, …).
        code: String,
        /// What happened.
        message: String,
        /// The back-end's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// The lane itself is refused (bad token, forbidden, wrong URL): pause
    /// the drain; no sale changes state.
    LaneFault {
        /// `unauthorized`, `forbidden`, `not_found`, …
        code: String,
        /// What to fix.
        message: String,
    },
}

impl Outcome {
    /// The code recorded for this outcome in attempts and status.
    pub fn code(&self) -> &str {
        match self {
            Outcome::Posted { .. } => "posted",
            Outcome::Stuck { code, .. }
            | Outcome::Retry { code, .. }
            | Outcome::LaneFault { code, .. } => code,
        }
    }

    /// The short name of the outcome kind, as stored in `attempts.outcome`.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Posted { .. } => "posted",
            Outcome::Stuck { .. } => "stuck",
            Outcome::Retry { .. } => "retry",
            Outcome::LaneFault { .. } => "lane_fault",
        }
    }
}

/// The error part of an answer, as far as the back-end gave one.
#[derive(Debug, Clone, Default)]
pub struct ErrorInfo {
    /// The body's `code`, if any.
    pub code: Option<String>,
    /// The body's `message`, if any.
    pub message: Option<String>,
    /// `Retry-After`, parsed.
    pub retry_after: Option<Duration>,
}

/// Classifies a non-success status of a single `PUT`, or of one item in a
/// batch. `200`/`201` are handled by the caller (they need the body).
pub fn classify_failure(status: u16, info: ErrorInfo) -> Outcome {
    let code = info
        .code
        .clone()
        .unwrap_or_else(|| format!("http_{status}"));
    let message = info
        .message
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| format!("the back-end answered HTTP {status}"));
    match status {
        400 | 413 | 422 => Outcome::Stuck { code, message },
        401 => Outcome::LaneFault {
            code: "unauthorized".into(),
            message: format!("the back-end refused the lane's token (HTTP 401): {message}"),
        },
        403 => Outcome::LaneFault {
            code: "forbidden".into(),
            message: format!("the back-end refused this lane (HTTP 403): {message}"),
        },
        404 => Outcome::LaneFault {
            code: "not_found".into(),
            message: format!(
                "the back-end has no sale route at the configured URL (HTTP 404); check backend_url: {message}"
            ),
        },
        408 | 409 | 425 | 429 | 500..=599 => Outcome::Retry {
            code,
            message,
            retry_after: info.retry_after,
        },
        // Redirects are not followed (a PUT must not wander) and any other
        // client error means the lane and back-end disagree on the contract:
        // an operator must look, and no sale is to blame.
        300..=399 | 402..=499 => Outcome::LaneFault {
            code: format!("http_{status}"),
            message: format!(
                "the back-end answered HTTP {status}, which the contract does not use: {message}"
            ),
        },
        _ => Outcome::Retry {
            code,
            message,
            retry_after: info.retry_after,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(status: u16) -> &'static str {
        classify_failure(status, ErrorInfo::default()).kind()
    }

    #[test]
    fn statuses_map_as_the_contract_says() {
        for s in [400, 413, 422] {
            assert_eq!(kind(s), "stuck", "{s}");
        }
        for s in [401, 403, 404, 405, 410, 301] {
            assert_eq!(kind(s), "lane_fault", "{s}");
        }
        for s in [408, 409, 425, 429, 500, 502, 503, 504] {
            assert_eq!(kind(s), "retry", "{s}");
        }
    }

    #[test]
    fn the_back_ends_code_and_message_are_kept() {
        let o = classify_failure(
            422,
            ErrorInfo {
                code: Some("payload_mismatch".into()),
                message: Some("different bytes".into()),
                retry_after: None,
            },
        );
        assert_eq!(
            o,
            Outcome::Stuck {
                code: "payload_mismatch".into(),
                message: "different bytes".into()
            }
        );
        let o = classify_failure(
            503,
            ErrorInfo {
                retry_after: Some(Duration::from_secs(7)),
                ..Default::default()
            },
        );
        assert!(
            matches!(o, Outcome::Retry { ref code, retry_after: Some(d), .. } if code == "http_503" && d.as_secs() == 7)
        );
    }
}
