//! The till API's catalogue of errors: every error the till can see, with
//! its status, stable `code` (docs/till-api.md), sentence and details, and
//! the mapping from the store's errors. Each is a
//! [`crate::common::http::HttpError`], the one type both servers answer
//! errors with.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::http::HttpError;
use crate::contract::sale::FieldError;
use crate::lane::guard::Snapshot;
use crate::lane::messages::Words;
use crate::lane::store::{RestoreGuard, StoreError};

/// `Retry-After` of a `lane_suspended` answer: a hint only, the lane takes
/// sales again the moment an exchange with the back-end succeeds.
const SUSPENDED_RETRY_AFTER: u32 = 60;

/// 400 `invalid_json`.
pub fn invalid_json(e: &serde_json::Error) -> HttpError {
    HttpError::new(
        StatusCode::BAD_REQUEST,
        "invalid_json",
        format!("The body is not valid JSON: {e}."),
    )
    .with_details(json!({"line": e.line(), "column": e.column()}))
}

/// 400 `invalid_transaction_id`.
pub fn invalid_transaction_id(got: &str) -> HttpError {
    let shown: String = got.chars().take(64).collect();
    HttpError::new(
        StatusCode::BAD_REQUEST,
        "invalid_transaction_id",
        "The transaction id must be a version 4 UUID like 0b6f3c1e-8d4a-4c1b-9a57-2f0e6d9b1c3a; \
         get one from POST /v1/transactions.",
    )
    .with_details(json!({"transaction_id": shown}))
}

/// 400 `invalid_actor`: an admin action's `X-Laned-Actor` that the
/// audit log cannot record as given.
pub fn invalid_actor() -> HttpError {
    HttpError::new(
        StatusCode::BAD_REQUEST,
        "invalid_actor",
        "X-Laned-Actor names who acts, for the audit log: 1 to 64 printable ASCII \
         characters (letters, digits, punctuation, spaces), or leave it out to be \
         recorded as admin-api. Nothing was done.",
    )
}

/// 401 `unauthorized`.
pub fn unauthorized() -> HttpError {
    HttpError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "This laned requires an API token: send Authorization: Bearer <token>.",
    )
}

/// 401 `unauthorized` on an admin route.
pub fn admin_unauthorized() -> HttpError {
    HttpError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Admin actions need the admin token: send Authorization: Bearer <token>, \
         with the token from the file admin-token in laned's data directory.",
    )
}

/// 409 `no_backend`: an action that needs a back-end, on a lane without one.
pub fn no_backend() -> HttpError {
    HttpError::new(
        StatusCode::CONFLICT,
        "no_backend",
        "This lane has no back-end configured (backend_url), so there is nothing to sync with.",
    )
}

/// 503 `lane_suspended`: the lane is past a sync ceiling limit and takes
/// no new sales until the back-end is reached. In the cashier's words.
pub fn lane_suspended(s: &Snapshot, w: Words) -> HttpError {
    let reason = w.say(&crate::lane::guard::reason(s));
    HttpError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "lane_suspended",
        w.with("error-lane_suspended", &[("reason", reason.into())]),
    )
    .with_details(json!({
        "lane_state": s.state,
        "rule": s.nearest.map(|(r, _)| r),
        "offline_seconds": s.offline.as_secs(),
    }))
    .with_retry_after(SUSPENDED_RETRY_AFTER)
}

/// 409 `restored_from_old_copy`: the back-end holds higher receipt
/// numbers than this lane; new sales wait for an operator, who
/// acknowledges it (`POST /v1/admin/acknowledge-restore`, in the details).
/// In the cashier's words.
pub fn restored_from_old_copy(g: &RestoreGuard, w: Words) -> HttpError {
    let detail: Vec<String> = g
        .series
        .iter()
        .map(|(s, b)| {
            let ours = if b.lane == 0 {
                w.get("error-restored-none")
            } else {
                crate::lane::store::receipt_label(s, b.lane)
            };
            w.with(
                "error-restored-series",
                &[
                    (
                        "theirs",
                        crate::lane::store::receipt_label(s, b.backend).into(),
                    ),
                    ("ours", ours.into()),
                ],
            )
        })
        .collect();
    HttpError::new(
        StatusCode::CONFLICT,
        "restored_from_old_copy",
        w.with(
            "error-restored_from_old_copy",
            &[("detail", detail.join("; ").into())],
        ),
    )
    .with_details(json!({
        "detected_at": g.detected_at,
        "series": g.series,
        "acknowledge": "POST /v1/admin/acknowledge-restore",
    }))
}

/// A refused day closing: 409 when the journal's state forbids it
/// (`day_already_closed`, `earlier_day_open`), 422 when the request cannot
/// be met (`day_in_future`, `nothing_to_close`).
pub fn close_refused(code: &str, message: String) -> HttpError {
    match code {
        "day_already_closed" => HttpError::new(StatusCode::CONFLICT, "day_already_closed", message),
        "earlier_day_open" => HttpError::new(StatusCode::CONFLICT, "earlier_day_open", message),
        "day_in_future" => {
            HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, "day_in_future", message)
        }
        _ => HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "nothing_to_close",
            message,
        ),
    }
}

/// 409 `nothing_to_acknowledge`.
pub fn nothing_to_acknowledge() -> HttpError {
    HttpError::new(
        StatusCode::CONFLICT,
        "nothing_to_acknowledge",
        "This lane is not guarded against a restored copy; there is nothing to acknowledge.",
    )
}

/// 409 `not_stuck`: only a stuck sale can be retried or resolved.
pub fn not_stuck(id: &str, state: &str) -> HttpError {
    HttpError::new(
        StatusCode::CONFLICT,
        "not_stuck",
        format!("Sale {id} is {state}, not stuck: only a stuck sale can be retried or resolved."),
    )
    .with_details(json!({"transaction_id": id, "state": state}))
}

/// 500 `internal` for a page that could not be rendered.
pub fn page_failed(e: &dyn std::error::Error) -> HttpError {
    tracing::error!(error = %e, "the status page could not be rendered");
    HttpError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "The status page could not be shown; the error is in laned's log. GET /v1/status has the same figures.",
    )
}

/// 403 `forbidden_host`.
pub fn forbidden_host(host: Option<&str>) -> HttpError {
    HttpError::new(
        StatusCode::FORBIDDEN,
        "forbidden_host",
        "The Host header names a host this laned does not serve; use http://127.0.0.1 or \
         the configured listen address.",
    )
    .with_details(json!({"host": host.map(|h| h.chars().take(255).collect::<String>())}))
}

/// 404 `not_found` for an unknown sale.
pub fn sale_not_found(id: &str) -> HttpError {
    HttpError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("No sale with transaction id {id} is stored on this lane."),
    )
}

/// 404 `not_found` for an unknown path.
pub fn no_route(path: &str) -> HttpError {
    HttpError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("There is nothing at {path}; see the till API in the README."),
    )
}

/// 405 `method_not_allowed`.
pub fn method_not_allowed() -> HttpError {
    HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This path does not accept that method; see the till API in the README.",
    )
}

/// 409 `business_day_closed` or `void_of_closed_day`: a closing forbids
/// the sale (docs/journal.md); nothing was recorded. In the cashier's words.
pub fn closed_day(r: &crate::lane::store::closing::Refusal, w: Words) -> HttpError {
    use crate::lane::store::closing::Refusal;
    match r {
        Refusal::DayClosed {
            business_date,
            closed_through,
        } => HttpError::new(
            StatusCode::CONFLICT,
            "business_day_closed",
            w.with(
                "error-business_day_closed",
                &[
                    ("date", business_date.clone().into()),
                    ("through", closed_through.clone().into()),
                ],
            ),
        )
        .with_details(json!({"business_date": business_date, "closed_through": closed_through})),
        Refusal::VoidOfClosedDay {
            references,
            business_date,
        } => HttpError::new(
            StatusCode::CONFLICT,
            "void_of_closed_day",
            w.with(
                "error-void_of_closed_day",
                &[("date", business_date.clone().into())],
            ),
        )
        .with_details(json!({"references": references, "business_date": business_date})),
    }
}

/// 409 `transaction_id_reused`.
pub fn transaction_id_reused(id: &str, receipt: &str, by_key: bool) -> HttpError {
    let (what, new) = if by_key {
        ("This Idempotency-Key was already used", "Idempotency-Key")
    } else {
        ("This transaction id was already used", "transaction id")
    };
    HttpError::new(
        StatusCode::CONFLICT,
        "transaction_id_reused",
        format!(
            "{what} for a different sale (receipt {receipt}). Nothing was changed; \
             a new sale needs a new {new}."
        ),
    )
    .with_details(json!({"transaction_id": id, "receipt": receipt}))
}

/// 413 `payload_too_large`.
pub fn payload_too_large(limit: usize) -> HttpError {
    HttpError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("The body is larger than the {limit} bytes a sale may take."),
    )
    .with_details(json!({"limit_bytes": limit}))
}

/// A body that could not be read: too large (413), stopped arriving
/// (408), or broken on the way (400).
pub fn unreadable_body(r: &axum::extract::rejection::BytesRejection, limit: usize) -> HttpError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        payload_too_large(limit)
    } else if crate::common::serve::BodyTimeout::caused(r) {
        request_timeout()
    } else {
        invalid_json(&serde_json::Error::io(std::io::Error::other(r.body_text())))
    }
}

/// 408 `request_timeout`: the body stopped arriving.
pub(crate) fn request_timeout() -> HttpError {
    HttpError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "The request body stopped arriving before it was complete; nothing was stored. \
         Send the same request again.",
    )
}

/// 415 `unsupported_media_type`.
pub fn unsupported_media_type() -> HttpError {
    HttpError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Send the body as JSON with Content-Type: application/json.",
    )
}

/// 400 `invalid_query` for a bad query parameter.
pub fn invalid_query(error: FieldError) -> HttpError {
    HttpError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        format!("The query is not valid: {} {}.", error.field, error.message),
    )
    .with_details(json!({"fields": [error]}))
}

/// 400 `invalid_query`: the query string is not readable at all.
pub fn unreadable_query() -> HttpError {
    HttpError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        "The query string cannot be read: write it as name=value pairs joined by &, \
         with special characters percent-encoded.",
    )
}

/// 422 `validation_failed` with one entry per bad field of a sale.
pub fn validation_failed(errors: Vec<FieldError>) -> HttpError {
    invalid("The sale", errors)
}

/// 422 `validation_failed` with one entry per bad field of an admin
/// request (a reason, a business date, counted cash): the same code, a
/// sentence about the request.
pub fn request_invalid(errors: Vec<FieldError>) -> HttpError {
    invalid("The request", errors)
}

fn invalid(what: &str, errors: Vec<FieldError>) -> HttpError {
    let message = match errors.as_slice() {
        [one] if one.field.is_empty() => format!("{what} is not valid: it {}.", one.message),
        [one] => format!("{what} is not valid: {} {}.", one.field, one.message),
        many => format!(
            "{what} is not valid: {} problems, listed in details.",
            many.len()
        ),
    };
    HttpError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        message,
    )
    .with_details(json!({"fields": errors}))
}

impl From<StoreError> for HttpError {
    fn from(e: StoreError) -> Self {
        not_recorded(e, Words::default())
    }
}

/// A store error as the till hears it: a full disk `507 storage_full`, a
/// sale too large `413 payload_too_large`, a closing store `503
/// unavailable`, anything else `500 internal`; the sentences in the
/// cashier's words.
pub fn not_recorded(e: StoreError, w: Words) -> HttpError {
    // Look through a failed batch to what made it fail.
    let root = match &e {
        StoreError::Batch(inner) => inner.as_ref(),
        other => other,
    };
    match root {
        StoreError::Full { .. } => {
            tracing::error!(error = %e, "storage full: refusing new sales");
            HttpError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                w.get("error-storage_full"),
            )
        }
        StoreError::EnvelopeTooLarge { bytes, limit } => HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            w.with(
                "error-payload_too_large",
                &[
                    ("bytes", bytes.to_string().into()),
                    ("limit", limit.to_string().into()),
                ],
            ),
        )
        .with_details(json!({"limit_bytes": limit, "envelope_bytes": bytes})),
        StoreError::Busy { .. } | StoreError::Closed => HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            w.get("error-unavailable"),
        ),
        _ => {
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "store error");
            HttpError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                w.get("error-internal"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// SQLite's "database or disk is full", as the writer meets it.
    fn disk_full() -> StoreError {
        StoreError::sqlite(
            "insert a sale",
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                None,
            ),
        )
    }

    #[test]
    fn a_full_disk_is_answered_507_storage_full_alone_or_through_its_batch() {
        for err in [disk_full(), StoreError::Batch(Arc::new(disk_full()))] {
            let api = HttpError::from(err);
            assert_eq!(api.code(), "storage_full");
            assert_eq!(api.status(), StatusCode::INSUFFICIENT_STORAGE);
        }
    }
}
